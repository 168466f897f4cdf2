//! Planned switchover and manual failover through the REST API on a real cluster: named
//! candidate, any candidate, scheduled, and a failover to a named candidate. The old
//! leader must come back as a replica without pg_rewind, and no committed row may be lost.

mod common;

use std::time::Duration;

use common::*;
use pgkeel_localcluster::Timing;

async fn post(url: &str, body: serde_json::Value) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(url)
        .json(&body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_and_failover_move_the_leader_without_losing_writes() {
    let (c, first) = start_healthy("switch", 3, Timing::default()).await;
    let w = connect(&c.rw_dsn()).await.unwrap();
    w.batch_execute("CREATE TABLE s (id int)").await.unwrap();
    drop(w);
    let rw = c.rw_dsn();
    // One committed row before each move; all must be on the final leader.
    let mut rows = 0i64;
    let mut write = || {
        rows += 1;
        let (rw, n) = (rw.clone(), rows as i32);
        async move {
            eventually(
                Duration::from_secs(20),
                "a write through the rw DSN",
                || {
                    let rw = rw.clone();
                    async move {
                        connect(&rw)
                            .await?
                            .execute("INSERT INTO s VALUES ($1)", &[&n])
                            .await?;
                        Ok(())
                    }
                },
            )
            .await
        }
    };

    // 1. Switchover to a named candidate.
    let li = c.index_of(&first).unwrap();
    let cand = c.nodes[(li + 1) % 3].name.clone();
    write().await;
    let (code, text) = post(
        &format!("{}/switchover", c.nodes[li].api_url()),
        serde_json::json!({"leader": first, "candidate": cand}),
    )
    .await;
    assert_eq!(
        (code, text.as_str()),
        (
            200,
            format!("Successfully switched over to \"{cand}\"").as_str()
        )
    );
    let leader = must(&c, c.wait_healthy(3, Duration::from_secs(60)).await);
    assert_eq!(leader, cand);
    let log = std::fs::read_to_string(&c.nodes[li].log).unwrap();
    assert!(
        log.contains("without pg_rewind"),
        "the old leader should rejoin without pg_rewind:\n{log}"
    );

    // 2. Switchover to any candidate.
    let ci = c.index_of(&cand).unwrap();
    let (code, text) = post(
        &format!("{}/switchover", c.nodes[ci].api_url()),
        serde_json::json!({"leader": cand}),
    )
    .await;
    if code != 200 {
        dump_logs(&c);
        panic!("switchover to any candidate: {code} {text}");
    }
    let leader = must(&c, c.wait_healthy(3, Duration::from_secs(60)).await);
    assert_ne!(leader, cand);

    // 3. A scheduled switchover: accepted with 202, shown in /cluster, carried out on time.
    let li = c.index_of(&leader).unwrap();
    let target = c.nodes[(li + 1) % 3].name.clone();
    let at = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let (code, text) = post(
        &format!("{}/switchover", c.nodes[li].api_url()),
        serde_json::json!({"leader": leader, "candidate": target, "scheduled_at": at}),
    )
    .await;
    assert_eq!((code, text.as_str()), (202, "Switchover scheduled"));
    // /cluster answers from the agent's last loop: it shows the plan within a loop.
    let url = format!("{}/cluster", c.nodes[li].api_url());
    let shown: serde_json::Value = eventually(
        Duration::from_secs(5),
        "scheduled switchover in /cluster",
        || {
            let url = url.clone();
            async move {
                let cl: serde_json::Value = reqwest::get(&url).await?.json().await?;
                anyhow::ensure!(!cl["scheduled_switchover"].is_null(), "{cl}");
                Ok(cl["scheduled_switchover"].clone())
            }
        },
    )
    .await;
    assert_eq!(shown["to"], target.as_str(), "{shown}");
    let now_leader = must(
        &c,
        c.wait_new_leader(&leader, Duration::from_secs(30)).await,
    );
    assert_eq!(now_leader, target);
    must(&c, c.wait_healthy(3, Duration::from_secs(60)).await);

    // 4. Failover to a named candidate.
    let ti = c.index_of(&target).unwrap();
    let fo = c.nodes[(ti + 2) % 3].name.clone();
    write().await;
    let (code, text) = post(
        &format!("{}/failover", c.nodes[ti].api_url()),
        serde_json::json!({"candidate": fo}),
    )
    .await;
    assert_eq!(
        (code, text.as_str()),
        (
            200,
            format!("Successfully failed over to \"{fo}\"").as_str()
        )
    );
    let leader = must(&c, c.wait_healthy(3, Duration::from_secs(60)).await);
    assert_eq!(leader, fo);

    // Every row committed before the moves is on the final leader.
    let fi = c.index_of(&fo).unwrap();
    let dsn = c.nodes[fi].dsn();
    let n = eventually(Duration::from_secs(10), "rows on the final leader", || {
        count_rows(&dsn, "s", 2)
    })
    .await;
    assert_eq!(n, rows);

    // Refusals: a candidate that is not a member, and a failover without a candidate.
    let (code, _) = post(
        &format!("{}/switchover", c.nodes[fi].api_url()),
        serde_json::json!({"leader": fo, "candidate": "nobody"}),
    )
    .await;
    assert_eq!(code, 412);
    let (code, text) = post(
        &format!("{}/failover", c.nodes[fi].api_url()),
        serde_json::json!({"candidate": null}),
    )
    .await;
    assert_eq!(
        (code, text.as_str()),
        (
            400,
            "Failover could be performed only to a specific candidate"
        )
    );
}

/// A switchover in maintenance mode (acceptance `patroni_api`): Patroni carries it out
/// and its demotion starts the old primary as a replica of the new one, paused or not. A
/// paused cluster otherwise starts nothing, so pgkeel must not leave the old primary down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_while_paused_leaves_the_old_primary_a_running_replica() {
    let (c, first) = start_healthy("switchpaused", 2, Timing::default()).await;
    let li = c.index_of(&first).unwrap();
    let cand = c.nodes[1 - li].name.clone();
    let r = reqwest::Client::new()
        .patch(format!("{}/config", c.nodes[li].api_url()))
        .json(&serde_json::json!({"pause": true}))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    eventually(Duration::from_secs(10), "every member paused", || async {
        for n in &c.nodes {
            let s: serde_json::Value = reqwest::get(format!("{}/patroni", n.api_url()))
                .await?
                .json()
                .await?;
            anyhow::ensure!(s["pause"] == true, "{}: {s}", n.name);
        }
        Ok(())
    })
    .await;
    let (code, text) = post(
        &format!("{}/switchover", c.nodes[li].api_url()),
        serde_json::json!({"leader": first, "candidate": cand}),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    eventually(
        Duration::from_secs(30),
        "the old primary a running replica of the new one",
        || async {
            let k = c.load().await?;
            anyhow::ensure!(
                k.leader_name() == Some(cand.as_str()),
                "leader {:?}",
                k.leader
            );
            let m = k
                .member(&first)
                .ok_or_else(|| anyhow::anyhow!("no member"))?;
            anyhow::ensure!(
                m.role == "replica" && m.state == "running",
                "{} / {}",
                m.role,
                m.state
            );
            let r = reqwest::get(format!("{}/replica", c.nodes[li].api_url())).await?;
            anyhow::ensure!(r.status().as_u16() == 200, "/replica {}", r.status());
            Ok(())
        },
    )
    .await;
    // Resumed, a switchover scheduled back at once is accepted (checked against the DCS,
    // not the API's last snapshot, which may still say paused) and carried out on time.
    let r = reqwest::Client::new()
        .patch(format!("{}/config", c.nodes[li].api_url()))
        .json(&serde_json::json!({"pause": null}))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let at = (chrono::Utc::now() + chrono::Duration::seconds(5)).to_rfc3339();
    let (code, text) = post(
        &format!("{}/switchover", c.nodes[1 - li].api_url()),
        serde_json::json!({"leader": cand, "candidate": first, "scheduled_at": at}),
    )
    .await;
    assert_eq!((code, text.as_str()), (202, "Switchover scheduled"));
    must(&c, c.wait_new_leader(&cand, Duration::from_secs(30)).await);
}
