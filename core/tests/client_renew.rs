//! Regressions found by the deterministic simulator (tests/sim). Seed 2: a renewal asked for
//! with a shorter TTL shortens the server's lease as soon as the server runs it, so the
//! client's conservative deadline must not stay at the old, later one while the reply is in
//! flight. Seed 21: with several renewals of different TTLs outstanding (a user renewal and
//! the automatic one, retried together on a new connection, or a copy left on a connection
//! that timed out), the server may run them in any order; the deadline must allow for each.
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

/// Returns the bytes of every transmit among the client's outputs on `conn`, and the other
/// outputs.
fn drain(client: &mut Client, conn: u64) -> (Vec<u8>, Vec<Output>) {
    let mut bytes = Vec::new();
    let mut other = Vec::new();
    while let Some(output) = client.poll_output() {
        match output {
            Output::Transmit { conn: id, bytes: b } if id == conn => bytes.extend_from_slice(&b),
            output => other.push(output),
        }
    }
    (bytes, other)
}

/// Returns the bytes the server sends back.
fn server_replies(server: &mut Server) -> Vec<u8> {
    let mut replies = Vec::new();
    while let Some(output) = server.poll_output() {
        if let fencelock_core::protocol::Output::Transmit { bytes, .. } = output {
            replies.extend_from_slice(&bytes);
        }
    }
    replies
}

/// Returns when the server's lease `token` of `name` ends, seen at `now`.
fn server_deadline(server: &mut Server, now: Instant, name: &str, token: u64) -> u64 {
    let locks = server.engine_mut().query(now, name);
    let holder = locks
        .iter()
        .flat_map(|lock| lock.holders.iter())
        .find(|holder| holder.token == token)
        .unwrap();
    now.as_ms() + holder.ms_left
}

/// Takes a kept-alive lease on "job" with `ttl_ms` at 0; returns the server connection and token.
fn kept_alive_lease(client: &mut Client, server: &mut Server, ttl_ms: u64) -> (u64, u64) {
    let mut conn = None;
    client
        .acquire(Instant(0), "job", ttl_ms, &AcquireOptions::default())
        .unwrap();
    exchange(client, server, &mut conn, Instant(0));
    let Some((_, Ok(Reply::Granted { token, .. }))) = client.poll_reply() else {
        panic!("not granted")
    };
    assert!(client.keep_alive("job", token));
    (conn.unwrap(), token)
}

#[test]
fn renewals_retried_together_cap_the_deadline_until_the_last_reply() {
    let mut server = Server::new(Engine::new(Config::default()), ServerConfig::default());
    let mut config = ClientConfig::default();
    config.resp3 = false;
    let mut client = Client::new(config);
    let (first_server_conn, token) = kept_alive_lease(&mut client, &mut server, 900);
    // The schedule renews for 900 ms at 300, then the user for 500 ms at 310, both on
    // connection 1, which fails before the server reads either.
    client.handle_timeout(Instant(300));
    client.renew(Instant(310), "job", token, 500).unwrap();
    let (lost_bytes, _) = drain(&mut client, 1);
    assert!(!lost_bytes.is_empty());
    client.handle_disconnect(Instant(320), 1, "connection reset");
    server.disconnect(Instant(320), first_server_conn);
    let (_, outputs) = drain(&mut client, 1);
    assert!(outputs.contains(&Output::Connect {
        conn: 2,
        endpoint: 0
    }));
    // Both go again on connection 2, which opens at 400; the server runs them in that order.
    client.handle_connected(Instant(400), 2);
    let (retried, _) = drain(&mut client, 2);
    let server_conn = server.connect(Instant(400));
    server.receive(Instant(400), server_conn, &retried);
    let replies = server_replies(&mut server);
    let ends_at = server_deadline(&mut server, Instant(400), "job", token);
    assert_eq!(ends_at, 900, "the user's 500 ms renewal ran last");
    // The automatic renewal's reply comes first: the user's may still shorten the lease.
    let first = replies.iter().position(|&b| b == b'\n').unwrap() + 1;
    client.receive(Instant(410), 2, replies.get(..first).unwrap());
    let deadline = client.lease(Instant(410), "job", token).unwrap().deadline;
    assert!(
        deadline.as_ms() <= ends_at,
        "the client believes {deadline:?}, the server's lease ends at {ends_at} ms"
    );
    client.receive(Instant(420), 2, replies.get(first..).unwrap());
    let deadline = client.lease(Instant(420), "job", token).unwrap().deadline;
    assert_eq!(deadline.as_ms(), ends_at);
    // The schedule renews within a third of the 500 ms now left, not of the 900 ms TTL.
    assert_eq!(client.poll_timeout(), Some(Instant(566)));
}

#[test]
fn a_renewal_left_on_a_timed_out_connection_caps_every_later_deadline() {
    let mut server = Server::new(Engine::new(Config::default()), ServerConfig::default());
    let mut config = ClientConfig::default();
    config.resp3 = false;
    config.request_timeout_ms = 500;
    let mut client = Client::new(config);
    let (stalled_server_conn, token) = kept_alive_lease(&mut client, &mut server, 6_000);
    // The user renews for 1 s at 100; the bytes stall on their way to the server.
    client.renew(Instant(100), "job", token, 1_000).unwrap();
    let (stalled, _) = drain(&mut client, 1);
    // No reply within 500 ms: the client closes connection 1 and renews again on connection 2.
    client.handle_timeout(Instant(600));
    let (_, outputs) = drain(&mut client, 1);
    assert!(outputs.contains(&Output::Close { conn: 1 }));
    client.handle_connected(Instant(610), 2);
    let (retry, _) = drain(&mut client, 2);
    let server_conn = server.connect(Instant(610));
    server.receive(Instant(610), server_conn, &retry);
    client.receive(Instant(620), 2, &server_replies(&mut server));
    assert_eq!(
        client.poll_reply().map(|(_, reply)| reply),
        Some(Ok(Reply::MsLeft(1_000)))
    );
    // The user renews for 6 s at 900, and the server confirms it.
    let later = Instant(900);
    client.renew(later, "job", token, 6_000).unwrap();
    let (renewal, _) = drain(&mut client, 2);
    server.receive(later, server_conn, &renewal);
    client.receive(later.plus_ms(5), 2, &server_replies(&mut server));
    assert_eq!(
        client.poll_reply().map(|(_, reply)| reply),
        Some(Ok(Reply::MsLeft(6_000)))
    );
    // Only now does the stalled copy reach the server, which runs it.
    let late = later.plus_ms(50);
    server.receive(late, stalled_server_conn, &stalled);
    let ends_at = server_deadline(&mut server, late, "job", token);
    assert_eq!(ends_at, late.as_ms() + 1_000);
    let deadline = client.lease(late, "job", token).unwrap().deadline;
    assert!(
        deadline.as_ms() <= ends_at,
        "the client believes {deadline:?}, the server's lease ends at {ends_at} ms"
    );
}
