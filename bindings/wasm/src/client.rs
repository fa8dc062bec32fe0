//! The core's sans-IO client: `web/src/client.js` is the I/O loop around it, over
//! `MessagePort`s to the worker.

use alloc::vec::Vec;

use fencelock_core::client::{
    Client, ClientConfig, Event, LostReason, Output, Reply, RequestId, Value,
};
use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

use crate::convert::{instant, number, type_error, whole};
use crate::engine::{acquire_options, lock_record};
use crate::errors::{record, unknown, OrThrow};
use crate::record::{bool_field, opt_text, text, whole_field, Record};

/// One client: connections, requests in flight, tracked leases.
#[wasm_bindgen]
#[derive(Debug)]
pub struct WasmClient {
    client: Client,
}

#[wasm_bindgen]
impl WasmClient {
    /// Creates a client from `{ endpoints, resp3, requestTimeoutMs, connectTimeoutMs }` (all
    /// optional; the core's defaults otherwise).
    #[wasm_bindgen(constructor)]
    pub fn new(settings: JsValue) -> Result<WasmClient, JsValue> {
        let mut config = ClientConfig::default();
        if let Some(endpoints) = whole_field(&settings, "endpoints")? {
            if endpoints == 0 {
                return Err(type_error("a client needs at least one endpoint"));
            }
            config.endpoints = usize::try_from(endpoints).unwrap_or(usize::MAX);
        }
        if let Some(resp3) = bool_field(&settings, "resp3")? {
            config.resp3 = resp3;
        }
        if let Some(ms) = whole_field(&settings, "requestTimeoutMs")? {
            config.request_timeout_ms = ms;
        }
        if let Some(ms) = whole_field(&settings, "connectTimeoutMs")? {
            config.connect_timeout_ms = ms;
        }
        Ok(WasmClient {
            client: Client::new(config),
        })
    }

    /// Queues an ACQUIRE and returns its request id; `options` as for the engine, without
    /// `client` (the connection is the client on the server's side).
    pub fn acquire(
        &mut self,
        now_ms: f64,
        name_arg: JsValue,
        ttl_ms: f64,
        options: JsValue,
    ) -> Result<f64, JsValue> {
        let name = &text("name", &name_arg)?;
        let now = instant(now_ms)?;
        let ttl = whole("ttlMs", ttl_ms)?;
        let options = acquire_options(&options, false)?;
        self.client
            .acquire(now, name, ttl, &options)
            .map(number)
            .or_throw()
    }

    /// Queues a RENEW.
    pub fn renew(
        &mut self,
        now_ms: f64,
        name_arg: JsValue,
        token: f64,
        ttl_ms: f64,
    ) -> Result<f64, JsValue> {
        let name = &text("name", &name_arg)?;
        let now = instant(now_ms)?;
        let token = whole("token", token)?;
        let ttl = whole("ttlMs", ttl_ms)?;
        self.client
            .renew(now, name, token, ttl)
            .map(number)
            .or_throw()
    }

    /// Queues a RELEASE.
    pub fn release(&mut self, now_ms: f64, name_arg: JsValue, token: f64) -> Result<f64, JsValue> {
        let name = &text("name", &name_arg)?;
        let now = instant(now_ms)?;
        let token = whole("token", token)?;
        self.client.release(now, name, token).map(number).or_throw()
    }

    /// Queues a VERIFY.
    pub fn verify(&mut self, now_ms: f64, name_arg: JsValue, token: f64) -> Result<f64, JsValue> {
        let name = &text("name", &name_arg)?;
        let now = instant(now_ms)?;
        let token = whole("token", token)?;
        self.client.verify(now, name, token).map(number).or_throw()
    }

    /// Queues a QUERY.
    pub fn query(&mut self, now_ms: f64, prefix_arg: JsValue) -> Result<f64, JsValue> {
        let prefix = opt_text("prefix", &prefix_arg)?;
        let now = instant(now_ms)?;
        Ok(number(
            self.client.query(now, prefix.as_deref().unwrap_or("")),
        ))
    }

    #[cfg(feature = "vectors")]
    /// Queues an INFO.
    pub fn info(&mut self, now_ms: f64, section_arg: JsValue) -> Result<f64, JsValue> {
        let section = opt_text("section", &section_arg)?;
        let now = instant(now_ms)?;
        Ok(number(self.client.info(now, section.as_deref())))
    }

    #[cfg(feature = "vectors")]
    /// Queues a PING.
    pub fn ping(&mut self, now_ms: f64) -> Result<f64, JsValue> {
        Ok(number(self.client.ping(instant(now_ms)?)))
    }

    #[cfg(feature = "vectors")]
    /// Queues any command (name first, each a `Uint8Array`); its reply comes back raw.
    pub fn command(&mut self, now_ms: f64, argv: Array) -> Result<f64, JsValue> {
        let now = instant(now_ms)?;
        let mut args = Vec::new();
        for arg in argv.iter() {
            let bytes = arg
                .dyn_into::<Uint8Array>()
                .map_err(|_| type_error("command takes an array of Uint8Array"))?;
            args.push(bytes.to_vec());
        }
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        self.client.command(now, &args).map(number).or_throw()
    }

    /// Gives up on a request (a waiting acquire's connection is closed).
    pub fn cancel(&mut self, now_ms: f64, request: f64) -> Result<(), JsValue> {
        let now = instant(now_ms)?;
        self.client.cancel(now, request_id(request)?);
        Ok(())
    }

    /// Keeps a tracked lease alive; false if it is not tracked.
    #[wasm_bindgen(js_name = keepAlive)]
    pub fn keep_alive(&mut self, name_arg: JsValue, token: f64) -> Result<bool, JsValue> {
        let name = &text("name", &name_arg)?;
        Ok(self.client.keep_alive(name, whole("token", token)?))
    }

    #[cfg(feature = "vectors")]
    /// Stops tracking a lease.
    pub fn forget(&mut self, name_arg: JsValue, token: f64) -> Result<(), JsValue> {
        let name = &text("name", &name_arg)?;
        self.client.forget(name, whole("token", token)?);
        Ok(())
    }

    /// Returns a tracked lease's status `{ deadlineMs, msLeft, keptAlive }`, or null.
    pub fn lease(&self, now_ms: f64, name_arg: JsValue, token: f64) -> Result<JsValue, JsValue> {
        let name = &text("name", &name_arg)?;
        let now = instant(now_ms)?;
        Ok(match self.client.lease(now, name, whole("token", token)?) {
            Some(status) => Record::new()
                .set("deadlineMs", number(status.deadline.as_ms()))
                .set("msLeft", number(status.ms_left))
                .set("keptAlive", status.kept_alive)
                .into(),
            None => JsValue::NULL,
        })
    }

    /// Reports that a connection is open.
    #[wasm_bindgen(js_name = handleConnected)]
    pub fn handle_connected(&mut self, now_ms: f64, conn: f64) -> Result<(), JsValue> {
        let now = instant(now_ms)?;
        self.client.handle_connected(now, whole("conn", conn)?);
        Ok(())
    }

    /// Feeds bytes received on a connection.
    pub fn receive(&mut self, now_ms: f64, conn: f64, data: &[u8]) -> Result<(), JsValue> {
        let now = instant(now_ms)?;
        self.client.receive(now, whole("conn", conn)?, data);
        Ok(())
    }

    /// Reports that a connection failed or closed.
    #[wasm_bindgen(js_name = handleDisconnect)]
    pub fn handle_disconnect(
        &mut self,
        now_ms: f64,
        conn: f64,
        reason_arg: JsValue,
    ) -> Result<(), JsValue> {
        let reason = &text("reason", &reason_arg)?;
        let now = instant(now_ms)?;
        self.client
            .handle_disconnect(now, whole("conn", conn)?, reason);
        Ok(())
    }

    /// Does what is due.
    #[wasm_bindgen(js_name = handleTimeout)]
    pub fn handle_timeout(&mut self, now_ms: f64) -> Result<(), JsValue> {
        self.client.handle_timeout(instant(now_ms)?);
        Ok(())
    }

    /// Closes every connection.
    pub fn close(&mut self, now_ms: f64) -> Result<(), JsValue> {
        self.client.close(instant(now_ms)?);
        Ok(())
    }

    /// Returns when `handleTimeout` is next due, in ms, or undefined.
    #[wasm_bindgen(js_name = pollTimeout)]
    pub fn poll_timeout(&self) -> Option<f64> {
        self.client.poll_timeout().map(|at| number(at.as_ms()))
    }

    /// Returns `{ outputs, events, replies, timeoutMs }`: everything pending, in the order to
    /// handle it (outputs, then events, then replies, then re-arm the timer).
    pub fn drain(&mut self) -> Result<JsValue, JsValue> {
        let outputs = Array::new();
        while let Some(output) = self.client.poll_output() {
            outputs.push(&output_record(output)?);
        }
        let replies = Array::new();
        while let Some((id, reply)) = self.client.poll_reply() {
            replies.push(&reply_record(id, reply)?);
        }
        let events = Array::new();
        while let Some(event) = self.client.poll_event() {
            events.push(&event_record(event)?);
        }
        Ok(Record::new()
            .set("outputs", outputs)
            .set("replies", replies)
            .set("events", events)
            .maybe("timeoutMs", self.poll_timeout())
            .into())
    }

    #[cfg(feature = "vectors")]
    /// Returns the connection a pending request was sent on, or undefined.
    #[wasm_bindgen(js_name = requestConn)]
    pub fn request_conn(&self, request: f64) -> Result<Option<f64>, JsValue> {
        Ok(self.client.request_conn(request_id(request)?).map(number))
    }

    #[cfg(feature = "vectors")]
    /// Returns how many requests await their reply.
    pub fn pending(&self) -> f64 {
        number(self.client.pending() as u64)
    }

    #[cfg(feature = "vectors")]
    /// Returns how many connections are open or opening.
    pub fn connections(&self) -> f64 {
        number(self.client.connections() as u64)
    }
}

fn request_id(request: f64) -> Result<RequestId, JsValue> {
    whole("request", request)
}

fn output_record(output: Output) -> Result<JsValue, JsValue> {
    Ok(match output {
        Output::Connect { conn, endpoint } => Record::new()
            .set("kind", "connect")
            .set("conn", number(conn))
            .set("endpoint", number(endpoint as u64)),
        Output::Transmit { conn, bytes } => Record::new()
            .set("kind", "transmit")
            .set("conn", number(conn))
            .set("data", Uint8Array::from(bytes.as_slice())),
        Output::Close { conn } => Record::new().set("kind", "close").set("conn", number(conn)),
        _ => return Err(unknown("client output")),
    }
    .into())
}

fn reply_record(
    id: RequestId,
    reply: Result<Reply, fencelock_core::Error>,
) -> Result<JsValue, JsValue> {
    let out = Record::new().set("id", number(id));
    Ok(match reply {
        Err(error) => out.set("error", record(&error)),
        Ok(Reply::Granted { token, deadline }) => out.set(
            "granted",
            Record::new()
                .set("token", number(token))
                .set("deadlineMs", number(deadline.as_ms())),
        ),
        Ok(Reply::MsLeft(ms)) => out.set("msLeft", number(ms)),
        Ok(Reply::Ok) => out.set("ok", true),
        Ok(Reply::Locks(locks)) => {
            let locks: Array = locks.into_iter().map(lock_record).collect();
            out.set("locks", locks)
        }
        Ok(Reply::Info(entries)) => {
            let entries: Array = entries
                .into_iter()
                .map(|entry| -> JsValue {
                    Record::new()
                        .set("section", entry.section)
                        .set("key", entry.key)
                        .set("value", entry.value)
                        .into()
                })
                .collect();
            out.set("info", entries)
        }
        Ok(Reply::Pong(message)) => out.set("pong", Uint8Array::from(message.as_slice())),
        Ok(Reply::Value(value)) => out.set("value", raw_value(value)?),
        Ok(_) => return Err(unknown("reply")),
    }
    .into())
}

fn raw_value(value: Value) -> Result<JsValue, JsValue> {
    let list = |items: Vec<Value>| -> Result<Array, JsValue> {
        let array = Array::new();
        for item in items {
            array.push(&raw_value(item)?);
        }
        Ok(array)
    };
    let out = Record::new();
    Ok(match value {
        Value::Simple(text) => out.set("simple", text),
        // The core reads the wire text back into its error (code and fields).
        Value::Error(text) => out.set("error", record(&fencelock_core::Error::from_wire(&text))),
        // Every integer fencelock sends (tokens, ms) is below 2^53, where numbers are exact.
        #[allow(clippy::cast_precision_loss)]
        Value::Integer(integer) => out.set("integer", integer as f64),
        Value::Bulk(bytes) => out.set("bulk", Uint8Array::from(bytes.as_slice())),
        Value::Null => out.set("null", true),
        Value::Boolean(flag) => out.set("boolean", flag),
        Value::Double(double) => out.set("double", double),
        Value::BigNumber(digits) => out.set("big", digits),
        Value::Array(items) => out.set("array", list(items)?),
        Value::Push(items) => out.set("push", list(items)?),
        Value::Map(pairs) => {
            let array = Array::new();
            for (key, value) in pairs {
                array.push(&Array::of2(&raw_value(key)?, &raw_value(value)?));
            }
            out.set("map", array)
        }
        _ => return Err(unknown("RESP value")),
    }
    .into())
}

fn event_record(event: Event) -> Result<JsValue, JsValue> {
    Ok(match event {
        Event::LeaseLost {
            name,
            token,
            reason,
        } => {
            let (word, by_token, refusal) = match &reason {
                LostReason::Refused(error) => ("refused", None, Some(record(error))),
                LostReason::Lapsed => ("lapsed", None, None),
                LostReason::Expired => ("expired", None, None),
                LostReason::Stolen { by_token } => ("stolen", Some(number(*by_token)), None),
                LostReason::ConnectionClosed => ("connection_closed", None, None),
                _ => ("other", None, None),
            };
            Record::new()
                .set("kind", "lease_lost")
                .set("name", name)
                .set("token", number(token))
                .set("reason", word)
                .set("description", reason.describe())
                .maybe("byToken", by_token)
                .maybe("refusal", refusal)
        }
        Event::Notice {
            kind,
            name,
            token,
            by_token,
        } => Record::new()
            .set("kind", "notice")
            .set("name", name)
            .set("token", number(token))
            .maybe("byToken", by_token.map(number))
            .set("notice", kind),
        _ => return Err(unknown("client event")),
    }
    .into())
}
