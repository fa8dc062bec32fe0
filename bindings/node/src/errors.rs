//! The one place where core errors leave Rust: as a plain record `{ code, message, text,
//! msLeft?, token?, waitedMs? }` that `node/lib/errors.js` turns into the `FencelockError`
//! subclass of its code. Fields come from the core's error, never from parsing its text.

use fencelock_core::Error as CoreError;
use napi::bindgen_prelude::ToNapiValue;
use napi::Env;
use napi_derive::napi;

use crate::convert::number;

/// A core error as data.
#[napi(object)]
#[derive(Debug, Clone)]
pub struct ErrorRecord {
    /// Always true: marks a thrown value as a fencelock error record.
    pub fencelock: bool,
    /// The stable wire code (`LOCKED`, `STALE`, ..., or a server's own code).
    pub code: String,
    /// The text after the code.
    pub message: String,
    /// `CODE message`, exactly the text of a wire error reply.
    pub text: String,
    /// `LOCKED` and `NOTREADY`: ms until the lock (or the server) frees up.
    pub ms_left: Option<f64>,
    /// `STALE` and `EXPIRED`: the token the request named.
    pub token: Option<f64>,
    /// `TIMEOUT`: how long the request waited.
    pub waited_ms: Option<f64>,
}

/// Returns the record of a core error.
pub(crate) fn record(error: &CoreError) -> ErrorRecord {
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
    ErrorRecord {
        fencelock: true,
        code: error.wire_code().to_owned(),
        message: error.message(),
        text: error.to_string(),
        ms_left,
        token,
        waited_ms,
    }
}

/// Returns a napi error that throws a JavaScript `Error` carrying the record's fields
/// (`fencelock`, `code`, `message`, `text`, `msLeft`, `token`, `waitedMs`).
pub(crate) fn throw(env: &Env, error: &CoreError) -> napi::Error {
    match error_object(env, record(error)) {
        Ok(value) => value,
        // Only when the engine cannot build an object: throw the text instead.
        Err(failure) => failure,
    }
}

fn error_object(env: &Env, record: ErrorRecord) -> napi::Result<napi::Error> {
    // napi rethrows a referenced value only if it is an `Error`, so start from one.
    let mut object = env.create_error(napi::Error::from_reason(record.text.clone()))?;
    object.set("fencelock", true)?;
    object.set("code", record.code)?;
    object.set("message", record.message)?;
    object.set("text", record.text)?;
    if let Some(ms_left) = record.ms_left {
        object.set("msLeft", ms_left)?;
    }
    if let Some(token) = record.token {
        object.set("token", token)?;
    }
    if let Some(waited_ms) = record.waited_ms {
        object.set("waitedMs", waited_ms)?;
    }
    Ok(napi::Error::from(object.into_unknown(env)?))
}

/// Shorthand for `result.map_err(|error| throw(env, &error))`.
pub(crate) trait OrThrow<T> {
    fn or_throw(self, env: &Env) -> napi::Result<T>;
}

impl<T> OrThrow<T> for Result<T, CoreError> {
    fn or_throw(self, env: &Env) -> napi::Result<T> {
        self.map_err(|error| throw(env, &error))
    }
}

/// Returns the error for a durable file that cannot be trusted (a corrupt ceiling or fence
/// file): a plain `Error` (code `InvalidArg`) with the core's reason.
pub(crate) fn corrupt_file(error: &fencelock_core::CorruptFile) -> napi::Error {
    napi::Error::new(napi::Status::InvalidArg, error.to_string())
}

/// Reports a value of the core that this glue does not know: a bug in the glue.
pub(crate) fn unknown(what: &str, value: &dyn core::fmt::Debug) -> napi::Error {
    napi::Error::from_reason(format!(
        "the fencelock addon does not know this {what} of fencelock-core (a bug, please report it): {value:?}"
    ))
}
