//! Reply encoder for RESP2 and RESP3, appending to a caller's buffer so replies of pipelined
//! requests share one allocation and one transmit.

use alloc::vec::Vec;

use super::metrics::ErrorTally;

/// The RESP version a connection speaks; RESP3 after `HELLO 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RespVersion {
    /// RESP2: maps are sent as flat arrays of keys and values, null as `$-1`, no pushes.
    #[default]
    Resp2,
    /// RESP3: maps, `_` null and `>` push messages.
    Resp3,
}

/// Appends encoded replies to a byte buffer.
#[derive(Debug)]
pub struct ReplyEncoder<'a> {
    out: &'a mut Vec<u8>,
    version: RespVersion,
    /// Where the server counts error replies by code (the `fencelock_errors_total` metric).
    errors: Option<&'a mut ErrorTally>,
}

impl<'a> ReplyEncoder<'a> {
    /// Creates an encoder appending to `out` in the given RESP version.
    pub fn new(out: &'a mut Vec<u8>, version: RespVersion) -> Self {
        ReplyEncoder {
            out,
            version,
            errors: None,
        }
    }

    /// Creates an encoder that also counts each error reply it writes in `errors`.
    pub(crate) fn counting(
        out: &'a mut Vec<u8>,
        version: RespVersion,
        errors: &'a mut ErrorTally,
    ) -> Self {
        ReplyEncoder {
            out,
            version,
            errors: Some(errors),
        }
    }

    /// Returns how many bytes the output holds.
    pub(crate) fn len(&self) -> usize {
        self.out.len()
    }

    /// Appends bytes another encoder of the same version produced.
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Returns the RESP version this encoder writes.
    #[must_use]
    pub fn version(&self) -> RespVersion {
        self.version
    }

    /// Appends a simple string (`+OK`); CR and LF in `text` become spaces so framing holds.
    pub fn simple(&mut self, text: &str) {
        self.out.push(b'+');
        push_line_safe(self.out, text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// Appends an error reply; `text` starts with its code (`ERR ...`, `LOCKED ...`). CR and
    /// LF become spaces, because an error line cannot carry them.
    pub fn error(&mut self, text: &str) {
        if let Some(errors) = self.errors.as_deref_mut() {
            errors.count(text);
        }
        self.out.push(b'-');
        push_line_safe(self.out, text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    /// Appends an integer reply.
    pub fn integer(&mut self, value: i64) {
        self.out.push(b':');
        push_integer(self.out, value);
        self.out.extend_from_slice(b"\r\n");
    }

    /// Appends an unsigned integer reply; values above `i64::MAX` cannot occur for tokens
    /// (at most 2^53-1) and are clamped.
    pub fn unsigned(&mut self, value: u64) {
        self.integer(i64::try_from(value).unwrap_or(i64::MAX));
    }

    /// Appends a bulk string.
    pub fn bulk(&mut self, bytes: &[u8]) {
        self.out.push(b'$');
        push_integer(self.out, bytes.len());
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(bytes);
        self.out.extend_from_slice(b"\r\n");
    }

    /// Appends a null: `$-1` in RESP2, `_` in RESP3.
    pub fn null(&mut self) {
        match self.version {
            RespVersion::Resp2 => self.out.extend_from_slice(b"$-1\r\n"),
            RespVersion::Resp3 => self.out.extend_from_slice(b"_\r\n"),
        }
    }

    /// Appends a bulk string, or a null for `None`.
    pub fn optional_bulk(&mut self, bytes: Option<&[u8]>) {
        match bytes {
            Some(bytes) => self.bulk(bytes),
            None => self.null(),
        }
    }

    /// Starts an array of `len` elements; the caller appends them next.
    pub fn array(&mut self, len: usize) {
        self.header(b'*', len);
    }

    /// Starts a map of `pairs` key/value pairs: `%` in RESP3, a flat array of twice the
    /// length in RESP2, as Redis does.
    pub fn map(&mut self, pairs: usize) {
        match self.version {
            RespVersion::Resp2 => self.header(b'*', pairs.saturating_mul(2)),
            RespVersion::Resp3 => self.header(b'%', pairs),
        }
    }

    /// Starts a push message of `len` elements: `>` in RESP3, a plain array in RESP2 (where
    /// the server sends none, but an encoder must still produce something parseable).
    pub fn push(&mut self, len: usize) {
        match self.version {
            RespVersion::Resp2 => self.header(b'*', len),
            RespVersion::Resp3 => self.header(b'>', len),
        }
    }

    fn header(&mut self, kind: u8, len: usize) {
        self.out.push(kind);
        push_integer(self.out, len);
        self.out.extend_from_slice(b"\r\n");
    }
}

/// Appends the decimal digits of `value`; `itoa` avoids `core::fmt`, which is slow on the hot
/// path of every reply.
fn push_integer(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

fn push_line_safe(out: &mut Vec<u8>, text: &[u8]) {
    if text.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend(
            text.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        out.extend_from_slice(text);
    }
}
