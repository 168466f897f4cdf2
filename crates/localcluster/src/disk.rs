//! A data directory on storage that can be made to stop completing I/O, for real.
//!
//! The node's directory is a FUSE pass-through mount (`bindfs -f`) of a directory beside
//! it. Stopping the bindfs daemon (SIGSTOP) makes every read, write, open, stat and fsync
//! below the mount wait for an answer that does not come, exactly as processes wait on a
//! dead NFS server or a SAN path that stopped answering: the page cache does not help
//! (FUSE sends opens and lookups to the daemon). Like I/O on a hard NFS mount, the wait is
//! killable, so SIGKILL still ends PostgreSQL's processes. A file system mounted inside the
//! backing directory (a small tmpfs for the WAL) is reached through the mount as well, so it
//! stalls with the rest. Device-mapper (`dmsetup
//! suspend`) would stall a block device instead, but this kernel has no device-mapper.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::procs::{self, Signal};

pub struct StallableDisk {
    /// Where the node's files appear (the mount point).
    pub at: PathBuf,
    daemon: Child,
}

impl StallableDisk {
    /// Mounts `backing` at `at` through bindfs and waits until the mount answers.
    pub fn mount(backing: &Path, at: &Path) -> anyhow::Result<StallableDisk> {
        for d in [backing, at] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        // Multithreaded: single-threaded bindfs answers one request at a time, so every
        // fsync (a commit, a checkpoint) held up every open and read behind it, and a
        // connection to a node in a checkpoint could take seconds. (Its man page's warning
        // is about a race in the user and permission mapping options, which are not used.)
        let daemon = Command::new("bindfs")
            .arg("-f")
            .arg("--multithreaded")
            .arg(backing)
            .arg(at)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting bindfs (Debian package bindfs; FUSE needs /dev/fuse)")?;
        let disk = StallableDisk {
            at: at.to_path_buf(),
            daemon,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !disk.mounted() {
            if Instant::now() > deadline {
                bail!("bindfs did not mount {} within 10 s", at.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(disk)
    }

    fn mounted(&self) -> bool {
        let at = self.at.to_string_lossy();
        std::fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(at.as_ref()))
        })
    }

    /// The bindfs daemon's pid.
    pub fn pid(&self) -> u32 {
        self.daemon.id()
    }

    /// From now on no I/O below the mount completes.
    pub fn stall(&self) {
        procs::signal_all(&[self.daemon.id() as i32], Signal::Stop);
    }

    /// I/O completes again; what waited goes on.
    pub fn resume(&self) {
        procs::signal_all(&[self.daemon.id() as i32], Signal::Cont);
    }
}

impl Drop for StallableDisk {
    fn drop(&mut self) {
        self.resume();
        // Lazy: a process still inside the mount does not keep it (and us) waiting.
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}
