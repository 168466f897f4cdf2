//! What the failover benchmarks (`pgkeel-bench`, `pgkeel-sync-bench`) do to the leader, and
//! how they undo it once another node leads.
//!
//! To add a fault: a variant here (its doc comment is the `--fault` help and its name, as
//! `{:?}`, is what the benchmarks print in `fault=`), and its arms in [`LeaderFault::inject`]
//! and [`LeaderFault::undo`].

use clap::ValueEnum;
use pgkeel_localcluster::{LocalCluster, Signal};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaderFault {
    /// SIGKILL of the leader's agent, postmaster and backends (the kernel still answers);
    /// the agent is restarted once another node leads.
    Kill,
    /// SIGSTOP of the leader's agent and every PostgreSQL process (a dead host or
    /// partition); SIGCONT once another node leads.
    Freeze,
    /// SIGSTOP of the leader's postmaster and every backend, its agent running (a hung
    /// PostgreSQL); SIGCONT once another node leads.
    Pghang,
    /// SIGSTOP of the leader's postmaster alone (backends and agent keep running);
    /// SIGCONT once another node leads.
    Pmhang,
    /// The leader's data directory stops completing I/O (its FUSE pass-through daemon is
    /// stopped; needs the cluster started with stallable disks); resumed once another node
    /// leads.
    Diskstall,
}

impl LeaderFault {
    /// Injects the fault into node `i`.
    pub fn inject(self, c: &LocalCluster, i: usize) {
        match self {
            LeaderFault::Kill => c.signal_node(i, Signal::Kill),
            LeaderFault::Freeze => c.signal_node(i, Signal::Stop),
            LeaderFault::Pghang => c.signal_postgres(i, Signal::Stop),
            LeaderFault::Pmhang => c.signal_postmaster(i, Signal::Stop),
            LeaderFault::Diskstall => {
                if let Err(e) = c.stall_disk(i) {
                    eprintln!("diskstall: {e:#}");
                }
            }
        }
    }

    /// The fault needs the cluster's data directories on stallable disks.
    pub fn needs_stallable_disks(self) -> bool {
        self == LeaderFault::Diskstall
    }

    /// Brings node `i` back after [`LeaderFault::inject`], so that it must rejoin: its agent
    /// restarted, or its processes woken.
    pub fn undo(self, c: &mut LocalCluster, i: usize) -> anyhow::Result<()> {
        match self {
            LeaderFault::Kill => {
                c.reap_agent(i);
                c.start_agent(i)?;
            }
            LeaderFault::Freeze => c.signal_node(i, Signal::Cont),
            // What the agent killed is gone; anything left runs on.
            LeaderFault::Pghang => c.signal_postgres(i, Signal::Cont),
            LeaderFault::Pmhang => c.signal_postmaster(i, Signal::Cont),
            LeaderFault::Diskstall => c.resume_disk(i),
        }
        Ok(())
    }
}
