//! The CLI verbs against a real 3-node cluster: the `pgkeel` binary run as an operator runs
//! patronictl, with `-c <a node's pgkeel.yml>`. Each test shares one cluster between its
//! verbs; the second one turns on the REST API's HTTP Basic auth, so every mutating call
//! there must carry the configured credentials. `E2E_CLI_SHOW=1` prints every command's
//! output (with `--no-capture`).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use pgkeel_localcluster::{LocalCluster, Options, Signal, Timing};

/// Runs `pgkeel -c <config> args...`.
async fn ctl(config: &Path, args: &[&str]) -> Out {
    let config = config.display().to_string();
    let mut all = vec!["-c", config.as_str()];
    all.extend_from_slice(args);
    run_pgkeel(&all).await
}

/// Runs a verb on node `i`'s configuration and requires exit code 0; returns stdout. On
/// failure the agents' logs are printed too.
async fn ok(c: &LocalCluster, i: usize, args: &[&str]) -> String {
    let o = ctl(&c.nodes[i].config, args).await;
    if o.code != 0 {
        dump_logs(c);
        panic!(
            "pgkeel {args:?} exited with {}\n--- stdout\n{}--- stderr\n{}",
            o.code, o.stdout, o.stderr
        );
    }
    if std::env::var_os("E2E_CLI_SHOW").is_some() {
        eprintln!("$ pgkeel {}\n{}{}", args.join(" "), o.stdout, o.stderr);
    }
    o.stdout
}

/// `assert!` that prints the agents' logs first.
#[track_caller]
fn check(c: &LocalCluster, cond: bool, what: impl std::fmt::Display) {
    if !cond {
        dump_logs(c);
        panic!("{what}");
    }
}

/// A cluster and its directory (removed after the cluster is stopped: fields drop in
/// order).
struct AuthCluster {
    cluster: LocalCluster,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for AuthCluster {
    type Target = LocalCluster;
    fn deref(&self) -> &LocalCluster {
        &self.cluster
    }
}

/// `tests/common`'s `start`, with HTTP Basic auth on the REST API.
fn start_with_auth(scope: &str, user: &str, password: &str) -> AuthCluster {
    let dir = tempfile::Builder::new()
        .prefix(&format!("pgkeel-{scope}-"))
        .tempdir()
        .expect("tempdir");
    let cluster = LocalCluster::start(Options {
        nodes: 3,
        dir: dir.path().to_path_buf(),
        pgkeel: env!("CARGO_BIN_EXE_pgkeel").into(),
        scope: scope.into(),
        timing: Timing::default(),
        rest_auth: Some((user.into(), password.into())),
        ..Default::default()
    })
    .expect("starting the local cluster");
    AuthCluster { cluster, _dir: dir }
}

/// The names of the members that are not `leader`, in node order.
fn replicas(c: &LocalCluster, leader: &str) -> Vec<String> {
    c.nodes
        .iter()
        .filter(|n| n.name != leader)
        .map(|n| n.name.clone())
        .collect()
}

/// Whether a process with this pid exists (and is not a zombie).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

async fn system_identifier(dsn: &str) -> anyhow::Result<i64> {
    let c = connect(dsn).await?;
    Ok(
        c.query_one("SELECT system_identifier FROM pg_control_system()", &[])
            .await?
            .get(0),
    )
}

const HEALTHY: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_failover_history_config_and_maintenance_from_the_cli() {
    let scope = "ecli";
    let (c, first) = start_healthy(scope, 3, Timing::default()).await;
    let loop_wait = Duration::from_secs_f64(Timing::default().loop_wait);
    let w = connect(&c.nodes[c.index_of(&first).unwrap()].dsn())
        .await
        .unwrap();
    w.batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    drop(w);

    // list and topology: every member, the leader at the root of the tree.
    let out = ok(&c, 0, &["list"]).await;
    check(&c, out.contains(&format!(" Cluster: {scope} (")), &out);
    for n in &c.nodes {
        check(&c, out.contains(&format!("| {} ", n.name)), &out);
    }
    let out = ok(&c, 0, &["list", "-f", "json"]).await;
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let leaders: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["Role"] == "Leader")
        .filter_map(|r| r["Member"].as_str())
        .collect();
    assert_eq!(leaders, [first.as_str()], "{out}");
    let out = ok(&c, 0, &["topology"]).await;
    for r in replicas(&c, &first) {
        check(&c, out.contains(&format!("| + {r} ")), &out);
    }

    // Refusals before any request: patronictl's words on stderr, exit code 1.
    for (args, err) in [
        (
            vec!["switchover", "--candidate", first.as_str(), "--force"],
            format!("Error: Member {first} is already the leader of cluster {scope}\n"),
        ),
        (
            vec!["failover", "--force"],
            "Error: Failover could be performed only to a specific candidate\n".to_string(),
        ),
        (
            vec!["reinit", scope, first.as_str(), "--force"],
            "Error: No replica among provided members\n".to_string(),
        ),
        (vec!["resume"], "Error: Cluster is not paused\n".to_string()),
    ] {
        let o = ctl(&c.nodes[0].config, &args).await;
        assert_eq!((o.code, o.stderr.as_str()), (1, err.as_str()), "{args:?}");
    }

    // 1. Switchover to a named candidate: the message, then the new topology.
    let li = c.index_of(&first).unwrap();
    let cand = c.nodes[(li + 1) % 3].name.clone();
    let out = ok(&c, 2, &["switchover", "--candidate", &cand, "--force"]).await;
    let done = format!("Successfully switched over to \"{cand}\"");
    let at = out.find(&done);
    check(&c, at.is_some(), format!("no {done:?} in:\n{out}"));
    check(
        &c,
        out[at.unwrap()..].contains(&format!(" Cluster: {scope} (")),
        format!("no table after the message:\n{out}"),
    );
    check(&c, out.starts_with("Current cluster topology\n"), &out);
    let leader = must(&c, c.wait_healthy(3, HEALTHY).await);
    assert_eq!(leader, cand);

    // 2. Switchover without a candidate: anyone but the current leader.
    let out = ok(&c, 0, &["switchover", "--force"]).await;
    check(&c, out.contains("Successfully switched over to \""), &out);
    let second = must(&c, c.wait_healthy(3, HEALTHY).await);
    assert_ne!(second, cand);

    // 3. Failover to a named replica.
    let fo = replicas(&c, &second)[0].clone();
    let out = ok(&c, 1, &["failover", "--candidate", &fo, "--force"]).await;
    check(
        &c,
        out.contains(&format!("Successfully failed over to \"{fo}\"")),
        &out,
    );
    let leader = must(&c, c.wait_healthy(3, HEALTHY).await);
    assert_eq!(leader, fo);
    let fi = c.index_of(&fo).unwrap();

    // history: one row per timeline change, in order, naming who took over.
    let tl = c.load().await.unwrap().member(&fo).unwrap().timeline;
    assert_eq!(tl, Some(4), "three moves from timeline 1");
    let out = ok(&c, 0, &["history", "-f", "json"]).await;
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tls: Vec<i64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["TL"].as_i64().unwrap())
        .collect();
    assert_eq!(tls, [1, 2, 3], "{out}");
    let new_leaders: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["New Leader"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(new_leaders, [cand.as_str(), second.as_str(), fo.as_str()]);
    let out = ok(&c, 0, &["history"]).await;
    check(&c, out.contains("| TL |") && out.contains("|  3 |"), &out);

    // dsn and version.
    let out = ok(&c, 0, &["dsn", scope, "--role", "leader"]).await;
    assert_eq!(
        out,
        format!("host=127.0.0.1 port={}\n", c.nodes[fi].pg_port)
    );
    let out = ok(&c, 0, &["dsn", scope, "--member", &first]).await;
    let first_port = c.nodes[c.index_of(&first).unwrap()].pg_port;
    assert_eq!(out, format!("host=127.0.0.1 port={first_port}\n"));
    let out = ok(&c, 0, &["version", scope]).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[..2],
        [
            format!("pgkeel version {}", env!("CARGO_PKG_VERSION")).as_str(),
            ""
        ],
        "{out}"
    );
    assert_eq!(lines.len(), 5, "{out}");
    for n in &c.nodes {
        let want = format!(
            "{}: pgkeel {} PostgreSQL 15.",
            n.name,
            env!("CARGO_PKG_VERSION")
        );
        check(&c, lines.iter().any(|l| l.starts_with(&want)), &out);
    }

    // A scheduled switchover shows in list and is flushed.
    let later = (chrono::Local::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    let out = ok(&c, 0, &["switchover", "--scheduled", &later, "--force"]).await;
    check(&c, out.contains(" Switchover scheduled\n"), &out);
    let out = ok(&c, 0, &["list"]).await;
    check(&c, out.contains(" Switchover scheduled at: "), &out);
    let out = ok(&c, 0, &["flush", scope, "switchover", "--force"]).await;
    check(
        &c,
        out.contains("Success: scheduled switchover deleted"),
        &out,
    );
    check(&c, c.load().await.unwrap().failover.is_none(), "flushed");

    // edit-config and show-config.
    let out = ok(
        &c,
        0,
        &["edit-config", scope, "-p", "max_connections=101", "--force"],
    )
    .await;
    check(&c, out.contains("+    max_connections: 101"), &out);
    check(&c, out.trim_end().ends_with("Configuration changed"), &out);
    let out = ok(&c, 1, &["show-config", scope]).await;
    check(&c, out.contains("    max_connections: 101\n"), &out);
    let stored = c.load().await.unwrap().config.unwrap();
    assert_eq!(stored["postgresql"]["parameters"]["max_connections"], 101);
    let out = ok(
        &c,
        0,
        &["edit-config", scope, "-p", "max_connections=101", "--force"],
    )
    .await;
    assert_eq!(out, "Not changed\n");

    // Maintenance mode: a killed postmaster stays down until resume.
    let out = ok(&c, 0, &["pause", "--wait"]).await;
    check(
        &c,
        out.contains("Success: cluster management is paused"),
        &out,
    );
    let out = ok(&c, 0, &["list"]).await;
    check(&c, out.contains("\n Maintenance mode: on\n"), &out);
    let o = ctl(&c.nodes[0].config, &["pause"]).await;
    assert_eq!(
        (o.code, o.stderr.as_str()),
        (1, "Error: Cluster is already paused\n")
    );

    let victim = replicas(&c, &fo)[0].clone();
    let vi = c.index_of(&victim).unwrap();
    let pid = c.postmaster_pid(vi).expect("the replica's postmaster pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let vdsn = c.nodes[vi].dsn();
    // Nothing may bring it back while paused: watch it for three loops.
    let until = Instant::now() + loop_wait * 3;
    let mut state = String::new();
    while Instant::now() < until {
        check(
            &c,
            connect(&vdsn).await.is_err(),
            format!("{victim}'s PostgreSQL came back while paused"),
        );
        check(
            &c,
            c.postmaster_pid(vi).is_none_or(|p| p == pid || !alive(p)),
            format!("{victim}'s postmaster was started while paused"),
        );
        if let Some(m) = c.load().await.unwrap().member(&victim) {
            state = m.state.clone();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    check(
        &c,
        state == "stopped",
        format!("{victim} published state {state:?} while its PostgreSQL is down"),
    );
    assert_eq!(
        c.load().await.unwrap().leader_name(),
        Some(fo.as_str()),
        "the leader does not change while paused"
    );
    // Not checked: `restart <victim>` bringing the killed PostgreSQL back while paused, as
    // Patroni's patroni_api.feature does. The agent answers 503 "restart failed:
    // PostgreSQL is not running" (pgkeel_core::admin::restart_plan requires a running
    // server), so the CLI prints "Failed: restart for member …, status code=503, (…)".

    let out = ok(&c, 2, &["resume", "--wait"]).await;
    check(
        &c,
        out.contains("Success: cluster management is resumed"),
        &out,
    );
    let leader = must(&c, c.wait_healthy(3, HEALTHY).await);
    assert_eq!(leader, fo);
    let out = ok(&c, 0, &["list"]).await;
    check(&c, !out.contains("Maintenance mode"), &out);
    eventually(
        Duration::from_secs(10),
        "the row on the revived replica",
        || count_rows(&vdsn, "t", 1),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reload_and_reinit_through_basic_auth() {
    let scope = "ecliauth";
    let (user, password) = ("admin", "secret");
    let c = start_with_auth(scope, user, password);
    let leader = must(&c, c.wait_healthy(3, BOOT).await);
    let li = c.index_of(&leader).unwrap();
    let reps = replicas(&c, &leader);
    let ri: Vec<usize> = reps.iter().map(|r| c.index_of(r).unwrap()).collect();

    // The REST API refuses mutating requests without (or with wrong) credentials.
    let url = format!("{}/reload", c.nodes[ri[0]].api_url());
    let http = reqwest::Client::new();
    let code = http.post(&url).send().await.unwrap().status().as_u16();
    assert_eq!(code, 401, "POST /reload without credentials");
    let code = http
        .post(&url)
        .basic_auth(user, Some("wrong"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(code, 401, "POST /reload with a wrong password");

    // restart one member by name.
    let before = c.postmaster_pid(ri[0]).unwrap();
    let out = ok(&c, li, &["restart", scope, &reps[0], "--force"]).await;
    check(
        &c,
        out.contains(&format!("Success: restart on member {}\n", reps[0])),
        &out,
    );
    let after = c.postmaster_pid(ri[0]);
    check(
        &c,
        after.is_some_and(|p| p != before),
        format!("postmaster pid {before} → {after:?}"),
    );
    must(&c, c.wait_healthy(3, HEALTHY).await);

    // restart --role replica: both replicas, never the leader.
    let leader_pid = c.postmaster_pid(li).unwrap();
    let pids: Vec<i32> = ri.iter().map(|i| c.postmaster_pid(*i).unwrap()).collect();
    let out = ok(
        &c,
        ri[0],
        &["restart", scope, "--role", "replica", "--force"],
    )
    .await;
    for r in &reps {
        check(
            &c,
            out.contains(&format!("Success: restart on member {r}\n")),
            &out,
        );
    }
    check(
        &c,
        !out.contains(&format!("restart on member {leader}")),
        &out,
    );
    for (k, i) in ri.iter().enumerate() {
        let now = c.postmaster_pid(*i);
        check(
            &c,
            now.is_some_and(|p| p != pids[k]),
            format!("{}: postmaster pid {} → {now:?}", reps[k], pids[k]),
        );
    }
    assert_eq!(
        c.postmaster_pid(li),
        Some(leader_pid),
        "the leader restarted"
    );
    must(&c, c.wait_healthy(3, HEALTHY).await);

    // A scheduled restart: accepted, shown in list once the member publishes it, flushed
    // before its time (so nothing restarts).
    let later = (chrono::Local::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    let pid = c.postmaster_pid(ri[1]);
    let out = ok(
        &c,
        0,
        &["restart", scope, &reps[1], "--scheduled", &later, "--force"],
    )
    .await;
    check(
        &c,
        out.contains(&format!(
            "Success: restart scheduled on member {}\n",
            reps[1]
        )),
        &out,
    );
    let cfg = c.nodes[0].config.clone();
    let row = format!("| {} ", reps[1]);
    eventually(
        Duration::from_secs(10),
        "the scheduled restart in list",
        || {
            let (cfg, row, later) = (cfg.clone(), row.clone(), later.clone());
            async move {
                let out = ctl(&cfg, &["list"]).await.stdout;
                let shown = out
                    .lines()
                    .any(|l| l.starts_with(&row) && l.contains(&format!(" {later} |")));
                anyhow::ensure!(shown, "{out}");
                Ok(())
            }
        },
    )
    .await;
    let out = ok(&c, 0, &["flush", scope, &reps[1], "restart", "--force"]).await;
    check(
        &c,
        out.contains(&format!(
            "Success: flush scheduled restart for member {}\n",
            reps[1]
        )),
        &out,
    );
    assert_eq!(c.postmaster_pid(ri[1]), pid, "a flushed restart ran");

    // reload: every member, Patroni's words.
    let out = ok(&c, 0, &["reload", scope, "--force"]).await;
    for n in &c.nodes {
        let want = format!(
            "Reload request received for member {} and will be processed within 2 seconds\n",
            n.name
        );
        check(&c, out.contains(&want), &out);
    }

    // reinit: the replica's data directory is wiped and cloned again from the leader.
    let w = connect(&c.nodes[li].dsn()).await.unwrap();
    w.batch_execute("CREATE TABLE r (id int); INSERT INTO r VALUES (1)")
        .await
        .unwrap();
    drop(w);
    let target = &reps[1];
    let ti = ri[1];
    let tdsn = c.nodes[ti].dsn();
    eventually(Duration::from_secs(10), "the row on the replica", || {
        count_rows(&tdsn, "r", 1)
    })
    .await;
    let sysid = system_identifier(&tdsn).await.unwrap();
    let marker = c.nodes[ti].data_dir.join("pgkeel-e2e-marker");
    std::fs::write(&marker, "left by the test").unwrap();
    let out = ok(&c, li, &["reinit", scope, target, "--force", "--wait"]).await;
    for want in [
        format!("Success: reinitialize for member {target}\n"),
        format!("Waiting for reinitialize to complete on: {target}\n"),
        format!("Reinitialize is completed on: {target}\n"),
    ] {
        check(&c, out.contains(&want), &out);
    }
    // Not checked here: that `--wait` returns only once the clone is over. The agent runs a
    // REST-requested reinit with a no-op `publish` (crates/agent/src/admin.rs,
    // handle_local), so GET /patroni never reports "creating replica" and keeps the
    // pre-reinit state (and the member key stays "streaming") until the clone is done;
    // patronictl's poll then sees "running" after 2 s and reports completion mid-clone.
    // So wait for the end state itself rather than trusting the member key.
    let t = tdsn.clone();
    eventually(
        HEALTHY,
        "the re-cloned replica answers with the row",
        || {
            let t = t.clone();
            async move {
                anyhow::ensure!(!is_writable(&t).await?, "{t} is not a replica");
                count_rows(&t, "r", 1).await
            }
        },
    )
    .await;
    check(
        &c,
        !marker.exists(),
        "the data directory was not wiped by reinit",
    );
    assert_eq!(system_identifier(&tdsn).await.unwrap(), sysid);
    must(&c, c.wait_healthy(3, HEALTHY).await);

    // Reads stay open; the CLI's reads of the members' APIs work too.
    let out = ok(&c, 0, &["version", scope]).await;
    assert_eq!(out.lines().count(), 5, "{out}");

    // Failover to a named candidate when the leader's host is gone: its API does not
    // answer, so the CLI writes the failover key itself, as patronictl does.
    let fo = reps[0].clone();
    c.signal_node(li, Signal::Kill);
    let out = ok(&c, ri[1], &["failover", "--candidate", &fo, "--force"]).await;
    check(
        &c,
        out.contains(" Could not failover using Patroni api, falling back to DCS\n"),
        &out,
    );
    let now = must(&c, c.wait_new_leader(&leader, HEALTHY).await);
    assert_eq!(now, fo, "the named candidate takes over");
}
