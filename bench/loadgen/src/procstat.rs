//! What Linux says about a server process: CPU time (utime + stime) and resident memory.

use std::fs;

/// Returns the process's user + system CPU time in seconds, `None` if it cannot be read.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, so utime (14) and stime (15) are the 12th and 13th.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// Returns the process's resident set size in bytes (VmRSS), `None` if it cannot be read.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Clock ticks per second: 100 on every Linux this runs on (USER_HZ), readable without libc
/// only through getconf, so it is taken from the environment when the script passes it.
fn clock_ticks() -> f64 {
    std::env::var("CLK_TCK")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(100.0)
}
