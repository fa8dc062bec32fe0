//! Cluster mode: the core's replication driver; `fencelock.cluster` maps its etcd operations
//! onto an etcd client and its outputs onto sockets. No replication logic lives here.

use fencelock_core::cluster::{
    ClusterConfig, ClusterNode, EtcdOp, EtcdResult, KeyValue, WatchEvent, DEFAULT_PIPELINE_DEPTH,
};
use fencelock_core::Instant;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use crate::engine::build_config;
use crate::server::{audit_tuple, build_server_config, output_record, parse_users, single_user};

/// A key-value as the host passes it: (key, value, create_revision, mod_revision).
type Kv = (Vec<u8>, Vec<u8>, u64, u64);
/// A watch event as the host passes it: (is_put, key, value, create_revision, mod_revision).
type Event = (bool, Vec<u8>, Vec<u8>, u64, u64);

/// A replicated server node.
#[pyclass(module = "fencelock._native")]
#[derive(Debug)]
pub(crate) struct NativeCluster {
    node: ClusterNode,
}

#[pymethods]
impl NativeCluster {
    /// Creates a node of cluster `cluster` reachable at `advertise` (`host:port`).
    /// A snapshot goes with every `snapshot_every`-th batch (0: never); up to `pipeline_depth`
    /// appends are in flight at once.
    #[new]
    #[pyo3(signature = (cluster, advertise, election_ttl_s=2, config=None, server_config=None, now_ms=0, snapshot_every=1000, pipeline_depth=DEFAULT_PIPELINE_DEPTH))]
    #[allow(clippy::too_many_arguments)] // mirrors the Python keyword arguments one to one
    fn new(
        py: Python<'_>,
        cluster: &str,
        advertise: &str,
        election_ttl_s: u64,
        config: Option<&Bound<'_, PyDict>>,
        server_config: Option<&Bound<'_, PyDict>>,
        now_ms: u64,
        snapshot_every: u64,
        pipeline_depth: usize,
    ) -> PyResult<Self> {
        let mut cluster_config = ClusterConfig::new(cluster, advertise);
        cluster_config.election_ttl_s = election_ttl_s;
        cluster_config.snapshot_every = snapshot_every;
        cluster_config.pipeline_depth = pipeline_depth;
        let node = ClusterNode::new(
            Instant(now_ms),
            cluster_config,
            build_config(py, config)?,
            build_server_config(py, server_config)?,
        );
        Ok(NativeCluster { node })
    }

    fn connect(&mut self, now_ms: u64) -> u64 {
        self.node.connect(Instant(now_ms))
    }

    fn receive(&mut self, conn: u64, data: &[u8], now_ms: u64) {
        self.node.receive(Instant(now_ms), conn, data);
    }

    fn disconnect(&mut self, conn: u64, now_ms: u64) {
        self.node.disconnect(Instant(now_ms), conn);
    }

    fn handle_unsent(&mut self, conn: u64, unsent_bytes: usize, now_ms: u64) {
        self.node.handle_unsent(Instant(now_ms), conn, unsent_bytes);
    }

    fn handle_timeout(&mut self, now_ms: u64) {
        self.node.handle_timeout(Instant(now_ms));
    }

    fn shutdown(&mut self, now_ms: u64) {
        self.node.shutdown(Instant(now_ms));
    }

    fn poll_timeout(&self) -> Option<u64> {
        self.node.poll_timeout().map(Instant::as_ms)
    }

    /// Returns every pending output (`Transmit`, `Close`), in order.
    fn drain<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        while let Some(output) = self.node.poll_output() {
            list.append(output_record(py, output)?)?;
        }
        Ok(list)
    }

    /// Returns every pending etcd operation as a tuple, kind first: ("grant_lease", id, ttl_s),
    /// ("keep_alive", id, lease), ("revoke", id, lease), ("campaign", id, key, value, lease),
    /// ("append", id, election_key, term, committed_key, batches, compaction) with
    /// `committed_key` None (before the log's first batch) or a key that must exist, `batches`
    /// a list of (key, value) each put only if its key does not exist yet, and `compaction`
    /// None or (snapshot_key, snapshot, delete_from, delete_end): also put the snapshot and
    /// delete the keys from `delete_from` up to `delete_end` (exclusive) in the transaction's
    /// success branch, ("range", id, prefix),
    /// ("watch", id, prefix, start_revision), ("cancel_watch", id).
    fn drain_etcd<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        while let Some(op) = self.node.poll_etcd() {
            let bytes = |b: &[u8]| PyBytes::new(py, b).into_any();
            let item: Bound<'py, PyTuple> = match op {
                EtcdOp::GrantLease { id, ttl_s } => ("grant_lease", id, ttl_s).into_pyobject(py)?,
                EtcdOp::KeepAlive { id, lease } => ("keep_alive", id, lease).into_pyobject(py)?,
                EtcdOp::Revoke { id, lease } => ("revoke", id, lease).into_pyobject(py)?,
                EtcdOp::Campaign {
                    id,
                    key,
                    value,
                    lease,
                } => ("campaign", id, bytes(&key), bytes(&value), lease).into_pyobject(py)?,
                EtcdOp::Append {
                    id,
                    election_key,
                    term,
                    committed_key,
                    batches,
                    compaction,
                } => {
                    let compaction = match compaction {
                        Some(compaction) => Some(
                            (
                                bytes(&compaction.snapshot_key),
                                bytes(&compaction.snapshot),
                                bytes(&compaction.delete_from),
                                bytes(&compaction.delete_end),
                            )
                                .into_pyobject(py)?,
                        ),
                        None => None,
                    };
                    (
                        "append",
                        id,
                        bytes(&election_key),
                        term,
                        committed_key.map(|key| bytes(&key)),
                        batches
                            .iter()
                            .map(|batch| (bytes(&batch.key), bytes(&batch.value)))
                            .collect::<Vec<_>>(),
                        compaction,
                    )
                        .into_pyobject(py)?
                }
                EtcdOp::Range { id, prefix } => ("range", id, bytes(&prefix)).into_pyobject(py)?,
                EtcdOp::Watch {
                    id,
                    prefix,
                    start_revision,
                } => ("watch", id, bytes(&prefix), start_revision).into_pyobject(py)?,
                EtcdOp::CancelWatch { watch } => ("cancel_watch", watch).into_pyobject(py)?,
                other => return Err(crate::engine::unknown("etcd operation", &other)),
            };
            list.append(item)?;
        }
        Ok(list)
    }

    fn lease_granted(&mut self, id: u64, lease: i64, now_ms: u64) {
        self.result(id, EtcdResult::LeaseGranted { lease }, now_ms);
    }

    fn keep_alive(&mut self, id: u64, ttl_s: i64, now_ms: u64) {
        self.result(id, EtcdResult::KeepAlive { ttl_s }, now_ms);
    }

    fn campaign_result(&mut self, id: u64, won: bool, leader: Kv, now_ms: u64) {
        let leader = kv(leader);
        self.result(id, EtcdResult::Campaign { won, leader }, now_ms);
    }

    fn append_result(&mut self, id: u64, succeeded: bool, revision: u64, now_ms: u64) {
        self.result(
            id,
            EtcdResult::Append {
                succeeded,
                revision,
            },
            now_ms,
        );
    }

    fn range_result(&mut self, id: u64, revision: u64, kvs: Vec<Kv>, now_ms: u64) {
        let kvs = kvs.into_iter().map(kv).collect();
        self.result(id, EtcdResult::Range { revision, kvs }, now_ms);
    }

    /// Watch events: (is_put, key, value, create_revision, mod_revision) each.
    fn events(&mut self, id: u64, events: Vec<Event>, now_ms: u64) {
        let events = events
            .into_iter()
            .map(|(put, key, value, create, modified)| {
                let kv = KeyValue::new(key, value, create, modified);
                if put {
                    WatchEvent::Put(kv)
                } else {
                    WatchEvent::Delete(kv)
                }
            })
            .collect();
        self.result(id, EtcdResult::Events(events), now_ms);
    }

    fn done(&mut self, id: u64, now_ms: u64) {
        self.result(id, EtcdResult::Done, now_ms);
    }

    fn failed(&mut self, id: u64, reason: String, now_ms: u64) {
        self.result(id, EtcdResult::Failed { reason }, now_ms);
    }

    /// Sets the users connections must authenticate as from a users file's bytes (`None`:
    /// no authentication); kept across leadership changes.
    fn set_users(&mut self, py: Python<'_>, users_file: Option<&[u8]>) -> PyResult<()> {
        self.node.set_users(parse_users(py, users_file)?);
        Ok(())
    }

    /// Sets one user, `default`, with every right and this password hash (`--requirepass`).
    fn set_password_hash(&mut self, py: Python<'_>, hash: &str) -> PyResult<()> {
        self.node.set_users(Some(single_user(py, hash)?));
        Ok(())
    }

    /// Returns True when connections must authenticate.
    fn auth_required(&self) -> bool {
        self.node.auth_required()
    }

    /// Returns the next audit event as `(kind, text, json)`, or None. Never holds a password.
    fn poll_audit(&mut self) -> Option<(&'static str, String, String)> {
        self.node.poll_audit().map(audit_tuple)
    }

    /// Returns the Prometheus text exposition of this node (server and cluster gauges).
    fn metrics<'py>(&mut self, py: Python<'py>, now_ms: u64) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.node.metrics_text(Instant(now_ms)).as_bytes())
    }

    fn role(&self) -> &'static str {
        self.node.role().as_str()
    }

    fn leader(&self) -> Option<String> {
        self.node.leader().map(String::from)
    }

    fn log_index(&self) -> u64 {
        self.node.log_index()
    }

    fn etcd_revision(&self) -> u64 {
        self.node.etcd_revision()
    }

    fn snapshot_index(&self) -> u64 {
        self.node.snapshot_index()
    }

    fn live_leases(&self) -> usize {
        self.node.engine().live_leases()
    }

    fn last_token(&self) -> u64 {
        self.node.engine().last_token()
    }
}

impl NativeCluster {
    fn result(&mut self, id: u64, result: EtcdResult, now_ms: u64) {
        self.node.handle_etcd(Instant(now_ms), id, result);
    }
}

fn kv((key, value, create, modified): Kv) -> KeyValue {
    KeyValue::new(key, value, create, modified)
}
