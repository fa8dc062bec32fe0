//! Audit events: what a security log must record (failed authentications, steals), rendered
//! here as one text line and one JSON object, so every host logs the same line.

use alloc::string::String;
use alloc::vec::Vec;

use super::ConnId;
use crate::json::ObjectWriter;
use crate::text::Text;

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
        let line = Text::new("audit ").str(self.kind());
        match self {
            AuditEvent::AuthFailed {
                conn,
                user,
                failures,
                closed,
            } => line
                .str(" conn=")
                .num(*conn)
                .str(" user=")
                .str(&quoted(user))
                .str(" failures=")
                .num(*failures)
                .str(" closed=")
                .str(if *closed { "true" } else { "false" })
                .into(),
            AuditEvent::Stolen {
                conn,
                user,
                name,
                token,
                owner,
                holder_conn,
                by_token,
            } => line
                .str(" conn=")
                .num(*conn)
                .str(" user=")
                .str(&user.as_deref().map_or(String::from("-"), quoted))
                .str(" lock=")
                .str(&quoted(&label(name.as_bytes())))
                .str(" token=")
                .num(*token)
                .str(" owner=")
                .str(
                    &owner
                        .as_deref()
                        .map_or(String::from("-"), |o| quoted(&label(o.as_bytes()))),
                )
                .str(" holder_conn=")
                .num(*holder_conn)
                .str(" by_token=")
                .num(*by_token)
                .into(),
        }
    }

    /// Returns the event as a JSON object: `{"audit": kind, ...fields}`, keys in name order.
    #[must_use]
    pub fn to_json(&self) -> String {
        let mut out = Vec::new();
        let mut object = ObjectWriter::begin(&mut out);
        object.text("audit", self.kind());
        match self {
            AuditEvent::AuthFailed {
                conn,
                user,
                failures,
                closed,
            } => {
                object
                    .boolean("closed", *closed)
                    .number("conn", *conn)
                    .number("failures", u64::from(*failures))
                    .text("user", user);
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
                object
                    .number("by_token", *by_token)
                    .number("conn", *conn)
                    .number("holder_conn", *holder_conn)
                    .text("lock", name)
                    .opt_text("owner", owner.as_deref())
                    .number("token", *token)
                    .opt_text("user", user.as_deref());
            }
        }
        object.end();
        // Only strings were written, whole, between ASCII punctuation.
        String::from_utf8(out).unwrap_or_default()
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_have_their_keys_in_name_order() {
        let failed = AuditEvent::AuthFailed {
            conn: 3,
            user: String::from("r\"oot"),
            failures: 5,
            closed: true,
        };
        assert_eq!(
            failed.to_json(),
            r#"{"audit":"auth_failed","closed":true,"conn":3,"failures":5,"user":"r\"oot"}"#
        );
        assert_eq!(
            failed.to_text(),
            r#"audit auth_failed conn=3 user="r\"oot" failures=5 closed=true"#
        );
        let stolen = AuditEvent::Stolen {
            conn: 2,
            user: None,
            name: String::from("jobs/1"),
            token: 1,
            owner: Some(String::from("tab 1")),
            holder_conn: 1,
            by_token: 2,
        };
        assert_eq!(
            stolen.to_json(),
            r#"{"audit":"stolen","by_token":2,"conn":2,"holder_conn":1,"lock":"jobs/1","owner":"tab 1","token":1,"user":null}"#
        );
        assert_eq!(
            stolen.to_text(),
            r#"audit stolen conn=2 user=- lock=jobs/1 token=1 owner="tab 1" holder_conn=1 by_token=2"#
        );
    }
}
