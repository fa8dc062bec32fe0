//! Arbitrary requests, transport events, time and reply bytes into the sans-IO client: it must
//! never panic, must answer every request at most once, must only ask to write to connections
//! it opened, and must have nothing pending after `close`.
#![no_main]

use std::collections::{BTreeSet, HashSet};

use fencelock_core::client::{Client, ClientConfig, Output, Reply};
use fencelock_core::{AcquireOptions, Instant, Mode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut config = ClientConfig::default();
    config.endpoints = 2;
    config.request_timeout_ms = 500;
    config.connect_timeout_ms = 200;
    let mut client = Client::new(config);
    let mut now = 0u64;
    let mut opened: BTreeSet<u64> = BTreeSet::new();
    let mut closed: HashSet<u64> = HashSet::new();
    let mut issued: Vec<u64> = Vec::new();
    let mut answered: HashSet<u64> = HashSet::new();
    let mut tokens: Vec<u64> = Vec::new();
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        let arg = rest.first().copied().unwrap_or(0);
        let conn = opened
            .iter()
            .nth(usize::from(arg) % opened.len().max(1))
            .copied()
            .unwrap_or(1);
        let token = tokens
            .get(usize::from(arg) % tokens.len().max(1))
            .copied()
            .unwrap_or(u64::from(arg));
        let name = ["a", "b", ""][usize::from(arg % 3)];
        let at = Instant(now);
        match op % 13 {
            0 => {
                let mut options = AcquireOptions::default();
                options.wait_ms = u64::from(arg & 0x30);
                options.mode = if arg & 1 == 1 {
                    Mode::Shared
                } else {
                    Mode::Exclusive
                };
                options.ephemeral = arg & 2 == 2;
                options.steal = arg & 4 == 4;
                if let Ok(id) = client.acquire(at, name, u64::from(arg) * 10, &options) {
                    issued.push(id);
                }
            }
            1 => issued.extend(client.renew(at, name, token, 300)),
            2 => issued.extend(client.release(at, name, token)),
            3 => issued.extend(client.verify(at, name, token)),
            4 => issued.push(client.query(at, name)),
            5 => issued.push(client.ping(at)),
            6 => {
                client.keep_alive(name, token);
            }
            7 => client.cancel(at, issued.get(usize::from(arg)).copied().unwrap_or(0)),
            8 => client.handle_connected(at, conn),
            9 => {
                let len = usize::from(arg).min(rest.len().saturating_sub(1));
                let chunk = rest.get(1..1 + len).unwrap_or_default();
                client.receive(at, conn, chunk);
                rest = rest.get(1 + len..).unwrap_or_default();
                continue;
            }
            10 => client.handle_disconnect(at, conn, "fuzz"),
            11 => {
                now += u64::from(arg) * 5;
                client.handle_timeout(Instant(now));
            }
            _ => client.close(at),
        }
        rest = rest.get(1..).unwrap_or_default();
        while let Some(output) = client.poll_output() {
            match output {
                Output::Connect { conn, endpoint } => {
                    assert!(endpoint < 2);
                    assert!(opened.insert(conn), "connection {conn} opened twice");
                }
                Output::Transmit { conn, bytes } => {
                    assert!(opened.contains(&conn) && !closed.contains(&conn));
                    assert!(!bytes.is_empty());
                }
                Output::Close { conn } => {
                    assert!(opened.contains(&conn));
                    assert!(closed.insert(conn), "connection {conn} closed twice");
                }
                _ => {}
            }
        }
        while let Some((id, reply)) = client.poll_reply() {
            assert!(
                issued.contains(&id),
                "a reply to request {id} that was never made"
            );
            assert!(answered.insert(id), "request {id} answered twice");
            if let Ok(Reply::Granted { token, .. }) = reply {
                tokens.push(token);
            }
        }
        while client.poll_event().is_some() {}
    }
    client.close(Instant(now));
    while client.poll_output().is_some() {}
    while client.poll_reply().is_some() {}
    assert_eq!(client.pending(), 0, "requests left pending after close");
    assert_eq!(client.connections(), 0);
});
