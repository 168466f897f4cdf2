//! Running an operator's command (a custom bootstrap method, `post_bootstrap`, a replica
//! creation method) as Patroni runs it: from the agent's working directory (Patroni's
//! acceptance suite names its scripts by relative paths), with the agent's environment
//! (less the `PATRONI_*` variables, which Patroni removes from its own) and the variables
//! the caller adds, and waiting for it. What it prints goes to the agent's log line by line,
//! and the run is logged with its exit status and duration.
//!
//! It runs as the data directory's owner, as PostgreSQL's programs do: what it writes is
//! the data directory PostgreSQL will start from.

use std::ffi::OsString;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::run_as::Owner;

/// Bound on one command: restoring a large backup takes as long as it takes (as
/// pg_basebackup, which has the same bound).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// How a command ended.
#[derive(Debug)]
pub(crate) enum Ran {
    Exited(ExitStatus),
    /// It could not be started (no such file, not executable...).
    NotStarted(std::io::Error),
}

impl Ran {
    pub(crate) fn success(&self) -> bool {
        matches!(self, Ran::Exited(s) if s.success())
    }

    /// Patroni's `code=...`: the exit code, or the signal that ended it.
    pub(crate) fn code(&self) -> String {
        use std::os::unix::process::ExitStatusExt;
        match self {
            Ran::Exited(s) => match (s.code(), s.signal()) {
                (Some(c), _) => c.to_string(),
                (None, Some(sig)) => format!("-{sig}"),
                (None, None) => "unknown".into(),
            },
            Ran::NotStarted(_) => "None".into(),
        }
    }
}

/// `argv` as one line for the log.
pub(crate) fn shown(argv: &[String]) -> String {
    argv.iter()
        .map(|w| {
            if w.is_empty() || w.contains(|c: char| c.is_whitespace() || "'\"\\$`".contains(c)) {
                format!("'{}'", w.replace('\'', r"'\''"))
            } else {
                w.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `argv` as `owner` with `env` added and waits (within [`SCRIPT_TIMEOUT`]); `label`
/// names it in the log (`custom bootstrap script`, `replica method wal_e`). Never fails:
/// a command that cannot start or does not finish is a [`Ran`] the caller reports.
pub(crate) async fn run(
    label: &str,
    argv: &[String],
    env: &[(&str, OsString)],
    owner: &Owner,
) -> Ran {
    let Some((program, args)) = argv.split_first() else {
        return Ran::NotStarted(std::io::Error::other("empty command"));
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PATRONI_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    if owner.switch {
        cmd.uid(owner.uid.as_raw()).gid(owner.gid.as_raw());
        cmd.env("HOME", &owner.home);
        if let Some(name) = &owner.name {
            cmd.env("USER", name).env("LOGNAME", name);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{label} {}: cannot start: {e}", shown(argv));
            return Ran::NotStarted(e);
        }
    };
    let out = child
        .stdout
        .take()
        .map(|s| tokio::spawn(log_lines(label.to_string(), s)));
    let err = child
        .stderr
        .take()
        .map(|s| tokio::spawn(log_lines(label.to_string(), s)));
    let status = tokio::time::timeout(SCRIPT_TIMEOUT, child.wait()).await;
    let ran = match status {
        Ok(Ok(s)) => Ran::Exited(s),
        Ok(Err(e)) => Ran::NotStarted(e),
        Err(_) => {
            let _ = child.kill().await;
            tracing::error!("{label} did not finish within {SCRIPT_TIMEOUT:?}; killed it");
            match child.wait().await {
                Ok(s) => Ran::Exited(s),
                Err(e) => Ran::NotStarted(e),
            }
        }
    };
    // Its output ends with it (unless a child it left holds the pipes: not waited for).
    for task in [out, err].into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
    }
    let secs = started.elapsed().as_secs_f64();
    match &ran {
        Ran::Exited(s) if s.success() => {
            tracing::info!(
                "{label} {}: exited with code 0 after {secs:.2}s",
                shown(argv)
            )
        }
        _ => tracing::warn!(
            "{label} {}: exited with code={} after {secs:.2}s",
            shown(argv),
            ran.code()
        ),
    }
    ran
}

/// Each line the command prints, into the log.
async fn log_lines(label: String, stream: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!("{label}: {line}");
    }
}

/// The pgpass file's variable, for a command that connects.
pub(crate) fn pgpass_env(path: &std::path::Path) -> (&'static str, OsString) {
    ("PGPASSFILE", path.as_os_str().to_owned())
}

/// What a failed run says in an error.
pub(crate) fn failure(label: &str, argv: &[String], ran: &Ran) -> anyhow::Error {
    match ran {
        Ran::NotStarted(e) => anyhow::anyhow!("{label} {} failed: {e}", shown(argv)),
        Ran::Exited(_) => {
            anyhow::anyhow!("{label} {} exited with code={}", shown(argv), ran.code())
        }
    }
}

/// Creates `dir` for a command run as `owner` when it could not create it itself: the agent
/// is root and the parent is not the owner's (a command that wants to create the directory,
/// as a copy of a backup does, finds it there and empty).
pub(crate) fn make_room(dir: &std::path::Path, owner: &Owner) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if !owner.switch || dir.exists() {
        return Ok(());
    }
    let parent_is_owners = dir
        .parent()
        .and_then(|p| std::fs::metadata(p).ok())
        .is_some_and(|m| m.uid() == owner.uid.as_raw());
    if parent_is_owners {
        return Ok(());
    }
    owner
        .create_dir(dir)
        .with_context(|| format!("creating {} for the command", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_show_as_a_shell_would_read_them() {
        let argv: Vec<String> = ["a", "b c", "it's", ""].map(String::from).to_vec();
        assert_eq!(shown(&argv), r"a 'b c' 'it'\''s' ''");
    }

    #[tokio::test]
    async fn a_command_runs_from_the_agents_directory_with_its_environment() {
        // As the agent's own user (root's switch to postgres is run_as's business).
        let owner = Owner {
            uid: nix::unistd::Uid::effective(),
            gid: nix::unistd::Gid::effective(),
            home: "/".into(),
            name: None,
            switch: false,
            from_data_dir: true,
        };
        let t = tempfile::tempdir().unwrap();
        let out = t.path().join("out");
        let argv: Vec<String> = vec![
            "sh".into(),
            "-c".into(),
            format!("echo \"$X $(pwd)\" > {}; exit 3", out.display()),
        ];
        let ran = run("test script", &argv, &[("X", "hello".into())], &owner).await;
        assert_eq!(ran.code(), "3");
        assert!(!ran.success());
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap().trim(),
            format!("hello {}", cwd.display())
        );
        let missing = run("test script", &["/no/such/thing".into()], &[], &owner).await;
        assert!(matches!(missing, Ran::NotStarted(_)));
        assert_eq!(missing.code(), "None");
    }
}
