//! What both simulations share: the last lines of a run kept for a failure report, the
//! replay that fills them, and the timer rule every host relies on.

use std::collections::VecDeque;

use fencelock_core::Instant;

use crate::sim::{Options, Outcome, Violation};

/// The last lines of a run's events, each stamped with its simulated time.
pub(crate) struct Trace {
    len: usize,
    lines: VecDeque<String>,
}

impl Trace {
    /// Keeps the last `len` lines (none for 0).
    pub(crate) fn new(len: usize) -> Trace {
        Trace {
            len,
            lines: VecDeque::new(),
        }
    }

    pub(crate) fn push(&mut self, now: u64, line: &str) {
        if self.len == 0 {
            return;
        }
        if self.lines.len() >= self.len {
            self.lines.pop_front();
        }
        self.lines.push_back(format!("[{now:>9}] {line}"));
    }

    /// A broken check at `now`, with the lines before it.
    pub(crate) fn violation(&self, now: u64, message: String) -> Violation {
        Violation {
            at_ms: now,
            message,
            trace: self.lines.iter().cloned().collect(),
        }
    }
}

/// Runs a seed untraced, and once more traced if it failed: a run is a function of its
/// options, so trace lines cost nothing on passing runs.
pub(crate) fn replayed(options: &Options, run_once: fn(&Options, bool) -> Outcome) -> Outcome {
    let outcome = run_once(options, false);
    if outcome.violation.is_some() && options.trace_len > 0 {
        return run_once(options, true);
    }
    outcome
}

/// docs/HOSTS.md, "Timers": a `handle_timeout` at or after the instant `poll_timeout` asked
/// for makes progress, and the next instant is later (or none). One at or before the call
/// would have the host call again at once, for ever: returns what is wrong, if so.
pub(crate) fn stuck_timer(who: &str, now: Instant, next: Option<Instant>) -> Option<String> {
    let next = next.filter(|&next| next <= now)?;
    Some(format!(
        "{who} asks for its timer at {} ms right after handle_timeout at {} ms: its host would call it again at once",
        next.as_ms(),
        now.as_ms()
    ))
}
