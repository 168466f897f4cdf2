//! `history [CLUSTER] [-f FORMAT]`: the `history` key as a table of TL, LSN, Reason,
//! Timestamp and New Leader.

use pgkeel_core::dcs_values::HistoryEntry;
use serde_json::Value;

use super::common::Ctx;
use super::table::{print_output, Align, Format};

#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    pub cluster_name: Option<String>,
    /// Output format.
    #[arg(short = 'f', long = "format", value_enum, default_value = "pretty")]
    pub format: Format,
}

/// The table patronictl prints: missing trailing fields are empty cells.
pub(crate) fn history_table(history: &[HistoryEntry], fmt: Format) -> String {
    let columns = [
        ("TL", Align::Right),
        ("LSN", Align::Right),
        ("Reason", Align::Left),
        ("Timestamp", Align::Left),
        ("New Leader", Align::Left),
    ];
    let rows: Vec<Vec<Value>> = history
        .iter()
        .map(|h| {
            vec![
                Value::from(h.timeline),
                Value::from(h.lsn),
                Value::from(h.reason.clone()),
                Value::from(h.timestamp.clone().unwrap_or_default()),
                Value::from(h.new_leader.clone().unwrap_or_default()),
            ]
        })
        .collect();
    print_output(&columns, &rows, fmt, "")
}

pub(crate) async fn run(ctx: &Ctx, a: Args) -> anyhow::Result<()> {
    let name = ctx.cluster_name(a.cluster_name.as_deref());
    let cluster = super::common::load(&ctx.dcs(&name).await?).await?;
    print!(
        "{}",
        history_table(cluster.history.as_deref().unwrap_or(&[]), a.format)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_json() {
        let h = vec![
            HistoryEntry {
                timeline: 1,
                lsn: 50331808,
                reason: "no recovery target specified".into(),
                timestamp: Some("2026-01-01T00:00:00+00:00".into()),
                new_leader: Some("n2".into()),
            },
            HistoryEntry {
                timeline: 2,
                lsn: 67109024,
                reason: "x".into(),
                timestamp: None,
                new_leader: None,
            },
        ];
        assert_eq!(
            history_table(&h, Format::Pretty),
            "\
+----+----------+------------------------------+---------------------------+------------+
| TL |      LSN | Reason                       | Timestamp                 | New Leader |
+----+----------+------------------------------+---------------------------+------------+
|  1 | 50331808 | no recovery target specified | 2026-01-01T00:00:00+00:00 | n2         |
|  2 | 67109024 | x                            |                           |            |
+----+----------+------------------------------+---------------------------+------------+
"
        );
        assert_eq!(
            history_table(&h[1..], Format::Json),
            "[{\"TL\": 2, \"LSN\": 67109024, \"Reason\": \"x\", \"Timestamp\": \"\", \"New Leader\": \"\"}]\n"
        );
    }
}
