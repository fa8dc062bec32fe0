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
    /// The guarded append: `Txn(if create_revision(election_key) == term and
    /// create_revision(key) == 0 [and create_revision(previous_key) > 0] then put(key, value)
    /// else get(election_key), get(key), get(previous_key))`, and with `compaction` also, in the
    /// same success branch, `put(snapshot_key, snapshot)` and `delete_range(delete_from,
    /// delete_end)`; answer [`EtcdResult::Append`] with what the failure branch read.
    ///
    /// Several appends may be in flight at once (pipelining); etcd may apply them in any
    /// order, so each one after the first also requires its predecessor's key: the log stays a
    /// gap-free prefix. A compaction never deletes a predecessor a later append needs: it
    /// deletes only the keys before its own batch's key.
    Append {
        /// Operation id.
        id: OpId,
        /// The election key.
        election_key: Vec<u8>,
        /// The create revision of this leader's election key.
        term: u64,
        /// The log key of the batch.
        key: Vec<u8>,
        /// The encoded [`super::Batch`].
        value: Vec<u8>,
        /// The log key of the batch before (none for the first batch of the log): it must
        /// exist, and the failure branch reads it.
        previous_key: Option<Vec<u8>>,
        /// A snapshot to store and the log keys it replaces, every `snapshot_every` batches.
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
        /// False when a compare failed; the fields below then say which.
        succeeded: bool,
        /// The revision of the transaction.
        revision: u64,
        /// When a compare failed: the create revision of the election key as the failure
        /// branch read it (0: no key). Not this leader's term: it was deposed.
        election_created: u64,
        /// When a compare failed: the create revision of the batch's own key (0: none).
        /// Not 0: another leader wrote this index.
        key_created: u64,
        /// When a compare failed: the create revision of the predecessor's key (0: none, or
        /// no predecessor was named). 0 with the two above in order: the predecessor was not
        /// applied yet, so the append is sent again once it commits.
        previous_created: u64,
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
