//! The protocol server: bytes and time in, outputs out; `web/src/worker.js` is the I/O loop.

use alloc::string::String;
use alloc::vec::Vec;

use fencelock_core::protocol::{Output, Server};
use fencelock_core::{DataFile, DataFiles, FileAction, Recovery};
use js_sys::{Array, Object, Uint8Array};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

use crate::convert::{
    engine_config, instant, number, server_config, start_engine, type_error, whole,
};
use crate::errors::{corrupt_file, unknown};
use crate::record::{opt_text, Record};

/// The core's sans-IO protocol server with its engine.
#[wasm_bindgen]
#[derive(Debug)]
pub struct WasmServer {
    server: Server,
    recovery: Option<JsValue>,
}

#[wasm_bindgen]
impl WasmServer {
    #[cfg(feature = "vectors")]
    /// Creates a server with no durable state. `config` holds engine settings, `serverConfig`
    /// protocol limits (`max_connections`, ..., `test_clock` as a boolean); `start` is as for
    /// `WasmEngine`.
    #[wasm_bindgen(constructor)]
    pub fn new(
        config: JsValue,
        server_settings: JsValue,
        hash_seed: Option<Vec<u8>>,
        start_arg: JsValue,
        ceiling: Option<f64>,
        snapshot: Option<Vec<u8>>,
        now_ms: Option<f64>,
    ) -> Result<WasmServer, JsValue> {
        let start = opt_text("start", &start_arg)?;
        let engine_config = engine_config(&config, hash_seed)?;
        let server_config = server_config(&server_settings)?;
        let engine = start_engine(engine_config, start, ceiling, snapshot, now_ms)?;
        Ok(WasmServer {
            server: Server::new(engine, server_config),
            recovery: None,
        })
    }

    /// Starts a server from the durable files as the host read them: `files` maps each name
    /// of `constants().dataFiles` to its bytes (absent or null: no such file).
    /// `takeRecovery()` then says which start was taken and what to do before serving.
    ///
    /// # Errors
    /// A corrupt ceiling (guessing one could reissue tokens) or an unknown file name.
    pub fn recover(
        now_ms: f64,
        files: JsValue,
        config: JsValue,
        server_settings: JsValue,
        hash_seed: Option<Vec<u8>>,
    ) -> Result<WasmServer, JsValue> {
        let now = instant(now_ms)?;
        let engine_config = engine_config(&config, hash_seed)?;
        let server_config = server_config(&server_settings)?;
        let contents = file_contents(&files)?;
        let mut read = DataFiles::default();
        for (file, bytes) in &contents {
            read.set(*file, Some(bytes));
        }
        let mut plan = Recovery::plan(read).map_err(|error| corrupt_file(&error))?;
        let engine = plan.start_engine(now, engine_config);
        let actions: Array = core::mem::take(&mut plan.actions)
            .into_iter()
            .map(file_output)
            .collect();
        let recovery = Record::new()
            .set("kind", plan.kind.as_str())
            .set("summary", plan.summary(now, &engine))
            .set("hasGrace", plan.kind.has_grace())
            .maybe("refusal", plan.refusal.take())
            .set("actions", actions);
        Ok(WasmServer {
            server: Server::new(engine, server_config),
            recovery: Some(recovery.into()),
        })
    }

    /// Returns how `recover` started this server (once: its actions move to the caller), or
    /// undefined if it was built directly.
    #[wasm_bindgen(js_name = takeRecovery)]
    pub fn take_recovery(&mut self) -> JsValue {
        self.recovery.take().unwrap_or(JsValue::UNDEFINED)
    }

    #[cfg(feature = "vectors")]
    /// Ends the run cleanly: the outputs then yield the ceiling write, the last transmits and
    /// closes, and the snapshot write, in order.
    pub fn shutdown(&mut self, now_ms: f64) -> Result<(), JsValue> {
        self.server.shutdown(instant(now_ms)?);
        Ok(())
    }

    /// Registers a connection and returns its id (never 0).
    pub fn connect(&mut self, now_ms: f64) -> Result<f64, JsValue> {
        Ok(number(self.server.connect(instant(now_ms)?)))
    }

    /// Feeds received bytes, split anywhere.
    pub fn receive(&mut self, now_ms: f64, conn: f64, data: &[u8]) -> Result<(), JsValue> {
        let now = instant(now_ms)?;
        self.server.receive(now, whole("conn", conn)?, data);
        Ok(())
    }

    #[cfg(feature = "vectors")]
    /// Runs one already-framed request (command name first, each a `Uint8Array`).
    pub fn execute(&mut self, now_ms: f64, conn: f64, argv: Array) -> Result<(), JsValue> {
        let now = instant(now_ms)?;
        let mut args = Vec::new();
        for arg in argv.iter() {
            let bytes = arg
                .dyn_into::<Uint8Array>()
                .map_err(|_| type_error("execute takes an array of Uint8Array"))?;
            args.push(bytes.to_vec());
        }
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        self.server.execute(now, whole("conn", conn)?, &args);
        Ok(())
    }

    /// Forgets a connection the host closed (drops its waits and EPHEMERAL leases).
    pub fn disconnect(&mut self, now_ms: f64, conn: f64) -> Result<(), JsValue> {
        let now = instant(now_ms)?;
        self.server.disconnect(now, whole("conn", conn)?);
        Ok(())
    }

    #[cfg(feature = "vectors")]
    /// Reports how many bytes the host holds unsent for a connection.
    #[wasm_bindgen(js_name = handleUnsent)]
    pub fn handle_unsent(
        &mut self,
        now_ms: f64,
        conn: f64,
        unsent_bytes: f64,
    ) -> Result<(), JsValue> {
        let now = instant(now_ms)?;
        let unsent = usize::try_from(whole("unsentBytes", unsent_bytes)?).unwrap_or(usize::MAX);
        self.server.handle_unsent(now, whole("conn", conn)?, unsent);
        Ok(())
    }

    /// Runs what is due (spurious calls are harmless).
    #[wasm_bindgen(js_name = handleTimeout)]
    pub fn handle_timeout(&mut self, now_ms: f64) -> Result<(), JsValue> {
        self.server.handle_timeout(instant(now_ms)?);
        Ok(())
    }

    /// Returns every pending output, in the order they must be performed: `{ kind: 'write',
    /// file, data }` (make `data` durable as `file` before going on), `{ kind: 'remove', file }`,
    /// `{ kind: 'transmit', conn, data }`, `{ kind: 'close', conn }`.
    pub fn drain(&mut self) -> Result<Array, JsValue> {
        let outputs = Array::new();
        while let Some(output) = self.server.poll_output() {
            let record = match output {
                Output::File(action) => file_output(action),
                Output::Transmit { conn, bytes } => Record::new()
                    .set("kind", "transmit")
                    .set("conn", number(conn))
                    .set("data", Uint8Array::from(bytes.as_slice()))
                    .into(),
                Output::Close { conn } => Record::new()
                    .set("kind", "close")
                    .set("conn", number(conn))
                    .into(),
                _ => return Err(unknown("server output")),
            };
            outputs.push(&record);
        }
        Ok(outputs)
    }

    /// Returns when `handleTimeout` must next be called, in ms, or undefined. Arm the timer
    /// for exactly that instant; a call at or after it always makes progress.
    #[wasm_bindgen(js_name = pollTimeout)]
    pub fn poll_timeout(&self) -> Option<f64> {
        self.server.poll_timeout().map(|at| number(at.as_ms()))
    }

    #[cfg(feature = "vectors")]
    /// Sets the users from a users file's bytes (JSON, parsed by the core), or turns
    /// authentication off with `undefined`; throws the core's error text for a bad file.
    #[wasm_bindgen(js_name = setUsers)]
    pub fn set_users(&mut self, users_file: Option<Vec<u8>>) -> Result<(), JsValue> {
        let users = users_file
            .as_deref()
            .map(fencelock_core::protocol::Users::parse)
            .transpose()
            .map_err(|error| crate::errors::throw(&error))?;
        self.server.set_users(users);
        Ok(())
    }

    #[cfg(feature = "vectors")]
    /// Returns the next audit event as its JSON text, or `undefined`.
    #[wasm_bindgen(js_name = pollAudit)]
    pub fn poll_audit(&mut self) -> Option<String> {
        self.server.poll_audit().map(|event| event.to_json())
    }

    #[cfg(feature = "vectors")]
    /// Returns how many connections are open.
    pub fn connections(&self) -> f64 {
        number(self.server.connections() as u64)
    }

    #[cfg(feature = "vectors")]
    /// Returns the restart grace left in ms.
    #[wasm_bindgen(js_name = graceLeft)]
    pub fn grace_left(&self, now_ms: f64) -> Result<f64, JsValue> {
        Ok(number(self.server.engine().grace_left(instant(now_ms)?)))
    }

    #[cfg(feature = "vectors")]
    /// Returns the highest token issued.
    #[wasm_bindgen(js_name = lastToken)]
    pub fn last_token(&self) -> f64 {
        number(self.server.engine().last_token())
    }
}

fn file_contents(files: &JsValue) -> Result<Vec<(DataFile, Vec<u8>)>, JsValue> {
    let Some(object) = files.dyn_ref::<Object>() else {
        return Err(type_error("files must be an object of file name to bytes"));
    };
    let mut contents = Vec::new();
    for entry in Object::entries(object).iter() {
        let entry: Array = entry.unchecked_into();
        let name = entry.get(0).as_string().unwrap_or_default();
        let file = DataFile::from_name(&name).ok_or_else(|| {
            type_error(&[&quoted(&name), " is not a fencelock data file"].concat())
        })?;
        let value = entry.get(1);
        if value.is_undefined() || value.is_null() {
            continue;
        }
        let bytes = value.dyn_into::<Uint8Array>().map_err(|_| {
            type_error(&["file ", &quoted(&name), " must be a Uint8Array or null"].concat())
        })?;
        contents.push((file, bytes.to_vec()));
    }
    Ok(contents)
}

fn file_output(action: FileAction) -> JsValue {
    match action {
        FileAction::Write { file, bytes } => Record::new()
            .set("kind", "write")
            .set("file", file.name())
            .set("data", Uint8Array::from(bytes.as_slice())),
        FileAction::Remove { file } => Record::new().set("kind", "remove").set("file", file.name()),
    }
    .into()
}

/// Quotes a file name as JSON does (as Rust's `{:?}` did for any ordinary name), so that the
/// module needs no formatting code.
fn quoted(name: &str) -> String {
    js_sys::JSON::stringify(&JsValue::from_str(name))
        .map(String::from)
        .unwrap_or_default()
}
