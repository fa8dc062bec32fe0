//! Runs the shared protocol vectors in tests/vectors/protocol/*.json (format in the README
//! there) against the sans-IO server, three ways: with the vector's split points, in one piece,
//! and one byte at a time. All three must give the exact bytes out.
//!
//! `FENCELOCK_BLESS=1 cargo test -p fencelock-core --test protocol_vectors` rewrites the
//! expected output of every step with what the server produced (review the diff!).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fencelock_core::protocol::{Output, Server, ServerConfig, Users};
use fencelock_core::{durable, Config, DataFile, Engine, FileAction, Instant};
use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Splitting {
    AsWritten,
    Whole,
    ByteByByte,
}

#[test]
fn protocol_vectors() {
    let dir = vectors_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no vectors in {}", dir.display());
    let bless = std::env::var_os("FENCELOCK_BLESS").is_some();
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let mut vector: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if bless {
            let produced = run(&vector, Splitting::AsWritten);
            bless_vector(&mut vector, &produced);
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
            if let Err(message) = compare(&vector, &produced) {
                failures.push(format!("{} ({splitting:?}): {message}", path.display()));
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

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/protocol")
}

/// What one step produced: bytes per connection, closed connections, persisted ceilings.
#[derive(Debug, Default, PartialEq)]
struct StepOutput {
    out: BTreeMap<u64, Vec<u8>>,
    closed: Vec<u64>,
    persisted: Vec<u64>,
    audit: Vec<Value>,
}

fn run(vector: &Value, splitting: Splitting) -> Vec<StepOutput> {
    let mut server = Server::new(Engine::new(engine_config(vector)), server_config(vector));
    if let Some(users) = vector.get("users") {
        // The users file is the JSON value itself, as bytes, parsed by the core.
        let bytes = serde_json::to_vec(users).unwrap();
        server.set_users(Some(Users::parse(&bytes).expect("the vector's users file")));
    }
    let mut now = Instant(0);
    let mut results = Vec::new();
    for step in vector["steps"].as_array().expect("steps") {
        if let Some(at) = step.get("at_ms").and_then(Value::as_u64) {
            now = Instant(at);
        }
        let conn = step.get("conn").and_then(Value::as_u64).unwrap_or(1);
        match step["op"].as_str().expect("op") {
            "connect" => {
                let id = server.connect(now);
                assert_eq!(id, conn, "connections are numbered from 1 in connect order");
            }
            "send" => {
                let data = bytes_of(&step["data"]);
                for chunk in chunks(&data, step, splitting) {
                    server.receive(now, conn, chunk);
                }
            }
            "execute" => {
                let argv: Vec<Vec<u8>> = step["argv"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(bytes_of)
                    .collect();
                let argv: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
                server.execute(now, conn, &argv);
            }
            "disconnect" => server.disconnect(now, conn),
            "timeout" => server.handle_timeout(now),
            other => panic!("unknown op {other}"),
        }
        let mut produced = StepOutput::default();
        let mut transmitted = false;
        while let Some(output) = server.poll_output() {
            match output {
                Output::File(FileAction::Write {
                    file: DataFile::Ceiling,
                    bytes,
                }) => {
                    // The ceiling must be durable before any reply that could carry its tokens.
                    assert!(
                        !transmitted,
                        "ceiling write after a Transmit in the same step"
                    );
                    produced
                        .persisted
                        .push(durable::decode_ceiling(&bytes).unwrap());
                }
                Output::File(other) => panic!("unexpected file output {other:?}"),
                Output::Transmit { conn, bytes } => {
                    transmitted = true;
                    produced.out.entry(conn).or_default().extend(bytes);
                }
                Output::Close { conn } => produced.closed.push(conn),
                other => panic!("an output this runner does not know: {other:?}"),
            }
        }
        while let Some(event) = server.poll_audit() {
            produced
                .audit
                .push(serde_json::from_str(&event.to_json()).unwrap());
        }
        results.push(produced);
    }
    results
}

fn chunks<'a>(data: &'a [u8], step: &Value, splitting: Splitting) -> Vec<&'a [u8]> {
    match splitting {
        Splitting::Whole => vec![data],
        Splitting::ByteByByte => data.chunks(1).collect(),
        Splitting::AsWritten => {
            let mut points: Vec<usize> = step
                .get("splits")
                .and_then(Value::as_array)
                .map(|points| {
                    points
                        .iter()
                        .map(|p| p.as_u64().unwrap() as usize)
                        .collect()
                })
                .unwrap_or_default();
            points.retain(|&p| p > 0 && p < data.len());
            points.sort_unstable();
            points.dedup();
            let mut pieces = Vec::new();
            let mut start = 0;
            for point in points.into_iter().chain([data.len()]) {
                pieces.push(&data[start..point]);
                start = point;
            }
            pieces
        }
    }
}

fn compare(vector: &Value, produced: &[StepOutput]) -> Result<(), String> {
    for (index, (step, got)) in vector["steps"]
        .as_array()
        .unwrap()
        .iter()
        .zip(produced)
        .enumerate()
    {
        let expected_out: BTreeMap<u64, Vec<u8>> = step
            .get("out")
            .and_then(Value::as_object)
            .map(|out| {
                out.iter()
                    .map(|(conn, bytes)| (conn.parse().unwrap(), bytes_of(bytes)))
                    .collect()
            })
            .unwrap_or_default();
        if expected_out != got.out {
            return Err(format!(
                "step {index}: output differs\n  expected {}\n  got      {}",
                show(&expected_out),
                show(&got.out)
            ));
        }
        let expected_closed: Vec<u64> = step
            .get("closed")
            .and_then(Value::as_array)
            .map(|closed| closed.iter().map(|c| c.as_u64().unwrap()).collect())
            .unwrap_or_default();
        if expected_closed != got.closed {
            return Err(format!(
                "step {index}: closed {:?}, expected {expected_closed:?}",
                got.closed
            ));
        }
        if let Some(audit) = step.get("audit").and_then(Value::as_array) {
            if *audit != got.audit {
                return Err(format!(
                    "step {index}: audit events {:?}, expected {audit:?}",
                    got.audit
                ));
            }
        }
        if let Some(persist) = step.get("persist").and_then(Value::as_array) {
            let expected: Vec<u64> = persist.iter().map(|c| c.as_u64().unwrap()).collect();
            if expected != got.persisted {
                return Err(format!(
                    "step {index}: persisted {:?}, expected {expected:?}",
                    got.persisted
                ));
            }
        }
    }
    Ok(())
}

fn bless_vector(vector: &mut Value, produced: &[StepOutput]) {
    for (step, got) in vector["steps"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip(produced)
    {
        let step = step.as_object_mut().unwrap();
        step.remove("out");
        step.remove("closed");
        if !got.out.is_empty() {
            let out: Map<String, Value> = got
                .out
                .iter()
                .map(|(conn, bytes)| (conn.to_string(), Value::String(latin1(bytes))))
                .collect();
            step.insert("out".into(), Value::Object(out));
        }
        if !got.closed.is_empty() {
            step.insert(
                "closed".into(),
                got.closed.iter().copied().map(Value::from).collect(),
            );
        }
        if step.contains_key("audit") || !got.audit.is_empty() {
            step.insert("audit".into(), Value::Array(got.audit.clone()));
        }
        if step.contains_key("persist") {
            step.insert(
                "persist".into(),
                got.persisted.iter().copied().map(Value::from).collect(),
            );
        }
    }
}

/// Applies a vector's `engine` settings by name, through the table every host uses.
fn engine_config(vector: &Value) -> Config {
    let mut config = Config::default();
    for (key, value) in settings(vector, "engine") {
        config.set(&key, value).unwrap();
    }
    config
}

/// Applies a vector's `server` settings by name, through the table every host uses.
fn server_config(vector: &Value) -> ServerConfig {
    let mut config = ServerConfig::default();
    for (key, value) in settings(vector, "server") {
        config.set(&key, value).unwrap();
    }
    config
}

/// Reads the settings object `field` of a vector; a switch may be written as a JSON bool.
fn settings(vector: &Value, field: &str) -> Vec<(String, u64)> {
    let Some(overrides) = vector.get(field).and_then(Value::as_object) else {
        return Vec::new();
    };
    overrides
        .iter()
        .map(|(key, value)| {
            let number = value
                .as_bool()
                .map(u64::from)
                .or_else(|| value.as_u64())
                .unwrap_or_else(|| panic!("setting {key} is not a number or a bool"));
            (key.clone(), number)
        })
        .collect()
}

/// Bytes are JSON strings whose characters are U+0000..U+00FF, one per byte (Latin-1).
fn bytes_of(value: &Value) -> Vec<u8> {
    value
        .as_str()
        .expect("bytes are strings")
        .chars()
        .map(|ch| u8::try_from(u32::from(ch)).expect("characters above U+00FF are not bytes"))
        .collect()
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn show(out: &BTreeMap<u64, Vec<u8>>) -> String {
    let parts: Vec<String> = out
        .iter()
        .map(|(conn, bytes)| format!("{conn}: {:?}", latin1(bytes)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}
