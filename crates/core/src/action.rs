//! Decisions as data: what the runtime must do, in order, and why.

use crate::lsn::Lsn;

/// Where a replica streams from: a member's PostgreSQL, and the slot it uses there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub member: String,
    pub host: String,
    pub port: u16,
    /// `primary_slot_name` (when `use_slots`).
    pub slot: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// `pg_ctl stop -m fast`: a shutdown checkpoint, replicas receive all WAL first.
    Fast,
    /// `pg_ctl stop -m immediate`: stop accepting writes now; crash recovery on next start.
    Immediate,
}

/// One step for the runtime. Steps of a [`Decision`] run in order; when a step fails (or a
/// compare-and-swap step loses its race) the rest of the sequence is skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    // --- DCS ---
    /// Create `initialize` = "" if absent (the bootstrap race). Losing stops the sequence.
    ClaimInitialize,
    /// Record the new cluster's system identifier in `initialize`.
    WriteInitialize {
        sysid: String,
    },
    /// Write `/config` if it is absent, with the settings in force: this node's
    /// `bootstrap.dcs` in a new cluster, the last valid `/config` after it was deleted.
    WriteConfig {
        config: serde_json::Value,
    },
    /// Create the leader key bound to this agent's lease if it is absent. Losing stops the sequence.
    AcquireLeader,
    /// The leader key names this node but another lease (an agent restart): bind it to the
    /// current lease, compare-and-swap on the value. Losing stops the sequence.
    ReclaimLeader,
    /// Delete the leader key if it still names this node.
    ReleaseLeader,
    /// The primary failed to start and is not running: delete the leader key if it still
    /// names this node, and report the role `demoted` (Patroni's post_recover, which calls
    /// `on_role_change demoted`).
    GiveUpLeader,
    /// Stop renewing this agent's lease: it expires in etcd after its ttl and takes the
    /// leader key with it. For a primary that cannot be proven stopped, whose key must not
    /// be released while it might still acknowledge a write.
    AbandonLease,
    /// Publish the leader's WAL position in `/status`.
    WriteStatus {
        optime: Lsn,
    },
    /// Rewrite `/history` from this primary's timeline history files.
    WriteHistory,
    /// Delete the `failover` key (a switchover done, or one that cannot be done), if it is
    /// still at `revision`.
    DeleteFailover {
        revision: i64,
    },
    /// Write the `sync` key, if the leader key still names me under my lease.
    WriteSync {
        value: crate::dcs_values::SyncValue,
    },
    /// Write the `failsafe` key (`{name: api_url}` of every member), if I still hold the leader key.
    WriteFailsafe {
        members: std::collections::BTreeMap<String, String>,
    },
    // --- PostgreSQL ---
    /// Set `synchronous_standby_names` and reload (`None`: back to the configured parameters).
    SetSyncStandbys {
        ssn: Option<crate::sync::Ssn>,
    },
    /// Make a new cluster's data directory (initdb, or a custom method's command) and start
    /// it: as a primary, or in recovery until it promotes itself when a custom method
    /// restored a backup with recovery settings. This node is bootstrapping from now until
    /// [`Action::PostBootstrap`] succeeds (see `Observation::bootstrapping`).
    Bootstrap {
        plan: BootstrapPlan,
    },
    /// Once the new cluster runs as a primary: the superuser's password, the
    /// `post_bootstrap` script (`script`, with its connection string), the replication role;
    /// after a custom method, pgkeel's own pg_hba and settings instead of the restore's.
    /// Then the node takes the leader key as any primary without one does.
    PostBootstrap {
        script: Option<Vec<String>>,
    },
    /// Patroni's `cancel_initialization` after a failed bootstrap: delete `initialize` so
    /// another node may try, stop PostgreSQL, rename the data directory to
    /// `<data_dir>.failed`, and end the agent with an error (`Failed to bootstrap cluster`).
    AbandonBootstrap,
    /// Make a replica's data directory with the replica methods of `plan`, in order, until
    /// one succeeds; when all fail the data directory is emptied (the next loop tries again).
    Clone {
        plan: ClonePlan,
    },
    /// Start as a primary.
    StartPrimary,
    /// Start as a replica of `upstream` (none: a standby with no upstream yet, e.g. before a race).
    StartReplica {
        upstream: Option<Upstream>,
    },
    /// Point a running replica at another upstream.
    Follow {
        upstream: Upstream,
    },
    Promote,
    /// Stop PostgreSQL however it can be stopped: immediate shutdown, and SIGKILL of the
    /// postmaster and every backend if it does not exit at once or cannot act on signals
    /// (stopped, hung). Succeeds only once no process of it is left; fails when one cannot
    /// be proven gone.
    Kill,
    Stop {
        mode: StopMode,
    },
    /// Bring a former primary onto the leader's timeline with pg_rewind (stopped server).
    Rewind {
        source: Upstream,
    },
    /// Stop PostgreSQL and make the data directory again with `plan` (each method empties
    /// it first, unless it keeps the data).
    Reinit {
        plan: ClonePlan,
    },
    /// On the primary: a physical replication slot for each of these names.
    EnsureSlots {
        names: Vec<String>,
    },
}

impl Action {
    /// Bookkeeping that changes neither PostgreSQL nor leadership: after it, the next loop
    /// can wait its turn instead of looking again at once.
    pub fn is_routine(&self) -> bool {
        matches!(
            self,
            Action::WriteStatus { .. }
                | Action::AbandonLease
                | Action::WriteFailsafe { .. }
                | Action::WriteHistory
                | Action::DeleteFailover { .. }
                | Action::WriteConfig { .. }
                | Action::WriteInitialize { .. }
                | Action::EnsureSlots { .. }
        )
    }
}

/// How [`Action::Bootstrap`] makes the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapPlan {
    /// initdb with `bootstrap.initdb`.
    Initdb,
    /// `bootstrap.method`'s command.
    Custom(CustomBootstrapPlan),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomBootstrapPlan {
    /// The method's name, for the log.
    pub name: String,
    /// The command with Patroni's arguments (`--scope=... --datadir=...`, then the section's).
    pub argv: Vec<String>,
    /// How many of `argv`'s first words are the configured `command` (Patroni's messages
    /// name it alone).
    pub command_len: usize,
    /// How the restored server first starts.
    pub recovery: RestoreRecovery,
    /// Patroni's rule: `hot_standby = off` until the end of recovery when the recovery ends
    /// in a promotion (`recovery_target_action: promote`) or comes from the backup tool
    /// (`keep_existing_recovery_conf`), so that a backup of a server with larger
    /// `max_connections` (and the like) than this configuration still replays.
    pub hot_standby_off: bool,
}

/// The recovery a custom bootstrap starts the restored server in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreRecovery {
    /// No recovery: what the command left (`recovery.signal`, `standby.signal`) is removed
    /// and the server starts as a primary.
    None,
    /// `keep_existing_recovery_conf`: the settings and signal files the command left stay.
    KeepExisting,
    /// `recovery_conf`: these settings in `postgresql.conf`, with `recovery.signal`, or
    /// `standby.signal` when `standby` (`standby_mode: on`).
    Settings {
        settings: std::collections::BTreeMap<String, String>,
        standby: bool,
    },
}

/// What [`Action::Clone`] and [`Action::Reinit`] run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClonePlan {
    /// The member copied from (the leader or a `clonefrom` replica); `None` without a leader,
    /// when only methods marked `no_leader` run.
    pub source: Option<Upstream>,
    /// Patroni's words for the log: `from leader 'node1'`, `(without leader)`.
    pub what: String,
    pub methods: Vec<CloneMethod>,
}

/// One replica creation method, ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloneMethod {
    /// pg_basebackup `--dbname=<connstring>` with `postgresql.basebackup`'s options.
    Basebackup { connstring: String },
    /// A custom method's command with its arguments.
    Command {
        name: String,
        argv: Vec<String>,
        /// How many of `argv`'s first words are the configured `command`.
        command_len: usize,
        /// `keep_data`: the data directory is not emptied before or after the command.
        keep_data: bool,
    },
}

impl CloneMethod {
    pub fn name(&self) -> &str {
        match self {
            CloneMethod::Basebackup { .. } => "basebackup",
            CloneMethod::Command { name, .. } => name,
        }
    }
}

/// The outcome of one `decide` call: the steps, and a sentence for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub actions: Vec<Action>,
    pub reason: String,
}

impl Decision {
    pub fn nothing(reason: impl Into<String>) -> Self {
        Decision {
            actions: Vec::new(),
            reason: reason.into(),
        }
    }
    pub fn act(actions: Vec<Action>, reason: impl Into<String>) -> Self {
        Decision {
            actions,
            reason: reason.into(),
        }
    }
}

/// The replication slot name of a member, as Patroni derives it: lower case, characters
/// other than `[a-z0-9_]` replaced by `_`, at most 63 bytes.
pub fn slot_name(member: &str) -> String {
    let mut s: String = member
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.truncate(63);
    s
}
