//! The resource side: remembers the highest token accepted per resource and refuses older ones.
//!
//! Only the resource, comparing tokens atomically at write time, is safe (docs/DESIGN.md, defect 4):
//! a lease verified before a write can lapse before the write lands.

use alloc::string::String;
use alloc::vec::Vec;
use portable_atomic::{AtomicU64, Ordering};

use crate::durable::CorruptFile;
use crate::hash_map::HashMap;
use crate::json::{self, ObjectWriter};
use crate::order::sort_by_text;
use crate::text::Text;

/// Version of the durable fence file written by [`Fence::encode`]; decoding refuses any other.
pub const FENCE_FILE_VERSION: u32 = 1;

/// The answer of a fence check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FenceOutcome {
    /// The token is at least the highest seen: the write may proceed.
    Accepted {
        /// The high-water mark moved (the host must persist it if the fence is durable).
        advanced: bool,
        /// The high-water mark now: the token just accepted.
        highest: u64,
    },
    /// The token is older than the high-water mark: the write must be refused.
    Rejected {
        /// The high-water mark, unchanged.
        highest: u64,
    },
}

impl FenceOutcome {
    /// Returns true if the write may proceed.
    #[must_use]
    pub const fn is_accepted(self) -> bool {
        matches!(self, FenceOutcome::Accepted { .. })
    }
}

/// The high-water mark of one resource, lock-free and safe to share between threads.
#[derive(Debug, Default)]
pub struct FenceMark {
    highest: AtomicU64,
}

impl FenceMark {
    /// Creates a mark that has seen `highest` (0: nothing yet).
    #[must_use]
    pub const fn new(highest: u64) -> Self {
        FenceMark {
            highest: AtomicU64::new(highest),
        }
    }

    /// Accepts `token` if it is >= every token accepted before (equal is allowed: several writes
    /// under one lease) and advances the mark atomically; rejects an older one.
    pub fn check(&self, token: u64) -> FenceOutcome {
        // fetch_max both compares and advances in one atomic step, so two racing writers can
        // never both pass with the older one landing last.
        let previous = self.highest.fetch_max(token, Ordering::AcqRel);
        if token < previous {
            FenceOutcome::Rejected { highest: previous }
        } else {
            FenceOutcome::Accepted {
                advanced: token > previous,
                highest: token,
            }
        }
    }

    /// Returns the highest token accepted.
    #[must_use]
    pub fn highest(&self) -> u64 {
        self.highest.load(Ordering::Acquire)
    }
}

/// High-water marks of many resources, keyed by name, for a single owner (`&mut self`).
///
/// The marks are a hash map (the browser's module already links the hash table code, and a
/// B-tree of its own would add about 7 KB); the file and [`Fence::marks`] list them in name
/// order.
#[derive(Debug, Default, Clone)]
pub struct Fence {
    marks: HashMap<String, u64>,
}

impl Fence {
    /// Creates an empty fence.
    #[must_use]
    pub fn new() -> Self {
        Fence::default()
    }

    /// Checks `token` for `resource` and advances its mark if accepted.
    pub fn check(&mut self, resource: &str, token: u64) -> FenceOutcome {
        match self.marks.get_mut(resource) {
            Some(highest) if token < *highest => FenceOutcome::Rejected { highest: *highest },
            Some(highest) => {
                let advanced = token > *highest;
                *highest = token;
                FenceOutcome::Accepted {
                    advanced,
                    highest: token,
                }
            }
            None => {
                self.marks.insert(String::from(resource), token);
                FenceOutcome::Accepted {
                    advanced: token > 0,
                    highest: token,
                }
            }
        }
    }

    /// Returns the highest token accepted for `resource` (0 if none).
    #[must_use]
    pub fn highest(&self, resource: &str) -> u64 {
        self.marks.get(resource).copied().unwrap_or(0)
    }

    /// Raises the mark of `resource` to at least `token` (used when loading persisted marks).
    pub fn restore(&mut self, resource: &str, token: u64) {
        let highest = self.marks.entry(String::from(resource)).or_insert(0);
        *highest = (*highest).max(token);
    }

    /// Encodes every mark as the content of a durable fence file, which the host writes
    /// atomically (temp file, fsync, rename, fsync dir) before it reports an advanced mark:
    /// `{"marks":{resource:highest,...},"version":1}`, resources in name order.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut file = ObjectWriter::begin(&mut out);
        let mut marks = ObjectWriter::begin(file.key("marks"));
        for (resource, highest) in self.marks() {
            marks.number(resource, highest);
        }
        marks.end();
        file.number("version", u64::from(FENCE_FILE_VERSION));
        file.end();
        out
    }

    /// Decodes a fence file written by [`Fence::encode`] (or by earlier hosts in the same
    /// format: any field order and spacing; unknown fields are ignored; a resource named twice
    /// keeps its last mark).
    ///
    /// # Errors
    /// [`CorruptFile`] if the bytes are not a fence file of this version: a fence that forgot
    /// its marks would accept stale tokens, so a host must never start from a bad file.
    pub fn decode(bytes: &[u8]) -> Result<Fence, CorruptFile> {
        let corrupt = |reason: String| CorruptFile {
            what: "fence file",
            reason,
        };
        let value = json::parse(bytes).map_err(corrupt)?;
        let fields = value.fields("the fence file").map_err(corrupt)?;
        let version = fields
            .number("version", u64::from(u32::MAX))
            .map_err(corrupt)?;
        let members = fields
            .required("marks")
            .and_then(|marks| marks.members("marks"))
            .map_err(corrupt)?;
        let mut marks = HashMap::default();
        for (resource, highest) in members {
            let highest = highest.number(resource, u64::MAX).map_err(corrupt)?;
            marks.insert(resource.clone(), highest);
        }
        if version != u64::from(FENCE_FILE_VERSION) {
            return Err(corrupt(
                Text::new("version ")
                    .num(version)
                    .str(", expected ")
                    .num(FENCE_FILE_VERSION)
                    .into(),
            ));
        }
        Ok(Fence { marks })
    }

    /// Iterates over every resource and its mark, in name order (for persisting).
    pub fn marks(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        let mut marks: Vec<(&str, u64)> = self
            .marks
            .iter()
            .map(|(name, highest)| (name.as_str(), *highest))
            .collect();
        sort_by_text(&mut marks, |(name, _)| name);
        marks.into_iter()
    }
}

/// High-water marks of many resources shared between threads: a read lock and an atomic
/// `fetch_max` on the hot path, a write lock only the first time a resource is seen.
#[cfg(feature = "std")]
#[derive(Debug, Default)]
pub struct SharedFence {
    marks: std::sync::RwLock<std::collections::HashMap<String, alloc::sync::Arc<FenceMark>>>,
}

#[cfg(feature = "std")]
impl SharedFence {
    /// Creates an empty fence.
    #[must_use]
    pub fn new() -> Self {
        SharedFence::default()
    }

    /// Checks `token` for `resource` and advances its mark atomically if accepted.
    pub fn check(&self, resource: &str, token: u64) -> FenceOutcome {
        self.mark(resource).check(token)
    }

    /// Returns the highest token accepted for `resource` (0 if none).
    #[must_use]
    pub fn highest(&self, resource: &str) -> u64 {
        let marks = self
            .marks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        marks.get(resource).map_or(0, |mark| mark.highest())
    }

    /// Raises the mark of `resource` to at least `token`.
    pub fn restore(&self, resource: &str, token: u64) {
        let _ = self.mark(resource).check(token);
    }

    /// Returns every resource and its mark, in name order.
    #[must_use]
    pub fn marks(&self) -> alloc::vec::Vec<(String, u64)> {
        let marks = self
            .marks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut all: alloc::vec::Vec<(String, u64)> = marks
            .iter()
            .map(|(name, mark)| (name.clone(), mark.highest()))
            .collect();
        all.sort();
        all
    }

    fn mark(&self, resource: &str) -> alloc::sync::Arc<FenceMark> {
        // A poisoned lock only means another thread panicked mid-insert of a map entry;
        // the map itself is still consistent, so keep serving.
        if let Some(mark) = self
            .marks
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(resource)
        {
            return mark.clone();
        }
        let mut marks = self
            .marks
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        marks.entry(String::from(resource)).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_equal_and_newer_rejects_older() {
        let mut fence = Fence::new();
        assert_eq!(
            fence.check("db", 5),
            FenceOutcome::Accepted {
                advanced: true,
                highest: 5
            }
        );
        assert_eq!(
            fence.check("db", 5),
            FenceOutcome::Accepted {
                advanced: false,
                highest: 5
            }
        );
        assert_eq!(fence.check("db", 4), FenceOutcome::Rejected { highest: 5 });
        assert_eq!(
            fence.check("other", 1),
            FenceOutcome::Accepted {
                advanced: true,
                highest: 1
            }
        );
        assert_eq!(fence.highest("db"), 5);
        assert_eq!(fence.highest("none"), 0);
    }

    #[test]
    fn mark_is_atomic_across_threads() {
        let mark = std::sync::Arc::new(FenceMark::new(0));
        let handles: std::vec::Vec<_> = (0..4u64)
            .map(|t| {
                let mark = mark.clone();
                std::thread::spawn(move || {
                    let mut accepted = 0u64;
                    for i in 0..10_000u64 {
                        let token = i * 4 + t;
                        if mark.check(token).is_accepted() {
                            accepted += 1;
                        }
                    }
                    accepted
                })
            })
            .collect();
        let accepted: u64 = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
        // 39_999 is the largest token offered: fetch_max must end there whatever the interleaving.
        assert_eq!(mark.highest(), 39_999);
        assert!(accepted >= 1);
        assert_eq!(
            mark.check(39_998),
            FenceOutcome::Rejected { highest: 39_999 }
        );
    }

    #[test]
    fn file_and_marks_list_resources_in_name_order() {
        // Few marks are sorted in place, many through the shared sort: both must give name order.
        for count in [3u64, 40] {
            let mut fence = Fence::new();
            for i in (0..count).rev() {
                let resource = std::format!("r{:03}", (i * 7) % count);
                fence.check(&resource, i + 1);
            }
            let names: std::vec::Vec<&str> = fence.marks().map(|(name, _)| name).collect();
            let mut sorted = names.clone();
            sorted.sort_unstable();
            assert_eq!(names, sorted);
            assert_eq!(names.len() as u64, count);
            let file = std::string::String::from_utf8(fence.encode()).unwrap_or_default();
            let positions: std::vec::Vec<usize> =
                names.iter().filter_map(|name| file.find(name)).collect();
            assert!(
                positions.windows(2).all(|pair| pair.first() < pair.last()),
                "{file}"
            );
            let decoded = Fence::decode(&fence.encode()).map_err(|e| e.reason);
            assert_eq!(decoded.map(|f| f.encode()), Ok(fence.encode()));
        }
    }

    #[test]
    fn shared_fence_matches_fence() {
        let shared = SharedFence::new();
        assert!(shared.check("r", 3).is_accepted());
        assert_eq!(shared.check("r", 2), FenceOutcome::Rejected { highest: 3 });
        shared.restore("q", 9);
        assert_eq!(shared.marks(), std::vec![("q".into(), 9), ("r".into(), 3)]);
    }
}
