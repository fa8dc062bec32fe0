//! Limits and switches of a protocol server.

use alloc::format;

use super::parser::ParserLimits;
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
        let size = || {
            usize::try_from(value)
                .map_err(|_| Error::bad(format!("setting {name} = {value} is too large")))
        };
        match name {
            "max_request_bytes" => self.max_request_bytes = size()?,
            "max_bulk_bytes" => self.max_bulk_bytes = size()?,
            "max_args" => self.max_args = size()?,
            "max_output_bytes" => self.max_output_bytes = size()?,
            "max_connections" => self.max_connections = size()?,
            "test_clock" if value <= 1 => self.test_clock = value == 1,
            "test_clock" => return Err(Error::bad("setting test_clock takes 0 or 1")),
            other => return Err(Error::bad(format!("unknown server setting {other:?}"))),
        }
        Ok(())
    }
}
