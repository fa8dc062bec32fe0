//! The Rust runner of the shared engine vectors (format: tests/vectors/README.md).

#![allow(dead_code)]

use fencelock_core::{
    AcquireOptions, Acquired, BootClock, Config, Engine, Error, Event, Horizon, Instant, Mode,
    Snapshot, Start,
};
use serde_json::{json, Map, Value};

/// Runs one scenario; returns a description of the first mismatch.
pub fn run_scenario(text: &str) -> Result<(), String> {
    let scenario: Value = serde_json::from_str(text).map_err(|e| format!("bad JSON: {e}"))?;
    let config = config_from(scenario.get("config"))?;
    // The boot of the system monotonic clock and its reading at the scenario's time 0.
    let boot = match scenario.get("boot") {
        Some(boot) => Some(boot_from(boot)?),
        None => None,
    };
    let start = match scenario.get("start") {
        Some(start) if start["kind"] == "crashed" => Start::Crashed {
            ceiling: start["ceiling"].as_u64().unwrap_or(0),
        },
        _ => Start::Fresh,
    };
    let mut runner = Runner {
        engine: Engine::start(Instant::ZERO, with_boot(&config, &boot, 0)?, start.clone())
            .map_err(|e| format!("start: {e}"))?,
        config,
        persisted: match start {
            Start::Crashed { ceiling } => ceiling,
            _ => 0,
        },
        highest_token: 0,
        at: 0,
        boot,
        horizon: None,
    };
    let steps = scenario["steps"].as_array().ok_or("no steps")?;
    for (index, step) in steps.iter().enumerate() {
        runner
            .step(step)
            .map_err(|e| format!("step {index} ({}): {e}", step))?;
    }
    Ok(())
}

struct Runner {
    engine: Engine,
    config: Config,
    persisted: u64,
    highest_token: u64,
    at: u64,
    /// (boot id, system monotonic ms at time 0) of the running engine, if it has a boot clock.
    boot: Option<(String, i64)>,
    /// The persisted lease horizon file.
    horizon: Option<Vec<u8>>,
}

impl Runner {
    fn step(&mut self, step: &Value) -> Result<(), String> {
        if let Some(at) = step.get("at_ms").and_then(Value::as_u64) {
            self.at = at;
        }
        let now = Instant(self.at);
        let result = self.execute(step, now)?;
        while let Some(ceiling) = self.engine.poll_persist() {
            if ceiling < self.persisted {
                return Err(format!(
                    "persist request went down: {ceiling} < {}",
                    self.persisted
                ));
            }
            self.persisted = ceiling;
        }
        while let Some(horizon) = self.engine.poll_horizon() {
            self.horizon = Some(horizon.encode());
        }
        if let Some(token) = result.get("token").and_then(Value::as_u64) {
            self.see_token(token)?;
        }
        if let Some(deadline) = result.get("deadline_ms").and_then(Value::as_u64) {
            if result.get("token").is_some() {
                self.see_deadline(deadline)?;
            }
        }
        if step["op"] == "renew" {
            if let Some(ms_left) = result.get("ms_left").and_then(Value::as_u64) {
                self.see_deadline(self.at + ms_left)?;
            }
        }
        let mut events = Vec::new();
        while let Some(event) = self.engine.poll_event() {
            if let Event::Granted {
                token, deadline, ..
            } = &event
            {
                self.see_token(*token)?;
                self.see_deadline(deadline.as_ms())?;
            }
            events.push(event_json(&event));
        }
        // Tokens handed out must be covered by a persisted ceiling (I2 across crashes).
        if self.engine.last_token() > self.persisted {
            return Err(format!(
                "token {} revealed above persisted ceiling {}",
                self.engine.last_token(),
                self.persisted
            ));
        }
        self.engine.check_invariants()?;
        if let Some(expected) = step.get("expect") {
            matches(expected, &result, "expect")?;
        }
        if let Some(expected) = step.get("events") {
            matches(expected, &Value::Array(events), "events")?;
        }
        Ok(())
    }

    /// A deadline revealed by an engine with a boot clock must be under the persisted horizon.
    fn see_deadline(&self, deadline: u64) -> Result<(), String> {
        let Some((_, base)) = &self.boot else {
            return Ok(());
        };
        let horizon = self.persisted_horizon()?;
        let at = horizon.as_ref().map_or(0, |horizon| horizon.monotonic_ms);
        if base + deadline as i64 > at as i64 {
            return Err(format!(
                "deadline {deadline} revealed past the persisted horizon {at} (time 0 at {base})"
            ));
        }
        Ok(())
    }

    fn persisted_horizon(&self) -> Result<Option<Horizon>, String> {
        self.horizon
            .as_deref()
            .map(|bytes| Horizon::decode(bytes).map_err(|e| e.to_string()))
            .transpose()
    }

    fn see_token(&mut self, token: u64) -> Result<(), String> {
        if token <= self.highest_token {
            return Err(format!(
                "I2: token {token} not above earlier {}",
                self.highest_token
            ));
        }
        self.highest_token = token;
        Ok(())
    }

    fn execute(&mut self, step: &Value, now: Instant) -> Result<Value, String> {
        let op = step["op"].as_str().ok_or("step without op")?;
        let name = step["name"].as_str().unwrap_or("");
        let token = step["token"].as_u64().unwrap_or(0);
        let ttl = step["ttl_ms"].as_u64().unwrap_or(0);
        Ok(match op {
            "acquire" => {
                let mut options = AcquireOptions::default();
                options.mode = if step["mode"] == "shared" {
                    Mode::Shared
                } else {
                    Mode::Exclusive
                };
                options.wait_ms = step["wait_ms"].as_u64().unwrap_or(0);
                options.owner = step["owner"].as_str().map(String::from);
                options.steal = step["steal"].as_bool().unwrap_or(false);
                options.client = step["client"].as_u64().unwrap_or(0);
                options.ephemeral = step["ephemeral"].as_bool().unwrap_or(false);
                options.lock_delay_ms = step["lock_delay_ms"].as_u64();
                match self.engine.acquire(now, name, ttl, &options) {
                    Ok(Acquired::Granted { token, deadline }) => {
                        json!({"token": token, "deadline_ms": deadline.as_ms()})
                    }
                    Ok(Acquired::Queued { waiter, deadline }) => {
                        json!({"queued": waiter, "deadline_ms": deadline.as_ms()})
                    }
                    Ok(other) => json!({"unknown": format!("{other:?}")}),
                    Err(e) => error_json(&e),
                }
            }
            "renew" => ms_left(self.engine.renew(now, name, token, ttl)),
            "verify" => ms_left(self.engine.verify(now, name, token)),
            "release" => match self.engine.release(now, name, token) {
                Ok(()) => json!({"ok": true}),
                Err(e) => error_json(&e),
            },
            "cancel" => {
                json!({"ok": self.engine.cancel_wait(now, step["waiter"].as_u64().unwrap_or(0))})
            }
            "disconnect" => {
                self.engine
                    .disconnect(now, step["client"].as_u64().unwrap_or(0));
                json!({})
            }
            "tick" => {
                self.engine.handle_timeout(now);
                json!({})
            }
            "next_timeout" => json!({"at_ms": self.engine.poll_timeout().map(Instant::as_ms)}),
            "query" => {
                let locks = self
                    .engine
                    .query(now, step["prefix"].as_str().unwrap_or(""));
                let locks: Vec<Value> = locks
                    .iter()
                    .map(|lock| {
                        json!({
                            "name": lock.name,
                            "delay_ms_left": lock.delay_ms_left,
                            "holders": lock.holders.iter().map(|h| json!({
                                "token": h.token, "mode": h.mode.as_str(), "owner": h.owner,
                                "ms_left": h.ms_left, "client": h.client,
                            })).collect::<Vec<_>>(),
                            "waiters": lock.waiters.iter().map(|w| json!({
                                "waiter": w.waiter, "position": w.position, "mode": w.mode.as_str(),
                                "owner": w.owner, "client": w.client, "ms_left": w.ms_left,
                            })).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                json!({ "locks": locks })
            }
            "stats" => Value::Object(
                self.engine
                    .stats()
                    .counters()
                    .map(|(name, value)| (name.to_owned(), json!(value)))
                    .collect(),
            ),
            "counts" => json!({
                "locks": self.engine.live_locks(), "leases": self.engine.live_leases(),
                "waiting": self.engine.waiting(),
            }),
            "ceiling" => json!({"ceiling": self.persisted}),
            "grace" => json!({
                "ms_left": self.engine.grace_left(now),
                "case": self.engine.grace_case().as_str(),
            }),
            "horizon" => match self.persisted_horizon()? {
                Some(horizon) => json!({
                    "monotonic_ms": horizon.monotonic_ms, "boot_id": horizon.boot_id,
                    "ceiling": horizon.ceiling,
                }),
                None => json!({"monotonic_ms": null, "boot_id": null, "ceiling": null}),
            },
            "restart" => {
                if step.get("no_boot").and_then(Value::as_bool) == Some(true) {
                    self.boot = None;
                } else if let Some(boot) = step.get("boot") {
                    // The system clock reads `monotonic_ms` now, at this step's time.
                    let (id, reading) = boot_from(boot)?;
                    self.boot = Some((id, reading - now.as_ms() as i64));
                }
                let config = with_boot(&self.config, &self.boot, now.as_ms())?;
                let start = match step["kind"].as_str() {
                    Some("crash") => {
                        // The new process has a new monotonic clock; the vector keeps its own
                        // timeline, and the system clock ran on.
                        let horizon = self.persisted_horizon()?;
                        self.engine = Engine::after_crash_within(
                            now,
                            config,
                            self.persisted,
                            horizon.as_ref(),
                        );
                        return Ok(json!({}));
                    }
                    Some("clean") => {
                        let bytes = self.engine.snapshot(now).encode();
                        let snapshot = Snapshot::decode(&bytes).map_err(|e| e.to_string())?;
                        Start::Clean {
                            ceiling: self.persisted,
                            snapshot,
                        }
                    }
                    other => return Err(format!("unknown restart kind {other:?}")),
                };
                // The new process has a new monotonic clock; the vector keeps its own timeline.
                self.engine =
                    Engine::start(now, config, start).map_err(|e| format!("restart: {e}"))?;
                json!({})
            }
            other => return Err(format!("unknown op {other}")),
        })
    }
}

fn ms_left(result: Result<u64, Error>) -> Value {
    match result {
        Ok(ms) => json!({"ms_left": ms}),
        Err(e) => error_json(&e),
    }
}

fn error_json(error: &Error) -> Value {
    json!({"error": error.code().as_str(), "message": error.to_string()})
}

fn event_json(event: &Event) -> Value {
    match event {
        Event::Granted {
            name,
            token,
            waiter,
            client,
            deadline,
        } => json!({
            "type": "granted", "name": name, "token": token, "waiter": waiter,
            "client": client, "deadline_ms": deadline.as_ms(),
        }),
        Event::WaitTimedOut {
            name,
            waiter,
            client,
            waited_ms,
        } => json!({
            "type": "wait_timed_out", "name": name, "waiter": waiter, "client": client,
            "waited_ms": waited_ms,
        }),
        Event::Expired {
            name,
            token,
            owner,
            client,
        } => json!({
            "type": "expired", "name": name, "token": token, "owner": owner, "client": client,
        }),
        Event::Stolen {
            name,
            token,
            owner,
            client,
            by_token,
        } => json!({
            "type": "stolen", "name": name, "token": token, "owner": owner, "client": client,
            "by_token": by_token,
        }),
        other => json!({"type": "unknown", "debug": format!("{other:?}")}),
    }
}

/// Reads `{"id", "monotonic_ms"}`.
fn boot_from(value: &Value) -> Result<(String, i64), String> {
    let id = value["id"].as_str().ok_or("boot without id")?;
    let reading = value["monotonic_ms"]
        .as_i64()
        .ok_or("boot without monotonic_ms")?;
    Ok((id.to_owned(), reading))
}

/// Returns `config` with the boot clock of `boot` for an engine started at `now`.
fn with_boot(config: &Config, boot: &Option<(String, i64)>, now: u64) -> Result<Config, String> {
    let mut config = config.clone();
    if let Some((id, base)) = boot {
        let reading = u64::try_from(base + now as i64).map_err(|_| "clock before boot")?;
        config.boot_clock =
            Some(BootClock::at(id, Instant(now), reading).map_err(|e| e.to_string())?);
    }
    Ok(config)
}

fn config_from(value: Option<&Value>) -> Result<Config, String> {
    let mut config = Config::default();
    let Some(Value::Object(fields)) = value else {
        return Ok(config);
    };
    for (key, value) in fields {
        let n = value
            .as_u64()
            .ok_or_else(|| format!("config {key} is not a number"))?;
        config.set(key, n).map_err(|e| e.to_string())?;
    }
    Ok(config)
}

/// Partial match: objects compare only expected keys, arrays compare length and elements.
pub fn matches(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, value) in want {
                let got = have.get(key).unwrap_or(&Value::Null);
                if !have.contains_key(key) {
                    return Err(format!("{path}.{key}: missing in {actual}"));
                }
                matches(value, got, &format!("{path}.{key}"))?;
            }
            Ok(())
        }
        (Value::Array(want), Value::Array(have)) => {
            if want.len() != have.len() {
                return Err(format!(
                    "{path}: expected {} items {expected}, got {actual}",
                    want.len()
                ));
            }
            for (i, (w, h)) in want.iter().zip(have).enumerate() {
                matches(w, h, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (want, have) if want == have => Ok(()),
        _ => Err(format!("{path}: expected {expected}, got {actual}")),
    }
}

pub fn empty() -> Map<String, Value> {
    Map::new()
}
