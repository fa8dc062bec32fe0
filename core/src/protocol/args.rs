//! Reading typed arguments out of a request, with errors a person understands.

use alloc::string::String;

use crate::text::Text;
use crate::Error;

/// Reads a lock name: any UTF-8 text (the engine checks its length).
pub(crate) fn name<'a>(arg: &'a [u8], what: &str) -> Result<&'a str, Error> {
    core::str::from_utf8(arg)
        .map_err(|_| Error::BadRequest(Text::new(what).str(" must be valid UTF-8 text").into()))
}

/// Reads a non-negative whole number such as a TTL, a wait or a token.
pub(crate) fn number(arg: &[u8], what: &str) -> Result<u64, Error> {
    if arg.is_empty() {
        return Err(Error::BadRequest(
            Text::new(what)
                .str(" must be a whole number, got an empty string")
                .into(),
        ));
    }
    if arg.first() == Some(&b'-') && arg.len() > 1 && arg.iter().skip(1).all(u8::is_ascii_digit) {
        return Err(Error::BadRequest(
            Text::new(what)
                .str(" must not be negative, got ")
                .str(&shown(arg))
                .into(),
        ));
    }
    let mut value: u64 = 0;
    for &byte in arg {
        if !byte.is_ascii_digit() {
            return Err(Error::BadRequest(
                Text::new(what)
                    .str(" must be a whole number of digits, got ")
                    .str(&shown(arg))
                    .into(),
            ));
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(byte - b'0')))
            .ok_or_else(|| {
                Error::BadRequest(
                    Text::new(what)
                        .str(" is too large, got ")
                        .str(&shown(arg))
                        .into(),
                )
            })?;
    }
    Ok(value)
}

/// Quotes a client's bytes for an error message: at most 40 characters, control characters
/// and invalid UTF-8 replaced, so an echo can never break the reply's framing.
pub(crate) fn shown(arg: &[u8]) -> String {
    const MAX_CHARS: usize = 40;
    let mut text = String::from("'");
    let lossy = String::from_utf8_lossy(arg);
    for (count, ch) in lossy.chars().enumerate() {
        if count == MAX_CHARS {
            text.push_str("...");
            break;
        }
        text.push(if ch.is_control() { '?' } else { ch });
    }
    text.push('\'');
    text
}

/// Returns true when `arg` equals `word`, ignoring ASCII case.
pub(crate) fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// Builds a bad-request error (`ERR ...` on the wire) from a fixed message.
pub(crate) fn bad(message: &str) -> Error {
    Error::BadRequest(String::from(message))
}
