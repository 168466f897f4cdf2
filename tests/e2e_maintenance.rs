//! Day-2 operations through the REST API, with HTTP Basic auth configured: pause/resume
//! (a killed postmaster stays down while paused), config changes (validated; a parameter
//! that needs a restart shows as pending, and a pending-only restart clears it), restart,
//! reload and reinit of a replica.

mod common;

use std::time::{Duration, Instant};

use common::*;
use pgkeel_localcluster::{LocalCluster, Options, Timing};

const AUTH: (&str, &str) = ("admin", "s3cret");

fn start_with_auth(scope: &str) -> (LocalCluster, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("pgkeel-{scope}-"))
        .tempdir()
        .unwrap();
    let c = LocalCluster::start(Options {
        nodes: 3,
        dir: dir.path().to_path_buf(),
        pgkeel: env!("CARGO_BIN_EXE_pgkeel").into(),
        scope: scope.into(),
        timing: Timing::default(),
        rest_auth: Some((AUTH.0.into(), AUTH.1.into())),
        ..Default::default()
    })
    .unwrap();
    (c, dir)
}

async fn call(
    method: &str,
    url: &str,
    body: Option<serde_json::Value>,
    auth: bool,
) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
        .timeout(Duration::from_secs(120));
    if auth {
        req = req.basic_auth(AUTH.0, Some(AUTH.1));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn postmaster_pid(c: &LocalCluster, i: usize) -> Option<i32> {
    c.postmaster_pid(i)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_config_restart_reload_and_reinit_through_the_api() {
    let (c, _dir) = start_with_auth("maint");
    let leader = must(&c, c.wait_healthy(3, BOOT).await);
    let li = c.index_of(&leader).unwrap();
    let ri = (li + 1) % 3;
    let (l_api, r_api) = (c.nodes[li].api_url(), c.nodes[ri].api_url());
    let loop_wait = Duration::from_secs_f64(Timing::default().loop_wait);

    // Unsafe methods need the credentials; reads do not.
    assert_eq!(
        call("POST", &format!("{r_api}/reload"), None, false)
            .await
            .0,
        401
    );
    assert_eq!(
        call("GET", &format!("{r_api}/patroni"), None, false)
            .await
            .0,
        200
    );

    // Reload.
    assert_eq!(
        call("POST", &format!("{r_api}/reload"), None, true).await,
        (202, "reload scheduled".into())
    );

    // Config: a bad value is refused naming the key; a valid patch is applied. (Timings that
    // break the rule are adjusted, as Patroni does: see e2e_config_checks.)
    let (code, text) = call(
        "PATCH",
        &format!("{l_api}/config"),
        Some(serde_json::json!({"ttl": "soon"})),
        true,
    )
    .await;
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("ttl: found the string \"soon\""), "{text}");
    let (code, text) = call(
        "PATCH",
        &format!("{l_api}/config"),
        Some(serde_json::json!({"postgresql": {"parameters": {"max_connections": 120}}})),
        true,
    )
    .await;
    assert_eq!(code, 200, "{text}");
    // max_connections needs a restart: every member reports it pending within a loop or two.
    let dcs_view = || c.load();
    eventually(
        Duration::from_secs(15),
        "pending_restart on every member",
        || async {
            let cl = dcs_view().await?;
            for (n, e) in &cl.members {
                let m = e.value().ok_or_else(|| anyhow::anyhow!("{n}: corrupt"))?;
                anyhow::ensure!(m.pending_restart == Some(true), "{n}: {m:?}");
            }
            Ok(())
        },
    )
    .await;
    // A restart limited to pending ones, on the replica, clears it there.
    let before = postmaster_pid(&c, ri);
    let (code, text) = call(
        "POST",
        &format!("{r_api}/restart"),
        Some(serde_json::json!({"restart_pending": true})),
        true,
    )
    .await;
    assert_eq!((code, text.as_str()), (200, "restarted successfully"));
    assert_ne!(
        postmaster_pid(&c, ri),
        before,
        "the postmaster should be a new one"
    );
    let rname = c.nodes[ri].name.clone();
    eventually(
        Duration::from_secs(15),
        "pending_restart cleared on the restarted replica",
        || async {
            let cl = dcs_view().await?;
            let m = cl
                .member(&rname)
                .ok_or_else(|| anyhow::anyhow!("no member"))?;
            anyhow::ensure!(
                m.pending_restart.is_none() && m.replication_state.as_deref() == Some("streaming"),
                "{m:?}"
            );
            Ok(())
        },
    )
    .await;
    // A scheduled restart: accepted, shown in the member key, carried out at its time.
    let before = postmaster_pid(&c, ri);
    let at = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let url = format!("{r_api}/restart");
    let (code, text) = call(
        "POST",
        &url,
        Some(serde_json::json!({"schedule": at})),
        true,
    )
    .await;
    assert_eq!((code, text.as_str()), (202, "Restart scheduled"));
    let (code, _) = call(
        "POST",
        &url,
        Some(serde_json::json!({"schedule": at})),
        true,
    )
    .await;
    assert_eq!(code, 409, "a second scheduled restart is refused");
    eventually(
        Duration::from_secs(15),
        "the scheduled restart happens",
        || async {
            anyhow::ensure!(postmaster_pid(&c, ri).is_some() && postmaster_pid(&c, ri) != before);
            Ok(())
        },
    )
    .await;
    assert_eq!(
        call("DELETE", &url, None, true).await.0,
        404,
        "nothing is scheduled any more"
    );
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    assert_eq!(
        call(
            "POST",
            &url,
            Some(serde_json::json!({"schedule": later})),
            true
        )
        .await
        .0,
        202
    );
    eventually(
        Duration::from_secs(10),
        "scheduled_restart in the member key",
        || async {
            let cl = dcs_view().await?;
            let m = cl
                .member(&rname)
                .ok_or_else(|| anyhow::anyhow!("no member"))?;
            anyhow::ensure!(m.scheduled_restart.is_some(), "{m:?}");
            Ok(())
        },
    )
    .await;
    assert_eq!(
        call("DELETE", &url, None, true).await,
        (200, "scheduled restart deleted".into())
    );

    // A new ttl reaches every agent's lease within a loop, without a failover.
    let (code, text) = call(
        "PATCH",
        &format!("{l_api}/config"),
        Some(serde_json::json!({"ttl": 12})),
        true,
    )
    .await;
    assert_eq!(code, 200, "{text}");
    eventually(
        Duration::from_secs(15),
        "every agent moved to a 12 s lease",
        || async {
            for n in &c.nodes {
                let log = std::fs::read_to_string(&n.log)?;
                anyhow::ensure!(
                    log.contains("ttl is now 12s"),
                    "{} has not switched",
                    n.name
                );
            }
            Ok(())
        },
    )
    .await;
    assert_eq!(
        must(&c, c.wait_healthy(3, Duration::from_secs(30)).await),
        leader,
        "no failover"
    );

    // A role filter that does not match is refused.
    let (code, _) = call(
        "POST",
        &format!("{r_api}/restart"),
        Some(serde_json::json!({"role": "primary"})),
        true,
    )
    .await;
    assert_eq!(code, 503);

    // Pause: a replica whose postmaster dies stays down; resume brings it back.
    let (code, text) = call(
        "PATCH",
        &format!("{l_api}/config"),
        Some(serde_json::json!({"pause": true})),
        true,
    )
    .await;
    assert_eq!(code, 200, "{text}");
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
    let pid = postmaster_pid(&c, ri).expect("replica postmaster");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let down_since = Instant::now();
    // Nothing may restart it while paused: check across three loops.
    while down_since.elapsed() < loop_wait * 3 {
        assert!(
            connect(&c.nodes[ri].dsn()).await.is_err(),
            "PostgreSQL restarted while paused"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (code, text) = call(
        "PATCH",
        &format!("{l_api}/config"),
        Some(serde_json::json!({"pause": null})),
        true,
    )
    .await;
    assert_eq!(code, 200, "{text}");
    must(&c, c.wait_healthy(3, Duration::from_secs(60)).await);

    // The leader's PostgreSQL crashes while its agent lives: restarted in place (crash
    // recovery), the key kept, no failover.
    let tl_before = c
        .load()
        .await
        .unwrap()
        .member(&leader)
        .and_then(|m| m.timeline);
    let pm = postmaster_pid(&c, li).expect("leader postmaster");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pm),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let ldsn = c.nodes[li].dsn();
    eventually(
        Duration::from_secs(30),
        "the leader's PostgreSQL back, writable",
        || async {
            anyhow::ensure!(
                postmaster_pid(&c, li).is_some_and(|p| p != pm),
                "not restarted yet"
            );
            anyhow::ensure!(is_writable(&ldsn).await?, "not writable");
            Ok(())
        },
    )
    .await;
    assert_eq!(
        must(&c, c.wait_healthy(3, Duration::from_secs(60)).await),
        leader,
        "no failover"
    );
    assert_eq!(
        c.load()
            .await
            .unwrap()
            .member(&leader)
            .and_then(|m| m.timeline),
        tl_before
    );
    let log = std::fs::read_to_string(&c.nodes[li].log).unwrap();
    assert!(
        log.contains("starting: I am") && log.contains("I hold the leader key"),
        "{log}"
    );

    // Reinit: the replica is cloned again and streams; data written before is there.
    let w = connect(&c.nodes[li].dsn()).await.unwrap();
    w.batch_execute("CREATE TABLE r (id int); INSERT INTO r VALUES (1)")
        .await
        .unwrap();
    let (code, text) = call(
        "POST",
        &format!("{r_api}/reinitialize"),
        Some(serde_json::json!({"force": true})),
        true,
    )
    .await;
    assert_eq!((code, text.as_str()), (200, "reinitialize started"));
    let (code, text) = call("POST", &format!("{l_api}/reinitialize"), None, true).await;
    assert_eq!(
        (code, text.as_str()),
        (503, "I am the leader, can not reinitialize")
    );
    must(&c, c.wait_healthy(3, Duration::from_secs(90)).await);
    let dsn = c.nodes[ri].dsn();
    eventually(
        Duration::from_secs(20),
        "row on the re-cloned replica",
        || count_rows(&dsn, "r", 1),
    )
    .await;
    let log = std::fs::read_to_string(&c.nodes[ri].log).unwrap();
    assert!(
        log.contains("reinitialize requested"),
        "the replica's log should show the reinit"
    );
}
