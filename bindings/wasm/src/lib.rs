//! wasm-bindgen glue exposing fencelock-core to JavaScript: the module of the npm package
//! `fencelock-web`, loaded by pages and workers (`--target web`) and by Node (`--target nodejs`,
//! for the shared vectors). Every rule lives in the core; this crate only converts values. The
//! JavaScript in `web/src` wraps these classes (`WasmEngine`, `WasmFence`, `WasmServer`,
//! `WasmClient`) and turns the error records they throw into `FencelockError`s.
//!
//! Numbers: tokens and milliseconds cross as JavaScript numbers. Tokens never exceed 2^53-1
//! (the core's `MAX_TOKEN`), so they are exact; inputs are checked to be whole and in range.
//! Nothing here panics on input: a panic in wasm poisons the whole module.
//!
//! Features pick the classes a build exports (the browser's module has the client, the fence
//! and the server, without the entry points only the Node build's tests call: feature
//! `vectors`); helpers that a partial build does not reach are allowed to be unused.
#![cfg_attr(
    not(all(
        feature = "client",
        feature = "engine",
        feature = "fence",
        feature = "server",
        feature = "vectors"
    )),
    allow(dead_code, unused_imports)
)]
// On wasm32 the module links no `std`: its panic handler formats the panic message, which
// would keep `core::fmt` in every page's module. A panic here traps (as std's `panic=abort`
// did); nothing in the glue or the core panics on input.
#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

#[cfg(all(target_arch = "wasm32", not(test)))]
#[global_allocator]
static ALLOCATOR: heap::Global<heap::Wasm> = heap::Global::new(heap::Wasm);

// Natively only its tests use it.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod heap;

#[cfg(all(target_arch = "wasm32", not(test)))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(feature = "client")]
mod client;
mod convert;
#[cfg(any(feature = "client", feature = "engine"))]
mod engine;
mod errors;
#[cfg(feature = "fence")]
mod fence;
mod record;
#[cfg(feature = "server")]
mod server;

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

use crate::convert::number;
use crate::record::Record;

/// Returns the core's constants: `{ dataFiles, fenceFileVersion, maxToken, snapshotVersion,
/// version }`.
#[wasm_bindgen]
pub fn constants() -> JsValue {
    let files = js_sys::Array::new();
    for file in fencelock_core::DataFile::ALL {
        files.push(&JsValue::from_str(file.name()));
    }
    Record::new()
        .set("dataFiles", files)
        .set("fenceFileVersion", fencelock_core::FENCE_FILE_VERSION)
        .set("maxToken", number(fencelock_core::MAX_TOKEN))
        .set("snapshotVersion", fencelock_core::SNAPSHOT_VERSION)
        .set("version", env!("CARGO_PKG_VERSION"))
        .into()
}
