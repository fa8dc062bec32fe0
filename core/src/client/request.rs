//! Requests as the client sends them: validated, encoded as RESP arrays of bulk strings, and
//! remembered until their reply comes.

use alloc::string::String;
use alloc::vec::Vec;

use crate::text::Text;
use crate::{rules, AcquireOptions, Error, Instant, Mode, Token, MAX_TOKEN};

/// What a request was, so its reply can be typed and its effect on leases applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Acquire {
        name: String,
        ttl_ms: u64,
        ephemeral: bool,
    },
    // RENEW, RELEASE and VERIFY are idempotent, so their bytes are kept for a retry and the
    // lock name is read back from them (`Request::name`) rather than copied once more.
    Renew {
        token: Token,
        /// Sent by the client's own renewal schedule, not by the user.
        automatic: bool,
    },
    Release {
        token: Token,
    },
    Verify {
        token: Token,
    },
    Query,
    /// `QUERY prefix COUNT n CURSOR c`: one page and the next cursor.
    QueryPage,
    Info,
    Ping,
    Command,
}

impl Kind {
    /// Tells whether sending the request twice does no harm: RENEW only extends the named
    /// lease, RELEASE of a released token answers STALE (read as released on a retry), the
    /// rest change nothing. ACQUIRE could take a second lease, and a raw command is unknown.
    pub(crate) fn idempotent(&self) -> bool {
        !matches!(self, Kind::Acquire { .. } | Kind::Command)
    }

    /// Returns the command's name for error messages.
    pub(crate) fn command(&self) -> &'static str {
        match self {
            Kind::Acquire { .. } => "ACQUIRE",
            Kind::Renew { .. } => "RENEW",
            Kind::Release { .. } => "RELEASE",
            Kind::Verify { .. } => "VERIFY",
            Kind::Query | Kind::QueryPage => "QUERY",
            Kind::Info => "INFO",
            Kind::Ping => "PING",
            Kind::Command => "the command",
        }
    }
}

/// One request awaiting its reply.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) kind: Kind,
    /// The encoded request, kept to send again on a retry.
    pub(crate) bytes: Vec<u8>,
    pub(crate) conn: u64,
    /// When it was (last) sent: a granted lease's local deadline runs from here.
    pub(crate) sent_at: Instant,
    pub(crate) deadline: Instant,
    pub(crate) timeout_ms: u64,
    /// An acquire with a wait: the server blocks its connection until it ends.
    pub(crate) waits: bool,
    pub(crate) retried: bool,
    pub(crate) cancelled: bool,
    /// How many `-MOVED` replies sent it to another endpoint since it last paused.
    pub(crate) moves: usize,
    /// When it was submitted: a cluster failover is ridden through until `born + timeout_ms`.
    pub(crate) born: Instant,
    /// Waiting out a cluster election (no leader to send it to) until `deadline`, on no
    /// connection; how many times it has paused so far.
    pub(crate) paused: bool,
    pub(crate) pauses: u32,
}

impl Request {
    pub(crate) fn new(
        kind: Kind,
        bytes: Vec<u8>,
        now: Instant,
        timeout_ms: u64,
        wait_ms: u64,
    ) -> Request {
        let timeout_ms = timeout_ms.saturating_add(wait_ms);
        Request {
            kind,
            bytes,
            conn: 0,
            sent_at: now,
            deadline: now.plus_ms(timeout_ms),
            timeout_ms,
            waits: wait_ms > 0,
            retried: false,
            cancelled: false,
            moves: 0,
            born: now,
            paused: false,
            pauses: 0,
        }
    }

    /// Returns the lock name a request names: its second argument, read back from the bytes
    /// this module encoded (an array of bulk strings).
    pub(crate) fn name(&self) -> &str {
        second_argument(&self.bytes)
            .and_then(|name| core::str::from_utf8(name).ok())
            .unwrap_or_default()
    }

    /// Restarts the request's clocks when its bytes can leave (its connection opened).
    pub(crate) fn restart_clock(&mut self, now: Instant) {
        self.sent_at = now;
        self.deadline = now.plus_ms(self.timeout_ms);
    }
}

/// Encodes `ACQUIRE name ttl_ms [WAIT ms] [SHARED] [STEAL] [OWNER label] [EPHEMERAL] [LOCKDELAY ms]`.
pub(crate) fn acquire(name: &str, ttl_ms: u64, options: &AcquireOptions) -> Result<Vec<u8>, Error> {
    rules::name_not_empty(name)?;
    rules::ttl_not_zero(ttl_ms)?;
    rules::steal_without_wait(options.steal, options.wait_ms)?;
    let ttl = Digits::of("ttl_ms", ttl_ms)?;
    // Options are rare: their digits are formatted only when present.
    let wait = match options.wait_ms {
        0 => None,
        ms => Some(Digits::of("WAIT ms", ms)?),
    };
    let delay = match options.lock_delay_ms {
        Some(ms) => Some(Digits::of("LOCKDELAY ms", ms)?),
        None => None,
    };
    // At most 12 arguments: gathered on the stack, not in a vector.
    let mut argv = Args::default();
    argv.add(&[b"ACQUIRE", name.as_bytes(), ttl.as_bytes()]);
    if let Some(wait) = &wait {
        argv.add(&[b"WAIT", wait.as_bytes()]);
    }
    if options.mode == Mode::Shared {
        argv.add(&[b"SHARED"]);
    }
    if options.steal {
        argv.add(&[b"STEAL"]);
    }
    if let Some(owner) = &options.owner {
        argv.add(&[b"OWNER", owner.as_bytes()]);
    }
    if options.ephemeral {
        argv.add(&[b"EPHEMERAL"]);
    }
    if let Some(delay) = &delay {
        argv.add(&[b"LOCKDELAY", delay.as_bytes()]);
    }
    Ok(encode(argv.as_slice()))
}

/// Encodes `RENEW name token ttl_ms`.
pub(crate) fn renew(name: &str, token: Token, ttl_ms: u64) -> Result<Vec<u8>, Error> {
    rules::name_not_empty(name)?;
    rules::ttl_not_zero(ttl_ms)?;
    let token = Digits::of("token", token)?;
    let ttl = Digits::of("ttl_ms", ttl_ms)?;
    Ok(encode(&[
        b"RENEW",
        name.as_bytes(),
        token.as_bytes(),
        ttl.as_bytes(),
    ]))
}

/// Encodes `COMMAND name token` (RELEASE, VERIFY).
pub(crate) fn name_token(command: &str, name: &str, token: Token) -> Result<Vec<u8>, Error> {
    rules::name_not_empty(name)?;
    let token = Digits::of("token", token)?;
    Ok(encode(&[
        command.as_bytes(),
        name.as_bytes(),
        token.as_bytes(),
    ]))
}

/// Encodes a request as an array of bulk strings, as every Redis client sends them. Written
/// directly rather than through the reply encoder: this runs once per request and each
/// header is a few bytes built on the stack.
pub(crate) fn encode(argv: &[&[u8]]) -> Vec<u8> {
    let size: usize = argv.iter().map(|arg| arg.len() + 8).sum();
    let mut out = Vec::with_capacity(size + 8);
    header(&mut out, b'*', argv.len());
    for arg in argv {
        header(&mut out, b'$', arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Appends `*N\r\n` or `$N\r\n`; lengths below 100, nearly all of them, take no loop.
fn header(out: &mut Vec<u8>, kind: u8, len: usize) {
    out.push(kind);
    match u8::try_from(len) {
        Ok(small) if small < 10 => out.push(b'0' + small),
        Ok(small) if small < 100 => out.extend_from_slice(&[b'0' + small / 10, b'0' + small % 10]),
        _ => out.extend_from_slice(Digits::new(len as u64).as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
}

/// Up to 12 arguments of one request.
#[derive(Default)]
struct Args<'a> {
    argv: [&'a [u8]; 12],
    count: usize,
}

impl<'a> Args<'a> {
    fn add(&mut self, parts: &[&'a [u8]]) {
        for &part in parts {
            if let Some(slot) = self.argv.get_mut(self.count) {
                *slot = part;
                self.count += 1;
            }
        }
    }

    fn as_slice(&self) -> &[&'a [u8]] {
        self.argv.get(..self.count).unwrap_or_default()
    }
}

/// A number argument's decimal digits, on the stack.
struct Digits {
    buffer: [u8; 20],
    start: usize,
}

impl Digits {
    /// Formats `value`, refusing what JavaScript numbers (and tokens) cannot hold.
    fn of(what: &str, value: u64) -> Result<Digits, Error> {
        if value > MAX_TOKEN {
            return Err(Error::BadRequest(
                Text::new(what)
                    .str(" ")
                    .num(value)
                    .str(" is above 2^53-1")
                    .into(),
            ));
        }
        Ok(Digits::new(value))
    }

    fn new(mut value: u64) -> Digits {
        let mut digits = Digits {
            buffer: [b'0'; 20],
            start: 20,
        };
        loop {
            digits.start -= 1;
            if let Some(slot) = digits.buffer.get_mut(digits.start) {
                // `value % 10` is a single digit.
                *slot = b'0' + (value % 10) as u8;
            }
            value /= 10;
            if value == 0 || digits.start == 0 {
                return digits;
            }
        }
    }

    fn as_bytes(&self) -> &[u8] {
        self.buffer.get(self.start..).unwrap_or_default()
    }
}

/// Returns the second bulk string of a request encoded by [`encode`], reading only the
/// three length headers before it.
fn second_argument(bytes: &[u8]) -> Option<&[u8]> {
    let (_, at) = length_header(bytes, 0)?;
    let (first, at) = length_header(bytes, at)?;
    let (len, at) = length_header(bytes, at + first + 2)?;
    bytes.get(at..at + len)
}

/// Reads a `*N\r\n` or `$N\r\n` header at `at`; returns N and where the next part starts.
fn length_header(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let mut value: usize = 0;
    let mut index = at + 1;
    loop {
        match bytes.get(index)? {
            &digit @ b'0'..=b'9' => {
                value = value
                    .saturating_mul(10)
                    .saturating_add(usize::from(digit - b'0'));
            }
            b'\r' => return Some((value, index + 2)),
            _ => return None,
        }
        index += 1;
    }
}
