//! The lock engine: leases, waiters, expiry, lock-delay, steal, fencing tokens, restart.
//!
//! Invariants (asserted in debug builds by [`Engine::check_invariants`], tested everywhere):
//! - I1 a lock has one exclusive holder or any number of shared holders, never both;
//! - I2 every token issued is strictly greater than every token issued before, across restarts;
//! - I3 renew, release and verify act only on the lease named by (lock, token);
//! - I4 a lapsed lease stays lapsed;
//! - I5 waiters are served first come, first served; a waiter that left never blocks the queue;
//! - I6 nothing here reads a clock, does I/O, spawns threads or panics.

mod image;
mod index;
mod lock;
mod ordered;
mod timers;
mod types;

use crate::hash_map::HashMap;
use crate::text::Text;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use crate::cluster::Entry;
use crate::config::Config;
use crate::durable::{encode_ceiling, DataFile, FileAction};
use crate::error::Error;
use crate::horizon::{GraceCase, Horizon, HorizonTracker};
use crate::snapshot::{Snapshot, SnapshotDelay, SnapshotLease, SNAPSHOT_VERSION};
use crate::time::Instant;
use crate::tokens::TokenSequence;
pub use image::{EngineImage, IMAGE_VERSION};
use index::LockIndex;
use lock::{Lease, Lock, Waiter};
use ordered::{Expired, Owners, Timers};
use timers::{TimerKey, TimerKind};
pub use types::{
    AcquireOptions, Acquired, ClientId, Event, HolderInfo, LeaseView, LockInfo, Mode, Start, Stats,
    Token, WaiterId, WaiterInfo,
};

/// The whole lock service as a sans-IO state machine. Every call takes `now`; a time earlier
/// than the last one seen counts as no progress. Everything due at or before `now` happens
/// before the call itself, so expiry is exact whether or not [`Engine::handle_timeout`] ran.
///
/// After every call the host must take [`Engine::poll_persist`] and make it durable before it
/// delivers any reply or event of that call, then deliver [`Engine::poll_event`]s.
#[derive(Debug)]
pub struct Engine {
    config: Config,
    locks: LockIndex,
    /// Deadlines of leases, waits and lock-delays, in firing order.
    timers: Timers,
    /// (client, timer-tagged id, slot) for waits and ephemeral leases, dropped on disconnect.
    by_client: Owners,
    /// Waiter -> (slot, wait deadline). Only ever looked up by id (never iterated), so a
    /// hash map: one B-tree type fewer in the browser's module. Ids are the engine's own.
    waiters: HashMap<WaiterId, (u32, Instant)>,
    next_waiter: WaiterId,
    tokens: TokenSequence,
    /// Recently expired tokens -> [`expired_name_key`] of their lock name, so late calls learn
    /// `EXPIRED`.
    expired: Expired,
    events: VecDeque<Event>,
    stats: Stats,
    now: Instant,
    grace_until: Instant,
    /// Why the restart grace is what it is, and how long it was at start.
    grace_case: GraceCase,
    grace_ms: u64,
    /// The durable upper bound on every deadline revealed (kept with a boot clock only).
    horizon: HorizonTracker,
    live_leases: usize,
    /// Inputs recorded for replication (cluster mode), or `None` when not recording.
    journal: Option<Vec<Entry>>,
}

impl Engine {
    /// Creates an engine with nothing persisted: tokens start at 1, no restart grace.
    #[must_use]
    pub fn new(config: Config) -> Engine {
        let tokens = TokenSequence::resume(0, 1, config.token_block);
        let locks = LockIndex::new(config.hash_seed);
        let horizon = HorizonTracker::new(config.boot_clock.clone(), config.horizon_slack_ms);
        Engine {
            config,
            locks,
            timers: Timers::default(),
            by_client: Owners::default(),
            waiters: HashMap::default(),
            next_waiter: 1,
            tokens,
            expired: Expired::default(),
            events: VecDeque::new(),
            stats: Stats::default(),
            now: Instant::ZERO,
            grace_until: Instant::ZERO,
            grace_case: GraceCase::None,
            grace_ms: 0,
            horizon,
            live_leases: 0,
            journal: None,
        }
    }

    /// Creates an engine from what the last run left: nothing, a crash, or a clean snapshot.
    ///
    /// # Errors
    /// [`Error::BadRequest`] if the snapshot is inconsistent (a token at or above its next token,
    /// a bad name, duplicated tokens, conflicting holders).
    pub fn start(now: Instant, config: Config, start: Start) -> Result<Engine, Error> {
        let mut engine = Engine::new(config);
        engine.now = now;
        match start {
            Start::Fresh => {}
            Start::Crashed { ceiling } => engine.resume_after_crash(ceiling, now, None),
            // A snapshot taken under another ceiling than the one on disk is not from the last
            // run: trusting it could reissue tokens, so it counts as a crash.
            Start::Clean { ceiling, snapshot } if snapshot.ceiling != ceiling => {
                engine.resume_after_crash(ceiling, now, None);
            }
            Start::Clean { ceiling, snapshot } => {
                engine.tokens =
                    TokenSequence::resume(ceiling, snapshot.next_token, engine.config.token_block);
                engine.restore(&snapshot, now)?;
                if snapshot.grace_ms_left > 0 {
                    // The crash grace the last run was still in goes on: the leases it
                    // protects are in no snapshot, and a later crash must wait for it too.
                    engine.grace_until = now.plus_ms(snapshot.grace_ms_left);
                    engine.grace_ms = snapshot.grace_ms_left;
                    engine.horizon.cover(engine.grace_until);
                }
            }
        }
        Ok(engine)
    }

    /// Creates an engine after a crash: tokens resume above `ceiling` and nothing is granted
    /// until every lease the last run could have issued has lapsed (the full grace).
    #[must_use]
    pub fn after_crash(now: Instant, config: Config, ceiling: u64) -> Engine {
        Engine::after_crash_within(now, config, ceiling, None)
    }

    /// Creates an engine after a crash, with the lease horizon the last run left, if any: on
    /// the boot of `config.boot_clock` and under `ceiling`, nothing is granted until the
    /// horizon has passed (no grace at all if it has); otherwise as [`Engine::after_crash`].
    /// [`Engine::grace_case`] tells which case applied.
    #[must_use]
    pub fn after_crash_within(
        now: Instant,
        config: Config,
        ceiling: u64,
        horizon: Option<&Horizon>,
    ) -> Engine {
        let mut engine = Engine::new(config);
        engine.now = now;
        engine.resume_after_crash(ceiling, now, horizon);
        engine
    }

    /// Acquires a lease on `name` for `ttl_ms`, or queues the request when `options.wait_ms` > 0.
    ///
    /// # Errors
    /// `LOCKED` if held and not waiting, `NOTREADY` in a restart grace, `LIMIT` past a bound,
    /// `EXHAUSTED` past 2^53-1, `ERR` for a bad name, TTL, wait, owner or lock-delay.
    pub fn acquire(
        &mut self,
        now: Instant,
        name: &str,
        ttl_ms: u64,
        options: &AcquireOptions,
    ) -> Result<Acquired, Error> {
        let now = self.advance(now);
        self.record(|| Entry::acquire(now, name, ttl_ms, options));
        self.validate_name(name)?;
        self.validate_ttl(ttl_ms)?;
        let lock_delay_ms = self.validate_acquire_options(options)?;
        let ready_in = self.grace_left(now);
        if ready_in > 0 {
            return Err(Error::NotReady { ms_left: ready_in });
        }
        self.stats.acquires += 1;
        let max_holders = self.config.max_holders_per_lock;
        let (slot, lock) = self.locks.find_or_create(name, self.config.max_locks)?;
        // Decided with the lock at hand, so no later step can find it missing.
        let plan = if options.steal {
            Plan::steal(lock, &mut self.tokens)
        } else {
            Ok(Plan::admit(lock, now, options.mode, max_holders))
        };
        let request = Request {
            now,
            ttl_ms,
            options,
            lock_delay_ms,
        };
        let result = plan.and_then(|plan| self.carry_out(slot, plan, &request));
        self.reclaim_if_idle(slot, now);
        self.debug_check(slot, now);
        result
    }

    /// Renews the lease `token` of `name` so that it ends `ttl_ms` from now; returns the ms left.
    ///
    /// # Errors
    /// `STALE` or `EXPIRED` if `token` is not a live lease of `name`; `ERR` for a bad TTL.
    pub fn renew(
        &mut self,
        now: Instant,
        name: &str,
        token: Token,
        ttl_ms: u64,
    ) -> Result<u64, Error> {
        let now = self.advance(now);
        self.record(|| Entry::Renew {
            at: now.as_ms(),
            name: String::from(name),
            token,
            ttl_ms,
        });
        self.validate_name(name)?;
        self.validate_ttl(ttl_ms)?;
        let Some(slot) = self.locks.find(name) else {
            return Err(self.reject(name, token));
        };
        let deadline = now.plus_ms(ttl_ms);
        let Some(lease) = self
            .locks
            .get_mut(slot)
            .and_then(|lock| lock.holders.find_mut(token))
        else {
            return Err(self.reject(name, token));
        };
        let previous = core::mem::replace(&mut lease.deadline, deadline);
        let lock_delay_ms = u64::from(lease.lock_delay_ms);
        self.horizon.cover(deadline.plus_ms(lock_delay_ms));
        self.timers
            .remove(&TimerKey::new(previous, TimerKind::Lease, token));
        self.timers
            .insert(TimerKey::new(deadline, TimerKind::Lease, token), slot);
        self.stats.renewals += 1;
        self.debug_check(slot, now);
        Ok(ttl_ms)
    }

    /// Releases the lease `token` of `name`; waiters behind it are granted at once.
    ///
    /// # Errors
    /// `STALE` or `EXPIRED` if `token` is not a live lease of `name`.
    pub fn release(&mut self, now: Instant, name: &str, token: Token) -> Result<(), Error> {
        let now = self.advance(now);
        self.record(|| Entry::Release {
            at: now.as_ms(),
            name: String::from(name),
            token,
        });
        self.validate_name(name)?;
        let Some(slot) = self.locks.find(name) else {
            return Err(self.reject(name, token));
        };
        if self.drop_lease(slot, token).is_none() {
            return Err(self.reject(name, token));
        }
        self.stats.releases += 1;
        self.grant_waiters(slot, now);
        self.reclaim_if_idle(slot, now);
        self.debug_check(slot, now);
        Ok(())
    }

    /// Returns the ms left of the lease `token` of `name`. Verifying is an optimisation:
    /// only the resource's [`crate::Fence`], checked at write time, is safe.
    ///
    /// # Errors
    /// `STALE` or `EXPIRED` if `token` is not a live lease of `name`.
    pub fn verify(&mut self, now: Instant, name: &str, token: Token) -> Result<u64, Error> {
        let now = self.advance(now);
        self.validate_name(name)?;
        let deadline = self
            .locks
            .find(name)
            .and_then(|slot| self.locks.get(slot))
            .and_then(|lock| {
                lock.holders
                    .as_slice()
                    .iter()
                    .find(|lease| lease.token == token)
            })
            .map(|lease| lease.deadline);
        match deadline {
            Some(deadline) => Ok(deadline.ms_since(now)),
            None => Err(self.reject(name, token)),
        }
    }

    /// Withdraws a queued request; returns false if it is no longer queued.
    pub fn cancel_wait(&mut self, now: Instant, waiter: WaiterId) -> bool {
        let now = self.advance(now);
        self.record(|| Entry::CancelWait {
            at: now.as_ms(),
            waiter,
        });
        let Some(&(slot, _)) = self.waiters.get(&waiter) else {
            return false;
        };
        self.drop_waiter(slot, waiter);
        // The withdrawn waiter may have been what held back the ones behind it (I5).
        self.grant_waiters(slot, now);
        self.reclaim_if_idle(slot, now);
        self.debug_check(slot, now);
        true
    }

    /// Drops everything of `client`: its queued requests and its ephemeral leases.
    pub fn disconnect(&mut self, now: Instant, client: ClientId) {
        let now = self.advance(now);
        self.record(|| Entry::Disconnect {
            at: now.as_ms(),
            client,
        });
        if client == 0 {
            return;
        }
        let owned: Vec<(ClientId, u64, u32)> = self.by_client.of(client);
        #[cfg(feature = "sim-bugs")]
        let owned = self.planted_kept_waits(owned);
        self.drop_owned(&owned, now);
    }

    /// The connection of `client` went away with the server that held it (a cluster leader
    /// that failed over): its waits end as on a disconnect, but its EPHEMERAL leases become
    /// plain leases that live until their deadline. The client cannot tell a failover from a
    /// network blip, and a lease it still believes in must not end before the deadline it was
    /// given (docs/CLUSTER.md).
    pub fn orphan(&mut self, now: Instant, client: ClientId) {
        let now = self.advance(now);
        self.record(|| Entry::Orphan {
            at: now.as_ms(),
            client,
        });
        self.orphan_owned(now, &[client]);
    }

    /// [`Engine::orphan`] for every client of a leader that failed over, at once: all their
    /// waits are withdrawn before any lock is served, so none of these clients is granted a
    /// lock as another's wait goes (a lease its holder could never hear of, holding the lock
    /// for its whole TTL). A new leader calls it once, at its promotion.
    pub fn orphan_all(&mut self, now: Instant, clients: &[ClientId]) {
        let now = self.advance(now);
        self.record(|| Entry::OrphanAll {
            at: now.as_ms(),
            clients: clients.to_vec(),
        });
        self.orphan_owned(now, clients);
    }

    fn orphan_owned(&mut self, now: Instant, clients: &[ClientId]) {
        let mut owned: Vec<(ClientId, u64, u32)> = Vec::new();
        for &client in clients {
            if client != 0 {
                owned.extend(self.by_client.of(client));
            }
        }
        for &(client, tagged, slot) in &owned {
            match TimerKind::untag(tagged) {
                (TimerKind::Wait, waiter) => {
                    self.drop_waiter(slot, waiter);
                }
                (TimerKind::Lease, token) => {
                    if let Some(lease) = self
                        .lock_mut(slot)
                        .and_then(|lock| lock.holders.find_mut(token))
                    {
                        lease.ephemeral = false;
                    }
                    self.by_client.remove(client, tagged, slot);
                }
                (TimerKind::Delay, _) => {}
            }
        }
        // A withdrawn wait may have been the head of its queue.
        for &(_, _, slot) in &owned {
            self.grant_waiters(slot, now);
            self.reclaim_if_idle(slot, now);
            self.debug_check(slot, now);
        }
    }

    /// Ends the run cleanly: every client is disconnected (waits and EPHEMERAL leases go), and
    /// the returned actions write a lease horizon still pending and the token ceiling, then
    /// the snapshot of the leases left, then remove the lease horizon (with a boot clock).
    ///
    /// The host performs them in order, each durable before the next: a crash between the
    /// ceiling and the snapshot leaves a ceiling without a snapshot, which restarts as a crash
    /// (safe), and a snapshot is trusted only under the ceiling it names. The actions replace
    /// any pending [`Engine::poll_persist`] and [`Engine::poll_horizon`]. Calls after this one
    /// make the snapshot stale; a later start then refuses it (its ceiling no longer matches)
    /// instead of reissuing tokens.
    pub fn shutdown(&mut self, now: Instant) -> Vec<FileAction> {
        let now = self.advance(now);
        let owned: Vec<(ClientId, u64, u32)> = self.by_client.all();
        self.drop_owned(&owned, now);
        let snapshot = self.snapshot(now);
        let mut actions = Vec::new();
        // Replies still to be sent may depend on a horizon not yet persisted; it goes before
        // the ceiling it names, as in `poll_horizon`.
        if let Some(horizon) = self.poll_horizon() {
            actions.push(FileAction::Write {
                file: DataFile::Horizon,
                bytes: horizon.encode(),
            });
        }
        // The ceiling write below covers whatever was pending.
        let _ = self.tokens.poll_persist();
        actions.push(FileAction::Write {
            file: DataFile::Ceiling,
            bytes: encode_ceiling(self.tokens.ceiling()),
        });
        actions.push(FileAction::Write {
            file: DataFile::Snapshot,
            bytes: snapshot.encode(),
        });
        if self.horizon.is_kept() {
            // The snapshot says all there is to say now; a horizon left behind could be
            // trusted after a later run that did not keep it (an older build) had crashed.
            actions.push(FileAction::Remove {
                file: DataFile::Horizon,
            });
        }
        actions
    }

    /// Expires due leases and waits, ends due lock-delays and grants to the next waiters.
    /// Calling it early or twice does nothing more than what is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    /// Returns the earliest instant at which [`Engine::handle_timeout`] has work.
    ///
    /// Timer rule, the same for every host: `handle_timeout(now)` with `now` at or after the
    /// returned instant always makes progress (everything due at or before `now` happens, and
    /// this then returns a later instant or `None`); with an earlier `now` it does nothing.
    /// Instants are whole milliseconds: a host converts its clock by truncating (never by
    /// rounding up, which would end leases early) and arms its timer for the moment its clock
    /// reaches the returned instant exactly, with no margin. A host timer that fires early
    /// (millisecond timer granularity, float conversions) finds its truncated reading one
    /// millisecond short: the call does nothing and the host re-arms for the same instant.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(key, _)| key.at)
    }

    /// Takes the next event for the host to deliver.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Takes a raised token ceiling that the host must persist (atomically, with fsync) before
    /// it delivers any reply or event of the call that raised it.
    #[must_use]
    pub fn poll_persist(&mut self) -> Option<u64> {
        self.tokens.poll_persist()
    }

    /// Takes a lease horizon that the host must persist as [`DataFile::Horizon`] (atomically,
    /// with fsync) before it delivers any reply or event of the call that asked for it, and
    /// before the ceiling of [`Engine::poll_persist`]: the horizon names the ceiling in force,
    /// raised or not, and a start takes the higher of the two files' ceilings
    /// ([`crate::Recovery::plan`]), so a crash between the two writes leaves a horizon the next
    /// start trusts. Only an engine with a boot clock keeps horizons; a busy one asks about
    /// once per `horizon_slack_ms`.
    #[must_use]
    pub fn poll_horizon(&mut self) -> Option<Horizon> {
        let horizon = self.horizon.poll(self.tokens.ceiling())?;
        self.stats.horizon_writes += 1;
        Some(horizon)
    }

    /// Lists the locks whose names start with `prefix`, sorted by name.
    pub fn query(&mut self, now: Instant, prefix: &str) -> Vec<LockInfo> {
        let now = self.advance(now);
        let mut locks: Vec<LockInfo> = self
            .locks
            .iter()
            // Every lock matches the empty prefix (the common QUERY): no comparison call.
            .filter(|(_, lock)| prefix.is_empty() || lock.name.starts_with(prefix))
            .map(|(_, lock)| lock_info(lock, now))
            .collect();
        crate::order::sort_by_text(&mut locks, |lock| &lock.name);
        locks
    }

    /// Returns at most `count` locks whose name starts with `prefix` and sorts after `after`
    /// (all of them for `None`), in name order, and whether more such locks exist.
    ///
    /// One page costs a scan of the lock names and memory for `count` of them, never a copy
    /// of every matching lock, so a server with a million locks answers in bounded memory.
    pub fn query_page(
        &mut self,
        now: Instant,
        prefix: &str,
        after: Option<&str>,
        count: usize,
    ) -> (Vec<LockInfo>, bool) {
        let now = self.advance(now);
        // A max-heap of the `count` smallest names seen: the largest one is evicted first.
        let mut smallest: alloc::collections::BinaryHeap<(&str, u32)> =
            alloc::collections::BinaryHeap::new();
        let mut more = false;
        for (slot, lock) in self.locks.iter() {
            let name: &str = &lock.name;
            if !name.starts_with(prefix) || after.is_some_and(|after| name <= after) {
                continue;
            }
            if smallest.len() < count {
                smallest.push((name, slot));
            } else {
                more = true;
                if smallest.peek().is_some_and(|&(largest, _)| name < largest) {
                    smallest.pop();
                    smallest.push((name, slot));
                }
            }
        }
        let page = smallest.into_sorted_vec();
        let locks: Vec<LockInfo> = page
            .iter()
            .filter_map(|&(_, slot)| self.locks.get(slot))
            .map(|lock| lock_info(lock, now))
            .collect();
        #[cfg(feature = "sim-bugs")]
        let locks = self.planted_query_drop(locks);
        (locks, more)
    }

    /// Returns the counters since start.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Captures every live lease and lock-delay for a clean shutdown.
    pub fn snapshot(&mut self, now: Instant) -> Snapshot {
        let now = self.advance(now);
        let mut leases = Vec::new();
        let mut delays = Vec::new();
        for (_, lock) in self.locks.iter() {
            for lease in lock.holders.as_slice() {
                leases.push(SnapshotLease {
                    name: String::from(&*lock.name),
                    token: lease.token,
                    shared: lease.shared,
                    owner: lease.owner.as_deref().map(String::from),
                    ms_left: lease.deadline.ms_since(now),
                    lock_delay_ms: u64::from(lease.lock_delay_ms),
                });
            }
            if lock.delay_until > now {
                delays.push(SnapshotDelay {
                    name: String::from(&*lock.name),
                    token: lock.delay_token,
                    ms_left: lock.delay_until.ms_since(now),
                });
            }
        }
        crate::order::sort_by_numbers(&mut leases, |lease| (lease.token, 0));
        crate::order::sort_by_text(&mut delays, |delay| &delay.name);
        Snapshot {
            version: SNAPSHOT_VERSION,
            next_token: self.tokens.next(),
            ceiling: self.tokens.ceiling(),
            leases,
            delays,
            grace_ms_left: self.grace_until.ms_since(now),
        }
    }

    /// Starts or stops recording every state-changing input (with its engine time) for
    /// replication; see [`crate::cluster`]. Stopping drops what was not taken.
    pub fn record_inputs(&mut self, on: bool) {
        self.journal = on.then(Vec::new);
    }

    /// Takes the inputs recorded since the last call, in the order they were handled.
    pub fn take_inputs(&mut self) -> Vec<Entry> {
        self.journal
            .as_mut()
            .map(core::mem::take)
            .unwrap_or_default()
    }

    /// Returns true if inputs were recorded that [`Engine::take_inputs`] has not taken yet:
    /// an image taken now would be ahead of the entries taken so far.
    #[must_use]
    pub fn has_untaken_inputs(&self) -> bool {
        self.journal
            .as_ref()
            .is_some_and(|journal| !journal.is_empty())
    }

    /// Returns every client that owns a wait or an EPHEMERAL lease, in order.
    #[must_use]
    pub fn clients(&self) -> Vec<ClientId> {
        let mut clients: Vec<ClientId> = self.by_client.clients().collect();
        clients.dedup();
        clients
    }

    /// Returns the latest time the engine has been given (it never moves backwards).
    #[must_use]
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Returns the ms left in the restart grace (0 when grants are allowed).
    #[must_use]
    pub fn grace_left(&self, now: Instant) -> u64 {
        self.grace_until.ms_since(now.max(self.now))
    }

    /// Returns which case decided the restart grace.
    #[must_use]
    pub fn grace_case(&self) -> GraceCase {
        self.grace_case
    }

    /// Returns the restart grace as decided at start, in ms (0 without one).
    #[must_use]
    pub fn grace_ms(&self) -> u64 {
        self.grace_ms
    }

    /// Returns the ms from `now` to the lease horizon asked for, or None if the engine keeps
    /// no horizon (no boot clock).
    #[must_use]
    pub fn horizon_ms_left(&self, now: Instant) -> Option<u64> {
        self.horizon
            .covered()
            .map(|covered| covered.ms_since(now.max(self.now)))
    }

    /// Returns the highest token issued so far (0 if none).
    #[must_use]
    pub fn last_token(&self) -> Token {
        self.tokens.last_issued()
    }

    /// Returns the highest token ceiling handed to the host for persisting.
    #[must_use]
    pub fn token_ceiling(&self) -> u64 {
        self.tokens.ceiling()
    }

    /// Returns the configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Returns the number of locks that exist (held, waited on or in lock-delay).
    #[must_use]
    pub fn live_locks(&self) -> usize {
        self.locks.len()
    }

    /// Returns the number of live leases.
    #[must_use]
    pub fn live_leases(&self) -> usize {
        self.live_leases
    }

    /// Visits every live lease as of the engine's last step, in no particular order, without
    /// advancing its clock or copying anything: for checkers and metrics that look often.
    /// A lease whose deadline has passed but whose timer has not run yet is still listed;
    /// [`Engine::query`] at a later time would run that timer first.
    pub fn leases(&self) -> impl Iterator<Item = LeaseView<'_>> + '_ {
        self.locks.iter().flat_map(|(_, lock)| {
            let name: &str = &lock.name;
            lock.holders.as_slice().iter().map(move |lease| LeaseView {
                name,
                token: lease.token,
                mode: Mode::from_shared(lease.shared),
                deadline: lease.deadline,
                owner: lease.owner.as_deref(),
                client: lease.client,
                ephemeral: lease.ephemeral,
            })
        })
    }

    /// Returns the number of queued requests.
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// Checks every invariant over the whole engine; returns a description of the first broken one.
    ///
    /// # Errors
    /// A message naming the broken invariant. Used by tests; O(size of the engine).
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut leases = 0usize;
        let mut waiting = 0usize;
        for (slot, lock) in self.locks.iter() {
            self.check_lock(slot, lock, self.now)?;
            leases += lock.holders.len();
            waiting += lock.waiters.len();
        }
        if leases != self.live_leases {
            return Err(alloc::format!(
                "lease count {} != {}",
                leases,
                self.live_leases
            ));
        }
        if waiting != self.waiters.len() {
            return Err(alloc::format!(
                "waiter count {} != {}",
                waiting,
                self.waiters.len()
            ));
        }
        Ok(())
    }
}

// ---- helpers, in the order the public API calls them ----

impl Engine {
    fn resume_after_crash(&mut self, ceiling: u64, now: Instant, horizon: Option<&Horizon>) {
        #[cfg(feature = "sim-bugs")]
        let next = if self.config.planted_bug == Some(crate::PlantedBug::TokenReuse) {
            ceiling
                .saturating_sub(self.config.token_block)
                .saturating_add(1)
        } else {
            ceiling.saturating_add(1)
        };
        #[cfg(not(feature = "sim-bugs"))]
        let next = ceiling.saturating_add(1);
        self.tokens = TokenSequence::resume(ceiling, next, self.config.token_block);
        // The longest a lease the last run revealed may still keep its lock: its TTL and then
        // its lock-delay, which an ACQUIRE may set up to the maximum whatever the default.
        let full = self
            .config
            .max_ttl_ms
            .saturating_add(self.config.lock_delay_ms.max(self.config.max_lock_delay_ms));
        let (case, until) = match (self.horizon.clock(), horizon) {
            (None, _) => (GraceCase::NoBootId, now.plus_ms(full)),
            (Some(_), None) => (GraceCase::NoHorizon, now.plus_ms(full)),
            (Some(clock), Some(stored)) if stored.boot_id != clock.boot_id => {
                (GraceCase::Rebooted, now.plus_ms(full))
            }
            (Some(_), Some(stored)) if stored.ceiling != ceiling => {
                (GraceCase::StaleHorizon, now.plus_ms(full))
            }
            // Same boot: the system monotonic clock ran on while no process was up, and no
            // lease the last run revealed ends after the stored horizon.
            (Some(clock), Some(stored)) => {
                let until = clock.to_instant(stored.monotonic_ms);
                self.horizon.resume(until, ceiling);
                (GraceCase::Horizon, until.max(now))
            }
        };
        self.grace_case = case;
        self.grace_until = until;
        self.grace_ms = until.ms_since(now);
    }

    /// Drops the given waits and ephemeral leases (entries of `by_client`), then serves the
    /// locks they were on.
    fn drop_owned(&mut self, owned: &[(ClientId, u64, u32)], now: Instant) {
        // Withdraw every wait first: otherwise dropping a client's lease could grant the
        // lock to one of its own waits, a lease nobody would ever release.
        for &(_, tagged, slot) in owned {
            if let (TimerKind::Wait, waiter) = TimerKind::untag(tagged) {
                self.drop_waiter(slot, waiter);
            }
        }
        for &(_, tagged, slot) in owned {
            if let (TimerKind::Lease, token) = TimerKind::untag(tagged) {
                if self.drop_lease(slot, token).is_some() {
                    self.stats.releases += 1;
                }
            }
        }
        // Serve the locks in the order of the leases (by token), then the waits.
        for &(_, _, slot) in owned {
            self.grant_waiters(slot, now);
            self.reclaim_if_idle(slot, now);
            self.debug_check(slot, now);
        }
    }

    /// Moves time forward (never back) and fires everything due at or before it.
    fn record(&mut self, entry: impl FnOnce() -> Entry) {
        if let Some(journal) = self.journal.as_mut() {
            journal.push(entry());
        }
    }

    fn advance(&mut self, now: Instant) -> Instant {
        let now = now.max(self.now);
        self.now = now;
        if self.timers.first().is_some_and(|(key, _)| key.at <= now) {
            // Timers fire only here: a replica replays this tick at the same engine time.
            self.record(|| Entry::Tick { at: now.as_ms() });
        }
        while let Some((key, slot)) = self.timers.first() {
            if key.at > now {
                break;
            }
            self.timers.remove(&key);
            match key.kind() {
                TimerKind::Lease => self.expire_lease(slot, key.id(), key.at, now),
                TimerKind::Delay => {
                    if let Some(lock) = self.lock_mut(slot) {
                        if lock.delay_until <= now {
                            lock.delay_until = Instant::ZERO;
                            lock.delay_token = 0;
                        }
                    }
                    self.grant_waiters(slot, now);
                }
                TimerKind::Wait => self.time_out_waiter(slot, key.id(), now),
            }
            // No per-lock invariant check here: other timers of this lock may still be due.
            self.reclaim_if_idle(slot, now);
        }
        now
    }

    fn expire_lease(&mut self, slot: u32, token: Token, at: Instant, now: Instant) {
        #[cfg(feature = "sim-bugs")]
        let token = self.planted_stale_timer(slot, token);
        let Some(lease) = self.drop_lease(slot, token) else {
            return;
        };
        self.stats.expiries += 1;
        let Some(lock) = self.lock_mut(slot) else {
            return;
        };
        let name = String::from(&*lock.name);
        let name_key = expired_name_key(&name);
        // Lock-delay runs from the deadline itself, so a late handle_timeout shortens nothing.
        let until = at.plus_ms(u64::from(lease.lock_delay_ms));
        if until > now && until > lock.delay_until {
            self.set_delay(slot, until, token);
        }
        self.expired.insert(token, name_key);
        while self.expired.len() > self.config.expired_memory {
            self.expired.pop_first();
        }
        self.events.push_back(Event::Expired {
            name,
            token,
            owner: lease.owner.map(String::from),
            client: lease.client,
        });
        self.grant_waiters(slot, now);
    }

    /// The planted bug [`crate::PlantedBug::QueryDropsHolder`]: each lock's last holder left
    /// out of a QUERY page.
    #[cfg(feature = "sim-bugs")]
    fn planted_query_drop(&self, mut locks: Vec<LockInfo>) -> Vec<LockInfo> {
        if self.config.planted_bug == Some(crate::PlantedBug::QueryDropsHolder) {
            for lock in &mut locks {
                lock.holders.pop();
            }
        }
        locks
    }

    /// The planted bug [`crate::PlantedBug::DisconnectKeepsWaits`]: a disconnect drops the
    /// client's EPHEMERAL leases but not its waits.
    #[cfg(feature = "sim-bugs")]
    fn planted_kept_waits(
        &self,
        mut owned: Vec<(ClientId, u64, u32)>,
    ) -> Vec<(ClientId, u64, u32)> {
        if self.config.planted_bug == Some(crate::PlantedBug::DisconnectKeepsWaits) {
            owned.retain(|&(_, tagged, _)| {
                !matches!(TimerKind::untag(tagged), (TimerKind::Wait, _))
            });
        }
        owned
    }

    /// The planted bug [`crate::PlantedBug::StaleTimer`]: a timer whose lease is gone
    /// expires the lock's current first holder instead of doing nothing.
    #[cfg(feature = "sim-bugs")]
    fn planted_stale_timer(&self, slot: u32, token: Token) -> Token {
        if self.config.planted_bug != Some(crate::PlantedBug::StaleTimer) {
            return token;
        }
        let Some(lock) = self.lock(slot) else {
            return token;
        };
        let holders = lock.holders.as_slice();
        if holders.iter().any(|lease| lease.token == token) {
            return token;
        }
        holders.first().map_or(token, |lease| lease.token)
    }

    fn time_out_waiter(&mut self, slot: u32, waiter: WaiterId, now: Instant) {
        let Some(removed) = self.drop_waiter(slot, waiter) else {
            return;
        };
        self.stats.wait_timeouts += 1;
        let name = self
            .lock(slot)
            .map(|lock| String::from(&*lock.name))
            .unwrap_or_default();
        self.events.push_back(Event::WaitTimedOut {
            name,
            waiter,
            client: removed.client,
            waited_ms: now.ms_since(removed.enqueued_at),
        });
        // A timed-out writer at the head may have held back readers behind it (I5).
        self.grant_waiters(slot, now);
    }

    fn validate_name(&self, name: &str) -> Result<(), Error> {
        crate::rules::name_not_empty(name)?;
        if name.len() > self.config.max_name_len {
            return Err(Error::bad(
                Text::new("lock name is ")
                    .num(name.len())
                    .str(" bytes, longer than the limit of ")
                    .num(self.config.max_name_len),
            ));
        }
        Ok(())
    }

    fn validate_ttl(&self, ttl_ms: u64) -> Result<(), Error> {
        crate::rules::ttl_not_zero(ttl_ms)?;
        if ttl_ms > self.config.max_ttl_ms {
            return Err(over_maximum("ttl", ttl_ms, self.config.max_ttl_ms));
        }
        Ok(())
    }

    /// Validates the options and returns the lock-delay that applies.
    fn validate_acquire_options(&self, options: &AcquireOptions) -> Result<u32, Error> {
        if options.wait_ms > self.config.max_wait_ms {
            return Err(over_maximum(
                "wait",
                options.wait_ms,
                self.config.max_wait_ms,
            ));
        }
        if let Some(owner) = &options.owner {
            if owner.len() > self.config.max_owner_len {
                return Err(Error::bad(
                    Text::new("owner label is ")
                        .num(owner.len())
                        .str(" bytes, longer than the limit of ")
                        .num(self.config.max_owner_len),
                ));
            }
        }
        if options.ephemeral && options.client == 0 {
            return Err(Error::bad("an ephemeral lease needs a client"));
        }
        crate::rules::steal_without_wait(options.steal, options.wait_ms)?;
        let delay = options.lock_delay_ms.unwrap_or(self.config.lock_delay_ms);
        if delay > self.config.max_lock_delay_ms {
            return Err(over_maximum(
                "lock-delay",
                delay,
                self.config.max_lock_delay_ms,
            ));
        }
        // max_lock_delay_ms is configured by the host; a value past u32 is clamped, not wrapped.
        Ok(u32::try_from(delay).unwrap_or(u32::MAX))
    }

    /// Carries out what [`Plan`] decided for an acquire on the lock in `slot`.
    fn carry_out(
        &mut self,
        slot: u32,
        plan: Plan,
        request: &Request<'_>,
    ) -> Result<Acquired, Error> {
        let Request {
            now,
            ttl_ms,
            options,
            lock_delay_ms,
        } = *request;
        let shared = options.mode == Mode::Shared;
        match plan {
            Plan::Grant => {
                let token = self.tokens.issue()?;
                let lease = new_lease(token, now.plus_ms(ttl_ms), options, lock_delay_ms, shared);
                Ok(self.grant(slot, lease))
            }
            Plan::Busy { ms_left, .. } if options.wait_ms == 0 => Err(Error::Locked { ms_left }),
            Plan::Busy { queued, .. } => self.enqueue(slot, queued, request),
            Plan::Steal {
                token,
                evicted,
                name,
                ended_delay,
            } => {
                self.timers.remove(&ended_delay);
                for lease in evicted {
                    self.forget_lease(slot, &lease);
                    self.events.push_back(Event::Stolen {
                        name: name.clone(),
                        token: lease.token,
                        owner: lease.owner.map(String::from),
                        client: lease.client,
                        by_token: token,
                    });
                }
                self.stats.steals += 1;
                let lease = new_lease(token, now.plus_ms(ttl_ms), options, lock_delay_ms, shared);
                let granted = self.grant(slot, lease);
                // A shared steal may admit shared waiters at the head of the queue.
                self.grant_waiters(slot, now);
                Ok(granted)
            }
        }
    }

    /// Installs a new lease granted at once and counts the grant.
    fn grant(&mut self, slot: u32, lease: Lease) -> Acquired {
        let (token, deadline) = (lease.token, lease.deadline);
        self.install_lease(slot, lease);
        self.stats.grants += 1;
        Acquired::Granted { token, deadline }
    }

    /// Queues an acquire behind the `queued` waiters of the lock in `slot`.
    fn enqueue(
        &mut self,
        slot: u32,
        queued: usize,
        request: &Request<'_>,
    ) -> Result<Acquired, Error> {
        let Request {
            now,
            ttl_ms,
            options,
            lock_delay_ms,
        } = *request;
        if queued >= self.config.max_waiters_per_lock {
            return Err(Error::Limit("too many waiters on this lock".into()));
        }
        if self.waiters.len() >= self.config.max_waiters_total {
            return Err(Error::Limit("too many waiters in all".into()));
        }
        let Some(lock) = self.locks.get_mut(slot) else {
            return Err(Error::internal("an acquire lost its lock"));
        };
        let waiter = self.next_waiter;
        self.next_waiter += 1;
        let deadline = now.plus_ms(options.wait_ms);
        lock.waiters.push_back(Waiter {
            id: waiter,
            ttl_ms,
            deadline,
            enqueued_at: now,
            owner: options.owner.as_deref().map(Box::from),
            client: options.client,
            lock_delay_ms,
            shared: options.mode == Mode::Shared,
            ephemeral: options.ephemeral,
        });
        self.waiters.insert(waiter, (slot, deadline));
        self.timers
            .insert(TimerKey::new(deadline, TimerKind::Wait, waiter), slot);
        if options.client != 0 {
            self.by_client
                .insert(options.client, TimerKind::Wait.tag(waiter), slot);
        }
        Ok(Acquired::Queued { waiter, deadline })
    }

    fn install_lease(&mut self, slot: u32, lease: Lease) {
        // Lock-delay keeps the lock from others after the deadline: it counts as lease time.
        self.horizon
            .cover(lease.deadline.plus_ms(u64::from(lease.lock_delay_ms)));
        self.timers.insert(
            TimerKey::new(lease.deadline, TimerKind::Lease, lease.token),
            slot,
        );
        if lease.ephemeral && lease.client != 0 {
            self.by_client
                .insert(lease.client, TimerKind::Lease.tag(lease.token), slot);
        }
        self.live_leases += 1;
        match self.locks.get_mut(slot) {
            Some(lock) => lock.holders.push(lease),
            // Callers install into the lock they just looked at; the miss is reported, and
            // the lease, counted above, makes `check_invariants` fail loudly as well.
            None => drop(Error::internal("a lease was installed into an empty slot")),
        }
    }

    /// Removes a holder and every index entry of it; None if `token` holds no lease there.
    fn drop_lease(&mut self, slot: u32, token: Token) -> Option<Lease> {
        let lease = self.lock_mut(slot)?.holders.remove(token)?;
        self.forget_lease(slot, &lease);
        Some(lease)
    }

    /// Removes the index entries of a lease already taken out of its lock.
    fn forget_lease(&mut self, slot: u32, lease: &Lease) {
        #[cfg(feature = "sim-bugs")]
        let keep_timer = self.config.planted_bug == Some(crate::PlantedBug::StaleTimer);
        #[cfg(not(feature = "sim-bugs"))]
        let keep_timer = false;
        if !keep_timer {
            self.timers.remove(&TimerKey::new(
                lease.deadline,
                TimerKind::Lease,
                lease.token,
            ));
        }
        if lease.ephemeral && lease.client != 0 {
            self.by_client
                .remove(lease.client, TimerKind::Lease.tag(lease.token), slot);
        }
        self.live_leases -= 1;
    }

    fn drop_waiter(&mut self, slot: u32, waiter: WaiterId) -> Option<Waiter> {
        let (_, deadline) = self.waiters.remove(&waiter)?;
        self.timers
            .remove(&TimerKey::new(deadline, TimerKind::Wait, waiter));
        let lock = self.lock_mut(slot)?;
        let at = lock.waiters.iter().position(|queued| queued.id == waiter)?;
        let removed = lock.waiters.remove(at)?;
        if removed.client != 0 {
            self.by_client
                .remove(removed.client, TimerKind::Wait.tag(waiter), slot);
        }
        Some(removed)
    }

    /// Grants the head of the queue, and every compatible waiter after it, while the lock admits them.
    fn grant_waiters(&mut self, slot: u32, now: Instant) {
        loop {
            let Some(lock) = self.lock(slot) else { return };
            if lock.delay_until > now || lock.holders.len() >= self.config.max_holders_per_lock {
                return;
            }
            let Some(head) = lock.waiters.front() else {
                return;
            };
            let mode = if head.shared {
                Mode::Shared
            } else {
                Mode::Exclusive
            };
            if !lock.holders.admits(mode) {
                return;
            }
            let head_id = head.id;
            // An exhausted sequence grants nothing; the waiters time out as usual.
            let Ok(token) = self.tokens.issue() else {
                return;
            };
            let Some(waiter) = self.drop_waiter(slot, head_id) else {
                return;
            };
            let name = self
                .lock(slot)
                .map(|lock| String::from(&*lock.name))
                .unwrap_or_default();
            let lease = Lease {
                token,
                deadline: now.plus_ms(waiter.ttl_ms),
                owner: waiter.owner,
                client: waiter.client,
                lock_delay_ms: waiter.lock_delay_ms,
                shared: waiter.shared,
                ephemeral: waiter.ephemeral,
            };
            let deadline = lease.deadline;
            self.install_lease(slot, lease);
            self.stats.grants += 1;
            self.stats.grants_after_wait += 1;
            self.stats.total_wait_ms += now.ms_since(waiter.enqueued_at);
            self.events.push_back(Event::Granted {
                name,
                token,
                waiter: head_id,
                client: waiter.client,
                deadline,
            });
        }
    }

    /// Frees a lock that has no holders, waiters or lock-delay, so names used once cost nothing.
    fn reclaim_if_idle(&mut self, slot: u32, now: Instant) {
        let idle = self.lock(slot).is_some_and(|lock| lock.is_idle(now));
        if !idle {
            return;
        }
        let Some(lock) = self.locks.remove(slot) else {
            return;
        };
        if lock.delay_until != Instant::ZERO {
            let key = TimerKey::new(lock.delay_until, TimerKind::Delay, lock.delay_token);
            self.timers.remove(&key);
        }
    }

    /// Counts a rejected token and tells `EXPIRED` from `STALE`.
    fn reject(&mut self, name: &str, token: Token) -> Error {
        self.stats.stale_rejections += 1;
        if self.expired.get(token) == Some(expired_name_key(name)) {
            Error::Expired { token }
        } else {
            Error::Stale { token }
        }
    }

    fn restore(&mut self, snapshot: &Snapshot, now: Instant) -> Result<(), Error> {
        let mut last_token = 0;
        let mut leases: Vec<&SnapshotLease> = snapshot.leases.iter().collect();
        crate::order::sort_by_numbers(&mut leases, |lease| (lease.token, 0));
        for saved in leases {
            self.validate_name(&saved.name)?;
            if saved.token == 0 || saved.token <= last_token || saved.token >= self.tokens.next() {
                return Err(Error::bad(
                    Text::new("snapshot lease token ")
                        .num(saved.token)
                        .str(" is out of order or not below the next token"),
                ));
            }
            last_token = saved.token;
            if saved.ms_left == 0 {
                continue;
            }
            let (slot, lock) = self
                .locks
                .find_or_create(&saved.name, self.config.max_locks)?;
            let mode = if saved.shared {
                Mode::Shared
            } else {
                Mode::Exclusive
            };
            if !lock.holders.admits(mode) {
                return Err(Error::bad(
                    Text::new("snapshot holds lock ")
                        .quoted(&saved.name)
                        .str(" both shared and exclusive"),
                ));
            }
            // The connection of an ephemeral lease is gone; the lease lives out its time.
            let lease = Lease {
                token: saved.token,
                deadline: now.plus_ms(saved.ms_left),
                owner: saved.owner.as_deref().map(Box::from),
                client: 0,
                lock_delay_ms: u32::try_from(saved.lock_delay_ms).unwrap_or(u32::MAX),
                shared: saved.shared,
                ephemeral: false,
            };
            self.install_lease(slot, lease);
        }
        for delay in &snapshot.delays {
            self.validate_name(&delay.name)?;
            if delay.ms_left == 0 {
                continue;
            }
            if delay.token >= self.tokens.next() {
                return Err(Error::bad(
                    "snapshot lock-delay token is not below the next token",
                ));
            }
            let (slot, _) = self
                .locks
                .find_or_create(&delay.name, self.config.max_locks)?;
            self.set_delay(slot, now.plus_ms(delay.ms_left), delay.token);
        }
        Ok(())
    }

    /// Starts (or with `Instant::ZERO` ends) the lock-delay of a lock. Its timer is keyed by the
    /// token whose expiry began it, so delays ending at one instant end in token order.
    fn set_delay(&mut self, slot: u32, until: Instant, token: Token) {
        let Some(lock) = self.lock_mut(slot) else {
            return;
        };
        let previous = TimerKey::new(lock.delay_until, TimerKind::Delay, lock.delay_token);
        lock.delay_until = until;
        lock.delay_token = token;
        self.horizon.cover(until);
        self.timers.remove(&previous);
        if until != Instant::ZERO {
            self.timers
                .insert(TimerKey::new(until, TimerKind::Delay, token), slot);
        }
    }

    fn lock(&self, slot: u32) -> Option<&Lock> {
        self.locks.get(slot)
    }

    fn lock_mut(&mut self, slot: u32) -> Option<&mut Lock> {
        self.locks.get_mut(slot)
    }

    fn debug_check(&self, slot: u32, now: Instant) {
        #[cfg(debug_assertions)]
        if let Some(lock) = self.lock(slot) {
            if let Err(broken) = self.check_lock(slot, lock, now) {
                debug_assert!(false, "invariant broken: {broken}");
            }
        }
        let _ = (slot, now);
    }

    /// Checks I1, I4 and I5 on one lock.
    fn check_lock(&self, slot: u32, lock: &Lock, now: Instant) -> Result<(), String> {
        let holders = lock.holders.as_slice();
        if holders.len() > 1 && holders.iter().any(|lease| !lease.shared) {
            return Err(alloc::format!(
                "I1: {:?} has an exclusive holder among others",
                lock.name
            ));
        }
        for lease in holders {
            if lease.deadline <= now {
                return Err(alloc::format!(
                    "I4: {:?} token {} outlived its deadline",
                    lock.name,
                    lease.token
                ));
            }
            if self.timers.get(&TimerKey::new(
                lease.deadline,
                TimerKind::Lease,
                lease.token,
            )) != Some(slot)
            {
                return Err(alloc::format!("lease {} has no expiry timer", lease.token));
            }
        }
        if let Some(head) = lock.waiters.front() {
            let mode = if head.shared {
                Mode::Shared
            } else {
                Mode::Exclusive
            };
            let blocked = lock.delay_until > now
                || self.tokens.next() > crate::tokens::MAX_TOKEN
                || !lock.holders.admits(mode)
                || holders.len() >= self.config.max_holders_per_lock;
            if !blocked {
                return Err(alloc::format!(
                    "I5: head waiter of {:?} could be granted",
                    lock.name
                ));
            }
        }
        for waiter in &lock.waiters {
            if waiter.deadline <= now {
                return Err(alloc::format!("I5: waiter {} outlived its wait", waiter.id));
            }
        }
        if lock.is_idle(now) {
            return Err(alloc::format!("{:?} is idle but not reclaimed", lock.name));
        }
        Ok(())
    }
}

/// The parts of an acquire that every [`Plan`] needs to carry it out.
#[derive(Clone, Copy)]
struct Request<'a> {
    now: Instant,
    ttl_ms: u64,
    options: &'a AcquireOptions,
    lock_delay_ms: u32,
}

/// What an acquire does, decided while its lock is at hand.
enum Plan {
    /// The lock admits the request now.
    Grant,
    /// The lock is held, in lock-delay or has a queue: `LOCKED`, or wait behind `queued`.
    Busy { ms_left: u64, queued: usize },
    /// The request took the lock with `token`; `evicted` lost it, and the lock-delay timer
    /// `ended_delay` no longer applies.
    Steal {
        token: Token,
        evicted: Vec<Lease>,
        name: String,
        ended_delay: TimerKey,
    },
}

impl Plan {
    fn admit(lock: &Lock, now: Instant, mode: Mode, max_holders: usize) -> Plan {
        let grantable = lock.delay_until <= now
            && lock.waiters.is_empty()
            && lock.holders.admits(mode)
            && lock.holders.len() < max_holders;
        if grantable {
            return Plan::Grant;
        }
        let ms_left = lock
            .holders
            .as_slice()
            .iter()
            .map(|lease| lease.deadline.ms_since(now))
            .max()
            .unwrap_or(0)
            .max(lock.delay_until.ms_since(now));
        Plan::Busy {
            ms_left,
            queued: lock.waiters.len(),
        }
    }

    /// Takes the lock from its holders; nothing changes if no token can be issued.
    fn steal(lock: &mut Lock, tokens: &mut TokenSequence) -> Result<Plan, Error> {
        let token = tokens.issue()?;
        let ended_delay = TimerKey::new(lock.delay_until, TimerKind::Delay, lock.delay_token);
        lock.delay_until = Instant::ZERO;
        lock.delay_token = 0;
        Ok(Plan::Steal {
            token,
            evicted: lock.holders.take_all(),
            name: String::from(&*lock.name),
            ended_delay,
        })
    }
}

/// Keys a lock name in the recently-expired map. Unlike the name index's hash it does not
/// depend on the node's secret seed, so an engine image carries it from one node to another.
/// A collision only turns a `STALE` answer into `EXPIRED` (both refuse the token), and the map
/// is ordered by token, so chosen names cannot slow it down.
fn expired_name_key(name: &str) -> u64 {
    siphasher::sip::SipHasher13::new_with_keys(0, 0).hash(name.as_bytes())
}

fn new_lease(
    token: Token,
    deadline: Instant,
    options: &AcquireOptions,
    lock_delay_ms: u32,
    shared: bool,
) -> Lease {
    Lease {
        token,
        deadline,
        owner: options.owner.as_deref().map(Box::from),
        client: options.client,
        lock_delay_ms,
        shared,
        ephemeral: options.ephemeral,
    }
}

fn lock_info(lock: &Lock, now: Instant) -> LockInfo {
    let mut holders: Vec<HolderInfo> = lock
        .holders
        .as_slice()
        .iter()
        .map(|lease| HolderInfo {
            token: lease.token,
            mode: Mode::from_shared(lease.shared),
            owner: lease.owner.as_deref().map(String::from),
            ms_left: lease.deadline.ms_since(now),
            client: lease.client,
        })
        .collect();
    crate::order::sort_by_numbers(&mut holders, |holder| (holder.token, 0));
    let waiters = lock
        .waiters
        .iter()
        .enumerate()
        .map(|(at, waiter)| WaiterInfo {
            waiter: waiter.id,
            position: at + 1,
            mode: Mode::from_shared(waiter.shared),
            owner: waiter.owner.as_deref().map(String::from),
            client: waiter.client,
            ms_left: waiter.deadline.ms_since(now),
        })
        .collect();
    LockInfo {
        name: String::from(&*lock.name),
        holders,
        waiters,
        delay_ms_left: lock.delay_until.ms_since(now),
    }
}

/// `BAD <what> N ms is over the maximum of M ms`.
fn over_maximum(what: &str, ms: u64, maximum: u64) -> Error {
    Error::bad(
        Text::new(what)
            .str(" ")
            .num(ms)
            .str(" ms is over the maximum of ")
            .num(maximum)
            .str(" ms"),
    )
}
