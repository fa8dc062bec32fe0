//! Text of `INFO` and `CLIENT INFO|LIST`, in Redis style (`key:value` lines under `# Section`).

use alloc::string::String;
use core::fmt::Write;

use super::connection::Connection;
use super::reply::RespVersion;
use super::{ConnId, ServerConfig};
use crate::{Engine, Instant, MAX_TOKEN};

/// Server-wide facts `INFO` reports beside the engine's.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Facts {
    pub(crate) uptime_ms: u64,
    pub(crate) test_clock: bool,
    pub(crate) connected_clients: usize,
    pub(crate) blocked_clients: usize,
    pub(crate) max_clients: usize,
    pub(crate) counters: Counters,
    /// Authentication: required, users configured, failed attempts, audit events dropped.
    pub(crate) auth: (bool, usize, u64, u64),
}

/// Counters the server keeps about its connections.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counters {
    pub(crate) connections_received: u64,
    pub(crate) rejected_connections: u64,
    pub(crate) commands_processed: u64,
    pub(crate) protocol_errors: u64,
    pub(crate) output_limit_closes: u64,
    /// Acquires that blocked their connection to wait (metrics only, not in INFO).
    pub(crate) waits_started: u64,
}

/// Returns the INFO text for `section` (lowercase; empty, `all`, `default` or `everything`
/// for all sections); an unknown section gives an empty text, as in Redis.
pub(crate) fn info_text(
    section: &str,
    engine: &Engine,
    config: &ServerConfig,
    facts: &Facts,
    now: Instant,
) -> String {
    let all = matches!(section, "" | "all" | "default" | "everything");
    let wanted = |name: &str| all || section == name;
    let mut text = String::new();
    // Writing to a String cannot fail, so the fmt results are ignored.
    if wanted("server") {
        let _ = write!(
            text,
            "# Server\r\nfencelock_version:{}\r\nmode:standalone\r\nuptime_in_seconds:{}\r\ntest_clock:{}\r\nloading:0\r\nrestart_grace_ms_left:{}\r\nrestart_grace_ms:{}\r\nrestart_grace_case:{}\r\nlease_horizon_ms_left:{}\r\nmax_ttl_ms:{}\r\n",
            super::admin::VERSION,
            facts.uptime_ms / 1000,
            u8::from(facts.test_clock),
            engine.grace_left(now),
            engine.grace_ms(),
            engine.grace_case().as_str(),
            // -1: no horizon is kept (the host gave no boot clock).
            engine
                .horizon_ms_left(now)
                .map_or(-1, |ms| i64::try_from(ms).unwrap_or(i64::MAX)),
            engine.config().max_ttl_ms,
        );
    }
    if wanted("clients") {
        separate(&mut text);
        let _ = write!(
            text,
            "# Clients\r\nconnected_clients:{}\r\nblocked_clients:{}\r\nmaxclients:{}\r\n",
            facts.connected_clients, facts.blocked_clients, facts.max_clients,
        );
    }
    if wanted("stats") {
        let stats = engine.stats();
        let counters = &facts.counters;
        separate(&mut text);
        let _ = write!(
            text,
            "# Stats\r\ntotal_connections_received:{}\r\nrejected_connections:{}\r\ntotal_commands_processed:{}\r\nprotocol_errors:{}\r\noutput_limit_disconnections:{}\r\n",
            counters.connections_received,
            counters.rejected_connections,
            counters.commands_processed,
            counters.protocol_errors,
            counters.output_limit_closes,
        );
        lines(&mut text, stats.counters());
    }
    if wanted("auth") {
        let (required, users, failures, dropped) = facts.auth;
        separate(&mut text);
        let _ = write!(
            text,
            "# Auth\r\nauth_required:{}\r\nusers:{users}\r\nauth_failures:{failures}\r\naudit_events_dropped:{dropped}\r\n",
            u8::from(required),
        );
    }
    if wanted("locks") {
        separate(&mut text);
        let _ = write!(
            text,
            "# Locks\r\nlive_locks:{}\r\nlive_leases:{}\r\nwaiting:{}\r\n",
            engine.live_locks(),
            engine.live_leases(),
            engine.waiting(),
        );
    }
    if wanted("tokens") {
        separate(&mut text);
        let _ = write!(
            text,
            "# Tokens\r\nlast_token:{}\r\ntoken_ceiling:{}\r\nmax_token:{MAX_TOKEN}\r\n",
            engine.last_token(),
            engine.token_ceiling(),
        );
    }
    if wanted("config") {
        separate(&mut text);
        text.push_str("# Config\r\n");
        lines(&mut text, engine.config().settings());
        lines(&mut text, config.settings());
    }
    text
}

/// Appends one `name:value` line per pair.
fn lines(text: &mut String, pairs: impl Iterator<Item = (&'static str, u64)>) {
    for (name, value) in pairs {
        let _ = write!(text, "{name}:{value}\r\n");
    }
}

/// Returns one `CLIENT INFO` / `CLIENT LIST` line, newline included.
pub(crate) fn client_line(id: ConnId, conn: &Connection, now: Instant) -> String {
    let mut line = String::new();
    let _ = writeln!(
        line,
        "id={id} name={} age={} resp={} blocked={} lib-name={} lib-ver={}",
        conn.name.as_deref().unwrap_or(""),
        now.ms_since(conn.connected_at) / 1000,
        if conn.version == RespVersion::Resp3 {
            3
        } else {
            2
        },
        u8::from(conn.blocked.is_some()),
        conn.lib_name.as_deref().unwrap_or(""),
        conn.lib_version.as_deref().unwrap_or(""),
    );
    line
}

fn separate(text: &mut String) {
    if !text.is_empty() {
        text.push_str("\r\n");
    }
}
