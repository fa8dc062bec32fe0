//! The clean-shutdown snapshot: live leases with their time left, in a versioned format.

use crate::error::Error;
use crate::json::{self, ObjectWriter, Value};
use crate::text::Text;
use alloc::string::String;
use alloc::vec::Vec;

/// Version written by this build; decoding refuses any other.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Live state at a clean shutdown. Monotonic time does not survive a restart, so each lease
/// keeps its time left: a restored lease never ends earlier than it would have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Format version, [`SNAPSHOT_VERSION`].
    pub version: u32,
    /// The next token the engine would have issued.
    pub next_token: u64,
    /// The token ceiling persisted when the snapshot was taken; a snapshot whose ceiling is not
    /// the one on disk is stale and is treated as a crash.
    /// Absent in a file: 0.
    pub ceiling: u64,
    /// Every live lease.
    pub leases: Vec<SnapshotLease>,
    /// Locks inside a lock-delay.
    /// Absent in a file: none.
    pub delays: Vec<SnapshotDelay>,
    /// Restart grace left at shutdown, in ms: a run that shut down cleanly while still in the
    /// grace of an earlier crash does not know that crash's leases, which may still be live.
    /// Written only when not 0; absent in a file: 0.
    pub grace_ms_left: u64,
}

/// One live lease in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotLease {
    /// Lock name.
    pub name: String,
    /// Fencing token of the lease.
    pub token: u64,
    /// Whether the lease is shared.
    pub shared: bool,
    /// Owner label, if any.
    /// Absent or null in a file: none.
    pub owner: Option<String>,
    /// Milliseconds the lease had left at shutdown.
    pub ms_left: u64,
    /// Lock-delay applied if this lease expires.
    /// Absent in a file: 0.
    pub lock_delay_ms: u64,
}

/// A lock inside a lock-delay in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotDelay {
    /// Lock name.
    pub name: String,
    /// The token whose expiry began the delay.
    /// Absent in a file: 0.
    pub token: u64,
    /// Milliseconds of delay left at shutdown.
    pub ms_left: u64,
}

impl Snapshot {
    /// Encodes the snapshot as JSON bytes, the same on every host: one compact object with
    /// the fields in declaration order (`grace_ms_left` only when not 0).
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut object = ObjectWriter::begin(&mut out);
        object
            .number("version", u64::from(self.version))
            .number("next_token", self.next_token)
            .number("ceiling", self.ceiling);
        let leases = object.key("leases");
        leases.push(b'[');
        for (at, lease) in self.leases.iter().enumerate() {
            if at > 0 {
                leases.push(b',');
            }
            let mut item = ObjectWriter::begin(leases);
            item.text("name", &lease.name)
                .number("token", lease.token)
                .boolean("shared", lease.shared)
                .opt_text("owner", lease.owner.as_deref())
                .number("ms_left", lease.ms_left)
                .number("lock_delay_ms", lease.lock_delay_ms);
            item.end();
        }
        leases.push(b']');
        let delays = object.key("delays");
        delays.push(b'[');
        for (at, delay) in self.delays.iter().enumerate() {
            if at > 0 {
                delays.push(b',');
            }
            let mut item = ObjectWriter::begin(delays);
            item.text("name", &delay.name)
                .number("token", delay.token)
                .number("ms_left", delay.ms_left);
            item.end();
        }
        delays.push(b']');
        if self.grace_ms_left != 0 {
            object.number("grace_ms_left", self.grace_ms_left);
        }
        object.end();
        out
    }

    /// Decodes a snapshot written by [`Snapshot::encode`] (any field order and spacing; unknown
    /// fields are ignored).
    ///
    /// # Errors
    /// [`Error::BadRequest`] if the bytes are not a snapshot of this version.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, Error> {
        let snapshot = json::parse(bytes)
            .and_then(|value| from_json(&value))
            .map_err(|why| Error::bad(Text::new("snapshot is unreadable: ").str(&why)))?;
        if snapshot.version != SNAPSHOT_VERSION {
            return Err(Error::bad(
                Text::new("snapshot version ")
                    .num(snapshot.version)
                    .str(" is not supported (expected ")
                    .num(SNAPSHOT_VERSION)
                    .str(")"),
            ));
        }
        Ok(snapshot)
    }
}

fn from_json(value: &Value) -> Result<Snapshot, String> {
    let fields = value.fields("the snapshot")?;
    let version = fields.number("version", u64::from(u32::MAX))?;
    Ok(Snapshot {
        // In range: checked against u32::MAX just above.
        version: u32::try_from(version).unwrap_or(u32::MAX),
        next_token: fields.number("next_token", u64::MAX)?,
        ceiling: fields.number_or_zero("ceiling")?,
        leases: fields
            .required("leases")?
            .array("leases")?
            .iter()
            .map(lease_from_json)
            .collect::<Result<_, _>>()?,
        delays: fields
            .array_or_empty("delays")?
            .iter()
            .map(delay_from_json)
            .collect::<Result<_, _>>()?,
        grace_ms_left: fields.number_or_zero("grace_ms_left")?,
    })
}

fn lease_from_json(value: &Value) -> Result<SnapshotLease, String> {
    let fields = value.fields("a lease")?;
    Ok(SnapshotLease {
        name: fields.text("name")?,
        token: fields.number("token", u64::MAX)?,
        shared: fields.required("shared")?.boolean("shared")?,
        owner: fields.opt_text("owner")?,
        ms_left: fields.number("ms_left", u64::MAX)?,
        lock_delay_ms: fields.number_or_zero("lock_delay_ms")?,
    })
}

fn delay_from_json(value: &Value) -> Result<SnapshotDelay, String> {
    let fields = value.fields("a delay")?;
    Ok(SnapshotDelay {
        name: fields.text("name")?,
        token: fields.number_or_zero("token")?,
        ms_left: fields.number("ms_left", u64::MAX)?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn sample(grace_ms_left: u64) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            next_token: 42,
            ceiling: 1000,
            leases: alloc::vec![
                SnapshotLease {
                    name: "jobs/\"1\"".to_string(),
                    token: 40,
                    shared: false,
                    owner: None,
                    ms_left: 1500,
                    lock_delay_ms: 0,
                },
                SnapshotLease {
                    name: "é\n".to_string(),
                    token: 41,
                    shared: true,
                    owner: Some("tab 1".to_string()),
                    ms_left: 9,
                    lock_delay_ms: 25,
                },
            ],
            delays: alloc::vec![SnapshotDelay {
                name: "q".to_string(),
                token: 39,
                ms_left: 7,
            }],
            grace_ms_left,
        }
    }

    #[test]
    fn the_file_format_is_unchanged() {
        let leases = r#""leases":[{"name":"jobs/\"1\"","token":40,"shared":false,"owner":null,"ms_left":1500,"lock_delay_ms":0},{"name":"é\n","token":41,"shared":true,"owner":"tab 1","ms_left":9,"lock_delay_ms":25}],"delays":[{"name":"q","token":39,"ms_left":7}]"#;
        let head = r#"{"version":1,"next_token":42,"ceiling":1000,"#;
        let without_grace = [head, leases, "}"].concat();
        assert_eq!(
            String::from_utf8(sample(0).encode()).unwrap(),
            without_grace
        );
        let with_grace = [head, leases, r#","grace_ms_left":5}"#].concat();
        assert_eq!(String::from_utf8(sample(5).encode()).unwrap(), with_grace);
        for grace in [0, 5] {
            assert_eq!(
                Snapshot::decode(&sample(grace).encode()).unwrap(),
                sample(grace)
            );
        }
    }

    #[test]
    fn absent_optional_fields_take_their_defaults() {
        let snapshot = Snapshot::decode(
            br#"{"version": 1, "next_token": 3, "leases": [{"name": "a", "token": 2, "shared": false, "ms_left": 5}], "later": {"ignored": [true]}}"#,
        )
        .unwrap();
        assert_eq!(snapshot.ceiling, 0);
        assert_eq!(snapshot.grace_ms_left, 0);
        assert!(snapshot.delays.is_empty());
        let lease = snapshot.leases.first().unwrap();
        assert_eq!((lease.owner.as_deref(), lease.lock_delay_ms), (None, 0));
    }

    #[test]
    fn malformed_snapshots_are_refused_saying_why() {
        for (bad, says) in [
            (&b"{\"version\": 1,"[..], "expected a string as the key at line 1 column 15"),
            (br#"{"version": 1, "next_token": 3}"#, "missing field `leases` in the snapshot"),
            (
                br#"{"version": 1, "next_token": 3, "leases": [{"name": "a", "token": 2, "ms_left": 5}]}"#,
                "missing field `shared` in a lease",
            ),
            (
                br#"{"version": 1, "next_token": "3", "leases": []}"#,
                "invalid type for `next_token`: expected a whole number, got a string",
            ),
            (
                br#"{"version": 1, "next_token": 3, "leases": [], "leases": []}"#,
                "duplicate field `leases` in the snapshot",
            ),
        ] {
            let error = Snapshot::decode(bad).unwrap_err().message();
            assert_eq!(
                error,
                ["snapshot is unreadable: ", says].concat(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
