//! The Prometheus exposition the server renders: names, types and values after real traffic.
#![allow(clippy::panic)]

use fencelock_core::protocol::{Output, Server, ServerConfig};
use fencelock_core::{Config, Engine, Instant};

fn drain(server: &mut Server) {
    while let Some(output) = server.poll_output() {
        drop(output);
    }
}

fn send(server: &mut Server, at: u64, conn: u64, line: &str) {
    server.receive(Instant(at), conn, format!("{line}\r\n").as_bytes());
    drain(server);
}

fn value<'a>(text: &'a str, series: &str) -> &'a str {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

#[test]
fn counters_gauges_errors_and_persist_latency_are_exposed() {
    let mut server = Server::new(Engine::new(Config::default()), ServerConfig::default());
    let first = server.connect(Instant(0));
    let second = server.connect(Instant(0));
    drain(&mut server);
    send(&mut server, 1, first, "ACQUIRE jobs/a 1000");
    send(&mut server, 2, second, "ACQUIRE jobs/a 1000");
    send(&mut server, 3, second, "RELEASE jobs/a 999");
    send(&mut server, 4, second, "NOSUCHCOMMAND");
    send(&mut server, 5, second, "ACQUIRE jobs/a 1000 STEAL");
    send(&mut server, 6, first, "ACQUIRE jobs/b 100");
    send(&mut server, 7, second, "ACQUIRE jobs/b 1000 WAIT 5000");
    server.disconnect(Instant(8), second);
    drain(&mut server);
    server.record_persist(700);
    server.record_persist(20_000);
    let text = server.metrics_text(Instant(9));
    assert_eq!(value(&text, "fencelock_grants_total"), "3");
    assert_eq!(value(&text, "fencelock_steals_total"), "1");
    assert_eq!(value(&text, "fencelock_waits_total"), "1");
    assert_eq!(value(&text, "fencelock_waiters"), "0");
    assert_eq!(value(&text, "fencelock_connections"), "1");
    assert_eq!(value(&text, "fencelock_connections_received_total"), "2");
    // Errors of a connection already gone still count.
    assert_eq!(value(&text, "fencelock_errors_total{code=\"LOCKED\"}"), "1");
    assert_eq!(value(&text, "fencelock_errors_total{code=\"ERR\"}"), "1");
    assert_eq!(value(&text, "fencelock_errors_total{code=\"STALE\"}"), "1");
    assert_eq!(
        value(
            &text,
            "fencelock_persist_duration_seconds_bucket{le=\"0.001\"}"
        ),
        "1"
    );
    assert_eq!(
        value(
            &text,
            "fencelock_persist_duration_seconds_bucket{le=\"0.025\"}"
        ),
        "2"
    );
    assert_eq!(
        value(&text, "fencelock_persist_duration_seconds_sum"),
        "0.0207"
    );
    assert!(text.contains("# TYPE fencelock_live_leases gauge\n"));
    assert!(text.contains("# TYPE fencelock_grants_total counter\n"));
    assert!(text.contains("# TYPE fencelock_persist_duration_seconds histogram\n"));
    for line in text.lines() {
        assert!(
            line.starts_with('#') || line.split(' ').count() == 2,
            "{line}"
        );
    }
}

#[test]
fn a_rejected_connection_error_is_counted() {
    let mut config = ServerConfig::default();
    config.max_connections = 1;
    let mut server = Server::new(Engine::new(Config::default()), config);
    let _ = server.connect(Instant(0));
    let _ = server.connect(Instant(0));
    let mut closed = 0;
    while let Some(output) = server.poll_output() {
        if matches!(output, Output::Close { .. }) {
            closed += 1;
        }
    }
    assert_eq!(closed, 1);
    let text = server.metrics_text(Instant(1));
    assert_eq!(value(&text, "fencelock_errors_total{code=\"ERR\"}"), "1");
    assert_eq!(value(&text, "fencelock_connections_rejected_total"), "1");
}
