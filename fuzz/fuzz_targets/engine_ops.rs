//! Arbitrary operation sequences on simulated time into the engine: it must never panic, every
//! invariant (I1-I5) must hold after every step, and tokens must only ever rise (I2).
#![no_main]

use fencelock_core::{AcquireOptions, Acquired, Config, Engine, Event, Instant, Mode};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

fuzz_target!(|data: &[u8]| {
    let mut config = Config::default();
    config.max_ttl_ms = 200;
    config.max_wait_ms = 200;
    config.lock_delay_ms = u64::from(data.first().copied().unwrap_or(0) % 3) * 10;
    config.token_block = 5;
    config.max_waiters_per_lock = 4;
    config.max_holders_per_lock = 3;
    let mut engine = Engine::new(config);
    let mut now = 0u64;
    let mut highest = 0u64;
    for op in data.chunks_exact(4) {
        let [kind, a, b, c] = [op[0], op[1], op[2], op[3]];
        now += u64::from(c % 16);
        let t = Instant(now);
        let name = NAMES[usize::from(a % 4)];
        let token = highest.saturating_sub(u64::from(b % 4));
        let mut granted = None;
        match kind % 8 {
            0 | 1 => {
                let mut options = AcquireOptions::default();
                options.mode = if a & 0x10 != 0 {
                    Mode::Shared
                } else {
                    Mode::Exclusive
                };
                options.wait_ms = if a & 0x20 != 0 { u64::from(b) } else { 0 };
                options.steal = a & 0x40 != 0 && a & 0x20 == 0;
                options.client = u64::from(b % 3) + 1;
                options.ephemeral = a & 0x80 != 0;
                options.lock_delay_ms = (c & 0x80 != 0).then_some(u64::from(c % 50));
                options.owner = None;
                if let Ok(Acquired::Granted { token, .. }) =
                    engine.acquire(t, name, u64::from(b) + 1, &options)
                {
                    granted = Some(token);
                }
            }
            2 => drop(engine.renew(t, name, token, u64::from(c) + 1)),
            3 => drop(engine.release(t, name, token)),
            4 => drop(engine.verify(t, name, token)),
            5 => drop(engine.cancel_wait(t, u64::from(b % 16))),
            6 => engine.disconnect(t, u64::from(b % 3) + 1),
            _ => engine.handle_timeout(t),
        }
        let mut step_tokens: Vec<u64> = granted.into_iter().collect();
        while let Some(event) = engine.poll_event() {
            if let Event::Granted { token, .. } = event {
                step_tokens.push(token);
            }
        }
        step_tokens.sort_unstable();
        for token in step_tokens {
            assert!(token > highest, "I2: token {token} after {highest}");
            highest = token;
        }
        while engine.poll_persist().is_some() {}
        if let Err(broken) = engine.check_invariants() {
            panic!("{broken}");
        }
    }
});
