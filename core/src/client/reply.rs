//! Replies typed by the request they answer, and lease notices read out of RESP3 pushes.

use alloc::string::String;
use alloc::vec::Vec;

use super::decoder::Small;
use super::request::Kind;
use super::{Event, Value};
use crate::text::Text;
use crate::{Error, HolderInfo, Instant, LockInfo, Mode, Token, WaiterInfo};

/// A successful reply, typed by its request.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Reply {
    /// `ACQUIRE`: the lease's token, and its conservative local deadline (measured from when
    /// the request was sent, so the server's lease never ends before it).
    Granted {
        /// The fencing token.
        token: Token,
        /// The local deadline on the host's clock.
        deadline: Instant,
    },
    /// `RENEW` / `VERIFY`: the ms the lease has left by the server's clock.
    MsLeft(u64),
    /// `RELEASE` (and anything else that answers `OK`).
    Ok,
    /// `QUERY`: the locks, with holders and waiters.
    Locks(Vec<LockInfo>),
    /// `QUERY ... COUNT n CURSOR c`: one page of locks and the cursor of the next page,
    /// empty after the last page.
    LockPage {
        /// The cursor to pass for the next page; empty when there is none.
        cursor: String,
        /// The locks of this page, in name order.
        locks: Vec<LockInfo>,
    },
    /// `INFO`: `key:value` lines in order (section headers dropped).
    Info(Vec<InfoEntry>),
    /// `PING`: `PONG`, or the message sent.
    Pong(Vec<u8>),
    /// A raw command's reply.
    Value(Value),
}

/// One `key:value` line of an `INFO` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfoEntry {
    /// The section it appeared under, lowercase (`server`, `stats`, ...).
    pub section: String,
    /// The key.
    pub key: String,
    /// The value as sent.
    pub value: String,
}

/// Types `value` as the reply to a request of `kind`; error replies become core errors.
pub(crate) fn typed(kind: &Kind, value: Value) -> Result<Reply, Error> {
    if let Value::Error(text) = &value {
        return Err(Error::from_wire(text));
    }
    match kind {
        Kind::Acquire { .. } => integer(&value, "ACQUIRE").map(|token| Reply::Granted {
            token,
            deadline: Instant::ZERO,
        }),
        Kind::Renew { .. } => integer(&value, "RENEW").map(Reply::MsLeft),
        Kind::Verify { .. } => integer(&value, "VERIFY").map(Reply::MsLeft),
        Kind::Release { .. } => match &value {
            Value::Simple(text) if text == "OK" => Ok(Reply::Ok),
            other => Err(shape("RELEASE", "OK", other)),
        },
        Kind::Query => locks(&value),
        Kind::QueryPage => lock_page(&value),
        Kind::Info => info(&value),
        Kind::Ping => match value {
            Value::Simple(text) => Ok(Reply::Pong(text.into_bytes())),
            Value::Bulk(bytes) => Ok(Reply::Pong(bytes)),
            other => Err(shape("PING", "PONG", &other)),
        },
        Kind::Command => Ok(Reply::Value(value)),
    }
}

/// Types a small reply ([`Small`]) without building a value when it is what the request
/// expects.
pub(crate) fn typed_small(kind: &Kind, small: Small) -> Result<Reply, Error> {
    match (kind, small) {
        (Kind::Acquire { .. }, Small::Integer(token)) if token >= 0 => Ok(Reply::Granted {
            token: token.unsigned_abs(),
            deadline: Instant::ZERO,
        }),
        (Kind::Renew { .. } | Kind::Verify { .. }, Small::Integer(ms)) if ms >= 0 => {
            Ok(Reply::MsLeft(ms.unsigned_abs()))
        }
        (Kind::Release { .. }, Small::Ok) => Ok(Reply::Ok),
        (kind, small) => typed(kind, small.into_value()),
    }
}

/// Reads `[fencelock, kind, name, token, (by_token)]`, the pushes fencelock servers send.
pub(crate) fn lease_notice(items: &[Value]) -> Option<Event> {
    let (first, rest) = items.split_first()?;
    if !first.as_text()?.eq_ignore_ascii_case("fencelock") {
        return None;
    }
    let kind = rest.first()?.as_text()?.to_ascii_lowercase();
    let name = rest.get(1)?.as_text()?;
    let token = u64::try_from(rest.get(2)?.as_integer()?).ok()?;
    let by_token = rest
        .get(3)
        .and_then(Value::as_integer)
        .and_then(|token| u64::try_from(token).ok());
    Some(Event::Notice {
        kind,
        name,
        token,
        by_token,
    })
}

fn integer(value: &Value, command: &str) -> Result<u64, Error> {
    value
        .as_integer()
        .and_then(|number| u64::try_from(number).ok())
        .ok_or_else(|| shape(command, "a whole number", value))
}

fn shape(command: &str, expected: &str, got: &Value) -> Error {
    let mut shown = got.shown();
    if shown.len() > 80 {
        let mut cut = 80;
        while !shown.is_char_boundary(cut) {
            cut -= 1;
        }
        shown.truncate(cut);
        shown.push_str("...");
    }
    Error::Protocol(
        Text::new(command)
            .str(": expected ")
            .str(expected)
            .str(", got ")
            .str(&shown)
            .into(),
    )
}

fn lock_page(value: &Value) -> Result<Reply, Error> {
    let expected = || shape("QUERY", "[cursor, [locks]]", value);
    let Value::Array(items) = value else {
        return Err(expected());
    };
    let [cursor, page] = items.as_slice() else {
        return Err(expected());
    };
    let cursor = cursor.as_text().ok_or_else(expected)?;
    match locks(page)? {
        Reply::Locks(locks) => Ok(Reply::LockPage { cursor, locks }),
        _ => Err(expected()),
    }
}

fn locks(value: &Value) -> Result<Reply, Error> {
    let Value::Array(items) = value else {
        return Err(shape("QUERY", "an array of locks", value));
    };
    items
        .iter()
        .map(lock)
        .collect::<Option<Vec<LockInfo>>>()
        .map(Reply::Locks)
        .ok_or_else(|| shape("QUERY", "locks as field/value maps", value))
}

/// Fields of a map (RESP3) or a flat field/value array (RESP2), looked up by name where
/// they are (as [`Value::as_pairs`] reads them, without collecting the pairs).
enum Fields<'a> {
    Map(&'a [(Value, Value)]),
    Flat(&'a [Value]),
}

impl<'a> Fields<'a> {
    fn of(value: &'a Value) -> Option<Fields<'a>> {
        match value {
            Value::Map(pairs) => Some(Fields::Map(pairs)),
            Value::Array(items) if items.len() % 2 == 0 => Some(Fields::Flat(items)),
            _ => None,
        }
    }

    fn get(&self, field: &str) -> Option<&'a Value> {
        match *self {
            Fields::Map(pairs) => pairs
                .iter()
                .find(|(key, _)| reads_as(key, field))
                .map(|(_, value)| value),
            Fields::Flat(items) => items
                .chunks_exact(2)
                .find(|pair| pair.first().is_some_and(|key| reads_as(key, field)))
                .and_then(|pair| pair.get(1)),
        }
    }

    fn number(&self, field: &str) -> Option<u64> {
        u64::try_from(self.get(field)?.as_integer()?).ok()
    }

    fn text(&self, field: &str) -> Option<String> {
        self.get(field)?.as_text()
    }

    fn owner(&self) -> Option<String> {
        self.text("owner")
    }

    fn mode(&self) -> Option<Mode> {
        let mode = self.get("mode")?;
        if reads_as(mode, "exclusive") {
            Some(Mode::Exclusive)
        } else if reads_as(mode, "shared") {
            Some(Mode::Shared)
        } else {
            None
        }
    }

    fn list(&self, field: &str) -> Option<&'a [Value]> {
        match self.get(field)? {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// Tells whether `value.as_text()` would be `Some(text)`, without making that copy: every
/// field of every lock in a QUERY reply is looked up by name.
fn reads_as(value: &Value, text: &str) -> bool {
    match value {
        Value::Simple(own) | Value::BigNumber(own) => own == text,
        // ASCII bytes read as themselves, so they are compared as they are (every field name
        // of every lock of a QUERY reply comes here); others as `as_text` reads them, with
        // U+FFFD in place of each sequence that is not UTF-8.
        Value::Bulk(bytes) => {
            if bytes.is_ascii() {
                bytes.as_slice() == text.as_bytes()
            } else {
                String::from_utf8_lossy(bytes) == text
            }
        }
        _ => false,
    }
}

fn lock(value: &Value) -> Option<LockInfo> {
    let fields = Fields::of(value)?;
    let holders = fields
        .list("holders")?
        .iter()
        .map(|holder| {
            let holder = Fields::of(holder)?;
            Some(HolderInfo {
                token: holder.number("token")?,
                mode: holder.mode()?,
                owner: holder.owner(),
                ms_left: holder.number("ms_left")?,
                client: holder.number("client").unwrap_or(0),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let waiters = fields
        .list("waiters")?
        .iter()
        .map(|waiter| {
            let waiter = Fields::of(waiter)?;
            Some(WaiterInfo {
                waiter: waiter.number("waiter")?,
                position: usize::try_from(waiter.number("position")?).ok()?,
                mode: waiter.mode()?,
                owner: waiter.owner(),
                client: waiter.number("client").unwrap_or(0),
                ms_left: waiter.number("ms_left")?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(LockInfo {
        name: fields.text("name")?,
        holders,
        waiters,
        delay_ms_left: fields.number("delay_ms_left").unwrap_or(0),
    })
}

fn info(value: &Value) -> Result<Reply, Error> {
    let Some(text) = value.as_text() else {
        return Err(shape("INFO", "text", value));
    };
    let mut section = String::new();
    let mut entries = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('#') {
            section = header.trim().to_ascii_lowercase();
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            entries.push(InfoEntry {
                section: section.clone(),
                key: String::from(key),
                value: String::from(value),
            });
        }
    }
    Ok(Reply::Info(entries))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]
    use super::*;

    /// `reads_as` compares without the copy, and agrees with `as_text` on every pair: valid
    /// and invalid UTF-8, texts with and without U+FFFD.
    #[test]
    fn reads_as_agrees_with_as_text() {
        let bytes: [&[u8]; 9] = [
            b"",
            b"mode",
            b"shared",
            b"exclusive",
            b"sh\xffred",
            b"\xff",
            b"\xef\xbf\xbd",
            b"a\xc3",
            "é".as_bytes(),
        ];
        let texts = [
            "",
            "mode",
            "shared",
            "sh\u{FFFD}red",
            "\u{FFFD}",
            "a\u{FFFD}",
            "é",
        ];
        let mut matched = 0;
        for bytes in bytes {
            let values = [
                Value::Bulk(bytes.to_vec()),
                Value::Simple(String::from_utf8_lossy(bytes).into_owned()),
                Value::Integer(1),
            ];
            for value in &values {
                for text in texts {
                    let expected = value.as_text().as_deref() == Some(text)
                        && !matches!(value, Value::Integer(_));
                    assert_eq!(reads_as(value, text), expected, "{value:?} as {text:?}");
                    matched += usize::from(expected);
                }
            }
        }
        // Invalid bytes read as a text with U+FFFD, so both branches were taken.
        assert!(reads_as(
            &Value::Bulk(b"sh\xffred".to_vec()),
            "sh\u{FFFD}red"
        ));
        assert!(matched > 10);
    }
}
