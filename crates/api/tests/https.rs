//! The REST API over HTTPS: client certificates per `verify_client`, and the limits of
//! plain HTTP (header timeout, 413) holding for TLS connections too. Real sockets, the
//! current-thread runtime the agent's API thread uses, certificates made by the test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgkeel_api::{
    admin_channel, serve, shared, ApiListener, FailsafeInbox, Https, Limits, NodeSnapshot,
};
use pgkeel_core::config::{CertKey, ClientTls, ServerTls, VerifyClient, VerifyServer};
use pgkeel_tls::test_pki::TestPki;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

fn limits() -> Limits {
    Limits {
        idle_timeout: Duration::from_millis(300),
        header_timeout: Duration::from_millis(800),
        body_timeout: Duration::from_millis(800),
        ..Limits::default()
    }
}

/// An HTTPS server on a free port with `verify_client` (CA: the test CA).
async fn start(pki: &TestPki, mode: &str) -> SocketAddr {
    let cafile = pki.path("ca.pem");
    let verify_client = match mode {
        "required" => VerifyClient::Required { cafile },
        "optional" => VerifyClient::Optional { cafile },
        _ => VerifyClient::None,
    };
    let tls = ServerTls {
        identity: CertKey {
            certfile: pki.path("server.pem"),
            keyfile: Some(pki.path("server.key")),
            keyfile_password: None,
        },
        verify_client,
        ciphers: None,
    };
    let config = pgkeel_tls::server_config(&tls).expect("server config");
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = tcp.local_addr().expect("addr");
    let (tx, rx) = admin_channel();
    // Holds the receiving end: unsafe requests wait for an agent that never answers.
    std::mem::forget(rx);
    let listener = ApiListener {
        tcp,
        tls: Some(Https {
            config,
            cert_for_unsafe: mode != "none",
        }),
        access: Default::default(),
    };
    tokio::spawn(serve(
        listener,
        shared(NodeSnapshot::new("node1", "demo")),
        Some(tx),
        None,
        Arc::new(FailsafeInbox::new()),
        limits(),
        std::future::pending(),
    ));
    addr
}

/// A TLS connection to `addr`, with the client certificate when `cert`.
async fn connect(
    pki: &TestPki,
    addr: SocketAddr,
    cert: bool,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let identity = cert.then(|| CertKey {
        certfile: pki.path("client.pem"),
        keyfile: Some(pki.path("client.key")),
        keyfile_password: None,
    });
    let tls = ClientTls {
        verify: VerifyServer::ChainAndName {
            cafile: Some(pki.path("ca.pem")),
        },
        identity,
    };
    let config = pgkeel_tls::client_config(&tls, "ctl", "ctl.cacert").expect("client config");
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").expect("name"), tcp)
        .await
}

/// Sends `request` and reads until the server closes (or 5 s pass).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, request: &[u8]) -> String {
    s.write_all(request).await.expect("write");
    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                raw.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&raw);
                // One answer is enough.
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length: ")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        return text.into_owned();
                    }
                }
            }
            _ => return String::from_utf8_lossy(&raw).into_owned(),
        }
    }
}

fn status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

const GET: &[u8] = b"GET /patroni HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
const RESTART: &[u8] =
    b"POST /restart HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";

#[tokio::test(flavor = "current_thread")]
async fn required_refuses_a_connection_without_a_client_certificate() {
    let pki = TestPki::new();
    let addr = start(&pki, "required").await;
    let mut ok = connect(&pki, addr, true)
        .await
        .expect("handshake with a cert");
    assert_eq!(status(&exchange(&mut ok, GET).await), 200);
    // TLS 1.3: the client learns of the refusal when it reads.
    let refused = match connect(&pki, addr, false).await {
        Err(_) => true,
        Ok(mut s) => status(&exchange(&mut s, GET).await) == 0,
    };
    assert!(refused, "a client without a certificate was answered");
}

#[tokio::test(flavor = "current_thread")]
async fn optional_needs_a_client_certificate_for_unsafe_methods_only() {
    let pki = TestPki::new();
    let addr = start(&pki, "optional").await;
    let mut s = connect(&pki, addr, false).await.expect("handshake");
    assert_eq!(status(&exchange(&mut s, GET).await), 200);
    let mut s = connect(&pki, addr, false).await.expect("handshake");
    let r = exchange(&mut s, RESTART).await;
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.ends_with("client certificate required"), "{r}");
    // With a certificate, the request goes on to the agent (which here never answers):
    // no 403 within the wait.
    let mut s = connect(&pki, addr, true).await.expect("handshake");
    s.write_all(RESTART).await.expect("write");
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf)).await;
    assert!(read.is_err(), "answered at once: {:?}", read);
}

#[tokio::test(flavor = "current_thread")]
async fn plain_http_to_the_tls_port_gets_no_http_answer() {
    let pki = TestPki::new();
    let addr = start(&pki, "none").await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let r = exchange(&mut s, GET).await;
    assert!(!r.starts_with("HTTP/"), "answered plain HTTP: {r:?}");
    // And HTTPS works on the same port.
    let mut s = connect(&pki, addr, false).await.expect("handshake");
    assert_eq!(status(&exchange(&mut s, GET).await), 200);
}

#[tokio::test(flavor = "current_thread")]
async fn a_stalled_handshake_is_cut_off_at_the_header_timeout() {
    let pki = TestPki::new();
    let addr = start(&pki, "none").await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // A TLS record header that never gets its body, then nothing more.
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .expect("write");
    let t0 = Instant::now();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "still open after 5 s");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(700),
        "closed after {took:?}, before the header timeout"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_body_over_the_limit_is_413_over_tls_too() {
    let pki = TestPki::new();
    let addr = start(&pki, "required").await;
    let mut s = connect(&pki, addr, true).await.expect("handshake");
    let head = format!(
        "PATCH /config HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        pgkeel_api::MAX_BODY + 1
    );
    let r = exchange(&mut s, head.as_bytes()).await;
    assert_eq!(status(&r), 413, "{r}");
}
