//! Engine benchmarks: uncontended acquire+release, renew, verify, fence checks, and
//! acquire+release beside 1,000,000 other live leases; plus memory per live lease; plus
//! `adversarial`: lock names crafted to collide in the name index under a known hash seed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hash::BuildHasher;
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};

use criterion::{criterion_group, criterion_main, Criterion};
use fencelock_core::{
    AcquireOptions, Acquired, Config, Engine, Fence, FenceMark, HashSeed, Instant,
};
use siphasher::sip::SipHasher13;

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

/// Live locks whose names collide under the known seed.
const COLLIDING: usize = 2_000;
/// Names acquired and released in turn by the benchmark, colliding like the live ones.
const PROBES: usize = 16;
/// Low hash bits the crafted names share: the name index has at most 2^14 buckets at this
/// size, so every crafted name lands in the same bucket and probes past all the others.
const SHARED_LOW_BITS: u32 = 14;

/// The seed an attacker knows: here the public default, as a host that forgot to inject one.
const KNOWN_SEED: [u8; 16] = [0; 16];

/// Finds names whose keyed hash under `seed` agrees in the low bits the index uses, as an
/// attacker who knows the seed would (the engine hashes a name's bytes with SipHash-1-3).
fn crafted_names(seed: [u8; 16], count: usize) -> Vec<String> {
    let hasher = SipHasher13::new_with_key(&seed);
    let mask = (1u64 << SHARED_LOW_BITS) - 1;
    let target = hasher.hash(b"evil-0") & mask;
    (0u64..)
        .map(|i| format!("evil-{i}"))
        .filter(|name| hasher.hash(name.as_bytes()) & mask == target)
        .take(count)
        .collect()
}

/// 16 bytes from the standard library's per-process random keys, as a host would inject.
fn secret_seed() -> [u8; 16] {
    let state = std::collections::hash_map::RandomState::new();
    let mut seed = [0u8; 16];
    seed[..8].copy_from_slice(&state.hash_one(1u8).to_le_bytes());
    seed[8..].copy_from_slice(&state.hash_one(2u8).to_le_bytes());
    seed
}

/// An engine holding a lease on each of `live` under `seed`.
fn engine_holding(seed: [u8; 16], live: &[String]) -> Engine {
    let mut config = Config::default();
    config.hash_seed = HashSeed::from_bytes(seed);
    let mut engine = Engine::new(config);
    for name in live {
        engine
            .acquire(Instant(1_000), name, 300_000, &AcquireOptions::default())
            .unwrap();
    }
    engine
}

fn adversarial_benches(c: &mut Criterion) {
    let options = AcquireOptions::default();
    let now = Instant(1_000);
    let crafted = crafted_names(KNOWN_SEED, COLLIDING + PROBES);
    let (live, probes) = crafted.split_at(COLLIDING);
    let ordinary: Vec<String> = (0..COLLIDING + PROBES)
        .map(|i| format!("lock-{i}"))
        .collect();
    let (ordinary_live, ordinary_probes) = ordinary.split_at(COLLIDING);
    let cases = [
        ("crafted names, known seed", KNOWN_SEED, live, probes),
        ("crafted names, secret seed", secret_seed(), live, probes),
        (
            "ordinary names, known seed",
            KNOWN_SEED,
            ordinary_live,
            ordinary_probes,
        ),
    ];
    let mut group = c.benchmark_group("adversarial");
    for (case, seed, live, probes) in cases {
        let mut engine = engine_holding(seed, live);
        let mut next = probes.iter().cycle();
        group.bench_function(case, |b| {
            b.iter(|| {
                let name = next.next().unwrap();
                acquire_release(&mut engine, now, black_box(name), &options);
            });
        });
        assert_eq!(engine.live_leases(), COLLIDING);
    }
    group.finish();
}

criterion_group!(benches, engine_benches, adversarial_benches);
criterion_main!(benches);
