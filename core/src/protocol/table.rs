//! The command table: names, arity and one-line help, shared by dispatch, `COMMAND` and the
//! error messages, so they can never disagree.

/// Which handler serves a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Acquire,
    Release,
    Renew,
    Verify,
    Query,
    Info,
    Ping,
    Echo,
    Hello,
    Auth,
    Quit,
    Select,
    Client,
    Command,
    Debug,
}

/// One command as clients see it.
#[derive(Debug)]
pub(crate) struct CommandSpec {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    /// Redis convention, command name included: `n` exactly n arguments, `-n` at least n.
    pub(crate) arity: i64,
    pub(crate) usage: &'static str,
    pub(crate) summary: &'static str,
    /// True when the first argument is a lock name (Redis "key"), for `COMMAND` key specs.
    pub(crate) has_key: bool,
    /// The release that introduced the command, for `COMMAND DOCS`.
    pub(crate) since: &'static str,
}

/// Every command, in the order `COMMAND` lists them and the unknown-command error names
/// them; the lock commands come first because lookup scans in order.
pub(crate) const COMMANDS: &[CommandSpec] = &[
    ACQUIRE, RENEW, RELEASE, VERIFY, QUERY, INFO, PING, ECHO, HELLO, AUTH, QUIT, SELECT, CLIENT,
    COMMAND, DEBUG,
];

/// The release in which the commands of the first protocol appeared (`COMMAND DOCS` "since").
const FIRST_RELEASE: &str = "0.1.0";

/// `ACQUIRE`: takes a lease on a lock and returns its fencing token.
pub(crate) const ACQUIRE: CommandSpec = CommandSpec {
    name: "ACQUIRE",
    kind: Kind::Acquire,
    arity: -3,
    usage:
        "ACQUIRE name ttl_ms [WAIT ms] [SHARED] [STEAL] [OWNER label] [EPHEMERAL] [LOCKDELAY ms]",
    summary: "Takes a lease on a lock and returns its fencing token.",
    has_key: true,
    since: FIRST_RELEASE,
};

/// `RELEASE`: ends the lease named by (lock, token).
pub(crate) const RELEASE: CommandSpec = CommandSpec {
    name: "RELEASE",
    kind: Kind::Release,
    arity: 3,
    usage: "RELEASE name token",
    summary: "Ends the lease named by (lock, token).",
    has_key: true,
    since: FIRST_RELEASE,
};

/// `RENEW`: extends a live lease and returns the ms it has left.
pub(crate) const RENEW: CommandSpec = CommandSpec {
    name: "RENEW",
    kind: Kind::Renew,
    arity: 4,
    usage: "RENEW name token ttl_ms",
    summary: "Extends a live lease and returns the ms it has left.",
    has_key: true,
    since: FIRST_RELEASE,
};

/// `VERIFY`: returns the ms a live lease has left (an optimisation: only the resource's fence is safe).
pub(crate) const VERIFY: CommandSpec = CommandSpec {
    name: "VERIFY",
    kind: Kind::Verify,
    arity: 3,
    usage: "VERIFY name token",
    summary:
        "Returns the ms a live lease has left (an optimisation: only the resource's fence is safe).",
    has_key: true,
    since: FIRST_RELEASE,
};

/// `QUERY`: lists locks whose name starts with prefix, with holders and waiters, a page at a time.
pub(crate) const QUERY: CommandSpec = CommandSpec {
    name: "QUERY",
    kind: Kind::Query,
    arity: -1,
    usage: "QUERY [prefix [COUNT n] [CURSOR cursor]]",
    summary:
        "Lists locks whose name starts with prefix, with holders and waiters, a page at a time.",
    has_key: false,
    since: FIRST_RELEASE,
};

/// `INFO`: returns server facts and statistics in Redis INFO style.
pub(crate) const INFO: CommandSpec = CommandSpec {
    name: "INFO",
    kind: Kind::Info,
    arity: -1,
    usage: "INFO [section]",
    summary: "Returns server facts and statistics in Redis INFO style.",
    has_key: false,
    since: FIRST_RELEASE,
};

/// `PING`: answers PONG, or the message.
pub(crate) const PING: CommandSpec = CommandSpec {
    name: "PING",
    kind: Kind::Ping,
    arity: -1,
    usage: "PING [message]",
    summary: "Answers PONG, or the message.",
    has_key: false,
    since: FIRST_RELEASE,
};

/// `ECHO`: returns the message.
pub(crate) const ECHO: CommandSpec = CommandSpec {
    name: "ECHO",
    kind: Kind::Echo,
    arity: 2,
    usage: "ECHO message",
    summary: "Returns the message.",
    has_key: false,
    since: FIRST_RELEASE,
};

/// `HELLO`: chooses RESP2 or RESP3 and returns server facts.
pub(crate) const HELLO: CommandSpec = CommandSpec {
    name: "HELLO",
    kind: Kind::Hello,
    arity: -1,
    usage: "HELLO [2|3 [AUTH username password] [SETNAME name]]",
    summary: "Chooses RESP2 or RESP3 and returns server facts.",
    has_key: false,
    since: FIRST_RELEASE,
};

/// `AUTH`: authenticates the connection as a user of the server's users (or `--requirepass`).
pub(crate) const AUTH: CommandSpec = CommandSpec {
    name: "AUTH",
    kind: Kind::Auth,
    arity: -2,
    usage: "AUTH [username] password",
    summary: "Authenticates the connection as a user of the server's users (or --requirepass).",
    has_key: false,
    since: FIRST_RELEASE,
};

/// `QUIT`: answers OK and closes the connection.
pub(crate) const QUIT: CommandSpec = CommandSpec {
    name: "QUIT",
    kind: Kind::Quit,
    arity: -1,
    usage: "QUIT",
    summary: "Answers OK and closes the connection.",
    has_key: false,
    since: FIRST_RELEASE,
};

/// `SELECT`: accepts database 0, the only one.
pub(crate) const SELECT: CommandSpec = CommandSpec {
    name: "SELECT",
    kind: Kind::Select,
    arity: 2,
    usage: "SELECT 0",
    summary: "Accepts database 0, the only one.",
    has_key: false,
    since: FIRST_RELEASE,
};

/// `CLIENT`: names and describes connections.
pub(crate) const CLIENT: CommandSpec = CommandSpec {
    name: "CLIENT",
    kind: Kind::Client,
    arity: -2,
    usage: "CLIENT ID|GETNAME|SETNAME name|SETINFO LIB-NAME|LIB-VER value|INFO|LIST",
    summary: "Names and describes connections.",
    has_key: false,
    since: FIRST_RELEASE,
};

/// `COMMAND`: describes the commands.
pub(crate) const COMMAND: CommandSpec = CommandSpec {
    name: "COMMAND",
    kind: Kind::Command,
    arity: -1,
    usage: "COMMAND [COUNT|LIST|INFO [name ...]|DOCS [name ...]]",
    summary: "Describes the commands.",
    has_key: false,
    since: FIRST_RELEASE,
};

/// `DEBUG`: moves the manual clock of a server started with a test clock.
pub(crate) const DEBUG: CommandSpec = CommandSpec {
    name: "DEBUG",
    kind: Kind::Debug,
    arity: -2,
    usage: "DEBUG ADVANCE ms",
    summary: "Moves the manual clock of a server started with a test clock.",
    has_key: false,
    since: FIRST_RELEASE,
};

/// Finds a command by name, ignoring ASCII case.
pub(crate) fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|spec| spec.name.as_bytes().eq_ignore_ascii_case(name))
}

impl CommandSpec {
    /// Returns true when `argc` arguments (command name included) fit the arity.
    pub(crate) fn accepts(&self, argc: usize) -> bool {
        let argc = i64::try_from(argc).unwrap_or(i64::MAX);
        if self.arity >= 0 {
            argc == self.arity
        } else {
            argc >= -self.arity
        }
    }
}
