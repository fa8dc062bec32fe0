//! Cluster mode: the core's replication driver; `node/lib/cluster.js` maps its etcd operations
//! onto the `etcd3` client and its outputs onto sockets. No replication logic lives here.
//!
//! etcd's 64-bit numbers (lease ids, revisions) cross as decimal strings, as `etcd3` reads and
//! writes them: lease ids use all 64 bits, beyond what a JavaScript number holds exactly.

use std::collections::HashMap;

use fencelock_core::cluster::{
    ClusterConfig, ClusterNode, EtcdOp, EtcdResult, KeyValue, WatchEvent,
};
use fencelock_core::Instant;
use napi::bindgen_prelude::{Buffer, Object};
use napi::{Env, Status};
use napi_derive::napi;

use crate::convert::{engine_config, number, server_config, whole};
use crate::errors::unknown;
use crate::server::{output_object, parse_users, single_user, AuditRecord};

/// An etcd operation for the host to perform, by `kind`:
/// `grant_lease` (`ttlS`), `keep_alive` (`lease`, once), `revoke` (`lease`),
/// `campaign` (`key`, `value`, `lease`: `Txn(if create_revision(key) == 0 then put(key, value,
/// lease) else get(key))`), `append` (`electionKey`, `term`, `committedKey`, `batches`:
/// `Txn(if create_revision(electionKey) == term [and create_revision(committedKey) > 0] then
/// Txn(if create_revision(key) == 0 then put(key, value)) for each of `batches` in order)`,
/// and when `snapshotKey` is set also `put(snapshotKey, snapshot)` and the deletion of the keys
/// from `deleteFrom` up to `deleteEnd` (exclusive) in the same success branch),
/// `range` (`prefix`), `watch` (`prefix`, `startRevision`; every batch of events answers under
/// `id`) and `cancel_watch` (the watch `id`; no answer).
#[napi(object)]
// napi's Buffer has no Debug.
#[allow(missing_debug_implementations)]
pub struct EtcdOpRecord {
    /// What to do (see above).
    pub kind: String,
    /// The operation's id: its result carries it back.
    pub id: f64,
    /// `grant_lease`: the lease TTL in seconds.
    pub ttl_s: Option<f64>,
    /// `keep_alive`, `revoke`, `campaign`: the lease id (decimal).
    pub lease: Option<String>,
    /// `campaign`: the election key.
    pub key: Option<Buffer>,
    /// `campaign`: this node's address.
    pub value: Option<Buffer>,
    /// `append`: the election key.
    pub election_key: Option<Buffer>,
    /// `append`: the create revision of this leader's election key (decimal).
    pub term: Option<String>,
    /// `append`: the log key of the last batch known committed, which must exist (absent
    /// before the log's first batch).
    pub committed_key: Option<Buffer>,
    /// `append`: the batches to write, in index order, each only if its key does not exist.
    pub batches: Option<Vec<EtcdLogWrite>>,
    /// `range`, `watch`: the key prefix.
    pub prefix: Option<Buffer>,
    /// `watch`: the first revision to deliver (decimal).
    pub start_revision: Option<String>,
    /// `append` with a snapshot: the snapshot key.
    pub snapshot_key: Option<Buffer>,
    /// `append` with a snapshot: the encoded snapshot.
    pub snapshot: Option<Buffer>,
    /// `append` with a snapshot: the first log key to delete.
    pub delete_from: Option<Buffer>,
    /// `append` with a snapshot: the end of the deleted range (exclusive).
    pub delete_end: Option<Buffer>,
}

/// One batch an append writes unless its key exists already.
#[napi(object)]
// napi's Buffer has no Debug.
#[allow(missing_debug_implementations)]
pub struct EtcdLogWrite {
    /// The batch's log key.
    pub key: Buffer,
    /// The encoded batch.
    pub value: Buffer,
}

/// A key as etcd returned it; revisions are decimal strings.
#[napi(object)]
// napi's Buffer has no Debug.
#[allow(missing_debug_implementations)]
pub struct EtcdKeyValue {
    /// The key.
    pub key: Buffer,
    /// The value (empty for a deletion).
    pub value: Buffer,
    /// The revision that created the key ("0" for a deletion).
    pub create_revision: String,
    /// The revision of the change.
    pub mod_revision: String,
}

/// One change a watch saw.
#[napi(object)]
// napi's Buffer has no Debug.
#[allow(missing_debug_implementations)]
pub struct EtcdWatchEvent {
    /// True for a put, false for a deletion (or a lease that ran out).
    pub put: bool,
    /// The key and its revisions.
    pub kv: EtcdKeyValue,
}

/// A replicated server node: the core's `ClusterNode` (protocol server plus replication driver).
#[napi]
#[derive(Debug)]
pub struct NativeCluster {
    node: ClusterNode,
}

#[napi]
impl NativeCluster {
    /// Creates a node of cluster `cluster` reachable at `advertise` (`host:port`), with the
    /// election lease TTL `electionTtlS` (default 2), engine settings `config` and protocol
    /// limits `serverSettings` as for `NativeServer`, a snapshot every `snapshotEvery`
    /// batches (default 1000, 0: never), and up to `pipelineDepth` appends in flight (default 1).
    #[napi(constructor)]
    #[allow(clippy::too_many_arguments)] // the constructor's JavaScript arguments, in order
    pub fn new(
        env: Env,
        cluster: String,
        advertise: String,
        election_ttl_s: Option<f64>,
        config: Option<HashMap<String, f64>>,
        server_settings: Option<HashMap<String, f64>>,
        now_ms: Option<f64>,
        snapshot_every: Option<f64>,
        pipeline_depth: Option<f64>,
    ) -> napi::Result<Self> {
        let mut cluster_config = ClusterConfig::new(&cluster, &advertise);
        if let Some(ttl) = election_ttl_s {
            cluster_config.election_ttl_s = whole("electionTtlS", ttl)?;
        }
        if let Some(every) = snapshot_every {
            cluster_config.snapshot_every = whole("snapshotEvery", every)?;
        }
        if let Some(depth) = pipeline_depth {
            let depth = whole("pipelineDepth", depth)?;
            cluster_config.pipeline_depth = usize::try_from(depth).unwrap_or(usize::MAX);
        }
        let node = ClusterNode::new(
            Instant(whole("nowMs", now_ms.unwrap_or(0.0))?),
            cluster_config,
            engine_config(&env, config, None)?,
            server_config(&env, server_settings)?,
        );
        Ok(NativeCluster { node })
    }

    /// Registers a connection and returns its id.
    #[napi]
    pub fn connect(&mut self, now_ms: f64) -> napi::Result<f64> {
        Ok(number(self.node.connect(at(now_ms)?)))
    }

    /// Feeds received bytes, split anywhere.
    #[napi]
    pub fn receive(&mut self, now_ms: f64, conn: f64, data: &[u8]) -> napi::Result<()> {
        self.node.receive(at(now_ms)?, whole("conn", conn)?, data);
        Ok(())
    }

    /// Forgets a connection the host closed.
    #[napi]
    pub fn disconnect(&mut self, now_ms: f64, conn: f64) -> napi::Result<()> {
        self.node.disconnect(at(now_ms)?, whole("conn", conn)?);
        Ok(())
    }

    /// Reports how many bytes the host holds unsent for a connection.
    #[napi]
    pub fn handle_unsent(&mut self, now_ms: f64, conn: f64, unsent_bytes: f64) -> napi::Result<()> {
        let unsent = usize::try_from(whole("unsentBytes", unsent_bytes)?).unwrap_or(usize::MAX);
        self.node
            .handle_unsent(at(now_ms)?, whole("conn", conn)?, unsent);
        Ok(())
    }

    /// Runs what is due (spurious calls are harmless).
    #[napi]
    pub fn handle_timeout(&mut self, now_ms: f64) -> napi::Result<()> {
        self.node.handle_timeout(at(now_ms)?);
        Ok(())
    }

    /// Stops serving: every connection closes and the election lease is revoked (the next
    /// `drainEtcd` holds the revoke).
    #[napi]
    pub fn shutdown(&mut self, now_ms: f64) -> napi::Result<()> {
        self.node.shutdown(at(now_ms)?);
        Ok(())
    }

    /// Returns when `handleTimeout` must next be called, in ms, or null.
    #[napi]
    pub fn poll_timeout(&self) -> Option<f64> {
        self.node.poll_timeout().map(|at| number(at.as_ms()))
    }

    /// Returns every pending output (`transmit`, `close`), in order, shaped as
    /// `NativeServer.drain` shapes them.
    #[napi(ts_return_type = "Array<ServerOutput>")]
    pub fn drain<'env>(&mut self, env: &'env Env) -> napi::Result<Vec<Object<'env>>> {
        let mut outputs = Vec::new();
        while let Some(output) = self.node.poll_output() {
            outputs.push(output_object(env, output)?);
        }
        Ok(outputs)
    }

    /// Returns every pending etcd operation, in order.
    #[napi]
    pub fn drain_etcd(&mut self) -> napi::Result<Vec<EtcdOpRecord>> {
        let mut ops = Vec::new();
        while let Some(op) = self.node.poll_etcd() {
            ops.push(op_record(op)?);
        }
        Ok(ops)
    }

    /// Reports a granted lease.
    #[napi]
    pub fn lease_granted(&mut self, now_ms: f64, id: f64, lease: String) -> napi::Result<()> {
        let lease = signed("lease", &lease)?;
        self.result(now_ms, id, EtcdResult::LeaseGranted { lease })
    }

    /// Reports a keep-alive's answer: the TTL left in seconds (0 or less: the lease is gone).
    #[napi]
    pub fn keep_alive(&mut self, now_ms: f64, id: f64, ttl_s: String) -> napi::Result<()> {
        let ttl_s = signed("ttlS", &ttl_s)?;
        self.result(now_ms, id, EtcdResult::KeepAlive { ttl_s })
    }

    /// Reports a campaign's answer: whether this node's key was written, and the election key
    /// as it stands (this node's, or the current leader's).
    #[napi]
    pub fn campaign_result(
        &mut self,
        now_ms: f64,
        id: f64,
        won: bool,
        leader: EtcdKeyValue,
    ) -> napi::Result<()> {
        let leader = key_value(leader)?;
        self.result(now_ms, id, EtcdResult::Campaign { won, leader })
    }

    /// Reports a guarded append's answer (`succeeded` false: a compare failed).
    #[napi]
    pub fn append_result(
        &mut self,
        now_ms: f64,
        id: f64,
        succeeded: bool,
        revision: String,
    ) -> napi::Result<()> {
        let revision = unsigned("revision", &revision)?;
        self.result(
            now_ms,
            id,
            EtcdResult::Append {
                succeeded,
                revision,
            },
        )
    }

    /// Reports a range's answer: the store revision and the keys in key order.
    #[napi]
    pub fn range_result(
        &mut self,
        now_ms: f64,
        id: f64,
        revision: String,
        kvs: Vec<EtcdKeyValue>,
    ) -> napi::Result<()> {
        let revision = unsigned("revision", &revision)?;
        let kvs = kvs
            .into_iter()
            .map(key_value)
            .collect::<napi::Result<Vec<_>>>()?;
        self.result(now_ms, id, EtcdResult::Range { revision, kvs })
    }

    /// Reports a batch of a watch's events, in revision order.
    #[napi]
    pub fn events(
        &mut self,
        now_ms: f64,
        id: f64,
        events: Vec<EtcdWatchEvent>,
    ) -> napi::Result<()> {
        let events = events
            .into_iter()
            .map(|event| {
                let kv = key_value(event.kv)?;
                Ok(if event.put {
                    WatchEvent::Put(kv)
                } else {
                    WatchEvent::Delete(kv)
                })
            })
            .collect::<napi::Result<Vec<_>>>()?;
        self.result(now_ms, id, EtcdResult::Events(events))
    }

    /// Reports a completed revoke.
    #[napi]
    pub fn done(&mut self, now_ms: f64, id: f64) -> napi::Result<()> {
        self.result(now_ms, id, EtcdResult::Done)
    }

    /// Reports a failed call (its outcome unknown) or a watch that ended.
    #[napi]
    pub fn failed(&mut self, now_ms: f64, id: f64, reason: String) -> napi::Result<()> {
        self.result(now_ms, id, EtcdResult::Failed { reason })
    }

    /// Sets the users connections must authenticate as from a users file's bytes, or turns
    /// authentication off with null; kept across leadership changes. Throws (code `ERR`) for
    /// a file the core refuses; the users in force stay then.
    #[napi]
    pub fn set_users(&mut self, env: Env, users_file: Option<Buffer>) -> napi::Result<()> {
        self.node.set_users(parse_users(&env, users_file)?);
        Ok(())
    }

    /// Sets one user, `default`, with every right and this password hash (`--requirepass`).
    #[napi]
    pub fn set_password_hash(&mut self, env: Env, hash: String) -> napi::Result<()> {
        self.node.set_users(Some(single_user(&env, &hash)?));
        Ok(())
    }

    /// Returns true when connections must authenticate.
    #[napi]
    pub fn auth_required(&self) -> bool {
        self.node.auth_required()
    }

    /// Returns the next audit event (`kind`, `text`, `json`), or null; never holds a password.
    #[napi]
    pub fn poll_audit(&mut self) -> Option<AuditRecord> {
        self.node.poll_audit().map(AuditRecord::from)
    }

    /// Returns the Prometheus text exposition of this node (server and cluster gauges).
    #[napi]
    pub fn metrics(&mut self, now_ms: f64) -> napi::Result<String> {
        Ok(self.node.metrics_text(Instant(whole("nowMs", now_ms)?)))
    }

    /// Returns the node's role: `starting`, `follower`, `candidate`, `leader` or `stopped`.
    #[napi]
    pub fn role(&self) -> String {
        self.node.role().as_str().to_owned()
    }

    /// Returns the current leader's advertised address, if known.
    #[napi]
    pub fn leader(&self) -> Option<String> {
        self.node.leader().map(String::from)
    }

    /// Returns the last log index applied or committed.
    #[napi]
    pub fn log_index(&self) -> f64 {
        number(self.node.log_index())
    }

    /// Returns the highest etcd revision seen.
    #[napi]
    pub fn etcd_revision(&self) -> f64 {
        number(self.node.etcd_revision())
    }

    /// Returns the index of the newest log snapshot this node knows of (0: none).
    #[napi]
    pub fn snapshot_index(&self) -> f64 {
        number(self.node.snapshot_index())
    }

    /// Returns how many leases are live in this node's engine.
    #[napi]
    pub fn live_leases(&self) -> f64 {
        number(self.node.engine().live_leases() as u64)
    }

    /// Returns the highest token this node's engine has issued or replayed.
    #[napi]
    pub fn last_token(&self) -> f64 {
        number(self.node.engine().last_token())
    }
}

impl NativeCluster {
    fn result(&mut self, now_ms: f64, id: f64, result: EtcdResult) -> napi::Result<()> {
        self.node.handle_etcd(at(now_ms)?, whole("id", id)?, result);
        Ok(())
    }
}

fn at(now_ms: f64) -> napi::Result<Instant> {
    Ok(Instant(whole("nowMs", now_ms)?))
}

fn op_record(op: EtcdOp) -> napi::Result<EtcdOpRecord> {
    let mut record = EtcdOpRecord {
        kind: String::new(),
        id: number(op.id()),
        ttl_s: None,
        lease: None,
        key: None,
        value: None,
        election_key: None,
        term: None,
        committed_key: None,
        batches: None,
        prefix: None,
        start_revision: None,
        snapshot_key: None,
        snapshot: None,
        delete_from: None,
        delete_end: None,
    };
    let kind = match op {
        EtcdOp::GrantLease { ttl_s, .. } => {
            record.ttl_s = Some(number(ttl_s));
            "grant_lease"
        }
        EtcdOp::KeepAlive { lease, .. } => {
            record.lease = Some(lease.to_string());
            "keep_alive"
        }
        EtcdOp::Revoke { lease, .. } => {
            record.lease = Some(lease.to_string());
            "revoke"
        }
        EtcdOp::Campaign {
            key, value, lease, ..
        } => {
            record.key = Some(key.into());
            record.value = Some(value.into());
            record.lease = Some(lease.to_string());
            "campaign"
        }
        EtcdOp::Append {
            election_key,
            term,
            committed_key,
            batches,
            compaction,
            ..
        } => {
            record.election_key = Some(election_key.into());
            record.term = Some(term.to_string());
            record.committed_key = committed_key.map(Into::into);
            record.batches = Some(
                batches
                    .into_iter()
                    .map(|batch| EtcdLogWrite {
                        key: batch.key.into(),
                        value: batch.value.into(),
                    })
                    .collect(),
            );
            if let Some(compaction) = compaction {
                record.snapshot_key = Some(compaction.snapshot_key.into());
                record.snapshot = Some(compaction.snapshot.into());
                record.delete_from = Some(compaction.delete_from.into());
                record.delete_end = Some(compaction.delete_end.into());
            }
            "append"
        }
        EtcdOp::Range { prefix, .. } => {
            record.prefix = Some(prefix.into());
            "range"
        }
        EtcdOp::Watch {
            prefix,
            start_revision,
            ..
        } => {
            record.prefix = Some(prefix.into());
            record.start_revision = Some(start_revision.to_string());
            "watch"
        }
        EtcdOp::CancelWatch { .. } => "cancel_watch",
        other => return Err(unknown("etcd operation", &other)),
    };
    record.kind = kind.to_owned();
    Ok(record)
}

fn key_value(kv: EtcdKeyValue) -> napi::Result<KeyValue> {
    Ok(KeyValue::new(
        kv.key.to_vec(),
        kv.value.to_vec(),
        unsigned("createRevision", &kv.create_revision)?,
        unsigned("modRevision", &kv.mod_revision)?,
    ))
}

/// Reads one of etcd's unsigned numbers (a revision) from its decimal string.
fn unsigned(what: &str, text: &str) -> napi::Result<u64> {
    text.parse().map_err(|_| {
        napi::Error::new(
            Status::InvalidArg,
            format!("{what} must be a decimal revision, got {text:?}"),
        )
    })
}

/// Reads one of etcd's signed numbers (a lease id, a TTL) from its decimal string.
fn signed(what: &str, text: &str) -> napi::Result<i64> {
    text.parse().map_err(|_| {
        napi::Error::new(
            Status::InvalidArg,
            format!("{what} must be a decimal 64-bit integer, got {text:?}"),
        )
    })
}
