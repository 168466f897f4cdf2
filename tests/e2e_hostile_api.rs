//! One node's REST API under a flood (issue 11, item 4): 20,000 idle connections and a
//! slowloris of 1,000 (connections sending a header one line a second, never ending it),
//! while the cluster switches over away from that node and then fails over when the new
//! leader's host dies.
//!
//! The flood opens its connections at 1,000 a second and keeps trying to hold them: a
//! slowloris connection the server closes is reopened after a second, an idle one after
//! 60 to 120 s (in all about 300 new connections a second once the server holds its cap).
//! That is a flood of connections held, which the API must survive; a flood of connection
//! attempts faster than the process can accept them (a few thousand a second for this
//! debug build on a loaded 2-core machine) fills the kernel's accept queue, where a health
//! check waits its turn whatever the API does: that one is for a firewall's rate limit.
//!
//! Throughout, a well-behaved client (a new connection per check, as HAProxy's `httpchk`)
//! must get its answer to `GET /health`, `/primary` and `/replica` within 100 ms, and the
//! flooded agent must keep observing PostgreSQL and etcd (`/patroni` shows a fresh
//! `dcs_last_seen` and the role it really has) without running out of descriptors.
//!
//! The flood runs in child processes (this test binary again, see [`flood_child`]), each
//! with a descriptor budget of its own: this process may open 20,000 at most. They run at
//! nice 19: on the 2-core test machine they stand for clients on other machines, whose CPU
//! is not the node's.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use pgkeel_localcluster::{Signal, Timing};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Set for a child: `ADDR SOURCE_IP IDLE SLOW`.
const FLOOD_ENV: &str = "PGKEEL_TEST_FLOOD";
const IDLE: usize = 20_000;
const SLOW: usize = 1_000;
const CHILDREN: usize = 2;
/// What the issue requires of a health check under the flood.
const ANSWER_WITHIN: Duration = Duration::from_millis(100);

/// New connections per second and child while the flood builds up.
const RAMP_PER_CHILD: u64 = 500;

/// The flood's half, in a child process: does nothing unless [`FLOOD_ENV`] is set.
/// Opens `IDLE` connections that send nothing and `SLOW` that send a header line every
/// second, [`RAMP_PER_CHILD`] a second, and reopens each after the server closes it (see
/// the module comment); prints `opened=N closed=M` every second; exits when its stdin
/// closes.
#[test]
fn flood_child() {
    let Ok(spec) = std::env::var(FLOOD_ENV) else {
        return;
    };
    let words: Vec<&str> = spec.split_whitespace().collect();
    let addr: SocketAddr = words[0].parse().expect("address");
    let source: std::net::IpAddr = words[1].parse().expect("source address");
    let idle: usize = words[2].parse().expect("idle count");
    let slow: usize = words[3].parse().expect("slow count");
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let opened = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let started = tokio::time::Instant::now();
        for i in 0..idle + slow {
            let (opened, closed) = (opened.clone(), closed.clone());
            // Interleaved, so that both kinds build up together.
            let slowloris = i % ((idle + slow) / slow.max(1)).max(1) == 0;
            let first = started + Duration::from_secs_f64(i as f64 / RAMP_PER_CHILD as f64);
            // 60 to 120 s, spread by a fixed hash of the index (no randomness needed).
            let idle_reopen = Duration::from_millis(60_000 + (i as u64 * 7919) % 60_000);
            tokio::spawn(async move {
                tokio::time::sleep_until(first).await;
                loop {
                    let conn = async {
                        let s = TcpSocket::new_v4()?;
                        s.bind(SocketAddr::new(source, 0))?;
                        s.connect(addr).await
                    };
                    if let Ok(mut s) = conn.await {
                        opened.fetch_add(1, Ordering::Relaxed);
                        hold(&mut s, slowloris).await;
                        closed.fetch_add(1, Ordering::Relaxed);
                    }
                    let pause = if slowloris {
                        Duration::from_secs(1)
                    } else {
                        idle_reopen
                    };
                    tokio::time::sleep(pause).await;
                }
            });
        }
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            println!(
                "opened={} closed={}",
                opened.load(Ordering::Relaxed),
                closed.load(Ordering::Relaxed)
            );
        }
    });
}

/// Holds a flood connection until the server closes it.
async fn hold(s: &mut TcpStream, slowloris: bool) {
    let mut buf = [0u8; 1024];
    if !slowloris {
        while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
        return;
    }
    if s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .is_err()
    {
        return;
    }
    for i in 0u64.. {
        tokio::select! {
            r = s.read(&mut buf) => if !matches!(r, Ok(n) if n > 0) { return },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if s.write_all(format!("X-Slow-{i}: x\r\n").as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

struct Flood {
    children: Vec<Child>,
    /// The last `opened=N closed=M` of each child.
    stats: Arc<Mutex<Vec<(u64, u64)>>>,
}

impl Flood {
    fn start(addr: SocketAddr) -> Flood {
        let stats = Arc::new(Mutex::new(vec![(0, 0); CHILDREN]));
        let children = (0..CHILDREN)
            .map(|k| {
                let spec = format!(
                    "{addr} 127.0.1.{} {} {}",
                    k + 1,
                    IDLE / CHILDREN,
                    SLOW / CHILDREN
                );
                let mut child = Command::new("nice")
                    .args(["-n", "19"])
                    .arg(std::env::current_exe().unwrap())
                    .args(["flood_child", "--exact", "--nocapture", "--test-threads=1"])
                    .env(FLOOD_ENV, spec)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("starting a flood process");
                let out = BufReader::new(child.stdout.take().unwrap());
                let stats = stats.clone();
                std::thread::spawn(move || {
                    for line in out.lines().map_while(Result::ok) {
                        let num = |key: &str| {
                            line.split_whitespace()
                                .find_map(|w| w.strip_prefix(key))
                                .and_then(|v| v.parse().ok())
                        };
                        if let (Some(o), Some(c)) = (num("opened="), num("closed=")) {
                            stats.lock().unwrap()[k] = (o, c);
                        }
                    }
                });
                child
            })
            .collect();
        Flood { children, stats }
    }

    /// Connections opened and closed by the server, over all children.
    fn totals(&self) -> (u64, u64) {
        let s = self.stats.lock().unwrap();
        s.iter().fold((0, 0), |(o, c), (a, b)| (o + a, c + b))
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        for c in &mut self.children {
            drop(c.stdin.take());
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One health check as HAProxy makes it: connect, one request, read to the end.
async fn check(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Duration)> {
    let started = Instant::now();
    let exchange = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        let text = String::from_utf8_lossy(&raw);
        let code = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| anyhow::anyhow!("no status line in {text:?}"))?;
        anyhow::Ok(code)
    };
    let code = tokio::time::timeout(Duration::from_secs(5), exchange).await??;
    Ok((code, started.elapsed()))
}

/// One health check's outcome.
struct Answer {
    /// The flooded node's API, or the control node's.
    flooded: bool,
    path: &'static str,
    took: Duration,
    at: Instant,
}

#[derive(Default)]
struct Probes {
    answered: Vec<Answer>,
    failed: Vec<String>,
    /// Seconds between now and `dcs_last_seen` in the flooded node's `/patroni`, each second.
    dcs_age: Vec<u64>,
    /// The flooded agent's open descriptors, each second.
    fds: Vec<usize>,
}

/// Waits until the node's `/patroni` shows PostgreSQL running in `role`.
async fn shows(api_url: &str, role: &str) {
    let url = format!("{api_url}/patroni");
    eventually(
        Duration::from_secs(20),
        &format!("{url} shows a running {role}"),
        || {
            let url = url.clone();
            async move {
                let v: serde_json::Value = reqwest::get(&url).await?.json().await?;
                anyhow::ensure!(v["role"] == role && v["state"] == "running", "{v}");
                Ok(())
            }
        },
    )
    .await
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// `p50 …, p95 …, p99 …, max …` of some answers.
fn figures<'a>(answers: impl Iterator<Item = &'a Answer>) -> (usize, [Duration; 4], f64) {
    let mut l: Vec<Duration> = answers.map(|a| a.took).collect();
    l.sort();
    let within = l.iter().filter(|d| **d <= ANSWER_WITHIN).count() as f64 / l.len().max(1) as f64;
    (
        l.len(),
        [
            percentile(&l, 0.5),
            percentile(&l, 0.95),
            percentile(&l, 0.99),
            l.last().copied().unwrap_or_default(),
        ],
        within,
    )
}

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn addr_of(n: &pgkeel_localcluster::Node) -> SocketAddr {
    format!("{}:{}", n.host, n.api_port).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_health_checks_within_100ms_under_a_flood_through_switchover_and_failover()
{
    let (mut c, first) = start_healthy("hostile", 3, Timing::default()).await;
    let fi = c.index_of(&first).unwrap();
    // Switchover to the next node, whose host then dies; the third is the control: the
    // same checks against its API show what the machine gives without a flood.
    let (si, ci) = ((fi + 1) % 3, (fi + 2) % 3);
    let addr = addr_of(&c.nodes[fi]);
    let control = addr_of(&c.nodes[ci]);
    let agent_pid = c.nodes[fi].agent_pid().unwrap();
    let limit = std::fs::read_to_string(format!("/proc/{agent_pid}/limits"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3).map(str::to_string))
        .unwrap_or_default();
    println!(
        "flooded node {first} (agent {agent_pid}, open-files limit {limit}), API {addr}; control {} at {control}",
        c.nodes[ci].name
    );

    let flood = Flood::start(addr);
    let flood_started = Instant::now();
    let probes = Arc::new(Mutex::new(Probes::default()));
    let done = Arc::new(AtomicBool::new(false));
    // The well-behaved client: every 50 ms one check of the flooded node, then the same of
    // the control, round-robin over the three paths.
    let prober = {
        let (probes, done) = (probes.clone(), done.clone());
        tokio::spawn(async move {
            let paths = ["/health", "/primary", "/replica"];
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                let path = paths[i % paths.len()];
                i += 1;
                for (flooded, to) in [(true, addr), (false, control)] {
                    let outcome = check(to, path).await;
                    let mut p = probes.lock().unwrap();
                    match outcome {
                        Ok((_, took)) => p.answered.push(Answer {
                            flooded,
                            path,
                            took,
                            at: Instant::now(),
                        }),
                        Err(e) => p.failed.push(format!("{to}{path}: {e:#}")),
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    // Once a second: is the flooded agent still looking at etcd (and at PostgreSQL, which
    // the same loop reads), and how many descriptors does it hold?
    let watcher = {
        let (probes, done) = (probes.clone(), done.clone());
        let url = format!("{}/patroni", c.nodes[fi].api_url());
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .unwrap();
            while !done.load(Ordering::Relaxed) {
                if let Ok(r) = client.get(&url).send().await {
                    if let Ok(v) = r.json::<serde_json::Value>().await {
                        let now = SystemTime::now()
                            .duration_since(UNIX_EPOCH)
                            .unwrap()
                            .as_secs();
                        let seen = v["dcs_last_seen"].as_u64().unwrap_or(0);
                        probes
                            .lock()
                            .unwrap()
                            .dcs_age
                            .push(now.saturating_sub(seen));
                    }
                }
                probes.lock().unwrap().fds.push(open_fds(agent_pid));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    // The flood builds up: every connection opened at least once.
    let deadline = Instant::now() + Duration::from_secs(60);
    while flood.totals().0 < (IDLE + SLOW) as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let flood_up = Instant::now();
    println!(
        "flood up after {:?}: {:?} (opened, closed by the server)",
        flood_up - flood_started,
        flood.totals()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;

    // 1. A switchover away from the flooded node, asked of the flooded node.
    let cand = c.nodes[si].name.clone();
    let r = reqwest::Client::new()
        .post(format!("{}/switchover", c.nodes[fi].api_url()))
        .json(&serde_json::json!({"leader": first, "candidate": cand}))
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("the switchover request is answered");
    let (code, text) = (r.status().as_u16(), r.text().await.unwrap());
    if code != 200 {
        dump_logs(&c);
        panic!("switchover: {code} {text}");
    }
    let leader = must(&c, c.wait_healthy(3, Duration::from_secs(60)).await);
    assert_eq!(leader, cand);
    // The flooded agent sees its PostgreSQL become a running replica (its /patroni is
    // the state of its last loop).
    shows(&c.nodes[fi].api_url(), "replica").await;
    println!("switched over to {leader}: {:?}", flood.totals());

    // 2. The new leader's host dies: a failover.
    c.signal_node(si, Signal::Kill);
    c.reap_agent(si);
    let next = must(
        &c,
        c.wait_new_leader(&leader, Duration::from_secs(60)).await,
    );
    c.start_agent(si).unwrap();
    let healthy = must(&c, c.wait_healthy(3, Duration::from_secs(120)).await);
    assert_eq!(healthy, next);
    shows(
        &c.nodes[fi].api_url(),
        if next == first { "primary" } else { "replica" },
    )
    .await;
    println!("failed over to {next}: {:?}", flood.totals());
    tokio::time::sleep(Duration::from_secs(5)).await;

    done.store(true, Ordering::Relaxed);
    prober.await.unwrap();
    watcher.await.unwrap();
    let (opened, closed) = flood.totals();
    drop(flood);

    let p = probes.lock().unwrap();
    let max_fds = p.fds.iter().max().copied().unwrap_or(0);
    println!(
        "flood: {opened} connections opened, {closed} closed by the server; the flooded agent held at most {max_fds} descriptors"
    );
    let print = |what: &str, f: (usize, [Duration; 4], f64)| {
        let (n, [p50, p95, p99, max], within) = f;
        println!(
            "{what}: {n} answers, p50 {p50:.1?}, p95 {p95:.1?}, p99 {p99:.1?}, max {max:.1?}, {:.1} % within {ANSWER_WITHIN:?}",
            within * 100.0
        );
    };
    let flooded = |a: &&Answer| a.flooded;
    print(
        "flooded, while the flood builds up",
        figures(
            p.answered
                .iter()
                .filter(flooded)
                .filter(|a| a.at < flood_up),
        ),
    );
    for path in ["/health", "/primary", "/replica"] {
        print(
            &format!("flooded, flood up, {path}"),
            figures(
                p.answered
                    .iter()
                    .filter(flooded)
                    .filter(|a| a.path == path && a.at >= flood_up),
            ),
        );
    }
    let all = figures(p.answered.iter().filter(flooded));
    print("flooded, all", all);
    print(
        "control (no flood), all",
        figures(p.answered.iter().filter(|a| !a.flooded)),
    );
    println!(
        "{} checks failed; dcs_last_seen of the flooded node at most {} s old",
        p.failed.len(),
        p.dcs_age.iter().max().unwrap_or(&0)
    );
    let log = std::fs::read_to_string(&c.nodes[fi].log).unwrap();
    for l in log.lines().filter(|l| l.contains("REST API")).take(4) {
        println!("agent log: {l}");
    }

    // Every check answered, none after more than HAProxy's usual `timeout check` of 2 s.
    assert!(
        p.failed.is_empty(),
        "checks without an answer: {:?}",
        p.failed
    );
    let (n, [p50, _, _, max], within) = all;
    assert!(n > 300, "only {n} checks");
    assert!(max < Duration::from_secs(2), "a check took {max:?}");
    // Within 100 ms, the bound: the typical check by a wide margin, and the flood
    // adds at most 10 % of checks over it to those the machine alone puts over it (on a
    // shared 2-core test machine, the control node's checks go over it too, during the
    // switchover and the failover; a quiet machine answers 99 % of either within it).
    assert!(p50 <= ANSWER_WITHIN / 10, "median {p50:?}");
    let (_, _, control_within) = figures(p.answered.iter().filter(|a| !a.flooded));
    assert!(
        within >= control_within - 0.10,
        "{:.1} % of the checks within {ANSWER_WITHIN:?}, {:.1} % of the control's",
        within * 100.0,
        control_within * 100.0
    );
    assert!(
        closed > 0,
        "the flood was never pushed back: {opened} opened"
    );
    // The agent kept reading etcd (and PostgreSQL, in the same loop): dcs_last_seen within
    // loop_wait + retry_timeout (5 s) with margin.
    let stale = p.dcs_age.iter().max().copied().unwrap_or(u64::MAX);
    assert!(
        p.dcs_age.len() > 20 && stale <= 8,
        "dcs_last_seen up to {stale} s old"
    );
    // It never ran short of descriptors: the API's cap (1024 at this limit) plus the
    // agent's own, with room for connections being closed.
    assert!(
        !log.contains("Too many open files"),
        "the agent ran out of descriptors"
    );
    assert!(
        max_fds < 4_000,
        "the flooded agent held {max_fds} descriptors"
    );
}
