//! One simulated run: the world (servers, clients, links, disks, a fenced resource), the fault
//! schedule, the workload and the checks.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};

use fencelock_core::client::{
    Client, ClientConfig, Event as ClientEvent, Output as ClientOutput, Reply, RequestId,
};
use fencelock_core::protocol::{Output as ServerOutput, Server, ServerConfig};
use fencelock_core::{
    AcquireOptions, BootClock, Config, DataFile, DataFiles, Error, Fence, FenceOutcome, FileAction,
    GraceCase, Instant, LockInfo, Mode, Recovery, StartKind,
};

use crate::lin::{self, Entry, LeaseOp, Outcome as LinOutcome};
use crate::rng::Rng;
use crate::trace::{replayed, stuck_timer, Trace};

/// The hot lock names every client fights over.
const LOCKS: [&str; 3] = ["alpha", "beta", "gamma"];
/// The servers' maximum TTL: short, so that restart graces are short and runs cover many.
const MAX_TTL_MS: u64 = 4_000;
/// The longest lock-delay a client asks for (one acquire in five asks for one).
const MAX_LOCK_DELAY_MS: u64 = 2_000;
/// How long the run goes on after the workload stops, so that every lease ends.
const DRAIN_MS: u64 = 3 * MAX_TTL_MS + 10_000;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct Options {
    /// The seed: the same seed gives the same run.
    pub seed: u64,
    /// Simulated time of the workload, in ms (a drain follows).
    pub duration_ms: u64,
    /// Independent servers, each with its own clients, disk and fenced resource.
    pub servers: usize,
    /// Clients per server.
    pub clients_per_server: usize,
    /// Lines of trace kept for a failure report.
    pub trace_len: usize,
    /// Changes every engine's configuration (the planted-bug tests switch bugs on here).
    pub engine_tweak: Option<fn(&mut Config)>,
    /// Changes every client's configuration.
    pub client_tweak: Option<fn(&mut ClientConfig)>,
}

impl Options {
    /// The default run of one seed: two simulated minutes, 1 to 2 servers, 3 to 6 clients each.
    #[must_use]
    pub fn new(seed: u64) -> Options {
        let mut shape = Rng::new(seed ^ 0xA5A5);
        Options {
            seed,
            duration_ms: 120_000,
            servers: usize::try_from(shape.range(1, 2)).unwrap_or(1),
            clients_per_server: usize::try_from(shape.range(3, 6)).unwrap_or(3),
            trace_len: 40,
            engine_tweak: None,
            client_tweak: None,
        }
    }
}

/// A broken check.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Simulated time, in ms.
    pub at_ms: u64,
    /// What broke.
    pub message: String,
    /// The last events before it, oldest first.
    pub trace: Vec<String>,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Simulated time covered, in ms.
    pub simulated_ms: u64,
    /// Steps taken (events and timer firings).
    pub steps: u64,
    /// Leases granted to clients (replies seen).
    pub grants: u64,
    /// Server crashes and clean restarts.
    pub crashes: u64,
    /// Clean shutdowns.
    pub shutdowns: u64,
    /// Writes the fenced resource accepted and refused.
    pub fenced_writes: (u64, u64),
    /// Operations checked for linearizability.
    pub checked_ops: u64,
    /// Lock histories whose linearizability search ran out of budget (neither passed nor failed).
    pub undecided_histories: u64,
    /// Waiters QUERY replies listed, each checked against the ACQUIREs with a WAIT in flight.
    pub waiters_checked: u64,
    /// The first broken check, if any.
    pub violation: Option<Violation>,
}

/// Simulates one run and checks it.
#[must_use]
pub fn run(options: &Options) -> Outcome {
    replayed(options, run_once)
}

fn run_once(options: &Options, tracing: bool) -> Outcome {
    let mut world = World::new(options, tracing);
    world.main_loop();
    if world.violation.is_none() {
        world.final_checks();
    }
    world.outcome.simulated_ms = world.now;
    world.outcome.violation = world.violation.take();
    world.outcome
}

// ---- the world ----

enum Ev {
    SynArrive {
        link: usize,
    },
    SynAck {
        link: usize,
        ok: bool,
    },
    Data {
        link: usize,
        to_server: bool,
        bytes: Vec<u8>,
    },
    Fin {
        link: usize,
        to_server: bool,
    },
    FsyncDone {
        cell: usize,
        epoch: u64,
    },
    Step {
        client: usize,
    },
    Resume {
        client: usize,
    },
    Fault,
    Restart {
        cell: usize,
    },
    FenceWrite {
        cell: usize,
        name: String,
        token: u64,
    },
}

/// An event in the queue, ordered by time and then by when it was scheduled (`seq` is unique),
/// earliest first in a max-heap.
struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Queued) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Queued {}

impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Queued) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Queued {
    fn cmp(&self, other: &Queued) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

enum Input {
    Syn(usize),
    Data(usize, Vec<u8>),
    Fin(usize),
    Shutdown,
}

struct Proc {
    server: Server,
    /// Global time of the process's `Instant::ZERO`.
    origin: u64,
    /// A durable write in progress: the host performs nothing after it until it completes.
    fsync: Option<FileAction>,
    /// Inputs that arrived while the host was blocked on an fsync.
    inbox: VecDeque<Input>,
    stopping: bool,
    conns: BTreeMap<u64, usize>,
    last_token: u64,
}

#[derive(Clone, PartialEq, Eq)]
struct ViewLease {
    /// The lock's name: one of [`LOCKS`].
    name: &'static str,
    /// Its index in [`LOCKS`].
    lock: usize,
    shared: bool,
    deadline: u64,
    ephemeral: bool,
}

struct Cell {
    proc: Option<Proc>,
    epoch: u64,
    disk: BTreeMap<DataFile, Vec<u8>>,
    boot: u64,
    boot_start: u64,
    keeps_boot_clock: bool,
    /// Leases of stopped runs, live until their deadline as far as anyone may know.
    ghosts: BTreeMap<u64, ViewLease>,
    /// The engine's leases at the last check, by token (a handful: a sorted list).
    view: Vec<(u64, ViewLease)>,
    /// The list before that, kept for its allocation.
    spare_view: Vec<(u64, ViewLease)>,
    /// What a client check reads of this server may have changed other than through `view`
    /// (a durable write blocked it, it stopped or started): its clients are checked again at
    /// the next server check.
    recheck_clients: bool,
    /// Every token a client was told of, with the owner label its lease was asked with.
    revealed: BTreeMap<u64, String>,
    max_revealed: u64,
    fence: Fence,
    fence_high: BTreeMap<String, u64>,
    history: BTreeMap<String, Vec<Entry<LeaseOp>>>,
    release_sent: BTreeSet<u64>,
    steal_at: BTreeMap<String, u64>,
    /// ACQUIREs with a WAIT a QUERY may list as waiting, by the number `next_wait` gave them.
    waits: BTreeMap<u64, WaitCall>,
    next_wait: u64,
    stop_called_at: u64,
    route_down_until: [u64; 2],
}

struct Pending {
    name: String,
    history: Option<usize>,
    /// When it was sent (a QUERY's reads enter the histories when its reply comes).
    invoke: u64,
    conn: u64,
    /// Connections the client sent it on before `conn` (it was retried).
    earlier_conns: Vec<u64>,
    kind: &'static str,
    /// An ACQUIRE with a WAIT: its number in the cell's `waits`.
    wait: Option<u64>,
}

/// An ACQUIRE with a WAIT, as a QUERY may list it among a lock's waiters.
struct WaitCall {
    lock: String,
    owner: String,
    shared: bool,
    wait_ms: u64,
    invoke: u64,
    /// When its call ended: from then on the server no longer queues it (it answered, or the
    /// server side of its connection closed). `None` while it may still be queued.
    over_at: Option<u64>,
}

struct Held {
    name: String,
    shared: bool,
    ephemeral: bool,
    granted_at: u64,
}

struct ClientHost {
    cell: usize,
    client: Client,
    origin: u64,
    paused_until: u64,
    inbox: VecDeque<Ev>,
    conns: BTreeMap<u64, usize>,
    conn_links: BTreeMap<u64, usize>,
    pending: BTreeMap<RequestId, Pending>,
    held: BTreeMap<u64, Held>,
    last_drop: u64,
    /// Its owner labels, `c<client>` and `c<client>e` for EPHEMERAL leases (the server
    /// check tells EPHEMERAL leases by that `e`).
    owners: [String; 2],
}

#[derive(Default, Clone, Copy)]
struct Dir {
    last_at: u64,
    stalled_until: u64,
}

struct Link {
    client: usize,
    conn: u64,
    cell: usize,
    epoch: u64,
    sconn: Option<u64>,
    to_server: Dir,
    to_client: Dir,
    /// Reset: bytes in flight are dropped.
    dead: bool,
    client_gone: bool,
    server_gone: bool,
    /// When the server side closed (the server read the close or reset, or stopped): after
    /// this the server acts on nothing of this link.
    server_done_at: Option<u64>,
}

struct World<'a> {
    options: &'a Options,
    rng: Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Queued>,
    cells: Vec<Cell>,
    clients: Vec<ClientHost>,
    links: Vec<Link>,
    trace: Trace,
    violation: Option<Violation>,
    quiescing: bool,
    /// Trace lines are formatted: the run is replayed for a failure report.
    tracing: bool,
    outcome: Outcome,
    /// Clients to check after this step: something happened to them or to their server.
    client_dirty: Vec<bool>,
    /// Each server's and client's next timer, global ms (`None`: ask it again).
    server_timers: Vec<Option<u64>>,
    client_timers: Vec<Option<u64>>,
    /// When each client must be checked even if nothing happens to it.
    client_alarm: Vec<u64>,
}

impl<'a> World<'a> {
    fn new(options: &'a Options, tracing: bool) -> World<'a> {
        let mut rng = Rng::new(options.seed);
        let mut world = World {
            options,
            rng: rng.clone(),
            now: 1_000_000,
            seq: 0,
            queue: BinaryHeap::new(),
            cells: Vec::new(),
            clients: Vec::new(),
            links: Vec::new(),
            trace: Trace::new(options.trace_len),
            violation: None,
            quiescing: false,
            tracing,
            outcome: Outcome::default(),
            client_dirty: Vec::new(),
            client_alarm: Vec::new(),
            server_timers: vec![None; options.servers.max(1)],
            client_timers: Vec::new(),
        };
        for cell in 0..options.servers.max(1) {
            world.cells.push(Cell {
                proc: None,
                epoch: 0,
                disk: BTreeMap::new(),
                boot: 1,
                boot_start: world.now - rng.range(0, 500_000),
                keeps_boot_clock: rng.chance(80),
                ghosts: BTreeMap::new(),
                view: Vec::new(),
                spare_view: Vec::new(),
                recheck_clients: true,
                revealed: BTreeMap::new(),
                max_revealed: 0,
                fence: Fence::new(),
                fence_high: BTreeMap::new(),
                history: BTreeMap::new(),
                release_sent: BTreeSet::new(),
                steal_at: BTreeMap::new(),
                waits: BTreeMap::new(),
                next_wait: 0,
                stop_called_at: 0,
                route_down_until: [0, 0],
            });
            world.start_server(cell);
            for _ in 0..options.clients_per_server {
                let mut config = ClientConfig::default();
                config.endpoints = 2;
                config.resp3 = rng.chance(80);
                config.request_timeout_ms = rng.range(1_000, 4_000);
                config.connect_timeout_ms = 1_000;
                if let Some(tweak) = options.client_tweak {
                    tweak(&mut config);
                }
                let client = world.clients.len();
                world.clients.push(ClientHost {
                    cell,
                    client: Client::new(config),
                    origin: world.now - rng.range(0, 1_000_000),
                    paused_until: 0,
                    inbox: VecDeque::new(),
                    conns: BTreeMap::new(),
                    conn_links: BTreeMap::new(),
                    pending: BTreeMap::new(),
                    held: BTreeMap::new(),
                    last_drop: 0,
                    owners: [format!("c{client}"), format!("c{client}e")],
                });
            }
        }
        world.rng = rng;
        world.client_dirty = vec![true; world.clients.len()];
        world.client_alarm = vec![u64::MAX; world.clients.len()];
        world.client_timers = vec![None; world.clients.len()];
        for client in 0..world.clients.len() {
            let at = world.now + world.rng.range(0, 500);
            world.schedule(at, Ev::Step { client });
        }
        let at = world.now + world.rng.range(200, 3_000);
        world.schedule(at, Ev::Fault);
        world
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Queued {
            at: at.max(self.now),
            seq: self.seq,
            ev,
        });
    }

    fn note(&mut self, line: &str) {
        self.trace.push(self.now, line);
    }

    fn fail(&mut self, message: String) {
        if self.violation.is_none() {
            note!(self, "VIOLATION: {message}");
            self.violation = Some(self.trace.violation(self.now, message));
        }
    }

    fn main_loop(&mut self) {
        let start = self.now;
        let end = start + self.options.duration_ms;
        while self.violation.is_none() {
            if !self.quiescing && self.now >= end {
                self.quiesce();
            }
            let next_event = self.queue.peek().map_or(u64::MAX, |queued| queued.at);
            let next_timer = self.next_timer();
            let at = next_event.min(next_timer);
            if at == u64::MAX || at > end + DRAIN_MS {
                break;
            }
            self.now = self.now.max(at);
            if next_timer <= next_event {
                self.fire_timers();
            } else if let Some(queued) = self.queue.pop() {
                self.handle(queued.ev);
            }
            self.outcome.steps += 1;
            self.check_step();
        }
        self.now = self.now.max(end + DRAIN_MS);
    }

    /// The workload ends: clients stop renewing and close their connections, so every lease
    /// they hold must end, and be signalled, before the drain is over.
    fn quiesce(&mut self) {
        self.quiescing = true;
        note!(self, "workload ends: every client closes");
        for index in 0..self.clients.len() {
            let now = self.client_now(index);
            if let Some(host) = self.clients.get_mut(index) {
                host.paused_until = 0;
                host.client.close(now);
            }
            self.resume_inbox(index);
            self.flush_client(index);
        }
    }

    /// Returns when the next timer of a server or client is due; each one's is asked again
    /// only after something happened to it.
    fn next_timer(&mut self) -> u64 {
        let mut next = u64::MAX;
        for cell in 0..self.cells.len() {
            next = next.min(self.server_timer(cell));
        }
        for client in 0..self.clients.len() {
            next = next.min(self.client_timer(client));
        }
        next
    }

    fn server_timer(&mut self, cell: usize) -> u64 {
        let Some(slot) = self.server_timers.get_mut(cell) else {
            return u64::MAX;
        };
        if let Some(at) = *slot {
            return at;
        }
        let at = self
            .cells
            .get(cell)
            .and_then(|cell| cell.proc.as_ref())
            .filter(|proc| proc.fsync.is_none())
            .and_then(|proc| Some(proc.origin + proc.server.poll_timeout()?.as_ms()))
            .unwrap_or(u64::MAX);
        *slot = Some(at);
        at
    }

    fn client_timer(&mut self, client: usize) -> u64 {
        let Some(slot) = self.client_timers.get_mut(client) else {
            return u64::MAX;
        };
        if let Some(at) = *slot {
            return at;
        }
        let at = self
            .clients
            .get(client)
            .filter(|host| host.paused_until == 0)
            .and_then(|host| Some(host.origin + host.client.poll_timeout()?.as_ms()))
            .unwrap_or(u64::MAX);
        *slot = Some(at);
        at
    }

    /// Forgets a server's next timer: something happened to it.
    fn server_touched(&mut self, cell: usize) {
        if let Some(slot) = self.server_timers.get_mut(cell) {
            *slot = None;
        }
    }

    /// Forgets a client's next timer and marks it for checking: something happened to it.
    fn client_touched(&mut self, client: usize) {
        if let Some(slot) = self.client_timers.get_mut(client) {
            *slot = None;
        }
        if let Some(dirty) = self.client_dirty.get_mut(client) {
            *dirty = true;
        }
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        for cell in 0..self.cells.len() {
            if self.server_timer(cell) <= now {
                let mut called = None;
                if let Some(proc) = self.cells.get_mut(cell).and_then(|c| c.proc.as_mut()) {
                    let at = Instant(now - proc.origin);
                    proc.server.handle_timeout(at);
                    called = Some((at, proc.server.poll_timeout()));
                }
                if let Some((at, next)) = called {
                    self.timer_moved_on(&format!("server {cell}"), at, next);
                }
                self.pump(cell);
            }
        }
        for index in 0..self.clients.len() {
            if self.client_timer(index) <= now {
                let at = self.client_now(index);
                if let Some(host) = self.clients.get_mut(index) {
                    host.client.handle_timeout(at);
                }
                self.flush_client(index);
                let next = self
                    .clients
                    .get(index)
                    .and_then(|h| h.client.poll_timeout());
                self.timer_moved_on(&format!("c{index}"), at, next);
            }
        }
    }

    fn timer_moved_on(&mut self, who: &str, now: Instant, next: Option<Instant>) {
        if let Some(message) = stuck_timer(who, now, next) {
            self.fail(message);
        }
    }

    fn handle(&mut self, ev: Ev) {
        match ev {
            Ev::SynArrive { link } => self.server_input(self.link_cell(link), Input::Syn(link)),
            Ev::Data {
                link,
                to_server: true,
                bytes,
            } => self.server_input(self.link_cell(link), Input::Data(link, bytes)),
            Ev::Fin {
                link,
                to_server: true,
            } => self.server_input(self.link_cell(link), Input::Fin(link)),
            ev @ (Ev::SynAck { .. } | Ev::Data { .. } | Ev::Fin { .. }) => self.client_input(ev),
            Ev::FsyncDone { cell, epoch } => self.fsync_done(cell, epoch),
            Ev::Step { client } => self.step_client(client),
            Ev::Resume { client } => {
                note!(self, "c{client} resumes");
                if let Some(host) = self.clients.get_mut(client) {
                    host.paused_until = 0;
                }
                self.resume_inbox(client);
                let now = self.client_now(client);
                if let Some(host) = self.clients.get_mut(client) {
                    host.client.handle_timeout(now);
                }
                self.flush_client(client);
            }
            Ev::Fault => self.fault(),
            Ev::Restart { cell } => self.start_server(cell),
            Ev::FenceWrite { cell, name, token } => self.fence_write(cell, &name, token),
        }
    }

    fn link_cell(&self, link: usize) -> usize {
        self.links.get(link).map_or(0, |l| l.cell)
    }

    fn client_now(&self, index: usize) -> Instant {
        Instant(self.now - self.clients.get(index).map_or(0, |h| h.origin))
    }

    fn latency(&mut self) -> u64 {
        if self.rng.chance(5) {
            self.rng.range(30, 400)
        } else {
            self.rng.range(1, 30)
        }
    }

    /// Sends bytes one way, cut at random points; TCP keeps them in order.
    fn send(&mut self, link: usize, to_server: bool, bytes: Vec<u8>) {
        // The last chunk (the whole message when it is not cut) is the buffer itself.
        let mut rest = bytes;
        while !rest.is_empty() {
            let cut = if rest.len() > 1 && self.rng.chance(30) {
                usize::try_from(self.rng.range(1, rest.len() as u64 - 1)).unwrap_or(1)
            } else {
                rest.len()
            };
            let tail = rest.split_off(cut.min(rest.len()));
            let chunk = std::mem::replace(&mut rest, tail);
            let at = self.arrival(link, to_server);
            self.schedule(
                at,
                Ev::Data {
                    link,
                    to_server,
                    bytes: chunk,
                },
            );
        }
    }

    fn arrival(&mut self, link: usize, to_server: bool) -> u64 {
        let latency = self.latency();
        let now = self.now;
        let Some(l) = self.links.get_mut(link) else {
            return now;
        };
        let dir = if to_server {
            &mut l.to_server
        } else {
            &mut l.to_client
        };
        let at = (now + latency).max(dir.last_at).max(dir.stalled_until);
        dir.last_at = at;
        at
    }

    fn send_fin(&mut self, link: usize, to_server: bool) {
        let at = self.arrival(link, to_server);
        self.schedule(at, Ev::Fin { link, to_server });
    }

    // ---- servers ----

    fn start_server(&mut self, cell_index: usize) {
        self.server_touched(cell_index);
        let now = self.now;
        let reboot = self.rng.chance(15);
        let origin = now - self.rng.range(0, 100_000);
        let Some(cell) = self.cells.get_mut(cell_index) else {
            return;
        };
        if cell.proc.is_some() {
            return;
        }
        if reboot && cell.epoch > 0 {
            cell.boot += 1;
            cell.boot_start = now.saturating_sub(2_000);
        }
        // Now and then a run without a boot clock (a host that cannot read one) comes between
        // runs that keep horizons.
        if cell.epoch > 0 && self.rng.chance(10) {
            cell.keeps_boot_clock = !cell.keeps_boot_clock;
        }
        let mut files = DataFiles::default();
        for file in DataFile::ALL {
            files.set(file, cell.disk.get(&file).map(Vec::as_slice));
        }
        let mut plan = match Recovery::plan(files) {
            Ok(plan) => plan,
            Err(error) => {
                let message = format!("server {cell_index} refuses to start: {error}");
                self.fail(message);
                return;
            }
        };
        let start = Instant(now - origin);
        let mut config = Config::default();
        config.max_ttl_ms = MAX_TTL_MS;
        // The full restart grace is the longest TTL and then the longest lock-delay.
        config.max_lock_delay_ms = MAX_LOCK_DELAY_MS;
        config.max_wait_ms = 10_000;
        config.token_block = 8;
        config.horizon_slack_ms = 500;
        if cell.keeps_boot_clock {
            let boot_id = format!("boot-{}", cell.boot);
            config.boot_clock = BootClock::at(&boot_id, start, now - cell.boot_start).ok();
        }
        if let Some(tweak) = self.options.engine_tweak {
            tweak(&mut config);
        }
        let mut engine = plan.start_engine(start, config);
        // A run that keeps a horizon writes it before it reveals anything, and a run that
        // keeps none removes it before serving, so a crash (between any two durable writes)
        // never leaves a horizon that the next run cannot trust.
        if cell.keeps_boot_clock && engine.grace_case() == GraceCase::StaleHorizon {
            let message = format!(
                "server {cell_index} restarts with the full grace: the horizon on disk names another token ceiling ({summary})",
                summary = plan.summary(start, &engine)
            );
            self.fail(message);
            return;
        }
        // Leases restored from a clean snapshot live in the engine again, not as ghosts.
        for lock in engine.query(start, "") {
            for holder in lock.holders {
                cell.ghosts.remove(&holder.token);
            }
        }
        for action in plan.actions.drain(..) {
            apply_file(&mut cell.disk, action);
        }
        let summary = plan.summary(start, &engine);
        let last_token = engine.last_token();
        cell.epoch += 1;
        cell.view.clear();
        cell.recheck_clients = true;
        let point = match plan.kind {
            StartKind::Clean => LeaseOp::CleanRestart {
                downtime_ms: now.saturating_sub(cell.stop_called_at),
            },
            _ => LeaseOp::Crash,
        };
        if cell.epoch > 1 {
            for name in LOCKS {
                cell.history
                    .entry(String::from(name))
                    .or_default()
                    .push(Entry {
                        invoke: now,
                        ret: Some(now),
                        op: point.clone(),
                    });
            }
        }
        let max_revealed = cell.max_revealed;
        cell.proc = Some(Proc {
            server: Server::new(engine, ServerConfig::default()),
            origin,
            fsync: None,
            inbox: VecDeque::new(),
            stopping: false,
            conns: BTreeMap::new(),
            last_token,
        });
        note!(self, "server {cell_index} starts: {summary}");
        if last_token < max_revealed {
            self.fail(format!(
                "I2: server {cell_index} restarted issuing above {last_token}, but token {max_revealed} was already revealed"
            ));
        }
        self.observe_cell(cell_index);
    }

    fn server_input(&mut self, cell_index: usize, input: Input) {
        let now = self.now;
        let Some(proc) = self.cells.get_mut(cell_index).and_then(|c| c.proc.as_mut()) else {
            // Nobody listens: a connect is refused, anything else is lost.
            if let Input::Syn(link) = input {
                let at = now + self.latency();
                self.schedule(at, Ev::SynAck { link, ok: false });
            }
            return;
        };
        if proc.fsync.is_some() {
            proc.inbox.push_back(input);
            return;
        }
        self.apply_server_input(cell_index, input);
        self.pump(cell_index);
    }

    fn apply_server_input(&mut self, cell_index: usize, input: Input) {
        let now = self.now;
        let Some(cell) = self.cells.get_mut(cell_index) else {
            return;
        };
        let epoch = cell.epoch;
        let Some(proc) = cell.proc.as_mut() else {
            return;
        };
        let at = Instant(now - proc.origin);
        match input {
            Input::Syn(link) => {
                let sconn = proc.server.connect(at);
                proc.conns.insert(sconn, link);
                if let Some(l) = self.links.get_mut(link) {
                    l.sconn = Some(sconn);
                    l.epoch = epoch;
                }
                let at = now + self.latency();
                self.schedule(at, Ev::SynAck { link, ok: true });
            }
            Input::Data(link, bytes) => {
                let Some(l) = self.links.get(link) else {
                    return;
                };
                if l.dead || l.server_gone || l.epoch != epoch {
                    return;
                }
                if let Some(sconn) = l.sconn {
                    proc.server.receive(at, sconn, &bytes);
                }
            }
            Input::Fin(link) => {
                let Some(l) = self.links.get_mut(link) else {
                    return;
                };
                if l.server_gone || l.epoch != epoch {
                    return;
                }
                l.server_gone = true;
                l.server_done_at.get_or_insert(now);
                if let Some(sconn) = l.sconn {
                    proc.conns.remove(&sconn);
                    proc.server.disconnect(at, sconn);
                }
            }
            Input::Shutdown => {
                proc.server.shutdown(at);
                proc.stopping = true;
                cell.stop_called_at = now;
                self.outcome.shutdowns += 1;
                note!(self, "server {cell_index} shuts down cleanly");
            }
        }
    }

    /// Performs the server's outputs in order; a durable write blocks the rest until done.
    fn pump(&mut self, cell_index: usize) {
        self.server_touched(cell_index);
        loop {
            let Some(cell) = self.cells.get_mut(cell_index) else {
                return;
            };
            let epoch = cell.epoch;
            let Some(proc) = cell.proc.as_mut() else {
                return;
            };
            if proc.fsync.is_some() {
                return;
            }
            match proc.server.poll_output() {
                Some(ServerOutput::File(action)) => {
                    proc.fsync = Some(action);
                    // Client checks skip this server while it is blocked.
                    cell.recheck_clients = true;
                    let at = self.now + self.rng.range(0, 12);
                    self.schedule(
                        at,
                        Ev::FsyncDone {
                            cell: cell_index,
                            epoch,
                        },
                    );
                    return;
                }
                Some(ServerOutput::Transmit { conn, bytes }) => {
                    if let Some(&link) = proc.conns.get(&conn) {
                        self.send(link, false, bytes);
                    }
                }
                Some(ServerOutput::Close { conn }) => {
                    if let Some(link) = proc.conns.remove(&conn) {
                        if let Some(l) = self.links.get_mut(link) {
                            l.server_gone = true;
                            l.server_done_at.get_or_insert(self.now);
                        }
                        self.send_fin(link, false);
                    }
                }
                Some(other) => {
                    self.fail(format!(
                        "unknown server output {other:?}: update the simulator"
                    ));
                    return;
                }
                None => {
                    let stopping = proc.stopping;
                    // Every reply is out: what the engine holds now is what it may have told.
                    self.observe_cell(cell_index);
                    if stopping {
                        self.stop_server(cell_index, false);
                    }
                    return;
                }
            }
        }
    }

    fn fsync_done(&mut self, cell_index: usize, epoch: u64) {
        let Some(cell) = self.cells.get_mut(cell_index) else {
            return;
        };
        if cell.epoch != epoch {
            return;
        }
        let Some(proc) = cell.proc.as_mut() else {
            return;
        };
        if let Some(action) = proc.fsync.take() {
            apply_file(&mut cell.disk, action);
        }
        self.pump(cell_index);
        loop {
            let Some(proc) = self.cells.get_mut(cell_index).and_then(|c| c.proc.as_mut()) else {
                return;
            };
            if proc.fsync.is_some() {
                return;
            }
            let Some(input) = proc.inbox.pop_front() else {
                return;
            };
            self.apply_server_input(cell_index, input);
            self.pump(cell_index);
        }
    }

    /// Ends a server process: a crash (what is not durable is lost) or the exit after a clean
    /// shutdown. Its leases stay live as ghosts until their deadline.
    fn stop_server(&mut self, cell_index: usize, crash: bool) {
        self.server_touched(cell_index);
        let now = self.now;
        let lands = self.rng.chance(50);
        let Some(cell) = self.cells.get_mut(cell_index) else {
            return;
        };
        let Some(mut proc) = cell.proc.take() else {
            return;
        };
        if crash {
            // An atomic rename in progress either happened or did not.
            if let (Some(action), true) = (proc.fsync.take(), lands) {
                apply_file(&mut cell.disk, action);
            }
        }
        // The leases as of the last time every reply was out (`observe_cell`): a durable write
        // in progress holds back the replies of the input that asked for it, so what that
        // input changed (a renewal past the stored lease horizon, say) was never told to
        // anyone, and the restart grace owes it nothing.
        drop(proc);
        for (token, lease) in std::mem::take(&mut cell.view) {
            if lease.deadline > now {
                cell.ghosts.insert(token, lease);
            }
        }
        cell.recheck_clients = true;
        if crash {
            cell.stop_called_at = now;
        }
        let epoch = cell.epoch;
        let mut resets = Vec::new();
        for (index, link) in self.links.iter_mut().enumerate() {
            if link.cell == cell_index && link.epoch == epoch && !link.server_gone {
                link.server_gone = true;
                link.dead = true;
                link.server_done_at.get_or_insert(now);
                resets.push(index);
            }
        }
        for link in resets {
            self.send_fin(link, false);
        }
        let downtime = if self.rng.chance(10) {
            self.rng.range(3_000, 12_000)
        } else {
            self.rng.range(0, 2_500)
        };
        self.schedule(now + downtime, Ev::Restart { cell: cell_index });
        let what = if crash { "crashes" } else { "exits" };
        note!(self, "server {cell_index} {what}; restart in {downtime} ms");
    }

    // ---- clients ----

    fn client_input(&mut self, ev: Ev) {
        let link = match &ev {
            Ev::SynAck { link, .. } | Ev::Data { link, .. } | Ev::Fin { link, .. } => *link,
            _ => return,
        };
        let Some(client) = self.links.get(link).map(|l| l.client) else {
            return;
        };
        if let Some(host) = self.clients.get_mut(client) {
            if host.paused_until > 0 {
                host.inbox.push_back(ev);
                return;
            }
        }
        self.apply_client_input(client, ev);
        self.flush_client(client);
    }

    fn apply_client_input(&mut self, client: usize, ev: Ev) {
        let now = self.client_now(client);
        let wall = self.now;
        let Some(host) = self.clients.get_mut(client) else {
            return;
        };
        match ev {
            Ev::SynAck { link, ok } => {
                let Some(l) = self.links.get_mut(link) else {
                    return;
                };
                if l.client_gone {
                    if ok && !l.server_gone {
                        self.send_fin(link, true);
                    }
                    return;
                }
                if ok {
                    host.client.handle_connected(now, l.conn);
                } else {
                    l.client_gone = true;
                    host.conns.remove(&l.conn);
                    host.client
                        .handle_disconnect(now, l.conn, "connection refused");
                }
            }
            Ev::Data { link, bytes, .. } => {
                let Some(l) = self.links.get(link) else {
                    return;
                };
                if !l.dead && !l.client_gone {
                    host.client.receive(now, l.conn, &bytes);
                }
            }
            Ev::Fin { link, .. } => {
                let Some(l) = self.links.get_mut(link) else {
                    return;
                };
                if !l.client_gone {
                    l.client_gone = true;
                    host.conns.remove(&l.conn);
                    host.last_drop = wall;
                    host.client
                        .handle_disconnect(now, l.conn, "connection closed");
                }
            }
            _ => {}
        }
    }

    fn resume_inbox(&mut self, client: usize) {
        while let Some(ev) = self
            .clients
            .get_mut(client)
            .and_then(|h| h.inbox.pop_front())
        {
            self.apply_client_input(client, ev);
            self.flush_client(client);
        }
    }

    /// Performs the client's outputs, then takes its events and replies.
    fn flush_client(&mut self, client: usize) {
        self.client_touched(client);
        loop {
            let Some(host) = self.clients.get_mut(client) else {
                return;
            };
            let Some(output) = host.client.poll_output() else {
                break;
            };
            match output {
                ClientOutput::Connect { conn, endpoint } => {
                    let cell = host.cell;
                    let link = self.links.len();
                    host.conns.insert(conn, link);
                    host.conn_links.insert(conn, link);
                    self.links.push(Link {
                        client,
                        conn,
                        cell,
                        epoch: 0,
                        sconn: None,
                        to_server: Dir::default(),
                        to_client: Dir::default(),
                        dead: false,
                        client_gone: false,
                        server_gone: false,
                        server_done_at: None,
                    });
                    let down = self
                        .cells
                        .get(cell)
                        .and_then(|c| c.route_down_until.get(endpoint))
                        .is_some_and(|&until| until > self.now);
                    let at = self.now + self.latency();
                    if down {
                        self.schedule(at, Ev::SynAck { link, ok: false });
                    } else {
                        self.schedule(at, Ev::SynArrive { link });
                    }
                }
                ClientOutput::Transmit { conn, bytes } => {
                    let Some(&link) = host.conns.get(&conn) else {
                        continue;
                    };
                    if self.links.get(link).is_some_and(|l| !l.dead) {
                        self.send(link, true, bytes);
                    }
                }
                ClientOutput::Close { conn } => {
                    host.last_drop = self.now;
                    let Some(link) = host.conns.remove(&conn) else {
                        continue;
                    };
                    let Some(l) = self.links.get_mut(link) else {
                        continue;
                    };
                    l.client_gone = true;
                    if !l.dead && l.sconn.is_some() && !l.server_gone {
                        self.send_fin(link, true);
                    } else if !l.dead && l.sconn.is_none() {
                        // Closed before the connect completed: the server side, if any, is
                        // told when the handshake answer finds the client gone.
                    }
                }
                other => {
                    self.fail(format!(
                        "unknown client output {other:?}: update the simulator"
                    ));
                    return;
                }
            }
        }
        // Events, then replies, as hosts deliver them, until neither is left: a lease lost
        // before the reply that granted it was polled has its loss queued after that reply.
        while self.take_events(client) + self.take_replies(client) > 0 {}
        if let Some(host) = self.clients.get_mut(client) {
            for (&id, pending) in &mut host.pending {
                if let Some(conn) = host.client.request_conn(id) {
                    if conn != pending.conn {
                        pending.earlier_conns.push(pending.conn);
                        pending.conn = conn;
                    }
                }
            }
        }
    }

    /// Takes the client's lease events; returns how many.
    fn take_events(&mut self, client: usize) -> usize {
        let mut taken = 0;
        while let Some(event) = self
            .clients
            .get_mut(client)
            .and_then(|h| h.client.poll_event())
        {
            taken += 1;
            if let ClientEvent::LeaseLost {
                name,
                token,
                reason,
            } = event
            {
                note!(
                    self,
                    "c{client} lease lost {name} #{token}: {}",
                    reason.describe()
                );
                let known = self
                    .clients
                    .get_mut(client)
                    .and_then(|h| h.held.remove(&token));
                if known.is_none() {
                    self.fail(format!(
                        "c{client} got LeaseLost for {name} #{token}, which it does not hold (twice, or never granted)"
                    ));
                }
            }
        }
        taken
    }

    /// Takes the client's replies; returns how many.
    fn take_replies(&mut self, client: usize) -> usize {
        let mut taken = 0;
        while let Some((id, result)) = self
            .clients
            .get_mut(client)
            .and_then(|h| h.client.poll_reply())
        {
            taken += 1;
            let Some(host) = self.clients.get_mut(client) else {
                return taken;
            };
            let Some(pending) = host.pending.remove(&id) else {
                continue;
            };
            let cell = host.cell;
            note!(
                self,
                "c{client}@s{cell} {} {} -> {}",
                pending.kind,
                pending.name,
                describe(&result)
            );
            let mut kept = false;
            if let Ok(Reply::Granted { token, .. }) = &result {
                self.outcome.grants += 1;
                let token = *token;
                kept = self.rng.chance(60);
                let Some(host) = self.clients.get_mut(client) else {
                    return taken;
                };
                if kept {
                    host.client.keep_alive(&pending.name, token);
                }
                let entry = pending
                    .history
                    .and_then(|i| self.cells.get(cell)?.history.get(&pending.name)?.get(i))
                    .map(|e| e.op.clone());
                let (shared, ephemeral) = match entry {
                    Some(LeaseOp::Acquire {
                        shared, ephemeral, ..
                    }) => (shared, ephemeral),
                    _ => (false, false),
                };
                let owner = host
                    .owners
                    .get(usize::from(ephemeral))
                    .cloned()
                    .unwrap_or_default();
                host.held.insert(
                    token,
                    Held {
                        name: pending.name.clone(),
                        shared,
                        ephemeral,
                        granted_at: self.now,
                    },
                );
                let Some(c) = self.cells.get_mut(cell) else {
                    return taken;
                };
                if c.revealed.insert(token, owner).is_some() {
                    let message =
                        format!("I2: token {token} was granted twice (on {})", pending.name);
                    self.fail(message);
                }
                if let Some(c) = self.cells.get_mut(cell) {
                    c.max_revealed = c.max_revealed.max(token);
                }
            }
            if let Ok(Reply::Locks(locks)) = &result {
                if let Some(message) = self.wrong_owner(cell, locks) {
                    self.fail(message);
                }
                if let Some(message) = self.wrong_waiter(cell, locks, pending.invoke) {
                    self.fail(message);
                }
            }
            if let (Ok(Reply::Ok), "release") = (&result, pending.kind) {
                // Released: the client forgot that lease without an event. Only that one: a
                // lease of the same lock the client stopped tracking otherwise (stolen, with
                // its loss held back behind a reply) still has its `LeaseLost` to come.
                let released = pending
                    .history
                    .and_then(|i| self.cells.get(cell)?.history.get(&pending.name)?.get(i))
                    .and_then(|entry| match entry.op {
                        LeaseOp::Release { token, .. } => Some(token),
                        _ => None,
                    });
                if let (Some(host), Some(token)) = (self.clients.get_mut(client), released) {
                    host.held.remove(&token);
                }
            }
            let done_at = self.now;
            let unknown_until = self
                .clients
                .get(client)
                .and_then(|h| h.conn_links.get(&pending.conn))
                .and_then(|&l| self.links.get(l))
                .and_then(|l| l.server_done_at);
            if let Some(i) = pending.history {
                if let Some(c) = self.cells.get_mut(cell) {
                    if let Some(entry) = c.history.get_mut(&pending.name).and_then(|h| h.get_mut(i))
                    {
                        complete(entry, &result, kept, done_at, unknown_until);
                        // The history's end of the call is when the server let it go.
                        let over_at = entry.ret;
                        if let Some(call) = pending.wait.and_then(|w| c.waits.get_mut(&w)) {
                            call.over_at = over_at;
                        }
                    }
                }
            }
            if let (Ok(Reply::Locks(locks)), Some(c)) = (&result, self.cells.get_mut(cell)) {
                // A QUERY reads every lock: a read in each lock's history. One that failed or
                // got no reply says nothing and is left out.
                for lock in LOCKS {
                    c.history
                        .entry(String::from(lock))
                        .or_default()
                        .push(Entry {
                            invoke: pending.invoke,
                            ret: Some(done_at),
                            op: LeaseOp::Query {
                                outcome: LinOutcome::Ok(listing(locks, lock)),
                            },
                        });
                }
            }
            self.record_earlier_copies(client, cell, &pending);
        }
        taken
    }

    /// A QUERY lists each holder with the owner label its lease was asked with (kept through
    /// renewals, clean restarts and recoveries); returns what is wrong, if anything. Holders
    /// whose grant no client saw are not known here.
    fn wrong_owner(&self, cell: usize, locks: &[LockInfo]) -> Option<String> {
        let revealed = &self.cells.get(cell)?.revealed;
        locks.iter().find_map(|info| {
            info.holders.iter().find_map(|holder| {
                let asked = revealed.get(&holder.token)?;
                (holder.owner.as_deref() != Some(asked.as_str())).then(|| {
                    format!(
                        "QUERY listed {} #{} with owner {:?}, asked as {asked:?}",
                        info.name, holder.token, holder.owner
                    )
                })
            })
        })
    }

    /// A QUERY, called at `invoke` and answered now, lists as waiting only ACQUIREs with a WAIT
    /// of that lock, owner label and mode, sent before now and not let go by the server
    /// before `invoke` (no more of them than there are), each at its place in the queue and
    /// with a wait left that the call allows: at most its WAIT, and at least what is left of
    /// it if it reached the server when it was sent and the QUERY ran at its latest. Returns
    /// what is wrong, if anything; calls no QUERY still waiting for can list are forgotten.
    fn wrong_waiter(&mut self, cell: usize, locks: &[LockInfo], invoke: u64) -> Option<String> {
        let now = self.now;
        // The earliest QUERY still in flight to this server (or this one) bounds which calls
        // a listing can still name.
        let oldest = self
            .clients
            .iter()
            .filter(|h| h.cell == cell)
            .flat_map(|h| h.pending.values())
            .filter(|p| p.kind == "query")
            .map(|p| p.invoke)
            .fold(invoke, u64::min);
        let c = self.cells.get_mut(cell)?;
        c.waits
            .retain(|_, call| call.over_at.map_or(true, |over| over >= oldest));
        let waits = &c.waits;
        self.outcome.waiters_checked += locks
            .iter()
            .map(|info| info.waiters.len() as u64)
            .sum::<u64>();
        for info in locks {
            for (at, waiter) in info.waiters.iter().enumerate() {
                let owner = waiter.owner.as_deref().unwrap_or_default();
                let shared = waiter.mode == Mode::Shared;
                let shown = || {
                    format!(
                        "QUERY (sent at {invoke} ms) listed {} waiter {} ({owner:?}, {}, {} ms left)",
                        info.name,
                        waiter.position,
                        if shared { "shared" } else { "exclusive" },
                        waiter.ms_left
                    )
                };
                if waiter.position != at + 1 {
                    return Some(format!("{} at place {} of the queue", shown(), at + 1));
                }
                // The calls this waiter may be, gathered once.
                let alike: Vec<&WaitCall> = waits
                    .values()
                    .filter(|call| {
                        call.lock == info.name
                            && call.owner == owner
                            && call.shared == shared
                            && call.invoke <= now
                            && call.over_at.map_or(true, |over| over >= invoke)
                    })
                    .collect();
                let listed = info
                    .waiters
                    .iter()
                    .filter(|w| {
                        w.owner.as_deref().unwrap_or_default() == owner
                            && (w.mode == Mode::Shared) == shared
                    })
                    .count();
                let calls = alike.len();
                if calls < listed {
                    return Some(format!(
                        "{}: {listed} such waiters listed, {calls} such calls in flight",
                        shown()
                    ));
                }
                let fits = alike.iter().any(|call| {
                    waiter.ms_left <= call.wait_ms
                        && now + waiter.ms_left >= call.invoke + call.wait_ms
                });
                if !fits {
                    return Some(format!(
                        "{}: no call in flight waits that long (calls: {})",
                        shown(),
                        alike
                            .iter()
                            .map(|call| format!("WAIT {} sent at {}", call.wait_ms, call.invoke))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
        None
    }

    /// A retried RENEW or RELEASE whose earlier copy reached the server may have taken
    /// effect there (its reply lost) before the retry's outcome: each such copy enters the
    /// history as the same operation with an unknown outcome, possible until the server side
    /// of its connection closed.
    fn record_earlier_copies(&mut self, client: usize, cell: usize, pending: &Pending) {
        let Some(op) = pending
            .history
            .and_then(|i| self.cells.get(cell)?.history.get(&pending.name)?.get(i))
            .filter(|entry| matches!(entry.op, LeaseOp::Renew { .. } | LeaseOp::Release { .. }))
            .cloned()
        else {
            return;
        };
        for &conn in &pending.earlier_conns {
            let link = self
                .clients
                .get(client)
                .and_then(|h| h.conn_links.get(&conn))
                .and_then(|&l| self.links.get(l));
            // Bytes on a connection that never reached a server never ran.
            let Some(link) = link.filter(|l| l.sconn.is_some()) else {
                continue;
            };
            let mut copy = op.clone();
            copy.ret = link.server_done_at.map(|until| until.max(copy.invoke));
            match &mut copy.op {
                LeaseOp::Renew { outcome, .. } => *outcome = LinOutcome::Unknown,
                LeaseOp::Release { outcome, .. } => *outcome = LinOutcome::Unknown,
                _ => {}
            }
            if let Some(history) = self
                .cells
                .get_mut(cell)
                .and_then(|c| c.history.get_mut(&pending.name))
            {
                history.push(copy);
            }
        }
    }

    fn step_client(&mut self, client: usize) {
        if self.quiescing {
            return;
        }
        let Some(host) = self.clients.get(client) else {
            return;
        };
        if host.paused_until > 0 {
            let at = host.paused_until + 1;
            self.schedule(at, Ev::Step { client });
            return;
        }
        let cell = host.cell;
        let now = self.client_now(client);
        let roll = self.rng.range(0, 99);
        let pick = self.rng.index(host.held.len());
        let chosen = host
            .held
            .iter()
            .nth(pick)
            .map(|(&t, h)| (t, h.name.clone(), h.shared));
        let name = String::from(
            LOCKS
                .get(self.rng.index(LOCKS.len()))
                .copied()
                .unwrap_or("alpha"),
        );
        let mut recorded: Option<(RequestId, &'static str, String, Option<LeaseOp>)> = None;
        let mut wait = None;
        let Some(host) = self.clients.get_mut(client) else {
            return;
        };
        match (roll, chosen) {
            (0..=44, _) | (_, None) if roll < 90 => {
                let ttl_ms = self.rng.range(300, MAX_TTL_MS);
                let mut options = AcquireOptions::default();
                options.wait_ms = if self.rng.chance(50) {
                    0
                } else {
                    self.rng.range(100, 3_000)
                };
                if self.rng.chance(25) {
                    options.mode = Mode::Shared;
                }
                options.steal = options.wait_ms == 0 && self.rng.chance(4);
                options.ephemeral = self.rng.chance(20);
                // A lock-delay, kept only if the lease expires.
                let lock_delay_ms = if self.rng.chance(20) {
                    self.rng.range(1, MAX_LOCK_DELAY_MS)
                } else {
                    0
                };
                options.lock_delay_ms = Some(lock_delay_ms);
                options.owner = host.owners.get(usize::from(options.ephemeral)).cloned();
                if let Ok(id) = host.client.acquire(now, &name, ttl_ms, &options) {
                    let op = LeaseOp::Acquire {
                        ttl_ms,
                        shared: options.mode == Mode::Shared,
                        steal: options.steal,
                        ephemeral: options.ephemeral,
                        lock_delay_ms,
                        kept: false,
                        outcome: LinOutcome::Unknown,
                        free_within_ms: None,
                    };
                    if options.steal {
                        if let Some(c) = self.cells.get_mut(cell) {
                            c.steal_at.insert(name.clone(), self.now);
                        }
                    }
                    let kind = if options.steal { "steal" } else { "acquire" };
                    if options.wait_ms > 0 {
                        if let Some(c) = self.cells.get_mut(cell) {
                            c.next_wait += 1;
                            c.waits.insert(
                                c.next_wait,
                                WaitCall {
                                    lock: name.clone(),
                                    owner: options.owner.clone().unwrap_or_default(),
                                    shared: options.mode == Mode::Shared,
                                    wait_ms: options.wait_ms,
                                    invoke: self.now,
                                    over_at: None,
                                },
                            );
                            wait = Some(c.next_wait);
                        }
                    }
                    recorded = Some((id, kind, name, Some(op)));
                }
            }
            (45..=54, Some((token, name, _))) => {
                let ttl_ms = self.rng.range(300, MAX_TTL_MS);
                if let Ok(id) = host.client.renew(now, &name, token, ttl_ms) {
                    let op = LeaseOp::Renew {
                        token,
                        ttl_ms,
                        outcome: LinOutcome::Unknown,
                    };
                    recorded = Some((id, "renew", name, Some(op)));
                }
            }
            (55..=69, Some((token, name, _))) => {
                if let Some(c) = self.cells.get_mut(cell) {
                    c.release_sent.insert(token);
                }
                if let Ok(id) = host.client.release(now, &name, token) {
                    let op = LeaseOp::Release {
                        token,
                        outcome: LinOutcome::Unknown,
                    };
                    recorded = Some((id, "release", name, Some(op)));
                }
            }
            (70..=77, Some((token, name, _))) => {
                if let Ok(id) = host.client.verify(now, &name, token) {
                    let op = LeaseOp::Verify {
                        token,
                        outcome: LinOutcome::Unknown,
                    };
                    recorded = Some((id, "verify", name, Some(op)));
                }
            }
            (78..=92, Some((token, name, false))) => {
                // A write to the fenced resource, sent while the client believes it holds the lease.
                let believed = host
                    .client
                    .lease(now, &name, token)
                    .is_some_and(|status| status.ms_left > 0);
                if believed {
                    let at = self.now + self.rng.range(1, 60);
                    self.schedule(at, Ev::FenceWrite { cell, name, token });
                }
            }
            (93..=96, _) => {
                let id = host.client.query(now, "");
                recorded = Some((id, "query", String::new(), None));
            }
            (97..=98, Some((token, name, _))) => {
                host.client.forget(&name, token);
                host.held.remove(&token);
                note!(self, "c{client} forgets {name} #{token}");
            }
            _ => {}
        }
        if let Some((id, kind, name, op)) = recorded {
            let history = op.and_then(|op| {
                let list = self
                    .cells
                    .get_mut(cell)?
                    .history
                    .entry(name.clone())
                    .or_default();
                list.push(Entry {
                    invoke: self.now,
                    ret: None,
                    op,
                });
                Some(list.len() - 1)
            });
            note!(self, "c{client} sends {kind} {name}");
            if let Some(host) = self.clients.get_mut(client) {
                let conn = host.client.request_conn(id).unwrap_or(0);
                host.pending.insert(
                    id,
                    Pending {
                        name,
                        history,
                        invoke: self.now,
                        conn,
                        earlier_conns: Vec::new(),
                        kind,
                        wait,
                    },
                );
            }
        }
        self.flush_client(client);
        let at = self.now + self.rng.range(20, 600);
        self.schedule(at, Ev::Step { client });
    }

    fn fence_write(&mut self, cell: usize, name: &str, token: u64) {
        let Some(c) = self.cells.get_mut(cell) else {
            return;
        };
        let outcome = c.fence.check(name, token);
        let high = c.fence_high.entry(String::from(name)).or_insert(0);
        match outcome {
            FenceOutcome::Accepted { .. } => {
                let below = token < *high;
                let was = *high;
                *high = token;
                self.outcome.fenced_writes.0 += 1;
                if below {
                    self.fail(format!(
                        "the fence accepted token {token} on {name} after token {was}"
                    ));
                }
            }
            _ => self.outcome.fenced_writes.1 += 1,
        }
    }

    // ---- faults ----

    #[allow(clippy::collapsible_match)] // one arm per fault, each with its own precondition
    fn fault(&mut self) {
        if self.quiescing {
            return;
        }
        let roll = self.rng.range(0, 99);
        let cell = self.rng.index(self.cells.len());
        match roll {
            0..=17 => {
                if self.cells.get(cell).is_some_and(|c| c.proc.is_some()) {
                    self.outcome.crashes += 1;
                    note!(self, "FAULT server {cell} crashes");
                    self.stop_server(cell, true);
                }
            }
            18..=25 => {
                if self
                    .cells
                    .get(cell)
                    .and_then(|c| c.proc.as_ref())
                    .is_some_and(|p| !p.stopping)
                {
                    self.server_input(cell, Input::Shutdown);
                }
            }
            26..=45 => {
                let live: Vec<usize> = (0..self.links.len())
                    .filter(|&i| {
                        self.links
                            .get(i)
                            .is_some_and(|l| !(l.dead || l.client_gone && l.server_gone))
                    })
                    .collect();
                if let Some(&link) = live.get(self.rng.index(live.len())) {
                    note!(self, "FAULT link {link} reset");
                    let now = self.now;
                    if let Some(l) = self.links.get_mut(link) {
                        // Bytes in flight are lost, but the server acts on what it already
                        // read (a waiting ACQUIRE may still be granted) until it hears of the
                        // reset: `server_done_at` is set when it does.
                        l.dead = true;
                    }
                    let (to_client, to_server) = (self.latency(), self.latency());
                    self.schedule(
                        now + to_client,
                        Ev::Fin {
                            link,
                            to_server: false,
                        },
                    );
                    self.schedule(
                        now + to_server,
                        Ev::Fin {
                            link,
                            to_server: true,
                        },
                    );
                }
            }
            46..=60 => {
                let live: Vec<usize> = (0..self.links.len())
                    .filter(|&i| self.links.get(i).is_some_and(|l| !l.dead))
                    .collect();
                if let Some(&link) = live.get(self.rng.index(live.len())) {
                    let until = self.now + self.rng.range(100, 3_000);
                    let to_server = self.rng.chance(50);
                    note!(
                        self,
                        "FAULT link {link} stalls {} until {until}",
                        if to_server {
                            "to the server"
                        } else {
                            "to the client"
                        }
                    );
                    if let Some(l) = self.links.get_mut(link) {
                        let dir = if to_server {
                            &mut l.to_server
                        } else {
                            &mut l.to_client
                        };
                        dir.stalled_until = until;
                    }
                }
            }
            61..=75 => {
                let client = self.rng.index(self.clients.len());
                let until = self.now + self.rng.range(500, 2 * MAX_TTL_MS + 2_000);
                if let Some(host) = self.clients.get_mut(client) {
                    if host.paused_until == 0 {
                        host.paused_until = until;
                        self.client_touched(client);
                        note!(self, "FAULT c{client} paused until {until}");
                        self.schedule(until, Ev::Resume { client });
                    }
                }
            }
            76..=85 => {
                let endpoint = self.rng.index(2);
                let until = self.now + self.rng.range(500, 5_000);
                if let Some(slot) = self
                    .cells
                    .get_mut(cell)
                    .and_then(|c| c.route_down_until.get_mut(endpoint))
                {
                    *slot = until;
                }
                note!(
                    self,
                    "FAULT server {cell} endpoint {endpoint} unreachable until {until}"
                );
            }
            _ => {}
        }
        let at = self.now + self.rng.range(200, 3_000);
        self.schedule(at, Ev::Fault);
    }

    // ---- checks ----

    /// Checks the clients this step touched (or whose server changed), and those with a
    /// lease whose local deadline has just passed; the servers are checked as they change
    /// (`observe_cell`). Nothing else can have changed the outcome of a check.
    fn check_step(&mut self) {
        let now = self.now;
        for client in 0..self.clients.len() {
            let due = self.client_dirty.get(client).copied().unwrap_or(true)
                || self.client_alarm.get(client).is_some_and(|&at| at < now);
            if !due {
                continue;
            }
            if let Some(dirty) = self.client_dirty.get_mut(client) {
                *dirty = false;
            }
            match self.check_client(client, now) {
                Ok(alarm) => {
                    if let Some(slot) = self.client_alarm.get_mut(client) {
                        *slot = alarm;
                    }
                }
                Err(message) => {
                    self.fail(message);
                    return;
                }
            }
        }
    }

    /// Checks a server whose engine may have changed, with every reply it asked for sent, and
    /// marks its clients for checking.
    ///
    /// A client check reads the server's leases (`view` and `ghosts`) and whether a durable
    /// write blocks it; with the client, the leases and that unchanged, a check that passed
    /// passes again later (time only ends leases, and a lapsed client deadline raises the
    /// client's own alarm), so clients are marked only when one of them changed.
    fn observe_cell(&mut self, cell_index: usize) {
        match self.check_cell(cell_index) {
            Ok(false) => return,
            Ok(true) => {}
            Err(message) => self.fail(message),
        }
        for (client, host) in self.clients.iter().enumerate() {
            if host.cell == cell_index {
                if let Some(dirty) = self.client_dirty.get_mut(client) {
                    *dirty = true;
                }
            }
        }
    }

    /// Server side: the engine's own invariants, tokens never going back, exclusivity over
    /// the live leases and those of stopped runs, and no lease ending before its deadline
    /// without a release, a steal or (EPHEMERAL) a disconnect. Returns whether its clients
    /// must be checked again (see `observe_cell`).
    fn check_cell(&mut self, cell_index: usize) -> Result<bool, String> {
        let now = self.now;
        let Some(cell) = self.cells.get_mut(cell_index) else {
            return Ok(true);
        };
        cell.ghosts.retain(|_, lease| lease.deadline > now);
        let Some(proc) = cell.proc.as_mut() else {
            return Ok(true);
        };
        if proc.fsync.is_some() {
            return Ok(true);
        }
        let engine = proc.server.engine_mut();
        engine
            .check_invariants()
            .map_err(|broken| format!("server {cell_index}: {broken}"))?;
        let last = engine.last_token();
        if last < proc.last_token {
            return Err(format!(
                "I2: server {cell_index} issued up to {} and now says {last}",
                proc.last_token
            ));
        }
        proc.last_token = last;
        // Read at the engine's own time: a later one would run its due timers (expiries,
        // grants to waiters) behind the host's back, with nobody to send what they produce.
        // (`Engine::leases` reads it there without copying anything; a deadline already
        // passed, its timer not yet run, counts as ending now, as a query would show it.)
        let seen_at = engine.now().as_ms();
        let mut view = std::mem::take(&mut cell.spare_view);
        view.clear();
        for held in engine.leases() {
            let Some((index, name)) = lock_index(held.name) else {
                return Err(format!(
                    "server {cell_index} holds lock {}, which nobody asked for",
                    held.name
                ));
            };
            let lease = ViewLease {
                name,
                lock: index,
                shared: held.mode == Mode::Shared,
                deadline: proc.origin + held.deadline.as_ms().max(seen_at),
                ephemeral: held.owner.is_some_and(|o| o.ends_with('e')),
            };
            view.push((held.token, lease));
        }
        // Tokens are unique: one lease each.
        view.sort_unstable_by_key(|&(token, _)| token);
        for (token, lease) in &cell.view {
            if view_lease(&view, *token).is_some() || lease.deadline <= now || lease.ephemeral {
                continue;
            }
            let released = cell.release_sent.contains(token);
            let stolen = cell.steal_at.contains_key(lease.name);
            if !released && !stolen {
                return Err(format!(
                    "lease {} #{token} ended {} ms before its deadline, with no release, steal or disconnect",
                    lease.name,
                    lease.deadline - now
                ));
            }
        }
        let changed = std::mem::take(&mut cell.recheck_clients) || cell.view != view;
        cell.spare_view = std::mem::replace(&mut cell.view, view);
        // Per lock: how many leases are live, and whether one of them is exclusive.
        let mut live = [(0usize, false); LOCKS.len()];
        let ghosts_only = cell
            .ghosts
            .iter()
            .filter(|(&token, _)| view_lease(&cell.view, token).is_none());
        let current = cell.view.iter().map(|(token, lease)| (token, lease));
        for (&token, _) in current.chain(ghosts_only) {
            if let Some(lease) = live_lease(cell, now, token) {
                if let Some(slot) = live.get_mut(lease.lock) {
                    slot.0 += 1;
                    slot.1 |= !lease.shared;
                }
            }
        }
        for (&name, &(count, exclusive)) in LOCKS.iter().zip(&live) {
            if count > 1 && exclusive {
                let live: Vec<(u64, bool)> = live_leases(cell, now)
                    .filter(|(_, lease)| lease.name == name)
                    .map(|(token, lease)| (token, lease.shared))
                    .collect();
                return Err(format!(
                    "I1: lock {name} on server {cell_index} has an exclusive lease among others (live or from a stopped run): {live:?}"
                ));
            }
        }
        Ok(changed)
    }

    /// Client side: every lease the client reports held is live on the server until at least
    /// the client's deadline (or ended by a release, a steal or an EPHEMERAL disconnect), and
    /// a lease is signalled lost at the latest when its local deadline passes. Returns when
    /// the client must be checked again even if nothing happens to it: when the earliest
    /// local deadline of a lease it holds has passed.
    fn check_client(&self, client: usize, now: u64) -> Result<u64, String> {
        let Some(host) = self.clients.get(client) else {
            return Ok(u64::MAX);
        };
        let Some(cell) = self.cells.get(host.cell) else {
            return Ok(u64::MAX);
        };
        let at = Instant(now - host.origin);
        // A timer due at this very instant fires before time moves on (asked only when a
        // deadline has passed).
        let timer_due = || {
            host.client
                .poll_timeout()
                .is_some_and(|t| host.origin + t.as_ms() <= now)
        };
        let server_busy = cell.proc.as_ref().is_some_and(|p| p.fsync.is_some());
        let mut alarm = u64::MAX;
        for (&token, held) in &host.held {
            let Some(status) = host.client.lease(at, &held.name, token) else {
                return Err(format!(
                    "c{client} stopped tracking {} #{token} without a LeaseLost event",
                    held.name
                ));
            };
            let deadline = host.origin + status.deadline.as_ms();
            if host.paused_until == 0 {
                // A paused client is checked again when it resumes.
                alarm = alarm.min(deadline);
            }
            if deadline < now && host.paused_until == 0 && !timer_due() {
                return Err(format!(
                    "c{client} still reports {} #{token} held {} ms after its local deadline, with no LeaseLost",
                    held.name,
                    now - deadline
                ));
            }
            if deadline <= now || server_busy {
                continue;
            }
            match live_lease(cell, now, token) {
                Some(lease) if lease.deadline < deadline => {
                    return Err(format!(
                        "c{client} believes {} #{token} lasts until {deadline}, but the server ends it at {} (status {status:?}, origin {})",
                        held.name, lease.deadline, host.origin
                    ));
                }
                Some(_) => {}
                None => {
                    let released = cell.release_sent.contains(&token);
                    let stolen = cell
                        .steal_at
                        .get(&held.name)
                        .is_some_and(|&at| at + 1 >= held.granted_at.saturating_sub(60_000));
                    // An EPHEMERAL lease ends whenever its connection does, and the server
                    // may see that first (a reset, a clean shutdown closing every connection).
                    let dropped = held.ephemeral;
                    if !released && !stolen && !dropped && !held.shared {
                        return Err(format!(
                            "c{client} believes it holds {} #{token} until {deadline}, but the server does not",
                            held.name
                        ));
                    }
                }
            }
        }
        Ok(alarm)
    }

    fn final_checks(&mut self) {
        for client in 0..self.clients.len() {
            if let Some((token, held)) = self.clients.get(client).and_then(|h| h.held.iter().next())
            {
                let message = format!(
                    "c{client} never heard that {} #{token} ended (no LeaseLost by the end of the drain)",
                    held.name
                );
                self.fail(message);
                return;
            }
        }
        for cell_index in 0..self.cells.len() {
            let Some(cell) = self.cells.get(cell_index) else {
                continue;
            };
            for (name, history) in &cell.history {
                self.outcome.checked_ops += history.len() as u64;
                let what = format!("lock {name} on server {cell_index}");
                match lin::judge(history, &what) {
                    Ok(true) => {}
                    Ok(false) => self.outcome.undecided_histories += 1,
                    Err(message) => {
                        self.fail(message);
                        return;
                    }
                }
            }
        }
    }
}

/// The lease `token` if it is live as far as anyone may know (the engine's, or one of a
/// stopped run whose deadline has not passed), with the later deadline of the two.
fn live_lease(cell: &Cell, now: u64, token: u64) -> Option<&ViewLease> {
    let live = |lease: &&ViewLease| lease.deadline > now;
    let current = view_lease(&cell.view, token).filter(live);
    let ghost = cell.ghosts.get(&token).filter(live);
    match (current, ghost) {
        (Some(current), Some(ghost)) if ghost.deadline > current.deadline => Some(ghost),
        (Some(current), _) => Some(current),
        (None, ghost) => ghost,
    }
}

/// Leases live as far as anyone may know: the engine's, and those of stopped runs whose
/// deadline has not passed.
fn live_leases(cell: &Cell, now: u64) -> impl Iterator<Item = (u64, &ViewLease)> {
    let mut all: BTreeMap<u64, &ViewLease> = BTreeMap::new();
    let current = cell.view.iter().map(|(token, lease)| (token, lease));
    for (&token, lease) in cell.ghosts.iter().chain(current) {
        if lease.deadline > now {
            let entry = all.entry(token).or_insert(lease);
            if lease.deadline > entry.deadline {
                *entry = lease;
            }
        }
    }
    all.into_iter()
}

/// The lease `token` in a view (sorted by token).
fn view_lease(view: &[(u64, ViewLease)], token: u64) -> Option<&ViewLease> {
    let at = view
        .binary_search_by_key(&token, |&(token, _)| token)
        .ok()?;
    view.get(at).map(|(_, lease)| lease)
}

/// The index in [`LOCKS`] of a lock name, and the name as [`LOCKS`] has it.
fn lock_index(name: &str) -> Option<(usize, &'static str)> {
    // A match compares with constants inline; a search of LOCKS calls memcmp per name, and
    // the server check does this for every lock after every server step.
    let index = match name {
        "alpha" => 0,
        "beta" => 1,
        "gamma" => 2,
        _ => return None,
    };
    LOCKS.get(index).map(|&known| (index, known))
}

fn apply_file(disk: &mut BTreeMap<DataFile, Vec<u8>>, action: FileAction) {
    match action {
        FileAction::Write { file, bytes } => {
            disk.insert(file, bytes);
        }
        FileAction::Remove { file } => {
            disk.remove(&file);
        }
    }
}

/// Describes a reply for the trace.
fn describe(result: &Result<Reply, Error>) -> String {
    match result {
        Ok(reply) => format!("{reply:?}"),
        Err(error) => format!("{} {}", error.wire_code(), error.message()),
    }
}

/// Records how a request ended in its history entry: when, and its outcome.
fn complete(
    entry: &mut Entry<LeaseOp>,
    result: &Result<Reply, Error>,
    kept: bool,
    done_at: u64,
    unknown_until: Option<u64>,
) {
    // The client says "not sent" when the request never left it (its connections never
    // opened): it had no effect, and the history holds the client to that.
    let unknown =
        matches!(result, Err(Error::ConnectionLost(message)) if !message.contains(" not sent: "));
    // A request whose link closed on the server side before it was sent never ran.
    entry.ret = if unknown {
        unknown_until.map(|until| until.max(entry.invoke))
    } else {
        Some(done_at)
    };
    lin::settle(&mut entry.op, result, unknown, kept);
}

/// What a QUERY's reply listed for `lock` (nothing if it did not list it).
fn listing(locks: &[LockInfo], lock: &str) -> lin::Listing {
    locks
        .iter()
        .find(|info| info.name == lock)
        .map(|info| lin::Listing {
            holders: info
                .holders
                .iter()
                .map(|holder| lin::Listed {
                    token: holder.token,
                    shared: holder.mode == Mode::Shared,
                    ms_left: holder.ms_left,
                })
                .collect(),
            delay_ms_left: info.delay_ms_left,
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_index_knows_every_lock_and_only_those() {
        for (index, &name) in LOCKS.iter().enumerate() {
            assert_eq!(lock_index(name), Some((index, name)));
        }
        assert_eq!(lock_index("delta"), None);
        assert_eq!(lock_index("alph"), None);
    }
}
