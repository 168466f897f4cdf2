//! The HTTP listener: an accept loop and hyper's HTTP/1.1 connections, on whatever runtime
//! the caller runs (the agent gives it a thread and a current-thread runtime of its own;
//! connections are plain `tokio::spawn`s). The [`Limits`] are applied here: the connection
//! cap at accept ([`Conns`]), the header timeout by hyper, the idle timeout by each
//! connection's task, the body timeout and size when a body is read.
//!
//! Reads are answered from the snapshot ([`route`]). Unsafe requests to an endpoint that
//! exists are authenticated, validated ([`prepare`]) and, when valid, handed to the agent
//! over the admin channel; its [`AdminReply`] is returned as is. `POST /failsafe` is
//! authenticated too but answered here: it must not wait for a loop that may be stuck on
//! the unreachable DCS, and it only leaves a note in the [`FailsafeInbox`].

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body as HttpBody, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use crate::access::Access;
use crate::admin::{AdminBody, AdminReply, AdminRequest, AdminSender};
use crate::admin_routes::{endpoint, prepare};
use crate::auth::BasicAuth;
use crate::conns::{Admission, Conn, Conns, Registered, Tracked};
use crate::failsafe::receive_failsafe;
use crate::failsafe_inbox::FailsafeInbox;
use crate::limits::{Limits, MAX_DRAIN, MAX_HEAD};
use crate::metrics::METRICS_CONTENT_TYPE;
use crate::routes::{route, Body, Reply};
use crate::snapshot::{with_snapshot, NodeSnapshot, SharedSnapshot};
use crate::tls::{handshake, has_client_cert, ApiListener, Https};

/// How long a request waits for the agent. A switchover is answered when it is done, and
/// Patroni polls for up to 2 × max(10 s, loop_wait), so this leaves room for that.
fn agent_timeout(loop_wait: Duration) -> Duration {
    (2 * loop_wait.max(Duration::from_secs(10)) + Duration::from_secs(10))
        .max(Duration::from_secs(60))
}

/// After shutdown, how long requests being answered may take to finish.
const DRAIN: Duration = Duration::from_secs(5);

/// How long to wait before accepting again when accept(2) fails for want of resources
/// (descriptors, memory): the pending connections wait in the backlog meanwhile.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

/// At most one log line this often about connections closed or refused at the cap.
const OVERLOAD_LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct Api {
    snap: SharedSnapshot,
    admin: Option<AdminSender>,
    auth: Option<Arc<BasicAuth>>,
    failsafe: Arc<FailsafeInbox>,
    limits: Arc<Limits>,
    https: Option<Https>,
    access: Arc<Access>,
}

/// Serves the REST API on `listener` (HTTPS when it has TLS settings) until `shutdown`
/// completes, then stops accepting and lets the requests being answered finish (for at
/// most [`DRAIN`]).
///
/// `admin`: where unsafe requests go; `None` answers them 503. `auth`: the
/// `restapi.authentication` username and password that unsafe requests must present.
/// `failsafe`: where accepted `POST /failsafe` calls are recorded for the agent.
/// `limits`: timeouts, body size and the connection cap (see [`Limits`]).
pub async fn serve(
    listener: impl Into<ApiListener>,
    snap: SharedSnapshot,
    admin: Option<AdminSender>,
    auth: Option<(String, String)>,
    failsafe: Arc<FailsafeInbox>,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let ApiListener {
        tcp: listener,
        tls: https,
        access,
    } = listener.into();
    let conns = Conns::new(limits.max_connections);
    let api = Api {
        snap,
        admin,
        auth: auth.map(|(user, password)| Arc::new(BasicAuth::new(&user, &password))),
        failsafe,
        limits: Arc::new(limits),
        https,
        access: Arc::new(access),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut overload = Overload::new(api.limits.max_connections);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            r = listener.accept() => r,
        };
        while tasks.try_join_next().is_some() {}
        match accepted {
            Ok((stream, _)) => {
                let (admission, registered) = loop {
                    match conns.admit() {
                        // The evicted connections' tasks are ready to run: let them.
                        (Admission::Closing, _) => tokio::task::yield_now().await,
                        admitted => break admitted,
                    }
                };
                overload.note(admission, tasks.len());
                // Refused: dropping the stream closes it at once.
                if let Some(registered) = registered {
                    tasks.spawn(connection(stream, registered, api.clone(), stop_rx.clone()));
                }
            }
            Err(e) if is_resource_error(&e) => {
                overload.accept_failed(&e);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
            // A connection that failed before it was accepted (reset, aborted): its own.
            Err(e) => tracing::debug!("REST API: accept: {e}"),
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained =
        tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::info!(
            "REST API: closing {} connections still open {DRAIN:?} after shutdown",
            tasks.len()
        );
    }
    tasks.shutdown().await;
    Ok(())
}

/// accept(2) failed for want of something the whole process shares.
fn is_resource_error(e: &std::io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS, ENOMEM.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Counts connections closed or refused at the cap, and accept failures, for a log line
/// at most every [`OVERLOAD_LOG_EVERY`]: a flood must not flood the log too.
struct Overload {
    cap: usize,
    evicted: u64,
    refused: u64,
    failed: u64,
    last_error: String,
    since: Instant,
    /// Connection tasks still running (evicted ones until they have closed).
    open: usize,
}

impl Overload {
    fn new(cap: usize) -> Overload {
        Overload {
            cap,
            evicted: 0,
            refused: 0,
            failed: 0,
            last_error: String::new(),
            since: Instant::now(),
            open: 0,
        }
    }

    fn note(&mut self, admission: Admission, open: usize) {
        self.open = open;
        match admission {
            Admission::Admitted => {}
            Admission::Evicted => self.evicted += 1,
            Admission::Refused => self.refused += 1,
            Admission::Closing => {}
        }
        self.maybe_log();
    }

    fn accept_failed(&mut self, e: &std::io::Error) {
        self.failed += 1;
        self.last_error = e.to_string();
        self.maybe_log();
    }

    fn maybe_log(&mut self) {
        if self.evicted + self.refused + self.failed == 0
            || self.since.elapsed() < OVERLOAD_LOG_EVERY
        {
            return;
        }
        let secs = self.since.elapsed().as_secs();
        if self.evicted + self.refused > 0 {
            tracing::warn!(
                "REST API at its cap of {} connections: closed {} idle connections for new ones and refused {} while all were being answered, in the last {secs} s ({} open)",
                self.cap,
                self.evicted,
                self.refused,
                self.open
            );
        }
        if self.failed > 0 {
            tracing::warn!(
                "REST API: accept failed {} times in the last {secs} s: {}",
                self.failed,
                self.last_error
            );
        }
        (self.evicted, self.refused, self.failed) = (0, 0, 0);
        self.since = Instant::now();
    }
}

/// One connection: the TLS handshake when the API serves HTTPS, then HTTP/1.1 with the
/// header timeout, closed when idle, when evicted, or once shutdown let its last request
/// finish.
async fn connection(
    stream: TcpStream,
    registered: Registered,
    api: Api,
    mut stop: watch::Receiver<bool>,
) {
    let conn = registered.conn.clone();
    let _ = stream.set_nodelay(true);
    let ip = stream.peer_addr().ok().map(|a| a.ip());
    let tracked = Tracked {
        inner: stream,
        conn: conn.clone(),
    };
    match api.https.clone() {
        None => {
            let peer = Peer {
                client_cert: false,
                ip,
            };
            serve_http(tracked, peer, &conn, api, stop).await
        }
        Some(https) => {
            let tls = tokio::select! {
                r = handshake(&https, tracked, api.limits.header_timeout) => r,
                _ = conn.evicted() => Err("closed at the connection cap".into()),
                _ = stop.changed() => Err("shutting down".into()),
            };
            match tls {
                Ok(tls) => {
                    let peer = Peer {
                        client_cert: has_client_cert(&tls),
                        ip,
                    };
                    serve_http(tls, peer, &conn, api, stop).await
                }
                Err(e) => tracing::debug!("REST API connection: {e}"),
            }
        }
    }
    drop(registered);
}

/// What the transport tells about the client.
#[derive(Debug, Clone, Copy)]
struct Peer {
    /// It presented a client certificate, which TLS verified.
    client_cert: bool,
    /// Its address (`None` if the socket could not say).
    ip: Option<std::net::IpAddr>,
}

async fn serve_http<S>(
    io: S,
    peer: Peer,
    conn: &Arc<Conn>,
    api: Api,
    mut stop: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let idle = api.limits.idle_timeout;
    let io = TokioIo::new(io);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(api.limits.header_timeout)
        .max_buf_size(MAX_HEAD);
    let for_requests = conn.clone();
    let service = service_fn(move |req| {
        let (api, conn) = (api.clone(), for_requests.clone());
        async move {
            let extra = api.access.clone();
            let mut response = handle(api, conn, peer, req).await;
            for (name, value) in &extra.headers {
                response.headers_mut().insert(name.clone(), value.clone());
            }
            Ok::<_, Infallible>(response)
        }
    });
    let http = builder.serve_connection(io, service);
    tokio::pin!(http);
    let mut stopping = false;
    loop {
        // While a request is being answered, look again after `idle`.
        let check_at = conn
            .idle_deadline(idle)
            .unwrap_or_else(|| tokio::time::Instant::now() + idle);
        tokio::select! {
            r = http.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("REST API connection: {e}");
                }
                break;
            }
            _ = conn.evicted() => break,
            _ = stop.changed(), if !stopping => {
                stopping = true;
                http.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep_until(check_at) => {
                if conn.idle_deadline(idle).is_some_and(|d| d <= tokio::time::Instant::now()) {
                    break;
                }
            }
        }
    }
}

async fn handle(api: Api, conn: Arc<Conn>, peer: Peer, req: Request<Incoming>) -> Response {
    let (parts, body) = req.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let failsafe_post = is_failsafe_post(method.as_str(), uri.path());
    let ep = endpoint(method.as_str(), uri.path());
    if ep.is_none() && !failsafe_post {
        let _answering = conn.answering();
        let fresh = if method == Method::GET && uri.path().starts_with("/patroni") {
            fresh_running(&api).await
        } else {
            None
        };
        let now = Instant::now();
        let reply = with_snapshot(&api.snap, |s| {
            let live = s.with_live_postmaster();
            let s = live.as_ref().unwrap_or(s);
            let refreshed = fresh.and_then(|r| s.with_running(r));
            let s = refreshed.as_ref().unwrap_or(s);
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
    // Patroni's @check_access runs before the handler reads the body: the address first,
    // then the client certificate, then the credentials.
    if !api.access.allows(peer.ip, !failsafe_post, &api.snap).await {
        tracing::info!(
            "{method} {}: {} is not in restapi.allowlist",
            uri.path(),
            peer.ip
                .map_or("an unknown address".to_string(), |ip| ip.to_string())
        );
        return refuse(StatusCode::FORBIDDEN, "Access is denied".into());
    }
    if api.https.as_ref().is_some_and(|h| h.cert_for_unsafe) && !peer.client_cert {
        tracing::info!("{method} {}: no client certificate", uri.path());
        return refuse(StatusCode::FORBIDDEN, "client certificate required".into());
    }
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
    // Patroni reads a body only when the request has a Content-Length.
    let body = match read_body(body, &headers, &api.limits).await {
        Ok(b) => b,
        Err(refusal) => return refusal,
    };
    let _answering = conn.answering();
    let body = body.as_deref();
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

/// The body of a request with a `Content-Length` header (`None` without one), read within
/// the body timeout and the size limit; otherwise the answer to give, which closes the
/// connection.
async fn read_body(
    mut body: Incoming,
    headers: &HeaderMap,
    limits: &Limits,
) -> Result<Option<Bytes>, Response> {
    let Some(length) = headers.get(header::CONTENT_LENGTH) else {
        return Ok(None);
    };
    let deadline = tokio::time::Instant::now() + limits.body_timeout;
    // hyper has refused a Content-Length that is not a number.
    let declared = length
        .to_str()
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let too_large = |size: u64| {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "Request body of {size} bytes is larger than the limit of {} bytes",
                limits.max_body
            ),
        )
    };
    if let Some(size) = declared.filter(|n| *n > limits.max_body as u64) {
        // A client that waits for "100 Continue" has sent nothing yet: answer now. Any
        // other is sending already: read what it sends (up to a bound) so that it reads
        // the answer rather than a reset.
        let waits = headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if !waits && size <= MAX_DRAIN as u64 {
            let _ = tokio::time::timeout_at(deadline, async {
                while let Some(Ok(_)) = body.frame().await {}
            })
            .await;
        }
        return Err(too_large(size));
    }
    let mut data = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(refuse(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "Request body not received within {} s",
                        limits.body_timeout.as_secs()
                    ),
                ))
            }
            Ok(None) => return Ok(Some(Bytes::from(data))),
            Ok(Some(Err(e))) => {
                tracing::debug!("reading a request body: {e}");
                return Err(refuse(StatusCode::BAD_REQUEST, "Bad Request".into()));
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(chunk) = frame.into_data() {
                    data.extend_from_slice(&chunk);
                    // hyper holds the body to its Content-Length; this is the backstop.
                    if data.len() > limits.max_body {
                        return Err(too_large(data.len() as u64));
                    }
                }
            }
        }
    }
}

/// An answer that ends the connection (the rest of the request is not read).
fn refuse(status: StatusCode, text: String) -> Response {
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response();
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
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
    let instance = (
        header::HeaderName::from_static(INSTANCE_HEADER),
        instance_id(),
    );
    let (content_type, text) = match reply.body {
        Body::Empty => return (status, [instance]).into_response(),
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
        [(header::CONTENT_TYPE, content_type), instance],
        HttpBody::from(text),
    )
        .into_response()
}

/// The header naming the agent process that answered: an agent that asks an address and
/// gets its own answer knows it asked itself (a restart finds its own member key naming
/// its own address), not another agent running under its name.
pub const INSTANCE_HEADER: &str = "x-pgkeel-instance";

/// This process's instance id: its pid and start time, unique on a host.
pub fn instance_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}-{nanos:x}", std::process::id())
    })
}

/// How long `GET /patroni` waits for a fresh status query before it answers from the
/// last loop's observation.
const LIVE_STATUS_TIMEOUT: Duration = Duration::from_secs(1);

/// The local server's status queried now, when the last loop saw it running.
async fn fresh_running(api: &Api) -> Option<pgkeel_core::observation::Running> {
    let query = with_snapshot(&api.snap, |s| {
        matches!(s.pg, pgkeel_core::observation::PgView::Running(_))
            .then(|| s.live_status.clone())
            .flatten()
    })?;
    tokio::time::timeout(LIVE_STATUS_TIMEOUT, (query.0)())
        .await
        .ok()
        .flatten()
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
