//! Property tests over arbitrary bytes and split points fed to the server: no panic, memory
//! bounded by the limits, and output independent of how the input is cut.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fencelock_core::protocol::{Output, Server, ServerConfig};
use fencelock_core::{Config, Engine, Instant};
use proptest::prelude::*;

fn small_server() -> Server {
    let mut config = ServerConfig::default();
    config.max_request_bytes = 256;
    config.max_bulk_bytes = 64;
    config.max_args = 8;
    config.max_output_bytes = 4096;
    config.max_connections = 4;
    config.test_clock = true;
    Server::new(Engine::new(Config::default()), config)
}

/// Fragments that make the random input reach deep parser and command states.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..12),
        Just(b"*3\r\n$7\r\nACQUIRE\r\n$1\r\nk\r\n$3\r\n100\r\n".to_vec()),
        Just(
            b"*5\r\n$7\r\nACQUIRE\r\n$1\r\nk\r\n$3\r\n100\r\n$4\r\nWAIT\r\n$3\r\n500\r\n".to_vec()
        ),
        Just(b"*3\r\n$7\r\nRELEASE\r\n$1\r\nk\r\n$1\r\n1\r\n".to_vec()),
        Just(b"*3\r\n$5\r\nDEBUG\r\n$7\r\nADVANCE\r\n$3\r\n200\r\n".to_vec()),
        Just(b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n".to_vec()),
        Just(b"QUERY\r\n".to_vec()),
        Just(b"INFO\r\n".to_vec()),
        Just(b"*2\r\n$4\r\nECHO\r\n$60\r\n".to_vec()),
        Just(b"*9\r\n".to_vec()),
        Just(b"$".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"PING ".to_vec()),
    ]
}

fn drain(server: &mut Server, closed: &mut Vec<u64>) -> Vec<(u64, Vec<u8>)> {
    let mut sent = Vec::new();
    while let Some(output) = server.poll_output() {
        match output {
            Output::File(_) => {}
            Output::Transmit { conn, bytes } => {
                assert!(!closed.contains(&conn), "bytes for a closed connection");
                sent.push((conn, bytes));
            }
            Output::Close { conn } => {
                assert!(!closed.contains(&conn), "closed twice");
                closed.push(conn);
            }
            other => panic!("an output this test does not know: {other:?}"),
        }
    }
    sent
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(512), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_input_never_panics_and_memory_stays_bounded(
        inputs in proptest::collection::vec((0u64..3, proptest::collection::vec(fragment(), 1..8), 1usize..40), 1..24)
    ) {
        let mut server = small_server();
        let conns: Vec<u64> = (0..3).map(|_| server.connect(Instant(0))).collect();
        let mut closed = Vec::new();
        for (which, fragments, chunk) in inputs {
            let conn = conns[which as usize];
            let data: Vec<u8> = fragments.concat();
            for piece in data.chunks(chunk) {
                server.receive(Instant(0), conn, piece);
                // Limits: a partial request, plus input held behind a WAIT, plus the
                // spans of at most max_args arguments.
                for &c in &conns {
                    prop_assert!(server.buffered_bytes(c) <= 256 + 256 + 8 * 16 + 4096,
                        "conn {c} holds {} bytes", server.buffered_bytes(c));
                }
            }
            drain(&mut server, &mut closed);
            for &c in &conns {
                prop_assert!(server.buffered_bytes(c) <= 256 + 256 + 8 * 16);
            }
        }
        server.handle_timeout(Instant(10_000));
        for &c in &conns {
            server.disconnect(Instant(10_000), c);
        }
        drain(&mut server, &mut closed);
        prop_assert_eq!(server.connections(), 0);
        prop_assert_eq!(server.engine().waiting(), 0);
    }

    #[test]
    fn output_does_not_depend_on_split_points(
        fragments in proptest::collection::vec(fragment(), 1..10),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let data: Vec<u8> = fragments.concat();
        let run = |pieces: Vec<&[u8]>| {
            let mut server = small_server();
            let conn = server.connect(Instant(0));
            let mut closed = Vec::new();
            for piece in pieces {
                server.receive(Instant(0), conn, piece);
            }
            let bytes: Vec<u8> = drain(&mut server, &mut closed).into_iter().flat_map(|(_, b)| b).collect();
            (bytes, closed)
        };
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
        points.sort_unstable();
        let mut pieces = Vec::new();
        let mut start = 0;
        for point in points.into_iter().chain([data.len()]) {
            pieces.push(&data[start..point]);
            start = point;
        }
        prop_assert_eq!(run(vec![&data]), run(pieces));
    }
}

/// The number of cases: `PROPTEST_CASES` for a longer hunt, else the bounded default of make test.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}
