//! What a data directory says without a running server: `pg_controldata`, `postmaster.pid`
//! and the signal files.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, Context};
use nix::sys::signal::kill;
use nix::unistd::Pid;
use pgkeel_core::observation::Stopped;

use crate::run_as::Invocation;
use crate::Pg;

/// `pg_controldata` output as `field → value`.
pub(crate) fn parse_controldata(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The stopped-server view from `pg_controldata` fields.
pub(crate) fn stopped_from(
    fields: &BTreeMap<String, String>,
    standby_signal: bool,
) -> anyhow::Result<Stopped> {
    let get = |k: &str| {
        fields
            .get(k)
            .ok_or_else(|| anyhow!("pg_controldata printed no {k:?}"))
    };
    let tli = |k: &str| {
        fields
            .get(k)
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    };
    let cluster_state = get("Database cluster state")?.clone();
    // A standby's control file may still name the checkpoint's older timeline while its
    // minimum recovery point is already on a newer one (it followed a promotion).
    let mut timeline = tli("Latest checkpoint's TimeLineID");
    if cluster_state.contains("recovery") {
        timeline = timeline.max(tli("Min recovery ending loc's timeline"));
    }
    if timeline == 0 {
        return Err(anyhow!("pg_controldata printed no usable timeline"));
    }
    Ok(Stopped {
        sysid: get("Database system identifier")?.clone(),
        cluster_state,
        timeline,
        standby_signal,
        checkpoint: fields
            .get("Latest checkpoint location")
            .and_then(|v| v.parse().ok()),
    })
}

/// The postmaster's pid when `postmaster.pid` names a live PostgreSQL process. A pid file
/// left by a crash (or whose pid was reused by another program) means "not running".
pub fn live_postmaster(data_dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    if pid <= 0 {
        return None;
    }
    match kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => {}
        Err(_) => return None,
    }
    // Guard against pid reuse after a crash: the process must be a PostgreSQL one.
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) if !comm.starts_with("postgres") && !comm.starts_with("postmaster") => None,
        _ => Some(pid),
    }
}

impl Pg {
    /// `pg_controldata` of the data directory, as `field → value`.
    pub(crate) async fn controldata(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let s = self.settings();
        let out = Invocation {
            program: self.program("pg_controldata")?,
            args: vec![s.data_dir.clone().into()],
            // The field names are parsed: they must not be translated.
            env: vec![("LC_ALL", "C".into()), ("LANG", "C".into())],
            subject: &s.data_dir,
            timeout: s.op_timeout,
        }
        .run(&self.owner()?)
        .await?;
        Ok(parse_controldata(&out.stdout))
    }

    pub(crate) async fn stopped_view(&self) -> anyhow::Result<Stopped> {
        let fields = self.controldata().await?;
        let standby_signal = self
            .on_disk_quick("looking for standby.signal", |pg| {
                Ok(pg.standby_signal_path().exists())
            })
            .await?;
        stopped_from(&fields, standby_signal).with_context(|| {
            format!(
                "reading the control file of {}",
                self.settings().data_dir.display()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "pg_control version number:            1300
Database system identifier:           7301234567890123456
Database cluster state:               shut down in recovery
Latest checkpoint location:           0/3000060
Latest checkpoint's TimeLineID:       1
Min recovery ending location:         0/5000000
Min recovery ending loc's timeline:   2
";

    #[test]
    fn parses_a_standby() {
        let st = stopped_from(&parse_controldata(SAMPLE), true).unwrap();
        assert_eq!(st.sysid, "7301234567890123456");
        assert_eq!(st.cluster_state, "shut down in recovery");
        assert_eq!(st.timeline, 2);
        assert!(st.standby_signal);
    }

    #[test]
    fn primary_uses_checkpoint_timeline() {
        let text = SAMPLE.replace("shut down in recovery", "in production");
        let st = stopped_from(&parse_controldata(&text), false).unwrap();
        assert_eq!(st.timeline, 1);
        assert!(st.was_primary());
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(stopped_from(&parse_controldata("hello"), false).is_err());
    }

    #[test]
    fn no_pid_file_is_not_running() {
        assert_eq!(live_postmaster(Path::new("/nonexistent")), None);
    }
}
