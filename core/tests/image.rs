//! Property test of the exact engine image: an engine restored from another's image (through
//! its JSON encoding, under another hash seed) and then given the same inputs must give the
//! same results, events, token ceilings and image as the original, step by step.
#![allow(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use fencelock_core::{AcquireOptions, Config, Engine, EngineImage, HashSeed, Instant, Mode};
use proptest::prelude::*;

const NAMES: [&str; 3] = ["a", "b", "c"];

#[derive(Debug, Clone)]
enum Op {
    Acquire {
        name: usize,
        ttl: u64,
        wait: u64,
        shared: bool,
        steal: bool,
        client: u64,
        ephemeral: bool,
        owner: bool,
        lock_delay: Option<u64>,
    },
    Renew {
        name: usize,
        back: u64,
        ttl: u64,
    },
    Release {
        name: usize,
        back: u64,
    },
    Verify {
        name: usize,
        back: u64,
    },
    Cancel {
        back: u64,
    },
    Disconnect {
        client: u64,
    },
    Orphan {
        client: u64,
    },
    Query,
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    let acquire = (
        (0..3usize, 1..60u64, prop_oneof![Just(0u64), 1..80u64]),
        (
            any::<bool>(),
            prop::bool::weighted(0.08),
            1..4u64,
            any::<bool>(),
        ),
        (
            any::<bool>(),
            prop_oneof![Just(None), (0..30u64).prop_map(Some)],
        ),
    )
        .prop_map(
            |((name, ttl, wait), (shared, steal, client, ephemeral), (owner, lock_delay))| {
                Op::Acquire {
                    name,
                    ttl,
                    wait: if steal { 0 } else { wait },
                    shared,
                    steal,
                    client,
                    ephemeral,
                    owner,
                    lock_delay,
                }
            },
        );
    prop_oneof![
        6 => acquire,
        2 => (0..3usize, 0..4u64, 1..60u64).prop_map(|(name, back, ttl)| Op::Renew { name, back, ttl }),
        3 => (0..3usize, 0..4u64).prop_map(|(name, back)| Op::Release { name, back }),
        1 => (0..3usize, 0..6u64).prop_map(|(name, back)| Op::Verify { name, back }),
        1 => (0..4u64).prop_map(|back| Op::Cancel { back }),
        1 => (1..4u64).prop_map(|client| Op::Disconnect { client }),
        1 => (1..4u64).prop_map(|client| Op::Orphan { client }),
        1 => Just(Op::Query),
        1 => Just(Op::Tick),
    ]
}

fn config(lock_delay: u64, seed: u8) -> Config {
    let mut config = Config::default();
    config.max_ttl_ms = 100;
    config.lock_delay_ms = lock_delay;
    config.token_block = 7;
    config.expired_memory = 5;
    config.hash_seed = HashSeed::from_bytes([seed; 16]);
    config
}

/// Applies one input and returns its result and every output it produced, as text.
fn apply(engine: &mut Engine, now: u64, op: &Op, last_token: u64, last_waiter: u64) -> String {
    let t = Instant(now);
    let result = match op {
        Op::Acquire {
            name,
            ttl,
            wait,
            shared,
            steal,
            client,
            ephemeral,
            owner,
            lock_delay,
        } => {
            let mut options = AcquireOptions::default();
            options.mode = if *shared {
                Mode::Shared
            } else {
                Mode::Exclusive
            };
            options.wait_ms = *wait;
            options.owner = owner.then(|| format!("owner{client}"));
            options.steal = *steal;
            options.client = *client;
            options.ephemeral = *ephemeral;
            options.lock_delay_ms = *lock_delay;
            format!("{:?}", engine.acquire(t, NAMES[*name], *ttl, &options))
        }
        Op::Renew { name, back, ttl } => {
            let token = last_token.saturating_sub(*back);
            format!("{:?}", engine.renew(t, NAMES[*name], token, *ttl))
        }
        Op::Release { name, back } => {
            let token = last_token.saturating_sub(*back);
            format!("{:?}", engine.release(t, NAMES[*name], token))
        }
        Op::Verify { name, back } => {
            let token = last_token.saturating_sub(*back);
            format!("{:?}", engine.verify(t, NAMES[*name], token))
        }
        Op::Cancel { back } => {
            format!(
                "{:?}",
                engine.cancel_wait(t, last_waiter.saturating_sub(*back))
            )
        }
        Op::Disconnect { client } => {
            engine.disconnect(t, *client);
            String::new()
        }
        Op::Orphan { client } => {
            engine.orphan(t, *client);
            String::new()
        }
        Op::Query => format!("{:?}", engine.query(t, "")),
        Op::Tick => {
            engine.handle_timeout(t);
            String::new()
        }
    };
    let mut out = result;
    while let Some(event) = engine.poll_event() {
        out.push_str(&format!(" {event:?}"));
    }
    while let Some(ceiling) = engine.poll_persist() {
        out.push_str(&format!(" ceiling {ceiling}"));
    }
    out.push_str(&format!(
        " next {:?} stats {:?}",
        engine.poll_timeout(),
        engine.stats()
    ));
    out
}

/// Restores a copy of `original` through the JSON encoding of its image.
fn restore(config: Config, original: &Engine) -> Engine {
    let bytes = original.image().encode();
    let image = EngineImage::decode(&bytes).expect("an image decodes");
    assert_eq!(image, original.image(), "the encoding is lossless");
    let restored = Engine::from_image(config, &image).expect("an engine's own image restores");
    restored
        .check_invariants()
        .expect("invariants after restore");
    restored
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(500), ..ProptestConfig::default() })]
    #[test]
    fn a_restored_image_behaves_exactly_as_the_original(
        lock_delay in prop_oneof![Just(0u64), 5..30u64],
        steps in prop::collection::vec((0..25u64, op(), prop::bool::weighted(0.15)), 1..120),
    ) {
        let mut original = Engine::new(config(lock_delay, 1));
        // Another node: another secret hash seed, the same settings.
        let mut copy: Option<Engine> = None;
        let mut now = 0u64;
        let mut last_waiter = 0u64;
        for (dt, op, restore_here) in steps {
            now += dt;
            if restore_here {
                copy = Some(restore(config(lock_delay, 2), &original));
            }
            let last_token = original.last_token();
            let want = apply(&mut original, now, &op, last_token, last_waiter);
            if let Some(copy) = copy.as_mut() {
                prop_assert_eq!(copy.last_token(), last_token);
                let got = apply(copy, now, &op, last_token, last_waiter);
                prop_assert_eq!(&got, &want, "{:?} at {}", op, now);
                prop_assert_eq!(copy.image(), original.image(), "after {:?} at {}", op, now);
                copy.check_invariants().map_err(TestCaseError::fail)?;
            }
            if let Some(queued) = want.strip_prefix("Ok(Queued { waiter: ") {
                last_waiter = queued.split(',').next().unwrap().parse().unwrap();
            }
        }
    }
}

#[test]
fn an_image_of_another_version_or_an_impossible_state_is_refused() {
    let mut engine = Engine::new(config(0, 1));
    let mut options = AcquireOptions::default();
    options.wait_ms = 50;
    options.client = 3;
    engine.acquire(Instant(10), "a", 40, &options).unwrap();
    engine.acquire(Instant(10), "a", 40, &options).unwrap();
    let json = String::from_utf8(engine.image().encode()).unwrap();
    let refused = |text: &str| {
        let image = EngineImage::decode(text.as_bytes()).expect("decodes");
        Engine::from_image(config(0, 1), &image).expect_err(text)
    };
    refused(&json.replace("\"version\":1", "\"version\":2"));
    // The lease's token is not below the next token.
    refused(&json.replace("\"next_token\":2", "\"next_token\":1"));
    // The wait and the lease are over already.
    refused(&json.replace("\"now\":10", "\"now\":100"));
    // The waiter id was never handed out.
    refused(&json.replace("\"next_waiter\":2", "\"next_waiter\":1"));
    assert!(EngineImage::decode(b"{\"version\":1}").is_err());
    let image = EngineImage::decode(json.as_bytes()).unwrap();
    let restored = Engine::from_image(config(0, 1), &image).unwrap();
    assert_eq!(restored.waiting(), 1);
    assert_eq!(restored.live_leases(), 1);
    assert_eq!(restored.clients(), vec![3]);
}

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}
