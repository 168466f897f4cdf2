//! Issue 12 item 3: SIGHUP (`systemctl reload`) and `POST /reload` read the config file
//! again and apply what can change at once (tags into the member key, local PostgreSQL
//! parameters) within a loop; a change that needs a restart is named; a file that no longer
//! loads changes nothing; the agent never stops.

mod common;

use std::time::Duration;

use common::*;
use pgkeel_localcluster::{Signal, Timing};

async fn show(dsn: &str, param: &str) -> anyhow::Result<String> {
    let client = connect(dsn).await?;
    Ok(client
        .query_one(&format!("SHOW {param}"), &[])
        .await?
        .get::<_, String>(0))
}

fn log_has(path: &std::path::Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_post_reload_apply_the_file_and_never_stop_the_agent() {
    let (c, leader) = start_healthy("reload", 2, Timing::default()).await;
    let ri = (0..2).find(|i| c.nodes[*i].name != leader).unwrap();
    let node = &c.nodes[ri];
    let pid = node.agent_pid().expect("agent pid");
    let original = std::fs::read_to_string(&node.config).unwrap();

    // SIGHUP: a tag and a local parameter.
    let edited = original.replacen(
        "  pgpass: ",
        "  parameters:\n    work_mem: 9MB\n  pgpass: ",
        1,
    ) + "\ntags:\n  nofailover: true\n  new_tag: new_value\n";
    std::fs::write(&node.config, &edited).unwrap();
    c.signal_agent(ri, Signal::Hup);
    eventually(Duration::from_secs(20), "SIGHUP applied", || async {
        let cl = c.load().await?;
        let m = cl
            .member(&node.name)
            .ok_or_else(|| anyhow::anyhow!("no member key"))?;
        anyhow::ensure!(m.tags.nofailover, "tag not published yet");
        anyhow::ensure!(show(&node.dsn(), "work_mem").await? == "9MB", "work_mem");
        Ok(())
    })
    .await;
    assert_eq!(
        node.agent_pid(),
        Some(pid),
        "SIGHUP must not stop the agent"
    );
    assert!(log_has(
        &node.log,
        "reload: tags, postgresql.parameters changed and applied"
    ));

    // POST /reload: Patroni's answer, and a change that needs a restart is named.
    let moved = edited
        .replace("nofailover: true", "nofailover: false")
        .replacen("data_dir: ", "data_dir: /elsewhere", 1);
    std::fs::write(&node.config, &moved).unwrap();
    let r = reqwest::Client::new()
        .post(format!("{}/reload", node.api_url()))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(r.text().await.unwrap(), "reload scheduled");
    eventually(Duration::from_secs(20), "POST /reload applied", || async {
        let cl = c.load().await?;
        let m = cl
            .member(&node.name)
            .ok_or_else(|| anyhow::anyhow!("no member key"))?;
        anyhow::ensure!(!m.tags.nofailover, "tag not cleared yet");
        anyhow::ensure!(
            log_has(&node.log, "postgresql.data_dir changed in"),
            "restart not named yet"
        );
        Ok(())
    })
    .await;

    // A file that no longer loads: nothing changes, the agent runs on.
    std::fs::write(&node.config, "scope: [unclosed\n").unwrap();
    c.signal_agent(ri, Signal::Hup);
    eventually(Duration::from_secs(20), "bad file reported", || async {
        anyhow::ensure!(
            log_has(&node.log, "the running configuration stays"),
            "not yet"
        );
        Ok(())
    })
    .await;
    std::fs::write(&node.config, &original).unwrap();
    assert_eq!(node.agent_pid(), Some(pid));
    must(&c, c.wait_healthy(2, Duration::from_secs(30)).await);
    assert_eq!(show(&node.dsn(), "work_mem").await.unwrap(), "9MB");
}

/// Issue 12 item 3: a reload applies `log.level` at once, as Patroni applies its `log`
/// section on SIGHUP. The reload's own "changed and applied" line (INFO) is written after
/// the level changed: hidden when the level went to WARNING, shown when it came back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_the_log_level_at_once() {
    let (c, leader) = start_healthy("reloadlog", 2, Timing::default()).await;
    let ri = (0..2).find(|i| c.nodes[*i].name != leader).unwrap();
    let node = &c.nodes[ri];
    let original = std::fs::read_to_string(&node.config).unwrap();
    // With a change that needs a restart: its WARNING line shows the reload ran.
    let before = std::fs::read_to_string(&node.log).unwrap_or_default().len();
    std::fs::write(
        &node.config,
        format!(
            "{}\nlog:\n  level: WARNING\n",
            original.replacen("namespace: ", "namespace: /elsewhere", 1)
        ),
    )
    .unwrap();
    c.signal_agent(ri, Signal::Hup);
    eventually(
        Duration::from_secs(20),
        "the reload to WARNING ran",
        || async {
            let text = std::fs::read_to_string(&node.log).unwrap_or_default();
            anyhow::ensure!(
                text[before..].contains("restart the agent to apply"),
                "not yet: {}",
                &text[before..]
            );
            Ok(())
        },
    )
    .await;
    let mark = std::fs::read_to_string(&node.log).unwrap().len();
    std::fs::write(&node.config, format!("{original}\nlog:\n  level: INFO\n")).unwrap();
    c.signal_agent(ri, Signal::Hup);
    eventually(Duration::from_secs(20), "INFO lines again", || async {
        let text = std::fs::read_to_string(&node.log).unwrap_or_default();
        anyhow::ensure!(
            text[mark..].contains("reload: log.level changed and applied"),
            "not yet"
        );
        Ok(())
    })
    .await;
    let text = std::fs::read_to_string(&node.log).unwrap();
    let quiet = &text[before..mark];
    assert!(
        !quiet.contains("reload: log.level changed and applied"),
        "an INFO line was written after the level went to WARNING: {quiet}"
    );
}
