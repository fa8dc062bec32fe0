//! The wire protocol (RESP2/RESP3) as a sans-IO server: parser, command table, reply encoder
//! and connection multiplexer, shared byte for byte by every host.
//!
//! A host owns the sockets and the clock. It calls [`Server::connect`], [`Server::receive`],
//! [`Server::disconnect`] and [`Server::handle_timeout`], then drains [`Server::poll_output`]
//! in order: an [`Output::File`] must be durable before the outputs after it are handled,
//! because they may carry tokens up to the ceiling it writes. [`Server::shutdown`] ends a run
//! cleanly through the same outputs. `docs/HOSTS.md` is the whole contract, told the way the
//! Python host follows it.

mod admin;
mod args;
mod audit;
mod auth;
mod commands;
mod config;
mod connection;
mod context;
mod info;
mod lock_commands;
mod metrics;
mod parser;
mod reply;
mod server;
mod table;
mod users;

pub use audit::AuditEvent;
pub use config::ServerConfig;
pub use metrics::{ErrorTally, PersistHistogram, PERSIST_BUCKETS_MICROS};
pub use parser::{ParserLimits, ProtocolError, RequestParser, Step};
pub use reply::{ReplyEncoder, RespVersion};
pub use server::{ConnId, Output, Server};
pub use users::{hash_password, verify_password, User, Users, DEFAULT_ITERATIONS, DEFAULT_USER};
