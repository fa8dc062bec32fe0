//! State of one client connection: its parser, its pending output and what it is waiting for.

use alloc::string::String;
use alloc::vec::Vec;

use super::metrics::ErrorTally;
use super::parser::{ParserLimits, RequestParser};
use super::reply::{ReplyEncoder, RespVersion};
use crate::{Instant, WaiterId};

/// Bytes reserved for a connection's next output: an ACQUIRE's or QUERY's reply of a few locks
/// fits.
const REPLY_ROOM: usize = 128;

/// One client connection as the server sees it.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) parser: RequestParser,
    /// Encoded replies not yet handed to the host.
    pub(crate) out: Vec<u8>,
    pub(crate) version: RespVersion,
    pub(crate) name: Option<String>,
    pub(crate) lib_name: Option<String>,
    pub(crate) lib_version: Option<String>,
    /// The engine waiter this connection is blocked on (`ACQUIRE ... WAIT`): later requests
    /// wait until it is granted or times out, as with Redis `BLPOP`.
    pub(crate) blocked: Option<WaiterId>,
    /// Raw input that arrived while blocked, replayed through the parser once unblocked.
    pub(crate) held: Vec<u8>,
    /// The server decided to close: input is ignored, pending output is sent, then `Close`.
    pub(crate) closing: bool,
    /// Already in the server's queue of connections with output to poll.
    pub(crate) queued: bool,
    /// Bytes the host reported as accepted but not yet written to the socket.
    pub(crate) unsent: usize,
    pub(crate) connected_at: Instant,
    /// Error replies written to this connection, by code; the server adds them to its own
    /// tally when it forgets the connection.
    pub(crate) errors: ErrorTally,
    /// The user this connection authenticated as (when the server has users).
    pub(crate) user: Option<String>,
    /// Failed `AUTH` attempts on this connection.
    pub(crate) auth_failures: u32,
}

impl Connection {
    pub(crate) fn new(limits: ParserLimits, now: Instant) -> Self {
        Connection {
            parser: RequestParser::new(limits),
            out: Vec::new(),
            version: RespVersion::Resp2,
            name: None,
            lib_name: None,
            lib_version: None,
            blocked: None,
            held: Vec::new(),
            closing: false,
            queued: false,
            unsent: 0,
            connected_at: now,
            errors: ErrorTally::default(),
            user: None,
            auth_failures: 0,
        }
    }

    /// Returns an encoder appending to this connection's output in its RESP version.
    pub(crate) fn reply(&mut self) -> ReplyEncoder<'_> {
        // The output was handed to the host whole (`Output::Transmit`): room for a typical
        // reply up front rather than growing 8, 16, 32, 64 bytes as it is encoded.
        if self.out.capacity() == 0 {
            self.out.reserve(REPLY_ROOM);
        }
        ReplyEncoder::counting(&mut self.out, self.version, &mut self.errors)
    }

    /// Returns the bytes this connection holds in memory: partial request, held input, output.
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.parser.buffered_bytes() + self.held.len() + self.out.len()
    }
}
