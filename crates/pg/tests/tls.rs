//! Client TLS against real PostgreSQL 15 whose pg_hba.conf admits nothing but TLS
//! connections with a client certificate (`hostssl ... clientcert=verify-ca`, no `host`
//! line, no `local` line): the agent bootstraps and queries its server, a replica clones
//! with pg_basebackup and streams, a former primary is rewound by a dedicated rewind user,
//! every one of them over TLS; `verify-full` against a certificate for another name fails
//! naming it; and the start check refuses missing files and loose key permissions.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pgkeel_core::config::{PgUser, SslMode};
use pgkeel_core::observation::PgView;
use pgkeel_core::{StopMode, Upstream};
use pgkeel_pg::testing::{free_port, pg_tempdir, sample_settings, StopOnDrop};
use pgkeel_pg::{HbaLines, Pg, PgSettings};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(30);
const KEY_PASSWORD: &str = "key secret";

/// A CA, the server's certificates (one for 127.0.0.1 and localhost, one for another
/// name), and a client certificate whose key is also written encrypted, every file owned
/// by PostgreSQL's user with mode 0600 as libpq and the server demand.
struct Pki {
    ca: PathBuf,
    server: (PathBuf, PathBuf),
    wrong_name: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
    client_encrypted_key: PathBuf,
}

fn pki(dir: &Path) -> Pki {
    let owner = std::fs::metadata(dir).unwrap();
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&p, Some(owner.uid()), Some(owner.gid())).unwrap();
        p
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "pgkeel test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_path = write("ca.crt", ca.self_signed(&ca_key).unwrap().pem());
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |name: &str, sans: Vec<String>, cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(sans).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        let cert = write(
            &format!("{name}.crt"),
            p.signed_by(&key, &issuer).unwrap().pem(),
        );
        (
            cert,
            write(&format!("{name}.key"), key.serialize_pem()),
            key,
        )
    };
    let (s_crt, s_key, _) = leaf(
        "server",
        vec!["127.0.0.1".into(), "localhost".into()],
        "localhost",
    );
    let (w_crt, w_key, _) = leaf("wrong", vec!["db.example".into()], "db.example");
    let (c_crt, c_key, key) = leaf("client", vec![], "postgres");
    // The client key again, as encrypted PKCS#8 (PBES2), which libpq decrypts with
    // sslpassword and the agent decrypts itself.
    let der = key.serialize_der();
    let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice()).unwrap();
    let params =
        pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &[7; 16], &[9; 16]).unwrap();
    let enc = info
        .encrypt_with_params(params, KEY_PASSWORD)
        .unwrap()
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .unwrap()
        .to_string();
    Pki {
        ca: ca_path,
        server: (s_crt, s_key),
        wrong_name: (w_crt, w_key),
        client: (c_crt, c_key),
        client_encrypted_key: write("client.enc.key", enc),
    }
}

/// A role connecting with `mode`, the CA and the client certificate.
fn tls_user(name: &str, password: &str, mode: SslMode, pki: &Pki, encrypted: bool) -> PgUser {
    let mut u = PgUser::new(name, Some(password));
    u.conn.sslmode = Some(mode);
    u.conn.sslrootcert = Some(pki.ca.clone());
    u.conn.sslcert = Some(pki.client.0.clone());
    if encrypted {
        u.conn.sslkey = Some(pki.client_encrypted_key.clone());
        u.conn.sslpassword = Some(KEY_PASSWORD.into());
    } else {
        u.conn.sslkey = Some(pki.client.1.clone());
    }
    u
}

/// A node whose server serves `server` and admits only TLS clients with a certificate:
/// the superuser verifies the server fully with an encrypted key, replication checks the
/// chain with an encrypted key (libpq decrypts it), pg_rewind runs as `rewinder` with
/// `require` and a root certificate (libpq then checks the chain, as verify-ca).
fn settings(name: &str, dir: &Path, pki: &Pki, server: &(PathBuf, PathBuf)) -> PgSettings {
    let mut s = sample_settings(name, dir, free_port().unwrap());
    s.superuser = tls_user("postgres", "su pass", SslMode::VerifyFull, pki, true);
    s.replication = tls_user("replicator", "repl pass", SslMode::VerifyCa, pki, true);
    s.rewind = tls_user("rewinder", "rewind pass", SslMode::Require, pki, false);
    for (k, v) in [
        ("ssl", "on".to_string()),
        ("ssl_cert_file", server.0.display().to_string()),
        ("ssl_key_file", server.1.display().to_string()),
        ("ssl_ca_file", pki.ca.display().to_string()),
        ("log_connections", "on".to_string()),
    ] {
        s.parameters.insert(k.into(), v);
    }
    s.pg_hba = HbaLines::Configured(vec![
        "hostssl all all 127.0.0.1/32 md5 clientcert=verify-ca".into(),
        "hostssl replication replicator 127.0.0.1/32 md5 clientcert=verify-ca".into(),
    ]);
    s
}

async fn eventually<T, Fut: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> Fut,
) -> T {
    let end = Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn streaming(pg: &Pg, timeline: u32) {
    eventually("streaming", || async {
        match pg.observe().await {
            PgView::Running(r) if r.in_recovery && r.streaming && r.timeline == timeline => {
                Some(())
            }
            _ => None,
        }
    })
    .await
}

fn upstream(member: &str, pg: &Pg, slot: &str) -> Upstream {
    Upstream {
        member: member.into(),
        host: "127.0.0.1".into(),
        port: pg.settings().port,
        slot: Some(slot.into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_clone_stream_and_rewind_over_tls_only() {
    let dir = pg_tempdir().expect("test directory");
    let pki = pki(dir.path());
    let n1 = Pg::new(settings("node1", dir.path(), &pki, &pki.server));
    let n2 = Pg::new(settings("node2", dir.path(), &pki, &pki.server));
    let _guard = StopOnDrop(vec![
        n1.settings().data_dir.clone(),
        n2.settings().data_dir.clone(),
    ]);
    pgkeel_pg::check_client_tls(&pg_section(&n1.settings())).expect("start check");

    // The agent bootstraps (its connection creates the roles) and observes over TLS.
    pgkeel_pg::testing::bootstrap_initdb(&n1)
        .await
        .expect("bootstrap");
    let c1 = pgkeel_pg::testing::agent_client(&n1)
        .await
        .expect("the agent's own connection");
    let row = c1
        .query_one(
            "SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the agent's connection uses TLS");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("/CN=postgres"),
        "and presents its client certificate"
    );
    c1.batch_execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
        .await
        .unwrap();

    // pg_basebackup and the walreceiver over TLS, with the encrypted key.
    n1.ensure_slots(&["node2".into()]).await.expect("slot");
    let from1 = upstream("node1", &n1, "node2");
    n2.create_replica(&pgkeel_pg::testing::basebackup_plan(&n2, &from1))
        .await
        .expect("clone over TLS");
    n2.start_replica(Some(&from1)).await.expect("start replica");
    streaming(&n2, 1).await;
    let row = c1
        .query_one(
            "SELECT s.ssl, s.client_dn FROM pg_stat_replication r \
             JOIN pg_stat_ssl s ON s.pid = r.pid WHERE r.application_name = 'node2'",
            &[],
        )
        .await
        .expect("node2 streams");
    assert!(row.get::<_, bool>(0), "replication uses TLS");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("/CN=postgres")
    );
    eprintln!(
        "primary_conninfo: {}",
        std::fs::read_to_string(n2.settings().data_dir.join("postgresql.conf"))
            .unwrap()
            .lines()
            .find(|l| l.starts_with("primary_conninfo"))
            .unwrap_or("")
    );

    // Fail over to node2 and rewind node1 from it as the rewind user, over TLS.
    drop(c1);
    n1.stop(StopMode::Immediate).await.expect("crash node1");
    n2.promote(1, &[]).await.expect("promote node2");
    let c2 = eventually("node2 writable", || async {
        let c = pgkeel_pg::testing::agent_client(&n2).await.ok()?;
        c.batch_execute("INSERT INTO t VALUES (2); CHECKPOINT")
            .await
            .ok()
            .map(|_| c)
    })
    .await;
    n2.ensure_slots(&["node1".into()]).await.expect("slot");
    let from2 = upstream("node2", &n2, "node1");
    n1.rewind(&from2)
        .await
        .expect("rewind over TLS as rewinder");
    let log = std::fs::read_to_string(n2.settings().data_dir.join("pgkeel-postmaster.log"))
        .unwrap_or_default();
    assert!(
        log.lines()
            .any(|l| l.contains("user=rewinder database=postgres") && l.contains("SSL enabled")),
        "node2's log shows pg_rewind's TLS connection as rewinder:\n{log}"
    );
    n1.start_replica(Some(&from2)).await.expect("start rewound");
    streaming(&n1, 2).await;
    let c1 = pgkeel_pg::testing::agent_client(&n1).await.unwrap();
    eventually("the row written after the failover", || async {
        let n: i64 = c1
            .query_one("SELECT count(*) FROM t", &[])
            .await
            .ok()?
            .get(0);
        (n == 2).then_some(())
    })
    .await;
    drop((c1, c2));
    n1.stop(StopMode::Fast).await.unwrap();
    n2.stop(StopMode::Fast).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_refuses_a_certificate_for_another_name() {
    let dir = pg_tempdir().expect("test directory");
    let pki = pki(dir.path());
    let n = Pg::new(settings("a", dir.path(), &pki, &pki.wrong_name));
    let _guard = StopOnDrop(vec![n.settings().data_dir.clone()]);
    let err = format!(
        "{:#}",
        pgkeel_pg::testing::bootstrap_initdb(&n)
            .await
            .expect_err("verify-full must fail")
    );
    assert!(
        err.contains("localhost") && err.contains("not valid for name"),
        "the error names the host and why: {err}"
    );
    assert!(err.contains("sslmode verify-full"), "{err}");
    eprintln!("{err}");
}

/// `postgresql` as the agent's config would give it, for the start check.
fn pg_section(s: &PgSettings) -> pgkeel_core::config::Postgresql {
    let yaml = format!(
        "scope: s\nname: n\nrestapi: {{listen: 127.0.0.1:8008, connect_address: 127.0.0.1:8008}}\n\
         etcd3: {{hosts: 127.0.0.1:2379}}\npostgresql:\n  listen: 127.0.0.1:{}\n  \
         connect_address: 127.0.0.1:{}\n  data_dir: {}\n",
        s.port,
        s.port,
        s.data_dir.display()
    );
    let mut pg = pgkeel_core::config::load_str(&yaml, "t.yml")
        .unwrap()
        .config
        .postgresql;
    pg.superuser = s.superuser.clone();
    pg.replication = s.replication.clone();
    pg.rewind = Some(s.rewind.clone());
    pg
}

#[test]
fn the_start_check_names_the_file_and_the_reason() {
    let dir = pg_tempdir().expect("test directory");
    let pki = pki(dir.path());
    let s = settings("a", dir.path(), &pki, &pki.server);
    let check = |pg: &pgkeel_core::config::Postgresql| {
        pgkeel_pg::check_client_tls(pg)
            .map(|_| ())
            .map_err(|e| format!("{e:#}"))
    };
    let good = pg_section(&s);
    check(&good).expect("every file in place");

    let mut pg = good.clone();
    pg.replication.conn.sslcert = Some(dir.path().join("missing.crt"));
    let e = check(&pg).unwrap_err();
    assert!(
        e.contains("postgresql.authentication.replication.sslcert")
            && e.contains("missing.crt")
            && e.contains("No such file"),
        "{e}"
    );

    // libpq refuses a key that its owner's group or others can read.
    let loose = dir.path().join("loose.key");
    std::fs::copy(&pki.client.1, &loose).unwrap();
    let meta = std::fs::metadata(dir.path()).unwrap();
    std::os::unix::fs::chown(&loose, Some(meta.uid()), Some(meta.gid())).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut pg = good.clone();
    pg.rewind.as_mut().unwrap().conn.sslkey = Some(loose);
    let e = check(&pg).unwrap_err();
    assert!(
        e.contains("postgresql.authentication.rewind.sslkey") && e.contains("0644"),
        "{e}"
    );

    // A file PostgreSQL's user cannot read (root's, 0600) stops the agent even when it,
    // as root, could.
    if nix::unistd::Uid::effective().is_root() {
        let private = dir.path().join("root-only.crt");
        std::fs::copy(&pki.ca, &private).unwrap();
        std::os::unix::fs::chown(&private, Some(0), Some(0)).unwrap();
        let mut pg = good.clone();
        pg.replication.conn.sslrootcert = Some(private);
        let e = check(&pg).unwrap_err();
        assert!(
            e.contains("replication.sslrootcert") && e.contains("cannot read it"),
            "{e}"
        );
    }

    // The superuser's encrypted key with a wrong password: the agent reads it itself.
    let mut pg = good.clone();
    pg.superuser.conn.sslpassword = Some("wrong".into());
    let e = check(&pg).unwrap_err();
    assert!(
        e.contains("postgresql.authentication.superuser.sslkey") && e.contains("decrypt"),
        "{e}"
    );

    // verify-ca without any root certificate.
    let mut pg = good;
    pg.superuser.conn.sslrootcert = None;
    pg.superuser.conn.sslmode = Some(SslMode::VerifyCa);
    let e = check(&pg).unwrap_err();
    assert!(e.contains("superuser.sslrootcert"), "{e}");
}
