//! `loadgen`: lock cycles against fencelock, redis-server or a TCP echo, with latency
//! histograms, throughput and the server's CPU time per operation. See `loadgen --help`.

mod echo;
mod engine;
mod histogram;
mod load;
mod procstat;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use histogram::Histogram;
use load::{Mix, Options, Outcome, Target};

const HELP: &str = "\
loadgen: lock cycles over TCP, spoken through fencelock's own client state machine

USAGE:
    loadgen run [OPTIONS]           drive a server; prints one JSON line (stdout) and a summary (stderr)
    loadgen echo-server [OPTIONS]   a plain TCP echo (the floor under every server)
    loadgen engine [--duration S]   the in-process Rust engine: acquire+release pairs per second

RUN OPTIONS:
    --target T        fencelock | redis | echo                         (default fencelock)
                        fencelock: ACQUIRE / RENEW / RELEASE through fencelock_core::client::Client
                        redis:     SET name value NX PX ttl; release and renew by compare-and-delete /
                                   compare-and-pexpire EVAL (the lock recipe Redis users run)
                        echo:      fencelock-shaped requests to `loadgen echo-server`, echoed back
    --addr HOST:PORT  server address, loopback only                    (default 127.0.0.1:7380)
    --mix M           cycle | hot | renew | fill                       (default cycle)
                        cycle: acquire a random name, release it
                        hot:   acquire one of --hot-names names, release it; fencelock waits in the
                               server's queue (WAIT --wait-ms), Redis retries every --retry-delay-ms
                        renew: acquire a random name, renew it, release it
                        fill:  acquire --count distinct names (PREFIXheld:NNNNNNNN) and keep them
    --conns N         virtual clients, one client state machine and connection each (1..)  (default 1)
    --pipeline D      cycles in flight per client: D requests outstanding on its connection (default 1)
    --threads N       OS threads sharing the clients, one mio loop each (default 1)
    --duration S      measured seconds (default 5); ignored by fill
    --warmup S        unmeasured seconds first (default 0.5)
    --ttl-ms N        lease TTL (default 30000)
    --hot-names K     hot names for --mix hot (default 4)
    --wait-ms N       fencelock WAIT for --mix hot (default 10000)
    --retry-delay-ms N  Redis retry delay after a refused acquire (default 1)
    --count N         names to take for --mix fill (default 1000000)
    --prefix P        prefix for every name (default empty)
    --server-pid PID  read the server's CPU time (/proc/PID/stat) over the measured window and its
                      RSS (/proc/PID/status) before and after; CLK_TCK env overrides 100 ticks/s
    --seed N          random seed for names and Redis holder values (default 1)
    --label L         a label copied into the JSON line

ECHO-SERVER OPTIONS:
    --addr HOST:PORT  address to bind (default 127.0.0.1:0)
    --ready-file P    once listening, write 'HOST PORT' to P

Latencies are from submitting a request to its typed reply (ns histograms, ~0.2% precision);
ops counts every request (a cycle is 2 or 3), cpu_us_per_op is server CPU / ops.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprint!("{HELP}");
        return ExitCode::from(2);
    };
    let flags = match parse_flags(args.get(1..).unwrap_or_default()) {
        Ok(flags) => flags,
        Err(error) => return fail(&error),
    };
    let result = match command.as_str() {
        "-h" | "--help" | "help" => {
            print!("{HELP}");
            Ok(())
        }
        "run" => run(&flags),
        "echo-server" => echo_server(&flags),
        "engine" => run_engine(&flags),
        other => Err(format!("unknown command {other:?}; see loadgen --help")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &str) -> ExitCode {
    eprintln!("loadgen: {error}");
    ExitCode::from(2)
}

#[derive(Debug, Default)]
struct Flags(Vec<(String, String)>);

impl Flags {
    fn text(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.text(name) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| format!("--{name}: not a number: {text:?}")),
        }
    }

    fn seconds(&self, name: &str, default: f64) -> Result<Duration, String> {
        let seconds: f64 = self.number(name, default)?;
        Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("--{name}: not a duration: {seconds}"))
    }

    fn addr(&self, default: &str) -> Result<SocketAddr, String> {
        let text = self.text("addr").unwrap_or(default);
        let addr: SocketAddr = text
            .parse()
            .map_err(|_| format!("--addr: not HOST:PORT: {text:?}"))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "--addr {addr}: only loopback addresses are allowed"
            ));
        }
        Ok(addr)
    }
}

fn parse_flags(args: &[String]) -> Result<Flags, String> {
    let mut flags = Flags::default();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if word == "-h" || word == "--help" {
            flags.0.push(("help".into(), String::new()));
            continue;
        }
        let Some(name) = word.strip_prefix("--") else {
            return Err(format!("unexpected argument {word:?}; see loadgen --help"));
        };
        let (name, value) = match name.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => {
                let value = words
                    .next()
                    .ok_or_else(|| format!("--{name} needs a value"))?;
                (name.to_string(), value.clone())
            }
        };
        flags.0.push((name, value));
    }
    Ok(flags)
}

fn run(flags: &Flags) -> Result<(), String> {
    if flags.text("help").is_some() {
        print!("{HELP}");
        return Ok(());
    }
    let target = match flags.text("target").unwrap_or("fencelock") {
        "fencelock" => Target::Fencelock,
        "redis" => Target::Redis,
        "echo" => Target::Echo,
        other => return Err(format!("--target {other:?}: fencelock, redis or echo")),
    };
    let mix = match flags.text("mix").unwrap_or("cycle") {
        "cycle" => Mix::Cycle,
        "hot" => Mix::Hot,
        "renew" => Mix::Renew,
        "fill" => Mix::Fill,
        other => return Err(format!("--mix {other:?}: cycle, hot, renew or fill")),
    };
    let options = Options {
        addr: flags.addr("127.0.0.1:7380")?,
        target,
        mix,
        conns: flags.number("conns", 1)?,
        pipeline: flags.number("pipeline", 1)?,
        threads: flags.number("threads", 1)?,
        warmup: flags.seconds("warmup", 0.5)?,
        duration: flags.seconds("duration", 5.0)?,
        ttl_ms: flags.number("ttl-ms", 30_000)?,
        hot_names: flags.number("hot-names", 4)?,
        wait_ms: flags.number("wait-ms", 10_000)?,
        retry_delay_ms: flags.number("retry-delay-ms", 1)?,
        count: flags.number("count", 1_000_000)?,
        prefix: flags.text("prefix").unwrap_or("").to_string(),
        server_pid: flags
            .text("server-pid")
            .map(str::parse)
            .transpose()
            .map_err(|_| "--server-pid: not a pid".to_string())?,
        seed: flags.number("seed", 1)?,
    };
    let outcome = load::run(&options)?;
    let label = flags.text("label").unwrap_or("");
    println!("{}", json(label, &options, &outcome));
    eprintln!("{}", summary(&options, &outcome));
    if outcome.ops == 0 {
        return Err("no operation completed in the measured window".into());
    }
    Ok(())
}

fn echo_server(flags: &Flags) -> Result<(), String> {
    if flags.text("help").is_some() {
        print!("{HELP}");
        return Ok(());
    }
    let addr = flags.addr("127.0.0.1:0")?;
    echo::serve(addr, flags.text("ready-file")).map_err(|error| format!("echo-server: {error}"))
}

fn run_engine(flags: &Flags) -> Result<(), String> {
    let duration = flags.seconds("duration", 2.0)?;
    let rate = engine::pairs_per_second(duration)?;
    println!(
        "{{\"engine\":\"rust\",\"pairs_per_s\":{rate:.0},\"us_per_pair\":{:.3}}}",
        1e6 / rate
    );
    Ok(())
}

fn latency_json(histogram: &Histogram) -> String {
    let us = |nanos: u64| nanos as f64 / 1000.0;
    format!(
        "{{\"count\":{},\"mean_us\":{:.2},\"p50_us\":{:.2},\"p90_us\":{:.2},\"p99_us\":{:.2},\"p999_us\":{:.2},\"max_us\":{:.2}}}",
        histogram.count(),
        histogram.mean() / 1000.0,
        us(histogram.quantile(0.50)),
        us(histogram.quantile(0.90)),
        us(histogram.quantile(0.99)),
        us(histogram.quantile(0.999)),
        us(histogram.max()),
    )
}

fn json(label: &str, options: &Options, outcome: &Outcome) -> String {
    let target = match options.target {
        Target::Fencelock => "fencelock",
        Target::Redis => "redis",
        Target::Echo => "echo",
    };
    let mix = match options.mix {
        Mix::Cycle => "cycle",
        Mix::Hot => "hot",
        Mix::Renew => "renew",
        Mix::Fill => "fill",
    };
    let seconds = outcome.seconds.max(1e-9);
    let cpu_per_op = match outcome.server_cpu_seconds {
        Some(cpu) if outcome.ops > 0 => format!("{:.3}", cpu * 1e6 / outcome.ops as f64),
        _ => "null".into(),
    };
    let cpu = outcome
        .server_cpu_seconds
        .map_or_else(|| "null".into(), |cpu| format!("{cpu:.3}"));
    let rss = |value: Option<u64>| value.map_or_else(|| "null".into(), |value| value.to_string());
    let mut errors: Vec<_> = outcome.errors.iter().collect();
    errors.sort();
    let errors: Vec<String> = errors
        .iter()
        .map(|(code, count)| format!("\"{}\":{count}", code.replace(['"', '\\'], "")))
        .collect();
    format!(
        "{{\"label\":\"{}\",\"target\":\"{target}\",\"mix\":\"{mix}\",\"conns\":{},\"pipeline\":{},\"threads\":{},\
\"seconds\":{seconds:.3},\"ops\":{},\"cycles\":{},\"retries\":{},\"ops_per_s\":{:.1},\"cycles_per_s\":{:.1},\
\"server_cpu_s\":{cpu},\"cpu_us_per_op\":{cpu_per_op},\"rss_before\":{},\"rss_after\":{},\"connections\":{},\
\"errors\":{{{}}},\"op\":{},\"acquire\":{},\"renew\":{},\"release\":{},\"cycle\":{}}}",
        label.replace(['"', '\\'], ""),
        options.conns,
        options.pipeline,
        options.threads,
        outcome.ops,
        outcome.cycles,
        outcome.retries,
        outcome.ops as f64 / seconds,
        outcome.cycles as f64 / seconds,
        rss(outcome.server_rss_before),
        rss(outcome.server_rss_after),
        outcome.connections,
        errors.join(","),
        latency_json(&outcome.op),
        latency_json(&outcome.acquire),
        latency_json(&outcome.renew),
        latency_json(&outcome.release),
        latency_json(&outcome.cycle),
    )
}

fn summary(options: &Options, outcome: &Outcome) -> String {
    let seconds = outcome.seconds.max(1e-9);
    let us = |nanos: u64| nanos as f64 / 1000.0;
    let mut text = format!(
        "{:?} {:?} conns={} pipeline={}: {:.0} ops/s, {:.0} cycles/s; op p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us",
        options.target,
        options.mix,
        options.conns,
        options.pipeline,
        outcome.ops as f64 / seconds,
        outcome.cycles as f64 / seconds,
        us(outcome.op.quantile(0.5)),
        us(outcome.op.quantile(0.99)),
        us(outcome.op.quantile(0.999)),
    );
    if let Some(cpu) = outcome.server_cpu_seconds {
        if outcome.ops > 0 {
            text.push_str(&format!(
                "; server {:.2} us CPU/op",
                cpu * 1e6 / outcome.ops as f64
            ));
        }
    }
    if !outcome.errors.is_empty() {
        text.push_str(&format!("; errors {:?}", outcome.errors));
    }
    text
}
