//! "The cluster is ready for the next fault": shared by the sync benchmark and the
//! network-fault suite, which both wait for it before and after each fault.

use std::collections::BTreeSet;

use pgkeel_core::cluster::Cluster;
use pgkeel_localcluster::healthy;

/// Who leads, on which timeline, with which synchronous standbys.
#[derive(Debug, Clone)]
pub struct Ready {
    pub leader: String,
    pub timeline: u32,
    pub sync: BTreeSet<String>,
}

/// [`healthy`], and when `synchronous`, a `/sync` key written for that leader that names at
/// least one standby.
pub fn ready(view: &Cluster, nodes: usize, synchronous: bool) -> Result<Ready, String> {
    let leader = healthy(view, nodes)?;
    let timeline = view
        .member(&leader)
        .and_then(|m| m.timeline)
        .ok_or(format!("leader {leader} publishes no timeline"))?;
    let mut r = Ready {
        leader,
        timeline,
        sync: BTreeSet::new(),
    };
    if !synchronous {
        return Ok(r);
    }
    let sync = view.sync.as_ref().ok_or("no /sync key")?;
    if sync.leader.as_deref() != Some(r.leader.as_str()) {
        return Err(format!(
            "/sync is for {:?}, the leader is {}",
            sync.leader, r.leader
        ));
    }
    if sync.sync_standby.is_empty() {
        return Err(format!("/sync names no standby of {}", r.leader));
    }
    r.sync = sync.sync_standby.clone();
    Ok(r)
}
