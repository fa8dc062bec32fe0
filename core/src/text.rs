//! A text builder for messages: pieces of text and integers appended in order, without
//! `core::fmt`, whose machinery is most of what a message costs in the browser's module.

use alloc::string::String;

/// A message under construction: `Text::new("lock ").str(name).str(" token ").num(token)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Text(String);

impl Text {
    /// Starts a message with `text`.
    pub(crate) fn new(text: &str) -> Text {
        // Room for what a message usually appends, so it is not regrown piece by piece.
        let mut start = String::with_capacity(text.len() + 64);
        start.push_str(text);
        Text(start)
    }

    /// Appends `text`.
    #[must_use]
    pub(crate) fn str(mut self, text: &str) -> Text {
        self.0.push_str(text);
        self
    }

    /// Appends `text` quoted as Rust's `{:?}` shows it for printable text: in double quotes,
    /// with `"` and `\\` escaped, `\n`, `\r`, `\t` and `\0` as such and other control
    /// characters as `\u{..}`. Other characters stay as they are (`{:?}` also escapes the
    /// non-printable ones outside ASCII, by tables this leaves out of the browser's module).
    #[must_use]
    pub(crate) fn quoted(mut self, text: &str) -> Text {
        push_quoted(&mut self.0, text);
        self
    }

    /// Appends `byte` escaped by `core::ascii::escape_default` (its iterator: no `core::fmt`):
    /// printable ASCII as itself (`'`, `"` and `\\` after a backslash), `\t`, `\r`, `\n`, any
    /// other byte as `\xNN`.
    #[must_use]
    pub(crate) fn ascii_escaped(mut self, byte: u8) -> Text {
        self.0
            .extend(core::ascii::escape_default(byte).map(char::from));
        self
    }

    /// Appends `byte` as two lowercase hexadecimal digits (`{:02x}`).
    #[must_use]
    pub(crate) fn hex_byte(mut self, byte: u8) -> Text {
        for nibble in [byte >> 4, byte & 0xf] {
            let digit = b"0123456789abcdef".get(usize::from(nibble)).copied();
            self.0.push(char::from(digit.unwrap_or(b'0')));
        }
        self
    }

    /// Appends the decimal digits of `value`.
    #[must_use]
    pub(crate) fn num(mut self, value: impl itoa::Integer) -> Text {
        self.0.push_str(itoa::Buffer::new().format(value));
        self
    }
}

impl From<Text> for String {
    fn from(text: Text) -> String {
        text.0
    }
}

/// Appends `text` to `out` quoted as [`Text::quoted`] does.
pub(crate) fn push_quoted(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            ch if ch.is_control() => out.extend(ch.escape_unicode()),
            ch => out.push(ch),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::Text;
    use alloc::string::String;

    #[test]
    fn quoted_matches_debug_for_printable_text_and_controls() {
        for text in [
            "jobs/\"1\"",
            "é\n",
            "tab\t1\r\0",
            "back\\slash 'single'",
            "\u{1b}[31m\u{7f}\u{85}",
            "",
            "😀 ok",
        ] {
            let quoted: String = Text::new("").quoted(text).into();
            assert_eq!(quoted, std::format!("{text:?}"));
        }
        for byte in 0..=255u8 {
            let escaped: String = Text::new("").ascii_escaped(byte).into();
            assert_eq!(
                escaped,
                std::format!("{}", core::ascii::escape_default(byte))
            );
        }
        for byte in [0u8, 9, 0x1f, 0xa0, 0xff] {
            let hex: String = Text::new("").hex_byte(byte).into();
            assert_eq!(hex, std::format!("{byte:02x}"));
        }
    }
}
