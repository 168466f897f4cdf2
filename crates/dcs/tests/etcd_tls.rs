//! The etcd adapter over TLS and with a user, against a real etcd (Debian's etcd-server) on
//! free loopback ports: `--client-cert-auth` with certificates the test makes, and etcd's
//! own authentication (`auth enable`) with tokens that expire within the test.

use std::sync::Arc;
use std::time::Duration;

use pgkeel_core::config::{CertKey, Etcd as EtcdConfig, EtcdTls, HostPort};
use pgkeel_core::dcs_values::MemberValue;
use pgkeel_dcs::{Access, DcsError, Etcd};
use pgkeel_localcluster::{EtcdServer, ServeOptions, ServerTlsFiles};
use pgkeel_tls::test_pki::TestPki;
use tempfile::TempDir;
use tokio::sync::Notify;

const PREFIX: &str = "/service/batman/";
const OP_TIMEOUT: Duration = Duration::from_secs(5);

struct Fixture {
    server: EtcdServer,
    pki: TestPki,
    _dir: TempDir,
}

impl Fixture {
    /// An etcd serving TLS only, requiring client certificates when `client_cert_auth`.
    fn start(client_cert_auth: bool, auth_token_ttl: Option<u32>) -> Fixture {
        let pki = TestPki::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = ServeOptions {
            tls: Some(ServerTlsFiles {
                cert: pki.path("server.pem"),
                key: pki.path("server.key"),
                ca: pki.path("ca.pem"),
                client_cert_auth,
            }),
            auth_token_ttl,
        };
        let server = EtcdServer::start_with(dir.path(), &opts).expect("start etcd");
        Fixture {
            server,
            pki,
            _dir: dir,
        }
    }

    /// `etcd3:` as an operator writes it: https, cacert, and the client's cert and key.
    fn config(&self, cert: bool, user: Option<(&str, &str)>) -> EtcdConfig {
        EtcdConfig {
            section: "etcd3",
            hosts: vec![self.server.endpoint.clone()],
            username: user.map(|u| u.0.to_string()),
            password: user.map(|u| u.1.to_string()),
            tls: Some(EtcdTls {
                cacert: Some(self.pki.path("ca.pem")),
                identity: cert.then(|| CertKey {
                    certfile: self.pki.path("client.pem"),
                    keyfile: Some(self.pki.path("client.key")),
                    keyfile_password: None,
                }),
            }),
        }
    }

    async fn connect(&self, cfg: &EtcdConfig) -> Result<Etcd, DcsError> {
        let access = Access::from_config(cfg).expect("certificate files");
        Etcd::connect(&access, PREFIX.to_string(), OP_TIMEOUT).await
    }

    /// A raw client with the test CA and the client certificate (etcd-client's own TLS).
    async fn raw(&self, user: Option<(&str, &str)>) -> etcd_client::Client {
        let read = |n: &str| std::fs::read(self.pki.path(n)).unwrap();
        let tls = etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(read("ca.pem")))
            .identity(etcd_client::Identity::from_pem(
                read("client.pem"),
                read("client.key"),
            ));
        let mut opts = etcd_client::ConnectOptions::new().with_tls(tls);
        if let Some((u, p)) = user {
            opts = opts.with_user(u, p);
        }
        etcd_client::Client::connect([self.server.url()], Some(opts))
            .await
            .expect("raw connect")
    }

    /// etcd's `user add root`, `user grant-role root root`, `auth enable`.
    async fn enable_auth(&self, root_password: &str) {
        let mut c = self.raw(None).await;
        c.user_add("root", root_password, None).await.unwrap();
        c.user_grant_role("root", "root").await.unwrap();
        // A user etcd knows but that no role lets read the cluster's keys.
        c.user_add("nobody", "nobody", None).await.unwrap();
        c.auth_enable().await.unwrap();
    }
}

fn member() -> MemberValue {
    MemberValue {
        conn_url: "postgres://127.0.0.1:5432/postgres".into(),
        api_url: "https://127.0.0.1:8008/patroni".into(),
        state: "running".into(),
        role: "primary".into(),
        ..Default::default()
    }
}

async fn notified(wake: &Notify, what: &str) {
    tokio::time::timeout(Duration::from_secs(15), wake.notified())
        .await
        .unwrap_or_else(|_| panic!("no watch notification: {what}"));
}

#[tokio::test]
async fn lease_put_and_watch_over_tls_with_a_client_certificate() {
    let f = Fixture::start(true, None);
    let a = f
        .connect(&f.config(true, None))
        .await
        .expect("connect over TLS");
    let wake = Arc::new(Notify::new());
    let watcher = a.spawn_watcher(wake.clone());
    notified(&wake, "the watch is established").await;

    let lease = a.grant_lease(Duration::from_secs(10)).await.unwrap();
    assert!(a.acquire_leader("a", lease).await.unwrap());
    notified(&wake, "the leader key was put").await;
    a.touch_member("a", &member(), lease).await.unwrap();
    assert!(a.keep_alive(lease).await.unwrap().is_some());
    assert!(
        a.keep_alive(lease).await.unwrap().is_some(),
        "on the cached stream"
    );
    let c = a.load().await.unwrap();
    assert_eq!(c.leader.as_ref().map(|l| l.name.as_str()), Some("a"));
    assert_eq!(c.members.len(), 1);

    // A second client sees the same cluster, and its release wakes the first's watch.
    let b = f.connect(&f.config(true, None)).await.unwrap();
    assert_eq!(b.load().await.unwrap().leader.unwrap().name, "a");
    a.revoke_lease(lease).await.unwrap();
    notified(&wake, "the leader key went with the lease").await;
    assert!(b.load().await.unwrap().leader.is_none());
    watcher.abort();
}

#[tokio::test]
async fn without_a_client_certificate_or_tls_or_the_right_ca_etcd_is_not_reached() {
    let f = Fixture::start(true, None);
    let timeout = Duration::from_secs(2);
    let connect = |cfg: EtcdConfig| async move {
        let access = Access::from_config(&cfg).unwrap();
        Etcd::connect(&access, PREFIX.to_string(), timeout).await
    };
    match connect(f.config(false, None)).await {
        Err(DcsError::Unavailable(m)) => assert!(m.contains("connect to https://"), "{m}"),
        other => panic!("a client without a certificate connected: {other:?}"),
    }
    match connect(EtcdConfig {
        tls: None,
        ..f.config(false, None)
    })
    .await
    {
        Err(DcsError::Unavailable(m)) => assert!(m.contains("connect to http://"), "{m}"),
        other => panic!("plain HTTP connected to a TLS etcd: {other:?}"),
    }
    // A CA that did not sign etcd's certificate: refused, and the reason is in the message.
    let mut other_ca = f.config(true, None);
    other_ca.tls.as_mut().unwrap().cacert = Some(f.pki.path("self.pem"));
    match connect(other_ca).await {
        Err(DcsError::Unavailable(m)) => {
            assert!(m.contains("invalid peer certificate: UnknownIssuer"), "{m}")
        }
        other => panic!("etcd's certificate passed with another CA: {other:?}"),
    }
    // The host name is checked: the certificate is for 127.0.0.1 and localhost only.
    let mut named = f.config(true, None);
    named.hosts = vec![HostPort {
        host: "127.0.0.2".into(),
        port: f.server.endpoint.port,
    }];
    assert!(connect(named).await.is_err());
    // localhost is in the certificate.
    let mut local = f.config(true, None);
    local.hosts[0].host = "localhost".into();
    connect(local)
        .await
        .expect("localhost is named in the certificate");
}

#[test]
fn a_bad_certificate_file_is_named_before_any_connection() {
    let pki = TestPki::new();
    let cfg = |cert: &str, key: &str| EtcdConfig {
        section: "etcd3",
        hosts: vec![HostPort {
            host: "127.0.0.1".into(),
            port: 1,
        }],
        username: None,
        password: None,
        tls: Some(EtcdTls {
            cacert: Some(pki.path("ca.pem")),
            identity: Some(CertKey {
                certfile: pki.path(cert),
                keyfile: Some(pki.path(key)),
                keyfile_password: None,
            }),
        }),
    };
    let e = Access::from_config(&cfg("nope.pem", "client.key"))
        .unwrap_err()
        .0;
    assert!(
        e.starts_with(&format!(
            "etcd3.cert {}: cannot read it",
            pki.path("nope.pem").display()
        )),
        "{e}"
    );
    let e = Access::from_config(&cfg("client.pem", "other.key"))
        .unwrap_err()
        .0;
    assert!(
        e.contains("etcd3.key") && e.contains("is not the key"),
        "{e}"
    );
}

#[tokio::test]
async fn a_user_authenticates_and_a_wrong_or_missing_one_is_refused_clearly() {
    let f = Fixture::start(true, None);
    f.enable_auth("rootpw").await;
    let a = f
        .connect(&f.config(true, Some(("root", "rootpw"))))
        .await
        .expect("root authenticates");
    let lease = a.grant_lease(Duration::from_secs(10)).await.unwrap();
    assert!(a.acquire_leader("a", lease).await.unwrap());

    match f.connect(&f.config(true, Some(("root", "wrong")))).await {
        Err(DcsError::Refused(m)) => {
            assert!(m.contains("etcd refused the user name or password"), "{m}")
        }
        other => panic!("a wrong password connected: {other:?}"),
    }
    // etcd would take the certificate's name as the user; the test certificate names none
    // etcd knows, so without a user nothing is allowed.
    match f.connect(&f.config(true, None)).await {
        Err(DcsError::Refused(m)) => assert!(m.contains("user"), "{m}"),
        other => panic!("no user connected: {other:?}"),
    }
    match f.connect(&f.config(true, Some(("nobody", "nobody")))).await {
        Err(DcsError::Refused(m)) => assert!(m.contains("permission denied"), "{m}"),
        other => panic!("a user without a role read the cluster: {other:?}"),
    }
}

#[tokio::test]
async fn an_expired_token_is_renewed_on_every_kind_of_call() {
    // Tokens that expire after 1 s unused: every pause below outlives the token.
    let f = Fixture::start(false, Some(1));
    f.enable_auth("rootpw").await;
    let a = f
        .connect(&f.config(true, Some(("root", "rootpw"))))
        .await
        .unwrap();
    let wake = Arc::new(Notify::new());
    let lease = a.grant_lease(Duration::from_secs(30)).await.unwrap();
    assert!(a.keep_alive(lease).await.unwrap().is_some());
    let pause = || tokio::time::sleep(Duration::from_millis(2500));
    for round in 0..2 {
        pause().await;
        assert!(
            a.keep_alive(lease).await.unwrap().is_some(),
            "round {round}: keepalive"
        );
        pause().await;
        a.touch_member("a", &member(), lease)
            .await
            .unwrap_or_else(|e| panic!("round {round}: put: {e}"));
        pause().await;
        assert_eq!(a.load().await.unwrap().members.len(), 1, "round {round}");
        pause().await;
        let watcher = a.spawn_watcher(wake.clone());
        notified(&wake, "a watch made with a renewed token").await;
        watcher.abort();
    }
    pause().await;
    let l2 = a.grant_lease(Duration::from_secs(5)).await.unwrap();
    pause().await;
    a.revoke_lease(l2).await.unwrap();
}
