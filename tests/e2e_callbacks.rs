//! Issue 12 item 5: Patroni's callbacks run as `CMD ACTION ROLE SCOPE` at Patroni's moments
//! on a real cluster: `on_start` when a replica starts, `on_role_change` on both sides of a
//! switchover (after the promotion, after the demotion), `on_restart` after `POST /restart`,
//! `on_reload` after `POST /reload`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use pgkeel_localcluster::Timing;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_run_with_action_role_and_scope_at_patronis_moments() {
    let scripts = tempfile::tempdir().unwrap();
    let script = scripts.path().join("callback.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nlog=\"$1\"; shift\necho \"$*\" >> \"$log\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let log_of = |name: &str| scripts.path().join(format!("{name}.log"));
    let cmd = format!(
        "{} {}/{{name}}.log",
        script.display(),
        scripts.path().display()
    );
    let c = start_opts("cbs", 2, Timing::default(), |o| {
        o.callbacks = [
            "on_start",
            "on_stop",
            "on_restart",
            "on_reload",
            "on_role_change",
        ]
        .iter()
        .map(|e| (e.to_string(), cmd.clone()))
        .collect();
    });
    let leader = must(&c, c.wait_healthy(2, Duration::from_secs(90)).await);
    let li = c.index_of(&leader).unwrap();
    let replica = c.nodes[1 - li].name.clone();
    let saw = |name: &str, line: &str| {
        let path = log_of(name);
        let line = line.to_string();
        let c = &c;
        async move {
            eventually(
                Duration::from_secs(30),
                &format!("{line} on {}", path.display()),
                || async {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    anyhow::ensure!(text.lines().any(|l| l == line), "{text:?}");
                    Ok(())
                },
            )
            .await;
            let _ = c;
        }
    };
    saw(&replica, "on_start replica cbs").await;

    // Switchover: the new leader's on_role_change after its promotion, the old one's
    // after its demotion (and neither on_stop nor on_start for the demotion's steps).
    let r = reqwest::Client::new()
        .post(format!("{}/switchover", c.nodes[li].api_url()))
        .json(&serde_json::json!({"leader": leader, "candidate": replica}))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    saw(&replica, "on_role_change primary cbs").await;
    saw(&leader, "on_role_change replica cbs").await;
    let old = std::fs::read_to_string(log_of(&leader)).unwrap_or_default();
    assert!(!old.contains("on_stop"), "{old}");

    // A restart of the (now) replica, and a reload.
    let r = reqwest::Client::new()
        .post(format!("{}/restart", c.nodes[li].api_url()))
        .json(&serde_json::json!({}))
        .timeout(Duration::from_secs(90))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
    saw(&leader, "on_restart replica cbs").await;
    let r = reqwest::Client::new()
        .post(format!("{}/reload", c.nodes[1 - li].api_url()))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    saw(&replica, "on_reload primary cbs").await;
}

/// Patroni's post_recover (acceptance `recovery`, "crashed primary demotes after failed
/// attempt to start"): the leader's PostgreSQL crashes and cannot start again (a setting it
/// refuses); the leader does not retry for primary_start_timeout (300 s by default) but
/// gives the key up at once, with `on_role_change demoted`, and the replica takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_cannot_start_again_gives_the_key_up_as_demoted() {
    let scripts = tempfile::tempdir().unwrap();
    let script = scripts.path().join("callback.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nlog=\"$1\"; shift\necho \"$*\" >> \"$log\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cmd = format!(
        "{} {}/{{name}}.log",
        script.display(),
        scripts.path().display()
    );
    let c = start_opts("cbdemoted", 2, Timing::default(), |o| {
        o.callbacks = vec![("on_role_change".into(), cmd.clone())];
    });
    let leader = must(&c, c.wait_healthy(2, Duration::from_secs(90)).await);
    let li = c.index_of(&leader).unwrap();
    let replica = c.nodes[1 - li].name.clone();
    let auto_conf = c.nodes[li].data_dir.join("postgresql.auto.conf");
    std::fs::write(&auto_conf, "foo=bar\n").unwrap();
    c.signal_postmaster(li, pgkeel_localcluster::Signal::Kill);
    let new = must(
        &c,
        c.wait_new_leader(&leader, Duration::from_secs(60)).await,
    );
    assert_eq!(new, replica);
    let log = scripts.path().join(format!("{leader}.log"));
    eventually(
        Duration::from_secs(30),
        "on_role_change demoted on the old leader",
        || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            anyhow::ensure!(
                text.lines()
                    .any(|l| l == "on_role_change demoted cbdemoted"),
                "{text:?}"
            );
            Ok(())
        },
    )
    .await;
}
