//! The one place where core errors leave Rust: as a JavaScript `Error` carrying `fencelock`,
//! `code`, `message`, `text`, and `msLeft`, `token` or `waitedMs` when the core's error has
//! them, which `web/src/errors.js` turns into a `FencelockError`. Fields come from the core's
//! error, never from parsing its text.

use alloc::string::String;

use fencelock_core::Error as CoreError;
use wasm_bindgen::JsValue;

use crate::convert::number;
use crate::record::Record;

/// Returns the plain record of a core error.
pub(crate) fn record(error: &CoreError) -> Record {
    let (ms_left, token, waited_ms) = match error {
        CoreError::Locked { ms_left } | CoreError::NotReady { ms_left } => {
            (Some(number(*ms_left)), None, None)
        }
        CoreError::Stale { token } | CoreError::Expired { token } => {
            (None, Some(number(*token)), None)
        }
        CoreError::Timeout { waited_ms } => (None, None, Some(number(*waited_ms))),
        _ => (None, None, None),
    };
    Record::new()
        .set("fencelock", true)
        .set("code", error.wire_code())
        .set("message", error.message())
        .set("text", error.text())
        .maybe("msLeft", ms_left)
        .maybe("token", token)
        .maybe("waitedMs", waited_ms)
}

/// Returns a thrown `Error` with the record's fields.
pub(crate) fn throw(error: &CoreError) -> JsValue {
    let thrown = js_sys::Error::new(&error.text());
    let fields: JsValue = record(error).into();
    // Copying own enumerable properties of a plain object onto an Error cannot fail.
    let _ = js_sys::Object::assign(&thrown, &fields.into());
    thrown.into()
}

/// Shorthand for `result.map_err(|error| throw(&error))`.
pub(crate) trait OrThrow<T> {
    fn or_throw(self) -> Result<T, JsValue>;
}

impl<T> OrThrow<T> for Result<T, CoreError> {
    fn or_throw(self) -> Result<T, JsValue> {
        self.map_err(|error| throw(&error))
    }
}

#[cfg(any(feature = "engine", feature = "fence", feature = "server"))]
/// Returns the error for a durable file that cannot be trusted (a corrupt ceiling or fence
/// file): a plain `Error` with the core's reason and `code` `CORRUPT`.
pub(crate) fn corrupt_file(error: &fencelock_core::CorruptFile) -> JsValue {
    let thrown = js_sys::Error::new(&error.text());
    let _ = js_sys::Reflect::set(&thrown, &"code".into(), &"CORRUPT".into());
    thrown.into()
}

#[cfg(any(feature = "client", feature = "engine", feature = "server"))]
/// Reports a value of the core that this glue does not know: a bug in the glue. The value is
/// not shown: its `Debug` code would be linked into every page's module for a case that only
/// a glue left behind by a newer core can reach.
pub(crate) fn unknown(what: &str) -> JsValue {
    let message = js_sys::JsString::from("the fencelock wasm module does not know this ")
        .concat(&what.into())
        .concat(&" of fencelock-core (a bug, please report it)".into());
    js_sys::Error::new(&String::from(message)).into()
}
