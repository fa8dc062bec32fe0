//! The resource-side fence. `encode()` is the content of a fence file (or an IndexedDB value)
//! and `WasmFence.decode` reads it back, so the format is the core's on every host.

use alloc::vec::Vec;

use fencelock_core::{Fence, FenceOutcome};
use js_sys::Array;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

use crate::convert::{number, whole};
use crate::errors::corrupt_file;
use crate::record::{text, Record};

/// An in-memory fence: each resource's highest accepted token.
#[wasm_bindgen]
#[derive(Debug, Default)]
pub struct WasmFence {
    fence: Fence,
}

#[wasm_bindgen]
impl WasmFence {
    /// Creates an empty fence.
    #[wasm_bindgen(constructor)]
    pub fn new() -> WasmFence {
        WasmFence::default()
    }

    /// Decodes the content of a fence file.
    ///
    /// # Errors
    /// The bytes are not a fence file: a fence that forgot its marks would accept stale tokens.
    pub fn decode(data: &[u8]) -> Result<WasmFence, JsValue> {
        Fence::decode(data)
            .map(|fence| WasmFence { fence })
            .map_err(|error| corrupt_file(&error))
    }

    /// Returns every mark as the content of a fence file.
    pub fn encode(&self) -> Vec<u8> {
        self.fence.encode()
    }

    /// Checks `token` for `resource` and advances the mark if it is accepted; returns
    /// `{ accepted, advanced, highest }`.
    pub fn check(&mut self, resource_arg: JsValue, token: f64) -> Result<JsValue, JsValue> {
        let resource = &text("resource", &resource_arg)?;
        let token = whole("token", token)?;
        let (accepted, advanced, highest) = match self.fence.check(resource, token) {
            FenceOutcome::Accepted { advanced, highest } => (true, advanced, highest),
            FenceOutcome::Rejected { highest } => (false, false, highest),
            // An outcome added to the core later: its own verdict, and the mark as it stands.
            other => (other.is_accepted(), false, self.fence.highest(resource)),
        };
        Ok(Record::new()
            .set("accepted", accepted)
            .set("advanced", advanced)
            .set("highest", number(highest))
            .into())
    }

    /// Returns the highest token accepted for `resource` (0 if none).
    pub fn highest(&self, resource_arg: JsValue) -> Result<f64, JsValue> {
        let resource = &text("resource", &resource_arg)?;
        Ok(number(self.fence.highest(resource)))
    }

    #[cfg(feature = "vectors")]
    /// Raises the mark of `resource` to at least `token`.
    pub fn restore(&mut self, resource_arg: JsValue, token: f64) -> Result<(), JsValue> {
        let resource = &text("resource", &resource_arg)?;
        self.fence.restore(resource, whole("token", token)?);
        Ok(())
    }

    #[cfg(feature = "vectors")]
    /// Returns every mark as `{ resource, highest }`.
    pub fn marks(&self) -> Array {
        self.fence
            .marks()
            .map(|(resource, highest)| -> JsValue {
                Record::new()
                    .set("resource", resource)
                    .set("highest", number(highest))
                    .into()
            })
            .collect()
    }
}
