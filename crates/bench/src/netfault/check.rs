//! The checker's verdict on one scenario, and the table and SUMMARY lines it prints.
//!
//! Targets: no acknowledged write lost in synchronous mode; no write acknowledged by two
//! primaries in overlapping time in any mode; writes back and the cluster healthy within the
//! fault's bounds.

use std::time::Duration;

use super::faults::{Bounds, Fault, Mode};

/// What one scenario measured.
#[derive(Debug, Clone)]
pub struct Row {
    pub mode: Mode,
    pub fault: Fault,
    /// Leader before → after (names).
    pub leaders: (String, String),
    pub timelines: (u32, u32),
    /// Writes acknowledged during the scenario (client and probes).
    pub acked: usize,
    /// Of those, missing on the final leader.
    pub lost: usize,
    /// Of those, acknowledged by a primary while another was writable.
    pub overlap: usize,
    /// First failed client write after the fault → the client's next acknowledged write
    /// (zero if no write failed).
    pub write_recovery: Option<Duration>,
    /// The longest stretch without a client ack from the fault to the end.
    pub max_gap: Duration,
    /// Heal → healthy (one leader, every member streaming; in sync mode a sync standby).
    pub converge: Option<Duration>,
    pub bounds: Bounds,
    /// Why the scenario could not be measured, if it could not.
    pub error: Option<String>,
}

impl Row {
    /// Every target this row misses.
    pub fn misses(&self) -> Vec<String> {
        let mut m = Vec::new();
        if let Some(e) = &self.error {
            m.push(format!("error: {e}"));
        }
        if self.mode == Mode::Sync && self.lost > 0 {
            m.push(format!("{} acknowledged writes lost", self.lost));
        }
        if self.overlap > 0 {
            m.push(format!(
                "{} writes acknowledged by overlapping primaries",
                self.overlap
            ));
        }
        match self.write_recovery {
            Some(w) if w > self.bounds.write => m.push(format!(
                "writes back after {:.1}s > {:.0}s",
                w.as_secs_f64(),
                self.bounds.write.as_secs_f64()
            )),
            None if self.error.is_none() => m.push("writes never came back".into()),
            _ => {}
        }
        match self.converge {
            Some(c) if c > self.bounds.converge => m.push(format!(
                "healthy after {:.1}s > {:.0}s",
                c.as_secs_f64(),
                self.bounds.converge.as_secs_f64()
            )),
            None if self.error.is_none() => m.push("never healthy".into()),
            _ => {}
        }
        m
    }

    pub fn pass(&self) -> bool {
        self.misses().is_empty()
    }

    pub fn summary(&self) -> String {
        format!(
            "SUMMARY mode={} fault={}:{} result={} acked={} lost={} overlap_acks={} write_recovery={} bound={:.0}s max_gap={:.2}s healthy_after_heal={} bound={:.0}s leader={}->{} timeline={}->{}{}",
            self.mode.name(),
            self.fault.key(),
            self.fault.name(),
            if self.pass() { "PASS" } else { "FAIL" },
            self.acked,
            self.lost,
            self.overlap,
            secs(self.write_recovery),
            self.bounds.write.as_secs_f64(),
            self.max_gap.as_secs_f64(),
            secs(self.converge),
            self.bounds.converge.as_secs_f64(),
            self.leaders.0,
            self.leaders.1,
            self.timelines.0,
            self.timelines.1,
            match self.misses() {
                m if m.is_empty() => String::new(),
                m => format!(" misses=\"{}\"", m.join("; ")),
            }
        )
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("none".into(), |d| format!("{:.2}s", d.as_secs_f64()))
}

/// The final table, then one SUMMARY line per scenario and the total line.
pub fn print_report(rows: &[Row], not_run: &[(Mode, Fault)]) -> bool {
    println!();
    println!(
        "{:<6} {:<33} {:>7} {:>5} {:>7} {:>15} {:>8} {:>15} {:>6}",
        "mode", "fault", "acked", "lost", "overlap", "writes back", "max gap", "healthy", "result"
    );
    for r in rows {
        println!(
            "{:<6} {:<33} {:>7} {:>5} {:>7} {:>15} {:>8} {:>15} {:>6}",
            r.mode.name(),
            format!("{} {}", r.fault.key(), r.fault.name()),
            r.acked,
            r.lost,
            r.overlap,
            format!(
                "{} ≤{:.0}",
                secs(r.write_recovery),
                r.bounds.write.as_secs_f64()
            ),
            format!("{:.2}s", r.max_gap.as_secs_f64()),
            format!(
                "{} ≤{:.0}",
                secs(r.converge),
                r.bounds.converge.as_secs_f64()
            ),
            if r.pass() { "PASS" } else { "FAIL" },
        );
    }
    for (mode, fault) in not_run {
        println!(
            "{:<6} {:<33} not run (an earlier scenario left the cluster broken)",
            mode.name(),
            format!("{} {}", fault.key(), fault.name())
        );
    }
    println!();
    for r in rows {
        println!("{}", r.summary());
    }
    let failed = rows.iter().filter(|r| !r.pass()).count() + not_run.len();
    let sync_lost: usize = rows
        .iter()
        .filter(|r| r.mode == Mode::Sync)
        .map(|r| r.lost)
        .sum();
    let async_lost: usize = rows
        .iter()
        .filter(|r| r.mode == Mode::Async)
        .map(|r| r.lost)
        .sum();
    println!(
        "SUMMARY total scenarios={} passed={} failed={} not_run={} acked={} lost_sync={} lost_async={} overlap_acks={} result={}",
        rows.len() + not_run.len(),
        rows.len() - rows.iter().filter(|r| !r.pass()).count(),
        failed - not_run.len(),
        not_run.len(),
        rows.iter().map(|r| r.acked).sum::<usize>(),
        sync_lost,
        async_lost,
        rows.iter().map(|r| r.overlap).sum::<usize>(),
        if failed == 0 { "PASS" } else { "FAIL" },
    );
    failed == 0
}
