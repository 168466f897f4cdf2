//! A shutdown always ends: SIGTERM ends the agent within `SHUTDOWN_BOUND` whatever its
//! PostgreSQL's state (here a data directory that holds files but no cluster, so the state
//! can never be read and no stop can ever be observed), without spinning; a second signal
//! ends it at once. (The case, a data directory that is a regular file, is now
//! refused before the agent starts: see `a_data_dir_that_is_a_file_is_refused_at_start`.)

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use pgkeel_core::decide::SHUTDOWN_BOUND;
use pgkeel_localcluster::{LocalCluster, Timing};

/// Starts an extra member `name` beside node 0 (a copy of its config: other name, ports and
/// data directory), whose data directory holds a stray file and no cluster.
fn start_broken_member(
    c: &LocalCluster,
    name: &str,
) -> (tokio::process::Child, std::path::PathBuf) {
    let node = &c.nodes[0];
    let dir = node.dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("stray"), "not a cluster\n").unwrap();
    postgres_owns(&data);
    let config = copied_config(node, name, &dir, &data);
    let log = dir.join("agent.log");
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pgkeel"))
        .arg("agent")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    (child, log)
}

/// The data directory belongs to the user PostgreSQL runs as (the agent checks it at start).
fn postgres_owns(dir: &Path) {
    if nix::unistd::Uid::effective().is_root() {
        let pg = nix::unistd::User::from_name("postgres")
            .unwrap()
            .expect("a postgres user");
        for p in [dir.to_path_buf(), dir.join("stray")] {
            nix::unistd::chown(&p, Some(pg.uid), Some(pg.gid)).unwrap();
        }
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// Waits until the agent's log says it is running its loop.
async fn wait_looping(log: &Path) {
    eventually(
        Duration::from_secs(60),
        "the extra agent running its loop",
        || async {
            let text = std::fs::read_to_string(log)?;
            anyhow::ensure!(
                text.contains("state cannot be read") || text.contains("no action"),
                "{text}"
            );
            Ok(())
        },
    )
    .await;
}

fn term(child: &tokio::process::Child) {
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_an_agent_whose_postgres_cannot_be_read_and_a_second_signal_at_once() {
    let (c, _leader) = start_healthy("shutdown", 1, Timing::fast()).await;

    // One SIGTERM: the agent exits within the bound, and its loop waits between rounds.
    let (mut child, log) = start_broken_member(&c, "broken1");
    wait_looping(&log).await;
    let asked = Instant::now();
    term(&child);
    let status = tokio::time::timeout(SHUTDOWN_BOUND + Duration::from_secs(15), child.wait())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "still running {:?} after SIGTERM",
                SHUTDOWN_BOUND + Duration::from_secs(15)
            )
        })
        .unwrap();
    let took = asked.elapsed();
    let text = std::fs::read_to_string(&log).unwrap();
    let rounds = text.matches("shutting down: stopping PostgreSQL").count();
    println!(
        "shutdown with an unreadable server: exit {:?} after {:.2}s, {rounds} stop rounds logged, {} log bytes",
        status.code(),
        took.as_secs_f64(),
        text.len()
    );
    assert!(status.success(), "{text}");
    assert!(
        took >= SHUTDOWN_BOUND.saturating_sub(Duration::from_secs(1)),
        "exited before the bound: the stop cannot have been seen"
    );
    // loop_wait is 1 s in the fast profile: at most 4 rounds per second (pace::MAX_IMMEDIATE).
    let secs = took.as_secs_f64().ceil() as usize;
    assert!(
        rounds <= 4 * secs + 4,
        "{rounds} stop rounds in {secs} s: the loop spun"
    );
    assert!(
        text.contains("exiting: the shutdown bound passed"),
        "{text}"
    );
    // The copied config was written 0644: the agent says that its passwords are exposed.
    assert!(
        text.contains("readable by users other than its owner (mode 0644)"),
        "{text}"
    );
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(
        mode(&c.nodes[0].config),
        0o600,
        "the cluster's own config files are private"
    );

    // A second signal: at once.
    let (mut child, log) = start_broken_member(&c, "broken2");
    wait_looping(&log).await;
    term(&child);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    term(&child);
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("a second SIGTERM did not end the agent within 5 s")
        .unwrap();
    println!(
        "second signal: exit {:?} after {:.2}s",
        status.code(),
        asked.elapsed().as_secs_f64()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("a second signal, exiting at once"), "{text}");
    // The cluster is unharmed.
    must(&c, c.wait_healthy(1, Duration::from_secs(30)).await);
}
