//! Connection and server commands that stock Redis clients send: PING, ECHO, HELLO, AUTH,
//! QUIT, SELECT, CLIENT, COMMAND, plus INFO's argument check and DEBUG ADVANCE.

use alloc::string::String;

use super::args::{self, bad, is, shown};
use super::auth::{self, Verdict};
use super::context::{unknown_error, usage_error, Action, Context};
use super::reply::{ReplyEncoder, RespVersion};
use super::table::{self, CommandSpec, COMMANDS};
use super::users::Need;
use crate::text::Text;
use crate::Error;

/// The version reported by `HELLO` and `INFO`: the workspace version in Cargo.toml, the one
/// source the Python package's version also comes from.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `INFO [section]`: the server encodes it, because it reports on every connection.
pub(crate) fn info(argv: &[&[u8]]) -> Result<Action, Error> {
    if argv.len() > 2 {
        return Err(usage_error(&table::INFO));
    }
    let section = argv
        .get(1)
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase());
    Ok(Action::Info(section.unwrap_or_default()))
}

/// `PING [message]`.
pub(crate) fn ping(ctx: &mut Context<'_>, argv: &[&[u8]]) -> Result<Action, Error> {
    match argv.get(1..).unwrap_or_default() {
        [] => ctx.conn.reply().simple("PONG"),
        [message] => ctx.conn.reply().bulk(message),
        _ => return Err(usage_error(&table::PING)),
    }
    Ok(Action::Done)
}

/// `ECHO message`.
pub(crate) fn echo(ctx: &mut Context<'_>, argv: &[&[u8]]) -> Result<Action, Error> {
    ctx.conn
        .reply()
        .bulk(argv.get(1).copied().unwrap_or_default());
    Ok(Action::Done)
}

/// `HELLO [2|3 [AUTH username password] [SETNAME name]]`: validates everything before
/// changing anything, then answers in the chosen version.
pub(crate) fn hello(ctx: &mut Context<'_>, argv: &[&[u8]]) -> Result<Action, Error> {
    let mut version = ctx.conn.version;
    let mut new_name = None;
    if let Some(&requested) = argv.get(1) {
        version = match requested {
            b"2" => RespVersion::Resp2,
            b"3" => RespVersion::Resp3,
            _ => {
                ctx.conn
                    .reply()
                    .error("NOPROTO unsupported protocol version; fencelock speaks 2 and 3");
                return Ok(Action::Done);
            }
        };
    }
    let mut credentials = None;
    let mut rest = argv.iter().skip(2);
    while let Some(&option) = rest.next() {
        if is(option, "AUTH") {
            let (Some(&user), Some(&password)) = (rest.next(), rest.next()) else {
                return Err(bad("HELLO AUTH needs a username and a password"));
            };
            credentials = Some((user, password));
        } else if is(option, "SETNAME") {
            let Some(&name) = rest.next() else {
                return Err(bad("HELLO SETNAME needs a name"));
            };
            new_name = Some(client_name(name)?);
        } else {
            return Err(Error::BadRequest(
                Text::new("unknown HELLO option ")
                    .str(&shown(option))
                    .str("; options are AUTH username password, SETNAME name")
                    .into(),
            ));
        }
    }
    match credentials {
        Some((user, password)) if ctx.auth.required() => {
            if let Some(action) = authenticate(ctx, user, password) {
                return Ok(action);
            }
        }
        Some((user, _)) => check_user(user)?,
        None if ctx.auth.required() && ctx.conn.user.is_none() => {
            return Err(Error::NoAuth(String::from(
                "HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
            )));
        }
        None => {}
    }
    ctx.conn.version = version;
    if let Some(name) = new_name {
        ctx.conn.name = name;
    }
    let mut reply = ctx.conn.reply();
    reply.map(7);
    reply.bulk(b"server");
    reply.bulk(b"fencelock");
    reply.bulk(b"version");
    reply.bulk(VERSION.as_bytes());
    reply.bulk(b"proto");
    reply.integer(if version == RespVersion::Resp3 { 3 } else { 2 });
    reply.bulk(b"id");
    reply.unsigned(ctx.id);
    reply.bulk(b"mode");
    reply.bulk(b"standalone");
    reply.bulk(b"role");
    reply.bulk(b"master");
    reply.bulk(b"modules");
    reply.array(0);
    Ok(Action::Done)
}

/// `AUTH [username] password`: fencelock has no passwords, like a Redis default user with
/// `nopass`; a lone password is refused so a misconfigured client notices.
pub(crate) fn auth(ctx: &mut Context<'_>, argv: &[&[u8]]) -> Result<Action, Error> {
    if ctx.auth.required() {
        let (user, password) = match argv.get(1..).unwrap_or_default() {
            [password] => (auth::default_user(), *password),
            [user, password] => (*user, *password),
            _ => return Err(usage_error(&table::AUTH)),
        };
        let action = authenticate(ctx, user, password).unwrap_or_else(|| {
            ctx.conn.reply().simple("OK");
            Action::Done
        });
        return Ok(action);
    }
    match argv.len() {
        2 => Err(bad(
            "AUTH <password> called without any password configured; fencelock has no passwords, serve it on loopback",
        )),
        3 => {
            check_user(argv.get(1).copied().unwrap_or_default())?;
            ctx.conn.reply().simple("OK");
            Ok(Action::Done)
        }
        _ => Err(usage_error(&table::AUTH)),
    }
}

/// `QUIT`: answers, then the server closes the connection.
pub(crate) fn quit(ctx: &mut Context<'_>, _argv: &[&[u8]]) -> Result<Action, Error> {
    ctx.conn.reply().simple("OK");
    Ok(Action::Close)
}

/// `SELECT 0`: fencelock has one namespace, which clients configured for db 0 expect.
pub(crate) fn select(ctx: &mut Context<'_>, argv: &[&[u8]]) -> Result<Action, Error> {
    if argv.get(1).copied() != Some(b"0".as_slice()) {
        return Err(bad(
            "DB index is out of range; fencelock has only database 0",
        ));
    }
    ctx.conn.reply().simple("OK");
    Ok(Action::Done)
}

/// `CLIENT ID|GETNAME|SETNAME|SETINFO|INFO|LIST|NO-EVICT|NO-TOUCH`.
pub(crate) fn client(ctx: &mut Context<'_>, argv: &[&[u8]]) -> Result<Action, Error> {
    let sub = argv.get(1).copied().unwrap_or_default();
    let rest = argv.get(2..).unwrap_or_default();
    match rest {
        [] if is(sub, "ID") => ctx.conn.reply().unsigned(ctx.id),
        [] if is(sub, "GETNAME") => {
            let name = ctx.conn.name.clone();
            ctx.conn
                .reply()
                .optional_bulk(name.as_deref().map(str::as_bytes));
        }
        [name] if is(sub, "SETNAME") => {
            ctx.conn.name = client_name(name)?;
            ctx.conn.reply().simple("OK");
        }
        [attribute, value] if is(sub, "SETINFO") => {
            let value = client_name(value)?;
            if is(attribute, "LIB-NAME") {
                ctx.conn.lib_name = value;
            } else if is(attribute, "LIB-VER") {
                ctx.conn.lib_version = value;
            } else {
                return Err(Error::BadRequest(
                    Text::new("unrecognized CLIENT SETINFO attribute ")
                        .str(&shown(attribute))
                        .str("; use LIB-NAME or LIB-VER")
                        .into(),
                ));
            }
            ctx.conn.reply().simple("OK");
        }
        [] if is(sub, "INFO") => {
            let line = super::info::client_line(ctx.id, ctx.conn, ctx.now);
            ctx.conn.reply().bulk(line.as_bytes());
        }
        [] if is(sub, "LIST") => return Ok(Action::ClientList),
        // Hints some clients send; fencelock never evicts, so both are accepted as no-ops.
        [_] if is(sub, "NO-EVICT") || is(sub, "NO-TOUCH") => ctx.conn.reply().simple("OK"),
        _ => {
            return Err(unknown_error(
                "CLIENT subcommand or wrong arguments for",
                sub,
                &table::CLIENT,
            ))
        }
    }
    Ok(Action::Done)
}

/// `COMMAND [COUNT|LIST|INFO [name ...]|DOCS [name ...]]`.
pub(crate) fn command(ctx: &mut Context<'_>, argv: &[&[u8]]) -> Result<Action, Error> {
    let mut reply = ctx.conn.reply();
    let Some(&sub) = argv.get(1) else {
        reply.array(COMMANDS.len());
        COMMANDS
            .iter()
            .for_each(|spec| command_info(&mut reply, spec));
        return Ok(Action::Done);
    };
    let names = argv.get(2..).unwrap_or_default();
    if is(sub, "COUNT") && names.is_empty() {
        reply.unsigned(COMMANDS.len() as u64);
    } else if is(sub, "LIST") && names.is_empty() {
        reply.array(COMMANDS.len());
        for spec in COMMANDS {
            reply.bulk(spec.name.to_ascii_lowercase().as_bytes());
        }
    } else if is(sub, "INFO") {
        if names.is_empty() {
            reply.array(COMMANDS.len());
            COMMANDS
                .iter()
                .for_each(|spec| command_info(&mut reply, spec));
        } else {
            reply.array(names.len());
            for &name in names {
                match table::lookup(name) {
                    Some(spec) => command_info(&mut reply, spec),
                    None => reply.null(),
                }
            }
        }
    } else if is(sub, "DOCS") {
        let wanted =
            |spec: &&CommandSpec| names.is_empty() || names.iter().any(|n| is(n, spec.name));
        reply.map(COMMANDS.iter().filter(wanted).count());
        for spec in COMMANDS.iter().filter(wanted) {
            reply.bulk(spec.name.to_ascii_lowercase().as_bytes());
            command_docs(&mut reply, spec);
        }
    } else {
        return Err(Error::BadRequest(
            Text::new("unknown COMMAND subcommand ")
                .str(&shown(sub))
                .str("; use COUNT, LIST, INFO or DOCS")
                .into(),
        ));
    }
    Ok(Action::Done)
}

/// `DEBUG ADVANCE ms`: only on a server with a test clock, which then runs what became due.
pub(crate) fn debug(ctx: &mut Context<'_>, argv: &[&[u8]]) -> Result<Action, Error> {
    let sub = argv.get(1).copied().unwrap_or_default();
    if !is(sub, "ADVANCE") || argv.len() != 3 {
        return Err(bad("fencelock supports only DEBUG ADVANCE ms"));
    }
    ctx.permit(Need::Debug)?;
    let Some(clock) = ctx.manual_clock.as_mut() else {
        return Err(bad(
            "DEBUG ADVANCE needs a server started with a test clock (--test-clock); this one uses real time",
        ));
    };
    let ms = args::number(argv.get(2).copied().unwrap_or_default(), "DEBUG ADVANCE ms")?;
    *clock = clock.plus_ms(ms);
    let now = *clock;
    ctx.now = now;
    ctx.engine.handle_timeout(now);
    ctx.conn.reply().unsigned(now.as_ms());
    Ok(Action::Done)
}

/// Redis 7 command info: name, arity, flags, first key, last key, step, ACL categories,
/// tips, key specs, subcommands.
fn command_info(reply: &mut ReplyEncoder<'_>, spec: &CommandSpec) {
    let key = i64::from(spec.has_key);
    reply.array(10);
    reply.bulk(spec.name.to_ascii_lowercase().as_bytes());
    reply.integer(spec.arity);
    reply.array(1);
    reply.simple(if spec.has_key { "write" } else { "fast" });
    reply.integer(key);
    reply.integer(key);
    reply.integer(key);
    reply.array(0);
    reply.array(0);
    reply.array(0);
    reply.array(0);
}

/// Redis 7 command docs, as `redis-cli` reads them for its help.
fn command_docs(reply: &mut ReplyEncoder<'_>, spec: &CommandSpec) {
    reply.map(4);
    reply.bulk(b"summary");
    reply.bulk(spec.summary.as_bytes());
    reply.bulk(b"since");
    reply.bulk(spec.since.as_bytes());
    reply.bulk(b"group");
    reply.bulk(b"generic");
    reply.bulk(b"arguments");
    reply.array(0);
}

/// Checks a user's password; on success the connection is that user's and `None` is
/// returned. On failure the error is written, the failure counted and audited, and the
/// returned action closes the connection once it reached `max_auth_failures`.
fn authenticate(ctx: &mut Context<'_>, user: &[u8], password: &[u8]) -> Option<Action> {
    match ctx.auth.verify(ctx.now, user, password) {
        Verdict::Passed(name) => {
            ctx.conn.user = Some(name);
            None
        }
        Verdict::Failed(error) => {
            ctx.conn.auth_failures = ctx.conn.auth_failures.saturating_add(1);
            let failures = ctx.conn.auth_failures;
            let limit = u32::try_from(ctx.config.max_auth_failures).unwrap_or(u32::MAX);
            let closed = failures >= limit;
            ctx.auth.failures += 1;
            ctx.auth
                .audit(auth::failure_event(ctx.id, user, failures, closed));
            ctx.conn.reply().error(&error.text());
            Some(if closed { Action::Close } else { Action::Done })
        }
    }
}

fn check_user(user: &[u8]) -> Result<(), Error> {
    if is(user, "default") {
        Ok(())
    } else {
        Err(Error::BadRequest(
            Text::new("unknown user ")
                .str(&shown(user))
                .str("; fencelock has only the default user and no passwords")
                .into(),
        ))
    }
}

/// Validates a client name or library label as Redis does (printable, no spaces); empty
/// clears it.
fn client_name(name: &[u8]) -> Result<Option<String>, Error> {
    if name.is_empty() {
        return Ok(None);
    }
    if !name.iter().all(|&b| (b'!'..=b'~').contains(&b)) {
        return Err(bad(
            "client names cannot contain spaces, newlines or special characters",
        ));
    }
    // Printable ASCII is valid UTF-8.
    Ok(Some(String::from_utf8_lossy(name).into_owned()))
}
