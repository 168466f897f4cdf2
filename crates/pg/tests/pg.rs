//! The whole life of a two-node cluster against real PostgreSQL 15: bootstrap, clone,
//! stream, crash the primary, promote the replica, rewind the old primary, follow.

use std::future::Future;
use std::time::Duration;

use pgkeel_core::action::BootstrapPlan;
use pgkeel_core::observation::{PgView, Running, Stopped};
use pgkeel_core::{StopMode, Upstream};
use pgkeel_pg::testing::{free_port, pg_tempdir, sample_settings, StopOnDrop};
use pgkeel_pg::Pg;
use tokio::time::Instant;
use tokio_postgres::Client;

const DEADLINE: Duration = Duration::from_secs(30);

/// Polls `f` until it returns `Some`, failing the test after `DEADLINE`.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn running(pg: &Pg, what: &str, pred: impl Fn(&Running) -> bool) -> Running {
    eventually(what, || async {
        match pg.observe().await {
            PgView::Running(r) if pred(&r) => Some(r),
            _ => None,
        }
    })
    .await
}

async fn stopped(pg: &Pg) -> Stopped {
    match pg.observe().await {
        PgView::Stopped(s) => s,
        other => panic!("expected Stopped, got {other:?}"),
    }
}

async fn sql(pg: &Pg) -> Client {
    pgkeel_pg::testing::superuser_client(pg).await
}

fn upstream(member: &str, pg: &Pg, slot: Option<&str>) -> Upstream {
    Upstream {
        member: member.into(),
        host: "127.0.0.1".into(),
        port: pg.settings().port,
        slot: slot.map(Into::into),
    }
}

async fn count(client: &Client) -> Option<i64> {
    client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .ok()
        .map(|r| r.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_clone_failover_rewind() {
    let dir = pg_tempdir().expect("test directory");
    let n1 = Pg::new(sample_settings("node1", dir.path(), free_port().unwrap()));
    let n2 = Pg::new(sample_settings("node2", dir.path(), free_port().unwrap()));
    let _guard = StopOnDrop(vec![
        n1.settings().data_dir.clone(),
        n2.settings().data_dir.clone(),
    ]);

    // --- bootstrap node1 ---
    assert_eq!(n1.observe().await, PgView::NoData);
    n1.bootstrap(&BootstrapPlan::Initdb)
        .await
        .expect("bootstrap");
    n1.post_bootstrap(None).await.expect("post_bootstrap");
    let p = running(&n1, "node1 primary", |r| !r.in_recovery).await;
    assert_eq!(p.timeline, 1);
    assert!(!p.sysid.is_empty());
    assert!(
        n1.bootstrap(&BootstrapPlan::Initdb).await.is_err(),
        "bootstrap into a non-empty dir must fail"
    );
    let c1 = sql(&n1).await;
    c1.batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
        .await
        .unwrap();

    // --- clone node2 from node1, stream with a slot ---
    n1.ensure_slots(&["node2".into()])
        .await
        .expect("slot for node2");
    let from1 = upstream("node1", &n1, Some("node2"));
    n2.create_replica(&pgkeel_pg::testing::basebackup_plan(&n2, &from1))
        .await
        .expect("clone");
    n2.start_replica(Some(&from1)).await.expect("start replica");
    let r = running(&n2, "node2 streaming", |r| r.in_recovery && r.streaming).await;
    assert_eq!(r.sysid, p.sysid);
    assert_eq!(r.timeline, 1);
    assert_eq!(
        r.upstream,
        Some(("127.0.0.1".to_string(), n1.settings().port))
    );
    c1.batch_execute("INSERT INTO t VALUES (2)").await.unwrap();
    let c2 = sql(&n2).await;
    eventually("row on replica", || async {
        (count(&c2).await == Some(2)).then_some(())
    })
    .await;
    let details = n1.details().await;
    assert_eq!(details.server_version.map(|v| v / 10000), Some(15));
    assert!(details
        .replication
        .iter()
        .any(|r| r.application_name.as_deref() == Some("node2")));

    // --- crash node1 ---
    drop(c1);
    n1.stop(StopMode::Immediate).await.expect("immediate stop");
    let s1 = stopped(&n1).await;
    assert_eq!(s1.cluster_state, "in production");
    assert!(s1.was_primary());
    n1.stop(StopMode::Immediate)
        .await
        .expect("stop when stopped is ok");

    // --- promote node2 ---
    // The cluster's /history says another member already went to timelines 2 and 3 (node2
    // never saw them): the promotion must not reuse their numbers.
    let switch = |tl: u32| pgkeel_core::dcs_values::HistoryEntry {
        timeline: tl,
        lsn: 0x0300_0000,
        reason: "no recovery target specified".into(),
        timestamp: None,
        new_leader: None,
    };
    n2.promote(3, &[switch(1), switch(2)])
        .await
        .expect("promote");
    let p2 = running(&n2, "node2 primary", |r| !r.in_recovery).await;
    assert_eq!(p2.timeline, 4, "one past the cluster's newest timeline");
    drop(c2);
    let c2 = sql(&n2).await;
    c2.batch_execute("INSERT INTO t VALUES (3)")
        .await
        .expect("writable after promote");
    let history = n2.timeline_history().await.expect("history");
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0].timeline, 1);
    assert!(history[0].timestamp.is_some());

    // --- rewind node1 and follow node2 ---
    let from2 = upstream("node2", &n2, Some("node1"));
    n2.ensure_slots(&["node1".into(), "node3".into()])
        .await
        .expect("slots");
    n2.ensure_slots(&["node1".into()])
        .await
        .expect("slots again");
    n1.rewind(&from2).await.expect("rewind");
    let s1 = stopped(&n1).await;
    assert!(
        s1.standby_signal,
        "a rewound node must not start as a primary on its own"
    );
    // Start the rewound node while its upstream is down: it may not reach a consistent
    // state without WAL, yet start_replica must return well before op_timeout.
    drop(c2);
    n2.stop(StopMode::Fast).await.expect("stop node2");
    let t0 = Instant::now();
    n1.start_replica(Some(&from2))
        .await
        .expect("start rewound replica without upstream");
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    let view = n1.observe().await;
    assert!(
        matches!(view, PgView::Starting | PgView::Running(_)),
        "{view:?}"
    );
    eprintln!(
        "rewound replica started in {:?}, observed {view:?}",
        t0.elapsed()
    );
    n2.start_primary().await.expect("restart node2");
    let c2 = sql(&n2).await;
    let r1 = running(&n1, "node1 streaming on timeline 4", |r| {
        r.in_recovery && r.streaming && r.timeline == 4
    })
    .await;
    assert_eq!(
        r1.upstream,
        Some(("127.0.0.1".to_string(), n2.settings().port))
    );
    let c1 = sql(&n1).await;
    eventually("rows on the rewound node", || async {
        (count(&c1).await == Some(3)).then_some(())
    })
    .await;
    let slots: Vec<String> = c2
        .query(
            "SELECT slot_name::text FROM pg_replication_slots ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(slots, ["node1", "node3"]);

    // --- clean shutdown of both ---
    drop((c1, c2));
    n1.stop(StopMode::Fast).await.expect("stop replica");
    n2.stop(StopMode::Fast).await.expect("stop primary");
    let s1 = stopped(&n1).await;
    assert_eq!(s1.cluster_state, "shut down in recovery");
    assert!(s1.standby_signal);
    assert_eq!(s1.timeline, 4);
    let s2 = stopped(&n2).await;
    assert_eq!(s2.cluster_state, "shut down");
    assert!(!s2.standby_signal);
    assert_eq!(s2.timeline, 4);
}

/// A replica whose upstream is unreachable still starts (it cannot become consistent
/// without WAL, so it is observed as Starting or Running, not stuck in start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_without_upstream_starts() {
    let dir = pg_tempdir().expect("test directory");
    let n1 = Pg::new(sample_settings("a", dir.path(), free_port().unwrap()));
    let _guard = StopOnDrop(vec![n1.settings().data_dir.clone()]);
    n1.bootstrap(&BootstrapPlan::Initdb)
        .await
        .expect("bootstrap");
    n1.stop(StopMode::Fast).await.unwrap();
    // A cleanly stopped former primary restarted as a standby of nobody.
    n1.start_replica(None)
        .await
        .expect("start as a standby of nobody");
    let r = running(&n1, "standby", |r| r.in_recovery).await;
    assert!(!r.streaming);
    assert_eq!(r.upstream, None);
    n1.stop(StopMode::Fast).await.unwrap();
    assert_eq!(stopped(&n1).await.cluster_state, "shut down in recovery");
}

/// Bootstrap as Patroni's docs (and its acceptance suite) configure it: `initdb` with
/// `auth: md5` and `auth-host: md5`. The agent must still log in as the superuser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_with_initdb_auth_md5() {
    use pgkeel_core::config::InitdbOption;
    let dir = pg_tempdir().expect("test directory");
    let mut settings = sample_settings("a", dir.path(), free_port().unwrap());
    settings.initdb = vec![
        InitdbOption::Value("auth".into(), "md5".into()),
        InitdbOption::Value("auth-host".into(), "md5".into()),
    ];
    let pg = Pg::new(settings);
    let _guard = StopOnDrop(vec![pg.settings().data_dir.clone()]);
    pg.bootstrap(&BootstrapPlan::Initdb)
        .await
        .expect("bootstrap with auth md5");
    pg.post_bootstrap(None).await.expect("post_bootstrap");
    let r = running(&pg, "primary", |r| !r.in_recovery).await;
    assert!(!r.in_recovery);
    let client = sql(&pg).await;
    let method: String = client
        .query_one("SELECT current_setting('password_encryption')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(method, "md5");
    pg.stop(StopMode::Fast).await.unwrap();
}

/// `postgresql.use_unix_socket` (issue 12): the agent's sessions go through the socket in
/// the first absolute `unix_socket_directories` entry, with no TLS (as libpq), so a pg_hba
/// with `local` lines only lets the agent in; without the setting the same server refuses
/// the agent's TCP session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_unix_socket_connects_through_the_socket() {
    use pgkeel_core::config::InitdbOption;
    let dir = pg_tempdir().expect("test directory");
    let sockets = dir.path().join("sockets");
    std::fs::create_dir(&sockets).unwrap();
    let owner = std::fs::metadata(dir.path()).unwrap();
    std::os::unix::fs::chown(
        &sockets,
        Some(std::os::unix::fs::MetadataExt::uid(&owner)),
        Some(std::os::unix::fs::MetadataExt::gid(&owner)),
    )
    .unwrap();
    let mut settings = sample_settings("a", dir.path(), free_port().unwrap());
    settings.initdb = vec![InitdbOption::Value("auth".into(), "md5".into())];
    settings.parameters.insert(
        "unix_socket_directories".into(),
        // An abstract socket first (not a directory: skipped), named after the test's
        // directory so parallel tests do not collide.
        format!(
            "@{}, {}",
            dir.path().file_name().unwrap().to_string_lossy(),
            sockets.display()
        ),
    );
    settings.pg_hba = pgkeel_pg::HbaLines::Configured(vec!["local all all md5".into()]);
    settings.use_unix_socket = true;
    // `postgresql.pg_ident` is written as given (checked below, with the server up: a bad
    // ident file would have stopped it).
    settings.pg_ident = Some(vec!["ops root postgres".into()]);
    let pg = Pg::new(settings.clone());
    let _guard = StopOnDrop(vec![pg.settings().data_dir.clone()]);
    pg.bootstrap(&BootstrapPlan::Initdb)
        .await
        .expect("bootstrap over the socket");
    pg.post_bootstrap(None).await.expect("post_bootstrap");
    let r = running(&pg, "primary over the socket", |r| !r.in_recovery).await;
    assert!(!r.in_recovery);
    let ident = std::fs::read_to_string(pg.settings().data_dir.join("pg_ident.conf")).unwrap();
    assert!(ident.ends_with("\nops root postgres\n"), "{ident:?}");

    settings.use_unix_socket = false;
    let tcp = Pg::new(settings);
    match tcp.observe().await {
        PgView::Running(r) => panic!("the agent got in over TCP with local-only pg_hba: {r:?}"),
        other => eprintln!("over TCP, as expected: {other:?}"),
    }
    pg.stop(StopMode::Fast).await.unwrap();
}
