//! A model of one node's PostgreSQL: the data directory (system id, timeline, timeline
//! history, WAL as a list of records) and the server process (stopped, primary, standby).
//!
//! WAL is a list of records; a record is identified by a number unique in the whole run, so
//! two servers share history exactly as long as one's WAL is a prefix of the other's. That
//! is the model's only rule for streaming: a standby streams from its upstream while its WAL
//! is a prefix of the upstream's (what PostgreSQL's timeline checks enforce), and otherwise
//! sits in recovery, not streaming, until it is rewound or re-cloned.

use pgkeel_core::dcs_values::HistoryEntry;
use pgkeel_core::observation::{PgView, Running, Stopped};
use pgkeel_core::sync::{ReplicationRow, Ssn, SsnKind};
use pgkeel_core::Lsn;

/// Bytes per record, so positions look like WAL positions and lag limits mean something.
pub const RECORD: u64 = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub uid: u64,
    pub timeline: u32,
    /// The client write this record commits (`None`: a checkpoint or other record).
    pub write: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct Data {
    pub sysid: u64,
    pub timeline: u32,
    /// (timeline that ended, position where the next one starts)
    pub history: Vec<(u32, u64)>,
    pub wal: Vec<Rec>,
    pub standby_signal: bool,
    /// The server was shut down cleanly (control file "shut down").
    pub clean: bool,
}

impl Data {
    pub fn lsn(&self) -> Lsn {
        Lsn(self.wal.len() as u64 * RECORD)
    }

    /// `self`'s WAL is a prefix of `other`'s: `self` can stream from `other`.
    ///
    /// A record is created once, on one server, after one exact predecessor, and servers
    /// only ever copy prefixes of each other's WAL: two WALs that hold the same record at
    /// the same position agree on everything before it. So comparing the last record is
    /// enough (and keeps long runs cheap).
    pub fn is_prefix_of(&self, other: &Data) -> bool {
        self.sysid == other.sysid
            && match self.wal.last() {
                None => true,
                Some(last) => other.wal.get(self.wal.len() - 1) == Some(last),
            }
    }

    pub fn common_prefix(&self, other: &Data) -> usize {
        self.wal
            .iter()
            .zip(&other.wal)
            .take_while(|(a, b)| a == b)
            .count()
    }

    /// The client writes this WAL holds.
    pub fn writes(&self) -> std::collections::HashSet<u64> {
        self.wal.iter().filter_map(|r| r.write).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proc {
    Stopped,
    Primary,
    /// In recovery, streaming from `upstream` (a node index) when it can.
    Standby {
        upstream: Option<usize>,
    },
}

#[derive(Debug, Clone)]
pub struct PgModel {
    pub data: Option<Data>,
    pub proc: Proc,
    /// Bumped on every start and stop: commits waiting on an earlier run of the server fail.
    pub incarnation: u64,
    /// `synchronous_standby_names` (postgresql.auto.conf: survives restarts).
    pub ssn: String,
    /// A value written to `postgresql.auto.conf` that the running server has not loaded:
    /// its postmaster was hung when told to reload (it loads it when it runs again, and a
    /// new run of the server reads it).
    pub ssn_pending: Option<String>,
    /// The standby streams from its upstream (decided by the last replication pass).
    pub streaming: bool,
}

impl Default for PgModel {
    fn default() -> Self {
        PgModel {
            data: None,
            proc: Proc::Stopped,
            incarnation: 0,
            ssn: String::new(),
            ssn_pending: None,
            streaming: false,
        }
    }
}

impl PgModel {
    pub fn is_primary(&self) -> bool {
        self.proc == Proc::Primary
    }

    pub fn running(&self) -> bool {
        self.proc != Proc::Stopped
    }

    pub fn view(&self, names: &[String]) -> PgView {
        let Some(d) = &self.data else {
            return PgView::NoData;
        };
        match self.proc {
            Proc::Stopped => PgView::Stopped(Stopped {
                sysid: d.sysid.to_string(),
                cluster_state: match (d.standby_signal, d.clean) {
                    (false, true) => "shut down",
                    (false, false) => "in production",
                    (true, true) => "shut down in recovery",
                    (true, false) => "in archive recovery",
                }
                .into(),
                timeline: d.timeline,
                standby_signal: d.standby_signal,
                checkpoint: Some(d.lsn()),
            }),
            Proc::Primary => PgView::Running(Running {
                sysid: d.sysid.to_string(),
                in_recovery: false,
                timeline: d.timeline,
                wal_position: d.lsn(),
                received: None,
                replayed: None,
                upstream: None,
                streaming: false,
            }),
            Proc::Standby { upstream } => PgView::Running(Running {
                sysid: d.sysid.to_string(),
                in_recovery: true,
                timeline: d.timeline,
                wal_position: d.lsn(),
                received: Some(d.lsn()),
                replayed: Some(d.lsn()),
                upstream: upstream.map(|u| (names[u].clone(), 5432)),
                streaming: self.streaming,
            }),
        }
    }

    pub fn history(&self) -> Vec<HistoryEntry> {
        self.data
            .as_ref()
            .map(|d| {
                d.history
                    .iter()
                    .map(|(tl, lsn)| HistoryEntry {
                        timeline: *tl,
                        lsn: *lsn,
                        reason: "no recovery target specified".into(),
                        // Real history entries carry the file's time; /history keeps the
                        // new leader's name only after a timestamp.
                        timestamp: Some("2027-01-15T08:00:00+00:00".into()),
                        new_leader: None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `pg_stat_replication` of a primary whose setting is `ssn`, given its connected standbys
/// as (name, flushed position), in connection order.
pub fn replication_rows(ssn: &str, standbys: &[(String, Lsn)]) -> Vec<ReplicationRow> {
    let states = sync_states(ssn, standbys);
    standbys
        .iter()
        .zip(states)
        .map(|((name, flush), state)| ReplicationRow {
            application_name: name.clone(),
            streaming: true,
            sync_state: state.into(),
            flush: *flush,
            write: *flush,
            replay: *flush,
        })
        .collect()
}

/// PostgreSQL's `sync_state` for each connected standby. Priority is the order of the
/// names in the setting (pgkeel writes them sorted, which is the order `Ssn` keeps).
fn sync_states(ssn: &str, standbys: &[(String, Lsn)]) -> Vec<&'static str> {
    let parsed = Ssn::parse(ssn).unwrap_or_else(Ssn::none);
    let listed = |n: &str| parsed.names.contains(&n.to_lowercase());
    match parsed.kind {
        _ if parsed.is_empty() => vec!["async"; standbys.len()],
        SsnKind::Any => standbys
            .iter()
            .map(|(n, _)| if listed(n) { "quorum" } else { "async" })
            .collect(),
        SsnKind::First => {
            let mut ranked: Vec<(usize, usize)> = standbys
                .iter()
                .enumerate()
                .filter_map(|(i, (n, _))| {
                    parsed
                        .names
                        .iter()
                        .position(|x| *x == n.to_lowercase())
                        .map(|p| (p, i))
                })
                .collect();
            ranked.sort();
            let mut out = vec!["async"; standbys.len()];
            for (k, (_, i)) in ranked.iter().enumerate() {
                out[*i] = if k < parsed.num as usize {
                    "sync"
                } else {
                    "potential"
                };
            }
            out
        }
    }
}

/// Whether a commit at `lsn` may return under `ssn`, given the connected standbys.
pub fn commit_released(ssn: &str, standbys: &[(String, Lsn)], lsn: Lsn) -> bool {
    let parsed = Ssn::parse(ssn).unwrap_or_else(Ssn::none);
    if parsed.is_empty() {
        return true;
    }
    let states = sync_states(ssn, standbys);
    let need = parsed.num as usize;
    match parsed.kind {
        SsnKind::First => {
            let sync: Vec<&Lsn> = standbys
                .iter()
                .zip(&states)
                .filter(|(_, s)| **s == "sync")
                .map(|((_, f), _)| f)
                .collect();
            sync.len() >= need && sync.iter().all(|f| **f >= lsn)
        }
        SsnKind::Any => {
            standbys
                .iter()
                .zip(&states)
                .filter(|((_, f), s)| **s == "quorum" && *f >= lsn)
                .count()
                >= need
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: &str, f: u64) -> (String, Lsn) {
        (n.into(), Lsn(f))
    }

    #[test]
    fn first_waits_for_the_highest_priority_connected_standbys() {
        let ssn = "FIRST 1 (\"node2\",\"node3\")";
        let rows = replication_rows(ssn, &[s("node3", 10), s("node2", 5)]);
        assert_eq!(rows[0].sync_state, "potential");
        assert_eq!(rows[1].sync_state, "sync");
        assert!(!commit_released(
            ssn,
            &[s("node3", 10), s("node2", 5)],
            Lsn(8)
        ));
        assert!(commit_released(ssn, &[s("node3", 10)], Lsn(8)));
        assert!(!commit_released(ssn, &[], Lsn(8)));
        assert!(commit_released("", &[], Lsn(8)));
    }

    #[test]
    fn any_counts_listed_standbys_that_flushed() {
        let ssn = "ANY 2 (\"a\",\"b\",\"c\")";
        assert!(!commit_released(ssn, &[s("a", 10), s("x", 10)], Lsn(8)));
        assert!(commit_released(ssn, &[s("a", 10), s("c", 9)], Lsn(8)));
        assert!(!commit_released(ssn, &[s("a", 10), s("c", 7)], Lsn(8)));
    }
}
