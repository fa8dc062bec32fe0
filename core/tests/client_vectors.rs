//! Runs the shared client vectors in tests/vectors/client/*.json (format in the README there)
//! against the sans-IO client, three ways: received bytes with the vector's split points, in
//! one piece, and one byte at a time. All three must give the exact outputs, replies and events.
//!
//! `FENCELOCK_BLESS=1 cargo test -p fencelock-core --test client_vectors` rewrites the
//! expectations of every step with what the client produced (review the diff!).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use fencelock_core::client::{
    Client, ClientConfig, Event, LostReason, Output, Reply, RequestId, Value as Resp,
};
use fencelock_core::{AcquireOptions, Error, Instant, LockInfo, Mode};
use serde_json::{json, Map, Value};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Splitting {
    AsWritten,
    Whole,
    ByteByByte,
}

const CHECKED: [&str; 5] = ["outputs", "replies", "events", "result", "timeout"];

#[test]
fn client_vectors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/client");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "too few vectors in {}", dir.display());
    let bless = std::env::var_os("FENCELOCK_BLESS").is_some();
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let mut vector: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if bless {
            let produced = run(&vector, Splitting::AsWritten);
            for (step, got) in vector["steps"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .zip(produced)
            {
                let step = step.as_object_mut().unwrap();
                for key in CHECKED {
                    step.remove(key);
                }
                step.extend(got);
            }
            let mut out = serde_json::to_string_pretty(&vector).unwrap();
            out.push('\n');
            std::fs::write(path, out).unwrap();
        }
        for splitting in [
            Splitting::AsWritten,
            Splitting::Whole,
            Splitting::ByteByByte,
        ] {
            let produced = run(&vector, splitting);
            for (index, (step, got)) in vector["steps"]
                .as_array()
                .unwrap()
                .iter()
                .zip(produced)
                .enumerate()
            {
                for key in CHECKED {
                    let expected = step.get(key).unwrap_or(&Value::Null);
                    let actual = got.get(key).unwrap_or(&Value::Null);
                    if expected != actual {
                        failures.push(format!(
                            "{} ({splitting:?}) step {index} {key}: expected {expected}, got {actual}",
                            path.display()
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Runs a vector; returns, per step, what it produced under the checked keys (empty lists
/// are left out, so a step that expects nothing lists nothing).
fn run(vector: &Value, splitting: Splitting) -> Vec<Map<String, Value>> {
    let mut config = ClientConfig::default();
    if let Some(overrides) = vector.get("config").and_then(Value::as_object) {
        for (key, value) in overrides {
            match key.as_str() {
                "endpoints" => config.endpoints = value.as_u64().unwrap() as usize,
                "resp3" => config.resp3 = value.as_bool().unwrap(),
                "request_timeout_ms" => config.request_timeout_ms = value.as_u64().unwrap(),
                "connect_timeout_ms" => config.connect_timeout_ms = value.as_u64().unwrap(),
                other => panic!("unknown client setting {other}"),
            }
        }
    }
    let mut client = Client::new(config);
    let mut now = Instant::ZERO;
    let mut results = Vec::new();
    for step in vector["steps"].as_array().unwrap() {
        if let Some(at) = step.get("at_ms").and_then(Value::as_u64) {
            now = Instant(at);
        }
        let mut got = Map::new();
        let op = step["op"].as_str().unwrap();
        let name = || step["name"].as_str().unwrap();
        let token = || step["token"].as_u64().unwrap();
        let conn = || step.get("conn").and_then(Value::as_u64).unwrap_or(1);
        let submitted: Option<Result<RequestId, Error>> = match op {
            "acquire" => Some(client.acquire(
                now,
                name(),
                step["ttl_ms"].as_u64().unwrap(),
                &options(step.get("options")),
            )),
            "renew" => Some(client.renew(now, name(), token(), step["ttl_ms"].as_u64().unwrap())),
            "release" => Some(client.release(now, name(), token())),
            "verify" => Some(client.verify(now, name(), token())),
            "query" => Some(Ok(client.query(
                now,
                step.get("prefix").and_then(Value::as_str).unwrap_or(""),
            ))),
            "info" => Some(Ok(
                client.info(now, step.get("section").and_then(Value::as_str))
            )),
            "ping" => Some(Ok(client.ping(now))),
            "command" => {
                let argv: Vec<Vec<u8>> = step["argv"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|arg| bytes(arg.as_str().unwrap()))
                    .collect();
                let argv: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
                Some(client.command(now, &argv))
            }
            "keep_alive" => {
                got.insert("result".into(), json!(client.keep_alive(name(), token())));
                None
            }
            "forget" => {
                client.forget(name(), token());
                None
            }
            "lease" => {
                let status = client.lease(now, name(), token());
                got.insert(
                    "result".into(),
                    status.map_or(Value::Null, |status| {
                        json!({"deadline": status.deadline.as_ms(), "ms_left": status.ms_left,
                               "kept_alive": status.kept_alive})
                    }),
                );
                None
            }
            "cancel" => {
                client.cancel(now, step["id"].as_u64().unwrap());
                None
            }
            "connected" => {
                client.handle_connected(now, conn());
                None
            }
            "receive" => {
                let data = bytes(step["data"].as_str().unwrap());
                for chunk in chunks(&data, step.get("splits"), splitting) {
                    client.receive(now, conn(), chunk);
                }
                None
            }
            "disconnect" => {
                let reason = step
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("reset");
                client.handle_disconnect(now, conn(), reason);
                None
            }
            "timeout" => {
                client.handle_timeout(now);
                None
            }
            "close" => {
                client.close(now);
                None
            }
            other => panic!("unknown op {other}"),
        };
        if let Some(submitted) = submitted {
            got.insert(
                "result".into(),
                match submitted {
                    Ok(id) => json!({ "id": id }),
                    Err(error) => json!({ "error": error.to_string() }),
                },
            );
        }
        let mut outputs = Vec::new();
        while let Some(output) = client.poll_output() {
            outputs.push(match output {
                Output::Connect { conn, endpoint } => json!(["connect", conn, endpoint]),
                Output::Transmit { conn, bytes } => json!(["transmit", conn, text(&bytes)]),
                Output::Close { conn } => json!(["close", conn]),
                other => panic!("unknown output {other:?}"),
            });
        }
        let mut replies = Vec::new();
        while let Some((id, reply)) = client.poll_reply() {
            replies.push(json!([id, reply_json(reply)]));
        }
        let mut events = Vec::new();
        while let Some(event) = client.poll_event() {
            events.push(event_json(event));
        }
        for (key, list) in [
            ("outputs", outputs),
            ("replies", replies),
            ("events", events),
        ] {
            if !list.is_empty() {
                got.insert(key.into(), Value::Array(list));
            }
        }
        if let Some(deadline) = client.poll_timeout() {
            got.insert("timeout".into(), json!(deadline.as_ms()));
        }
        results.push(got);
    }
    results
}

fn options(value: Option<&Value>) -> AcquireOptions {
    let mut options = AcquireOptions::default();
    let Some(value) = value.and_then(Value::as_object) else {
        return options;
    };
    for (key, value) in value {
        match key.as_str() {
            "wait_ms" => options.wait_ms = value.as_u64().unwrap(),
            "shared" => {
                options.mode = if value.as_bool().unwrap() {
                    Mode::Shared
                } else {
                    Mode::Exclusive
                }
            }
            "steal" => options.steal = value.as_bool().unwrap(),
            "owner" => options.owner = value.as_str().map(String::from),
            "ephemeral" => options.ephemeral = value.as_bool().unwrap(),
            "lock_delay_ms" => options.lock_delay_ms = value.as_u64(),
            other => panic!("unknown acquire option {other}"),
        }
    }
    options
}

fn chunks<'a>(data: &'a [u8], splits: Option<&Value>, splitting: Splitting) -> Vec<&'a [u8]> {
    match splitting {
        Splitting::Whole => vec![data],
        Splitting::ByteByByte => data.chunks(1).collect(),
        Splitting::AsWritten => {
            let mut cuts: Vec<usize> = splits
                .and_then(Value::as_array)
                .map(|cuts| {
                    cuts.iter()
                        .map(|cut| cut.as_u64().unwrap() as usize)
                        .collect()
                })
                .unwrap_or_default();
            cuts.push(data.len());
            let mut start = 0;
            cuts.into_iter()
                .map(|end| {
                    let chunk = &data[start..end];
                    start = end;
                    chunk
                })
                .collect()
        }
    }
}

/// JSON strings stand for bytes one character each (Latin-1), as in the protocol vectors.
fn bytes(text: &str) -> Vec<u8> {
    text.chars()
        .map(|ch| u8::try_from(u32::from(ch)).unwrap())
        .collect()
}

fn text(bytes: &[u8]) -> String {
    bytes.iter().map(|&byte| char::from(byte)).collect()
}

fn reply_json(reply: Result<Reply, Error>) -> Value {
    match reply {
        Err(error) => json!({ "error": error.to_string() }),
        Ok(Reply::Granted { token, deadline }) => {
            json!({"granted": {"token": token, "deadline": deadline.as_ms()}})
        }
        Ok(Reply::MsLeft(ms)) => json!({ "ms_left": ms }),
        Ok(Reply::Ok) => json!("ok"),
        Ok(Reply::Locks(locks)) => {
            json!({ "locks": locks.iter().map(lock_json).collect::<Vec<_>>() })
        }
        Ok(Reply::Info(entries)) => json!({
            "info": entries.iter().map(|e| json!([e.section, e.key, e.value])).collect::<Vec<_>>()
        }),
        Ok(Reply::Pong(message)) => json!({ "pong": text(&message) }),
        Ok(Reply::Value(value)) => json!({ "value": value_json(&value) }),
        Ok(other) => panic!("unknown reply {other:?}"),
    }
}

fn lock_json(lock: &LockInfo) -> Value {
    json!({
        "name": lock.name,
        "holders": lock.holders.iter().map(|h| json!({
            "token": h.token, "mode": h.mode.as_str(), "owner": h.owner,
            "ms_left": h.ms_left, "client": h.client,
        })).collect::<Vec<_>>(),
        "waiters": lock.waiters.iter().map(|w| json!({
            "waiter": w.waiter, "position": w.position, "mode": w.mode.as_str(),
            "owner": w.owner, "client": w.client, "ms_left": w.ms_left,
        })).collect::<Vec<_>>(),
        "delay_ms_left": lock.delay_ms_left,
    })
}

fn value_json(value: &Resp) -> Value {
    match value {
        Resp::Simple(text) => json!({ "simple": text }),
        Resp::Error(text) => json!({ "error": text }),
        Resp::Integer(n) => json!({ "integer": n }),
        Resp::Bulk(bytes) => json!({ "bulk": text(bytes) }),
        Resp::Null => Value::Null,
        Resp::Boolean(b) => json!({ "boolean": b }),
        Resp::Double(d) => json!({ "double": d }),
        Resp::BigNumber(digits) => json!({ "big": digits }),
        Resp::Array(items) => json!({ "array": items.iter().map(value_json).collect::<Vec<_>>() }),
        Resp::Map(pairs) => json!({
            "map": pairs.iter().map(|(k, v)| json!([value_json(k), value_json(v)])).collect::<Vec<_>>()
        }),
        Resp::Push(items) => json!({ "push": items.iter().map(value_json).collect::<Vec<_>>() }),
        other => panic!("unknown value {other:?}"),
    }
}

fn event_json(event: Event) -> Value {
    match event {
        Event::LeaseLost {
            name,
            token,
            reason,
        } => json!({"lease_lost": {"name": name, "token": token, "reason": reason_json(&reason)}}),
        Event::Notice {
            kind,
            name,
            token,
            by_token,
        } => json!({"notice": {"kind": kind, "name": name, "token": token, "by_token": by_token}}),
        other => panic!("unknown event {other:?}"),
    }
}

fn reason_json(reason: &LostReason) -> Value {
    match reason {
        LostReason::Refused(error) => json!({ "refused": error.to_string() }),
        LostReason::Lapsed => json!("lapsed"),
        LostReason::Expired => json!("expired"),
        LostReason::Stolen { by_token } => json!({ "stolen": by_token }),
        LostReason::ConnectionClosed => json!("connection_closed"),
        other => panic!("unknown reason {other:?}"),
    }
}
