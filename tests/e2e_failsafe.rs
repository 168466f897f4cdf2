//! Failsafe mode: with etcd frozen and every member up, the leader keeps taking writes
//! past its lease because every member confirms it (`POST /failsafe`); once one replica
//! stops answering too, the leader stops taking writes within one ttl.

mod common;

use std::time::{Duration, Instant};

use common::writer::Writer;
use common::*;
use pgkeel_localcluster::{Signal, Timing};

/// One write on the leader's own port, bounded in time.
async fn write_once(dsn: &str) -> anyhow::Result<()> {
    let attempt = async {
        let c = connect(dsn).await?;
        c.execute(
            "INSERT INTO bench (id) VALUES (-1) ON CONFLICT DO NOTHING",
            &[],
        )
        .await?;
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(2), attempt).await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_survives_an_etcd_outage_only_while_every_member_confirms_it() {
    let timing = Timing::default();
    let ttl = Duration::from_secs_f64(timing.ttl);
    let c = start_with("failsafe", 3, timing, "failsafe_mode: true\n", &[]);
    let leader = must(&c, c.wait_healthy(3, BOOT).await);
    let li = c.index_of(&leader).unwrap();
    eventually(
        Duration::from_secs(30),
        "/failsafe lists every member",
        || {
            let c = &c;
            async move {
                let f = c.load().await?.failsafe.unwrap_or_default();
                anyhow::ensure!(f.len() == 3, "{f:?}");
                Ok(())
            }
        },
    )
    .await;
    assert_eq!(
        http_code("GET", &format!("{}/failsafe", c.nodes[li].api_url()))
            .await
            .unwrap(),
        200
    );
    let w = Writer::start(c.nodes[li].dsn()).await;
    must(&c, w.wait_for_more(50, Duration::from_secs(30)).await);

    // etcd freezes: nobody can renew a lease or take the leader key.
    c.signal_etcd(Signal::Stop);
    let frozen_at = Instant::now();
    // Well past the lease (two ttls), the leader still takes writes.
    while frozen_at.elapsed() < ttl * 2 {
        must(&c, w.wait_for_more(10, Duration::from_secs(5)).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    must(&c, write_once(&c.nodes[li].dsn()).await);

    // One replica stops answering: the leader must stop taking writes within one ttl.
    let ri = (0..3).find(|&i| i != li).unwrap();
    c.signal_node(ri, Signal::Stop);
    let cut_at = Instant::now();
    let stopped_after = loop {
        if write_once(&c.nodes[li].dsn()).await.is_err() {
            break cut_at.elapsed();
        }
        if cut_at.elapsed() > ttl * 3 {
            dump_logs(&c);
            panic!(
                "the leader still takes writes {:?} after a replica stopped confirming it",
                cut_at.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = w.stop().await;
    eprintln!(
        "the leader stopped taking writes {stopped_after:?} after a replica stopped confirming it"
    );
    assert!(
        stopped_after <= ttl + Duration::from_secs(1),
        "the leader stopped taking writes {stopped_after:?} after losing a member's confirmation (ttl {ttl:?})"
    );
    // Everything resumes: one leader again, every node streaming.
    c.signal_node(ri, Signal::Cont);
    c.signal_etcd(Signal::Cont);
    must(&c, c.wait_healthy(3, Duration::from_secs(120)).await);
}

/// Acceptance `dcs_failsafe_mode`: a `retry_timeout` lowered in `/config` bounds each etcd
/// call at once, so with etcd frozen the leader's loop gives up on it after 3 s, not the 9 s
/// the agent started with, and `/primary` says `failsafe_mode_is_active` within 12 s (the
/// feature's bound). When a member can no longer confirm it, the leader stops taking writes
/// and, as Patroni's offline demotion, runs on read-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lowered_retry_timeout_bounds_etcd_calls_and_a_demoted_leader_runs_read_only() {
    let timing = Timing {
        ttl: 20.0,
        loop_wait: 2.0,
        retry_timeout: 9.0,
    };
    let c = start_with("failsafero", 2, timing, "failsafe_mode: true\n", &[]);
    let leader = must(&c, c.wait_healthy(2, BOOT).await);
    let li = c.index_of(&leader).unwrap();
    let api = c.nodes[li].api_url();
    let r = reqwest::Client::new()
        .patch(format!("{api}/config"))
        .json(&serde_json::json!({"retry_timeout": 3}))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    eventually(
        Duration::from_secs(30),
        "/failsafe lists both members",
        || {
            let c = &c;
            async move {
                let f = c.load().await?.failsafe.unwrap_or_default();
                anyhow::ensure!(f.len() == 2, "{f:?}");
                Ok(())
            }
        },
    )
    .await;
    // Both agents have looped with the new value: their APIs serve the /config they read.
    eventually(
        Duration::from_secs(10),
        "both agents read retry_timeout 3",
        || {
            let c = &c;
            async move {
                for n in &c.nodes {
                    let v: serde_json::Value = reqwest::get(format!("{}/config", n.api_url()))
                        .await?
                        .json()
                        .await?;
                    anyhow::ensure!(v["retry_timeout"] == 3, "{}: {v}", n.name);
                }
                Ok(())
            }
        },
    )
    .await;
    c.signal_etcd(Signal::Stop);
    eventually(
        Duration::from_secs(12),
        "/primary says failsafe_mode_is_active",
        || {
            let url = format!("{api}/primary");
            async move {
                let body = reqwest::get(url).await?.text().await?;
                anyhow::ensure!(body.contains("failsafe_mode_is_active"), "{body}");
                Ok(())
            }
        },
    )
    .await;
    // The replica goes away: nobody confirms the leader any more.
    let ri = 1 - li;
    c.signal_agent_and_postmaster(ri, Signal::Kill);
    let dsn = c.nodes[li].dsn();
    eventually(
        Duration::from_secs(40),
        "the old leader running read-only",
        || {
            let dsn = dsn.clone();
            async move {
                let client = connect(&dsn).await?;
                let row = client.query_one("SELECT pg_is_in_recovery()", &[]).await?;
                anyhow::ensure!(row.get::<_, bool>(0), "still a primary");
                Ok(())
            }
        },
    )
    .await;
    c.signal_etcd(Signal::Cont);
}

/// Acceptance `dcs_failsafe_mode`, "check primary is demoted when one replica is shut down
/// and DCS is down": with etcd frozen, a replica's agent goes away (nothing listens at its
/// API any more). That member certainly cannot confirm the leader, so the leader demotes
/// at once, as Patroni's check_failsafe_topology does, not at its lease's end (ttl 30 s
/// here, Patroni's default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_agent_is_gone_ends_a_failsafe_leadership_at_once() {
    let timing = Timing {
        ttl: 30.0,
        loop_wait: 2.0,
        retry_timeout: 3.0,
    };
    let mut c = start_with("failsafegone", 3, timing, "failsafe_mode: true\n", &[]);
    let leader = must(&c, c.wait_healthy(3, BOOT).await);
    let li = c.index_of(&leader).unwrap();
    eventually(
        Duration::from_secs(30),
        "/failsafe lists every member",
        || {
            let c = &c;
            async move {
                let f = c.load().await?.failsafe.unwrap_or_default();
                anyhow::ensure!(f.len() == 3, "{f:?}");
                Ok(())
            }
        },
    )
    .await;
    c.signal_etcd(Signal::Stop);
    // The leader keeps its writes while every member confirms it.
    let w = Writer::start(c.nodes[li].dsn()).await;
    must(&c, w.wait_for_more(20, Duration::from_secs(20)).await);
    let _ = w.stop().await;
    let ri = (0..3).find(|&i| i != li).unwrap();
    c.signal_agent(ri, Signal::Kill);
    c.reap_agent(ri);
    let cut_at = Instant::now();
    let stopped_after = loop {
        if write_once(&c.nodes[li].dsn()).await.is_err() {
            break cut_at.elapsed();
        }
        if cut_at.elapsed() > Duration::from_secs(40) {
            dump_logs(&c);
            panic!("the leader still takes writes 40 s after a member's agent went away");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "the leader stopped taking writes {stopped_after:?} after a member's agent went away"
    );
    // Patroni's bound in the feature is 12 s; the lease would have run for up to 30 s.
    assert!(
        stopped_after < Duration::from_secs(12),
        "the leader stopped taking writes only {stopped_after:?} after a member's agent went away"
    );
    let log = std::fs::read_to_string(&c.nodes[li].log).unwrap_or_default();
    assert!(
        log.contains("demoting self because DCS is not accessible and I was a leader"),
        "Patroni's words missing from the leader's log"
    );
    c.signal_etcd(Signal::Cont);
    let started = c.start_agent(ri);
    must(&c, started);
    must(&c, c.wait_healthy(3, Duration::from_secs(120)).await);
}
