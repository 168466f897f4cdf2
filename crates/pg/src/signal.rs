//! Signalling the postmaster and its backends, with no file of the data directory read:
//! on a storage stall a read of `postmaster.pid` can hang, and whoever must stop the
//! server then (the fence, the guardian, a kill of a hung primary) must not hang with it.
//! Only `/proc` is read. The postmaster is remembered once seen ([`PostmasterCache`]),
//! together with its start time, so that a pid reused by another program is never
//! signalled.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A process as `/proc/PID/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub state: char,
    pub ppid: i32,
    /// Process group: `pg_ctl` makes the postmaster a group leader.
    pub pgrp: i32,
    /// Clock ticks after boot at which the process started: with the pid, its identity.
    pub start: u64,
}

/// `/proc/PID/stat`: the fields after the parenthesised name (which may hold spaces).
pub fn stat(pid: i32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // state is field 3 of the line, ppid 4, pgrp 5, starttime 22: here 0, 1, 2 and 19.
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Whether a `SigPnd:`/`ShdPnd:` mask of `/proc/PID/status` holds SIGKILL (signal 9: bit 8).
fn mask_has_sigkill(hex: &str) -> bool {
    u64::from_str_radix(hex.trim(), 16).is_ok_and(|m| m & (1 << 8) != 0)
}

/// The process has SIGKILL pending (it sleeps uninterruptibly, in D state, on a stalled
/// disk). The kernel acts on SIGKILL before any return to user space, so such a process
/// never runs another instruction of its own: it can neither commit nor answer a client.
/// It only finishes the system call it is in (a write to its WAL lands locally, and a
/// rewind takes care of that) and dies.
pub fn sigkill_pending(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|text| {
        text.lines().any(|l| {
            l.strip_prefix("SigPnd:")
                .or_else(|| l.strip_prefix("ShdPnd:"))
                .is_some_and(mask_has_sigkill)
        })
    })
}

/// A process that is stopped (SIGSTOP, a frozen cgroup shows as such too): it cannot act
/// on SIGQUIT.
pub fn is_stopped(pid: i32) -> bool {
    matches!(
        stat(pid),
        Some(ProcStat {
            state: 'T' | 't',
            ..
        })
    )
}

/// One process, by pid and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub start: u64,
}

impl Proc {
    pub fn of(pid: i32) -> Option<Proc> {
        stat(pid).map(|s| Proc {
            pid,
            start: s.start,
        })
    }

    /// Still this process, and not a zombie (a zombie has released everything it held and
    /// runs no code: it is gone for our purposes).
    pub fn alive(&self) -> bool {
        stat(self.pid).is_some_and(|s| s.start == self.start && s.state != 'Z' && s.state != 'X')
    }

    /// Gone, or doomed: SIGKILL is pending and it will never run its own code again (see
    /// [`sigkill_pending`]).
    pub fn finished(&self) -> bool {
        !self.alive() || sigkill_pending(self.pid)
    }

    fn signal(&self, sig: Signal) {
        if self.alive() {
            let _ = kill(Pid::from_raw(self.pid), sig);
        }
    }
}

/// Every process whose parent is `parent` (all of PostgreSQL's processes are the
/// postmaster's direct children).
pub fn children(parent: i32) -> Vec<Proc> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|p| {
            let s = stat(p)?;
            (s.ppid == parent).then_some(Proc {
                pid: p,
                start: s.start,
            })
        })
        .collect()
}

/// SIGKILL to the postmaster and every process it started; the children are listed first,
/// before the postmaster's death orphans them, and listed again afterwards: a child forked
/// in between appears in `/proc` before the fork returns, so the second listing holds it.
/// Each PostgreSQL child leaves the postmaster's process group (`setsid`) as it starts; a
/// group signal as well catches one forked that very moment. Returns every process
/// signalled.
pub fn kill_tree(postmaster: Proc) -> Vec<Proc> {
    let mut all = children(postmaster.pid);
    if postmaster.alive() && stat(postmaster.pid).is_some_and(|s| s.pgrp == postmaster.pid) {
        let _ = nix::sys::signal::killpg(Pid::from_raw(postmaster.pid), Signal::SIGKILL);
    }
    postmaster.signal(Signal::SIGKILL);
    for c in &all {
        c.signal(Signal::SIGKILL);
    }
    for c in children(postmaster.pid) {
        if !all.contains(&c) {
            c.signal(Signal::SIGKILL);
            all.push(c);
        }
    }
    all.push(postmaster);
    all
}

/// SIGTERM to another process of pgkeel's own (a fence guardian standing down), if it is
/// still the process it was.
pub fn terminate_guardian(p: Proc) {
    p.signal(Signal::SIGTERM);
}

/// SIGQUIT (PostgreSQL's immediate shutdown) to a postmaster that can act on it.
pub fn quit(postmaster: Proc) {
    postmaster.signal(Signal::SIGQUIT);
}

/// After this long without the postmaster exiting on SIGQUIT, the fence SIGKILLs it.
const ESCALATE_AFTER: Duration = Duration::from_secs(3);

/// Immediate shutdown of the postmaster now; SIGKILL of it and of its children if it is
/// still there after [`ESCALATE_AFTER`], or at once if it is stopped (SIGSTOP, a frozen
/// host coming back piecemeal): a stopped postmaster cannot act on SIGQUIT, while its
/// backends, which a signal to it alone did not stop, may still be committing. Killing
/// the children too frees the shared memory a new postmaster needs. Returns what was
/// signalled, so repeated calls escalate instead of repeating themselves. Reads no file of
/// the data directory (`postmaster` comes from the cache), so a stalled disk cannot hold
/// the fence up.
pub fn stop_postmaster(
    postmaster: Option<Proc>,
    signalled: Option<(Proc, Instant)>,
) -> Option<(Proc, Instant)> {
    let pm = postmaster?;
    match signalled {
        Some((p, at)) if p == pm => {
            if at.elapsed() >= ESCALATE_AFTER || is_stopped(pm.pid) {
                tracing::error!(
                    "fencing: postmaster {} did not exit on SIGQUIT; sending SIGKILL to it and its children",
                    pm.pid
                );
                kill_tree(pm);
            }
            signalled
        }
        _ => {
            tracing::error!(
                "fencing: my etcd lease may expire before it can be renewed; immediate shutdown of PostgreSQL (postmaster {})",
                pm.pid
            );
            if is_stopped(pm.pid) {
                kill_tree(pm);
            } else {
                quit(pm);
            }
            Some((pm, Instant::now()))
        }
    }
}

/// Why [`terminate`] could not finish.
#[derive(Debug, thiserror::Error)]
#[error(
    "PostgreSQL processes {pids:?} are still running {waited:?} after SIGKILL, without it pending"
)]
pub struct NotGone {
    pub pids: Vec<i32>,
    pub waited: Duration,
}

/// Stops the postmaster and all its processes, whatever state they are in: an immediate
/// shutdown if the postmaster can act on it and does so within `grace`; otherwise (or if it
/// is stopped) SIGKILL of the postmaster and every backend. Waits up to `wait` for all of
/// them to be finished: gone, or in uninterruptible sleep with SIGKILL pending (a stalled
/// disk), where they can never commit or answer again (see [`sigkill_pending`]). Blocking
/// (it sleeps between looks): call it off the async runtime.
pub fn terminate(postmaster: Proc, grace: Duration, wait: Duration) -> Result<(), NotGone> {
    let started = Instant::now();
    let mut procs = children(postmaster.pid);
    procs.push(postmaster);
    if !is_stopped(postmaster.pid) {
        quit(postmaster);
        if wait_gone(&procs, grace) {
            return Ok(());
        }
    }
    // A stopped postmaster cannot act on SIGQUIT while its backends may still commit; a
    // hung one did not act on it in time.
    for p in kill_tree(postmaster) {
        if !procs.contains(&p) {
            procs.push(p);
        }
    }
    for p in &procs {
        p.signal(Signal::SIGKILL);
    }
    if wait_gone(&procs, wait) {
        let doomed: Vec<i32> = procs.iter().filter(|p| p.alive()).map(|p| p.pid).collect();
        if !doomed.is_empty() {
            tracing::warn!(
                "PostgreSQL processes {doomed:?} sleep uninterruptibly with SIGKILL pending \
                 (a stalled disk?): they can never run again and die once the disk answers"
            );
        }
        return Ok(());
    }
    Err(NotGone {
        pids: procs
            .iter()
            .filter(|p| !p.finished())
            .map(|p| p.pid)
            .collect(),
        waited: started.elapsed(),
    })
}

fn wait_gone(procs: &[Proc], within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if procs.iter().all(Proc::finished) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The postmaster last seen running from a data directory's `postmaster.pid`, so that it
/// can be checked and signalled through `/proc` alone.
#[derive(Debug, Default)]
pub struct PostmasterCache {
    seen: Mutex<Option<Proc>>,
}

impl PostmasterCache {
    /// Records what `postmaster.pid` says now (`None`: no live postmaster).
    pub fn set(&self, pid: Option<i32>) {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = pid.and_then(Proc::of);
    }

    /// The remembered postmaster, if it still runs.
    pub fn alive(&self) -> Option<Proc> {
        let p = (*self.seen.lock().unwrap_or_else(|e| e.into_inner()))?;
        p.alive().then_some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_state_parent_and_start_of_this_process() {
        let s = stat(std::process::id() as i32).expect("own stat");
        assert!(matches!(s.state, 'R' | 'S'), "{}", s.state);
        assert_eq!(s.ppid, nix::unistd::getppid().as_raw());
        let me = Proc::of(std::process::id() as i32).unwrap();
        assert!(me.alive());
        assert!(
            !Proc {
                start: me.start + 1,
                ..me
            }
            .alive(),
            "another start time is another process"
        );
    }

    #[test]
    fn sigkill_is_bit_eight_of_the_pending_masks() {
        assert!(mask_has_sigkill("0000000000000100"));
        assert!(mask_has_sigkill("0000000000004100"));
        assert!(!mask_has_sigkill("0000000000000000"));
        assert!(!mask_has_sigkill("0000000000000080")); // signal 8, SIGFPE
        assert!(!mask_has_sigkill("garbage"));
        assert!(!sigkill_pending(std::process::id() as i32));
    }

    #[test]
    fn terminate_kills_a_stopped_process_tree() {
        // A parent that ignores SIGQUIT-like requests while stopped, with a child.
        let mut parent = std::process::Command::new("sh")
            .args(["-c", "sleep 60 & wait"])
            .spawn()
            .unwrap();
        let pid = parent.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(5);
        while children(pid).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let kids = children(pid);
        assert_eq!(kids.len(), 1, "the sleep child");
        let _ = kill(Pid::from_raw(pid), Signal::SIGSTOP);
        let _ = kill(Pid::from_raw(kids[0].pid), Signal::SIGSTOP);
        let pm = Proc::of(pid).unwrap();
        // Reap the parent as it dies, or it stays a zombie (which counts as gone anyway).
        let reaper = std::thread::spawn(move || parent.wait());
        terminate(pm, Duration::from_millis(100), Duration::from_secs(5)).unwrap();
        // `terminate` returns once each is finished: gone, or with SIGKILL pending (under
        // load the kernel may not have run the kill yet; the test failed that way).
        assert!(kids[0].finished() && pm.finished());
        let deadline = Instant::now() + Duration::from_secs(5);
        while (kids[0].alive() || pm.alive()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !kids[0].alive() && !pm.alive(),
            "still running 5 s after SIGKILL"
        );
        reaper.join().unwrap().unwrap();
    }
}
