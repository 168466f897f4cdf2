//! Quorum commit (`synchronous_mode: quorum`, `synchronous_node_count: 2`) with five nodes:
//! the leader and one replica die at once under continuous writes, and the node elected by
//! the remaining voters holds every acknowledged commit.

mod common;

use std::time::Duration;

use common::writer::{assert_none_lost, ssn, Writer};
use common::*;
use pgkeel_localcluster::{Signal, Timing};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_leader_and_a_replica_at_once_loses_no_acknowledged_commit() {
    let mut c = start_with(
        "quorum",
        5,
        Timing::default(),
        "synchronous_mode: quorum\nsynchronous_node_count: 2\n",
        &[],
    );
    let old = must(&c, c.wait_healthy(5, BOOT).await);
    must(&c, c.wait_sync(4, Duration::from_secs(90)).await);
    // Adding a voter passes through a key where every voter is needed (quorum 3 of 4, the
    // planner's safe step); wait for it to settle at ANY 2 of 4, quorum 2.
    eventually(
        Duration::from_secs(60),
        "the sync key settles at quorum 2",
        || {
            let c = &c;
            async move {
                let k = c
                    .load()
                    .await?
                    .sync
                    .ok_or_else(|| anyhow::anyhow!("no sync key"))?;
                anyhow::ensure!(k.sync_standby.len() == 4 && k.quorum == 2, "{k:?}");
                Ok(())
            }
        },
    )
    .await;
    let oi = c.index_of(&old).unwrap();
    let ssn_now = ssn(&c.nodes[oi].dsn()).await.unwrap();
    assert!(ssn_now.starts_with("ANY 2 ("), "{ssn_now}");

    let w = Writer::start(c.rw_dsn()).await;
    must(&c, w.wait_for_more(200, Duration::from_secs(30)).await);
    let victim = (0..5).find(|&i| i != oi).unwrap();
    c.signal_node(oi, Signal::Kill);
    c.signal_node(victim, Signal::Kill);
    c.reap_agent(oi);
    c.reap_agent(victim);
    let new = must(&c, c.wait_new_leader(&old, Duration::from_secs(90)).await);
    must(&c, w.wait_for_more(100, Duration::from_secs(90)).await);
    let acks = w.stop().await;
    assert_none_lost(&c, &new, &acks).await;
    // Both return and the cluster is whole again, with a quorum of the new leader.
    c.start_agent(oi).unwrap();
    c.start_agent(victim).unwrap();
    must(&c, c.wait_healthy(5, Duration::from_secs(180)).await);
    must(&c, c.wait_sync(4, Duration::from_secs(90)).await);
}
