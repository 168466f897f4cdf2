//! The REST API against clients that do not play by the rules (issue 11, item 4): bodies
//! over the limit, heads and bodies that trickle in, connections that say nothing, more
//! connections than the cap. Raw sockets, short limits, the current-thread runtime the
//! agent's API thread uses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgkeel_api::{
    admin_channel, serve, shared, AdminReceiver, FailsafeInbox, Limits, NodeSnapshot, MAX_BODY,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Short timeouts so that the tests wait little; the cap as given.
fn limits(max_connections: usize) -> Limits {
    Limits {
        max_connections,
        idle_timeout: Duration::from_millis(300),
        header_timeout: Duration::from_millis(600),
        body_timeout: Duration::from_millis(600),
        ..Limits::default()
    }
}

/// A server on a free port; the admin channel's receiving end, which never answers.
async fn start(limits: Limits) -> (SocketAddr, AdminReceiver) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = admin_channel();
    let snap = shared(NodeSnapshot::new("node1", "demo"));
    tokio::spawn(serve(
        listener,
        snap,
        Some(tx),
        None,
        Arc::new(FailsafeInbox::new()),
        limits,
        std::future::pending(),
    ));
    (addr, rx)
}

/// Reads until the server closes; `None` if it has not within `within`.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<String> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&raw).into_owned()),
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one response head and its `Content-Length` body from a kept-alive connection.
async fn read_response(s: &mut TcpStream) -> String {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .expect("read");
        assert!(
            n > 0,
            "closed before an answer: {:?}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
    }
}

async fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .expect("write");
    read_response(&mut s).await
}

fn status(response: &str) -> u16 {
    response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {response:?}"))
}

/// The 1.9 MB PATCH of issue 11 answered "DCS is not accessible" (etcd refused it): the API
/// must refuse it itself, naming the limit, and the agent must never see it.
#[tokio::test(flavor = "current_thread")]
async fn a_body_over_the_limit_is_413_naming_the_limit() {
    let (addr, mut agent) = start(Limits::default()).await;
    let body = format!("{{\"ttl\": 30, \"x\": \"{}\"}}", "y".repeat(1_900_000));
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PATCH /config HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // The whole body goes out (the server reads it) and the answer comes back.
    s.write_all(body.as_bytes())
        .await
        .expect("the body is read, not reset");
    let r = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("answered and closed");
    assert_eq!(status(&r), 413, "{r}");
    assert!(
        r.ends_with(&format!(
            "Request body of {} bytes is larger than the limit of {MAX_BODY} bytes",
            body.len()
        )),
        "{r}"
    );
    assert!(agent.try_recv().is_err(), "the agent was asked");

    // A client that waits for 100 Continue is answered before it sends anything.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PUT /config HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\nExpect: 100-continue\r\n\r\n")
        .await
        .unwrap();
    let r = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("answered");
    assert_eq!(status(&r), 413, "{r}");

    // At the limit, the body reaches the agent.
    let body = format!("{{\"x\": \"{}\"}}", "y".repeat(MAX_BODY - 9));
    assert_eq!(body.len(), MAX_BODY);
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "PATCH /config HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let (req, _reply) = tokio::time::timeout(Duration::from_secs(5), agent.recv())
        .await
        .expect("forwarded")
        .expect("a request");
    assert!(
        matches!(req, pgkeel_api::AdminRequest::PatchConfig(_)),
        "{req:?}"
    );
}

/// A slowloris: a head that never ends, one byte at a time, faster than the idle timeout.
/// Without a header timeout the connection stayed open as long as the client liked.
#[tokio::test(flavor = "current_thread")]
async fn a_head_that_trickles_in_is_cut_off_at_the_header_timeout() {
    let l = limits(16);
    let (addr, _agent) = start(l.clone()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let closed = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if s.write_all(b"X").await.is_err() {
                return;
            }
            let mut b = [0u8; 1];
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_millis(1), s.read(&mut b)).await
            {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("the server closed the connection");
    let after = started.elapsed();
    println!(
        "slowloris connection closed after {after:?} (header timeout {:?})",
        l.header_timeout
    );
    assert!(after >= l.header_timeout, "{after:?}");
    assert!(
        after < l.header_timeout + Duration::from_secs(2),
        "{after:?}"
    );
}

/// A connection that says nothing, and one kept alive after its answer, are closed after
/// the idle timeout.
#[tokio::test(flavor = "current_thread")]
async fn silent_and_idle_keep_alive_connections_are_closed() {
    let l = limits(16);
    let (addr, _agent) = start(l.clone()).await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    assert!(read_until_closed(&mut silent, Duration::from_secs(5))
        .await
        .is_some());
    let after = started.elapsed();
    assert!(
        after >= l.idle_timeout && after < l.idle_timeout + Duration::from_secs(2),
        "{after:?}"
    );

    let mut kept = TcpStream::connect(addr).await.unwrap();
    for _ in 0..3 {
        kept.write_all(b"GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(status(&read_response(&mut kept).await), 200);
        // Less than the idle timeout between requests: kept open.
        tokio::time::sleep(l.idle_timeout / 2).await;
    }
    let started = Instant::now();
    assert_eq!(
        read_until_closed(&mut kept, Duration::from_secs(5)).await,
        Some(String::new())
    );
    assert!(started.elapsed() < l.idle_timeout + Duration::from_secs(2));
}

/// A body that trickles in is answered 408 at the body timeout; one that stops is closed
/// when the connection has been idle too long.
#[tokio::test(flavor = "current_thread")]
async fn a_body_that_trickles_in_is_408_at_the_body_timeout() {
    let l = limits(16);
    let (addr, mut agent) = start(l.clone()).await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = async {
        let mut raw = Vec::new();
        let mut b = [0u8; 4096];
        loop {
            let _ = s.write_all(b" ").await;
            match tokio::time::timeout(Duration::from_millis(100), s.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&raw).into_owned(),
                Ok(Ok(n)) => raw.extend_from_slice(&b[..n]),
                Err(_) => {}
            }
        }
    };
    let r = tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .expect("answered");
    assert_eq!(status(&r), 408, "{r}");
    assert!(started.elapsed() >= l.body_timeout);
    assert!(agent.try_recv().is_err());

    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        .await
        .unwrap();
    assert!(read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .is_some());
}

/// At the cap, a new connection closes the oldest one not being answered, so a health
/// check gets through a flood of idle connections; when every connection is being
/// answered, the new one is closed at once. Never more open than the cap.
#[tokio::test(flavor = "current_thread")]
async fn at_the_cap_idle_connections_make_room_and_busy_ones_do_not() {
    let cap = 8;
    let (addr, mut agent) = start(Limits {
        idle_timeout: Duration::from_secs(30),
        header_timeout: Duration::from_secs(30),
        ..limits(cap)
    })
    .await;
    let mut first = Vec::new();
    for _ in 0..cap {
        first.push(TcpStream::connect(addr).await.unwrap());
    }
    // As many again: each closes one of the first.
    let mut second = Vec::new();
    for _ in 0..cap {
        second.push(TcpStream::connect(addr).await.unwrap());
    }
    for s in &mut first {
        assert!(
            read_until_closed(s, Duration::from_secs(2)).await.is_some(),
            "an older idle connection is still open"
        );
    }
    // The server is full of idle connections: health checks get through all the same.
    for _ in 0..3 * cap {
        assert_eq!(status(&get(addr, "/liveness").await), 200);
    }

    // `cap` requests the agent holds (it never answers): all being answered.
    let (mut held, mut replies) = (Vec::new(), Vec::new());
    for _ in 0..cap {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        held.push(s);
        let (_req, reply) = tokio::time::timeout(Duration::from_secs(5), agent.recv())
            .await
            .expect("forwarded")
            .expect("request");
        replies.push(reply);
    }
    let mut refused = TcpStream::connect(addr).await.unwrap();
    let _ = refused
        .write_all(b"GET /liveness HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert_eq!(
        read_until_closed(&mut refused, Duration::from_secs(2)).await,
        Some(String::new()),
        "a connection over the cap is closed without an answer"
    );
}
