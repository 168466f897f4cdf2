//! Processes: free ports, PostgreSQL's and agents' pids, signals, resident memory.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::bail;
use nix::sys::signal::{kill, Signal as NixSignal};
use nix::unistd::Pid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Kill,
    Stop,
    Cont,
    Term,
    /// A reload (`systemctl reload`).
    Hup,
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The postmaster's pid, from the first line of `postmaster.pid`.
pub(crate) fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// The postmaster and all its children (backends, walsenders, background workers).
pub(crate) fn postgres_pids(data_dir: &Path) -> Vec<i32> {
    let Some(pm) = postmaster_pid(data_dir) else {
        return Vec::new();
    };
    let mut pids = vec![pm];
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if parent_of(pid) == Some(pm) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Every process's pid and arguments, from `/proc` (others than this one).
fn processes() -> Vec<(i32, Vec<Vec<u8>>)> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(<[u8]>::to_vec)
                .collect();
            Some((pid, args))
        })
        .collect()
}

/// `pgkeel agent ... CONFIG` processes for `config`, however they were started: by this
/// crate, or by hand with the command the demo prints (CONFIG absolute, or relative to the
/// process's working directory). Call it while `config` exists: paths are compared resolved.
pub(crate) fn agent_pids(config: &Path) -> Vec<i32> {
    use std::os::unix::ffi::OsStrExt;
    let Ok(want) = config.canonicalize() else {
        return Vec::new();
    };
    processes()
        .into_iter()
        .filter(|(pid, args)| {
            args.get(1).is_some_and(|a| a == b"agent")
                && args.iter().skip(2).any(|a| {
                    let arg = Path::new(std::ffi::OsStr::from_bytes(a));
                    let path = match std::fs::read_link(format!("/proc/{pid}/cwd")) {
                        Ok(cwd) if arg.is_relative() => cwd.join(arg),
                        _ => arg.to_path_buf(),
                    };
                    path.canonicalize().is_ok_and(|p| p == want)
                })
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// The fence guardians (`pgkeel fence-guard DATA_DIR`) of `data_dir`.
pub(crate) fn guardian_pids(data_dir: &Path) -> Vec<i32> {
    let want = data_dir.as_os_str().as_encoded_bytes();
    processes()
        .into_iter()
        .filter(|(_, args)| {
            args.get(1).is_some_and(|a| a == b"fence-guard")
                && args.get(2).is_some_and(|a| a == want)
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// Whether `pid` still runs (a zombie has ended: only its parent's wait is missing).
pub(crate) fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// Waits up to `timeout` for every one of `pids` (not children of this process) to end;
/// returns those still running.
pub(crate) fn wait_gone(pids: &[i32], timeout: Duration) -> Vec<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        let left: Vec<i32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

pub(crate) fn signal_all(pids: &[i32], sig: Signal) {
    let s = match sig {
        Signal::Kill => NixSignal::SIGKILL,
        Signal::Stop => NixSignal::SIGSTOP,
        Signal::Cont => NixSignal::SIGCONT,
        Signal::Term => NixSignal::SIGTERM,
        Signal::Hup => NixSignal::SIGHUP,
    };
    for &p in pids {
        let _ = kill(Pid::from_raw(p), s);
    }
}

pub(crate) fn wait_child(child: &mut Child, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("process {} did not exit within {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) fn rss_kb(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
