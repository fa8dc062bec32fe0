//! The core's sans-IO client: `node/lib/client.js` is the I/O loop around it.

use fencelock_core::client::{
    Client, ClientConfig, Event, LostReason, Output, Reply, RequestId, Value,
};
use fencelock_core::Instant;
use napi::bindgen_prelude::Buffer;
use napi::{Env, Status};
use napi_derive::napi;

use crate::convert::{number, whole};
use crate::engine::{acquire_options, lock_record, AcquireOpts, LockRecord};
use crate::errors::{record, ErrorRecord, OrThrow};

/// Settings of a client (all optional; the core's defaults otherwise).
#[napi(object)]
#[derive(Debug, Default)]
pub struct ClientSettings {
    /// How many endpoints the host can connect to (a `connect` output names one by index).
    pub endpoints: Option<u32>,
    /// The `host:port` of each endpoint, in index order, so that a cluster follower's
    /// `-MOVED host:port` can name one (a `MOVED` elsewhere moves to the next endpoint).
    pub addresses: Option<Vec<String>>,
    /// Ask for RESP3 so the server can push lost-lease notices.
    pub resp3: Option<bool>,
    /// Longest a request may wait for its reply, in ms (a waiting acquire adds its wait).
    pub request_timeout_ms: Option<f64>,
    /// Longest a connect may take, in ms.
    pub connect_timeout_ms: Option<f64>,
    /// User to authenticate every connection as (`default` when only a password is given).
    pub username: Option<String>,
    /// Password to authenticate with (`HELLO 3 AUTH` or `AUTH`).
    pub password: Option<String>,
}

/// Something the host must do, in order: `connect` (open a transport for `conn` to endpoint
/// number `endpoint`, then report back), `transmit` (write `data`), `close`.
#[napi(object)]
// napi's Buffer has no Debug.
#[allow(missing_debug_implementations)]
pub struct ClientOutput {
    /// `connect`, `transmit` or `close`.
    pub kind: String,
    /// The connection.
    pub conn: f64,
    /// `connect`: the endpoint's index.
    pub endpoint: Option<f64>,
    /// `transmit`: the bytes.
    pub data: Option<Buffer>,
}

/// A granted acquire: the token and the lease's conservative local deadline.
#[napi(object)]
#[derive(Debug)]
pub struct GrantedRecord {
    /// The fencing token.
    pub token: f64,
    /// The local deadline, on the host's clock.
    pub deadline_ms: f64,
}

/// One `key:value` line of an INFO reply.
#[napi(object)]
#[derive(Debug)]
pub struct InfoRecord {
    /// The section, lowercase.
    pub section: String,
    /// The key.
    pub key: String,
    /// The value as sent.
    pub value: String,
}

/// A raw RESP value, tagged by its type: exactly one field is set (none for null).
#[napi(object)]
// napi's Buffer has no Debug.
#[allow(missing_debug_implementations)]
#[derive(Default)]
pub struct RawValue {
    /// `+text`.
    pub simple: Option<String>,
    /// An error reply.
    pub error: Option<ErrorRecord>,
    /// `:n`.
    pub integer: Option<i64>,
    /// `$n` bulk string.
    pub bulk: Option<Buffer>,
    /// Set (true) for a null.
    pub null: Option<bool>,
    /// RESP3 boolean.
    pub boolean: Option<bool>,
    /// RESP3 double.
    pub double: Option<f64>,
    /// RESP3 big number, as its digits.
    pub big: Option<String>,
    /// Array (or set).
    pub array: Option<Vec<RawValue>>,
    /// RESP3 map, as `[key, value]` pairs in wire order.
    pub map: Option<Vec<Vec<RawValue>>>,
    /// RESP3 push.
    pub push: Option<Vec<RawValue>>,
}

/// The answer to a request: `error`, or one field typed by the request.
#[napi(object)]
// napi's Buffer has no Debug.
#[allow(missing_debug_implementations)]
#[derive(Default)]
pub struct ClientReply {
    /// The request id.
    pub id: f64,
    /// The request failed.
    pub error: Option<ErrorRecord>,
    /// ACQUIRE granted.
    pub granted: Option<GrantedRecord>,
    /// RENEW, VERIFY: ms left.
    pub ms_left: Option<f64>,
    /// RELEASE (and anything else answering OK).
    pub ok: Option<bool>,
    /// QUERY.
    pub locks: Option<Vec<LockRecord>>,
    /// A QUERY page's next cursor (empty after the last page).
    pub cursor: Option<String>,
    /// INFO.
    pub info: Option<Vec<InfoRecord>>,
    /// PING.
    pub pong: Option<Buffer>,
    /// A raw command's reply.
    pub value: Option<RawValue>,
}

/// A lease event: `kind` is `lease_lost` (with `reason`: `lapsed`, `expired`, `stolen`,
/// `connection_closed` or `refused`) or `notice` (a server push, with `notice`).
#[napi(object)]
#[derive(Debug)]
pub struct ClientEvent {
    /// `lease_lost` or `notice`.
    pub kind: String,
    /// The lock.
    pub name: String,
    /// The lease's token.
    pub token: f64,
    /// `lease_lost`: why, as a word.
    pub reason: Option<String>,
    /// `lease_lost`: why, as a sentence.
    pub description: Option<String>,
    /// `stolen`: the token that took the lock.
    pub by_token: Option<f64>,
    /// `refused`: the server's error.
    pub refusal: Option<ErrorRecord>,
    /// `notice`: the notice's kind (`expired`, `stolen`).
    pub notice: Option<String>,
}

/// Everything pending at once.
#[napi(object)]
// napi's Buffer has no Debug.
#[allow(missing_debug_implementations)]
pub struct ClientDrain {
    /// Outputs, in order.
    pub outputs: Vec<ClientOutput>,
    /// Replies, in order.
    pub replies: Vec<ClientReply>,
    /// Events, in order (deliver them before the replies).
    pub events: Vec<ClientEvent>,
    /// When `handleTimeout` is next due, in ms, or null.
    pub timeout_ms: Option<f64>,
}

/// A tracked lease's status.
#[napi(object)]
#[derive(Debug)]
pub struct LeaseRecord {
    /// The conservative local deadline.
    pub deadline_ms: f64,
    /// ms until it.
    pub ms_left: f64,
    /// Whether the client renews it.
    pub kept_alive: bool,
}

/// One client: connections, requests in flight, tracked leases.
#[napi]
#[derive(Debug)]
pub struct NativeClient {
    client: Client,
}

#[napi]
impl NativeClient {
    /// Creates a client.
    #[napi(constructor)]
    pub fn new(settings: Option<ClientSettings>) -> napi::Result<Self> {
        let settings = settings.unwrap_or_default();
        let mut config = ClientConfig::default();
        if let Some(endpoints) = settings.endpoints {
            if endpoints == 0 {
                return Err(napi::Error::new(
                    Status::InvalidArg,
                    "a client needs at least one endpoint".to_owned(),
                ));
            }
            config.endpoints = usize::try_from(endpoints).unwrap_or(usize::MAX);
        }
        config.endpoint_addresses = settings.addresses.unwrap_or_default();
        if let Some(resp3) = settings.resp3 {
            config.resp3 = resp3;
        }
        if let Some(ms) = settings.request_timeout_ms {
            config.request_timeout_ms = whole("requestTimeoutMs", ms)?;
        }
        if let Some(ms) = settings.connect_timeout_ms {
            config.connect_timeout_ms = whole("connectTimeoutMs", ms)?;
        }
        config.credentials = settings.password.as_deref().map(|password| {
            fencelock_core::client::Credentials::new(
                settings
                    .username
                    .as_deref()
                    .unwrap_or(fencelock_core::protocol::DEFAULT_USER),
                password,
            )
        });
        Ok(NativeClient {
            client: Client::new(config),
        })
    }

    /// Queues an ACQUIRE and returns its request id.
    #[napi]
    pub fn acquire(
        &mut self,
        env: Env,
        now_ms: f64,
        name: String,
        ttl_ms: f64,
        options: Option<AcquireOpts>,
    ) -> napi::Result<f64> {
        let now = Instant(whole("nowMs", now_ms)?);
        let ttl = whole("ttlMs", ttl_ms)?;
        // The connection is the client id on the server's side; here there is none.
        let mut options = options.unwrap_or_default();
        options.client = None;
        let options = acquire_options(options)?;
        self.client
            .acquire(now, &name, ttl, &options)
            .map(number)
            .or_throw(&env)
    }

    /// Queues a RENEW.
    #[napi]
    pub fn renew(
        &mut self,
        env: Env,
        now_ms: f64,
        name: String,
        token: f64,
        ttl_ms: f64,
    ) -> napi::Result<f64> {
        let now = Instant(whole("nowMs", now_ms)?);
        let token = whole("token", token)?;
        let ttl = whole("ttlMs", ttl_ms)?;
        self.client
            .renew(now, &name, token, ttl)
            .map(number)
            .or_throw(&env)
    }

    /// Queues a RELEASE.
    #[napi]
    pub fn release(
        &mut self,
        env: Env,
        now_ms: f64,
        name: String,
        token: f64,
    ) -> napi::Result<f64> {
        let now = Instant(whole("nowMs", now_ms)?);
        let token = whole("token", token)?;
        self.client
            .release(now, &name, token)
            .map(number)
            .or_throw(&env)
    }

    /// Queues a VERIFY.
    #[napi]
    pub fn verify(&mut self, env: Env, now_ms: f64, name: String, token: f64) -> napi::Result<f64> {
        let now = Instant(whole("nowMs", now_ms)?);
        let token = whole("token", token)?;
        self.client
            .verify(now, &name, token)
            .map(number)
            .or_throw(&env)
    }

    /// Queues a QUERY.
    #[napi]
    pub fn query(&mut self, now_ms: f64, prefix: Option<String>) -> napi::Result<f64> {
        let now = Instant(whole("nowMs", now_ms)?);
        Ok(number(
            self.client.query(now, prefix.as_deref().unwrap_or("")),
        ))
    }

    /// Queues one page of a QUERY: at most `count` locks after `cursor` ("" for the first);
    /// the reply has `locks` and `cursor` (empty after the last page).
    #[napi]
    pub fn query_page(
        &mut self,
        now_ms: f64,
        prefix: String,
        count: f64,
        cursor: Option<String>,
    ) -> napi::Result<f64> {
        let now = Instant(whole("nowMs", now_ms)?);
        let count = whole("count", count)?;
        Ok(number(self.client.query_page(
            now,
            &prefix,
            count,
            cursor.as_deref().unwrap_or(""),
        )))
    }

    /// Queues an INFO.
    #[napi]
    pub fn info(&mut self, now_ms: f64, section: Option<String>) -> napi::Result<f64> {
        let now = Instant(whole("nowMs", now_ms)?);
        Ok(number(self.client.info(now, section.as_deref())))
    }

    /// Queues a PING.
    #[napi]
    pub fn ping(&mut self, now_ms: f64) -> napi::Result<f64> {
        let now = Instant(whole("nowMs", now_ms)?);
        Ok(number(self.client.ping(now)))
    }

    /// Queues any command (name first); its reply comes back as a raw value.
    #[napi]
    pub fn command(&mut self, env: Env, now_ms: f64, argv: Vec<Buffer>) -> napi::Result<f64> {
        let now = Instant(whole("nowMs", now_ms)?);
        let args: Vec<&[u8]> = argv.iter().map(|arg| arg.as_ref()).collect();
        self.client.command(now, &args).map(number).or_throw(&env)
    }

    /// Gives up on a request (a waiting acquire's connection is closed).
    #[napi]
    pub fn cancel(&mut self, now_ms: f64, request: f64) -> napi::Result<()> {
        let now = Instant(whole("nowMs", now_ms)?);
        self.client.cancel(now, request_id(request)?);
        Ok(())
    }

    /// Keeps a tracked lease alive; false if it is not tracked.
    #[napi]
    pub fn keep_alive(&mut self, name: String, token: f64) -> napi::Result<bool> {
        Ok(self.client.keep_alive(&name, whole("token", token)?))
    }

    /// Stops tracking a lease.
    #[napi]
    pub fn forget(&mut self, name: String, token: f64) -> napi::Result<()> {
        self.client.forget(&name, whole("token", token)?);
        Ok(())
    }

    /// Returns a tracked lease's status, or null.
    #[napi]
    pub fn lease(
        &self,
        now_ms: f64,
        name: String,
        token: f64,
    ) -> napi::Result<Option<LeaseRecord>> {
        let now = Instant(whole("nowMs", now_ms)?);
        Ok(self
            .client
            .lease(now, &name, whole("token", token)?)
            .map(|status| LeaseRecord {
                deadline_ms: number(status.deadline.as_ms()),
                ms_left: number(status.ms_left),
                kept_alive: status.kept_alive,
            }))
    }

    /// Reports that a connection is open.
    #[napi]
    pub fn handle_connected(&mut self, now_ms: f64, conn: f64) -> napi::Result<()> {
        let now = Instant(whole("nowMs", now_ms)?);
        self.client.handle_connected(now, whole("conn", conn)?);
        Ok(())
    }

    /// Feeds bytes received on a connection.
    #[napi]
    pub fn receive(&mut self, now_ms: f64, conn: f64, data: Buffer) -> napi::Result<()> {
        let now = Instant(whole("nowMs", now_ms)?);
        self.client.receive(now, whole("conn", conn)?, &data);
        Ok(())
    }

    /// Reports that a connection failed or closed.
    #[napi]
    pub fn handle_disconnect(
        &mut self,
        now_ms: f64,
        conn: f64,
        reason: String,
    ) -> napi::Result<()> {
        let now = Instant(whole("nowMs", now_ms)?);
        self.client
            .handle_disconnect(now, whole("conn", conn)?, &reason);
        Ok(())
    }

    /// Does what is due.
    #[napi]
    pub fn handle_timeout(&mut self, now_ms: f64) -> napi::Result<()> {
        self.client.handle_timeout(Instant(whole("nowMs", now_ms)?));
        Ok(())
    }

    /// Closes every connection.
    #[napi]
    pub fn close(&mut self, now_ms: f64) -> napi::Result<()> {
        self.client.close(Instant(whole("nowMs", now_ms)?));
        Ok(())
    }

    /// Returns when `handleTimeout` is next due, in ms, or null.
    #[napi]
    pub fn poll_timeout(&self) -> Option<f64> {
        self.client.poll_timeout().map(|at| number(at.as_ms()))
    }

    /// Returns every pending output, reply and event, and the next timeout.
    #[napi]
    pub fn drain(&mut self) -> napi::Result<ClientDrain> {
        let mut outputs = Vec::new();
        while let Some(output) = self.client.poll_output() {
            outputs.push(output_record(output)?);
        }
        let mut replies = Vec::new();
        while let Some((id, reply)) = self.client.poll_reply() {
            replies.push(reply_record(id, reply)?);
        }
        let mut events = Vec::new();
        while let Some(event) = self.client.poll_event() {
            events.push(event_record(event)?);
        }
        Ok(ClientDrain {
            outputs,
            replies,
            events,
            timeout_ms: self.poll_timeout(),
        })
    }

    /// Returns the connection a pending request was sent on, or null.
    #[napi]
    pub fn request_conn(&self, request: f64) -> napi::Result<Option<f64>> {
        Ok(self.client.request_conn(request_id(request)?).map(number))
    }

    /// Returns how many requests await their reply.
    #[napi]
    pub fn pending(&self) -> f64 {
        number(self.client.pending() as u64)
    }

    /// Returns how many connections are open or opening.
    #[napi]
    pub fn connections(&self) -> f64 {
        number(self.client.connections() as u64)
    }
}

fn request_id(request: f64) -> napi::Result<RequestId> {
    whole("request", request)
}

fn output_record(output: Output) -> napi::Result<ClientOutput> {
    Ok(match output {
        Output::Connect { conn, endpoint } => ClientOutput {
            kind: "connect".to_owned(),
            conn: number(conn),
            endpoint: Some(number(endpoint as u64)),
            data: None,
        },
        Output::Transmit { conn, bytes } => ClientOutput {
            kind: "transmit".to_owned(),
            conn: number(conn),
            endpoint: None,
            data: Some(Buffer::from(bytes)),
        },
        Output::Close { conn } => ClientOutput {
            kind: "close".to_owned(),
            conn: number(conn),
            endpoint: None,
            data: None,
        },
        other => return Err(crate::errors::unknown("client output", &other)),
    })
}

fn reply_record(
    id: RequestId,
    reply: Result<Reply, fencelock_core::Error>,
) -> napi::Result<ClientReply> {
    let mut record_out = ClientReply {
        id: number(id),
        ..ClientReply::default()
    };
    match reply {
        Err(error) => record_out.error = Some(record(&error)),
        Ok(Reply::Granted { token, deadline }) => {
            record_out.granted = Some(GrantedRecord {
                token: number(token),
                deadline_ms: number(deadline.as_ms()),
            });
        }
        Ok(Reply::MsLeft(ms)) => record_out.ms_left = Some(number(ms)),
        Ok(Reply::Ok) => record_out.ok = Some(true),
        Ok(Reply::Locks(locks)) => {
            record_out.locks = Some(locks.into_iter().map(lock_record).collect());
        }
        Ok(Reply::LockPage { cursor, locks }) => {
            record_out.cursor = Some(cursor);
            record_out.locks = Some(locks.into_iter().map(lock_record).collect());
        }
        Ok(Reply::Info(entries)) => {
            record_out.info = Some(
                entries
                    .into_iter()
                    .map(|entry| InfoRecord {
                        section: entry.section,
                        key: entry.key,
                        value: entry.value,
                    })
                    .collect(),
            );
        }
        Ok(Reply::Pong(message)) => record_out.pong = Some(Buffer::from(message)),
        Ok(Reply::Value(value)) => record_out.value = Some(raw_value(value)?),
        Ok(other) => return Err(crate::errors::unknown("reply", &other)),
    }
    Ok(record_out)
}

fn raw_value(value: Value) -> napi::Result<RawValue> {
    let list = |items: Vec<Value>| {
        items
            .into_iter()
            .map(raw_value)
            .collect::<napi::Result<Vec<_>>>()
    };
    Ok(match value {
        Value::Simple(text) => RawValue {
            simple: Some(text),
            ..RawValue::default()
        },
        // The core reads the wire text back into its error (code and fields).
        Value::Error(text) => RawValue {
            error: Some(record(&fencelock_core::Error::from_wire(&text))),
            ..RawValue::default()
        },
        Value::Integer(number) => RawValue {
            integer: Some(number),
            ..RawValue::default()
        },
        Value::Bulk(bytes) => RawValue {
            bulk: Some(Buffer::from(bytes)),
            ..RawValue::default()
        },
        Value::Null => RawValue {
            null: Some(true),
            ..RawValue::default()
        },
        Value::Boolean(flag) => RawValue {
            boolean: Some(flag),
            ..RawValue::default()
        },
        Value::Double(number) => RawValue {
            double: Some(number),
            ..RawValue::default()
        },
        Value::BigNumber(digits) => RawValue {
            big: Some(digits),
            ..RawValue::default()
        },
        Value::Array(items) => RawValue {
            array: Some(list(items)?),
            ..RawValue::default()
        },
        Value::Push(items) => RawValue {
            push: Some(list(items)?),
            ..RawValue::default()
        },
        Value::Map(pairs) => RawValue {
            map: Some(
                pairs
                    .into_iter()
                    .map(|(key, value)| Ok(vec![raw_value(key)?, raw_value(value)?]))
                    .collect::<napi::Result<Vec<_>>>()?,
            ),
            ..RawValue::default()
        },
        other => return Err(crate::errors::unknown("RESP value", &other)),
    })
}

fn event_record(event: Event) -> napi::Result<ClientEvent> {
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
            ClientEvent {
                kind: "lease_lost".to_owned(),
                name,
                token: number(token),
                reason: Some(word.to_owned()),
                description: Some(reason.describe()),
                by_token,
                refusal,
                notice: None,
            }
        }
        Event::Notice {
            kind,
            name,
            token,
            by_token,
        } => ClientEvent {
            kind: "notice".to_owned(),
            name,
            token: number(token),
            reason: None,
            description: None,
            by_token: by_token.map(number),
            refusal: None,
            notice: Some(kind),
        },
        other => return Err(crate::errors::unknown("client event", &other)),
    })
}
