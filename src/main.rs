//! `pgkeel`: the node agent, the operator CLI and a local demo cluster, in one binary.

mod cmd_agent;
mod cmd_demo;
mod ctl;
mod logfile;
mod logfmt;

use std::path::PathBuf;
use std::process::ExitCode;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "pgkeel",
    version,
    about = "PostgreSQL high availability: agent, CLI and demo"
)]
struct Cli {
    /// Configuration file (Patroni's YAML), as `patronictl -c`.
    #[arg(
        short = 'c',
        long = "config-file",
        env = "PATRONICTL_CONFIG_FILE",
        global = true
    )]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the node agent in the foreground.
    Agent {
        /// Check the configuration file and exit.
        #[arg(long)]
        validate_config: bool,
        /// The agent's configuration file.
        config: PathBuf,
    },
    #[command(flatten)]
    Ctl(ctl::Verb),
    /// The fence guardian the agent starts for itself (not for people to run).
    #[command(hide = true)]
    FenceGuard {
        /// The data directory whose postmaster to stop at the fence deadline.
        data_dir: PathBuf,
    },
    /// Start a live local cluster (etcd + N nodes on free loopback ports) until Ctrl-C.
    Demo {
        /// Number of nodes.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
        nodes: u16,
        /// Keep everything in this directory (not removed on exit).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any HTTP client is built (reqwest reads the process default).
    pgkeel_tls::install_default_provider();
    if let Cmd::FenceGuard { data_dir } = &cli.command {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
        pgkeel_agent::guard::run_guard(data_dir);
        return ExitCode::SUCCESS;
    }
    let is_ctl = matches!(cli.command, Cmd::Ctl(_));
    // The agent's `log` section (a file that does not load is reported by the agent itself,
    // which then logs in Patroni's default shape).
    let log = match &cli.command {
        Cmd::Agent { config, .. } => pgkeel_core::config::load_file(config)
            .map(|l| l.config.log)
            .unwrap_or_default(),
        _ => Default::default(),
    };
    // The CLI, like patronictl, logs warnings only unless asked.
    let default_level = log
        .level
        .clone()
        .unwrap_or_else(|| if is_ctl { "warn" } else { "info" }.to_string());
    let from_env = tracing_subscriber::EnvFilter::try_from_default_env().ok();
    let rust_log_set = from_env.is_some();
    let filter = from_env.unwrap_or_else(|| tracing_subscriber::EnvFilter::new(default_level));
    let format = match logfmt::PatroniFormat::new(
        log.format.as_deref().unwrap_or(if is_ctl {
            logfmt::PATRONICTL_FORMAT
        } else {
            logfmt::PATRONI_FORMAT
        }),
        log.dateformat.as_deref(),
    ) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("pgkeel: {e}");
            return ExitCode::FAILURE;
        }
    };
    // `log.dir`: Patroni's rotated file instead of stderr. The guard flushes what is
    // queued when main returns.
    let (writer, _flush_on_exit) = match &log.dir {
        None => (BoxMakeWriter::new(std::io::stderr), None),
        Some(dir) => {
            match logfile::RotatingFile::open(dir, log.file_size, log.file_num, log.mode) {
                Ok(file) => {
                    let (w, guard) = tracing_appender::non_blocking(file);
                    (BoxMakeWriter::new(w), Some(guard))
                }
                Err(e) => {
                    eprintln!("pgkeel: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    // The level can change on reload (`log.level`), unless RUST_LOG set it.
    let (filter, level_handle) = tracing_subscriber::reload::Layer::new(filter);
    if !rust_log_set {
        pgkeel_agent::log_level::install(move |level| {
            level_handle
                .reload(tracing_subscriber::EnvFilter::new(level))
                .map_err(|e| e.to_string())
        });
    }
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(false);
    let registry = tracing_subscriber::registry().with(filter);
    match log.json.clone() {
        Some(json) => registry
            .with(layer.event_format(logfmt::JsonFormat::new(json, log.dateformat.as_deref())))
            .init(),
        None => registry.with(layer.event_format(format)).init(),
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pgkeel: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Cmd::Agent {
                validate_config,
                config,
            } => cmd_agent::run(&config, validate_config).await,
            Cmd::Ctl(verb) => ctl::run(cli.config.as_deref(), verb).await,
            Cmd::Demo { nodes, dir } => cmd_demo::run(usize::from(nodes), dir).await,
            Cmd::FenceGuard { .. } => Ok(()), // handled before the runtime starts
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // patronictl (click): `Error: <message>` on stderr, or `Aborted!` when stdin closed
        // at a prompt; exit code 1 either way.
        Err(e) if is_ctl => {
            if e.downcast_ref::<ctl::Aborted>().is_some() {
                eprintln!("Aborted!");
            } else if let Some(c) = e.downcast_ref::<ctl::CtlError>() {
                eprintln!("Error: {c}");
            } else {
                eprintln!("Error: {e:#}");
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("pgkeel: {e:#}");
            ExitCode::FAILURE
        }
    }
}
