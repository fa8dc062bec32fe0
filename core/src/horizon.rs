//! The lease horizon: a durable upper bound on every lease deadline the engine revealed, kept
//! on the operating system's boot-wide monotonic clock so that it survives a process crash.
//!
//! After a crash the engine cannot know which leases were live, so it grants nothing until
//! every one of them has lapsed. Without more knowledge that is the longest lease possible (the
//! full grace). With a horizon on disk it is exact: the engine asks the host to persist a new
//! horizon (the deadline plus `Config::horizon_slack_ms`, lock-delay included) before it
//! reveals a grant or renewal that passes the one already persisted, so the horizon is always
//! at or after every deadline a client was told. Instants are the host's monotonic clock from
//! an origin it picks; the system monotonic clock (Linux `CLOCK_MONOTONIC`) runs across process
//! restarts on one boot, so the host states where its clock stands on it ([`BootClock`]) and
//! the horizon is stored there, with the boot's identity. On the same boot the grace after a
//! crash is the time left until the stored horizon; on another boot, or without a boot
//! identity, it is the full grace.

use alloc::string::String;
use alloc::vec::Vec;

use crate::durable::{CorruptFile, DataFile};
use crate::error::Error;
use crate::json::{self, ObjectWriter};
use crate::text::Text;
use crate::time::Instant;
use crate::tokens::MAX_TOKEN;

/// Version of the horizon file written by this build; decoding refuses any other.
pub const HORIZON_VERSION: u32 = 1;

/// Longest boot identity accepted, in bytes (Linux's is a 36-character UUID).
const MAX_BOOT_ID_LEN: usize = 128;

/// Where the host's clock stands on the system's boot-wide monotonic clock, and which boot that
/// clock belongs to. The host reads both (Linux: `/proc/sys/kernel/random/boot_id` and
/// `CLOCK_MONOTONIC`) at the same moment as the `now` it passes to start the engine, and its
/// `now` must then advance with that clock; the core never reads either (I6).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BootClock {
    /// The boot's identity: printable ASCII without spaces, 1 to 128 bytes.
    pub boot_id: String,
    /// The system monotonic clock's reading, in ms, at the host's `Instant::ZERO`; negative
    /// when the host's origin is later than the system clock's.
    pub offset_ms: i64,
}

impl BootClock {
    /// Creates a boot clock from `boot_id` (surrounding whitespace ignored) and `monotonic_ms`,
    /// the system monotonic clock in whole ms read at the same moment as `now`.
    ///
    /// # Errors
    /// [`Error::BadRequest`] if the boot identity is empty, too long or not printable ASCII.
    pub fn at(boot_id: &str, now: Instant, monotonic_ms: u64) -> Result<BootClock, Error> {
        let boot_id = valid_boot_id(boot_id)?;
        let offset = i128::from(monotonic_ms) - i128::from(now.as_ms());
        Ok(BootClock {
            boot_id,
            offset_ms: i64::try_from(offset).unwrap_or(if offset < 0 {
                i64::MIN
            } else {
                i64::MAX
            }),
        })
    }

    /// Returns `at` on the system monotonic clock, in ms.
    #[must_use]
    pub fn to_monotonic(&self, at: Instant) -> u64 {
        let value = i128::from(at.as_ms()) + i128::from(self.offset_ms);
        u64::try_from(value.max(0)).unwrap_or(u64::MAX)
    }

    /// Returns the host instant of `monotonic_ms` on the system monotonic clock (saturating).
    #[must_use]
    pub fn to_instant(&self, monotonic_ms: u64) -> Instant {
        let value = i128::from(monotonic_ms) - i128::from(self.offset_ms);
        Instant(u64::try_from(value.max(0)).unwrap_or(u64::MAX))
    }
}

/// The content of [`DataFile::Horizon`]: no lease the last run revealed ends after
/// `monotonic_ms` on the system monotonic clock of boot `boot_id`. `ceiling` is the token
/// ceiling in force when it was written, a raised one included: the horizon is written just
/// before that ceiling, and a start takes the higher of the two as the ceiling on disk. A
/// horizon whose ceiling is below the one on disk comes from an earlier run (one that did not
/// keep it up to date) and is not trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Horizon {
    /// Format version, [`HORIZON_VERSION`].
    pub version: u32,
    /// The boot the clock reading belongs to.
    pub boot_id: String,
    /// The horizon on that boot's system monotonic clock, in ms.
    pub monotonic_ms: u64,
    /// The token ceiling in force when the horizon was written (a raised one is written
    /// after the horizon).
    pub ceiling: u64,
}

impl Horizon {
    /// Creates a horizon for `boot_id` at `monotonic_ms`, written under token `ceiling`.
    #[must_use]
    pub fn new(boot_id: &str, monotonic_ms: u64, ceiling: u64) -> Horizon {
        Horizon {
            version: HORIZON_VERSION,
            boot_id: String::from(boot_id),
            monotonic_ms,
            ceiling,
        }
    }

    /// Encodes the horizon as the content of [`DataFile::Horizon`]: one line of JSON,
    /// `{"version":1,"boot_id":...,"monotonic_ms":...,"ceiling":...}`.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut object = ObjectWriter::begin(&mut bytes);
        object
            .number("version", u64::from(self.version))
            .text("boot_id", &self.boot_id)
            .number("monotonic_ms", self.monotonic_ms)
            .number("ceiling", self.ceiling);
        object.end();
        bytes.push(b'\n');
        bytes
    }

    /// Decodes the content of [`DataFile::Horizon`] (any field order and spacing; unknown
    /// fields are ignored).
    ///
    /// # Errors
    /// [`CorruptFile`] unless the bytes are a horizon of this version with a valid boot id.
    pub fn decode(bytes: &[u8]) -> Result<Horizon, CorruptFile> {
        let corrupt = |reason: String| CorruptFile {
            what: DataFile::Horizon.name(),
            reason: Text::new(&reason)
                .str(" (remove it to restart with the full restart grace)")
                .into(),
        };
        let horizon = json::parse(bytes.trim_ascii())
            .and_then(|value| {
                let fields = value.fields("the lease horizon")?;
                let version = fields.number("version", u64::from(u32::MAX))?;
                Ok(Horizon {
                    // In range: checked against u32::MAX just above.
                    version: u32::try_from(version).unwrap_or(u32::MAX),
                    boot_id: fields.text("boot_id")?,
                    monotonic_ms: fields.number("monotonic_ms", u64::MAX)?,
                    ceiling: fields.number("ceiling", MAX_TOKEN)?,
                })
            })
            .map_err(|error| {
                corrupt(Text::new("it is not a lease horizon: ").str(&error).into())
            })?;
        if horizon.version != HORIZON_VERSION {
            return Err(corrupt(
                Text::new("version ")
                    .num(horizon.version)
                    .str(" is not supported (expected ")
                    .num(HORIZON_VERSION)
                    .str(")")
                    .into(),
            ));
        }
        valid_boot_id(&horizon.boot_id).map_err(|error| corrupt(error.message()))?;
        Ok(horizon)
    }
}

/// Why an engine grants nothing for a while after its start, and how that was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GraceCase {
    /// No restart grace: a fresh start or a clean one.
    None,
    /// A crash on the same boot: grants wait until the stored lease horizon.
    Horizon,
    /// A crash, and the stored horizon is from another boot: the full grace.
    Rebooted,
    /// A crash, and the host gave no boot identity: the full grace.
    NoBootId,
    /// A crash with no horizon on disk (a data directory from before horizons, or a host that
    /// keeps none): the full grace.
    NoHorizon,
    /// A crash, and the horizon on disk was written under another token ceiling, so another run
    /// came after it: the full grace.
    StaleHorizon,
}

impl GraceCase {
    /// Returns `"none"`, `"horizon"`, `"rebooted"`, `"no-boot-id"`, `"no-horizon"` or
    /// `"stale-horizon"`, as `INFO` shows it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            GraceCase::None => "none",
            GraceCase::Horizon => "horizon",
            GraceCase::Rebooted => "rebooted",
            GraceCase::NoBootId => "no-boot-id",
            GraceCase::NoHorizon => "no-horizon",
            GraceCase::StaleHorizon => "stale-horizon",
        }
    }

    /// Explains the case for a log line.
    #[must_use]
    pub const fn reason(self) -> &'static str {
        match self {
            GraceCase::None => "no restart grace",
            GraceCase::Horizon => {
                "same boot: until the lease horizon stored on the system monotonic clock"
            }
            GraceCase::Rebooted => "the stored lease horizon is from another boot: full grace",
            GraceCase::NoBootId => "no boot identity to trust a lease horizon: full grace",
            GraceCase::NoHorizon => "no lease horizon on disk: full grace",
            GraceCase::StaleHorizon => {
                "the stored lease horizon is from an earlier run (another token ceiling): full grace"
            }
        }
    }
}

/// What the engine knows of its horizon: the boot clock, how far the persisted horizon
/// reaches (in the host's instants) and whether a new one waits to be persisted.
#[derive(Debug, Clone)]
pub(crate) struct HorizonTracker {
    clock: Option<BootClock>,
    slack_ms: u64,
    /// Every deadline at or before this is covered by a horizon asked for.
    covered: Instant,
    /// The latest deadline (lock-delay included) asked to be covered.
    latest: Instant,
    /// The token ceiling named by the last horizon asked for.
    written_ceiling: u64,
    pending: bool,
}

impl HorizonTracker {
    pub(crate) fn new(clock: Option<BootClock>, slack_ms: u64) -> HorizonTracker {
        HorizonTracker {
            clock,
            slack_ms,
            covered: Instant::ZERO,
            latest: Instant::ZERO,
            written_ceiling: 0,
            pending: false,
        }
    }

    pub(crate) fn clock(&self) -> Option<&BootClock> {
        self.clock.as_ref()
    }

    /// Records that `horizon`, written under `ceiling`, is on disk and already covers `until`.
    pub(crate) fn resume(&mut self, until: Instant, ceiling: u64) {
        self.covered = until;
        self.written_ceiling = ceiling;
    }

    /// Makes sure a deadline (lock-delay included) is covered before it is revealed: past the
    /// covered horizon, a new one `slack_ms` further is asked for. Without a boot clock a
    /// horizon could not be trusted later, so none is kept.
    pub(crate) fn cover(&mut self, until: Instant) {
        self.latest = self.latest.max(until);
        if self.clock.is_some() && until > self.covered {
            self.covered = until.plus_ms(self.slack_ms);
            self.pending = true;
        }
    }

    /// Takes the horizon to persist, if one is due: a new one, or the last one again under a
    /// raised token `ceiling` (a horizon is trusted only under the ceiling it names), to be
    /// written before that ceiling.
    pub(crate) fn poll(&mut self, ceiling: u64) -> Option<Horizon> {
        let clock = self.clock.as_ref()?;
        let restamp = self.covered > Instant::ZERO && self.written_ceiling != ceiling;
        if !self.pending && !restamp {
            return None;
        }
        // A restamp reaches a full slack past the latest deadline, as a new horizon would, so
        // that restamps do not add to the one write per slack period of a steady load.
        self.covered = self.covered.max(self.latest.plus_ms(self.slack_ms));
        self.pending = false;
        self.written_ceiling = ceiling;
        // One more ms: the host's truncated clock and the system's may round apart by one.
        let monotonic_ms = clock.to_monotonic(self.covered).saturating_add(1);
        Some(Horizon::new(&clock.boot_id, monotonic_ms, ceiling))
    }

    /// Returns true if horizons are kept (the host gave a boot clock).
    pub(crate) fn is_kept(&self) -> bool {
        self.clock.is_some()
    }

    /// Returns how far the horizon asked for reaches, if one is kept.
    pub(crate) fn covered(&self) -> Option<Instant> {
        self.clock.as_ref().map(|_| self.covered)
    }
}

fn valid_boot_id(boot_id: &str) -> Result<String, Error> {
    let boot_id = boot_id.trim();
    if boot_id.is_empty() || boot_id.len() > MAX_BOOT_ID_LEN {
        return Err(Error::bad(
            Text::new("a boot identity is 1 to ")
                .num(MAX_BOOT_ID_LEN)
                .str(" bytes, not ")
                .num(boot_id.len()),
        ));
    }
    if !boot_id.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(Error::bad(
            "a boot identity is printable ASCII without spaces",
        ));
    }
    Ok(String::from(boot_id))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn clock() -> BootClock {
        BootClock::at("boot-a", Instant(100), 1_000_100).unwrap()
    }

    #[test]
    fn boot_clock_maps_both_ways() {
        let clock = clock();
        assert_eq!(clock.offset_ms, 1_000_000);
        assert_eq!(clock.to_monotonic(Instant(5)), 1_000_005);
        assert_eq!(clock.to_instant(1_000_005), Instant(5));
        assert_eq!(clock.to_instant(3), Instant(0));
        let behind = BootClock::at("b", Instant(500), 100).unwrap();
        assert_eq!(behind.to_monotonic(Instant(100)), 0);
        assert_eq!(behind.to_instant(100), Instant(500));
    }

    #[test]
    fn boot_ids_are_checked() {
        assert!(BootClock::at("  abc-1\n", Instant(0), 0).is_ok());
        assert_eq!(BootClock::at(" x\n", Instant(0), 0).unwrap().boot_id, "x");
        for bad in ["", "   ", "a b", "é"] {
            assert!(BootClock::at(bad, Instant(0), 0).is_err(), "{bad:?}");
        }
        assert!(BootClock::at(&"a".repeat(129), Instant(0), 0).is_err());
    }

    #[test]
    fn horizon_file_round_trips_and_refuses_garbage() {
        let horizon = Horizon::new("boot-a", 42, 7);
        let bytes = horizon.encode();
        assert!(bytes.ends_with(b"\n"));
        assert_eq!(Horizon::decode(&bytes), Ok(horizon));
        for bad in [
            &b""[..],
            b"{",
            b"12",
            b"{\"version\":2,\"boot_id\":\"a\",\"monotonic_ms\":1,\"ceiling\":1}",
            b"{\"version\":1,\"boot_id\":\"a b\",\"monotonic_ms\":1,\"ceiling\":1}",
            b"{\"version\":1,\"boot_id\":\"a\",\"monotonic_ms\":-1,\"ceiling\":1}",
            // Above the largest token: no run wrote it.
            b"{\"version\":1,\"boot_id\":\"a\",\"monotonic_ms\":1,\"ceiling\":9007199254740992}",
        ] {
            let error = Horizon::decode(bad).unwrap_err();
            assert_eq!(error.what, "horizon");
            assert!(error.reason.contains("full restart grace"), "{error}");
        }
    }

    #[test]
    fn tracker_writes_once_per_slack_and_restamps_on_a_new_ceiling() {
        let mut tracker = HorizonTracker::new(Some(clock()), 1000);
        assert_eq!(tracker.poll(10), None);
        tracker.cover(Instant(500));
        let first = tracker.poll(10).unwrap();
        assert_eq!(first.monotonic_ms, 1_001_501);
        for until in [600, 1200, 1500] {
            tracker.cover(Instant(until));
            assert_eq!(tracker.poll(10), None, "{until} is covered");
        }
        tracker.cover(Instant(1501));
        assert_eq!(tracker.poll(10).unwrap().monotonic_ms, 1_002_502);
        let restamped = tracker.poll(20).unwrap();
        assert_eq!((restamped.monotonic_ms, restamped.ceiling), (1_002_502, 20));
        assert_eq!(tracker.poll(20), None);
        let mut without_clock = HorizonTracker::new(None, 1000);
        without_clock.cover(Instant(5));
        assert_eq!(without_clock.poll(1), None);
    }
}
