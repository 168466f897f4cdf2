//! The HTTP listener: axum on whatever runtime the caller runs (the agent uses a
//! current-thread runtime; axum's per-connection tasks are plain `tokio::spawn`s).
//!
//! Reads are answered from the snapshot ([`route`]). Unsafe requests to an endpoint that
//! exists are authenticated, validated ([`prepare`]) and, when valid, handed to the agent
//! over the admin channel; its [`AdminReply`] is returned as is. `POST /failsafe` is
//! authenticated too but answered here: it must not wait for a loop that may be stuck on
//! the unreachable DCS, and it only leaves a note in the [`FailsafeInbox`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body as HttpBody, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::sync::oneshot;

use crate::admin::{AdminBody, AdminReply, AdminRequest, AdminSender};
use crate::admin_routes::{endpoint, prepare};
use crate::auth::BasicAuth;
use crate::failsafe::receive_failsafe;
use crate::failsafe_inbox::FailsafeInbox;
use crate::metrics::METRICS_CONTENT_TYPE;
use crate::routes::{route, Body, Reply};
use crate::snapshot::{with_snapshot, NodeSnapshot, SharedSnapshot};

/// How long a request waits for the agent. A switchover is answered when it is done, and
/// Patroni polls for up to 2 × max(10 s, loop_wait), so this leaves room for that.
fn agent_timeout(loop_wait: Duration) -> Duration {
    (2 * loop_wait.max(Duration::from_secs(10)) + Duration::from_secs(10))
        .max(Duration::from_secs(60))
}

#[derive(Clone)]
struct Api {
    snap: SharedSnapshot,
    admin: Option<AdminSender>,
    auth: Option<Arc<BasicAuth>>,
    failsafe: Arc<FailsafeInbox>,
}

/// Serves the REST API on `listener` until `shutdown` completes, then lets open requests
/// finish.
///
/// `admin`: where unsafe requests go; `None` answers them 503. `auth`: the
/// `restapi.authentication` username and password that unsafe requests must present.
/// `failsafe`: where accepted `POST /failsafe` calls are recorded for the agent.
pub async fn serve(
    listener: tokio::net::TcpListener,
    snap: SharedSnapshot,
    admin: Option<AdminSender>,
    auth: Option<(String, String)>,
    failsafe: Arc<FailsafeInbox>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(snap, admin, auth, failsafe))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The router, for embedding in a larger app or for tests driving it directly.
pub fn router(
    snap: SharedSnapshot,
    admin: Option<AdminSender>,
    auth: Option<(String, String)>,
    failsafe: Arc<FailsafeInbox>,
) -> Router {
    let auth = auth.map(|(user, password)| Arc::new(BasicAuth::new(&user, &password)));
    // One fallback handler: Patroni routes by the first path segment and falls back to
    // the health check, which a table of exact axum routes cannot express.
    Router::new().fallback(handle).with_state(Api {
        snap,
        admin,
        auth,
        failsafe,
    })
}

async fn handle(
    State(api): State<Api>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let failsafe_post = is_failsafe_post(method.as_str(), uri.path());
    let ep = endpoint(method.as_str(), uri.path());
    if ep.is_none() && !failsafe_post {
        let now = Instant::now();
        let reply = with_snapshot(&api.snap, |s| {
            let route = |s: &NodeSnapshot| route(method.as_str(), uri.path(), uri.query(), s, now);
            // A leader that called within ttl makes failsafe "active" on this replica
            // (status JSON, metrics, readiness). Copying the snapshot costs a little, but
            // only during a DCS outage.
            if !s.failsafe_active && api.failsafe.active(s.ttl, now) {
                let mut active = s.clone();
                active.failsafe_active = true;
                route(&active)
            } else {
                route(s)
            }
        });
        return respond(reply);
    }
    // Patroni's @check_access runs before the handler reads the body.
    if let Some(auth) = &api.auth {
        let header = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
        if let Err(reason) = auth.check(header) {
            tracing::info!("{method} {}: {reason}", uri.path());
            return (
                StatusCode::UNAUTHORIZED,
                [
                    (header::WWW_AUTHENTICATE, "Basic realm=\"Patroni\""),
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                ],
                reason,
            )
                .into_response();
        }
    }
    let body = headers
        .contains_key(header::CONTENT_LENGTH)
        .then_some(body.as_ref());
    let Some(ep) = ep else {
        return answer_failsafe(&api, body);
    };
    let (prepared, loop_wait) = with_snapshot(&api.snap, |s| {
        (prepare(ep, body, s, chrono::Utc::now()), s.loop_wait)
    });
    let reply = match prepared {
        Err(reply) => reply,
        Ok(req) => forward(api.admin.as_ref(), req, agent_timeout(loop_wait)).await,
    };
    respond(reply)
}

/// `POST /failsafe[/...]`: Patroni's `do_POST_failsafe`, routed on the first segment.
fn is_failsafe_post(method: &str, path: &str) -> bool {
    method == "POST" && path.trim_start_matches('/').split('/').next() == Some("failsafe")
}

/// Records an accepted `POST /failsafe` and answers `200 Accepted` with the `lsn` header,
/// or Patroni's refusal.
fn answer_failsafe(api: &Api, body: Option<&[u8]>) -> Response {
    match with_snapshot(&api.snap, |s| receive_failsafe(body, s, &api.failsafe)) {
        Err(reply) => respond(reply),
        Ok(accepted) => {
            let mut response = respond(Reply {
                status: 200,
                body: Body::Text("Accepted".into()),
            });
            if let Some(lsn) = accepted.lsn {
                response
                    .headers_mut()
                    .insert("lsn", header::HeaderValue::from(lsn));
            }
            response
        }
    }
}

/// Hands `req` to the agent and waits for its answer.
async fn forward(admin: Option<&AdminSender>, req: AdminRequest, timeout: Duration) -> Reply {
    let unavailable = || Reply {
        status: 503,
        body: Body::Text("agent is not accepting requests".into()),
    };
    let Some(tx) = admin else {
        return unavailable();
    };
    let (reply_tx, reply_rx) = oneshot::channel::<AdminReply>();
    let exchange = async {
        tx.send((req, reply_tx)).await.ok()?;
        reply_rx.await.ok()
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Some(AdminReply { status, body })) => Reply {
            status,
            body: match body {
                AdminBody::Text(t) => Body::Text(t),
                AdminBody::Json(v) => Body::Json(v),
            },
        },
        Ok(None) => unavailable(),
        Err(_) => Reply {
            status: 503,
            body: Body::Text(format!(
                "no answer from the agent after {} seconds; the operation may still be in progress",
                timeout.as_secs()
            )),
        },
    }
}

fn respond(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (content_type, text) = match reply.body {
        Body::Empty => return status.into_response(),
        // Serializing a Value cannot fail (string keys only).
        Body::Json(v) => (
            "application/json",
            serde_json::to_string(&v).unwrap_or_default(),
        ),
        Body::Text(t) => ("text/plain; charset=utf-8", t),
        Body::Metrics(t) => (METRICS_CONTENT_TYPE, t),
    };
    (
        status,
        [(header::CONTENT_TYPE, content_type)],
        HttpBody::from(text),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_timeout_covers_patroni_polling() {
        assert_eq!(
            agent_timeout(Duration::from_secs(10)),
            Duration::from_secs(60)
        );
        assert_eq!(
            agent_timeout(Duration::from_secs(30)),
            Duration::from_secs(70)
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn forwarding_outcomes() {
        let t = Duration::from_secs(1);
        let r = forward(None, AdminRequest::Reload, t).await;
        assert_eq!(r.status, 503);
        assert_eq!(r.body, Body::Text("agent is not accepting requests".into()));

        // The agent answers.
        let (tx, mut rx) = crate::admin::admin_channel();
        let agent = tokio::spawn(async move {
            let (req, reply) = rx.recv().await.expect("request");
            assert_eq!(req, AdminRequest::Reload);
            let _ = reply.send(AdminReply::text(202, "reload scheduled"));
            // Drops the reply channel of the next one unanswered.
            let (_req, reply) = rx.recv().await.expect("request");
            drop(reply);
            rx
        });
        let r = forward(Some(&tx), AdminRequest::Reload, t).await;
        assert_eq!(
            (r.status, r.body),
            (202, Body::Text("reload scheduled".into()))
        );
        let r = forward(Some(&tx), AdminRequest::CancelRestart, t).await;
        assert_eq!(r.status, 503);
        // The agent holds the request but never answers.
        let _rx = agent.await.expect("agent");
        let r = forward(Some(&tx), AdminRequest::Reload, Duration::from_millis(50)).await;
        assert_eq!(r.status, 503);
        assert!(matches!(r.body, Body::Text(t) if t.starts_with("no answer from the agent")));
    }
}
