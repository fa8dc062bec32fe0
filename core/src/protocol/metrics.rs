//! The Prometheus text exposition (format 0.0.4) of the server's counters, rendered here so
//! that every host serves the same names, types and labels; a host only serves the bytes
//! over HTTP and feeds in what only it can measure (how long a durable write took).

use alloc::string::String;
use core::fmt::Write;

use super::info::Facts;
use crate::{Engine, Instant};

/// The error codes counted by name; any other first word of an error reply counts as `OTHER`,
/// so that the label set stays small and fixed whatever a reply says.
const ERROR_CODES: [&str; 14] = [
    "ERR",
    "LOCKED",
    "STALE",
    "EXPIRED",
    "TIMEOUT",
    "NOTREADY",
    "LIMIT",
    "EXHAUSTED",
    "INTERNAL",
    "NOPROTO",
    "NOAUTH",
    "NOPERM",
    "WRONGPASS",
    "OTHER",
];

/// Error replies counted by their code (the first word of the reply).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorTally {
    counts: [u64; ERROR_CODES.len()],
}

impl ErrorTally {
    /// Counts one error reply whose text starts with its code (`LOCKED ...`).
    pub fn count(&mut self, text: &str) {
        let code = text.split(' ').next().unwrap_or_default();
        let slot = ERROR_CODES
            .iter()
            .position(|known| *known == code)
            .unwrap_or(ERROR_CODES.len() - 1);
        if let Some(count) = self.counts.get_mut(slot) {
            *count = count.saturating_add(1);
        }
    }

    /// Adds every count of `other` to this tally.
    pub fn add(&mut self, other: &ErrorTally) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine = mine.saturating_add(theirs);
        }
    }

    /// Returns every code with its count, in a fixed order (zeros included).
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        ERROR_CODES.iter().copied().zip(self.counts.iter().copied())
    }
}

/// Upper bounds of the persist-latency histogram's buckets, in microseconds (`+Inf` follows).
pub const PERSIST_BUCKETS_MICROS: [u64; 16] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// How long the host's durable writes (write, fsync, rename, fsync of the directory) took.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PersistHistogram {
    /// Writes at or under each bound of [`PERSIST_BUCKETS_MICROS`] (not cumulative).
    buckets: [u64; PERSIST_BUCKETS_MICROS.len()],
    count: u64,
    sum_micros: u64,
}

impl PersistHistogram {
    /// Records one durable write that took `micros` microseconds.
    pub fn record(&mut self, micros: u64) {
        self.count = self.count.saturating_add(1);
        self.sum_micros = self.sum_micros.saturating_add(micros);
        if let Some(slot) = PERSIST_BUCKETS_MICROS
            .iter()
            .position(|&bound| micros <= bound)
            .and_then(|at| self.buckets.get_mut(at))
        {
            *slot = slot.saturating_add(1);
        }
    }

    /// Returns how many writes were recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// What the metrics text is made of, beyond the engine.
pub(crate) struct Sample<'a> {
    pub(crate) facts: &'a Facts,
    pub(crate) errors: &'a ErrorTally,
    pub(crate) persist: &'a PersistHistogram,
}

/// The engine's counters: (field of `Stats`, metric name, help).
const ENGINE_COUNTERS: &[(&str, &str, &str)] = &[
    (
        "acquires",
        "fencelock_acquires_total",
        "Acquire requests that passed validation.",
    ),
    (
        "grants",
        "fencelock_grants_total",
        "Leases granted, at once or after a wait.",
    ),
    (
        "grants_after_wait",
        "fencelock_grants_after_wait_total",
        "Leases granted to a queued request.",
    ),
    (
        "releases",
        "fencelock_releases_total",
        "Leases released, by a request or by a disconnect.",
    ),
    ("renewals", "fencelock_renewals_total", "Leases renewed."),
    (
        "expiries",
        "fencelock_expiries_total",
        "Leases that reached their deadline.",
    ),
    (
        "steals",
        "fencelock_steals_total",
        "Acquires that took a held lock with STEAL.",
    ),
    (
        "stale_rejections",
        "fencelock_stale_rejections_total",
        "Requests refused with STALE or EXPIRED.",
    ),
    (
        "wait_timeouts",
        "fencelock_wait_timeouts_total",
        "Queued acquires that ran out of time.",
    ),
    (
        "horizon_writes",
        "fencelock_horizon_writes_total",
        "Lease horizons handed to the host to persist.",
    ),
];

/// Renders the whole exposition text.
pub(crate) fn metrics_text(engine: &Engine, sample: &Sample<'_>, now: Instant) -> String {
    let mut text = String::new();
    let facts = sample.facts;
    let counters = &facts.counters;
    let _ = write!(
        text,
        "# HELP fencelock_build_info The fencelock version serving.\n# TYPE fencelock_build_info gauge\nfencelock_build_info{{version=\"{}\"}} 1\n",
        super::admin::VERSION,
    );
    let stats = engine.stats();
    for (field, value) in stats.counters() {
        if field == "total_wait_ms" {
            family(
                &mut text,
                "fencelock_wait_seconds_total",
                "counter",
                "Time queued acquires waited before their grant, summed.",
            );
            let _ = writeln!(
                text,
                "fencelock_wait_seconds_total {}",
                Seconds(value.saturating_mul(1000))
            );
            continue;
        }
        let (name, help) = ENGINE_COUNTERS
            .iter()
            .find(|(known, _, _)| *known == field)
            .map_or((None, "An engine counter."), |(_, name, help)| {
                (Some(*name), *help)
            });
        match name {
            Some(name) => counter(&mut text, name, help, value),
            None => {
                // A counter added to the engine after this table: still exported.
                let name = alloc::format!("fencelock_{field}_total");
                counter(&mut text, &name, help, value);
            }
        }
    }
    counter(
        &mut text,
        "fencelock_waits_total",
        "Acquires that queued to wait for a lock.",
        counters.waits_started,
    );
    counter(
        &mut text,
        "fencelock_connections_received_total",
        "Connections accepted.",
        counters.connections_received,
    );
    counter(
        &mut text,
        "fencelock_connections_rejected_total",
        "Connections refused over the connection cap.",
        counters.rejected_connections,
    );
    counter(
        &mut text,
        "fencelock_commands_total",
        "Requests run.",
        counters.commands_processed,
    );
    counter(
        &mut text,
        "fencelock_protocol_errors_total",
        "Connections closed for a protocol error.",
        counters.protocol_errors,
    );
    counter(
        &mut text,
        "fencelock_output_limit_closes_total",
        "Connections closed for not reading their replies.",
        counters.output_limit_closes,
    );
    family(
        &mut text,
        "fencelock_errors_total",
        "counter",
        "Error replies sent, by code.",
    );
    for (code, count) in sample.errors.counts() {
        let _ = writeln!(text, "fencelock_errors_total{{code=\"{code}\"}} {count}");
    }
    gauge(
        &mut text,
        "fencelock_connections",
        "Connections open.",
        as_u64(facts.connected_clients),
    );
    gauge(
        &mut text,
        "fencelock_blocked_connections",
        "Connections blocked on a queued acquire.",
        as_u64(facts.blocked_clients),
    );
    gauge(
        &mut text,
        "fencelock_max_connections",
        "The connection cap.",
        as_u64(facts.max_clients),
    );
    gauge(
        &mut text,
        "fencelock_live_locks",
        "Locks with a holder, a waiter or a lock-delay.",
        as_u64(engine.live_locks()),
    );
    gauge(
        &mut text,
        "fencelock_live_leases",
        "Leases held.",
        as_u64(engine.live_leases()),
    );
    gauge(
        &mut text,
        "fencelock_waiters",
        "Acquires queued for a lock.",
        as_u64(engine.waiting()),
    );
    gauge(
        &mut text,
        "fencelock_last_token",
        "The last fencing token issued.",
        engine.last_token(),
    );
    gauge(
        &mut text,
        "fencelock_token_ceiling",
        "The durable token ceiling: no token above it is issued before it is raised.",
        engine.token_ceiling(),
    );
    family(
        &mut text,
        "fencelock_restart_grace_seconds_left",
        "gauge",
        "Time left of the restart grace after a crash (nothing is granted until 0).",
    );
    let _ = writeln!(
        text,
        "fencelock_restart_grace_seconds_left {}",
        Seconds(engine.grace_left(now).saturating_mul(1000))
    );
    family(
        &mut text,
        "fencelock_uptime_seconds",
        "gauge",
        "Time since the server started.",
    );
    let _ = writeln!(
        text,
        "fencelock_uptime_seconds {}",
        Seconds(facts.uptime_ms.saturating_mul(1000))
    );
    histogram(&mut text, sample.persist);
    text
}

fn family(text: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

fn counter(text: &mut String, name: &str, help: &str, value: u64) {
    family(text, name, "counter", help);
    let _ = writeln!(text, "{name} {value}");
}

fn gauge(text: &mut String, name: &str, help: &str, value: u64) {
    family(text, name, "gauge", help);
    let _ = writeln!(text, "{name} {value}");
}

fn histogram(text: &mut String, persist: &PersistHistogram) {
    let name = "fencelock_persist_duration_seconds";
    family(
        text,
        name,
        "histogram",
        "Time the host took to make a data-directory change durable (write, fsync, rename, fsync).",
    );
    let mut cumulative: u64 = 0;
    for (bound, count) in PERSIST_BUCKETS_MICROS.iter().zip(persist.buckets) {
        cumulative = cumulative.saturating_add(count);
        let _ = writeln!(
            text,
            "{name}_bucket{{le=\"{}\"}} {cumulative}",
            Seconds(*bound)
        );
    }
    let _ = writeln!(text, "{name}_bucket{{le=\"+Inf\"}} {}", persist.count);
    let _ = writeln!(text, "{name}_sum {}", Seconds(persist.sum_micros));
    let _ = writeln!(text, "{name}_count {}", persist.count);
}

fn as_u64(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// Microseconds written as decimal seconds with no trailing zeros (`2500000` is `2.5`), exact
/// and without floating point.
struct Seconds(u64);

impl core::fmt::Display for Seconds {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let whole = self.0 / 1_000_000;
        let mut fraction = self.0 % 1_000_000;
        if fraction == 0 {
            return write!(formatter, "{whole}");
        }
        let mut digits = 6;
        while fraction % 10 == 0 {
            fraction /= 10;
            digits -= 1;
        }
        write!(formatter, "{whole}.{fraction:0digits$}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn seconds_are_exact_decimals() {
        assert_eq!(Seconds(100).to_string(), "0.0001");
        assert_eq!(Seconds(2_500_000).to_string(), "2.5");
        assert_eq!(Seconds(1_000_000).to_string(), "1");
        assert_eq!(Seconds(0).to_string(), "0");
        assert_eq!(Seconds(1_234_567).to_string(), "1.234567");
    }

    #[test]
    fn errors_count_by_code_and_unknown_codes_share_one_label() {
        let mut tally = ErrorTally::default();
        tally.count("LOCKED held");
        tally.count("LOCKED held");
        tally.count("ERR unknown command");
        tally.count("WHATEVER you say");
        tally.count("");
        let counts: alloc::vec::Vec<_> = tally.counts().filter(|(_, n)| *n > 0).collect();
        assert_eq!(counts, [("ERR", 1), ("LOCKED", 2), ("OTHER", 2)]);
    }

    #[test]
    fn every_engine_counter_has_a_named_metric() {
        for (field, _) in crate::Stats::default().counters() {
            assert!(
                field == "total_wait_ms"
                    || ENGINE_COUNTERS.iter().any(|(known, _, _)| *known == field),
                "{field} has no metric name"
            );
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut persist = PersistHistogram::default();
        persist.record(50);
        persist.record(3_000);
        persist.record(60_000_000);
        let mut text = String::new();
        histogram(&mut text, &persist);
        assert!(text.contains("fencelock_persist_duration_seconds_bucket{le=\"0.0001\"} 1\n"));
        assert!(text.contains("fencelock_persist_duration_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("fencelock_persist_duration_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.contains("fencelock_persist_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("fencelock_persist_duration_seconds_sum 60.00305\n"));
        assert!(text.contains("fencelock_persist_duration_seconds_count 3\n"));
    }
}
