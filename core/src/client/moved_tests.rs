//! Following a cluster follower's `-MOVED host:port`.
#![allow(clippy::unwrap_used, clippy::panic)]

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::*;

fn client() -> Client {
    Client::new(ClientConfig {
        endpoints: 3,
        resp3: false,
        endpoint_addresses: vec![
            String::from("127.0.0.1:7381"),
            String::from("127.0.0.1:7382"),
            String::from("127.0.0.1:7383"),
        ],
        ..ClientConfig::default()
    })
}

fn outputs(client: &mut Client) -> Vec<Output> {
    core::iter::from_fn(|| client.poll_output()).collect()
}

#[test]
fn an_acquire_answered_moved_goes_to_the_named_leader() {
    let mut client = client();
    let now = Instant(0);
    let id = client
        .acquire(now, "a", 1000, &AcquireOptions::default())
        .unwrap();
    let Some(Output::Connect { conn, endpoint: 0 }) = outputs(&mut client).first().cloned() else {
        panic!("connect to endpoint 0");
    };
    client.handle_connected(now, conn);
    assert!(matches!(
        outputs(&mut client).first(),
        Some(Output::Transmit { .. })
    ));
    client.receive(now, conn, b"-MOVED 127.0.0.1:7383\r\n");
    assert!(
        client.poll_reply().is_none(),
        "no reply yet: it went to the leader"
    );
    let out = outputs(&mut client);
    assert!(out.contains(&Output::Close { conn }), "{out:?}");
    let leader = out
        .iter()
        .find_map(|output| match output {
            Output::Connect { conn, endpoint: 2 } => Some(*conn),
            _ => None,
        })
        .unwrap();
    client.handle_connected(now, leader);
    let sent = outputs(&mut client);
    assert!(sent
        .iter()
        .any(|output| matches!(output, Output::Transmit { conn, bytes } if *conn == leader && bytes.starts_with(b"*3\r\n$7\r\nACQUIRE"))));
    client.receive(now, leader, b":7\r\n");
    let (reply_id, reply) = client.poll_reply().unwrap();
    assert_eq!(reply_id, id);
    assert!(
        matches!(reply, Ok(Reply::Granted { token: 7, .. })),
        "{reply:?}"
    );
}

#[test]
fn moves_stop_after_one_per_endpoint() {
    let mut client = client();
    let now = Instant(0);
    client.query(now, "");
    // The first attempt and one move per endpoint.
    for _ in 0..4 {
        let conn = outputs(&mut client)
            .iter()
            .find_map(|output| match output {
                Output::Connect { conn, .. } => Some(*conn),
                _ => None,
            })
            .unwrap();
        client.handle_connected(now, conn);
        let _ = outputs(&mut client);
        client.receive(now, conn, b"-MOVED 10.0.0.9:1\r\n");
    }
    let (_, reply) = client.poll_reply().unwrap();
    assert!(reply.is_err(), "{reply:?}");
}

/// Performs the client's outputs: opens every connection and answers each RENEW with `answer`.
fn serve_renewals(client: &mut Client, now: Instant, answer: &[u8]) -> usize {
    let mut renewals = 0;
    while let Some(output) = client.poll_output() {
        match output {
            Output::Connect { conn, .. } => client.handle_connected(now, conn),
            Output::Transmit { conn, bytes } if bytes.windows(5).any(|w| w == b"RENEW") => {
                renewals += 1;
                client.receive(now, conn, answer);
            }
            _ => {}
        }
    }
    renewals
}

#[test]
fn a_kept_lease_outlives_renewals_answered_moved_during_a_failover() {
    let mut client = client();
    let mut now = Instant(0);
    client
        .acquire(now, "a", 1000, &AcquireOptions::default())
        .unwrap();
    let conn = outputs(&mut client)
        .iter()
        .find_map(|output| match output {
            Output::Connect { conn, .. } => Some(*conn),
            _ => None,
        })
        .unwrap();
    client.handle_connected(now, conn);
    let _ = outputs(&mut client);
    client.receive(now, conn, b":7\r\n");
    assert!(client.poll_reply().is_some());
    assert!(client.keep_alive("a", 7));
    // A failover: every node answers MOVED naming a leader that is gone, until the moves run out.
    let mut moved = 0;
    while now.as_ms() < 800 {
        now = now.plus_ms(10);
        client.handle_timeout(now);
        moved += serve_renewals(&mut client, now, b"-MOVED 127.0.0.1:7382\r\n");
        assert!(
            client.poll_event().is_none(),
            "the lease was given up at {now:?}"
        );
    }
    assert!(
        moved > 4,
        "renewals went on after the moves ran out ({moved})"
    );
    // A leader is elected before the lease runs out: the next renewal succeeds.
    let mut renewed = 0;
    while renewed == 0 && now.as_ms() < 990 {
        now = now.plus_ms(10);
        client.handle_timeout(now);
        renewed += serve_renewals(&mut client, now, b":1000\r\n");
    }
    assert!(renewed > 0, "no renewal before the deadline");
    assert!(client.poll_event().is_none());
    let status = client.lease(now, "a", 7).unwrap();
    assert!(status.deadline > Instant(1000), "{status:?}");
}

#[test]
fn a_kept_lease_answered_moved_until_its_deadline_lapses() {
    let mut client = client();
    let mut now = Instant(0);
    client
        .acquire(now, "a", 1000, &AcquireOptions::default())
        .unwrap();
    let conn = outputs(&mut client)
        .iter()
        .find_map(|output| match output {
            Output::Connect { conn, .. } => Some(*conn),
            _ => None,
        })
        .unwrap();
    client.handle_connected(now, conn);
    let _ = outputs(&mut client);
    client.receive(now, conn, b":7\r\n");
    assert!(client.poll_reply().is_some());
    assert!(client.keep_alive("a", 7));
    while now.as_ms() < 1100 {
        now = now.plus_ms(10);
        client.handle_timeout(now);
        let _ = serve_renewals(&mut client, now, b"-NOTLEADER no leader known\r\n");
    }
    let event = client.poll_event();
    assert!(
        matches!(
            event,
            Some(Event::LeaseLost {
                reason: LostReason::Lapsed,
                ..
            })
        ),
        "{event:?}"
    );
}
