//! Replication slots as Patroni manages them, on a real 3-node cluster: permanent physical
//! and logical slots from `/config` on the leader, the physical ones on the replicas too
//! and kept in step with the leader's positions from `/status`; every member's slot on
//! every node; unknown slots dropped, `ignore_slots` ones kept; `/status` carrying `slots`
//! and `retain_slots`; a departed member's slot kept for `member_slots_ttl`, then dropped;
//! `PATCH /config` with a `null` entry removing a slot; a bad entry refused naming it;
//! a permanent logical slot copied to the replicas and advanced there; the WAL each slot
//! retains in `/metrics`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use pgkeel_core::action::slot_name;
use pgkeel_localcluster::{Signal, Timing};
use serde_json::json;

/// name -> (type, plugin, restart_lsn, confirmed_flush_lsn) on node `dsn`.
async fn slots(dsn: &str) -> anyhow::Result<BTreeMap<String, (String, String, String, String)>> {
    let c = connect(dsn).await?;
    let rows = c
        .query(
            "SELECT slot_name::text, slot_type::text, COALESCE(plugin::text, ''), \
             COALESCE(restart_lsn::text, ''), COALESCE(confirmed_flush_lsn::text, '') \
             FROM pg_replication_slots",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3), r.get(4))))
        .collect())
}

async fn patch(api: &str, body: serde_json::Value) -> (u16, String) {
    let r = reqwest::Client::new()
        .patch(format!("{api}/config"))
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("PATCH /config");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

const WAIT: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_member_and_retained_slots_as_patroni_keeps_them() {
    let mut c = start_opts("slots", 3, Timing::default(), |o| {
        o.pg_parameters = vec![("wal_level".into(), "logical".into())];
        o.dcs_extra = "member_slots_ttl: 20\n".into();
    });
    let leader = must(&c, c.wait_healthy(3, BOOT).await);
    let li = c.index_of(&leader).unwrap();
    let api = c.nodes[li].api_url();
    let names: Vec<String> = c.nodes.iter().map(|n| n.name.clone()).collect();

    // A bad entry is refused, naming it; nothing is stored.
    let (code, text) = patch(&api, json!({"slots": {"Bad-Name": 0}})).await;
    assert!((400..500).contains(&code), "{code} {text}");
    assert!(text.contains("Bad-Name"), "{text}");
    let (code, text) = patch(
        &api,
        json!({"slots": {"cdc": {"type": "logical", "database": "postgres"}}}),
    )
    .await;
    assert!(
        (400..500).contains(&code) && text.contains("plugin"),
        "{code} {text}"
    );

    let (code, text) = patch(
        &api,
        json!({
            "slots": {
                "test_physical": 0,
                "test_logical": {"type": "logical", "database": "postgres", "plugin": "test_decoding"},
            },
            "ignore_slots": [{"name": "ext_keep"}],
        }),
    )
    .await;
    assert_eq!(code, 200, "{text}");

    // Leader: both permanent slots and a slot per other member. Replicas: the physical
    // permanent slot and a slot for each other member (Patroni 4, member_slots_ttl > 0).
    for (i, n) in c.nodes.iter().enumerate() {
        let dsn = n.dsn();
        let me = n.name.clone();
        let names = names.clone();
        let is_leader = i == li;
        eventually(WAIT, &format!("slots on {me}"), || {
            let (dsn, me, names) = (dsn.clone(), me.clone(), names.clone());
            async move {
                let s = slots(&dsn).await?;
                anyhow::ensure!(
                    s.get("test_physical").is_some_and(|v| v.0 == "physical"),
                    "{s:?}"
                );
                for other in names.iter().filter(|o| **o != me) {
                    anyhow::ensure!(
                        s.contains_key(&slot_name(other)),
                        "no slot for {other}: {s:?}"
                    );
                }
                anyhow::ensure!(!s.contains_key(&slot_name(&me)), "a slot for myself: {s:?}");
                if is_leader {
                    let l = s.get("test_logical");
                    anyhow::ensure!(
                        l.is_some_and(|v| v.0 == "logical" && v.1 == "test_decoding"),
                        "{s:?}"
                    );
                }
                Ok(())
            }
        })
        .await;
    }

    // A node that keeps copies of permanent logical slots runs with hot_standby_feedback.
    for i in (0..3).filter(|&i| i != li) {
        let dsn = c.nodes[i].dsn();
        eventually(WAIT, "hot_standby_feedback on a replica", || {
            let dsn = dsn.clone();
            async move {
                let v: String = connect(&dsn)
                    .await?
                    .query_one("SHOW hot_standby_feedback", &[])
                    .await?
                    .get(0);
                anyhow::ensure!(v == "on", "{v}");
                Ok(())
            }
        })
        .await;
    }

    // /status: slots with positions (the permanent ones and every member's, the leader's
    // own at its WAL position) and retain_slots naming the members.
    eventually(WAIT, "/status slots and retain_slots", || {
        let c = &c;
        let names = names.clone();
        async move {
            let cl = c.load().await?;
            let st = cl.status.ok_or_else(|| anyhow::anyhow!("no /status"))?;
            for n in ["test_physical", "test_logical"] {
                anyhow::ensure!(st.slots.contains_key(n), "{st:?}");
            }
            for n in &names {
                anyhow::ensure!(st.slots.contains_key(&slot_name(n)), "{st:?}");
                anyhow::ensure!(st.retain_slots.contains(&slot_name(n)), "{st:?}");
            }
            Ok(())
        }
    })
    .await;

    // /metrics: the WAL each slot retains.
    eventually(WAIT, "/metrics per-slot retained WAL", || {
        let api = api.clone();
        async move {
            let text = reqwest::Client::new()
                .get(format!("{api}/metrics"))
                .timeout(Duration::from_secs(3))
                .send()
                .await?
                .text()
                .await?;
            for (slot, kind) in [("test_physical", "physical"), ("test_logical", "logical")] {
                let want = format!("slot=\"{slot}\",type=\"{kind}\"}} ");
                anyhow::ensure!(
                    text.lines()
                        .any(|l| l.starts_with("pgkeel_replication_slot_retained_bytes{")
                            && l.contains(&want)),
                    "no {want} in {text}"
                );
            }
            Ok(())
        }
    })
    .await;

    // A slot nobody configured is dropped; an ignored one stays.
    let lc = must(&c, connect(&c.nodes[li].dsn()).await);
    for s in ["junk", "ext_keep"] {
        lc.execute(
            "SELECT pg_create_physical_replication_slot($1, true)",
            &[&s],
        )
        .await
        .unwrap();
    }
    let ldsn = c.nodes[li].dsn();
    eventually(WAIT, "junk dropped, ext_keep kept", || {
        let ldsn = ldsn.clone();
        async move {
            let s = slots(&ldsn).await?;
            anyhow::ensure!(
                !s.contains_key("junk") && s.contains_key("ext_keep"),
                "{s:?}"
            );
            Ok(())
        }
    })
    .await;

    // The permanent physical slot moves on the leader; the replicas' copies follow.
    lc.execute("CREATE TABLE moved AS SELECT 1 AS x", &[])
        .await
        .unwrap();
    lc.execute(
        "SELECT pg_replication_slot_advance('test_physical', pg_current_wal_lsn())",
        &[],
    )
    .await
    .unwrap();
    let target: String = lc
        .query_one(
            "SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = 'test_physical'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    for i in (0..3).filter(|&i| i != li) {
        let dsn = c.nodes[i].dsn();
        let target = target.clone();
        eventually(WAIT, "test_physical in sync on a replica", || {
            let (dsn, target) = (dsn.clone(), target.clone());
            async move {
                let s = slots(&dsn).await?;
                let got = s
                    .get("test_physical")
                    .map(|v| v.2.clone())
                    .unwrap_or_default();
                anyhow::ensure!(got == target, "{got} != {target}");
                Ok(())
            }
        })
        .await;
    }

    // The permanent logical slot is copied to the replicas (PostgreSQL 15 has no slot
    // synchronization) and follows the leader's confirmed position once consumed there.
    lc.execute(
        "SELECT count(*) FROM pg_logical_slot_get_changes('test_logical', NULL, NULL)",
        &[],
    )
    .await
    .unwrap();
    let target: String = lc
        .query_one(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'test_logical'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    for i in (0..3).filter(|&i| i != li) {
        let dsn = c.nodes[i].dsn();
        let target = target.clone();
        eventually(
            Duration::from_secs(60),
            "test_logical copied and in sync",
            || {
                let (dsn, target) = (dsn.clone(), target.clone());
                async move {
                    let s = slots(&dsn).await?;
                    let l = s
                        .get("test_logical")
                        .ok_or_else(|| anyhow::anyhow!("{s:?}"))?;
                    anyhow::ensure!(l.0 == "logical" && l.1 == "test_decoding", "{l:?}");
                    anyhow::ensure!(l.3 == target, "{} != {target}", l.3);
                    Ok(())
                }
            },
        )
        .await;
    }

    // PATCH with null removes the slot everywhere.
    let (code, text) = patch(&api, json!({"slots": {"test_physical": null}})).await;
    assert_eq!(code, 200, "{text}");
    for n in &c.nodes {
        let dsn = n.dsn();
        eventually(WAIT, "test_physical dropped", || {
            let dsn = dsn.clone();
            async move {
                let s = slots(&dsn).await?;
                anyhow::ensure!(!s.contains_key("test_physical"), "{s:?}");
                Ok(())
            }
        })
        .await;
    }
    let s = slots(&ldsn).await.unwrap();
    assert!(
        s.contains_key("test_logical"),
        "the other permanent slot stays: {s:?}"
    );

    // A member that is gone: its slot is kept while retained (member_slots_ttl 20 s), then
    // dropped.
    let gi = (0..3).find(|&i| i != li).unwrap();
    let gone = slot_name(&c.nodes[gi].name);
    c.signal_node(gi, Signal::Kill);
    c.reap_agent(gi);
    let key_gone_by = Instant::now();
    eventually(Duration::from_secs(30), "member key expired", || {
        let c = &c;
        let name = c.nodes[gi].name.clone();
        async move {
            anyhow::ensure!(!c.load().await?.members.contains_key(&name), "still there");
            Ok(())
        }
    })
    .await;
    let expired_at = Instant::now();
    assert!(
        slots(&ldsn).await.unwrap().contains_key(&gone),
        "dropped at once after the member key expired"
    );
    eventually(
        Duration::from_secs(60),
        "retained slot dropped after its ttl",
        || {
            let (ldsn, gone) = (ldsn.clone(), gone.clone());
            async move {
                let s = slots(&ldsn).await?;
                anyhow::ensure!(!s.contains_key(&gone), "{s:?}");
                Ok(())
            }
        },
    )
    .await;
    assert!(
        expired_at.elapsed() >= Duration::from_secs(10),
        "kept for about member_slots_ttl after the key went ({:?} after the kill)",
        key_gone_by.elapsed()
    );
    let st = c.load().await.unwrap().status.unwrap();
    assert!(!st.retain_slots.contains(&gone), "{st:?}");
}

/// `restart_lsn` and `confirmed_flush_lsn` of the slots `test_physical` and `test_logical`.
async fn positions(dsn: &str) -> anyhow::Result<(String, String)> {
    let s = slots(dsn).await?;
    let p = s
        .get("test_physical")
        .map(|v| v.2.clone())
        .unwrap_or_default();
    let l = s
        .get("test_logical")
        .map(|v| v.3.clone())
        .unwrap_or_default();
    Ok((p, l))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_slots_follow_the_leader_while_the_dcs_is_down() {
    let c = start_opts("slotsfs", 2, Timing::default(), |o| {
        o.pg_parameters = vec![("wal_level".into(), "logical".into())];
        o.dcs_extra = "failsafe_mode: true\n".into();
    });
    let leader = must(&c, c.wait_healthy(2, BOOT).await);
    let li = c.index_of(&leader).unwrap();
    let ri = 1 - li;
    let (code, text) = patch(
        &c.nodes[li].api_url(),
        json!({"slots": {
            "test_physical": 0,
            "test_logical": {"type": "logical", "database": "postgres", "plugin": "test_decoding"},
        }}),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    let (ldsn, rdsn) = (c.nodes[li].dsn(), c.nodes[ri].dsn());
    eventually(Duration::from_secs(60), "both slots on the replica", || {
        let rdsn = rdsn.clone();
        async move {
            let s = slots(&rdsn).await?;
            anyhow::ensure!(
                s.contains_key("test_physical") && s.contains_key("test_logical"),
                "{s:?}"
            );
            Ok(())
        }
    })
    .await;
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

    c.signal_etcd(Signal::Stop);
    let api = c.nodes[li].api_url();
    eventually(
        Duration::from_secs(30),
        "failsafe mode active on the leader",
        || {
            let api = api.clone();
            async move {
                let body = reqwest::Client::new()
                    .get(format!("{api}/primary"))
                    .timeout(Duration::from_secs(3))
                    .send()
                    .await?
                    .text()
                    .await?;
                anyhow::ensure!(body.contains("failsafe_mode_is_active"), "{body}");
                Ok(())
            }
        },
    )
    .await;
    // The slots move on the leader; the replica's copies follow from the leader's
    // `POST /failsafe` positions, with no DCS to read them from.
    let lc = must(&c, connect(&ldsn).await);
    lc.execute("CREATE TABLE during_outage AS SELECT 1 AS x", &[])
        .await
        .unwrap();
    lc.execute(
        "SELECT count(*) FROM pg_logical_slot_get_changes('test_logical', NULL, NULL)",
        &[],
    )
    .await
    .unwrap();
    lc.execute(
        "SELECT pg_replication_slot_advance('test_physical', pg_current_wal_lsn())",
        &[],
    )
    .await
    .unwrap();
    let want = positions(&ldsn).await.unwrap();
    // (A failure panics here; dropping the cluster ends the stopped etcd.)
    {
        let rdsn = rdsn.clone();
        let want = want.clone();
        eventually(
            Duration::from_secs(30),
            "slots in sync during the outage",
            move || {
                let (rdsn, want) = (rdsn.clone(), want.clone());
                async move {
                    let got = positions(&rdsn).await?;
                    anyhow::ensure!(got == want, "{got:?} != {want:?}");
                    Ok(())
                }
            },
        )
        .await;
    }
    c.signal_etcd(Signal::Cont);
}
