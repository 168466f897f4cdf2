//! Reading the whole cluster: one linearizable range over the prefix, parsed into a [`Cluster`].
//!
//! Parsing never fails: a value that is not what Patroni would write becomes a warning naming
//! the key, and the rest of the cluster is still read. One bad member must not blind the agent.

use etcd_client::GetOptions;
use pgkeel_core::cluster::{Cluster, LeaderKey, MemberEntry};
use pgkeel_core::dcs_values::{
    parse_failsafe, parse_history, FailoverValue, MemberValue, StatusValue, SyncValue,
};
use pgkeel_core::quote::{clip, clip_sized, quote_bytes, quote_json};

use crate::etcd::{
    Etcd, CONFIG, FAILOVER, FAILSAFE, HISTORY, INITIALIZE, LEADER, LEGACY_OPTIME, MEMBERS, STATUS,
    SYNC,
};
use crate::DcsError;

impl Etcd {
    /// Reads everything under the prefix in one linearizable range (a quorum read, never
    /// stale), so the snapshot is consistent across keys. Values that are not what Patroni
    /// writes are left out and described in [`Cluster::warnings`], not logged.
    pub async fn load(&self) -> Result<Cluster, DcsError> {
        let mut kv = self.kv();
        let resp = self
            .call(
                "load",
                &self.prefix,
                kv.get(self.prefix.as_str(), Some(GetOptions::new().with_prefix())),
            )
            .await?;
        let kvs = resp.kvs().iter().map(|kv| RawKv {
            key: kv.key(),
            value: kv.value(),
            lease: kv.lease(),
            mod_revision: kv.mod_revision(),
        });
        // The warnings are the caller's to show: the agent rate-limits them, a CLI verb
        // prints them once.
        Ok(parse_cluster(&self.prefix, kvs))
    }
}

/// One key as etcd returned it; a plain struct so parsing can be tested without etcd.
#[derive(Debug, Clone, Copy)]
pub struct RawKv<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub lease: i64,
    pub mod_revision: i64,
}

pub fn parse_cluster<'a>(prefix: &str, kvs: impl IntoIterator<Item = RawKv<'a>>) -> Cluster {
    let mut c = Cluster::default();
    let mut legacy_optime = None;
    for kv in kvs {
        let Ok(full_key) = std::str::from_utf8(kv.key) else {
            c.warnings.push(format!(
                "ignoring key {} under {prefix}: not UTF-8",
                quote_bytes(kv.key)
            ));
            continue;
        };
        let Some(name) = full_key.strip_prefix(prefix) else {
            continue; // etcd returned only the prefix range; defensive.
        };
        match name {
            LEADER => {
                // The key exists, so someone holds leadership even if its value is unreadable:
                // keep the key (a lossy name) so nobody thinks the seat is free.
                c.leader = Some(LeaderKey {
                    name: text(full_key, kv.value, &mut c.warnings),
                    lease: kv.lease,
                    revision: kv.mod_revision,
                });
            }
            INITIALIZE => c.initialize = Some(text(full_key, kv.value, &mut c.warnings)),
            CONFIG => {
                c.config_revision = kv.mod_revision;
                let why = match serde_json::from_slice::<serde_json::Value>(kv.value) {
                    Ok(v) if v.is_object() => {
                        c.config = Some(v);
                        None
                    }
                    Ok(v) => Some(format!("expected a JSON object, got {}", quote_json(&v))),
                    Err(e) => Some(format!(
                        "not valid JSON: {}",
                        clip_sized(&e.to_string(), kv.value.len())
                    )),
                };
                if let Some(why) = why {
                    c.warnings.push(format!("key {}: {why}", clip(full_key)));
                    c.config_unreadable = Some(why);
                }
            }
            STATUS => match StatusValue::parse(full_key, kv.value) {
                Ok(s) => c.status = Some(s),
                Err(e) => c.warnings.push(e.to_string()),
            },
            LEGACY_OPTIME => match StatusValue::parse(full_key, kv.value) {
                Ok(s) => legacy_optime = Some(s),
                Err(e) => c.warnings.push(e.to_string()),
            },
            FAILOVER => {
                c.failover_revision = kv.mod_revision;
                match FailoverValue::parse(full_key, kv.value) {
                    Ok(f) => c.failover = Some(f),
                    Err(e) => c.warnings.push(e.to_string()),
                }
            }
            SYNC => match SyncValue::parse(full_key, kv.value) {
                Ok(v) => c.sync = Some(v),
                Err(e) => {
                    // Unreadable: as if it named nobody, so that in synchronous mode nobody
                    // is promoted on its word; the leader rewrites it within a loop.
                    c.warnings.push(e.to_string());
                    c.sync = Some(SyncValue {
                        leader: Some(String::new()),
                        ..SyncValue::default()
                    });
                }
            },
            FAILSAFE => match parse_failsafe(full_key, kv.value) {
                Ok(v) => c.failsafe = Some(v),
                Err(e) => c.warnings.push(e.to_string()),
            },
            HISTORY => match parse_history(full_key, kv.value) {
                Ok(h) => c.history = Some(h),
                Err(e) => c.warnings.push(e.to_string()),
            },
            _ => {
                let Some(member) = name.strip_prefix(MEMBERS).filter(|m| !m.is_empty()) else {
                    continue; // keys this adapter does not read (optime/..., Patroni's extras).
                };
                let entry = match MemberValue::parse(full_key, kv.value) {
                    Ok(v) => MemberEntry::Ok(v),
                    Err(e) => {
                        c.warnings.push(e.to_string());
                        MemberEntry::Corrupt(e.reason)
                    }
                };
                c.members.insert(member.to_string(), entry);
                c.member_leases.insert(member.to_string(), kv.lease);
            }
        }
    }
    // Patroni < 2.1 published only optime/leader; `status` wins when both exist.
    if c.status.is_none() {
        c.status = legacy_optime;
    }
    c
}

/// A plain-string value; invalid UTF-8 is kept lossily and reported.
fn text(key: &str, raw: &[u8], warnings: &mut Vec<String>) -> String {
    match std::str::from_utf8(raw) {
        Ok(s) => s.to_string(),
        Err(_) => {
            warnings.push(format!("key {}: value is not UTF-8", clip(key)));
            String::from_utf8_lossy(raw).into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: &str = "/service/batman/";

    fn kv<'a>(key: &'a str, value: &'a str) -> RawKv<'a> {
        RawKv {
            key: key.as_bytes(),
            value: value.as_bytes(),
            lease: 0,
            mod_revision: 7,
        }
    }

    #[test]
    fn reads_patroni_keys() {
        let c = parse_cluster(
            P,
            [
                RawKv {
                    lease: 42,
                    ..kv("/service/batman/leader", "node1")
                },
                kv("/service/batman/initialize", "7380000000000000000"),
                kv("/service/batman/config", r#"{"ttl":30,"loop_wait":10}"#),
                kv(
                    "/service/batman/members/node1",
                    r#"{"conn_url":"postgres://h:5432/postgres","api_url":"http://h:8008/patroni","state":"running","role":"primary"}"#,
                ),
                kv(
                    "/service/batman/status",
                    r#"{"optime":100,"slots":{},"retain_slots":[]}"#,
                ),
                kv(
                    "/service/batman/history",
                    r#"[[1,50,"no recovery target specified"]]"#,
                ),
                kv("/service/batman/sync", r#"{"leader":"node1"}"#),
            ],
        );
        assert_eq!(c.warnings, Vec::<String>::new());
        let leader = c.leader.as_ref().unwrap();
        assert_eq!(
            (leader.name.as_str(), leader.lease, leader.revision),
            ("node1", 42, 7)
        );
        assert_eq!(c.initialize.as_deref(), Some("7380000000000000000"));
        assert_eq!(c.config.as_ref().unwrap()["ttl"], 30);
        assert_eq!(c.config_revision, 7);
        assert_eq!(c.member("node1").unwrap().role, "primary");
        assert_eq!(c.last_leader_lsn(), Some(100));
        assert_eq!(c.timeline(), 2);
    }

    #[test]
    fn corrupt_values_become_warnings() {
        let c = parse_cluster(
            P,
            [
                kv("/service/batman/members/bad", "{not json"),
                kv("/service/batman/members/", "{}"),
                kv("/service/batman/config", "[1]"),
                kv("/service/batman/history", "{}"),
                kv("/service/batman/status", "nope"),
            ],
        );
        assert!(matches!(
            c.members.get("bad"),
            Some(MemberEntry::Corrupt(_))
        ));
        assert_eq!(c.members.len(), 1);
        assert_eq!(c.config, None);
        assert_eq!(c.history, None);
        assert_eq!(c.status, None);
        assert_eq!(c.warnings.len(), 4, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("/service/batman/members/bad"));
    }

    /// A megabyte value of each key makes a warning of bounded length that still says
    /// which key and how big the value was (issue 11: 1 MB log lines twice per loop).
    #[test]
    fn warnings_about_huge_values_are_bounded() {
        const MB: usize = 1_048_576;
        let junk = "x".repeat(MB);
        let json_string = format!("\"{}\"", "y".repeat(MB - 2));
        let member_obj = format!(r#"{{"conn_url": 5, "api_url": "{}"}}"#, "z".repeat(MB));
        let sync = format!(r#"{{"leader": ["{}"]}}"#, "s".repeat(MB));
        let history = format!(r#"[["{}", 1, "r"]]"#, "h".repeat(MB));
        let cases: Vec<(&str, &str)> = vec![
            ("/service/batman/failover", &junk),
            ("/service/batman/config", &junk),
            ("/service/batman/config", &json_string),
            ("/service/batman/status", &json_string),
            ("/service/batman/sync", &junk),
            ("/service/batman/sync", &sync),
            ("/service/batman/history", &history),
            ("/service/batman/history", &json_string),
            ("/service/batman/failsafe", &json_string),
            ("/service/batman/members/node1", &junk),
            ("/service/batman/members/node1", &member_obj),
        ];
        for (key, value) in cases {
            let c = parse_cluster(P, [kv(key, value)]);
            assert_eq!(c.warnings.len(), 1, "{key}");
            let w = &c.warnings[0];
            assert!(w.contains(key), "{key}: {}", clip(w));
            assert!(w.len() < 600, "{key}: {} bytes: {}", w.len(), clip(w));
        }
        let huge_key = format!("/service/batman/members/{}", "n".repeat(MB));
        let c = parse_cluster(P, [kv(&huge_key, &junk)]);
        assert!(c.warnings[0].len() < 1000, "{}", clip(&c.warnings[0]));
        let c = parse_cluster(
            P,
            [RawKv {
                key: b"/service/batman/leader",
                value: &[0xff; MB],
                lease: 1,
                mod_revision: 2,
            }],
        );
        assert!(c.warnings[0].len() < 600, "{}", clip(&c.warnings[0]));
        // The failover value that issue 11 used: the size is in the warning.
        let c = parse_cluster(P, [kv("/service/batman/failover", &junk)]);
        assert!(
            c.warnings[0].contains("(1048576 bytes)"),
            "{}",
            c.warnings[0]
        );
    }

    #[test]
    fn legacy_optime_is_used_only_without_status() {
        let c = parse_cluster(P, [kv("/service/batman/optime/leader", "55")]);
        assert_eq!(c.last_leader_lsn(), Some(55));
        let c = parse_cluster(
            P,
            [
                kv("/service/batman/status", r#"{"optime":66}"#),
                kv("/service/batman/optime/leader", "55"),
            ],
        );
        assert_eq!(c.last_leader_lsn(), Some(66));
    }

    #[test]
    fn unreadable_leader_still_holds_the_seat() {
        let c = parse_cluster(
            P,
            [RawKv {
                key: b"/service/batman/leader",
                value: b"\xffnode",
                lease: 1,
                mod_revision: 2,
            }],
        );
        assert!(c.leader.is_some());
        assert_eq!(c.warnings.len(), 1);
    }
}
