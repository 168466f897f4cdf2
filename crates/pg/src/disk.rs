//! Every read and write of the data directory runs here: on a blocking thread, bounded by a
//! deadline, at most one at a time.
//!
//! A stalled disk (a SAN or NFS hiccup, I/O stuck in D state) blocks a file operation for as
//! long as the stall lasts. On the agent's runtime that would stop the HA loop, which is the
//! one place that notices the hang and fails over. Here the loop only waits for the
//! deadline and gets an error (or "no answer"); the stuck thread stays stuck until the disk
//! answers, and no second one is started behind it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::anyhow;

use crate::control::live_postmaster;
use crate::Pg;

impl Pg {
    /// Runs `work` on a blocking thread within `within`; `None` when it did not finish in
    /// time or an earlier operation is still stuck (then at once, without starting another).
    pub(crate) async fn bounded_fs<T: Send + 'static>(
        &self,
        within: Duration,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        if self.fs_busy.swap(true, Ordering::SeqCst) {
            return None;
        }
        let busy = self.fs_busy.clone();
        let task = tokio::task::spawn_blocking(move || {
            let out = work();
            busy.store(false, Ordering::SeqCst);
            out
        });
        tokio::time::timeout(within, task).await.ok()?.ok()
    }

    /// [`Pg::bounded_fs`] for work that can fail: silence becomes an error naming `what`.
    pub(crate) async fn on_disk<T: Send + 'static>(
        &self,
        what: &str,
        within: Duration,
        work: impl FnOnce(Pg) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let pg = self.clone();
        self.bounded_fs(within, move || work(pg))
            .await
            .unwrap_or_else(|| {
                // The rest of this loop's calls are skipped, and the loop probes again.
                self.mark_silent();
                Err(anyhow!(
                    "{what}: the data directory {} did not answer within {within:?} \
                     (or an earlier operation on it is still blocked)",
                    self.data_dir().display()
                ))
            })
    }

    /// Small reads and writes the loop makes every time round (the sync standbys, the
    /// timeline history, whether a postmaster runs): bounded like a health probe, so a
    /// stalled disk delays the loop no more than the probe that detects it.
    pub(crate) async fn on_disk_quick<T: Send + 'static>(
        &self,
        what: &str,
        work: impl FnOnce(Pg) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let within = self.settings().probe_timeout;
        self.on_disk(what, within, work).await
    }

    /// Writes for a role change (start, follow, promote, clone), bounded like the
    /// operation itself: on a loaded disk a few fsyncs may take seconds.
    pub(crate) async fn on_disk_op<T: Send + 'static>(
        &self,
        what: &str,
        work: impl FnOnce(Pg) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let within = self.settings().op_timeout;
        self.on_disk(what, within, work).await
    }

    /// Before initdb or a clone: the data directory must be empty (else `not_empty`'s
    /// message); it is created (mode 0700, owned by PostgreSQL's user) if missing.
    pub(crate) async fn prepare_empty_data_dir(
        &self,
        what: &str,
        not_empty: fn(&std::path::Path) -> String,
    ) -> anyhow::Result<crate::run_as::Owner> {
        self.on_disk_op(what, move |pg| {
            if !pg.data_dir_empty() {
                anyhow::bail!(not_empty(pg.data_dir()));
            }
            let owner = pg.owner()?;
            owner.create_dir(pg.data_dir())?;
            Ok(owner)
        })
        .await
    }

    /// The live postmaster's pid from `postmaster.pid` (see [`live_postmaster`]), read off
    /// the runtime and remembered for the fence.
    pub(crate) async fn postmaster_pid(&self) -> anyhow::Result<Option<i32>> {
        let pid = self
            .on_disk_quick("reading postmaster.pid", |pg| {
                Ok(live_postmaster(pg.data_dir()))
            })
            .await?;
        self.postmaster.set(pid);
        Ok(pid)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn a_stuck_operation_times_out_and_blocks_no_second_one() {
        let dir = tempfile::tempdir().unwrap();
        let pg = Pg::new(crate::testing::sample_settings("n1", dir.path(), 1));
        let (release, stuck) = mpsc::channel::<()>();
        let started = std::time::Instant::now();
        let first = pg
            .on_disk("first", Duration::from_millis(100), move |_| {
                let _ = stuck.recv(); // a read blocked until the disk answers
                Ok(())
            })
            .await;
        let err = format!("{:#}", first.unwrap_err());
        assert!(
            err.contains("first") && err.contains("did not answer"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        // The first is still stuck: the second gets its answer at once, without a thread.
        let second_started = std::time::Instant::now();
        let second = pg
            .on_disk("second", Duration::from_secs(10), |_| Ok(()))
            .await;
        assert!(second.is_err());
        assert!(second_started.elapsed() < Duration::from_secs(1));
        // Once the disk answers, work runs again.
        release.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match pg.on_disk("third", Duration::from_secs(1), |_| Ok(7)).await {
                Ok(v) => break assert_eq!(v, 7),
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(e) => panic!("still blocked after the release: {e:#}"),
            }
        }
    }
}
