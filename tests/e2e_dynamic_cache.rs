//! `patroni.dynamic.json` (issue 12 item 2, and issue 11's "keeps its last good settings"
//! across an agent restart): each node keeps the last valid `/config` in its data
//! directory, as Patroni does; an agent restarted while `/config` is unreadable keeps the
//! cluster's settings from it instead of its own bootstrap section.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

use common::*;
use etcd_client::Client as EtcdClient;
use pgkeel_localcluster::Timing;

async fn show(dsn: &str, param: &str) -> anyhow::Result<String> {
    let client = connect(dsn).await?;
    Ok(client
        .query_one(&format!("SHOW {param}"), &[])
        .await?
        .get::<_, String>(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_valid_config_is_kept_in_the_data_directory_and_used_after_a_restart() {
    let (mut c, leader) = start_healthy("dyncache", 2, Timing::default()).await;
    let li = c.index_of(&leader).unwrap();
    let ri = 1 - li;
    let r = reqwest::Client::new()
        .patch(format!("{}/config", c.nodes[li].api_url()))
        .json(&serde_json::json!({"postgresql": {"parameters": {"work_mem": "7MB"}}}))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    for n in &c.nodes {
        let cache = n.data_dir.join("patroni.dynamic.json");
        eventually(
            Duration::from_secs(20),
            "patroni.dynamic.json written",
            || async {
                let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cache)?)?;
                anyhow::ensure!(
                    v["postgresql"]["parameters"]["work_mem"] == "7MB",
                    "not yet: {v}"
                );
                Ok(())
            },
        )
        .await;
        let meta = std::fs::metadata(&cache).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            meta.uid(),
            std::fs::metadata(&n.data_dir).unwrap().uid(),
            "owned by PostgreSQL's user"
        );
        assert_eq!(show(&n.dsn(), "work_mem").await.unwrap(), "7MB");
    }

    // /config unreadable, then the replica's agent restarts: it keeps 7MB from the cache.
    let endpoints: Vec<String> = c.etcd.iter().map(|e| e.endpoint.to_string()).collect();
    let mut etcd = EtcdClient::connect(&endpoints, None).await.unwrap();
    let good = c.load().await.unwrap().config.unwrap();
    etcd.put("/service/dyncache/config", "{ not json", None)
        .await
        .unwrap();
    let stopped = c.stop_agent(ri, Duration::from_secs(40));
    must(&c, stopped);
    let started = c.start_agent(ri);
    must(&c, started);
    let log = c.nodes[ri].log.clone();
    eventually(
        Duration::from_secs(30),
        "the restarted agent reports /config",
        || async {
            let text = std::fs::read_to_string(&log)?;
            anyhow::ensure!(text.contains("/config cannot be read"), "not yet");
            anyhow::ensure!(
                !text.contains("no earlier valid settings"),
                "the cache was not used: {text}"
            );
            Ok(())
        },
    )
    .await;
    must(&c, c.wait_healthy(2, Duration::from_secs(60)).await);
    assert_eq!(show(&c.nodes[ri].dsn(), "work_mem").await.unwrap(), "7MB");

    // Gone entirely (a wiped DCS): the leader writes back what is in force.
    etcd.delete("/service/dyncache/config", None).await.unwrap();
    eventually(Duration::from_secs(20), "/config written back", || async {
        let v = c
            .load()
            .await?
            .config
            .ok_or_else(|| anyhow::anyhow!("absent"))?;
        anyhow::ensure!(v == good, "{v}");
        Ok(())
    })
    .await;
}
