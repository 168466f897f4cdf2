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
    let ri = c.index_of(&replica).unwrap();
    // The script wrote its line before it exited: its count follows its exit.
    let want = format!(
        "pgkeel_callback_runs_total{{scope=\"cbs\",name=\"{replica}\",callback=\"on_start\",result=\"ok\"}} 1\n"
    );
    let url = format!("{}/metrics", c.nodes[ri].api_url());
    eventually(
        Duration::from_secs(10),
        "on_start counted in /metrics",
        || async {
            let metrics = reqwest::get(&url).await?.text().await?;
            anyhow::ensure!(metrics.contains(&want), "{metrics}");
            Ok(())
        },
    )
    .await;

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

/// Patroni's `pre_promote` and `before_stop` (issue 12 item 5). The leader's agent and
/// PostgreSQL die; the replica takes the key, but its `pre_promote` fails: it gives the key
/// up (Patroni's words in its log), stays a replica, and sits the races out for `ttl`. Once
/// the script succeeds it promotes. `before_stop` runs to its end while PostgreSQL still
/// runs, before the agent's shutdown stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pre_promote_cancels_the_promotion_and_before_stop_runs_first() {
    let scripts = tempfile::tempdir().unwrap();
    let dir = scripts.path();
    let gate = dir.join("pre_promote.sh");
    std::fs::write(
        &gate,
        "#!/bin/sh\necho \"$1\" >> \"$(dirname \"$0\")/pre_promote.log\"\n\
         test -e \"$(dirname \"$0\")/allow\"\n",
    )
    .unwrap();
    // Records whether the postmaster was still alive when it ran.
    let before = dir.join("before_stop.sh");
    std::fs::write(
        &before,
        "#!/bin/sh\nif kill -0 \"$(head -1 \"$2/postmaster.pid\")\" 2>/dev/null; \
         then s=up; else s=down; fi\necho \"$1 $s\" >> \"$(dirname \"$0\")/before_stop.log\"\n",
    )
    .unwrap();
    for s in [&gate, &before] {
        std::fs::set_permissions(s, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut c = start_opts("prepromote", 2, Timing::default(), |o| {
        o.postgresql_extra = format!(
            "pre_promote: {} {{name}}\nbefore_stop: {} {{name}} {{data}}\n",
            gate.display(),
            before.display()
        );
    });
    let leader = must(&c, c.wait_healthy(2, Duration::from_secs(90)).await);
    let li = c.index_of(&leader).unwrap();
    let ri = 1 - li;
    let replica = c.nodes[ri].name.clone();
    // Bootstrap promotes nobody: no pre_promote ran.
    assert!(!dir.join("pre_promote.log").exists());

    c.signal_agent_and_postmaster(li, pgkeel_localcluster::Signal::Kill);
    let log = c.nodes[ri].log.clone();
    eventually(
        Duration::from_secs(60),
        "the replica gives the key up after its pre_promote failed",
        || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            anyhow::ensure!(
                text.contains(
                    "Releasing the leader key voluntarily because the pre-promote script failed"
                ) && text.contains(&format!(
                    "pre_promote script `{} {replica}` exited with 1",
                    gate.display()
                )),
                "not yet"
            );
            Ok(())
        },
    )
    .await;
    let metrics = reqwest::get(format!("{}/metrics", c.nodes[ri].api_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Counted before the promotion was given up, which the log line above follows.
    assert!(
        metrics.contains(&format!(
            "pgkeel_callback_runs_total{{scope=\"prepromote\",name=\"{replica}\",callback=\"pre_promote\",result=\"failed\"}}"
        )),
        "{metrics}"
    );
    let ran = std::fs::read_to_string(dir.join("pre_promote.log")).unwrap();
    assert!(ran.lines().all(|l| l == replica), "{ran}");
    assert!(
        connect(&c.nodes[ri].dsn())
            .await
            .unwrap()
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .unwrap()
            .get::<_, bool>(0),
        "the replica promoted although its pre_promote failed"
    );
    eventually(
        Duration::from_secs(30),
        "the backoff line in the replica's log",
        || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            anyhow::ensure!(
                text.contains("backoff: skip leader race after pre_promote script failure"),
                "not yet"
            );
            Ok(())
        },
    )
    .await;

    std::fs::write(dir.join("allow"), "").unwrap();
    let new = must(
        &c,
        c.wait_new_leader(&leader, Duration::from_secs(60)).await,
    );
    assert_eq!(new, replica);
    eventually(
        Duration::from_secs(30),
        "the new leader writable",
        || async {
            anyhow::ensure!(is_writable(&c.nodes[ri].dsn()).await?, "read-only");
            Ok(())
        },
    )
    .await;

    let stopped = c.stop_agent(ri, Duration::from_secs(60));
    must(&c, stopped);
    let stopped = std::fs::read_to_string(dir.join("before_stop.log")).unwrap_or_default();
    assert_eq!(stopped.trim(), format!("{replica} up"), "{stopped}");
}
