//! Issue 12 item 5: the seeds' VIP-moving callback (seed 002's `loadvip.sh` shape: `ip addr
//! add` on the primary, `ip addr del` otherwise, run by `on_start`, `on_restart`,
//! `on_role_change`, `on_stop`) follows the leader through a switchover and a failover. Each
//! node's "host" is a network namespace the test creates, the VIP going on its loopback interface (no kernel module needed).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::*;
use pgkeel_localcluster::{Signal, Timing};

const VIP: &str = "10.77.0.100";

/// The namespaces, removed when the test ends however it ends.
struct Namespaces(Vec<String>);

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip").args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The nodes whose namespace holds the VIP.
fn holders(c: &pgkeel_localcluster::LocalCluster, prefix: &str) -> Vec<String> {
    c.nodes
        .iter()
        .filter(|n| {
            ip(&[
                "-n",
                &format!("{prefix}{}", n.name),
                "addr",
                "show",
                "dev",
                "lo",
            ])
            .is_ok_and(|t| t.contains(&format!("inet {VIP}/32")))
        })
        .map(|n| n.name.clone())
        .collect()
}

async fn vip_on(c: &pgkeel_localcluster::LocalCluster, prefix: &str, want: &[&str], what: &str) {
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    eventually(Duration::from_secs(30), what, || async {
        let mut got = holders(c, prefix);
        got.sort();
        anyhow::ensure!(got == want, "the VIP is on {got:?}, not {want:?}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vip_callback_follows_the_leader_through_switchover_and_failover() {
    let prefix = format!("pgkv{}", std::process::id() % 100_000);
    let scope = "vipcb";
    let names: Vec<String> = (1..=3).map(|i| format!("{prefix}node{i}")).collect();
    // The nodes are node1..node3 (the local cluster's names); their hosts exist before any
    // callback can run.
    let guard = Namespaces(names);
    for ns in &guard.0 {
        ip(&["netns", "add", ns]).unwrap();
        ip(&["-n", ns, "link", "set", "lo", "up"]).unwrap();
    }
    let scripts = tempfile::tempdir().unwrap();
    let script = scripts.path().join("loadvip.sh");
    std::fs::write(
        &script,
        r#"#!/bin/sh
# The shape of seed 002's loadvip.sh, with the node's namespace standing for its host.
ns=$1; vip=$2; action=$3; role=$4
has() { ip -n "$ns" addr show dev lo | grep -qw "$vip"; }
case $action in
  on_start|on_restart|on_role_change)
    case $role in
      primary|master) has || ip -n "$ns" addr add "$vip/32" dev lo ;;
      *) if has; then ip -n "$ns" addr del "$vip/32" dev lo; fi ;;
    esac ;;
  on_stop) if has; then ip -n "$ns" addr del "$vip/32" dev lo; fi ;;
esac
"#,
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cmd = format!("{} {prefix}{{name}} {VIP}", script.display());
    let mut c = start_opts(scope, 3, Timing::default(), |o| {
        o.callbacks = ["on_start", "on_stop", "on_restart", "on_role_change"]
            .iter()
            .map(|e| (e.to_string(), cmd.clone()))
            .collect();
    });
    assert!(
        c.nodes.iter().all(|n| n.name.starts_with("node")),
        "node names changed: the namespaces above must follow"
    );
    let leader = must(&c, c.wait_healthy(3, Duration::from_secs(120)).await);
    vip_on(&c, &prefix, &[&leader], "the VIP on the bootstrap leader").await;

    // Switchover: the VIP moves with the key.
    let li = c.index_of(&leader).unwrap();
    let candidate = c.nodes[(li + 1) % 3].name.clone();
    let r = reqwest::Client::new()
        .post(format!("{}/switchover", c.nodes[li].api_url()))
        .json(&serde_json::json!({"leader": leader, "candidate": candidate}))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    vip_on(
        &c,
        &prefix,
        &[&candidate],
        "the VIP on the switchover's candidate",
    )
    .await;

    // Failover: the leader's host dies (agent and PostgreSQL killed, its callbacks never
    // run); the new leader takes the VIP up on its own host.
    let ci = c.index_of(&candidate).unwrap();
    c.signal_agent_and_postmaster(ci, Signal::Kill);
    let new = must(
        &c,
        c.wait_new_leader(&candidate, Duration::from_secs(60)).await,
    );
    vip_on(
        &c,
        &prefix,
        &[&candidate, &new],
        "the VIP on the new leader too",
    )
    .await;
    // The dead host comes back: it rejoins as a replica and takes its VIP down.
    c.reap_agent(ci);
    let started = c.start_agent(ci);
    must(&c, started);
    vip_on(&c, &prefix, &[&new], "the VIP only on the new leader").await;
}
