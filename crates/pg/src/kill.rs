//! Killing a server that cannot be stopped politely (a hung or stopped postmaster, a
//! stalled disk): through `/proc` and signals only, never a file of the data directory.

use std::time::Duration;

use anyhow::{anyhow, Context};

use crate::control::live_postmaster;
use crate::signal;
use crate::Pg;

/// How long an immediate shutdown may take before SIGKILL: a server that answers nobody
/// would not act on it anyway, and every moment it might still run delays the failover.
const QUIT_GRACE: Duration = Duration::from_millis(500);
/// How long to wait for every killed process to be gone.
const GONE_WITHIN: Duration = Duration::from_secs(3);

impl Pg {
    /// Immediate shutdown, then SIGKILL of the postmaster and every backend; `Ok` only once
    /// none of them is left (see [`signal::terminate`]).
    pub async fn kill(&self) -> anyhow::Result<()> {
        let postmaster = match self.postmaster.alive() {
            Some(p) => p,
            None => {
                // Not seen yet (or gone): ask postmaster.pid, within the probe's deadline.
                let dir = self.data_dir().to_path_buf();
                let deadline = self.settings().probe_timeout;
                let pid = self
                    .bounded_fs(deadline, move || live_postmaster(&dir))
                    .await
                    .ok_or_else(|| {
                        anyhow!("the data directory did not answer: cannot tell whether a postmaster runs")
                    })?;
                self.postmaster.set(pid);
                match self.postmaster.alive() {
                    Some(p) => p,
                    None => return Ok(()),
                }
            }
        };
        tracing::warn!(
            "killing PostgreSQL: postmaster {} and its backends",
            postmaster.pid
        );
        tokio::task::spawn_blocking(move || signal::terminate(postmaster, QUIT_GRACE, GONE_WITHIN))
            .await
            .context("the kill's thread failed")??;
        self.postmaster.set(None);
        Ok(())
    }

    /// Remembers the postmaster a start just launched, for the fence.
    pub(crate) async fn remember_postmaster(&self) {
        if let Err(e) = self.postmaster_pid().await {
            // The next observation reads postmaster.pid again.
            tracing::warn!("cannot remember the postmaster just started: {e:#}");
        }
    }

    /// The postmaster as last seen, for the fence.
    pub fn postmaster_cache(&self) -> std::sync::Arc<signal::PostmasterCache> {
        self.postmaster.clone()
    }
}
