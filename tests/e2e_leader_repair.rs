//! Issue 11, item 3: the leader repairs the cluster keys it owns. `/status`, `/history` and
//! `/sync` overwritten with garbage or deleted behind pgkeel's back (etcdctl) are written
//! again by the leader within one loop, with values that parse; a deleted `/config` comes
//! back with the settings in force.

mod common;

use std::time::{Duration, Instant};

use common::*;
use etcd_client::Client as EtcdClient;
use pgkeel_localcluster::{LocalCluster, Timing};

/// Waits until `key` holds a value `good` accepts; returns how long it took.
async fn repaired(
    c: &LocalCluster,
    etcd: &mut EtcdClient,
    key: &str,
    what: &str,
    good: impl Fn(&serde_json::Value) -> bool,
) -> Duration {
    let since = Instant::now();
    let deadline = since + Duration::from_secs(20);
    loop {
        let raw = etcd
            .get(key, None)
            .await
            .ok()
            .and_then(|r| r.kvs().first().map(|kv| kv.value().to_vec()));
        if let Some(v) = raw
            .as_deref()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        {
            if good(&v) {
                let took = since.elapsed();
                println!(
                    "{what}: {key} repaired after {:.2}s: {v}",
                    took.as_secs_f64()
                );
                return took;
            }
        }
        if Instant::now() > deadline {
            dump_logs(c);
            panic!(
                "{what}: {key} not repaired within 20s: {:?}",
                raw.map(|b| String::from_utf8_lossy(&b).into_owned())
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_rewrites_a_corrupt_or_deleted_status_history_and_sync_key() {
    let timing = Timing::default();
    let c = start_with("repair", 2, timing, "synchronous_mode: true\n", &[]);
    let leader = must(&c, c.wait_healthy(2, Duration::from_secs(90)).await);
    let standby = c
        .nodes
        .iter()
        .find(|n| n.name != leader)
        .unwrap()
        .name
        .clone();
    let endpoints: Vec<String> = c.etcd.iter().map(|e| e.endpoint.to_string()).collect();
    let mut etcd = EtcdClient::connect(&endpoints, None).await.unwrap();
    let one_loop = Duration::from_secs_f64(timing.loop_wait) + Duration::from_secs(5);
    let key = |k: &str| format!("/service/repair/{k}");

    // /sync names the standby once synchronous replication is set up.
    let sync_ok = |v: &serde_json::Value| {
        v["leader"] == leader.as_str() && v["sync_standby"] == standby.as_str()
    };
    repaired(&c, &mut etcd, &key("sync"), "initial", sync_ok).await;

    let status_ok = |v: &serde_json::Value| v["optime"].as_u64().is_some_and(|o| o > 0);
    let history_ok = |v: &serde_json::Value| v.is_array();
    for (k, good) in [
        ("status", &status_ok as &dyn Fn(&serde_json::Value) -> bool),
        ("history", &history_ok),
        ("sync", &sync_ok),
    ] {
        etcd.put(key(k), "garbage {", None).await.unwrap();
        assert!(repaired(&c, &mut etcd, &key(k), "garbage", good).await < one_loop);
        etcd.delete(key(k), None).await.unwrap();
        assert!(repaired(&c, &mut etcd, &key(k), "deleted", good).await < one_loop);
    }
    // A deleted /config comes back as the cluster had it (a value this node's bootstrap
    // section does not have), not as the leader's bootstrap.dcs.
    let li = c.index_of(&leader).unwrap();
    let r = reqwest::Client::new()
        .patch(format!("{}/config", c.nodes[li].api_url()))
        .json(&serde_json::json!({"maximum_lag_on_failover": 2097152}))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let patched = |v: &serde_json::Value| v["maximum_lag_on_failover"] == 2097152;
    repaired(&c, &mut etcd, &key("config"), "patched", patched).await;
    // Every agent has adopted it before it goes away.
    tokio::time::sleep(one_loop).await;
    etcd.delete(key("config"), None).await.unwrap();
    let took = repaired(&c, &mut etcd, &key("config"), "deleted", |v| {
        patched(v) && v["synchronous_mode"] == true
    })
    .await;
    assert!(took < one_loop);

    // Writes still commit synchronously on the repaired cluster.
    let client = connect(&c.rw_dsn()).await.unwrap();
    client
        .batch_execute("CREATE TABLE repaired(x int); INSERT INTO repaired VALUES (1)")
        .await
        .unwrap();
}
