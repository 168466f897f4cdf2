//! A background watch on the cluster prefix that wakes the agent loop early.
//!
//! The watch is only a latency optimisation: the agent still loads the cluster every loop, so
//! the watcher may wake it spuriously but must never leave it asleep after a change it could
//! have seen. Hence: notify on every (re)established watch, because changes made while no
//! watch was in place are not replayed to us.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::WatchOptions;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::etcd::{deadline, Etcd, CONFIG, FAILOVER, LEADER};

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

impl Etcd {
    /// Spawns a task that calls `wake.notify_one()` whenever the leader key is put or deleted
    /// or `config` changes, and after each (re)connection of the watch. Runs until the handle
    /// is aborted. Works on a current-thread runtime.
    pub fn spawn_watcher(&self, wake: Arc<Notify>) -> JoinHandle<()> {
        let etcd = self.clone();
        tokio::spawn(async move {
            let mut backoff = BACKOFF_MIN;
            loop {
                match etcd.watch_once(&wake).await {
                    // Ran for a while before breaking: reconnect promptly.
                    WatchEnd::AfterEvents(why) => {
                        tracing::info!("watch on {} ended: {why}; reconnecting", etcd.prefix);
                        backoff = BACKOFF_MIN;
                    }
                    WatchEnd::Failed(why) => {
                        tracing::warn!(
                            "watch on {} failed: {why}; retrying in {backoff:?}",
                            etcd.prefix
                        );
                    }
                    WatchEnd::Denied(why) => {
                        // etcd checks a watch's token when the watch is made and answers an
                        // expired one with "permission denied", not with the error that
                        // makes etcd-client authenticate again: do it here.
                        let renewed = deadline(
                            etcd.op_timeout(),
                            "authenticate",
                            etcd.client.refresh_token(),
                        )
                        .await;
                        tracing::warn!(
                            "watch on {} refused: {why}; token renewed: {}; retrying in {backoff:?}",
                            etcd.prefix,
                            renewed.map_or_else(|e| format!("no ({e})"), |()| "yes".into())
                        );
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        })
    }

    /// Establishes one watch and follows it until it breaks.
    async fn watch_once(&self, wake: &Notify) -> WatchEnd {
        let leader = self.key(LEADER);
        let config = self.key(CONFIG);
        // A switchover request must reach the leader at once, not a loop later.
        let failover = self.key(FAILOVER);
        let mut client = self.client.watch_client();
        let what = format!("watch {}", self.prefix);
        // Creating the watch is bounded; waiting for events afterwards is not (gRPC pings
        // detect a dead connection on this long-lived stream).
        let established = deadline(self.op_timeout(), &what, async {
            let mut stream = client
                .watch(
                    self.prefix.as_str(),
                    Some(WatchOptions::new().with_prefix()),
                )
                .await?;
            // etcd confirms the watch with a `created` response before any event.
            match stream.message().await? {
                Some(resp) if resp.created() && !resp.canceled() => Ok(Ok(stream)),
                Some(resp) => Ok(Err(resp.cancel_reason().to_string())),
                None => Ok(Err(String::new())),
            }
        })
        .await;
        let mut stream = match established {
            Ok(Ok(stream)) => stream,
            Ok(Err(why)) if why.is_empty() => {
                return WatchEnd::Failed("etcd closed the watch stream".into())
            }
            Ok(Err(why)) if why.contains("permission denied") || why.contains("auth") => {
                return WatchEnd::Denied(why)
            }
            Ok(Err(why)) => return WatchEnd::Failed(format!("etcd refused the watch: {why}")),
            Err(e) => return WatchEnd::Failed(e.to_string()),
        };
        wake.notify_one();

        loop {
            let resp = match stream.message().await {
                Ok(Some(resp)) => resp,
                Ok(None) => return WatchEnd::AfterEvents("etcd closed the stream".into()),
                Err(e) => return WatchEnd::AfterEvents(e.to_string()),
            };
            if resp.canceled() {
                // E.g. our revision was compacted away; a fresh watch starts from now.
                return WatchEnd::AfterEvents(format!("canceled: {}", resp.cancel_reason()));
            }
            // Puts and deletes both count: a deleted leader key is the failover trigger.
            let relevant = resp.events().iter().any(|ev| {
                let key = ev.kv().map(|kv| kv.key()).unwrap_or_default();
                key == leader.as_bytes() || key == config.as_bytes() || key == failover.as_bytes()
            });
            if relevant {
                wake.notify_one();
            }
        }
    }
}

enum WatchEnd {
    /// The watch was established and later broke.
    AfterEvents(String),
    /// The watch could not be established.
    Failed(String),
    /// etcd refused to make the watch for our user (or its expired token).
    Denied(String),
}
