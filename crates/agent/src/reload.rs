//! SIGHUP and `POST /reload`: the config file read again, and what can change at once
//! taken on (see `pgkeel_core::config::plan_reload`). A file that no longer loads changes
//! nothing: the running configuration stays, and the error is logged.

use std::path::Path;
use std::time::Duration;

use pgkeel_core::config::{load_file, plan_reload};
use pgkeel_core::Config;

/// A file read is bounded: a stalled disk must not hold the HA loop.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads `path` again and applies what can change to `live`.
pub(crate) async fn reread(path: &Path, live: &mut Config) {
    let p = path.to_path_buf();
    let loaded = tokio::time::timeout(
        READ_TIMEOUT,
        tokio::task::spawn_blocking(move || load_file(&p)),
    )
    .await;
    let loaded = match loaded {
        Err(_) => {
            tracing::error!(
                "reload: {} could not be read within {READ_TIMEOUT:?}; the running configuration stays",
                path.display()
            );
            return;
        }
        Ok(Err(e)) => {
            tracing::error!("reload: reading {}: {e}", path.display());
            return;
        }
        Ok(Ok(Err(e))) => {
            tracing::error!("reload: {e}; the running configuration stays",);
            return;
        }
        Ok(Ok(Ok(l))) => l,
    };
    for w in &loaded.warnings {
        tracing::warn!("{}: {w}", path.display());
    }
    let plan = plan_reload(live, &loaded.config);
    if plan.applied.contains(&"log.level") {
        // Patroni's default when the key goes away.
        crate::log_level::set(plan.config.log.level.as_deref().unwrap_or("info"));
    }
    if plan.applied.is_empty() && plan.restart_needed.is_empty() {
        // Patroni's words.
        tracing::info!("No local configuration items changed.");
    }
    if !plan.applied.is_empty() {
        tracing::info!("reload: {} changed and applied", plan.applied.join(", "));
    }
    if !plan.restart_needed.is_empty() {
        tracing::warn!(
            "reload: {} changed in {}; restart the agent to apply (the running values stay until then)",
            plan.restart_needed.join(", "),
            path.display()
        );
    }
    *live = plan.config;
}
