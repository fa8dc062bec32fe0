//! Engine benchmarks: uncontended acquire+release, renew, verify, fence checks, and
//! acquire+release beside 1,000,000 other live leases; plus memory per live lease.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};

use criterion::{criterion_group, criterion_main, Criterion};
use fencelock_core::{AcquireOptions, Acquired, Config, Engine, Fence, FenceMark, Instant};

/// Counts live heap bytes so the memory cost of a lease is measured, not guessed.
struct CountingAlloc;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// The library forbids `unsafe`; a GlobalAlloc impl needs it, so it lives only in this bench
// binary, and each method only delegates to the system allocator with the same arguments.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

const MANY: usize = 1_000_000;

fn big_config() -> Config {
    let mut config = Config::default();
    config.max_locks = 2 * MANY;
    config
}

fn acquire_release(engine: &mut Engine, now: Instant, name: &str, options: &AcquireOptions) {
    let Ok(Acquired::Granted { token, .. }) = engine.acquire(now, name, 30_000, options) else {
        panic!("uncontended acquire must be granted")
    };
    engine.release(now, name, token).unwrap();
    let _ = engine.poll_persist();
}

fn engine_benches(c: &mut Criterion) {
    let options = AcquireOptions::default();
    let now = Instant(1_000);

    let mut engine = Engine::new(Config::default());
    c.bench_function("acquire+release (uncontended)", |b| {
        b.iter(|| acquire_release(&mut engine, now, black_box("orders/42"), &options));
    });

    let mut engine = Engine::new(Config::default());
    let Ok(Acquired::Granted { token, .. }) = engine.acquire(now, "held", 30_000, &options) else {
        panic!("grant")
    };
    c.bench_function("renew", |b| {
        b.iter(|| {
            engine
                .renew(now, black_box("held"), black_box(token), 30_000)
                .unwrap()
        });
    });
    c.bench_function("verify", |b| {
        b.iter(|| {
            engine
                .verify(now, black_box("held"), black_box(token))
                .unwrap()
        });
    });

    let mark = FenceMark::new(0);
    let mut next = 1u64;
    c.bench_function("fence mark check (atomic)", |b| {
        b.iter(|| {
            next += 1;
            mark.check(black_box(next))
        });
    });
    let mut fence = Fence::new();
    let mut next = 1u64;
    c.bench_function("fence check (keyed)", |b| {
        b.iter(|| {
            next += 1;
            fence.check(black_box("accounts"), black_box(next))
        });
    });

    let names: Vec<String> = (0..MANY).map(|i| format!("lease-{i:07}")).collect();
    let name_bytes: usize = names.iter().map(String::len).sum();
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let mut engine = Engine::new(big_config());
    for name in &names {
        engine.acquire(now, name, 300_000, &options).unwrap();
    }
    let after = LIVE_BYTES.load(Ordering::Relaxed);
    let per_lease = (after - before) as f64 / MANY as f64;
    let per_name = name_bytes as f64 / MANY as f64;
    println!(
        "memory: {per_lease:.1} bytes per live lease including its {per_name:.1}-byte name \
         ({:.1} bytes plus the name)",
        per_lease - per_name
    );
    c.bench_function("acquire+release beside 1M live leases", |b| {
        b.iter(|| acquire_release(&mut engine, now, black_box("orders/42"), &options));
    });
    assert_eq!(engine.live_leases(), MANY);
}

criterion_group!(benches, engine_benches);
criterion_main!(benches);
