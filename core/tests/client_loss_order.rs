//! Regression (found by the deterministic simulator, tests/sim, seed 346): a grant and the
//! push saying that lease was stolen arrived in one read. The loss was queued as an event
//! before the reply that granted the lease was polled, so a host delivering events before
//! replies (docs/HOSTS.md) heard of the loss of a lease it did not know yet, dropped it, and
//! then handed out a lease that nothing would ever mark lost.
#![allow(clippy::unwrap_used, clippy::panic)]

use fencelock_core::client::{Client, ClientConfig, Event, LostReason, Output, Reply};
use fencelock_core::{AcquireOptions, Instant};

#[test]
fn a_loss_comes_after_the_reply_that_granted_the_lease() {
    let mut client = Client::new(ClientConfig::default());
    let id = client
        .acquire(Instant(0), "a", 1_000, &AcquireOptions::default())
        .unwrap();
    assert!(matches!(
        client.poll_output(),
        Some(Output::Connect { conn: 1, .. })
    ));
    client.handle_connected(Instant(1), 1);
    assert!(matches!(
        client.poll_output(),
        Some(Output::Transmit { .. })
    ));
    // HELLO's reply, the grant of token 1, and the push: token 1 stolen by token 3.
    let bytes = b"%1\r\n$6\r\nserver\r\n$9\r\nfencelock\r\n:1\r\n\
>5\r\n$9\r\nfencelock\r\n$6\r\nstolen\r\n$1\r\na\r\n:1\r\n:3\r\n";
    client.receive(Instant(2), 1, bytes);
    // Events first, as hosts deliver them: the notice, but no loss of a lease not yet seen.
    let mut events = Vec::new();
    while let Some(event) = client.poll_event() {
        events.push(event);
    }
    assert!(
        events.iter().all(|e| !matches!(e, Event::LeaseLost { .. })),
        "a loss before its lease was granted: {events:?}"
    );
    assert!(matches!(
        client.poll_reply(),
        Some((reply, Ok(Reply::Granted { token: 1, .. }))) if reply == id
    ));
    // Once the grant is out, its loss follows, once.
    assert_eq!(
        client.poll_event(),
        Some(Event::LeaseLost {
            name: String::from("a"),
            token: 1,
            reason: LostReason::Stolen { by_token: 3 },
        })
    );
    assert_eq!(client.poll_event(), None);
    assert!(client.lease(Instant(2), "a", 1).is_none());
}
