//! Runs Patroni's callbacks (`postgresql.callbacks`) as Patroni's `CallbackExecutor` does:
//! `CMD ACTION ROLE SCOPE` from the agent's working directory, without waiting for it, one
//! at a time: a callback still running when the next one is due is killed first. Each run
//! is logged with its exit status and duration. Which callback and when is decided by
//! `pgkeel_core::callbacks::after`.

use std::process::Stdio;
use std::sync::Mutex;
use std::time::Instant;

use tokio::task::JoinHandle;

/// Runs `pre_promote` or `before_stop` (`what`) to its end, as Patroni does: the command alone,
/// no arguments added, from the agent's working directory. Logged in Patroni's words; true
/// when it exited 0.
pub async fn run_hook(what: &str, argv: &[String]) -> bool {
    let Some((program, args)) = argv.split_first() else {
        return true;
    };
    let shown = argv.join(" ");
    let started = Instant::now();
    let status = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .status()
        .await;
    let secs = started.elapsed().as_secs_f64();
    match status {
        Ok(s) => {
            let code = s.code().map_or_else(|| format!("{s}"), |c| c.to_string());
            tracing::info!("{what} script `{shown}` exited with {code} (after {secs:.2}s)");
            s.success()
        }
        Err(e) => {
            tracing::error!("{what} script `{shown}`: cannot start: {e}");
            false
        }
    }
}

#[derive(Default)]
pub struct CallbackRunner {
    /// The callback running now; aborting its task kills its process (`kill_on_drop`).
    current: Mutex<Option<JoinHandle<()>>>,
}

impl CallbackRunner {
    /// Starts `argv` with `ACTION ROLE SCOPE` appended; returns at once.
    pub fn fire(&self, argv: &[String], action: &str, role: &str, scope: &str) {
        let Some((program, args)) = argv.split_first() else {
            return;
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .args([action, role, scope])
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let shown = format!("{} {action} {role} {scope}", argv.join(" "));
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = current.take() {
            if !old.is_finished() {
                tracing::warn!("callback still running; killed before {action}");
                old.abort();
            }
        }
        let started = Instant::now();
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("callback {shown}: cannot start: {e}");
                return;
            }
        };
        *current = Some(tokio::spawn(async move {
            match child.wait_with_output().await {
                Ok(out) => {
                    let secs = started.elapsed().as_secs_f64();
                    if out.status.success() {
                        tracing::info!("callback {shown}: exited 0 after {secs:.2}s");
                    } else {
                        tracing::warn!("callback {shown}: {} after {secs:.2}s", out.status);
                    }
                }
                Err(e) => tracing::error!("callback {shown}: {e}"),
            }
        }));
    }
}
