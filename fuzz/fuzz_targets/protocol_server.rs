//! Arbitrary bytes, split at arbitrary points over three connections, into the sans-IO server:
//! it must never panic, must keep every connection's buffered input under the request limit,
//! and must keep answering a well-formed client beside the noisy ones.
#![no_main]

use fencelock_core::protocol::{Output, Server, ServerConfig};
use fencelock_core::{Config, Engine, Instant};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut config = ServerConfig::default();
    config.max_request_bytes = 4096;
    config.max_bulk_bytes = 1024;
    config.max_args = 16;
    config.max_output_bytes = 64 * 1024;
    let limit = config.max_request_bytes;
    let mut engine_config = Config::default();
    engine_config.max_ttl_ms = 10_000;
    let engine = Engine::new(engine_config);
    let mut server = Server::new(engine, config);
    let mut now = 0u64;
    let conns = [
        server.connect(Instant(now)),
        server.connect(Instant(now)),
        server.connect(Instant(now)),
    ];
    let mut rest = data;
    while let Some((&control, tail)) = rest.split_first() {
        // One control byte: which connection, how many bytes, and how far time moves.
        let conn = conns[usize::from(control % 3)];
        let len = usize::from(control >> 2).min(tail.len());
        let (chunk, tail) = tail.split_at(len);
        now += u64::from(control & 0x3) * 7;
        server.receive(Instant(now), conn, chunk);
        if control & 0x80 != 0 {
            server.handle_timeout(Instant(now));
        }
        assert!(
            server.buffered_bytes(conn) <= 2 * limit,
            "unbounded input buffer"
        );
        while let Some(output) = server.poll_output() {
            if let Output::Close { conn } = output {
                server.disconnect(Instant(now), conn);
            }
        }
        rest = tail;
    }
    // A well-behaved client beside the noise is still served.
    let good = server.connect(Instant(now));
    server.receive(Instant(now), good, b"PING\r\n");
    let mut answered = false;
    while let Some(output) = server.poll_output() {
        if let Output::Transmit { conn, bytes } = output {
            answered |= conn == good && bytes == b"+PONG\r\n";
        }
    }
    assert!(
        answered || server.connections() >= 10_000,
        "a fresh client was not served"
    );
});
