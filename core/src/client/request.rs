//! Requests as the client sends them: validated, encoded as RESP arrays of bulk strings, and
//! remembered until their reply comes.

use alloc::string::String;
use alloc::vec::Vec;

use crate::protocol::{ReplyEncoder, RespVersion};
use crate::{rules, AcquireOptions, Error, Instant, Mode, Token, MAX_TOKEN};

/// What a request was, so its reply can be typed and its effect on leases applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Acquire {
        name: String,
        ttl_ms: u64,
        ephemeral: bool,
    },
    Renew {
        name: String,
        token: Token,
        /// Sent by the client's own renewal schedule, not by the user.
        automatic: bool,
    },
    Release {
        name: String,
        token: Token,
    },
    Verify {
        name: String,
        token: Token,
    },
    Query,
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
            Kind::Query => "QUERY",
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
        }
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
    let ttl = number("ttl_ms", ttl_ms)?;
    let mut argv: Vec<&[u8]> = Vec::with_capacity(12);
    argv.extend_from_slice(&[b"ACQUIRE", name.as_bytes(), ttl.as_bytes()]);
    let wait = number("WAIT ms", options.wait_ms)?;
    if options.wait_ms > 0 {
        argv.extend_from_slice(&[b"WAIT", wait.as_bytes()]);
    }
    if options.mode == Mode::Shared {
        argv.push(b"SHARED");
    }
    if options.steal {
        argv.push(b"STEAL");
    }
    if let Some(owner) = &options.owner {
        argv.extend_from_slice(&[b"OWNER", owner.as_bytes()]);
    }
    if options.ephemeral {
        argv.push(b"EPHEMERAL");
    }
    let delay = match options.lock_delay_ms {
        Some(ms) => number("LOCKDELAY ms", ms)?,
        None => String::new(),
    };
    if options.lock_delay_ms.is_some() {
        argv.extend_from_slice(&[b"LOCKDELAY", delay.as_bytes()]);
    }
    Ok(encode(&argv))
}

/// Encodes `RENEW name token ttl_ms`.
pub(crate) fn renew(name: &str, token: Token, ttl_ms: u64) -> Result<Vec<u8>, Error> {
    rules::name_not_empty(name)?;
    rules::ttl_not_zero(ttl_ms)?;
    let token = number("token", token)?;
    let ttl = number("ttl_ms", ttl_ms)?;
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
    let token = number("token", token)?;
    Ok(encode(&[
        command.as_bytes(),
        name.as_bytes(),
        token.as_bytes(),
    ]))
}

/// Encodes a request as an array of bulk strings, as every Redis client sends them.
pub(crate) fn encode(argv: &[&[u8]]) -> Vec<u8> {
    let size: usize = argv.iter().map(|arg| arg.len() + 16).sum();
    let mut out = Vec::with_capacity(size + 16);
    let mut encoder = ReplyEncoder::new(&mut out, RespVersion::Resp2);
    encoder.array(argv.len());
    for arg in argv {
        encoder.bulk(arg);
    }
    out
}

/// Formats a number argument, refusing what JavaScript numbers (and tokens) cannot hold.
fn number(what: &str, value: u64) -> Result<String, Error> {
    if value > MAX_TOKEN {
        return Err(Error::BadRequest(alloc::format!(
            "{what} {value} is above 2^53-1"
        )));
    }
    Ok(alloc::format!("{value}"))
}
