//! Text of `INFO` and `CLIENT INFO|LIST`, in Redis style (`key:value` lines under `# Section`).

use alloc::string::String;

use super::connection::Connection;
use super::reply::RespVersion;
use super::{ConnId, ServerConfig};
use crate::text::Text;
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
    if wanted("server") {
        text.push_str("# Server\r\n");
        line(&mut text, "fencelock_version", super::admin::VERSION);
        line(&mut text, "mode", "standalone");
        number(&mut text, "uptime_in_seconds", facts.uptime_ms / 1000);
        number(&mut text, "test_clock", u8::from(facts.test_clock));
        number(&mut text, "loading", 0u8);
        number(&mut text, "restart_grace_ms_left", engine.grace_left(now));
        number(&mut text, "restart_grace_ms", engine.grace_ms());
        line(
            &mut text,
            "restart_grace_case",
            engine.grace_case().as_str(),
        );
        // -1: no horizon is kept (the host gave no boot clock).
        let horizon = engine
            .horizon_ms_left(now)
            .map_or(-1, |ms| i64::try_from(ms).unwrap_or(i64::MAX));
        number(&mut text, "lease_horizon_ms_left", horizon);
        number(&mut text, "max_ttl_ms", engine.config().max_ttl_ms);
    }
    if wanted("clients") {
        separate(&mut text);
        text.push_str("# Clients\r\n");
        number(&mut text, "connected_clients", facts.connected_clients);
        number(&mut text, "blocked_clients", facts.blocked_clients);
        number(&mut text, "maxclients", facts.max_clients);
    }
    if wanted("stats") {
        let stats = engine.stats();
        let counters = &facts.counters;
        separate(&mut text);
        text.push_str("# Stats\r\n");
        number(
            &mut text,
            "total_connections_received",
            counters.connections_received,
        );
        number(
            &mut text,
            "rejected_connections",
            counters.rejected_connections,
        );
        number(
            &mut text,
            "total_commands_processed",
            counters.commands_processed,
        );
        number(&mut text, "protocol_errors", counters.protocol_errors);
        number(
            &mut text,
            "output_limit_disconnections",
            counters.output_limit_closes,
        );
        lines(&mut text, stats.counters());
    }
    if wanted("auth") {
        let (required, users, failures, dropped) = facts.auth;
        separate(&mut text);
        text.push_str("# Auth\r\n");
        number(&mut text, "auth_required", u8::from(required));
        number(&mut text, "users", users);
        number(&mut text, "auth_failures", failures);
        number(&mut text, "audit_events_dropped", dropped);
    }
    if wanted("locks") {
        separate(&mut text);
        text.push_str("# Locks\r\n");
        number(&mut text, "live_locks", engine.live_locks());
        number(&mut text, "live_leases", engine.live_leases());
        number(&mut text, "waiting", engine.waiting());
    }
    if wanted("tokens") {
        separate(&mut text);
        text.push_str("# Tokens\r\n");
        number(&mut text, "last_token", engine.last_token());
        number(&mut text, "token_ceiling", engine.token_ceiling());
        number(&mut text, "max_token", MAX_TOKEN);
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
        number(text, name, value);
    }
}

/// Appends the line `name:value`.
fn line(text: &mut String, name: &str, value: &str) {
    text.push_str(name);
    text.push(':');
    text.push_str(value);
    text.push_str("\r\n");
}

/// Appends the line `name:value` for a number (written without `core::fmt`).
fn number(text: &mut String, name: &str, value: impl itoa::Integer) {
    line(text, name, itoa::Buffer::new().format(value));
}

/// Returns one `CLIENT INFO` / `CLIENT LIST` line, newline included.
pub(crate) fn client_line(id: ConnId, conn: &Connection, now: Instant) -> String {
    let resp: u8 = if conn.version == RespVersion::Resp3 {
        3
    } else {
        2
    };
    Text::new("id=")
        .num(id)
        .str(" name=")
        .str(conn.name.as_deref().unwrap_or(""))
        .str(" age=")
        .num(now.ms_since(conn.connected_at) / 1000)
        .str(" resp=")
        .num(resp)
        .str(" blocked=")
        .num(u8::from(conn.blocked.is_some()))
        .str(" lib-name=")
        .str(conn.lib_name.as_deref().unwrap_or(""))
        .str(" lib-ver=")
        .str(conn.lib_version.as_deref().unwrap_or(""))
        .str("\n")
        .into()
}

fn separate(text: &mut String) {
    if !text.is_empty() {
        text.push_str("\r\n");
    }
}
