//! The etcd adapter against a real etcd (Debian's etcd-server), one server per test on free
//! loopback ports. All tests use tokio's default current-thread runtime, like the agent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgkeel_core::cluster::MemberEntry;
use pgkeel_core::dcs_values::{FailoverValue, HistoryEntry, MemberValue, StatusValue};
use pgkeel_dcs::{Access, DcsError, Etcd};
use pgkeel_localcluster::EtcdServer;
use tempfile::TempDir;
use tokio::sync::Notify;

const PREFIX: &str = "/service/batman/";
const OP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a test waits for something etcd does on its own (lease expiry, watch events).
const EVENTUALLY: Duration = Duration::from_secs(15);

struct Fixture {
    server: EtcdServer,
    _dir: TempDir,
}

impl Fixture {
    fn start() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = EtcdServer::start(dir.path()).expect("start etcd");
        Fixture { server, _dir: dir }
    }

    async fn client(&self) -> Etcd {
        Etcd::connect(
            &Access::plain(vec![self.server.endpoint.clone()]),
            PREFIX.to_string(),
            OP_TIMEOUT,
        )
        .await
        .expect("connect")
    }

    /// A raw etcd-client, for writing what pgkeel never would.
    async fn raw(&self) -> etcd_client::Client {
        etcd_client::Client::connect([self.server.url()], None)
            .await
            .expect("raw connect")
    }
}

fn member(role: &str) -> MemberValue {
    MemberValue {
        conn_url: "postgres://127.0.0.1:5432/postgres".into(),
        api_url: "http://127.0.0.1:8008/patroni".into(),
        state: "running".into(),
        role: role.into(),
        xlog_location: Some(100),
        timeline: Some(1),
        ..Default::default()
    }
}

async fn notified_within(wake: &Notify, what: &str) {
    tokio::time::timeout(EVENTUALLY, wake.notified())
        .await
        .unwrap_or_else(|_| panic!("no watch notification within {EVENTUALLY:?}: {what}"));
}

#[tokio::test]
async fn bootstrap_race_has_one_winner() {
    let f = Fixture::start();
    let (a, b) = (f.client().await, f.client().await);
    let (ra, rb) = tokio::join!(a.claim_initialize(), b.claim_initialize());
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ra ^ rb, "exactly one claim wins: a={ra} b={rb}");
    assert_eq!(a.load().await.unwrap().initialize.as_deref(), Some(""));

    a.write_initialize("7380000000000000001").await.unwrap();
    assert_eq!(
        b.load().await.unwrap().initialize.as_deref(),
        Some("7380000000000000001")
    );
    assert!(!b.claim_initialize().await.unwrap());

    a.cancel_initialize().await.unwrap();
    assert_eq!(b.load().await.unwrap().initialize, None);
    assert!(b.claim_initialize().await.unwrap());

    let cfg = serde_json::json!({"ttl": 30, "loop_wait": 10});
    assert!(a.write_config_if_absent(&cfg).await.unwrap());
    assert!(!b
        .write_config_if_absent(&serde_json::json!({"ttl": 99}))
        .await
        .unwrap());
    assert_eq!(b.load().await.unwrap().config, Some(cfg));
}

#[tokio::test]
async fn leader_race_has_one_winner() {
    let f = Fixture::start();
    let (a, b) = (f.client().await, f.client().await);
    let la = a.grant_lease(Duration::from_secs(10)).await.unwrap();
    let lb = b.grant_lease(Duration::from_secs(10)).await.unwrap();
    let (ra, rb) = tokio::join!(a.acquire_leader("a", la), b.acquire_leader("b", lb));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(ra ^ rb, "exactly one acquire wins: a={ra} b={rb}");

    let (winner, lease) = if ra { ("a", la) } else { ("b", lb) };
    let leader = a.load().await.unwrap().leader.expect("leader key");
    assert_eq!((leader.name.as_str(), leader.lease), (winner, lease));
    assert!(leader.revision > 0);
}

#[tokio::test]
async fn keep_alive_then_revoke_drops_the_leader_key() {
    let f = Fixture::start();
    let a = f.client().await;
    let lease = a.grant_lease(Duration::from_secs(10)).await.unwrap();
    assert!(a.acquire_leader("a", lease).await.unwrap());
    a.touch_member("a", &member("primary"), lease)
        .await
        .unwrap();

    // Twice: the first opens the keepalive stream, the second reuses it.
    for _ in 0..2 {
        let ttl = a.keep_alive(lease).await.unwrap().expect("lease alive");
        assert!(
            ttl > Duration::from_secs(5) && ttl <= Duration::from_secs(10),
            "{ttl:?}"
        );
    }

    a.revoke_lease(lease).await.unwrap();
    let c = a.load().await.unwrap();
    assert_eq!(c.leader, None);
    assert!(c.members.is_empty());
    assert_eq!(a.keep_alive(lease).await.unwrap(), None);
    // Revoking again is not an error: the lease is gone either way.
    a.revoke_lease(lease).await.unwrap();
}

#[tokio::test]
async fn keep_alive_survives_an_etcd_restart() {
    let mut f = Fixture::start();
    let a = f.client().await;
    let lease = a.grant_lease(Duration::from_secs(30)).await.unwrap();
    assert!(a.keep_alive(lease).await.unwrap().is_some());

    f.server.stop();
    assert!(matches!(
        a.keep_alive(lease).await,
        Err(DcsError::Unavailable(_))
    ));
    f.server.restart().expect("restart etcd");
    // The cached stream died with the server; the adapter must reopen it, not fail forever.
    let deadline = Instant::now() + EVENTUALLY;
    loop {
        match a.keep_alive(lease).await {
            Ok(Some(_)) => break,
            other if Instant::now() > deadline => panic!("keep_alive after restart: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test]
async fn reclaim_leader_rebinds_only_our_own_key() {
    let f = Fixture::start();
    let a = f.client().await;
    let old = a.grant_lease(Duration::from_secs(10)).await.unwrap();
    assert!(a.acquire_leader("a", old).await.unwrap());

    let new = a.grant_lease(Duration::from_secs(10)).await.unwrap();
    assert!(a.reclaim_leader("a", new).await.unwrap());
    assert_eq!(a.load().await.unwrap().leader.unwrap().lease, new);

    let other = a.grant_lease(Duration::from_secs(10)).await.unwrap();
    assert!(!a.reclaim_leader("b", other).await.unwrap());
    let leader = a.load().await.unwrap().leader.unwrap();
    assert_eq!((leader.name.as_str(), leader.lease), ("a", new));

    // Revoking the old lease no longer touches the key.
    a.revoke_lease(old).await.unwrap();
    assert!(a.load().await.unwrap().leader.is_some());

    assert!(a.release_leader("a").await.unwrap());
    assert!(!a.reclaim_leader("a", new).await.unwrap(), "absent key");
    assert_eq!(a.load().await.unwrap().leader, None);
}

#[tokio::test]
async fn release_deletes_only_our_own_key() {
    let f = Fixture::start();
    let a = f.client().await;
    let lease = a.grant_lease(Duration::from_secs(10)).await.unwrap();
    assert!(a.acquire_leader("a", lease).await.unwrap());

    assert!(!a.release_leader("b").await.unwrap());
    assert_eq!(a.load().await.unwrap().leader_name(), Some("a"));
    assert!(a.release_leader("a").await.unwrap());
    assert_eq!(a.load().await.unwrap().leader, None);
    assert!(!a.release_leader("a").await.unwrap());
}

#[tokio::test]
async fn load_reads_everything_and_reports_corrupt_values() {
    let f = Fixture::start();
    let a = f.client().await;
    let lease = a.grant_lease(Duration::from_secs(10)).await.unwrap();
    a.touch_member("node1", &member("primary"), lease)
        .await
        .unwrap();
    a.touch_member("node2", &member("replica"), lease)
        .await
        .unwrap();
    let status = StatusValue {
        optime: 12345,
        ..Default::default()
    };
    // Only the leader's writes of status and history land.
    assert!(!a.write_status("node1", &status).await.unwrap());
    assert!(a.acquire_leader("node1", lease).await.unwrap());
    assert!(!a.write_status("node2", &status).await.unwrap());
    assert!(a.write_status("node1", &status).await.unwrap());
    let history = vec![HistoryEntry {
        timeline: 1,
        lsn: 50331808,
        reason: "no recovery target specified".into(),
        timestamp: Some("2024-01-01T00:00:00+00:00".into()),
        new_leader: Some("node2".into()),
    }];
    assert!(!a.write_history("node2", &history).await.unwrap());
    assert!(a.write_history("node1", &history).await.unwrap());
    assert!(a
        .write_config_if_absent(&serde_json::json!({"ttl": 30}))
        .await
        .unwrap());

    let mut raw = f.raw().await;
    raw.put(format!("{PREFIX}members/broken"), "{not json", None)
        .await
        .unwrap();
    // Another cluster's keys must not leak in.
    raw.put("/service/batman2/leader", "intruder", None)
        .await
        .unwrap();

    let c = a
        .load()
        .await
        .expect("a corrupt member must not fail the load");
    assert_eq!(c.member("node1"), Some(&member("primary")));
    assert_eq!(c.member("node2").unwrap().role, "replica");
    assert!(matches!(
        c.members.get("broken"),
        Some(MemberEntry::Corrupt(_))
    ));
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("/service/batman/members/broken"));
    assert_eq!(c.status, Some(status));
    assert_eq!(c.history, Some(history));
    assert_eq!(c.timeline(), 2);
    assert_eq!(c.config, Some(serde_json::json!({"ttl": 30})));
    assert!(c.config_revision > 0);
    assert_eq!(c.leader.map(|l| l.name), Some("node1".to_string()));

    // Patroni's own shapes, written the way Patroni writes them, read back.
    raw.put(format!("{PREFIX}leader"), "node1", None)
        .await
        .unwrap();
    raw.put(
        format!("{PREFIX}history"),
        r#"[[1, 50331808, "no recovery target specified", "2024-01-01T00:00:00+00:00"]]"#,
        None,
    )
    .await
    .unwrap();
    let c = a.load().await.unwrap();
    assert_eq!(c.leader_name(), Some("node1"));
    assert_eq!(c.history.unwrap()[0].new_leader, None);
}

#[tokio::test]
async fn watcher_wakes_on_leader_changes() {
    let f = Fixture::start();
    let a = f.client().await;
    let wake = Arc::new(Notify::new());
    let watcher = a.spawn_watcher(wake.clone());
    // The first notification says the watch is in place.
    notified_within(&wake, "watch established").await;

    let lease = a.grant_lease(Duration::from_secs(10)).await.unwrap();
    assert!(a.acquire_leader("a", lease).await.unwrap());
    notified_within(&wake, "leader key created").await;

    assert!(a.release_leader("a").await.unwrap());
    notified_within(&wake, "leader key deleted").await;

    assert!(a
        .write_config_if_absent(&serde_json::json!({"ttl": 30}))
        .await
        .unwrap());
    notified_within(&wake, "config written").await;

    watcher.abort();
    assert!(watcher.await.unwrap_err().is_cancelled());
}

#[tokio::test]
async fn watcher_reconnects_and_wakes_after_an_etcd_restart() {
    let mut f = Fixture::start();
    let a = f.client().await;
    let wake = Arc::new(Notify::new());
    let watcher = a.spawn_watcher(wake.clone());
    notified_within(&wake, "watch established").await;

    f.server.stop();
    f.server.restart().expect("restart etcd");
    // Events may have been missed while the watch was down: the watcher must say so.
    notified_within(&wake, "watch re-established").await;

    let lease = a.grant_lease(Duration::from_secs(10)).await.unwrap();
    assert!(a.acquire_leader("a", lease).await.unwrap());
    notified_within(&wake, "leader key created after the restart").await;
    watcher.abort();
}

#[tokio::test]
async fn lease_expiry_deletes_leader_and_member() {
    let f = Fixture::start();
    let a = f.client().await;
    let lease = a.grant_lease(Duration::from_secs(2)).await.unwrap();
    assert!(a.acquire_leader("a", lease).await.unwrap());
    a.touch_member("a", &member("primary"), lease)
        .await
        .unwrap();
    let c = a.load().await.unwrap();
    assert!(c.leader.is_some() && c.members.contains_key("a"));

    let deadline = Instant::now() + EVENTUALLY;
    loop {
        let c = a.load().await.unwrap();
        if c.leader.is_none() && c.members.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "keys outlived their lease: {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(a.keep_alive(lease).await.unwrap(), None);
}

#[tokio::test]
async fn connect_to_a_dead_endpoint_fails_within_the_timeout() {
    // A port nobody listens on: bind, note it, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hosts = Access::plain(vec![pgkeel_core::config::HostPort {
        host: "127.0.0.1".into(),
        port,
    }]);
    let timeout = Duration::from_secs(1);
    let started = Instant::now();
    let res = Etcd::connect(&hosts, PREFIX.to_string(), timeout).await;
    let elapsed = started.elapsed();
    match res {
        Err(DcsError::Unavailable(msg)) => assert!(msg.contains("connect"), "{msg}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(elapsed < timeout * 3, "took {elapsed:?}");
}

#[tokio::test]
async fn connect_rejects_a_bad_prefix() {
    let hosts = Access::plain(vec![pgkeel_core::config::HostPort {
        host: "127.0.0.1".into(),
        port: 1,
    }]);
    let res = Etcd::connect(&hosts, "/service/batman".into(), OP_TIMEOUT).await;
    assert!(matches!(res, Err(DcsError::Invalid(_))), "{res:?}");
}

#[tokio::test]
async fn failover_and_config_writes_are_compare_and_set() {
    let f = Fixture::start();
    let a = f.client().await;
    // failover: written, read back, deleted only at the revision we saw.
    let req = FailoverValue {
        leader: Some("node1".into()),
        member: Some("node2".into()),
        scheduled_at: None,
    };
    a.write_failover(&req).await.unwrap();
    let c = a.load().await.unwrap();
    assert_eq!(c.failover, Some(req.clone()));
    a.write_failover(&req).await.unwrap(); // moves the revision on
    assert!(!a.delete_failover(c.failover_revision).await.unwrap());
    let c = a.load().await.unwrap();
    assert!(a.delete_failover(c.failover_revision).await.unwrap());
    assert_eq!(a.load().await.unwrap().failover, None);

    // config: create only if absent (revision 0), then replace only at the revision read.
    let v1 = serde_json::json!({"ttl": 10});
    assert!(a.write_config(&v1, 0).await.unwrap());
    assert!(!a.write_config(&v1, 0).await.unwrap());
    let rev = a.load().await.unwrap().config_revision;
    let v2 = serde_json::json!({"ttl": 12});
    assert!(a.write_config(&v2, rev).await.unwrap());
    assert!(
        !a.write_config(&v1, rev).await.unwrap(),
        "a stale revision must lose"
    );
    assert_eq!(a.load().await.unwrap().config, Some(v2));
    a.put_config(&v1).await.unwrap();
    assert_eq!(a.load().await.unwrap().config, Some(v1));

    // remove: nothing of the cluster is left.
    a.delete_cluster().await.unwrap();
    let c = a.load().await.unwrap();
    assert_eq!((c.config, c.failover, c.leader), (None, None, None));
}

/// etcd refuses a value over its request limit (1.5 MiB by default): that is the value's
/// fault, not an unreachable etcd, and must not read "unavailable" (issue 11: a 1.9 MB
/// PATCH /config answered "DCS is not accessible").
#[tokio::test]
async fn a_value_over_etcds_request_limit_is_too_large_not_unavailable() {
    let f = Fixture::start();
    let dcs = f.client().await;
    let big = serde_json::json!({ "ttl": 30, "x": "y".repeat(1_900_000) });
    let res = dcs.put_config(&big).await;
    assert!(matches!(res, Err(DcsError::TooLarge(_))), "{res:?}");
    let res = dcs.write_config(&big, 0).await;
    assert!(matches!(res, Err(DcsError::TooLarge(_))), "{res:?}");
    // etcd is fine.
    dcs.put_config(&serde_json::json!({"ttl": 30}))
        .await
        .unwrap();
    assert_eq!(dcs.load().await.unwrap().config.unwrap()["ttl"], 30);
}
