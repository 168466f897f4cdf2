//! Writes acknowledged by a deposed leader, decided from timelines alone.
//!
//! A promotion starts a new, higher timeline. Once any server has been seen writable on
//! timeline `T` (a read-write session opened on it, a write it acknowledged, or the DCS
//! showing it as the primary on `T`), a write acknowledged later by a server still on a
//! timeline below `T` was acknowledged by a deposed leader: its timeline has been forked
//! away from, and what it wrote after the fork point is not on the new leader.
//!
//! The bench only sees a promotion some time after it happened, so this is a lower bound:
//! an acknowledgement between the promotion and the first sign of it is not counted. A write
//! counts only if it was *sent* after the sign: one sent before may have committed before the
//! promotion, and proves nothing.
//!
//! [`overlapping`] needs no timeline order: it finds writes acknowledged by two servers (or one
//! server on two timelines) in interleaved time, however their timelines compare.

use std::time::Instant;

use crate::writer::Ack;

/// `(when, timeline)`: a sign that some server was writable on `timeline` at `when`.
pub type Sighting = (Instant, u32);

/// The acks in `acks` acknowledged on a timeline below the highest one sighted before the
/// write was sent.
pub fn deposed<'a>(acks: impl IntoIterator<Item = &'a Ack>, sightings: &[Sighting]) -> Vec<Ack> {
    let mut sightings = sightings.to_vec();
    sightings.sort_by_key(|s| s.0);
    let mut acks: Vec<Ack> = acks.into_iter().copied().collect();
    acks.sort_by_key(|a| a.sent);
    let mut out = Vec::new();
    let (mut next, mut highest) = (0, 0u32);
    for a in acks {
        while next < sightings.len() && sightings[next].0 < a.sent {
            highest = highest.max(sightings[next].1);
            next += 1;
        }
        if a.timeline < highest {
            out.push(a);
        }
    }
    out
}

/// Acks from two writable servers at once. Acks are grouped by the server that acknowledged
/// them and its timeline (a group is one stint as primary). For two groups `A` and `B` where
/// `B`'s first ack arrived after `A`'s first, every ack of `A` whose write was sent after
/// `B`'s first ack arrived is counted: `B` had committed, and `A` committed afterwards, so
/// both took writes on diverging histories. A failover without overlap has every ack of the
/// old group sent before the new group's first ack.
pub fn overlapping<'a>(acks: impl IntoIterator<Item = &'a Ack>) -> Vec<Ack> {
    use std::collections::BTreeMap;
    let mut first: BTreeMap<(u16, u32), Instant> = BTreeMap::new();
    let acks: Vec<Ack> = acks.into_iter().copied().collect();
    for a in &acks {
        let f = first.entry((a.port, a.timeline)).or_insert(a.at);
        *f = (*f).min(a.at);
    }
    acks.into_iter()
        .filter(|a| {
            let mine = first[&(a.port, a.timeline)];
            first
                .iter()
                .any(|(g, &theirs)| *g != (a.port, a.timeline) && theirs > mine && theirs < a.sent)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ack(id: i64, port: u16, timeline: u32, at: Instant) -> Ack {
        Ack {
            id,
            port,
            timeline,
            sent: at - Duration::from_millis(1),
            at,
        }
    }

    #[test]
    fn an_old_timeline_acknowledging_after_a_promotion_is_deposed() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let acks = [
            ack(1, 5001, 3, s(1)), // before the promotion: fine
            ack(2, 5002, 4, s(3)), // the new leader
            ack(3, 5001, 3, s(4)), // the old leader, after the new one was seen: deposed
        ];
        // Timeline 4 was seen at 2 s (a session on the new leader).
        let d = deposed(&acks, &[(s(2), 4)]);
        assert_eq!(d.iter().map(|a| a.id).collect::<Vec<_>>(), vec![3]);
        // With no sighting but the acks themselves, ack 2 is the first sign of timeline 4.
        let own: Vec<Sighting> = acks.iter().map(|a| (a.at, a.timeline)).collect();
        assert_eq!(deposed(&acks, &own).len(), 1);
        // Nothing is deposed before anything newer was seen.
        assert!(deposed(&acks[..1], &[(s(2), 4)]).is_empty());
        // A write sent before the sighting may have committed before the promotion.
        let early = Ack {
            sent: s(1),
            ..ack(4, 5001, 3, s(5))
        };
        assert!(deposed(&[early], &[(s(2), 4)]).is_empty());
    }

    #[test]
    fn a_clean_failover_does_not_overlap_and_interleaved_primaries_do() {
        let t0 = Instant::now();
        let s = |ms| t0 + Duration::from_millis(ms);
        // 5001 writes, then 5002 on a new timeline, then 5001 again on a newer one.
        let clean = [
            ack(1, 5001, 3, s(100)),
            ack(2, 5001, 3, s(200)),
            ack(3, 5002, 4, s(900)),
            ack(4, 5001, 5, s(2000)),
        ];
        assert!(overlapping(&clean).is_empty());
        // 5001 keeps acknowledging after 5002 took writes: whatever the timelines say.
        let split = [
            ack(1, 5001, 3, s(100)),
            ack(2, 5002, 3, s(500)),
            ack(3, 5001, 3, s(600)),
            ack(4, 5002, 3, s(700)),
        ];
        assert_eq!(
            overlapping(&split).iter().map(|a| a.id).collect::<Vec<_>>(),
            vec![3]
        );
    }
}
