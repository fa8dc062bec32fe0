//! The lock commands: ACQUIRE, RENEW, RELEASE, VERIFY and QUERY.

use alloc::string::String;

use super::args::{self, is, shown};
use super::context::{unknown_error, usage_error, Action, Context};
use super::reply::ReplyEncoder;
use super::table;
use super::users::Need;
use crate::text::Text;
use crate::{AcquireOptions, Acquired, Error, LockInfo, Mode};

/// `ACQUIRE name ttl_ms [WAIT ms] [SHARED] [STEAL] [OWNER label] [EPHEMERAL] [LOCKDELAY ms]`.
pub(crate) fn acquire(ctx: &mut Context<'_>, argv: &[&[u8]]) -> Result<Action, Error> {
    let name = args::name(arg(argv, 1), "lock name")?;
    let ttl_ms = args::number(arg(argv, 2), "ttl_ms")?;
    let mut options = AcquireOptions {
        client: ctx.id,
        ..AcquireOptions::default()
    };
    let mut rest = argv.iter().skip(3);
    while let Some(&option) = rest.next() {
        if is(option, "WAIT") {
            options.wait_ms = args::number(value(rest.next(), "WAIT", "ms")?, "WAIT ms")?;
        } else if is(option, "SHARED") {
            options.mode = Mode::Shared;
        } else if is(option, "STEAL") {
            options.steal = true;
        } else if is(option, "OWNER") {
            options.owner = Some(String::from(args::name(
                value(rest.next(), "OWNER", "label")?,
                "OWNER label",
            )?));
        } else if is(option, "EPHEMERAL") {
            options.ephemeral = true;
        } else if is(option, "LOCKDELAY") {
            let ms = args::number(value(rest.next(), "LOCKDELAY", "ms")?, "LOCKDELAY ms")?;
            options.lock_delay_ms = Some(ms);
        } else {
            return Err(Error::BadRequest(
                Text::new("unknown ACQUIRE option ")
                    .str(&shown(option))
                    .str("; options are WAIT ms, SHARED, STEAL, OWNER label, EPHEMERAL, LOCKDELAY ms")
                    .into(),
            ));
        }
    }
    ctx.permit(Need::Write(name))?;
    if options.steal {
        ctx.permit(Need::Steal)?;
    }
    match ctx.engine.acquire(ctx.now, name, ttl_ms, &options)? {
        Acquired::Granted { token, .. } => ctx.conn.reply().unsigned(token),
        // No reply yet: the connection blocks until the engine grants or times out the wait.
        Acquired::Queued { waiter, .. } => ctx.conn.blocked = Some(waiter),
    }
    Ok(Action::Done)
}

/// `RELEASE name token`.
pub(crate) fn release(ctx: &mut Context<'_>, argv: &[&[u8]]) -> Result<Action, Error> {
    let name = args::name(arg(argv, 1), "lock name")?;
    let token = args::number(arg(argv, 2), "token")?;
    ctx.permit(Need::Write(name))?;
    ctx.engine.release(ctx.now, name, token)?;
    ctx.conn.reply().simple("OK");
    Ok(Action::Done)
}

/// `RENEW name token ttl_ms`.
pub(crate) fn renew(ctx: &mut Context<'_>, argv: &[&[u8]]) -> Result<Action, Error> {
    let name = args::name(arg(argv, 1), "lock name")?;
    let token = args::number(arg(argv, 2), "token")?;
    let ttl_ms = args::number(arg(argv, 3), "ttl_ms")?;
    ctx.permit(Need::Write(name))?;
    let ms_left = ctx.engine.renew(ctx.now, name, token, ttl_ms)?;
    ctx.conn.reply().unsigned(ms_left);
    Ok(Action::Done)
}

/// `VERIFY name token`.
pub(crate) fn verify(ctx: &mut Context<'_>, argv: &[&[u8]]) -> Result<Action, Error> {
    let name = args::name(arg(argv, 1), "lock name")?;
    let token = args::number(arg(argv, 2), "token")?;
    ctx.permit(Need::Read(name))?;
    let ms_left = ctx.engine.verify(ctx.now, name, token)?;
    ctx.conn.reply().unsigned(ms_left);
    Ok(Action::Done)
}

/// `QUERY [prefix [COUNT n] [CURSOR cursor]]`: one map per lock (a flat array in RESP2), in
/// name order. With COUNT or CURSOR the reply is `[next cursor, [locks]]`, the cursor empty
/// once the last page was sent; without them it is the first page alone, as before paging.
/// Either way a reply holds at most `max_query_count` locks and stops growing past
/// `max_query_bytes`, so no QUERY can build a reply near the output limit.
pub(crate) fn query(ctx: &mut Context<'_>, argv: &[&[u8]]) -> Result<Action, Error> {
    let prefix = match argv.get(1) {
        Some(&prefix) => args::name(prefix, "prefix")?,
        None => "",
    };
    let mut count = None;
    let mut cursor = None;
    let mut rest = argv.iter().skip(2);
    while let Some(&option) = rest.next() {
        let Some(&given) = rest.next() else {
            return Err(usage_error(&table::QUERY));
        };
        if is(option, "COUNT") {
            let n = args::number(given, "QUERY COUNT")?;
            if n == 0 {
                return Err(Error::bad("QUERY COUNT must be at least 1"));
            }
            count = Some(n);
        } else if is(option, "CURSOR") {
            cursor = Some(args::name(given, "QUERY CURSOR")?);
        } else {
            return Err(unknown_error("QUERY option", option, &table::QUERY));
        }
    }
    ctx.permit(Need::ReadPrefix(prefix))?;
    let paged = count.is_some() || cursor.is_some();
    let most = ctx.config.max_query_count.max(1);
    let count = count.map_or(most, |n| usize::try_from(n).unwrap_or(usize::MAX).min(most));
    let after = cursor.filter(|cursor| !cursor.is_empty());
    let (locks, mut more) = ctx.engine.query_page(ctx.now, prefix, after, count);
    // Encode lock by lock, so the page stops at the byte budget.
    let mut body = alloc::vec::Vec::new();
    let mut sent: usize = 0;
    {
        let mut encoder = ReplyEncoder::new(&mut body, ctx.conn.version);
        for lock in &locks {
            if sent > 0 && encoder.len() >= ctx.config.max_query_bytes {
                more = true;
                break;
            }
            encode_lock(&mut encoder, lock);
            sent += 1;
        }
    }
    let next = if more {
        locks
            .get(sent.wrapping_sub(1))
            .map_or("", |lock| lock.name.as_str())
    } else {
        ""
    };
    let mut reply = ctx.conn.reply();
    if paged {
        reply.array(2);
        reply.bulk(next.as_bytes());
    }
    reply.array(sent);
    reply.raw(&body);
    Ok(Action::Done)
}

fn encode_lock(reply: &mut ReplyEncoder<'_>, lock: &LockInfo) {
    reply.map(4);
    reply.bulk(b"name");
    reply.bulk(lock.name.as_bytes());
    reply.bulk(b"holders");
    reply.array(lock.holders.len());
    for holder in &lock.holders {
        reply.map(5);
        reply.bulk(b"token");
        reply.unsigned(holder.token);
        reply.bulk(b"mode");
        reply.bulk(holder.mode.as_str().as_bytes());
        reply.bulk(b"owner");
        reply.optional_bulk(holder.owner.as_deref().map(str::as_bytes));
        reply.bulk(b"ms_left");
        reply.unsigned(holder.ms_left);
        reply.bulk(b"client");
        reply.unsigned(holder.client);
    }
    reply.bulk(b"waiters");
    reply.array(lock.waiters.len());
    for waiter in &lock.waiters {
        reply.map(6);
        reply.bulk(b"waiter");
        reply.unsigned(waiter.waiter);
        reply.bulk(b"position");
        reply.unsigned(waiter.position as u64);
        reply.bulk(b"mode");
        reply.bulk(waiter.mode.as_str().as_bytes());
        reply.bulk(b"owner");
        reply.optional_bulk(waiter.owner.as_deref().map(str::as_bytes));
        reply.bulk(b"ms_left");
        reply.unsigned(waiter.ms_left);
        reply.bulk(b"client");
        reply.unsigned(waiter.client);
    }
    reply.bulk(b"delay_ms_left");
    reply.unsigned(lock.delay_ms_left);
}

/// Returns argument `index`; dispatch checked the arity, so a missing one reads as empty and
/// is refused by the typed readers.
fn arg<'a>(argv: &[&'a [u8]], index: usize) -> &'a [u8] {
    argv.get(index).copied().unwrap_or_default()
}

fn value<'a>(next: Option<&&'a [u8]>, option: &str, unit: &str) -> Result<&'a [u8], Error> {
    next.copied().ok_or_else(|| {
        Error::BadRequest(
            Text::new("ACQUIRE option ")
                .str(option)
                .str(" needs a value (")
                .str(unit)
                .str(")")
                .into(),
        )
    })
}
