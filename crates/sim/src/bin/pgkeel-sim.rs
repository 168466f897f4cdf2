//! Runs seeds of the deterministic simulation and reports.
//!
//! ```text
//! pgkeel-sim --seeds 100000 [--from 0] [--jobs 2]   # many seeds: count, failures, slowest convergence
//! pgkeel-sim --seed 1234 [--log]                     # one seed: its scenario, events (and agent logs)
//! ```
//! Exit status 1 when any seed fails.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgkeel_sim::{run_scenario, Family, Scenario};

struct Args {
    from: u64,
    seeds: u64,
    jobs: usize,
    one: Option<u64>,
    log: bool,
    family: Family,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        from: 0,
        seeds: 1000,
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        one: None,
        log: false,
        family: Family::Mixed,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or(format!("{name} needs a number"))?;
            v.parse()
                .map_err(|_| format!("{name}: '{v}' is not a non-negative integer"))
        };
        match flag.as_str() {
            "--from" => a.from = value("--from")?,
            "--seeds" => a.seeds = value("--seeds")?,
            "--jobs" => a.jobs = value("--jobs")?.max(1) as usize,
            "--seed" => a.one = Some(value("--seed")?),
            "--log" => a.log = true,
            "--family" => {
                let v = it.next().ok_or("--family needs a name")?;
                a.family = Family::parse(&v).ok_or(format!(
                    "--family: '{v}' is not one of mixed, classic, gray-leader"
                ))?;
            }
            "-h" | "--help" => {
                return Err(
                    "usage: pgkeel-sim [--family mixed|classic|gray-leader] [--seeds N] [--from S] [--jobs J] | --seed S [--log]".into(),
                )
            }
            other => return Err(format!("unknown argument '{other}' (see --help)")),
        }
    }
    Ok(a)
}

fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Some(seed) = args.one {
        let o = run_scenario(Scenario::generate(seed, args.family), args.log);
        if args.log {
            print!("{}", o.log);
        }
        println!("{}", o.scenario);
        for e in &o.events {
            println!("  {e}");
        }
        println!(
            "seed {seed}: {} acked={} lost={} convergence={}",
            if o.ok() { "ok" } else { "FAILED" },
            o.acked,
            o.lost,
            o.convergence
                .map_or("-".into(), |d| format!("{:.1}s", d.as_secs_f64()))
        );
        for v in &o.violations {
            println!("  {v}");
        }
        std::process::exit(i32::from(!o.ok()));
    }
    let started = Instant::now();
    let next = Arc::new(AtomicU64::new(args.from));
    let end = args.from + args.seeds;
    let summary = Arc::new(Mutex::new(Summary::default()));
    let family = args.family;
    let threads: Vec<_> = (0..args.jobs)
        .map(|_| {
            let (next, summary) = (next.clone(), summary.clone());
            std::thread::spawn(move || loop {
                let seed = next.fetch_add(1, Ordering::SeqCst);
                if seed >= end {
                    return;
                }
                let o = run_scenario(Scenario::generate(seed, family), false);
                let mut s = summary.lock().unwrap_or_else(|e| e.into_inner());
                s.add(&o);
                if !o.ok() {
                    eprint!("{}", o.report(60));
                }
                if s.ran % 1000 == 0 {
                    eprintln!("... {} seeds, {} failed", s.ran, s.failed.len());
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let s = summary.lock().unwrap_or_else(|e| e.into_inner());
    let (slow_seed, slow) = s.slowest;
    println!(
        "SIM family={} seeds={} from={} ran={} failed={} slowest_convergence={:.1}s (seed {slow_seed}) mean_convergence={:.1}s acked={} lost_async={} gray_faults={} leader_gray_checked={} slowest_writable_again={:.1}s of {:.1}s (seed {}) wall={:.0}s",
        args.family.name(),
        args.seeds,
        args.from,
        s.ran,
        s.failed.len(),
        slow.as_secs_f64(),
        s.convergence_total.as_secs_f64() / s.converged.max(1) as f64,
        s.acked,
        s.lost,
        s.gray,
        s.gray_checked,
        s.gray_slowest.2.as_secs_f64(),
        s.gray_slowest.3.as_secs_f64(),
        s.gray_slowest.0,
        started.elapsed().as_secs_f64()
    );
    if !s.failed.is_empty() {
        println!("FAILED seeds: {:?}", s.failed);
        std::process::exit(1);
    }
}

#[derive(Default)]
struct Summary {
    ran: u64,
    failed: Vec<u64>,
    slowest: (u64, Duration),
    convergence_total: Duration,
    converged: u64,
    acked: usize,
    lost: usize,
    /// Gray failures drawn, and those of the leader the availability bound was checked for.
    gray: usize,
    gray_checked: usize,
    /// The slowest recovery after a gray failure of the leader, as a share of its bound.
    gray_slowest: (u64, f64, Duration, Duration),
}

impl Summary {
    fn add(&mut self, o: &pgkeel_sim::Outcome) {
        self.ran += 1;
        self.acked += o.acked;
        self.lost += o.lost;
        self.gray += o
            .scenario
            .faults
            .iter()
            .filter(|f| f.kind.gray().is_some())
            .count();
        for (_, took, bound) in &o.recoveries {
            self.gray_checked += 1;
            let share = took.as_secs_f64() / bound.as_secs_f64();
            if share > self.gray_slowest.1 {
                self.gray_slowest = (o.scenario.seed, share, *took, *bound);
            }
        }
        if !o.ok() {
            self.failed.push(o.scenario.seed);
        }
        if let Some(c) = o.convergence {
            self.converged += 1;
            self.convergence_total += c;
            if c > self.slowest.1 {
                self.slowest = (o.scenario.seed, c);
            }
        }
    }
}
