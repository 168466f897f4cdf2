//! PostgreSQL client TLS on a real cluster of the `pgkeel` binary: the servers run with
//! `ssl = on` and pg_hba lines that admit nothing but TLS clients with a certificate
//! (`hostssl ... clientcert=verify-ca`, no `host` line); the agents bootstrap and observe
//! over TLS (superuser `verify-full`), the replica clones and streams over TLS
//! (`verify-ca`), and after the leader dies the old primary is rewound by the dedicated
//! rewind user over TLS (`require` with a root certificate). A missing client certificate
//! fails `--validate-config` naming the file. Certificates are made by the test.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use pgkeel_localcluster::{PgTls, Signal, Timing};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA, a server certificate for 127.0.0.1 and localhost, a client certificate: files
/// owned by PostgreSQL's user, mode 0600, in a directory of its own.
fn pki(dir: &Path) -> PgTls {
    let pg = nix::unistd::User::from_name("postgres")
        .unwrap()
        .expect("a postgres user");
    std::os::unix::fs::chown(dir, Some(pg.uid.as_raw()), Some(pg.gid.as_raw())).unwrap();
    let write = |name: &str, text: String| -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&p, Some(pg.uid.as_raw()), Some(pg.gid.as_raw())).unwrap();
        p
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "pgkeel e2e CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_file = write("ca.crt", ca.self_signed(&ca_key).unwrap().pem());
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |name: &str, sans: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(sans).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        (
            write(
                &format!("{name}.crt"),
                p.signed_by(&key, &issuer).unwrap().pem(),
            ),
            write(&format!("{name}.key"), key.serialize_pem()),
        )
    };
    PgTls {
        ca: ca_file,
        server: leaf("server", vec!["127.0.0.1".into(), "localhost".into()]),
        client: leaf("client", vec![]),
    }
}

/// `psql` (libpq, not pgkeel's code) as the superuser over TLS with the client certificate.
fn psql(tls: &PgTls, port: u16, sql: &str) -> String {
    let conninfo = format!(
        "host=127.0.0.1 port={port} user=postgres dbname=postgres sslmode=verify-full \
         sslrootcert={} sslcert={} sslkey={}",
        tls.ca.display(),
        tls.client.0.display(),
        tls.client.1.display()
    );
    let out = std::process::Command::new("/usr/lib/postgresql/15/bin/psql")
        .args([&conninfo, "-XAtc", sql])
        .env("PGPASSWORD", pgkeel_localcluster::SUPERUSER_PASSWORD)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .expect("running psql");
    assert!(
        out.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_whose_pg_hba_admits_only_tls_clients_with_certificates() {
    let certs = tempfile::Builder::new()
        .prefix("pgkeel-pgtls-certs-")
        .tempdir_in("/tmp")
        .unwrap();
    let tls = pki(certs.path());
    let t = tls.clone();
    let mut c = start_opts("pgtls", 2, Timing::default(), move |o| {
        o.pg_tls = Some(t);
        o.pg_parameters = vec![("log_connections".into(), "on".into())];
    });
    let leader = must(&c, c.wait_healthy(2, BOOT).await);
    let li = c.index_of(&leader).unwrap();
    let ri = 1 - li;
    let hba = std::fs::read_to_string(c.nodes[li].data_dir.join("pg_hba.conf")).unwrap();
    assert!(
        !hba.lines()
            .any(|l| l.starts_with("host ") || l.starts_with("local ")),
        "pgkeel added lines of its own:\n{hba}"
    );

    // The replica streams over TLS with its certificate; the agents' own sessions too.
    let port = c.nodes[li].pg_port;
    let replication = psql(
        &tls,
        port,
        "SELECT s.ssl, s.client_dn FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)",
    );
    assert_eq!(
        replication, "t|/CN=client",
        "pg_stat_replication x pg_stat_ssl"
    );
    let agents = psql(
        &tls,
        port,
        "SELECT count(*) FILTER (WHERE NOT s.ssl) || ' ' || count(*) FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'pgkeel'",
    );
    eprintln!("agent sessions on the leader (plain, all): {agents}");
    assert!(agents.starts_with("0 "), "{agents}");
    psql(
        &tls,
        port,
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1)",
    );

    // The leader dies (agent and PostgreSQL); the replica takes over; the old primary
    // comes back through pg_rewind as the rewind user, over TLS.
    c.signal_node(li, Signal::Kill);
    c.reap_agent(li);
    let next = must(
        &c,
        c.wait_new_leader(&leader, Duration::from_secs(90)).await,
    );
    assert_eq!(next, c.nodes[ri].name);
    psql(&tls, c.nodes[ri].pg_port, "INSERT INTO t VALUES (2)");
    c.start_agent(li).unwrap();
    must(
        &c,
        c.wait_healthy(2, Duration::from_secs(120))
            .await
            .map(|_| ()),
    );
    let log = std::fs::read_to_string(c.nodes[ri].data_dir.join("pgkeel-postmaster.log"))
        .unwrap_or_default();
    let rewinds: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("connection authorized: user=rewinder database=postgres"))
        .collect();
    if rewinds.is_empty() {
        dump_logs(&c);
        eprintln!("{log}");
    }
    assert!(
        !rewinds.is_empty() && rewinds.iter().all(|l| l.contains("SSL enabled")),
        "pg_rewind's connections as rewinder, over TLS: {rewinds:?}"
    );
    let rows = psql(&tls, c.nodes[li].pg_port, "SELECT count(*) FROM t");
    assert_eq!(
        rows, "2",
        "the rewound node has the row written after the failover"
    );

    // A client certificate that is not there stops the agent at start, naming it.
    let bad = certs.path().join("bad.yml");
    let missing = certs.path().join("no-such-client.crt");
    let yaml = std::fs::read_to_string(&c.nodes[0].config)
        .unwrap()
        .replacen(
            &format!("sslcert: '{}'", tls.client.0.display()),
            &format!("sslcert: '{}'", missing.display()),
            1,
        );
    std::fs::write(&bad, yaml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgkeel"))
        .args(["agent", "--validate-config", &bad.display().to_string()])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "postgresql.authentication.superuser.sslcert {}: No such file",
            missing.display()
        )),
        "{stderr}"
    );
}
