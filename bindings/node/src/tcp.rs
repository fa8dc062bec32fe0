//! The Node server's native socket loop: an epoll loop (mio) on its own thread that moves
//! bytes between TCP connections and the core's sans-IO protocol server, so a request never
//! crosses into JavaScript. JavaScript keeps what is not per request: the start, logging,
//! signals, the users file, metrics and the shutdown. TLS connections keep the `net` loop.
//!
//! The loop follows the host rules of docs/HOSTS.md like `node/lib/io_loop.js`: outputs are
//! performed in the order polled; a data-directory write is made durable (temp file, fsync,
//! rename, fsync of the directory) before any later output, and a failed one stops the loop
//! at once and is reported as fatal (the host exits); a client that does not read its replies
//! is no longer read from and the core is told how much waits; the timer is the core's
//! `poll_timeout`.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant as Clock};

use fencelock_core::protocol::{Output, Server};
use fencelock_core::{FileAction, Instant};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use napi::bindgen_prelude::{Buffer, Unknown};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{Env, Status};
use napi_derive::napi;

use crate::convert::{number, whole};
use crate::durable::{remove_durable, write_atomic};
use crate::server::{parse_users, single_user, AuditRecord, NativeServer};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX);
/// Bytes read per `read` call; a shorter read means the socket is drained (edge-triggered).
const READ_CHUNK: usize = 64 * 1024;
/// How long a connection the core closed may take to flush its last bytes and see the peer
/// close before it is dropped.
const CLOSE_LINGER: Duration = Duration::from_secs(5);
/// How long a shutdown waits for the last replies to be written.
const STOP_FLUSH: Duration = Duration::from_secs(1);

/// Wakes JavaScript with no payload: it then calls `pollEvents`.
type Notify = ThreadsafeFunction<u32, Unknown<'static>, u32, Status, false>;

/// Something the loop tells JavaScript, polled with `pollEvents`.
#[napi(object)]
#[derive(Debug)]
pub struct LoopEvent {
    /// `audit` (log `text` or `json`), `log` (log `text` at `level`), `fatal` (log `text` as
    /// critical and exit with status 3: a durable write failed) or `stopped` (the shutdown is
    /// complete: `leases` live leases were kept or dropped).
    pub kind: String,
    /// The line to log.
    pub text: String,
    /// `audit`: the event as a JSON object.
    pub json: Option<String>,
    /// `log`: `debug`, `info` or `warning`.
    pub level: Option<String>,
    /// `stopped`: live leases after the shutdown.
    pub leases: Option<f64>,
}

impl LoopEvent {
    fn log(level: &str, text: String) -> LoopEvent {
        LoopEvent {
            kind: "log".to_owned(),
            text,
            json: None,
            level: Some(level.to_owned()),
            leases: None,
        }
    }

    fn fatal(text: String) -> LoopEvent {
        LoopEvent {
            kind: "fatal".to_owned(),
            text,
            json: None,
            level: None,
            leases: None,
        }
    }
}

/// What the loop's connections hold, for tests and diagnostics.
#[napi(object)]
#[derive(Debug)]
pub struct LoopStats {
    /// Open connections the core serves.
    pub open: u32,
    /// Connections the core closed that still flush their last bytes (at most `CLOSE_LINGER`).
    pub closing: u32,
    /// Connections not read from because their replies are not being read.
    pub paused: u32,
    /// The most bytes held unsent for one connection.
    pub max_held_bytes: f64,
}

/// The server's clock: whole ms, truncated, continuing the host's clock from the handoff.
#[derive(Debug, Clone, Copy)]
struct LoopClock {
    base: Clock,
    base_ms: u64,
}

impl LoopClock {
    fn now(&self) -> Instant {
        let elapsed = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        Instant(self.base_ms.saturating_add(elapsed))
    }
}

/// What JavaScript and the loop share; the loop holds the lock while it handles a batch of
/// readiness events, never while it waits.
struct Inner {
    server: Server,
    events: VecDeque<LoopEvent>,
    /// Whether JavaScript was woken for the events queued and has not polled them yet.
    notified: bool,
    stop_requested: bool,
    stats: LoopStats,
}

struct Shared {
    inner: Mutex<Inner>,
    waker: Waker,
    clock: LoopClock,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The native socket loop serving one listening socket; made by `start`.
#[napi]
pub struct NativeTcpLoop {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    host: String,
    port: u32,
}

#[napi]
impl NativeTcpLoop {
    /// Binds `host`:`port` (0: any free port) and serves `server`'s core on a thread of its
    /// own from now on (`server` is left empty). `nowMs` is the host's clock now: the loop's
    /// clock continues it. `dataDir` (null: in memory) receives the core's durable writes.
    /// `notify` is called with no useful argument whenever `pollEvents` has something.
    ///
    /// # Errors
    /// The address cannot be resolved or bound.
    #[napi(factory)]
    pub fn start(
        server: &mut NativeServer,
        host: String,
        port: u32,
        now_ms: f64,
        data_dir: Option<String>,
        #[napi(ts_arg_type = "(event: number) => void")] notify: Notify,
    ) -> napi::Result<NativeTcpLoop> {
        let port = u16::try_from(port).map_err(|_| {
            napi::Error::new(Status::InvalidArg, format!("port {port} is out of range"))
        })?;
        let base_ms = whole("nowMs", now_ms)?;
        let listener = bind(&host, port).map_err(|error| {
            napi::Error::new(
                Status::GenericFailure,
                format!("cannot listen on {host}:{port}: {error}"),
            )
        })?;
        let bound = listener
            .local_addr()
            .map_err(|error| napi::Error::new(Status::GenericFailure, error.to_string()))?;
        let poll = Poll::new()
            .map_err(|error| napi::Error::new(Status::GenericFailure, error.to_string()))?;
        let waker = Waker::new(poll.registry(), WAKER)
            .map_err(|error| napi::Error::new(Status::GenericFailure, error.to_string()))?;
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                server: server.take_server(),
                events: VecDeque::new(),
                notified: false,
                stop_requested: false,
                stats: LoopStats {
                    open: 0,
                    closing: 0,
                    paused: 0,
                    max_held_bytes: 0.0,
                },
            }),
            waker,
            clock: LoopClock {
                base: Clock::now(),
                base_ms,
            },
        });
        let mut listener = listener;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|error| napi::Error::new(Status::GenericFailure, error.to_string()))?;
        let io = Io {
            poll,
            listener: Some(listener),
            conns: HashMap::new(),
            data_dir: data_dir.map(PathBuf::from),
            shared: Arc::clone(&shared),
            notify,
            failed: false,
            held: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("fencelock-io".to_owned())
            .spawn(move || io.run_guarded())
            .map_err(|error| napi::Error::new(Status::GenericFailure, error.to_string()))?;
        Ok(NativeTcpLoop {
            shared,
            thread: Some(thread),
            host: bound.ip().to_string(),
            port: u32::from(bound.port()),
        })
    }

    /// The bound address's host.
    #[napi(getter)]
    pub fn host(&self) -> String {
        self.host.clone()
    }

    /// The bound port.
    #[napi(getter)]
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Returns what the loop has to say since the last call, in order.
    #[napi]
    pub fn poll_events(&self) -> Vec<LoopEvent> {
        let mut inner = self.shared.lock();
        inner.notified = false;
        inner.events.drain(..).collect()
    }

    /// Asks the loop to stop: it stops accepting, shuts the core down (the ceiling write,
    /// the last replies and closes, the snapshot write), flushes for up to a second and then
    /// queues a `stopped` event. Calling it again is harmless.
    #[napi]
    pub fn stop(&self) {
        self.shared.lock().stop_requested = true;
        // A failed wake means the loop is gone already (it stopped or failed).
        let _ = self.shared.waker.wake();
    }

    /// Waits for the loop's thread to end (after the `stopped` or `fatal` event).
    #[napi]
    pub fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            // The loop catches its own panics and reports them as fatal events.
            let _ = thread.join();
        }
    }

    /// Returns the Prometheus text exposition of the server's metrics.
    #[napi]
    pub fn metrics(&self) -> String {
        let now = self.shared.clock.now();
        self.shared.lock().server.metrics_text(now)
    }

    /// Sets the users from a users file's bytes, or turns authentication off with null (as
    /// `NativeServer.setUsers`).
    #[napi]
    pub fn set_users(&self, env: Env, users_file: Option<Buffer>) -> napi::Result<()> {
        let users = parse_users(&env, users_file)?;
        self.shared.lock().server.set_users(users);
        Ok(())
    }

    /// Sets one user, `default`, with every right and this password hash (`--requirepass`).
    #[napi]
    pub fn set_password_hash(&self, env: Env, hash: String) -> napi::Result<()> {
        let users = single_user(&env, &hash)?;
        self.shared.lock().server.set_users(Some(users));
        Ok(())
    }

    /// Returns how many leases are live.
    #[napi]
    pub fn live_leases(&self) -> f64 {
        number(self.shared.lock().server.engine().live_leases() as u64)
    }

    /// Returns how many connections the core has open.
    #[napi]
    pub fn connections(&self) -> f64 {
        number(self.shared.lock().server.connections() as u64)
    }

    /// Returns what the loop's connections hold.
    #[napi]
    pub fn stats(&self) -> LoopStats {
        let inner = self.shared.lock();
        LoopStats { ..inner.stats }
    }
}

impl std::fmt::Debug for NativeTcpLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeTcpLoop")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

fn bind(host: &str, port: u16) -> io::Result<TcpListener> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host resolves to no address");
    for address in (host, port).to_socket_addrs()? {
        match TcpListener::bind(address) {
            Ok(listener) => return Ok(listener),
            Err(error) => last = error,
        }
    }
    Err(last)
}

/// One client connection.
struct Conn {
    stream: TcpStream,
    /// Bytes not yet written, from `sent` on.
    out: Vec<u8>,
    sent: usize,
    /// Not read from: its replies are not being read.
    paused: bool,
    /// The core closed it: flush, half-close, drop by this instant.
    closing: Option<Clock>,
    /// The write side was shut down after the last byte.
    shut: bool,
    /// The peer closed its side.
    eof: bool,
    /// In `Io::held`: paused or closing.
    listed: bool,
}

impl Conn {
    fn held(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Writes `bytes` after what is held, straight from `bytes` when nothing is; keeps what
    /// the socket does not take. Returns Ok(true) once nothing is held.
    fn send(&mut self, bytes: &[u8]) -> io::Result<bool> {
        if self.held() > 0 {
            self.out.extend_from_slice(bytes);
            return self.flush();
        }
        let mut sent = 0;
        while sent < bytes.len() {
            match self.stream.write(bytes.get(sent..).unwrap_or_default()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => sent += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.out.clear();
                    self.sent = 0;
                    self.out
                        .extend_from_slice(bytes.get(sent..).unwrap_or_default());
                    return Ok(false);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(true)
    }

    /// Writes what is held; returns Ok(true) once nothing is.
    fn flush(&mut self) -> io::Result<bool> {
        while self.sent < self.out.len() {
            match self
                .stream
                .write(self.out.get(self.sent..).unwrap_or_default())
            {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        self.out.clear();
        self.sent = 0;
        Ok(true)
    }
}

/// The loop's own state, on its thread.
struct Io {
    poll: Poll,
    listener: Option<TcpListener>,
    conns: HashMap<u64, Conn>,
    data_dir: Option<PathBuf>,
    shared: Arc<Shared>,
    notify: Notify,
    /// A durable write failed: nothing more may be performed.
    failed: bool,
    /// The connections paused or closing (and some that no longer are): the only ones the
    /// loop looks at on every turn, for deadlines and counts.
    held: Vec<u64>,
}

/// Puts a connection that is now paused or closing on the `held` list, once.
fn list(held: &mut Vec<u64>, conn: &mut Conn, id: u64) {
    if !conn.listed {
        conn.listed = true;
        held.push(id);
    }
}

impl Io {
    fn run_guarded(mut self) {
        let result = catch_unwind(AssertUnwindSafe(|| self.run()));
        if result.is_err() {
            let mut inner = self.shared.lock();
            inner.events.push_back(LoopEvent::fatal(
                "internal error in the socket loop; exiting".to_owned(),
            ));
            inner.notified = true;
            drop(inner);
            self.notify.call(0, ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        let mut buf = vec![0u8; READ_CHUNK];
        let mut timeout = {
            // What the core had to do before the first connection (a write at start).
            let shared = Arc::clone(&self.shared);
            let mut inner = shared.lock();
            self.perform(&mut inner, shared.clock.now());
            self.notify_events(&mut inner);
            if self.failed {
                return;
            }
            self.next_timeout(&inner)
        };
        loop {
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                self.fail(
                    &mut self.shared.clone().lock(),
                    format!("the socket loop failed: {error}; exiting"),
                );
                return;
            }
            let shared = Arc::clone(&self.shared);
            let mut inner = shared.lock();
            let now = shared.clock.now();
            if inner.stop_requested {
                self.stop(&mut inner, now, &mut events);
                return;
            }
            for event in &events {
                match event.token() {
                    WAKER => {}
                    LISTENER => self.accept(&mut inner, now),
                    Token(token) => {
                        let id = u64::try_from(token).unwrap_or(u64::MAX);
                        if event.is_writable() || event.is_error() {
                            self.writable(&mut inner, now, id, &mut buf);
                        }
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.read(&mut inner, now, id, &mut buf);
                        }
                    }
                }
                if self.failed {
                    break;
                }
            }
            if !self.failed && inner.server.poll_timeout().is_some_and(|at| at <= now) {
                inner.server.handle_timeout(now);
                self.perform(&mut inner, now);
            }
            if self.failed {
                self.notify_events(&mut inner);
                return;
            }
            self.expire_closing(&mut inner);
            self.update_stats(&mut inner);
            self.notify_events(&mut inner);
            // Only this thread changes the core's timers: computed while the lock is held.
            timeout = self.next_timeout(&inner);
        }
    }

    /// How long to wait: until the core's timer or the first closing connection's deadline.
    fn next_timeout(&self, inner: &Inner) -> Option<Duration> {
        let now = self.shared.clock.now();
        let mut wait = inner
            .server
            .poll_timeout()
            .map(|at| Duration::from_millis(at.as_ms().saturating_sub(now.as_ms())));
        let clock = Clock::now();
        for conn in self.held.iter().filter_map(|id| self.conns.get(id)) {
            if let Some(deadline) = conn.closing {
                let left = deadline.saturating_duration_since(clock);
                wait = Some(wait.map_or(left, |wait| wait.min(left)));
            }
        }
        // Rounded up to whole ms by the poll: a wake at or after the deadline makes progress.
        wait
    }

    fn accept(&mut self, inner: &mut Inner, now: Instant) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((mut stream, _)) => {
                    // Replies go out at once, as Redis sends them.
                    let _ = stream.set_nodelay(true);
                    let id = inner.server.connect(now);
                    let registered = self.poll.registry().register(
                        &mut stream,
                        Token(usize::try_from(id).unwrap_or(usize::MAX)),
                        Interest::READABLE | Interest::WRITABLE,
                    );
                    if let Err(error) = registered {
                        inner.server.disconnect(now, id);
                        inner.events.push_back(LoopEvent::log(
                            "warning",
                            format!("cannot watch a new connection: {error}"),
                        ));
                        continue;
                    }
                    self.conns.insert(
                        id,
                        Conn {
                            stream,
                            out: Vec::new(),
                            sent: 0,
                            paused: false,
                            closing: None,
                            shut: false,
                            eof: false,
                            listed: false,
                        },
                    );
                    // Past max_connections the core answers with an error and a close.
                    self.perform(inner, now);
                    if self.failed {
                        return;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    // EMFILE and the like: the connection waits in the backlog for the next one.
                    inner
                        .events
                        .push_back(LoopEvent::log("warning", format!("accept failed: {error}")));
                    return;
                }
            }
        }
    }

    /// Reads what `id` sent until the socket is drained, feeding the core after each read.
    fn read(&mut self, inner: &mut Inner, now: Instant, id: u64, buf: &mut [u8]) {
        loop {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            if conn.paused && conn.closing.is_none() {
                return;
            }
            match conn.stream.read(buf) {
                Ok(0) => {
                    self.peer_closed(inner, now, id);
                    return;
                }
                Ok(n) => {
                    if conn.closing.is_some() {
                        // The core is done with it: discard until the peer closes.
                        continue;
                    }
                    inner
                        .server
                        .receive(now, id, buf.get(..n).unwrap_or_default());
                    self.perform(inner, now);
                    if self.failed || n < buf.len() {
                        // A short read drained the socket: more bytes raise a new event.
                        return;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.drop_conn(inner, now, id);
                    return;
                }
            }
        }
    }

    /// The peer closed its side: the core forgets the connection (its waits and EPHEMERAL
    /// leases end); replies already held are still written before it is dropped.
    fn peer_closed(&mut self, inner: &mut Inner, now: Instant, id: u64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        conn.eof = true;
        if conn.held() == 0 {
            self.drop_conn(inner, now, id);
            return;
        }
        if conn.closing.is_none() {
            conn.closing = Some(Clock::now() + CLOSE_LINGER);
            list(&mut self.held, conn, id);
            inner.server.disconnect(now, id);
            self.perform(inner, now);
        }
    }

    fn writable(&mut self, inner: &mut Inner, now: Instant, id: u64, buf: &mut [u8]) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        match conn.flush() {
            Ok(false) => {}
            Ok(true) => {
                if conn.closing.is_some() && conn.eof {
                    self.drop_conn(inner, now, id);
                } else if conn.closing.is_some() {
                    if !conn.shut {
                        conn.shut = true;
                        let _ = conn.stream.shutdown(Shutdown::Write);
                    }
                } else if conn.paused {
                    // Everything was written: read again, and tell the core nothing waits.
                    conn.paused = false;
                    inner.server.handle_unsent(now, id, 0);
                    self.perform(inner, now);
                    // Bytes that came while paused raised no new event.
                    self.read(inner, now, id, buf);
                }
            }
            Err(_) => self.drop_conn(inner, now, id),
        }
    }

    /// Performs every pending output, in order.
    fn perform(&mut self, inner: &mut Inner, now: Instant) {
        while let Some(output) = inner.server.poll_output() {
            match output {
                Output::Transmit { conn, bytes } => self.transmit(inner, now, conn, &bytes),
                Output::Close { conn } => self.close(inner, conn),
                Output::File(action) => {
                    if !self.persist(inner, &action) {
                        return;
                    }
                }
                other => {
                    // An output this loop does not know may be a durability barrier: stop.
                    self.fail(
                        inner,
                        format!("unknown server output {other:?}: update the host; exiting"),
                    );
                    return;
                }
            }
        }
        while let Some(event) = inner.server.poll_audit() {
            let record = AuditRecord::from(event);
            inner.events.push_back(LoopEvent {
                kind: "audit".to_owned(),
                text: record.text,
                json: Some(record.json),
                level: None,
                leases: None,
            });
        }
    }

    fn transmit(&mut self, inner: &mut Inner, now: Instant, id: u64, bytes: &[u8]) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.closing.is_some() && conn.shut {
            return;
        }
        match conn.send(bytes) {
            Ok(true) => {}
            Ok(false) => {
                // The client is not reading its replies: stop reading its requests (the
                // replies held stay bounded) and tell the core, which cuts it past its limit.
                conn.paused = true;
                list(&mut self.held, conn, id);
                let held = conn.held();
                inner.server.handle_unsent(now, id, held);
            }
            Err(_) => self.drop_conn(inner, now, id),
        }
    }

    /// The core closed `id`: its held bytes are written first, then the write side is shut.
    fn close(&mut self, _inner: &mut Inner, id: u64) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if conn.closing.is_none() {
            conn.closing = Some(Clock::now() + CLOSE_LINGER);
            list(&mut self.held, conn, id);
        }
        match conn.flush() {
            Ok(true) if conn.eof => {
                self.conns.remove(&id);
            }
            Ok(true) => {
                if !conn.shut {
                    conn.shut = true;
                    let _ = conn.stream.shutdown(Shutdown::Write);
                }
            }
            Ok(false) => {}
            Err(_) => {
                self.conns.remove(&id);
            }
        }
    }

    /// Drops a connection now; the core forgets it (harmless if it already had).
    fn drop_conn(&mut self, inner: &mut Inner, now: Instant, id: u64) {
        if let Some(mut conn) = self.conns.remove(&id) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            if conn.closing.is_none() {
                inner.server.disconnect(now, id);
                self.perform(inner, now);
            }
        }
    }

    fn expire_closing(&mut self, inner: &mut Inner) {
        let clock = Clock::now();
        let expired: Vec<u64> = self
            .held
            .iter()
            .filter(|id| {
                self.conns
                    .get(id)
                    .is_some_and(|conn| conn.closing.is_some_and(|deadline| deadline <= clock))
            })
            .copied()
            .collect();
        for id in expired {
            let now = self.shared.clock.now();
            self.drop_conn(inner, now, id);
        }
    }

    /// Drops from `held` the connections no longer paused or closing, and counts.
    fn update_stats(&mut self, inner: &mut Inner) {
        let mut stats = LoopStats {
            open: 0,
            closing: 0,
            paused: 0,
            max_held_bytes: 0.0,
        };
        let conns = &mut self.conns;
        self.held.retain(|id| {
            let Some(conn) = conns.get_mut(id) else {
                return false;
            };
            if conn.closing.is_some() {
                stats.closing += 1;
            } else if conn.paused {
                stats.paused += 1;
            } else {
                conn.listed = false;
                return false;
            }
            stats.max_held_bytes = stats.max_held_bytes.max(number(conn.held() as u64));
            true
        });
        let all = u32::try_from(self.conns.len()).unwrap_or(u32::MAX);
        stats.open = all.saturating_sub(stats.closing);
        inner.stats = stats;
    }

    /// Makes a data-directory change durable; on failure reports it as fatal and stops.
    fn persist(&mut self, inner: &mut Inner, action: &FileAction) -> bool {
        let Some(dir) = self.data_dir.as_deref() else {
            return true;
        };
        let started = Clock::now();
        let (kind, name, result) = match action {
            FileAction::Write { file, bytes } => (
                "write",
                file.name(),
                write_atomic(&dir.join(file.name()), bytes),
            ),
            FileAction::Remove { file } => (
                "remove",
                file.name(),
                remove_durable(&dir.join(file.name())),
            ),
        };
        match result {
            Ok(()) => {
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                inner.server.record_persist(micros);
                true
            }
            Err(error) => {
                let file = dir.join(name);
                self.fail(
                    inner,
                    format!("cannot {kind} {name} durably: durable {kind} of {} failed: {error}; exiting", file.display()),
                );
                false
            }
        }
    }

    /// Nothing more may be performed: after a failed fsync nothing on disk can be trusted,
    /// and going on could reissue tokens.
    fn fail(&mut self, inner: &mut Inner, text: String) {
        self.failed = true;
        inner.events.push_back(LoopEvent::fatal(text));
        self.listener = None;
        self.conns.clear();
    }

    fn notify_events(&self, inner: &mut Inner) {
        if !inner.events.is_empty() && !inner.notified {
            inner.notified = true;
            self.notify.call(0, ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    /// Stops accepting, shuts the core down, performs its last outputs and flushes them for
    /// up to `STOP_FLUSH`; then reports `stopped`.
    fn stop(&mut self, inner: &mut Inner, now: Instant, events: &mut Events) {
        self.listener = None;
        inner.server.shutdown(now);
        self.perform(inner, now);
        if self.failed {
            self.notify_events(inner);
            return;
        }
        let leases = inner.server.engine().live_leases();
        let deadline = Clock::now() + STOP_FLUSH;
        loop {
            let mut waiting = false;
            let ids: Vec<u64> = self.conns.keys().copied().collect();
            for id in ids {
                if let Some(conn) = self.conns.get_mut(&id) {
                    match conn.flush() {
                        Ok(true) => {
                            self.conns.remove(&id);
                        }
                        Ok(false) => waiting = true,
                        Err(_) => {
                            self.conns.remove(&id);
                        }
                    }
                }
            }
            let left = deadline.saturating_duration_since(Clock::now());
            if !waiting || left.is_zero() {
                break;
            }
            let _ = self.poll.poll(events, Some(left));
        }
        self.conns.clear();
        inner.events.push_back(LoopEvent {
            kind: "stopped".to_owned(),
            text: String::new(),
            json: None,
            level: None,
            leases: Some(number(leases as u64)),
        });
        self.notify_events(inner);
    }
}
