//! Property tests of the client: the decoder reads back whatever the server's encoder writes,
//! in any split; errors survive the wire with their fields; arbitrary bytes never panic; and
//! a client driving a real in-process server gets exactly what a twin engine computes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    // Options are set field by field: the structs are non-exhaustive outside the crate.
    clippy::field_reassign_with_default
)]

use fencelock_core::client::{
    Client, ClientConfig, Credentials, Decoder, DecoderLimits, Output, Reply, Value,
};
use fencelock_core::protocol::{self, ReplyEncoder, RespVersion, Server, ServerConfig};
use fencelock_core::{AcquireOptions, Acquired, Config, Engine, Error, Instant, Mode};
use proptest::prelude::*;

/// A reply tree the encoder can write, with the value the decoder must read back.
#[derive(Debug, Clone)]
enum Tree {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    Null,
    Array(Vec<Tree>),
    Map(Vec<(Tree, Tree)>),
}

fn tree() -> impl Strategy<Value = Tree> {
    let line = "[a-zA-Z0-9 :_.-]{0,20}";
    let leaf = prop_oneof![
        line.prop_map(Tree::Simple),
        "[A-Z]{1,8} [a-z ]{0,20}".prop_map(Tree::Error),
        any::<i64>().prop_map(Tree::Integer),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Tree::Bulk),
        Just(Tree::Null),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Tree::Array),
            proptest::collection::vec((inner.clone(), inner), 0..4).prop_map(Tree::Map),
        ]
    })
}

fn encode(tree: &Tree, encoder: &mut ReplyEncoder<'_>) {
    match tree {
        Tree::Simple(text) => encoder.simple(text),
        Tree::Error(text) => encoder.error(text),
        Tree::Integer(n) => encoder.integer(*n),
        Tree::Bulk(bytes) => encoder.bulk(bytes),
        Tree::Null => encoder.null(),
        Tree::Array(items) => {
            encoder.array(items.len());
            items.iter().for_each(|item| encode(item, encoder));
        }
        Tree::Map(pairs) => {
            encoder.map(pairs.len());
            for (key, value) in pairs {
                encode(key, encoder);
                encode(value, encoder);
            }
        }
    }
}

/// What the decoder must produce: RESP2 sends maps as flat arrays.
fn expected(tree: &Tree, version: RespVersion) -> Value {
    match tree {
        Tree::Simple(text) => Value::Simple(text.clone()),
        Tree::Error(text) => Value::Error(text.clone()),
        Tree::Integer(n) => Value::Integer(*n),
        Tree::Bulk(bytes) => Value::Bulk(bytes.clone()),
        Tree::Null => Value::Null,
        Tree::Array(items) => Value::Array(items.iter().map(|i| expected(i, version)).collect()),
        Tree::Map(pairs) => match version {
            RespVersion::Resp3 => Value::Map(
                pairs
                    .iter()
                    .map(|(k, v)| (expected(k, version), expected(v, version)))
                    .collect(),
            ),
            _ => Value::Array(
                pairs
                    .iter()
                    .flat_map(|(k, v)| [expected(k, version), expected(v, version)])
                    .collect(),
            ),
        },
    }
}

fn decode_all(bytes: &[u8], cuts: &[usize]) -> Result<Vec<Value>, Error> {
    let mut decoder = Decoder::new(DecoderLimits::default());
    let mut values = Vec::new();
    let mut start = 0;
    let mut points: Vec<usize> = cuts.iter().map(|cut| cut % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.push(bytes.len());
    for end in points {
        decoder.feed(&bytes[start..end.max(start)]);
        start = end.max(start);
        while let Some(value) = decoder.next_value()? {
            values.push(value);
        }
    }
    Ok(values)
}

proptest! {
    #[test]
    fn decoder_reads_what_the_server_encoder_writes(
        trees in proptest::collection::vec(tree(), 1..6),
        resp3 in any::<bool>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let version = if resp3 { RespVersion::Resp3 } else { RespVersion::Resp2 };
        let mut bytes = Vec::new();
        let mut encoder = ReplyEncoder::new(&mut bytes, version);
        trees.iter().for_each(|tree| encode(tree, &mut encoder));
        let want: Vec<Value> = trees.iter().map(|tree| expected(tree, version)).collect();
        prop_assert_eq!(decode_all(&bytes, &cuts).unwrap(), want);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let _ = decode_all(&bytes, &cuts);
        let mut client = Client::new(ClientConfig::default());
        client.ping(Instant(0));
        client.acquire(Instant(0), "a", 10, &AcquireOptions::default()).unwrap();
        while client.poll_output().is_some() {}
        client.handle_connected(Instant(1), 1);
        for chunk in bytes.chunks(7) {
            client.receive(Instant(2), 1, chunk);
        }
        client.handle_timeout(Instant(100_000));
        while client.poll_output().is_some() {}
        while client.poll_reply().is_some() {}
        while client.poll_event().is_some() {}
    }

    #[test]
    fn errors_survive_the_wire(
        ms in 0u64..(1 << 53),
        token in 0u64..(1 << 53),
        text in "[a-z ]{1,30}",
    ) {
        let errors = [
            Error::Locked { ms_left: ms },
            Error::Stale { token },
            Error::Expired { token },
            Error::Timeout { waited_ms: ms },
            Error::NotReady { ms_left: ms },
            Error::Limit(text.clone().into()),
            Error::Exhausted,
            Error::BadRequest(text.clone()),
            Error::ConnectionLost(text.clone()),
            Error::Protocol(text.clone()),
            Error::NoAuth(text.clone()),
            Error::NoPerm(text.clone()),
            Error::WrongPass(text.clone()),
            Error::Reply { code: "WRONGTYPE".into(), message: text.clone() },
        ];
        for error in errors {
            prop_assert_eq!(Error::from_wire(&error.to_string()), error);
        }
    }
}

/// A client connected to a real in-process server through memory; every output of one is
/// delivered to the other until both are quiet.
struct Loopback {
    client: Client,
    server: Server,
    /// Client connection id to server connection id.
    links: Vec<(u64, u64)>,
    now: Instant,
}

impl Loopback {
    fn new() -> Loopback {
        Loopback::with(ClientConfig::default(), None)
    }

    fn with(client: ClientConfig, users: Option<&str>) -> Loopback {
        let mut server = Server::new(Engine::new(Config::default()), ServerConfig::default());
        if let Some(users) = users {
            server.set_users(Some(protocol::Users::parse(users.as_bytes()).unwrap()));
        }
        Loopback {
            client: Client::new(client),
            server,
            links: Vec::new(),
            now: Instant(0),
        }
    }

    fn settle(&mut self) {
        loop {
            let mut moved = false;
            while let Some(output) = self.client.poll_output() {
                moved = true;
                match output {
                    Output::Connect { conn, .. } => {
                        let server_conn = self.server.connect(self.now);
                        self.links.push((conn, server_conn));
                        self.client.handle_connected(self.now, conn);
                    }
                    Output::Transmit { conn, bytes } => {
                        let (_, server_conn) =
                            *self.links.iter().find(|(c, _)| *c == conn).unwrap();
                        self.server.receive(self.now, server_conn, &bytes);
                    }
                    Output::Close { conn } => {
                        if let Some(index) = self.links.iter().position(|(c, _)| *c == conn) {
                            let (_, server_conn) = self.links.remove(index);
                            self.server.disconnect(self.now, server_conn);
                        }
                    }
                    other => panic!("{other:?}"),
                }
            }
            while let Some(output) = self.server.poll_output() {
                moved = true;
                match output {
                    protocol::Output::Transmit { conn, bytes } => {
                        let (client_conn, _) =
                            *self.links.iter().find(|(_, s)| *s == conn).unwrap();
                        self.client.receive(self.now, client_conn, &bytes);
                    }
                    protocol::Output::File(_) => {}
                    other => panic!("{other:?}"),
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn reply(&mut self) -> Result<Reply, Error> {
        self.settle();
        self.client.poll_reply().expect("a reply").1
    }
}

#[derive(Debug, Clone)]
enum Op {
    Acquire { lock: u8, ttl_ms: u64, shared: bool },
    Renew { lock: u8, pick: usize, ttl_ms: u64 },
    Release { lock: u8, pick: usize },
    Verify { lock: u8, pick: usize },
    Query,
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3, 1u64..2000, any::<bool>()).prop_map(|(lock, ttl_ms, shared)| Op::Acquire {
            lock,
            ttl_ms,
            shared
        }),
        (0u8..3, any::<usize>(), 1u64..2000).prop_map(|(lock, pick, ttl_ms)| Op::Renew {
            lock,
            pick,
            ttl_ms
        }),
        (0u8..3, any::<usize>()).prop_map(|(lock, pick)| Op::Release { lock, pick }),
        (0u8..3, any::<usize>()).prop_map(|(lock, pick)| Op::Verify { lock, pick }),
        Just(Op::Query),
        (0u64..700).prop_map(Op::Advance),
    ]
}

proptest! {
    /// Every typed reply the client reads off a real server equals what a twin engine, given
    /// the same operations at the same times, returns directly.
    #[test]
    fn client_over_a_real_server_matches_a_twin_engine(ops in proptest::collection::vec(op(), 1..40)) {
        let mut wire = Loopback::new();
        let mut twin = Engine::new(Config::default());
        let mut tokens: Vec<u64> = Vec::new();
        for op in ops {
            let now = wire.now;
            match op {
                Op::Acquire { lock, ttl_ms, shared } => {
                    let name = format!("lock{lock}");
                    let mut options = AcquireOptions::default();
                    options.mode = if shared { Mode::Shared } else { Mode::Exclusive };
                    wire.client.acquire(now, &name, ttl_ms, &options).unwrap();
                    let got = wire.reply();
                    // The server's engine saw a client id; the twin's does not need one.
                    let want = twin.acquire(now, &name, ttl_ms, &options);
                    match (got, want) {
                        (Ok(Reply::Granted { token, .. }), Ok(Acquired::Granted { token: twin_token, .. })) => {
                            prop_assert_eq!(token, twin_token);
                            tokens.push(token);
                        }
                        (Err(got), Err(want)) => prop_assert_eq!(got, want),
                        (got, want) => prop_assert!(false, "{got:?} vs {want:?}"),
                    }
                }
                Op::Renew { lock, pick, ttl_ms } if !tokens.is_empty() => {
                    let (name, token) = (format!("lock{lock}"), tokens[pick % tokens.len()]);
                    wire.client.renew(now, &name, token, ttl_ms).unwrap();
                    let got = wire.reply();
                    let want = twin.renew(now, &name, token, ttl_ms).map(Reply::MsLeft);
                    prop_assert_eq!(got, want);
                }
                Op::Release { lock, pick } if !tokens.is_empty() => {
                    let (name, token) = (format!("lock{lock}"), tokens[pick % tokens.len()]);
                    wire.client.release(now, &name, token).unwrap();
                    let got = wire.reply();
                    let want = twin.release(now, &name, token).map(|()| Reply::Ok);
                    prop_assert_eq!(got, want);
                }
                Op::Verify { lock, pick } if !tokens.is_empty() => {
                    let (name, token) = (format!("lock{lock}"), tokens[pick % tokens.len()]);
                    wire.client.verify(now, &name, token).unwrap();
                    let got = wire.reply();
                    let want = twin.verify(now, &name, token).map(Reply::MsLeft);
                    prop_assert_eq!(got, want);
                }
                Op::Query => {
                    wire.client.query(now, "");
                    let Ok(Reply::Locks(mut got)) = wire.reply() else { panic!("QUERY failed") };
                    let mut want = twin.query(now, "");
                    // Client ids differ (the twin has none); everything else must agree.
                    for lock in got.iter_mut().chain(want.iter_mut()) {
                        lock.holders.iter_mut().for_each(|h| h.client = 0);
                    }
                    prop_assert_eq!(got, want);
                }
                Op::Advance(ms) => {
                    wire.now = now.plus_ms(ms);
                    wire.server.handle_timeout(wire.now);
                    twin.handle_timeout(wire.now);
                    while twin.poll_event().is_some() {}
                    wire.settle();
                    // Lapsed leases and pushes may surface as events; drain them.
                    while wire.client.poll_event().is_some() {}
                }
                _ => {}
            }
        }
    }
}

/// A client with credentials authenticates each connection first; wrong or missing ones
/// surface as typed errors, and paging walks every lock once.
#[test]
fn credentials_and_paging_over_a_real_server() {
    let hash = protocol::hash_password(b"pw", b"0123456789abcdef", 2);
    let users =
        format!(r#"{{"users":[{{"name":"app","password":"{hash}","acquire":["jobs/"]}}]}}"#);
    for resp3 in [true, false] {
        let mut config = ClientConfig::default();
        config.resp3 = resp3;
        config.credentials = Some(Credentials::new("app", "pw"));
        assert!(!format!("{config:?}").contains("\"pw\""));
        let mut wire = Loopback::with(config.clone(), Some(&users));
        let options = AcquireOptions::default();
        for n in 0..5 {
            wire.client
                .acquire(wire.now, &format!("jobs/{n}"), 1000, &options)
                .unwrap();
            assert!(matches!(wire.reply(), Ok(Reply::Granted { .. })));
        }
        wire.client
            .acquire(wire.now, "other", 1000, &options)
            .unwrap();
        assert!(matches!(wire.reply(), Err(Error::NoPerm(_))));
        let mut cursor = String::new();
        let mut names = Vec::new();
        loop {
            wire.client.query_page(wire.now, "jobs/", 2, &cursor);
            let Ok(Reply::LockPage {
                cursor: next,
                locks,
            }) = wire.reply()
            else {
                panic!("a page");
            };
            names.extend(locks.into_iter().map(|lock| lock.name));
            if next.is_empty() {
                break;
            }
            cursor = next;
        }
        assert_eq!(names, ["jobs/0", "jobs/1", "jobs/2", "jobs/3", "jobs/4"]);

        config.credentials = Some(Credentials::new("app", "wrong"));
        let mut wire = Loopback::with(config.clone(), Some(&users));
        wire.client.query(wire.now, "jobs/");
        assert!(
            matches!(wire.reply(), Err(Error::WrongPass(_))),
            "resp3 {resp3}"
        );

        config.credentials = None;
        let mut wire = Loopback::with(config, Some(&users));
        wire.client.query(wire.now, "jobs/");
        assert!(matches!(wire.reply(), Err(Error::NoAuth(_))));
    }
}
