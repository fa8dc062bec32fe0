//! Dispatch: finds a request's command in the table, checks its arity, runs its handler and
//! encodes an error reply if it fails.

use alloc::string::String;

use super::args::shown;
use super::context::{usage_error, Action, Context};
use super::table::{self, Kind, COMMANDS};
use super::{admin, auth, lock_commands};
use crate::text::Text;

/// Runs the request `argv` (command name first) and appends its reply, unless it blocks.
pub(crate) fn run(ctx: &mut Context<'_>, argv: &[&[u8]]) -> Action {
    let Some(&name) = argv.first() else {
        return Action::Done;
    };
    let spec = table::lookup(name);
    if ctx.auth.required()
        && ctx.conn.user.is_none()
        && !spec.is_some_and(|spec| {
            matches!(
                spec.kind,
                Kind::Hello | Kind::Auth | Kind::Ping | Kind::Quit
            )
        })
    {
        // Before authenticating, a client learns nothing, not even which commands exist.
        ctx.conn.reply().error(&auth::noauth().text());
        return Action::Done;
    }
    let Some(spec) = spec else {
        ctx.conn.reply().error(&unknown_command(name));
        return Action::Done;
    };
    if !spec.accepts(argv.len()) {
        ctx.conn.reply().error(&usage_error(spec).text());
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
            ctx.conn.reply().error(&error.text());
            Action::Done
        }
    }
}

/// Returns the unknown-command error, listing every command the table serves.
fn unknown_command(name: &[u8]) -> String {
    let mut text: String = Text::new("ERR unknown command ")
        .str(&shown(name))
        .str("; fencelock serves")
        .into();
    for spec in COMMANDS {
        text.push(' ');
        text.push_str(spec.name);
    }
    text
}
