//! Behaviour of the sans-IO server that byte vectors cannot show: output ordering, timers,
//! the unsent-bytes limit and INFO.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fencelock_core::protocol::{Output, Server, ServerConfig};
use fencelock_core::{durable, Config, DataFile, Engine, FileAction, Instant};

fn server(config: ServerConfig) -> Server {
    let mut engine_config = Config::default();
    engine_config.token_block = 4;
    Server::new(Engine::new(engine_config), config)
}

fn drain(server: &mut Server) -> Vec<Output> {
    std::iter::from_fn(|| server.poll_output()).collect()
}

fn text(outputs: &[Output], conn: u64) -> String {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Transmit { conn: c, bytes } if *c == conn => {
                Some(String::from_utf8_lossy(bytes).into_owned())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn ceilings_come_before_the_replies_that_reveal_their_tokens() {
    let mut server = server(ServerConfig::default());
    let conn = server.connect(Instant(0));
    let mut persisted = 0;
    for round in 0..10 {
        let request = format!("ACQUIRE lock{round} 1000\r\n");
        server.receive(Instant(0), conn, request.as_bytes());
        for output in drain(&mut server) {
            match output {
                Output::File(FileAction::Write {
                    file: DataFile::Ceiling,
                    bytes,
                }) => persisted = durable::decode_ceiling(&bytes).unwrap(),
                Output::File(other) => panic!("unexpected file output {other:?}"),
                Output::Transmit { bytes, .. } => {
                    let token: u64 = String::from_utf8(bytes)
                        .unwrap()
                        .trim_start_matches(':')
                        .trim()
                        .parse()
                        .unwrap();
                    assert!(
                        token <= persisted,
                        "token {token} sent before ceiling above it was persisted ({persisted})"
                    );
                }
                other => panic!("unexpected output {other:?}"),
            }
        }
    }
}

#[test]
fn pipelined_replies_are_batched_into_one_transmit() {
    let mut server = server(ServerConfig::default());
    let conn = server.connect(Instant(0));
    server.receive(Instant(0), conn, "PING\r\n".repeat(50).as_bytes());
    let outputs = drain(&mut server);
    assert_eq!(outputs.len(), 1);
    assert_eq!(text(&outputs, conn), "+PONG\r\n".repeat(50));
}

#[test]
fn timers_come_from_the_engine_and_expire_leases() {
    let mut server = server(ServerConfig::default());
    let conn = server.connect(Instant(1000));
    server.receive(Instant(1000), conn, b"HELLO 3\r\nACQUIRE a 250\r\n");
    drain(&mut server);
    assert_eq!(server.poll_timeout(), Some(Instant(1250)));
    server.handle_timeout(Instant(1100)); // spurious: nothing due
    assert!(drain(&mut server).is_empty());
    server.handle_timeout(Instant(1250));
    let outputs = drain(&mut server);
    assert_eq!(
        text(&outputs, conn),
        ">4\r\n$9\r\nfencelock\r\n$7\r\nexpired\r\n$1\r\na\r\n:1\r\n"
    );
    assert_eq!(server.poll_timeout(), None);
}

#[test]
fn resp2_connections_get_no_pushes() {
    let mut server = server(ServerConfig::default());
    let conn = server.connect(Instant(0));
    server.receive(Instant(0), conn, b"ACQUIRE a 10\r\n");
    drain(&mut server);
    server.handle_timeout(Instant(10));
    assert!(drain(&mut server).is_empty());
}

#[test]
fn a_test_clock_ignores_host_time() {
    let mut config = ServerConfig::default();
    config.test_clock = true;
    let mut server = server(config);
    let conn = server.connect(Instant(5_000_000));
    server.receive(Instant(5_000_000), conn, b"ACQUIRE a 100\r\n");
    assert_eq!(server.poll_timeout(), None);
    server.handle_timeout(Instant(9_000_000));
    server.receive(
        Instant(9_000_000),
        conn,
        b"VERIFY a 1\r\nDEBUG ADVANCE 40\r\nVERIFY a 1\r\n",
    );
    assert_eq!(
        text(&drain(&mut server), conn),
        ":1\r\n:100\r\n:40\r\n:60\r\n"
    );
}

#[test]
fn a_test_clock_starts_at_the_engines_time() {
    // A host that starts the engine at its real `now` (the browser worker at
    // performance.now()) still gets every DEBUG ADVANCE in full.
    let mut config = ServerConfig::default();
    config.test_clock = true;
    let engine =
        Engine::start(Instant(71), Config::default(), fencelock_core::Start::Fresh).unwrap();
    let mut server = Server::new(engine, config);
    let conn = server.connect(Instant(80));
    server.receive(
        Instant(90),
        conn,
        b"ACQUIRE x 100\r\nDEBUG ADVANCE 100\r\nVERIFY x 1\r\n",
    );
    assert_eq!(
        text(&drain(&mut server), conn),
        ":1\r\n:171\r\n-EXPIRED the lease of token 1 expired\r\n"
    );
}

#[test]
fn a_client_that_does_not_read_is_closed() {
    let mut config = ServerConfig::default();
    config.max_output_bytes = 1000;
    let mut server = server(config);
    let conn = server.connect(Instant(0));
    server.handle_unsent(Instant(0), conn, 999);
    assert!(drain(&mut server).is_empty());
    server.receive(Instant(0), conn, b"PING\r\n");
    assert_eq!(drain(&mut server), vec![Output::Close { conn }]);
    assert_eq!(server.connections(), 0);
    server.disconnect(Instant(0), conn); // harmless after Close
}

#[test]
fn closing_a_waiting_connection_removes_its_waiter() {
    let mut server = server(ServerConfig::default());
    let holder = server.connect(Instant(0));
    let waiter = server.connect(Instant(0));
    server.receive(Instant(0), holder, b"ACQUIRE a 1000\r\n");
    server.receive(Instant(0), waiter, b"ACQUIRE a 1000 WAIT 5000\r\nPING\r\n");
    assert_eq!(server.engine().waiting(), 1);
    server.receive(Instant(0), waiter, b"QUIT\r\n"); // held behind the wait, never run
    server.disconnect(Instant(10), waiter);
    assert_eq!(server.engine().waiting(), 0);
    server.receive(Instant(20), holder, b"RELEASE a 1\r\n");
    let outputs = drain(&mut server);
    assert_eq!(text(&outputs, holder), ":1\r\n+OK\r\n");
    assert_eq!(text(&outputs, waiter), "");
}

#[test]
fn info_reports_sections_in_redis_style() {
    let mut server = server(ServerConfig::default());
    let conn = server.connect(Instant(0));
    server.receive(Instant(3000), conn, b"ACQUIRE a 1000\r\nINFO\r\n");
    let reply = text(&drain(&mut server), conn);
    for expected in [
        "# Server\r\n",
        "fencelock_version:",
        "loading:0\r\n",
        "uptime_in_seconds:3\r\n",
        "# Clients\r\nconnected_clients:1\r\n",
        "# Stats\r\n",
        "total_commands_processed:2\r\n",
        "# Locks\r\nlive_locks:1\r\n",
        "# Tokens\r\nlast_token:1\r\n",
        "# Config\r\nmax_ttl_ms:300000\r\n",
        "token_block:4\r\n",
        "max_connections:10000\r\ntest_clock:0\r\n",
        "acquires:1\r\ngrants:1\r\n",
    ] {
        assert!(reply.contains(expected), "missing {expected:?} in {reply}");
    }
    server.receive(Instant(3000), conn, b"INFO tokens\r\nINFO nosuch\r\n");
    let reply = text(&drain(&mut server), conn);
    assert!(reply.starts_with("$"), "{reply}");
    assert!(!reply.contains("# Server"));
    assert!(reply.ends_with("$0\r\n\r\n"), "{reply}");
}

#[test]
fn connection_ids_are_never_zero() {
    let mut server = server(ServerConfig::default());
    assert_ne!(server.connect(Instant(0)), 0);
}
