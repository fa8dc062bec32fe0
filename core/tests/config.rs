//! Settings by name: the one table every host uses for flags, files and test vectors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fencelock_core::protocol::ServerConfig;
use fencelock_core::Config;

#[test]
fn every_engine_setting_round_trips_by_name() {
    let mut config = Config::default();
    for (i, (name, _)) in Config::default().settings().enumerate() {
        config.set(name, 1000 + i as u64).unwrap();
    }
    for (i, (name, value)) in config.settings().enumerate() {
        assert_eq!(value, 1000 + i as u64, "{name}");
    }
    assert_eq!(config.max_ttl_ms, 1000);
    assert_eq!(config.expired_memory, 1011);
}

#[test]
fn unknown_or_out_of_range_settings_are_refused_clearly() {
    let err = Config::default().set("max_tll_ms", 5).unwrap_err();
    assert_eq!(err.to_string(), "ERR unknown engine setting \"max_tll_ms\"");
    let mut server = ServerConfig::default();
    server.set("test_clock", 1).unwrap();
    assert!(server.test_clock);
    assert_eq!(
        server.set("test_clock", 2).unwrap_err().to_string(),
        "ERR setting test_clock takes 0 or 1"
    );
    assert!(server.set("max_conections", 1).is_err());
}
