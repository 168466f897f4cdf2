//! Which leader `/history` records for each timeline switch.

use crate::dcs_values::HistoryEntry;

/// The timeline history from the primary's files, keeping the timestamps and leader names
/// already recorded in the DCS, and naming this node as the leader of the newest switch.
pub fn merge_history(
    local: Vec<HistoryEntry>,
    known: &[HistoryEntry],
    me: &str,
) -> Vec<HistoryEntry> {
    let last = local.len().saturating_sub(1);
    local
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            if i == last {
                // The switch into my current timeline, the one I lead on, was my own
                // promotion. A switch recorded for the same timeline and position may be
                // another member's, into another timeline (the history format does not
                // say which), made while the cluster was split: found by the simulation
                // (seed 2487), where it hid that a member was on a dead branch.
                e.new_leader = Some(me.to_string());
                return e;
            }
            // An older switch: keep what the DCS already recorded of it, if it is the same
            // one (same timeline ended at the same position).
            if let Some(k) = known
                .iter()
                .find(|k| k.timeline == e.timeline && k.lsn == e.lsn)
            {
                e.timestamp = k.timestamp.clone().or(e.timestamp);
                e.new_leader = k.new_leader.clone();
            }
            e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(tl: u32, leader: Option<&str>) -> HistoryEntry {
        HistoryEntry {
            timeline: tl,
            lsn: u64::from(tl) * 100,
            reason: "no recovery target specified".into(),
            timestamp: Some(format!("t{tl}")),
            new_leader: leader.map(str::to_string),
        }
    }

    #[test]
    fn the_newest_switch_is_always_mine() {
        // Another member recorded a switch off timeline 1 at the same position (into its
        // own timeline 2); mine went to 3.
        let merged = merge_history(vec![entry(1, None)], &[entry(1, Some("n2"))], "n1");
        assert_eq!(merged[0].new_leader.as_deref(), Some("n1"));
    }

    #[test]
    fn history_keeps_known_leaders_and_names_me_for_the_new_switch() {
        let merged = merge_history(
            vec![entry(1, None), entry(2, None)],
            &[entry(1, Some("n1"))],
            "n3",
        );
        assert_eq!(merged[0].new_leader.as_deref(), Some("n1"));
        assert_eq!(merged[1].new_leader.as_deref(), Some("n3"));
    }
}
