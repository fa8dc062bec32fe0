//! Runs one request against the engine and encodes its reply.

use alloc::format;
use alloc::string::{String, ToString};

use super::connection::Connection;
use super::table::{self, Kind};
use super::{admin, lock_commands, ConnId};
use crate::{Engine, Error, Instant};

/// Everything a command may touch, borrowed from the server for one request.
pub(crate) struct Context<'a> {
    pub(crate) engine: &'a mut Engine,
    pub(crate) conn: &'a mut Connection,
    pub(crate) id: ConnId,
    pub(crate) now: Instant,
    /// The manual clock when the server runs with a test clock.
    pub(crate) manual_clock: &'a mut Option<Instant>,
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

/// Runs the request `argv` (command name first) and appends its reply, unless it blocks.
pub(crate) fn run(ctx: &mut Context<'_>, argv: &[&[u8]]) -> Action {
    let Some(&name) = argv.first() else {
        return Action::Done;
    };
    let Some(spec) = table::lookup(name) else {
        let message = format!(
            "ERR unknown command {}; fencelock serves ACQUIRE RENEW RELEASE VERIFY QUERY INFO PING ECHO HELLO AUTH QUIT SELECT CLIENT COMMAND DEBUG",
            super::args::shown(name)
        );
        ctx.conn.reply().error(&message);
        return Action::Done;
    };
    if !spec.accepts(argv.len()) {
        ctx.conn.reply().error(&arity_error(spec.name, spec.usage));
        return Action::Done;
    }
    let result = match spec.kind {
        Kind::Acquire => lock_commands::acquire(ctx, argv),
        Kind::Release => lock_commands::release(ctx, argv),
        Kind::Renew => lock_commands::renew(ctx, argv),
        Kind::Verify => lock_commands::verify(ctx, argv),
        Kind::Query => lock_commands::query(ctx, argv),
        Kind::Info => admin::info(argv),
        Kind::Ping => admin::ping(ctx, argv),
        Kind::Echo => admin::echo(ctx, argv),
        Kind::Hello => admin::hello(ctx, argv),
        Kind::Auth => admin::auth(ctx, argv),
        Kind::Quit => admin::quit(ctx, argv),
        Kind::Select => admin::select(ctx, argv),
        Kind::Client => admin::client(ctx, argv),
        Kind::Command => admin::command(ctx, argv),
        Kind::Debug => admin::debug(ctx, argv),
    };
    match result {
        Ok(action) => action,
        Err(error) => {
            ctx.conn.reply().error(&error.to_string());
            Action::Done
        }
    }
}

/// Returns the wrong-arity error for a command, with its usage.
pub(crate) fn arity_error(name: &str, usage: &str) -> String {
    format!(
        "ERR wrong number of arguments for '{}': usage {usage}",
        name.to_ascii_lowercase()
    )
}

/// Returns a bad-request error saying how the command is used.
pub(crate) fn usage_error(name: &str, usage: &str) -> Error {
    Error::BadRequest(format!(
        "wrong number of arguments for '{}': usage {usage}",
        name.to_ascii_lowercase()
    ))
}
