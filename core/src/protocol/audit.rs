//! Audit events: what a security log must record (failed authentications, steals), rendered
//! here as one text line and one JSON object, so every host logs the same line.

use alloc::string::{String, ToString};
use core::fmt::Write;

use super::ConnId;

/// Something an operator must be able to find in the log, polled with
/// [`Server::poll_audit`](super::Server::poll_audit). Never carries a password.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditEvent {
    /// `AUTH` or `HELLO ... AUTH` failed on a connection.
    AuthFailed {
        /// The connection.
        conn: ConnId,
        /// The user name it gave (control characters replaced, at most 64 characters).
        user: String,
        /// Failures on this connection so far.
        failures: u32,
        /// True when this failure reached the limit and the connection is being closed.
        closed: bool,
    },
    /// `ACQUIRE ... STEAL` took a lock from its holder.
    Stolen {
        /// The connection that stole.
        conn: ConnId,
        /// Its authenticated user, if authentication is on.
        user: Option<String>,
        /// The lock.
        name: String,
        /// The token of the lease taken away.
        token: u64,
        /// The owner label of that lease, if any.
        owner: Option<String>,
        /// The connection that held it (0: none, e.g. restored from a snapshot).
        holder_conn: ConnId,
        /// The stealer's new token.
        by_token: u64,
    },
}

impl AuditEvent {
    /// Returns the event's name: `auth_failed` or `stolen`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            AuditEvent::AuthFailed { .. } => "auth_failed",
            AuditEvent::Stolen { .. } => "stolen",
        }
    }

    /// Returns the event as one line of `key=value` words, values quoted where needed.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut line = String::from("audit ");
        line.push_str(self.kind());
        // Writing to a String cannot fail.
        match self {
            AuditEvent::AuthFailed {
                conn,
                user,
                failures,
                closed,
            } => {
                let _ = write!(
                    line,
                    " conn={conn} user={} failures={failures} closed={closed}",
                    quoted(user)
                );
            }
            AuditEvent::Stolen {
                conn,
                user,
                name,
                token,
                owner,
                holder_conn,
                by_token,
            } => {
                let _ = write!(
                    line,
                    " conn={conn} user={} lock={} token={token} owner={} holder_conn={holder_conn} by_token={by_token}",
                    user.as_deref().map_or(String::from("-"), quoted),
                    quoted(&label(name.as_bytes())),
                    owner.as_deref().map_or(String::from("-"), |o| quoted(&label(o.as_bytes()))),
                );
            }
        }
        line
    }

    /// Returns the event as a JSON object: `{"audit": kind, ...fields}`.
    #[must_use]
    pub fn to_json(&self) -> String {
        let value = match self {
            AuditEvent::AuthFailed {
                conn,
                user,
                failures,
                closed,
            } => serde_json::json!({
                "audit": self.kind(), "conn": conn, "user": user,
                "failures": failures, "closed": closed,
            }),
            AuditEvent::Stolen {
                conn,
                user,
                name,
                token,
                owner,
                holder_conn,
                by_token,
            } => serde_json::json!({
                "audit": self.kind(), "conn": conn, "user": user, "lock": name,
                "token": token, "owner": owner, "holder_conn": holder_conn, "by_token": by_token,
            }),
        };
        value.to_string()
    }
}

/// Returns client-supplied bytes fit for a log: control characters replaced, at most 64
/// characters.
pub(crate) fn label(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(64)
        .map(|ch| if ch.is_control() { '?' } else { ch })
        .collect()
}

/// Quotes a value for the text line when it is empty or holds spaces, quotes or backslashes.
fn quoted(value: &str) -> String {
    if !value.is_empty() && !value.contains([' ', '"', '\\', '=']) {
        return String::from(value);
    }
    let mut text = String::from("\"");
    for ch in value.chars() {
        if ch == '"' || ch == '\\' {
            text.push('\\');
        }
        text.push(ch);
    }
    text.push('"');
    text
}
