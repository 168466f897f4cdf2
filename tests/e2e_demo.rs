//! `pgkeel demo` as a new user runs it (the real binary, its printed output followed as the
//! README's tour does): the REST API's unsafe methods need the credentials it prints, every
//! file holding a password is private to the user that needs it, and Ctrl-C leaves no
//! process of the demo behind, an agent restarted by hand with the printed command included.

mod common;

use std::io::BufRead;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// From start to "Press Ctrl-C": etcd, initdb, a clone per replica.
const UP: Duration = Duration::from_secs(180);

/// A running `pgkeel demo` in its own TMPDIR, and what the test started beside it.
struct Demo {
    child: Child,
    /// Everything it printed up to "Press Ctrl-C to stop everything."
    out: Vec<String>,
    /// `<TMPDIR>/pgkeel-demo-<pid>`, which Ctrl-C removes.
    dir: PathBuf,
    /// Processes the test started (an agent restarted by hand), ended on drop if still there.
    started: Vec<i32>,
    _tmp: tempfile::TempDir,
}

impl Demo {
    fn start(nodes: u8) -> Demo {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_pgkeel"))
            .args(["demo", "--nodes", &nodes.to_string()])
            .env("TMPDIR", tmp.path())
            .env_remove("PGKEEL_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting pgkeel demo");
        let dir = tmp.path().join(format!("pgkeel-demo-{}", child.id()));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        // Reads to the end: the demo stops when its output closes (a pipe into a program
        // that exited), so its status line must keep being drained.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).split(b'\n') {
                let Ok(line) = line else { break };
                let _ = tx.send(String::from_utf8_lossy(&line).to_string());
            }
        });
        let mut demo = Demo {
            child,
            out: Vec::new(),
            dir,
            started: Vec::new(),
            _tmp: tmp,
        };
        let deadline = Instant::now() + UP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with("Press Ctrl-C");
                    demo.out.push(line);
                    if done {
                        break;
                    }
                }
                Err(e) => panic!(
                    "the demo did not come up within {UP:?} ({e}); it printed:\n{}",
                    demo.out.join("\n")
                ),
            }
        }
        demo
    }

    /// The line after the first one that starts with `prefix` (trimmed), and that one.
    fn line(&self, prefix: &str) -> (usize, &str) {
        self.out
            .iter()
            .enumerate()
            .map(|(i, l)| (i, l.trim()))
            .find(|(_, l)| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{}", self.out.join("\n")))
    }

    /// Each node's REST API base URL, from the "REST API" section.
    fn api_urls(&self) -> Vec<String> {
        let (start, _) = self.line("REST API");
        self.out[start + 1..]
            .iter()
            .map_while(|l| l.trim().split_once(": http://"))
            .map(|(_, rest)| {
                let url = rest.split_whitespace().next().unwrap_or_default();
                format!("http://{}", url.trim_end_matches("/patroni"))
            })
            .collect()
    }

    /// `(user, password)` from "... need user U, password P):".
    fn credentials(&self) -> (String, String) {
        let (_, l) = self.line("REST API");
        let rest = l.split_once("need user ").expect("credentials printed").1;
        let (user, rest) = rest.split_once(", password ").expect("password printed");
        (user.to_string(), rest.trim_end_matches("):").to_string())
    }

    /// Each node's config file, from the "Config files:" section.
    fn configs(&self) -> Vec<PathBuf> {
        let (start, _) = self.line("Config files:");
        self.out[start + 1..]
            .iter()
            .map_while(|l| l.trim().split_once(": "))
            .map(|(_, rest)| PathBuf::from(rest.split_whitespace().next().unwrap_or_default()))
            .collect()
    }

    /// Sends SIGINT (Ctrl-C) and waits for the demo to exit.
    fn interrupt(&mut self, within: Duration) {
        signal("INT", self.child.id() as i32);
        let deadline = Instant::now() + within;
        while self
            .child
            .try_wait()
            .expect("waiting for the demo")
            .is_none()
        {
            assert!(
                Instant::now() < deadline,
                "the demo did not exit within {within:?} of Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            signal("INT", self.child.id() as i32);
            let deadline = Instant::now() + Duration::from_secs(60);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for &pid in &self.started {
            signal("TERM", pid);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.started.iter().any(|p| alive(*p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        // Whatever of the demo is still there (only after a failure): its processes name
        // its directory in their arguments.
        for pid in self.started.iter().copied().chain(naming(&self.dir)) {
            signal("KILL", pid);
        }
    }
}

fn signal(sig: &str, pid: i32) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Whether a process with this pid exists (and is not a zombie).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Live processes with an argument that names something under `dir` (an agent's config, a
/// guardian's or a postmaster's data directory).
fn naming(dir: &Path) -> Vec<i32> {
    let want = dir.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| alive(*pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                c.split(|b| *b == 0)
                    .any(|arg| arg.windows(want.len()).any(|w| w == want))
            })
        })
        .collect()
}

/// Runs one line of the demo's output in a shell, as a user pastes it.
fn paste(line: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", line])
        .stdin(Stdio::null())
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

async fn request(
    method: &str,
    url: &str,
    body: Option<serde_json::Value>,
    auth: Option<(&str, &str)>,
) -> anyhow::Result<u16> {
    let mut req = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?
        .request(reqwest::Method::from_bytes(method.as_bytes())?, url);
    if let Some((user, password)) = auth {
        req = req.basic_auth(user, Some(password));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await?;
    let code = r.status().as_u16();
    if code >= 500 {
        eprintln!(
            "{method} {url}: {code} {}",
            r.text().await.unwrap_or_default()
        );
    }
    Ok(code)
}

/// Files under `dir` whose bytes contain one of `secrets`.
fn holding(dir: &Path, secrets: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(path),
                Ok(t) if t.is_file() => {
                    let bytes = std::fs::read(&path).unwrap_or_default();
                    if secrets
                        .iter()
                        .any(|s| bytes.windows(s.len()).any(|w| w == s.as_bytes()))
                    {
                        found.push(path);
                    }
                }
                _ => {}
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_turns_rest_authentication_on_and_prints_the_credentials() {
    // reqwest's rustls backend has no provider of its own (see crates/tls).
    pgkeel_tls::install_default_provider();
    let demo = Demo::start(2);
    let (user, password) = demo.credentials();
    assert!(password.len() >= 16, "a weak password: {password:?}");
    let urls = demo.api_urls();
    assert_eq!(urls.len(), 2, "{}", demo.out.join("\n"));

    // Unsafe methods without (or with wrong) credentials: 401, as Patroni answers.
    for url in &urls {
        let restart = format!("{url}/restart");
        let config = format!("{url}/config");
        let patch = Some(serde_json::json!({"loop_wait": 2}));
        assert_eq!(request("POST", &restart, None, None).await.unwrap(), 401);
        assert_eq!(
            request("PATCH", &config, patch.clone(), None)
                .await
                .unwrap(),
            401
        );
        assert_eq!(
            request("PATCH", &config, patch, Some((&user, "wrong")))
                .await
                .unwrap(),
            401
        );
    }
    // With the printed ones they work (loop_wait is the demo's own 2 s: nothing changes).
    let patched = request(
        "PATCH",
        &format!("{}/config", urls[0]),
        Some(serde_json::json!({"loop_wait": 2})),
        Some((&user, &password)),
    )
    .await
    .unwrap();
    assert_eq!(patched, 200);
    let (_, curl) = demo.line("e.g. curl");
    assert!(
        curl.contains(&format!("-u {user}:{password}")),
        "the example does not carry the credentials: {curl}"
    );

    // The CLI commands the demo prints keep working, unsafe ones too: the node configs carry
    // restapi.authentication.
    let configs = demo.configs();
    assert_eq!(configs.len(), 2, "{}", demo.out.join("\n"));
    let ctl = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_pgkeel"))
            .arg("-c")
            .arg(&configs[0])
            .args(args)
            .env_remove("PATRONICTL_CONFIG_FILE")
            .output()
            .expect("pgkeel");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, text) = ctl(&["list"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = ctl(&["reload", "demo", "--force"]);
    assert_eq!(code, Some(0), "{text}");
    // (Not a bare "401": a port number may hold it.)
    assert!(!text.contains("status code=401"), "{text}");

    // The files holding a password are the node configs and the pgpass files, no other
    // (a log, postgresql.conf, etcd's data): each 0600, the configs owned by the agents' user
    // (this one), the pgpass files by PostgreSQL's (the data directory's owner), as libpq
    // requires.
    let replication = format!("{}-replication", pgkeel_localcluster::SUPERUSER_PASSWORD);
    let mut files = holding(&demo.dir, &[&password, &replication]);
    files.sort();
    let me = std::fs::metadata(&demo.dir).unwrap().uid();
    let mut expected: Vec<(PathBuf, u32)> = Vec::new();
    for (i, config) in configs.iter().enumerate() {
        let node_dir = demo.dir.join(format!("node{}", i + 1));
        let postgres = std::fs::metadata(node_dir.join("data")).unwrap().uid();
        assert_ne!(
            postgres, me,
            "the data directory is owned by PostgreSQL's user"
        );
        expected.push((config.clone(), me));
        expected.push((node_dir.join("pgpass"), postgres));
    }
    expected.sort();
    assert_eq!(
        files,
        expected.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>(),
        "the files holding a password"
    );
    for (f, owner) in &expected {
        let meta = std::fs::metadata(f).unwrap();
        assert_eq!(
            (meta.mode() & 0o777, meta.uid()),
            (0o600, *owner),
            "{}: mode {:o}, owner uid {} (want 600 and uid {owner})",
            f.display(),
            meta.mode() & 0o777,
            meta.uid()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_ends_an_agent_restarted_by_hand_with_the_printed_command() {
    // reqwest's rustls backend has no provider of its own (see crates/tls).
    pgkeel_tls::install_default_provider();
    let mut demo = Demo::start(2);
    let (i, kill) = demo.line("kill -9 ");
    let kill = kill.to_string();
    let restart = demo.out[i + 2].trim().to_string();
    assert!(
        demo.out[i + 1].starts_with("then bring") && restart.contains(" agent "),
        "{}",
        demo.out.join("\n")
    );
    let leader = demo.out[i + 1]
        .split_whitespace()
        .nth(2)
        .expect("then bring NODE back")
        .to_string();
    let n: usize = leader.trim_start_matches("node").parse().expect("node N");
    let url = demo.api_urls()[n - 1].clone();

    // The tour: lose the leader's host, then bring its agent back by hand.
    paste(&kill);
    let pid: i32 = paste(&format!("{restart}\necho $!"))
        .trim()
        .parse()
        .expect("the restarted agent's pid");
    demo.started.push(pid);
    let deadline = Instant::now() + Duration::from_secs(60);
    while request("GET", &format!("{url}/liveness"), None, None)
        .await
        .ok()
        != Some(200)
    {
        let log = demo.dir.join(format!("{leader}/agent.log"));
        assert!(
            Instant::now() < deadline && alive(pid),
            "the restarted agent {pid} (alive: {}) did not answer within 60 s; {}:\n{}",
            alive(pid),
            log.display(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Ctrl-C: the demo stops everything and removes its directory; nothing of it survives,
    // the agent it did not start included.
    demo.interrupt(Duration::from_secs(90));
    assert!(!demo.dir.exists(), "{} was not removed", demo.dir.display());
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(pid) || !naming(&demo.dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "30 s after the demo ended: the restarted agent {pid} alive: {}, processes naming {}: {:?}",
            alive(pid),
            demo.dir.display(),
            naming(&demo.dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
