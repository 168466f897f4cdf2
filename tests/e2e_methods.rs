//! Issue 12 item 2: Patroni's ways to bootstrap a cluster and make replicas, on real
//! clusters (etcd, PostgreSQL 15, the `pgkeel` binary): a `post_bootstrap` script that
//! creates a table, one that fails (the bootstrap is abandoned as Patroni abandons it), a
//! custom bootstrap method restoring a pg_basebackup to a recovery target with
//! `recovery_conf`, and custom replica methods tried before basebackup, one of them
//! restoring a backup when there is no leader. Every command is named by a path relative
//! to the agents' working directory, as Patroni's acceptance suite names its scripts.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use pgkeel_localcluster::{Timing, SUPERUSER_PASSWORD};

/// A directory the agents run in, with `scripts/` (writable by PostgreSQL's user, who runs
/// the commands) holding `files`.
fn workdir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("pgkeel-methods-")
        .tempdir()
        .unwrap();
    open_to_all(dir.path(), 0o755);
    let scripts = dir.path().join("scripts");
    std::fs::create_dir(&scripts).unwrap();
    open_to_all(&scripts, 0o777);
    for (name, text) in files {
        let path = scripts.join(name);
        std::fs::write(&path, text).unwrap();
        open_to_all(&path, 0o755);
    }
    dir
}

fn open_to_all(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A directory under the work directory that PostgreSQL's user may write to.
fn shared_dir(work: &Path, name: &str) -> PathBuf {
    let d = work.join(name);
    std::fs::create_dir(&d).unwrap();
    open_to_all(&d, 0o777);
    d
}

/// pg_basebackup of the server on `port` into `dest`, as the replication user, run as PostgreSQL's user (the files
/// it writes are the ones the restore scripts, run as that user, copy).
fn take_backup(port: u16, dest: &Path) {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("pg_basebackup");
    cmd.args([
        "-D",
        &dest.display().to_string(),
        "-X",
        "stream",
        "-c",
        "fast",
    ])
    .args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-U",
        "replicator",
        "-w",
    ])
    .env("PGPASSWORD", format!("{SUPERUSER_PASSWORD}-replication"))
    .current_dir("/");
    if nix::unistd::Uid::effective().is_root() {
        let pg = nix::unistd::User::from_name("postgres").unwrap().unwrap();
        cmd.uid(pg.uid.as_raw()).gid(pg.gid.as_raw());
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "pg_basebackup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn log_of(c: &TestCluster, i: usize) -> String {
    std::fs::read_to_string(&c.nodes[i].log).unwrap_or_default()
}

async fn rows(dsn: &str, sql: &str) -> Vec<i32> {
    let c = connect(dsn).await.unwrap();
    c.query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

const POST_BOOTSTRAP: &str = r#"#!/bin/sh
# post_bootstrap: Patroni passes the superuser's connection string, PGPASSFILE and PGOPTIONS.
here=$(dirname "$0")
echo "$*" > "$here/post.args"
echo "$PGPASSFILE" > "$here/post.passfile"
psql -X -q -w -v ON_ERROR_STOP=1 -At "$1" \
  -c "CREATE TABLE made_by_post_bootstrap (id int); INSERT INTO made_by_post_bootstrap VALUES (1)" \
  -c "SHOW synchronous_commit" > "$here/post.out" 2>&1
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_bootstrap_creates_a_table_before_the_cluster_is_initialized() {
    let work = workdir(&[("post.sh", POST_BOOTSTRAP)]);
    let c = start_opts("postboot", 2, Timing::default(), |o| {
        o.agent_cwd = Some(work.path().to_path_buf());
        o.bootstrap_extra = "post_bootstrap: scripts/post.sh\n".into();
    });
    let leader = must(&c, c.wait_healthy(2, BOOT).await);
    let li = c.index_of(&leader).unwrap();
    let scripts = work.path().join("scripts");
    let read = |f: &str| std::fs::read_to_string(scripts.join(f)).unwrap_or_default();
    // The last argument is Patroni's connection string: the superuser, to the local server,
    // without a password (it is in the pgpass file PGPASSFILE names).
    assert_eq!(
        read("post.args").trim(),
        format!(
            "dbname=postgres user=postgres host=localhost port={}",
            c.nodes[li].pg_port
        )
    );
    assert_eq!(
        read("post.passfile").trim(),
        c.nodes[li].dir.join("pgpass").display().to_string()
    );
    assert_eq!(
        read("post.out").trim(),
        "local",
        "PGOPTIONS: synchronous_commit=local"
    );
    for n in &c.nodes {
        let dsn = n.dsn();
        let got = eventually(Duration::from_secs(30), "the table on every node", || {
            let dsn = dsn.clone();
            async move {
                let c = connect(&dsn).await?;
                let r = c
                    .query_one("SELECT id FROM made_by_post_bootstrap", &[])
                    .await?;
                Ok(r.get::<_, i32>(0))
            }
        })
        .await;
        assert_eq!(got, 1);
    }
    // It ran once, on the node that bootstrapped.
    let ran: Vec<usize> = (0..2)
        .filter(|&i| log_of(&c, i).contains("post_init script scripts/post.sh"))
        .collect();
    assert_eq!(ran, [li], "{}", log_of(&c, 1 - li));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_post_bootstrap_abandons_the_bootstrap_as_patroni_does() {
    let work = workdir(&[("fail.sh", "#!/bin/sh\necho 'cannot do it' >&2\nexit 3\n")]);
    let mut c = start_opts("postfail", 1, Timing::default(), |o| {
        o.agent_cwd = Some(work.path().to_path_buf());
        o.bootstrap_extra = "post_init: scripts/fail.sh\n".into();
    });
    // Patroni's cancel_initialization: the agent ends with an error...
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = c.agent_exited(0) {
            break s;
        }
        if std::time::Instant::now() > deadline {
            dump_logs(&c);
            panic!("the agent is still running after its bootstrap failed");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let log = log_of(&c, 0);
    assert!(!status.success(), "{status:?}\n{log}");
    for line in [
        "post_init script scripts/fail.sh returned non-zero code 3",
        "post_init script: cannot do it",
        "removing initialize key after failed attempt to bootstrap the cluster",
        "renaming data directory to",
        "Failed to bootstrap cluster",
    ] {
        assert!(log.contains(line), "{line:?} not in the log:\n{log}");
    }
    // ...the initialize key is gone, so that another node may bootstrap...
    let cluster = c.load().await.unwrap();
    assert_eq!(cluster.initialize, None);
    assert_eq!(cluster.leader, None);
    // ...and the data directory is set aside, PostgreSQL stopped.
    let data = &c.nodes[0].data_dir;
    let failed = PathBuf::from(format!("{}.failed", data.display()));
    assert!(!data.exists(), "{} still exists", data.display());
    assert!(failed.join("PG_VERSION").is_file(), "{}", failed.display());
    assert_eq!(c.postmaster_pid(0), None);
}

const RESTORE: &str = r#"#!/bin/sh
# A custom bootstrap method: copies the backup named by --sourcedir into --datadir.
here=$(dirname "$0")
echo "$*" > "$here/restore.args"
for a in "$@"; do
  case "$a" in
    --datadir=*) datadir=${a#--datadir=} ;;
    --sourcedir=*) sourcedir=${a#--sourcedir=} ;;
  esac
done
cp -a "$sourcedir/." "$datadir/"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_bootstrap_method_restores_a_backup_to_its_recovery_target() {
    let work = workdir(&[("restore.sh", RESTORE)]);
    let archive = shared_dir(work.path(), "archive");
    let backups = shared_dir(work.path(), "backups");
    let base = backups.join("base");

    // The source: a cluster archiving its WAL, backed up, then written to again.
    let src = start_opts("src", 1, Timing::default(), |o| {
        o.pg_parameters = vec![
            ("archive_mode".into(), "'on'".into()),
            (
                "archive_command".into(),
                format!("'cp %p {}/%f'", archive.display()),
            ),
        ];
    });
    must(&src, src.wait_healthy(1, BOOT).await);
    let s = connect(&src.nodes[0].dsn()).await.unwrap();
    s.batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    take_backup(src.nodes[0].pg_port, &base);
    // One statement each: a batch would be one transaction, committed after the point.
    for sql in [
        "INSERT INTO t VALUES (2)",
        "SELECT pg_create_restore_point('before_3')",
        "INSERT INTO t VALUES (3)",
    ] {
        s.batch_execute(sql).await.unwrap();
    }
    let segment: String = s
        .query_one("SELECT pg_walfile_name(pg_switch_wal())", &[])
        .await
        .unwrap()
        .get(0);
    let sysid: String = s
        .query_one(
            "SELECT system_identifier::text FROM pg_control_system()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    eventually(Duration::from_secs(60), "the WAL archived", || async {
        anyhow::ensure!(
            archive.join(&segment).is_file(),
            "{segment} not archived yet"
        );
        Ok(())
    })
    .await;
    drop(s);
    drop(src);

    // A new cluster bootstrapped from the backup, replaying the archive up to the restore
    // point, where it promotes itself.
    let c = start_opts("restored", 1, Timing::default(), |o| {
        o.agent_cwd = Some(work.path().to_path_buf());
        o.bootstrap_extra = format!(
            "method: restore\nrestore:\n  command: sh scripts/restore.sh\n  sourcedir: {}\n  recovery_conf:\n    restore_command: cp {}/%f %p\n    recovery_target_name: before_3\n    recovery_target_action: promote\n",
            base.display(),
            archive.display()
        );
    });
    must(&c, c.wait_healthy(1, BOOT).await);
    let dsn = c.nodes[0].dsn();
    // Row 2 came from the archive (after the backup), row 3 is past the target.
    assert_eq!(rows(&dsn, "SELECT id FROM t ORDER BY id").await, [1, 2]);
    let r = connect(&dsn).await.unwrap();
    let got: String = r
        .query_one(
            "SELECT system_identifier::text FROM pg_control_system()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(got, sysid, "the restored cluster is the backed-up one");
    let tl: i32 = r
        .query_one("SELECT timeline_id FROM pg_control_checkpoint()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        tl >= 2,
        "promoted at the target onto a new timeline, got {tl}"
    );
    // After post_bootstrap: pgkeel's own settings again (hot standby, no recovery target),
    // and the superuser's password from this configuration (the dsn uses it, and the
    // restore-time trust lines are gone).
    for (setting, want) in [("hot_standby", "on"), ("recovery_target_name", "")] {
        let v: String = r
            .query_one(&format!("SHOW {setting}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(v, want, "{setting}");
    }
    let hba = std::fs::read_to_string(c.nodes[0].data_dir.join("pg_hba.conf")).unwrap();
    assert!(!hba.contains("trust"), "{hba}");
    assert_eq!(
        std::fs::read_to_string(work.path().join("scripts/restore.args"))
            .unwrap()
            .trim(),
        format!(
            "--scope=restored --datadir={} --sourcedir={}",
            c.nodes[0].data_dir.display(),
            base.display()
        )
    );
    let log = log_of(&c, 0);
    assert!(
        log.contains("Running custom bootstrap script: sh scripts/restore.sh\n"),
        "{log}"
    );
    // The leader records the restored system identifier in `initialize`.
    eventually(
        Duration::from_secs(30),
        "initialize = the backup's sysid",
        || async {
            let init = c.load().await?.initialize;
            anyhow::ensure!(init.as_deref() == Some(sysid.as_str()), "{init:?}");
            Ok(())
        },
    )
    .await;
}

const RESTORE_REPLICA: &str = r#"#!/bin/sh
# A replica creation method: copies the backup named by --sourcedir when there is one.
here=$(dirname "$0")
echo "$* PGPASSFILE=${PGPASSFILE:-}" >> "$here/replica.args"
for a in "$@"; do
  case "$a" in
    --datadir=*) datadir=${a#--datadir=} ;;
    --sourcedir=*) sourcedir=${a#--sourcedir=} ;;
  esac
done
[ -f "$sourcedir/PG_VERSION" ] || { echo "no backup in $sourcedir" >&2; exit 1; }
mkdir -p "$datadir" && cp -a "$sourcedir/." "$datadir/"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_methods_run_in_order_and_without_a_leader() {
    let work = workdir(&[("restore_replica.sh", RESTORE_REPLICA)]);
    let backups = shared_dir(work.path(), "backups");
    let base = backups.join("base");
    let mut c = start_opts("replmeth", 2, Timing::default(), |o| {
        o.agent_cwd = Some(work.path().to_path_buf());
        o.postgresql_extra = format!(
            "create_replica_methods:\n  - restore\n  - basebackup\nrestore:\n  command: sh scripts/restore_replica.sh\n  no_leader: true\n  sourcedir: {}\n",
            base.display()
        );
    });
    let leader = must(&c, c.wait_healthy(2, BOOT).await);
    let li = c.index_of(&leader).unwrap();
    let ri = 1 - li;
    let args =
        || std::fs::read_to_string(work.path().join("scripts/replica.args")).unwrap_or_default();

    // No backup yet: the custom method is tried first, fails, and basebackup makes the replica.
    let log = log_of(&c, ri);
    let failed = log
        .find("Error creating replica using method restore: sh scripts/restore_replica.sh")
        .unwrap_or_else(|| panic!("the restore method did not fail first:\n{log}"));
    let made = log
        .find("replica has been created using basebackup")
        .unwrap_or_else(|| panic!("basebackup did not make the replica:\n{log}"));
    assert!(failed < made, "{log}");
    assert!(
        log.contains("replica method restore: no backup in"),
        "{log}"
    );
    let pgpass = c.nodes[ri].dir.join("pgpass");
    assert_eq!(
        args().lines().next().unwrap_or_default(),
        format!(
            "--no_leader=True --sourcedir={} --scope=replmeth --role=replica --datadir={} --connstring=dbname=postgres user=replicator host=127.0.0.1 port={} PGPASSFILE={}",
            base.display(),
            c.nodes[ri].data_dir.display(),
            c.nodes[li].pg_port,
            pgpass.display()
        )
    );

    // A backup of the leader; then the whole cluster goes away, the replica's data with it.
    let w = connect(&c.nodes[li].dsn()).await.unwrap();
    w.batch_execute("CREATE TABLE kept (id int); INSERT INTO kept VALUES (7)")
        .await
        .unwrap();
    drop(w);
    take_backup(c.nodes[li].pg_port, &base);
    c.stop_agent(ri, Duration::from_secs(60)).unwrap();
    c.stop_agent(li, Duration::from_secs(60)).unwrap();
    std::fs::remove_dir_all(&c.nodes[ri].data_dir).unwrap();
    assert_eq!(c.load().await.unwrap().leader, None);

    // Without a leader, the method marked no_leader restores the backup; the replica
    // starts following nobody, races, and leads.
    c.start_agent(ri).unwrap();
    let got = eventually(
        Duration::from_secs(120),
        "the restored node leading",
        || {
            let c = &c;
            async move {
                let cl = c.load().await?;
                anyhow::ensure!(
                    cl.leader_name() == Some(c.nodes[ri].name.as_str()),
                    "leader {:?}",
                    cl.leader_name()
                );
                is_writable(&c.nodes[ri].dsn())
                    .await?
                    .then_some(())
                    .ok_or_else(|| anyhow::anyhow!("read-only"))?;
                Ok(rows(&c.nodes[ri].dsn(), "SELECT id FROM kept").await)
            }
        },
    )
    .await;
    assert_eq!(got, [7]);
    let log = log_of(&c, ri);
    assert!(
        log.contains("trying to bootstrap (without leader)"),
        "{log}"
    );
    assert!(
        log.contains("replica has been created using restore"),
        "{log}"
    );
    assert!(log.contains("bootstrapped (without leader)"), "{log}");
    // No member to connect to: an empty connection string, and no pgpass file passed.
    assert_eq!(
        args().lines().last().unwrap_or_default(),
        format!(
            "--no_leader=True --sourcedir={} --scope=replmeth --role=replica --datadir={} --connstring= PGPASSFILE=",
            base.display(),
            c.nodes[ri].data_dir.display()
        )
    );
}
