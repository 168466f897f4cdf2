//! Whether an agent may start as the member its configuration names.
//!
//! Two agents running as one member write one member key and, if that member leads, both
//! see "the leader key names me": a configuration mistake (a copied `patroni.yml`) that
//! must stop the second agent before it touches PostgreSQL or etcd. Patroni asks the
//! member's REST API and exits with CRITICAL "Can't start; there is already a node named
//! '...' running". pgkeel also refuses when that API does not answer but the member key is
//! still bound to a live lease from another address: a running agent it cannot reach.
//! An agent restarted after `kill -9` finds its own previous key at its own address (it
//! could bind that address, so nobody else serves there) and starts.
//!
//! And one DCS mistake: a node of a cluster Patroni runs over etcd's v2 API
//! ([`v2_keyspace_problem`]).

use crate::cluster::Cluster;

/// The REST API to ask before starting as `me`: the address `members/<me>` publishes, as
/// Patroni asks it (even when it is this node's own: a second agent started with this
/// node's configuration but listening elsewhere must still find the first). The runtime
/// does not count an answer from its own process.
pub fn api_to_ask<'a>(cluster: &'a Cluster, me: &str) -> Option<&'a str> {
    let m = cluster.member(me)?;
    (!m.api_url.is_empty()).then_some(m.api_url.as_str())
}

/// Why this agent must not start as `me` (`None`: it may). `answered_as` is the member name
/// another process gave at the API from [`api_to_ask`] in its `/patroni` answer (`None`:
/// no answer).
pub fn duplicate_name_problem(
    cluster: &Cluster,
    me: &str,
    my_api_url: &str,
    answered_as: Option<&str>,
) -> Option<String> {
    let url = api_to_ask(cluster, me)?;
    // etcd deletes a key with its lease: a key bound to one is renewed by someone, unless
    // it names my own address, where it is my previous run's until its lease expires.
    let lease_alive = url != my_api_url && cluster.member_leases.get(me).is_some_and(|l| *l != 0);
    (answered_as == Some(me) || lease_alive)
        .then(|| format!("Can't start; there is already a node named '{me}' running"))
}

/// Why this agent must not start with Patroni's v2 `etcd:` section (`None`: it may).
///
/// Patroni runs that section over etcd's v2 API, whose keys live apart from v3's: a cluster
/// Patroni runs that way is invisible to pgkeel, which reads only v3. A node of such a
/// cluster handed to pgkeel (a rolling migration) would find no cluster, no leader and no
/// member, and promote its replica: a second primary beside Patroni's. So a data directory
/// that already holds a cluster (`has_data`), under an empty v3 keyspace, with the v2
/// section, is refused. A new pgkeel cluster configured with `etcd:` still bootstraps (no
/// data yet) and restarts (its keys are in v3).
pub fn v2_keyspace_problem(section: &str, cluster: &Cluster, has_data: bool) -> Option<String> {
    let unknown_to_v3 =
        cluster.initialize.is_none() && cluster.leader.is_none() && cluster.members.is_empty();
    (section == "etcd" && has_data && unknown_to_v3).then(|| {
        "Can't start: the data directory holds a cluster that etcd's v3 keyspace does not know, \
         and the configuration has Patroni's `etcd:` section: Patroni runs that section over \
         etcd's v2 API, whose keys pgkeel cannot read, so a Patroni cluster may be running there \
         and this node would start a second primary. Move the Patroni cluster to an `etcd3:` \
         section first (docs/migrating-from-patroni.md); if no Patroni runs this cluster, \
         rename the section to `etcd3`"
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patroni_v2_cluster_node_is_refused_not_promoted() {
        let empty = Cluster::default();
        // An existing data directory, Patroni's v2 section, nothing in v3: refused.
        let why = v2_keyspace_problem("etcd", &empty, true).expect("refused");
        assert!(why.contains("v2 API") && why.contains("etcd3"), "{why}");
        // The etcd3 section reads the keyspace Patroni's etcd3 section writes.
        assert_eq!(v2_keyspace_problem("etcd3", &empty, true), None);
        // A new node (no data yet) bootstraps or clones as usual.
        assert_eq!(v2_keyspace_problem("etcd", &empty, false), None);
        // A pgkeel cluster configured with `etcd:` has its keys in v3.
        let known = with_member(MINE, 7);
        assert_eq!(v2_keyspace_problem("etcd", &known, true), None);
        let initialized = Cluster {
            initialize: Some("7714777346630536092".into()),
            ..Default::default()
        };
        assert_eq!(v2_keyspace_problem("etcd", &initialized, true), None);
    }
    use crate::cluster::MemberEntry;
    use crate::dcs_values::MemberValue;

    const MINE: &str = "http://10.0.0.2:8008/patroni";
    const OTHER: &str = "http://10.0.0.9:8009/patroni";

    fn with_member(api_url: &str, lease: i64) -> Cluster {
        let mut c = Cluster::default();
        c.members.insert(
            "node2".into(),
            MemberEntry::Ok(MemberValue {
                api_url: api_url.into(),
                ..Default::default()
            }),
        );
        c.member_leases.insert("node2".into(), lease);
        c
    }

    #[test]
    fn a_live_agent_elsewhere_with_my_name_stops_me_with_patronis_message() {
        let c = with_member(OTHER, 7);
        assert_eq!(api_to_ask(&c, "node2"), Some(OTHER));
        assert_eq!(
            duplicate_name_problem(&c, "node2", MINE, Some("node2")).as_deref(),
            Some("Can't start; there is already a node named 'node2' running")
        );
        // Its API does not answer, but its lease is alive: still someone else's.
        assert!(duplicate_name_problem(&c, "node2", MINE, None).is_some());
    }

    #[test]
    fn my_own_key_from_before_a_restart_lets_me_start() {
        let c = with_member(MINE, 7);
        // Asked all the same (another process may listen elsewhere and publish my address)
        // but its lease alone is my previous run's: no answer from another process, no
        // duplicate.
        assert_eq!(api_to_ask(&c, "node2"), Some(MINE));
        assert_eq!(duplicate_name_problem(&c, "node2", MINE, None), None);
        // Another process answering as me at my own published address: the harness's
        // duplicate started with my name, listening on another port.
        assert!(duplicate_name_problem(&c, "node2", MINE, Some("node2")).is_some());
    }

    #[test]
    fn no_key_or_a_dead_one_lets_me_start() {
        assert_eq!(
            duplicate_name_problem(&Cluster::default(), "node2", MINE, None),
            None
        );
        // A key without a lease (written by hand, or garbage) and an API that is gone.
        let c = with_member(OTHER, 0);
        assert_eq!(duplicate_name_problem(&c, "node2", MINE, None), None);
        // Another member answering at that address is not me.
        assert_eq!(
            duplicate_name_problem(&c, "node2", MINE, Some("node3")),
            None
        );
    }
}
