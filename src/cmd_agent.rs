//! `pgkeel agent [--validate-config] CONFIG`.

use std::path::Path;

use anyhow::Context;

pub async fn run(path: &Path, validate_only: bool) -> anyhow::Result<()> {
    let loaded = pgkeel_core::config::load_file(path)?;
    // The paths, which only the machine can tell about (the config crate does no I/O).
    pgkeel_pg::check_data_dir(&loaded.config.postgresql.data_dir)
        .map_err(|e| anyhow::anyhow!("{}: postgresql.data_dir: {e}", path.display()))?;
    for w in &loaded.warnings {
        tracing::warn!("{}: {w}", path.display());
    }
    warn_if_exposed(path);
    let api = &loaded.config.restapi;
    if api.unsafe_methods_exposed() {
        tracing::warn!(
            "restapi.listen {} is not a loopback address and restapi.authentication is not set: \
             anyone who can reach it may switch over, fail over, restart, reinitialize or change /config; \
             set restapi.authentication (username, password)",
            api.listen
        );
    }
    check_parameters(path, &loaded.config).await?;
    // The REST API's certificates and keys, read as the agent will read them at start.
    pgkeel_agent::tls::load(&loaded.config)
        .map_err(|e| anyhow::anyhow!("{}: {e:#}", path.display()))?;
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
    let on_hup = stop.reload.clone();
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    // `systemctl reload` (ExecReload=/bin/kill -HUP $MAINPID): re-read the file, never stop.
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration");
            on_hup.notify_one();
        }
    });
    pgkeel_agent::run(loaded.config, Some(path.to_path_buf()), stop).await
}

/// The config file holds passwords (the superuser's, the replication user's, the REST API's):
/// say so when users other than its owner may read it.
fn warn_if_exposed(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                "{}: readable by users other than its owner (mode {mode:04o}) and it holds passwords: chmod 600 it",
                path.display()
            );
        }
    }
}

/// The file's PostgreSQL parameters (`bootstrap.dcs` and the local `postgresql.parameters`)
/// as PostgreSQL itself reads them: they are written before any server runs, so a value it
/// refuses would only show as a server that does not start. When the check cannot run (no
/// PostgreSQL installed yet), it is said and the agent goes on: the server's pg_settings
/// are checked again once it runs.
async fn check_parameters(path: &Path, cfg: &pgkeel_core::Config) -> anyhow::Result<()> {
    let pg = &cfg.postgresql;
    let mut all = cfg.bootstrap.dcs.parameters.clone();
    all.extend(pg.parameters.clone());
    if all.is_empty() {
        return Ok(());
    }
    match pgkeel_pg::check_parameters_offline(pg.bin_dir.as_deref(), &pg.data_dir, &all).await {
        Ok(refused) if refused.is_empty() => Ok(()),
        Ok(refused) => {
            let lines: Vec<String> = refused
                .iter()
                .map(|r| {
                    let from = if pg.parameters.contains_key(&r.name) {
                        "postgresql.parameters"
                    } else {
                        "bootstrap.dcs.postgresql.parameters"
                    };
                    format!(
                        "{}: {from}.{}: PostgreSQL refuses it: {}",
                        path.display(),
                        r.name,
                        r.message
                    )
                })
                .collect();
            anyhow::bail!("{}", lines.join("\n"))
        }
        Err(e) => {
            tracing::warn!(
                "{}: PostgreSQL parameters not checked by PostgreSQL before the first start: {e:#}",
                path.display()
            );
            Ok(())
        }
    }
}
