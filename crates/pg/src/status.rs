//! Observing the local PostgreSQL: files when it is down, SQL when it is up.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{anyhow, Context};
use pgkeel_core::observation::{PgView, Running};
use pgkeel_core::Lsn;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::conf::parse_conninfo;
use crate::control::live_postmaster;
use crate::Pg;

/// Bound on one operation's connection and short queries (not the health probe, whose
/// deadline is `PgSettings::probe_timeout`).
pub(crate) const OBSERVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Proves the WAL can still be flushed: a transaction with an xid commits, and its commit
/// record is flushed before the answer (`synchronous_commit` is `local` on the agent's
/// connections, so a synchronous standby is not waited for). A stalled `pg_wal` never
/// answers it, although the status query, which needs no I/O, would.
const WAL_FLUSH_PROBE: &str = "SELECT txid_current()";

/// The WAL flushed so far, read just before [`WAL_FLUSH_PROBE`].
const FLUSHED_SQL: &str = "SELECT pg_current_wal_flush_lsn()::text";

/// How much later than a probe's own deadline the whole probe is abandoned.
const OUTER_SLACK: Duration = Duration::from_millis(500);

/// Set on every connection of the agent's: its probe commits must not wait for standbys,
/// and a cluster-wide `default_transaction_read_only` must not make them fail.
const SESSION_OPTIONS: &str = "-c synchronous_commit=local -c default_transaction_read_only=off";

/// One query for everything; functions that fail during recovery are guarded by CASE
/// (they are volatile, so PostgreSQL does not evaluate the other branch).
const STATUS_SQL: &str = "
SELECT pg_is_in_recovery(),
       (SELECT system_identifier::text FROM pg_control_system()),
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
       pg_last_wal_receive_lsn()::text,
       pg_last_wal_replay_lsn()::text,
       CASE WHEN pg_is_in_recovery() THEN NULL
            ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END,
       (SELECT received_tli FROM pg_stat_wal_receiver),
       (SELECT timeline_id FROM pg_control_checkpoint()),
       (SELECT status FROM pg_stat_wal_receiver),
       (SELECT sender_host FROM pg_stat_wal_receiver),
       (SELECT sender_port FROM pg_stat_wal_receiver),
       current_setting('primary_conninfo'),
       (SELECT min_recovery_end_timeline FROM pg_control_recovery()),
       (SELECT written_lsn FROM pg_stat_wal_receiver)::text";

/// Why a connection failed, as far as observing cares.
pub(crate) enum ConnectFailure {
    /// No answer at all within the deadline: a postmaster that accepts no connection (it
    /// is stopped, hung, or its backend cannot start on a stalled disk).
    NoAnswer,
    /// The postmaster is up but not accepting connections yet. `answered`: it is listening
    /// and said so (SQLSTATE 57P03: starting up, or a standby that has not reached a
    /// consistent state), as opposed to not listening yet.
    NotYetAccepting {
        answered: bool,
    },
    Other(anyhow::Error),
}

impl Pg {
    /// Where the agent reaches its own server: the name (what `verify-full` checks the
    /// server's certificate against, as Patroni's `_get_tcp_local_address` chooses it) and
    /// the address connected to. Listening on a wildcard, `localhost` or `127.0.0.1`:
    /// `localhost`, reached at 127.0.0.1 (libpq would try `::1` first where it resolves so,
    /// and pgkeel's own pg_hba lines and most operators' name 127.0.0.1); otherwise the
    /// first listen address.
    pub(crate) fn local_host(&self) -> (String, Option<std::net::IpAddr>) {
        let s = self.settings();
        let addrs: Vec<&str> = s.listen_addresses.iter().map(|a| a.trim()).collect();
        let local = addrs.iter().any(|a| {
            matches!(
                a.to_ascii_lowercase().as_str(),
                "" | "*" | "localhost" | "0.0.0.0" | "::" | "127.0.0.1"
            )
        });
        match addrs.first() {
            Some(first) if !local => (first.to_string(), first.parse().ok()),
            _ => (
                "localhost".to_string(),
                Some(std::net::Ipv4Addr::LOCALHOST.into()),
            ),
        }
    }

    /// The Unix socket directory the agent's sessions use with `use_unix_socket`: the first
    /// absolute entry of `unix_socket_directories` (pgkeel's default `/tmp` when unset), as
    /// Patroni picks it; `None` (TCP, as Patroni falls back) when there is none.
    pub(crate) fn local_socket_dir(&self) -> Option<String> {
        let s = self.settings();
        if !s.use_unix_socket {
            return None;
        }
        let dirs = s
            .parameters
            .get("unix_socket_directories")
            .map_or(crate::conf::DEFAULT_SOCKET_DIR, String::as_str);
        dirs.split(',')
            .map(|d| d.trim().trim_matches('\'').trim())
            .find(|d| d.starts_with('/'))
            .map(str::to_string)
    }

    /// The agent's TLS for its own connections, built once from the superuser's options
    /// (and again when they change).
    pub(crate) fn client_tls(&self) -> anyhow::Result<crate::tls::ClientTls> {
        let s = self.settings();
        let mut cached = self.client_tls.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cached.as_ref().filter(|c| c.opts == s.superuser.conn) {
            return Ok(c.tls.clone());
        }
        let home = self.owner()?.home;
        let tls = crate::tls::ClientTls::new(
            &s.superuser.conn,
            &home,
            "postgresql.authentication.superuser",
        )
        .map_err(anyhow::Error::msg)?;
        *cached = Some(crate::tls::Cached {
            opts: s.superuser.conn.clone(),
            tls: tls.clone(),
        });
        Ok(tls)
    }

    /// A fresh superuser connection to the local server over TCP, with the superuser's TLS
    /// options.
    pub(crate) async fn connect(&self, timeout: Duration) -> Result<Client, ConnectFailure> {
        self.connect_to("postgres", timeout).await
    }

    /// A superuser connection to `dbname` on the local server (logical slots are made and
    /// advanced in their own database).
    pub(crate) async fn connect_to(
        &self,
        dbname: &str,
        timeout: Duration,
    ) -> Result<Client, ConnectFailure> {
        self.connect_at(None, dbname, timeout).await
    }

    /// A superuser connection to `dbname` on `remote` (`host`, `port`: another member's
    /// server, e.g. the leader a replica copies slots from), or on the local server.
    pub(crate) async fn connect_at(
        &self,
        remote: Option<(&str, u16)>,
        dbname: &str,
        timeout: Duration,
    ) -> Result<Client, ConnectFailure> {
        let s = self.settings();
        let tls = self.client_tls().map_err(ConnectFailure::Other)?;
        // The local server through its socket with `use_unix_socket`; a remote one (or
        // the local one otherwise) over TCP.
        let socket = remote.is_none().then(|| self.local_socket_dir()).flatten();
        let (name, addr, port) = match (remote, &socket) {
            (Some((host, port)), _) => (host.to_string(), host.parse().ok(), port),
            (None, Some(dir)) => (dir.clone(), None, s.port),
            (None, None) => {
                let (name, addr) = self.local_host();
                (name, addr, s.port)
            }
        };
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&name)
            .port(port)
            .user(&s.superuser.username)
            .dbname(dbname)
            .application_name("pgkeel")
            .options(SESSION_OPTIONS)
            .connect_timeout(timeout);
        if let Some(addr) = addr {
            cfg.hostaddr(addr);
        }
        if let Some(pw) = &s.superuser.password {
            cfg.password(pw);
        }
        // libpq uses no TLS on a Unix socket, whatever sslmode says.
        let connected = match socket {
            Some(_) => tokio::time::timeout(timeout, crate::tls::plain(&mut cfg)).await,
            None => tokio::time::timeout(timeout, tls.connect(&mut cfg)).await,
        };
        match connected {
            Err(_) => Err(ConnectFailure::NoAnswer),
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => {
                let io_kind = std::error::Error::source(&e)
                    .and_then(|src| src.downcast_ref::<std::io::Error>())
                    .map(std::io::Error::kind);
                if io_kind == Some(std::io::ErrorKind::TimedOut) {
                    return Err(ConnectFailure::NoAnswer);
                }
                let refused = io_kind == Some(std::io::ErrorKind::ConnectionRefused);
                let starting = e.as_db_error().filter(|db| {
                    *db.code() == SqlState::CANNOT_CONNECT_NOW
                        && !db.message().contains("shutting down")
                });
                if refused || starting.is_some() {
                    return Err(ConnectFailure::NotYetAccepting {
                        answered: starting.is_some(),
                    });
                }
                let mut why = anyhow::Error::new(e).context(format!(
                    "connecting to PostgreSQL at {name}:{} ({}) as {} with sslmode {}",
                    port,
                    addr.map_or_else(|| name.clone(), |a| a.to_string()),
                    s.superuser.username,
                    s.superuser.conn.mode().as_str(),
                ));
                if matches!(&s.pg_hba, crate::HbaLines::Configured(_))
                    && format!("{why:#}").contains("pg_hba.conf")
                {
                    why = why.context(
                        "the pg_hba lines of postgresql.pg_hba are written as configured, with \
                         no line of pgkeel's: one of them must let the superuser in from the \
                         address above (as Patroni needs too)",
                    );
                }
                Err(ConnectFailure::Other(why))
            }
        }
    }

    /// A connection for an operation (not an observation): failures are errors.
    /// The status query on a new connection, for the REST API, bounded by `timeout`;
    /// `None` when the server does not answer in time or answers with an error. It does not
    /// count as a probe (silence here marks nothing).
    pub async fn live_running(&self, timeout: Duration) -> Option<Running> {
        tokio::time::timeout(timeout, async {
            let client = self.connect(timeout).await.ok()?;
            let mut r = query_running(&client).await.ok()?;
            if r.in_recovery && !self.with_segment_timeline(&mut r, timeout).await {
                return None;
            }
            Some(r)
        })
        .await
        .ok()
        .flatten()
    }

    pub(crate) async fn client(&self) -> anyhow::Result<Client> {
        match self.connect(OBSERVE_TIMEOUT).await {
            Ok(c) => Ok(c),
            Err(ConnectFailure::NoAnswer) => {
                self.mark_silent();
                Err(anyhow!(
                    "PostgreSQL in {} did not answer within {OBSERVE_TIMEOUT:?}",
                    self.data_dir().display()
                ))
            }
            Err(ConnectFailure::NotYetAccepting { .. }) => Err(anyhow!(
                "PostgreSQL in {} is not accepting connections",
                self.data_dir().display()
            )),
            Err(ConnectFailure::Other(e)) => Err(e),
        }
    }

    /// What the server is doing, from bounded probes: the data directory's files (read off
    /// the runtime, at most one read in flight), then a fresh connection, the status query
    /// and, on a primary, a WAL flush. Silence until the deadline is [`PgView::NoAnswer`];
    /// any answer, an error included, is not.
    pub async fn observe(&self) -> PgView {
        let view = self.probe().await;
        self.last_silent
            .store(matches!(view, PgView::NoAnswer), Ordering::SeqCst);
        view
    }

    async fn probe(&self) -> PgView {
        let deadline = self.settings().probe_timeout;
        let dir = self.data_dir().to_path_buf();
        let files = self
            .bounded_fs(deadline, {
                let pg = self.clone();
                move || {
                    // Looked up here, off the runtime, once: operations then find it cached.
                    let _ = pg.owner();
                    (crate::data_dir_is_empty(&dir), live_postmaster(&dir))
                }
            })
            .await;
        let Some((empty, pid)) = files else {
            tracing::warn!("the data directory did not answer within {deadline:?}");
            return self.silent_or_unknown();
        };
        self.postmaster.set(pid);
        if empty {
            return PgView::NoData;
        }
        if pid.is_none() {
            return match self.stopped_view().await {
                Ok(st) => PgView::Stopped(st),
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "cannot read the stopped cluster's state"
                    );
                    PgView::Unknown
                }
            };
        }
        // Each step has its own deadline inside (see `running_view`); this one only catches
        // what they do not.
        match tokio::time::timeout(deadline + OUTER_SLACK, self.running_view(deadline)).await {
            Ok(view) => view,
            Err(_) => {
                tracing::warn!("PostgreSQL did not answer the health probe within {deadline:?}");
                PgView::NoAnswer
            }
        }
    }

    /// No answer from the data directory: silence of a running server, or nothing known.
    fn silent_or_unknown(&self) -> PgView {
        if self.postmaster.alive().is_some() {
            PgView::NoAnswer
        } else {
            PgView::Unknown
        }
    }

    /// The last observation found the server silent, or a call since got no answer: the
    /// other calls of this loop (details, synchronous replication, slots) are skipped
    /// instead of each waiting out its own deadline. The next observation probes again and
    /// clears the mark on any answer. Without it a storage stall that begins just after a
    /// probe cost three deadlines (6 s) before the next probe even started, and the hang
    /// bound only counts from that probe.
    pub fn was_silent(&self) -> bool {
        self.last_silent.load(Ordering::SeqCst)
    }

    /// A call other than the observation got no answer within its deadline.
    pub(crate) fn mark_silent(&self) {
        self.last_silent.store(true, Ordering::SeqCst);
    }

    /// An error for a call skipped because the server is silent ([`Pg::was_silent`]).
    pub(crate) fn skipped_silent(&self, what: &str) -> anyhow::Error {
        anyhow!(
            "{what}: skipped, PostgreSQL in {} gave no answer this loop",
            self.data_dir().display()
        )
    }

    async fn running_view(&self, deadline: Duration) -> PgView {
        let until = tokio::time::Instant::now() + deadline;
        let left = || until.saturating_duration_since(tokio::time::Instant::now());
        let client = match self.connect(deadline).await {
            Ok(c) => c,
            Err(ConnectFailure::NotYetAccepting { .. }) => return PgView::Starting,
            Err(ConnectFailure::NoAnswer) => {
                tracing::warn!("PostgreSQL accepted no connection within {deadline:?}");
                return PgView::NoAnswer;
            }
            Err(ConnectFailure::Other(e)) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "cannot connect to the local PostgreSQL"
                );
                return PgView::Unknown;
            }
        };
        let mut r = match tokio::time::timeout(left(), query_running(&client)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!(error = format!("{e:#}"), "status query failed");
                return PgView::Unknown;
            }
            Err(_) => {
                tracing::warn!("PostgreSQL did not answer the status query within {deadline:?}");
                return PgView::NoAnswer;
            }
        };
        if !r.in_recovery {
            return match self.wal_flushes(&client, left()).await {
                Some(true) => PgView::Running(r),
                Some(false) => PgView::Unknown,
                None => PgView::NoAnswer,
            };
        }
        if !self.with_segment_timeline(&mut r, left()).await {
            tracing::warn!("pg_wal did not answer within {deadline:?}");
            return PgView::NoAnswer;
        }
        PgView::Running(r)
    }

    /// A replica's timeline is also that of the WAL segment it is at: the receiver's and
    /// the control file's lag behind a timeline switch it has already replayed. `false`
    /// when `pg_wal` did not answer within `within`.
    async fn with_segment_timeline(&self, r: &mut Running, within: Duration) -> bool {
        let pg_wal = self.data_dir().join("pg_wal");
        let at = r.wal_position;
        let Some(seg) = self
            .bounded_fs(within, move || segment_timeline(&pg_wal, at))
            .await
        else {
            return false;
        };
        r.timeline = r.timeline.max(seg.unwrap_or(0));
        true
    }

    /// Whether the primary's WAL storage completes I/O: a commit is flushed within
    /// `within` (`Some(true)`), or, if not, the flushed position moved since the last
    /// probe, so storage is slow but working, as under a heavy write load or a long
    /// checkpoint (`Some(true)` too); `None`: neither, a stall; `Some(false)`: an error.
    async fn wal_flushes(&self, client: &Client, within: Duration) -> Option<bool> {
        let flushed = async {
            let row = client.query_one(FLUSHED_SQL, &[]).await?;
            let text: String = row.try_get(0)?;
            anyhow::Ok(text.parse::<Lsn>().ok())
        };
        let flushed = match tokio::time::timeout(within, flushed).await {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "reading the flushed WAL position failed"
                );
                return Some(false);
            }
            Err(_) => return None,
        };
        let before = std::mem::replace(
            &mut *self.last_flush.lock().unwrap_or_else(|e| e.into_inner()),
            flushed,
        );
        let remaining = within.saturating_sub(Duration::from_millis(1));
        match tokio::time::timeout(remaining, client.batch_execute(WAL_FLUSH_PROBE)).await {
            Ok(Ok(())) => Some(true),
            Ok(Err(e)) => {
                tracing::warn!(error = format!("{e:#}"), "the WAL flush probe failed");
                Some(false)
            }
            Err(_) => {
                let moving = matches!((before, flushed), (Some(b), Some(f)) if f > b);
                if moving {
                    tracing::warn!(
                        "a commit was not flushed within {within:?}, but WAL is still being flushed ({} since the last probe): busy storage, not a stall",
                        flushed.map(|f| f.to_string()).unwrap_or_default()
                    );
                    Some(true)
                } else {
                    tracing::warn!("a commit was not flushed within {within:?} and no WAL was flushed since the last probe");
                    None
                }
            }
        }
    }
}

/// The highest timeline of a WAL segment file holding `position` in `pg_wal`. A replica
/// that streamed the new timeline after a switchover has that timeline's segment even
/// when its WAL receiver is gone (the leader stopped) and its control file still names the
/// old timeline; a diverged replica never receives the new timeline's segment.
/// Assumes PostgreSQL's default 16 MB segments; other sizes yield `None` (no file matches).
fn segment_timeline(pg_wal: &std::path::Path, position: Lsn) -> Option<u32> {
    const SEG: u64 = 16 * 1024 * 1024;
    let last_byte = position.0.checked_sub(1)?;
    let seg_no = last_byte / SEG;
    let per_id = 0x1_0000_0000 / SEG;
    let suffix = format!("{:08X}{:08X}", seg_no / per_id, seg_no % per_id);
    std::fs::read_dir(pg_wal)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            (name.len() == 24 && name.ends_with(&suffix))
                .then(|| u32::from_str_radix(&name[..8], 16).ok())
                .flatten()
        })
        .max()
}

fn lsn(v: Option<String>) -> anyhow::Result<Option<Lsn>> {
    v.map(|s| s.parse::<Lsn>().with_context(|| format!("bad LSN {s:?}")))
        .transpose()
}

async fn query_running(client: &Client) -> anyhow::Result<Running> {
    let row = client
        .query_one(STATUS_SQL, &[])
        .await
        .context("status query")?;
    let in_recovery: bool = row.try_get(0)?;
    let sysid: String = row.try_get(1)?;
    let current = lsn(row.try_get(2)?)?;
    let flushed = lsn(row.try_get(3)?)?;
    let replayed = lsn(row.try_get(4)?)?;
    let wal_tli: Option<String> = row.try_get(5)?;
    let received_tli: Option<i32> = row.try_get(6)?;
    let checkpoint_tli: Option<i32> = row.try_get(7)?;
    let wal_status: Option<String> = row.try_get(8)?;
    let sender_host: Option<String> = row.try_get(9)?;
    let sender_port: Option<i32> = row.try_get(10)?;
    let conninfo: String = row.try_get(11)?;
    let min_recovery_tli: Option<i32> = row.try_get(12)?;
    let written = lsn(row.try_get(13)?)?;
    let received = Running::receive_position(flushed, written, replayed);

    let timeline = if in_recovery {
        // Timelines only grow; each source may lag: the receiver's is absent while it is
        // not connected, the restartpoint's lags, the minimum recovery point's lags
        // least after a rewind.
        [received_tli, checkpoint_tli, min_recovery_tli]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(0)
    } else {
        // The checkpoint's timeline lags behind a promotion until the next checkpoint; the
        // current WAL file name does not.
        let hex = wal_tli.ok_or_else(|| anyhow!("no WAL file name on a primary"))?;
        i32::from_str_radix(&hex, 16)
            .with_context(|| format!("bad timeline in WAL file name {hex:?}"))?
    };
    let wal_position = if in_recovery {
        received.max(replayed).unwrap_or_default()
    } else {
        current.ok_or_else(|| anyhow!("no current WAL position on a primary"))?
    };
    let upstream = if in_recovery {
        upstream_from(&conninfo).or_else(|| {
            let port = sender_port.and_then(|p| u16::try_from(p).ok())?;
            Some((sender_host?, port))
        })
    } else {
        None
    };
    Ok(Running {
        sysid,
        in_recovery,
        timeline: u32::try_from(timeline).unwrap_or(0),
        wal_position,
        received,
        replayed,
        upstream,
        streaming: wal_status.as_deref() == Some("streaming"),
    })
}

/// `(host, port)` from `primary_conninfo`; port 5432 when absent, as libpq would.
fn upstream_from(conninfo: &str) -> Option<(String, u16)> {
    let kv = parse_conninfo(conninfo);
    let host = kv.get("host").or_else(|| kv.get("hostaddr"))?.clone();
    let port = kv.get("port").and_then(|p| p.parse().ok()).unwrap_or(5432);
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_timeline_finds_the_newest_segment_holding_a_position() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "000000010000000000000004",
            "000000020000000000000004",
            "000000030000000000000005",
            "00000002.history",
        ] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        let at = |lsn: &str| segment_timeline(dir.path(), lsn.parse().unwrap());
        assert_eq!(at("0/4018310"), Some(2));
        assert_eq!(
            at("0/5000000"),
            Some(2),
            "the last byte before 0/5000000 is in segment 4"
        );
        assert_eq!(at("0/5000001"), Some(3));
        assert_eq!(at("0/7000000"), None);
        assert_eq!(at("0/0"), None);
    }

    #[test]
    fn upstream_parsing() {
        assert_eq!(
            upstream_from("host='10.0.0.1' port='5433' user=r"),
            Some(("10.0.0.1".into(), 5433))
        );
        assert_eq!(upstream_from("host=db"), Some(("db".into(), 5432)));
        assert_eq!(upstream_from(""), None);
    }
}
