//! The sans-IO server: connections in, bytes and durable writes out, one engine inside.

use crate::hash_map::HashMap;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use super::audit::AuditEvent;
use super::auth::Auth;
use super::commands;
use super::connection::Connection;
use super::context::{Action, Context};
use super::info::{self, Counters, Facts};
use super::metrics::{self, ErrorTally, PersistHistogram, Sample};
use super::parser::Step;
use super::reply::{ReplyEncoder, RespVersion};
use super::ServerConfig;
#[cfg(feature = "users")]
use super::Users;
use crate::durable::{encode_ceiling, DataFile, FileAction};
use crate::text::Text;
use crate::{Engine, Event, Instant};

/// Identifies a connection; it doubles as the engine's `ClientId`, so it is never 0.
pub type ConnId = u64;

/// Something the host must do, polled with [`Server::poll_output`] and handled in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum Output {
    /// Perform this durable change to the data directory (see [`crate::durable`]) and let it
    /// complete before handling the next output: a ceiling write must be durable before the
    /// transmits after it, which may carry tokens up to it. A host without a data directory
    /// skips it.
    File(FileAction),
    /// Write these bytes to the connection.
    Transmit {
        /// The connection to write to.
        conn: ConnId,
        /// Encoded replies, already batched.
        bytes: Vec<u8>,
    },
    /// Close the connection once the bytes transmitted before are written. The server has
    /// already forgotten it; calling [`Server::disconnect`] afterwards is harmless.
    Close {
        /// The connection to close.
        conn: ConnId,
    },
}

/// The wire protocol served over any transport: the host feeds bytes and time in and
/// performs the outputs it polls.
#[derive(Debug)]
pub struct Server {
    engine: Engine,
    config: ServerConfig,
    connections: HashMap<ConnId, Connection>,
    /// Connections with output or a close to poll, each once, in the order they got it.
    ready: VecDeque<ConnId>,
    /// Connections unblocked with held input to run.
    resumed: VecDeque<ConnId>,
    next_conn: ConnId,
    clock: ServerClock,
    counters: Counters,
    /// Set by [`Server::shutdown`]: no new connection is served.
    stopped: bool,
    /// Durable writes that go before every other output (the shutdown's ceiling).
    files_first: VecDeque<FileAction>,
    /// Durable writes that go after every other output (the shutdown's snapshot).
    files_last: VecDeque<FileAction>,
    /// Set on a cluster follower: lock commands answer `MOVED` to this leader (empty: none known).
    redirect: Option<String>,
    /// Lines a cluster node adds to `INFO` (its `# Cluster` section).
    cluster_info: String,
    /// Error replies of connections already forgotten, by code.
    retired_errors: ErrorTally,
    /// How long the host's durable writes took, as it reported them.
    persist: PersistHistogram,
    auth: Auth,
    /// The connection whose request is running, to name the stealer of a steal.
    acting: Option<ConnId>,
}

impl Server {
    /// Creates a server around `engine`.
    #[must_use]
    pub fn new(engine: Engine, config: ServerConfig) -> Server {
        // A test clock starts where the engine's time stands (0 for an engine made at 0): an
        // engine started at a host's real `now` would otherwise ignore every advance up to it.
        let manual = config.test_clock.then(|| engine.now());
        let budget = u64::try_from(config.password_checks_per_sec).unwrap_or(u64::MAX);
        let auth = Auth::new(engine.config().hash_seed, budget);
        Server {
            engine,
            config,
            connections: HashMap::default(),
            ready: VecDeque::new(),
            resumed: VecDeque::new(),
            next_conn: 1,
            clock: ServerClock {
                manual,
                last: Instant::ZERO,
                started: None,
            },
            counters: Counters::default(),
            stopped: false,
            files_first: VecDeque::new(),
            files_last: VecDeque::new(),
            redirect: None,
            cluster_info: String::new(),
            retired_errors: ErrorTally::default(),
            persist: PersistHistogram::default(),
            auth,
            acting: None,
        }
    }

    /// Makes this server a cluster follower that answers lock commands with `-MOVED leader`
    /// (`-NOTLEADER` while `leader` is empty) and leaves its engine to the replication driver,
    /// or, with `None`, a server that runs commands. See [`crate::cluster`].
    pub fn set_redirect(&mut self, leader: Option<&str>) {
        self.redirect = leader.map(String::from);
    }

    /// Returns the leader a follower redirects to (empty while none is known).
    #[must_use]
    pub fn redirect(&self) -> Option<&str> {
        self.redirect.as_deref()
    }

    /// Sets the lines `INFO` shows in its `# Cluster` section.
    pub fn set_cluster_info(&mut self, text: String) {
        self.cluster_info = text;
    }

    /// Makes the next connection id at least `next`: a new cluster leader's connections must
    /// never share an id (the engine's `ClientId`) with a client in the replicated log.
    pub fn reserve_conn_ids(&mut self, next: ConnId) {
        self.next_conn = self.next_conn.max(next);
    }

    /// Returns the ids of the open connections, in order.
    #[must_use]
    pub fn connection_ids(&self) -> Vec<ConnId> {
        let mut ids: Vec<ConnId> = self.connections.keys().copied().collect();
        crate::order::sort_by_numbers(&mut ids, |&id| (id, 0));
        ids
    }

    /// Closes a connection as the server would (its waits and EPHEMERAL leases go, unless this
    /// server is a follower, whose engine is a replica).
    pub fn close_connection(&mut self, now: Instant, conn: ConnId) {
        let now = self.clock.now(now);
        self.close(now, conn);
    }

    /// Sets the users connections must authenticate as (`None`: no authentication, every
    /// connection may do everything). Used at start and on reload: connections already
    /// authenticated keep their user name and meet its new rules from their next command
    /// (a user no longer listed gets `NOPERM` until it authenticates again).
    #[cfg(feature = "users")]
    pub fn set_users(&mut self, users: Option<Users>) {
        self.auth.set_users(users);
    }

    /// Returns true when connections must authenticate.
    #[must_use]
    pub fn auth_required(&self) -> bool {
        self.auth.required()
    }

    /// Returns the next audit event for the host's log (failed authentications, steals).
    /// At most 1024 wait; past that the oldest are dropped, so a host that never polls
    /// loses nothing else.
    pub fn poll_audit(&mut self) -> Option<AuditEvent> {
        self.auth.poll_audit()
    }

    /// Returns how many audit events wait to be polled.
    #[must_use]
    pub fn pending_audit(&self) -> usize {
        self.auth.pending_audit()
    }

    /// Returns the engine.
    #[must_use]
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Returns the engine for changes the protocol does not make (restores, snapshots).
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    /// Returns the configuration.
    #[must_use]
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Registers a new connection. Past `max_connections` it still gets an id, but its only
    /// outputs are an error and a close.
    pub fn connect(&mut self, now: Instant) -> ConnId {
        let now = self.clock.now(now);
        let id = self.next_conn;
        self.next_conn += 1;
        self.counters.connections_received += 1;
        let over_limit = self.connections.len() >= self.config.max_connections;
        self.connections
            .insert(id, Connection::new(self.config.parser_limits(), now));
        if self.stopped {
            if let Some(conn) = self.connections.get_mut(&id) {
                conn.reply().error("ERR server is shutting down");
            }
            self.close(now, id);
        } else if over_limit {
            self.counters.rejected_connections += 1;
            if let Some(conn) = self.connections.get_mut(&id) {
                conn.reply().error("ERR max number of clients reached");
            }
            self.close(now, id);
        }
        id
    }

    /// Handles bytes received on a connection, in any split; pipelined requests are all
    /// answered in order.
    pub fn receive(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        self.feed(now, conn, bytes);
        self.run_resumed();
    }

    /// Runs one already-framed request (command name first), for hosts whose transport frames
    /// messages; the reply still comes out as encoded bytes.
    pub fn execute(&mut self, now: Instant, conn: ConnId, argv: &[&[u8]]) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        if connection.closing {
            return;
        }
        let size: usize = argv.iter().map(|arg| arg.len().saturating_add(16)).sum();
        if argv.len() > self.config.max_args || size > self.config.max_request_bytes {
            connection
                .reply()
                .error("ERR request exceeds the server's argument or size limit");
            self.after_write(now, conn);
            return;
        }
        if connection.blocked.is_some() {
            // Keep the order: encode it as a request and run it after the wait ends.
            let mut framed = Vec::new();
            let mut encoder = ReplyEncoder::new(&mut framed, RespVersion::Resp2);
            encoder.array(argv.len());
            argv.iter().for_each(|arg| encoder.bulk(arg));
            self.hold(now, conn, &framed);
            return;
        }
        self.run(now, conn, argv);
        self.run_resumed();
    }

    /// Forgets a connection the host closed: its waits are dropped and its EPHEMERAL leases
    /// released (which may grant other connections).
    pub fn disconnect(&mut self, now: Instant, conn: ConnId) {
        let now = self.clock.now(now);
        let removed = self.connections.remove(&conn);
        if let Some(connection) = &removed {
            self.retired_errors.add(&connection.errors);
        }
        if removed.is_some() && self.redirect.is_none() {
            self.engine.disconnect(now, conn);
            self.route_events(now);
            self.run_resumed();
        }
    }

    /// Tells the server how many bytes the host holds unsent for a connection; past
    /// `max_output_bytes` the connection is closed as a client that does not read.
    pub fn handle_unsent(&mut self, now: Instant, conn: ConnId, unsent_bytes: usize) {
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.unsent = unsent_bytes;
            self.after_write(now, conn);
        }
    }

    /// Ends the run cleanly: every connection is closed (its waits and EPHEMERAL leases go),
    /// and the outputs then yield, in this order, the token ceiling write (and a pending lease
    /// horizon), the remaining transmits and closes, the snapshot write and the removal of the
    /// lease horizon (see [`Engine::shutdown`]). Connections
    /// made afterwards get an error and a close; timers stop.
    pub fn shutdown(&mut self, now: Instant) {
        let now = self.clock.now(now);
        self.stopped = true;
        let mut ids: Vec<ConnId> = self.connections.keys().copied().collect();
        crate::order::sort_by_numbers(&mut ids, |&id| (id, 0));
        for id in ids {
            // Marked closing before the engine drops every client at once, so that no lease
            // is granted to a waiter that is about to be dropped too.
            if let Some(connection) = self.connections.get_mut(&id) {
                connection.closing = true;
                connection.blocked = None;
                connection.held = Vec::new();
                if !connection.queued {
                    connection.queued = true;
                    self.ready.push_back(id);
                }
            }
        }
        let mut files = self.engine.shutdown(now);
        self.route_events(now);
        // A pending horizon and the ceiling go first: pending transmits may carry deadlines
        // up to the one and tokens up to the other. The snapshot and what follows go last.
        let at = files
            .iter()
            .position(|action| action.file() == DataFile::Snapshot)
            .unwrap_or(files.len());
        let last = files.split_off(at);
        self.files_first.extend(files);
        self.files_last.extend(last);
    }

    /// Returns true once [`Server::shutdown`] has run.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Runs expiries and wait timeouts that are due; may be called spuriously. With a test
    /// clock, only `DEBUG ADVANCE` moves time, so this does nothing new.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.stopped || self.redirect.is_some() {
            return;
        }
        let now = self.clock.now(now);
        self.engine.handle_timeout(now);
        self.route_events(now);
        self.run_resumed();
    }

    /// Returns the next thing the host must do; a lease horizon to persist always comes
    /// before transmits that could reveal deadlines past the one persisted before, and a
    /// ceiling before transmits that could carry tokens above it. The horizon goes first: it
    /// names the raised ceiling, so a crash between the two writes leaves a horizon the next
    /// start still trusts ([`Engine::poll_horizon`]).
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(action) = self.files_first.pop_front() {
            return Some(Output::File(action));
        }
        if let Some(horizon) = self.engine.poll_horizon() {
            return Some(Output::File(FileAction::Write {
                file: DataFile::Horizon,
                bytes: horizon.encode(),
            }));
        }
        if let Some(ceiling) = self.engine.poll_persist() {
            return Some(Output::File(FileAction::Write {
                file: DataFile::Ceiling,
                bytes: encode_ceiling(ceiling),
            }));
        }
        while let Some(id) = self.ready.pop_front() {
            let Some(connection) = self.connections.get_mut(&id) else {
                continue;
            };
            connection.queued = false;
            if !connection.out.is_empty() {
                let bytes = core::mem::take(&mut connection.out);
                if connection.closing {
                    // The close must follow the last bytes.
                    connection.queued = true;
                    self.ready.push_front(id);
                }
                return Some(Output::Transmit { conn: id, bytes });
            }
            if connection.closing {
                if let Some(gone) = self.connections.remove(&id) {
                    self.retired_errors.add(&gone.errors);
                }
                return Some(Output::Close { conn: id });
            }
        }
        self.files_last.pop_front().map(Output::File)
    }

    /// Returns when [`Server::handle_timeout`] must next be called; `None` with a test clock,
    /// whose time moves only by `DEBUG ADVANCE`, and after [`Server::shutdown`].
    ///
    /// The timer rule of [`Engine::poll_timeout`] holds: a call at or after the returned
    /// instant always makes progress, so a host arms its timer for exactly that instant (its
    /// clock truncated to whole ms) and re-arms if its timer fired before its clock got there.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.clock.manual.is_some() || self.stopped {
            return None;
        }
        self.engine.poll_timeout()
    }

    /// Returns the Prometheus text exposition (format 0.0.4) of the server's counters and
    /// gauges, for a host to serve at `GET /metrics` with content type
    /// `text/plain; version=0.0.4`; `docs/OPERATIONS.md` lists every metric.
    #[must_use]
    pub fn metrics_text(&mut self, now: Instant) -> alloc::string::String {
        let now = self.clock.now(now);
        let facts = self.facts(now);
        let mut errors = self.retired_errors;
        for connection in self.connections.values() {
            errors.add(&connection.errors);
        }
        let sample = Sample {
            facts: &facts,
            errors: &errors,
            persist: &self.persist,
        };
        metrics::metrics_text(&self.engine, &sample, now)
    }

    /// Records how long one durable write of an [`Output::File`] took the host (from the
    /// first write to the last fsync), in microseconds, for the persist-latency histogram.
    pub fn record_persist(&mut self, micros: u64) {
        self.persist.record(micros);
    }

    /// Returns how many connections are open.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.connections.len()
    }

    /// Returns true if the connection waits for a lock (an `ACQUIRE ... WAIT` queued): its next
    /// reply completes a request that is in the engine already.
    #[must_use]
    pub fn is_blocked(&self, conn: ConnId) -> bool {
        self.connections
            .get(&conn)
            .is_some_and(|connection| connection.blocked.is_some())
    }

    /// Returns the bytes a connection holds in the server (partial request, input held while
    /// blocked, unpolled output), or 0 for an unknown connection.
    #[must_use]
    pub fn buffered_bytes(&self, conn: ConnId) -> usize {
        self.connections
            .get(&conn)
            .map_or(0, Connection::buffered_bytes)
    }

    /// Parses and runs requests from `bytes` until they run out or the connection blocks.
    fn feed(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let Some(connection) = self.connections.get_mut(&conn) else {
                return;
            };
            if connection.closing {
                return;
            }
            if connection.blocked.is_some() {
                self.hold(now, conn, rest);
                return;
            }
            match connection.parser.feed(rest) {
                Ok(Step::Partial) => return,
                Ok(Step::Complete(consumed)) => {
                    rest = rest.get(consumed..).unwrap_or_default();
                    self.run_parsed(now, conn);
                }
                Err(error) => {
                    self.counters.protocol_errors += 1;
                    connection.reply().error(&error.text());
                    let now = self.clock.now(now);
                    self.close(now, conn);
                    return;
                }
            }
        }
    }

    /// Runs the request the connection's parser just completed.
    fn run_parsed(&mut self, now: Instant, conn: ConnId) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        // Move the parsed request out so the command can borrow the connection mutably;
        // this swaps pointers, it copies no bytes.
        let parser = core::mem::replace(
            &mut connection.parser,
            super::parser::RequestParser::new(self.config.parser_limits()),
        );
        let mut small: [&[u8]; 16] = [&[]; 16];
        let count = parser.args().len();
        if count <= small.len() {
            for (slot, arg) in small.iter_mut().zip(parser.args()) {
                *slot = arg;
            }
            self.run(now, conn, small.get(..count).unwrap_or_default());
        } else {
            let argv: Vec<&[u8]> = parser.args().collect();
            self.run(now, conn, &argv);
        }
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.parser = parser;
        }
    }

    /// Runs one request and routes what it caused.
    fn run(&mut self, now: Instant, conn: ConnId, argv: &[&[u8]]) {
        if argv.is_empty() {
            return;
        }
        let now = self.clock.now(now);
        self.counters.commands_processed += 1;
        // A follower redirects only connections that may run commands: before it
        // authenticates, a client learns nothing, not even where the leader is.
        let may_run = !self.auth.required()
            || self
                .connections
                .get(&conn)
                .is_some_and(|connection| connection.user.is_some());
        if may_run && self.redirected(conn, argv) {
            self.after_write(now, conn);
            return;
        }
        let Server {
            engine,
            connections,
            clock,
            auth,
            config,
            ..
        } = self;
        let Some(connection) = connections.get_mut(&conn) else {
            return;
        };
        let was_blocked = connection.blocked.is_some();
        let mut context = Context {
            engine,
            conn: connection,
            id: conn,
            now,
            manual_clock: &mut clock.manual,
            auth,
            config,
        };
        let action = commands::run(&mut context, argv);
        let now = context.now;
        if !was_blocked && context.conn.blocked.is_some() {
            self.counters.waits_started += 1;
        }
        self.acting = Some(conn);
        match action {
            Action::Done => {}
            Action::Close => self.close(now, conn),
            Action::Info(section) => self.write_info(now, conn, &section),
            Action::ClientList => self.write_client_list(now, conn),
        }
        self.route_events(now);
        self.acting = None;
        self.after_write(now, conn);
    }

    /// Answers a lock command on a follower with `-MOVED leader`; returns true if it did.
    fn redirected(&mut self, conn: ConnId, argv: &[&[u8]]) -> bool {
        let Some(leader) = self.redirect.as_deref() else {
            return false;
        };
        let engine_command = argv
            .first()
            .and_then(|name| super::table::lookup(name))
            .is_some_and(|spec| {
                matches!(
                    spec.kind,
                    super::table::Kind::Acquire
                        | super::table::Kind::Release
                        | super::table::Kind::Renew
                        | super::table::Kind::Verify
                        | super::table::Kind::Query
                        | super::table::Kind::Debug
                )
            });
        if !engine_command {
            return false;
        }
        let text = if leader.is_empty() {
            String::from(crate::error::NOT_LEADER_NO_LEADER)
        } else {
            Text::new("MOVED ").str(leader).into()
        };
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.reply().error(&text);
        }
        true
    }

    /// Holds input that arrived while the connection is blocked on a wait.
    fn hold(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        if connection.held.len().saturating_add(bytes.len()) > self.config.max_request_bytes {
            self.counters.protocol_errors += 1;
            connection
                .reply()
                .error("ERR Protocol error: too much input sent while blocked on a WAIT");
            let now = self.clock.now(now);
            self.close(now, conn);
            return;
        }
        connection.held.extend_from_slice(bytes);
    }

    /// Delivers engine events: grants and timeouts unblock their connection, expiries and
    /// steals become RESP3 pushes to the holder's connection.
    fn route_events(&mut self, now: Instant) {
        while let Some(event) = self.engine.poll_event() {
            match event {
                Event::Granted {
                    waiter,
                    client,
                    token,
                    ..
                } => {
                    self.unblock(now, client, waiter, |reply| reply.unsigned(token));
                }
                Event::WaitTimedOut {
                    waiter,
                    client,
                    waited_ms,
                    ..
                } => {
                    let text = crate::Error::Timeout { waited_ms }.text();
                    self.unblock(now, client, waiter, |reply| reply.error(&text));
                }
                Event::Expired {
                    name,
                    token,
                    client,
                    ..
                } => self.push(now, client, b"expired", &name, token, None),
                Event::Stolen {
                    name,
                    token,
                    owner,
                    client,
                    by_token,
                } => {
                    let conn = self.acting.unwrap_or(0);
                    let user = self.connections.get(&conn).and_then(|c| c.user.clone());
                    self.auth.audit(AuditEvent::Stolen {
                        conn,
                        user,
                        name: name.clone(),
                        token,
                        owner,
                        holder_conn: client,
                        by_token,
                    });
                    self.push(now, client, b"stolen", &name, token, Some(by_token));
                }
            }
        }
    }

    fn unblock(
        &mut self,
        now: Instant,
        conn: ConnId,
        waiter: u64,
        reply: impl FnOnce(&mut ReplyEncoder<'_>),
    ) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        if connection.blocked != Some(waiter) || connection.closing {
            return;
        }
        connection.blocked = None;
        reply(&mut connection.reply());
        if !connection.held.is_empty() {
            self.resumed.push_back(conn);
        }
        self.after_write(now, conn);
    }

    /// Pushes `[fencelock, kind, name, token]`, plus the new holder's token for a steal.
    fn push(
        &mut self,
        now: Instant,
        conn: ConnId,
        kind: &[u8],
        name: &str,
        token: u64,
        by_token: Option<u64>,
    ) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        // RESP2 has no out-of-band messages: a push would be read as the next reply.
        if connection.version != RespVersion::Resp3 || connection.closing {
            return;
        }
        let mut reply = connection.reply();
        reply.push(if by_token.is_some() { 5 } else { 4 });
        reply.bulk(b"fencelock");
        reply.bulk(kind);
        reply.bulk(name.as_bytes());
        reply.unsigned(token);
        if let Some(by_token) = by_token {
            reply.unsigned(by_token);
        }
        self.after_write(now, conn);
    }

    /// Runs input held by connections whose wait ended, until none is left; a loop rather
    /// than recursion, because each run may unblock others.
    fn run_resumed(&mut self) {
        while let Some(conn) = self.resumed.pop_front() {
            let Some(connection) = self.connections.get_mut(&conn) else {
                continue;
            };
            let held = core::mem::take(&mut connection.held);
            let now = self.clock.last_seen();
            self.feed(now, conn, &held);
        }
    }

    /// Queues a connection that has output, and closes one whose output passed the limit.
    fn after_write(&mut self, now: Instant, conn: ConnId) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        if connection.out.len().saturating_add(connection.unsent) > self.config.max_output_bytes
            && !connection.closing
        {
            // The client is not reading: drop what it would never read and close it.
            self.counters.output_limit_closes += 1;
            connection.out = Vec::new();
            let now = self.clock.now(now);
            self.close(now, conn);
            return;
        }
        if !connection.queued && (!connection.out.is_empty() || connection.closing) {
            connection.queued = true;
            self.ready.push_back(conn);
        }
    }

    /// Starts closing a connection: input is ignored from now on, its waits and EPHEMERAL
    /// leases go at once, and `Close` follows its remaining output.
    fn close(&mut self, now: Instant, conn: ConnId) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        if connection.closing {
            return;
        }
        connection.closing = true;
        connection.blocked = None;
        connection.held = Vec::new();
        if !connection.queued {
            connection.queued = true;
            self.ready.push_back(conn);
        }
        if self.redirect.is_none() {
            self.engine.disconnect(now, conn);
        }
    }

    fn write_info(&mut self, now: Instant, conn: ConnId, section: &str) {
        let facts = self.facts(now);
        let mut text = info::info_text(section, &self.engine, &self.config, &facts, now);
        let wanted = section.is_empty()
            || ["all", "everything", "default", "cluster"]
                .iter()
                .any(|name| section.eq_ignore_ascii_case(name));
        if wanted && !self.cluster_info.is_empty() {
            if !text.is_empty() {
                text.push_str("\r\n");
            }
            text.push_str("# Cluster\r\n");
            text.push_str(&self.cluster_info);
        }
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.reply().bulk(text.as_bytes());
        }
    }

    fn facts(&self, now: Instant) -> Facts {
        Facts {
            uptime_ms: self.clock.uptime_ms(now),
            test_clock: self.config.test_clock,
            connected_clients: self.connections.len(),
            blocked_clients: self
                .connections
                .values()
                .filter(|c| c.blocked.is_some())
                .count(),
            max_clients: self.config.max_connections,
            counters: self.counters,
            auth: (
                self.auth.required(),
                self.auth.user_count(),
                self.auth.failures,
                self.auth.audit_dropped,
            ),
        }
    }

    fn write_client_list(&mut self, now: Instant, conn: ConnId) {
        let mut ids: Vec<ConnId> = self.connections.keys().copied().collect();
        crate::order::sort_by_numbers(&mut ids, |&id| (id, 0));
        let mut text = alloc::string::String::new();
        for id in ids {
            if let Some(connection) = self.connections.get(&id) {
                text.push_str(&info::client_line(id, connection, now));
            }
        }
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.reply().bulk(text.as_bytes());
        }
    }
}

/// The server's view of time: the host's `now` never going backwards, or a manual clock.
#[derive(Debug)]
struct ServerClock {
    /// The manual time of a test clock, moved only by `DEBUG ADVANCE`.
    manual: Option<Instant>,
    last: Instant,
    started: Option<Instant>,
}

impl ServerClock {
    /// Returns the time to use for a call that brought the host's `now`.
    fn now(&mut self, host: Instant) -> Instant {
        let now = match self.manual {
            Some(manual) => manual,
            // An earlier time than already seen counts as no progress.
            None => self.last.max(host),
        };
        self.last = now;
        self.started.get_or_insert(now);
        now
    }

    fn last_seen(&self) -> Instant {
        self.manual.unwrap_or(self.last)
    }

    fn uptime_ms(&self, now: Instant) -> u64 {
        now.ms_since(self.started.unwrap_or(now))
    }
}
