//! Limits and switches of a protocol server.

use super::parser::ParserLimits;
use crate::config::{set_by_name, setting, Setting};
use crate::error::Error;

/// Limits and switches of a [`Server`](super::Server); every bound is enforced with a clear
/// error, before the bytes it guards are buffered.
///
/// Outside this crate, start from `ServerConfig::default()` and set fields (or use
/// [`ServerConfig::set`]): the struct may grow, so it cannot be built with a struct literal.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Largest request on the wire, framing included (default 1 MiB).
    pub max_request_bytes: usize,
    /// Largest single argument (default 1 MiB, so only the request limit applies).
    pub max_bulk_bytes: usize,
    /// Most arguments in one request, command name included (default 1024).
    pub max_args: usize,
    /// Output a connection may have waiting, in the server or reported unsent by the host
    /// ([`Server::handle_unsent`](super::Server::handle_unsent)), before it is closed as a
    /// client that does not read (default 64 MiB).
    pub max_output_bytes: usize,
    /// Connections served at once; one more gets an error and is closed (default 10 000).
    pub max_connections: usize,
    /// Serves `DEBUG ADVANCE ms`: the server then ignores the host's `now` and keeps a manual
    /// clock starting at 0, so expiry scenarios run deterministically (default off).
    pub test_clock: bool,
    /// Failed `AUTH` attempts after which a connection is closed (default 5).
    pub max_auth_failures: usize,
    /// Slow password checks (a cache miss) allowed per second across the server; more fail
    /// at once, so wrong passwords cannot stall the event loop (default 10).
    pub password_checks_per_sec: usize,
    /// Most locks in one `QUERY` reply, the page size when `COUNT` is not given and the
    /// largest `COUNT` honoured (default 1000).
    pub max_query_count: usize,
    /// A `QUERY` reply stops adding locks once it holds this many bytes (at least one lock
    /// is always sent), so a reply stays far below `max_output_bytes` (default 1 MiB).
    pub max_query_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_request_bytes: 1 << 20,
            max_bulk_bytes: 1 << 20,
            max_args: 1024,
            max_output_bytes: 64 << 20,
            max_connections: 10_000,
            test_clock: false,
            max_auth_failures: 5,
            password_checks_per_sec: 10,
            max_query_count: 1000,
            max_query_bytes: 1 << 20,
        }
    }
}

impl ServerConfig {
    /// Returns the limits the request parser enforces.
    #[must_use]
    pub fn parser_limits(&self) -> ParserLimits {
        ParserLimits {
            max_request_bytes: self.max_request_bytes,
            max_bulk_bytes: self.max_bulk_bytes,
            max_args: self.max_args,
        }
    }
}

impl ServerConfig {
    /// Sets one setting by its field name (`test_clock` takes 0 or 1), as hosts read settings
    /// from flags and files; every host shares this table.
    ///
    /// # Errors
    /// [`Error::BadRequest`] for an unknown name or a value out of range.
    pub fn set(&mut self, name: &str, value: u64) -> Result<(), Error> {
        set_by_name(self, SERVER_SETTINGS, "server", name, value)
    }

    /// Returns every setting with its field name, in declaration order (`test_clock` as 0 or 1).
    pub fn settings(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        SERVER_SETTINGS
            .iter()
            .map(move |setting| (setting.name, (setting.get)(self)))
    }
}

/// Every server setting: the one list that [`ServerConfig::set`], [`ServerConfig::settings`],
/// `INFO` and every host read.
const SERVER_SETTINGS: &[Setting<ServerConfig>] = &[
    setting!(max_request_bytes: usize),
    setting!(max_bulk_bytes: usize),
    setting!(max_args: usize),
    setting!(max_output_bytes: usize),
    setting!(max_connections: usize),
    setting!(test_clock: bool),
    setting!(max_auth_failures: usize),
    setting!(password_checks_per_sec: usize),
    setting!(max_query_count: usize),
    setting!(max_query_bytes: usize),
];
