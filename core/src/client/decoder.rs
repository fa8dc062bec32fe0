//! Incremental RESP2/RESP3 reply decoder: bytes in, whole [`Value`]s out.
//!
//! Replies are small and arrive whole almost always, so a partial reply is re-read from its
//! first byte when more bytes come, except that a reply announcing a long bulk string waits
//! until that many bytes are buffered before it is read again. Nesting depth, element counts
//! and string sizes are bounded, and no memory is reserved from an announced size, so no byte
//! sequence can exhaust the stack or the heap.

use alloc::string::String;
use alloc::vec::Vec;

use crate::text::Text;
use crate::Error;

/// One decoded RESP value.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// `+text`.
    Simple(String),
    /// `-CODE message` or RESP3 `!` blob error, as sent.
    Error(String),
    /// `:n` (and RESP3 `(n` when it fits in an i64).
    Integer(i64),
    /// `$n` bulk string (and RESP3 `=` verbatim string, without its format prefix).
    Bulk(Vec<u8>),
    /// `$-1`, `*-1` or RESP3 `_`.
    Null,
    /// RESP3 `#t` / `#f`.
    Boolean(bool),
    /// RESP3 `,` double.
    Double(f64),
    /// RESP3 `(` big number that does not fit in an i64, as its digits.
    BigNumber(String),
    /// `*n` array (and RESP3 `~` set).
    Array(Vec<Value>),
    /// RESP3 `%n` map, in wire order.
    Map(Vec<(Value, Value)>),
    /// RESP3 `>n` out-of-band push.
    Push(Vec<Value>),
}

/// As derived, except that a double is shown by [`shown_double`]: Rust's float formatting
/// would add its code to the browser's module for this one use.
impl core::fmt::Debug for Value {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Value::Simple(v) => f.debug_tuple("Simple").field(v).finish(),
            Value::Error(v) => f.debug_tuple("Error").field(v).finish(),
            Value::Integer(v) => f.debug_tuple("Integer").field(v).finish(),
            Value::Bulk(v) => f.debug_tuple("Bulk").field(v).finish(),
            Value::Null => f.write_str("Null"),
            Value::Boolean(v) => f.debug_tuple("Boolean").field(v).finish(),
            Value::Double(v) => {
                f.write_str("Double(")?;
                f.write_str(&shown_double(*v))?;
                f.write_str(")")
            }
            Value::BigNumber(v) => f.debug_tuple("BigNumber").field(v).finish(),
            Value::Array(v) => f.debug_tuple("Array").field(v).finish(),
            Value::Map(v) => f.debug_tuple("Map").field(v).finish(),
            Value::Push(v) => f.debug_tuple("Push").field(v).finish(),
        }
    }
}

impl Value {
    /// Returns the value as `{:?}` shows it, built without the tuple and list builders of
    /// `core::fmt` that `{:?}` of a value brings into the browser's module.
    pub(crate) fn shown(&self) -> String {
        let mut out = String::new();
        self.show(&mut out);
        out
    }

    fn show(&self, out: &mut String) {
        let (name, list) = match self {
            Value::Null => {
                out.push_str("Null");
                return;
            }
            Value::Simple(_) => ("Simple", false),
            Value::Error(_) => ("Error", false),
            Value::Integer(_) => ("Integer", false),
            Value::Bulk(_) => ("Bulk", true),
            Value::Boolean(_) => ("Boolean", false),
            Value::Double(_) => ("Double", false),
            Value::BigNumber(_) => ("BigNumber", false),
            Value::Array(_) => ("Array", true),
            Value::Map(_) => ("Map", true),
            Value::Push(_) => ("Push", true),
        };
        out.push_str(name);
        out.push_str(if list { "([" } else { "(" });
        match self {
            Value::Null => {}
            Value::Simple(text) | Value::Error(text) | Value::BigNumber(text) => {
                crate::text::push_quoted(out, text);
            }
            Value::Integer(number) => out.push_str(itoa::Buffer::new().format(*number)),
            Value::Bulk(bytes) => {
                for (at, byte) in bytes.iter().enumerate() {
                    separate(out, at);
                    out.push_str(itoa::Buffer::new().format(*byte));
                }
            }
            Value::Boolean(flag) => out.push_str(if *flag { "true" } else { "false" }),
            Value::Double(number) => out.push_str(&shown_double(*number)),
            Value::Array(items) | Value::Push(items) => {
                for (at, item) in items.iter().enumerate() {
                    separate(out, at);
                    item.show(out);
                }
            }
            Value::Map(pairs) => {
                for (at, (key, value)) in pairs.iter().enumerate() {
                    separate(out, at);
                    out.push('(');
                    key.show(out);
                    out.push_str(", ");
                    value.show(out);
                    out.push(')');
                }
            }
        }
        out.push_str(if list { "])" } else { ")" });
    }
}

/// Puts `, ` before every list item but the first.
fn separate(out: &mut String, at: usize) {
    if at > 0 {
        out.push_str(", ");
    }
}

/// Shows a double as `{:?}` does (`1.5`, `3.0`, `-0.0`, `inf`, `NaN`) when it is not a
/// number or is whole below 1e16, or, from 1e-4 to 2^32, has at most 6 decimals; any other
/// value is shown rounded to 6 decimals after a `~` (`~big` from 2^32 on).
fn shown_double(value: f64) -> String {
    const TWO_TO_32: f64 = 4_294_967_296.0;
    if value.is_nan() {
        return String::from("NaN");
    }
    let negative = value.is_sign_negative();
    let magnitude = if negative { -value } else { value };
    let mut text = String::from(if negative { "-" } else { "" });
    if magnitude.is_infinite() {
        text.push_str("inf");
    } else if magnitude < 1e16 && magnitude == (magnitude as u64) as f64 {
        // Whole, so exact as an integer: `{:?}` adds ".0".
        text.push_str(itoa::Buffer::new().format(magnitude as u64));
        text.push_str(".0");
    } else if magnitude < TWO_TO_32 {
        // Below 2^32 a double is finer than 1e-6, so a 6-decimal value that reads back as the
        // same double is the shortest one, the one `{:?}` shows (from 1e-4 on).
        let millionths = (magnitude * 1e6 + 0.5) as u64;
        let exact = magnitude >= 1e-4 && millionths as f64 / 1e6 == magnitude;
        if !exact {
            text.insert(0, '~');
        }
        text.push_str(itoa::Buffer::new().format(millionths / 1_000_000));
        text.push('.');
        let mut buffer = itoa::Buffer::new();
        // A leading 1 keeps the fraction's leading zeros; it is dropped below.
        let fraction = buffer.format(millionths % 1_000_000 + 1_000_000).as_bytes();
        let digits = fraction.get(1..).unwrap_or_default();
        let kept = digits
            .iter()
            .rposition(|&d| d != b'0')
            .map_or(1, |last| last + 1);
        text.push_str(core::str::from_utf8(digits.get(..kept).unwrap_or(b"0")).unwrap_or("0"));
    } else {
        text.insert(0, '~');
        text.push_str("big");
    }
    text
}

impl Value {
    /// Returns the text of a simple or bulk string (lossy for invalid UTF-8).
    #[must_use]
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Simple(text) | Value::BigNumber(text) => Some(text.clone()),
            Value::Bulk(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }

    /// Returns the value as an integer: an integer reply, or a string of digits.
    #[must_use]
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Value::Integer(value) => Some(*value),
            Value::Simple(text) => text.parse().ok(),
            Value::Bulk(bytes) => core::str::from_utf8(bytes).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// Returns the key/value pairs of a map, or of a flat array of keys and values (RESP2).
    #[must_use]
    pub fn as_pairs(&self) -> Option<Vec<(&Value, &Value)>> {
        match self {
            Value::Map(pairs) => Some(pairs.iter().map(|(key, value)| (key, value)).collect()),
            Value::Array(items) if items.len() % 2 == 0 => Some(
                items
                    .chunks_exact(2)
                    .filter_map(|pair| Some((pair.first()?, pair.get(1)?)))
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// A reply read by [`Decoder::next_small`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Small {
    /// `:n`.
    Integer(i64),
    /// `+OK`.
    Ok,
}

impl Small {
    pub(crate) fn into_value(self) -> Value {
        match self {
            Small::Integer(value) => Value::Integer(value),
            Small::Ok => Value::Simple(String::from("OK")),
        }
    }
}

/// Bounds on what a peer may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecoderLimits {
    /// Largest single reply, framing included.
    pub max_reply_bytes: usize,
    /// Deepest nesting of arrays and maps.
    pub max_depth: usize,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        DecoderLimits {
            max_reply_bytes: 64 << 20,
            max_depth: 32,
        }
    }
}

/// Reads replies from a byte stream split at any point.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    limits: DecoderLimits,
    buffer: Vec<u8>,
    /// Bytes of `buffer` already decoded and handed out.
    start: usize,
    /// Do not try again before the buffer holds this many undecoded bytes.
    need: usize,
}

/// Why one attempt stopped.
enum Stop {
    /// More bytes are needed; at least this many undecoded bytes in all.
    More(usize),
    Bad(String),
}

type Step<T> = Result<(T, usize), Stop>;

impl Decoder {
    /// Creates a decoder enforcing `limits`.
    #[must_use]
    pub fn new(limits: DecoderLimits) -> Decoder {
        Decoder {
            limits,
            ..Decoder::default()
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buffer.len() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Returns the next whole reply, `Ok(None)` while it is incomplete.
    ///
    /// # Errors
    /// [`Error::Protocol`] when the bytes are not RESP or break a limit; the stream cannot be
    /// resynchronised after that.
    pub fn next_value(&mut self) -> Result<Option<Value>, Error> {
        let pending = self.buffer.get(self.start..).unwrap_or_default();
        if pending.is_empty() || pending.len() < self.need {
            return Ok(None);
        }
        let reader = Reader {
            bytes: pending,
            limits: self.limits,
        };
        match reader.value(0, 0) {
            Ok((value, end)) => {
                self.start += end;
                self.need = 0;
                Ok(Some(value))
            }
            Err(Stop::More(need)) => {
                if need > self.limits.max_reply_bytes {
                    return Err(Error::Protocol(
                        Text::new("reply larger than ")
                            .num(self.limits.max_reply_bytes)
                            .str(" bytes")
                            .into(),
                    ));
                }
                self.need = need;
                Ok(None)
            }
            Err(Stop::Bad(message)) => Err(Error::Protocol(message)),
        }
    }

    /// Takes the next reply if it is one of the two that answer nearly every lock request,
    /// `:n` or `+OK`, without building a [`Value`]; anything else is left for
    /// [`Decoder::next_value`].
    pub(crate) fn next_small(&mut self) -> Option<Small> {
        let pending = self.buffer.get(self.start..)?;
        if pending.starts_with(b"+OK\r\n") {
            self.start += 5;
            return Some(Small::Ok);
        }
        let digits = pending.strip_prefix(b":")?;
        // An i64 has at most 20 characters; a longer line is not a small reply.
        let newline = digits.iter().take(22).position(|&byte| byte == b'\n')?;
        let line = digits.get(..newline)?.strip_suffix(b"\r")?;
        let value = integer(line).ok()?;
        self.start += newline + 2;
        Some(Small::Integer(value))
    }

    /// Returns how many received bytes are not yet decoded.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buffer.len().saturating_sub(self.start)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    limits: DecoderLimits,
}

impl Reader<'_> {
    fn value(&self, at: usize, depth: usize) -> Step<Value> {
        if depth > self.limits.max_depth {
            return Err(Stop::Bad(
                Text::new("replies nested deeper than ")
                    .num(self.limits.max_depth)
                    .into(),
            ));
        }
        let Some(&kind) = self.bytes.get(at) else {
            return Err(Stop::More(at + 1));
        };
        let (line, next) = self.line(at + 1)?;
        match kind {
            b'+' => Ok((Value::Simple(text(line)), next)),
            b'-' => Ok((Value::Error(text(line)), next)),
            b':' => Ok((Value::Integer(integer(line)?), next)),
            b'$' | b'=' | b'!' => self.blob(kind, line, next),
            b'*' | b'~' | b'>' => {
                let Some(count) = length(line)? else {
                    return Ok((Value::Null, next));
                };
                let (items, end) = self.items(next, count, depth)?;
                Ok((
                    if kind == b'>' {
                        Value::Push(items)
                    } else {
                        Value::Array(items)
                    },
                    end,
                ))
            }
            b'%' | b'|' => {
                let count = length(line)?.unwrap_or(0);
                let (pairs, end) = self.pairs(next, count, depth)?;
                if kind == b'|' {
                    // Attributes describe the reply that follows; clients have no use for them.
                    return self.value(end, depth + 1);
                }
                Ok((Value::Map(pairs), end))
            }
            b'_' => Ok((Value::Null, next)),
            b'#' => match line {
                b"t" => Ok((Value::Boolean(true), next)),
                b"f" => Ok((Value::Boolean(false), next)),
                _ => Err(bad("boolean is neither t nor f", line)),
            },
            b',' => super::double::parse_double(line)
                .map(|double| (Value::Double(double), next))
                .ok_or_else(|| bad("bad double", line)),
            b'(' => match integer(line) {
                Ok(value) => Ok((Value::Integer(value), next)),
                Err(_) if is_big_number(line) => Ok((Value::BigNumber(text(line)), next)),
                Err(error) => Err(error),
            },
            other => Err(Stop::Bad(
                Text::new("unknown reply type byte 0x")
                    .hex_byte(other)
                    .into(),
            )),
        }
    }

    /// Returns the line starting at `at` (without CRLF) and where the next one starts.
    fn line(&self, at: usize) -> Step<&[u8]> {
        let rest = self.bytes.get(at..).unwrap_or_default();
        match rest.iter().position(|&byte| byte == b'\n') {
            Some(newline) => {
                let line = rest.get(..newline).unwrap_or_default();
                match line.split_last() {
                    Some((b'\r', line)) => Ok((line, at + newline + 1)),
                    _ => Err(Stop::Bad(String::from("line not terminated by CRLF"))),
                }
            }
            None if rest.len() > 64 * 1024 => {
                Err(Stop::Bad(String::from("reply line longer than 64 KiB")))
            }
            None => Err(Stop::More(self.bytes.len() + 1)),
        }
    }

    fn blob(&self, kind: u8, line: &[u8], at: usize) -> Step<Value> {
        let Some(len) = length(line)? else {
            return Ok((Value::Null, at));
        };
        let end = at.saturating_add(len);
        if len > self.limits.max_reply_bytes {
            return Err(Stop::Bad(
                Text::new("string of ")
                    .num(len)
                    .str(" bytes is longer than the ")
                    .num(self.limits.max_reply_bytes)
                    .str(" allowed")
                    .into(),
            ));
        }
        let Some(blob) = self.bytes.get(at..end) else {
            return Err(Stop::More(end + 2));
        };
        match self.bytes.get(end..end + 2) {
            Some(b"\r\n") => {}
            Some(_) => return Err(Stop::Bad(String::from("string not terminated by CRLF"))),
            None => return Err(Stop::More(end + 2)),
        }
        let value = match kind {
            b'!' => Value::Error(String::from_utf8_lossy(blob).into_owned()),
            // A verbatim string starts with its three-letter format and a colon.
            b'=' => Value::Bulk(blob.get(4..).unwrap_or_default().to_vec()),
            _ => Value::Bulk(blob.to_vec()),
        };
        Ok((value, end + 2))
    }

    /// Reads `count` key/value pairs, checked and reserved as [`Reader::items`] does for
    /// twice as many elements.
    fn pairs(&self, mut at: usize, count: usize, depth: usize) -> Step<Vec<(Value, Value)>> {
        let mut pairs = Vec::with_capacity(self.room(at, count.saturating_mul(2))? / 2);
        for _ in 0..count {
            let (key, next) = self.value(at, depth + 1)?;
            let (value, next) = self.value(next, depth + 1)?;
            pairs.push((key, value));
            at = next;
        }
        Ok((pairs, at))
    }

    fn items(&self, mut at: usize, count: usize, depth: usize) -> Step<Vec<Value>> {
        let mut items = Vec::with_capacity(self.room(at, count)?);
        for _ in 0..count {
            let (item, next) = self.value(at, depth + 1)?;
            items.push(item);
            at = next;
        }
        Ok((items, at))
    }

    /// Refuses `elements` announced at `at` that no reply within the limit could hold, and
    /// returns how many to reserve room for: every element takes at least three bytes, so no
    /// more than the bytes received from `at` on can hold (the peer's count is never trusted).
    fn room(&self, at: usize, elements: usize) -> Result<usize, Stop> {
        if elements > self.limits.max_reply_bytes / 3 {
            return Err(Stop::Bad(
                Text::new("")
                    .num(elements)
                    .str(" elements cannot fit in a reply")
                    .into(),
            ));
        }
        Ok(elements.min(self.bytes.len().saturating_sub(at) / 3))
    }
}

fn text(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

fn integer(line: &[u8]) -> Result<i64, Stop> {
    // Digits by hand: `str::parse` costs more than the rest of decoding a small reply.
    let (negative, digits) = match line.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, line),
    };
    if digits.is_empty() || digits.len() > 19 {
        return Err(bad("bad integer", line));
    }
    let mut value: i64 = 0;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return Err(bad("bad integer", line));
        }
        // Negative numbers accumulate downwards, so i64::MIN is reachable.
        let digit = i64::from(byte - b'0');
        value = value
            .checked_mul(10)
            .and_then(|v| {
                if negative {
                    v.checked_sub(digit)
                } else {
                    v.checked_add(digit)
                }
            })
            .ok_or_else(|| bad("bad integer", line))?;
    }
    Ok(value)
}

fn is_big_number(line: &[u8]) -> bool {
    let digits = line.strip_prefix(b"-").unwrap_or(line);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// Reads an announced length; `-1` is the null of RESP2.
fn length(line: &[u8]) -> Result<Option<usize>, Stop> {
    if line == b"-1" {
        return Ok(None);
    }
    let value = integer(line)?;
    usize::try_from(value)
        .map(Some)
        .map_err(|_| bad("negative length", line))
}

fn bad(what: &str, line: &[u8]) -> Stop {
    let shown = String::from_utf8_lossy(line.get(..40).unwrap_or(line)).into_owned();
    Stop::Bad(Text::new(what).str(": ").quoted(&shown).into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloc::format;
    use proptest::prelude::*;

    #[test]
    fn values_show_as_derived_debug_would() {
        let value = Value::Array(alloc::vec![
            Value::Simple(String::from("O\"K\n")),
            Value::Error(String::from("ERR x")),
            Value::Integer(-5),
            Value::Bulk(alloc::vec![1, 2]),
            Value::Null,
            Value::Boolean(true),
            Value::Double(1.5),
            Value::BigNumber(String::from("123")),
            Value::Map(alloc::vec![(Value::Integer(1), Value::Push(alloc::vec![]))]),
        ]);
        assert_eq!(
            format!("{value:?}"),
            r#"Array([Simple("O\"K\n"), Error("ERR x"), Integer(-5), Bulk([1, 2]), Null, Boolean(true), Double(1.5), BigNumber("123"), Map([(Integer(1), Push([]))])])"#
        );
        assert_eq!(value.shown(), format!("{value:?}"));
        let more = Value::Map(alloc::vec![
            (
                Value::Bulk(alloc::vec![]),
                Value::Array(alloc::vec![Value::Null])
            ),
            (Value::Integer(i64::MIN), Value::Double(f64::NAN)),
            (Value::Double(-0.0), Value::Double(1e300)),
            (
                Value::Simple(String::from("é\t\u{1b}\0'")),
                Value::Push(alloc::vec![Value::Boolean(false)])
            ),
            (Value::Bulk(alloc::vec![0, 255]), Value::Map(alloc::vec![])),
        ]);
        assert_eq!(more.shown(), format!("{more:?}"));
        // Unlike `{:?}`, characters outside ASCII stay as they are, even combining marks and
        // other non-printable ones (their tables stay out of the browser's module).
        let mark = Value::Simple(String::from("e\u{301}\u{200b}"));
        assert_eq!(mark.shown(), "Simple(\"e\u{301}\u{200b}\")");
    }

    #[test]
    fn doubles_show_as_rust_shows_them_where_exact() {
        for value in [
            0.0,
            -0.0,
            1.0,
            -3.0,
            1.5,
            0.1,
            0.25,
            -2.125,
            1e-4,
            0.000_123,
            4_294_967_295.5,
            9_999_999_999_999_998.0,
            123_456.789_012,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
        ] {
            assert_eq!(shown_double(value), format!("{value:?}"), "{value:?}");
        }
        for (value, shown) in [
            (0.1 + 0.2, "~0.3"),
            (1e-5, "~0.00001"),
            (1e-9, "~0.0"),
            (2.0f64.sqrt(), "~1.414214"),
            (-4_294_967_296.5, "~-big"),
            (1e16, "~big"),
        ] {
            assert_eq!(shown_double(value), shown, "{value:?}");
        }
    }

    proptest! {
        #[test]
        fn six_decimals_below_two_to_32_show_exactly(millionths in 100u64..4_294_967_295_000_000) {
            let value = millionths as f64 / 1e6;
            prop_assert_eq!(shown_double(value), format!("{value:?}"));
            prop_assert_eq!(shown_double(-value), format!("{:?}", -value));
        }
    }
}
