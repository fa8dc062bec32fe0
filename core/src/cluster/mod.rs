//! Cluster mode: one leader executes commands and replicates its engine's inputs through etcd;
//! followers replay them. Sans-IO: [`ClusterNode`] emits abstract etcd operations
//! ([`EtcdOp`]) and consumes their results ([`EtcdResult`]); the host performs them.
//!
//! - The engine is deterministic given time, commands and disconnects, so the leader records
//!   every state-changing input with its engine time ([`Entry`]) and appends them, one batch per
//!   turn (group commit), under `/fencelock/<cluster>/log/<index>` in a transaction guarded by
//!   the create revision of its election key (its term). Up to `pipeline_depth` appends are in
//!   flight at once. etcd orders concurrent requests as it likes, so each append carries every
//!   batch after the last one known committed and writes those still missing: the log stays
//!   a gap-free prefix whatever order etcd applies them in.
//! - Every output produced in a turn is held until the turn's batch is committed: a reply that
//!   depends on an entry never leaves before etcd has it. If the append fails the node was
//!   deposed: its held replies become errors (`-MOVED leader` when the request certainly had no
//!   effect), never grants, its connections close and it rebuilds its engine from the log.
//! - A follower applies the log to its own engine and answers lock commands with `-MOVED`.
//!   Once it wins the election and its watch has delivered everything before its own election
//!   key, it holds every lease of the log and resumes engine time from the last logged instant
//!   (a gap only lengthens leases). Tokens come from the replicated engine: strictly increasing
//!   across leaders without a ceiling file.
//!
//! - Every `snapshot_every` batches the append also stores the exact engine image after its
//!   batch ([`LogSnapshot`]) under `/fencelock/<cluster>/snapshot` and deletes the log keys
//!   before it, in the same guarded transaction: a node that starts restores the image and
//!   applies only the batches after it.

mod entry;
mod etcd;
mod snapshot;
#[cfg(test)]
mod tests;

use alloc::collections::{BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

pub use entry::{Batch, Entry};
pub use etcd::{Compaction, EtcdOp, EtcdResult, KeyValue, LogWrite, OpId, WatchEvent};
pub use snapshot::{LogSnapshot, LOG_SNAPSHOT_VERSION};

use crate::client::{Decoder, DecoderLimits, Value};
use crate::protocol::{AuditEvent, ConnId, Output, Server, ServerConfig, Users};
use crate::{Config, Engine, Error, Instant};

/// How a node takes part in a cluster. Start from [`ClusterConfig::new`] and set fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// The cluster's name: its keys live under `/fencelock/<cluster>/`.
    pub cluster: String,
    /// The address clients reach this node at (`host:port`), sent in `MOVED`.
    pub advertise: String,
    /// The election lease TTL in seconds: a dead leader is replaced within about this long.
    pub election_ttl_s: u64,
    /// Every this many batches the append also stores a snapshot and deletes the log before
    /// it (0: never).
    pub snapshot_every: u64,
    /// A snapshot whose encoding is longer than this is not written (etcd refuses requests
    /// over 1.5 MiB unless started with a larger `--max-request-bytes`).
    pub snapshot_max_bytes: usize,
    /// A snapshot is also taken once the batches after the last one hold this many bytes, so
    /// that the range a starting node reads (snapshot and log) stays well under the 4 MiB a
    /// gRPC client accepts by default, however large the batches.
    pub snapshot_log_bytes: u64,
    /// How many guarded appends the leader keeps in flight at once (0 counts as 1). etcd commits
    /// concurrent transactions together, so more in flight means more batches per round trip.
    pub pipeline_depth: usize,
    /// No new append starts while the batches not yet committed hold this many bytes (each
    /// append carries them all; etcd refuses requests over 1.5 MiB by default).
    pub pipeline_max_bytes: usize,
}

impl ClusterConfig {
    /// Creates a configuration with the default election TTL (2 s), a snapshot every 1000
    /// batches or 1 MiB of batches, snapshots of at most 1 MiB, and up to
    /// [`DEFAULT_PIPELINE_DEPTH`] appends in flight carrying up to 256 KiB of batches.
    #[must_use]
    pub fn new(cluster: &str, advertise: &str) -> ClusterConfig {
        ClusterConfig {
            cluster: String::from(cluster),
            advertise: String::from(advertise),
            election_ttl_s: 2,
            snapshot_every: 1000,
            snapshot_max_bytes: 1 << 20,
            snapshot_log_bytes: 1 << 20,
            pipeline_depth: DEFAULT_PIPELINE_DEPTH,
            pipeline_max_bytes: 256 << 10,
        }
    }

    /// Returns the prefix of every key of the cluster.
    #[must_use]
    pub fn prefix(&self) -> String {
        alloc::format!("/fencelock/{}/", self.cluster)
    }

    fn election_key(&self) -> Vec<u8> {
        alloc::format!("{}leader", self.prefix()).into_bytes()
    }

    fn snapshot_key(&self) -> Vec<u8> {
        alloc::format!("{}snapshot", self.prefix()).into_bytes()
    }

    fn log_key(&self, index: u64) -> Vec<u8> {
        alloc::format!("{}log/{index:020}", self.prefix()).into_bytes()
    }

    fn log_index(&self, key: &[u8]) -> Option<u64> {
        let log_prefix = alloc::format!("{}log/", self.prefix());
        let rest = key.strip_prefix(log_prefix.as_bytes())?;
        core::str::from_utf8(rest).ok()?.parse().ok()
    }
}

/// A node's part in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// Getting a lease and reading the log.
    Starting,
    /// Replaying the log; lock commands are redirected.
    Follower,
    /// Won the election; leads once the watch has delivered the log before its key.
    Candidate,
    /// Executes commands and appends their inputs.
    Leader,
    /// Shut down.
    Stopped,
}

impl Role {
    /// Returns the role's name as `INFO` shows it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Starting => "starting",
            Role::Follower => "follower",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
            Role::Stopped => "stopped",
        }
    }
}

/// How many appends a leader keeps in flight unless configured otherwise: one. On one 2-core
/// machine running etcd and the nodes (bench/cluster), more in flight made etcd slower per
/// append than the waiting it saved (docs/CLUSTER.md, "Performance").
pub const DEFAULT_PIPELINE_DEPTH: usize = 1;

/// What an outstanding operation was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Lease,
    KeepAlive { sent: Instant },
    Campaign,
    Append { index: u64 },
    Range,
    Revoke,
}

/// A batch the leader sent and has not seen committed.
#[derive(Debug)]
struct Flight {
    index: u64,
    /// The encoded batch: every later append carries it too, and the watch shows it.
    value: Vec<u8>,
    compaction: Option<Compaction>,
    /// Its own append was refused (a later one may still have written it).
    refused: bool,
}

/// Why a leader steps down, which decides what its held replies say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// The watch showed the term end after every batch of this leader that committed: the
    /// batches not seen committed certainly did not.
    Absent,
    /// An append was refused or its answer is unknown, or the lease may have lapsed: a batch
    /// that an unanswered (or unknown) append carried may have committed.
    Failed,
}

/// A replicated fencelock server: the protocol [`Server`] plus the replication driver.
#[derive(Debug)]
pub struct ClusterNode {
    config: ClusterConfig,
    engine_config: Config,
    server_config: ServerConfig,
    server: Server,
    /// The users connections must authenticate as, kept for every server this node builds.
    users: Option<Users>,
    role: Role,
    /// The advertised address of the current leader, if known.
    leader: Option<String>,
    /// The create revision of the election key this node holds while candidate or leader.
    term: u64,
    /// The create revision of the election key as the watch (or range) last showed it.
    seen_term: u64,
    lease: Option<i64>,
    /// Host time of the last keep-alive etcd confirmed, when it was sent.
    lease_confirmed: Instant,
    next_keepalive: Instant,
    /// The last log index applied (follower) or committed (leader).
    committed: u64,
    /// The batches after `committed` that were sent, in index order (leader).
    in_flight: VecDeque<Flight>,
    /// The encoded bytes of the batches in flight.
    in_flight_bytes: usize,
    /// Entries recorded but not yet sent: the next batch.
    pending_entries: Vec<Entry>,
    /// Connections that waited for a lock since their last reply was released: a reply held
    /// for them may complete a WAIT whose ACQUIRE is replicated already.
    waited: BTreeSet<ConnId>,
    /// Outputs waiting for the batch index they depend on to commit.
    held: VecDeque<(u64, Output)>,
    /// Outputs the host may perform now.
    ready: VecDeque<Output>,
    ops: VecDeque<EtcdOp>,
    outstanding: Vec<(OpId, Pending)>,
    next_op: OpId,
    watch: Option<OpId>,
    /// The highest etcd revision seen.
    revision: u64,
    /// When to ask again for a lease or the log after etcd failed.
    retry_at: Option<Instant>,
    /// The highest connection id handed out.
    conn_floor: ConnId,
    /// The highest client id in the log: a new leader's connections start above it.
    max_client: u64,
    /// The index of the newest snapshot known (restored, seen or written); 0 if none.
    snapshot_index: u64,
    /// The index of the last batch a snapshot was taken with (written or too large).
    snapshot_tried: u64,
    /// The bytes of the batches after the newest snapshot known (about: counted as applied).
    log_bytes: u64,
    /// Snapshots not written because their encoding was over `snapshot_max_bytes`.
    snapshots_too_large: u64,
    /// Why the last log read could not be applied (a bad snapshot, a gap), until one can.
    log_error: Option<String>,
    /// Engine time = `base_engine` + (host time - `base_host`) while leading.
    base_engine: Instant,
    base_host: Instant,
    last_host: Instant,
}

impl ClusterNode {
    /// Creates a node that starts as a follower with an empty engine; its first operations
    /// grant the election lease and read the log.
    #[must_use]
    pub fn new(
        now: Instant,
        config: ClusterConfig,
        engine_config: Config,
        server_config: ServerConfig,
    ) -> ClusterNode {
        let mut node = ClusterNode {
            server: follower_server(&engine_config, &server_config, 1),
            users: None,
            config,
            engine_config,
            server_config,
            role: Role::Starting,
            leader: None,
            term: 0,
            seen_term: 0,
            lease: None,
            lease_confirmed: now,
            next_keepalive: now,
            committed: 0,
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            pending_entries: Vec::new(),
            waited: BTreeSet::new(),
            held: VecDeque::new(),
            ready: VecDeque::new(),
            ops: VecDeque::new(),
            outstanding: Vec::new(),
            next_op: 1,
            watch: None,
            revision: 0,
            max_client: 0,
            snapshot_index: 0,
            snapshot_tried: 0,
            log_bytes: 0,
            snapshots_too_large: 0,
            log_error: None,
            conn_floor: 0,
            retry_at: None,
            base_engine: Instant::ZERO,
            base_host: now,
            last_host: now,
        };
        node.request_lease();
        node.update_info();
        node
    }

    /// Returns the node's role.
    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    /// Returns the current leader's advertised address, if known.
    #[must_use]
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    /// Returns the node's term: the create revision of the election key it won (0 while it
    /// has not won one). The node leads only while etcd's election key has this revision.
    #[must_use]
    pub fn term(&self) -> u64 {
        self.term
    }

    /// Returns the engine time at host time `now`: a leader's engine clock runs on from the
    /// last logged instant at the host's rate; a follower's engine time is the log's.
    #[must_use]
    pub fn engine_time_at(&self, now: Instant) -> Instant {
        if self.role == Role::Leader {
            self.base_engine.plus_ms(now.ms_since(self.base_host))
        } else {
            self.server.engine().now()
        }
    }

    /// Returns the last log index applied or committed.
    #[must_use]
    pub fn log_index(&self) -> u64 {
        self.committed
    }

    /// Returns the highest etcd revision seen.
    #[must_use]
    pub fn etcd_revision(&self) -> u64 {
        self.revision
    }

    /// Sets the users connections must authenticate as (`None`: no authentication), on this
    /// node's server and on every one it builds later (after stepping down). As on a single
    /// server, a connection must authenticate before anything but `HELLO`, `AUTH`, `PING` and
    /// `QUIT`, a follower's `MOVED` included.
    #[cfg(feature = "users")]
    pub fn set_users(&mut self, users: Option<Users>) {
        self.server.set_users(users.clone());
        self.users = users;
    }

    /// Returns true when connections must authenticate.
    #[must_use]
    pub fn auth_required(&self) -> bool {
        self.users.is_some()
    }

    /// Returns the next audit event (failed authentications, steals) for the host's log.
    pub fn poll_audit(&mut self) -> Option<AuditEvent> {
        self.server.poll_audit()
    }

    /// Returns the Prometheus text exposition of this node: its server's metrics (a follower's
    /// engine is its replica, so its lease gauges follow the leader's log) and the cluster's
    /// own gauges, `fencelock_cluster_leader`, `_term`, `_log_index` and `_etcd_revision`.
    #[must_use]
    pub fn metrics_text(&mut self, now: Instant) -> String {
        let at = self.engine_time(now);
        let mut text = self.server.metrics_text(at);
        let gauges: [(&str, &str, u64); 4] = [
            (
                "fencelock_cluster_leader",
                "1 while this node leads its cluster, else 0.",
                u64::from(self.role == Role::Leader),
            ),
            (
                "fencelock_cluster_term",
                "The create revision of the election key this node leads under (0 unless it leads).",
                self.term,
            ),
            (
                "fencelock_cluster_log_index",
                "The last log index this node committed (leader) or applied (follower).",
                self.committed,
            ),
            (
                "fencelock_cluster_etcd_revision",
                "The latest etcd revision this node has seen.",
                self.revision,
            ),
        ];
        for (name, help, value) in gauges {
            // Writing to a String cannot fail.
            let _ = write!(
                text,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            );
        }
        text
    }

    /// Returns the index of the newest log snapshot this node knows of (0: none).
    #[must_use]
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot_index
    }

    /// Returns how many snapshots were not written because they were too large.
    #[must_use]
    pub fn snapshots_too_large(&self) -> u64 {
        self.snapshots_too_large
    }

    /// Returns why the last read of the log could not be applied, while that lasts.
    #[must_use]
    pub fn log_error(&self) -> Option<&str> {
        self.log_error.as_deref()
    }

    /// Returns the node's engine (the leader's, or a follower's replica).
    #[must_use]
    pub fn engine(&self) -> &Engine {
        self.server.engine()
    }

    /// Returns the configuration.
    #[must_use]
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Registers a new connection.
    pub fn connect(&mut self, now: Instant) -> ConnId {
        let at = self.engine_time(now);
        let conn = self.server.connect(at);
        // A rebuilt server must not hand out an id the host may still hold.
        self.conn_floor = self.conn_floor.max(conn);
        self.end_turn();
        conn
    }

    /// Handles bytes received on a connection.
    pub fn receive(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        let at = self.engine_time(now);
        self.server.receive(at, conn, bytes);
        if self.server.is_blocked(conn) {
            self.waited.insert(conn);
        }
        self.end_turn();
    }

    /// Forgets a connection the host closed.
    pub fn disconnect(&mut self, now: Instant, conn: ConnId) {
        let at = self.engine_time(now);
        self.server.disconnect(at, conn);
        self.waited.remove(&conn);
        self.end_turn();
    }

    /// Tells the node how many bytes the host holds unsent for a connection.
    pub fn handle_unsent(&mut self, now: Instant, conn: ConnId, unsent_bytes: usize) {
        let at = self.engine_time(now);
        self.server.handle_unsent(at, conn, unsent_bytes);
        self.end_turn();
    }

    /// Runs what is due: engine timers (leader), keep-alives, and stepping down once the
    /// election lease may have lapsed without a confirmed keep-alive.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_host = self.last_host.max(now);
        if self.role == Role::Stopped {
            return;
        }
        let ttl_ms = node_ttl(&self.config).saturating_mul(1000);
        if self.role == Role::Leader && now.ms_since(self.lease_confirmed) >= ttl_ms {
            // etcd may already have let the lease go: stop acting as leader before it can.
            self.step_down(now, Cause::Failed);
            return;
        }
        if self.retry_at.is_some_and(|at| now >= at) {
            self.retry_at = None;
            if self.lease.is_none() {
                self.request_lease();
            } else if self.role == Role::Starting {
                self.read_log();
            }
        }
        if let Some(lease) = self.lease {
            if now >= self.next_keepalive && !self.keep_alive_in_flight() {
                self.next_keepalive = now.plus_ms(ttl_ms / 3);
                self.request(Pending::KeepAlive { sent: now }, |id| EtcdOp::KeepAlive {
                    id,
                    lease,
                });
            }
        }
        if self.role == Role::Leader {
            let at = self.engine_time(now);
            self.server.handle_timeout(at);
        }
        self.end_turn();
    }

    /// Returns when [`ClusterNode::handle_timeout`] must next be called (host time).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.role == Role::Stopped {
            return None;
        }
        // While a keep-alive is unanswered the next waits for its answer (`handle_etcd`):
        // its due time would soon be in the past, and the host would call again and again.
        let mut next = self
            .lease
            .filter(|_| !self.keep_alive_in_flight())
            .map(|_| self.next_keepalive);
        if let Some(retry) = self.retry_at {
            next = Some(next.map_or(retry, |at| at.min(retry)));
        }
        if self.role == Role::Leader {
            let ttl_ms = node_ttl(&self.config).saturating_mul(1000);
            let lapse = self.lease_confirmed.plus_ms(ttl_ms);
            next = Some(next.map_or(lapse, |at| at.min(lapse)));
            if let Some(deadline) = self.server.poll_timeout() {
                let host = self.host_time(deadline);
                next = Some(next.map_or(host, |at| at.min(host)));
            }
        }
        next
    }

    fn keep_alive_in_flight(&self) -> bool {
        self.outstanding
            .iter()
            .any(|(_, pending)| matches!(pending, Pending::KeepAlive { .. }))
    }

    /// Returns the next output the host must perform, in order (transmits and closes only:
    /// in cluster mode etcd replaces the data directory).
    pub fn poll_output(&mut self) -> Option<Output> {
        self.ready.pop_front()
    }

    /// Returns the next etcd operation to perform.
    pub fn poll_etcd(&mut self) -> Option<EtcdOp> {
        self.ops.pop_front()
    }

    /// Handles the result of an operation (or a batch of events of a watch).
    pub fn handle_etcd(&mut self, now: Instant, id: OpId, result: EtcdResult) {
        self.last_host = self.last_host.max(now);
        if self.role == Role::Stopped {
            return;
        }
        if Some(id) == self.watch {
            match result {
                EtcdResult::Events(events) => self.on_events(now, events),
                _ => self.resync(now),
            }
        } else if let Some(at) = self.outstanding.iter().position(|(op, _)| *op == id) {
            let (_, pending) = self.outstanding.swap_remove(at);
            self.on_result(now, pending, result);
        }
        self.end_turn();
    }

    /// Stops serving: every connection closes (nothing more is recorded) and the election
    /// lease is revoked, so another node leads at once.
    pub fn shutdown(&mut self, now: Instant) {
        let _ = now;
        self.server.set_redirect(Some(""));
        self.close_all();
        self.end_turn();
        self.role = Role::Stopped;
        if let Some(watch) = self.watch.take() {
            self.ops.push_back(EtcdOp::CancelWatch { watch });
        }
        if let Some(lease) = self.lease.take() {
            self.request(Pending::Revoke, |id| EtcdOp::Revoke { id, lease });
        }
        self.update_info();
    }

    // -- results ---------------------------------------------------------------------------

    fn on_result(&mut self, now: Instant, pending: Pending, result: EtcdResult) {
        match (pending, result) {
            (Pending::Lease, EtcdResult::LeaseGranted { lease }) => {
                self.lease = Some(lease);
                self.lease_confirmed = now;
                let ttl_ms = node_ttl(&self.config).saturating_mul(1000);
                self.next_keepalive = now.plus_ms(ttl_ms / 3);
                // A read already asked for (the watch failed meanwhile) serves: a second
                // would start a second watch.
                if self.watch.is_none() && self.role == Role::Starting && !self.reading_log() {
                    self.read_log();
                } else if self.leader.is_none() && self.role == Role::Follower {
                    self.campaign();
                }
            }
            // etcd unreachable: try again a little later, not in a hot loop.
            (Pending::Lease, _) => self.retry_at = Some(now.plus_ms(RETRY_MS)),
            (Pending::KeepAlive { sent }, EtcdResult::KeepAlive { ttl_s }) if ttl_s > 0 => {
                self.lease_confirmed = self.lease_confirmed.max(sent);
            }
            (Pending::KeepAlive { .. }, EtcdResult::KeepAlive { .. }) => self.lease_lost(now),
            (Pending::KeepAlive { .. }, _) => {}
            (Pending::Campaign, EtcdResult::Campaign { won, leader }) => {
                self.note_revision(leader.mod_revision);
                if won {
                    // Leads once the log before this key is applied (the watch or a range shows it).
                    self.term = leader.create_revision;
                    if self.role == Role::Follower {
                        self.role = Role::Candidate;
                        if self.seen_term == self.term {
                            // The watch delivered our key before this answer: the log
                            // before it is applied already.
                            self.promote(now);
                        }
                    }
                } else {
                    self.leader = Some(String::from_utf8_lossy(&leader.value).into_owned());
                    self.redirect_to_leader();
                }
            }
            (Pending::Campaign, _) => self.campaign_unknown(),
            (Pending::Append { index }, result) => self.on_append(now, index, &result),
            (Pending::Range, EtcdResult::Range { revision, kvs }) => {
                self.on_range(now, revision, &kvs);
            }
            (Pending::Range, _) => self.retry_at = Some(now.plus_ms(RETRY_MS)),
            (Pending::Revoke, _) => {}
        }
        self.update_info();
    }

    fn on_events(&mut self, now: Instant, events: Vec<WatchEvent>) {
        let key = self.config.election_key();
        let watch = self.watch;
        for event in events {
            if self.watch != watch {
                // A step-down or resync cancelled this watch: the rest is for nobody.
                break;
            }
            match event {
                WatchEvent::Put(kv) => {
                    self.note_revision(kv.mod_revision);
                    if kv.key == key {
                        self.leader = Some(String::from_utf8_lossy(&kv.value).into_owned());
                        self.seen_term = kv.create_revision;
                        let ours = self.term != 0 && kv.create_revision == self.term;
                        if ours && matches!(self.role, Role::Candidate | Role::Follower) {
                            // Every log entry before our key has been applied: lead.
                            self.promote(now);
                        } else if self.role == Role::Leader && kv.create_revision != self.term {
                            self.step_down(now, Cause::Absent);
                        } else if self.role != Role::Leader {
                            self.redirect_to_leader();
                        }
                    } else if kv.key == self.config.snapshot_key() {
                        // The batch it was taken after comes (or came) as a log key: the
                        // image is only for nodes that start later. Note it for scheduling.
                        let index = LogSnapshot::index_of(&kv.value).unwrap_or(0);
                        self.snapshot_index = self.snapshot_index.max(index);
                        self.log_bytes = 0;
                    } else if self.role == Role::Leader {
                        let index = self.config.log_index(&kv.key).unwrap_or(0);
                        self.on_own_log_key(now, index, &kv.value);
                    } else if !self.apply_log_key(&kv) {
                        // A gap or a foreign value: read everything again rather than diverge.
                        self.resync(now);
                        break;
                    }
                }
                // Log keys are deleted by a compaction, after this node applied them (the
                // watch is in revision order); only the election key's deletion matters.
                WatchEvent::Delete(kv) => {
                    self.note_revision(kv.mod_revision);
                    if kv.key == key {
                        self.leader = None;
                        self.seen_term = 0;
                        if self.role == Role::Leader || self.role == Role::Candidate {
                            self.step_down(now, Cause::Absent);
                        } else {
                            self.redirect_to_leader();
                            self.campaign();
                        }
                    }
                }
            }
        }
        self.update_info();
    }

    // -- follower --------------------------------------------------------------------------

    fn reading_log(&self) -> bool {
        self.outstanding
            .iter()
            .any(|(_, pending)| *pending == Pending::Range)
    }

    fn read_log(&mut self) {
        // The whole cluster prefix: the election key and the log.
        let prefix = self.config.prefix().into_bytes();
        self.request(Pending::Range, |id| EtcdOp::Range { id, prefix });
    }

    /// Applies a log range read at one revision: the snapshot if there is one, then the log
    /// keys after it in order; then watches from the next revision.
    fn on_range(&mut self, now: Instant, revision: u64, kvs: &[KeyValue]) {
        self.note_revision(revision);
        let election_key = self.config.election_key();
        let snapshot_key = self.config.snapshot_key();
        // The snapshot key sorts after the log keys but comes first: the log before it is gone.
        if let Some(snapshot) = kvs.iter().find(|kv| kv.key == snapshot_key) {
            if let Err(error) = self.restore_snapshot(&snapshot.value) {
                return self.log_unreadable(now, alloc::format!("{error}"));
            }
        }
        let mut ours = false;
        for kv in kvs {
            if kv.key == election_key {
                self.leader = Some(String::from_utf8_lossy(&kv.value).into_owned());
                self.seen_term = kv.create_revision;
                ours = self.term != 0 && kv.create_revision == self.term;
            } else if !self.apply_log_key(kv) {
                let text = alloc::format!(
                    "the log read at revision {revision} has no batch {} after batch {}",
                    self.committed + 1,
                    self.committed
                );
                return self.log_unreadable(now, text);
            }
        }
        self.log_error = None;
        self.role = if ours {
            Role::Candidate
        } else {
            Role::Follower
        };
        self.redirect_to_leader();
        let id = self.op_id();
        self.watch = Some(id);
        self.ops.push_back(EtcdOp::Watch {
            id,
            prefix: self.config.prefix().into_bytes(),
            start_revision: revision.saturating_add(1),
        });
        if ours {
            self.promote(now);
        } else if self.leader.is_none() {
            self.campaign();
        }
    }

    /// Replaces the replica's engine with a snapshot's image: the log up to its index.
    fn restore_snapshot(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let snapshot = LogSnapshot::decode(bytes)?;
        let engine = Engine::from_image(self.engine_config.clone(), &snapshot.image)?;
        // A follower's connections never reach its engine (they are redirected), so the
        // engine can change under them.
        *self.server.engine_mut() = engine;
        self.committed = snapshot.index;
        self.max_client = snapshot.max_client;
        self.snapshot_index = self.snapshot_index.max(snapshot.index);
        self.log_bytes = 0;
        Ok(())
    }

    /// A consistent read that cannot be applied will not heal at once: start over a little
    /// later instead of asking etcd again in a loop, and say why in `INFO cluster`.
    fn log_unreadable(&mut self, now: Instant, error: String) {
        self.reset_replica();
        // One line of INFO.
        self.log_error = Some(error.replace(['\r', '\n'], " "));
        self.retry_at = Some(now.plus_ms(RETRY_MS));
    }

    /// Applies one log key if it is the next batch; returns false for a gap or a value that is
    /// not a batch. Keys that are not log keys, and batches applied already, are skipped.
    fn apply_log_key(&mut self, kv: &KeyValue) -> bool {
        let Some(index) = self.config.log_index(&kv.key) else {
            return true;
        };
        if index <= self.committed {
            return true;
        }
        let batch = match Batch::decode(&kv.value) {
            Ok(batch) if index == self.committed + 1 && batch.index == index => batch,
            _ => return false,
        };
        let engine = self.server.engine_mut();
        for entry in &batch.entries {
            entry.apply(engine);
            if let Some(client) = entry.client() {
                self.max_client = self.max_client.max(client);
            }
        }
        while engine.poll_event().is_some() {}
        let _ = engine.poll_persist();
        let _ = engine.poll_horizon();
        self.committed = index;
        self.log_bytes = self.log_bytes.saturating_add(kv.value.len() as u64);
        true
    }

    fn campaign(&mut self) {
        let busy = self
            .outstanding
            .iter()
            .any(|(_, pending)| *pending == Pending::Campaign);
        let Some(lease) = self.lease else {
            return;
        };
        if busy || self.role != Role::Follower {
            return;
        }
        let key = self.config.election_key();
        let value = self.config.advertise.clone().into_bytes();
        self.request(Pending::Campaign, |id| EtcdOp::Campaign {
            id,
            key,
            value,
            lease,
        });
    }

    /// A campaign whose answer was lost may have written the election key, bound to this
    /// node's lease, without the node knowing it won: while it kept that lease alive no node
    /// would ever lead. The lease is revoked (the key, if ours, goes with it, and every node
    /// campaigns again when the watch shows it deleted) and a fresh one asked for; a lease
    /// the revoke does not reach lapses, as nothing keeps it alive any more.
    fn campaign_unknown(&mut self) {
        self.replace_lease();
    }

    /// Revokes this node's etcd lease, taking the election key with it if it is ours (the
    /// others may campaign at once), and asks for a fresh one.
    fn replace_lease(&mut self) {
        // The fresh lease's answer starts what a retry would have (a read of the log).
        self.retry_at = None;
        if let Some(lease) = self.lease.take() {
            self.request(Pending::Revoke, |id| EtcdOp::Revoke { id, lease });
        }
        self.outstanding
            .retain(|(_, pending)| !matches!(pending, Pending::Lease | Pending::KeepAlive { .. }));
        self.request_lease();
    }

    fn redirect_to_leader(&mut self) {
        if self.role != Role::Leader {
            let leader = self.leader.clone().unwrap_or_default();
            let leader = if leader == self.config.advertise {
                String::new()
            } else {
                leader
            };
            self.server.set_redirect(Some(&leader));
        }
    }

    fn lease_lost(&mut self, now: Instant) {
        self.lease = None;
        if self.role == Role::Leader || self.role == Role::Candidate {
            // Appends still unanswered may have committed before the lease ended.
            self.step_down(now, Cause::Failed);
        } else {
            self.request_lease();
        }
    }

    /// Drops the replica and reads the whole log again (a gap, a failed watch).
    fn resync(&mut self, now: Instant) {
        if self.role == Role::Leader || self.role == Role::Candidate {
            self.step_down(now, Cause::Failed);
            return;
        }
        if let Some(watch) = self.watch.take() {
            self.ops.push_back(EtcdOp::CancelWatch { watch });
        }
        self.reset_replica();
        self.read_log();
    }

    // -- leader ----------------------------------------------------------------------------

    fn promote(&mut self, now: Instant) {
        // Connections made while following may share ids with clients in the log: close them
        // (they were redirected anyway) before any can reach the engine.
        self.close_all();
        self.role = Role::Leader;
        self.leader = Some(self.config.advertise.clone());
        self.base_engine = self.server.engine().now();
        self.base_host = now;
        self.server
            .reserve_conn_ids(self.max_client.saturating_add(1));
        self.server.set_redirect(None);
        let at = self.engine_time(now);
        let engine = self.server.engine_mut();
        engine.record_inputs(true);
        // The old leader's connections are gone: their waits end, and their EPHEMERAL leases
        // live on until their deadline (the clients may not even know of the failover). All
        // at once: orphaned one by one, a client's wait could be granted as another's went.
        let clients = engine.clients();
        if !clients.is_empty() {
            engine.orphan_all(at, &clients);
        }
        engine.handle_timeout(at);
        self.update_info();
    }

    /// The index the next output depends on: the last batch assigned so far.
    fn assigned(&self) -> u64 {
        let pending = u64::from(!self.pending_entries.is_empty());
        self.last_sent() + pending
    }

    /// The index of the last batch sent (or committed, if none is in flight).
    fn last_sent(&self) -> u64 {
        self.committed + self.in_flight.len() as u64
    }

    fn end_turn(&mut self) {
        if self.role == Role::Leader {
            let entries = self.server.engine_mut().take_inputs();
            self.pending_entries.extend(entries);
        }
        let barrier = self.assigned();
        while let Some(output) = self.server.poll_output() {
            if let Output::Transmit { conn, .. } = &output {
                // A command held while its connection waited may have run, and waits again.
                if self.server.is_blocked(*conn) {
                    self.waited.insert(*conn);
                }
            }
            match output {
                // Durable files are the standalone server's; etcd holds the cluster's state.
                Output::File(_) => {}
                output if self.held.is_empty() && barrier <= self.committed => {
                    self.release(output);
                }
                output => self.held.push_back((barrier, output)),
            }
        }
        self.start_append();
    }

    /// Hands an output to the host: what it answers is committed.
    fn release(&mut self, output: Output) {
        match &output {
            Output::Transmit { conn, .. } if !self.server.is_blocked(*conn) => {
                self.waited.remove(conn);
            }
            Output::Close { conn } => {
                self.waited.remove(conn);
            }
            _ => {}
        }
        self.ready.push_back(output);
    }

    /// Sends the entries recorded so far as the next batch, while fewer than `pipeline_depth`
    /// appends are in flight; what arrives meanwhile forms the next batch (group commit). A
    /// snapshot's batch goes alone, once every append before it was answered: its deletion of
    /// the log before it must not remove the key an older append still compares.
    fn start_append(&mut self) {
        let depth = self.config.pipeline_depth.max(1);
        while self.role == Role::Leader && !self.pending_entries.is_empty() {
            let appends = self.appends_in_flight();
            let snapshot_in_flight = self.in_flight.iter().any(|f| f.compaction.is_some());
            let index = self.last_sent() + 1;
            // Decided once, before this batch counts in `log_bytes`.
            let snapshot_due = self.snapshot_due(index);
            let full = appends >= depth
                || (!self.in_flight.is_empty()
                    && self.in_flight_bytes >= self.config.pipeline_max_bytes);
            if full || snapshot_in_flight || (appends > 0 && snapshot_due) {
                return;
            }
            let mut entries = core::mem::take(&mut self.pending_entries);
            let engine = self.server.engine();
            if snapshot_due && !engine.has_untaken_inputs() {
                // The engine's time moves on without an entry (a timeout that fires no timer,
                // a VERIFY), and the snapshot's image holds it: a tick brings the replicas
                // that replay this batch to the same instant as those that restore the image.
                let now = engine.now();
                if entries.last().is_some_and(|entry| entry.at() < now) {
                    entries.push(Entry::Tick { at: now.as_ms() });
                }
            }
            let batch = Batch {
                index,
                term: self.term,
                entries,
            };
            for entry in &batch.entries {
                if let Some(client) = entry.client() {
                    self.max_client = self.max_client.max(client);
                }
            }
            let value = batch.encode();
            self.log_bytes = self.log_bytes.saturating_add(value.len() as u64);
            let compaction = if snapshot_due {
                self.compaction(index)
            } else {
                None
            };
            self.in_flight_bytes = self.in_flight_bytes.saturating_add(value.len());
            self.in_flight.push_back(Flight {
                index,
                value,
                compaction,
                refused: false,
            });
            self.send(index);
        }
    }

    /// How many appends are unanswered (some may carry only batches committed since).
    fn appends_in_flight(&self) -> usize {
        self.outstanding
            .iter()
            .filter(|(_, pending)| matches!(pending, Pending::Append { .. }))
            .count()
    }

    /// Sends the append of batch `index`: every batch in flight up to it, each written only
    /// if etcd does not have it yet, guarded by the term and the last committed batch.
    fn send(&mut self, index: u64) {
        let batches: Vec<LogWrite> = self
            .in_flight
            .iter()
            .take_while(|flight| flight.index <= index)
            .map(|flight| LogWrite {
                key: self.config.log_key(flight.index),
                value: flight.value.clone(),
            })
            .collect();
        let compaction = self
            .in_flight
            .back()
            .filter(|flight| flight.index == index)
            .and_then(|flight| flight.compaction.clone());
        // Before the log's first batch there is nothing to require.
        let committed_key = (self.committed > 0).then(|| self.config.log_key(self.committed));
        let election_key = self.config.election_key();
        let term = self.term;
        self.request(Pending::Append { index }, |id| EtcdOp::Append {
            id,
            election_key,
            term,
            committed_key,
            batches,
            compaction,
        });
    }

    /// Handles the answer to the append of batch `index`.
    fn on_append(&mut self, now: Instant, index: u64, result: &EtcdResult) {
        // Batches a later append (or the watch) showed committed: nothing to learn.
        if self.role != Role::Leader || index <= self.committed {
            return;
        }
        match *result {
            EtcdResult::Append {
                succeeded: true,
                revision,
            } => {
                self.note_revision(revision);
                self.commit_through(index);
            }
            EtcdResult::Append {
                succeeded: false, ..
            } => {
                // Deposed (or the log was changed by hand): this append had no effect.
                let at = usize::try_from(index - self.committed - 1).unwrap_or(usize::MAX);
                if let Some(flight) = self.in_flight.get_mut(at) {
                    flight.refused = true;
                }
                self.step_down(now, Cause::Failed);
            }
            _ => self.step_down(now, Cause::Failed),
        }
    }

    /// The leader's watch showed a log key. Its own batches prove their commit (the watch
    /// may come before the transaction's answer); any other write means it no longer leads.
    fn on_own_log_key(&mut self, now: Instant, index: u64, value: &[u8]) {
        if index <= self.committed {
            return;
        }
        let at = usize::try_from(index - self.committed - 1).unwrap_or(usize::MAX);
        let ours = self
            .in_flight
            .get(at)
            .is_some_and(|flight| flight.value == value);
        if ours {
            self.commit_through(index);
        } else if index <= self.last_sent() {
            // Someone else wrote a batch this leader sent: nothing it sent can be trusted.
            self.step_down(now, Cause::Failed);
        } else {
            // Someone else appended past this leader: it no longer leads.
            self.step_down(now, Cause::Absent);
        }
    }

    /// Batch `index` committed, and with it every batch before it (an append writes the
    /// batches it carries in index order, after the last committed one).
    fn commit_through(&mut self, index: u64) {
        while let Some(flight) = self.in_flight.front() {
            if flight.index > index {
                break;
            }
            if flight.compaction.is_some() {
                self.snapshot_index = self.snapshot_index.max(flight.index);
            }
            self.committed = flight.index;
            self.in_flight_bytes = self.in_flight_bytes.saturating_sub(flight.value.len());
            self.in_flight.pop_front();
        }
        self.release_held();
    }

    /// Tells whether batch `index` should carry a snapshot: `snapshot_every` batches (or
    /// `snapshot_log_bytes` of them) have passed since the last one, and no recent one was too
    /// large.
    fn snapshot_due(&self, index: u64) -> bool {
        let every = self.config.snapshot_every;
        let due = index >= self.snapshot_index.saturating_add(every)
            || self.log_bytes >= self.config.snapshot_log_bytes;
        let too_large_lately = self.snapshot_tried > self.snapshot_index
            && index < self.snapshot_tried.saturating_add(every);
        every != 0 && due && !too_large_lately
    }

    /// The snapshot that goes with batch `index`, which is due. The batch takes every entry
    /// recorded so far, so the engine is now exactly the state after it, unless inputs were
    /// recorded since (then the next batch carries the snapshot). A snapshot over
    /// `snapshot_max_bytes` is counted, not written, and the next try waits `snapshot_every`
    /// batches: the append never fails because of it.
    fn compaction(&mut self, index: u64) -> Option<Compaction> {
        if self.server.engine().has_untaken_inputs() {
            return None;
        }
        self.snapshot_tried = index;
        let snapshot = LogSnapshot {
            version: LOG_SNAPSHOT_VERSION,
            index,
            term: self.term,
            max_client: self.max_client,
            image: self.server.engine().image(),
        }
        .encode();
        if snapshot.len() > self.config.snapshot_max_bytes {
            self.snapshots_too_large += 1;
            return None;
        }
        self.log_bytes = 0;
        Some(Compaction {
            snapshot_key: self.config.snapshot_key(),
            snapshot,
            delete_from: self.config.log_key(0),
            delete_end: self.config.log_key(index),
        })
    }

    fn release_held(&mut self) {
        while let Some((barrier, _)) = self.held.front() {
            if *barrier > self.committed {
                break;
            }
            if let Some((_, output)) = self.held.pop_front() {
                self.release(output);
            }
        }
        self.start_append();
    }

    /// Leaves leadership: held replies become errors, connections close, and the engine
    /// (which may hold inputs etcd never committed) is rebuilt from the log. A reply that
    /// depends on a batch some unanswered (or unknown) append carried says that its request
    /// may or may not have taken effect; the others certainly had none.
    fn step_down(&mut self, now: Instant, cause: Cause) {
        let _ = now;
        // Every append carries the batches before its own, so the last one that may have
        // committed decides for every batch up to it.
        let maybe_through = match cause {
            Cause::Absent => 0,
            Cause::Failed => self
                .in_flight
                .iter()
                .filter(|flight| !flight.refused)
                .map(|flight| flight.index)
                .max()
                .unwrap_or(0),
        };
        self.in_flight.clear();
        self.in_flight_bytes = 0;
        self.server.set_redirect(Some(""));
        // Outputs still in the server are as held as the ones here.
        while let Some(output) = self.server.poll_output() {
            if !matches!(output, Output::File(_)) {
                self.held.push_back((u64::MAX, output));
            }
        }
        let leader = self
            .leader
            .clone()
            .filter(|leader| *leader != self.config.advertise);
        for (barrier, output) in core::mem::take(&mut self.held) {
            match output {
                Output::Transmit { conn, bytes } => {
                    // A reply that completes a replicated WAIT answers a request that took
                    // effect, whatever became of what completed it.
                    let unknown = barrier <= maybe_through || self.waited.contains(&conn);
                    let text = failed_reply_text(leader.as_deref(), unknown);
                    let bytes = replace_replies(&bytes, &text);
                    if !bytes.is_empty() {
                        self.ready.push_back(Output::Transmit { conn, bytes });
                    }
                }
                other => self.ready.push_back(other),
            }
        }
        self.close_all();
        self.waited.clear();
        self.pending_entries.clear();
        self.term = 0;
        self.leader = None;
        if let Some(watch) = self.watch.take() {
            self.ops.push_back(EtcdOp::CancelWatch { watch });
        }
        self.outstanding
            .retain(|(_, pending)| !matches!(pending, Pending::Append { .. } | Pending::Range));
        self.reset_replica();
        // The election key may still be ours: revoking its lease frees it for the others at
        // once. A fresh lease then starts this node again as a follower.
        self.replace_lease();
        self.update_info();
    }

    fn reset_replica(&mut self) {
        self.server = follower_server(
            &self.engine_config,
            &self.server_config,
            self.conn_floor.saturating_add(1),
        );
        #[cfg(feature = "users")]
        self.server.set_users(self.users.clone());
        self.committed = 0;
        self.seen_term = 0;
        self.max_client = 0;
        self.log_bytes = 0;
        self.role = Role::Starting;
    }

    fn close_all(&mut self) {
        let at = self.engine_time(self.last_host);
        for conn in self.server.connection_ids() {
            self.server.close_connection(at, conn);
        }
        while let Some(output) = self.server.poll_output() {
            if !matches!(output, Output::File(_)) {
                self.ready.push_back(output);
            }
        }
    }

    // -- helpers ---------------------------------------------------------------------------

    fn request_lease(&mut self) {
        let ttl_s = node_ttl(&self.config);
        self.request(Pending::Lease, |id| EtcdOp::GrantLease { id, ttl_s });
    }

    fn request(&mut self, pending: Pending, op: impl FnOnce(OpId) -> EtcdOp) {
        let id = self.op_id();
        self.outstanding.push((id, pending));
        self.ops.push_back(op(id));
    }

    fn op_id(&mut self) -> OpId {
        let id = self.next_op;
        self.next_op += 1;
        id
    }

    fn note_revision(&mut self, revision: u64) {
        self.revision = self.revision.max(revision);
    }

    /// Converts host time to engine time: the leader's clock runs from the last logged engine
    /// time; a follower's engine time is the log's.
    fn engine_time(&mut self, now: Instant) -> Instant {
        self.last_host = self.last_host.max(now);
        self.engine_time_at(now)
    }

    fn host_time(&self, engine: Instant) -> Instant {
        self.base_host.plus_ms(engine.ms_since(self.base_engine))
    }

    fn update_info(&mut self) {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = write!(
            text,
            "cluster:{}\r\nrole:{}\r\nadvertise:{}\r\nleader:{}\r\nterm:{}\r\nlog_index:{}\r\netcd_revision:{}\r\nsnapshot_index:{}\r\nsnapshots_too_large:{}\r\nlog_error:{}\r\n",
            self.config.cluster,
            self.role.as_str(),
            self.config.advertise,
            self.leader.as_deref().unwrap_or(""),
            self.term,
            self.committed,
            self.revision,
            self.snapshot_index,
            self.snapshots_too_large,
            self.log_error.as_deref().unwrap_or(""),
        );
        self.server.set_cluster_info(text);
    }
}

/// How long to wait before asking etcd again after a failed lease grant or log read, in ms.
const RETRY_MS: u64 = 500;

fn node_ttl(config: &ClusterConfig) -> u64 {
    config.election_ttl_s.max(1)
}

fn follower_server(engine_config: &Config, server_config: &ServerConfig, next: ConnId) -> Server {
    let mut server = Server::new(Engine::new(engine_config.clone()), server_config.clone());
    server.set_redirect(Some(""));
    server.reserve_conn_ids(next);
    server
}

fn failed_reply_text(leader: Option<&str>, unknown: bool) -> String {
    match (leader, unknown) {
        (_, true) => String::from(crate::error::NOT_LEADER_UNKNOWN),
        (Some(leader), false) => alloc::format!("MOVED {leader}"),
        (None, false) => String::from(crate::error::NOT_LEADER_NO_EFFECT),
    }
}

/// Replaces every reply in `bytes` with the error `text`, dropping RESP3 pushes.
fn replace_replies(bytes: &[u8], text: &str) -> Vec<u8> {
    let mut decoder = Decoder::new(DecoderLimits::default());
    decoder.feed(bytes);
    let mut out = Vec::new();
    while let Ok(Some(value)) = decoder.next_value() {
        if !matches!(value, Value::Push(_)) {
            out.push(b'-');
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}
