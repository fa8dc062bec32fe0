//! Incremental request parser: RESP arrays of bulk strings and inline commands, fed bytes split
//! at any point.
//!
//! Limits are checked as soon as the bytes that announce a size arrive (`*N`, `$N`), before any
//! of the announced bytes are buffered, and the parser never reserves memory from an announced
//! size: a half-sent request holds at most the argument bytes actually received.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::text::Text;

/// Bounds the parser enforces on every request; outside this crate, start from
/// `ParserLimits::default()` and set fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ParserLimits {
    /// Largest request on the wire, framing included, in bytes.
    pub max_request_bytes: usize,
    /// Largest single argument, in bytes.
    pub max_bulk_bytes: usize,
    /// Most arguments in one request, command name included.
    pub max_args: usize,
}

impl Default for ParserLimits {
    fn default() -> Self {
        ParserLimits {
            max_request_bytes: 1 << 20,
            max_bulk_bytes: 1 << 20,
            max_args: 1024,
        }
    }
}

/// A framing error: the stream cannot be resynchronised, so the connection must close after
/// one error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(String);

impl ProtocolError {
    /// Returns the text of the error reply, without the `ERR ` code.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.0
    }

    /// Returns the whole text of the error reply (what `Display` shows).
    #[must_use]
    pub fn text(&self) -> String {
        Text::new("ERR Protocol error: ").str(&self.0).into()
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

/// What one call to [`RequestParser::feed`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// A request is complete after consuming this many input bytes; read it with
    /// [`RequestParser::args`] before feeding again.
    Complete(usize),
    /// Every input byte was consumed and the request is still incomplete.
    Partial,
}

/// Parses requests one at a time from a byte stream.
#[derive(Debug, Clone)]
pub struct RequestParser {
    limits: ParserLimits,
    state: State,
    /// Argument bytes of the request being parsed, back to back (or the raw inline line).
    data: Vec<u8>,
    /// `(start, end)` of each complete argument in `data`.
    spans: Vec<(usize, usize)>,
    /// Wire bytes of the current request consumed so far, framing included.
    request_bytes: usize,
    /// Arguments announced by the array header still to come.
    args_left: usize,
}

impl RequestParser {
    /// Creates a parser enforcing `limits`.
    #[must_use]
    pub fn new(limits: ParserLimits) -> Self {
        RequestParser {
            limits,
            state: State::Start,
            data: Vec::new(),
            spans: Vec::new(),
            request_bytes: 0,
            args_left: 0,
        }
    }

    /// Consumes bytes from `input` until one request is complete or the input runs out.
    ///
    /// # Errors
    /// A [`ProtocolError`] when the bytes are not a valid request or break a limit; the
    /// parser is then unusable and the connection must close.
    pub fn feed(&mut self, input: &[u8]) -> Result<Step, ProtocolError> {
        if self.state == State::Done {
            self.reset();
        }
        let mut pos = 0;
        while let Some(&byte) = input.get(pos) {
            match self.state {
                State::Start => match byte {
                    b'*' => {
                        if let Some(used) = self.whole_request(input.get(pos..).unwrap_or_default())
                        {
                            self.state = State::Done;
                            return Ok(Step::Complete(pos + used));
                        }
                        self.state = State::ArrayLen(Number::default());
                        pos += 1;
                        self.count(1)?;
                    }
                    // Blank lines between requests are tolerated, as telnet users type them.
                    b'\r' | b'\n' => pos += 1,
                    _ => self.state = State::Inline,
                },
                State::ArrayLen(mut number) => {
                    pos += 1;
                    self.count(1)?;
                    if byte == b'\r' {
                        // `push` already refused a count above the limit.
                        self.args_left = number.finish("invalid multibulk length")?;
                        self.state = State::ArrayLenLf;
                    } else {
                        number.push(
                            byte,
                            self.limits.max_args,
                            "invalid multibulk length",
                            || too_many_args_text(self.limits.max_args),
                        )?;
                        self.state = State::ArrayLen(number);
                    }
                }
                State::ArrayLenLf => {
                    expect_lf(byte)?;
                    pos += 1;
                    self.count(1)?;
                    if self.args_left == 0 {
                        // `*0` is an empty request: nothing to run, nothing to answer.
                        self.reset();
                    } else {
                        self.state = State::BulkStart;
                    }
                }
                State::BulkStart => {
                    if byte != b'$' {
                        return Err(ProtocolError(
                            Text::new("expected '$', got '")
                                .ascii_escaped(byte)
                                .str("'")
                                .into(),
                        ));
                    }
                    pos += 1;
                    self.count(1)?;
                    self.state = State::BulkLen(Number::default());
                }
                State::BulkLen(mut number) => {
                    pos += 1;
                    self.count(1)?;
                    if byte == b'\r' {
                        let len = number.finish("invalid bulk length")?;
                        self.check_bulk(len)?;
                        self.state = State::BulkLenLf(len);
                    } else {
                        let max = self.limits.max_bulk_bytes;
                        number
                            .push(byte, max, "invalid bulk length", || bulk_too_long_text(max))?;
                        self.state = State::BulkLen(number);
                    }
                }
                State::BulkLenLf(len) => {
                    expect_lf(byte)?;
                    pos += 1;
                    self.count(1)?;
                    let start = self.data.len();
                    self.state = State::BulkBody { start, left: len };
                }
                State::BulkBody { start, left } => {
                    let rest = input.get(pos..).unwrap_or_default();
                    let take = left.min(rest.len());
                    // Size was checked against the limits when `$N` arrived; this copies only
                    // bytes that were actually received.
                    self.data
                        .extend_from_slice(rest.get(..take).unwrap_or_default());
                    pos += take;
                    self.request_bytes += take;
                    self.state = if take == left {
                        State::BulkCr { start }
                    } else {
                        State::BulkBody {
                            start,
                            left: left - take,
                        }
                    };
                }
                State::BulkCr { start } => {
                    if byte != b'\r' {
                        return Err(ProtocolError("bulk string not followed by CRLF".into()));
                    }
                    pos += 1;
                    self.count(1)?;
                    self.state = State::BulkLf { start };
                }
                State::BulkLf { start } => {
                    expect_lf(byte)?;
                    pos += 1;
                    self.count(1)?;
                    self.spans.push((start, self.data.len()));
                    self.args_left -= 1;
                    if self.args_left == 0 {
                        self.state = State::Done;
                        return Ok(Step::Complete(pos));
                    }
                    self.state = State::BulkStart;
                }
                State::Inline => {
                    let rest = input.get(pos..).unwrap_or_default();
                    let newline = rest.iter().position(|&b| b == b'\n');
                    let take = newline.map_or(rest.len(), |at| at + 1);
                    // Check before copying so an endless line never grows the buffer past the limit.
                    self.count(take)?;
                    let line = rest.get(..take).unwrap_or_default();
                    pos += take;
                    match newline {
                        None => self.data.extend_from_slice(line),
                        Some(at) => {
                            self.data
                                .extend_from_slice(line.get(..at).unwrap_or_default());
                            self.split_inline()?;
                            if self.spans.is_empty() {
                                // A line of only spaces is skipped like a blank line.
                                self.reset();
                                continue;
                            }
                            self.state = State::Done;
                            return Ok(Step::Complete(pos));
                        }
                    }
                }
                State::Done => {
                    // `feed` resets a finished request on entry; a request completes only by
                    // returning, so this state is never seen inside the loop.
                    self.reset();
                }
            }
        }
        Ok(Step::Partial)
    }

    /// Reads a whole, valid request within the limits from the start of `input` in one pass
    /// and returns how many bytes it took; `None` (nothing kept) for anything else: a request
    /// not all here, malformed or over a limit, which the byte-at-a-time path then reads,
    /// refusing it with its exact error. Almost every request arrives whole, so this is the
    /// usual path; it accepts exactly the requests the other path accepts.
    fn whole_request(&mut self, input: &[u8]) -> Option<usize> {
        let parsed = self.read_whole(input);
        if parsed.is_none() {
            self.data.clear();
            self.spans.clear();
        }
        parsed
    }

    fn read_whole(&mut self, input: &[u8]) -> Option<usize> {
        let limits = self.limits;
        let (count, mut at) = header(input, 1, limits.max_args)?;
        if count == 0 {
            return None;
        }
        for _ in 0..count {
            if input.get(at) != Some(&b'$') {
                return None;
            }
            let (len, body) = header(input, at + 1, limits.max_bulk_bytes)?;
            let end = body.checked_add(len)?;
            let bytes = input.get(body..end)?;
            if input.get(end..end + 2)? != b"\r\n" {
                return None;
            }
            let start = self.data.len();
            self.data.extend_from_slice(bytes);
            self.spans.push((start, self.data.len()));
            at = end + 2;
        }
        (at <= limits.max_request_bytes).then_some(at)
    }

    /// Returns the arguments of the request just completed by [`RequestParser::feed`].
    pub fn args(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.spans
            .iter()
            .map(|&(start, end)| self.data.get(start..end).unwrap_or_default())
    }

    /// Returns how many argument bytes and spans the parser holds: bounded by the bytes
    /// received and by the limits.
    #[must_use]
    pub fn buffered_bytes(&self) -> usize {
        self.data.len() + self.spans.len() * core::mem::size_of::<(usize, usize)>()
    }

    /// Returns true when no request is partly received.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Start | State::Done)
    }

    fn reset(&mut self) {
        self.state = State::Start;
        self.data.clear();
        self.spans.clear();
        self.request_bytes = 0;
        self.args_left = 0;
        // Keep buffers warm for the next request but give back memory a huge one took.
        if self.data.capacity() > 64 * 1024 {
            self.data = Vec::new();
        }
    }

    fn count(&mut self, bytes: usize) -> Result<(), ProtocolError> {
        self.request_bytes = self.request_bytes.saturating_add(bytes);
        if self.request_bytes > self.limits.max_request_bytes {
            return Err(request_too_big(self.limits.max_request_bytes));
        }
        Ok(())
    }

    /// Refuses a bulk string that could not fit, before any of its bytes are buffered.
    fn check_bulk(&self, len: usize) -> Result<(), ProtocolError> {
        if len > self.limits.max_bulk_bytes {
            return Err(ProtocolError(bulk_too_long_text(
                self.limits.max_bulk_bytes,
            )));
        }
        // Its bytes, its CRLF, and at least four bytes (`$0\r\n`) per argument still to come.
        let remaining_framing = self.args_left.saturating_sub(1).saturating_mul(6);
        let needed = self
            .request_bytes
            .saturating_add(len)
            .saturating_add(2)
            .saturating_add(remaining_framing);
        if needed > self.limits.max_request_bytes {
            return Err(request_too_big(self.limits.max_request_bytes));
        }
        Ok(())
    }

    /// Splits the inline line held in `data` on spaces and tabs, dropping a trailing CR.
    fn split_inline(&mut self) -> Result<(), ProtocolError> {
        let mut end = self.data.len();
        if self.data.last() == Some(&b'\r') {
            end -= 1;
        }
        let mut start = None;
        for index in 0..end {
            let byte = self.data.get(index).copied().unwrap_or(b' ');
            let blank = byte == b' ' || byte == b'\t';
            match (start, blank) {
                (None, false) => start = Some(index),
                (Some(from), true) => {
                    self.push_inline_arg(from, index)?;
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(from) = start {
            self.push_inline_arg(from, end)?;
        }
        Ok(())
    }

    fn push_inline_arg(&mut self, start: usize, end: usize) -> Result<(), ProtocolError> {
        if self.spans.len() >= self.limits.max_args {
            return Err(ProtocolError(too_many_args_text(self.limits.max_args)));
        }
        if end - start > self.limits.max_bulk_bytes {
            return Err(ProtocolError(bulk_too_long_text(
                self.limits.max_bulk_bytes,
            )));
        }
        self.spans.push((start, end));
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    ArrayLen(Number),
    ArrayLenLf,
    BulkStart,
    BulkLen(Number),
    BulkLenLf(usize),
    BulkBody { start: usize, left: usize },
    BulkCr { start: usize },
    BulkLf { start: usize },
    Inline,
    Done,
}

/// A decimal length being read digit by digit, so headers are never buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Number {
    value: usize,
    digits: u8,
}

impl Number {
    /// Adds a digit, refusing anything that is not a digit and any value above `max` as soon
    /// as it is seen.
    fn push(
        &mut self,
        byte: u8,
        max: usize,
        invalid: &str,
        too_big: impl FnOnce() -> String,
    ) -> Result<(), ProtocolError> {
        if !byte.is_ascii_digit() {
            return Err(ProtocolError(invalid.into()));
        }
        let digit = usize::from(byte - b'0');
        let value = self
            .value
            .checked_mul(10)
            .and_then(|v| v.checked_add(digit));
        match value {
            Some(value) if value <= max => {
                self.value = value;
                self.digits = self.digits.saturating_add(1);
                Ok(())
            }
            _ => Err(ProtocolError(too_big())),
        }
    }

    fn finish(self, invalid: &str) -> Result<usize, ProtocolError> {
        if self.digits == 0 {
            return Err(ProtocolError(invalid.into()));
        }
        Ok(self.value)
    }
}

/// Reads the decimal number at `at` (at least one digit, at most `max`) and its CRLF; returns
/// it and where the next bytes start.
fn header(input: &[u8], mut at: usize, max: usize) -> Option<(usize, usize)> {
    let first = at;
    let mut value: usize = 0;
    while let Some(&byte) = input.get(at) {
        if !byte.is_ascii_digit() {
            break;
        }
        value = value
            .checked_mul(10)?
            .checked_add(usize::from(byte - b'0'))?;
        if value > max {
            return None;
        }
        at += 1;
    }
    if at == first || input.get(at..at + 2)? != b"\r\n" {
        return None;
    }
    Some((value, at + 2))
}

fn expect_lf(byte: u8) -> Result<(), ProtocolError> {
    if byte == b'\n' {
        Ok(())
    } else {
        Err(ProtocolError("expected LF after CR".into()))
    }
}

fn request_too_big(max: usize) -> ProtocolError {
    ProtocolError(
        Text::new("request larger than ")
            .num(max)
            .str(" bytes")
            .into(),
    )
}

fn too_many_args_text(max: usize) -> String {
    Text::new("more than ").num(max).str(" arguments").into()
}

fn bulk_too_long_text(max: usize) -> String {
    Text::new("argument longer than ")
        .num(max)
        .str(" bytes")
        .into()
}
