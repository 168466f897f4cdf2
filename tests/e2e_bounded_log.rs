//! A megabyte of garbage in `/failover` (issue 11, item 5): it made 1 MB log lines twice
//! per loop per agent (12.6 MB of log in 10 s) and `list` printed it whole. Now the agent
//! logs one bounded warning (200 characters of the value and its size), not once per loop,
//! and `list` prints the same bounded warning. A megabyte candidate name in a well-formed
//! request is refused in one bounded line too.

mod common;

use std::time::Duration;

use common::*;
use pgkeel_localcluster::Timing;

const MB: usize = 1_048_576;

/// Standard base64, for etcd's JSON gateway.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Writes `value` under `key` as is, through etcd's JSON gateway (pgkeel's own client
/// only writes what Patroni would).
async fn put_raw(etcd_url: &str, key: &str, value: &[u8]) {
    let r = reqwest::Client::new()
        .post(format!("{etcd_url}/v3/kv/put"))
        .json(&serde_json::json!({"key": base64(key.as_bytes()), "value": base64(value)}))
        .send()
        .await
        .expect("etcd's gateway answers");
    assert!(
        r.status().is_success(),
        "put {key}: {}",
        r.text().await.unwrap()
    );
}

fn log_of(c: &TestCluster) -> String {
    std::fs::read_to_string(&c.nodes[0].log).unwrap()
}

fn longest_line(text: &str) -> usize {
    text.lines().map(str::len).max().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_megabyte_failover_value_gives_bounded_warnings_logged_once() {
    let (c, _leader) = start_healthy("boundedlog", 1, Timing::fast()).await;
    let before = log_of(&c).len();
    let key = "/service/boundedlog/failover";
    put_raw(&c.etcd[0].url(), key, "x".repeat(MB).as_bytes()).await;
    // Twenty loops of loop_wait 1 s, and the watch event of the write.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let log = log_of(&c);
    let new = &log[before..];
    let warnings: Vec<&str> = new.lines().filter(|l| l.contains(key)).collect();
    println!(
        "{} bytes of log in 20 s, longest line {} bytes; warnings about {key}: {}",
        new.len(),
        longest_line(new),
        warnings.len()
    );
    for w in &warnings {
        println!("  {w}");
    }
    assert_eq!(
        warnings.len(),
        1,
        "logged more than once:\n{}",
        warnings.join("\n")
    );
    assert!(warnings[0].contains("(1048576 bytes)"), "{}", warnings[0]);
    assert!(
        longest_line(new) < 1024,
        "a log line of {} bytes",
        longest_line(new)
    );
    assert!(new.len() < 64 * 1024, "{} bytes of log in 20 s", new.len());

    // `list` shows the same bounded warning once.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgkeel"))
        .arg("-c")
        .arg(&c.nodes[0].config)
        .arg("list")
        .output()
        .expect("pgkeel list");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!(
        "list: {} bytes on stdout, {} on stderr",
        stdout.len(),
        stderr.len()
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("(1048576 bytes)"), "{stderr}");
    assert!(stderr.len() + stdout.len() < 8 * 1024, "{stderr}");

    // A well-formed request for a megabyte-long candidate: the leader cancels it, in one
    // bounded line.
    let before = log.len();
    let request = serde_json::json!({ "leader": "node1", "member": "n".repeat(MB) });
    put_raw(&c.etcd[0].url(), key, request.to_string().as_bytes()).await;
    eventually(Duration::from_secs(20), "the request cancelled", || async {
        let cl = c.load().await?;
        anyhow::ensure!(cl.failover.is_none(), "still there");
        Ok(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = log_of(&c);
    let new = &log[before..];
    let cancelled: Vec<&str> = new.lines().filter(|l| l.contains("cancelled")).collect();
    println!("cancelled: {cancelled:?}");
    assert_eq!(cancelled.len(), 1, "{new}");
    assert!(cancelled[0].contains("(1048576 bytes)"), "{}", cancelled[0]);
    assert!(
        longest_line(new) < 1024,
        "a log line of {} bytes",
        longest_line(new)
    );
}
