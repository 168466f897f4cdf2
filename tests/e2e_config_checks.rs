//! Issue 11, item 2: one validator for every path a config value takes, against a real
//! 2-node cluster. `PATCH /config` and `edit-config` (`-s`, `-p`) refuse values PostgreSQL or
//! pgkeel would refuse later (checked against the server's own pg_settings), naming the key,
//! the value and what is allowed; a bad or unparseable `/config` written behind pgkeel's back
//! (etcdctl) changes no node's settings: each keeps its last valid ones, says so once, and
//! shows it in `/patroni` and `/metrics`, until `/config` is fixed.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use etcd_client::Client as EtcdClient;
use pgkeel_localcluster::{LocalCluster, Timing};

async fn ctl(config: &Path, args: &[&str]) -> (i32, String) {
    ctl_env(config, args, &[]).await
}

async fn ctl_env(config: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgkeel"))
        .arg("-c")
        .arg(config)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("running pgkeel");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

async fn patch(url: &str, body: serde_json::Value) -> (u16, String) {
    let r = reqwest::Client::new()
        .patch(format!("{url}/config"))
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("PATCH /config");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

async fn get_json(url: &str) -> anyhow::Result<serde_json::Value> {
    Ok(reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(3))
        .send()
        .await?
        .json()
        .await?)
}

async fn get_text(url: &str) -> anyhow::Result<String> {
    Ok(reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(3))
        .send()
        .await?
        .text()
        .await?)
}

async fn show(dsn: &str, param: &str) -> anyhow::Result<String> {
    let client = connect(dsn).await?;
    Ok(client
        .query_one(&format!("SHOW {param}"), &[])
        .await?
        .get::<_, String>(0))
}

fn log_count(c: &LocalCluster, i: usize, needle: &str) -> usize {
    std::fs::read_to_string(&c.nodes[i].log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_are_refused_on_every_path_and_a_bad_config_changes_nothing() {
    let timing = Timing::default();
    let (c, leader) = start_healthy("cfgcheck", 2, timing).await;
    let li = c.index_of(&leader).unwrap();
    let url = c.nodes[li].api_url();
    let cfg = c.nodes[li].config.clone();
    let stored_before = c.load().await.unwrap().config.unwrap();

    // The REST API: each value the issue found accepted is refused, naming the key.
    for (body, key, says) in [
        (
            serde_json::json!({"postgresql": {"parameters": {"max_connections": "abc"}}}),
            "postgresql.parameters.max_connections",
            "invalid value for parameter \"max_connections\": \"abc\"; allowed: an integer from 1",
        ),
        (
            serde_json::json!({"postgresql": {"parameters": {"nosuch_param": 1}}}),
            "postgresql.parameters.nosuch_param",
            "unrecognized configuration parameter \"nosuch_param\"",
        ),
        (
            serde_json::json!({"primary_start_timeout": -5}),
            "primary_start_timeout",
            "0 or more",
        ),
        (
            serde_json::json!({"primary_start_timeout": "abc"}),
            "primary_start_timeout",
            "a number of seconds",
        ),
        (serde_json::json!({"slots": "abc"}), "slots", "a mapping"),
        (
            serde_json::json!({"ignore_slots": 5}),
            "ignore_slots",
            "a list",
        ),
    ] {
        let (code, text) = patch(&url, body.clone()).await;
        if code != 400 || !text.contains(key) || !text.contains(says) {
            dump_logs(&c);
            panic!("PATCH {body}: {code} {text}");
        }
    }

    // edit-config: -s and -p go through the same check (and the same pg_settings).
    for (args, says) in [
        (vec!["-s", "ttl=abc"], "ttl: found the string \"abc\""),
        (
            vec!["-p", "ttl=abc"],
            "unrecognized configuration parameter \"ttl\"",
        ),
        (
            vec!["-p", "max_connections=abc"],
            "invalid value for parameter \"max_connections\"",
        ),
        (vec!["-s", "slots=abc"], "slots: found the string \"abc\""),
    ] {
        let mut all = vec!["edit-config", "cfgcheck", "--force"];
        all.extend(&args);
        let (code, out) = ctl(&cfg, &all).await;
        if code == 0 || !out.contains(says) {
            dump_logs(&c);
            panic!("edit-config {args:?} exited {code}: {out}");
        }
    }
    // --apply and the editor too.
    let bad_file = c.nodes[li].dir.join("bad-config.yml");
    std::fs::write(
        &bad_file,
        "postgresql:\n  parameters:\n    shared_buffers: 12XB\n",
    )
    .unwrap();
    let bad_path = bad_file.display().to_string();
    let (code, out) = ctl(
        &cfg,
        &["edit-config", "cfgcheck", "--force", "--apply", &bad_path],
    )
    .await;
    assert!(
        code != 0 && out.contains("\"shared_buffers\": \"12XB\"") && out.contains("Valid units"),
        "--apply exited {code}: {out}"
    );
    let (code, out) = ctl_env(
        &cfg,
        &["edit-config", "cfgcheck", "--force"],
        &[("EDITOR", "sed -i 's/^ttl: .*/ttl: -3/'")],
    )
    .await;
    assert!(
        code != 0 && out.contains("ttl: found the number -3"),
        "editor exited {code}: {out}"
    );
    assert_eq!(
        c.load().await.unwrap().config.unwrap(),
        stored_before,
        "nothing refused reached /config"
    );
    // A good value still goes through, and reaches both servers.
    let (code, out) = ctl(
        &cfg,
        &["edit-config", "cfgcheck", "--force", "-p", "work_mem=8MB"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        !out.contains("warning"),
        "the leader served pg_settings: {out}"
    );
    for n in &c.nodes {
        eventually(Duration::from_secs(20), "work_mem applied", || async {
            (show(&n.dsn(), "work_mem").await? == "8MB")
                .then_some(())
                .ok_or_else(|| anyhow::anyhow!("not yet"))
        })
        .await;
    }

    // Behind pgkeel's back: a /config that breaks several rules.
    let endpoints: Vec<String> = c.etcd.iter().map(|e| e.endpoint.to_string()).collect();
    let mut etcd = EtcdClient::connect(&endpoints, None).await.unwrap();
    let key = "/service/cfgcheck/config";
    let good = c.load().await.unwrap().config.unwrap();
    let mut bad = good.clone();
    bad["ttl"] = "abc".into();
    bad["postgresql"]["parameters"]["max_connections"] = "abc".into();
    bad["postgresql"]["parameters"]["work_mem"] = "16MB".into();
    etcd.put(key, bad.to_string(), None).await.unwrap();
    for (i, n) in c.nodes.iter().enumerate() {
        let status = eventually(Duration::from_secs(20), "config_error shown", || async {
            let s = get_json(&format!("{}/patroni", n.api_url())).await?;
            s["config_error"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| anyhow::anyhow!("no config_error yet: {s}"))
        })
        .await;
        assert!(
            status.contains("ttl") && status.contains("max_connections"),
            "{status}"
        );
        let metrics = get_text(&format!("{}/metrics", n.api_url())).await.unwrap();
        let line = format!(
            "pgkeel_config_invalid{{scope=\"cfgcheck\",name=\"{}\"}} 1\n",
            n.name
        );
        assert!(metrics.contains(&line), "{metrics}");
        // Several loops later: still the last valid settings, said once.
        tokio::time::sleep(Duration::from_secs_f64(timing.loop_wait * 3.0)).await;
        assert_eq!(show(&n.dsn(), "work_mem").await.unwrap(), "8MB");
        assert_eq!(
            log_count(&c, i, "/config is not valid"),
            1,
            "said once on {}",
            n.name
        );
    }

    // Not JSON at all: still the last valid settings, not each node's bootstrap.dcs.
    etcd.put(key, "{ this is not json", None).await.unwrap();
    for n in &c.nodes {
        eventually(
            Duration::from_secs(20),
            "unreadable config shown",
            || async {
                let s = get_json(&format!("{}/patroni", n.api_url())).await?;
                s["config_error"]
                    .as_str()
                    .filter(|e| e.contains("cannot be read"))
                    .map(|_| ())
                    .ok_or_else(|| anyhow::anyhow!("not yet: {s}"))
            },
        )
        .await;
        assert_eq!(show(&n.dsn(), "work_mem").await.unwrap(), "8MB");
    }

    // Fixed: the valid /config is in force again, and the problem is gone.
    let mut fixed = good.clone();
    fixed["postgresql"]["parameters"]["work_mem"] = "12MB".into();
    etcd.put(key, fixed.to_string(), None).await.unwrap();
    for (i, n) in c.nodes.iter().enumerate() {
        eventually(Duration::from_secs(20), "fixed config adopted", || async {
            let s = get_json(&format!("{}/patroni", n.api_url())).await?;
            let w = show(&n.dsn(), "work_mem").await?;
            (s.get("config_error").is_none() && w == "12MB")
                .then_some(())
                .ok_or_else(|| anyhow::anyhow!("not yet: {w} {s}"))
        })
        .await;
        assert_eq!(log_count(&c, i, "/config is valid again"), 1);
    }

    // Issue 12: timings that break the rule are adjusted as Patroni adjusts them (PATCH
    // {"ttl": 20} over loop_wait 10, retry_timeout 10 answers 200), the values in force are
    // logged and shown in /metrics, /config keeps what was written.
    let (code, text) = patch(
        &url,
        serde_json::json!({"ttl": 20, "loop_wait": 10, "retry_timeout": 10}),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    for (i, n) in c.nodes.iter().enumerate() {
        eventually(
            Duration::from_secs(30),
            "adjusted timings in force",
            || async {
                let m = get_text(&format!("{}/metrics", n.api_url())).await?;
                let labels = format!("{{scope=\"cfgcheck\",name=\"{}\"}}", n.name);
                anyhow::ensure!(
                    m.contains(&format!("pgkeel_ttl_seconds{labels} 20\n"))
                        && m.contains(&format!("pgkeel_loop_wait_seconds{labels} 0.2\n"))
                        && m.contains(&format!("pgkeel_retry_timeout_seconds{labels} 9.9\n")),
                    "not yet"
                );
                Ok(())
            },
        )
        .await;
        assert!(log_count(&c, i, "Violated the rule") >= 1);
    }
    assert_eq!(c.load().await.unwrap().config.unwrap()["loop_wait"], 10);
}
