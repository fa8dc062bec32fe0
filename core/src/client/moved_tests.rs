//! Following a cluster follower's `-MOVED host:port`.
#![allow(clippy::unwrap_used, clippy::panic)]

use alloc::string::{String, ToString};
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

/// Drains the outputs; returns the connection the client opened, if it opened one.
fn next_connect(client: &mut Client) -> Option<(ConnId, usize)> {
    outputs(client).iter().find_map(|output| match output {
        Output::Connect { conn, endpoint } => Some((*conn, *endpoint)),
        _ => None,
    })
}

/// Opens `conn` and returns the bytes the client then sends.
fn open(client: &mut Client, now: Instant, conn: ConnId) -> Vec<u8> {
    client.handle_connected(now, conn);
    outputs(client)
        .into_iter()
        .filter_map(|output| match output {
            Output::Transmit { bytes, .. } => Some(bytes),
            _ => None,
        })
        .flatten()
        .collect()
}

/// Connects the client's newest connection and returns it with its endpoint and what it sent.
fn connect_next(client: &mut Client, now: Instant) -> (ConnId, usize, Vec<u8>) {
    let (conn, endpoint) = next_connect(client).unwrap();
    let sent = open(client, now, conn);
    (conn, endpoint, sent)
}

#[test]
fn moves_stop_after_one_per_endpoint_then_pause_until_the_timeout() {
    let mut client = client();
    let id = client.query(Instant(0), "");
    let mut at = Instant(0);
    let mut attempts = 0;
    let mut at_once = 0;
    let mut connect = next_connect(&mut client);
    let reply = loop {
        let conn = if let Some((conn, _)) = connect {
            at_once += 1;
            conn
        } else {
            // Nobody can take it yet: it waits, then goes again.
            let resume = client.poll_timeout().unwrap();
            assert!(resume > at, "{resume:?} after {at:?}");
            at = resume;
            client.handle_timeout(at);
            next_connect(&mut client).unwrap().0
        };
        let sent = open(&mut client, at, conn);
        assert!(sent.windows(5).any(|w| w == b"QUERY"), "{sent:?}");
        attempts += 1;
        assert!(attempts < 100, "no end");
        client.receive(at, conn, b"-MOVED 10.0.0.9:1\r\n");
        if let Some((reply_id, reply)) = client.poll_reply() {
            assert_eq!(reply_id, id);
            break reply;
        }
        connect = next_connect(&mut client);
    };
    // The MOVED itself is the answer once the 10 s timeout leaves no room for a pause.
    assert!(
        matches!(&reply, Err(error) if error.to_string().contains("MOVED 10.0.0.9:1")),
        "{reply:?}"
    );
    assert!(
        at.ms_since(Instant(0)) > 5_000 && at.ms_since(Instant(0)) < 10_000,
        "{at:?}"
    );
    // The first attempt and one move per endpoint at once, then pauses (50 ms doubling).
    assert!(at_once >= 4 && attempts > at_once, "{attempts} {at_once}");
}

#[test]
fn an_acquire_rides_through_an_election() {
    let mut client = client();
    let now = Instant(0);
    let id = client
        .acquire(now, "a", 1000, &AcquireOptions::default())
        .unwrap();
    let (first, endpoint, _) = connect_next(&mut client, now);
    assert_eq!(endpoint, 0);
    let text = alloc::format!("-{}\r\n", crate::error::NOT_LEADER_NO_LEADER);
    client.receive(now, first, text.as_bytes());
    assert!(client.poll_reply().is_none(), "it waits for a leader");
    assert_eq!(client.poll_timeout(), Some(Instant(RIDE_THROUGH_FIRST_MS)));
    client.handle_timeout(Instant(RIDE_THROUGH_FIRST_MS));
    let (second, endpoint, sent) = connect_next(&mut client, Instant(RIDE_THROUGH_FIRST_MS));
    assert_eq!(endpoint, 1, "the next node");
    assert!(sent.ends_with(b"*3\r\n$7\r\nACQUIRE\r\n$1\r\na\r\n$4\r\n1000\r\n"));
    // A deposed leader whose entry never committed: no effect either; the pause doubles.
    let text = alloc::format!("-{}\r\n", crate::error::NOT_LEADER_NO_EFFECT);
    client.receive(Instant(60), second, text.as_bytes());
    assert_eq!(
        client.poll_timeout(),
        Some(Instant(60 + 2 * RIDE_THROUGH_FIRST_MS))
    );
    client.handle_timeout(Instant(160));
    let (third, endpoint, _) = connect_next(&mut client, Instant(160));
    assert_eq!(endpoint, 2);
    client.receive(Instant(170), third, b":9\r\n");
    let (reply_id, reply) = client.poll_reply().unwrap();
    assert_eq!(reply_id, id);
    let Ok(Reply::Granted { token: 9, deadline }) = reply else {
        panic!("{reply:?}");
    };
    // The lease runs from the attempt that took effect, never from an earlier one.
    assert_eq!(deadline, Instant(160 + 1000));
}

#[test]
fn an_unknown_outcome_is_the_answer_at_once() {
    let mut client = client();
    let now = Instant(0);
    let id = client
        .acquire(now, "a", 1000, &AcquireOptions::default())
        .unwrap();
    let (conn, _, _) = connect_next(&mut client, now);
    let text = alloc::format!("-{}\r\n", crate::error::NOT_LEADER_UNKNOWN);
    client.receive(now, conn, text.as_bytes());
    let (reply_id, reply) = client.poll_reply().unwrap();
    assert_eq!(reply_id, id);
    assert!(
        matches!(&reply, Err(error) if error.to_string().contains("may or may not")),
        "{reply:?}"
    );
}

#[test]
fn a_paused_request_can_be_cancelled_or_closed() {
    let mut client = client();
    let now = Instant(0);
    let cancelled = client.query(now, "");
    let closed = client.info(now, None);
    let (conn, _, _) = connect_next(&mut client, now);
    let text = alloc::format!("-{}\r\n", crate::error::NOT_LEADER_NO_LEADER);
    client.receive(now, conn, text.as_bytes());
    client.receive(now, conn, text.as_bytes());
    assert_eq!(client.pending(), 2);
    client.cancel(now, cancelled);
    assert_eq!(client.pending(), 1);
    client.close(now);
    assert_eq!(client.pending(), 0);
    let (reply_id, reply) = client.poll_reply().unwrap();
    assert_eq!(reply_id, closed);
    assert!(
        matches!(&reply, Err(Error::ConnectionLost(text)) if text.contains("not sent")),
        "{reply:?}"
    );
    assert!(client.poll_reply().is_none());
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

#[test]
fn a_user_renewal_whose_outcome_is_unknown_may_have_shortened_the_lease() {
    // A deposed leader answers a shorter renewal "may or may not have taken effect": if it
    // did, the server's lease ends at the renewal's TTL, so the client's deadline must not
    // stay at the grant's (found by the cluster simulator: two clients believed they held
    // the same lock).
    let mut client = client();
    let now = Instant(0);
    client
        .acquire(now, "a", 4000, &AcquireOptions::default())
        .unwrap();
    let (conn, _, _) = connect_next(&mut client, now);
    client.receive(now, conn, b":7\r\n");
    assert!(client.poll_reply().is_some());
    assert_eq!(client.lease(now, "a", 7).unwrap().deadline, Instant(4000));
    let renewed = Instant(100);
    let id = client.renew(renewed, "a", 7, 500).unwrap();
    let _ = outputs(&mut client);
    let text = alloc::format!("-{}\r\n", crate::error::NOT_LEADER_UNKNOWN);
    client.receive(Instant(120), conn, text.as_bytes());
    let (reply_id, reply) = client.poll_reply().unwrap();
    assert_eq!(reply_id, id);
    assert!(reply.is_err(), "{reply:?}");
    let status = client.lease(Instant(120), "a", 7).unwrap();
    assert!(
        status.deadline <= renewed.plus_ms(500),
        "the deadline {:?} outlasts the renewal that may have run",
        status.deadline
    );
}
