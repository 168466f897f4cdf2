//! Self-healing DCS state on a real cluster: a member key deleted, overwritten with garbage
//! or rewritten without a lease (so it would never expire) is written again by its agent
//! within one loop, bound to the agent's lease, also when nothing about the member changes
//! (its server stopped in maintenance mode), and a switchover to that member works.

mod common;

use std::time::{Duration, Instant};

use common::*;
use etcd_client::Client as EtcdClient;
use pgkeel_localcluster::{LocalCluster, Signal, Timing};

/// `members/<name>` as etcd holds it: the raw value and the lease it is bound to.
async fn raw_member(etcd: &mut EtcdClient, key: &str) -> Option<(Vec<u8>, i64)> {
    let resp = etcd.get(key, None).await.ok()?;
    resp.kvs()
        .first()
        .map(|kv| (kv.value().to_vec(), kv.lease()))
}

/// Waits until the key holds a member value bound to a lease again; returns how long it took.
async fn healed(c: &LocalCluster, etcd: &mut EtcdClient, key: &str, what: &str) -> Duration {
    let since = Instant::now();
    let deadline = since + Duration::from_secs(20);
    loop {
        if let Some((value, lease)) = raw_member(etcd, key).await {
            let parsed: Option<serde_json::Value> = serde_json::from_slice(&value).ok();
            if lease != 0 && parsed.is_some_and(|v| v["conn_url"].is_string()) {
                let took = since.elapsed();
                println!("{what}: {key} rewritten after {:.2}s", took.as_secs_f64());
                return took;
            }
        }
        if Instant::now() > deadline {
            dump_logs(c);
            panic!(
                "{what}: {key} not rewritten within 20s: {:?}",
                raw_member(etcd, key).await
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_corrupt_or_leaseless_member_key_is_rewritten_within_one_loop() {
    let timing = Timing::default();
    let (c, leader) = start_healthy("selfheal", 3, timing).await;
    let endpoints: Vec<String> = c.etcd.iter().map(|e| e.endpoint.to_string()).collect();
    let mut etcd = EtcdClient::connect(&endpoints, None).await.unwrap();
    let li = c.index_of(&leader).unwrap();
    let replica = c.nodes[(li + 1) % 3].name.clone();
    let key = format!("/service/selfheal/members/{replica}");
    // One loop and its probes, with room for a loaded machine.
    let one_loop = Duration::from_secs_f64(timing.loop_wait) + Duration::from_secs(5);

    etcd.delete(key.as_str(), None).await.unwrap();
    assert!(healed(&c, &mut etcd, &key, "deleted").await < one_loop);

    etcd.put(key.as_str(), "garbage {", None).await.unwrap();
    assert!(healed(&c, &mut etcd, &key, "garbage").await < one_loop);

    // A valid value, but bound to no lease: it would outlive the agent.
    let (value, _) = raw_member(&mut etcd, &key).await.unwrap();
    etcd.put(key.as_str(), value, None).await.unwrap();
    assert!(healed(&c, &mut etcd, &key, "without a lease").await < one_loop);

    // Another value under the agent's lease (written by hand): corrected too.
    let (value, lease) = raw_member(&mut etcd, &key).await.unwrap();
    let mut edited: serde_json::Value = serde_json::from_slice(&value).unwrap();
    edited["role"] = "primary".into();
    etcd.put(
        key.as_str(),
        edited.to_string(),
        Some(etcd_client::PutOptions::new().with_lease(lease)),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + one_loop;
    loop {
        let (v, _) = raw_member(&mut etcd, &key).await.unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&v).unwrap_or_default();
        if v["role"] == "replica" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the hand-edited role stayed: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A member whose value does not change at all (maintenance mode, its server stopped):
    // only the comparison with what the DCS holds brings its key back.
    let other = (li + 2) % 3;
    let still = c.nodes[other].name.clone();
    let still_key = format!("/service/selfheal/members/{still}");
    let patch = |pause: bool| {
        reqwest::Client::new()
            .patch(format!("{}/config", c.nodes[li].api_url()))
            .json(&serde_json::json!({ "pause": pause }))
            .timeout(Duration::from_secs(10))
            .send()
    };
    assert_eq!(patch(true).await.unwrap().status().as_u16(), 200);
    eventually(Duration::from_secs(20), "every member paused", || async {
        let cl = c.load().await?;
        anyhow::ensure!(cl.paused(), "not paused yet");
        Ok(())
    })
    .await;
    c.signal_postmaster(other, Signal::Term);
    eventually(
        Duration::from_secs(30),
        "the stopped member's key says stopped",
        || async {
            let cl = c.load().await?;
            let m = cl
                .member(&still)
                .ok_or_else(|| anyhow::anyhow!("no member key"))?;
            anyhow::ensure!(m.state == "stopped", "state {}", m.state);
            Ok(())
        },
    )
    .await;
    // Two loops without a change: the value is stable.
    tokio::time::sleep(Duration::from_secs_f64(2.0 * timing.loop_wait)).await;
    etcd.delete(still_key.as_str(), None).await.unwrap();
    assert!(healed(&c, &mut etcd, &still_key, "deleted, member stopped").await < one_loop);
    assert_eq!(patch(false).await.unwrap().status().as_u16(), 200);
    must(&c, c.wait_healthy(3, Duration::from_secs(60)).await);

    // The healed member is a valid switchover candidate.
    let r = reqwest::Client::new()
        .post(format!("{}/switchover", c.nodes[li].api_url()))
        .json(&serde_json::json!({"leader": leader, "candidate": replica}))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    let code = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(
        (code, text.as_str()),
        (
            200,
            format!("Successfully switched over to \"{replica}\"").as_str()
        )
    );
    let now = must(&c, c.wait_healthy(3, Duration::from_secs(60)).await);
    assert_eq!(now, replica);
}
