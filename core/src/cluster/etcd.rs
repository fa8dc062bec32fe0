//! The abstract etcd operations the replication driver asks its host to perform, and their results.
//!
//! Each maps onto one etcd v3 call (or one transaction); a host performs them with its
//! language's etcd client and reports each result with [`super::ClusterNode::handle_etcd`].

use alloc::string::String;
use alloc::vec::Vec;

/// Identifies an operation; its result (or, for a watch, every batch of events) carries it back.
pub type OpId = u64;

/// Something the host must ask etcd, polled with [`super::ClusterNode::poll_etcd`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum EtcdOp {
    /// `LeaseGrant(ttl_s)`; answer [`EtcdResult::LeaseGranted`].
    GrantLease {
        /// Operation id.
        id: OpId,
        /// Lease TTL in seconds (the election TTL).
        ttl_s: u64,
    },
    /// `LeaseKeepAlive(lease)` once; answer [`EtcdResult::KeepAlive`] with the TTL left.
    KeepAlive {
        /// Operation id.
        id: OpId,
        /// The lease to refresh.
        lease: i64,
    },
    /// `LeaseRevoke(lease)` (a clean shutdown hands leadership over at once); answer [`EtcdResult::Done`].
    Revoke {
        /// Operation id.
        id: OpId,
        /// The lease to revoke.
        lease: i64,
    },
    /// The election: `Txn(if create_revision(key) == 0 then put(key, value, lease) else get(key))`;
    /// answer [`EtcdResult::Campaign`].
    Campaign {
        /// Operation id.
        id: OpId,
        /// The election key.
        key: Vec<u8>,
        /// This node's advertised address.
        value: Vec<u8>,
        /// The lease the key is bound to.
        lease: i64,
    },
    /// The guarded append: `Txn(if create_revision(election_key) == term [and
    /// create_revision(committed_key) > 0] then Txn(if create_revision(key) == 0 then put(key,
    /// value)) for each of `batches` in order)`, and with `compaction` also, in the same success
    /// branch, `put(snapshot_key, snapshot)` and `delete_range(delete_from, delete_end)`;
    /// answer [`EtcdResult::Append`].
    ///
    /// Several appends may be in flight at once (pipelining), and etcd may apply them in any
    /// order. So each one carries every batch after the last one known committed, and writes
    /// those it finds missing: whichever etcd applies first writes the batches in index order,
    /// the others skip them, and the log stays a gap-free prefix.
    Append {
        /// Operation id.
        id: OpId,
        /// The election key.
        election_key: Vec<u8>,
        /// The create revision of this leader's election key.
        term: u64,
        /// The log key of the last batch known committed, which must exist (none before the
        /// log's first batch).
        committed_key: Option<Vec<u8>>,
        /// The batches after it, in index order; each is put only if its key does not exist.
        batches: Vec<LogWrite>,
        /// A snapshot to store and the log keys it replaces, every `snapshot_every` batches
        /// (then `batches` holds the snapshot's own batch alone).
        compaction: Option<Compaction>,
    },
    /// `Range(prefix)`, every key under it in key order; answer [`EtcdResult::Range`].
    Range {
        /// Operation id.
        id: OpId,
        /// The key prefix.
        prefix: Vec<u8>,
    },
    /// `Watch(prefix, start_revision)`: answer every batch of events with [`EtcdResult::Events`]
    /// under this id, and [`EtcdResult::Failed`] if the watch ends.
    Watch {
        /// Operation id, also the watch's.
        id: OpId,
        /// The key prefix.
        prefix: Vec<u8>,
        /// The first revision to deliver.
        start_revision: u64,
    },
    /// Cancels the watch `watch`; no answer.
    CancelWatch {
        /// The id of the watch.
        watch: OpId,
    },
}

/// One batch an append writes unless its key exists already.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogWrite {
    /// The batch's log key, `/fencelock/<cluster>/log/<index, 20 digits>`.
    pub key: Vec<u8>,
    /// The encoded [`super::Batch`].
    pub value: Vec<u8>,
}

/// The part of an append that stores a snapshot and deletes the log before it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Compaction {
    /// The snapshot key, `/fencelock/<cluster>/snapshot`.
    pub snapshot_key: Vec<u8>,
    /// The encoded [`super::LogSnapshot`] of the engine after the appended batch.
    pub snapshot: Vec<u8>,
    /// The first log key to delete (the log key of index 0).
    pub delete_from: Vec<u8>,
    /// The end of the deleted range, exclusive: the appended batch's own key.
    pub delete_end: Vec<u8>,
}

impl EtcdOp {
    /// Returns the operation's id (the watch's for a cancel).
    #[must_use]
    pub fn id(&self) -> OpId {
        match self {
            EtcdOp::GrantLease { id, .. }
            | EtcdOp::KeepAlive { id, .. }
            | EtcdOp::Revoke { id, .. }
            | EtcdOp::Campaign { id, .. }
            | EtcdOp::Append { id, .. }
            | EtcdOp::Range { id, .. }
            | EtcdOp::Watch { id, .. } => *id,
            EtcdOp::CancelWatch { watch } => *watch,
        }
    }
}

/// One key as etcd returns it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value (empty for a deletion).
    pub value: Vec<u8>,
    /// The revision that created the key (0 for a deletion).
    pub create_revision: u64,
    /// The revision of the change.
    pub mod_revision: u64,
}

impl KeyValue {
    /// Creates a key-value.
    #[must_use]
    pub fn new(key: Vec<u8>, value: Vec<u8>, create_revision: u64, mod_revision: u64) -> KeyValue {
        KeyValue {
            key,
            value,
            create_revision,
            mod_revision,
        }
    }
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchEvent {
    /// The key was written.
    Put(KeyValue),
    /// The key was deleted (or its lease ran out); `mod_revision` is the deletion's.
    Delete(KeyValue),
}

/// What etcd answered, given back with [`super::ClusterNode::handle_etcd`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EtcdResult {
    /// A lease was granted.
    LeaseGranted {
        /// Its id.
        lease: i64,
    },
    /// A keep-alive's answer: the TTL left in seconds, 0 or less once the lease is gone.
    KeepAlive {
        /// TTL left in seconds.
        ttl_s: i64,
    },
    /// A campaign's answer.
    Campaign {
        /// True if this node's key was written (it leads once the watch shows the key).
        won: bool,
        /// The election key as it stands (this node's or the current leader's).
        leader: KeyValue,
    },
    /// A guarded append's answer.
    Append {
        /// False when a compare failed: this node no longer leads (or the log was changed by
        /// hand).
        succeeded: bool,
        /// The revision of the transaction.
        revision: u64,
    },
    /// A range's answer.
    Range {
        /// The store revision the range was read at.
        revision: u64,
        /// The keys, in key order.
        kvs: Vec<KeyValue>,
    },
    /// Events of a watch, in revision order.
    Events(Vec<WatchEvent>),
    /// A revoke completed.
    Done,
    /// The call failed (connection, timeout, compaction): its outcome is unknown.
    Failed {
        /// Why, for the log.
        reason: String,
    },
}
