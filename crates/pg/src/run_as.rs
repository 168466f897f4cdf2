//! Running PostgreSQL programs and writing files as the data directory's owner.
//!
//! PostgreSQL refuses to run as root, and the agent may. When the agent is root, every
//! PostgreSQL program runs as the data directory's owner (Debian's `postgres` when the
//! directory does not exist yet) and every file pgkeel writes for PostgreSQL is chowned to
//! that owner. When the agent is not root, everything simply runs as the agent's user.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use nix::unistd::{Gid, Uid, User};

/// Who PostgreSQL programs run as.
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    pub uid: Uid,
    pub gid: Gid,
    pub home: PathBuf,
    /// The user's name, for `USER` and `LOGNAME` (looked up once, not per spawn).
    pub name: Option<String>,
    /// Switch user when spawning: only when the agent is root.
    pub switch: bool,
    /// The owner came from an existing data directory (not the `postgres` default), so it
    /// holds for as long as the directory does.
    pub from_data_dir: bool,
}

impl Owner {
    /// The owner of `data_dir` (when it exists and is not root's), else `postgres`; the
    /// agent's own user when it is not root.
    pub fn resolve(data_dir: &Path) -> anyhow::Result<Owner> {
        if !Uid::effective().is_root() {
            let uid = Uid::effective();
            let user = User::from_uid(uid).ok().flatten();
            return Ok(Owner {
                uid,
                gid: Gid::effective(),
                home: user
                    .as_ref()
                    .map(|u| u.dir.clone())
                    .unwrap_or_else(|| PathBuf::from("/")),
                name: user.map(|u| u.name),
                switch: false,
                from_data_dir: true,
            });
        }
        let existing = fs::metadata(data_dir)
            .ok()
            .map(|m| Uid::from_raw(m.uid()))
            .filter(|uid| !uid.is_root());
        let user = match existing {
            Some(uid) => User::from_uid(uid)
                .with_context(|| format!("looking up the owner (uid {uid}) of {}", data_dir.display()))?
                .ok_or_else(|| anyhow!("{} is owned by uid {uid}, which has no passwd entry", data_dir.display()))?,
            None => User::from_name("postgres")
                .context("looking up the postgres user")?
                .ok_or_else(|| {
                    anyhow!(
                        "pgkeel runs as root and PostgreSQL refuses to: create a 'postgres' user \
                         (apt-get install postgresql-15 does) or run pgkeel as the data directory's owner"
                    )
                })?,
        };
        Ok(Owner {
            uid: user.uid,
            gid: user.gid,
            home: user.dir,
            name: Some(user.name),
            switch: true,
            from_data_dir: existing.is_some(),
        })
    }

    /// Gives `path` to the owner (a no-op when not root).
    pub fn chown(&self, path: &Path) -> anyhow::Result<()> {
        if self.switch {
            nix::unistd::chown(path, Some(self.uid), Some(self.gid))
                .with_context(|| format!("chown {} to uid {}", path.display(), self.uid))?;
        }
        Ok(())
    }

    /// Creates `dir` (and missing parents, owned by the owner too) with mode 0700 unless it
    /// exists. Existing parents are left alone.
    pub fn create_dir(&self, dir: &Path) -> anyhow::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            if !parent.as_os_str().is_empty() && !parent.exists() {
                self.create_dir(parent)?;
            }
        }
        fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("chmod 0700 {}", dir.display()))?;
        self.chown(dir)
    }

    /// Writes `contents` to `path` atomically (temp file + rename), owned by the owner with
    /// `mode`, so PostgreSQL never reads a half-written config file.
    pub fn write_file(&self, path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
        let name = path
            .file_name()
            .ok_or_else(|| anyhow!("{} has no file name", path.display()))?;
        let mut tmp_name = OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(".pgkeel-tmp");
        let tmp = path.with_file_name(tmp_name);
        let write = || -> anyhow::Result<()> {
            let _ = fs::remove_file(&tmp);
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&tmp)?;
            f.write_all(contents.as_bytes())?;
            f.sync_all()?;
            // The umask may have narrowed the mode; set it exactly.
            fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
            self.chown(&tmp)?;
            fs::rename(&tmp, path)?;
            Ok(())
        };
        write().with_context(|| format!("writing {}", path.display()))
    }
}

/// One PostgreSQL program invocation, run as the owner.
pub(crate) struct Invocation<'a> {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(&'a str, OsString)>,
    /// What the invocation is about, for error messages (usually the data directory).
    pub subject: &'a Path,
    pub timeout: Duration,
}

/// What a finished program printed.
#[derive(Debug)]
pub(crate) struct Output {
    pub stdout: String,
}

/// Environment variables that would silently redirect libpq or PostgreSQL programs away
/// from what pgkeel tells them.
const SCRUBBED_ENV: &[&str] = &[
    "PGDATA",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOPTIONS",
    "PGTARGETSESSIONATTRS",
];

impl Invocation<'_> {
    pub fn command(&self, owner: &Owner) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args);
        for k in SCRUBBED_ENV {
            cmd.env_remove(k);
        }
        // Patroni's configuration variables carry passwords; no PostgreSQL program needs
        // them (Patroni takes them out of its environment as it reads them).
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("PATRONI_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        // The agent's cwd (often /root) is not readable by postgres; initdb and pg_ctl
        // complain about it.
        cmd.current_dir("/");
        if owner.switch {
            // std drops supplementary groups (setgroups(0)) itself when root sets a uid
            // without explicit groups, so root's groups do not leak into PostgreSQL.
            cmd.uid(owner.uid.as_raw()).gid(owner.gid.as_raw());
            cmd.env("HOME", &owner.home);
            if let Some(name) = &owner.name {
                cmd.env("USER", name).env("LOGNAME", name);
            }
        }
        cmd.stdin(Stdio::null());
        cmd.kill_on_drop(true);
        cmd
    }

    fn describe(&self) -> String {
        let name = self
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.program.display().to_string());
        format!("{name} for {}", self.subject.display())
    }

    /// Runs to completion within the timeout; a non-zero exit is an error carrying the tail
    /// of what the program printed.
    pub async fn run(&self, owner: &Owner) -> anyhow::Result<Output> {
        let what = self.describe();
        let mut cmd = self.command(owner);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        tracing::debug!(program = %self.program.display(), args = ?self.args, "running");
        let child = cmd
            .spawn()
            .with_context(|| format!("{what}: cannot run {}", self.program.display()))?;
        let out = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| anyhow!("{what}: did not finish within {:?}", self.timeout))?
            .with_context(|| format!("{what}: waiting for it"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            let printed = if stderr.trim().is_empty() {
                &stdout
            } else {
                &stderr
            };
            bail!("{what} failed ({}): {}", out.status, tail(printed));
        }
        Ok(Output { stdout })
    }
}

/// The last lines of a program's output, short enough for an error message.
pub(crate) fn tail(text: &str) -> String {
    const LINES: usize = 15;
    const CHARS: usize = 2000;
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let mut s = lines[lines.len().saturating_sub(LINES)..].join("\n");
    if s.len() > CHARS {
        let mut cut = s.len() - CHARS;
        while !s.is_char_boundary(cut) {
            cut += 1;
        }
        s = format!("...{}", &s[cut..]);
    }
    if s.is_empty() {
        "(no output)".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_lines() {
        let text: String = (0..40).map(|i| format!("line {i}\n")).collect();
        let t = tail(&text);
        assert!(t.starts_with("line 25"), "{t}");
        assert!(t.ends_with("line 39"));
        assert_eq!(tail("  \n"), "(no output)");
    }
}
