//! etcd over TLS with client certificates required (`--client-cert-auth`) and its own
//! authentication on (`auth enable`), on a real cluster: the agents reach etcd as Patroni's
//! config tells them (`etcd3.protocol: https`, `cacert`, `cert`, `key`, `username`,
//! `password`), elect a leader, stream, switch over; the CLI lists over the same; a missing
//! certificate file or a wrong password stops the agent and the CLI with the key and the
//! file; a reload says that new etcd TLS settings or certificates need a restart.

mod common;

use std::time::Duration;

use common::*;
use pgkeel_localcluster::{EtcdTls, Signal, Timing};
use pgkeel_tls::test_pki::TestPki;

fn log_has(path: &std::path::Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle))
}

const ROOT_PASSWORD: &str = "etcd-root-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_and_cli_reach_etcd_over_tls_with_client_certificates_and_a_user() {
    let pki = TestPki::new();
    let c = start_opts("etcdtls", 2, Timing::default(), |o| {
        o.etcd_tls = Some(EtcdTls {
            ca: pki.path("ca.pem"),
            server_cert: pki.path("server.pem"),
            server_key: pki.path("server.key"),
            client_cert: pki.path("client.pem"),
            client_key: pki.path("client.key"),
        });
        o.etcd_root_password = Some(ROOT_PASSWORD.into());
    });
    let leader = must(&c, c.wait_healthy(2, BOOT).await);
    let config = c.nodes[0].config.display().to_string();
    let yaml = std::fs::read_to_string(&c.nodes[0].config).unwrap();
    assert!(
        yaml.contains("  protocol: https\n") && yaml.contains("  username: root\n"),
        "{yaml}"
    );
    assert!(c.etcd[0].url().starts_with("https://"));

    // The CLI reads the cluster through the same etcd3 section, and switches over through
    // it (the agents see the failover key by their watch).
    let out = run_pgkeel(&["-c", &config, "list"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    for n in &c.nodes {
        assert!(out.stdout.contains(&n.name), "{}", out.stdout);
    }
    let cand = c
        .nodes
        .iter()
        .find(|n| n.name != leader)
        .unwrap()
        .name
        .clone();
    let out = run_pgkeel(&[
        "-c",
        &config,
        "switchover",
        "--leader",
        &leader,
        "--candidate",
        &cand,
        "--force",
    ])
    .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let now = must(
        &c,
        c.wait_new_leader(&leader, Duration::from_secs(60)).await,
    );
    assert_eq!(now, cand);
    must(
        &c,
        c.wait_healthy(2, Duration::from_secs(120))
            .await
            .map(|_| ()),
    );

    let dir = tempfile::tempdir().unwrap();
    let variant = |name: &str, from: &str, to: &str| {
        assert!(yaml.contains(from), "{from:?} not in the config");
        let p = dir.path().join(name);
        std::fs::write(&p, yaml.replace(from, to)).unwrap();
        p.display().to_string()
    };

    // A certificate file that does not exist: --validate-config, the agent and the CLI
    // stop at once, naming the key and the file.
    let missing = dir.path().join("no-such-client.pem");
    let bad = variant(
        "bad.yml",
        &format!("  cert: {}", pki.path("client.pem").display()),
        &format!("  cert: {}", missing.display()),
    );
    let needle = format!("etcd3.cert {}: cannot read it", missing.display());
    let out = run_pgkeel(&["agent", "--validate-config", &bad]).await;
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains(&bad) && out.stderr.contains(&needle),
        "{}",
        out.stderr
    );
    let out = run_pgkeel(&["-c", &bad, "list"]).await;
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(out.stderr.contains(&needle), "{}", out.stderr);
    // A key that is not the certificate's.
    let mismatched = variant(
        "mismatched.yml",
        &format!("  key: {}", pki.path("client.key").display()),
        &format!("  key: {}", pki.path("other.key").display()),
    );
    let out = run_pgkeel(&["agent", "--validate-config", &mismatched]).await;
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains("etcd3.key")
            && out.stderr.contains("is not the key of the certificate"),
        "{}",
        out.stderr
    );

    // A wrong password: the CLI says etcd refused it.
    let wrong = variant(
        "wrong.yml",
        &format!("  password: '{ROOT_PASSWORD}'"),
        "  password: 'not-it'",
    );
    let out = run_pgkeel(&["-c", &wrong, "list"]).await;
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr
            .contains("etcd refused the user name or password"),
        "{}",
        out.stderr
    );

    // Reload: etcd TLS settings changed in the file wait for a restart, and so do new
    // contents of the files the agent runs with; it keeps running and reaching etcd.
    let ni = 0;
    let node = &c.nodes[ni];
    let pid = node.agent_pid().expect("agent pid");
    let copy = dir.path().join("client-copy.pem");
    std::fs::copy(pki.path("client.pem"), &copy).unwrap();
    let moved = yaml.replace(
        &format!("  cert: {}", pki.path("client.pem").display()),
        &format!("  cert: {}", copy.display()),
    );
    std::fs::write(&node.config, &moved).unwrap();
    c.signal_agent(ni, Signal::Hup);
    eventually(Duration::from_secs(20), "the TLS change named", || async {
        anyhow::ensure!(
            log_has(
                &node.log,
                "reload: etcd3 TLS (protocol, cacert, cert, key) changed in"
            ),
            "not yet"
        );
        Ok(())
    })
    .await;
    // The same certificate followed by its CA: other contents, still valid for everyone.
    let chain = std::fs::read_to_string(pki.path("client.pem")).unwrap()
        + &std::fs::read_to_string(pki.path("ca.pem")).unwrap();
    std::fs::write(pki.path("client.pem"), chain).unwrap();
    c.signal_agent(ni, Signal::Hup);
    eventually(
        Duration::from_secs(20),
        "the new certificates named",
        || async {
            anyhow::ensure!(
                log_has(&node.log, "hold new certificates")
                    && log_has(&node.log, "restart it to use them"),
                "not yet"
            );
            Ok(())
        },
    )
    .await;
    std::fs::write(&node.config, &yaml).unwrap();
    assert_eq!(
        node.agent_pid(),
        Some(pid),
        "a reload never stops the agent"
    );
    must(
        &c,
        c.wait_healthy(2, Duration::from_secs(60)).await.map(|_| ()),
    );
}
