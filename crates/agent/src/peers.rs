//! Peer status for the leader race: `GET /patroni` of every other member, in parallel.

use std::collections::BTreeMap;
use std::time::Duration;

use pgkeel_core::cluster::Cluster;
use pgkeel_core::observation::{PeerStatus, PeerView};
use pgkeel_core::{Lsn, Tags};
use serde_json::Value;

/// Polls every member but `me` that published an API URL. A peer that does not answer in
/// `timeout`, or answers something unreadable, is `Unreachable` (unknown, not dead).
pub(crate) async fn poll<E: crate::env::Env>(
    env: &std::sync::Arc<E>,
    cluster: &Cluster,
    me: &str,
    timeout: Duration,
) -> BTreeMap<String, PeerView> {
    let mut polls = tokio::task::JoinSet::new();
    for (name, entry) in cluster.members.iter().filter(|(n, _)| n.as_str() != me) {
        let Some(url) = entry.value().map(|m| m.api_url.clone()) else {
            continue;
        };
        let (env, name) = (env.clone(), name.clone());
        polls.spawn(async move {
            let view = match env.peer_status(&url, timeout).await {
                Some(body) => PeerView::Answered(parse_status(&body)),
                None => PeerView::Unreachable,
            };
            (name, view)
        });
    }
    let mut views = BTreeMap::new();
    while let Some(done) = polls.join_next().await {
        if let Ok((name, view)) = done {
            views.insert(name, view);
        }
    }
    views
}

/// Reads Patroni's status JSON the way Patroni's `_MemberStatus.from_api_response` does.
pub fn parse_status(body: &Value) -> PeerStatus {
    let xlog = &body["xlog"];
    let role = body["role"].as_str().unwrap_or("");
    let is_primary = xlog.get("location").is_some() || matches!(role, "primary" | "master");
    let wal = if is_primary {
        xlog["location"].as_u64().unwrap_or(0)
    } else {
        xlog["received_location"]
            .as_u64()
            .unwrap_or(0)
            .max(xlog["replayed_location"].as_u64().unwrap_or(0))
    };
    PeerStatus {
        running: body["state"].as_str() == Some("running"),
        in_recovery: !is_primary,
        wal_position: Lsn(wal),
        timeline: body["timeline"]
            .as_u64()
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(0),
        tags: serde_json::from_value::<Tags>(body["tags"].clone()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_primary_and_replica_status() {
        let p = parse_status(&serde_json::json!({
            "state": "running", "role": "primary", "xlog": {"location": 100}, "timeline": 2
        }));
        assert!(p.running && !p.in_recovery);
        assert_eq!((p.wal_position, p.timeline), (Lsn(100), 2));
        let r = parse_status(&serde_json::json!({
            "state": "running", "role": "replica",
            "xlog": {"received_location": 90, "replayed_location": 80},
            "tags": {"nofailover": true}
        }));
        assert!(r.in_recovery && !r.tags.may_promote());
        assert_eq!(r.wal_position, Lsn(90));
        let junk = parse_status(&serde_json::json!("nonsense"));
        assert!(!junk.running);
    }
}
