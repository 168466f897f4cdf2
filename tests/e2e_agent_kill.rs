//! kill -9 of the leader's agent alone: PostgreSQL keeps running as a primary and nobody
//! renews the lease. Without a fence outside the agent, a replica is promoted after the ttl
//! while the old primary still takes writes (the simulation found this first, seed 33).
//! The fence guardian, a process of its own, must stop the old primary at its fence
//! deadline, which comes before the lease can expire, so before any promotion.

mod common;

use std::time::Duration;

use common::*;
use pgkeel_localcluster::{Signal, Timing};

/// The process exists and is not a zombie.
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|r| !r.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_only_the_leaders_agent_leaves_no_second_writable_primary() {
    let (mut c, old) = start_healthy("agentkill", 3, Timing::fast()).await;
    let oi = c.index_of(&old).unwrap();
    let postmaster = c.postmaster_pid(oi).expect("the leader's postmaster");
    // A session an application already had open on the leader.
    let session = connect(&c.nodes[oi].dsn()).await.unwrap();
    session
        .batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
        .await
        .unwrap();

    c.signal_agent(oi, Signal::Kill);
    c.reap_agent(oi);
    assert!(alive(postmaster), "only the agent was killed");
    let new = must(&c, c.wait_new_leader(&old, Duration::from_secs(60)).await);
    // Another node leads: the old primary must be gone already, and its session dead.
    assert!(
        !alive(postmaster),
        "{new} leads while the old primary (postmaster {postmaster}) still runs"
    );
    assert!(
        session
            .batch_execute("INSERT INTO t VALUES (2)")
            .await
            .is_err(),
        "the old primary took a write after {new} was elected"
    );

    // The agent comes back and the old leader rejoins as a replica.
    c.start_agent(oi).unwrap();
    if let Err(e) = c.wait_healthy(3, Duration::from_secs(120)).await {
        dump_logs(&c);
        panic!("the old leader did not rejoin: {e:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_restarted_within_the_ttl_takes_over_from_its_old_guardian_without_a_restart() {
    let timing = Timing::default(); // ttl 10 s: room to restart well within it
    let (mut c, leader) = start_healthy("agentrestart", 3, timing).await;
    let li = c.index_of(&leader).unwrap();
    let postmaster = c.postmaster_pid(li).expect("the leader's postmaster");

    c.signal_agent(li, Signal::Kill);
    c.reap_agent(li);
    c.start_agent(li).unwrap();
    // Past the old lease's fence deadline, which the old guardian enforced before.
    tokio::time::sleep(Duration::from_secs_f64(timing.ttl * 1.5)).await;
    let cl = c.load().await.unwrap();
    assert_eq!(
        cl.leader_name(),
        Some(leader.as_str()),
        "the leader changed"
    );
    assert!(
        alive(postmaster) && c.postmaster_pid(li) == Some(postmaster),
        "the primary was restarted (postmaster {postmaster} gone)"
    );
    assert!(is_writable(&c.nodes[li].dsn()).await.unwrap());
    let log = std::fs::read_to_string(&c.nodes[li].log).unwrap();
    assert!(
        log.contains("stands down: this agent guards the primary now"),
        "the old guardian was not relieved:\n{log}"
    );
}
