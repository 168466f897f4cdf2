//! What every benchmark that starts a pgkeel cluster needs: the timing profile and the
//! `pgkeel` binary.

use std::path::PathBuf;

use clap::ValueEnum;
use pgkeel_localcluster::Timing;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq)]
pub enum Profile {
    /// pgkeel's defaults: ttl 10 s, loop_wait 2 s, retry_timeout 3 s.
    Default,
    /// The documented fast profile: ttl 3 s, loop_wait 1 s, retry_timeout 1 s.
    Fast,
}

impl Profile {
    pub fn timing(self) -> Timing {
        match self {
            Profile::Default => Timing::default(),
            Profile::Fast => Timing::fast(),
        }
    }
}

/// The `pgkeel` binary next to the running program (the agents run it). It is another
/// package's binary, so cargo builds it only when asked: `-p pgkeel -p pgkeel-bench`.
pub fn pgkeel_binary() -> anyhow::Result<PathBuf> {
    let pgkeel = std::env::current_exe()?.with_file_name("pgkeel");
    if !pgkeel.exists() {
        anyhow::bail!(
            "{} not found: build it with this program, cargo build [--release] -p pgkeel -p pgkeel-bench",
            pgkeel.display()
        );
    }
    Ok(pgkeel)
}

/// Where a benchmark keeps its cluster: `--dir`, or a fresh directory under the system's
/// temporary directory named after the benchmark and its process.
pub fn work_dir(dir: Option<&PathBuf>, bench: &str) -> PathBuf {
    dir.cloned()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("{bench}-{}", std::process::id())))
}
