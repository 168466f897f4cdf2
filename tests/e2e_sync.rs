//! Synchronous replication (`synchronous_mode: on`): the leader waits for a synchronous
//! standby named in the sync key, only that standby may take over, and a client that
//! records every acknowledged commit finds all of them on the new leader after the old one
//! is killed or frozen. A frozen old leader, resumed, acknowledges nothing more.

mod common;

use std::time::Duration;

use common::writer::{assert_none_lost, ssn, Writer};
use common::*;
use pgkeel_localcluster::{Signal, Timing};

const SYNC_ON: &str = "synchronous_mode: true\nsynchronous_node_count: 1\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_loses_no_acknowledged_commit() {
    let mut c = start_with("synckill", 3, Timing::default(), SYNC_ON, &[]);
    let old = must(&c, c.wait_healthy(3, BOOT).await);
    let key = must(&c, c.wait_sync(1, Duration::from_secs(60)).await);
    let standby = key.sync_standby.iter().next().unwrap().clone();
    let oi = c.index_of(&old).unwrap();
    assert_eq!(
        ssn(&c.nodes[oi].dsn()).await.unwrap(),
        format!("\"{standby}\""),
        "the leader waits for exactly the standby the key names"
    );

    // The REST API and list say who is synchronous, as Patroni's do.
    let si = c.index_of(&standby).unwrap();
    let third = (0..3).find(|&i| i != oi && i != si).unwrap();
    // (Each node answers from its own last read of the DCS, within a loop.)
    for (i, sync, code_async) in [(si, 200, 503), (third, 503, 200)] {
        let api = c.nodes[i].api_url();
        eventually(Duration::from_secs(10), "/sync and /async", || {
            let api = api.clone();
            async move {
                let got = (
                    http_code("GET", &format!("{api}/sync")).await?,
                    http_code("GET", &format!("{api}/async")).await?,
                );
                anyhow::ensure!(got == (sync, code_async), "{got:?}");
                Ok(())
            }
        })
        .await;
    }
    let api = c.nodes[oi].api_url();
    assert_eq!(
        http_code("GET", &format!("{api}/read-only-sync"))
            .await
            .unwrap(),
        200
    );
    let list = std::process::Command::new(env!("CARGO_BIN_EXE_pgkeel"))
        .arg("-c")
        .arg(&c.nodes[oi].config)
        .arg("list")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&list.stdout);
    let row = table
        .lines()
        .find(|l| l.contains(&format!(" {standby} ")))
        .unwrap_or("");
    assert!(row.contains("Sync Standby"), "{table}");

    let w = Writer::start(c.rw_dsn()).await;
    must(&c, w.wait_for_more(200, Duration::from_secs(30)).await);
    c.signal_node(oi, Signal::Kill);
    c.reap_agent(oi);
    let new = must(&c, c.wait_new_leader(&old, Duration::from_secs(60)).await);
    assert_eq!(new, standby, "only the synchronous standby may take over");
    must(&c, w.wait_for_more(100, Duration::from_secs(60)).await);
    let acks = w.stop().await;
    assert_none_lost(&c, &new, &acks).await;
    // The new leader gets a synchronous standby again: the third node, then the old
    // leader once it rejoins.
    must(&c, c.wait_sync(1, Duration::from_secs(60)).await);
    c.start_agent(oi).unwrap();
    must(&c, c.wait_healthy(3, Duration::from_secs(120)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_loses_nothing_and_acknowledges_nothing_once_resumed() {
    let c = start_with("syncfreeze", 3, Timing::default(), SYNC_ON, &[]);
    let old = must(&c, c.wait_healthy(3, BOOT).await);
    let key = must(&c, c.wait_sync(1, Duration::from_secs(60)).await);
    let standby = key.sync_standby.iter().next().unwrap().clone();
    let oi = c.index_of(&old).unwrap();
    // A session opened on the old leader before the freeze, as an application would hold.
    let stale = connect(&c.nodes[oi].dsn()).await.unwrap();
    stale
        .batch_execute("CREATE TABLE IF NOT EXISTS stale_writes (id int)")
        .await
        .unwrap();

    let w = Writer::start(c.rw_dsn()).await;
    must(&c, w.wait_for_more(200, Duration::from_secs(30)).await);
    c.signal_node(oi, Signal::Stop);
    let new = must(&c, c.wait_new_leader(&old, Duration::from_secs(60)).await);
    assert_eq!(new, standby, "only the synchronous standby may take over");
    must(&c, w.wait_for_more(100, Duration::from_secs(60)).await);

    // Resumed, the old leader must not acknowledge a single commit: its synchronous
    // standby now leads, and its agent fences it.
    c.signal_node(oi, Signal::Cont);
    let attempt = tokio::time::timeout(
        Duration::from_secs(20),
        stale.execute("INSERT INTO stale_writes VALUES (1)", &[]),
    )
    .await;
    assert!(
        !matches!(attempt, Ok(Ok(_))),
        "the resumed old leader acknowledged a commit"
    );
    let acks = w.stop().await;
    assert_none_lost(&c, &new, &acks).await;
    let old_port = c.nodes[oi].pg_port;
    let promoted_at = acks
        .iter()
        .find(|a| a.port == c.nodes[c.index_of(&new).unwrap()].pg_port)
        .map(|a| a.at);
    let deposed = acks
        .iter()
        .filter(|a| a.port == old_port && promoted_at.is_some_and(|p| a.at > p))
        .count();
    assert_eq!(deposed, 0, "writes acknowledged by the deposed leader");
    // The old leader rejoins as a replica of the new one.
    must(&c, c.wait_healthy(3, Duration::from_secs(120)).await);
    assert_eq!(c.load().await.unwrap().leader_name(), Some(new.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_blocks_commits_without_a_replica_until_one_returns() {
    let mut c = start_with(
        "syncstrict",
        3,
        Timing::default(),
        "synchronous_mode: true\nsynchronous_mode_strict: true\n",
        &[],
    );
    let leader = must(&c, c.wait_healthy(3, BOOT).await);
    must(&c, c.wait_sync(1, Duration::from_secs(60)).await);
    let li = c.index_of(&leader).unwrap();
    let client = connect(&c.nodes[li].dsn()).await.unwrap();
    client
        .batch_execute("CREATE TABLE strict_t (id int)")
        .await
        .unwrap();
    let replicas: Vec<usize> = (0..3).filter(|&i| i != li).collect();
    for &i in &replicas {
        let stopped = c.stop_agent(i, Duration::from_secs(60));
        must(&c, stopped);
    }
    // Both replicas are down: a commit waits instead of turning asynchronous.
    let blocked = tokio::spawn(async move {
        client
            .execute("INSERT INTO strict_t VALUES (1)", &[])
            .await
            .map(|_| ())
    });
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        !blocked.is_finished(),
        "a commit completed with no synchronous standby in strict mode"
    );
    // One replica returns: the commit completes.
    c.start_agent(replicas[0]).unwrap();
    let done = tokio::time::timeout(Duration::from_secs(120), blocked).await;
    match done {
        Ok(Ok(Ok(()))) => {}
        other => {
            dump_logs(&c);
            panic!("the blocked commit did not complete once a replica returned: {other:?}");
        }
    }
    assert_eq!(c.load().await.unwrap().leader_name(), Some(leader.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_eligible_members_become_synchronous_or_leader() {
    // node3 nosync, node4 sync_priority 0, node5 failover_priority 0: with node1 leading,
    // node2 is the only standby that may be synchronous, hence the only one that may take over.
    let tags = [
        "",
        "",
        "nosync: true",
        "sync_priority: 0",
        "failover_priority: 0",
    ];
    let mut c = start_with("syncelig", 5, Timing::default(), SYNC_ON, &tags);
    let leader = must(&c, c.wait_healthy(5, BOOT).await);
    if leader != "node1" {
        let api = c.nodes[c.index_of(&leader).unwrap()].api_url();
        let body = serde_json::json!({"leader": leader, "candidate": "node1"});
        let http = reqwest::Client::new();
        eventually(Duration::from_secs(60), "switchover to node1", || {
            let (http, api, body) = (http.clone(), api.clone(), body.clone());
            async move {
                let r = http
                    .post(format!("{api}/switchover"))
                    .json(&body)
                    .send()
                    .await?;
                anyhow::ensure!(r.status().is_success(), "{}", r.status());
                Ok(())
            }
        })
        .await;
        eventually(Duration::from_secs(60), "node1 leads", || {
            let c = &c;
            async move {
                anyhow::ensure!(c.wait_healthy(5, Duration::from_secs(5)).await? == "node1");
                Ok(())
            }
        })
        .await;
    }
    let key = must(&c, c.wait_sync(1, Duration::from_secs(60)).await);
    assert_eq!(
        key.sync_standby.iter().cloned().collect::<Vec<_>>(),
        vec!["node2".to_string()]
    );
    let w = Writer::start(c.rw_dsn()).await;
    must(&c, w.wait_for_more(100, Duration::from_secs(30)).await);
    c.signal_node(0, Signal::Kill);
    c.reap_agent(0);
    let new = must(
        &c,
        c.wait_new_leader("node1", Duration::from_secs(60)).await,
    );
    assert_eq!(new, "node2");
    must(&c, w.wait_for_more(50, Duration::from_secs(60)).await);
    let acks = w.stop().await;
    assert_none_lost(&c, "node2", &acks).await;
    // The new leader picks its standby among the eligible ones again: none is left but
    // node1 once it returns (node3, node4 and node5 never qualify).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let k = c.load().await.unwrap().sync.unwrap();
    assert!(k.sync_standby.is_empty(), "{k:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_standby_is_dropped_from_the_key_and_never_promoted() {
    let lag_limits = "maximum_lag_on_syncnode: 1048576\n";
    let c = start_with(
        "synclag",
        3,
        Timing::default(),
        &format!("{SYNC_ON}{lag_limits}"),
        &[],
    );
    let leader = must(&c, c.wait_healthy(3, BOOT).await);
    let key = must(&c, c.wait_sync(1, Duration::from_secs(60)).await);
    let laggard = key.sync_standby.iter().next().unwrap().clone();
    let (li, gi) = (c.index_of(&leader).unwrap(), c.index_of(&laggard).unwrap());
    let other = (0..3).find(|&i| i != li && i != gi).unwrap();
    let other_name = c.nodes[other].name.clone();
    // The synchronous standby stops receiving WAL but stays connected.
    assert!(
        c.signal_walreceiver(gi, Signal::Stop),
        "no walreceiver on {laggard}"
    );
    // WAL the leader does not wait for (synchronous_commit = local) makes it lag by more
    // than maximum_lag_on_syncnode; commits that do wait must then move to the other standby.
    let bulk = connect(&c.nodes[li].dsn()).await.unwrap();
    bulk.batch_execute(
        "SET synchronous_commit = local; \
         CREATE TABLE filler AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 20000) g",
    )
    .await
    .unwrap();
    eventually(
        Duration::from_secs(60),
        "the key names the other standby, not the laggard",
        || {
            let c = &c;
            let (other_name, laggard) = (other_name.clone(), laggard.clone());
            async move {
                let k = c.load().await?.sync.unwrap_or_default();
                anyhow::ensure!(k.names(&other_name) && !k.names(&laggard), "{k:?}");
                Ok(())
            }
        },
    )
    .await;
    // Synchronous commits go through again, acknowledged by the other standby.
    let w = Writer::start(c.rw_dsn()).await;
    must(&c, w.wait_for_more(100, Duration::from_secs(30)).await);
    // The leader dies: the lagging standby is neither in the key nor within
    // maximum_lag_on_failover, so only the other one may take over.
    let mut c = c;
    c.signal_node(li, Signal::Kill);
    c.reap_agent(li);
    let new = must(
        &c,
        c.wait_new_leader(&leader, Duration::from_secs(60)).await,
    );
    assert_eq!(new, other_name);
    must(&c, w.wait_for_more(50, Duration::from_secs(60)).await);
    let acks = w.stop().await;
    assert_none_lost(&c, &other_name, &acks).await;
    c.signal_walreceiver(gi, Signal::Cont);
}

/// Patroni's "stuck sync replica" (acceptance `basic_replication`): under
/// `synchronous_commit: remote_apply` a standby whose replay is paused still flushes
/// everything, yet every commit waits for it. `maximum_lag_on_syncnode` counts the position
/// the commit waits for (replay), against the most advanced standby: the stuck one is
/// swapped for the other and the commit that was waiting completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_with_replay_paused_under_remote_apply_is_swapped_out() {
    let c = start_opts("syncapply", 3, Timing::default(), |o| {
        o.dcs_extra = format!("{SYNC_ON}maximum_lag_on_syncnode: 1048576\n");
        o.pg_parameters = vec![("synchronous_commit".into(), "remote_apply".into())];
    });
    let leader = must(&c, c.wait_healthy(3, BOOT).await);
    let key = must(&c, c.wait_sync(1, Duration::from_secs(60)).await);
    let stuck = key.sync_standby.iter().next().unwrap().clone();
    let (li, si) = (c.index_of(&leader).unwrap(), c.index_of(&stuck).unwrap());
    let other = (0..3).find(|&i| i != li && i != si).unwrap();
    let other_name = c.nodes[other].name.clone();
    let standby = connect(&c.nodes[si].dsn()).await.unwrap();
    standby
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .unwrap();
    // Waits for the stuck standby's replay until it is swapped out.
    let primary = connect(&c.nodes[li].dsn()).await.unwrap();
    let load = tokio::spawn(async move {
        primary
            .batch_execute(
                "CREATE TABLE stuck AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) g",
            )
            .await
    });
    eventually(
        Duration::from_secs(60),
        "the key names the other standby, not the stuck one",
        || {
            let c = &c;
            let (other_name, stuck) = (other_name.clone(), stuck.clone());
            async move {
                let k = c.load().await?.sync.unwrap_or_default();
                anyhow::ensure!(k.names(&other_name) && !k.names(&stuck), "{k:?}");
                Ok(())
            }
        },
    )
    .await;
    let done = tokio::time::timeout(Duration::from_secs(30), load).await;
    assert!(
        matches!(done, Ok(Ok(Ok(())))),
        "the waiting commit did not complete: {done:?}"
    );
    standby
        .batch_execute("SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
}
