//! The load: lock cycles over TCP, each connection group driven by core's sans-IO client.
//!
//! Every virtual client owns one `fencelock_core::client::Client` and the sockets it asks for,
//! so fencelock is spoken exactly as the Python and Node clients speak it (short requests
//! pipelined on one shared connection, each waiting acquire on its own). Redis gets the lock
//! recipe its users run, through the same client's raw `command` (the same encoder, decoder
//! and I/O loop, so both sides pay the same client cost): `SET name token NX PX ttl`, then a
//! compare-and-delete (or compare-and-pexpire) `EVAL`. Each thread runs a mio loop over its
//! share of the virtual clients; a slot is one cycle in flight, and `pipeline` slots per
//! client keep that many requests outstanding on its connection.

use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant as StdInstant};
use std::{cmp::Reverse, thread};

use fencelock_core::client::{Client, ClientConfig, ConnId, Output, Reply, RequestId, Value};
use fencelock_core::{AcquireOptions, Error, Instant};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::histogram::Histogram;
use crate::procstat;

/// The server speaking on the other end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A fencelock server: typed requests through the client.
    Fencelock,
    /// redis-server: the SET NX PX / EVAL recipe.
    Redis,
    /// `loadgen echo-server`: fencelock-shaped requests, echoed back (the floor).
    Echo,
}

/// What each slot does, over and over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Acquire a random name, release it.
    Cycle,
    /// Acquire one of K hot names (fencelock: WAIT in the server's queue; Redis: retry after
    /// a delay, as its lock libraries do), release it.
    Hot,
    /// Acquire a random name, renew it, release it.
    Renew,
    /// Acquire `count` distinct names and keep them (live leases for the memory case).
    Fill,
}

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct Options {
    pub addr: SocketAddr,
    pub target: Target,
    pub mix: Mix,
    pub conns: usize,
    pub pipeline: usize,
    pub threads: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub ttl_ms: u64,
    pub hot_names: usize,
    pub wait_ms: u64,
    pub retry_delay_ms: u64,
    pub count: u64,
    pub prefix: String,
    pub server_pid: Option<u32>,
    pub seed: u64,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Every request's latency, submit to typed reply.
    pub op: Histogram,
    pub acquire: Histogram,
    pub renew: Histogram,
    pub release: Histogram,
    /// A whole cycle, first acquire to release reply.
    pub cycle: Histogram,
    pub ops: u64,
    pub cycles: u64,
    /// Acquires refused (LOCKED, nil) and retried.
    pub retries: u64,
    pub errors: HashMap<String, u64>,
    /// Seconds the measured window lasted.
    pub seconds: f64,
    pub server_cpu_seconds: Option<f64>,
    pub server_rss_before: Option<u64>,
    pub server_rss_after: Option<u64>,
    pub connections: usize,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.op.merge(&other.op);
        self.acquire.merge(&other.acquire);
        self.renew.merge(&other.renew);
        self.release.merge(&other.release);
        self.cycle.merge(&other.cycle);
        self.ops += other.ops;
        self.cycles += other.cycles;
        self.retries += other.retries;
        for (code, count) in other.errors {
            *self.errors.entry(code).or_default() += count;
        }
        self.connections += other.connections;
    }
}

/// Runs the load: threads share the virtual clients, the caller's thread reads the server's
/// CPU time at the edges of the measured window.
///
/// # Errors
/// Bad options, or a thread that failed (its error text).
pub fn run(options: &Options) -> Result<Outcome, String> {
    if options.conns == 0 || options.pipeline == 0 || options.threads == 0 {
        return Err("--conns, --pipeline and --threads must be at least 1".into());
    }
    if options.mix == Mix::Hot && options.hot_names == 0 {
        return Err("--hot-names must be at least 1".into());
    }
    let threads = options.threads.min(options.conns);
    let start = StdInstant::now();
    let window = Window {
        start,
        from: start + options.warmup,
        until: start + options.warmup + options.duration,
    };
    let fill = options.mix == Mix::Fill;
    let rss_before = options.server_pid.and_then(procstat::rss_bytes);
    let outcome = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|index| {
                let first = options.conns * index / threads;
                let last = options.conns * (index + 1) / threads;
                scope.spawn(move || Worker::new(options, index, first..last, window).run())
            })
            .collect();
        let mut cpu = None;
        if !fill {
            if let Some(pid) = options.server_pid {
                sleep_until(window.from);
                let before = procstat::cpu_seconds(pid);
                sleep_until(window.until);
                let after = procstat::cpu_seconds(pid);
                cpu = before.zip(after).map(|(before, after)| after - before);
            }
        }
        let mut outcome = Outcome {
            server_cpu_seconds: cpu,
            ..Outcome::default()
        };
        for handle in handles {
            match handle.join() {
                Ok(Ok(part)) => outcome.merge(part),
                Ok(Err(error)) => return Err(error),
                Err(_) => return Err("a load thread panicked".into()),
            }
        }
        Ok(outcome)
    });
    let mut outcome = outcome?;
    outcome.seconds = if fill {
        start.elapsed().as_secs_f64()
    } else {
        options.duration.as_secs_f64()
    };
    outcome.server_rss_before = rss_before;
    outcome.server_rss_after = options.server_pid.and_then(procstat::rss_bytes);
    Ok(outcome)
}

fn sleep_until(when: StdInstant) {
    let now = StdInstant::now();
    if when > now {
        thread::sleep(when - now);
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: StdInstant,
    /// Measured from here (after the warm-up)...
    from: StdInstant,
    /// ...to here; no cycle starts after it.
    until: StdInstant,
}

/// Longest the drain after the window may take: in-flight cycles finish so that no hot lock
/// stays held into the next run.
const DRAIN: Duration = Duration::from_secs(5);
/// How often every client's timers are looked at.
const TICK: Duration = Duration::from_millis(50);

const RELEASE_SCRIPT: &[u8] = b"if redis.call('get',KEYS[1]) == ARGV[1] then return redis.call('del',KEYS[1]) else return 0 end";
const RENEW_SCRIPT: &[u8] = b"if redis.call('get',KEYS[1]) == ARGV[1] then return redis.call('pexpire',KEYS[1],ARGV[2]) else return 0 end";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Idle,
    Acquiring,
    Renewing,
    Releasing,
    /// Redis hot lock: refused, retrying at a time on the timer heap.
    Backoff,
    Done,
}

#[derive(Debug)]
struct Slot {
    step: Step,
    name: String,
    /// fencelock: the fencing token; Redis: the random value that marks the holder.
    token: u64,
    op_started: StdInstant,
    cycle_started: StdInstant,
}

#[derive(Debug)]
struct Sock {
    stream: TcpStream,
    token: Token,
    unsent: Vec<u8>,
    writable: bool,
}

#[derive(Debug)]
struct User {
    client: Client,
    socks: HashMap<ConnId, Sock>,
    slots: Vec<Slot>,
    pending: HashMap<RequestId, usize>,
}

struct Worker<'a> {
    options: &'a Options,
    window: Window,
    poll: Poll,
    users: Vec<User>,
    tokens: HashMap<Token, (usize, ConnId)>,
    next_token: usize,
    timers: BinaryHeap<Reverse<(StdInstant, usize, usize)>>,
    rng: u64,
    fill_next: u64,
    fill_last: u64,
    outcome: Outcome,
    failure: Option<String>,
    ttl: String,
    wait: String,
}

impl std::fmt::Debug for Worker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("users", &self.users.len())
            .finish()
    }
}

impl<'a> Worker<'a> {
    fn new(
        options: &'a Options,
        index: usize,
        users: std::ops::Range<usize>,
        window: Window,
    ) -> Self {
        let mut config = ClientConfig::default();
        // fencelock clients ask for RESP3 (lost-lease pushes); Redis lock users stay on RESP2.
        config.resp3 = options.target == Target::Fencelock;
        config.request_timeout_ms = 60_000 + options.wait_ms;
        let now = window.start;
        let users: Vec<User> = users
            .map(|_| User {
                client: Client::new(config.clone()),
                socks: HashMap::new(),
                slots: (0..options.pipeline)
                    .map(|_| Slot {
                        step: Step::Idle,
                        name: String::new(),
                        token: 0,
                        op_started: now,
                        cycle_started: now,
                    })
                    .collect(),
                pending: HashMap::new(),
            })
            .collect();
        // Fill: this thread's share of the names, contiguous.
        let threads = options.threads.min(options.conns) as u64;
        let index = index as u64;
        Worker {
            options,
            window,
            poll: Poll::new().unwrap_or_else(|error| fatal(&error)),
            users,
            tokens: HashMap::new(),
            next_token: 0,
            timers: BinaryHeap::new(),
            rng: options.seed ^ (index + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            fill_next: options.count * index / threads,
            fill_last: options.count * (index + 1) / threads,
            outcome: Outcome::default(),
            failure: None,
            ttl: options.ttl_ms.to_string(),
            wait: options.wait_ms.to_string(),
        }
    }

    fn run(mut self) -> Result<Outcome, String> {
        for user in 0..self.users.len() {
            for slot in 0..self.options.pipeline {
                self.start_cycle(user, slot);
            }
            self.flush(user);
        }
        let mut events = Events::with_capacity(1024);
        let mut buffer = vec![0u8; 64 * 1024];
        let mut next_tick = StdInstant::now() + TICK;
        loop {
            if let Some(failure) = self.failure.take() {
                return Err(failure);
            }
            let now = StdInstant::now();
            if self.finished(now) {
                break;
            }
            let mut timeout = next_tick.saturating_duration_since(now);
            if let Some(Reverse((when, _, _))) = self.timers.peek() {
                timeout = timeout.min(when.saturating_duration_since(now));
            }
            if self.options.mix != Mix::Fill && now < self.window.until {
                timeout = timeout.min(self.window.until - now);
            }
            if let Err(error) = self.poll.poll(&mut events, Some(timeout)) {
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(format!("poll: {error}"));
                }
            }
            for event in &events {
                let Some(&(user, conn)) = self.tokens.get(&event.token()) else {
                    continue;
                };
                if event.is_writable() {
                    self.write_unsent(user, conn);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read(user, conn, &mut buffer);
                }
                self.flush(user);
            }
            let now = StdInstant::now();
            while let Some(&Reverse((when, user, slot))) = self.timers.peek() {
                if when > now {
                    break;
                }
                self.timers.pop();
                if let Some(entry) = self.users.get_mut(user).and_then(|u| u.slots.get_mut(slot)) {
                    if entry.step == Step::Backoff {
                        entry.step = Step::Idle;
                        self.send_acquire(user, slot);
                        self.flush(user);
                    }
                }
            }
            if now >= next_tick {
                next_tick = now + TICK;
                let client_now = self.client_now(now);
                for user in 0..self.users.len() {
                    if let Some(entry) = self.users.get_mut(user) {
                        entry.client.handle_timeout(client_now);
                    }
                    self.flush(user);
                }
            }
        }
        let now = self.client_now(StdInstant::now());
        self.outcome.connections = self.users.iter().map(|user| user.socks.len()).sum();
        for user in &mut self.users {
            user.client.close(now);
        }
        Ok(self.outcome)
    }

    /// True when every cycle is done (fill: every name taken), or the drain ran out.
    fn finished(&self, now: StdInstant) -> bool {
        if self.options.mix == Mix::Fill {
            return self.fill_next >= self.fill_last
                && self.users.iter().all(|user| user.pending.is_empty());
        }
        if now < self.window.until {
            return false;
        }
        now >= self.window.until + DRAIN
            || self
                .users
                .iter()
                .all(|user| user.slots.iter().all(|slot| slot.step == Step::Done))
    }

    fn client_now(&self, now: StdInstant) -> Instant {
        let ms = now.saturating_duration_since(self.window.start).as_millis();
        Instant(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: names and Redis holder values, not security.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn start_cycle(&mut self, user: usize, slot: usize) {
        let now = StdInstant::now();
        let name = match self.options.mix {
            Mix::Fill => {
                if self.fill_next >= self.fill_last {
                    self.set_step(user, slot, Step::Done);
                    return;
                }
                let index = self.fill_next;
                self.fill_next += 1;
                format!("{}held:{index:08}", self.options.prefix)
            }
            _ if now >= self.window.until => {
                self.set_step(user, slot, Step::Done);
                return;
            }
            Mix::Hot => {
                let hot = self.random() % self.options.hot_names as u64;
                format!("{}hot:{hot}", self.options.prefix)
            }
            Mix::Cycle | Mix::Renew => {
                let random = self.random();
                format!("{}lock:{random:016x}", self.options.prefix)
            }
        };
        let token = self.random() >> 11;
        if let Some(entry) = self.users.get_mut(user).and_then(|u| u.slots.get_mut(slot)) {
            entry.name = name;
            entry.token = token;
            entry.cycle_started = now;
        }
        self.send_acquire(user, slot);
    }

    fn set_step(&mut self, user: usize, slot: usize, step: Step) {
        if let Some(entry) = self.users.get_mut(user).and_then(|u| u.slots.get_mut(slot)) {
            entry.step = step;
        }
    }

    fn send_acquire(&mut self, user: usize, slot: usize) {
        let options = self.options;
        let now = StdInstant::now();
        let client_now = self.client_now(now);
        let Some(entry) = self.users.get_mut(user) else {
            return;
        };
        let Some(state) = entry.slots.get_mut(slot) else {
            return;
        };
        state.op_started = now;
        state.step = Step::Acquiring;
        let token = state.token.to_string();
        let sent = match options.target {
            Target::Fencelock => {
                let mut acquire = AcquireOptions::default();
                if options.mix == Mix::Hot {
                    acquire.wait_ms = options.wait_ms;
                }
                entry
                    .client
                    .acquire(client_now, &state.name, options.ttl_ms, &acquire)
            }
            Target::Redis => entry.client.command(
                client_now,
                &[
                    b"SET",
                    state.name.as_bytes(),
                    token.as_bytes(),
                    b"NX",
                    b"PX",
                    self.ttl.as_bytes(),
                ],
            ),
            Target::Echo => {
                let mut argv: Vec<&[u8]> =
                    vec![b"ACQUIRE", state.name.as_bytes(), self.ttl.as_bytes()];
                if options.mix == Mix::Hot {
                    argv.extend_from_slice(&[b"WAIT", self.wait.as_bytes()]);
                }
                entry.client.command(client_now, &argv)
            }
        };
        self.track(user, slot, sent);
    }

    fn send_next(&mut self, user: usize, slot: usize, step: Step) {
        let options = self.options;
        let client_now = self.client_now(StdInstant::now());
        let Some(entry) = self.users.get_mut(user) else {
            return;
        };
        let Some(state) = entry.slots.get_mut(slot) else {
            return;
        };
        state.step = step;
        state.op_started = StdInstant::now();
        let token = state.token.to_string();
        let name = state.name.as_bytes();
        let renewing = step == Step::Renewing;
        let sent = match options.target {
            Target::Fencelock if renewing => {
                entry
                    .client
                    .renew(client_now, &state.name, state.token, options.ttl_ms)
            }
            Target::Fencelock => entry.client.release(client_now, &state.name, state.token),
            Target::Redis => {
                let (script, ttl): (&[u8], &[&[u8]]) = if renewing {
                    (RENEW_SCRIPT, &[self.ttl.as_bytes()])
                } else {
                    (RELEASE_SCRIPT, &[])
                };
                let mut argv: Vec<&[u8]> = vec![b"EVAL", script, b"1", name, token.as_bytes()];
                argv.extend_from_slice(ttl);
                entry.client.command(client_now, &argv)
            }
            Target::Echo => {
                let command: &[u8] = if renewing { b"RENEW" } else { b"RELEASE" };
                let mut argv: Vec<&[u8]> = vec![command, name, token.as_bytes()];
                if renewing {
                    argv.push(self.ttl.as_bytes());
                }
                entry.client.command(client_now, &argv)
            }
        };
        self.track(user, slot, sent);
    }

    fn track(&mut self, user: usize, slot: usize, sent: Result<RequestId, Error>) {
        match sent {
            Ok(id) => {
                if let Some(entry) = self.users.get_mut(user) {
                    entry.pending.insert(id, slot);
                }
            }
            Err(error) => {
                self.failure = Some(format!(
                    "request refused by the client: {}",
                    error.message()
                ));
            }
        }
    }

    /// Performs the client's outputs and handles its replies until neither is left.
    fn flush(&mut self, user: usize) {
        loop {
            let mut progressed = false;
            while let Some(output) = self
                .users
                .get_mut(user)
                .and_then(|u| u.client.poll_output())
            {
                progressed = true;
                self.perform(user, output);
            }
            while let Some(entry) = self.users.get_mut(user) {
                // Lease events (a lost lease) need nothing from a load generator.
                while entry.client.poll_event().is_some() {}
                let Some((id, result)) = entry.client.poll_reply() else {
                    break;
                };
                progressed = true;
                if let Some(slot) = entry.pending.remove(&id) {
                    self.on_reply(user, slot, result);
                }
            }
            if !progressed {
                return;
            }
        }
    }

    fn on_reply(&mut self, user: usize, slot: usize, result: Result<Reply, Error>) {
        let now = StdInstant::now();
        let measured =
            now >= self.window.from && now <= self.window.until || self.options.mix == Mix::Fill;
        let Some(state) = self.users.get_mut(user).and_then(|u| u.slots.get_mut(slot)) else {
            return;
        };
        let step = state.step;
        let latency = nanos(now - state.op_started);
        let cycle = nanos(now - state.cycle_started);
        let granted = match (&result, self.options.target) {
            (Ok(Reply::Granted { token, .. }), Target::Fencelock) => {
                state.token = *token;
                true
            }
            (Ok(Reply::Value(Value::Null)), Target::Redis) => false,
            (Ok(_), Target::Redis | Target::Echo) => true,
            _ => false,
        };
        let outcome = &mut self.outcome;
        let refused = match &result {
            Err(error) => {
                let code = error.wire_code();
                if step == Step::Acquiring && code == "LOCKED" {
                    true
                } else {
                    if measured {
                        *outcome.errors.entry(code.to_string()).or_default() += 1;
                    }
                    false
                }
            }
            Ok(_) => step == Step::Acquiring && !granted,
        };
        if measured {
            outcome.ops += 1;
            outcome.op.record(latency);
            if !refused {
                match step {
                    // From the first attempt: a refused hot acquire's retries are its wait.
                    Step::Acquiring => outcome.acquire.record(cycle),
                    Step::Renewing => outcome.renew.record(latency),
                    Step::Releasing => outcome.release.record(latency),
                    _ => {}
                }
            }
        }
        match step {
            Step::Acquiring if refused => {
                if measured {
                    outcome.retries += 1;
                }
                if now >= self.window.until && self.options.mix != Mix::Fill {
                    state.step = Step::Done;
                } else if self.options.retry_delay_ms == 0 {
                    self.send_acquire(user, slot);
                } else {
                    state.step = Step::Backoff;
                    let when = now + Duration::from_millis(self.options.retry_delay_ms);
                    self.timers.push(Reverse((when, user, slot)));
                }
            }
            Step::Acquiring if granted && self.options.mix == Mix::Fill => {
                // The lease stays on the server; the client need not track it.
                let (name, token) = (state.name.clone(), state.token);
                if let Some(entry) = self.users.get_mut(user) {
                    entry.client.forget(&name, token);
                }
                if measured {
                    self.outcome.cycles += 1;
                }
                self.start_cycle(user, slot);
            }
            Step::Acquiring if granted => {
                let next = if self.options.mix == Mix::Renew {
                    Step::Renewing
                } else {
                    Step::Releasing
                };
                self.send_next(user, slot, next);
            }
            Step::Renewing if result.is_ok() => self.send_next(user, slot, Step::Releasing),
            Step::Releasing if result.is_ok() => {
                if measured {
                    outcome.cycles += 1;
                    outcome.cycle.record(cycle);
                }
                self.start_cycle(user, slot);
            }
            // An error: start over with a new cycle (the error is counted).
            _ => self.start_cycle(user, slot),
        }
    }

    fn perform(&mut self, user: usize, output: Output) {
        let now = self.client_now(StdInstant::now());
        match output {
            Output::Connect { conn, .. } => match self.connect() {
                Ok(mut stream) => {
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    if let Err(error) =
                        self.poll
                            .registry()
                            .register(&mut stream, token, Interest::READABLE)
                    {
                        self.failure = Some(format!("register: {error}"));
                        return;
                    }
                    self.tokens.insert(token, (user, conn));
                    if let Some(entry) = self.users.get_mut(user) {
                        entry.socks.insert(
                            conn,
                            Sock {
                                stream,
                                token,
                                unsent: Vec::new(),
                                writable: false,
                            },
                        );
                        entry.client.handle_connected(now, conn);
                    }
                }
                Err(error) => {
                    self.failure = Some(format!("connect to {}: {error}", self.options.addr));
                }
            },
            Output::Transmit { conn, bytes } => self.transmit(user, conn, &bytes),
            Output::Close { conn } => {
                if let Some(mut sock) = self.users.get_mut(user).and_then(|u| u.socks.remove(&conn))
                {
                    let _ = self.poll.registry().deregister(&mut sock.stream);
                    self.tokens.remove(&sock.token);
                }
            }
            _ => {
                self.failure = Some(
                    "the client asked for an output this host does not know: update the host"
                        .into(),
                )
            }
        }
    }

    fn connect(&self) -> io::Result<TcpStream> {
        // Loopback only, so a blocking connect returns at once.
        let stream = std::net::TcpStream::connect(self.options.addr)?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        Ok(TcpStream::from_std(stream))
    }

    fn transmit(&mut self, user: usize, conn: ConnId, bytes: &[u8]) {
        let Some(sock) = self
            .users
            .get_mut(user)
            .and_then(|u| u.socks.get_mut(&conn))
        else {
            return;
        };
        if !sock.unsent.is_empty() {
            sock.unsent.extend_from_slice(bytes);
            return;
        }
        let mut written = 0;
        while written < bytes.len() {
            match sock.stream.write(bytes.get(written..).unwrap_or_default()) {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) => {
                    self.broken(user, conn, &error.to_string());
                    return;
                }
            }
        }
        if written < bytes.len() {
            sock.unsent
                .extend_from_slice(bytes.get(written..).unwrap_or_default());
            if !sock.writable {
                sock.writable = true;
                let interest = Interest::READABLE | Interest::WRITABLE;
                let _ = self
                    .poll
                    .registry()
                    .reregister(&mut sock.stream, sock.token, interest);
            }
        }
    }

    fn write_unsent(&mut self, user: usize, conn: ConnId) {
        let Some(sock) = self
            .users
            .get_mut(user)
            .and_then(|u| u.socks.get_mut(&conn))
        else {
            return;
        };
        let unsent = std::mem::take(&mut sock.unsent);
        sock.writable = false;
        let _ = self
            .poll
            .registry()
            .reregister(&mut sock.stream, sock.token, Interest::READABLE);
        self.transmit(user, conn, &unsent);
    }

    fn read(&mut self, user: usize, conn: ConnId, buffer: &mut [u8]) {
        loop {
            let Some(entry) = self.users.get_mut(user) else {
                return;
            };
            let Some(sock) = entry.socks.get_mut(&conn) else {
                return;
            };
            match sock.stream.read(buffer) {
                Ok(0) => {
                    self.broken(user, conn, "the server closed the connection");
                    return;
                }
                Ok(n) => {
                    let now = self.client_now(StdInstant::now());
                    if let Some(entry) = self.users.get_mut(user) {
                        entry
                            .client
                            .receive(now, conn, buffer.get(..n).unwrap_or_default());
                    }
                    // Handle what this read completed before reading more.
                    self.flush(user);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) => {
                    self.broken(user, conn, &error.to_string());
                    return;
                }
            }
        }
    }

    fn broken(&mut self, user: usize, conn: ConnId, reason: &str) {
        let now = self.client_now(StdInstant::now());
        if let Some(entry) = self.users.get_mut(user) {
            if let Some(mut sock) = entry.socks.remove(&conn) {
                let _ = self.poll.registry().deregister(&mut sock.stream);
                self.tokens.remove(&sock.token);
            }
            entry.client.handle_disconnect(now, conn, reason);
        }
        *self.outcome.errors.entry("DISCONNECT".into()).or_default() += 1;
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn fatal(error: &io::Error) -> Poll {
    // Poll::new fails only when the process is out of file descriptors: nothing to measure.
    eprintln!("loadgen: cannot create a poller: {error}");
    std::process::exit(2)
}
