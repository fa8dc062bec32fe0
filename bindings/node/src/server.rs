//! The protocol server: bytes and time in, outputs out; `node/lib/server.js` is the I/O loop.

use std::collections::{HashMap, VecDeque};

use fencelock_core::protocol::{Output, Server};
use fencelock_core::{DataFile, DataFiles, Engine, FileAction, Instant, Recovery, Start};
use napi::bindgen_prelude::{Buffer, BufferSlice, Object};
use napi::JsString;
use napi::{Env, Status};
use napi_derive::napi;

use crate::convert::{boot_clock, engine_config, number, server_config, whole};
use crate::errors::{corrupt_file, unknown, OrThrow};

/// One thing for the host to do, in order: `kind` is `write` (replace data-dir file `file`
/// with `data` atomically and durably before going on), `remove` (unlink `file`, fsync the
/// directory), `transmit` (write `data` to `conn`) or `close` (close `conn` after its
/// pending writes).
#[napi(object)]
// napi's Buffer has no Debug.
#[allow(missing_debug_implementations)]
pub struct ServerOutput {
    /// `write`, `remove`, `transmit` or `close`.
    pub kind: String,
    /// `transmit`, `close`: the connection.
    pub conn: Option<f64>,
    /// `write`, `remove`: the data-directory file name.
    pub file: Option<String>,
    /// `write`: the bytes of the file. `transmit`: the bytes as a Latin-1 string (one
    /// character per byte), to write with the `'latin1'` encoding.
    #[napi(ts_type = "Buffer | string")]
    pub data: Option<Buffer>,
}

/// How a server started from its data directory.
#[napi(object)]
// napi's Buffer has no Debug.
#[allow(missing_debug_implementations)]
pub struct RecoveryRecord {
    /// `fresh`, `crashed`, `clean` or `snapshot-refused`.
    pub kind: String,
    /// The line to log.
    pub summary: String,
    /// Whether grants wait for a restart grace.
    pub has_grace: bool,
    /// How the restart grace was decided: `none`, `horizon`, `rebooted`, `no-boot-id`,
    /// `no-horizon` or `stale-horizon`.
    pub grace_case: String,
    /// The restart grace decided at start, in ms.
    pub grace_ms: f64,
    /// Why a snapshot was refused.
    pub refusal: Option<String>,
    /// File actions to perform, in order, before serving anyone.
    pub actions: Vec<ServerOutput>,
}

/// The core's sans-IO protocol server with its engine.
#[napi]
pub struct NativeServer {
    server: Server,
    recovery: Option<RecoveryRecord>,
    /// Outputs `receiveReply` polled but could not return; `drain` yields them first.
    held: VecDeque<Output>,
    /// The deadline `pollTimeout` last returned: the timer the host has armed.
    armed: Option<Instant>,
}

#[napi]
impl NativeServer {
    /// Creates a server with no data directory. `config` holds engine settings,
    /// `serverConfig` protocol limits (`max_connections`, ..., `test_clock` as 0/1); `start`
    /// is as for `NativeEngine`.
    #[napi(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        env: Env,
        config: Option<HashMap<String, f64>>,
        server_settings: Option<HashMap<String, f64>>,
        hash_seed: Option<Buffer>,
        start: Option<String>,
        ceiling: Option<f64>,
        snapshot: Option<Buffer>,
        now_ms: Option<f64>,
    ) -> napi::Result<Self> {
        let engine_config = engine_config(&env, config, hash_seed)?;
        let server_config = server_config(&env, server_settings)?;
        let ceiling = whole("ceiling", ceiling.unwrap_or(0.0))?;
        let now = Instant(whole("nowMs", now_ms.unwrap_or(0.0))?);
        let start = Start::from_parts(
            start.as_deref().unwrap_or("fresh"),
            ceiling,
            snapshot.as_deref(),
        )
        .or_throw(&env)?;
        let engine = Engine::start(now, engine_config, start).or_throw(&env)?;
        Ok(NativeServer {
            server: Server::new(engine, server_config),
            recovery: None,
            held: VecDeque::new(),
            armed: None,
        })
    }

    /// Starts a server from the data directory's files as the host read them: `files` maps
    /// each name of `constants().dataFiles` to its bytes (absent or null: no such file).
    /// `recovery()` then says which start was taken and what to do on disk before serving.
    ///
    /// `bootId` (Linux: `/proc/sys/kernel/random/boot_id`) and `monotonicMs` (the system
    /// monotonic clock, read with `nowMs`) let the server keep a lease horizon, so a crash
    /// restart on the same boot waits only until it; without them the grace is the full one.
    ///
    /// # Errors
    /// A corrupt ceiling or horizon file (guessing could reissue tokens or end a grace early)
    /// or an unknown file name.
    #[napi(factory)]
    #[allow(clippy::too_many_arguments)]
    pub fn recover(
        env: Env,
        now_ms: f64,
        files: HashMap<String, Option<Buffer>>,
        config: Option<HashMap<String, f64>>,
        server_settings: Option<HashMap<String, f64>>,
        hash_seed: Option<Buffer>,
        boot_id: Option<String>,
        monotonic_ms: Option<f64>,
    ) -> napi::Result<NativeServer> {
        let now = Instant(whole("nowMs", now_ms)?);
        let mut engine_config = engine_config(&env, config, hash_seed)?;
        engine_config.boot_clock = boot_clock(&env, boot_id, now, monotonic_ms)?;
        let server_config = server_config(&env, server_settings)?;
        let mut contents: Vec<(DataFile, Buffer)> = Vec::new();
        for (name, bytes) in files {
            let file = DataFile::from_name(&name).ok_or_else(|| {
                napi::Error::new(
                    Status::InvalidArg,
                    format!("{name:?} is not a fencelock data file"),
                )
            })?;
            if let Some(bytes) = bytes {
                contents.push((file, bytes));
            }
        }
        let mut read = DataFiles::default();
        for (file, bytes) in &contents {
            read.set(*file, Some(bytes));
        }
        let mut plan = Recovery::plan(read).map_err(|error| corrupt_file(&error))?;
        let engine = plan.start_engine(now, engine_config);
        let actions = std::mem::take(&mut plan.actions)
            .into_iter()
            .map(file_output)
            .collect();
        let recovery = RecoveryRecord {
            kind: plan.kind.as_str().to_owned(),
            summary: plan.summary(now, &engine),
            has_grace: plan.kind.has_grace(),
            grace_case: engine.grace_case().as_str().to_owned(),
            grace_ms: number(engine.grace_ms()),
            refusal: plan.refusal.take(),
            actions,
        };
        Ok(NativeServer {
            server: Server::new(engine, server_config),
            recovery: Some(recovery),
            held: VecDeque::new(),
            armed: None,
        })
    }

    /// Moves the core's server out (to the native socket loop), leaving an empty one.
    pub(crate) fn take_server(&mut self) -> Server {
        let empty = Server::new(
            Engine::new(fencelock_core::Config::default()),
            fencelock_core::protocol::ServerConfig::default(),
        );
        std::mem::replace(&mut self.server, empty)
    }

    /// Returns how `recover` started this server (once: its actions move to the caller), or
    /// null if it was built directly.
    #[napi]
    pub fn take_recovery(&mut self) -> Option<RecoveryRecord> {
        self.recovery.take()
    }

    /// Ends the run cleanly: the outputs then yield the ceiling write, the last transmits and
    /// closes (every connection), and the snapshot write, in order.
    #[napi]
    pub fn shutdown(&mut self, now_ms: f64) -> napi::Result<()> {
        self.server.shutdown(Instant(whole("nowMs", now_ms)?));
        Ok(())
    }

    /// Registers a connection and returns its id (never 0).
    #[napi]
    pub fn connect(&mut self, now_ms: f64) -> napi::Result<f64> {
        Ok(number(
            self.server.connect(Instant(whole("nowMs", now_ms)?)),
        ))
    }

    /// Feeds received bytes, split anywhere.
    #[napi]
    pub fn receive(&mut self, now_ms: f64, conn: f64, data: Buffer) -> napi::Result<()> {
        let now = Instant(whole("nowMs", now_ms)?);
        self.server.receive(now, whole("conn", conn)?, &data);
        Ok(())
    }

    /// Feeds received bytes like `receive`, for the common case of a request answered at once:
    /// when everything they caused is at most one transmit to `conn` and the timer armed from
    /// `pollTimeout` is still right, returns that transmit's bytes as a Latin-1 string (empty
    /// if there is none) for the host to write. Otherwise returns null, and the host performs
    /// `drain()` and re-arms its timer as after `receive`. One call instead of three, and no
    /// output objects.
    #[napi(ts_return_type = "string | null")]
    pub fn receive_reply<'env>(
        &mut self,
        env: &'env Env,
        now_ms: f64,
        conn: f64,
        data: &[u8],
    ) -> napi::Result<Option<JsString<'env>>> {
        let now = Instant(whole("nowMs", now_ms)?);
        let conn = whole("conn", conn)?;
        self.server.receive(now, conn, data);
        // An audit event must reach the log now: the host's flush polls it.
        if !self.held.is_empty() || self.server.pending_audit() > 0 {
            return Ok(None);
        }
        let reply = match self.server.poll_output() {
            None => None,
            Some(Output::Transmit { conn: to, bytes }) if to == conn => Some(bytes),
            Some(other) => {
                self.held.push_back(other);
                return Ok(None);
            }
        };
        if let Some(next) = self.server.poll_output() {
            if let Some(bytes) = reply {
                self.held.push_back(Output::Transmit { conn, bytes });
            }
            self.held.push_back(next);
            return Ok(None);
        }
        if self.server.poll_timeout() != self.armed {
            if let Some(bytes) = reply {
                self.held.push_back(Output::Transmit { conn, bytes });
            }
            return Ok(None);
        }
        let bytes = reply.unwrap_or_default();
        env.create_string_latin1(&bytes).map(Some)
    }

    /// Runs one already-framed request (command name first).
    #[napi]
    pub fn execute(&mut self, now_ms: f64, conn: f64, argv: Vec<Buffer>) -> napi::Result<()> {
        let now = Instant(whole("nowMs", now_ms)?);
        let args: Vec<&[u8]> = argv.iter().map(|arg| arg.as_ref()).collect();
        self.server.execute(now, whole("conn", conn)?, &args);
        Ok(())
    }

    /// Forgets a connection the host closed (drops its waits and EPHEMERAL leases).
    #[napi]
    pub fn disconnect(&mut self, now_ms: f64, conn: f64) -> napi::Result<()> {
        let now = Instant(whole("nowMs", now_ms)?);
        self.server.disconnect(now, whole("conn", conn)?);
        Ok(())
    }

    /// Reports how many bytes the host holds unsent for a connection.
    #[napi]
    pub fn handle_unsent(&mut self, now_ms: f64, conn: f64, unsent_bytes: f64) -> napi::Result<()> {
        let now = Instant(whole("nowMs", now_ms)?);
        let unsent = usize::try_from(whole("unsentBytes", unsent_bytes)?).unwrap_or(usize::MAX);
        self.server.handle_unsent(now, whole("conn", conn)?, unsent);
        Ok(())
    }

    /// Runs what is due (spurious calls are harmless).
    #[napi]
    pub fn handle_timeout(&mut self, now_ms: f64) -> napi::Result<()> {
        self.server.handle_timeout(Instant(whole("nowMs", now_ms)?));
        Ok(())
    }

    /// Returns every pending output, in the order they must be performed: a transmit's bytes
    /// as a Latin-1 string (write it with the `'latin1'` encoding), a file's as a buffer.
    #[napi(ts_return_type = "Array<ServerOutput>")]
    pub fn drain<'env>(&mut self, env: &'env Env) -> napi::Result<Vec<Object<'env>>> {
        let mut outputs = Vec::new();
        while let Some(output) = self.held.pop_front().or_else(|| self.server.poll_output()) {
            outputs.push(output_object(env, output)?);
        }
        Ok(outputs)
    }

    /// Returns when `handleTimeout` must next be called, in ms, or null. Arm the timer for
    /// exactly that instant (no margin); a call at or after it always makes progress.
    #[napi]
    pub fn poll_timeout(&mut self) -> Option<f64> {
        self.armed = self.server.poll_timeout();
        self.armed.map(|at| number(at.as_ms()))
    }

    /// Returns how many connections are open.
    #[napi]
    pub fn connections(&self) -> f64 {
        number(self.server.connections() as u64)
    }

    /// Returns whether `shutdown` was called.
    #[napi]
    pub fn is_stopped(&self) -> bool {
        self.server.is_stopped()
    }

    /// Returns the restart grace left in ms.
    #[napi]
    pub fn grace_left(&self, now_ms: f64) -> napi::Result<f64> {
        let now = Instant(whole("nowMs", now_ms)?);
        Ok(number(self.server.engine().grace_left(now)))
    }

    /// Returns the highest token issued.
    #[napi]
    pub fn last_token(&self) -> f64 {
        number(self.server.engine().last_token())
    }

    /// Returns how many leases are live.
    #[napi]
    pub fn live_leases(&self) -> f64 {
        number(self.server.engine().live_leases() as u64)
    }

    /// Returns how many locks exist.
    #[napi]
    pub fn live_locks(&self) -> f64 {
        number(self.server.engine().live_locks() as u64)
    }

    /// Returns the Prometheus text exposition of the server's metrics, to serve at
    /// `GET /metrics` (rendered by the core, so every host serves the same text).
    #[napi]
    pub fn metrics(&mut self, now_ms: f64) -> napi::Result<String> {
        Ok(self.server.metrics_text(Instant(whole("nowMs", now_ms)?)))
    }

    /// Records how long one durable data-directory change took, in microseconds.
    #[napi]
    pub fn record_persist(&mut self, micros: f64) -> napi::Result<()> {
        self.server.record_persist(whole("micros", micros)?);
        Ok(())
    }

    /// Sets the users from a users file's bytes (JSON, parsed by the core), or turns
    /// authentication off with null. Throws (code `ERR`) for a file the core refuses; the
    /// users in force stay then. The message never shows a password hash.
    #[napi]
    pub fn set_users(&mut self, env: Env, users_file: Option<Buffer>) -> napi::Result<()> {
        self.server.set_users(parse_users(&env, users_file)?);
        Ok(())
    }

    /// Sets one user, `default`, with every right and this password hash (`--requirepass`).
    #[napi]
    pub fn set_password_hash(&mut self, env: Env, hash: String) -> napi::Result<()> {
        self.server.set_users(Some(single_user(&env, &hash)?));
        Ok(())
    }

    /// Returns true when connections must authenticate.
    #[napi]
    pub fn auth_required(&self) -> bool {
        self.server.auth_required()
    }

    /// Returns the next audit event (`kind`, `text`, `json`), or null; never holds a password.
    #[napi]
    pub fn poll_audit(&mut self) -> Option<AuditRecord> {
        self.server.poll_audit().map(AuditRecord::from)
    }
}

/// Parses a users file's bytes (`None`: authentication off); throws for a file the core refuses.
pub(crate) fn parse_users(
    env: &Env,
    users_file: Option<Buffer>,
) -> napi::Result<Option<fencelock_core::protocol::Users>> {
    users_file
        .as_deref()
        .map(fencelock_core::protocol::Users::parse)
        .transpose()
        .or_throw(env)
}

/// One user, `default`, with every right and this password hash (`--requirepass`).
pub(crate) fn single_user(env: &Env, hash: &str) -> napi::Result<fencelock_core::protocol::Users> {
    fencelock_core::protocol::Users::single(hash).or_throw(env)
}

impl From<fencelock_core::protocol::AuditEvent> for AuditRecord {
    fn from(event: fencelock_core::protocol::AuditEvent) -> AuditRecord {
        AuditRecord {
            kind: event.kind().to_owned(),
            text: event.to_text(),
            json: event.to_json(),
        }
    }
}

/// An audit event as the host logs it.
#[napi(object)]
#[derive(Debug)]
pub struct AuditRecord {
    /// `auth_failed` or `stolen`.
    pub kind: String,
    /// One `key=value` line.
    pub text: String,
    /// The same as a JSON object.
    pub json: String,
}

impl std::fmt::Debug for NativeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeServer")
            .field("server", &self.server)
            .field("recovering", &self.recovery.is_some())
            .finish()
    }
}

/// Returns one output as the object `drain` yields.
///
/// A transmit's bytes come as a Latin-1 string and a file's as a buffer the engine owns:
/// creating an external buffer (with its finalizer) per reply dominated the server's time.
pub(crate) fn output_object(env: &Env, output: Output) -> napi::Result<Object<'_>> {
    let mut object = Object::new(env)?;
    match output {
        Output::File(FileAction::Write { file, bytes }) => {
            object.set("kind", "write")?;
            object.set("file", file.name())?;
            object.set("data", BufferSlice::copy_from(env, &bytes)?)?;
        }
        Output::File(FileAction::Remove { file }) => {
            object.set("kind", "remove")?;
            object.set("file", file.name())?;
        }
        Output::Transmit { conn, bytes } => {
            object.set("kind", "transmit")?;
            object.set("conn", number(conn))?;
            // A Latin-1 string holds the bytes one per character and costs a fraction of a
            // buffer to create; the host writes it with the 'latin1' encoding.
            object.set("data", env.create_string_latin1(&bytes)?)?;
        }
        Output::Close { conn } => {
            object.set("kind", "close")?;
            object.set("conn", number(conn))?;
        }
        other => return Err(unknown("server output", &other)),
    }
    Ok(object)
}

fn file_output(action: FileAction) -> ServerOutput {
    match action {
        FileAction::Write { file, bytes } => ServerOutput {
            kind: "write".to_owned(),
            conn: None,
            file: Some(file.name().to_owned()),
            data: Some(Buffer::from(bytes)),
        },
        FileAction::Remove { file } => ServerOutput {
            kind: "remove".to_owned(),
            conn: None,
            file: Some(file.name().to_owned()),
            data: None,
        },
    }
}
