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
}

/// Every command; the lock commands come first because lookup scans in order.
pub(crate) const COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "ACQUIRE",
        kind: Kind::Acquire,
        arity: -3,
        usage: "ACQUIRE name ttl_ms [WAIT ms] [SHARED] [STEAL] [OWNER label] [EPHEMERAL] [LOCKDELAY ms]",
        summary: "Takes a lease on a lock and returns its fencing token.",
        has_key: true,
    },
    CommandSpec {
        name: "RELEASE",
        kind: Kind::Release,
        arity: 3,
        usage: "RELEASE name token",
        summary: "Ends the lease named by (lock, token).",
        has_key: true,
    },
    CommandSpec {
        name: "RENEW",
        kind: Kind::Renew,
        arity: 4,
        usage: "RENEW name token ttl_ms",
        summary: "Extends a live lease and returns the ms it has left.",
        has_key: true,
    },
    CommandSpec {
        name: "VERIFY",
        kind: Kind::Verify,
        arity: 3,
        usage: "VERIFY name token",
        summary: "Returns the ms a live lease has left (an optimisation: only the resource's fence is safe).",
        has_key: true,
    },
    CommandSpec {
        name: "QUERY",
        kind: Kind::Query,
        arity: -1,
        usage: "QUERY [prefix]",
        summary: "Lists locks whose name starts with prefix, with holders and waiters.",
        has_key: false,
    },
    CommandSpec {
        name: "INFO",
        kind: Kind::Info,
        arity: -1,
        usage: "INFO [section]",
        summary: "Returns server facts and statistics in Redis INFO style.",
        has_key: false,
    },
    CommandSpec {
        name: "PING",
        kind: Kind::Ping,
        arity: -1,
        usage: "PING [message]",
        summary: "Answers PONG, or the message.",
        has_key: false,
    },
    CommandSpec {
        name: "ECHO",
        kind: Kind::Echo,
        arity: 2,
        usage: "ECHO message",
        summary: "Returns the message.",
        has_key: false,
    },
    CommandSpec {
        name: "HELLO",
        kind: Kind::Hello,
        arity: -1,
        usage: "HELLO [2|3 [AUTH username password] [SETNAME name]]",
        summary: "Chooses RESP2 or RESP3 and returns server facts.",
        has_key: false,
    },
    CommandSpec {
        name: "AUTH",
        kind: Kind::Auth,
        arity: -2,
        usage: "AUTH [username] password",
        summary: "Accepted for the default user only: fencelock has no passwords, serve it on loopback.",
        has_key: false,
    },
    CommandSpec {
        name: "QUIT",
        kind: Kind::Quit,
        arity: -1,
        usage: "QUIT",
        summary: "Answers OK and closes the connection.",
        has_key: false,
    },
    CommandSpec {
        name: "SELECT",
        kind: Kind::Select,
        arity: 2,
        usage: "SELECT 0",
        summary: "Accepts database 0, the only one.",
        has_key: false,
    },
    CommandSpec {
        name: "CLIENT",
        kind: Kind::Client,
        arity: -2,
        usage: "CLIENT ID|GETNAME|SETNAME name|SETINFO LIB-NAME|LIB-VER value|INFO|LIST",
        summary: "Names and describes connections.",
        has_key: false,
    },
    CommandSpec {
        name: "COMMAND",
        kind: Kind::Command,
        arity: -1,
        usage: "COMMAND [COUNT|LIST|INFO [name ...]|DOCS [name ...]]",
        summary: "Describes the commands.",
        has_key: false,
    },
    CommandSpec {
        name: "DEBUG",
        kind: Kind::Debug,
        arity: -2,
        usage: "DEBUG ADVANCE ms",
        summary: "Moves the manual clock of a server started with a test clock.",
        has_key: false,
    },
];

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
