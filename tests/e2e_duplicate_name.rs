//! A second agent started with a running member's name (a copied config: other ports,
//! another data directory) refuses to start with Patroni's CRITICAL message and a non-zero
//! exit, before it touches PostgreSQL or etcd; an agent restarted after `kill -9` (its own
//! previous member key, at its own address) starts.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pgkeel_localcluster::{Signal, Timing};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_with_a_running_members_name_refuses_to_start() {
    let (mut c, leader) = start_healthy("dupname", 3, Timing::fast()).await;
    let ri = (0..3).find(|i| c.nodes[*i].name != leader).unwrap();
    let name = c.nodes[ri].name.clone();
    let before = c.load().await.unwrap();

    // The same file with other ports and another data directory, as a copied config has.
    let node = &c.nodes[ri];
    let twin_dir = node.dir.join("twin");
    std::fs::create_dir_all(&twin_dir).unwrap();
    let twin_data = twin_dir.join("data");
    let twin_config = copied_config(node, &name, &twin_dir, &twin_data);

    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_pgkeel"))
            .arg("agent")
            .arg(&twin_config)
            .output(),
    )
    .await
    .expect("the second agent kept running")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "duplicate name: exit {:?} after {:.2}s",
        out.status.code(),
        started.elapsed().as_secs_f64()
    );
    assert!(!out.status.success(), "the second agent exited 0: {stderr}");
    assert!(
        stderr.contains(&format!(
            "Can't start; there is already a node named '{name}' running"
        )),
        "{stderr}"
    );
    assert!(
        !twin_data.exists(),
        "the second agent created its data directory"
    );
    // The real member's key and the cluster are as they were.
    let after = c.load().await.unwrap();
    assert_eq!(after.leader_name(), before.leader_name());
    assert_eq!(
        after.member(&name).map(|m| m.api_url.clone()),
        before.member(&name).map(|m| m.api_url.clone())
    );

    // kill -9 of that member's agent, then a restart within the ttl: its own key, at its
    // own address, must not stop it.
    c.signal_agent(ri, Signal::Kill);
    c.reap_agent(ri);
    c.start_agent(ri).unwrap();
    eventually(
        Duration::from_secs(30),
        "the restarted agent answers",
        || {
            let url = format!("{}/patroni", c.nodes[ri].api_url());
            async move {
                anyhow::ensure!(http_code("GET", &url).await? == 200);
                Ok(())
            }
        },
    )
    .await;
    must(&c, c.wait_healthy(3, Duration::from_secs(60)).await);
    let log = std::fs::read_to_string(&c.nodes[ri].log).unwrap();
    assert!(
        !log.contains("Can't start"),
        "the restarted agent refused itself"
    );
}

/// Patroni's acceptance (`basic_replication`, "two nodes have the same name"): the second
/// agent's file differs only in `restapi.listen`, so it publishes the running member's own
/// address. It must still ask that address (not skip it as its own), find the other agent,
/// and exit with Patroni's message at level CRITICAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_publishing_the_same_address_refuses_to_start() {
    let (c, leader) = start_healthy("dupaddr", 2, Timing::fast()).await;
    let li = c.index_of(&leader).unwrap();
    let node = &c.nodes[li];
    let twin_dir = node.dir.join("twin");
    std::fs::create_dir_all(&twin_dir).unwrap();
    let twin_data = twin_dir.join("data");
    let yaml = std::fs::read_to_string(&node.config)
        .unwrap()
        .replace(
            &format!("  listen: 127.0.0.1:{}\n", node.api_port),
            &format!("  listen: 127.0.0.1:{}\n", free_port()),
        )
        .replace(
            &node.data_dir.display().to_string(),
            &twin_data.display().to_string(),
        );
    assert!(yaml.contains(&format!("connect_address: 127.0.0.1:{}", node.api_port)));
    let twin_config = twin_dir.join("pgkeel.yml");
    std::fs::write(&twin_config, yaml).unwrap();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_pgkeel"))
            .arg("agent")
            .arg(&twin_config)
            .output(),
    )
    .await
    .expect("the second agent kept running")
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second agent exited 0: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("Can't start; there is already a node named"))
        .unwrap_or_else(|| panic!("no refusal: {stderr}"));
    assert!(line.contains(" CRITICAL"), "{line}");
    assert!(
        !twin_data.exists(),
        "the second agent created its data directory"
    );
    assert_eq!(c.load().await.unwrap().leader_name(), Some(leader.as_str()));
}
