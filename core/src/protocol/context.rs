//! What a command handler gets and gives back: the request's context, the action the server
//! finishes after it, and the usage error built from the command table.
//!
//! Handlers (`admin`, `lock_commands`) and the dispatcher (`commands`) both depend on this
//! module and never on each other.

use alloc::string::String;

use super::auth::Auth;
use super::connection::Connection;
use super::table::CommandSpec;
use super::users::Need;
use super::ConnId;
use super::ServerConfig;
use crate::text::Text;
use crate::{Engine, Error, Instant};

/// Everything a command may touch, borrowed from the server for one request.
pub(crate) struct Context<'a> {
    pub(crate) engine: &'a mut Engine,
    pub(crate) conn: &'a mut Connection,
    pub(crate) id: ConnId,
    pub(crate) now: Instant,
    /// The manual clock when the server runs with a test clock.
    pub(crate) manual_clock: &'a mut Option<Instant>,
    pub(crate) auth: &'a mut Auth,
    pub(crate) config: &'a ServerConfig,
}

impl Context<'_> {
    /// Checks that this connection's user may do what a command needs.
    pub(crate) fn permit(&self, need: Need<'_>) -> Result<(), Error> {
        self.auth.check(self.conn.user.as_deref(), need)
    }
}

/// Work the server must finish after a command, because it needs more than one connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Done,
    /// Send what was written, then close (`QUIT`).
    Close,
    /// Encode `INFO` for the lowercase section name (empty: every section).
    Info(String),
    /// Encode `CLIENT LIST`.
    ClientList,
}

/// Returns the bad-request error saying how `spec`'s command is used, for a wrong number of
/// arguments.
/// `BAD unknown <what> <arg>; usage <spec's usage>`: an option or subcommand the command
/// does not have.
pub(crate) fn unknown_error(what: &str, arg: &[u8], spec: &CommandSpec) -> Error {
    Error::BadRequest(
        Text::new("unknown ")
            .str(what)
            .str(" ")
            .str(&super::args::shown(arg))
            .str("; usage ")
            .str(spec.usage)
            .into(),
    )
}

pub(crate) fn usage_error(spec: &CommandSpec) -> Error {
    Error::BadRequest(
        Text::new("wrong number of arguments for '")
            .str(&spec.name.to_ascii_lowercase())
            .str("': usage ")
            .str(spec.usage)
            .into(),
    )
}
