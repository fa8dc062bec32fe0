//! Parse + execute + encode through the sans-IO server for pipelined ACQUIRE/RELEASE.
//! Criterion reports the time per batch of `COMMANDS` requests and the throughput in
//! commands per second; the target is at most 300 ns per command.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fencelock_core::protocol::{Output, ParserLimits, RequestParser, Server, ServerConfig, Step};
use fencelock_core::{Config, Engine, Instant};

/// Requests per batch: half ACQUIRE, half RELEASE.
const COMMANDS: usize = 1000;
/// Distinct lock names the batch cycles through.
const NAMES: usize = 100;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("protocol");
    group.throughput(Throughput::Elements(COMMANDS as u64));

    group.bench_function("pipelined_acquire_release_resp", |b| {
        let mut server = Server::new(Engine::new(Config::default()), ServerConfig::default());
        let conn = server.connect(Instant(0));
        let mut next_token = 1;
        b.iter_batched(
            || batch(&mut next_token, resp_pair),
            |bytes| {
                server.receive(Instant(1), conn, &bytes);
                drain(&mut server)
            },
            BatchSize::SmallInput,
        );
    });

    group.bench_function("pipelined_acquire_release_inline", |b| {
        let mut server = Server::new(Engine::new(Config::default()), ServerConfig::default());
        let conn = server.connect(Instant(0));
        let mut next_token = 1;
        b.iter_batched(
            || batch(&mut next_token, inline_pair),
            |bytes| {
                server.receive(Instant(1), conn, &bytes);
                drain(&mut server)
            },
            BatchSize::SmallInput,
        );
    });

    group.bench_function("execute_acquire_release", |b| {
        let mut server = Server::new(Engine::new(Config::default()), ServerConfig::default());
        let conn = server.connect(Instant(0));
        let names: Vec<String> = (0..NAMES).map(|i| format!("lock:{i}")).collect();
        let mut next_token = 1u64;
        b.iter(|| {
            for pair in 0..COMMANDS / 2 {
                let name = names[pair % NAMES].as_bytes();
                server.execute(Instant(1), conn, &[b"ACQUIRE", name, b"30000"]);
                let token = next_token.to_string();
                next_token += 1;
                server.execute(Instant(1), conn, &[b"RELEASE", name, token.as_bytes()]);
            }
            drain(&mut server)
        });
    });

    group.bench_function("parse_only_resp", |b| {
        let mut next_token = 1;
        let bytes = batch(&mut next_token, resp_pair);
        let mut parser = RequestParser::new(ParserLimits::default());
        b.iter(|| {
            let mut rest = bytes.as_slice();
            let mut count = 0;
            while let Ok(Step::Complete(consumed)) = parser.feed(rest) {
                count += parser.args().len();
                rest = &rest[consumed..];
            }
            black_box(count)
        });
    });
    group.finish();
}

/// Builds one pipelined batch whose RELEASEs name the tokens the ACQUIREs will get.
fn batch(next_token: &mut u64, pair: fn(&mut Vec<u8>, &str, u64)) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(COMMANDS * 48);
    for index in 0..COMMANDS / 2 {
        pair(&mut bytes, &format!("lock:{}", index % NAMES), *next_token);
        *next_token += 1;
    }
    bytes
}

fn resp_pair(out: &mut Vec<u8>, name: &str, token: u64) {
    let token = token.to_string();
    let arg = |out: &mut Vec<u8>, arg: &str| {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    };
    out.extend_from_slice(b"*3\r\n");
    arg(out, "ACQUIRE");
    arg(out, name);
    arg(out, "30000");
    out.extend_from_slice(b"*3\r\n");
    arg(out, "RELEASE");
    arg(out, name);
    arg(out, &token);
}

fn inline_pair(out: &mut Vec<u8>, name: &str, token: u64) {
    out.extend_from_slice(format!("ACQUIRE {name} 30000\r\nRELEASE {name} {token}\r\n").as_bytes());
}

/// Takes every output, checking the replies look right so the benchmark cannot measure errors.
fn drain(server: &mut Server) -> usize {
    let mut total = 0;
    while let Some(output) = server.poll_output() {
        if let Output::Transmit { bytes, .. } = output {
            assert_ne!(
                bytes.first(),
                Some(&b'-'),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
            total += bytes.len();
        }
    }
    total
}

criterion_group!(benches, bench);
criterion_main!(benches);
