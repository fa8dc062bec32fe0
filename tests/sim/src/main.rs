//! Runs many seeds over every core: `fencelock-sim --seeds 100000 [--jobs 2] [--start 0]`, or
//! replays one with its trace: `fencelock-sim --seed N [--trace LINES]` (200 lines unless told).

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant as WallClock;

use fencelock_sim::{run, run_cluster, Options, Outcome};

/// Every step of a run allocates (messages, replies, checks): mimalloc makes that cheaper than
/// glibc's malloc and free, and allocation never decides anything in a run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const USAGE: &str = "usage: fencelock-sim [--cluster] [--seeds N] [--start S] [--jobs J] [--strict] | [--cluster] --seed S [--trace LINES]";

const HELP: &str = "\
fencelock-sim: the whole of fencelock (servers, clients, network, disks, crashes) in one
seeded process on simulated time; every run is checked as it goes and at its end.

usage: fencelock-sim [--cluster] [--seeds N] [--start S] [--jobs J] [--strict]
       fencelock-sim [--cluster] --seed S [--trace LINES]

  --cluster       simulate the cluster instead: three nodes replicating through a modelled
                  etcd, clients failing over between them, leaders paused past their
                  election lease, nodes crashed or cut off from etcd, etcd calls failing
  --seeds N       run N seeds (default 1000), with a progress bar and the simulated hours
                  (a line per tenth of the seeds when standard error is not a terminal)
  --start S       the first seed (default 0)
  --jobs J        seeds run in parallel (default: every core)
  --strict        a lock history the linearizability search leaves undecided fails the
                  run, as it does for the fixed seeds (`make test` runs seeds this way)
  --seed S        run one seed and print what it did; on a failure, its trace
  --trace LINES   lines of trace printed for a failing --seed (default 200)

A failing seed stops the run and prints the command that replays it. See tests/sim/README.md.";

struct Args {
    seeds: u64,
    start: u64,
    jobs: usize,
    replay: Option<u64>,
    trace: usize,
    strict: bool,
    cluster: bool,
}

impl Args {
    /// Runs one seed of the chosen simulation.
    fn run(&self, options: &Options) -> Outcome {
        if self.cluster {
            run_cluster(options)
        } else {
            run(options)
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "--help" || a == "-h") {
        println!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let args = match parse(argv) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}\n{USAGE} (--help for more)");
            return ExitCode::from(2);
        }
    };
    if let Some(seed) = args.replay {
        let mut options = Options::new(seed);
        options.trace_len = args.trace;
        let outcome = args.run(&options);
        return report(seed, &outcome, true, args.cluster);
    }
    run_many(&args)
}

fn parse(argv: Vec<String>) -> Result<Args, String> {
    let mut args = Args {
        seeds: 1000,
        start: 0,
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        replay: None,
        trace: 200,
        strict: false,
        cluster: false,
    };
    let mut it = argv.into_iter();
    while let Some(flag) = it.next() {
        if flag == "--strict" {
            args.strict = true;
            continue;
        }
        if flag == "--cluster" {
            args.cluster = true;
            continue;
        }
        let mut value = || -> Result<u64, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--seeds" => args.seeds = value()?,
            "--start" => args.start = value()?,
            "--jobs" => args.jobs = usize::try_from(value()?).unwrap_or(1).max(1),
            "--seed" => args.replay = Some(value()?),
            "--trace" => args.trace = usize::try_from(value()?).unwrap_or(usize::MAX),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn run_many(args: &Args) -> ExitCode {
    let next = AtomicU64::new(args.start);
    let done = AtomicU64::new(0);
    let simulated_ms = AtomicU64::new(0);
    let undecided = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<(u64, Outcome)>> = Mutex::new(None);
    let end = args.start.saturating_add(args.seeds);
    let began = WallClock::now();
    // A bar redrawn in place on a terminal; in a log (CI), a line per tenth of the seeds.
    let terminal = std::io::stderr().is_terminal();
    // Woken by each job as it ends, so the time reported is not rounded up to a redraw.
    let main = std::thread::current();
    std::thread::scope(|scope| {
        for _ in 0..args.jobs {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    let outcome = args.run(&Options::new(seed));
                    simulated_ms.fetch_add(
                        outcome.simulated_ms.saturating_sub(1_000_000),
                        Ordering::Relaxed,
                    );
                    undecided.fetch_add(outcome.undecided_histories, Ordering::Relaxed);
                    if outcome.undecided_histories > 0 {
                        // Named, so that the history can be looked at with `--seed`.
                        eprintln!(
                            "\nseed {seed}: {} lock histories undecided",
                            outcome.undecided_histories
                        );
                    }
                    if outcome.violation.is_some() {
                        stop.store(true, Ordering::Relaxed);
                        if let Ok(mut slot) = failure.lock() {
                            if slot.as_ref().map_or(true, |(s, _)| seed < *s) {
                                *slot = Some((seed, outcome));
                            }
                        }
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                main.unpark();
            });
        }
        let mut last = 0;
        while done.load(Ordering::Relaxed) < args.seeds && !stop.load(Ordering::Relaxed) {
            std::thread::park_timeout(std::time::Duration::from_millis(200));
            let finished = done.load(Ordering::Relaxed);
            let shown = if terminal {
                finished
            } else {
                finished - finished % (args.seeds / 10).max(1)
            };
            // The last line is printed once, after the loop.
            if shown != last && finished < args.seeds {
                last = shown;
                let simulated = simulated_ms.load(Ordering::Relaxed);
                progress(finished, args.seeds, simulated, began, terminal);
            }
        }
    });
    let finished = done.load(Ordering::Relaxed);
    progress(
        finished,
        args.seeds,
        simulated_ms.load(Ordering::Relaxed),
        began,
        terminal,
    );
    if terminal {
        eprintln!();
    }
    let taken = failure.lock().ok().and_then(|mut slot| slot.take());
    match taken {
        Some((seed, outcome)) => report(seed, &outcome, false, args.cluster),
        None => {
            let hours = simulated_ms.load(Ordering::Relaxed) as f64 / 3_600_000.0;
            let seconds = began.elapsed().as_secs_f64();
            let undecided = undecided.load(Ordering::Relaxed);
            println!(
                "{finished} seeds passed: {hours:.1} simulated hours in {seconds:.1} s ({:.0} simulated hours per wall-clock minute, {} jobs); {undecided} lock histories undecided",
                hours * 60.0 / seconds.max(1e-9),
                args.jobs,
            );
            if args.strict && undecided > 0 {
                println!(
                    "--strict: {undecided} lock histories were not decided (the seeds are named above)"
                );
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
    }
}

fn progress(done: u64, total: u64, simulated_ms: u64, began: WallClock, terminal: bool) {
    let width = 30u64;
    let filled = (done * width)
        .checked_div(total)
        .unwrap_or(width)
        .min(width);
    let bar: String = (0..width)
        .map(|i| if i < filled { '#' } else { '.' })
        .collect();
    let hours = simulated_ms as f64 / 3_600_000.0;
    let line = format!(
        "[{bar}] {done}/{total} seeds, {hours:.1} simulated h, {:.0} s",
        began.elapsed().as_secs_f64()
    );
    if terminal {
        eprint!("\r{line}");
    } else {
        eprintln!("{line}");
    }
    let _ = std::io::stderr().flush();
}

fn report(seed: u64, outcome: &Outcome, full: bool, cluster: bool) -> ExitCode {
    let Some(violation) = &outcome.violation else {
        println!(
            "seed {seed} passed: {} simulated ms, {} steps, {} grants, {} crashes, {} clean shutdowns, fenced writes {:?} (accepted, refused), {} operations checked ({} lock histories undecided), {} waiters QUERY listed checked",
            outcome.simulated_ms - 1_000_000,
            outcome.steps,
            outcome.grants,
            outcome.crashes,
            outcome.shutdowns,
            outcome.fenced_writes,
            outcome.checked_ops,
            outcome.undecided_histories,
            outcome.waiters_checked
        );
        return ExitCode::SUCCESS;
    };
    println!(
        "seed {seed} FAILED at t={} ms: {}",
        violation.at_ms, violation.message
    );
    println!(
        "last events{}:",
        if full { "" } else { " (replay for more)" }
    );
    for line in &violation.trace {
        println!("  {line}");
    }
    println!(
        "replay: cargo run -p fencelock-sim --profile sim -- {}--seed {seed}",
        if cluster { "--cluster " } else { "" }
    );
    ExitCode::FAILURE
}
