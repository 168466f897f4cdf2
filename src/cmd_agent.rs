//! `pgkeel agent [--validate-config] CONFIG`.

use std::path::Path;

use anyhow::Context;

pub async fn run(path: &Path, validate_only: bool) -> anyhow::Result<()> {
    let loaded = pgkeel_core::config::load_file(path)?;
    for w in &loaded.warnings {
        tracing::warn!("{}: {w}", path.display());
    }
    if validate_only {
        println!("{}: configuration is valid", path.display());
        return Ok(());
    }
    let stop = pgkeel_agent::Stop::default();
    let on_signal = stop.clone();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        let name = |term: bool| if term { "SIGTERM" } else { "SIGINT" };
        let first = tokio::select! {
            _ = term.recv() => true,
            _ = int.recv() => false,
        };
        tracing::info!(
            "{}: shutting down (within {:?}; a second signal exits at once)",
            name(first),
            pgkeel_core::decide::SHUTDOWN_BOUND
        );
        on_signal.graceful.cancel();
        let second = tokio::select! {
            _ = term.recv() => true,
            _ = int.recv() => false,
        };
        tracing::warn!("{}: a second signal, exiting at once", name(second));
        on_signal.at_once.cancel();
    });
    pgkeel_agent::run(loaded.config, stop).await
}
