//! Property test: random operations on random time steps, run against the engine and against a
//! deliberately naive reference model; results and events must agree exactly, and the
//! invariants I1-I5 must hold after every step.
#![allow(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use fencelock_core::{AcquireOptions, Acquired, Config, Engine, Error, Event, Instant, Mode};
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
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..3usize, 1..60u64, prop_oneof![Just(0u64), 1..80u64], any::<bool>(), prop::bool::weighted(0.08), 1..4u64, any::<bool>())
            .prop_map(|(name, ttl, wait, shared, steal, client, ephemeral)| Op::Acquire {
                name, ttl, wait: if steal { 0 } else { wait }, shared, steal, client, ephemeral }),
        2 => (0..3usize, 0..4u64, 1..60u64).prop_map(|(name, back, ttl)| Op::Renew { name, back, ttl }),
        3 => (0..3usize, 0..4u64).prop_map(|(name, back)| Op::Release { name, back }),
        1 => (0..3usize, 0..4u64).prop_map(|(name, back)| Op::Verify { name, back }),
        1 => (0..4u64).prop_map(|back| Op::Cancel { back }),
        1 => (1..4u64).prop_map(|client| Op::Disconnect { client }),
        1 => Just(Op::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(1000), ..ProptestConfig::default() })]
    #[test]
    fn engine_matches_reference_model(
        lock_delay in prop_oneof![Just(0u64), 5..30u64],
        steps in prop::collection::vec((0..25u64, op()), 1..120),
    ) {
        let mut config = Config::default();
        config.max_ttl_ms = 100;
        config.lock_delay_ms = lock_delay;
        config.token_block = 7;
        let mut engine = Engine::new(config);
        let mut model = Model { lock_delay, ..Model::default() };
        let mut now = 0u64;
        let mut highest = 0u64;
        for (dt, op) in steps {
            now += dt;
            let t = Instant(now);
            let (got, want) = match &op {
                Op::Acquire { name, ttl, wait, shared, steal, client, ephemeral } => {
                    let mut options = AcquireOptions::default();
                    options.mode = if *shared { Mode::Shared } else { Mode::Exclusive };
                    options.wait_ms = *wait;
                    options.owner = None;
                    options.steal = *steal;
                    options.client = *client;
                    options.ephemeral = *ephemeral;
                    options.lock_delay_ms = None;
                    let got = match engine.acquire(t, NAMES[*name], *ttl, &options) {
                        Ok(Acquired::Granted { token, deadline }) => format!("granted {token} {deadline:?}"),
                        Ok(Acquired::Queued { waiter, deadline }) => format!("queued {waiter} {deadline:?}"),
                        Ok(other) => format!("unknown {other:?}"),
                        Err(e) => code(&e),
                    };
                    (got, model.acquire(now, *name, *ttl, *wait, *shared, *steal, *client, *ephemeral))
                }
                Op::Renew { name, back, ttl } => {
                    let token = model.next_token.saturating_sub(1 + back);
                    let got = engine.renew(t, NAMES[*name], token, *ttl).map_or_else(|e| code(&e), |ms| ms.to_string());
                    (got, model.renew(now, *name, token, *ttl))
                }
                Op::Release { name, back } => {
                    let token = model.next_token.saturating_sub(1 + back);
                    let got = engine.release(t, NAMES[*name], token).map_or_else(|e| code(&e), |()| "ok".into());
                    (got, model.release(now, *name, token))
                }
                Op::Verify { name, back } => {
                    let token = model.next_token.saturating_sub(1 + back);
                    let got = engine.verify(t, NAMES[*name], token).map_or_else(|e| code(&e), |ms| ms.to_string());
                    (got, model.verify(now, *name, token))
                }
                Op::Cancel { back } => {
                    let waiter = model.next_waiter.saturating_sub(1 + back);
                    (engine.cancel_wait(t, waiter).to_string(), model.cancel(now, waiter).to_string())
                }
                Op::Disconnect { client } => {
                    engine.disconnect(t, *client);
                    model.disconnect(now, *client);
                    (String::new(), String::new())
                }
                Op::Tick => {
                    engine.handle_timeout(t);
                    model.advance(now);
                    (String::new(), String::new())
                }
            };
            prop_assert_eq!(&got, &want, "result of {:?} at {}", op, now);
            // I2: every token handed out in this step (reply or grant events, in either order)
            // is above every token of earlier steps, and none repeats.
            let mut step_tokens = Vec::new();
            if let Some(token) = got.strip_prefix("granted ").and_then(|rest| rest.split(' ').next()) {
                step_tokens.push(token.parse::<u64>().unwrap());
            }
            let mut events = Vec::new();
            while let Some(event) = engine.poll_event() {
                if let Event::Granted { token, .. } = event {
                    step_tokens.push(token);
                }
                events.push(event_text(&event));
            }
            step_tokens.sort_unstable();
            for pair in step_tokens.windows(2) {
                prop_assert!(pair[0] < pair[1], "I2: token {} repeated", pair[0]);
            }
            if let Some(&first) = step_tokens.first() {
                prop_assert!(first > highest, "I2: token {} not above {}", first, highest);
                highest = *step_tokens.last().unwrap();
            }
            let want_events: Vec<String> = model.events.drain(..).collect();
            prop_assert_eq!(events, want_events, "events after {:?} at {}", op, now);
            if let Err(broken) = engine.check_invariants() {
                prop_assert!(false, "{}", broken);
            }
            // I1 through the public view.
            let mut queried = Vec::new();
            for lock in engine.query(t, "") {
                let exclusive = lock.holders.iter().filter(|h| h.mode == Mode::Exclusive).count();
                prop_assert!(exclusive == 0 || lock.holders.len() == 1, "I1 on {}", lock.name);
                for h in &lock.holders {
                    let owner = h.owner.clone();
                    queried.push((lock.name.clone(), h.token, h.mode, h.ms_left, owner, h.client));
                }
            }
            // `leases` shows the same leases as the query that just ran the clock to `t`.
            let mut listed: Vec<_> = engine
                .leases()
                .map(|l| {
                    let left = l.deadline.as_ms().saturating_sub(t.as_ms());
                    let owner = l.owner.map(String::from);
                    (String::from(l.name), l.token, l.mode, left, owner, l.client)
                })
                .collect();
            listed.sort_by_key(|l| l.1);
            queried.sort_by_key(|l| l.1);
            prop_assert_eq!(listed, queried);
            while engine.poll_persist().is_some() {}
        }
    }
}

fn code(error: &Error) -> String {
    error.code().as_str().to_string()
}

fn event_text(event: &Event) -> String {
    match event {
        Event::Granted {
            name,
            token,
            waiter,
            client,
            deadline,
        } => {
            format!("granted {name} {token} w{waiter} c{client} {deadline:?}")
        }
        Event::WaitTimedOut {
            name,
            waiter,
            client,
            waited_ms,
        } => {
            format!("timeout {name} w{waiter} c{client} {waited_ms}")
        }
        Event::Expired {
            name,
            token,
            client,
            ..
        } => format!("expired {name} {token} c{client}"),
        Event::Stolen {
            name,
            token,
            client,
            by_token,
            ..
        } => {
            format!("stolen {name} {token} c{client} by {by_token}")
        }
        other => format!("unknown {other:?}"),
    }
}

// ---- the reference model: plain vectors, linear scans, no indexes ----

#[derive(Debug, Clone)]
struct MLease {
    token: u64,
    deadline: u64,
    shared: bool,
    client: u64,
    ephemeral: bool,
}

#[derive(Debug, Clone)]
struct MWaiter {
    id: u64,
    ttl: u64,
    deadline: u64,
    since: u64,
    shared: bool,
    client: u64,
    ephemeral: bool,
}

#[derive(Debug, Default, Clone)]
struct MLock {
    holders: Vec<MLease>,
    waiters: Vec<MWaiter>,
    delay_until: u64,
    delay_token: u64,
}

#[derive(Debug)]
struct Model {
    locks: [MLock; 3],
    now: u64,
    next_token: u64,
    next_waiter: u64,
    lock_delay: u64,
    expired: Vec<(u64, usize)>,
    events: Vec<String>,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            locks: Default::default(),
            now: 0,
            next_token: 1,
            next_waiter: 1,
            lock_delay: 0,
            expired: vec![],
            events: vec![],
        }
    }
}

impl Model {
    fn advance(&mut self, now: u64) -> u64 {
        self.now = self.now.max(now);
        loop {
            // Earliest due item by (time, kind: lease 0 < delay 1 < wait 2, id).
            let mut best: Option<(u64, u8, u64, usize)> = None;
            for (l, lock) in self.locks.iter().enumerate() {
                for h in &lock.holders {
                    best = best.min_by_due((h.deadline, 0, h.token, l));
                }
                if lock.delay_until > 0 {
                    best = best.min_by_due((lock.delay_until, 1, lock.delay_token, l));
                }
                for w in &lock.waiters {
                    best = best.min_by_due((w.deadline, 2, w.id, l));
                }
            }
            let Some((at, kind, id, l)) = best else { break };
            if at > self.now {
                break;
            }
            match kind {
                0 => {
                    let lock = &mut self.locks[l];
                    let i = lock.holders.iter().position(|h| h.token == id).unwrap();
                    let lease = lock.holders.remove(i);
                    let until = at + self.lock_delay;
                    if until > self.now && until > lock.delay_until {
                        lock.delay_until = until;
                        lock.delay_token = id;
                    }
                    self.expired.push((id, l));
                    self.events
                        .push(format!("expired {} {} c{}", NAMES[l], id, lease.client));
                }
                1 => {
                    self.locks[l].delay_until = 0;
                    self.locks[l].delay_token = 0;
                }
                _ => {
                    let lock = &mut self.locks[l];
                    let i = lock.waiters.iter().position(|w| w.id == id).unwrap();
                    let w = lock.waiters.remove(i);
                    self.events.push(format!(
                        "timeout {} w{} c{} {}",
                        NAMES[l],
                        id,
                        w.client,
                        self.now - w.since
                    ));
                }
            }
            self.grant(l);
        }
        self.now
    }

    fn admits(lock: &MLock, shared: bool) -> bool {
        if shared {
            lock.holders.iter().all(|h| h.shared)
        } else {
            lock.holders.is_empty()
        }
    }

    fn grant(&mut self, l: usize) {
        loop {
            let now = self.now;
            let lock = &mut self.locks[l];
            if lock.delay_until > now {
                return;
            }
            let Some(head) = lock.waiters.first() else {
                return;
            };
            if !Self::admits(lock, head.shared) {
                return;
            }
            let w = lock.waiters.remove(0);
            let token = self.next_token;
            self.next_token += 1;
            lock.holders.push(MLease {
                token,
                deadline: now + w.ttl,
                shared: w.shared,
                client: w.client,
                ephemeral: w.ephemeral,
            });
            self.events.push(format!(
                "granted {} {} w{} c{} {}ms",
                NAMES[l],
                token,
                w.id,
                w.client,
                now + w.ttl
            ));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn acquire(
        &mut self,
        now: u64,
        l: usize,
        ttl: u64,
        wait: u64,
        shared: bool,
        steal: bool,
        client: u64,
        ephemeral: bool,
    ) -> String {
        let now = self.advance(now);
        let lock = &mut self.locks[l];
        if steal {
            let token = self.next_token;
            self.next_token += 1;
            for h in lock.holders.drain(..) {
                self.events.push(format!(
                    "stolen {} {} c{} by {}",
                    NAMES[l], h.token, h.client, token
                ));
            }
            lock.delay_until = 0;
            lock.delay_token = 0;
            lock.holders.push(MLease {
                token,
                deadline: now + ttl,
                shared,
                client,
                ephemeral,
            });
            self.grant(l);
            return format!("granted {token} {}ms", now + ttl);
        }
        if lock.delay_until <= now && lock.waiters.is_empty() && Self::admits(lock, shared) {
            let token = self.next_token;
            self.next_token += 1;
            lock.holders.push(MLease {
                token,
                deadline: now + ttl,
                shared,
                client,
                ephemeral,
            });
            return format!("granted {token} {}ms", now + ttl);
        }
        if wait == 0 {
            return "LOCKED".into();
        }
        let id = self.next_waiter;
        self.next_waiter += 1;
        lock.waiters.push(MWaiter {
            id,
            ttl,
            deadline: now + wait,
            since: now,
            shared,
            client,
            ephemeral,
        });
        format!("queued {id} {}ms", now + wait)
    }

    fn rejection(&self, l: usize, token: u64) -> String {
        if self.expired.contains(&(token, l)) {
            "EXPIRED".into()
        } else {
            "STALE".into()
        }
    }

    fn renew(&mut self, now: u64, l: usize, token: u64, ttl: u64) -> String {
        let now = self.advance(now);
        match self.locks[l].holders.iter_mut().find(|h| h.token == token) {
            Some(h) => {
                h.deadline = now + ttl;
                ttl.to_string()
            }
            None => self.rejection(l, token),
        }
    }

    fn release(&mut self, now: u64, l: usize, token: u64) -> String {
        self.advance(now);
        match self.locks[l].holders.iter().position(|h| h.token == token) {
            Some(i) => {
                self.locks[l].holders.remove(i);
                self.grant(l);
                "ok".into()
            }
            None => self.rejection(l, token),
        }
    }

    fn verify(&mut self, now: u64, l: usize, token: u64) -> String {
        let now = self.advance(now);
        match self.locks[l].holders.iter().find(|h| h.token == token) {
            Some(h) => (h.deadline - now).to_string(),
            None => self.rejection(l, token),
        }
    }

    fn cancel(&mut self, now: u64, waiter: u64) -> bool {
        self.advance(now);
        for l in 0..3 {
            if let Some(i) = self.locks[l].waiters.iter().position(|w| w.id == waiter) {
                self.locks[l].waiters.remove(i);
                self.grant(l);
                return true;
            }
        }
        false
    }

    fn disconnect(&mut self, now: u64, client: u64) {
        self.advance(now);
        // Locks are served in the order of the client's ephemeral leases (by token), then of
        // its waits (by waiter id), so grants on several locks come out in a defined order.
        let mut leases: Vec<(u64, usize)> = Vec::new();
        let mut waits: Vec<(u64, usize)> = Vec::new();
        for l in 0..3 {
            for h in &self.locks[l].holders {
                if h.ephemeral && h.client == client {
                    leases.push((h.token, l));
                }
            }
            for w in &self.locks[l].waiters {
                if w.client == client {
                    waits.push((w.id, l));
                }
            }
            self.locks[l]
                .holders
                .retain(|h| !(h.ephemeral && h.client == client));
            self.locks[l].waiters.retain(|w| w.client != client);
        }
        leases.sort_unstable();
        waits.sort_unstable();
        for (_, l) in leases.into_iter().chain(waits) {
            self.grant(l);
        }
    }
}

trait MinByDue {
    fn min_by_due(self, other: (u64, u8, u64, usize)) -> Self;
}

impl MinByDue for Option<(u64, u8, u64, usize)> {
    fn min_by_due(self, other: (u64, u8, u64, usize)) -> Self {
        match self {
            Some(best) if (best.0, best.1, best.2) <= (other.0, other.1, other.2) => Some(best),
            _ => Some(other),
        }
    }
}

/// The number of cases: `PROPTEST_CASES` for a longer hunt, else the bounded default of make test.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}
