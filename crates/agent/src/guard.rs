//! The fence guardian: a small process of its own that stops the primary at its fence
//! deadline even when the agent is gone.
//!
//! The fence thread lives inside the agent: a `kill -9` of the agent alone (OOM killer,
//! a crash, an operator) takes it away while PostgreSQL keeps running as a primary. The
//! lease then runs out, a replica is promoted, and the old primary, with nobody to stop
//! it, still takes writes: two writable primaries. (The simulation found this on its
//! first runs; Patroni leaves it to the watchdog.) So the agent starts a guardian,
//! `pgkeel fence-guard DATA_DIR`, in a session of its own, and tells it through a pipe,
//! on every fence tick, until when the primary may stay writable. When the pipe closes
//! the guardian keeps the last word: at that deadline it stops the postmaster, then
//! exits; if the last word was "nothing to guard" it exits at once.
//!
//! The guardian measures time on CLOCK_BOOTTIME, which keeps counting while the machine
//! is suspended (etcd's clock does too).

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use pgkeel_pg::signal::Proc;

/// How often the guardian looks, when nothing arrives.
const TICK: Duration = Duration::from_millis(50);

/// One line of the pipe: `until <ms> [pid <pid>]` (writable for that many more
/// milliseconds, 0: stop now; the postmaster as the agent last saw it) or `off` (not a
/// primary, or paused: nothing to guard). With the pid the guardian never reads
/// `postmaster.pid`, which a stalled disk could keep it waiting on.
pub fn encode(until: Option<Duration>, pid: Option<i32>) -> String {
    match (until, pid) {
        (Some(d), Some(p)) => format!("until {} pid {p}\n", d.as_millis()),
        (Some(d), None) => format!("until {}\n", d.as_millis()),
        (None, _) => "off\n".into(),
    }
}

/// A line of the pipe: the deadline, and the postmaster's pid when the agent knew it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word {
    pub until: Option<Duration>,
    pub pid: Option<i32>,
}

/// `None` for a line that is not one of ours.
pub fn decode(line: &str) -> Option<Word> {
    let line = line.trim();
    if line == "off" {
        return Some(Word {
            until: None,
            pid: None,
        });
    }
    let rest = line.strip_prefix("until ")?.trim();
    let (ms, pid) = match rest.split_once(" pid ") {
        Some((ms, pid)) => (ms, Some(pid.trim().parse::<i32>().ok().filter(|p| *p > 0)?)),
        None => (rest, None),
    };
    let ms: u64 = ms.trim().parse().ok()?;
    Some(Word {
        until: Some(Duration::from_millis(ms)),
        pid,
    })
}

/// What the guardian does on a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardStep {
    /// Nothing to do yet.
    Wait,
    /// The deadline passed: stop the postmaster.
    Stop,
    /// The agent is gone and nothing is (or remains) to guard.
    Exit,
}

/// The guardian's rule, shared by the real guardian and the simulator's: `deadline` is the
/// last word heard (`None`: nothing to guard), `closed` says the agent is gone, `running`
/// that a postmaster still runs. Time is any ordered clock.
pub fn guard_step<T: PartialOrd>(
    deadline: Option<T>,
    now: T,
    closed: bool,
    running: bool,
) -> GuardStep {
    if closed && (deadline.is_none() || !running) {
        return GuardStep::Exit;
    }
    match deadline {
        Some(d) if now >= d && running => GuardStep::Stop,
        _ => GuardStep::Wait,
    }
}

fn boottime() -> Duration {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_BOOTTIME)
        .map(Duration::from)
        .unwrap_or_default()
}

enum Msg {
    Line(Word),
    Closed,
}

/// The guardian process's main loop: reads the pipe on stdin until it closes, and stops the
/// postmaster of `data_dir` whenever the last deadline it heard of has passed.
pub fn run_guard(data_dir: &Path) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            if let Some(m) = decode(&line) {
                if tx.send(Msg::Line(m)).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(Msg::Closed);
    });
    let mut deadline: Option<Duration> = None; // on CLOCK_BOOTTIME
    let mut closed = false;
    let mut signalled = None;
    // The postmaster the agent named (pid and start time, so a reused pid is never taken
    // for it); without one, postmaster.pid says.
    let mut told: Option<Proc> = None;
    loop {
        if closed {
            std::thread::sleep(TICK);
        } else {
            match rx.recv_timeout(TICK) {
                Ok(Msg::Line(word)) => {
                    deadline = word.until.map(|d| boottime() + d);
                    if word.pid != told.map(|p| p.pid) {
                        told = word.pid.and_then(Proc::of);
                    }
                }
                Ok(Msg::Closed) | Err(mpsc::RecvTimeoutError::Disconnected) => closed = true,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        let postmaster = match told {
            Some(p) => p.alive().then_some(p),
            None => pgkeel_pg::live_postmaster(data_dir).and_then(Proc::of),
        };
        let running = postmaster.is_some();
        match guard_step(deadline, boottime(), closed, running) {
            GuardStep::Exit => return,
            GuardStep::Stop => {
                if closed && signalled.is_none() {
                    tracing::error!("fence guardian: the agent is gone and the lease of this primary may have expired; stopping PostgreSQL");
                }
                signalled = pgkeel_pg::signal::stop_postmaster(postmaster, signalled);
            }
            GuardStep::Wait => signalled = None,
        }
    }
}

/// Fence guardians of `data_dir` other than `mine`: left by an agent of this node that was
/// killed (they outlive it by design). Found through `/proc` alone.
pub(crate) fn others(data_dir: &Path, mine: Option<u32>) -> Vec<Proc> {
    let want = data_dir.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| Some(*pid as u32) != mine && *pid as u32 != std::process::id())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.get(1) == Some(&&b"fence-guard"[..]) && args.get(2) == Some(&want)
            })
        })
        .filter_map(Proc::of)
        .collect()
}

/// The agent's end of the pipe.
pub(crate) struct GuardLink {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl GuardLink {
    /// Starts `pgkeel fence-guard DATA_DIR` from this very executable, in its own session
    /// (a signal to the agent's process group must not take it along).
    pub fn spawn(data_dir: &Path) -> std::io::Result<GuardLink> {
        use std::os::unix::process::CommandExt;
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.arg("fence-guard")
            .arg(data_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        // SAFETY: setsid is async-signal-safe and touches nothing of the parent's.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()
                    .map(|_| ())
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take();
        if let Some(pipe) = &stdin {
            // The fence thread must never block on a guardian that stopped reading (a full
            // pipe): a write that would block is skipped, the next tick sends a fresh one.
            use nix::fcntl::{fcntl, FcntlArg, OFlag};
            let flags = fcntl(pipe, FcntlArg::F_GETFL).map_err(std::io::Error::from)?;
            let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
            fcntl(pipe, FcntlArg::F_SETFL(flags)).map_err(std::io::Error::from)?;
        }
        Ok(GuardLink { child, stdin })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Tells the guardian for how much longer the primary may stay writable (`None`:
    /// nothing to guard). Sent on every fence tick: a few bytes twenty times a second.
    pub fn tell(&mut self, remaining: Option<Duration>, postmaster: Option<i32>) {
        let Some(stdin) = self.stdin.as_mut() else {
            return;
        };
        let line = encode(remaining, postmaster);
        match stdin.write_all(line.as_bytes()) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => {
                self.stdin = None;
                tracing::error!(
                    "the fence guardian is gone; the fence thread alone guards this primary"
                );
            }
        }
    }
}

impl Drop for GuardLink {
    /// Closing the pipe leaves the guardian with the last deadline it heard; it exits on
    /// its own (at once if there is nothing to guard). Reap it if it already did.
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.try_wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guardian_stops_at_the_deadline_and_leaves_when_nothing_is_left() {
        use GuardStep::*;
        assert_eq!(guard_step(Some(10), 9, false, true), Wait);
        assert_eq!(guard_step(Some(10), 10, false, true), Stop);
        assert_eq!(
            guard_step(Some(10), 9, true, true),
            Wait,
            "the agent's last word holds"
        );
        assert_eq!(guard_step(Some(10), 11, true, true), Stop);
        assert_eq!(guard_step(Some(10), 11, true, false), Exit);
        assert_eq!(guard_step(None::<u32>, 11, true, true), Exit);
        assert_eq!(guard_step(None::<u32>, 11, false, true), Wait);
    }

    #[test]
    fn lines_round_trip_and_junk_is_ignored() {
        for until in [
            None,
            Some(Duration::from_millis(0)),
            Some(Duration::from_millis(7250)),
        ] {
            for pid in [None, Some(4242)] {
                let word = decode(&encode(until, pid)).unwrap();
                assert_eq!(word.until, until);
                assert_eq!(word.pid, pid.filter(|_| until.is_some()));
            }
        }
        assert_eq!(decode("until x"), None);
        assert_eq!(decode("until 5 pid x"), None);
        assert_eq!(decode("until 5 pid -1"), None);
        assert_eq!(decode("hello"), None);
    }
}
