//! The data directory: which files a host keeps, how it restarts from what it read, and what it
//! must write or remove, so that every host follows one set of durability rules.
//!
//! A host only moves bytes: it reads each [`DataFile`] (absent is `None`), hands them to
//! [`Recovery::plan`], performs the plan's [`FileAction`]s in order, and later performs the
//! actions the engine or server yields (`Output::File`, [`crate::Engine::shutdown`]). Every
//! action is durable before the next one is handled: a write goes to a temp file, is fsynced,
//! renamed over the target, and the directory is fsynced; a removal fsyncs the directory. A
//! failed fsync is fatal (the kernel may have dropped the data and cleared the error).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::config::Config;
use crate::engine::{Engine, Start};
use crate::horizon::Horizon;
use crate::snapshot::Snapshot;
use crate::text::Text;
use crate::time::Instant;
use crate::tokens::MAX_TOKEN;

/// One file of the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DataFile {
    /// The token ceiling: the highest token that may have been revealed, as decimal text.
    Ceiling,
    /// The clean-shutdown snapshot of live leases; present only between a clean stop and the
    /// next start.
    Snapshot,
    /// The lease horizon ([`Horizon`]): no lease revealed ends after it, on the system
    /// monotonic clock of the boot it names. Kept only by hosts that give a boot clock.
    Horizon,
}

impl DataFile {
    /// Every file a host must read before [`Recovery::plan`].
    pub const ALL: [DataFile; 3] = [DataFile::Ceiling, DataFile::Snapshot, DataFile::Horizon];

    /// Returns the file's name inside the data directory.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            DataFile::Ceiling => "ceiling",
            DataFile::Snapshot => "snapshot.json",
            DataFile::Horizon => "horizon",
        }
    }

    /// Returns the file called `name`, if the data directory has one.
    #[must_use]
    pub fn from_name(name: &str) -> Option<DataFile> {
        DataFile::ALL.into_iter().find(|file| file.name() == name)
    }
}

/// A durable change to the data directory, performed in order, each complete before the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileAction {
    /// Atomically replace `file` with `bytes` (temp file, fsync, rename, fsync dir).
    Write {
        /// The file to replace.
        file: DataFile,
        /// Its whole new content.
        bytes: Vec<u8>,
    },
    /// Remove `file` if present and fsync the directory.
    Remove {
        /// The file to remove.
        file: DataFile,
    },
}

impl FileAction {
    /// Returns the file this action changes.
    #[must_use]
    pub const fn file(&self) -> DataFile {
        match self {
            FileAction::Write { file, .. } | FileAction::Remove { file } => *file,
        }
    }
}

/// The raw bytes a host read off its data directory; `None` means the file is absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataFiles<'a> {
    /// Content of [`DataFile::Ceiling`].
    pub ceiling: Option<&'a [u8]>,
    /// Content of [`DataFile::Snapshot`].
    pub snapshot: Option<&'a [u8]>,
    /// Content of [`DataFile::Horizon`].
    pub horizon: Option<&'a [u8]>,
}

impl<'a> DataFiles<'a> {
    /// Records what the host read for `file`.
    pub fn set(&mut self, file: DataFile, bytes: Option<&'a [u8]>) {
        match file {
            DataFile::Ceiling => self.ceiling = bytes,
            DataFile::Snapshot => self.snapshot = bytes,
            DataFile::Horizon => self.horizon = bytes,
        }
    }
}

/// Which start a [`Recovery`] took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartKind {
    /// Nothing on disk: tokens start at 1, no restart grace.
    Fresh,
    /// A ceiling and no snapshot: the last run crashed; restart grace before any grant.
    Crashed,
    /// A snapshot from the last run: its leases are restored, no restart grace.
    Clean,
    /// A snapshot that cannot be trusted (unreadable, from another run, inconsistent): the
    /// start is a crash start, with its restart grace.
    SnapshotRefused,
}

impl StartKind {
    /// Returns `"fresh"`, `"crashed"`, `"clean"` or `"snapshot-refused"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            StartKind::Fresh => "fresh",
            StartKind::Crashed => "crashed",
            StartKind::Clean => "clean",
            StartKind::SnapshotRefused => "snapshot-refused",
        }
    }

    /// Returns true for the starts that grant nothing until a restart grace has passed.
    #[must_use]
    pub const fn has_grace(self) -> bool {
        matches!(self, StartKind::Crashed | StartKind::SnapshotRefused)
    }
}

/// A file the host read that cannot be trusted; starting anyway could reissue tokens or accept
/// stale ones, so the host must refuse to go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptFile {
    /// What was read: a data file's name, or `"fence file"`.
    pub what: &'static str,
    /// Why it was refused.
    pub reason: String,
}

impl CorruptFile {
    /// Returns `<what> is corrupt: <reason>` (what `Display` shows).
    #[must_use]
    pub fn text(&self) -> String {
        Text::new(self.what)
            .str(" is corrupt: ")
            .str(&self.reason)
            .into()
    }
}

impl fmt::Display for CorruptFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for CorruptFile {}

/// How an engine starts from a data directory, and what the host must do on disk before it
/// serves anyone.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// The start taken.
    pub kind: StartKind,
    /// The engine start that [`Recovery::start_engine`] uses.
    pub start: Start,
    /// Why the snapshot was refused, for [`StartKind::SnapshotRefused`].
    pub refusal: Option<String>,
    /// The lease horizon the last run left, if any; a crash start on the same boot waits only
    /// until it.
    pub horizon: Option<Horizon>,
    /// Durable changes to perform, in order, before serving: a snapshot is valid for one start
    /// only, so it is removed before any client is served (a later crash must not revive it).
    pub actions: Vec<FileAction>,
}

impl Recovery {
    /// Plans the start from the bytes the host read for each [`DataFile`].
    ///
    /// The ceiling on disk is the higher of the ceiling file's and the one the lease horizon
    /// names (written just before a raised ceiling). A snapshot is trusted only if it decodes
    /// and was taken under the ceiling on disk; otherwise the start is a crash start whose
    /// ceiling is the highest the files and the refused snapshot vouch for, so no token can be
    /// issued twice.
    ///
    /// # Errors
    /// [`CorruptFile`] if the ceiling file is not a decimal token (guessing could reissue
    /// tokens) or the horizon file is not a lease horizon (guessing could end a grace early).
    pub fn plan(files: DataFiles<'_>) -> Result<Recovery, CorruptFile> {
        let ceiling = files.ceiling.map(decode_ceiling).transpose()?;
        let horizon = files.horizon.map(Horizon::decode).transpose()?;
        // A horizon is written before the raised ceiling it names: after a crash between the
        // two, its ceiling is the higher one, and no token above the ceiling file was revealed.
        let ceiling = ceiling.max(horizon.as_ref().map(|horizon| horizon.ceiling));
        let mut plan = Recovery::plan_tokens(ceiling, files.snapshot);
        plan.horizon = horizon;
        Ok(plan)
    }

    /// Plans the start from the ceiling and the snapshot.
    fn plan_tokens(ceiling: Option<u64>, snapshot: Option<&[u8]>) -> Recovery {
        let Some(snapshot_bytes) = snapshot else {
            return match ceiling {
                None => Recovery::without_snapshot(StartKind::Fresh, Start::Fresh),
                Some(ceiling) => {
                    Recovery::without_snapshot(StartKind::Crashed, Start::Crashed { ceiling })
                }
            };
        };
        let actions = vec![FileAction::Remove {
            file: DataFile::Snapshot,
        }];
        let on_disk = ceiling.unwrap_or(0);
        let snapshot = match Snapshot::decode(snapshot_bytes) {
            Ok(snapshot) => snapshot,
            Err(error) => {
                return Recovery {
                    kind: StartKind::SnapshotRefused,
                    start: Start::Crashed { ceiling: on_disk },
                    refusal: Some(error.message()),
                    horizon: None,
                    actions,
                }
            }
        };
        if snapshot.ceiling != on_disk {
            let refusal: String = Text::new("it was taken under token ceiling ")
                .num(snapshot.ceiling)
                .str(", but the ceiling on disk is ")
                .num(on_disk)
                .str(if ceiling.is_none() {
                    " (no ceiling file)"
                } else {
                    ""
                })
                .str(", so it is not from the last run")
                .into();
            return Recovery {
                kind: StartKind::SnapshotRefused,
                start: Start::Crashed {
                    ceiling: vouched_ceiling(on_disk, &snapshot),
                },
                refusal: Some(refusal),
                horizon: None,
                actions,
            };
        }
        Recovery {
            kind: StartKind::Clean,
            start: Start::Clean {
                ceiling: on_disk,
                snapshot,
            },
            refusal: None,
            horizon: None,
            actions,
        }
    }

    /// Starts the engine this plan describes. A snapshot the engine cannot restore (tokens out
    /// of order, conflicting holders) turns the plan into a crash start instead of an error.
    ///
    /// With `config.boot_clock`, a crash start on the boot of the stored horizon waits only
    /// until it, and a lease horizon covering restored leases goes first in `actions`. Without
    /// one, a horizon on disk is removed first: the leases of this run will not be under it,
    /// so a later start must not trust it.
    pub fn start_engine(&mut self, now: Instant, config: Config) -> Engine {
        let ceiling = match &self.start {
            Start::Clean { ceiling, snapshot } => vouched_ceiling(*ceiling, snapshot),
            Start::Crashed { ceiling } => *ceiling,
            Start::Fresh => 0,
        };
        let keeps_horizon = config.boot_clock.is_some();
        let mut engine = match (&self.start, self.kind) {
            (Start::Crashed { ceiling }, StartKind::Crashed) => {
                Engine::after_crash_within(now, config, *ceiling, self.horizon.as_ref())
            }
            _ => match Engine::start(now, config.clone(), self.start.clone()) {
                Ok(engine) => engine,
                Err(error) => {
                    self.kind = StartKind::SnapshotRefused;
                    self.refusal = Some(error.message());
                    self.start = Start::Crashed { ceiling };
                    Engine::after_crash(now, config, ceiling)
                }
            },
        };
        if let Some(horizon) = engine.poll_horizon() {
            self.actions.insert(
                0,
                FileAction::Write {
                    file: DataFile::Horizon,
                    bytes: horizon.encode(),
                },
            );
        } else if !keeps_horizon && self.horizon.is_some() {
            self.actions.insert(
                0,
                FileAction::Remove {
                    file: DataFile::Horizon,
                },
            );
        }
        engine
    }

    /// Describes the start for the host's log, with the numbers an operator needs: after a
    /// crash, which grace case applied ([`crate::GraceCase`]) and how long the grace is.
    #[must_use]
    pub fn summary(&self, now: Instant, engine: &Engine) -> String {
        let grace = engine.grace_left(now);
        let case = engine.grace_case();
        match self.kind {
            StartKind::Fresh => String::from("fresh start: nothing on disk, tokens start at 1"),
            StartKind::Clean => Text::new("recovered from a clean shutdown: ")
                .num(engine.live_leases())
                .str(" leases restored, tokens resume above ")
                .num(engine.last_token())
                .into(),
            StartKind::Crashed => Text::new("recovered from a crash: tokens resume above ")
                .num(engine.last_token())
                .str("; restart grace ")
                .num(grace)
                .str(" ms, case ")
                .str(case.as_str())
                .str(" (")
                .str(case.reason())
                .str("; no grants until every lease of the last run has lapsed)")
                .into(),
            StartKind::SnapshotRefused => Text::new("snapshot refused (")
                .str(self.refusal.as_deref().unwrap_or("unreadable"))
                .str("): recovering as from a crash; tokens resume above ")
                .num(engine.last_token())
                .str("; restart grace ")
                .num(grace)
                .str(" ms, case ")
                .str(case.as_str())
                .str(" (no grants until every earlier lease has lapsed)")
                .into(),
        }
    }

    fn without_snapshot(kind: StartKind, start: Start) -> Recovery {
        Recovery {
            kind,
            start,
            refusal: None,
            horizon: None,
            actions: Vec::new(),
        }
    }
}

/// Encodes a token ceiling as the content of [`DataFile::Ceiling`]: decimal digits and a newline.
#[must_use]
pub fn encode_ceiling(ceiling: u64) -> Vec<u8> {
    let mut bytes = Vec::from(itoa::Buffer::new().format(ceiling).as_bytes());
    bytes.push(b'\n');
    bytes
}

/// Decodes the content of [`DataFile::Ceiling`]; surrounding ASCII whitespace is allowed.
///
/// # Errors
/// [`CorruptFile`] unless the content is a decimal number no larger than [`MAX_TOKEN`].
pub fn decode_ceiling(bytes: &[u8]) -> Result<u64, CorruptFile> {
    let corrupt = |reason: String| CorruptFile {
        what: DataFile::Ceiling.name(),
        reason,
    };
    let text = bytes.trim_ascii();
    if text.is_empty() {
        return Err(corrupt(String::from("it is empty")));
    }
    if !text.iter().all(u8::is_ascii_digit) {
        return Err(corrupt(
            Text::new("")
                .quoted(&String::from_utf8_lossy(text.get(..40).unwrap_or(text)))
                .str(" is not a decimal number")
                .into(),
        ));
    }
    // Digits only, so the text is ASCII; a number past u64 or MAX_TOKEN was never written.
    let ceiling = core::str::from_utf8(text)
        .ok()
        .and_then(|digits| digits.parse::<u64>().ok())
        .filter(|ceiling| *ceiling <= MAX_TOKEN);
    ceiling.ok_or_else(|| corrupt(String::from("the number is larger than any token")))
}

/// The highest token a ceiling and a snapshot together say may have been issued.
fn vouched_ceiling(ceiling: u64, snapshot: &Snapshot) -> u64 {
    ceiling
        .max(snapshot.ceiling)
        .max(snapshot.next_token.saturating_sub(1))
        .min(MAX_TOKEN)
}
