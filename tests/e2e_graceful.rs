//! Graceful stop of the leader's agent: it stops PostgreSQL with a checkpoint and releases
//! the key, so a replica leads within 2 × loop_wait of the agent exiting.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pgkeel_localcluster::Timing;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_leads_within_two_loops_after_the_leader_agent_stops() {
    let (mut c, old) = start_healthy("graceful", 3, Timing::default()).await;
    let oi = c.index_of(&old).unwrap();
    let w = connect(&c.rw_dsn()).await.unwrap();
    w.batch_execute("CREATE TABLE g (id int); INSERT INTO g VALUES (1)")
        .await
        .unwrap();

    c.stop_agent(oi, Duration::from_secs(60)).unwrap();
    let stopped = Instant::now();
    assert!(
        connect(&c.nodes[oi].dsn()).await.is_err(),
        "PostgreSQL still runs after its agent stopped"
    );
    let loop_wait = Duration::from_secs_f64(Timing::default().loop_wait);
    let new = must(&c, c.wait_new_leader(&old, loop_wait * 2).await);
    println!(
        "graceful stop: {new} leads {:.2}s after {old}'s agent exited",
        stopped.elapsed().as_secs_f64()
    );
    // Nothing committed before the stop is missing on the new leader.
    let ni = c.index_of(&new).unwrap();
    count_rows(&c.nodes[ni].dsn(), "g", 1).await.unwrap();
}

/// Acceptance `priority_failover`: when the leader stops, of two replicas level in WAL the
/// one with the higher `failover_priority` leads. Both race at the same moment, each
/// comparing its own fresh WAL position with the other's `GET /patroni`; that answer is a
/// fresh status query (as Patroni's), not the last loop's, which may predate the old
/// primary's shutdown checkpoint and make the lower-priority node look ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_level_replicas_the_higher_failover_priority_leads() {
    let mut c = start_with(
        "prio",
        3,
        Timing::default(),
        "",
        &[
            "failover_priority: 1",
            "failover_priority: 1",
            "failover_priority: 2",
        ],
    );
    let mut leader = must(&c, c.wait_healthy(3, BOOT).await);
    let high = c.nodes[2].name.clone();
    for round in 0..3 {
        if leader == high {
            // Hand the key to a priority-1 node first.
            let target = c.nodes[round % 2].name.clone();
            let url = format!(
                "{}/switchover",
                c.nodes[c.index_of(&high).unwrap()].api_url()
            );
            // Retried: the API may not list a member that has just restarted yet.
            eventually(Duration::from_secs(30), "the switchover accepted", || {
                let (url, high, target) = (url.clone(), high.clone(), target.clone());
                async move {
                    let r = reqwest::Client::new()
                        .post(url)
                        .json(&serde_json::json!({"leader": high, "candidate": target}))
                        .timeout(Duration::from_secs(60))
                        .send()
                        .await?;
                    let code = r.status().as_u16();
                    anyhow::ensure!(code == 200, "{code} {:?}", r.text().await);
                    Ok(())
                }
            })
            .await;
            leader = must(&c, c.wait_healthy(3, Duration::from_secs(60)).await);
            assert_eq!(leader, target);
        }
        // Both replicas stream from the leader: its shutdown checkpoint reaches both.
        eventually(Duration::from_secs(30), "both replicas streaming", || {
            let (c, leader) = (&c, leader.clone());
            async move {
                let k = c.load().await?;
                for n in c.nodes.iter().filter(|n| n.name != leader) {
                    let m = k
                        .member(&n.name)
                        .ok_or_else(|| anyhow::anyhow!("no {}", n.name))?;
                    anyhow::ensure!(
                        m.replication_state.as_deref() == Some("streaming"),
                        "{}: {:?}",
                        n.name,
                        m.replication_state
                    );
                }
                Ok(())
            }
        })
        .await;
        let li = c.index_of(&leader).unwrap();
        c.stop_agent(li, Duration::from_secs(60)).unwrap();
        let new = must(
            &c,
            c.wait_new_leader(&leader, Duration::from_secs(30)).await,
        );
        if new != high {
            must::<()>(
                &c,
                Err(anyhow::anyhow!(
                    "round {round}: {new} led instead of {high}"
                )),
            );
        }
        c.start_agent(li).unwrap();
        leader = must(&c, c.wait_healthy(3, Duration::from_secs(90)).await);
    }
}
