//! The REST API over a real socket, driven by a raw HTTP/1.1 client, on the
//! current-thread runtime the agent uses.

use std::collections::BTreeMap;
use std::sync::Arc;

use pgkeel_api::{
    admin_channel, publish, serve, shared, AdminReply, AdminRequest, AdminSender, FailsafeInbox,
    Limits, NodeSnapshot, SharedSnapshot,
};
use pgkeel_core::cluster::{Cluster, LeaderKey, MemberEntry};
use pgkeel_core::dcs_values::{MemberValue, StatusValue};
use pgkeel_core::lsn::Lsn;
use pgkeel_core::observation::{PgView, Running};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn leader_snapshot() -> NodeSnapshot {
    let mut members = BTreeMap::new();
    members.insert(
        "node1".to_string(),
        MemberEntry::Ok(MemberValue {
            conn_url: "postgres://127.0.0.1:5432/postgres".into(),
            api_url: "http://127.0.0.1:8008/patroni".into(),
            state: "running".into(),
            role: "primary".into(),
            timeline: Some(1),
            ..Default::default()
        }),
    );
    members.insert(
        "node2".to_string(),
        MemberEntry::Ok(MemberValue {
            conn_url: "postgres://127.0.0.2:5432/postgres".into(),
            api_url: "http://127.0.0.2:8008/patroni".into(),
            state: "running".into(),
            role: "replica".into(),
            timeline: Some(1),
            ..Default::default()
        }),
    );
    let mut s = NodeSnapshot::new("node1", "demo");
    s.holds_leader_key = true;
    s.state_text = "running".into();
    s.pg = PgView::Running(Running {
        sysid: "7268616322854375442".into(),
        in_recovery: false,
        timeline: 1,
        wal_position: Lsn(50_331_856),
        received: None,
        replayed: None,
        upstream: None,
        streaming: false,
    });
    s.cluster = Some(Cluster {
        initialize: Some("7268616322854375442".into()),
        leader: Some(LeaderKey {
            name: "node1".into(),
            lease: 1,
            revision: 1,
        }),
        members,
        status: Some(StatusValue {
            optime: 50_331_856,
            ..Default::default()
        }),
        history: Some(vec![]),
        ..Default::default()
    });
    s
}

struct Response {
    status: u16,
    headers: String,
    body: String,
}

async fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> Response {
    send(addr, method, path, "", "").await
}

/// A raw request with extra header lines (each ending in CRLF) and a body.
async fn send(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> Response {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("header end");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    Response {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

async fn start(
    snap: SharedSnapshot,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    start_with(snap, None, None).await
}

async fn start_with(
    snap: SharedSnapshot,
    admin: Option<AdminSender>,
    auth: Option<(String, String)>,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    start_full(snap, admin, auth, Arc::new(FailsafeInbox::new())).await
}

async fn start_full(
    snap: SharedSnapshot,
    admin: Option<AdminSender>,
    auth: Option<(String, String)>,
    inbox: Arc<FailsafeInbox>,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        snap,
        admin,
        auth,
        inbox,
        Limits::default(),
        async {
            let _ = rx.await;
        },
    ));
    (addr, tx, server)
}

#[tokio::test(flavor = "current_thread")]
async fn codes_for_get_head_options_and_unknown_methods() {
    let snap = shared(leader_snapshot());
    let (addr, stop, server) = start(snap.clone()).await;

    #[rustfmt::skip]
    let expected: &[(&str, u16)] = &[
        ("/", 200), ("/primary", 200), ("/read-write", 200), ("/master", 200),
        ("/leader", 200), ("/standby-leader", 503), ("/standby_leader", 503),
        ("/replica", 503), ("/replica?lag=1MB", 503), ("/read-only", 200), ("/health", 200),
        ("/sync", 503), ("/synchronous", 503), ("/async", 503), ("/asynchronous", 503),
        ("/nonexistent", 503),
    ];
    for (path, code) in expected {
        let r = request(addr, "GET", path).await;
        assert_eq!(r.status, *code, "GET {path}");
        assert!(
            r.headers.contains("content-type: application/json"),
            "GET {path}"
        );
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("status JSON");
        assert_eq!(v["role"], "primary", "GET {path}");
        assert_eq!(v["patroni"]["name"], "node1");
        for method in ["HEAD", "OPTIONS"] {
            let r = request(addr, method, path).await;
            assert_eq!(r.status, *code, "{method} {path}");
            assert_eq!(r.body, "", "{method} {path}");
        }
    }

    for (path, code) in [
        ("/liveness", 200),
        ("/readiness", 200),
        ("/patroni", 200),
        ("/cluster", 200),
        ("/history", 200),
        ("/config", 502),
    ] {
        assert_eq!(request(addr, "GET", path).await.status, code, "GET {path}");
    }
    let cluster: serde_json::Value =
        serde_json::from_str(&request(addr, "GET", "/cluster").await.body).expect("json");
    assert_eq!(cluster["members"][0]["role"], "leader");
    assert_eq!(cluster["members"][1]["role"], "replica");
    assert_eq!(cluster["scope"], "demo");
    assert_eq!(request(addr, "GET", "/history").await.body, "[]");

    let r = request(addr, "POST", "/x").await;
    assert_eq!(r.status, 501);
    assert_eq!(request(addr, "PUT", "/primary").await.status, 501);

    // A newly published snapshot is what the next request sees.
    let mut demoted = leader_snapshot();
    demoted.holds_leader_key = false;
    demoted.dynamic_config = Some(serde_json::json!({"ttl": 30}));
    publish(&snap, demoted);
    assert_eq!(request(addr, "GET", "/primary").await.status, 503);
    assert_eq!(request(addr, "HEAD", "/primary").await.status, 503);
    let r = request(addr, "GET", "/config").await;
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"ttl":30}"#));

    stop.send(()).expect("server still running");
    server.await.expect("join").expect("serve");
}

/// A fake agent: records each request and answers it the way the real one would.
fn fake_agent() -> (AdminSender, tokio::task::JoinHandle<Vec<AdminRequest>>) {
    let (tx, mut rx) = admin_channel();
    let agent = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some((req, reply)) = rx.recv().await {
            let answer = match &req {
                AdminRequest::Switchover { candidate, .. } => AdminReply::text(
                    200,
                    format!(
                        "Successfully switched over to \"{}\"",
                        candidate.as_deref().unwrap_or("?")
                    ),
                ),
                AdminRequest::PatchConfig(v) => AdminReply::json(200, v.clone()),
                _ => AdminReply::text(202, "reload scheduled"),
            };
            seen.push(req);
            let _ = reply.send(answer);
        }
        seen
    });
    (tx, agent)
}

const JSON: &str = "Content-Type: application/json\r\n";
const GOOD_AUTH: &str = "Authorization: Basic YWRtaW46c2VjcmV0\r\n"; // admin:secret

#[tokio::test(flavor = "current_thread")]
async fn unsafe_requests_are_authenticated_checked_and_forwarded() {
    let (admin, agent) = fake_agent();
    let (addr, stop, server) = start_with(
        shared(leader_snapshot()),
        Some(admin),
        Some(("admin".into(), "secret".into())),
    )
    .await;
    let body = r#"{"leader": "node1", "candidate": "node2"}"#;

    // No credentials, then wrong ones: 401 with Patroni's realm and texts.
    let r = send(addr, "POST", "/switchover", JSON, body).await;
    assert_eq!(r.status, 401);
    assert!(r
        .headers
        .contains("www-authenticate: basic realm=\"patroni\""));
    assert_eq!(r.body, "no auth header received");
    let wrong = "Authorization: Basic YWRtaW46d3Jvbmc=\r\n";
    let r = send(addr, "POST", "/switchover", wrong, body).await;
    assert_eq!((r.status, r.body.as_str()), (401, "not authenticated"));
    // Reads stay open; unknown unsafe paths are still 501 without credentials.
    assert_eq!(request(addr, "GET", "/patroni").await.status, 200);
    assert_eq!(request(addr, "POST", "/x").await.status, 501);

    // Right credentials: forwarded, and the agent's answer returned as is.
    let r = send(addr, "POST", "/switchover", GOOD_AUTH, body).await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "Successfully switched over to \"node2\"")
    );
    // Checked in the API, never reaching the agent.
    let r = send(
        addr,
        "POST",
        "/switchover",
        GOOD_AUTH,
        r#"{"leader": "node1", "candidate": "node9"}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (412, "candidate does not exists")
    );
    let r = send(
        addr,
        "POST",
        "/failover",
        GOOD_AUTH,
        r#"{"leader": "node1"}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (
            400,
            "Failover could be performed only to a specific candidate"
        )
    );
    let r = send(addr, "PATCH", "/config", GOOD_AUTH, r#"{"ttl": 20}"#).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"ttl":20}"#));
    assert!(r.headers.contains("content-type: application/json"));
    let r = send(addr, "PATCH", "/config", GOOD_AUTH, "[1]").await;
    assert_eq!(r.status, 400);
    let r = send(addr, "POST", "/reload", GOOD_AUTH, "").await;
    assert_eq!((r.status, r.body.as_str()), (202, "reload scheduled"));

    stop.send(()).expect("server still running");
    server.await.expect("join").expect("serve");
    // The server dropped its sender: the fake agent's loop ends.
    let seen = agent.await.expect("agent");
    assert_eq!(
        seen,
        vec![
            AdminRequest::Switchover {
                leader: Some("node1".into()),
                candidate: Some("node2".into()),
                scheduled_at: None,
                failover: false,
            },
            AdminRequest::PatchConfig(serde_json::json!({"ttl": 20})),
            AdminRequest::Reload,
        ]
    );
}

#[tokio::test(flavor = "current_thread")]
async fn without_auth_or_agent() {
    let (addr, stop, server) = start(shared(leader_snapshot())).await;
    // No authentication configured: allowed through; no agent: 503.
    let r = send(addr, "DELETE", "/switchover", "", "").await;
    assert_eq!(
        (r.status, r.body.as_str()),
        (503, "agent is not accepting requests")
    );

    let r = request(addr, "GET", "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers
            .contains("content-type: text/plain; version=0.0.4"),
        "{}",
        r.headers
    );
    assert!(r.body.contains(
        "# TYPE patroni_primary gauge\npatroni_primary{scope=\"demo\",name=\"node1\"} 1\n"
    ));
    assert!(r
        .body
        .contains("patroni_postgres_timeline{scope=\"demo\",name=\"node1\"} 1\n"));

    stop.send(()).expect("server still running");
    server.await.expect("join").expect("serve");
}

/// node2, a streaming replica of node1, with failsafe mode on and the `/failsafe` key read.
fn failsafe_replica() -> NodeSnapshot {
    let mut s = leader_snapshot();
    s.name = "node2".into();
    s.holds_leader_key = false;
    s.pg = PgView::Running(Running {
        sysid: "7268616322854375442".into(),
        in_recovery: true,
        timeline: 1,
        wal_position: Lsn(50_331_856),
        received: Some(Lsn(50_331_856)),
        replayed: Some(Lsn(50_331_800)),
        upstream: Some(("127.0.0.1".into(), 5432)),
        streaming: true,
    });
    s.failsafe_mode = true;
    if let Some(c) = s.cluster.as_mut() {
        c.failsafe = Some(BTreeMap::from([
            ("node1".into(), "http://127.0.0.1:8008/patroni".into()),
            ("node2".into(), "http://127.0.0.2:8008/patroni".into()),
        ]));
    }
    s
}

#[tokio::test(flavor = "current_thread")]
async fn failsafe_post_is_authenticated_recorded_and_answered_with_the_lsn() {
    let snap = shared(failsafe_replica());
    let inbox = Arc::new(FailsafeInbox::new());
    let (addr, stop, server) = start_full(
        snap.clone(),
        None,
        Some(("admin".into(), "secret".into())),
        inbox.clone(),
    )
    .await;
    let body = r#"{"name": "node1", "conn_url": "postgres://127.0.0.1:5432/postgres",
        "api_url": "http://127.0.0.1:8008/patroni", "slots": {"node2": 50331800}}"#;

    // GET /failsafe is open, POST /failsafe needs credentials (Patroni's @check_access).
    let r = request(addr, "GET", "/failsafe").await;
    assert_eq!(r.status, 200);
    let topology: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    assert_eq!(topology["node2"], "http://127.0.0.2:8008/patroni");
    let r = send(addr, "POST", "/failsafe", JSON, body).await;
    assert_eq!(r.status, 401);
    assert_eq!(inbox.last(), None);

    // Not active before any contact.
    let v: serde_json::Value =
        serde_json::from_str(&request(addr, "GET", "/patroni").await.body).expect("json");
    assert_eq!(v.get("failsafe_mode_is_active"), None);

    let r = send(addr, "POST", "/failsafe", GOOD_AUTH, body).await;
    assert_eq!((r.status, r.body.as_str()), (200, "Accepted"));
    assert!(r.headers.contains("\r\nlsn: 50331856"), "{}", r.headers);
    assert_eq!(inbox.last().map(|c| c.leader).as_deref(), Some("node1"));
    // A leader called within ttl: failsafe is active on this replica.
    let v: serde_json::Value =
        serde_json::from_str(&request(addr, "GET", "/patroni").await.body).expect("json");
    assert_eq!(v["failsafe_mode_is_active"], true);
    let metrics = request(addr, "GET", "/metrics").await.body;
    assert!(
        metrics.contains("patroni_failsafe_mode_is_active{scope=\"demo\",name=\"node2\"} 1\n"),
        "{metrics}"
    );

    // Bad bodies: 400 with the reason, never a dropped connection.
    let r = send(addr, "POST", "/failsafe", GOOD_AUTH, "not json").await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("JSON object"), "{}", r.body);
    let r = send(
        addr,
        "POST",
        "/failsafe",
        GOOD_AUTH,
        r#"{"conn_url": "c", "api_url": "a"}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("\"name\" is missing"), "{}", r.body);

    // A running primary refuses; with failsafe mode off the answer is 502.
    let mut primary = leader_snapshot();
    primary.failsafe_mode = true;
    publish(&snap, primary);
    let r = send(addr, "POST", "/failsafe", GOOD_AUTH, body).await;
    assert_eq!((r.status, r.body.as_str()), (500, "Running as a leader"));
    assert!(!r.headers.contains("\r\nlsn:"), "{}", r.headers);
    publish(&snap, leader_snapshot());
    let r = send(addr, "POST", "/failsafe", GOOD_AUTH, body).await;
    assert_eq!(r.status, 502);
    assert_eq!(request(addr, "GET", "/failsafe").await.status, 502);

    stop.send(()).expect("server still running");
    server.await.expect("join").expect("serve");
}

/// `restapi.allowlist`, `allowlist_include_members` and the extra headers, as Patroni's
/// `check_access` and `write_response` apply them.
mod access {
    use super::*;
    use pgkeel_core::config::{AllowEntry, RestAccess};

    async fn start_guarded(access: RestAccess) -> std::net::SocketAddr {
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = tcp.local_addr().expect("addr");
        let listener = pgkeel_api::ApiListener {
            tcp,
            tls: None,
            access: pgkeel_api::Access::resolve(&access).await,
        };
        tokio::spawn(serve(
            listener,
            shared(leader_snapshot()),
            None,
            None,
            Arc::new(FailsafeInbox::new()),
            Limits::default(),
            std::future::pending(),
        ));
        addr
    }

    fn net(s: &str) -> AllowEntry {
        let (a, p) = s.split_once('/').unwrap();
        AllowEntry::Net {
            addr: a.parse().unwrap(),
            prefix: p.parse().unwrap(),
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn unsafe_requests_from_outside_the_allowlist_are_denied() {
        let addr = start_guarded(RestAccess {
            allowlist: vec![net("10.0.0.0/8")],
            extra_headers: vec![("X-Frame-Options".into(), "SAMEORIGIN".into())],
            ..Default::default()
        })
        .await;
        let r = send(addr, "POST", "/restart", "", "{}").await;
        assert_eq!((r.status, r.body.as_str()), (403, "Access is denied"));
        assert!(
            r.headers.contains("x-frame-options: sameorigin"),
            "{}",
            r.headers
        );
        // Reads are not guarded, and carry the headers too.
        let r = request(addr, "GET", "/health").await;
        assert_eq!(r.status, 200);
        assert!(
            r.headers.contains("x-frame-options: sameorigin"),
            "{}",
            r.headers
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn listed_addresses_networks_and_names_pass() {
        for entry in [
            net("127.0.0.1/32"),
            net("127.0.0.0/8"),
            AllowEntry::Host("localhost".into()),
        ] {
            let addr = start_guarded(RestAccess {
                allowlist: vec![entry.clone()],
                ..Default::default()
            })
            .await;
            let r = send(addr, "POST", "/restart", "", "{}").await;
            // No agent behind this API: past the check, the request is not answered 403.
            assert_ne!(r.status, 403, "{entry:?}: {}", r.body);
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn members_addresses_count_except_for_failsafe_posts() {
        // The snapshot's node1 publishes http://127.0.0.1:8008/patroni.
        let addr = start_guarded(RestAccess {
            allowlist: vec![net("10.0.0.0/8")],
            include_members: true,
            ..Default::default()
        })
        .await;
        let r = send(addr, "POST", "/restart", "", "{}").await;
        assert_ne!(r.status, 403, "{}", r.body);
        let r = send(addr, "POST", "/failsafe", "", "{}").await;
        assert_eq!((r.status, r.body.as_str()), (403, "Access is denied"));
        // Without the allowlist, only members: POST /failsafe is not checked at all.
        let addr = start_guarded(RestAccess {
            include_members: true,
            ..Default::default()
        })
        .await;
        let r = send(addr, "POST", "/failsafe", "", "{}").await;
        assert_ne!(r.status, 403, "{}", r.body);
    }
}
