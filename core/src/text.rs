//! A text builder for messages: pieces of text and integers appended in order, without
//! `core::fmt`, whose machinery is most of what a message costs in the browser's module.

use alloc::string::String;

/// A message under construction: `Text::new("lock ").str(name).str(" token ").num(token)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Text(String);

impl Text {
    /// Starts a message with `text`.
    pub(crate) fn new(text: &str) -> Text {
        Text(String::from(text))
    }

    /// Appends `text`.
    #[must_use]
    pub(crate) fn str(mut self, text: &str) -> Text {
        self.0.push_str(text);
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
