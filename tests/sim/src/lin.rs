//! A Wing-Gong linearizability checker with memoisation (Lowe's refinement: a set of
//! (linearized operations, model state) pairs already explored), and the sequential model of
//! one lock's leases that the simulator checks each lock's history against.
//!
//! Times are simulated milliseconds. An operation took effect somewhere in `[invoke, ret]`;
//! `ret == None` means its outcome is unknown (the connection failed, or no reply came): it
//! may have taken effect at any point after `invoke`, or never. The lease model only uses bounds
//! that hold for every possible instant of effect, so it may accept a wrong history but never
//! rejects a right one (the port of `tests/safety/models.py`, widened to shared leases,
//! renewals, verifies, steals, EPHEMERAL leases and server restarts).

use std::hash::{Hash, Hasher};

use fencelock_core::client::Reply;
use fencelock_core::Error;
use hashbrown::HashTable;

/// A sequential specification: the states an operation may lead to from a state (none: the
/// operation is impossible there).
pub trait Model {
    /// The model's state; memoised, so it must be small and hashable.
    type State: Clone + Eq + Hash;
    /// An operation with its outcome.
    type Op;
    /// The state before any operation.
    fn init(&self) -> Self::State;
    /// The states `entry` may lead to from `state`.
    fn step(&self, state: &Self::State, entry: &Entry<Self::Op>) -> Vec<Self::State>;
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<O> {
    /// When it was invoked.
    pub invoke: u64,
    /// When its outcome was known; `None` if it never was.
    pub ret: Option<u64>,
    /// What it was, outcome included.
    pub op: O,
}

/// Why a history is not linearizable: the longest linearizable prefix stopped before `stuck`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotLinearizable {
    /// How many operations the deepest attempt placed.
    pub placed: usize,
    /// Index (in the history given) of a completed operation that could not be placed next.
    pub stuck: usize,
}

/// How many (linearized set, state) pairs a check may explore before it gives up undecided.
/// The two histories of seeds 50 000 to 79 999 that passed the earlier 100 000 (seeds 61432
/// and 69096, lock beta, 530 and 684 operations) are linearizable, decided at 146 031 and
/// 139 092 pairs (each whole seed: 0.3 s, 60 MB peak); a search that runs to 400 000 costs
/// about three times that.
pub const BUDGET: usize = 400_000;

/// What a check that found no violation concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A linearization exists; the search explored `explored` (set, state) pairs to find it.
    Linearizable {
        /// Pairs explored.
        explored: usize,
    },
    /// The search passed [`BUDGET`] pairs without an answer (never counted as a violation).
    Undecided,
}

/// Sets an operation's outcome from its call's result: unknown if the call was lost, the
/// error's code if refused, else what the reply says (a reply of another shape is unknown);
/// `kept`: an ACQUIRE's lease is kept alive by its client.
pub fn settle(op: &mut LeaseOp, result: &Result<Reply, Error>, unknown: bool, kept: bool) {
    fn outcome<T>(
        result: &Result<Reply, Error>,
        unknown: bool,
        ok: impl Fn(&Reply) -> Option<T>,
    ) -> Outcome<T> {
        match result {
            _ if unknown => Outcome::Unknown,
            Ok(reply) => ok(reply).map_or(Outcome::Unknown, Outcome::Ok),
            Err(error) => Outcome::Fail(String::from(error.wire_code())),
        }
    }
    match op {
        LeaseOp::Acquire {
            outcome: out,
            kept: k,
            free_within_ms,
            ..
        } => {
            *k = kept;
            *out = outcome(result, unknown, |reply| match reply {
                Reply::Granted { token, .. } => Some(*token),
                _ => None,
            });
            if let Err(Error::Locked { ms_left }) = result {
                *free_within_ms = Some(*ms_left);
            }
        }
        LeaseOp::Renew { outcome: out, .. } | LeaseOp::Verify { outcome: out, .. } => {
            *out = outcome(result, unknown, |reply| match reply {
                Reply::MsLeft(ms_left) => Some(*ms_left),
                _ => None,
            });
        }
        LeaseOp::Release { outcome: out, .. } => {
            *out = outcome(result, unknown, |_| Some(()));
        }
        LeaseOp::Query { .. } | LeaseOp::Crash | LeaseOp::CleanRestart { .. } => {}
    }
}

/// Checks one lock's history under [`LeaseModel`]: `Ok(true)` if decided linearizable,
/// `Ok(false)` if the search gave up; otherwise a readable failure naming `what` (the lock,
/// and where it lives), the operation no order could place and the calls around it.
///
/// # Errors
/// The message, when the history is not linearizable.
pub fn judge(history: &[Entry<LeaseOp>], what: &str) -> Result<bool, String> {
    let failure = match check(&LeaseModel, history) {
        Ok(Verdict::Linearizable { .. }) => return Ok(true),
        Ok(Verdict::Undecided) => return Ok(false),
        Err(failure) => failure,
    };
    let mut message = format!(
        "{what}: history not linearizable ({} of {} operations placed); stuck at:",
        failure.placed,
        history.len()
    );
    if let Some(entry) = history.get(failure.stuck) {
        message.push_str(&format!(" {entry:?}\nhistory around it:"));
        for other in history.iter().filter(|o| {
            o.invoke + 6_000 >= entry.invoke && o.invoke <= entry.ret.unwrap_or(entry.invoke) + 100
        }) {
            message.push_str(&format!("\n  {other:?}"));
        }
    }
    Err(message)
}

/// Checks that `history` is linearizable under `model`. The search tries the operation
/// invoked first before later ones (the order most histories are linearized in), never
/// places an operation of unknown outcome without effect (leaving it out is the same), and
/// remembers the (linearized set, state) pairs it has explored.
///
/// # Errors
/// [`NotLinearizable`] with the operation no order could place.
pub fn check<M: Model>(model: &M, history: &[Entry<M::Op>]) -> Result<Verdict, NotLinearizable> {
    // Operations by invocation; `bits` and the scans below index this order.
    let mut order: Vec<usize> = (0..history.len()).collect();
    order.sort_by_key(|&i| history.get(i).map_or(0, |entry| entry.invoke));
    let entries: Vec<&Entry<M::Op>> = order.iter().filter_map(|&i| history.get(i)).collect();
    let rets: Vec<u64> = entries
        .iter()
        .map(|entry| entry.ret.unwrap_or(u64::MAX))
        .collect();
    let required = entries.iter().filter(|e| e.ret.is_some()).count();
    let words = entries.len().div_ceil(64);
    // Every pair explored is stored once, in `nodes`; the memo and the stack hold indices.
    // The root (nothing placed) is not in the memo: every other pair has something placed.
    let mut nodes: Vec<Node<M::State>> = vec![Node {
        bits: vec![0; words],
        bits_hash: 0,
        hash: 0,
        state: model.init(),
    }];
    let mut memo: HashTable<usize> = HashTable::new();
    // (node, completed operations placed, operations placed)
    let mut stack: Vec<(usize, usize, usize)> = vec![(0, 0, 0)];
    let mut fresh: Vec<(Node<M::State>, usize)> = Vec::new();
    let mut deepest = (0usize, 0usize);
    let mut candidates: Vec<usize> = Vec::new();
    while let Some((index, done, placed)) = stack.pop() {
        let explored = nodes.len() - 1;
        if done == required {
            return Ok(Verdict::Linearizable { explored });
        }
        let Some(node) = nodes.get(index) else {
            continue;
        };
        let bits = &node.bits;
        let is_set = |p: usize| bits.get(p / 64).is_some_and(|w| w & (1 << (p % 64)) != 0);
        // One pass from the first operation not placed: an operation may go next if it was
        // invoked before every other one not placed returned. Invocations are sorted and an
        // operation returns after its invocation, so nothing past `min_ret` returns earlier.
        candidates.clear();
        let mut min_ret = (u64::MAX, 0usize);
        let first = bits
            .iter()
            .position(|&w| w != u64::MAX)
            .map_or(entries.len(), |w| w * 64);
        for (p, entry) in entries.iter().enumerate().skip(first) {
            if entry.invoke > min_ret.0 {
                break;
            }
            if is_set(p) {
                continue;
            }
            candidates.push(p);
            let ret = rets.get(p).copied().unwrap_or(u64::MAX);
            if ret < min_ret.0 {
                min_ret = (ret, p);
            }
        }
        candidates.retain(|&p| entries.get(p).is_some_and(|e| e.invoke <= min_ret.0));
        if placed >= deepest.0 {
            deepest = (placed, order.get(min_ret.1).copied().unwrap_or(0));
        }
        // Pushed last, popped first: the earliest invocation is tried first.
        for &p in candidates.iter().rev() {
            let Some(entry) = entries.get(p) else {
                continue;
            };
            let (word, mask) = (p / 64, 1u64 << (p % 64));
            let bits_hash = node.bits_hash ^ position_hash(p);
            for next in model.step(&node.state, entry) {
                if entry.ret.is_none() && next == node.state {
                    continue;
                }
                let hash = pair_hash(bits_hash, &next);
                // The same pair: `bits` with `p` placed, and the same state.
                let same = |other: &Node<M::State>| {
                    other.hash == hash
                        && other.bits_hash == bits_hash
                        && other.state == next
                        && other.bits.len() == bits.len()
                        && other.bits.iter().zip(bits.iter()).enumerate().all(
                            |(at, (&theirs, &ours))| {
                                theirs == if at == word { ours | mask } else { ours }
                            },
                        )
                };
                let seen = memo
                    .find(hash, |&other| nodes.get(other).is_some_and(same))
                    .is_some()
                    || fresh.iter().any(|(other, _)| same(other));
                if seen {
                    continue;
                }
                if explored + fresh.len() >= BUDGET {
                    return Ok(Verdict::Undecided);
                }
                let mut next_bits = bits.clone();
                if let Some(slot) = next_bits.get_mut(word) {
                    *slot |= mask;
                }
                let node = Node {
                    bits: next_bits,
                    bits_hash,
                    hash,
                    state: next,
                };
                fresh.push((node, done + usize::from(entry.ret.is_some())));
            }
        }
        for (node, done) in fresh.drain(..) {
            let at = nodes.len();
            memo.insert_unique(node.hash, at, |&other| {
                nodes.get(other).map_or(0, |other| other.hash)
            });
            nodes.push(node);
            stack.push((at, done, placed + 1));
        }
    }
    Err(NotLinearizable {
        placed: deepest.0,
        stuck: deepest.1,
    })
}

/// One (linearized set, state) pair of the search.
struct Node<S> {
    /// The operations placed, by position in invocation order.
    bits: Vec<u64>,
    /// The XOR of [`position_hash`] over the operations placed: a child's is its parent's
    /// with one more term, so a pair met again is found without hashing its whole set.
    bits_hash: u64,
    /// [`pair_hash`] of the pair.
    hash: u64,
    state: S,
}

/// A well-mixed 64-bit value for an operation's position (SplitMix64's finaliser).
fn position_hash(position: usize) -> u64 {
    let mut z = (position as u64)
        .wrapping_add(1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The memo's hash of a pair; equal pairs hash equal, and the memo compares pairs in full.
fn pair_hash<S: Hash>(bits_hash: u64, state: &S) -> u64 {
    let mut hasher = FxHasher { hash: bits_hash };
    state.hash(&mut hasher);
    hasher.finish()
}

/// FxHash (rustc's hasher): SipHash's resistance to chosen keys buys nothing in the memo.
#[derive(Default)]
struct FxHasher {
    hash: u64,
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (slot, byte) in word.iter_mut().zip(chunk) {
                *slot = *byte;
            }
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// The outcome of a lease operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    /// It succeeded with this result.
    Ok(T),
    /// The server refused it with this error code (`LOCKED`, `STALE`, ...).
    Fail(String),
    /// Nobody knows whether it took effect.
    Unknown,
}

/// An operation on one lock, as the simulator records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOp {
    /// `ACQUIRE`; `kept`: the client kept it alive (renewals the history does not show).
    Acquire {
        /// The lease's TTL.
        ttl_ms: u64,
        /// SHARED.
        shared: bool,
        /// STEAL.
        steal: bool,
        /// EPHEMERAL: may end whenever its connection does.
        ephemeral: bool,
        /// Its LOCKDELAY: if it expires (rather than being released, stolen or ended with its
        /// connection), nothing is granted on the lock until that long after its deadline.
        lock_delay_ms: u64,
        /// Kept alive by the client after the grant.
        kept: bool,
        /// The token granted.
        outcome: Outcome<u64>,
        /// For `LOCKED`, the ms it said the lock is free in at most (its holders' deadlines).
        free_within_ms: Option<u64>,
    },
    /// `RENEW token ttl`.
    Renew {
        /// The lease.
        token: u64,
        /// The new TTL.
        ttl_ms: u64,
        /// The ms left it answered (the new TTL), or the error code.
        outcome: Outcome<u64>,
    },
    /// `RELEASE token` (OK only when the release took effect on a live lease).
    Release {
        /// The lease.
        token: u64,
        /// Success or the error code.
        outcome: Outcome<()>,
    },
    /// `VERIFY token`.
    Verify {
        /// The lease.
        token: u64,
        /// The ms left it answered, or the error code.
        outcome: Outcome<u64>,
    },
    /// `QUERY`: the holders it listed for this lock. A read: it changes nothing, but what it
    /// lists must be what the lock held at some instant of its call.
    Query {
        /// What it listed for this lock.
        outcome: Outcome<Listing>,
    },
    /// The server crashed: it forgot every lease (its restart grace still keeps them exclusive).
    Crash,
    /// The server restarted from a clean snapshot after `downtime_ms`: restored leases end that
    /// much later.
    CleanRestart {
        /// Time between the shutdown and the restart.
        downtime_ms: u64,
    },
}

/// What a QUERY listed for one lock (nothing, for a lock it did not list).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The holders.
    pub holders: Vec<Listed>,
    /// The lock-delay left, in ms (0: none).
    pub delay_ms_left: u64,
}

/// One holder as a QUERY listed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    /// Its token.
    pub token: u64,
    /// Shared or exclusive.
    pub shared: bool,
    /// The ms it had left.
    pub ms_left: u64,
}

/// One holder in the model.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Holder {
    /// Its token; `None` for a grant whose reply nobody saw.
    pub token: Option<u64>,
    /// Shared or exclusive.
    pub shared: bool,
    /// The lease is live at least until here (it lapses at the deadline itself).
    pub min_until: u64,
    /// The lease is live at most until here.
    pub max_until: u64,
    /// The server crashed since: it no longer knows this lease, but its grace protects it.
    pub forgotten: bool,
    /// EPHEMERAL: it may end with its connection at any time.
    pub ephemeral: bool,
    /// Its lock-delay, from its deadline, if it expires.
    pub delay: u64,
    /// It is gone (a RENEW, RELEASE or VERIFY found it so), ended by `max_until` at the latest,
    /// and kept only for its lock-delay.
    pub ended: bool,
}

impl Holder {
    /// May the lease be live at some instant of a call that starts at `inv`?
    fn may_be_live(&self, inv: u64) -> bool {
        !self.ended && inv < self.max_until
    }

    /// May the lease be over, lock-delay included, at some instant up to `ret`? An EPHEMERAL
    /// lease may end with its connection at any time, and that ending has no lock-delay.
    fn may_be_over(&self, ret: u64) -> bool {
        let delay = if self.ephemeral { 0 } else { self.delay };
        ret >= self.min_until.saturating_add(delay)
    }

    /// May the lease, or its lock-delay, still keep the lock at some instant from `inv` on?
    fn may_hold_the_lock(&self, inv: u64) -> bool {
        self.may_be_live(inv) || inv < self.max_until.saturating_add(self.delay)
    }
}

/// The model's state: holders sorted, and the highest token granted on the lock.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct LeaseState {
    /// Leases that may still be live.
    pub holders: Vec<Holder>,
    /// The highest token this lock granted.
    pub last_token: u64,
}

/// The lease model of one lock.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeaseModel;

impl Model for LeaseModel {
    type State = LeaseState;
    type Op = LeaseOp;

    fn init(&self) -> LeaseState {
        LeaseState::default()
    }

    fn step(&self, state: &LeaseState, entry: &Entry<LeaseOp>) -> Vec<LeaseState> {
        let inv = entry.invoke;
        let ret = entry.ret.unwrap_or(u64::MAX);
        // May a holder already have lapsed at the latest instant this operation can take effect?
        let may_be_lapsed = |h: &Holder| ret >= h.min_until;
        let may_be_live = |h: &Holder| h.may_be_live(inv);
        let find = |token: u64| state.holders.iter().position(|h| h.token == Some(token));
        let without = |at: usize| {
            let mut next = state.clone();
            next.holders.remove(at);
            next
        };
        match &entry.op {
            LeaseOp::Acquire {
                ttl_ms,
                shared,
                steal,
                ephemeral,
                lock_delay_ms,
                kept,
                outcome,
                free_within_ms,
            } => {
                // A grant needs every holder over, lock-delay included (a steal ends them and
                // the lock-delay), or, for a shared grant, a shared holder that may be live.
                let admitted = |state: &LeaseState| -> Option<Vec<Holder>> {
                    if *steal {
                        return Some(Vec::new());
                    }
                    let mut kept_holders = Vec::new();
                    for h in &state.holders {
                        if *shared && h.shared && h.may_be_live(inv) {
                            kept_holders.push(h.clone());
                        } else if !h.may_be_over(ret) {
                            return None;
                        }
                    }
                    Some(kept_holders)
                };
                let grant = |token: Option<u64>, mut holders: Vec<Holder>| {
                    let min_until = if *ephemeral {
                        inv
                    } else {
                        inv.saturating_add(*ttl_ms)
                    };
                    let max_until = if *kept {
                        u64::MAX
                    } else {
                        ret.saturating_add(*ttl_ms)
                    };
                    holders.push(Holder {
                        token,
                        shared: *shared,
                        min_until,
                        max_until,
                        forgotten: false,
                        ephemeral: *ephemeral,
                        delay: *lock_delay_ms,
                        ended: false,
                    });
                    holders.sort();
                    LeaseState {
                        holders,
                        last_token: token.unwrap_or(state.last_token).max(state.last_token),
                    }
                };
                match outcome {
                    Outcome::Ok(token) => {
                        if *token <= state.last_token {
                            return Vec::new();
                        }
                        admitted(state)
                            .map(|holders| grant(Some(*token), holders))
                            .into_iter()
                            .collect()
                    }
                    Outcome::Unknown => {
                        let mut next = vec![state.clone()];
                        next.extend(admitted(state).map(|holders| grant(None, holders)));
                        next
                    }
                    Outcome::Fail(code) if code == "LOCKED" => {
                        // "Free in at most" covers every lease the server knows: none may
                        // certainly outlast it.
                        let outlasted = free_within_ms.is_some_and(|within| {
                            state.holders.iter().any(|h| {
                                !h.forgotten && !h.ended && h.min_until > ret.saturating_add(within)
                            })
                        });
                        if !*steal
                            && !outlasted
                            && state.holders.iter().any(|h| h.may_hold_the_lock(inv))
                        {
                            vec![state.clone()]
                        } else {
                            Vec::new()
                        }
                    }
                    Outcome::Fail(_) => vec![state.clone()],
                }
            }
            LeaseOp::Renew {
                token,
                ttl_ms,
                outcome,
            } => {
                let renewed = |at: usize| -> Option<LeaseState> {
                    let h = state.holders.get(at)?;
                    if h.forgotten || !may_be_live(h) {
                        return None;
                    }
                    let mut next = state.clone();
                    let h = next.holders.get_mut(at)?;
                    // A renewal sets the deadline, shorter or longer. A lease the client keeps
                    // alive has renewals the history does not show, which may shorten it again
                    // to its first TTL; an EPHEMERAL lease may end with its connection anyway.
                    let lower = inv.saturating_add(*ttl_ms);
                    if h.ephemeral {
                    } else if h.max_until == u64::MAX {
                        h.min_until = h.min_until.min(lower);
                    } else {
                        h.min_until = lower;
                    }
                    if h.max_until != u64::MAX {
                        h.max_until = ret.saturating_add(*ttl_ms);
                    }
                    Some(next)
                };
                match (outcome, find(*token)) {
                    // A renewal answers the TTL it set.
                    (Outcome::Ok(ms_left), Some(at)) if ms_left == ttl_ms => {
                        renewed(at).into_iter().collect()
                    }
                    (Outcome::Ok(_), _) => Vec::new(),
                    (Outcome::Unknown, Some(at)) => {
                        let mut next = vec![state.clone()];
                        next.extend(renewed(at));
                        next
                    }
                    (Outcome::Unknown, None) => vec![state.clone()],
                    (Outcome::Fail(code), at) => {
                        refused(state, code, at, ret, &may_be_lapsed, &without)
                    }
                }
            }
            LeaseOp::Release { token, outcome } => match (outcome, find(*token)) {
                (Outcome::Ok(()), Some(at)) => {
                    let live = state
                        .holders
                        .get(at)
                        .is_some_and(|h| !h.forgotten && may_be_live(h));
                    // OK vouches that the lease was live until the release took effect.
                    if live {
                        vec![without(at)]
                    } else {
                        Vec::new()
                    }
                }
                (Outcome::Ok(()), None) => Vec::new(),
                (Outcome::Unknown, None) => vec![state.clone()],
                (Outcome::Unknown, Some(at)) if state.holders.get(at).is_some_and(|h| h.ended) => {
                    vec![state.clone()]
                }
                (Outcome::Unknown, Some(at)) => vec![state.clone(), without(at)],
                (Outcome::Fail(code), at) => {
                    refused(state, code, at, ret, &may_be_lapsed, &without)
                }
            },
            LeaseOp::Verify { token, outcome } => match (outcome, find(*token)) {
                (Outcome::Ok(ms_left), Some(at)) => verified(state, at, inv, ret, *ms_left)
                    .into_iter()
                    .collect(),
                (Outcome::Ok(_), None) => Vec::new(),
                (Outcome::Unknown, _) => vec![state.clone()],
                (Outcome::Fail(code), at) => {
                    refused(state, code, at, ret, &may_be_lapsed, &without)
                }
            },
            LeaseOp::Query { outcome } => match outcome {
                Outcome::Ok(listed) if !query_agrees(state, listed, inv, ret) => Vec::new(),
                _ => vec![state.clone()],
            },
            LeaseOp::Crash => {
                let mut next = state.clone();
                for h in &mut next.holders {
                    h.forgotten = true;
                }
                vec![next]
            }
            LeaseOp::CleanRestart { downtime_ms } => {
                let mut next = state.clone();
                for h in &mut next.holders {
                    h.max_until = h.max_until.saturating_add(*downtime_ms);
                }
                vec![next]
            }
        }
    }
}

/// A VERIFY that found holder `at` live with `ms_left` to go, taking effect in `[inv, ret]`:
/// the server's deadline was then between `inv + ms_left` and `ret + ms_left`, which must
/// meet what the state allows. For a lease nothing renews behind the history's back (neither
/// kept alive by its client nor EPHEMERAL), the state's bounds narrow to that.
fn verified(state: &LeaseState, at: usize, inv: u64, ret: u64, ms_left: u64) -> Option<LeaseState> {
    let h = state.holders.get(at)?;
    if h.forgotten || !h.may_be_live(inv) {
        return None;
    }
    let (earliest, latest) = (inv.saturating_add(ms_left), ret.saturating_add(ms_left));
    if latest < h.min_until || earliest > h.max_until {
        return None;
    }
    let mut next = state.clone();
    if !h.ephemeral && h.max_until != u64::MAX {
        let h = next.holders.get_mut(at)?;
        h.min_until = h.min_until.max(earliest);
        h.max_until = h.max_until.min(latest);
    }
    Some(next)
}

/// Whether a QUERY that listed `listed` as the lock's holders, taking effect in its call
/// (`inv` to `ret`), agrees with `state`: every holder it lists may be live then and is one
/// the server still knows, in the mode granted and with a deadline (then plus its ms left)
/// within the lease's bounds (a grant whose reply nobody saw may be any of them), and every
/// lease the server knows that is certainly live until `ret` (neither EPHEMERAL nor forgotten
/// in a crash) is listed. Leases it leaves out that may have lapsed stay in the state: the
/// check is sound, not complete.
fn query_agrees(state: &LeaseState, listing: &Listing, inv: u64, ret: u64) -> bool {
    let listed = &listing.holders;
    let known = listed.iter().all(|l| {
        let (earliest, latest) = (inv.saturating_add(l.ms_left), ret.saturating_add(l.ms_left));
        state.holders.iter().any(|h| {
            h.token.map_or(true, |t| t == l.token)
                && h.shared == l.shared
                && !h.forgotten
                && h.may_be_live(inv)
                && latest >= h.min_until
                && earliest <= h.max_until
        })
    });
    let complete = state.holders.iter().all(|h| {
        let certain = !h.forgotten && !h.ephemeral && !h.ended && h.min_until > ret;
        match h.token {
            Some(token) if certain => listed
                .iter()
                .any(|l| l.token == token && l.shared == h.shared),
            _ => true,
        }
    });
    known && complete && delay_agrees(state, listing.delay_ms_left, inv, ret)
}

/// Whether the lock-delay a QUERY reported (`delay_ms_left`, 0 for none) agrees with `state`:
/// a lock-delay reported ends when one of a lease the server knows may end (its deadline, at
/// most its bounds, plus its lock-delay), and a lease certainly expired before the call whose
/// lock-delay certainly runs past it is reported, at least that long.
fn delay_agrees(state: &LeaseState, delay_ms_left: u64, inv: u64, ret: u64) -> bool {
    let known = delay_ms_left == 0
        || state.holders.iter().any(|h| {
            h.delay > 0
                && !h.forgotten
                && inv.saturating_add(delay_ms_left) <= h.max_until.saturating_add(h.delay)
                && ret.saturating_add(delay_ms_left) >= h.min_until.saturating_add(h.delay)
        });
    let complete = state.holders.iter().all(|h| {
        // Over before the call, and not by a release (the state would not hold it): expired,
        // unless an EPHEMERAL lease's connection ended it.
        let ends = h.min_until.saturating_add(h.delay);
        let certain =
            h.delay > 0 && !h.forgotten && !h.ephemeral && h.max_until <= inv && ends > ret;
        !certain || ret.saturating_add(delay_ms_left) >= ends
    });
    known && complete
}

/// A renew, release or verify refused: `STALE` or `EXPIRED` mean the lease is gone for good
/// (I4), impossible while it must still be live unless the server forgot it in a crash.
fn refused(
    state: &LeaseState,
    code: &str,
    at: Option<usize>,
    ret: u64,
    may_be_lapsed: &dyn Fn(&Holder) -> bool,
    without: &dyn Fn(usize) -> LeaseState,
) -> Vec<LeaseState> {
    if code != "STALE" && code != "EXPIRED" {
        return vec![state.clone()];
    }
    let Some(at) = at else {
        return vec![state.clone()];
    };
    let Some(h) = state.holders.get(at) else {
        return vec![state.clone()];
    };
    if h.forgotten || h.ended {
        return vec![state.clone()];
    }
    if !may_be_lapsed(h) {
        return Vec::new();
    }
    if h.delay == 0 {
        return vec![without(at)];
    }
    // Gone by the refusal at the latest; its lock-delay may still keep the lock (an EPHEMERAL
    // lease may also have ended with its connection, without one: `may_be_over` allows that).
    let mut next = state.clone();
    if let Some(h) = next.holders.get_mut(at) {
        h.ended = true;
        h.max_until = h.max_until.min(ret);
    }
    vec![next]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn acquire(invoke: u64, ret: u64, ttl_ms: u64, outcome: Outcome<u64>) -> Entry<LeaseOp> {
        Entry {
            invoke,
            ret: Some(ret),
            op: LeaseOp::Acquire {
                ttl_ms,
                shared: false,
                steal: false,
                ephemeral: false,
                lock_delay_ms: 0,
                kept: false,
                outcome,
                free_within_ms: None,
            },
        }
    }

    fn shared(invoke: u64, ret: u64, ttl_ms: u64, token: u64) -> Entry<LeaseOp> {
        let mut entry = acquire(invoke, ret, ttl_ms, Outcome::Ok(token));
        if let LeaseOp::Acquire { shared, .. } = &mut entry.op {
            *shared = true;
        }
        entry
    }

    /// Tells whether the search found a linearization (not merely ran out of budget).
    fn linearizable(history: &[Entry<LeaseOp>]) -> bool {
        matches!(
            check(&LeaseModel, history),
            Ok(Verdict::Linearizable { .. })
        )
    }

    fn op(invoke: u64, ret: Option<u64>, op: LeaseOp) -> Entry<LeaseOp> {
        Entry { invoke, ret, op }
    }

    /// A RELEASE of `token` answered OK.
    fn released(invoke: u64, ret: u64, token: u64) -> Entry<LeaseOp> {
        op(
            invoke,
            Some(ret),
            LeaseOp::Release {
                token,
                outcome: Outcome::Ok(()),
            },
        )
    }

    fn fail<T>(code: &str) -> Outcome<T> {
        Outcome::Fail(code.into())
    }

    #[test]
    fn accepts_a_plain_sequence() {
        let history = vec![
            acquire(0, 5, 1000, Outcome::Ok(1)),
            acquire(10, 12, 1000, Outcome::Fail("LOCKED".into())),
            released(20, 25, 1),
            acquire(30, 31, 1000, Outcome::Ok(2)),
            acquire(2000, 2001, 1000, Outcome::Ok(3)),
            op(
                2002,
                Some(2003),
                LeaseOp::Verify {
                    token: 2,
                    outcome: fail("EXPIRED"),
                },
            ),
        ];
        assert!(linearizable(&history));
    }

    #[test]
    fn rejects_two_exclusive_holders_at_once() {
        let history = vec![
            acquire(0, 5, 1000, Outcome::Ok(1)),
            acquire(100, 105, 1000, Outcome::Ok(2)),
        ];
        assert!(check(&LeaseModel, &history).is_err());
        // Concurrent requests: one of them must come second, and it finds the lock held.
        let concurrent = vec![
            acquire(0, 50, 1000, Outcome::Ok(1)),
            acquire(10, 60, 1000, Outcome::Ok(2)),
        ];
        assert!(check(&LeaseModel, &concurrent).is_err());
    }

    #[test]
    fn rejects_a_token_reused_or_going_backwards() {
        let history = vec![
            acquire(0, 5, 10, Outcome::Ok(7)),
            acquire(100, 105, 10, Outcome::Ok(7)),
        ];
        assert!(check(&LeaseModel, &history).is_err());
        let backwards = vec![
            acquire(0, 5, 10, Outcome::Ok(7)),
            acquire(100, 105, 10, Outcome::Ok(3)),
        ];
        assert!(check(&LeaseModel, &backwards).is_err());
    }

    #[test]
    fn rejects_a_lapsed_lease_renewed_back_to_life() {
        // I4: the lease ended at most at 5 + 100; a renewal at 500 cannot succeed.
        let history = vec![
            acquire(0, 5, 100, Outcome::Ok(1)),
            op(
                500,
                Some(501),
                LeaseOp::Renew {
                    token: 1,
                    ttl_ms: 100,
                    outcome: Outcome::Ok(100),
                },
            ),
        ];
        assert!(check(&LeaseModel, &history).is_err());
    }

    #[test]
    fn verify_and_renew_answer_the_time_the_lease_has_left() {
        let granted = acquire(0, 5, 1_000, Outcome::Ok(1));
        let verify = |invoke: u64, ret: u64, ms_left: u64| {
            op(
                invoke,
                Some(ret),
                LeaseOp::Verify {
                    token: 1,
                    outcome: Outcome::Ok(ms_left),
                },
            )
        };
        let renew = |invoke: u64, ret: u64, ttl_ms: u64, ms_left: u64| {
            op(
                invoke,
                Some(ret),
                LeaseOp::Renew {
                    token: 1,
                    ttl_ms,
                    outcome: Outcome::Ok(ms_left),
                },
            )
        };
        let ok = |history: Vec<Entry<LeaseOp>>| linearizable(&history);
        // The deadline is between 1 000 and 1 005: at 100 to 110, 890 to 905 ms are left.
        assert!(ok(vec![granted.clone(), verify(100, 110, 900)]));
        assert!(ok(vec![granted.clone(), verify(100, 110, 890)]));
        assert!(!ok(vec![granted.clone(), verify(100, 110, 880)]));
        assert!(!ok(vec![granted.clone(), verify(100, 110, 910)]));
        // A first answer narrows the deadline for the next one (1 000 to 1 002 here).
        assert!(ok(vec![
            granted.clone(),
            verify(100, 102, 900),
            verify(500, 500, 502)
        ]));
        assert!(!ok(vec![
            granted.clone(),
            verify(100, 102, 900),
            verify(500, 500, 504)
        ]));
        // A renewal answers its own TTL, and moves the deadline.
        assert!(ok(vec![
            granted.clone(),
            renew(100, 110, 300, 300),
            verify(200, 200, 205)
        ]));
        assert!(!ok(vec![granted.clone(), renew(100, 110, 300, 299)]));
        assert!(!ok(vec![
            granted,
            renew(100, 110, 300, 300),
            verify(200, 200, 700)
        ]));
    }

    #[test]
    fn rejects_a_release_that_vouches_for_a_lapsed_superseded_lease() {
        // Lease 1 ended at most at 5 + 100; lease 2 was granted after it; an OK for releasing
        // lease 1 afterwards would claim it was still live.
        let release_1 = released(500, 501, 1);
        let history = vec![
            acquire(0, 5, 100, Outcome::Ok(1)),
            acquire(200, 201, 1000, Outcome::Ok(2)),
            release_1,
        ];
        assert!(check(&LeaseModel, &history).is_err());
        // Released while it was certainly live, it is fine.
        let in_time = vec![acquire(0, 5, 1000, Outcome::Ok(1)), released(500, 501, 1)];
        assert!(linearizable(&in_time));
        // Unknown, it may have done nothing.
        let unknown = vec![
            acquire(0, 5, 100, Outcome::Ok(1)),
            acquire(200, 201, 1000, Outcome::Ok(2)),
            op(
                500,
                Some(501),
                LeaseOp::Release {
                    token: 1,
                    outcome: Outcome::Unknown,
                },
            ),
        ];
        assert!(linearizable(&unknown));
    }

    #[test]
    fn rejects_stale_while_the_lease_must_be_live() {
        let history = vec![
            acquire(0, 5, 1000, Outcome::Ok(1)),
            op(
                10,
                Some(12),
                LeaseOp::Verify {
                    token: 1,
                    outcome: fail("STALE"),
                },
            ),
        ];
        assert!(check(&LeaseModel, &history).is_err());
        // After a crash the server forgot it: STALE is right, and the lock stays closed.
        let crashed = vec![
            acquire(0, 5, 1000, Outcome::Ok(1)),
            op(8, Some(8), LeaseOp::Crash),
            op(
                10,
                Some(12),
                LeaseOp::Verify {
                    token: 1,
                    outcome: fail("STALE"),
                },
            ),
        ];
        assert!(linearizable(&crashed));
        let mut granted_in_grace = crashed.clone();
        granted_in_grace.push(acquire(20, 25, 1000, Outcome::Ok(2)));
        assert!(check(&LeaseModel, &granted_in_grace).is_err());
    }

    #[test]
    fn shared_holders_coexist_but_not_with_an_exclusive_one() {
        let history = vec![shared(0, 5, 1000, 1), shared(10, 15, 1000, 2)];
        assert!(linearizable(&history));
        let mut mixed = history.clone();
        mixed.push(acquire(20, 25, 1000, Outcome::Ok(3)));
        assert!(check(&LeaseModel, &mixed).is_err());
        assert_eq!(judge(&history, "lock a"), Ok(true));
        let message = judge(&mixed, "lock a").unwrap_err();
        assert!(
            message.starts_with("lock a: history not linearizable (2 of 3 operations placed)"),
            "{message}"
        );
        assert!(message.contains("outcome: Ok(3)"), "{message}");
    }

    #[test]
    fn unknown_outcomes_may_or_may_not_have_happened() {
        let history = vec![
            Entry {
                invoke: 0,
                ret: None,
                op: LeaseOp::Acquire {
                    ttl_ms: 1000,
                    shared: false,
                    steal: false,
                    ephemeral: false,
                    lock_delay_ms: 0,
                    kept: false,
                    outcome: Outcome::Unknown,
                    free_within_ms: None,
                },
            },
            acquire(10, 15, 1000, Outcome::Fail("LOCKED".into())),
            acquire(2000, 2005, 1000, Outcome::Ok(4)),
        ];
        assert!(linearizable(&history));
        // LOCKED with nothing that could hold the lock is wrong.
        let locked_for_nothing = vec![acquire(10, 15, 1000, Outcome::Fail("LOCKED".into()))];
        assert!(check(&LeaseModel, &locked_for_nothing).is_err());
    }

    #[test]
    fn a_steal_evicts_and_the_victim_is_stale() {
        let mut steal = acquire(10, 15, 1000, Outcome::Ok(2));
        if let LeaseOp::Acquire { steal: s, .. } = &mut steal.op {
            *s = true;
        }
        let history = vec![
            acquire(0, 5, 1000, Outcome::Ok(1)),
            steal,
            op(
                20,
                Some(25),
                LeaseOp::Renew {
                    token: 1,
                    ttl_ms: 10,
                    outcome: fail("STALE"),
                },
            ),
        ];
        assert!(linearizable(&history));
    }

    #[test]
    fn a_retried_renewal_may_have_run_before_its_refusal() {
        // Seed 527: a 3566 ms lease renewed for 1043 ms; that reply was lost, the retry
        // found the shortened lease expired, and the lock went to the next holder early.
        let renew = |outcome| LeaseOp::Renew {
            token: 22,
            ttl_ms: 1_043,
            outcome,
        };
        let mut history = vec![
            acquire(9_083, 9_989, 3_566, Outcome::Ok(22)),
            op(10_032, Some(12_290), renew(fail("EXPIRED"))),
            acquire(9_669, 11_107, 1_004, Outcome::Ok(25)),
        ];
        assert!(check(&LeaseModel, &history).is_err());
        // The copy sent first, possible until its connection closed on the server side.
        history.push(op(10_032, Some(12_232), renew(Outcome::Unknown)));
        assert!(linearizable(&history));
    }

    /// A QUERY listing `(token, shared)` holders, each with the ms left that puts its
    /// deadline 1 000 ms after the query's start.
    fn query(invoke: u64, ret: u64, listed: &[(u64, bool)]) -> Entry<LeaseOp> {
        let listed = listed.iter().map(|&(token, shared)| Listed {
            token,
            shared,
            ms_left: 1_000u64.saturating_sub(invoke),
        });
        op(
            invoke,
            Some(ret),
            LeaseOp::Query {
                outcome: Outcome::Ok(Listing {
                    holders: listed.collect(),
                    delay_ms_left: 0,
                }),
            },
        )
    }

    #[test]
    fn a_query_lists_exactly_the_leases_certainly_live() {
        let granted = acquire(0, 5, 1_000, Outcome::Ok(1));
        let ok = |history: Vec<Entry<LeaseOp>>| linearizable(&history);
        assert!(ok(vec![granted.clone(), query(10, 20, &[(1, false)])]));
        // Left out while certainly live, listed in the wrong mode, or a token never granted.
        assert!(!ok(vec![granted.clone(), query(10, 20, &[])]));
        assert!(!ok(vec![granted.clone(), query(10, 20, &[(1, true)])]));
        assert!(!ok(vec![
            granted.clone(),
            query(10, 20, &[(1, false), (2, false)])
        ]));
        // Listed after it was released, or left out once it may have lapsed (not before).
        let release = released(30, 40, 1);
        assert!(!ok(vec![
            granted.clone(),
            release.clone(),
            query(50, 60, &[(1, false)])
        ]));
        assert!(ok(vec![granted.clone(), release, query(50, 60, &[])]));
        assert!(ok(vec![granted.clone(), query(990, 1_010, &[])]));
        // Listed with more time left than the lease can have.
        let mut late = query(10, 20, &[(1, false)]);
        if let LeaseOp::Query {
            outcome: Outcome::Ok(listing),
        } = &mut late.op
        {
            listing.holders.iter_mut().for_each(|l| l.ms_left += 10);
        }
        assert!(!ok(vec![granted.clone(), late]));
        assert!(!ok(vec![
            granted.clone(),
            query(5_990, 6_010, &[(1, false)])
        ]));
        // A query concurrent with the grant may come before it.
        assert!(ok(vec![
            acquire(0, 50, 1_000, Outcome::Ok(1)),
            query(10, 20, &[])
        ]));
        // A grant whose reply nobody saw may be any holder listed.
        let unseen = acquire(0, 5, 1_000, Outcome::Unknown);
        assert!(ok(vec![unseen.clone(), query(10, 20, &[(9, false)])]));
        assert!(ok(vec![unseen, query(10, 20, &[])]));
        // Shared holders are listed together; a crash forgets them all.
        let two = vec![shared(0, 5, 1_000, 1), shared(1, 6, 1_000, 2)];
        let mut listed = two.clone();
        listed.push(query(10, 20, &[(1, true), (2, true)]));
        assert!(ok(listed));
        let mut one_missing = two.clone();
        one_missing.push(query(10, 20, &[(2, true)]));
        assert!(!ok(one_missing));
        let mut crashed = two;
        crashed.push(op(8, Some(8), LeaseOp::Crash));
        crashed.push(query(10, 20, &[]));
        assert!(ok(crashed.clone()));
        crashed.push(query(30, 40, &[(1, true)]));
        assert!(!ok(crashed));
    }

    #[test]
    fn an_expired_lease_keeps_its_lock_delay_a_released_one_does_not() {
        let delayed = |invoke: u64, ret: u64, outcome: Outcome<u64>| {
            let mut entry = acquire(invoke, ret, 1_000, outcome);
            if let LeaseOp::Acquire { lock_delay_ms, .. } = &mut entry.op {
                *lock_delay_ms = 500;
            }
            entry
        };
        let ok = |history: Vec<Entry<LeaseOp>>| linearizable(&history);
        let locked = |invoke: u64| acquire(invoke, invoke + 10, 1_000, fail("LOCKED"));
        // Expired at 1 000 to 1 005: nothing is granted before 1 500, LOCKED until 1 505.
        let first = delayed(0, 5, Outcome::Ok(1));
        assert!(!ok(vec![
            first.clone(),
            acquire(1_200, 1_210, 100, Outcome::Ok(2))
        ]));
        assert!(ok(vec![
            first.clone(),
            acquire(1_495, 1_500, 100, Outcome::Ok(2))
        ]));
        assert!(ok(vec![first.clone(), locked(1_200)]));
        assert!(!ok(vec![first.clone(), locked(1_600)]));
        // A steal ends the lock-delay; a release leaves none.
        let mut steal = acquire(1_200, 1_210, 100, Outcome::Ok(2));
        if let LeaseOp::Acquire { steal, .. } = &mut steal.op {
            *steal = true;
        }
        assert!(ok(vec![first.clone(), steal]));
        let release = released(100, 110, 1);
        assert!(ok(vec![
            first.clone(),
            release.clone(),
            acquire(200, 210, 100, Outcome::Ok(2))
        ]));
        assert!(!ok(vec![first.clone(), release, locked(200)]));
        // Found gone by a VERIFY, it still keeps the lock through its lock-delay.
        let expired = op(
            1_100,
            Some(1_110),
            LeaseOp::Verify {
                token: 1,
                outcome: fail("EXPIRED"),
            },
        );
        assert!(!ok(vec![
            first.clone(),
            expired.clone(),
            acquire(1_200, 1_210, 100, Outcome::Ok(2))
        ]));
        assert!(ok(vec![first.clone(), expired.clone(), locked(1_200)]));
        assert!(ok(vec![
            first,
            expired,
            acquire(1_500, 1_510, 100, Outcome::Ok(2))
        ]));
    }

    #[test]
    fn a_query_reports_the_lock_delay_running() {
        let mut first = acquire(0, 5, 1_000, Outcome::Ok(1));
        if let LeaseOp::Acquire { lock_delay_ms, .. } = &mut first.op {
            *lock_delay_ms = 500;
        }
        let delayed = |delay_ms_left: u64| {
            op(
                1_100,
                Some(1_110),
                LeaseOp::Query {
                    outcome: Outcome::Ok(Listing {
                        holders: Vec::new(),
                        delay_ms_left,
                    }),
                },
            )
        };
        // Expired at 1 000 to 1 005: its lock-delay ends at 1 500 to 1 505.
        assert!(linearizable(&[first.clone(), delayed(395)]));
        assert!(!linearizable(&[first.clone(), delayed(0)]));
        assert!(!linearizable(&[first.clone(), delayed(450)]));
        // Released: no lock-delay.
        let release = released(100, 110, 1);
        assert!(linearizable(&[first.clone(), release.clone(), delayed(0)]));
        assert!(!linearizable(&[first, release, delayed(395)]));
    }

    #[test]
    fn locked_says_when_the_lock_is_free_at_the_latest() {
        let granted = acquire(0, 5, 1_000, Outcome::Ok(1));
        let locked = |within: u64| {
            let mut entry = acquire(100, 110, 100, fail("LOCKED"));
            if let LeaseOp::Acquire { free_within_ms, .. } = &mut entry.op {
                *free_within_ms = Some(within);
            }
            entry
        };
        // The lease lasts until 1 000 at least: at 100 to 110, "free in at most 890" is right.
        assert!(linearizable(&[granted.clone(), locked(890)]));
        assert!(linearizable(&[granted.clone(), locked(2_000)]));
        assert!(!linearizable(&[granted, locked(500)]));
    }

    #[test]
    fn memoisation_keeps_wide_concurrency_cheap() {
        // 60 concurrent failed acquires around one grant: without memoisation, 60! orders.
        let mut history = vec![acquire(0, 1_000, 10_000, Outcome::Ok(1))];
        for i in 0..60 {
            history.push(acquire(i, 2_000 + i, 10, Outcome::Fail("NOTREADY".into())));
        }
        assert!(linearizable(&history));
    }
}
