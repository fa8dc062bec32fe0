//! The client side of one lock cycle through the sans-IO client: encode ACQUIRE, decode and
//! type its reply (tracking the lease), encode RELEASE, decode its reply. The target is at
//! most 300 ns per cycle; the server side is measured in the protocol bench.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fencelock_core::client::{Client, ClientConfig, Output, Reply};
use fencelock_core::{AcquireOptions, Instant};

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("client");
    group.throughput(Throughput::Elements(1));
    group.bench_function("acquire_release_cycle", |b| {
        let mut config = ClientConfig::default();
        config.resp3 = false;
        let mut client = Client::new(config);
        // Open the shared connection once, as a long-lived client has it.
        client.ping(Instant(0));
        let Some(Output::Connect { conn, .. }) = client.poll_output() else {
            panic!()
        };
        client.handle_connected(Instant(0), conn);
        while client.poll_output().is_some() {}
        client.receive(Instant(0), conn, b"+PONG\r\n");
        assert!(client.poll_reply().unwrap().1.is_ok());
        let options = AcquireOptions::default();
        b.iter(|| {
            client
                .acquire(Instant(1), "jobs/report", 10_000, &options)
                .unwrap();
            let Some(Output::Transmit { bytes, .. }) = client.poll_output() else {
                panic!()
            };
            black_box(bytes);
            // The lease is released before the next grant, so one token can come back each time.
            client.receive(Instant(2), conn, b":12345\r\n");
            let Some((_, Ok(Reply::Granted { token: got, .. }))) = client.poll_reply() else {
                panic!()
            };
            client.release(Instant(3), "jobs/report", got).unwrap();
            let Some(Output::Transmit { bytes, .. }) = client.poll_output() else {
                panic!()
            };
            black_box(bytes);
            client.receive(Instant(4), conn, b"+OK\r\n");
            assert!(black_box(client.poll_reply()).unwrap().1.is_ok());
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
