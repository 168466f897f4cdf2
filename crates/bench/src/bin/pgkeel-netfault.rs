//! `pgkeel-netfault`: the network-fault suite's command line (the suite is
//! `pgkeel_bench::netfault`). A real 3-node pgkeel cluster and a 3-member etcd, each process
//! group in its own Linux network namespace, faulted one scenario at a time under continuous
//! writes; per scenario and in total it reports acknowledged writes lost, writes acknowledged
//! by two primaries in overlapping time, and time to recover, against targets; exits non-zero
//! if one is missed.
//!
//! Needs root (namespaces, veths, tc, tmpfs and FUSE mounts), bindfs, and the `pgkeel`
//! binary next to it:
//!
//!   cargo build -p pgkeel -p pgkeel-bench && sudo target/debug/pgkeel-netfault    # everything
//!   sudo target/debug/pgkeel-netfault --short                          # the CI subset
//!   sudo target/debug/pgkeel-netfault --fault 2 --fault 7 --mode sync  # a choice

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use pgkeel_bench::netfault::faults::{Mode, SHORT};
use pgkeel_bench::netfault::{self, Run};
use pgkeel_bench::setup::{self, Profile};

#[derive(Parser, Debug)]
#[command(
    about = "network-fault suite: a pgkeel cluster in network namespaces, faulted under writes"
)]
struct Args {
    /// The CI subset: faults 1, 2, 5, 6f, 7, 8 and 15 asynchronous, 1 synchronous.
    #[arg(long)]
    short: bool,
    /// Faults to run (1-15, 6f for 6 with failsafe_mode); repeat the flag. Default: all.
    #[arg(long = "fault")]
    faults: Vec<String>,
    /// Modes to run each fault in; repeat the flag. Default: async and sync.
    #[arg(long = "mode", value_enum)]
    modes: Vec<Mode>,
    /// How long each fault is held before it is healed, in seconds.
    #[arg(long, default_value_t = netfault::DEFAULT_HOLD_SECS)]
    hold: u64,
    /// Timing profile (fast: ttl 3 s, loop_wait 1 s; default: ttl 10 s, loop_wait 2 s).
    #[arg(long, value_enum, default_value_t = netfault::DEFAULT_PROFILE)]
    profile: Profile,
    /// Name prefix of namespaces and interfaces (default pgk<pid>; at most 10 characters).
    #[arg(long)]
    prefix: Option<String>,
    /// Working directory (default: a new directory under /tmp).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the working directory (it is always kept when a target was missed).
    #[arg(long)]
    keep: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match rt.block_on(run(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let plan = if args.short {
        SHORT.to_vec()
    } else {
        netfault::plan(&args.faults, &args.modes)?
    };
    netfault::run(Run {
        plan,
        hold: Duration::from_secs(args.hold),
        profile: args.profile,
        prefix: args.prefix,
        dir: args.dir,
        keep: args.keep,
        pgkeel: setup::pgkeel_binary()?,
    })
    .await
}
