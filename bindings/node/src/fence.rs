//! The resource-side fence; `node/lib/fence.js` writes `encode()` to its file and reads it back
//! with `NativeFence.decode`, so the file format is the core's.

use fencelock_core::{Fence, FenceOutcome};
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;

use crate::convert::{number, whole};
use crate::errors::corrupt_file;

/// The answer of a fence check.
#[napi(object)]
#[derive(Debug)]
pub struct FenceCheck {
    /// Whether the write may proceed.
    pub accepted: bool,
    /// Whether the mark moved (the file must then be rewritten before the write).
    pub advanced: bool,
    /// The mark after the check.
    pub highest: f64,
}

/// One resource's high-water mark.
#[napi(object)]
#[derive(Debug)]
pub struct FenceMarkRecord {
    /// The resource.
    pub resource: String,
    /// The highest token accepted for it.
    pub highest: f64,
}

/// An in-memory fence.
#[napi]
#[derive(Debug, Default)]
pub struct NativeFence {
    fence: Fence,
}

#[napi]
impl NativeFence {
    /// Creates an empty fence.
    #[napi(constructor)]
    pub fn new() -> Self {
        NativeFence::default()
    }

    /// Decodes the content of a fence file.
    ///
    /// # Errors
    /// The bytes are not a fence file: a fence that forgot its marks would accept stale tokens.
    #[napi(factory)]
    pub fn decode(data: Buffer) -> napi::Result<NativeFence> {
        Fence::decode(&data)
            .map(|fence| NativeFence { fence })
            .map_err(|error| corrupt_file(&error))
    }

    /// Returns every mark as the content of a fence file, to write atomically and durably.
    #[napi]
    pub fn encode(&self) -> Buffer {
        Buffer::from(self.fence.encode())
    }

    /// Checks `token` for `resource` and advances the mark if it is accepted.
    #[napi]
    pub fn check(&mut self, resource: String, token: f64) -> napi::Result<FenceCheck> {
        let token = whole("token", token)?;
        Ok(match self.fence.check(&resource, token) {
            FenceOutcome::Accepted { advanced, highest } => FenceCheck {
                accepted: true,
                advanced,
                highest: number(highest),
            },
            FenceOutcome::Rejected { highest } => FenceCheck {
                accepted: false,
                advanced: false,
                highest: number(highest),
            },
            // An outcome added to the core later: its own verdict, and the mark as it stands.
            other => FenceCheck {
                accepted: other.is_accepted(),
                advanced: false,
                highest: number(self.fence.highest(&resource)),
            },
        })
    }

    /// Returns the highest token accepted for `resource` (0 if none).
    #[napi]
    pub fn highest(&self, resource: String) -> f64 {
        number(self.fence.highest(&resource))
    }

    /// Raises the mark of `resource` to at least `token`.
    #[napi]
    pub fn restore(&mut self, resource: String, token: f64) -> napi::Result<()> {
        self.fence.restore(&resource, whole("token", token)?);
        Ok(())
    }

    /// Returns every mark.
    #[napi]
    pub fn marks(&self) -> Vec<FenceMarkRecord> {
        self.fence
            .marks()
            .map(|(resource, highest)| FenceMarkRecord {
                resource: resource.to_owned(),
                highest: number(highest),
            })
            .collect()
    }
}
