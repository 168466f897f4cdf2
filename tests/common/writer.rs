//! The end-to-end tests' writer: the benchmarks' writer ([`pgkeel_bench::writer`]), inserting
//! unique ids continuously through a DSN and journalling every acknowledged commit with the
//! server that acknowledged it, run in the background with the tests' patience.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use pgkeel_bench::writer::Ack;
use pgkeel_bench::writer::{self, Journal};

pub struct Writer {
    journal: Arc<Journal>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Writer {
    /// Creates the writers' table and starts writing through `dsn` (a multi-host DSN with
    /// `target_session_attrs=read-write` follows the leader).
    pub async fn start(dsn: String) -> Writer {
        writer::create_table(&dsn)
            .await
            .expect("creating the writers' table");
        // The tests count acknowledged commits rather than time them: a statement may wait
        // 5 s (a synchronous commit while the standby changes) before the writer gives up on
        // its connection, and nothing paces the writes. A host gets 2 s to connect, so that
        // a frozen former leader does not hold the writer long.
        let w = writer::Writer {
            pace: Duration::ZERO,
            retry: Duration::from_millis(50),
            connect_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(5),
            ..writer::Writer::standard(dsn)
        };
        let journal = Arc::new(Journal::default());
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(w.run(Arc::new(AtomicI64::new(1)), journal.clone(), stop.clone()));
        Writer {
            journal,
            stop,
            task,
        }
    }

    pub fn count(&self) -> usize {
        self.journal.with_acks(<[_]>::len)
    }

    /// Waits until `more` further commits are acknowledged.
    pub async fn wait_for_more(&self, more: usize, timeout: Duration) -> anyhow::Result<()> {
        let target = self.count() + more;
        let deadline = Instant::now() + timeout;
        while self.count() < target {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the writer got {} of {target} acknowledgements within {timeout:?}",
                self.count()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Stops writing; every acknowledged write, in the order the acknowledgements came.
    pub async fn stop(self) -> Vec<Ack> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        self.journal.with_acks(<[_]>::to_vec)
    }
}

/// Panics (after the agents' logs) unless every acknowledged id is on node `name`.
pub async fn assert_none_lost(c: &pgkeel_localcluster::LocalCluster, name: &str, acks: &[Ack]) {
    let i = c.index_of(name).expect("a node of the cluster");
    let lost = super::must(c, missing(&c.nodes[i].dsn(), acks).await);
    if !lost.is_empty() {
        super::dump_logs(c);
        panic!(
            "{} of {} acknowledged commits are missing on {name}: {:?}",
            lost.len(),
            acks.len(),
            &lost[..lost.len().min(20)]
        );
    }
}

/// `SHOW synchronous_standby_names` on the server at `dsn`.
pub async fn ssn(dsn: &str) -> anyhow::Result<String> {
    let client = super::connect(dsn).await?;
    Ok(client
        .query_one("SHOW synchronous_standby_names", &[])
        .await?
        .get(0))
}

/// The acknowledged ids missing from the writers' table at `dsn`.
pub async fn missing(dsn: &str, acks: &[Ack]) -> anyhow::Result<Vec<i64>> {
    let ids: Vec<i64> = acks.iter().map(|a| a.id).collect();
    let present = writer::present(dsn, &ids).await?;
    Ok(ids.into_iter().filter(|id| !present.contains(id)).collect())
}
