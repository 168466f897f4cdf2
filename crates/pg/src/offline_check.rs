//! PostgreSQL parameters checked by PostgreSQL itself before any server runs: the values
//! are written to a scratch `postgresql.conf` and `postgres -C` reads it (it parses and
//! checks every value, check hooks included, then exits without starting anything). This
//! covers the parameters of the config file, which are written before the first start,
//! when there is no server yet whose pg_settings could be asked.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context};

use crate::conf::quote_conf;
use crate::run_as::{Invocation, Owner};

/// One parameter PostgreSQL refused: its name and PostgreSQL's own words (with its hint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineRefusal {
    pub name: String,
    pub message: String,
}

/// Checks `parameters` with the `postgres` binary of `bin_dir` (or the default one), run as
/// the user that owns (or will own) `data_dir`. `Err` when the check itself cannot run.
pub async fn check_parameters_offline(
    bin_dir: Option<&Path>,
    data_dir: &Path,
    parameters: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<OfflineRefusal>> {
    let owner = Owner::resolve(data_dir)?;
    let program = crate::bin::find(bin_dir, "postgres")?;
    let scratch = tempfile::Builder::new()
        .prefix("pgkeel-check-")
        .tempdir_in("/tmp")
        .context("creating a scratch directory under /tmp")?;
    let empty = scratch.path().join("data");
    owner.chown(scratch.path())?;
    owner.create_dir(&empty)?;
    let conf = scratch.path().join("postgresql.conf");
    let mut remaining = parameters.clone();
    let mut refused = Vec::new();
    // PostgreSQL checks values only once every name is known: each round drops what it
    // refused and asks again.
    for _ in 0..4 {
        let mut text = String::new();
        for (k, v) in &remaining {
            let _ = writeln!(text, "{k} = {}", quote_conf(v));
        }
        owner.write_file(&conf, &text, 0o600)?;
        let mut arg = OsString::from("--config-file=");
        arg.push(&conf);
        let inv = Invocation {
            program: program.clone(),
            args: vec![
                arg,
                "-D".into(),
                empty.clone().into(),
                "-C".into(),
                "server_version".into(),
            ],
            env: vec![("LC_MESSAGES", "C".into()), ("LC_ALL", "C".into())],
            subject: data_dir,
            timeout: Duration::from_secs(30),
        };
        let mut cmd = inv.command(&owner);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let out = tokio::time::timeout(inv.timeout, cmd.output())
            .await
            .map_err(|_| anyhow!("postgres -C did not finish within {:?}", inv.timeout))?
            .context("running postgres -C")?;
        if out.status.success() {
            return Ok(refused);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let found = parse_refusals(&stderr);
        if found.is_empty() {
            anyhow::bail!(
                "postgres -C failed ({}): {}",
                out.status,
                crate::run_as::tail(&stderr)
            );
        }
        for r in found {
            remaining.retain(|k, _| !k.eq_ignore_ascii_case(&r.name));
            refused.push(r);
        }
    }
    Ok(refused)
}

/// The refusals in what `postgres` printed: `invalid value for parameter "x": "v"`,
/// `unrecognized configuration parameter "x"`, `parameter "x" cannot be changed`,
/// `... is outside the valid range for parameter "x" ...`, each with its `HINT:` line.
fn parse_refusals(stderr: &str) -> Vec<OfflineRefusal> {
    let mut out: Vec<OfflineRefusal> = Vec::new();
    for line in stderr.lines() {
        let body = line
            .split_once("LOG:  ")
            .or_else(|| line.split_once("FATAL:  "))
            .map(|(_, b)| b);
        if let Some(hint) = line.split_once("HINT:  ").map(|(_, h)| h) {
            if let Some(last) = out.last_mut() {
                let _ = write!(last.message, " ({hint})");
            }
            continue;
        }
        let Some(body) = body else { continue };
        let name = ["parameter \""]
            .iter()
            .find_map(|p| body.split_once(p))
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(name, _)| name.to_string());
        let refused = body.starts_with("invalid value for parameter")
            || body.starts_with("unrecognized configuration parameter")
            || body.contains("is outside the valid range for parameter")
            || body.contains("cannot be changed");
        let in_file = body.split_once(" in file \"").map_or(body, |(b, _)| b);
        if let (true, Some(name)) = (refused, name) {
            out.push(OfflineRefusal {
                name,
                message: in_file.to_string(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_messages_are_read() {
        let stderr = "\
2026-12-02 03:56:13.928 GMT [8164] LOG:  skipping missing configuration file \"/x/postgresql.auto.conf\"
2026-12-02 03:56:13.928 GMT [8164] LOG:  invalid value for parameter \"max_connections\": \"abc\"
2026-12-02 03:56:13.928 GMT [8164] LOG:  invalid value for parameter \"shared_buffers\": \"12XB\"
2026-12-02 03:56:13.928 GMT [8164] HINT:  Valid units for this parameter are \"B\", \"kB\", \"MB\", \"GB\", and \"TB\".
2026-12-02 03:56:11.416 GMT [7926] LOG:  unrecognized configuration parameter \"nosuch\" in file \"/tmp/pct/t.conf\" line 4
2026-12-02 03:56:13.928 GMT [8164] FATAL:  configuration file \"/tmp/pct/t.conf\" contains errors
";
        let r = parse_refusals(stderr);
        let names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["max_connections", "shared_buffers", "nosuch"]);
        assert!(r[1].message.contains("Valid units"), "{:?}", r[1]);
        assert_eq!(
            r[2].message,
            "unrecognized configuration parameter \"nosuch\""
        );
    }
}
