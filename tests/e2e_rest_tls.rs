//! The REST API over HTTPS with `verify_client: required`, on a real cluster: the agents
//! publish https api_urls and reach each other with their client certificate, the CLI
//! lists and switches over with `ctl.*` certificates, a client without a certificate and
//! plain HTTP are refused, a failover completes, and a bad certificate path fails
//! `--validate-config` naming the file. Certificates are made by the test.

mod common;

use std::time::Duration;

use common::*;
use pgkeel_core::config::{ClientTls, VerifyServer};
use pgkeel_localcluster::{RestTls, Signal, Timing};
use pgkeel_tls::test_pki::TestPki;

/// A client that trusts the test CA, with no certificate of its own.
fn anonymous(pki: &TestPki) -> reqwest::Client {
    let tls = ClientTls {
        verify: VerifyServer::ChainAndName {
            cafile: Some(pki.path("ca.pem")),
        },
        identity: None,
    };
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .tls_backend_preconfigured(pgkeel_tls::client_config(&tls, "ctl", "ctl.cacert").unwrap())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_required_client_certificates_end_to_end() {
    let pki = TestPki::new();
    let c = start_opts("resttls", 3, Timing::default(), |o| {
        o.rest_tls = Some(RestTls {
            certfile: pki.path("server.pem"),
            keyfile: pki.path("server.key"),
            cafile: pki.path("ca.pem"),
            verify_client: "required".into(),
            client: Some((pki.path("client.pem"), pki.path("client.key"))),
        });
    });
    let mut c = c;
    let leader = must(&c, c.wait_healthy(3, BOOT).await);
    let cl = c.load().await.unwrap();
    for n in &c.nodes {
        let m = cl.member(&n.name).unwrap();
        assert!(
            m.api_url.starts_with("https://"),
            "{}: {}",
            n.name,
            m.api_url
        );
    }

    // The client the agents use (built from a node's own config) reaches a peer that
    // requires client certificates.
    let cfg = pgkeel_core::config::load_file(&c.nodes[0].config)
        .unwrap()
        .config;
    let agent_tls = pgkeel_agent::tls::load(&cfg).unwrap();
    let r = agent_tls
        .peers
        .get(format!("{}/patroni", c.nodes[1].api_url()))
        .send()
        .await
        .expect("the agent's peer client is answered");
    assert_eq!(r.status().as_u16(), 200);

    // Without a client certificate: refused. Plain HTTP to the TLS port: no answer.
    let url = format!("{}/patroni", c.nodes[0].api_url());
    let r = anonymous(&pki).get(&url).send().await;
    assert!(r.is_err(), "answered without a client certificate: {r:?}");
    let plain = format!("http://127.0.0.1:{}/patroni", c.nodes[0].api_port);
    let r = http_code("GET", &plain).await;
    assert!(r.is_err(), "plain HTTP answered: {r:?}");

    // The CLI with ctl.certfile/keyfile and restapi.cafile (the node's own config).
    let config = c.nodes[0].config.display().to_string();
    let out = run_pgkeel(&["-c", &config, "list"]).await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    for n in &c.nodes {
        assert!(out.stdout.contains(&n.name), "{}", out.stdout);
    }
    let li = c.index_of(&leader).unwrap();
    let cand = c.nodes[(li + 1) % 3].name.clone();
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
        c.wait_healthy(3, Duration::from_secs(120))
            .await
            .map(|_| ()),
    );

    // A CLI whose config has no client certificate is refused by the members; as
    // patronictl does, it then falls back to the DCS (the switchover still happens).
    let dir = tempfile::tempdir().unwrap();
    let nocert = dir.path().join("ctl.yml");
    let yaml = std::fs::read_to_string(&c.nodes[0].config).unwrap();
    let yaml = yaml
        .replace(
            &format!("  certfile: {}\n", pki.path("client.pem").display()),
            "",
        )
        .replace(
            &format!("  keyfile: {}\n", pki.path("client.key").display()),
            "",
        );
    std::fs::write(&nocert, yaml).unwrap();
    let out = run_pgkeel(&[
        "-c",
        &nocert.display().to_string(),
        "switchover",
        "--leader",
        &cand,
        "--candidate",
        &leader,
        "--force",
    ])
    .await;
    assert!(
        out.stdout
            .contains("Could not switchover using Patroni api, falling back to DCS"),
        "the API answered a CLI without a client certificate: {}{}",
        out.stdout,
        out.stderr
    );
    let now = must(&c, c.wait_new_leader(&cand, Duration::from_secs(60)).await);
    must(
        &c,
        c.wait_healthy(3, Duration::from_secs(120))
            .await
            .map(|_| ()),
    );

    // Failover: the leader's agent and PostgreSQL die; a replica takes over.
    let ni = c.index_of(&now).unwrap();
    c.signal_node(ni, Signal::Kill);
    c.reap_agent(ni);
    let next = must(&c, c.wait_new_leader(&now, Duration::from_secs(90)).await);
    assert_ne!(next, now);

    // A certificate path that does not exist fails --validate-config, naming the file.
    let bad = dir.path().join("bad.yml");
    let missing = dir.path().join("no-such-cert.pem");
    let yaml = std::fs::read_to_string(&c.nodes[0].config)
        .unwrap()
        .replace(
            &format!("certfile: {}", pki.path("server.pem").display()),
            &format!("certfile: {}", missing.display()),
        );
    std::fs::write(&bad, yaml).unwrap();
    let out = run_pgkeel(&["agent", "--validate-config", &bad.display().to_string()]).await;
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains(&format!(
            "restapi.certfile {}: cannot read it",
            missing.display()
        )),
        "{}",
        out.stderr
    );
}
