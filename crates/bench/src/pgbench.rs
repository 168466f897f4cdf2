//! PostgreSQL 15's pgbench against one server of a local cluster, as the database's
//! `postgres` superuser over TCP.

use std::process::Stdio;

use anyhow::{bail, Context};

const PGBENCH: &str = "/usr/lib/postgresql/15/bin/pgbench";

fn command(port: u16) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(PGBENCH);
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
        .env("PGPASSWORD", pgkeel_localcluster::SUPERUSER_PASSWORD)
        .stdin(Stdio::null());
    cmd
}

/// `pgbench -i -q -s <scale>`: (re)creates the pgbench tables.
pub async fn init(port: u16, scale: u32) -> anyhow::Result<()> {
    let out = command(port)
        .args(["-i", "-q", "-s", &scale.to_string(), "postgres"])
        .output()
        .await
        .context("running pgbench -i (is postgresql-15 installed?)")?;
    if !out.status.success() {
        bail!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Starts a pgbench run with `options` (`-c 8 -T 60` ...); its output is piped.
pub fn spawn(port: u16, options: &[&str]) -> anyhow::Result<tokio::process::Child> {
    command(port)
        .args(options)
        .arg("postgres")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting pgbench (is postgresql-15 installed?)")
}

/// The figure of `tps = 2131.237896 (without initial connection time)`.
pub fn tps(output: &str) -> Option<f64> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("tps = "))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_tps() {
        let out =
            "latency average = 3.732 ms\ntps = 2131.237896 (without initial connection time)\n";
        assert_eq!(super::tps(out), Some(2131.237896));
        assert_eq!(super::tps("pgbench: error"), None);
    }
}
