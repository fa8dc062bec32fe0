//! The one error type of fencelock, with stable codes shared by every host and the wire.

use crate::text::Text;
use alloc::borrow::Cow;
use alloc::string::String;
use core::fmt;

/// Stable machine-readable error codes; on the wire an error reply starts with one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The lock is held (or in lock-delay) and the caller did not wait.
    Locked,
    /// The token is not a live lease of that lock: released, superseded, stolen or unknown.
    Stale,
    /// The token's lease lapsed.
    Expired,
    /// The wait ran out before the lock was granted.
    Timeout,
    /// The server restarted after a crash and grants nothing until the restart grace ends.
    NotReady,
    /// A configured limit (waiters, locks, holders) was reached.
    Limit,
    /// The token sequence reached 2^53-1; no further token can be issued.
    Exhausted,
    /// The request itself is malformed (names, numbers, TTL bounds, syntax).
    BadRequest,
    /// The server requires authentication and this connection has not authenticated.
    NoAuth,
    /// The authenticated user's rules do not allow the command; the message names the rule.
    NoPerm,
    /// `AUTH` or `HELLO ... AUTH` named an unknown user or a wrong password.
    WrongPass,
    /// Client side: the connection ended before the reply arrived; the request may or may
    /// not have been applied.
    ConnectionLost,
    /// Client side: the peer sent bytes that are not RESP, or a reply of the wrong shape.
    Protocol,
    /// An error reply whose code fencelock does not know (another RESP server, a newer one).
    Other,
    /// A state the code rules out was reached: a bug in fencelock, never the caller's fault.
    Internal,
}

impl ErrorCode {
    /// Returns the code as sent on the wire and shown to users.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Locked => "LOCKED",
            ErrorCode::Stale => "STALE",
            ErrorCode::Expired => "EXPIRED",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::NotReady => "NOTREADY",
            ErrorCode::Limit => "LIMIT",
            ErrorCode::Exhausted => "EXHAUSTED",
            // Redis clients and users know `ERR` as "your request was wrong".
            ErrorCode::BadRequest => "ERR",
            ErrorCode::NoAuth => "NOAUTH",
            ErrorCode::NoPerm => "NOPERM",
            ErrorCode::WrongPass => "WRONGPASS",
            ErrorCode::ConnectionLost => "CONNECTION",
            ErrorCode::Protocol => "PROTOCOL",
            ErrorCode::Other => "ERROR",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    /// Parses a code as produced by [`ErrorCode::as_str`].
    #[must_use]
    pub fn from_str_code(code: &str) -> Option<ErrorCode> {
        Some(match code {
            "LOCKED" => ErrorCode::Locked,
            "STALE" => ErrorCode::Stale,
            "EXPIRED" => ErrorCode::Expired,
            "TIMEOUT" => ErrorCode::Timeout,
            "NOTREADY" => ErrorCode::NotReady,
            "LIMIT" => ErrorCode::Limit,
            "EXHAUSTED" => ErrorCode::Exhausted,
            "ERR" | "BADREQ" => ErrorCode::BadRequest,
            "NOAUTH" => ErrorCode::NoAuth,
            "NOPERM" => ErrorCode::NoPerm,
            "WRONGPASS" => ErrorCode::WrongPass,
            "CONNECTION" => ErrorCode::ConnectionLost,
            "PROTOCOL" => ErrorCode::Protocol,
            "INTERNAL" => ErrorCode::Internal,
            _ => return None,
        })
    }
}

/// Everything that can go wrong in a lock operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The lock is held and the caller did not wait.
    Locked {
        /// Time until the last current lease ends (or the lock-delay ends), in ms.
        ms_left: u64,
    },
    /// The token is not a live lease of the lock.
    Stale {
        /// The token the caller named.
        token: u64,
    },
    /// The token's lease lapsed.
    Expired {
        /// The token the caller named.
        token: u64,
    },
    /// The wait ran out.
    Timeout {
        /// How long the request waited, in ms.
        waited_ms: u64,
    },
    /// Restart grace after a crash.
    NotReady {
        /// Time until grants resume, in ms.
        ms_left: u64,
    },
    /// A limit was reached; the message names it.
    Limit(Cow<'static, str>),
    /// No token above 2^53-1 can be issued.
    Exhausted,
    /// The request is malformed; the message says how.
    BadRequest(String),
    /// The connection must authenticate first; the message says how.
    NoAuth(String),
    /// The user's rules do not allow the command; the message names the user and the rule.
    NoPerm(String),
    /// Authentication failed: unknown user or wrong password (never said which).
    WrongPass(String),
    /// Client side: the connection ended before the reply arrived; the message says how.
    ConnectionLost(String),
    /// Client side: the peer broke the protocol; the message says how.
    Protocol(String),
    /// An error reply with a code fencelock does not know, kept as the server sent it.
    Reply {
        /// The first word of the error reply (`NOAUTH`, `WRONGTYPE`, ...).
        code: String,
        /// The rest of the reply.
        message: String,
    },
    /// A state the code rules out was reached: a bug in fencelock, never the caller's fault.
    /// Debug builds stop at the point of detection instead of returning it.
    Internal(&'static str),
}

impl Error {
    /// Returns the stable code of this error.
    #[must_use]
    pub const fn code(&self) -> ErrorCode {
        match self {
            Error::Locked { .. } => ErrorCode::Locked,
            Error::Stale { .. } => ErrorCode::Stale,
            Error::Expired { .. } => ErrorCode::Expired,
            Error::Timeout { .. } => ErrorCode::Timeout,
            Error::NotReady { .. } => ErrorCode::NotReady,
            Error::Limit(_) => ErrorCode::Limit,
            Error::Exhausted => ErrorCode::Exhausted,
            Error::BadRequest(_) => ErrorCode::BadRequest,
            Error::NoAuth(_) => ErrorCode::NoAuth,
            Error::NoPerm(_) => ErrorCode::NoPerm,
            Error::WrongPass(_) => ErrorCode::WrongPass,
            Error::ConnectionLost(_) => ErrorCode::ConnectionLost,
            Error::Protocol(_) => ErrorCode::Protocol,
            Error::Reply { .. } => ErrorCode::Other,
            Error::Internal(_) => ErrorCode::Internal,
        }
    }

    pub(crate) fn bad(message: impl Into<String>) -> Error {
        Error::BadRequest(message.into())
    }

    /// Reports a state the code rules out: debug builds (tests, fuzzing) stop here so the bug
    /// is found; release builds answer with [`Error::Internal`] and keep serving.
    pub(crate) fn internal(what: &'static str) -> Error {
        debug_assert!(false, "fencelock bug: {what}");
        Error::Internal(what)
    }
}

impl Error {
    /// Returns the first word of the error as sent on the wire: the code's text, or the
    /// server's own code for an [`Error::Reply`].
    #[must_use]
    pub fn wire_code(&self) -> &str {
        match self {
            Error::Reply { code, .. } => code,
            other => other.code().as_str(),
        }
    }

    /// Returns the human-readable text after the code, so no binding strips prefixes.
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            Error::Locked { ms_left } => Text::new("lock is held, free in at most ")
                .num(*ms_left)
                .str(" ms")
                .into(),
            Error::Stale { token } => Text::new("token ")
                .num(*token)
                .str(" is not a live lease of this lock (released, superseded or unknown)")
                .into(),
            Error::Expired { token } => Text::new("the lease of token ")
                .num(*token)
                .str(" expired")
                .into(),
            Error::Timeout { waited_ms } => Text::new("lock not granted within ")
                .num(*waited_ms)
                .str(" ms")
                .into(),
            Error::NotReady { ms_left } => Text::new("restarting after a crash, ")
                .num(*ms_left)
                .str(" ms left until grants resume (every earlier lease must lapse first)")
                .into(),
            Error::Limit(what) => String::from(what.as_ref()),
            Error::Exhausted => String::from("token sequence exhausted at 2^53-1"),
            Error::Internal(what) => {
                Text::new("internal error, a bug in fencelock (please report it): ")
                    .str(what)
                    .into()
            }
            Error::BadRequest(message)
            | Error::NoAuth(message)
            | Error::NoPerm(message)
            | Error::WrongPass(message)
            | Error::ConnectionLost(message)
            | Error::Protocol(message)
            | Error::Reply { message, .. } => message.clone(),
        }
    }
}

impl Error {
    /// Reads the text of a wire error reply (`CODE message`) back into the error it reports,
    /// the inverse of `Display`: structured fields are read from the message, and an unknown
    /// code is kept as [`Error::Reply`].
    #[must_use]
    pub fn from_wire(text: &str) -> Error {
        let (code, message) = text.split_once(' ').unwrap_or((text, ""));
        let number_before = |marker: &str| number_before(message, marker);
        let number_after = |marker: &str| number_after(message, marker);
        let known = match ErrorCode::from_str_code(code) {
            Some(ErrorCode::Locked) => {
                number_before(" ms").map(|ms_left| Error::Locked { ms_left })
            }
            Some(ErrorCode::Stale) => number_after("token ").map(|token| Error::Stale { token }),
            Some(ErrorCode::Expired) => {
                number_after("token ").map(|token| Error::Expired { token })
            }
            Some(ErrorCode::Timeout) => {
                number_before(" ms").map(|waited_ms| Error::Timeout { waited_ms })
            }
            Some(ErrorCode::NotReady) => {
                number_before(" ms").map(|ms_left| Error::NotReady { ms_left })
            }
            Some(ErrorCode::Limit) => Some(Error::Limit(Cow::Owned(String::from(message)))),
            Some(ErrorCode::Exhausted) => Some(Error::Exhausted),
            Some(ErrorCode::BadRequest) => Some(Error::BadRequest(String::from(message))),
            Some(ErrorCode::NoAuth) => Some(Error::NoAuth(String::from(message))),
            Some(ErrorCode::NoPerm) => Some(Error::NoPerm(String::from(message))),
            Some(ErrorCode::WrongPass) => Some(Error::WrongPass(String::from(message))),
            Some(ErrorCode::ConnectionLost) => Some(Error::ConnectionLost(String::from(message))),
            Some(ErrorCode::Protocol) => Some(Error::Protocol(String::from(message))),
            _ => None,
        };
        known.unwrap_or_else(|| Error::Reply {
            code: String::from(code),
            message: String::from(message),
        })
    }
}

/// Returns the whole number that ends right before the first `marker` in `text`.
fn number_before(text: &str, marker: &str) -> Option<u64> {
    let head = text.as_bytes().get(..find(text, marker)?)?;
    let start = head
        .iter()
        .rposition(|byte| !byte.is_ascii_digit())
        .map_or(0, |at| at + 1);
    decimal(head.get(start..)?)
}

/// Returns the whole number that starts right after the first `marker` in `text`.
fn number_after(text: &str, marker: &str) -> Option<u64> {
    let tail = text.as_bytes().get(find(text, marker)? + marker.len()..)?;
    let end = tail
        .iter()
        .position(|byte| !byte.is_ascii_digit())
        .unwrap_or(tail.len());
    decimal(tail.get(..end)?)
}

/// Where `marker` first starts in `text`: the markers are a few bytes long, so a plain scan
/// (no searcher to set up for every error reply a client reads).
fn find(text: &str, marker: &str) -> Option<usize> {
    let marker = marker.as_bytes();
    if marker.is_empty() {
        return Some(0);
    }
    text.as_bytes()
        .windows(marker.len())
        .position(|window| window == marker)
}

/// Reads a run of ASCII digits (at least one) as a u64; `None` when it does not fit.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |value, &digit| {
        value
            .checked_mul(10)?
            .checked_add(u64::from(digit.wrapping_sub(b'0')))
    })
}

impl Error {
    /// Returns `CODE message`, exactly the text of a wire error reply (what `Display` shows;
    /// built without `core::fmt`, which the browser's module leaves out).
    #[must_use]
    pub fn text(&self) -> String {
        let message = self.message();
        if message.is_empty() {
            String::from(self.wire_code())
        } else {
            let code = self.wire_code();
            let mut text = String::with_capacity(code.len() + 1 + message.len());
            text.push_str(code);
            text.push(' ');
            text.push_str(&message);
            text
        }
    }
}

impl fmt::Display for Error {
    /// Formats as `CODE message`, exactly the text of a wire error reply.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// A cluster follower's answer while no leader is known (an election is under way): the
/// request had no effect, and the core client tries it again after a pause.
pub const NOT_LEADER_NO_LEADER: &str = "NOTLEADER no cluster leader is known yet; retry";
/// A deposed leader's answer to a request whose log entry was never committed: no effect.
pub const NOT_LEADER_NO_EFFECT: &str =
    "NOTLEADER lost leadership before replicating; the request had no effect";
/// A deposed leader's answer when the append's outcome is unknown: the request may or may
/// not have taken effect, so it is the caller's answer, never retried by the client.
pub const NOT_LEADER_UNKNOWN: &str =
    "NOTLEADER lost leadership while replicating; the request may or may not have taken effect";

#[cfg(test)]
mod tests {
    use super::*;

    /// The numbers in an error's text are read as `str::parse` reads a run of digits: the
    /// last run before the marker, the first after it, nothing for an empty or too long run.
    #[test]
    fn numbers_are_read_around_markers() {
        let parsed = |digits: &str| digits.parse::<u64>().ok();
        for text in [
            "free in at most 120 ms",
            "at most 12a34 ms",
            " ms",
            "x ms then 7 ms",
            "99999999999999999999 ms",
            "18446744073709551615 ms",
            "no marker",
        ] {
            let before = text
                .find(" ms")
                .and_then(|end| text[..end].rsplit(|c: char| !c.is_ascii_digit()).next())
                .and_then(parsed);
            assert_eq!(number_before(text, " ms"), before, "{text}");
        }
        for text in [
            "token 42 is",
            "token 4x2",
            "token ",
            "a token 1 token 2",
            "none",
        ] {
            let after = text
                .find("token ")
                .and_then(|at| text[at + 6..].split(|c: char| !c.is_ascii_digit()).next())
                .and_then(parsed);
            assert_eq!(number_after(text, "token "), after, "{text}");
        }
        assert_eq!(
            Error::from_wire("LOCKED lock is held, free in at most 250 ms"),
            Error::Locked { ms_left: 250 }
        );
    }
}
