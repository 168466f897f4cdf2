//! Rolling migration from a running Patroni 4.1.5 cluster (docs/migrating-from-patroni.md):
//! each node's Patroni is stopped and a pgkeel agent is started with the same YAML; it joins
//! as the same member, Patroni and pgkeel members lead, switch over and fail over to each
//! other, and the whole cluster moves with one planned switchover and no failover.
//!
//! Real Patroni from PyPI (`scripts/deps.sh` installs it in /opt/patroni-venv), real etcd and
//! PostgreSQL 15 run as `postgres`, free loopback ports. Without Patroni the tests say what to
//! install and pass.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::patroni::{self, Kind, MixedCluster, Spec, PASSWORD, REST_USER};
use common::writer::{self, Writer};
use common::{eventually, BOOT};
use serde_json::Value;

const STEP: Duration = Duration::from_secs(90);

fn cluster(scope: &str, spec: &Spec) -> Option<MixedCluster> {
    if let Some(why) = patroni::missing() {
        eprintln!("SKIPPED: {why}");
        return None;
    }
    pgkeel_tls::install_default_provider();
    let pgkeel = env!("CARGO_BIN_EXE_pgkeel").as_ref();
    Some(MixedCluster::new(scope, 3, spec, pgkeel).expect("cluster"))
}

/// Starts node1 alone (it bootstraps), then the others; waits until all stream from node1.
async fn start_patroni_cluster(c: &mut MixedCluster) {
    c.start_patroni(0).expect("patroni");
    eventually(BOOT, "node1 bootstraps under Patroni", || async {
        let m = members(c, 0).await?;
        anyhow::ensure!(m
            .iter()
            .any(|(n, r, s)| n == "node1" && r == "leader" && s == "running"));
        Ok(())
    })
    .await;
    for i in 1..c.nodes.len() {
        c.start_patroni(i).expect("patroni");
    }
    wait_healthy(c, "node1", BOOT).await;
    for i in 0..c.nodes.len() {
        assert_eq!(
            program_version(c, i).await.expect("/patroni"),
            PATRONI_VERSION
        );
    }
}

const PATRONI_VERSION: &str = "4.1.5";

/// `patroni.version` of node `i`'s `/patroni`: 4.1.5 from Patroni, pgkeel's own from pgkeel.
async fn program_version(c: &MixedCluster, i: usize) -> anyhow::Result<String> {
    let v = get_json(c, i, "/patroni").await?;
    anyhow::ensure!(v["patroni"]["name"] == c.nodes[i].name.as_str(), "{v}");
    Ok(v["patroni"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// GET `path` of node `i`'s REST API as JSON.
async fn get_json(c: &MixedCluster, i: usize, path: &str) -> anyhow::Result<Value> {
    let r = c
        .http
        .get(format!("{}{path}", c.nodes[i].api_url()))
        .timeout(Duration::from_secs(3))
        .basic_auth(REST_USER, Some(PASSWORD))
        .send()
        .await?;
    Ok(r.json().await?)
}

/// `/cluster` as node `i` answers it: (name, role, state) of each member, by name.
async fn members(c: &MixedCluster, i: usize) -> anyhow::Result<Vec<(String, String, String)>> {
    let v = get_json(c, i, "/cluster").await?;
    let mut out: Vec<(String, String, String)> = v["members"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("no members in {v}"))?
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            (s("name"), s("role"), s("state"))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Waits until every node's `/cluster` shows `leader` as the leader and every other node as
/// a streaming replica, and node `leader`'s server streams to each of them.
async fn wait_healthy(c: &MixedCluster, leader: &str, within: Duration) {
    let names: Vec<String> = c.nodes.iter().map(|n| n.name.clone()).collect();
    for i in 0..c.nodes.len() {
        let r = tokio::time::timeout(
            within,
            eventually(
                within,
                &format!("{} sees a healthy cluster", c.nodes[i].name),
                || {
                    let names = names.clone();
                    async move {
                        // A synchronous standby is a replica here (its role says which kind).
                        let got: Vec<(String, String, String)> = members(c, i)
                            .await?
                            .into_iter()
                            .map(|(n, r, s)| match r.as_str() {
                                "sync_standby" | "quorum_standby" => (n, "replica".into(), s),
                                _ => (n, r, s),
                            })
                            .collect();
                        let want: Vec<(String, String, String)> = names
                            .iter()
                            .map(|n| {
                                if n == leader {
                                    (n.clone(), "leader".into(), "running".into())
                                } else {
                                    (n.clone(), "replica".into(), "streaming".into())
                                }
                            })
                            .collect();
                        anyhow::ensure!(got == want, "{got:?}, want {want:?}");
                        Ok(())
                    }
                },
            ),
        )
        .await;
        if r.is_err() {
            c.dump_logs();
            panic!("not healthy within {within:?}");
        }
    }
    let li = c.index_of(leader);
    let want = c.nodes.len() - 1;
    eventually(within, "the leader streams to every replica", || async {
        let db = common::connect(&c.nodes[li].dsn()).await?;
        let n: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                &[],
            )
            .await?
            .get(0);
        anyhow::ensure!(n as usize == want, "{n} streaming, want {want}");
        Ok(())
    })
    .await;
}

/// A client of the cluster's etcd, under its scope.
async fn dcs(c: &MixedCluster) -> pgkeel_dcs::Etcd {
    let access = pgkeel_dcs::Access::plain(vec![c.etcd.endpoint.clone()]);
    pgkeel_dcs::Etcd::connect(
        &access,
        format!("/service/{}/", c.scope),
        Duration::from_secs(3),
    )
    .await
    .expect("etcd")
}

/// The leader key's successive holders, polled every 50 ms until `stop`.
struct LeaderLog {
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaderLog {
    async fn start(c: &MixedCluster) -> LeaderLog {
        let etcd = dcs(c).await;
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let task = tokio::spawn(async move {
            while !st.load(Ordering::SeqCst) {
                if let Ok(cl) = etcd.load().await {
                    if let Some(l) = cl.leader {
                        let mut v = s.lock().unwrap();
                        if v.last() != Some(&l.name) {
                            v.push(l.name);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        LeaderLog { seen, stop, task }
    }

    async fn stop(self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        let v = self.seen.lock().unwrap().clone();
        v
    }
}

/// The timeline node `i`'s server is on.
async fn timeline(c: &MixedCluster, i: usize) -> anyhow::Result<i64> {
    let v = get_json(c, i, "/patroni").await?;
    v["timeline"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no timeline in {v}"))
}

/// Checks node `i`'s YAML with `pgkeel agent --validate-config`, stops its Patroni (SIGTERM:
/// it stops its PostgreSQL) and starts pgkeel with the same YAML (as `postgres` like Patroni,
/// or as root); waits until the cluster is healthy again with `leader` leading, and checks
/// that the REST API and the member key of node `i` are pgkeel's.
async fn migrate(c: &mut MixedCluster, i: usize, leader: &str, as_postgres: bool) {
    assert_eq!(c.nodes[i].kind, Kind::Patroni);
    ctl_ok(c, c.pgkeel_validate(i));
    if let Err(e) = c.stop(i, Duration::from_secs(60)) {
        c.dump_logs();
        panic!("{e:#}");
    }
    if as_postgres {
        c.start_pgkeel_as_postgres(i).expect("starting pgkeel");
    } else {
        c.start_pgkeel(i).expect("starting pgkeel");
    }
    wait_healthy(c, leader, BOOT).await;
    // The REST API on the member's address is pgkeel's now, and so is its member key.
    assert_eq!(
        program_version(c, i).await.expect("/patroni"),
        env!("CARGO_PKG_VERSION")
    );
    let cl = dcs(c).await.load().await.expect("load");
    let m = cl.member(&c.nodes[i].name).expect("the member key");
    assert_eq!(m.version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_migration_with_one_planned_switchover() {
    let scope = "migrate";
    let Some(mut c) = cluster(scope, &Spec::default()) else {
        return;
    };
    start_patroni_cluster(&mut c).await;
    let leaders = LeaderLog::start(&c).await;
    let tl0 = timeline(&c, 0).await.expect("timeline");
    let w = Writer::start(c.rw_dsn()).await;
    w.wait_for_more(20, STEP).await.expect("writes before");

    // Started by mistake while Patroni still runs node3, pgkeel exits at once, touching
    // nothing: on the same host Patroni holds the REST port (pgkeel binds it before it asks
    // the DCS; Patroni asks first, so its own message would be "Can't start; there is
    // already a node named 'node3' running", which pgkeel gives when the ports differ).
    let (status, log) = c
        .start_second_pgkeel(2, STEP)
        .expect("a second node3 must exit");
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("Address already in use")
            || log.contains("Can't start; there is already a node named 'node3' running"),
        "{log}"
    );
    wait_healthy(&c, "node1", STEP).await;

    // The replicas first, one at a time.
    migrate(&mut c, 2, "node1", true).await;
    w.wait_for_more(20, STEP)
        .await
        .expect("writes with one pgkeel member");
    migrate(&mut c, 1, "node1", true).await;
    w.wait_for_more(20, STEP)
        .await
        .expect("writes with two pgkeel members");

    // The one planned switchover, from the Patroni leader to a pgkeel member, by patronictl.
    let switch = [
        "switchover",
        scope,
        "--leader",
        "node1",
        "--candidate",
        "node2",
        "--force",
    ];
    ctl_ok(&c, c.patronictl(0, &switch));
    wait_healthy(&c, "node2", STEP).await;
    w.wait_for_more(20, STEP)
        .await
        .expect("writes after the switchover");

    // The former leader, now a Patroni replica.
    migrate(&mut c, 0, "node2", true).await;
    w.wait_for_more(20, STEP)
        .await
        .expect("writes after the migration");

    let acks = w.stop().await;
    let leaders = leaders.stop().await;
    assert_eq!(leaders, ["node1", "node2"], "leader key holders");
    let tl = timeline(&c, 1).await.expect("timeline");
    assert_eq!(tl, tl0 + 1, "one timeline increment (the switchover)");
    let history = get_json(&c, 1, "/history").await.expect("/history");
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history}");
    for i in 0..3 {
        let lost = eventually(STEP, "every acknowledged write on every node", || async {
            let lost = writer::missing(&c.nodes[i].dsn(), &acks).await?;
            anyhow::ensure!(lost.is_empty(), "{} missing on node{}", lost.len(), i + 1);
            Ok(lost)
        })
        .await;
        assert!(lost.is_empty());
    }
    // pgkeel's own CLI sees the migrated cluster as patronictl does.
    let list = c.pgkeel_ctl(1, &["list"]).expect("pgkeel list");
    assert!(list.contains("node2") && list.contains("Leader"), "{list}");
}

/// Waits until every replica has replayed all the WAL the leader (node `li`) has written, so
/// that the next race is decided by `failover_priority` alone.
async fn wait_caught_up(c: &MixedCluster, li: usize) {
    let want = c.nodes.len() as i64 - 1;
    eventually(
        STEP,
        "the replicas replay all of the leader's WAL",
        || async {
            let db = common::connect(&c.nodes[li].dsn()).await?;
            let n: i64 = db
                .query_one(
                    "SELECT count(*) FROM pg_stat_replication \
                 WHERE replay_lsn = pg_current_wal_lsn() AND state = 'streaming'",
                    &[],
                )
                .await?
                .get(0);
            anyhow::ensure!(n == want, "{n} of {want} replicas caught up");
            Ok(())
        },
    )
    .await;
}

/// Waits until node `observer` reports `want` as the running leader.
async fn wait_leader(c: &MixedCluster, observer: usize, want: &str) {
    let r = tokio::time::timeout(
        BOOT,
        eventually(BOOT, &format!("{want} takes over"), || async {
            let m = members(c, observer).await?;
            anyhow::ensure!(
                m.iter()
                    .any(|(n, r, s)| n == want && r == "leader" && s == "running"),
                "{m:?}"
            );
            Ok(())
        }),
    )
    .await;
    if r.is_err() {
        c.dump_logs();
        panic!("{want} did not take over");
    }
}

/// How far node `i`'s log is written now (a mark for [`deferred_since`]).
fn log_len(c: &MixedCluster, i: usize) -> usize {
    std::fs::read_to_string(c.nodes[i].log()).map_or(0, |l| l.len())
}

/// Panics unless pgkeel on node `i`, whenever it saw no leader after `mark`, deferred to
/// `winner` (by priority or position, which it can only know from `winner`'s REST API) and
/// never raced. (It may also see the winner's key at once and never decide.)
fn assert_deferred_since(c: &MixedCluster, i: usize, mark: usize, winner: &str) {
    let log = std::fs::read_to_string(c.nodes[i].log()).unwrap_or_default();
    let me = &c.nodes[i].name;
    let seen = format!("I am {me}, there is no leader");
    for line in log
        .get(mark..)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&seen))
    {
        assert!(
            line.contains(&format!(
                "no leader but {winner} has equally tolerable WAL position"
            )) || line.contains(&format!("Wal position of {winner} is ahead")),
            "{me} did not defer to {winner}: {line}"
        );
    }
}

fn ctl_ok(c: &MixedCluster, out: anyhow::Result<String>) -> String {
    match out {
        Ok(s) => s,
        Err(e) => {
            c.dump_logs();
            panic!("{e:#}");
        }
    }
}

/// Patroni and pgkeel members lead in turn, each reading the other's member keys and REST
/// answers: switchovers both ways (pgkeel's CLI to a Patroni leader, patronictl to a pgkeel
/// leader), failovers both ways decided by `failover_priority` between a Patroni and a pgkeel
/// replica at the same WAL position (each must read the other's priority and position from
/// its REST API), rejoins with pg_rewind across kinds, and a node taken back to Patroni.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patroni_and_pgkeel_members_switch_and_fail_over_to_each_other() {
    let scope = "mixed";
    // node1 Patroni (1), node2 Patroni (3), node3 pgkeel (2).
    let Some(mut c) = cluster(
        scope,
        &Spec {
            priorities: &[1, 3, 2],
            ..Spec::default()
        },
    ) else {
        return;
    };
    start_patroni_cluster(&mut c).await;
    migrate(&mut c, 2, "node1", false).await;
    let w = Writer::start(c.rw_dsn()).await;

    // pgkeel's CLI asks the Patroni leader to hand over to the pgkeel member.
    let switch = [
        "switchover",
        scope,
        "--leader",
        "node1",
        "--candidate",
        "node3",
        "--force",
    ];
    ctl_ok(&c, c.pgkeel_ctl(2, &switch));
    wait_healthy(&c, "node3", STEP).await;
    w.wait_for_more(20, STEP).await.expect("writes");
    // patronictl asks the pgkeel leader to hand back to Patroni.
    let switch = [
        "switchover",
        scope,
        "--leader",
        "node3",
        "--candidate",
        "node1",
        "--force",
    ];
    ctl_ok(&c, c.patronictl(0, &switch));
    wait_healthy(&c, "node1", STEP).await;
    w.wait_for_more(20, STEP).await.expect("writes");
    let acks = w.stop().await;

    // The Patroni leader's host is lost; the pgkeel replica (priority 2) must let the Patroni
    // replica (priority 3) at the same position take over.
    wait_caught_up(&c, 0).await;
    let mark = log_len(&c, 2);
    c.kill_host(0);
    wait_leader(&c, 1, "node2").await;
    assert_deferred_since(&c, 2, mark, "node2");
    c.start_patroni(0).expect("patroni");
    wait_healthy(&c, "node2", BOOT).await;

    // Now the Patroni replica (priority 1) must let the pgkeel one (priority 2) take over.
    wait_caught_up(&c, 1).await;
    c.kill_host(1);
    // Patroni says `node3 has equally tolerable WAL position and priority 2, while this
    // node has priority 1` when it looks before node3 has taken the key.
    wait_leader(&c, 2, "node3").await;
    // The former Patroni leader rejoins under the pgkeel leader.
    c.start_patroni(1).expect("patroni");
    wait_healthy(&c, "node3", BOOT).await;

    // The pgkeel leader's host is lost: the Patroni members take over; pgkeel comes back
    // and rejoins under the Patroni leader.
    wait_caught_up(&c, 2).await;
    c.kill_host(2);
    wait_leader(&c, 1, "node2").await;
    c.start_pgkeel(2).expect("pgkeel");
    wait_healthy(&c, "node2", BOOT).await;
    let lost = writer::missing(&c.nodes[1].dsn(), &acks)
        .await
        .expect("reading");
    assert!(lost.is_empty(), "{} acknowledged writes lost", lost.len());

    // And back: the pgkeel replica handed to Patroni again with the same YAML.
    c.stop(2, Duration::from_secs(60)).expect("stopping pgkeel");
    c.start_patroni(2).expect("patroni");
    wait_healthy(&c, "node2", BOOT).await;
    assert_eq!(
        program_version(&c, 2).await.expect("/patroni"),
        PATRONI_VERSION
    );
    let list = ctl_ok(&c, c.patronictl(0, &["list", scope]));
    assert!(list.contains("node2") && list.contains("Leader"), "{list}");
}

/// The leader moved without a switchover: in maintenance mode Patroni exits leaving
/// PostgreSQL running and the leader key in place; pgkeel, started with the same YAML, takes
/// the running primary and the key over. The primary is never restarted, the timeline never
/// changes. `patronictl pause --wait` also sees the pgkeel members recognise the pause (the
/// `pause` field of their member keys).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_handed_over_in_maintenance_mode_without_a_switchover() {
    let scope = "paused";
    let Some(mut c) = cluster(scope, &Spec::default()) else {
        return;
    };
    start_patroni_cluster(&mut c).await;
    let leaders = LeaderLog::start(&c).await;
    let tl0 = timeline(&c, 0).await.expect("timeline");
    let w = Writer::start(c.rw_dsn()).await;
    migrate(&mut c, 2, "node1", true).await;
    migrate(&mut c, 1, "node1", true).await;
    w.wait_for_more(20, STEP).await.expect("writes");

    let out = ctl_ok(&c, c.patronictl(0, &["pause", scope, "--wait"]));
    assert!(
        out.contains("Success: cluster management is paused"),
        "{out}"
    );
    // What patronictl waited for: every member key, pgkeel's too, says `"pause": true`.
    let cl = dcs(&c).await.load().await.expect("load");
    for n in &c.nodes {
        let m = cl.member(&n.name).expect("member key");
        assert_eq!(m.pause, Some(true), "{}: {m:?}", n.name);
    }
    let postmaster = c.postmaster_pid(0).expect("node1's postmaster");
    c.stop(0, Duration::from_secs(60))
        .expect("stopping patroni");
    assert_eq!(
        c.postmaster_pid(0),
        Some(postmaster),
        "Patroni stopped PostgreSQL in maintenance mode"
    );
    c.start_pgkeel_as_postgres(0).expect("pgkeel");
    eventually(BOOT, "pgkeel takes the running primary over", || async {
        anyhow::ensure!(program_version(&c, 0).await? == env!("CARGO_PKG_VERSION"));
        let m = members(&c, 0).await?;
        anyhow::ensure!(
            m.iter()
                .any(|(n, r, s)| n == "node1" && r == "leader" && s == "running"),
            "{m:?}"
        );
        Ok(())
    })
    .await;
    let out = ctl_ok(&c, c.pgkeel_ctl(0, &["resume", scope, "--wait"]));
    assert!(
        out.contains("Success: cluster management is resumed"),
        "{out}"
    );
    wait_healthy(&c, "node1", BOOT).await;
    let cl = dcs(&c).await.load().await.expect("load");
    assert!(cl
        .members
        .keys()
        .all(|n| cl.member(n).is_some_and(|m| m.pause.is_none())));
    w.wait_for_more(20, STEP)
        .await
        .expect("writes after the handover");

    let acks = w.stop().await;
    assert_eq!(leaders.stop().await, ["node1"], "leader key holders");
    assert_eq!(
        c.postmaster_pid(0),
        Some(postmaster),
        "the primary restarted"
    );
    assert_eq!(timeline(&c, 0).await.expect("timeline"), tl0);
    for i in 0..3 {
        eventually(STEP, "every acknowledged write on every node", || async {
            let lost = writer::missing(&c.nodes[i].dsn(), &acks).await?;
            anyhow::ensure!(lost.is_empty(), "{} missing on node{}", lost.len(), i + 1);
            Ok(())
        })
        .await;
    }
}

/// The sync key (leader, synchronous standbys) as etcd holds it.
async fn sync_key(c: &MixedCluster) -> anyhow::Result<(String, Vec<String>)> {
    let cl = dcs(c).await.load().await?;
    let s = cl.sync.ok_or_else(|| anyhow::anyhow!("no sync key"))?;
    Ok((
        s.leader.unwrap_or_default(),
        s.sync_standby.into_iter().collect(),
    ))
}

/// Waits until `leader` holds the sync key with exactly one synchronous standby that its
/// server names in `synchronous_standby_names` and streams to as `sync`; returns it.
async fn wait_sync_standby(c: &MixedCluster, leader: &str) -> String {
    let li = c.index_of(leader);
    let r = tokio::time::timeout(
        BOOT,
        eventually(
            BOOT,
            &format!("{leader} has a synchronous standby"),
            || async {
                let (l, standbys) = sync_key(c).await?;
                anyhow::ensure!(
                    l == leader && standbys.len() == 1,
                    "sync key {l} {standbys:?}"
                );
                let db = common::connect(&c.nodes[li].dsn()).await?;
                let ssn: String = db
                    .query_one("SHOW synchronous_standby_names", &[])
                    .await?
                    .get(0);
                anyhow::ensure!(
                    ssn.contains(&standbys[0]),
                    "synchronous_standby_names {ssn}"
                );
                let state: Option<String> = db
                    .query_opt(
                        "SELECT sync_state FROM pg_stat_replication WHERE application_name = $1",
                        &[&standbys[0]],
                    )
                    .await?
                    .map(|r| r.get(0));
                anyhow::ensure!(
                    state.as_deref() == Some("sync"),
                    "{} is {state:?}",
                    standbys[0]
                );
                Ok(standbys[0].clone())
            },
        ),
    )
    .await;
    match r {
        Ok(s) => s,
        Err(_) => {
            c.dump_logs();
            panic!("{leader} has no synchronous standby");
        }
    }
}

/// Synchronous mode across kinds: a Patroni leader keeps a pgkeel member as its synchronous
/// standby, a switchover goes to it, the pgkeel leader keeps a Patroni member (and then a
/// pgkeel one) as its synchronous standby in the same `sync` key, and no acknowledged commit
/// is lost on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronous_mode_across_kinds() {
    let scope = "syncmix";
    let spec = Spec {
        dcs_extra: "synchronous_mode: true",
        ..Spec::default()
    };
    let Some(mut c) = cluster(scope, &spec) else {
        return;
    };
    start_patroni_cluster(&mut c).await;
    wait_sync_standby(&c, "node1").await;
    let w = Writer::start(c.rw_dsn()).await;

    // Both replicas to pgkeel, the synchronous one included: Patroni's leader then waits for
    // a pgkeel standby.
    migrate(&mut c, 2, "node1", true).await;
    wait_sync_standby(&c, "node1").await;
    migrate(&mut c, 1, "node1", true).await;
    let sync = wait_sync_standby(&c, "node1").await;
    assert_ne!(sync, "node1");
    w.wait_for_more(20, STEP).await.expect("writes");

    // The switchover goes to the synchronous standby, a pgkeel member.
    let switch = [
        "switchover",
        scope,
        "--leader",
        "node1",
        "--candidate",
        &sync,
        "--force",
    ];
    ctl_ok(&c, c.patronictl(0, &switch));
    wait_healthy(&c, &sync, STEP).await;
    // The pgkeel leader keeps a synchronous standby: Patroni's node1 or the other pgkeel one.
    wait_sync_standby(&c, &sync).await;
    w.wait_for_more(20, STEP)
        .await
        .expect("writes after the switchover");

    migrate(&mut c, 0, &sync, true).await;
    wait_sync_standby(&c, &sync).await;
    w.wait_for_more(20, STEP)
        .await
        .expect("writes after the migration");
    let acks = w.stop().await;
    let li = c.index_of(&sync);
    let lost = writer::missing(&c.nodes[li].dsn(), &acks)
        .await
        .expect("reading");
    assert!(lost.is_empty(), "{} acknowledged commits lost", lost.len());
}

/// The same over HTTPS with client certificates required, as Patroni's acceptance suite runs
/// its nodes: each kind's agent asks the other's REST API with the `ctl` client certificate
/// (the leader race, a switchover's candidate check), and each CLI the other's agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_cluster_over_https_with_client_certificates() {
    let scope = "mixedtls";
    // node1 Patroni (3), node2 and node3 pgkeel (1, 2).
    let spec = Spec {
        priorities: &[3, 1, 2],
        https: true,
        ..Spec::default()
    };
    let Some(mut c) = cluster(scope, &spec) else {
        return;
    };
    start_patroni_cluster(&mut c).await;
    migrate(&mut c, 2, "node1", true).await;
    migrate(&mut c, 1, "node1", false).await;
    let cl = dcs(&c).await.load().await.expect("load");
    for n in &c.nodes {
        let m = cl.member(&n.name).expect("member key");
        assert!(m.api_url.starts_with("https://"), "{}", m.api_url);
    }

    // pgkeel's CLI to the Patroni leader, patronictl to the pgkeel leader.
    let switch = [
        "switchover",
        scope,
        "--leader",
        "node1",
        "--candidate",
        "node3",
        "--force",
    ];
    ctl_ok(&c, c.pgkeel_ctl(2, &switch));
    wait_healthy(&c, "node3", STEP).await;
    let switch = [
        "switchover",
        scope,
        "--leader",
        "node3",
        "--candidate",
        "node2",
        "--force",
    ];
    ctl_ok(&c, c.patronictl(0, &switch));
    wait_healthy(&c, "node2", STEP).await;

    // The pgkeel leader is lost: the pgkeel replica (2) defers to the Patroni one (3), whose
    // priority and position it reads over HTTPS.
    wait_caught_up(&c, 1).await;
    let mark = log_len(&c, 2);
    c.kill_host(1);
    wait_leader(&c, 0, "node1").await;
    assert_deferred_since(&c, 2, mark, "node1");
    c.start_pgkeel(1).expect("pgkeel");
    wait_healthy(&c, "node1", BOOT).await;
    let list = ctl_ok(&c, c.patronictl(0, &["list", scope]));
    assert!(list.contains("node1") && list.contains("Leader"), "{list}");
    let list = ctl_ok(&c, c.pgkeel_ctl(1, &["list", scope]));
    assert!(list.contains("node1") && list.contains("Leader"), "{list}");
}

/// Patroni's `etcd:` section keeps a cluster in etcd's v2 keyspace, which pgkeel (v3 only)
/// cannot see: a node of such a cluster handed to pgkeel would find no cluster and promote
/// its replica beside Patroni's primary. pgkeel refuses to start instead, touching nothing,
/// when the section is `etcd:`, the data directory holds a cluster and v3 knows none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_a_cluster_patroni_runs_over_etcd_v2_is_refused() {
    let Some(c) = cluster("v2refused", &Spec::default()) else {
        return;
    };
    c.initdb(0).expect("initdb");
    c.use_v2_section(0).expect("etcd: section");
    let (status, log) = c.start_second_pgkeel(0, STEP).expect("pgkeel must exit");
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("CRITICAL: Can't start: the data directory holds a cluster that etcd's v3 keyspace does not know"),
        "{log}"
    );
    assert_eq!(c.postmaster_pid(0), None, "PostgreSQL was started");
    let cl = dcs(&c).await.load().await.expect("load");
    assert!(
        cl.initialize.is_none() && cl.leader.is_none() && cl.members.is_empty(),
        "pgkeel wrote to etcd: {cl:?}"
    );
}
