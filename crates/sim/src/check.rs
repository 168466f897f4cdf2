//! The invariants, checked as the simulation runs:
//!
//! 1. at most one node accepts writes at any instant (intervals of "running as a primary
//!    and not frozen" of two nodes never overlap for a positive time);
//! 2. no acknowledged synchronous commit is lost (every one is on each newly promoted
//!    primary, and on the final leader);
//! 3. a deposed primary acknowledges nothing (no acknowledgement sent from a timeline below
//!    one some other node was promoted to earlier);
//! 4. after the faults end, the cluster converges within the scenario's bound (checked by
//!    the driver, see `lib.rs`).

use std::time::{Duration, Instant};

use crate::postgres::Data;

#[derive(Debug, Clone)]
pub struct Ack {
    pub id: u64,
    pub node: usize,
    pub timeline: u32,
    /// When the server sent it (the client received it later).
    pub sent_at: Instant,
    /// `synchronous_standby_names` required at least one standby for it.
    pub synchronous: bool,
}

#[derive(Debug)]
pub struct Checker {
    t0: Instant,
    /// Per node: since when it accepts writes.
    open: Vec<Option<Instant>>,
    promotions: Vec<(Instant, usize, u32)>,
    pub acks: Vec<Ack>,
    pub violations: Vec<String>,
}

impl Checker {
    pub fn new(nodes: usize, t0: Instant) -> Self {
        Checker {
            t0,
            open: vec![None; nodes],
            promotions: Vec::new(),
            acks: Vec::new(),
            violations: Vec::new(),
        }
    }

    fn at(&self, t: Instant) -> String {
        format!("{:.3}s", t.duration_since(self.t0).as_secs_f64())
    }

    /// Invariant 1 at `now`: two nodes that both accept writes since before `now`.
    pub fn overlap(&mut self, now: Instant) {
        let open: Vec<(usize, Instant)> = self
            .open
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.map(|s| (i, s)))
            .filter(|(_, s)| *s < now)
            .collect();
        if open.len() > 1 {
            let who: Vec<String> = open
                .iter()
                .map(|(i, s)| format!("node{} since {}", i + 1, self.at(*s)))
                .collect();
            let v = format!(
                "invariant 1 (one writable node) broken at {}: {}",
                self.at(now),
                who.join(" and ")
            );
            self.violations.push(v);
        }
    }

    /// Node `i` starts or stops accepting writes at `now`.
    pub fn writable(&mut self, now: Instant, i: usize, writable: bool) {
        self.overlap(now);
        match (self.open[i], writable) {
            (None, true) => self.open[i] = Some(now),
            (Some(_), false) => self.open[i] = None,
            _ => {}
        }
    }

    /// Node `i` was promoted to `timeline` with `data`: every synchronous ack so far must
    /// be in it (invariant 2).
    pub fn promoted(&mut self, now: Instant, i: usize, timeline: u32, data: &Data) {
        self.promotions.push((now, i, timeline));
        let has = data.writes();
        let missing: Vec<u64> = self
            .acks
            .iter()
            .filter(|a| a.synchronous && !has.contains(&a.id))
            .map(|a| a.id)
            .collect();
        if !missing.is_empty() {
            self.violations.push(format!(
                "invariant 2 (no lost synchronous commit) broken at {}: node{} promoted to timeline {timeline} without acknowledged synchronous writes {missing:?}",
                self.at(now),
                i + 1
            ));
        }
    }

    /// A client received `ack` (invariant 3).
    pub fn acked(&mut self, ack: Ack) {
        if let Some((t, p, tl)) = self
            .promotions
            .iter()
            .find(|(t, p, tl)| *t < ack.sent_at && *p != ack.node && *tl > ack.timeline)
        {
            self.violations.push(format!(
                "invariant 3 (a deposed primary acknowledges nothing) broken: node{} acknowledged write {} on timeline {} at {}, after node{} was promoted to timeline {tl} at {}",
                ack.node + 1,
                ack.id,
                ack.timeline,
                self.at(ack.sent_at),
                p + 1,
                self.at(*t)
            ));
        }
        self.acks.push(ack);
    }

    /// At the end: synchronous acks missing from the final leader's data (invariant 2), and
    /// how many acknowledged writes of any kind it lacks (allowed in asynchronous mode).
    pub fn final_check(&mut self, leader: usize, data: &Data) -> usize {
        let mut lost = 0;
        let mut lost_sync = Vec::new();
        let has = data.writes();
        for a in &self.acks {
            if !has.contains(&a.id) {
                lost += 1;
                if a.synchronous {
                    lost_sync.push(a.id);
                }
            }
        }
        if !lost_sync.is_empty() {
            self.violations.push(format!(
                "invariant 2 (no lost synchronous commit) broken: the final leader node{} lacks acknowledged synchronous writes {lost_sync:?}",
                leader + 1
            ));
        }
        lost
    }

    pub fn since_start(&self, t: Instant) -> Duration {
        t.duration_since(self.t0)
    }
}
