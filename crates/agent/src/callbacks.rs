//! Runs Patroni's callbacks (`postgresql.callbacks`) as Patroni's `CallbackExecutor` does:
//! `CMD ACTION ROLE SCOPE` from the agent's working directory, without waiting for it, one
//! at a time: a callback still running when the next one is due is killed first. Each run
//! is logged with its exit status and duration. Which callback and when is decided by
//! `pgkeel_core::callbacks::after`.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pgkeel_api::{CallbackOutcome, CallbackStats};
use tokio::task::JoinHandle;

/// Runs `pre_promote` or `before_stop` (`what`) to its end, as Patroni does: the command alone,
/// no arguments added, from the agent's working directory. Logged in Patroni's words; true
/// when it exited 0.
pub async fn run_hook(what: &str, argv: &[String], stats: &CallbackStats) -> bool {
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
            let outcome = if s.success() {
                CallbackOutcome::Ok
            } else {
                CallbackOutcome::Failed
            };
            stats.record(what, outcome, secs);
            s.success()
        }
        Err(e) => {
            tracing::error!("{what} script `{shown}`: cannot start: {e}");
            stats.record(what, CallbackOutcome::Failed, secs);
            false
        }
    }
}

/// A callback started and not yet seen to end.
struct Running {
    action: String,
    started: Instant,
    /// Aborting it kills the process (`kill_on_drop`).
    task: JoinHandle<()>,
}

#[derive(Default)]
pub struct CallbackRunner {
    current: Mutex<Option<Running>>,
    /// Every run's outcome, for `/metrics`.
    pub stats: Arc<CallbackStats>,
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
            if !old.task.is_finished() {
                tracing::warn!(
                    "callback {} still running; killed before {action}",
                    old.action
                );
                old.task.abort();
                let secs = old.started.elapsed().as_secs_f64();
                self.stats
                    .record(&old.action, CallbackOutcome::Superseded, secs);
            }
        }
        let started = Instant::now();
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("callback {shown}: cannot start: {e}");
                self.stats.record(action, CallbackOutcome::Failed, 0.0);
                return;
            }
        };
        let stats = self.stats.clone();
        let event = action.to_string();
        let task = tokio::spawn(async move {
            let outcome = match child.wait_with_output().await {
                Ok(out) => {
                    let secs = started.elapsed().as_secs_f64();
                    if out.status.success() {
                        tracing::info!("callback {shown}: exited 0 after {secs:.2}s");
                        CallbackOutcome::Ok
                    } else {
                        tracing::warn!("callback {shown}: {} after {secs:.2}s", out.status);
                        CallbackOutcome::Failed
                    }
                }
                Err(e) => {
                    tracing::error!("callback {shown}: {e}");
                    CallbackOutcome::Failed
                }
            };
            stats.record(&event, outcome, started.elapsed().as_secs_f64());
        });
        *current = Some(Running {
            action: action.to_string(),
            started,
            task,
        });
    }
}
