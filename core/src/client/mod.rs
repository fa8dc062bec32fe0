//! The client side of the wire protocol as a sans-IO state machine, driven by every language's
//! client: requests in, bytes and connection changes out, replies and lease events polled.
//!
//! A host opens and closes transports when told ([`Output::Connect`], [`Output::Close`]),
//! writes [`Output::Transmit`] bytes, and reports back with [`Client::handle_connected`],
//! [`Client::receive`] and [`Client::handle_disconnect`]. Time comes in as `now`; the host calls
//! [`Client::handle_timeout`] at [`Client::poll_timeout`]. Everything a lock client decides is
//! here: request encoding and validation, reply decoding and typing, which connection carries a
//! request (short requests pipelined on one shared connection, each waiting acquire on its own,
//! since the server blocks a waiting connection), request timeouts, retries of idempotent
//! requests after a connection failure, failover across endpoints, the renewal schedule of
//! leases kept alive, and lost-lease detection.

mod decoder;
mod double;
mod leases;
#[cfg(test)]
mod moved_tests;
mod reply;
mod request;

use crate::hash_map::HashMap;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

pub use decoder::{Decoder, DecoderLimits, Value};
pub use leases::{LeaseStatus, LostReason};
pub use reply::{InfoEntry, Reply};

use crate::text::Text;
use crate::vec_map::VecMap;
use crate::{AcquireOptions, Error, Instant, Token};
use leases::Leases;
use request::{Kind, Request};

/// Identifies a request; replies carry it.
pub type RequestId = u64;
/// Identifies a transport the client asked the host to open.
pub type ConnId = u64;

/// The first pause of a request that no cluster node can take yet (an election is under way);
/// each later one doubles, up to 16 times this.
const RIDE_THROUGH_FIRST_MS: u64 = 50;

/// How a client behaves; hosts expose these as options.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// How many endpoints the host can connect to; [`Output::Connect`] names one by index,
    /// and a failed connect moves on to the next (failover).
    pub endpoints: usize,
    /// Ask for RESP3 (`HELLO 3`) on every connection, so the server can push lost-lease
    /// notices; a server that refuses leaves the connection on RESP2.
    pub resp3: bool,
    /// Longest a request may wait for its reply, in ms; a waiting acquire gets its wait on
    /// top. Past it the connection is out of step and is closed.
    pub request_timeout_ms: u64,
    /// Longest a connect may take, in ms.
    pub connect_timeout_ms: u64,
    /// Bounds on the replies the client accepts.
    pub limits: DecoderLimits,
    /// The `host:port` of each endpoint, in index order, so that a cluster follower's
    /// `-MOVED host:port` can name one; a `MOVED` to an address not listed (or with this
    /// empty) moves to the next endpoint.
    pub endpoint_addresses: Vec<String>,
    /// A bug planted on purpose for the simulator's own tests (feature `sim-bugs` only).
    #[cfg(feature = "sim-bugs")]
    pub planted_bug: Option<crate::PlantedBug>,
    /// The user and password every connection authenticates with (`HELLO 3 AUTH` or
    /// `AUTH`) before its first request; `None` for a server without users.
    pub credentials: Option<Credentials>,
}

/// A user name and password; `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name (`default` for a server started with `--requirepass`).
    pub username: String,
    /// The password.
    pub password: String,
}

impl Credentials {
    /// Creates credentials.
    #[must_use]
    pub fn new(username: &str, password: &str) -> Credentials {
        Credentials {
            username: String::from(username),
            password: String::from(password),
        }
    }
}

impl core::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            endpoints: 1,
            resp3: true,
            request_timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            limits: DecoderLimits::default(),
            endpoint_addresses: Vec::new(),
            credentials: None,
            #[cfg(feature = "sim-bugs")]
            planted_bug: None,
        }
    }
}

/// Something the host must do, polled with [`Client::poll_output`] and done in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[must_use]
pub enum Output {
    /// Open a transport to endpoint `endpoint` for `conn`, then call
    /// [`Client::handle_connected`], or [`Client::handle_disconnect`] if it fails.
    Connect {
        /// The connection to open.
        conn: ConnId,
        /// Index of the endpoint, below [`ClientConfig::endpoints`].
        endpoint: usize,
    },
    /// Write these bytes to the connection.
    Transmit {
        /// The connection to write to.
        conn: ConnId,
        /// Encoded requests, already batched.
        bytes: Vec<u8>,
    },
    /// Close the transport; the client has already forgotten it.
    Close {
        /// The connection to close.
        conn: ConnId,
    },
}

/// Something that happened to a lease without a request asking, polled with
/// [`Client::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A lease this client took is gone, or can no longer be known to be held: stop using its
    /// token. Sent once per lease; the client forgets the lease after it.
    LeaseLost {
        /// The lock.
        name: String,
        /// The lost lease's token.
        token: Token,
        /// Why it is lost.
        reason: LostReason,
    },
    /// The server pushed a notice about a lease (`expired`, `stolen`), whether or not this
    /// client still tracks that lease.
    Notice {
        /// The kind of notice, lowercase (`expired`, `stolen`).
        kind: String,
        /// The lock.
        name: String,
        /// The lease's token.
        token: Token,
        /// For `stolen`: the token of the lease that took the lock.
        by_token: Option<Token>,
    },
}

/// The client state machine.
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    conns: VecMap<ConnId, Conn>,
    /// The connection that carries short requests, pipelined.
    shared: Option<ConnId>,
    /// Requests awaiting a reply; a hash map because one is added and removed per request.
    requests: HashMap<RequestId, Request>,
    leases: Leases,
    replies: VecDeque<(RequestId, Result<Reply, Error>)>,
    events: VecDeque<Event>,
    /// Losses of leases whose granting reply is still to be polled, by that reply: each is
    /// queued once its reply is out, so no host hears of a loss before the lease.
    held_back: Vec<(RequestId, Event)>,
    /// Connections with something to poll, each once, in order.
    ready: VecDeque<ConnId>,
    /// Connects and closes to poll, before any transmit.
    control: VecDeque<Output>,
    endpoint: usize,
    next_conn: ConnId,
    next_request: RequestId,
    last_now: Instant,
}

#[derive(Debug)]
struct Conn {
    endpoint: usize,
    open: bool,
    /// Opened for one waiting acquire; returns to the idle pool after its reply.
    dedicated: bool,
    /// When a connect in progress gives up.
    connect_deadline: Instant,
    /// Endpoints tried for this connection's requests so far.
    tries: usize,
    decoder: Decoder,
    out: Vec<u8>,
    queued: bool,
    /// Requests written (or to be written) on this connection, in order; `None` for the
    /// internal `HELLO` or `AUTH`.
    in_flight: VecDeque<Option<RequestId>>,
    /// Its server answered `-MOVED`: nothing new goes on it, and it closes once its
    /// requests are answered.
    draining: bool,
    /// The error the connection's own authentication got: the `NOAUTH` replies that
    /// follow it are reported as this error, which says why.
    auth_error: Option<Error>,
}

impl Client {
    /// Creates a client; it connects on the first request.
    #[must_use]
    pub fn new(config: ClientConfig) -> Client {
        Client {
            config,
            conns: VecMap::new(),
            shared: None,
            requests: HashMap::default(),
            leases: Leases::default(),
            replies: VecDeque::new(),
            events: VecDeque::new(),
            held_back: Vec::new(),
            ready: VecDeque::new(),
            control: VecDeque::new(),
            endpoint: 0,
            next_conn: 1,
            next_request: 1,
            last_now: Instant::ZERO,
        }
    }

    /// Returns the configuration.
    #[must_use]
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Asks for a lease: `ACQUIRE name ttl_ms [WAIT ms] ...`. A granted lease is tracked:
    /// its conservative local deadline runs from now, when the request is sent.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for an empty name, a TTL of 0, a steal with a wait or a number
    /// above 2^53-1.
    pub fn acquire(
        &mut self,
        now: Instant,
        name: &str,
        ttl_ms: u64,
        options: &AcquireOptions,
    ) -> Result<RequestId, Error> {
        let bytes = request::acquire(name, ttl_ms, options)?;
        let kind = Kind::Acquire {
            name: String::from(name),
            ttl_ms,
            ephemeral: options.ephemeral,
        };
        Ok(self.submit(now, kind, bytes, options.wait_ms))
    }

    /// Asks to extend the lease `(name, token)` to `ttl_ms` from now: `RENEW`.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for an empty name, a TTL of 0 or a number above 2^53-1.
    pub fn renew(
        &mut self,
        now: Instant,
        name: &str,
        token: Token,
        ttl_ms: u64,
    ) -> Result<RequestId, Error> {
        let bytes = request::renew(name, token, ttl_ms)?;
        let kind = Kind::Renew {
            token,
            automatic: false,
        };
        let now = self.tick(now);
        let id = self.submit(now, kind, bytes, 0);
        // The renewal may shorten the lease the moment the server runs it, before its reply
        // comes: until then the conservative deadline is the earlier of the two.
        self.leases.renewal_sent(name, token, id, now, ttl_ms);
        Ok(id)
    }

    /// Asks to release the lease `(name, token)`: `RELEASE`. Retried once after a connection
    /// failure; a retry that finds the lease gone answers [`Error::ConnectionLost`] (the outcome
    /// is unknown: the first attempt may have released it, or it had lapsed), never `OK`.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for an empty name or a token above 2^53-1.
    pub fn release(&mut self, now: Instant, name: &str, token: Token) -> Result<RequestId, Error> {
        let bytes = request::name_token("RELEASE", name, token)?;
        let kind = Kind::Release { token };
        Ok(self.submit(now, kind, bytes, 0))
    }

    /// Asks how long the lease `(name, token)` has left: `VERIFY`.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for an empty name or a token above 2^53-1.
    pub fn verify(&mut self, now: Instant, name: &str, token: Token) -> Result<RequestId, Error> {
        let bytes = request::name_token("VERIFY", name, token)?;
        let kind = Kind::Verify { token };
        Ok(self.submit(now, kind, bytes, 0))
    }

    /// Lists the locks whose name starts with `prefix`: `QUERY [prefix]`.
    pub fn query(&mut self, now: Instant, prefix: &str) -> RequestId {
        let bytes = if prefix.is_empty() {
            request::encode(&[b"QUERY"])
        } else {
            request::encode(&[b"QUERY", prefix.as_bytes()])
        };
        self.submit(now, Kind::Query, bytes, 0)
    }

    /// Asks for the server's facts and counters: `INFO [section]`.
    pub fn info(&mut self, now: Instant, section: Option<&str>) -> RequestId {
        let bytes = match section {
            Some(section) => request::encode(&[b"INFO", section.as_bytes()]),
            None => request::encode(&[b"INFO"]),
        };
        self.submit(now, Kind::Info, bytes, 0)
    }

    /// Round-trips a `PING`.
    pub fn ping(&mut self, now: Instant) -> RequestId {
        self.submit(now, Kind::Ping, request::encode(&[b"PING"]), 0)
    }

    /// Asks for one page of the locks whose name starts with `prefix`, at most `count` of
    /// them, after `cursor` (empty: from the first): `QUERY prefix COUNT n CURSOR c`. The
    /// reply is [`Reply::LockPage`]; its cursor, empty after the last page, asks for the next.
    pub fn query_page(
        &mut self,
        now: Instant,
        prefix: &str,
        count: u64,
        cursor: &str,
    ) -> RequestId {
        let mut digits = itoa::Buffer::new();
        let count = digits.format(count.max(1));
        let bytes = request::encode(&[
            b"QUERY",
            prefix.as_bytes(),
            b"COUNT",
            count.as_bytes(),
            b"CURSOR",
            cursor.as_bytes(),
        ]);
        self.submit(now, Kind::QueryPage, bytes, 0)
    }

    /// Sends `HELLO version` on the shared connection and returns the server's facts.
    pub fn hello(&mut self, now: Instant, version: u8) -> RequestId {
        let mut digits = itoa::Buffer::new();
        let bytes = request::encode(&[b"HELLO", digits.format(version).as_bytes()]);
        self.submit(now, Kind::Command, bytes, 0)
    }

    /// Sends any command (name first) and returns its reply as a [`Reply::Value`]; never
    /// retried, since the client cannot know what it does.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for an empty command.
    pub fn command(&mut self, now: Instant, argv: &[&[u8]]) -> Result<RequestId, Error> {
        if argv.first().map_or(true, |name| name.is_empty()) {
            return Err(Error::bad("a command needs a name"));
        }
        Ok(self.submit(now, Kind::Command, request::encode(argv), 0))
    }

    /// Gives up on a request: its reply will not be polled. A waiting acquire's connection is
    /// closed so the server drops the wait instead of granting a lease nobody would use.
    pub fn cancel(&mut self, now: Instant, id: RequestId) {
        self.tick(now);
        let Some(request) = self.requests.get_mut(&id) else {
            self.replies.retain(|(reply_id, _)| *reply_id != id);
            self.release_held_back(id);
            return;
        };
        request.cancelled = true;
        let conn = request.conn;
        if request.paused {
            // On no connection: nothing else would ever end it.
            self.requests.remove(&id);
            return;
        }
        if request.waits {
            self.fail_conn(conn, "request cancelled", now);
        }
    }

    /// Keeps the tracked lease `(name, token)` alive: the client renews it every third of its
    /// TTL (sooner after a failure, or while a renewal with a shorter TTL may still run) until
    /// it is released, forgotten or lost. Returns false if the lease is not tracked.
    pub fn keep_alive(&mut self, name: &str, token: Token) -> bool {
        self.leases.keep_alive(name, token)
    }

    /// Stops tracking the lease `(name, token)`: no renewals, no loss events.
    pub fn forget(&mut self, name: &str, token: Token) {
        self.leases.forget(name, token);
    }

    /// Returns what the client knows of a tracked lease.
    #[must_use]
    pub fn lease(&self, now: Instant, name: &str, token: Token) -> Option<LeaseStatus> {
        self.leases.status(now, name, token)
    }

    /// Reports that the transport of `conn` is open.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId) {
        self.tick(now);
        if let Some(connection) = self.conns.get_mut(&conn) {
            connection.open = true;
            // Request deadlines run from when the bytes can leave.
            for id in connection.in_flight.iter().flatten() {
                if let Some(request) = self.requests.get_mut(id) {
                    request.restart_clock(now);
                }
            }
            self.queue(conn);
        }
    }

    /// Handles bytes received on a connection, in any split.
    pub fn receive(&mut self, now: Instant, conn: ConnId, bytes: &[u8]) {
        self.tick(now);
        let Some(connection) = self.conns.get_mut(&conn) else {
            return;
        };
        connection.decoder.feed(bytes);
        loop {
            let Some(connection) = self.conns.get_mut(&conn) else {
                return;
            };
            let decoded = match connection.decoder.next_small() {
                Some(small) => Ok(Some(Decoded::Small(small))),
                None => connection
                    .decoder
                    .next_value()
                    .map(|value| value.map(Decoded::Value)),
            };
            match decoded {
                Ok(Some(Decoded::Value(Value::Push(items)))) => self.handle_push(&items),
                Ok(Some(reply)) => {
                    let Some(slot) = connection.in_flight.pop_front() else {
                        self.fail_conn(conn, "the server sent a reply nobody asked for", now);
                        return;
                    };
                    if !self.follow_redirect(conn, slot, &reply, now) {
                        self.handle_reply(conn, slot, reply, now);
                    }
                    let drained = self
                        .conns
                        .get(&conn)
                        .is_some_and(|c| c.draining && c.in_flight.is_empty());
                    if drained {
                        self.drop_conn(conn, "moved", now, false);
                        return;
                    }
                }
                Ok(None) => return,
                Err(error) => {
                    let message = error.message();
                    self.fail_conn(conn, &message, now);
                    return;
                }
            }
        }
    }

    /// Reports that the transport of `conn` failed or closed (or never opened). Requests in
    /// flight on it are retried on a new connection when that is safe, or fail with
    /// [`Error::ConnectionLost`]; EPHEMERAL leases taken on it are lost.
    pub fn handle_disconnect(&mut self, now: Instant, conn: ConnId, reason: &str) {
        self.tick(now);
        self.fail_conn(conn, reason, now);
    }

    /// Does what is due: request and connect timeouts, lapsed leases, renewals. May be called
    /// spuriously.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now = self.tick(now);
        let overdue: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, conn)| !conn.open && conn.connect_deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        for conn in overdue {
            self.fail_conn(conn, "connect timed out", now);
        }
        let mut resumed: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, request)| request.paused && request.deadline <= now)
            .map(|(&id, _)| id)
            .collect();
        crate::order::sort_by_numbers(&mut resumed, |&id| (id, 0));
        for id in resumed {
            if let Some(request) = self.requests.get_mut(&id) {
                request.paused = false;
            }
            self.dispatch(id, now);
        }
        let mut late: Vec<(ConnId, u64)> = self
            .requests
            .values()
            .filter(|request| !request.paused && request.deadline <= now)
            .map(|request| (request.conn, request.timeout_ms))
            .collect();
        // Hash order is arbitrary: act in connection order, so runs are reproducible.
        crate::order::sort_by_numbers(&mut late, |&(conn, timeout_ms)| (conn, timeout_ms));
        for (conn, timeout_ms) in late {
            let reason: String = Text::new("no reply within ")
                .num(timeout_ms)
                .str(" ms")
                .into();
            self.fail_conn(conn, &reason, now);
        }
        for (name, token, reason) in self.leases.lapsed(now) {
            self.lost(name, token, reason);
        }
        for (name, token, ttl_ms) in self.leases.due_renewals(now) {
            if let Ok(bytes) = request::renew(&name, token, ttl_ms) {
                let kind = Kind::Renew {
                    token,
                    automatic: true,
                };
                let id = self.submit(now, kind, bytes, 0);
                // After a user renewal with a longer TTL, this one may shorten the lease.
                self.leases.renewal_sent(&name, token, id, now, ttl_ms);
            }
        }
    }

    /// Closes every connection: requests in flight fail with [`Error::ConnectionLost`] and
    /// EPHEMERAL leases are lost; tracked leases stop renewing.
    pub fn close(&mut self, now: Instant) {
        self.tick(now);
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            self.drop_conn(conn, "client closed", now, false);
        }
        let mut paused: Vec<RequestId> = self
            .requests
            .iter()
            .filter(|(_, request)| request.paused)
            .map(|(&id, _)| id)
            .collect();
        crate::order::sort_by_numbers(&mut paused, |&id| (id, 0));
        for id in paused {
            if let Some(request) = self.requests.remove(&id) {
                let automatic = matches!(
                    request.kind,
                    Kind::Renew {
                        automatic: true,
                        ..
                    }
                );
                if !request.cancelled && !automatic {
                    // Every attempt since the last failed connection had no effect.
                    let what = if request.retried {
                        "failed"
                    } else {
                        "not sent"
                    };
                    let error = Error::ConnectionLost(
                        Text::new(request.kind.command())
                            .str(" ")
                            .str(what)
                            .str(": client closed")
                            .into(),
                    );
                    self.replies.push_back((id, Err(error)));
                }
            }
        }
        self.leases.stop_renewing();
    }

    /// Returns the next thing the host must do.
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(output) = self.control.pop_front() {
            return Some(output);
        }
        while let Some(id) = self.ready.pop_front() {
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            conn.queued = false;
            if conn.open && !conn.out.is_empty() {
                return Some(Output::Transmit {
                    conn: id,
                    bytes: core::mem::take(&mut conn.out),
                });
            }
        }
        None
    }

    /// Returns the next reply, in the order they completed. A lease lost before the reply
    /// that granted it was polled has its [`Event::LeaseLost`] queued only now: poll events
    /// again after replies.
    pub fn poll_reply(&mut self) -> Option<(RequestId, Result<Reply, Error>)> {
        let reply = self.replies.pop_front()?;
        self.release_held_back(reply.0);
        Some(reply)
    }

    /// Returns the next lease event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Returns when [`Client::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let requests = self.requests.values().map(|request| request.deadline);
        let connects = self
            .conns
            .values()
            .filter(|conn| !conn.open)
            .map(|conn| conn.connect_deadline);
        requests
            .chain(connects)
            .chain(self.leases.next_deadline())
            .min()
    }

    /// Returns the connection a request awaiting its reply was sent on, so a host whose
    /// caller waits for that reply can read that connection itself.
    #[must_use]
    pub fn request_conn(&self, id: RequestId) -> Option<ConnId> {
        self.requests.get(&id).map(|request| request.conn)
    }

    /// Returns how many requests await their reply.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.requests.len()
    }

    /// Returns how many connections are open or opening.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    fn tick(&mut self, now: Instant) -> Instant {
        // A time earlier than one already seen counts as no progress.
        self.last_now = self.last_now.max(now);
        self.last_now
    }

    /// Registers a request, picks its connection and queues its bytes.
    fn submit(&mut self, now: Instant, kind: Kind, bytes: Vec<u8>, wait_ms: u64) -> RequestId {
        let now = self.tick(now);
        let id = self.next_request;
        self.next_request += 1;
        let request = Request::new(kind, bytes, now, self.config.request_timeout_ms, wait_ms);
        self.requests.insert(id, request);
        self.dispatch(id, now);
        id
    }

    /// Sends a registered request on the connection that suits it.
    fn dispatch(&mut self, id: RequestId, now: Instant) {
        let Some(waits) = self.requests.get(&id).map(|request| request.waits) else {
            return;
        };
        let conn = if waits {
            self.idle_dedicated(now)
        } else {
            self.shared_conn(now)
        };
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        request.conn = conn;
        if let Some(connection) = self.conns.get_mut(&conn) {
            // With several endpoints every request keeps its bytes: a `-MOVED` reply (the
            // server did nothing) sends even an ACQUIRE again, to the leader.
            if connection.open && !request.kind.idempotent() && self.config.endpoints <= 1 {
                // Sent now and never again: the bytes move instead of being copied.
                let bytes = core::mem::take(&mut request.bytes);
                if connection.out.is_empty() {
                    connection.out = bytes;
                } else {
                    connection.out.extend_from_slice(&bytes);
                }
            } else {
                connection.out.extend_from_slice(&request.bytes);
            }
            connection.in_flight.push_back(Some(id));
            if connection.open {
                request.restart_clock(now);
            } else {
                // Not sent yet: the connect timeout bounds the wait until it is.
                request.deadline = Instant(u64::MAX);
            }
        }
        self.queue(conn);
    }

    fn shared_conn(&mut self, now: Instant) -> ConnId {
        match self.shared {
            Some(conn) if self.conns.contains_key(&conn) => conn,
            _ => {
                let conn = self.open_conn(now, false);
                self.shared = Some(conn);
                conn
            }
        }
    }

    /// Returns an open dedicated connection with nothing in flight, or a new one.
    fn idle_dedicated(&mut self, now: Instant) -> ConnId {
        let idle = self
            .conns
            .iter()
            .find(|(_, conn)| conn.dedicated && !conn.draining && conn.in_flight.is_empty())
            .map(|(&id, _)| id);
        idle.unwrap_or_else(|| self.open_conn(now, true))
    }

    fn open_conn(&mut self, now: Instant, dedicated: bool) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        let mut conn = Conn {
            endpoint: self.endpoint,
            open: false,
            dedicated,
            connect_deadline: now.plus_ms(self.config.connect_timeout_ms),
            tries: 1,
            decoder: Decoder::new(self.config.limits),
            out: Vec::new(),
            queued: false,
            in_flight: VecDeque::new(),
            draining: false,
            auth_error: None,
        };
        let credentials = self
            .config
            .credentials
            .as_ref()
            .map(|c| (c.username.as_bytes(), c.password.as_bytes()));
        match (self.config.resp3, credentials) {
            (true, Some((user, password))) => conn
                .out
                .extend_from_slice(&request::encode(&[b"HELLO", b"3", b"AUTH", user, password])),
            (true, None) => conn
                .out
                .extend_from_slice(&request::encode(&[b"HELLO", b"3"])),
            (false, Some((user, password))) => conn
                .out
                .extend_from_slice(&request::encode(&[b"AUTH", user, password])),
            (false, None) => {}
        }
        if !conn.out.is_empty() {
            conn.in_flight.push_back(None);
        }
        self.conns.insert(id, conn);
        self.control.push_back(Output::Connect {
            conn: id,
            endpoint: self.endpoint,
        });
        id
    }

    fn queue(&mut self, conn: ConnId) {
        if let Some(connection) = self.conns.get_mut(&conn) {
            if !connection.queued && connection.open && !connection.out.is_empty() {
                connection.queued = true;
                self.ready.push_back(conn);
            }
        }
    }

    /// Follows a cluster's redirect: the server did nothing, so the request goes again. After
    /// `-MOVED host:port` it goes to the endpoint named (or the next one) at once, at most once
    /// per endpoint; when no node can take it yet (a `NOTLEADER` that says it had no effect,
    /// or moves exhausted while an election is under way) it pauses, 50 ms doubling up to
    /// 800 ms, and goes to the next endpoint, for as long as its timeout lasts. The connection
    /// drains. Returns false when the reply is anything else or the request cannot be sent
    /// again (its bytes are gone, it was cancelled, or its time is up: the error is its answer).
    fn follow_redirect(
        &mut self,
        conn: ConnId,
        slot: Option<RequestId>,
        reply: &Decoded,
        now: Instant,
    ) -> bool {
        let Decoded::Value(Value::Error(text)) = reply else {
            return false;
        };
        let moved = text.strip_prefix("MOVED ").map(str::trim);
        let no_effect = moved.is_some()
            || text.as_str() == crate::error::NOT_LEADER_NO_LEADER
            || text.as_str() == crate::error::NOT_LEADER_NO_EFFECT;
        if !no_effect {
            return false;
        }
        let Some(id) = slot else {
            return false;
        };
        let endpoints = self.config.endpoints.max(1);
        let Some(request) = self.requests.get_mut(&id) else {
            return false;
        };
        if request.bytes.is_empty() || request.cancelled {
            return false;
        }
        let from = self.conns.get(&conn).map_or(0, |c| c.endpoint);
        let named = moved.and_then(|address| {
            self.config
                .endpoint_addresses
                .iter()
                .position(|known| known == address)
                .filter(|&index| index < endpoints)
        });
        let next = named.unwrap_or((from + 1) % endpoints);
        let at_once = moved.is_some() && request.moves < endpoints;
        let automatic = matches!(
            request.kind,
            Kind::Renew {
                automatic: true,
                ..
            }
        );
        if at_once {
            request.moves += 1;
        } else if automatic {
            // The lease's own renewal schedule retries it, paced by the lease's deadline.
            return false;
        } else {
            let pause_ms = RIDE_THROUGH_FIRST_MS << request.pauses.min(4);
            let resume = now.plus_ms(pause_ms);
            if resume >= request.born.plus_ms(request.timeout_ms) {
                return false;
            }
            request.pauses += 1;
            request.moves = 0;
            request.paused = true;
            request.deadline = resume;
        }
        self.endpoint = next;
        if let Some(connection) = self.conns.get_mut(&conn) {
            connection.draining = true;
        }
        if self.shared == Some(conn) {
            self.shared = None;
        }
        if at_once {
            self.dispatch(id, now);
        }
        true
    }

    /// Types a reply and applies what it means for tracked leases.
    fn handle_reply(
        &mut self,
        conn: ConnId,
        slot: Option<RequestId>,
        reply: Decoded,
        now: Instant,
    ) {
        let Some(id) = slot else {
            // The reply to the connection's own HELLO 3 (an error leaves it on RESP2) or
            // AUTH: a failed authentication explains the NOAUTH replies that follow.
            let text = match &reply {
                Decoded::Value(Value::Error(text)) => Some(text),
                _ => None,
            };
            if let Some(error) = text.map(|text| Error::from_wire(text)) {
                if matches!(error, Error::WrongPass(_) | Error::NoAuth(_)) {
                    if let Some(connection) = self.conns.get_mut(&conn) {
                        connection.auth_error = Some(error);
                    }
                }
            }
            return;
        };
        let Some(request) = self.requests.remove(&id) else {
            return;
        };
        let mut result = match reply {
            Decoded::Small(small) => reply::typed_small(&request.kind, small),
            Decoded::Value(value) => reply::typed(&request.kind, value),
        };
        if let Err(Error::NoAuth(_)) = result {
            if let Some(error) = self.conns.get(&conn).and_then(|c| c.auth_error.clone()) {
                result = Err(error);
            }
        }
        match request.kind {
            Kind::Acquire {
                name,
                ttl_ms,
                ephemeral,
            } => {
                if let Ok(Reply::Granted { token, .. }) = result {
                    #[cfg(feature = "sim-bugs")]
                    let sent_at = self.planted_late_deadline(request.sent_at);
                    #[cfg(not(feature = "sim-bugs"))]
                    let sent_at = request.sent_at;
                    let deadline = sent_at.plus_ms(ttl_ms);
                    let ephemeral_conn = ephemeral.then_some(conn);
                    // The name moves into the lease: a grant costs no second copy of it.
                    self.leases
                        .track(name, token, ttl_ms, sent_at, ephemeral_conn);
                    result = Ok(Reply::Granted { token, deadline });
                }
            }
            Kind::Renew { token, automatic } => {
                let name = request.name();
                // A deposed leader's "may or may not have taken effect": the renewal may
                // have run, and set the lease's deadline by its TTL, a shorter one too. It
                // counts as a copy left on a failed connection, the user's as well as the
                // schedule's.
                let unknown = matches!(&result, Err(error) if effect_unknown(error));
                if unknown {
                    self.leases.renewal_cut(name, token, id, true, false);
                }
                if automatic && matches!(&result, Err(error) if is_not_leader(error)) {
                    // A cluster node that does not lead, and no MOVED was left to follow (a
                    // failover: the followers still name the dead leader). The lease stands:
                    // renew again, until its own deadline, as after a lost connection.
                    if !unknown {
                        self.leases.renewal_refused(name, token, id);
                    }
                    if let Some(lost) = self.leases.renewal_failed(now, name, token) {
                        self.lose(name, token, lost);
                    }
                    return;
                }
                let lost = match &result {
                    Ok(Reply::MsLeft(ms_left)) => {
                        let (sent_at, ms_left) = (request.sent_at, *ms_left);
                        self.leases
                            .renewed(name, token, id, sent_at, ms_left, automatic);
                        None
                    }
                    Ok(_) => {
                        self.leases.renewal_answered(name, token, id, automatic);
                        None
                    }
                    // The user hears the error; the lease stands, its deadline capped.
                    Err(_) if unknown => None,
                    Err(Error::ConnectionLost(_)) => {
                        self.leases.renewal_refused(name, token, id);
                        // Like a renewal whose connection failed: tried again soon.
                        automatic
                            .then(|| self.leases.renewal_failed(now, name, token))
                            .flatten()
                    }
                    Err(error) => {
                        self.leases.renewal_refused(name, token, id);
                        (is_gone(error) || automatic).then(|| LostReason::Refused(error.clone()))
                    }
                };
                if let Some(reason) = lost {
                    self.lose(request.name(), token, reason);
                }
                if automatic {
                    // Nobody asked: the outcome shows only through the lease.
                    return;
                }
            }
            Kind::Release { token } => match &result {
                Ok(_) => self.leases.forget(request.name(), token),
                Err(error) if is_gone(error) => {
                    if request.retried {
                        // The first attempt may have released it before its connection failed,
                        // or the lease had lapsed (or the server restarted) before it arrived:
                        // nobody can tell which, so the outcome is unknown, never a success
                        // that would vouch for a lease that may have ended before its release.
                        // Either way the lease is gone: a tracked one is signalled lost.
                        let reason = LostReason::Refused(error.clone());
                        self.lose(request.name(), token, reason);
                        result = Err(Error::ConnectionLost(
                            Text::new(
                                "RELEASE outcome unknown: its connection failed after it was \
                                 sent, and the retry found the lease gone (",
                            )
                            .str(error.code().as_str())
                            .str("): released by the first attempt, or lapsed before it")
                            .into(),
                        ));
                    } else {
                        let reason = LostReason::Refused(error.clone());
                        self.lose(request.name(), token, reason);
                    }
                }
                Err(_) => {}
            },
            Kind::Verify { token } => {
                if let Err(error) = &result {
                    if is_gone(error) {
                        let reason = LostReason::Refused(error.clone());
                        self.lose(request.name(), token, reason);
                    }
                }
            }
            _ => {}
        }
        if !request.cancelled {
            self.replies.push_back((id, result));
        }
    }

    fn handle_push(&mut self, items: &[Value]) {
        let Some(notice) = reply::lease_notice(items) else {
            return;
        };
        if let Event::Notice {
            kind,
            name,
            token,
            by_token,
        } = &notice
        {
            let reason = match (kind.as_str(), by_token) {
                ("stolen", Some(by_token)) => Some(LostReason::Stolen {
                    by_token: *by_token,
                }),
                ("expired", _) => Some(LostReason::Expired),
                _ => None,
            };
            if let Some(reason) = reason {
                let (name, token) = (name.clone(), *token);
                self.lose(&name, token, reason);
            }
        }
        self.events.push_back(notice);
    }

    /// The planted bug [`crate::PlantedBug::LateClientDeadline`]: the lease is measured
    /// from the reply's arrival.
    #[cfg(feature = "sim-bugs")]
    fn planted_late_deadline(&self, sent_at: Instant) -> Instant {
        if self.config.planted_bug == Some(crate::PlantedBug::LateClientDeadline) {
            return self.last_now;
        }
        sent_at
    }

    /// Emits the loss of a tracked lease once and forgets it.
    fn lose(&mut self, name: &str, token: Token, reason: LostReason) {
        if self.leases.remove(name, token) {
            self.lost(String::from(name), token, reason);
        }
    }

    /// Queues the loss of a lease the client no longer tracks, after the reply that granted
    /// it if that reply is still to be polled.
    fn lost(&mut self, name: String, token: Token, reason: LostReason) {
        let grant = self.replies.iter().find_map(|(id, reply)| match reply {
            Ok(Reply::Granted { token: granted, .. }) if *granted == token => Some(*id),
            _ => None,
        });
        let event = Event::LeaseLost {
            name,
            token,
            reason,
        };
        match grant {
            Some(id) => self.held_back.push((id, event)),
            None => self.events.push_back(event),
        }
    }

    /// Queues the losses held back for the reply `id`, now polled or dropped.
    fn release_held_back(&mut self, id: RequestId) {
        if self.held_back.is_empty() {
            return;
        }
        let mut index = 0;
        while let Some((reply, _)) = self.held_back.get(index) {
            if *reply == id {
                let (_, event) = self.held_back.remove(index);
                self.events.push_back(event);
            } else {
                index += 1;
            }
        }
    }

    /// Ends a connection that failed, retrying what may be retried.
    fn fail_conn(&mut self, conn: ConnId, reason: &str, now: Instant) {
        self.drop_conn(conn, reason, now, true);
    }

    fn drop_conn(&mut self, conn: ConnId, reason: &str, now: Instant, retry: bool) {
        let Some(connection) = self.conns.remove(&conn) else {
            return;
        };
        self.control.push_back(Output::Close { conn });
        if self.shared == Some(conn) {
            self.shared = None;
        }
        let never_opened = !connection.open;
        if never_opened && retry {
            // Failover: the next connect goes to the next endpoint.
            self.endpoint = (connection.endpoint + 1) % self.config.endpoints.max(1);
        }
        for (name, token) in self.leases.ephemeral_on(conn) {
            self.lose(&name, token, LostReason::ConnectionClosed);
        }
        let endpoints = self.config.endpoints.max(1);
        for id in connection.in_flight.into_iter().flatten() {
            let Some(request) = self.requests.get_mut(&id) else {
                continue;
            };
            let may_retry = retry
                && !request.cancelled
                && (if never_opened {
                    // Nothing was sent: any request may go to the next endpoint.
                    connection.tries < endpoints
                } else {
                    request.kind.idempotent() && !request.retried
                });
            if let Kind::Renew { token, .. } = request.kind {
                // A copy that may have left can still run on the server, whatever comes next.
                let name = request.name();
                self.leases
                    .renewal_cut(name, token, id, connection.open, may_retry);
            }
            if may_retry {
                if !never_opened {
                    request.retried = true;
                }
                self.dispatch(id, now);
                if never_opened {
                    let tries = connection.tries + 1;
                    if let Some(next) = self.requests.get(&id).map(|request| request.conn) {
                        if let Some(next_conn) = self.conns.get_mut(&next) {
                            next_conn.tries = next_conn.tries.max(tries);
                        }
                    }
                }
                continue;
            }
            let Some(request) = self.requests.remove(&id) else {
                continue;
            };
            // A request that never left this client (its connection never opened, and it was
            // not sent on an earlier one) certainly had no effect: say so, so a caller may
            // retry even an ACQUIRE without risking a second lease.
            let what = if never_opened && !request.retried {
                "not sent"
            } else {
                "failed"
            };
            let error = Error::ConnectionLost(
                Text::new(request.kind.command())
                    .str(" ")
                    .str(what)
                    .str(": ")
                    .str(reason)
                    .into(),
            );
            if let Kind::Renew {
                token,
                automatic: true,
            } = request.kind
            {
                let name = String::from(request.name());
                if let Some(lost) = self.leases.renewal_failed(now, &name, token) {
                    self.lose(&name, token, lost);
                }
                continue;
            }
            if !request.cancelled {
                self.replies.push_back((id, Err(error)));
            }
        }
    }
}

/// A reply as the decoder read it: small ones need no value built.
enum Decoded {
    Small(decoder::Small),
    Value(Value),
}

/// Tells whether an error is a cluster node's "not the leader" (`MOVED`, `NOTLEADER`): the
/// request reached no leader, so it says nothing about the lease.
fn is_not_leader(error: &Error) -> bool {
    matches!(error, Error::Reply { code, .. } if code == "MOVED" || code == "NOTLEADER")
}

/// Tells whether an error is a deposed cluster leader's "may or may not have taken effect"
/// ([`crate::error::NOT_LEADER_UNKNOWN`]).
fn effect_unknown(error: &Error) -> bool {
    matches!(error, Error::Reply { code, message } if code == "NOTLEADER" && message.contains("may or may not"))
}

/// Tells whether an error means the token holds nothing: the lease is gone for good.
fn is_gone(error: &Error) -> bool {
    matches!(error, Error::Stale { .. } | Error::Expired { .. })
}
