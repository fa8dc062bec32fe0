//! Plain JavaScript objects built field by field, and fields read back from the objects callers
//! pass, with a clear `TypeError` for a field of the wrong type.

use alloc::string::String;
use alloc::vec::Vec;

use js_sys::{Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use crate::convert::{type_error, whole};

/// A plain object under construction.
#[derive(Debug)]
pub(crate) struct Record(Object);

impl Record {
    pub(crate) fn new() -> Record {
        Record(Object::new())
    }

    /// Sets `key`; `None` leaves it out.
    pub(crate) fn set(self, key: &str, value: impl Into<JsValue>) -> Record {
        // Setting a property on a fresh plain object cannot fail (no setters, not frozen).
        let _ = Reflect::set(&self.0, &JsValue::from_str(key), &value.into());
        self
    }

    /// Sets `key` when there is a value.
    pub(crate) fn maybe(self, key: &str, value: Option<impl Into<JsValue>>) -> Record {
        match value {
            Some(value) => self.set(key, value),
            None => self,
        }
    }
}

impl From<Record> for JsValue {
    fn from(record: Record) -> JsValue {
        record.0.into()
    }
}

/// Reads `key` of an options object; absent, `undefined` and `null` are `None`.
fn field(object: &JsValue, key: &str) -> Result<Option<JsValue>, JsValue> {
    if object.is_undefined() || object.is_null() {
        return Ok(None);
    }
    if !object.is_object() {
        return Err(type_error("options must be an object"));
    }
    let value = Reflect::get(object, &JsValue::from_str(key))?;
    Ok(if value.is_undefined() || value.is_null() {
        None
    } else {
        Some(value)
    })
}

/// Reads a whole number field.
pub(crate) fn whole_field(object: &JsValue, key: &str) -> Result<Option<u64>, JsValue> {
    match field(object, key)? {
        None => Ok(None),
        Some(value) => match value.as_f64() {
            Some(number) => whole(key, number).map(Some),
            None => Err(type_error(&[key, " must be a number"].concat())),
        },
    }
}

/// Reads a boolean field.
pub(crate) fn bool_field(object: &JsValue, key: &str) -> Result<Option<bool>, JsValue> {
    match field(object, key)? {
        None => Ok(None),
        Some(value) => value
            .as_bool()
            .map(Some)
            .ok_or_else(|| type_error(&[key, " must be a boolean"].concat())),
    }
}

/// Reads a string field.
pub(crate) fn string_field(object: &JsValue, key: &str) -> Result<Option<String>, JsValue> {
    match field(object, key)? {
        None => Ok(None),
        Some(value) => value
            .as_string()
            .map(Some)
            .ok_or_else(|| type_error(&[key, " must be a string"].concat())),
    }
}

/// Returns the `[key, value]` pairs of a settings object (`{ max_ttl_ms: 1000 }`), values as
/// whole numbers (booleans count as 0 and 1, as the vectors write `test_clock: true`).
pub(crate) fn settings(object: &JsValue) -> Result<Vec<(String, u64)>, JsValue> {
    if object.is_undefined() || object.is_null() {
        return Ok(Vec::new());
    }
    let Some(object) = object.dyn_ref::<Object>() else {
        return Err(type_error("settings must be an object of numbers"));
    };
    let mut pairs = Vec::new();
    for entry in Object::entries(object).iter() {
        let entry: js_sys::Array = entry.unchecked_into();
        let name = entry.get(0).as_string().unwrap_or_default();
        let value = entry.get(1);
        let number = match (value.as_f64(), value.as_bool()) {
            (Some(number), _) => whole(&name, number)?,
            (None, Some(flag)) => u64::from(flag),
            _ => {
                return Err(type_error(
                    &["setting ", &name, " must be a number"].concat(),
                ))
            }
        };
        pairs.push((name, number));
    }
    Ok(pairs)
}

/// Reads a string argument; wasm-bindgen's own string passing would trap on a non-string.
pub(crate) fn text(what: &str, value: &JsValue) -> Result<String, JsValue> {
    value
        .as_string()
        .ok_or_else(|| type_error(&[what, " must be a string"].concat()))
}

/// Reads an optional string argument (`undefined` and `null` are none).
pub(crate) fn opt_text(what: &str, value: &JsValue) -> Result<Option<String>, JsValue> {
    if value.is_undefined() || value.is_null() {
        Ok(None)
    } else {
        text(what, value).map(Some)
    }
}
