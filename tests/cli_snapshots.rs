//! The CLI verbs against a real etcd and no agent: tables, YAML and messages as patronictl
//! prints them, and the refusals that happen before any REST call.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pgkeel_core::dcs_values::{HistoryEntry, MemberValue};
use pgkeel_dcs::Etcd;
use pgkeel_localcluster::EtcdServer;
use serde_json::json;

struct Env {
    _etcd: EtcdServer,
    etcd_host: String,
    dir: tempfile::TempDir,
}

impl Env {
    /// A configuration file for `scope`, as an operator's patronictl.yaml would be.
    fn config(&self, scope: &str) -> std::path::PathBuf {
        let path = self.dir.path().join(format!("{scope}.yml"));
        let yaml = format!(
            "scope: {scope}\nname: ctl\nrestapi:\n  listen: 127.0.0.1:8008\n  connect_address: 127.0.0.1:8008\netcd3:\n  hosts: {}\npostgresql:\n  listen: 127.0.0.1:5432\n  connect_address: 127.0.0.1:5432\n  data_dir: /tmp/pgkeel-ctl\n",
            self.etcd_host
        );
        std::fs::write(&path, yaml).expect("writing the config");
        path
    }

    /// Runs `pgkeel -c <scope>.yml args...` with `stdin` as input.
    fn run(&self, scope: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
        self.run_env(scope, args, stdin, &[])
    }

    fn run_env(
        &self,
        scope: &str,
        args: &[&str],
        stdin: &str,
        env: &[(&str, &str)],
    ) -> (i32, String, String) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgkeel"));
        cmd.arg("-c")
            .arg(self.config(scope))
            .args(args)
            .env_remove("PATRONICTL_CONFIG_FILE")
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting pgkeel");
        if let Some(mut i) = child.stdin.take() {
            // The verb may exit before reading everything: a broken pipe is fine.
            let _ = i.write_all(stdin.as_bytes());
        }
        let Output {
            status,
            stdout,
            stderr,
        } = child.wait_with_output().expect("waiting for pgkeel");
        let (out, err) = (
            String::from_utf8_lossy(&stdout).to_string(),
            String::from_utf8_lossy(&stderr).to_string(),
        );
        assert!(!err.contains("panicked"), "{err}");
        (status.code().unwrap_or(-1), out, err)
    }
}

fn member(i: u8, role: &str, tags: serde_json::Value) -> MemberValue {
    let v = json!({
        "conn_url": format!("postgres://127.0.0.{i}:5432/postgres"),
        // Nothing listens there: REST calls fail fast.
        "api_url": format!("http://127.0.0.1:9/patroni"),
        "state": if role == "primary" { "running" } else { "streaming" },
        "role": role,
        "timeline": 2,
        "xlog_location": 50331808,
        "receive_lsn": 50331808,
        "replay_lsn": 50331808,
        "replication_state": if role == "primary" { serde_json::Value::Null } else { json!("streaming") },
        "tags": tags,
    });
    serde_json::from_value(v).expect("member value")
}

/// Writes a three-member cluster `scope` (leader n1, n3 tagged nofailover and cascading
/// from n2) with a config and a history.
/// A DCS client for `/service/<scope>/` on the etcd at `host`.
async fn connect(host: &str, scope: &str) -> Etcd {
    let hosts = vec![pgkeel_core::config::HostPort {
        host: "127.0.0.1".into(),
        port: host
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port"),
    }];
    Etcd::connect(
        &pgkeel_dcs::Access::plain(hosts),
        format!("/service/{scope}/"),
        Duration::from_secs(5),
    )
    .await
    .expect("connect")
}

async fn seed(host: &str, scope: &str) -> Etcd {
    let etcd = connect(host, scope).await;
    etcd.write_initialize("7277694203142172922")
        .await
        .expect("init");
    etcd.touch_member("n1", &member(1, "primary", json!({})), 0)
        .await
        .expect("n1");
    etcd.touch_member("n2", &member(2, "replica", json!({})), 0)
        .await
        .expect("n2");
    etcd.touch_member(
        "n3",
        &member(
            3,
            "replica",
            json!({"nofailover": true, "replicatefrom": "n2"}),
        ),
        0,
    )
    .await
    .expect("n3");
    assert!(etcd.acquire_leader("n1", 0).await.expect("leader"));
    etcd.write_config_if_absent(&json!({
        "ttl": 30, "loop_wait": 10,
        "postgresql": {"use_pg_rewind": true, "parameters": {"max_connections": 100, "wal_level": "replica"}},
    }))
    .await
    .expect("config");
    let history = [
        HistoryEntry {
            timeline: 1,
            lsn: 50331808,
            reason: "no recovery target specified".into(),
            timestamp: Some("2026-01-01T00:00:00.000000+00:00".into()),
            new_leader: Some("n1".into()),
        },
        HistoryEntry {
            timeline: 2,
            lsn: 67109024,
            reason: "old entry".into(),
            timestamp: None,
            new_leader: None,
        },
    ];
    assert!(etcd.write_history("n1", &history).await.expect("history"));
    etcd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbs_against_a_real_etcd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = EtcdServer::start(dir.path()).expect("etcd");
    let env = Env {
        etcd_host: etcd.endpoint.to_string(),
        _etcd: etcd,
        dir,
    };
    let dcs = seed(&env.etcd_host, "s").await;

    // show-config: PyYAML block style, sorted keys, and click.echo's extra newline.
    let (code, out, _) = env.run("s", &["show-config"], "");
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "loop_wait: 10\npostgresql:\n  parameters:\n    max_connections: 100\n    wal_level: replica\n  use_pg_rewind: true\nttl: 30\n\n"
    );

    // edit-config -s/-p --force: diff, then written with compare-and-set.
    let (code, out, err) = env.run(
        "s",
        &[
            "edit-config",
            "-s",
            "ttl=20",
            "-p",
            "max_connections=200",
            "-s",
            "postgresql.use_pg_rewind=null",
            "--force",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "--- \n+++ \n@@ -1,7 +1,6 @@\n loop_wait: 10\n postgresql:\n   parameters:\n-    max_connections: 100\n+    max_connections: 200\n     wal_level: replica\n-  use_pg_rewind: true\n-ttl: 30\n+ttl: 20\nConfiguration changed\n"
    );
    let (_, out, _) = env.run("s", &["show-config"], "");
    assert_eq!(
        out,
        "loop_wait: 10\npostgresql:\n  parameters:\n    max_connections: 200\n    wal_level: replica\nttl: 20\n\n"
    );
    let (code, out, _) = env.run("s", &["edit-config", "-s", "ttl=20", "--force"], "");
    assert_eq!((code, out.as_str()), (0, "Not changed\n"));

    // Without --force the question is asked; "n" leaves the config alone.
    let (code, out, _) = env.run("s", &["edit-config", "-q", "-s", "ttl=25"], "n\n");
    assert_eq!((code, out.as_str()), (0, "Apply these changes? [y/N]: "));
    // --apply from stdin needs --force.
    let (code, out, _) = env.run("s", &["edit-config", "--apply", "-"], "loop_wait: 5\n");
    assert_eq!(code, 0);
    assert!(out.ends_with("-loop_wait: 10\n+loop_wait: 5\n postgresql:\n   parameters:\n     max_connections: 200\nUse --force option to apply changes\n"), "{out}");

    // $EDITOR: the file is edited in place, then confirmed on stdin.
    let script = env.dir.path().join("ed.sh");
    std::fs::write(&script, "#!/bin/sh\nsed -i 's/^ttl: 20$/ttl: 40/' \"$1\"\n").expect("script");
    let ed = format!("sh {}", script.display());
    let (code, out, err) = env.run_env("s", &["edit-config"], "y\n", &[("EDITOR", ed.as_str())]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.ends_with("-ttl: 20\n+ttl: 40\nApply these changes? [y/N]: Configuration changed\n"),
        "{out}"
    );

    // Someone else writes the config while the editor is open: compare-and-set refuses.
    let racer = env.dir.path().join("race.sh");
    std::fs::write(
        &racer,
        format!(
            "#!/bin/sh\n{} -c {} edit-config -s loop_wait=7 --force >/dev/null\nsed -i 's/^ttl: 40$/ttl: 41/' \"$1\"\n",
            env!("CARGO_BIN_EXE_pgkeel"),
            env.config("s").display()
        ),
    )
    .expect("script");
    let ed = format!("sh {}", racer.display());
    let (code, _, err) = env.run_env(
        "s",
        &["edit-config", "--force"],
        "",
        &[("EDITOR", ed.as_str())],
    );
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: Config modification aborted due to concurrent changes\n"
        )
    );
    let cfg = dcs.load().await.expect("load").config.expect("config");
    assert_eq!(
        (cfg["ttl"].as_u64(), cfg["loop_wait"].as_u64()),
        (Some(40), Some(7))
    );

    // history, pretty and json.
    let (code, out, _) = env.run("s", &["history"], "");
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "\
+----+----------+------------------------------+----------------------------------+------------+
| TL |      LSN | Reason                       | Timestamp                        | New Leader |
+----+----------+------------------------------+----------------------------------+------------+
|  1 | 50331808 | no recovery target specified | 2026-01-01T00:00:00.000000+00:00 | n1         |
|  2 | 67109024 | old entry                    |                                  |            |
+----+----------+------------------------------+----------------------------------+------------+
"
    );
    let (_, out, _) = env.run("s", &["history", "-f", "json"], "");
    assert_eq!(
        out,
        "[{\"TL\": 1, \"LSN\": 50331808, \"Reason\": \"no recovery target specified\", \"Timestamp\": \"2026-01-01T00:00:00.000000+00:00\", \"New Leader\": \"n1\"}, {\"TL\": 2, \"LSN\": 67109024, \"Reason\": \"old entry\", \"Timestamp\": \"\", \"New Leader\": \"\"}]\n"
    );

    // dsn.
    assert_eq!(env.run("s", &["dsn"], "").1, "host=127.0.0.1 port=5432\n");
    assert_eq!(
        env.run("s", &["dsn", "-r", "replica"], "").1,
        "host=127.0.0.2 port=5432\n"
    );
    assert_eq!(
        env.run("s", &["dsn", "-m", "n3"], "").1,
        "host=127.0.0.3 port=5432\n"
    );
    let (code, _, err) = env.run("s", &["dsn", "-m", "zz"], "");
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: Can not find a suitable member\n")
    );
    let (code, _, err) = env.run("s", &["dsn", "-r", "any", "-m", "n2"], "");
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: --role and --member are mutually exclusive options\n"
        )
    );

    // list -e -f json and topology.
    let (code, out, _) = env.run("s", &["list", "-e", "-f", "json"], "");
    assert_eq!(code, 0);
    assert_eq!(
        out,
        concat!(
            r#"[{"Cluster": "s", "Member": "n1", "Host": "127.0.0.1", "Role": "Leader", "State": "running", "TL": 2}, "#,
            r#"{"Cluster": "s", "Member": "n2", "Host": "127.0.0.2", "Role": "Replica", "State": "streaming", "TL": 2, "Receive LSN": "0/30000A0", "Receive Lag": 0, "Replay LSN": "0/30000A0", "Replay Lag": 0}, "#,
            r#"{"Cluster": "s", "Member": "n3", "Host": "127.0.0.3", "Role": "Replica", "State": "streaming", "TL": 2, "Receive LSN": "0/30000A0", "Receive Lag": 0, "Replay LSN": "0/30000A0", "Replay Lag": 0, "Tags": {"nofailover": true, "replicatefrom": "n2"}}]"#,
            "\n"
        )
    );
    let (code, out, _) = env.run("s", &["topology"], "");
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "\
+ Cluster: s (7277694203142172922) --------+----+-------------+-----+------------+-----+---------------------------------------+
| Member | Host      | Role    | State     | TL | Receive LSN | Lag | Replay LSN | Lag | Tags                                  |
+--------+-----------+---------+-----------+----+-------------+-----+------------+-----+---------------------------------------+
| n1     | 127.0.0.1 | Leader  | running   |  2 |             |     |            |     |                                       |
| + n2   | 127.0.0.2 | Replica | streaming |  2 |   0/30000A0 |   0 |  0/30000A0 |   0 |                                       |
|   + n3 | 127.0.0.3 | Replica | streaming |  2 |   0/30000A0 |   0 |  0/30000A0 |   0 | {nofailover: true, replicatefrom: n2} |
+--------+-----------+---------+-----------+----+-------------+-----+------------+-----+---------------------------------------+
"
    );
    let (code, out, _) = env.run("s", &["list", "-t"], "");
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("+ Cluster: s (")),
        "{out}"
    );

    // switchover/failover refusals before any request.
    let (code, _, err) = env.run("s", &["switchover", "--candidate", "x", "--force"], "");
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: Member x does not exist in cluster s or is tagged as nofailover\n"
        )
    );
    let (code, _, err) = env.run("s", &["switchover", "--candidate", "n3", "--force"], "");
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: Member n3 does not exist in cluster s or is tagged as nofailover\n"
        )
    );
    let (code, _, err) = env.run("s", &["switchover", "--candidate", "n1", "--force"], "");
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: Member n1 is already the leader of cluster s\n")
    );
    let (code, _, err) = env.run("s", &["switchover", "--primary", "n2", "--force"], "");
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: Member n2 is not the leader of cluster s\n")
    );
    let (code, _, err) = env.run("s", &["failover", "--force"], "");
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: Failover could be performed only to a specific candidate\n"
        )
    );
    let (code, _, err) = env.run("s", &["switchover", "--scheduled", "soon", "--force"], "");
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: Unable to parse scheduled timestamp (soon). It should be in an unambiguous format (e.g. ISO 8601)\n")
    );

    // The interactive switchover: every prompt, then "no".
    let (code, out, err) = env.run("s", &["switchover"], "\nn2\n\nn\n");
    assert_eq!((code, err.as_str()), (1, "Error: Aborting switchover\n"));
    let prompts = out.split("+\n").last().unwrap_or_default();
    assert!(
        prompts.starts_with(
            "Primary [n1]: Candidate ['n2'] []: When should the switchover take place (e.g. "
        ),
        "{out}"
    );
    assert!(prompts.ends_with(" )  [now]: Are you sure you want to switchover cluster s, demoting current leader n1? [y/N]: "), "{out}");
    assert!(
        out.starts_with("Current cluster topology\n+ Cluster: s (7277694203142172922) "),
        "{out}"
    );
    // End of input at a prompt: click's Abort.
    let (code, _, err) = env.run("s", &["switchover"], "");
    assert_eq!((code, err.as_str()), (1, "Aborted!\n"));

    // The leader's API is down: the request goes to the failover key instead.
    let (code, out, err) = env.run(
        "s",
        &[
            "switchover",
            "--candidate",
            "n2",
            "--scheduled",
            "2030-01-01T00:00+00:00",
            "--force",
        ],
        "",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(" Could not switchover using Patroni api, falling back to DCS\n"),
        "{out}"
    );
    let f = dcs
        .load()
        .await
        .expect("load")
        .failover
        .expect("failover key");
    assert_eq!(
        (
            f.leader.as_deref(),
            f.member.as_deref(),
            f.scheduled_at.as_deref()
        ),
        (Some("n1"), Some("n2"), Some("2030-01-01T00:00:00+00:00"))
    );
    let (_, out, _) = env.run("s", &["list"], "");
    assert!(out.ends_with(" Switchover scheduled at: 2030-01-01T00:00:00+00:00\n                    from: n1\n                      to: n2\n"), "{out}");
    // flush switchover: no member answers, so the key is deleted in etcd.
    let (code, out, err) = env.run("s", &["flush", "s", "switchover"], "");
    assert_eq!(code, 0, "{err}");
    assert!(
        out.ends_with(" Could not find any accessible member of cluster s\n"),
        "{out}"
    );
    assert!(dcs.load().await.expect("load").failover.is_none());
    let (_, out, _) = env.run("s", &["flush", "s", "switchover"], "");
    assert_eq!(out, "No pending scheduled switchover\n");

    // restart/reload: member selection refusals.
    let (code, _, err) = env.run("s", &["restart", "s", "zz", "--force"], "");
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: No any among provided members\n")
    );
    let (code, _, err) = env.run("s", &["reload", "s", "n1", "-r", "replica", "--force"], "");
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: No replica among provided members\n")
    );
    let (code, _, err) = env.run(
        "s",
        &["restart", "s", "n2", "--pg-version", "9.6", "--force"],
        "",
    );
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6\n"
        )
    );
    let (code, out, err) = env.run("s", &["reload", "s", "n2"], "n\n");
    assert_eq!((code, err.as_str()), (1, "Error: Aborted reload\n"));
    assert!(
        out.ends_with("Are you sure you want to reload members n2? [y/N]: "),
        "{out}"
    );
    // An unreachable member is named with its URL.
    let (code, _, err) = env.run("s", &["reload", "s", "n2", "--force"], "");
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error: POST http://127.0.0.1:9/reload (member n2)"),
        "{err}"
    );

    // pause/resume.
    let (code, _, err) = env.run("s", &["resume"], "");
    assert_eq!((code, err.as_str()), (1, "Error: Cluster is not paused\n"));
    // Each unreachable member is logged as a warning, as patronictl does.
    let (code, _, err) = env.run("s", &["pause"], "");
    assert_eq!(code, 1);
    assert!(err.contains("Member n1 is not accessible"), "{err}");
    assert!(
        err.ends_with("Error: Can not find accessible cluster member\n"),
        "{err}"
    );

    // A cluster name other than the scope is another cluster of the namespace, as in
    // patronictl: here an empty one.
    let (code, out, _) = env.run("s", &["show-config", "other"], "");
    assert_eq!((code, out.as_str()), (0, ""));
    let (code, _, err) = env.run("s", &["edit-config", "other", "-s", "ttl=5"], "");
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: The config key does not exist in the cluster other\n"
        )
    );

    // remove: every confirmation, then the keys are gone.
    let (code, _, err) = env.run("s", &["remove", "s"], "x\n");
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: Cluster names specified do not match\n")
    );
    let (code, _, err) = env.run("s", &["remove", "s"], "s\nyes\n");
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: You did not exactly type \"Yes I am aware\"\n")
    );
    let (code, _, err) = env.run("s", &["remove", "s"], "s\nYes I am aware\nn2\n");
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: You did not specify the current leader of the cluster\n"
        )
    );
    let (code, out, err) = env.run("s", &["remove", "s"], "s\nYes I am aware\nn1\n");
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("Please confirm the cluster name to remove: You are about to remove all information in DCS for s, please type: \"Yes I am aware\": This cluster currently is healthy. Please specify the leader name to continue: "), "{out}");
    let c = dcs.load().await.expect("load");
    assert!(c.members.is_empty() && c.config.is_none() && c.leader.is_none());
}

/// `show-config` of a cluster without a `config` key: nothing on stdout and exit 0, as
/// patronictl does (scripts may rely on both), and a warning on stderr that says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_config_without_a_config_key_says_why_on_stderr() {
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = EtcdServer::start(dir.path()).expect("etcd");
    let env = Env {
        etcd_host: etcd.endpoint.to_string(),
        _etcd: etcd,
        dir,
    };
    // No keys at all: a mistyped cluster name, most often.
    let (code, out, err) = env.run("s", &["show-config", "nosuchcluster"], "");
    assert_eq!((code, out.as_str()), (0, ""));
    assert!(
        err.contains(
            "no cluster nosuchcluster in /service/ (no keys under /service/nosuchcluster/): nothing to show"
        ),
        "{err}"
    );
    // A cluster whose first leader has not written its config yet.
    let bare = connect(&env.etcd_host, "bare").await;
    bare.touch_member("b1", &member(1, "replica", json!({})), 0)
        .await
        .expect("b1");
    let (code, out, err) = env.run("s", &["show-config", "bare"], "");
    assert_eq!((code, out.as_str()), (0, ""));
    assert!(
        err.contains("the cluster bare has no config key: nothing to show"),
        "{err}"
    );
}

#[test]
fn version_and_missing_config() {
    let out = Command::new(env!("CARGO_BIN_EXE_pgkeel"))
        .arg("version")
        .env_remove("PATRONICTL_CONFIG_FILE")
        .output()
        .expect("pgkeel");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("pgkeel version {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(env!("CARGO_BIN_EXE_pgkeel"))
        .args(["-c", "/nonexistent/pgkeel.yml", "list"])
        .output()
        .expect("pgkeel");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: Provided config file /nonexistent/pgkeel.yml not existing or no read rights. Check the -c/--config-file parameter\n"
    );
}

/// Issue 12: patronictl run with no configuration file reads the `PATRONI_*` variables
/// alone (Patroni's acceptance harness runs it so); without a scope the verb names the
/// cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_runs_from_patroni_environment_variables_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = EtcdServer::start(dir.path()).expect("etcd");
    let host = etcd.endpoint.to_string();
    let c = connect(&host, "envonly").await;
    c.touch_member("e1", &member(1, "replica", json!({})), 0)
        .await
        .expect("e1");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_pgkeel"))
            .args(args)
            .env_remove("PATRONICTL_CONFIG_FILE")
            .env("HOME", dir.path())
            .envs(env.iter().copied())
            .output()
            .expect("pgkeel");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, out, err) = run(&["list", "envonly"], &[("PATRONI_ETCD3_HOSTS", &host)]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("| e1 "), "{out}");
    let (code, out, _) = run(
        &["list"],
        &[("PATRONI_ETCD3_HOST", &host), ("PATRONI_SCOPE", "envonly")],
    );
    assert_eq!(code, Some(0));
    assert!(out.contains("| e1 "), "{out}");
    // No scope and no name: patronictl's warning, exit 0; another verb says what is missing.
    let (code, out, err) = run(&["list"], &[("PATRONI_ETCD3_HOSTS", &host)]);
    assert_eq!((code, out.as_str()), (Some(0), ""));
    assert!(
        err.contains("Listing members: No cluster names were provided"),
        "{err}"
    );
    let (code, _, err) = run(&["history"], &[("PATRONI_ETCD3_HOSTS", &host)]);
    assert_ne!(code, Some(0));
    assert!(err.contains("no cluster name"), "{err}");
}
