//! The writer every measurement uses (the benchmarks, the network-fault suite and the
//! end-to-end tests): one `INSERT` at a time through a DSN (each host in turn, as libpq does),
//! reconnecting on any error or on a statement without an answer, and a journal of every
//! acknowledged write with the server that acknowledged it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::client::connect;

/// The table every writer inserts into.
pub const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS bench (id bigint PRIMARY KEY, port int)";

/// How long the set-up and check connections ([`create_table`], [`present`]) may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Creates the writers' table through `dsn` (the cluster's read-write DSN).
pub async fn create_table(dsn: &str) -> anyhow::Result<()> {
    let c = connect(dsn, SETUP_TIMEOUT)
        .await
        .context("connecting to create the writers' table")?;
    c.batch_execute(CREATE_TABLE)
        .await
        .context("creating the writers' table")?;
    Ok(())
}

/// Which of `ids` the server at `dsn` has in the writers' table: an acknowledged write that
/// is not there was lost.
pub async fn present(dsn: &str, ids: &[i64]) -> anyhow::Result<HashSet<i64>> {
    let c = connect(dsn, SETUP_TIMEOUT)
        .await
        .context("connecting to check the writers' table")?;
    Ok(c.query("SELECT id FROM bench WHERE id = ANY($1)", &[&ids])
        .await
        .context("reading the writers' table")?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// One acknowledged write.
#[derive(Debug, Clone, Copy)]
pub struct Ack {
    pub id: i64,
    /// The port of the server that acknowledged it (every local node listens on 127.0.0.1).
    pub port: u16,
    /// That server's timeline, read when the connection was made. A primary keeps its
    /// timeline for as long as it stays primary, and leaving that role (a demotion) restarts
    /// the server and so closes the connection: every write on a connection shares it.
    pub timeline: u32,
    /// When the statement was sent: the commit happened between `sent` and `at`.
    pub sent: Instant,
    /// When the acknowledgement arrived.
    pub at: Instant,
}

/// A read-write connection made: `port` was a primary on `timeline` at `at`.
#[derive(Debug, Clone, Copy)]
pub struct Session {
    pub port: u16,
    pub timeline: u32,
    pub at: Instant,
}

/// What writers saw. Acks are appended in the order they were received.
#[derive(Default)]
pub struct Journal {
    acks: Mutex<Vec<Ack>>,
    sessions: Mutex<Vec<Session>>,
    /// Statements that failed or got no answer in time.
    pub failed_statements: AtomicU64,
    /// Connection attempts that found no writable server.
    pub failed_connects: AtomicU64,
    /// When each failed statement or connection attempt ended, in order.
    failures: Mutex<Vec<Instant>>,
}

impl Journal {
    /// Runs `f` on the acks so far (under the lock: keep `f` short).
    pub fn with_acks<R>(&self, f: impl FnOnce(&[Ack]) -> R) -> R {
        f(&self.acks.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// When the first failure at or after `t` ended.
    pub fn first_failure_after(&self, t: Instant) -> Option<Instant> {
        let f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        f.iter().find(|&&at| at >= t).copied()
    }

    fn failed(&self) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Instant::now());
    }

    pub fn sessions(&self) -> Vec<Session> {
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// How one writer writes.
#[derive(Debug, Clone)]
pub struct Writer {
    pub dsn: String,
    /// Pause after each acknowledged write.
    pub pace: Duration,
    /// Pause after a failed connection attempt.
    pub retry: Duration,
    /// Limit on each host's connection attempt (libpq's `connect_timeout`).
    pub connect_timeout: Duration,
    /// Limit on one statement; past it the connection is dropped and a new one made.
    pub statement_timeout: Duration,
}

impl Writer {
    /// The client every benchmark uses: 300 ms per host, 500 ms per statement, a write every
    /// 2 ms, a new attempt 10 ms after a failed connection.
    pub fn standard(dsn: String) -> Writer {
        Writer {
            dsn,
            pace: Duration::from_millis(2),
            retry: Duration::from_millis(10),
            connect_timeout: Duration::from_millis(300),
            statement_timeout: Duration::from_millis(500),
        }
    }

    /// A probe of one node (`node_dsn` names that node alone): the standard client, writing
    /// only while the node accepts writes, at a slower pace. A deposed leader that still
    /// accepts writes is caught by its probe; the client, already on the new leader, would
    /// not go back to it.
    pub fn probe(node_dsn: &str) -> Writer {
        Writer {
            pace: Duration::from_millis(10),
            retry: Duration::from_millis(100),
            ..Writer::standard(format!("{node_dsn} target_session_attrs=read-write"))
        }
    }

    /// Writes until `stop`, taking each id from `ids` (shared by every writer, so ids are
    /// unique), and records what happens in `journal`.
    pub async fn run(self, ids: Arc<AtomicI64>, journal: Arc<Journal>, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            let Some((client, session)) = self.session().await else {
                journal.failed_connects.fetch_add(1, Ordering::Relaxed);
                journal.failed();
                tokio::time::sleep(self.retry).await;
                continue;
            };
            journal
                .sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(session);
            while !stop.load(Ordering::Relaxed) {
                let id = ids.fetch_add(1, Ordering::Relaxed);
                let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id];
                let sent = Instant::now();
                let q = client.execute(
                    "INSERT INTO bench (id, port) VALUES ($1, inet_server_port())",
                    &params,
                );
                match tokio::time::timeout(self.statement_timeout, q).await {
                    Ok(Ok(_)) => journal
                        .acks
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Ack {
                            id,
                            port: session.port,
                            timeline: session.timeline,
                            sent,
                            at: Instant::now(),
                        }),
                    _ => {
                        journal.failed_statements.fetch_add(1, Ordering::Relaxed);
                        journal.failed();
                        break;
                    }
                }
                tokio::time::sleep(self.pace).await;
            }
        }
    }

    /// A read-write connection and the server's port and timeline.
    async fn session(&self) -> Option<(tokio_postgres::Client, Session)> {
        let client = connect(&self.dsn, self.connect_timeout).await.ok()?;
        // The current WAL file's name starts with the timeline the server writes on, in hex.
        let q = client.query_one(
            "SELECT inet_server_port(), pg_walfile_name(pg_current_wal_lsn())",
            &[],
        );
        let row = tokio::time::timeout(self.statement_timeout, q)
            .await
            .ok()?
            .ok()?;
        let port = u16::try_from(row.try_get::<_, i32>(0).ok()?).ok()?;
        let walfile: String = row.try_get(1).ok()?;
        let timeline = u32::from_str_radix(walfile.get(..8)?, 16).ok()?;
        Some((
            client,
            Session {
                port,
                timeline,
                at: Instant::now(),
            },
        ))
    }
}
