//! The cluster, simulated: three `ClusterNode`s replicating through a modelled etcd, core
//! clients failing over between them, and faults aimed at the replication: leaders paused
//! past their election lease, nodes crashed and restarted, nodes cut off from etcd, etcd
//! calls that fail before or after they took effect, watches that end, connections reset.
//!
//! Checked as it goes: no two clients ever believe at the same instant that they hold
//! conflicting leases (each client's own conservative deadline, the one its library hands
//! out), no token is granted twice, a token is above every token revealed before its
//! request was sent, the fence never goes back, every node's engine keeps its invariants,
//! every lease a client reports held lives in the leader's engine until the client's deadline
//! and is signalled lost when that passes. At the end, with the faults over: a new client gets
//! every lock within a bound, one node leads and every follower holds the leader's leases and
//! tokens, and each lock's history is linearizable (failovers enter it as restarts that may
//! lengthen leases; calls of unknown outcome are settled from the committed log).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use fencelock_core::client::{
    Client, ClientConfig, Event as ClientEvent, Output as ClientOutput, Reply, RequestId,
};
use fencelock_core::cluster::{
    Batch, ClusterConfig, ClusterNode, Entry, EtcdOp, EtcdResult, KeyValue, LogWrite, OpId, Role,
    WatchEvent,
};
use fencelock_core::protocol::{ConnId, Output as ServerOutput, ServerConfig};
use fencelock_core::{
    AcquireOptions, Acquired, Config, Engine, Event as EngineEvent, Fence, FenceOutcome, Instant,
    Mode,
};

use crate::lin::{self, Entry as LinEntry, LeaseOp, Outcome as LinOutcome};
use crate::rng::Rng;
use crate::sim::{Options, Outcome, Violation};
use crate::trace::{replayed, stuck_timer, Trace};

const NODES: usize = 3;
const LOCKS: [&str; 3] = ["alpha", "beta", "gamma"];
const MAX_TTL_MS: u64 = 4_000;
/// The election lease: a leader paused or cut off longer than this is replaced.
const ELECTION_TTL_S: u64 = 2;
const START: u64 = 1_000_000;
/// How long after its client heard its connection failed a STEAL may still take effect.
const STEAL_UNKNOWN_MS: u64 = 20_000;
/// After the workload: how long a new client may take to get each lock.
const RECOVERY_MS: u64 = 30_000;

/// Simulates one seed of the cluster and checks it.
#[must_use]
pub fn run_cluster(options: &Options) -> Outcome {
    replayed(options, run_once)
}

fn run_once(options: &Options, tracing: bool) -> Outcome {
    let mut world = World::new(options, tracing);
    world.main_loop();
    if world.violation.is_none() {
        world.recovery();
    }
    world.outcome.simulated_ms = world.now;
    world.outcome.violation = world.violation.take();
    world.outcome
}

// ---- etcd ----

struct Stored {
    value: Vec<u8>,
    create: u64,
    modified: u64,
    lease: i64,
}

/// etcd as the driver sees it: a revisioned key space, leases that run out on simulated time,
/// transactions and a history for watches.
#[derive(Default)]
struct Etcd {
    revision: u64,
    keys: BTreeMap<Vec<u8>, Stored>,
    /// Lease -> (TTL in s, expiry in simulated ms).
    leases: BTreeMap<i64, (u64, u64)>,
    next_lease: i64,
    history: Vec<(u64, WatchEvent)>,
    /// When each revision that put a key was made, in simulated ms (the last `perform`).
    put_at_ms: BTreeMap<u64, u64>,
    now: u64,
}

impl Etcd {
    fn kv(&self, key: &[u8]) -> KeyValue {
        self.keys.get(key).map_or_else(KeyValue::default, |s| {
            KeyValue::new(key.to_vec(), s.value.clone(), s.create, s.modified)
        })
    }

    /// A put at the current revision (inside a transaction that took it).
    fn put_at(&mut self, key: &[u8], value: &[u8], lease: i64) {
        let create = self.keys.get(key).map_or(self.revision, |s| s.create);
        self.keys.insert(
            key.to_vec(),
            Stored {
                value: value.to_vec(),
                create,
                modified: self.revision,
                lease,
            },
        );
        let kv = KeyValue::new(key.to_vec(), value.to_vec(), create, self.revision);
        self.history.push((self.revision, WatchEvent::Put(kv)));
        self.put_at_ms.insert(self.revision, self.now);
    }

    fn delete_at(&mut self, key: &[u8]) {
        if self.keys.remove(key).is_some() {
            let kv = KeyValue::new(key.to_vec(), Vec::new(), 0, self.revision);
            self.history.push((self.revision, WatchEvent::Delete(kv)));
        }
    }

    /// Ends a lease and deletes its keys, one revision per key as etcd does.
    fn end_lease(&mut self, lease: i64) {
        self.leases.remove(&lease);
        let doomed: Vec<Vec<u8>> = self
            .keys
            .iter()
            .filter(|(_, s)| s.lease == lease)
            .map(|(key, _)| key.clone())
            .collect();
        for key in doomed {
            self.revision += 1;
            self.delete_at(&key);
        }
    }

    /// Ends every lease whose time ran out by `now`; returns whether any did.
    fn expire(&mut self, now: u64) -> bool {
        let due: Vec<i64> = self
            .leases
            .iter()
            .filter(|(_, &(_, until))| until <= now)
            .map(|(&lease, _)| lease)
            .collect();
        for &lease in &due {
            self.end_lease(lease);
        }
        !due.is_empty()
    }

    fn live(&self, lease: i64, now: u64) -> bool {
        self.leases
            .get(&lease)
            .is_some_and(|&(_, until)| until > now)
    }

    /// Performs an operation; watches are the world's.
    fn perform(&mut self, op: &EtcdOp, now: u64) -> EtcdResult {
        self.now = now;
        match op {
            EtcdOp::GrantLease { ttl_s, .. } => {
                self.next_lease += 1;
                self.leases
                    .insert(self.next_lease, (*ttl_s, now + ttl_s * 1000));
                EtcdResult::LeaseGranted {
                    lease: self.next_lease,
                }
            }
            EtcdOp::KeepAlive { lease, .. } => {
                let ttl_s = match self.leases.get_mut(lease) {
                    Some((ttl, until)) if *until > now => {
                        *until = now + *ttl * 1000;
                        i64::try_from(*ttl).unwrap_or(0)
                    }
                    _ => 0,
                };
                EtcdResult::KeepAlive { ttl_s }
            }
            EtcdOp::Revoke { lease, .. } => {
                self.end_lease(*lease);
                EtcdResult::Done
            }
            EtcdOp::Campaign {
                key, value, lease, ..
            } => {
                if !self.live(*lease, now) {
                    return EtcdResult::Failed {
                        reason: String::from("etcdserver: requested lease not found"),
                    };
                }
                let won = !self.keys.contains_key(key);
                if won {
                    self.revision += 1;
                    self.put_at(key, value, *lease);
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
                let mut keys: Vec<&Vec<u8>> = batches.iter().map(|b| &b.key).collect();
                keys.sort();
                keys.dedup();
                let deleted = compaction.as_ref().is_some_and(|c| {
                    batches
                        .iter()
                        .any(|b| b.key >= c.delete_from && b.key < c.delete_end)
                });
                if keys.len() != batches.len() || deleted {
                    return EtcdResult::Failed {
                        reason: String::from("etcdserver: duplicate key given in txn request"),
                    };
                }
                let ok = self.kv(election_key).create_revision == *term
                    && committed_key
                        .as_ref()
                        .map_or(true, |key| self.keys.contains_key(key));
                let missing: Vec<&LogWrite> = batches
                    .iter()
                    .filter(|b| !self.keys.contains_key(&b.key))
                    .collect();
                if ok && !missing.is_empty() {
                    self.revision += 1;
                    for batch in missing {
                        self.put_at(&batch.key, &batch.value, 0);
                    }
                    if let Some(c) = compaction {
                        self.put_at(&c.snapshot_key, &c.snapshot, 0);
                        let doomed: Vec<Vec<u8>> = self
                            .keys
                            .range(c.delete_from.clone()..c.delete_end.clone())
                            .map(|(key, _)| key.clone())
                            .collect();
                        for key in doomed {
                            self.delete_at(&key);
                        }
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
            // Watches are kept by the world; nothing else is asked.
            _ => EtcdResult::Done,
        }
    }

    /// The events of revisions `from` on under `prefix`.
    fn events_from(&self, from: u64, prefix: &[u8]) -> Vec<WatchEvent> {
        let first = self.history.partition_point(|(rev, _)| *rev < from);
        self.history
            .get(first..)
            .unwrap_or_default()
            .iter()
            .filter(|(_, event)| match event {
                WatchEvent::Put(kv) | WatchEvent::Delete(kv) => kv.key.starts_with(prefix),
                _ => false,
            })
            .map(|(_, event)| event.clone())
            .collect()
    }
}

// ---- the world ----

struct WatchState {
    id: OpId,
    prefix: Vec<u8>,
    next: u64,
}

struct NodeHost {
    node: Option<ClusterNode>,
    /// Bumped at each crash: events for an earlier run are dropped.
    epoch: u64,
    /// Host clock = simulated time - origin (each run its own machine clock).
    origin: u64,
    paused_until: u64,
    etcd_cut_until: u64,
    watches: Vec<WatchState>,
    watch_due: bool,
    /// The node's connections and their links.
    conns: BTreeMap<ConnId, usize>,
}

struct Link {
    client: usize,
    cconn: u64,
    node: usize,
    epoch: u64,
    sconn: Option<ConnId>,
    /// Either side closed it: nothing more is carried.
    closed: bool,
    last_to_node: u64,
    last_to_client: u64,
    /// Bytes on their way, in order: each `ToNode` or `ToClient` event delivers the oldest,
    /// so events put off for a paused process cannot reorder a stream.
    to_node: VecDeque<Vec<u8>>,
    to_client: VecDeque<Vec<u8>>,
}

struct Held {
    name: String,
    shared: bool,
    ephemeral: bool,
    /// Its RELEASE was sent: its holder stopped using it.
    releasing: bool,
    /// When its ACQUIRE was sent (simulated time).
    sent_at: u64,
}

/// A request awaiting its reply.
struct Sent {
    kind: &'static str,
    name: String,
    /// When the user called it (simulated time).
    at: u64,
    /// The lease a RENEW or RELEASE names.
    token: u64,
    /// Its operation in the lock's history.
    history: Option<usize>,
}

struct ClientHost {
    client: Client,
    origin: u64,
    paused_until: u64,
    conns: BTreeMap<u64, usize>,
    pending: BTreeMap<RequestId, Sent>,
    held: BTreeMap<u64, Held>,
    /// Leases granted to it so far.
    grants: u64,
    /// Closed at the end of the workload (or the recovery probe, which takes no steps).
    closed: bool,
}

enum Ev {
    Step {
        client: usize,
    },
    Fault,
    EtcdArrive {
        node: usize,
        epoch: u64,
        op: EtcdOp,
    },
    EtcdReply {
        node: usize,
        epoch: u64,
        id: OpId,
        result: EtcdResult,
    },
    WatchDeliver {
        node: usize,
        epoch: u64,
    },
    Accept {
        link: usize,
    },
    Connected {
        link: usize,
    },
    Refused {
        link: usize,
    },
    ToNode {
        link: usize,
    },
    ToClient {
        link: usize,
    },
    NodeSideClosed {
        link: usize,
    },
    ClientSideClosed {
        link: usize,
        reason: &'static str,
    },
    Restart {
        node: usize,
    },
    Stop {
        node: usize,
    },
}

struct World {
    options: Options,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Ev>,
    etcd: Etcd,
    nodes: Vec<NodeHost>,
    links: Vec<Link>,
    clients: Vec<ClientHost>,
    fence: Fence,
    fence_high: BTreeMap<String, u64>,
    /// Each lock's STEALs: when sent, and when their call ended (`None` while it may still
    /// run). A steal ends the leases granted before it runs, before their holders can know.
    steals: BTreeMap<String, Vec<(u64, Option<u64>)>>,
    revealed: BTreeSet<u64>,
    /// (when a grant's reply came, the highest token revealed by then), in time order.
    reveals: Vec<(u64, u64)>,
    cluster_config: ClusterConfig,
    /// Each lock's history of calls, and the failovers that may have lengthened its leases.
    history: BTreeMap<String, Vec<LinEntry<LeaseOp>>>,
    /// Calls whose outcome is unknown: (lock, index in its history, when the call ended).
    unknown: Vec<(String, usize, u64)>,
    /// Each ACQUIRE's call (its lock and index in the lock's history) -> its owner label.
    owners: BTreeMap<(String, usize), String>,
    /// Each term's start: (the leader's engine time, simulated time) at its promotion.
    terms: BTreeMap<u64, (u64, u64)>,
    /// The term each node led in when last looked at (0: it did not lead).
    leading: [u64; NODES],
    /// When the election key changed (deleted or created), in order: after that, no append
    /// of an earlier term can commit.
    elections: Vec<u64>,
    faults_on: bool,
    /// Steps taken at the current instant (a busy loop never lets time go on).
    steps_now: u64,
    tracing: bool,
    trace: Trace,
    violation: Option<Violation>,
    outcome: Outcome,
}

impl World {
    fn new(options: &Options, tracing: bool) -> World {
        let mut rng = Rng::new(options.seed ^ 0xC1u64 << 56);
        let mut cluster_config = ClusterConfig::new("sim", "n0");
        cluster_config.election_ttl_s = ELECTION_TTL_S;
        cluster_config.snapshot_every = [0, 4, 40].get(rng.index(3)).copied().unwrap_or(0);
        cluster_config.pipeline_depth = usize::try_from(rng.range(1, 4)).unwrap_or(1);
        let mut world = World {
            options: options.clone(),
            rng,
            now: START,
            seq: 0,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            etcd: Etcd::default(),
            nodes: Vec::new(),
            links: Vec::new(),
            clients: Vec::new(),
            fence: Fence::new(),
            fence_high: BTreeMap::new(),
            steals: BTreeMap::new(),
            revealed: BTreeSet::new(),
            reveals: Vec::new(),
            cluster_config,
            history: BTreeMap::new(),
            unknown: Vec::new(),
            owners: BTreeMap::new(),
            terms: BTreeMap::new(),
            leading: [0; NODES],
            elections: Vec::new(),
            faults_on: true,
            steps_now: 0,
            tracing,
            trace: Trace::new(options.trace_len),
            violation: None,
            outcome: Outcome::default(),
        };
        for _ in 0..NODES {
            world.nodes.push(NodeHost {
                node: None,
                epoch: 0,
                origin: 0,
                paused_until: 0,
                etcd_cut_until: 0,
                watches: Vec::new(),
                watch_due: false,
                conns: BTreeMap::new(),
            });
        }
        for index in 0..NODES {
            world.start_node(index);
        }
        let clients = options.clients_per_server.max(2);
        for index in 0..clients {
            let mut config = ClientConfig::default();
            config.endpoints = NODES;
            config.endpoint_addresses = (0..NODES).map(address).collect();
            config.request_timeout_ms = world.rng.range(1_000, 4_000);
            if let Some(tweak) = world.options.client_tweak {
                tweak(&mut config);
            }
            let origin = START - world.rng.range(0, 100_000);
            world.clients.push(ClientHost {
                client: Client::new(config),
                origin,
                paused_until: 0,
                conns: BTreeMap::new(),
                pending: BTreeMap::new(),
                held: BTreeMap::new(),
                grants: 0,
                closed: false,
            });
            let at = START + world.rng.range(100, 2_000);
            world.schedule(at, Ev::Step { client: index });
        }
        let at = START + world.rng.range(2_000, 4_000);
        world.schedule(at, Ev::Fault);
        world
    }

    fn note(&mut self, line: &str) {
        self.trace.push(self.now, line);
    }

    fn fail(&mut self, message: String) {
        if self.violation.is_none() {
            note!(self, "VIOLATION: {message}");
            self.violation = Some(self.trace.violation(self.now, message));
        }
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at.max(self.now), self.seq)));
        self.events.insert(self.seq, ev);
    }

    fn latency(&mut self) -> u64 {
        if self.rng.chance(5) {
            self.rng.range(20, 200)
        } else {
            self.rng.range(1, 8)
        }
    }

    fn node_now(&self, node: usize) -> Instant {
        Instant(self.now - self.nodes.get(node).map_or(0, |n| n.origin))
    }

    fn client_now(&self, client: usize) -> Instant {
        Instant(self.now - self.clients.get(client).map_or(0, |c| c.origin))
    }

    // ---- the loop ----

    /// The earliest timer of a node or client that may run, in simulated time.
    fn next_timer(&self) -> Option<(u64, Option<usize>, Option<usize>)> {
        let mut best: Option<(u64, Option<usize>, Option<usize>)> = None;
        for (index, host) in self.nodes.iter().enumerate() {
            let Some(node) = &host.node else { continue };
            // A paused process runs its timers once it resumes.
            if let Some(at) = node.poll_timeout() {
                let at = (at.0 + host.origin).max(self.now).max(host.paused_until);
                if best.map_or(true, |(b, _, _)| at < b) {
                    best = Some((at, Some(index), None));
                }
            }
        }
        for (index, host) in self.clients.iter().enumerate() {
            if let Some(at) = host.client.poll_timeout() {
                let at = (at.0 + host.origin).max(self.now).max(host.paused_until);
                if best.map_or(true, |(b, _, _)| at < b) {
                    best = Some((at, None, Some(index)));
                }
            }
        }
        best
    }

    /// Runs the workload and its faults, then winds them down.
    fn main_loop(&mut self) {
        let workload_end = START + self.options.duration_ms;
        while self.violation.is_none() && self.step_once(workload_end) {}
        self.now = self.now.max(workload_end);
        self.wind_down();
    }

    /// The workload and the faults stop; every node runs again, reachable; clients stop
    /// renewing (their leases run out).
    fn wind_down(&mut self) {
        note!(self, "workload over: faults end, clients close");
        self.faults_on = false;
        for index in 0..NODES {
            if let Some(host) = self.nodes.get_mut(index) {
                host.paused_until = host.paused_until.min(self.now);
                host.etcd_cut_until = host.etcd_cut_until.min(self.now);
            }
            let dead = self.nodes.get(index).is_some_and(|h| h.node.is_none());
            if dead {
                self.start_node(index);
            }
            self.pump_node(index);
        }
        for index in 0..self.clients.len() {
            let now = self.client_now(index);
            if let Some(host) = self.clients.get_mut(index) {
                host.paused_until = 0;
                host.closed = true;
                host.client.close(now);
            }
            self.flush_client(index);
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::Step { client } => self.step_client(client),
            Ev::Fault => self.fault(),
            Ev::EtcdArrive { node, epoch, op } => self.etcd_arrive(node, epoch, op),
            Ev::EtcdReply {
                node,
                epoch,
                id,
                result,
            } => {
                if !self.node_live(node, epoch) {
                    return;
                }
                if self.put_off_for_node(node, || Ev::EtcdReply {
                    node,
                    epoch,
                    id,
                    result: result.clone(),
                }) {
                    return;
                }
                let now = self.node_now(node);
                if let Some(n) = self.nodes.get_mut(node).and_then(|h| h.node.as_mut()) {
                    n.handle_etcd(now, id, result);
                }
                self.pump_node(node);
            }
            Ev::WatchDeliver { node, epoch } => self.deliver_watches(node, epoch),
            Ev::Accept { link } => self.accept(link),
            Ev::Connected { link } => {
                let Some(l) = self.links.get(link) else {
                    return;
                };
                if l.closed {
                    return;
                }
                let (client, cconn) = (l.client, l.cconn);
                if self.put_off_for_client(client, || Ev::Connected { link }) {
                    return;
                }
                let now = self.client_now(client);
                if let Some(c) = self.clients.get_mut(client) {
                    c.client.handle_connected(now, cconn);
                }
                self.flush_client(client);
            }
            Ev::Refused { link } => self.client_side_closed(link, "connection refused"),
            Ev::ToNode { link } => {
                let Some(l) = self.links.get(link) else {
                    return;
                };
                let (node, epoch, sconn) = (l.node, l.epoch, l.sconn);
                if l.closed || !self.node_live(node, epoch) {
                    return;
                }
                if self.put_off_for_node(node, || Ev::ToNode { link }) {
                    return;
                }
                let Some(bytes) = self.links.get_mut(link).and_then(|l| l.to_node.pop_front())
                else {
                    return;
                };
                let Some(sconn) = sconn else { return };
                let now = self.node_now(node);
                note!(self, "link {link} -> n{node}: {}", shown(&bytes));
                if let Some(n) = self.nodes.get_mut(node).and_then(|h| h.node.as_mut()) {
                    n.receive(now, sconn, &bytes);
                }
                self.pump_node(node);
            }
            Ev::ToClient { link } => {
                let Some(l) = self.links.get(link) else {
                    return;
                };
                let (client, cconn) = (l.client, l.cconn);
                if l.closed {
                    return;
                }
                if self.put_off_for_client(client, || Ev::ToClient { link }) {
                    return;
                }
                let Some(bytes) = self
                    .links
                    .get_mut(link)
                    .and_then(|l| l.to_client.pop_front())
                else {
                    return;
                };
                let now = self.client_now(client);
                note!(self, "link {link} -> c{client}: {}", shown(&bytes));
                if let Some(c) = self.clients.get_mut(client) {
                    c.client.receive(now, cconn, &bytes);
                }
                self.flush_client(client);
            }
            Ev::NodeSideClosed { link } => self.node_side_closed(link),
            Ev::ClientSideClosed { link, reason } => self.client_side_closed(link, reason),
            Ev::Restart { node } => {
                if self.nodes.get(node).is_some_and(|h| h.node.is_none()) {
                    self.start_node(node);
                }
            }
            Ev::Stop { node } => self.crash_node(node, "stopped after its clean shutdown"),
        }
    }

    fn node_live(&self, node: usize, epoch: u64) -> bool {
        self.nodes
            .get(node)
            .is_some_and(|h| h.node.is_some() && h.epoch == epoch)
    }

    /// Puts an event off until `node`'s process runs again, if it is paused; true if it did.
    fn put_off_for_node(&mut self, node: usize, ev: impl FnOnce() -> Ev) -> bool {
        let until = self.nodes.get(node).map_or(0, |h| h.paused_until);
        self.put_off(until, ev)
    }

    /// Puts an event off until `client`'s process runs again, if it is paused.
    fn put_off_for_client(&mut self, client: usize, ev: impl FnOnce() -> Ev) -> bool {
        let until = self.clients.get(client).map_or(0, |c| c.paused_until);
        self.put_off(until, ev)
    }

    fn put_off(&mut self, until: u64, ev: impl FnOnce() -> Ev) -> bool {
        if until <= self.now {
            return false;
        }
        let ev = ev();
        self.schedule(until, ev);
        true
    }

    // ---- nodes ----

    fn start_node(&mut self, index: usize) {
        let origin = self.now - self.rng.range(0, 100_000);
        let mut config = self.cluster_config.clone();
        config.advertise = address(index);
        let mut engine = Config::default();
        engine.max_ttl_ms = MAX_TTL_MS;
        engine.max_wait_ms = 10_000;
        if let Some(tweak) = self.options.engine_tweak {
            tweak(&mut engine);
        }
        let Some(host) = self.nodes.get_mut(index) else {
            return;
        };
        host.epoch += 1;
        host.origin = origin;
        host.paused_until = 0;
        host.watches.clear();
        host.watch_due = false;
        host.conns.clear();
        let now = Instant(self.now - origin);
        host.node = Some(ClusterNode::new(
            now,
            config,
            engine,
            ServerConfig::default(),
        ));
        note!(self, "n{index} starts");
        self.pump_node(index);
    }

    fn crash_node(&mut self, index: usize, why: &str) {
        let Some(host) = self.nodes.get_mut(index) else {
            return;
        };
        if host.node.take().is_none() {
            return;
        }
        host.epoch += 1;
        host.watches.clear();
        let links: Vec<usize> = host.conns.values().copied().collect();
        host.conns.clear();
        note!(self, "n{index} {why}");
        self.outcome.crashes += 1;
        for link in links {
            let at = self.now + self.latency();
            self.schedule(
                at,
                Ev::ClientSideClosed {
                    link,
                    reason: "connection reset",
                },
            );
        }
        let at = self.now + self.rng.range(300, 5_000);
        self.schedule(at, Ev::Restart { node: index });
    }

    /// Carries out everything a node asks for: bytes to clients, closes, etcd calls.
    fn pump_node(&mut self, index: usize) {
        loop {
            let Some(host) = self.nodes.get_mut(index) else {
                return;
            };
            let epoch = host.epoch;
            let Some(node) = host.node.as_mut() else {
                return;
            };
            if let Some(output) = node.poll_output() {
                match output {
                    ServerOutput::Transmit { conn, bytes } => {
                        if let Some(&link) = host.conns.get(&conn) {
                            note!(
                                self,
                                "n{index} conn {conn} sends on link {link}: {}",
                                shown(&bytes)
                            );
                            self.send_to_client(link, bytes);
                        }
                    }
                    ServerOutput::Close { conn } => {
                        if let Some(link) = host.conns.remove(&conn) {
                            let at = self.now + self.latency();
                            self.schedule(
                                at,
                                Ev::ClientSideClosed {
                                    link,
                                    reason: "closed by the server",
                                },
                            );
                        }
                    }
                    _ => {}
                }
                continue;
            }
            if let Some(op) = node.poll_etcd() {
                match op {
                    EtcdOp::Watch {
                        id,
                        prefix,
                        start_revision,
                    } => {
                        host.watches.push(WatchState {
                            id,
                            prefix,
                            next: start_revision,
                        });
                        self.watches_changed_for(index);
                    }
                    EtcdOp::CancelWatch { watch } => host.watches.retain(|w| w.id != watch),
                    op => {
                        let at = self.now + self.latency();
                        self.schedule(
                            at,
                            Ev::EtcdArrive {
                                node: index,
                                epoch,
                                op,
                            },
                        );
                    }
                }
                continue;
            }
            break;
        }
        self.check_node(index);
        self.note_promotion(index);
    }

    fn check_node(&mut self, index: usize) {
        let broken = self
            .nodes
            .get(index)
            .and_then(|h| h.node.as_ref())
            .and_then(|n| n.engine().check_invariants().err());
        if let Some(message) = broken {
            self.fail(format!("n{index}'s engine: {message}"));
        }
    }

    fn etcd_arrive(&mut self, node: usize, epoch: u64, op: EtcdOp) {
        let cut = self
            .nodes
            .get(node)
            .is_some_and(|h| h.etcd_cut_until > self.now);
        let id = op.id();
        // A call lost on the way (or to a node cut off): it never ran, and the node hears
        // only that it failed, after a timeout. One that ran may fail on the way back too.
        let before = cut || (self.faults_on && self.rng.chance(3));
        let after = !before && self.faults_on && self.rng.chance(3);
        let result = if before {
            None
        } else {
            let term_before = self.election_term();
            let result = self.etcd.perform(&op, self.now);
            if self.election_term() != term_before {
                self.elections.push(self.now);
            }
            note!(
                self,
                "etcd: n{node} {} -> {}",
                op_name(&op),
                result_name(&result)
            );
            self.watches_changed();
            Some(result)
        };
        let result = match result {
            Some(result) if !after => result,
            _ => EtcdResult::Failed {
                reason: String::from("etcdserver: request timed out"),
            },
        };
        let back = if before || after {
            self.rng.range(100, 1_500)
        } else {
            self.latency()
        };
        let at = self.now + back;
        self.schedule(
            at,
            Ev::EtcdReply {
                node,
                epoch,
                id,
                result,
            },
        );
    }

    /// Something changed in etcd: every watch has news after a delay.
    fn watches_changed(&mut self) {
        for index in 0..NODES {
            self.watches_changed_for(index);
        }
    }

    fn watches_changed_for(&mut self, index: usize) {
        let Some(host) = self.nodes.get_mut(index) else {
            return;
        };
        if host.watch_due || host.watches.is_empty() {
            return;
        }
        host.watch_due = true;
        let epoch = host.epoch;
        let at = self.now + self.latency();
        self.schedule(at, Ev::WatchDeliver { node: index, epoch });
    }

    fn deliver_watches(&mut self, index: usize, epoch: u64) {
        if !self.node_live(index, epoch) {
            return;
        }
        let (paused, cut) = match self.nodes.get(index) {
            Some(h) => (h.paused_until > self.now, h.etcd_cut_until > self.now),
            None => return,
        };
        if paused || cut {
            let at = self.nodes.get(index).map_or(self.now, |h| {
                h.paused_until.max(h.etcd_cut_until).max(self.now)
            });
            self.schedule(at, Ev::WatchDeliver { node: index, epoch });
            return;
        }
        if let Some(host) = self.nodes.get_mut(index) {
            host.watch_due = false;
        }
        // Now and then a watch ends (a compaction, a lost stream): the node must recover.
        if self.faults_on && self.rng.chance(2) {
            let ended = self
                .nodes
                .get_mut(index)
                .and_then(|h| (!h.watches.is_empty()).then(|| h.watches.remove(0)));
            if let Some(watch) = ended {
                note!(self, "etcd: n{index}'s watch {} ends", watch.id);
                let now = self.node_now(index);
                if let Some(n) = self.nodes.get_mut(index).and_then(|h| h.node.as_mut()) {
                    n.handle_etcd(
                        now,
                        watch.id,
                        EtcdResult::Failed {
                            reason: String::from("etcdserver: watch closed"),
                        },
                    );
                }
                self.pump_node(index);
                return;
            }
        }
        let revision = self.etcd.revision;
        let mut batches = Vec::new();
        if let Some(host) = self.nodes.get_mut(index) {
            for watch in &mut host.watches {
                if watch.next > revision {
                    continue;
                }
                let events = self.etcd.events_from(watch.next, &watch.prefix);
                watch.next = revision + 1;
                if !events.is_empty() {
                    batches.push((watch.id, events));
                }
            }
        }
        for (id, events) in batches {
            let now = self.node_now(index);
            if let Some(n) = self.nodes.get_mut(index).and_then(|h| h.node.as_mut()) {
                n.handle_etcd(now, id, EtcdResult::Events(events));
            }
            self.pump_node(index);
        }
    }

    // ---- links ----

    fn accept(&mut self, link: usize) {
        let Some(l) = self.links.get(link) else {
            return;
        };
        if l.closed {
            return;
        }
        let node = l.node;
        let live = self.nodes.get(node).is_some_and(|h| h.node.is_some());
        if !live {
            let at = self.now + self.latency();
            self.schedule(at, Ev::Refused { link });
            return;
        }
        // The kernel accepts for a stopped process; it reads once it runs again.
        if self.put_off_for_node(node, || Ev::Accept { link }) {
            return;
        }
        let now = self.node_now(node);
        let Some(host) = self.nodes.get_mut(node) else {
            return;
        };
        let epoch = host.epoch;
        let Some(n) = host.node.as_mut() else { return };
        let sconn = n.connect(now);
        host.conns.insert(sconn, link);
        if let Some(l) = self.links.get_mut(link) {
            l.sconn = Some(sconn);
            l.epoch = epoch;
        }
        let at = self.now + self.latency();
        self.schedule(at, Ev::Connected { link });
        self.pump_node(node);
    }

    fn send_to_client(&mut self, link: usize, bytes: Vec<u8>) {
        let lat = self.latency();
        let Some(l) = self.links.get_mut(link) else {
            return;
        };
        let at = (self.now + lat).max(l.last_to_client);
        l.last_to_client = at;
        l.to_client.push_back(bytes);
        self.schedule(at, Ev::ToClient { link });
    }

    fn send_to_node(&mut self, link: usize, bytes: Vec<u8>) {
        let lat = self.latency();
        let Some(l) = self.links.get_mut(link) else {
            return;
        };
        let at = (self.now + lat).max(l.last_to_node);
        l.last_to_node = at;
        l.to_node.push_back(bytes);
        self.schedule(at, Ev::ToNode { link });
    }

    fn node_side_closed(&mut self, link: usize) {
        let Some(l) = self.links.get(link) else {
            return;
        };
        let (node, epoch, sconn) = (l.node, l.epoch, l.sconn);
        let Some(sconn) = sconn else { return };
        if !self.node_live(node, epoch) {
            return;
        }
        if self.put_off_for_node(node, || Ev::NodeSideClosed { link }) {
            return;
        }
        let now = self.node_now(node);
        if let Some(host) = self.nodes.get_mut(node) {
            if host.conns.remove(&sconn).is_some() {
                if let Some(n) = host.node.as_mut() {
                    n.disconnect(now, sconn);
                }
            }
        }
        self.pump_node(node);
    }

    fn client_side_closed(&mut self, link: usize, reason: &'static str) {
        let Some(l) = self.links.get_mut(link) else {
            return;
        };
        if l.closed {
            return;
        }
        let (client, cconn) = (l.client, l.cconn);
        if self.put_off_for_client(client, || Ev::ClientSideClosed { link, reason }) {
            return;
        }
        if let Some(l) = self.links.get_mut(link) {
            l.closed = true;
        }
        let now = self.client_now(client);
        if let Some(c) = self.clients.get_mut(client) {
            c.conns.remove(&cconn);
            c.client.handle_disconnect(now, cconn, reason);
        }
        // The node's side ends too, if it has not already.
        let at = self.now + self.latency();
        self.schedule(at, Ev::NodeSideClosed { link });
        self.flush_client(client);
    }

    // ---- clients ----

    fn step_client(&mut self, client: usize) {
        let Some(host) = self.clients.get(client) else {
            return;
        };
        if host.closed {
            return;
        }
        if host.paused_until > self.now {
            let at = host.paused_until + 1;
            self.schedule(at, Ev::Step { client });
            return;
        }
        let now = self.client_now(client);
        let roll = self.rng.range(0, 99);
        let pick = self.rng.index(host.held.len());
        let chosen = host
            .held
            .iter()
            .nth(pick)
            .map(|(&t, h)| (t, h.name.clone(), h.shared));
        let name = String::from(
            LOCKS
                .get(self.rng.index(LOCKS.len()))
                .copied()
                .unwrap_or("alpha"),
        );
        let sent = self.now;
        let mut recorded: Option<(RequestId, &'static str, String, u64, LeaseOp)> = None;
        match (roll, chosen) {
            (0..=49, _) | (_, None) if roll < 85 => {
                let ttl_ms = self.rng.range(300, MAX_TTL_MS);
                let mut options = AcquireOptions::default();
                options.wait_ms = if self.rng.chance(50) {
                    0
                } else {
                    self.rng.range(100, 3_000)
                };
                if self.rng.chance(25) {
                    options.mode = Mode::Shared;
                }
                options.ephemeral = self.rng.chance(15);
                options.steal = options.wait_ms == 0 && self.rng.chance(4);
                if options.steal {
                    options.mode = Mode::Exclusive;
                }
                // A lock-delay, kept only if the lease expires.
                if self.rng.chance(20) {
                    options.lock_delay_ms = Some(self.rng.range(1, 2_000));
                }
                let ephemeral = options.ephemeral;
                let shared = options.mode == Mode::Shared;
                options.owner = Some(self.next_owner());
                if options.steal {
                    self.steals
                        .entry(name.clone())
                        .or_default()
                        .push((self.now, None));
                }
                if let Some(h) = self.clients.get_mut(client) {
                    if let Ok(id) = h.client.acquire(now, &name, ttl_ms, &options) {
                        let kind = match (options.steal, shared, ephemeral) {
                            (true, _, true) => "steal-ephemeral",
                            (true, _, false) => "steal",
                            (false, true, true) => "acquire-shared-ephemeral",
                            (false, true, false) => "acquire-shared",
                            (false, false, true) => "acquire-ephemeral",
                            (false, false, false) => "acquire",
                        };
                        let op = LeaseOp::Acquire {
                            ttl_ms,
                            shared,
                            steal: options.steal,
                            ephemeral,
                            lock_delay_ms: options.lock_delay_ms.unwrap_or(0),
                            kept: false,
                            outcome: LinOutcome::Unknown,
                            free_within_ms: None,
                        };
                        recorded = Some((id, kind, name, 0, op));
                    }
                }
            }
            (50..=64, Some((token, name, _))) => {
                let ttl_ms = self.rng.range(300, MAX_TTL_MS);
                if let Some(h) = self.clients.get_mut(client) {
                    if let Ok(id) = h.client.renew(now, &name, token, ttl_ms) {
                        let op = LeaseOp::Renew {
                            token,
                            ttl_ms,
                            outcome: LinOutcome::Unknown,
                        };
                        recorded = Some((id, "renew", name, token, op));
                    }
                }
            }
            (65..=79, Some((token, name, _))) => {
                if let Some(h) = self.clients.get_mut(client) {
                    if let Some(held) = h.held.get_mut(&token) {
                        held.releasing = true;
                    }
                    if let Ok(id) = h.client.release(now, &name, token) {
                        let op = LeaseOp::Release {
                            token,
                            outcome: LinOutcome::Unknown,
                        };
                        recorded = Some((id, "release", name, token, op));
                    }
                }
            }
            (80..=94, Some((token, name, false))) => {
                let believed = self.clients.get(client).is_some_and(|h| {
                    h.client
                        .lease(now, &name, token)
                        .is_some_and(|status| status.ms_left > 0)
                });
                if believed {
                    self.fence_write(&name, token);
                }
            }
            _ => {}
        }
        if let Some((id, kind, name, token, op)) = recorded {
            note!(self, "c{client} sends {kind} {name} #{token}");
            let acquire = matches!(op, LeaseOp::Acquire { .. });
            let index = self.call(&name, op);
            if acquire {
                let owner = self.next_owner();
                self.owners.insert((name.clone(), index), owner);
            }
            let history = Some(index);
            if let Some(h) = self.clients.get_mut(client) {
                h.pending.insert(
                    id,
                    Sent {
                        kind,
                        name,
                        at: sent,
                        token,
                        history,
                    },
                );
            }
        }
        self.flush_client(client);
        let at = self.now + self.rng.range(30, 600);
        self.schedule(at, Ev::Step { client });
    }

    fn fence_write(&mut self, name: &str, token: u64) {
        let outcome = self.fence.check(name, token);
        let high = self.fence_high.entry(String::from(name)).or_insert(0);
        if let FenceOutcome::Accepted { .. } = outcome {
            let was = *high;
            *high = token;
            self.outcome.fenced_writes.0 += 1;
            if token < was {
                self.fail(format!(
                    "the fence accepted token {token} on {name} after token {was}"
                ));
            }
        } else {
            self.outcome.fenced_writes.1 += 1;
        }
    }

    /// Performs what a client asks for and takes its events and replies, until none is left.
    fn flush_client(&mut self, client: usize) {
        loop {
            let Some(host) = self.clients.get_mut(client) else {
                return;
            };
            if let Some(output) = host.client.poll_output() {
                match output {
                    ClientOutput::Connect { conn, endpoint } => {
                        let link = self.links.len();
                        host.conns.insert(conn, link);
                        self.links.push(Link {
                            client,
                            cconn: conn,
                            node: endpoint % NODES,
                            epoch: 0,
                            sconn: None,
                            closed: false,
                            last_to_node: 0,
                            last_to_client: 0,
                            to_node: VecDeque::new(),
                            to_client: VecDeque::new(),
                        });
                        let at = self.now + self.latency();
                        self.schedule(at, Ev::Accept { link });
                    }
                    ClientOutput::Transmit { conn, bytes } => {
                        if let Some(&link) = host.conns.get(&conn) {
                            note!(
                                self,
                                "c{client} conn {conn} sends on link {link}: {}",
                                shown(&bytes)
                            );
                            self.send_to_node(link, bytes);
                        }
                    }
                    ClientOutput::Close { conn } => {
                        if let Some(link) = host.conns.remove(&conn) {
                            if let Some(l) = self.links.get_mut(link) {
                                l.closed = true;
                            }
                            let at = self.now + self.latency();
                            self.schedule(at, Ev::NodeSideClosed { link });
                        }
                    }
                    _ => {}
                }
                continue;
            }
            if let Some(event) = host.client.poll_event() {
                if let ClientEvent::LeaseLost { name, token, .. } = event {
                    host.held.remove(&token);
                    note!(self, "c{client} lost {name} #{token}");
                }
                continue;
            }
            if let Some((id, result)) = host.client.poll_reply() {
                let Some(Sent {
                    kind,
                    name,
                    at: sent,
                    token: named,
                    history,
                }) = host.pending.remove(&id)
                else {
                    continue;
                };
                if kind.starts_with("steal") {
                    // One whose connection failed may still run: a leader may have queued its
                    // entry behind appends in flight, or be paused with it. Within
                    // `STEAL_UNKNOWN_MS` it has run or never will (a pause lasts 6 s at most,
                    // an etcd call 1.5 s, and a leader unconfirmed for 2 s steps down).
                    let lost = matches!(result, Err(fencelock_core::Error::ConnectionLost(_)));
                    let end = self.now + if lost { STEAL_UNKNOWN_MS } else { 0 };
                    if let Some(steal) = self
                        .steals
                        .get_mut(&name)
                        .and_then(|steals| steals.iter_mut().find(|(at, _)| *at == sent))
                    {
                        steal.1 = Some(end);
                    }
                }
                let mut kept = false;
                match &result {
                    Ok(Reply::Granted { token, .. }) => {
                        let token = *token;
                        let keep = self.rng.chance(60);
                        let Some(host) = self.clients.get_mut(client) else {
                            return;
                        };
                        host.grants += 1;
                        // Closed clients (and the probe) renew nothing.
                        let keep = keep && !host.closed;
                        kept = keep;
                        if keep {
                            host.client.keep_alive(&name, token);
                        }
                        host.held.insert(
                            token,
                            Held {
                                name: name.clone(),
                                shared: kind.starts_with("acquire-shared"),
                                ephemeral: kind.ends_with("ephemeral"),
                                releasing: false,
                                sent_at: sent,
                            },
                        );
                        note!(self, "c{client} {kind} {name} -> #{token}");
                        self.granted(&name, token, sent);
                    }
                    Ok(Reply::Ok) if kind == "release" => {
                        if let Some(host) = self.clients.get_mut(client) {
                            host.held.remove(&named);
                        }
                        note!(self, "c{client} released {name} #{named}");
                    }
                    other => {
                        note!(self, "c{client} {kind} {name} -> {}", short(other));
                    }
                }
                let now = self.now;
                let entry =
                    history.and_then(|i| Some((i, self.history.get_mut(&name)?.get_mut(i)?)));
                if let Some((index, entry)) = entry {
                    if complete(entry, &result, kept, now) {
                        self.unknown.push((name, index, now));
                    } else if refused_renewal_or_release(&entry.op) {
                        // The client sends a RENEW or RELEASE once more on a new connection
                        // when its connection fails: the refusal may answer that copy while
                        // the first ran. The first enters as a call of unknown outcome.
                        let mut copy = entry.clone();
                        match &mut copy.op {
                            LeaseOp::Renew { outcome, .. } => *outcome = LinOutcome::Unknown,
                            LeaseOp::Release { outcome, .. } => *outcome = LinOutcome::Unknown,
                            _ => {}
                        }
                        copy.ret = None;
                        if let Some(history) = self.history.get_mut(&name) {
                            history.push(copy);
                            let copied = history.len() - 1;
                            self.unknown.push((name, copied, now));
                        }
                    }
                }
                continue;
            }
            break;
        }
    }

    /// The create revision of the election key (0: none).
    fn election_term(&self) -> u64 {
        let key = format!("{}leader", self.cluster_config.prefix());
        self.etcd
            .keys
            .get(key.as_bytes())
            .map_or(0, |stored| stored.create)
    }

    /// The owner label of the next ACQUIRE: one per call, so the log names the call.
    fn next_owner(&self) -> String {
        format!("o{}", self.owners.len())
    }

    /// Opens an operation in `name`'s history, invoked now; returns its index.
    fn call(&mut self, name: &str, op: LeaseOp) -> usize {
        let history = self.history.entry(String::from(name)).or_default();
        history.push(LinEntry {
            invoke: self.now,
            ret: None,
            op,
        });
        history.len() - 1
    }

    /// Replays every batch etcd committed, in order, on an engine of its own: for each ACQUIRE
    /// of this run (by its owner label) that committed, the token it was granted, at once or
    /// after a wait (`None`: it ran and was not granted).
    ///
    /// Also returns the first grant made while the log orphans the old leader's clients: only
    /// they have waits then, and none of them can hear of a grant (a phantom lease that keeps
    /// its lock for a whole TTL).
    fn replay_log(&self) -> Replayed {
        let mut config = Config::default();
        config.max_ttl_ms = MAX_TTL_MS;
        config.max_wait_ms = 10_000;
        if let Some(tweak) = self.options.engine_tweak {
            tweak(&mut config);
        }
        let mut engine = Engine::new(config);
        let log_prefix = format!("{}log/", self.cluster_config.prefix());
        let mut ran: BTreeMap<String, (Option<u64>, u64)> = BTreeMap::new();
        let mut waiting = BTreeMap::new();
        let mut phantom = None;
        let mut committed: BTreeMap<(u64, bool), Vec<u64>> = BTreeMap::new();
        for (revision, event) in &self.etcd.history {
            let WatchEvent::Put(kv) = event else { continue };
            if !kv.key.starts_with(log_prefix.as_bytes()) {
                continue;
            }
            let Ok(batch) = Batch::decode(&kv.value) else {
                continue;
            };
            let put_at = self
                .etcd
                .put_at_ms
                .get(revision)
                .copied()
                .unwrap_or(u64::MAX);
            for entry in &batch.entries {
                let orphaning = matches!(entry, Entry::Orphan { .. } | Entry::OrphanAll { .. });
                match entry {
                    Entry::Renew { token, .. } => {
                        committed.entry((*token, false)).or_default().push(put_at);
                    }
                    Entry::Release { token, .. } => {
                        committed.entry((*token, true)).or_default().push(put_at);
                    }
                    _ => {}
                }
                match entry.acquire_request() {
                    Some((name, ttl_ms, options)) if options.owner.is_some() => {
                        let owner = options.owner.clone().unwrap_or_default();
                        let granted = match engine.acquire(entry.at(), name, ttl_ms, &options) {
                            Ok(Acquired::Granted { token, .. }) => Some(token),
                            Ok(Acquired::Queued { waiter, .. }) => {
                                waiting.insert(waiter, owner.clone());
                                None
                            }
                            _ => None,
                        };
                        ran.insert(owner, (granted, put_at));
                    }
                    _ => entry.apply(&mut engine),
                }
                while let Some(event) = engine.poll_event() {
                    if let EngineEvent::Granted { waiter, token, .. } = event {
                        if orphaning && phantom.is_none() {
                            phantom = Some(format!(
                                "log batch {} grants token {token} as it orphans the old leader's clients: a lease none of them can hear of",
                                batch.index
                            ));
                        }
                        if let Some(owner) = waiting.remove(&waiter) {
                            ran.insert(owner, (Some(token), put_at));
                        }
                    }
                }
                while engine.poll_persist().is_some() {}
                while engine.poll_horizon().is_some() {}
            }
        }
        Replayed {
            ran,
            phantom,
            committed,
        }
    }

    /// A node that leads now and did not when last looked at: every lease in the log lives
    /// on from its last logged instant, so each may end later by the time since that instant
    /// was the leader's (a failover lengthens leases, never shortens them). That enters each
    /// lock's history as a restart after that long. The instant was the engine time of the
    /// term that wrote the last batch, which started at (engine time, simulated time); if this
    /// run never saw that term start, the whole run so far bounds it.
    fn note_promotion(&mut self, index: usize) {
        let Some(host) = self.nodes.get(index) else {
            return;
        };
        let Some(node) = host.node.as_ref() else {
            return;
        };
        let term = if node.role() == Role::Leader {
            node.term()
        } else {
            0
        };
        let was = self.leading.get(index).copied().unwrap_or(0);
        if term == was {
            return;
        }
        if let Some(slot) = self.leading.get_mut(index) {
            *slot = term;
        }
        if term == 0 {
            return;
        }
        let resumed = node.engine_time_at(Instant(self.now - host.origin)).as_ms();
        let log_prefix = format!("{}log/", self.cluster_config.prefix());
        let last_term = self
            .etcd
            .keys
            .range(log_prefix.clone().into_bytes()..)
            .take_while(|(key, _)| key.starts_with(log_prefix.as_bytes()))
            .last()
            .and_then(|(_, stored)| Batch::decode(&stored.value).ok())
            .map(|batch| batch.term);
        let written_at = last_term
            .and_then(|t| self.terms.get(&t))
            .map_or(START, |&(engine, at)| at + resumed.saturating_sub(engine));
        let gap = self.now.saturating_sub(written_at);
        self.terms.insert(term, (resumed, self.now));
        note!(
            self,
            "n{index} leads (term {term}) from engine time {resumed}: leases may end up to {gap} ms later"
        );
        for lock in LOCKS {
            self.history
                .entry(String::from(lock))
                .or_default()
                .push(LinEntry {
                    invoke: self.now,
                    ret: Some(self.now),
                    op: LeaseOp::CleanRestart { downtime_ms: gap },
                });
        }
    }

    /// Every lock's history is linearizable under the lease model.
    ///
    /// When a call of unknown outcome may have taken effect: it ran on the leader that got it,
    /// or nowhere, and its entry commits only in that leader's term. While the term lasts, its
    /// effects come within `STEAL_UNKNOWN_MS` of the call's end (a WAIT lasts 3 s at most, a
    /// pause 6 s, and the leader drops the connection's waits once it hears it closed). Once
    /// the election key changes, nothing of that term commits, and the next leader withdraws
    /// every wait of the old clients at its promotion before it serves any lock.
    fn unknown_until(&self, ended: u64) -> u64 {
        let within = ended + STEAL_UNKNOWN_MS;
        let change = self
            .elections
            .get(self.elections.partition_point(|&at| at < ended));
        match change {
            Some(&change) if change <= within => change,
            _ => within,
        }
    }

    /// Every lock's history is linearizable under the lease model (calls of unknown outcome
    /// bounded by `unknown_until`; an ACQUIRE's outcome read from the committed log).
    fn check_histories(&mut self) {
        let Replayed {
            ran,
            phantom,
            committed,
        } = self.replay_log();
        if let Some(message) = phantom {
            self.fail(message);
            return;
        }
        // Calls of unknown outcome whose entry never committed: they had no effect.
        let mut never_ran: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        for (name, index, ended) in std::mem::take(&mut self.unknown) {
            let mut until = self.unknown_until(ended);
            let Some(entry) = self.history.get_mut(&name).and_then(|h| h.get_mut(index)) else {
                continue;
            };
            // A RENEW or RELEASE took effect, if at all, by the time etcd took the batch with
            // its entry: one of those of its lease put after its call began (the log does not
            // say which call, or which automatic renewal, wrote each). Without any, it had no
            // effect.
            let logged = match &entry.op {
                LeaseOp::Renew { token, .. } => Some((*token, false)),
                LeaseOp::Release { token, .. } => Some((*token, true)),
                _ => None,
            };
            if let Some(key) = logged {
                match last_put_since(&committed, key, entry.invoke) {
                    Some(at) => until = until.min(at),
                    None => {
                        never_ran.entry(name.clone()).or_default().insert(index);
                    }
                }
            }
            // An ACQUIRE's outcome is in the log: whether its entry committed, and what
            // replaying the log made of it (granted by the time etcd took the batch that
            // granted it).
            if let LeaseOp::Acquire { outcome, .. } = &mut entry.op {
                let owner = self.owners.get(&(name.clone(), index));
                *outcome = match owner.and_then(|owner| ran.get(owner).copied()) {
                    Some((Some(token), at)) => {
                        until = until.min(at);
                        LinOutcome::Ok(token)
                    }
                    Some((None, _)) => LinOutcome::Fail(String::from("RAN-NOT-GRANTED")),
                    None => LinOutcome::Fail(String::from("NOT-COMMITTED")),
                };
            }
            entry.ret = Some(until.max(entry.invoke));
        }
        for (name, history) in &self.history {
            // Calls that change nothing and constrain nothing in any state (an ACQUIRE refused
            // other than LOCKED, a call that never committed) only widen the search: left out.
            let skipped = never_ran.get(name);
            let history: Vec<LinEntry<LeaseOp>> = history
                .iter()
                .enumerate()
                .filter(|(index, entry)| {
                    !skipped.is_some_and(|skipped| skipped.contains(index))
                        && !matches!(&entry.op, LeaseOp::Acquire { outcome: LinOutcome::Fail(code), .. } if code != "LOCKED")
                })
                .map(|(_, entry)| entry.clone())
                .collect();
            let history = &history;
            self.outcome.checked_ops += history.len() as u64;
            match lin::judge(history, &format!("lock {name}")) {
                Ok(true) => {}
                Ok(false) => self.outcome.undecided_histories += 1,
                Err(message) => {
                    self.fail(message);
                    return;
                }
            }
        }
    }

    /// A grant: a token never granted before, above every token revealed before its request
    /// was sent.
    fn granted(&mut self, name: &str, token: u64, sent: u64) {
        self.outcome.grants += 1;
        if !self.revealed.insert(token) {
            self.fail(format!("token {token} granted twice (now on {name})"));
            return;
        }
        let before = self.reveals.partition_point(|&(at, _)| at < sent);
        let highest = before
            .checked_sub(1)
            .and_then(|i| self.reveals.get(i))
            .map_or(0, |&(_, high)| high);
        if token <= highest {
            self.fail(format!(
                "{name} granted #{token} for a request sent at {sent} ms, after #{highest} was revealed"
            ));
        }
        let high = self.reveals.last().map_or(0, |&(_, h)| h).max(token);
        self.reveals.push((self.now, high));
    }

    /// No two clients believe at once that they hold conflicting leases of a lock (each by
    /// its own conservative deadline). Left out: EPHEMERAL leases (one ends on the server
    /// when its connection does, before its client may hear of it), leases whose RELEASE was
    /// sent, and leases a STEAL of their lock may have ended: one asked for before that
    /// steal's call ended.
    fn check_beliefs(&mut self) {
        let mut believed: BTreeMap<&str, Vec<(usize, u64, bool)>> = BTreeMap::new();
        for (index, host) in self.clients.iter().enumerate() {
            let now = Instant(self.now - host.origin);
            for (&token, held) in &host.held {
                if held.ephemeral || held.releasing || self.stealable(held) {
                    continue;
                }
                let live = host
                    .client
                    .lease(now, &held.name, token)
                    .is_some_and(|status| status.ms_left > 0);
                if live {
                    believed.entry(held.name.as_str()).or_default().push((
                        index,
                        token,
                        held.shared,
                    ));
                }
            }
        }
        let conflict = believed.iter().find_map(|(name, holders)| {
            let exclusive = holders.iter().find(|h| !h.2)?;
            let other = holders.iter().find(|h| h.1 != exclusive.1)?;
            Some(format!(
                "c{} believes it holds {name} #{} exclusively while c{} believes it holds #{}",
                exclusive.0, exclusive.1, other.0, other.1
            ))
        });
        if let Some(message) = conflict {
            self.fail(message);
        }
    }

    /// A STEAL of the lease's lock may have ended it before its holder could know: one that
    /// was asked for before the steal's call ended.
    fn stealable(&self, held: &Held) -> bool {
        self.steals.get(&held.name).is_some_and(|steals| {
            steals
                .iter()
                .any(|&(_, ended)| ended.map_or(true, |end| end >= held.sent_at))
        })
    }

    /// The node that leads by etcd's word (the election key has its term), if any.
    fn leader(&self) -> Option<usize> {
        let key = format!("{}leader", self.cluster_config.prefix());
        let term = self.etcd.keys.get(key.as_bytes())?.create;
        self.nodes.iter().position(|host| {
            host.node
                .as_ref()
                .is_some_and(|node| node.role() == Role::Leader && node.term() == term)
        })
    }

    /// Client side, after every step: each lease a client reports held is still tracked, is
    /// signalled lost at the latest when its local deadline passes, and, while a node leads by
    /// etcd's word, lives in that leader's engine at least until the client's deadline
    /// (engine time mapped to the leader's host clock). Left out of the last: the leases
    /// `check_beliefs` leaves out.
    fn check_clients(&mut self) {
        let now = self.now;
        // The leader's leases: token -> the simulated instant its engine ends it.
        let leader: Option<BTreeMap<u64, u64>> = self.leader().and_then(|index| {
            let host = self.nodes.get(index)?;
            let node = host.node.as_ref()?;
            let engine_now = node.engine_time_at(Instant(now - host.origin)).as_ms();
            Some(
                node.engine()
                    .leases()
                    .map(|lease| {
                        let left = lease.deadline.as_ms().saturating_sub(engine_now);
                        (lease.token, now + left)
                    })
                    .collect(),
            )
        });
        let mut failure = None;
        'clients: for (index, host) in self.clients.iter().enumerate() {
            let at = Instant(now - host.origin);
            let paused = host.paused_until > now;
            // A timer due at this very instant fires before time moves on.
            let timer_due = host
                .client
                .poll_timeout()
                .is_some_and(|t| host.origin + t.as_ms() <= now);
            for (&token, held) in &host.held {
                let Some(status) = host.client.lease(at, &held.name, token) else {
                    failure = Some(format!(
                        "c{index} stopped tracking {} #{token} without a LeaseLost event",
                        held.name
                    ));
                    break 'clients;
                };
                let deadline = host.origin + status.deadline.as_ms();
                if deadline < now && !paused && !timer_due {
                    failure = Some(format!(
                        "c{index} still reports {} #{token} held {} ms after its local deadline, with no LeaseLost",
                        held.name,
                        now - deadline
                    ));
                    break 'clients;
                }
                if deadline <= now || held.ephemeral || held.releasing || self.stealable(held) {
                    continue;
                }
                let Some(leases) = &leader else { continue };
                match leases.get(&token) {
                    Some(&end) if end < deadline => {
                        failure = Some(format!(
                            "c{index} believes {} #{token} lasts until {deadline}, but the leader ends it at {end}",
                            held.name
                        ));
                        break 'clients;
                    }
                    Some(_) => {}
                    None => {
                        failure = Some(format!(
                            "c{index} believes it holds {} #{token} until {deadline}, but the leader does not",
                            held.name
                        ));
                        break 'clients;
                    }
                }
            }
        }
        if let Some(message) = failure {
            self.fail(message);
        }
    }

    // ---- faults ----

    fn fault(&mut self) {
        if !self.faults_on {
            return;
        }
        let roll = self.rng.range(0, 99);
        let leader = (0..NODES).find(|&i| {
            self.nodes
                .get(i)
                .and_then(|h| h.node.as_ref())
                .is_some_and(|n| n.role() == Role::Leader)
        });
        let target = match leader {
            Some(l) if self.rng.chance(60) => l,
            _ => self.rng.index(NODES),
        };
        match roll {
            0..=24 => {
                let ms = self.rng.range(300, 6_000);
                if let Some(h) = self.nodes.get_mut(target) {
                    if h.node.is_some() {
                        h.paused_until = h.paused_until.max(self.now + ms);
                    }
                }
                note!(self, "fault: n{target} paused for {ms} ms");
            }
            25..=39 => self.crash_node(target, "crashes"),
            40..=54 => {
                let ms = self.rng.range(300, 5_000);
                if let Some(h) = self.nodes.get_mut(target) {
                    h.etcd_cut_until = h.etcd_cut_until.max(self.now + ms);
                }
                note!(self, "fault: n{target} cut off from etcd for {ms} ms");
            }
            55..=69 => {
                let open: Vec<usize> = (0..self.links.len())
                    .filter(|&l| self.links.get(l).is_some_and(|l| !l.closed))
                    .collect();
                if !open.is_empty() {
                    let link = open.get(self.rng.index(open.len())).copied().unwrap_or(0);
                    note!(self, "fault: link {link} reset");
                    let at = self.now + self.latency();
                    self.schedule(at, Ev::NodeSideClosed { link });
                    let at = self.now + self.latency();
                    self.schedule(
                        at,
                        Ev::ClientSideClosed {
                            link,
                            reason: "connection reset",
                        },
                    );
                }
            }
            70..=77 => {
                let now = self.node_now(target);
                let stopped = match self.nodes.get_mut(target).and_then(|h| h.node.as_mut()) {
                    Some(n) => {
                        n.shutdown(now);
                        true
                    }
                    None => false,
                };
                if stopped {
                    note!(self, "fault: n{target} shuts down cleanly");
                    self.outcome.shutdowns += 1;
                    self.pump_node(target);
                    let at = self.now + self.rng.range(50, 500);
                    self.schedule(at, Ev::Stop { node: target });
                }
            }
            78..=87 => {
                let client = self.rng.index(self.clients.len());
                let ms = self.rng.range(500, 2 * MAX_TTL_MS + 2_000);
                if let Some(c) = self.clients.get_mut(client) {
                    c.paused_until = c.paused_until.max(self.now + ms);
                }
                note!(self, "fault: c{client} paused for {ms} ms");
            }
            _ => {}
        }
        let at = self.now + self.rng.range(300, 3_000);
        self.schedule(at, Ev::Fault);
    }

    // ---- the end ----

    /// With every fault over: a new client must get each lock within the recovery bound, and
    /// then one node leads and every follower holds what the leader holds.
    fn recovery(&mut self) {
        let mut config = ClientConfig::default();
        config.endpoints = NODES;
        config.endpoint_addresses = (0..NODES).map(address).collect();
        config.request_timeout_ms = 2_000;
        let probe = self.clients.len();
        self.clients.push(ClientHost {
            client: Client::new(config),
            origin: 0,
            paused_until: 0,
            conns: BTreeMap::new(),
            pending: BTreeMap::new(),
            held: BTreeMap::new(),
            grants: 0,
            closed: true,
        });
        let deadline = self.now + RECOVERY_MS;
        for lock in LOCKS {
            let mut got = false;
            while !got && self.violation.is_none() && self.now < deadline {
                let now = self.client_now(probe);
                let mut options = AcquireOptions::default();
                options.wait_ms = 3_000;
                options.owner = Some(self.next_owner());
                let sent = self.now;
                let before = self.clients.get(probe).map_or(0, |h| h.grants);
                if let Some(h) = self.clients.get_mut(probe) {
                    // A TTL longer than the wait: the lease is measured from the request.
                    if let Ok(id) = h.client.acquire(now, lock, MAX_TTL_MS, &options) {
                        let op = LeaseOp::Acquire {
                            ttl_ms: MAX_TTL_MS,
                            shared: false,
                            steal: false,
                            ephemeral: false,
                            lock_delay_ms: 0,
                            kept: false,
                            outcome: LinOutcome::Unknown,
                            free_within_ms: None,
                        };
                        let index = self.call(lock, op);
                        let owner = self.next_owner();
                        self.owners.insert((String::from(lock), index), owner);
                        let history = Some(index);
                        if let Some(h) = self.clients.get_mut(probe) {
                            h.pending.insert(
                                id,
                                Sent {
                                    kind: "acquire",
                                    name: String::from(lock),
                                    at: sent,
                                    token: 0,
                                    history,
                                },
                            );
                        }
                    }
                }
                self.flush_client(probe);
                // Run until the probe's request is answered.
                while self.violation.is_none()
                    && self.now < deadline
                    && self
                        .clients
                        .get(probe)
                        .is_some_and(|h| !h.pending.is_empty())
                {
                    if !self.step_once(deadline) {
                        break;
                    }
                }
                got = self.clients.get(probe).map_or(0, |h| h.grants) > before;
                if !got {
                    // Refused (no leader yet, or the lock still held): a little later.
                    let until = self.now + 200;
                    while self.violation.is_none() && self.now < until.min(deadline) {
                        if !self.step_once(until.min(deadline)) {
                            self.now = until.min(deadline);
                        }
                    }
                }
            }
            if !got && self.violation.is_none() {
                let roles: Vec<String> = self
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(i, h)| match &h.node {
                        Some(n) => format!(
                            "n{i} {} (leader {:?}, log index {}, etcd revision {})",
                            n.role().as_str(),
                            n.leader(),
                            n.log_index(),
                            n.etcd_revision()
                        ),
                        None => format!("n{i} down"),
                    })
                    .collect();
                let key = format!("{}leader", self.cluster_config.prefix());
                let held = self.etcd.kv(key.as_bytes());
                self.fail(format!(
                    "{} ms after the faults ended, a new client still had no lease on {lock} ({}; etcd at revision {}: election key {:?} created at {})",
                    RECOVERY_MS,
                    roles.join(", "),
                    self.etcd.revision,
                    String::from_utf8_lossy(&held.value),
                    held.create_revision
                ));
                return;
            }
        }
        // Quiet until the probe's leases have ended and the leader's appends of their ends
        // reached every follower.
        let until = self.now + MAX_TTL_MS + 4_000;
        while self.violation.is_none() && self.step_once(until) {}
        self.now = self.now.max(until);
        // Every lease has ended by now: each holder heard of it.
        let unheard = self.clients.iter().enumerate().find_map(|(index, host)| {
            let (token, held) = host.held.iter().next()?;
            Some(format!(
                "c{index} never heard that {} #{token} ended (no LeaseLost by the end)",
                held.name
            ))
        });
        if let Some(message) = unheard {
            self.fail(message);
            return;
        }
        self.replicas_agree();
        self.check_histories();
    }

    /// Takes one step: the earliest event or timer due by `until`, then the checks; false
    /// when nothing is due by then.
    fn step_once(&mut self, until: u64) -> bool {
        let event_at = self.queue.peek().map(|Reverse((at, _))| *at);
        let timer = self.next_timer();
        let timer_first = match (event_at, timer) {
            (Some(e), Some((t, _, _))) => t < e,
            (None, Some(_)) => true,
            _ => false,
        };
        let at = if timer_first {
            timer.map(|(t, _, _)| t)
        } else {
            event_at
        };
        let Some(at) = at.filter(|&at| at <= until) else {
            return false;
        };
        if at > self.now {
            self.now = at;
            self.steps_now = 0;
        }
        self.steps_now += 1;
        if self.steps_now > 100_000 {
            let what = match timer {
                Some((_, Some(node), _)) if timer_first => format!("n{node}'s timer"),
                Some((_, _, Some(client))) if timer_first => format!("c{client}'s timer"),
                _ => String::from("events"),
            };
            self.fail(format!(
                "a busy loop: 100 000 steps at the same instant, the last of them {what}"
            ));
            return false;
        }
        self.outcome.steps += 1;
        if timer_first {
            match timer {
                Some((_, Some(node), _)) => {
                    let now = self.node_now(node);
                    if let Some(n) = self.nodes.get_mut(node).and_then(|h| h.node.as_mut()) {
                        n.handle_timeout(now);
                    }
                    self.pump_node(node);
                    let next = self
                        .nodes
                        .get(node)
                        .and_then(|h| h.node.as_ref())
                        .and_then(ClusterNode::poll_timeout);
                    self.timer_moved_on(&format!("n{node}"), now, next);
                }
                Some((_, _, Some(client))) => {
                    let now = self.client_now(client);
                    if let Some(c) = self.clients.get_mut(client) {
                        c.client.handle_timeout(now);
                    }
                    self.flush_client(client);
                    let next = self
                        .clients
                        .get(client)
                        .and_then(|c| c.client.poll_timeout());
                    self.timer_moved_on(&format!("c{client}"), now, next);
                }
                _ => {}
            }
        } else if let Some(Reverse((_, seq))) = self.queue.pop() {
            if let Some(ev) = self.events.remove(&seq) {
                self.handle(ev);
            }
        }
        let term_before = self.election_term();
        if self.etcd.expire(self.now) {
            self.watches_changed();
        }
        if self.election_term() != term_before {
            self.elections.push(self.now);
        }
        self.check_beliefs();
        self.check_clients();
        true
    }

    fn timer_moved_on(&mut self, who: &str, now: Instant, next: Option<Instant>) {
        if let Some(message) = stuck_timer(who, now, next) {
            self.fail(message);
        }
    }

    fn replicas_agree(&mut self) {
        let leaders: Vec<usize> = (0..NODES)
            .filter(|&i| {
                self.nodes
                    .get(i)
                    .and_then(|h| h.node.as_ref())
                    .is_some_and(|n| n.role() == Role::Leader)
            })
            .collect();
        let [leader] = leaders.as_slice() else {
            self.fail(format!("after recovery {} nodes lead", leaders.len()));
            return;
        };
        let state = |i: usize| {
            self.nodes.get(i).and_then(|h| h.node.as_ref()).map(|n| {
                let mut leases: Vec<(String, u64)> = n
                    .engine()
                    .leases()
                    .map(|l| (String::from(l.name), l.token))
                    .collect();
                leases.sort();
                (n.log_index(), n.engine().last_token(), leases)
            })
        };
        let expected = state(*leader);
        for i in 0..NODES {
            if i == *leader {
                continue;
            }
            let got = state(i);
            if got != expected {
                self.fail(format!(
                    "follower n{i} holds (log index, last token, leases) {got:?}, leader n{leader} {expected:?}"
                ));
                return;
            }
        }
    }
}

/// Bytes on a link, for the trace: printable ASCII as is, the rest escaped.
fn shown(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

fn address(index: usize) -> String {
    format!("n{index}")
}

fn op_name(op: &EtcdOp) -> &'static str {
    match op {
        EtcdOp::GrantLease { .. } => "grant lease",
        EtcdOp::KeepAlive { .. } => "keep-alive",
        EtcdOp::Revoke { .. } => "revoke",
        EtcdOp::Campaign { .. } => "campaign",
        EtcdOp::Append { .. } => "append",
        EtcdOp::Range { .. } => "range",
        _ => "watch",
    }
}

fn result_name(result: &EtcdResult) -> String {
    match result {
        EtcdResult::Campaign { won, .. } => format!("won {won}"),
        EtcdResult::Append {
            succeeded,
            revision,
        } => {
            format!("succeeded {succeeded} at {revision}")
        }
        EtcdResult::KeepAlive { ttl_s } => format!("ttl {ttl_s}"),
        EtcdResult::Failed { reason } => format!("failed: {reason}"),
        _ => String::from("ok"),
    }
}

fn short(result: &Result<Reply, fencelock_core::Error>) -> String {
    match result {
        Ok(Reply::MsLeft(ms)) => format!("{ms} ms left"),
        Ok(_) => String::from("ok"),
        Err(error) => error.to_string(),
    }
}

/// What replaying the committed log tells the end-of-run checks.
struct Replayed {
    /// Each ACQUIRE's owner label: the token it was granted (`None` if it ran without one),
    /// and when etcd took the batch that granted it (or that held the request).
    ran: BTreeMap<String, (Option<u64>, u64)>,
    /// A grant made while orphaning the old leader's clients.
    phantom: Option<String>,
    /// When etcd took each committed RENEW (`false`) or RELEASE (`true`) of a lease, in
    /// simulated ms, in log order.
    committed: BTreeMap<(u64, bool), Vec<u64>>,
}

/// The latest time etcd took an entry of `key`, if at or after `since` (the times are in log
/// order, so none before it).
fn last_put_since(
    committed: &BTreeMap<(u64, bool), Vec<u64>>,
    key: (u64, bool),
    since: u64,
) -> Option<u64> {
    committed
        .get(&key)?
        .last()
        .copied()
        .filter(|&at| at >= since)
}

/// Records how a call ended in its history entry: when, and its outcome; returns true if its
/// outcome is unknown (its end is then settled by `check_histories`): a call whose connection
/// failed after it was sent, and a deposed leader's "may or may not have taken effect".
fn complete(
    entry: &mut LinEntry<LeaseOp>,
    result: &Result<Reply, fencelock_core::Error>,
    kept: bool,
    now: u64,
) -> bool {
    use fencelock_core::Error;
    let unknown = match result {
        Err(Error::ConnectionLost(message)) => !message.contains(" not sent: "),
        Err(Error::Reply { code, message }) => {
            code == "NOTLEADER" && message.contains("may or may not")
        }
        _ => false,
    };
    entry.ret = (!unknown).then_some(now);
    lin::settle(&mut entry.op, result, unknown, kept);
    unknown
}

/// A RENEW or RELEASE that was refused.
fn refused_renewal_or_release(op: &LeaseOp) -> bool {
    matches!(
        op,
        LeaseOp::Renew {
            outcome: LinOutcome::Fail(_),
            ..
        } | LeaseOp::Release {
            outcome: LinOutcome::Fail(_),
            ..
        }
    )
}
