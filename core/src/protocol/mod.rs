//! The wire protocol (RESP2/RESP3) as a sans-IO server: parser, command table, reply encoder
//! and connection multiplexer, shared byte for byte by every host.
