//! The driver against a deterministic in-memory etcd.
#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::*;

#[derive(Default)]
struct FakeEtcd {
    revision: u64,
    /// key -> (value, create revision, mod revision, lease)
    keys: BTreeMap<Vec<u8>, (Vec<u8>, u64, u64, i64)>,
    leases: BTreeMap<i64, bool>,
    next_lease: i64,
    history: Vec<(u64, WatchEvent)>,
}

impl FakeEtcd {
    fn put(&mut self, key: &[u8], value: &[u8], lease: i64) -> u64 {
        self.revision += 1;
        let create = self.keys.get(key).map_or(self.revision, |kv| kv.1);
        self.keys
            .insert(key.to_vec(), (value.to_vec(), create, self.revision, lease));
        let kv = KeyValue::new(key.to_vec(), value.to_vec(), create, self.revision);
        self.history.push((self.revision, WatchEvent::Put(kv)));
        self.revision
    }

    /// A put within the transaction of the last revision.
    fn put_at(&mut self, key: &[u8], value: &[u8]) {
        let create = self.keys.get(key).map_or(self.revision, |kv| kv.1);
        self.keys
            .insert(key.to_vec(), (value.to_vec(), create, self.revision, 0));
        let kv = KeyValue::new(key.to_vec(), value.to_vec(), create, self.revision);
        self.history.push((self.revision, WatchEvent::Put(kv)));
    }

    /// A range deletion within the transaction of the last revision.
    fn delete_range_at(&mut self, from: &[u8], end: &[u8]) {
        let doomed: Vec<Vec<u8>> = self
            .keys
            .range(from.to_vec()..end.to_vec())
            .map(|(key, _)| key.clone())
            .collect();
        for key in doomed {
            self.keys.remove(&key);
            let kv = KeyValue::new(key, Vec::new(), 0, self.revision);
            self.history.push((self.revision, WatchEvent::Delete(kv)));
        }
    }

    fn kv(&self, key: &[u8]) -> KeyValue {
        self.keys.get(key).map_or_else(KeyValue::default, |kv| {
            KeyValue::new(key.to_vec(), kv.0.clone(), kv.1, kv.2)
        })
    }

    fn expire(&mut self, lease: i64) {
        self.leases.insert(lease, false);
        let doomed: Vec<Vec<u8>> = self
            .keys
            .iter()
            .filter(|(_, kv)| kv.3 == lease)
            .map(|(key, _)| key.clone())
            .collect();
        for key in doomed {
            self.keys.remove(&key);
            self.revision += 1;
            let kv = KeyValue::new(key, Vec::new(), 0, self.revision);
            self.history.push((self.revision, WatchEvent::Delete(kv)));
        }
    }

    fn perform(&mut self, op: &EtcdOp) -> Option<EtcdResult> {
        Some(match op {
            EtcdOp::GrantLease { .. } => {
                self.next_lease += 1;
                self.leases.insert(self.next_lease, true);
                EtcdResult::LeaseGranted {
                    lease: self.next_lease,
                }
            }
            EtcdOp::KeepAlive { lease, .. } => EtcdResult::KeepAlive {
                ttl_s: if self.leases.get(lease) == Some(&true) {
                    5
                } else {
                    0
                },
            },
            EtcdOp::Revoke { lease, .. } => {
                self.expire(*lease);
                EtcdResult::Done
            }
            EtcdOp::Campaign {
                key, value, lease, ..
            } => {
                let won = !self.keys.contains_key(key);
                if won {
                    self.put(key, value, *lease);
                }
                EtcdResult::Campaign {
                    won,
                    leader: self.kv(key),
                }
            }
            EtcdOp::Append {
                election_key,
                term,
                committed_key,
                batches,
                compaction,
                ..
            } => {
                // etcd refuses a transaction that puts a key twice or inside a range it deletes.
                let mut keys: Vec<&Vec<u8>> = batches.iter().map(|batch| &batch.key).collect();
                keys.sort();
                keys.dedup();
                let deleted = compaction.as_ref().is_some_and(|compaction| {
                    batches.iter().any(|batch| {
                        batch.key >= compaction.delete_from && batch.key < compaction.delete_end
                    })
                });
                if keys.len() != batches.len() || deleted {
                    return Some(EtcdResult::Failed {
                        reason: "etcdserver: duplicate key given in txn request".into(),
                    });
                }
                let ok = self.kv(election_key).create_revision == *term
                    && committed_key
                        .as_ref()
                        .map_or(true, |key| self.kv(key).create_revision != 0);
                let missing: Vec<&LogWrite> = batches
                    .iter()
                    .filter(|batch| self.kv(&batch.key).create_revision == 0)
                    .collect();
                if ok && !missing.is_empty() {
                    // One transaction, one revision, as etcd does it; the batches etcd has
                    // already are skipped.
                    self.revision += 1;
                    for batch in missing {
                        self.put_at(&batch.key, &batch.value);
                    }
                    if let Some(compaction) = compaction {
                        self.put_at(&compaction.snapshot_key, &compaction.snapshot);
                        self.delete_range_at(&compaction.delete_from, &compaction.delete_end);
                    }
                }
                EtcdResult::Append {
                    succeeded: ok,
                    revision: self.revision,
                }
            }
            EtcdOp::Range { prefix, .. } => EtcdResult::Range {
                revision: self.revision,
                kvs: self
                    .keys
                    .keys()
                    .filter(|key| key.starts_with(prefix))
                    .map(|key| self.kv(key))
                    .collect(),
            },
            EtcdOp::Watch { .. } | EtcdOp::CancelWatch { .. } => return None,
        })
    }
}

struct Watch {
    id: OpId,
    prefix: Vec<u8>,
    next: u64,
}

struct Harness {
    etcd: FakeEtcd,
    nodes: Vec<ClusterNode>,
    watches: Vec<Vec<Watch>>,
    /// A paused node's operations wait here (a process stopped, or cut off from etcd).
    paused: Vec<bool>,
    parked: Vec<Vec<EtcdOp>>,
    dead: Vec<bool>,
    /// Bytes each connection received: (node, conn) -> bytes.
    received: BTreeMap<(usize, ConnId), Vec<u8>>,
    now: Instant,
    /// Deliver watch events before a campaign's answer (as a real network may).
    watch_first: bool,
    /// The appends each new node keeps in flight.
    pipeline_depth: usize,
}

impl Harness {
    fn new(count: usize) -> Harness {
        let mut harness = Harness {
            etcd: FakeEtcd::default(),
            nodes: Vec::new(),
            watches: Vec::new(),
            paused: Vec::new(),
            parked: Vec::new(),
            dead: Vec::new(),
            received: BTreeMap::new(),
            now: Instant(1000),
            watch_first: false,
            pipeline_depth: DEFAULT_PIPELINE_DEPTH,
        };
        for _ in 0..count {
            harness.add_node_with(|_| {});
        }
        harness
    }

    /// A harness whose nodes keep up to 4 appends in flight.
    fn pipelined(count: usize) -> Harness {
        let mut harness = Harness::new(0);
        harness.pipeline_depth = 4;
        for _ in 0..count {
            harness.add_node_with(|_| {});
        }
        harness
    }

    /// A harness whose nodes store a snapshot every `every` batches.
    fn with_snapshots(count: usize, every: u64) -> Harness {
        let mut harness = Harness::new(0);
        for _ in 0..count {
            harness.add_node(every);
        }
        harness
    }

    /// Starts one more node (a late joiner, or a member of a new cluster).
    fn add_node(&mut self, snapshot_every: u64) -> usize {
        self.add_node_with(|config| config.snapshot_every = snapshot_every)
    }

    /// Starts one more node with its configuration changed by `edit`.
    fn add_node_with(&mut self, edit: impl FnOnce(&mut ClusterConfig)) -> usize {
        let index = self.nodes.len();
        let mut config = ClusterConfig::new("test", &alloc::format!("127.0.0.1:{}", 7381 + index));
        config.pipeline_depth = self.pipeline_depth;
        edit(&mut config);
        self.nodes.push(ClusterNode::new(
            self.now,
            config,
            Config::default(),
            ServerConfig::default(),
        ));
        self.watches.push(Vec::new());
        self.paused.push(false);
        self.parked.push(Vec::new());
        self.dead.push(false);
        self.pump();
        index
    }

    fn pump(&mut self) {
        for _ in 0..100 {
            let mut progress = false;
            for index in 0..self.nodes.len() {
                if self.dead[index] {
                    continue;
                }
                while let Some(output) = self.nodes[index].poll_output() {
                    if let Output::Transmit { conn, bytes } = output {
                        self.received
                            .entry((index, conn))
                            .or_default()
                            .extend_from_slice(&bytes);
                    }
                }
                while let Some(op) = self.nodes[index].poll_etcd() {
                    progress = true;
                    self.parked[index].push(op);
                }
                if self.paused[index] {
                    continue;
                }
                for op in core::mem::take(&mut self.parked[index]) {
                    // Its answer may make the node ask for more.
                    progress = true;
                    match &op {
                        EtcdOp::Watch {
                            id,
                            prefix,
                            start_revision,
                        } => self.watches[index].push(Watch {
                            id: *id,
                            prefix: prefix.clone(),
                            next: *start_revision,
                        }),
                        EtcdOp::CancelWatch { watch } => {
                            self.watches[index].retain(|w| w.id != *watch);
                        }
                        _ => {}
                    }
                    if let Some(result) = self.etcd.perform(&op) {
                        if self.watch_first && matches!(op, EtcdOp::Campaign { .. }) {
                            self.deliver(index);
                        }
                        self.nodes[index].handle_etcd(self.now, op.id(), result);
                    }
                }
                progress |= self.deliver(index);
            }
            if !progress {
                return;
            }
        }
    }

    /// Delivers the watch events a node has not seen; returns true if there were any.
    fn deliver(&mut self, index: usize) -> bool {
        let mut progress = false;
        {
            {
                for w in 0..self.watches[index].len() {
                    let watch = &self.watches[index][w];
                    let events: Vec<WatchEvent> = self
                        .etcd
                        .history
                        .iter()
                        .filter(|(rev, event)| {
                            let key = match event {
                                WatchEvent::Put(kv) | WatchEvent::Delete(kv) => &kv.key,
                            };
                            *rev >= watch.next && key.starts_with(&watch.prefix)
                        })
                        .map(|(_, event)| event.clone())
                        .collect();
                    if !events.is_empty() {
                        progress = true;
                        let id = watch.id;
                        self.watches[index][w].next = self.etcd.revision + 1;
                        self.nodes[index].handle_etcd(self.now, id, EtcdResult::Events(events));
                    }
                }
            }
        }
        progress
    }

    fn advance(&mut self, ms: u64) {
        self.now = self.now.plus_ms(ms);
        for index in 0..self.nodes.len() {
            // A paused node still runs; only its etcd calls wait.
            if !self.dead[index] {
                self.nodes[index].handle_timeout(self.now);
            }
        }
        self.pump();
    }

    fn leader(&self) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| !self.dead[i] && self.nodes[i].role() == Role::Leader)
    }

    fn connect(&mut self, node: usize) -> ConnId {
        let conn = self.nodes[node].connect(self.now);
        self.pump();
        conn
    }

    fn send(&mut self, node: usize, conn: ConnId, args: &[&str]) {
        let mut bytes = alloc::format!("*{}\r\n", args.len());
        for arg in args {
            bytes.push_str(&alloc::format!("${}\r\n{arg}\r\n", arg.len()));
        }
        self.nodes[node].receive(self.now, conn, bytes.as_bytes());
        self.pump();
    }

    /// Takes the replies a connection got so far, decoded as text.
    fn replies(&mut self, node: usize, conn: ConnId) -> Vec<String> {
        let bytes = self.received.remove(&(node, conn)).unwrap_or_default();
        let mut decoder = Decoder::new(DecoderLimits::default());
        decoder.feed(&bytes);
        let mut out = Vec::new();
        while let Ok(Some(value)) = decoder.next_value() {
            out.push(match value {
                Value::Integer(n) => n.to_string(),
                Value::Error(text) => alloc::format!("-{text}"),
                other => other
                    .as_text()
                    .unwrap_or_else(|| alloc::format!("{other:?}")),
            });
        }
        out
    }

    fn call(&mut self, node: usize, conn: ConnId, args: &[&str]) -> String {
        self.send(node, conn, args);
        let mut replies = self.replies(node, conn);
        assert_eq!(replies.len(), 1, "one reply to {args:?}: {replies:?}");
        replies.remove(0)
    }

    /// Takes the appends a paused node asked for and etcd has not seen yet, by log index;
    /// its other operations stay parked.
    fn take_appends(&mut self, node: usize) -> BTreeMap<u64, EtcdOp> {
        self.pump();
        let config = self.nodes[node].config().clone();
        let mut appends = BTreeMap::new();
        for op in core::mem::take(&mut self.parked[node]) {
            match append_index(&config, &op) {
                Some(index) => {
                    appends.insert(index, op);
                }
                None => self.parked[node].push(op),
            }
        }
        appends
    }

    /// The log indexes of the appends a paused node has waiting, without taking them.
    fn parked_appends(&mut self, node: usize) -> Vec<u64> {
        self.pump();
        let config = self.nodes[node].config().clone();
        self.parked[node]
            .iter()
            .filter_map(|op| append_index(&config, op))
            .collect()
    }

    /// Lets the fake etcd perform `op` now, without telling the node.
    fn apply(&mut self, op: &EtcdOp) -> EtcdResult {
        self.etcd.perform(op).expect("an operation with an answer")
    }

    /// Gives a node the answer to its operation `id` (the node may still be paused).
    fn answer(&mut self, node: usize, id: OpId, result: EtcdResult) {
        self.nodes[node].handle_etcd(self.now, id, result);
        self.pump();
    }

    /// The node's watch fails (etcd compacted the revisions it needed), unseen by etcd.
    fn fail_watch(&mut self, node: usize) {
        let watch = self.nodes[node].watch.expect("a watch");
        let reason = "compacted".into();
        self.nodes[node].handle_etcd(self.now, watch, EtcdResult::Failed { reason });
        self.watches[node].clear();
    }

    fn kill(&mut self, node: usize) {
        self.dead[node] = true;
        let leases: Vec<i64> = self.nodes[node].lease.into_iter().collect();
        for lease in leases {
            self.etcd.expire(lease);
        }
        self.pump();
    }
}

/// The log index of an append: its own (last) batch's.
fn append_index(config: &ClusterConfig, op: &EtcdOp) -> Option<u64> {
    match op {
        EtcdOp::Append { batches, .. } => config.log_index(&batches.last()?.key),
        _ => None,
    }
}

fn token(reply: &str) -> u64 {
    reply
        .parse()
        .unwrap_or_else(|_| panic!("a token, got {reply}"))
}

#[test]
fn the_first_node_leads_and_the_others_follow() {
    let mut h = Harness::new(3);
    assert_eq!(h.leader(), Some(0));
    assert_eq!(h.nodes[1].role(), Role::Follower);
    assert_eq!(h.nodes[1].leader(), Some("127.0.0.1:7381"));
    let conn = h.connect(1);
    assert_eq!(
        h.call(1, conn, &["ACQUIRE", "a", "1000"]),
        "-MOVED 127.0.0.1:7381"
    );
    assert_eq!(h.call(1, conn, &["PING"]), "PONG");
}

#[test]
fn followers_replay_the_log_exactly() {
    let mut h = Harness::new(3);
    let conn = h.connect(0);
    let first = token(&h.call(0, conn, &["ACQUIRE", "a", "5000"]));
    let second = token(&h.call(0, conn, &["ACQUIRE", "b", "100", "SHARED"]));
    assert!(second > first);
    assert_eq!(
        h.call(0, conn, &["RENEW", "a", &first.to_string(), "9000"]),
        "9000"
    );
    h.advance(200); // b expires on the leader: a logged tick
    let waiter = h.connect(0);
    h.send(0, waiter, &["ACQUIRE", "a", "1000", "WAIT", "5000"]);
    assert_eq!(h.call(0, conn, &["RELEASE", "a", &first.to_string()]), "OK");
    let granted = token(&h.replies(0, waiter)[0]);
    assert!(granted > second);
    for follower in 1..3 {
        let (leader, replica) = (h.nodes[0].engine(), h.nodes[follower].engine());
        assert_eq!(replica.last_token(), leader.last_token());
        assert_eq!(replica.live_leases(), leader.live_leases());
        assert_eq!(replica.stats(), leader.stats());
        assert_eq!(replica.now(), leader.now());
        assert_eq!(h.nodes[follower].log_index(), h.nodes[0].log_index());
    }
    let lead_locks = h.nodes[0].server.engine_mut().query(Instant(1200), "");
    let replica_locks = h.nodes[1].server.engine_mut().query(Instant(1200), "");
    assert_eq!(lead_locks, replica_locks);
}

#[test]
fn replies_wait_for_the_append_and_turns_are_batched() {
    // One append in flight at a time: what arrives meanwhile forms one batch.
    let mut h = Harness::new(0);
    for _ in 0..2 {
        h.add_node_with(|config| config.pipeline_depth = 1);
    }
    let (one, two, three) = (h.connect(0), h.connect(0), h.connect(0));
    h.paused[0] = true;
    h.send(0, one, &["ACQUIRE", "x", "1000"]);
    h.send(0, two, &["ACQUIRE", "y", "1000"]);
    h.send(0, three, &["ACQUIRE", "z", "1000"]);
    assert!(
        h.replies(0, one).is_empty(),
        "no reply before etcd has the entry"
    );
    assert_eq!(h.parked_appends(0), vec![1], "one append in flight");
    h.paused[0] = false;
    h.pump();
    assert_eq!(h.replies(0, one).len(), 1);
    assert_eq!(h.replies(0, two).len(), 1);
    assert_eq!(h.replies(0, three).len(), 1);
    // The first turn's batch, then the two turns that waited for it in the next one.
    assert_eq!(h.nodes[0].log_index(), 2);
}

#[test]
fn a_new_leader_never_reissues_a_token_nor_grants_a_held_lock() {
    let mut h = Harness::new(3);
    let conn = h.connect(0);
    let held = token(&h.call(0, conn, &["ACQUIRE", "held", "60000"]));
    let mut tokens = vec![held];
    for _ in 0..5 {
        tokens.push(token(&h.call(0, conn, &["ACQUIRE", "other", "10"])));
        h.advance(20);
    }
    h.kill(0);
    let leader = h.leader().expect("a new leader");
    assert_ne!(leader, 0);
    let conn = h.connect(leader);
    let reply = h.call(leader, conn, &["ACQUIRE", "held", "1000"]);
    assert!(reply.starts_with("-LOCKED"), "{reply}");
    assert!(h
        .call(leader, conn, &["VERIFY", "held", &held.to_string()])
        .parse::<u64>()
        .is_ok());
    let fresh = token(&h.call(leader, conn, &["ACQUIRE", "new", "1000"]));
    assert!(
        tokens.iter().all(|&old| fresh > old),
        "{fresh} > {tokens:?}"
    );
    // And again to a third leader.
    h.kill(leader);
    let third = h.leader().expect("a third leader");
    let conn = h.connect(third);
    let later = token(&h.call(third, conn, &["ACQUIRE", "later", "1000"]));
    assert!(later > fresh);
    assert!(h
        .call(third, conn, &["ACQUIRE", "new", "1000"])
        .starts_with("-LOCKED"));
}

#[test]
fn ephemeral_leases_outlive_a_failover_until_their_ttl_and_waits_end() {
    let mut h = Harness::new(3);
    let holder = h.connect(0);
    let eph = token(&h.call(0, holder, &["ACQUIRE", "eph", "2000", "EPHEMERAL"]));
    // A second client waits behind it on the old leader.
    let waiter = h.connect(0);
    h.send(0, waiter, &["ACQUIRE", "eph", "1000", "WAIT", "60000"]);
    h.advance(10);
    assert!(h.replies(0, waiter).is_empty(), "queued");
    h.kill(0);
    let leader = h.leader().expect("a new leader");
    for node in 1..3 {
        // Every replica applied the same orphaning (it is logged): the lease is plain now.
        let engine = h.nodes[node].engine();
        engine.check_invariants().expect("invariants");
    }
    let conn = h.connect(leader);
    // Held until its TTL, not ended with the old leader's connection ...
    let left: u64 = h
        .call(leader, conn, &["VERIFY", "eph", &eph.to_string()])
        .parse()
        .expect("the EPHEMERAL lease is still held after the failover");
    assert!(left > 1500, "{left}");
    assert!(h
        .call(leader, conn, &["ACQUIRE", "eph", "1000"])
        .starts_with("-LOCKED"));
    // ... and the wait of the old leader's client did not take the lock when it frees.
    // (Time moves in steps, so the leader's keep-alives are confirmed on the way.)
    for _ in 0..21 {
        h.advance(100);
    }
    assert!(h
        .call(leader, conn, &["VERIFY", "eph", &eph.to_string()])
        .starts_with('-'));
    let next = token(&h.call(leader, conn, &["ACQUIRE", "eph", "1000"]));
    assert!(next > eph);
    // A connection to the new leader that closes still ends its EPHEMERAL lease at once.
    let other = h.connect(leader);
    token(&h.call(leader, other, &["ACQUIRE", "gone", "60000", "EPHEMERAL"]));
    h.nodes[leader].disconnect(h.now, other);
    h.pump();
    let again = h.call(leader, conn, &["ACQUIRE", "gone", "1000"]);
    assert!(again.parse::<u64>().is_ok(), "{again}");
}

#[test]
fn a_new_leader_grants_nothing_to_the_clients_it_orphans() {
    let mut h = Harness::new(3);
    let holder = h.connect(0);
    let held = token(&h.call(0, holder, &["ACQUIRE", "l", "60000", "SHARED"]));
    // An exclusive wait, then a shared one behind it (queued: the exclusive one is first).
    let exclusive = h.connect(0);
    h.send(0, exclusive, &["ACQUIRE", "l", "1000", "WAIT", "60000"]);
    h.advance(10);
    let shared = h.connect(0);
    h.send(
        0,
        shared,
        &["ACQUIRE", "l", "60000", "SHARED", "WAIT", "60000"],
    );
    h.advance(10);
    assert!(h.replies(0, exclusive).is_empty() && h.replies(0, shared).is_empty());
    h.kill(0);
    let leader = h.leader().expect("a new leader");
    // The old leader's clients are gone with it: withdrawing the exclusive wait must not
    // grant the lock to the shared wait of a client that is being orphaned too.
    for node in 1..3 {
        let engine = h.nodes[node].engine();
        engine.check_invariants().expect("invariants");
        let tokens: Vec<u64> = engine.leases().map(|lease| lease.token).collect();
        assert_eq!(tokens, vec![held], "node {node}");
        assert_eq!(engine.waiting(), 0, "node {node}");
    }
    let conn = h.connect(leader);
    // The lock is shared by the one lease that was granted, so a new shared lease joins it.
    assert!(token(&h.call(leader, conn, &["ACQUIRE", "l", "1000", "SHARED"])) > held);
}

#[test]
fn with_users_a_node_answers_noauth_before_moved_and_keeps_them_across_a_failover() {
    let mut h = Harness::new(2);
    let hash = crate::protocol::hash_password(b"secret", b"salt-salt-salt-1", 1000);
    let users = crate::protocol::Users::single(&hash).expect("users");
    for node in 0..2 {
        h.nodes[node].set_users(Some(users.clone()));
    }
    // The follower: nothing before AUTH, not even the leader's address.
    let conn = h.connect(1);
    let reply = h.call(1, conn, &["ACQUIRE", "a", "1000"]);
    assert!(reply.starts_with("-NOAUTH"), "{reply}");
    assert_eq!(h.call(1, conn, &["AUTH", "secret"]), "OK");
    let reply = h.call(1, conn, &["ACQUIRE", "a", "1000"]);
    assert!(reply.starts_with("-MOVED 127.0.0.1:7381"), "{reply}");
    // The leader.
    let conn = h.connect(0);
    assert!(h
        .call(0, conn, &["ACQUIRE", "a", "1000"])
        .starts_with("-NOAUTH"));
    assert_eq!(h.call(0, conn, &["AUTH", "secret"]), "OK");
    let first = token(&h.call(0, conn, &["ACQUIRE", "a", "1000"]));
    // The new leader, built from a follower's server, still asks.
    h.kill(0);
    assert_eq!(h.leader(), Some(1));
    let conn = h.connect(1);
    assert!(h
        .call(1, conn, &["ACQUIRE", "b", "1000"])
        .starts_with("-NOAUTH"));
    assert!(h
        .call(1, conn, &["AUTH", "wrong"])
        .starts_with("-WRONGPASS"));
    assert_eq!(h.call(1, conn, &["AUTH", "secret"]), "OK");
    assert!(token(&h.call(1, conn, &["ACQUIRE", "b", "1000"])) > first);
}

#[test]
fn metrics_name_the_leader_and_the_log() {
    let mut h = Harness::new(2);
    let conn = h.connect(0);
    token(&h.call(0, conn, &["ACQUIRE", "a", "60000"]));
    let now = h.now;
    let leader = h.nodes[0].metrics_text(now);
    let follower = h.nodes[1].metrics_text(now);
    assert!(
        leader.contains("\nfencelock_cluster_leader 1\n"),
        "{leader}"
    );
    assert!(
        follower.contains("\nfencelock_cluster_leader 0\n"),
        "{follower}"
    );
    let index = h.nodes[0].log_index();
    assert!(index >= 1);
    assert!(leader.contains(&alloc::format!("\nfencelock_cluster_log_index {index}\n")));
    assert!(follower.contains(&alloc::format!("\nfencelock_cluster_log_index {index}\n")));
    // The follower's replica holds the lease too: its lease gauge says so.
    let live = |text: &str| {
        text.lines()
            .find(|line| line.starts_with("fencelock_live_leases "))
            .map(String::from)
    };
    assert_eq!(live(&leader), live(&follower));
    assert!(
        live(&leader).is_some_and(|line| line.ends_with(" 1")),
        "{leader}"
    );
}

#[test]
fn time_resumes_from_the_last_logged_instant() {
    let mut h = Harness::new(2);
    let conn = h.connect(0);
    let lease = token(&h.call(0, conn, &["ACQUIRE", "a", "1000"]));
    h.kill(0);
    // A long gap before the new leader: the lease lasts its full TTL from the last entry.
    h.advance(5000);
    let leader = h.leader().expect("leader");
    let conn = h.connect(leader);
    let left: u64 = h
        .call(leader, conn, &["VERIFY", "a", &lease.to_string()])
        .parse()
        .expect("still held");
    assert!(left > 900, "{left}");
    h.advance(1001);
    assert!(h
        .call(leader, conn, &["VERIFY", "a", &lease.to_string()])
        .starts_with("-"));
}

#[test]
fn a_deposed_leader_answers_errors_never_grants() {
    let mut h = Harness::new(2);
    let conn = h.connect(0);
    let before = token(&h.call(0, conn, &["ACQUIRE", "before", "60000"]));
    // The leader stops reaching etcd; its lease runs out and node 1 takes over.
    h.paused[0] = true;
    h.send(0, conn, &["ACQUIRE", "contested", "60000"]);
    h.send(0, conn, &["PING"]);
    assert!(h.replies(0, conn).is_empty());
    let lease = h.nodes[0].lease.expect("lease");
    h.etcd.expire(lease);
    h.pump();
    // Node 0 still believes it leads: it cannot know yet, and it cannot grant either.
    assert_eq!(h.nodes[1].role(), Role::Leader);
    let other = h.connect(1);
    let winner = token(&h.call(1, other, &["ACQUIRE", "contested", "60000"]));
    assert!(winner > before);
    // The old leader comes back: its guarded append fails.
    h.paused[0] = false;
    h.pump();
    let replies = h.replies(0, conn);
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(
        replies.iter().all(|reply| reply.starts_with('-')),
        "{replies:?}"
    );
    assert_ne!(h.nodes[0].role(), Role::Leader);
    // It rejoins as a follower and replays the new leader's log.
    h.pump();
    assert_eq!(h.nodes[0].role(), Role::Follower);
    assert_eq!(h.nodes[0].engine().last_token(), winner);
}

#[test]
fn a_deposed_leader_never_says_a_wait_it_replicated_had_no_effect() {
    // A WAIT is queued and its ACQUIRE replicated; the wait then runs out on the leader, whose
    // append of that is refused: it was deposed. The request had an effect (the next leader
    // holds it queued, and may grant it), so its answer may not say "no effect" (found by
    // the cluster simulation's linearizability check).
    let mut h = Harness::new(2);
    let holder = h.connect(0);
    token(&h.call(0, holder, &["ACQUIRE", "a", "60000"]));
    let waiter = h.connect(0);
    h.send(0, waiter, &["ACQUIRE", "a", "1000", "WAIT", "300"]);
    assert!(h.replies(0, waiter).is_empty(), "queued");
    let queued_at = h.nodes[0].log_index();
    assert_eq!(
        h.nodes[1].log_index(),
        queued_at,
        "the queued ACQUIRE is replicated"
    );
    h.paused[0] = true;
    h.advance(400);
    assert!(
        h.replies(0, waiter).is_empty(),
        "the timeout waits for its append"
    );
    let lease = h.nodes[0].lease.expect("lease");
    h.etcd.expire(lease);
    h.pump();
    assert_eq!(h.nodes[1].role(), Role::Leader);
    h.paused[0] = false;
    h.pump();
    let replies = h.replies(0, waiter);
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(
        replies[0],
        alloc::format!("-{}", crate::error::NOT_LEADER_UNKNOWN),
        "{replies:?}"
    );
}

#[test]
fn a_leader_forgets_a_wait_once_its_answer_is_out() {
    // The connections whose next reply may complete a replicated WAIT: kept while that can
    // be, and no longer (nothing grows with connections that come and go).
    let mut h = Harness::new(1);
    let holder = h.connect(0);
    let held = token(&h.call(0, holder, &["ACQUIRE", "a", "60000"]));
    let granted = h.connect(0);
    h.send(0, granted, &["ACQUIRE", "a", "1000", "WAIT", "5000"]);
    let gone = h.connect(0);
    h.send(0, gone, &["ACQUIRE", "a", "1000", "WAIT", "5000"]);
    assert!(h.nodes[0].waited.contains(&granted) && h.nodes[0].waited.contains(&gone));
    let now = h.now;
    h.nodes[0].disconnect(now, gone);
    h.pump();
    assert!(!h.nodes[0].waited.contains(&gone), "closed");
    assert_eq!(
        h.call(0, holder, &["RELEASE", "a", &held.to_string()]),
        "OK"
    );
    token(&h.replies(0, granted).concat());
    assert!(h.nodes[0].waited.is_empty(), "answered and committed");
}

#[test]
fn a_leader_without_a_confirmed_lease_steps_down() {
    let mut h = Harness::new(2);
    h.paused[0] = true;
    h.advance(6000);
    assert_ne!(h.nodes[0].role(), Role::Leader);
}

#[test]
fn a_keep_alive_in_flight_asks_for_no_timer_in_the_past() {
    // etcd unreachable: each node's keep-alive goes unanswered for a while. A timer in the
    // past would have the host call `handle_timeout` again and again until the answer came
    // (a busy loop, found by the simulator); the leader still wakes when its lease may lapse.
    let mut h = Harness::new(2);
    h.paused = vec![true, true];
    // A keep-alive goes out after a third of the 2 s lease, and is still unanswered when the
    // next one would be due.
    h.advance(700);
    h.advance(700);
    for node in 0..2 {
        assert!(
            h.parked[node]
                .iter()
                .any(|op| matches!(op, EtcdOp::KeepAlive { .. })),
            "n{node} has a keep-alive in flight"
        );
        let now = h.now;
        h.nodes[node].handle_timeout(now);
        let due = h.nodes[node].poll_timeout();
        assert!(
            due.map_or(true, |at| at > now),
            "n{node} asks for a timer at {due:?}, at or before {now:?}"
        );
    }
    assert!(
        h.nodes[0].poll_timeout().is_some(),
        "the leader wakes to step down"
    );
    // Once the keep-alive is answered the next one is due, and goes out.
    h.paused = vec![false, false];
    h.pump();
    let now = h.now;
    assert!(h.nodes[1].poll_timeout().is_some_and(|at| at <= now));
    h.nodes[1].handle_timeout(now);
    assert!(matches!(
        h.nodes[1].poll_etcd(),
        Some(EtcdOp::KeepAlive { .. })
    ));
}

#[test]
fn a_follower_that_lost_its_watch_and_its_lease_reads_the_log_once() {
    // The watch fails (the follower reads the log again) and the lease is gone (it asks for a
    // new one); the new lease may come before the read. A second read then overwrote the
    // first's watch, which nobody cancelled, and a retry timer left by a failed one of the two
    // outlived a later step-down, in the past (found by the simulator, cluster seed 5742).
    let mut h = Harness::new(2);
    h.paused[1] = true;
    // A keep-alive goes out after a third of the lease; etcd no longer knows the lease.
    h.advance(700);
    let lease = h.nodes[1].lease.expect("a lease");
    h.etcd.expire(lease);
    h.fail_watch(1);
    h.pump();
    let take = |h: &mut Harness, pick: fn(&EtcdOp) -> bool| -> EtcdOp {
        let at = h.parked[1]
            .iter()
            .position(pick)
            .expect("a parked operation");
        h.parked[1].remove(at)
    };
    let keep_alive = take(&mut h, |op| matches!(op, EtcdOp::KeepAlive { .. }));
    let result = h.apply(&keep_alive);
    h.answer(1, keep_alive.id(), result);
    let grant = take(&mut h, |op| matches!(op, EtcdOp::GrantLease { .. }));
    let result = h.apply(&grant);
    h.answer(1, grant.id(), result);
    let ranges = h.parked[1]
        .iter()
        .filter(|op| matches!(op, EtcdOp::Range { .. }))
        .count();
    assert_eq!(ranges, 1, "one read of the log at a time");
    h.paused[1] = false;
    h.pump();
    assert_eq!(h.nodes[1].role(), Role::Follower);
    assert_eq!(h.watches[1].len(), 1, "one watch");
    assert_eq!(h.nodes[1].log_index(), h.nodes[0].log_index());
}

#[test]
fn a_campaign_whose_answer_was_lost_does_not_leave_the_cluster_leaderless() {
    // The campaign wrote the election key, bound to the node's lease, but its answer was lost:
    // the node does not know it won, and keeping its lease alive would keep the key, so that
    // no node would ever lead (found by the simulator).
    let mut h = Harness::new(2);
    h.paused[1] = true;
    h.kill(0);
    assert!(h.deliver(1), "n1 sees the leader's key deleted");
    h.pump();
    let campaign = h.parked[1]
        .iter()
        .position(|op| matches!(op, EtcdOp::Campaign { .. }))
        .expect("n1 campaigns");
    let op = h.parked[1].remove(campaign);
    assert!(matches!(
        h.apply(&op),
        EtcdResult::Campaign { won: true, .. }
    ));
    h.answer(
        1,
        op.id(),
        EtcdResult::Failed {
            reason: "etcdserver: request timed out".to_string(),
        },
    );
    h.paused[1] = false;
    for _ in 0..40 {
        h.advance(100);
    }
    assert_eq!(h.leader(), Some(1), "n1 leads again");
    let conn = h.connect(1);
    assert!(token(&h.call(1, conn, &["ACQUIRE", "a", "1000"])) > 0);
}

#[test]
fn a_winner_whose_watch_saw_its_key_first_still_leads() {
    let mut h = Harness::new(0);
    h.watch_first = true;
    for _ in 0..2 {
        h.add_node_with(|_| {});
    }
    assert_eq!(h.leader(), Some(0));
    let conn = h.connect(0);
    let first = token(&h.call(0, conn, &["ACQUIRE", "a", "60000"]));
    h.kill(0);
    assert_eq!(h.leader(), Some(1));
    let conn = h.connect(1);
    assert!(token(&h.call(1, conn, &["ACQUIRE", "b", "1000"])) > first);
}

fn log_keys(h: &Harness) -> Vec<u64> {
    let config = h.nodes[0].config().clone();
    h.etcd
        .keys
        .keys()
        .filter_map(|key| config.log_index(key))
        .collect()
}

fn stored_snapshot(h: &Harness) -> Option<LogSnapshot> {
    let key = h.nodes[0].config().snapshot_key();
    h.etcd
        .keys
        .get(&key)
        .map(|kv| LogSnapshot::decode(&kv.0).expect("a snapshot"))
}

#[test]
fn every_n_batches_a_snapshot_replaces_the_log_before_it() {
    let mut h = Harness::with_snapshots(3, 5);
    let conn = h.connect(0);
    for round in 0..12 {
        token(&h.call(0, conn, &["ACQUIRE", &alloc::format!("l{round}"), "60000"]));
    }
    let index = h.nodes[0].log_index();
    assert_eq!(index, 12);
    let snapshot = stored_snapshot(&h).expect("a snapshot was stored");
    assert_eq!(snapshot.index, 10);
    assert_eq!(h.nodes[0].snapshot_index(), 10);
    // The batches before the snapshot are gone; its own batch and the later ones are kept.
    assert_eq!(log_keys(&h), vec![10, 11, 12]);
    // The followers, which applied every batch as it came, ignored the snapshot and the
    // deletions, and hold what the leader holds.
    for follower in 1..3 {
        assert_eq!(h.nodes[follower].log_index(), index);
        assert_eq!(
            h.nodes[follower].engine().image(),
            h.nodes[0].engine().image()
        );
        assert_eq!(h.nodes[follower].snapshot_index(), 10);
    }
    // The image is the leader's engine right after batch 10: ten leases.
    let restored = Engine::from_image(Config::default(), &snapshot.image).expect("restores");
    assert_eq!(restored.live_leases(), 10);
}

#[test]
fn a_node_that_joins_after_compaction_holds_the_leaders_exact_engine() {
    let mut h = Harness::with_snapshots(2, 4);
    let holder = h.connect(0);
    let mut tokens = Vec::new();
    // EPHEMERAL, shared, a lock-delay that a lapse starts, and a queue.
    tokens.push(token(&h.call(
        0,
        holder,
        &["ACQUIRE", "eph", "30000", "EPHEMERAL"],
    )));
    tokens.push(token(&h.call(
        0,
        holder,
        &["ACQUIRE", "shared", "30000", "SHARED"],
    )));
    tokens.push(token(&h.call(
        0,
        holder,
        &["ACQUIRE", "delayed", "50", "LOCKDELAY", "60000"],
    )));
    let waiter = h.connect(0);
    h.send(0, waiter, &["ACQUIRE", "eph", "1000", "WAIT", "60000"]);
    for _ in 0..3 {
        h.advance(100);
    }
    assert!(h.replies(0, waiter).is_empty(), "queued");
    for round in 0..8 {
        tokens.push(token(&h.call(
            0,
            holder,
            &["ACQUIRE", &alloc::format!("f{round}"), "60000"],
        )));
    }
    let snapshot = stored_snapshot(&h).expect("a snapshot was stored");
    assert!(snapshot.index >= 8, "{}", snapshot.index);
    // The batches that created the locks above exist only in the snapshot now.
    assert_eq!(log_keys(&h).first(), Some(&snapshot.index));
    let image = Engine::from_image(Config::default(), &snapshot.image).expect("restores");
    assert_eq!(image.waiting(), 1);
    assert_eq!(
        image.clients().len(),
        2,
        "the EPHEMERAL owner and the waiter"
    );
    // The last step is a logged command, so the leader's engine time is the log's.
    tokens.push(token(&h.call(0, holder, &["ACQUIRE", "last", "60000"])));
    let joiner = h.add_node(4);
    assert_eq!(h.nodes[joiner].role(), Role::Follower);
    assert_eq!(h.nodes[joiner].log_index(), h.nodes[0].log_index());
    assert_eq!(
        h.nodes[joiner].engine().image(),
        h.nodes[0].engine().image()
    );
    h.nodes[joiner]
        .engine()
        .check_invariants()
        .expect("invariants");
    // The late joiner is the only node left: it leads with the replicated state.
    h.kill(1);
    h.kill(0);
    assert_eq!(h.leader(), Some(joiner));
    let conn = h.connect(joiner);
    let eph = tokens[0].to_string();
    assert!(
        h.call(joiner, conn, &["VERIFY", "eph", &eph])
            .parse::<u64>()
            .is_ok(),
        "the EPHEMERAL lease lives on until its TTL"
    );
    assert!(h
        .call(joiner, conn, &["ACQUIRE", "shared", "1000", "SHARED"])
        .parse::<u64>()
        .is_ok());
    let delayed = h.call(joiner, conn, &["ACQUIRE", "delayed", "1000"]);
    assert!(
        delayed.starts_with("-LOCKED"),
        "still in lock-delay: {delayed}"
    );
    let fresh = token(&h.call(joiner, conn, &["ACQUIRE", "new", "1000"]));
    assert!(
        tokens.iter().all(|&old| fresh > old),
        "{fresh} > {tokens:?}"
    );
}

#[test]
fn a_snapshot_over_the_size_limit_is_skipped_and_the_log_kept() {
    let mut h = Harness::new(0);
    h.add_node_with(|config| {
        config.snapshot_every = 2;
        config.snapshot_max_bytes = 10;
    });
    let conn = h.connect(0);
    for round in 0..6 {
        token(&h.call(0, conn, &["ACQUIRE", &alloc::format!("l{round}"), "60000"]));
    }
    assert!(stored_snapshot(&h).is_none());
    assert_eq!(log_keys(&h), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(h.nodes[0].snapshots_too_large(), 3);
    assert_eq!(h.nodes[0].role(), Role::Leader);
}

#[test]
fn a_follower_that_lost_its_watch_resyncs_from_the_snapshot() {
    let mut h = Harness::with_snapshots(2, 3);
    let conn = h.connect(0);
    h.paused[1] = true;
    let waiter = h.connect(0);
    token(&h.call(0, conn, &["ACQUIRE", "a", "60000"]));
    h.send(0, waiter, &["ACQUIRE", "a", "1000", "WAIT", "60000"]);
    for round in 0..7 {
        token(&h.call(0, conn, &["ACQUIRE", &alloc::format!("l{round}"), "60000"]));
    }
    assert!(log_keys(&h).first().copied() > Some(1), "compacted");
    // etcd compacted the revisions the watch needed: it fails, and the follower reads again.
    h.fail_watch(1);
    h.paused[1] = false;
    h.pump();
    assert_eq!(h.nodes[1].role(), Role::Follower);
    assert_eq!(h.nodes[1].log_index(), h.nodes[0].log_index());
    assert_eq!(h.nodes[1].engine().image(), h.nodes[0].engine().image());
    assert_eq!(h.nodes[1].log_error(), None);
}

#[test]
fn a_replica_restored_from_a_snapshot_keeps_the_time_of_one_that_replayed_the_log() {
    // The leader's engine time moves on without an entry (a timeout that fires no timer, a
    // VERIFY). A snapshot taken then holds the later time; the batch it goes with must carry
    // it too, or replicas that restored it and replicas that replayed the log run at different
    // times and grant the same lease different deadlines.
    let mut h = Harness::with_snapshots(2, 2);
    let first = h.connect(0);
    let second = h.connect(0);
    h.paused[0] = true;
    h.send(0, first, &["ACQUIRE", "a", "60000"]);
    // Batch 2 (the snapshot's) waits for batch 1's answer.
    h.send(0, second, &["ACQUIRE", "b", "60000"]);
    h.advance(800);
    h.paused[0] = false;
    h.pump();
    token(&h.replies(0, first).concat());
    token(&h.replies(0, second).concat());
    let snapshot = stored_snapshot(&h).expect("a snapshot was stored");
    assert_eq!(snapshot.index, 2);
    let joiner = h.add_node(2);
    assert_eq!(h.nodes[joiner].log_index(), 2);
    let leader = h.nodes[0].engine().image();
    assert_eq!(h.nodes[joiner].engine().image(), leader, "restored");
    assert_eq!(h.nodes[1].engine().image(), leader, "replayed");
    // The two followers grant the next lease the same deadline.
    h.kill(0);
    let next = h.leader().expect("a new leader");
    let conn = h.connect(next);
    token(&h.call(next, conn, &["ACQUIRE", "c", "1000"]));
    let other = if next == 1 { joiner } else { 1 };
    assert_eq!(
        h.nodes[other].engine().image(),
        h.nodes[next].engine().image()
    );
}

#[test]
fn a_log_with_a_gap_is_not_applied_and_read_again_later() {
    let mut h = Harness::new(1);
    let conn = h.connect(0);
    for round in 0..3 {
        token(&h.call(0, conn, &["ACQUIRE", &alloc::format!("l{round}"), "60000"]));
    }
    // Batch 2 disappears without a snapshot (not something fencelock does).
    let key = h.nodes[0].config().log_key(2);
    h.etcd.keys.remove(&key);
    let joiner = h.add_node(1000);
    assert_eq!(h.nodes[joiner].role(), Role::Starting);
    assert_eq!(h.nodes[joiner].log_index(), 0);
    let error = h.nodes[joiner].log_error().expect("an error").to_string();
    assert!(error.contains("no batch 2"), "{error}");
    assert_eq!(h.nodes[joiner].engine().live_leases(), 0);
    // No read in a loop: the next comes after the retry delay.
    assert!(h.nodes[joiner].poll_etcd().is_none());
}

#[test]
fn large_batches_bring_the_snapshot_forward() {
    let mut h = Harness::new(0);
    h.add_node_with(|config| config.snapshot_log_bytes = 1000);
    let conn = h.connect(0);
    let owner = "o".repeat(200);
    for round in 0..10 {
        let name = alloc::format!("l{round}");
        token(&h.call(0, conn, &["ACQUIRE", &name, "60000", "OWNER", &owner]));
    }
    // Far fewer than the 1000 batches of snapshot_every, but more than 1000 bytes of them.
    let snapshot = stored_snapshot(&h).expect("a snapshot by size");
    assert!(snapshot.index <= 10, "{}", snapshot.index);
    // The log before the snapshot's batch is gone.
    assert!(log_keys(&h).len() < 10, "{:?}", log_keys(&h));
    assert_eq!(log_keys(&h).first(), Some(&snapshot.index));
}

// -- pipelined appends -------------------------------------------------------------------------

/// Connections to `node` and, while it is paused, one ACQUIRE per connection, each in a turn
/// of its own; returns the connections and the log index before them.
fn acquire_each_in_a_turn(h: &mut Harness, node: usize, count: usize) -> (Vec<ConnId>, u64) {
    let conns: Vec<ConnId> = (0..count).map(|_| h.connect(node)).collect();
    let base = h.nodes[node].log_index();
    h.paused[node] = true;
    for (n, conn) in conns.iter().enumerate() {
        h.send(node, *conn, &["ACQUIRE", &alloc::format!("p{n}"), "60000"]);
    }
    (conns, base)
}

/// The log indexes of the batches an append carries.
fn carried(h: &Harness, op: &EtcdOp) -> Vec<u64> {
    let EtcdOp::Append { batches, .. } = op else {
        panic!("an append")
    };
    let config = h.nodes[0].config();
    batches
        .iter()
        .map(|batch| config.log_index(&batch.key).expect("a log key"))
        .collect()
}

/// How many times etcd wrote each log key, in index order.
fn log_writes(h: &Harness) -> BTreeMap<u64, usize> {
    let config = h.nodes[0].config().clone();
    let mut writes = BTreeMap::new();
    for (_, event) in &h.etcd.history {
        if let WatchEvent::Put(kv) = event {
            if let Some(index) = config.log_index(&kv.key) {
                *writes.entry(index).or_insert(0) += 1;
            }
        }
    }
    writes
}

fn assert_replicas_match(h: &Harness, leader: usize) {
    for node in 0..h.nodes.len() {
        if node == leader || h.dead[node] {
            continue;
        }
        assert_eq!(h.nodes[node].role(), Role::Follower);
        assert_eq!(h.nodes[node].log_index(), h.nodes[leader].log_index());
        assert_eq!(
            h.nodes[node].engine().image(),
            h.nodes[leader].engine().image()
        );
        assert_eq!(h.nodes[node].log_error(), None);
    }
}

fn succeeded(result: &EtcdResult) -> bool {
    matches!(
        result,
        EtcdResult::Append {
            succeeded: true,
            ..
        }
    )
}

#[test]
fn several_appends_are_in_flight_and_commit_in_order() {
    let mut h = Harness::pipelined(3);
    let (conns, base) = acquire_each_in_a_turn(&mut h, 0, 6);
    let appends = h.take_appends(0);
    // As many in flight as the default depth, one per turn; each carries every batch after
    // the last committed one, and requires that one.
    let sent: Vec<u64> = appends.keys().copied().collect();
    assert_eq!(sent, (base + 1..=base + 4).collect::<Vec<u64>>());
    let config = h.nodes[0].config().clone();
    for (index, op) in &appends {
        assert_eq!(carried(&h, op), (base + 1..=*index).collect::<Vec<u64>>());
        let EtcdOp::Append { committed_key, .. } = op else {
            panic!("an append")
        };
        assert_eq!(committed_key, &(base > 0).then(|| config.log_key(base)));
    }
    for conn in &conns {
        assert!(h.replies(0, *conn).is_empty(), "nothing before a commit");
    }
    for op in appends.values() {
        let result = h.apply(op);
        assert!(succeeded(&result));
        h.answer(0, op.id(), result);
    }
    // The last two turns waited for room and went in one batch as soon as the first answer
    // made some, carrying the three batches still unanswered then.
    assert_eq!(h.nodes[0].log_index(), base + 4);
    let next = h.take_appends(0);
    assert_eq!(
        carried(&h, &next[&(base + 5)]),
        (base + 2..=base + 5).collect::<Vec<u64>>()
    );
    h.parked[0].extend(next.into_values());
    h.paused[0] = false;
    h.pump();
    assert_eq!(h.nodes[0].log_index(), base + 5);
    let tokens: Vec<u64> = conns
        .iter()
        .map(|conn| {
            let replies = h.replies(0, *conn);
            assert_eq!(replies.len(), 1, "{replies:?}");
            token(&replies[0])
        })
        .collect();
    assert!(
        tokens.windows(2).all(|pair| pair[0] < pair[1]),
        "{tokens:?}"
    );
    assert_eq!(log_keys(&h), (1..=base + 5).collect::<Vec<u64>>());
    assert!(log_writes(&h).values().all(|&writes| writes == 1));
    assert_replicas_match(&h, 0);
}

#[test]
fn appends_etcd_applies_out_of_order_write_each_batch_once_and_in_order() {
    let mut h = Harness::pipelined(3);
    let (conns, base) = acquire_each_in_a_turn(&mut h, 0, 3);
    let appends = h.take_appends(0);
    let op = |i: u64| appends[&(base + i)].clone();
    // etcd gets to the last append first: it writes all three batches, in index order.
    let third = h.apply(&op(3));
    assert!(succeeded(&third));
    assert_eq!(log_keys(&h), (1..=base + 3).collect::<Vec<u64>>());
    // The two before it find their batches written and skip them.
    let first = h.apply(&op(1));
    let second = h.apply(&op(2));
    assert!(succeeded(&first) && succeeded(&second));
    assert!(
        log_writes(&h).values().all(|&writes| writes == 1),
        "each batch written once"
    );
    // The answers come back in yet another order: the second's commits the first two.
    h.answer(0, op(2).id(), second);
    assert_eq!(h.nodes[0].log_index(), base + 2);
    let one = token(&h.replies(0, conns[0])[0]);
    let two = token(&h.replies(0, conns[1])[0]);
    assert!(h.replies(0, conns[2]).is_empty());
    h.answer(0, op(3).id(), third);
    let three = token(&h.replies(0, conns[2])[0]);
    // An answer about batches known committed changes nothing.
    h.answer(0, op(1).id(), first);
    assert_eq!(h.nodes[0].role(), Role::Leader);
    assert!(one < two && two < three, "{one} {two} {three}");
    h.paused[0] = false;
    h.pump();
    assert_eq!(h.nodes[0].log_index(), base + 3);
    assert_eq!(h.nodes[0].engine().live_leases(), 3);
    // The followers saw the three batches in one revision, in index order, and applied them.
    assert_replicas_match(&h, 0);
}

#[test]
fn a_leader_deposed_mid_pipeline_answers_errors_never_grants() {
    let mut h = Harness::pipelined(2);
    let (conns, base) = acquire_each_in_a_turn(&mut h, 0, 3);
    let appends = h.take_appends(0);
    let op = |i: u64| appends[&(base + i)].clone();
    // etcd applies the first; then the leader's lease lapses, before any answer comes back.
    let first = h.apply(&op(1));
    assert!(succeeded(&first));
    let lease = h.nodes[0].lease.expect("lease");
    h.etcd.expire(lease);
    h.pump();
    assert_eq!(h.nodes[1].role(), Role::Leader);
    let other = h.connect(1);
    token(&h.call(1, other, &["ACQUIRE", "mine", "60000"]));
    // The third append fails its term compare, and that answer comes first.
    let third = h.apply(&op(3));
    assert!(!succeeded(&third));
    h.answer(0, op(3).id(), third);
    assert_ne!(h.nodes[0].role(), Role::Leader);
    // Answers that come after the step-down change nothing.
    h.answer(0, op(1).id(), first);
    let replies: Vec<Vec<String>> = conns.iter().map(|conn| h.replies(0, *conn)).collect();
    // No grant. The first two batches were carried by appends still unanswered: they may
    // have committed (the first did), and their replies say so. The third was carried only
    // by the refused append: certainly no effect.
    let unknown = alloc::format!("-{}", crate::error::NOT_LEADER_UNKNOWN);
    let no_effect = alloc::format!("-{}", crate::error::NOT_LEADER_NO_EFFECT);
    assert_eq!(replies[0], vec![unknown.clone()]);
    assert_eq!(replies[1], vec![unknown]);
    assert_eq!(replies[2], vec![no_effect]);
    // The first batch is in the log: the new leader holds its lease, and only that one.
    let reply = h.call(1, other, &["ACQUIRE", "p0", "1000"]);
    assert!(reply.starts_with("-LOCKED"), "{reply}");
    assert!(!succeeded(&h.apply(&op(2))), "the second cannot commit now");
    token(&h.call(1, other, &["ACQUIRE", "p1", "1000"]));
    token(&h.call(1, other, &["ACQUIRE", "p2", "1000"]));
    // The old leader rejoins and replays the log as it is.
    h.paused[0] = false;
    h.pump();
    assert_replicas_match(&h, 1);
}

#[test]
fn an_unknown_outcome_of_a_middle_append_leaves_every_batch_it_or_a_later_one_carried_unknown() {
    let mut h = Harness::pipelined(2);
    let (conns, base) = acquire_each_in_a_turn(&mut h, 0, 4);
    let appends = h.take_appends(0);
    let op = |i: u64| appends[&(base + i)].clone();
    let result = h.apply(&op(1));
    h.answer(0, op(1).id(), result);
    let granted = token(&h.replies(0, conns[0])[0]);
    // etcd applies the third (which writes the second too); its answer is lost (a timeout)
    // while the second's and fourth's are still on their way.
    let _ = h.apply(&op(3));
    h.answer(
        0,
        op(3).id(),
        EtcdResult::Failed {
            reason: "deadline exceeded".into(),
        },
    );
    assert_ne!(h.nodes[0].role(), Role::Leader);
    // Each batch may have committed: none is a grant, none says it had no effect.
    let unknown = alloc::format!("-{}", crate::error::NOT_LEADER_UNKNOWN);
    for conn in &conns[1..] {
        assert_eq!(h.replies(0, *conn), vec![unknown.clone()]);
    }
    let second = h.apply(&op(2));
    h.answer(0, op(2).id(), second);
    assert!(
        h.replies(0, conns[1]).is_empty(),
        "a late answer sends nothing"
    );
    h.paused[0] = false;
    h.pump();
    // The new leader (node 0 again or node 1) holds what etcd committed.
    let leader = h.leader().expect("a leader");
    let conn = h.connect(leader);
    for name in ["p1", "p2"] {
        let reply = h.call(leader, conn, &["ACQUIRE", name, "1000"]);
        assert!(reply.starts_with("-LOCKED"), "{name}: {reply}");
    }
    assert!(token(&h.call(leader, conn, &["ACQUIRE", "p3", "1000"])) > granted);
}

#[test]
fn a_snapshot_waits_for_the_appends_in_flight_and_goes_alone() {
    let mut h = Harness::new(0);
    h.pipeline_depth = 4;
    for _ in 0..3 {
        h.add_node(5);
    }
    let conn = h.connect(0);
    let mut round = 0;
    while h.nodes[0].log_index() < 2 {
        token(&h.call(
            0,
            conn,
            &["ACQUIRE", &alloc::format!("pre{round}"), "60000"],
        ));
        round += 1;
    }
    let (conns, base) = acquire_each_in_a_turn(&mut h, 0, 4);
    assert_eq!(base, 2);
    // Batches 3 and 4 go; batch 5 is due a snapshot and waits for both appends.
    let appends = h.take_appends(0);
    assert_eq!(appends.keys().copied().collect::<Vec<u64>>(), vec![3, 4]);
    let four = h.apply(&appends[&4]);
    h.answer(0, appends[&4].id(), four);
    assert_eq!(h.nodes[0].log_index(), 4);
    assert!(
        h.parked_appends(0).is_empty(),
        "the append of batch 3 is still unanswered"
    );
    let three = h.apply(&appends[&3]);
    h.answer(0, appends[&3].id(), three);
    // Now the snapshot's batch goes, alone, with every turn that waited.
    let snapshot = h.take_appends(0);
    let EtcdOp::Append {
        compaction,
        committed_key,
        ..
    } = &snapshot[&5]
    else {
        panic!("an append")
    };
    assert!(compaction.is_some());
    assert_eq!(carried(&h, &snapshot[&5]), vec![5]);
    assert_eq!(committed_key, &Some(h.nodes[0].config().log_key(4)));
    // Nothing more goes while it is in flight.
    h.send(0, conns[0], &["ACQUIRE", "after", "60000"]);
    assert!(h.parked_appends(0).is_empty());
    h.parked[0].extend(snapshot.into_values());
    h.paused[0] = false;
    h.pump();
    for conn in &conns {
        token(&h.replies(0, *conn)[0]);
    }
    assert_eq!(h.nodes[0].log_index(), 6);
    assert_eq!(stored_snapshot(&h).expect("a snapshot").index, 5);
    assert_eq!(h.nodes[0].snapshot_index(), 5);
    assert_eq!(log_keys(&h), vec![5, 6]);
    assert_replicas_match(&h, 0);
    let joiner = h.add_node(5);
    assert_eq!(h.nodes[joiner].log_index(), 6);
    assert_eq!(
        h.nodes[joiner].engine().image(),
        h.nodes[0].engine().image()
    );
}

#[test]
fn appends_stop_while_the_batches_in_flight_hold_the_byte_limit() {
    let mut h = Harness::new(0);
    h.pipeline_depth = 4;
    h.add_node_with(|config| config.pipeline_max_bytes = 1);
    let (conns, base) = acquire_each_in_a_turn(&mut h, 0, 3);
    // One append at a time: the next would carry more than the limit.
    assert_eq!(h.parked_appends(0), vec![base + 1]);
    h.paused[0] = false;
    h.pump();
    for conn in &conns {
        token(&h.replies(0, *conn)[0]);
    }
    assert_eq!(h.nodes[0].log_index(), base + 2);
}

#[test]
fn the_watch_can_show_a_commit_before_its_answer_and_a_deposition_after_it() {
    let mut h = Harness::pipelined(2);
    let (conns, base) = acquire_each_in_a_turn(&mut h, 0, 1);
    let first = h.take_appends(0)[&(base + 1)].clone();
    let result = h.apply(&first);
    // The leader's watch shows its batch before the transaction's answer arrives.
    h.deliver(0);
    h.pump();
    token(&h.replies(0, conns[0])[0]);
    h.answer(0, first.id(), result);
    assert_eq!(h.nodes[0].role(), Role::Leader);
    assert_eq!(h.nodes[0].log_index(), base + 1);
    // The next batch is still unanswered when the watch shows the term end: the watch is in
    // revision order and showed no such batch, so it certainly did not commit.
    h.send(0, conns[0], &["ACQUIRE", "later", "60000"]);
    let second = h.take_appends(0)[&(base + 2)].clone();
    let lease = h.nodes[0].lease.expect("lease");
    h.etcd.expire(lease);
    h.deliver(0);
    h.pump();
    assert_ne!(h.nodes[0].role(), Role::Leader);
    let no_effect = alloc::format!("-{}", crate::error::NOT_LEADER_NO_EFFECT);
    assert_eq!(h.replies(0, conns[0]), vec![no_effect]);
    assert!(!succeeded(&h.apply(&second)));
}

#[test]
fn an_append_never_writes_past_a_committed_batch_that_is_gone() {
    let mut h = Harness::new(1);
    let conn = h.connect(0);
    token(&h.call(0, conn, &["ACQUIRE", "a", "60000"]));
    let last = h.nodes[0].log_index();
    // The last committed batch disappears (by hand: not something fencelock does).
    let key = h.nodes[0].config().log_key(last);
    h.etcd.keys.remove(&key);
    let reply = h.call(0, conn, &["ACQUIRE", "b", "60000"]);
    assert!(reply.starts_with("-NOTLEADER"), "{reply}");
    // Nothing was written after the hole.
    assert_eq!(log_keys(&h), (1..last).collect::<Vec<u64>>());
}

#[test]
fn a_snapshot_brought_forward_by_size_still_goes_alone() {
    let mut h = Harness::new(0);
    h.pipeline_depth = 4;
    h.add_node_with(|config| config.snapshot_log_bytes = 1000);
    let conns: Vec<ConnId> = (0..12).map(|_| h.connect(0)).collect();
    h.paused[0] = true;
    let owner = "o".repeat(200);
    for (n, conn) in conns.iter().enumerate() {
        let name = alloc::format!("l{n}");
        h.send(0, *conn, &["ACQUIRE", &name, "60000", "OWNER", &owner]);
        // Answer whatever is parked, in order, now and then: the pipeline keeps moving.
        if n % 3 == 2 {
            h.paused[0] = false;
            h.pump();
            h.paused[0] = true;
        }
    }
    h.paused[0] = false;
    h.pump();
    for conn in &conns {
        token(&h.replies(0, *conn)[0]);
    }
    assert_eq!(h.nodes[0].role(), Role::Leader);
    let snapshot = stored_snapshot(&h).expect("a snapshot by size");
    assert_eq!(log_keys(&h).first(), Some(&snapshot.index));
}
