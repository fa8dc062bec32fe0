//! The JSON of the data files (snapshot, fence file, lease horizon), the users file and the
//! audit lines: a writer that emits the bytes these files have always had (compact, fields in
//! a fixed order, the escapes below) and a reader into a small tree with errors that say where.
//!
//! Written here rather than taken from a general serialization library, because every host
//! links the core, the browser downloads it, and these few formats need only strings, whole
//! numbers, booleans, null, arrays and objects.

use alloc::string::String;
use alloc::vec::Vec;

use crate::text::Text;

/// Deepest nesting of arrays and objects the reader accepts, so no input exhausts the stack.
const MAX_DEPTH: usize = 128;

/// Appends `text` as a JSON string: `"` and `\` escaped, control characters as `\b \t \n \f
/// \r` or `\u00xx` (lowercase hex), everything else (non-ASCII included) as is.
pub(crate) fn push_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let mut plain = 0;
    let bytes = text.as_bytes();
    for (at, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            0x0c => b"\\f",
            b'\r' => b"\\r",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(bytes.get(plain..at).unwrap_or_default());
        plain = at + 1;
        if escape.is_empty() {
            // A control character: `\u00` then two lowercase hex digits, the first 0 or 1.
            let low = byte & 0xf;
            out.extend_from_slice(b"\\u00");
            out.push(b'0' + (byte >> 4));
            out.push(if low < 10 {
                b'0' + low
            } else {
                b'a' + low - 10
            });
        } else {
            out.extend_from_slice(escape);
        }
    }
    out.extend_from_slice(bytes.get(plain..).unwrap_or_default());
    out.push(b'"');
}

/// Appends the decimal digits of `value`.
pub(crate) fn push_number(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Writes one JSON object, field by field in the order they are given.
#[derive(Debug)]
pub(crate) struct ObjectWriter<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> ObjectWriter<'a> {
    /// Starts an object at the end of `out`.
    pub(crate) fn begin(out: &'a mut Vec<u8>) -> ObjectWriter<'a> {
        out.push(b'{');
        ObjectWriter { out, empty: true }
    }

    /// Writes `"key":` and returns the buffer, for the caller to write the value.
    pub(crate) fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        push_string(self.out, key);
        self.out.push(b':');
        self.out
    }

    /// Writes a string field.
    pub(crate) fn text(&mut self, key: &str, value: &str) -> &mut Self {
        push_string(self.key(key), value);
        self
    }

    /// Writes a string field, or `null` for `None`.
    pub(crate) fn opt_text(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => push_string(self.key(key), value),
            None => self.key(key).extend_from_slice(b"null"),
        }
        self
    }

    /// Writes a whole-number field.
    pub(crate) fn number(&mut self, key: &str, value: u64) -> &mut Self {
        push_number(self.key(key), value);
        self
    }

    /// Writes a boolean field.
    pub(crate) fn boolean(&mut self, key: &str, value: bool) -> &mut Self {
        let literal: &[u8] = if value { b"true" } else { b"false" };
        self.key(key).extend_from_slice(literal);
        self
    }

    /// Closes the object.
    pub(crate) fn end(self) {
        self.out.push(b'}');
    }
}

/// A parsed JSON value. Numbers keep their text: these formats need only whole numbers, which
/// [`Value::number`] checks, and no value is ever a float.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Number(String),
    Text(String),
    Array(Vec<Value>),
    /// Members in document order, duplicates kept (objects decide what a duplicate means).
    Object(Vec<(String, Value)>),
}

impl Value {
    /// Names the kind of value, for errors.
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::Text(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }

    /// Returns the value as a whole number from 0 to `max`.
    ///
    /// # Errors
    /// `invalid type` unless it is a number, `invalid value` unless it is whole and in range;
    /// `what` names it.
    pub(crate) fn number(&self, what: &str, max: u64) -> Result<u64, String> {
        let Value::Number(digits) = self else {
            return Err(self.wrong_type(what, "a whole number"));
        };
        if digits.contains(['.', 'e', 'E']) {
            return Err(Text::new("invalid type for `")
                .str(what)
                .str("`: expected a whole number, got ")
                .str(digits)
                .into());
        }
        match digits.parse::<u64>() {
            Ok(value) if value <= max => Ok(value),
            _ => Err(Text::new("invalid value for `")
                .str(what)
                .str("`: expected a whole number from 0 to ")
                .num(max)
                .str(", got ")
                .str(digits)
                .into()),
        }
    }

    /// Returns the value as text.
    ///
    /// # Errors
    /// `invalid type` unless it is a string.
    pub(crate) fn text(&self, what: &str) -> Result<&str, String> {
        match self {
            Value::Text(text) => Ok(text),
            _ => Err(self.wrong_type(what, "a string")),
        }
    }

    /// Returns the value as a boolean.
    ///
    /// # Errors
    /// `invalid type` unless it is `true` or `false`.
    pub(crate) fn boolean(&self, what: &str) -> Result<bool, String> {
        match self {
            Value::Bool(value) => Ok(*value),
            _ => Err(self.wrong_type(what, "a boolean")),
        }
    }

    /// Returns the items of an array.
    ///
    /// # Errors
    /// `invalid type` unless it is an array.
    pub(crate) fn array(&self, what: &str) -> Result<&[Value], String> {
        match self {
            Value::Array(items) => Ok(items),
            _ => Err(self.wrong_type(what, "an array")),
        }
    }

    /// Returns the members of an object, as given.
    ///
    /// # Errors
    /// `invalid type` unless it is an object.
    pub(crate) fn members(&self, what: &str) -> Result<&[(String, Value)], String> {
        match self {
            Value::Object(members) => Ok(members),
            _ => Err(self.wrong_type(what, "an object")),
        }
    }

    /// Returns the fields of an object that stands for a record.
    ///
    /// # Errors
    /// `invalid type` unless it is an object.
    pub(crate) fn fields<'a>(&'a self, what: &'a str) -> Result<Fields<'a>, String> {
        Ok(Fields {
            members: self.members(what)?,
            what,
        })
    }

    fn wrong_type(&self, what: &str, expected: &str) -> String {
        Text::new("invalid type for `")
            .str(what)
            .str("`: expected ")
            .str(expected)
            .str(", got ")
            .str(self.kind())
            .into()
    }
}

/// The fields of a record: each may appear once; [`Fields::only`] refuses unknown ones.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    members: &'a [(String, Value)],
    what: &'a str,
}

impl<'a> Fields<'a> {
    /// Returns the field `key`, if present.
    ///
    /// # Errors
    /// `duplicate field` if it appears more than once.
    pub(crate) fn get(&self, key: &str) -> Result<Option<&'a Value>, String> {
        let mut found = self.members.iter().filter(|(name, _)| name == key);
        let first = found.next().map(|(_, value)| value);
        if found.next().is_some() {
            return Err(self.says("duplicate field `", key));
        }
        Ok(first)
    }

    /// Returns the field `key`.
    ///
    /// # Errors
    /// `missing field` if it is absent, `duplicate field` if repeated.
    pub(crate) fn required(&self, key: &str) -> Result<&'a Value, String> {
        self.get(key)?
            .ok_or_else(|| self.says("missing field `", key))
    }

    /// Returns the whole-number field `key`, at most `max`.
    ///
    /// # Errors
    /// As [`Fields::required`] and [`Value::number`].
    pub(crate) fn number(&self, key: &str, max: u64) -> Result<u64, String> {
        self.required(key)?.number(key, max)
    }

    /// Returns the whole-number field `key`, or 0 when it is absent.
    ///
    /// # Errors
    /// As [`Value::number`]; `null` is not a number.
    pub(crate) fn number_or_zero(&self, key: &str) -> Result<u64, String> {
        self.get(key)?
            .map_or(Ok(0), |value| value.number(key, u64::MAX))
    }

    /// Returns the string field `key`.
    ///
    /// # Errors
    /// As [`Fields::required`] and [`Value::text`].
    pub(crate) fn text(&self, key: &str) -> Result<String, String> {
        self.required(key)?.text(key).map(String::from)
    }

    /// Returns the string field `key`, `None` when it is absent or `null`.
    ///
    /// # Errors
    /// As [`Value::text`] for anything else.
    pub(crate) fn opt_text(&self, key: &str) -> Result<Option<String>, String> {
        match self.get(key)? {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value.text(key).map(|text| Some(String::from(text))),
        }
    }

    /// Returns the boolean field `key`, false when it is absent.
    ///
    /// # Errors
    /// As [`Value::boolean`].
    pub(crate) fn boolean_or_false(&self, key: &str) -> Result<bool, String> {
        self.get(key)?.map_or(Ok(false), |value| value.boolean(key))
    }

    /// Returns the items of the array field `key`, empty when it is absent.
    ///
    /// # Errors
    /// As [`Value::array`].
    pub(crate) fn array_or_empty(&self, key: &str) -> Result<&'a [Value], String> {
        self.get(key)?.map_or(Ok(&[][..]), |value| value.array(key))
    }

    /// Refuses any field not in `known`.
    ///
    /// # Errors
    /// `unknown field` naming the first one and the fields expected.
    pub(crate) fn only(&self, known: &[&str]) -> Result<(), String> {
        let Some((unknown, _)) = self
            .members
            .iter()
            .find(|(name, _)| !known.contains(&name.as_str()))
        else {
            return Ok(());
        };
        let mut text = Text::new("unknown field `").str(unknown).str("` in ");
        text = text.str(self.what).str(", expected one of ");
        for (at, name) in known.iter().enumerate() {
            if at > 0 {
                text = text.str(", ");
            }
            text = text.str("`").str(name).str("`");
        }
        Err(text.into())
    }

    fn says(&self, what: &str, key: &str) -> String {
        Text::new(what).str(key).str("` in ").str(self.what).into()
    }
}

/// Parses one JSON value that fills `bytes` (whitespace around it allowed).
///
/// # Errors
/// What is wrong and where: `expected ... at line L column C`.
pub(crate) fn parse(bytes: &[u8]) -> Result<Value, String> {
    let mut reader = Reader { bytes, at: 0 };
    let value = reader.value(0)?;
    reader.skip_space();
    if reader.at < bytes.len() {
        return Err(reader.error("trailing characters after the value"));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn value(&mut self, depth: usize) -> Result<Value, String> {
        self.skip_space();
        let Some(&first) = self.bytes.get(self.at) else {
            return Err(self.error("unexpected end of input, expected a value"));
        };
        match first {
            b'{' | b'[' if depth >= MAX_DEPTH => Err(self.error("nesting too deep")),
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(Value::Text),
            b't' => self.literal(b"true", Value::Bool(true)),
            b'f' => self.literal(b"false", Value::Bool(false)),
            b'n' => self.literal(b"null", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(self.error("expected a value")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, String> {
        self.at += 1;
        let mut members = Vec::new();
        self.skip_space();
        if self.eat(b'}') {
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_space();
            if self.bytes.get(self.at) != Some(&b'"') {
                return Err(self.error("expected a string as the key"));
            }
            let key = self.string()?;
            self.skip_space();
            if !self.eat(b':') {
                return Err(self.error("expected `:`"));
            }
            let value = self.value(depth)?;
            members.push((key, value));
            self.skip_space();
            if self.eat(b'}') {
                return Ok(Value::Object(members));
            }
            if !self.eat(b',') {
                return Err(self.error("expected `,` or `}`"));
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, String> {
        self.at += 1;
        let mut items = Vec::new();
        self.skip_space();
        if self.eat(b']') {
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            self.skip_space();
            if self.eat(b']') {
                return Ok(Value::Array(items));
            }
            if !self.eat(b',') {
                return Err(self.error("expected `,` or `]`"));
            }
        }
    }

    fn literal(&mut self, word: &[u8], value: Value) -> Result<Value, String> {
        if self.bytes.get(self.at..self.at + word.len()) == Some(word) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a value"))
        }
    }

    /// Reads `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?` and keeps its text.
    fn number(&mut self) -> Result<Value, String> {
        let start = self.at;
        self.eat(b'-');
        if !self.eat(b'0') && self.digits() == 0 {
            return Err(self.error("expected a digit"));
        }
        if self.eat(b'.') && self.digits() == 0 {
            return Err(self.error("expected a digit after `.`"));
        }
        if self.eat(b'e') || self.eat(b'E') {
            let _ = self.eat(b'+') || self.eat(b'-');
            if self.digits() == 0 {
                return Err(self.error("expected a digit in the exponent"));
            }
        }
        let text = self.bytes.get(start..self.at).unwrap_or_default();
        // Only ASCII digits and signs were read.
        Ok(Value::Number(String::from_utf8_lossy(text).into_owned()))
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        self.at - start
    }

    fn string(&mut self) -> Result<String, String> {
        self.at += 1;
        let mut text = Vec::new();
        loop {
            let Some(&byte) = self.bytes.get(self.at) else {
                return Err(self.error("unexpected end of input in a string"));
            };
            match byte {
                b'"' => break,
                b'\\' => {
                    self.at += 1;
                    self.escape(&mut text)?;
                    continue;
                }
                0..=0x1f => return Err(self.error("control character in a string")),
                _ => text.push(byte),
            }
            self.at += 1;
        }
        let start = self.at;
        self.at += 1;
        String::from_utf8(text).map_err(|_| {
            self.at = start;
            self.error("invalid UTF-8 in a string")
        })
    }

    /// Reads the escape after a `\` (at `self.at`) and appends what it stands for.
    fn escape(&mut self, text: &mut Vec<u8>) -> Result<(), String> {
        let Some(&kind) = self.bytes.get(self.at) else {
            return Err(self.error("unexpected end of input in a string"));
        };
        self.at += 1;
        let byte = match kind {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let ch = self.unicode_escape()?;
                let mut utf8 = [0; 4];
                text.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
                return Ok(());
            }
            _ => {
                self.at -= 1;
                return Err(self.error("invalid escape"));
            }
        };
        text.push(byte);
        Ok(())
    }

    /// Reads `XXXX` after `\u`, and a second `\uXXXX` when the first is a leading surrogate.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let first = self.hex4()?;
        let code = match first {
            0xd800..=0xdbff => {
                if self.bytes.get(self.at..self.at + 2) != Some(b"\\u") {
                    return Err(self.error("lone leading surrogate in a \\u escape"));
                }
                self.at += 2;
                let second = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&second) {
                    return Err(self.error("lone leading surrogate in a \\u escape"));
                }
                0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
            }
            0xdc00..=0xdfff => return Err(self.error("lone trailing surrogate in a \\u escape")),
            _ => first,
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self
                .bytes
                .get(self.at)
                .and_then(|&byte| char::from(byte).to_digit(16))
                .ok_or_else(|| self.error("expected 4 hex digits in a \\u escape"))?;
            code = code * 16 + digit;
            self.at += 1;
        }
        Ok(code)
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.bytes.get(self.at) == Some(&byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn skip_space(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.at += 1;
        }
    }

    /// Says `what` at the current position, as a line and a column counted from 1 (the column
    /// in bytes).
    fn error(&self, what: &str) -> String {
        let before = self.bytes.get(..self.at).unwrap_or(self.bytes);
        let line = before.iter().filter(|&&byte| byte == b'\n').count() + 1;
        let column = before
            .iter()
            .rev()
            .take_while(|&&byte| byte != b'\n')
            .count()
            + 1;
        Text::new(what)
            .str(" at line ")
            .num(line)
            .str(" column ")
            .num(column)
            .into()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn written(text: &str) -> String {
        let mut out = Vec::new();
        push_string(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_written_with_the_files_escapes() {
        assert_eq!(
            written("plain é日本😀 / \u{7f}"),
            "\"plain é日本😀 / \u{7f}\""
        );
        assert_eq!(written("\"\\"), r#""\"\\""#);
        assert_eq!(
            written("\u{0}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}"),
            "\"\\u0000\\b\\t\\n\\u000b\\f\\r\\u001f\u{7f}\""
        );
        // Every control character, against the escapes of the files written so far.
        for byte in 0u8..0x20 {
            let text = char::from(byte).to_string();
            let expected = serde_json::to_string(&text).unwrap();
            assert_eq!(written(&text), expected, "byte {byte}");
        }
    }

    #[test]
    fn what_is_written_reads_back() {
        let mut out = Vec::new();
        let mut object = ObjectWriter::begin(&mut out);
        object
            .text("name", "a\"b\n\u{1}é")
            .opt_text("none", None)
            .number("max", u64::MAX)
            .boolean("yes", true);
        object.end();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            r#"{"name":"a\"b\n\u0001é","none":null,"max":18446744073709551615,"yes":true}"#
        );
        let value = parse(&out).unwrap();
        let fields = value.fields("test").unwrap();
        assert_eq!(fields.text("name").unwrap(), "a\"b\n\u{1}é");
        assert_eq!(fields.opt_text("none").unwrap(), None);
        assert_eq!(fields.number("max", u64::MAX).unwrap(), u64::MAX);
        assert!(fields.boolean_or_false("yes").unwrap());
        assert!(!fields.boolean_or_false("absent").unwrap());
    }

    #[test]
    fn other_writers_spacing_and_escapes_are_read() {
        // As Python's json.dumps writes: spaces after separators, non-ASCII as \u escapes.
        let value =
            parse(b" {\"a\": \"\\u00e9\\ud83d\\ude00\\/\", \"b\": [1, 2],\r\n\t\"c\": null} ")
                .unwrap();
        assert_eq!(
            value,
            Value::Object(alloc::vec![
                ("a".to_string(), Value::Text("é😀/".to_string())),
                (
                    "b".to_string(),
                    Value::Array(alloc::vec![
                        Value::Number("1".to_string()),
                        Value::Number("2".to_string())
                    ])
                ),
                ("c".to_string(), Value::Null),
            ])
        );
    }

    #[test]
    fn malformed_json_is_refused_saying_what_and_where() {
        let deep = "[".repeat(MAX_DEPTH + 1);
        for (bad, says) in [
            (
                &b""[..],
                "unexpected end of input, expected a value at line 1 column 1",
            ),
            (b"{\"a\" 1}", "expected `:` at line 1 column 6"),
            (
                b"{\"a\":1,}",
                "expected a string as the key at line 1 column 8",
            ),
            (b"[1 2]", "expected `,` or `]` at line 1 column 4"),
            (b"{\"a\":1 \"b\"}", "expected `,` or `}` at line 1 column 8"),
            (
                b"{}\n x",
                "trailing characters after the value at line 2 column 2",
            ),
            (b"tru", "expected a value at line 1 column 1"),
            (
                b"01",
                "trailing characters after the value at line 1 column 2",
            ),
            (b"-", "expected a digit at line 1 column 2"),
            (b"1.", "expected a digit after `.` at line 1 column 3"),
            (
                b"1e+",
                "expected a digit in the exponent at line 1 column 4",
            ),
            (
                b"\"a\x01\"",
                "control character in a string at line 1 column 3",
            ),
            (b"\"\\x\"", "invalid escape at line 1 column 3"),
            (
                b"\"\\u12\"",
                "expected 4 hex digits in a \\u escape at line 1 column 6",
            ),
            (
                b"\"\\ud800\"",
                "lone leading surrogate in a \\u escape at line 1 column 8",
            ),
            (
                b"\"\\udc00\"",
                "lone trailing surrogate in a \\u escape at line 1 column 8",
            ),
            (b"\"\xff\"", "invalid UTF-8 in a string at line 1 column 3"),
            (
                b"\"open",
                "unexpected end of input in a string at line 1 column 6",
            ),
            (deep.as_bytes(), "nesting too deep at line 1 column 129"),
        ] {
            let error = parse(bad).unwrap_err();
            assert_eq!(error, says, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn records_refuse_wrong_missing_repeated_and_unknown_fields() {
        let check = |json: &str, says: &str| {
            let value = parse(json.as_bytes()).unwrap();
            let fields = value.fields("the record").unwrap();
            let error = fields
                .only(&["n", "t"])
                .and_then(|()| fields.number("n", 10))
                .and_then(|_| fields.text("t"))
                .unwrap_err();
            assert_eq!(error, says, "{json}");
        };
        check(r#"{"t":"x"}"#, "missing field `n` in the record");
        check(
            r#"{"n":1,"n":2,"t":"x"}"#,
            "duplicate field `n` in the record",
        );
        check(
            r#"{"n":1,"t":"x","u":0}"#,
            "unknown field `u` in the record, expected one of `n`, `t`",
        );
        check(
            r#"{"n":"1","t":"x"}"#,
            "invalid type for `n`: expected a whole number, got a string",
        );
        check(
            r#"{"n":1.5,"t":"x"}"#,
            "invalid type for `n`: expected a whole number, got 1.5",
        );
        check(
            r#"{"n":-1,"t":"x"}"#,
            "invalid value for `n`: expected a whole number from 0 to 10, got -1",
        );
        check(
            r#"{"n":11,"t":"x"}"#,
            "invalid value for `n`: expected a whole number from 0 to 10, got 11",
        );
        check(
            r#"{"n":1,"t":null}"#,
            "invalid type for `t`: expected a string, got null",
        );
        assert_eq!(
            parse(b"[]").unwrap().fields("the record").unwrap_err(),
            "invalid type for `the record`: expected an object, got an array"
        );
    }
}
