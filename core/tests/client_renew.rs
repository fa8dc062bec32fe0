//! Regression (found by the deterministic simulator, tests/sim, seed 2): a renewal asked for
//! with a shorter TTL shortens the server's lease as soon as the server runs it, so the
//! client's conservative deadline must not stay at the old, later one while the reply is in flight.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    clippy::field_reassign_with_default
)]

use fencelock_core::client::{Client, ClientConfig, Output, Reply};
use fencelock_core::protocol::{Server, ServerConfig};
use fencelock_core::{AcquireOptions, Config, Engine, Instant};

/// Moves every output of the client to the server and back, at `now`.
fn exchange(client: &mut Client, server: &mut Server, conn: &mut Option<u64>, now: Instant) {
    while let Some(output) = client.poll_output() {
        match output {
            Output::Connect { conn: id, .. } => {
                *conn = Some(server.connect(now));
                client.handle_connected(now, id);
            }
            Output::Transmit { conn: id, bytes } => {
                server.receive(now, conn.unwrap(), &bytes);
                while let Some(reply) = server.poll_output() {
                    if let fencelock_core::protocol::Output::Transmit { bytes, .. } = reply {
                        client.receive(now, id, &bytes);
                    }
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn a_shorter_renewal_in_flight_shortens_the_client_deadline() {
    let mut server = Server::new(Engine::new(Config::default()), ServerConfig::default());
    let mut config = ClientConfig::default();
    config.resp3 = false;
    let mut client = Client::new(config);
    let mut conn = None;
    let id = client
        .acquire(Instant(0), "job", 10_000, &AcquireOptions::default())
        .unwrap();
    exchange(&mut client, &mut server, &mut conn, Instant(0));
    let (_, reply) = client.poll_reply().unwrap();
    let Ok(Reply::Granted { token, .. }) = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(id, 1);
    // The server runs the renewal at once; its reply has not come back yet.
    client.renew(Instant(100), "job", token, 1_000).unwrap();
    let deadline = client.lease(Instant(100), "job", token).unwrap().deadline;
    assert!(
        deadline <= Instant(1_100),
        "the client still believes {deadline:?}, the server's lease ends at 1100 ms"
    );
}

#[test]
fn an_automatic_renewal_in_flight_caps_what_an_earlier_reply_confirms() {
    let mut server = Server::new(Engine::new(Config::default()), ServerConfig::default());
    let mut config = ClientConfig::default();
    config.resp3 = false;
    let mut client = Client::new(config);
    let mut conn = None;
    client
        .acquire(Instant(0), "job", 900, &AcquireOptions::default())
        .unwrap();
    exchange(&mut client, &mut server, &mut conn, Instant(0));
    let Some((_, Ok(Reply::Granted { token, .. }))) = client.poll_reply() else {
        panic!("not granted")
    };
    assert!(client.keep_alive("job", token));
    // The user renews for 5 s; before its reply, the keep-alive renews for 900 ms (sent
    // later, so the server runs it later and the lease ends at 300 + 900).
    client.renew(Instant(290), "job", token, 5_000).unwrap();
    let renew_bytes = match client.poll_output() {
        Some(Output::Transmit { bytes, .. }) => bytes,
        other => panic!("{other:?}"),
    };
    client.handle_timeout(Instant(300));
    let auto_bytes = match client.poll_output() {
        Some(Output::Transmit { bytes, .. }) => bytes,
        other => panic!("{other:?}"),
    };
    let server_conn = conn.unwrap();
    server.receive(Instant(291), server_conn, &renew_bytes);
    server.receive(Instant(301), server_conn, &auto_bytes);
    let mut replies = Vec::new();
    while let Some(output) = server.poll_output() {
        if let fencelock_core::protocol::Output::Transmit { bytes, .. } = output {
            replies.extend_from_slice(&bytes);
        }
    }
    // Only the first reply (the user's 5 s renewal) has arrived.
    let first = replies.iter().position(|&b| b == b'\n').unwrap() + 1;
    client.receive(Instant(302), 1, replies.get(..first).unwrap());
    let deadline = client.lease(Instant(302), "job", token).unwrap().deadline;
    assert!(
        deadline <= Instant(1_201),
        "the client believes {deadline:?}, the server's lease ends at 1201 ms"
    );
}
