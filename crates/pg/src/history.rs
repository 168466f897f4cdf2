//! The current timeline's history file, for the DCS `/history` key.

use anyhow::{anyhow, Context};
use chrono::{DateTime, SecondsFormat, Utc};
use pgkeel_core::dcs_values::HistoryEntry;
use pgkeel_core::observation::PgView;
use pgkeel_core::Lsn;

use crate::Pg;

/// Entries of a `<TLI>.history` file: `parent_tli <TAB> switch_lsn <TAB> reason` per line,
/// blank lines and `#` comments skipped.
pub(crate) fn parse_history(
    text: &str,
    timestamp: Option<&str>,
) -> anyhow::Result<Vec<HistoryEntry>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut fields = line.splitn(3, char::is_whitespace);
            let tli = fields.next().unwrap_or_default();
            let lsn = fields.next().unwrap_or_default().trim();
            let reason = fields.next().unwrap_or_default().trim();
            Ok(HistoryEntry {
                timeline: tli
                    .parse()
                    .with_context(|| format!("bad timeline in history line {line:?}"))?,
                lsn: lsn
                    .parse::<Lsn>()
                    .with_context(|| format!("bad LSN in history line {line:?}"))?
                    .0,
                reason: reason.to_string(),
                timestamp: timestamp.map(str::to_string),
                new_leader: None,
            })
        })
        .collect()
}

impl Pg {
    pub async fn timeline_history(&self) -> anyhow::Result<Vec<HistoryEntry>> {
        let timeline = match self.observe().await {
            PgView::Running(r) => r.timeline,
            PgView::Stopped(s) => s.timeline,
            other => {
                return Err(anyhow!(
                    "cannot tell the current timeline: PostgreSQL is {other:?}"
                ))
            }
        };
        if timeline <= 1 {
            return Ok(Vec::new());
        }
        let path = self
            .data_dir()
            .join("pg_wal")
            .join(format!("{timeline:08X}.history"));
        let (text, timestamp) = self
            .on_disk_quick("reading the timeline history", move |_| {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                // Patroni's format: the moment the history file appeared, i.e. the promotion.
                let timestamp = std::fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .map(|t| {
                        DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Micros, false)
                    });
                Ok((text, timestamp))
            })
            .await?;
        parse_history(&text, timestamp.as_deref())
            .with_context(|| format!("parsing the history file of timeline {timeline}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_history_lines() {
        let text =
            "1\t0/3000158\tno recovery target specified\n\n2\t1/A0\tat restore point \"x\"\n";
        let h = parse_history(text, Some("2024-01-01T00:00:00.000000+00:00")).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].timeline, 1);
        assert_eq!(h[0].lsn, 0x300_0158);
        assert_eq!(h[0].reason, "no recovery target specified");
        assert_eq!(h[1].lsn, (1 << 32) | 0xA0);
        assert_eq!(h[1].reason, "at restore point \"x\"");
        assert!(parse_history("x\ty\tz", None).is_err());
    }
}
