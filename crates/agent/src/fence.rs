//! The fence: stops a primary at its fence deadline, whatever the rest of the agent is
//! doing. It runs on its own OS thread and signals the postmaster directly (SIGQUIT is
//! PostgreSQL's immediate shutdown), so a busy or starved async runtime, a slow
//! `pg_ctl`, or a user lookup that hangs cannot delay it. The rule itself is core's
//! `lease_alive`; this thread only makes sure someone looks at the right moment.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pgkeel_pg::signal::{self, PostmasterCache, Proc};

use crate::guard::GuardLink;
use crate::shared::Shared;

/// How often the thread looks. Small against any fence margin (at least 500 ms).
const TICK: Duration = Duration::from_millis(50);

pub struct Fence {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Fence {
    /// Starts the fence thread and, beside it, the guardian process that outlives the agent
    /// (see `guard`); without a guardian (it could not be started) the thread works alone.
    pub fn spawn(
        shared: Arc<Shared>,
        data_dir: &Path,
        postmaster: Arc<PostmasterCache>,
    ) -> std::io::Result<Fence> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let guard = match GuardLink::spawn(data_dir) {
            Ok(g) => Some(g),
            Err(e) => {
                tracing::error!("cannot start the fence guardian ({e}); a kill -9 of this agent would leave its primary unfenced");
                None
            }
        };
        let predecessors = crate::guard::others(data_dir, guard.as_ref().map(GuardLink::pid));
        for p in &predecessors {
            tracing::info!(
                "the fence guardian of a previous agent (pid {}) still guards this node; it stands down once this agent guards the primary",
                p.pid
            );
        }
        let thread = std::thread::Builder::new()
            .name("pgkeel-fence".into())
            .spawn(move || watch(&shared, &postmaster, &flag, guard, predecessors))?;
        Ok(Fence {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Fence {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch(
    shared: &Shared,
    postmaster: &PostmasterCache,
    stop: &AtomicBool,
    mut guard: Option<GuardLink>,
    mut predecessors: Vec<Proc>,
) {
    let mut signalled: Option<(Proc, Instant)> = None;
    let mut suspend = SuspendDetector::new();
    // Time the machine spent suspended, in total and as of the last renewal we saw.
    let mut suspended_total = Duration::ZERO;
    let mut at_renewal: (Option<Instant>, Duration) = (None, Duration::ZERO);
    while !stop.load(Ordering::SeqCst) {
        suspended_total += suspend.gap_since_last_look();
        let lease = shared.lease();
        if lease.renewed_at != at_renewal.0 {
            at_renewal = (lease.renewed_at, suspended_total);
        }
        // Suspended time since the renewal counts against the lease as etcd sees it.
        let missed = suspended_total.saturating_sub(at_renewal.1);
        let at = Instant::now() + missed;
        let pm = postmaster.alive();
        if let Some(g) = guard.as_mut() {
            g.tell(
                shared
                    .writable_until(at)
                    .map(|u| u.saturating_duration_since(at)),
                pm.map(|p| p.pid),
            );
        }
        if !predecessors.is_empty()
            && pgkeel_core::decide::predecessor_guard_may_go(
                shared.holds_key() && shared.lease_alive(at),
                shared.may_be_primary(),
            )
        {
            for p in predecessors.drain(..) {
                tracing::info!(
                    "the previous agent's fence guardian (pid {}) stands down: this agent guards the primary now",
                    p.pid
                );
                signal::terminate_guardian(p);
            }
        }
        if shared.fence_due(at) {
            signalled = signal::stop_postmaster(pm, signalled);
        } else {
            signalled = None;
        }
        std::thread::sleep(TICK);
    }
    // The agent is stopping: the guardian keeps this last word (usually "nothing to guard",
    // PostgreSQL having been stopped first).
    if let Some(g) = guard.as_mut() {
        let at = Instant::now();
        g.tell(
            shared
                .writable_until(at)
                .map(|u| u.saturating_duration_since(at)),
            postmaster.alive().map(|p| p.pid),
        );
    }
}

/// `Instant` (CLOCK_MONOTONIC) stops while the machine is suspended, but etcd's clock does
/// not: after a suspend, the lease may be gone although the monotonic deadline has not
/// passed. CLOCK_BOOTTIME keeps counting through a suspend, so the gap between the two
/// clocks measures it.
struct SuspendDetector {
    last: Option<(Duration, Duration)>,
}

impl SuspendDetector {
    fn new() -> Self {
        SuspendDetector { last: Self::read() }
    }

    fn read() -> Option<(Duration, Duration)> {
        use nix::time::{clock_gettime, ClockId};
        let mono = clock_gettime(ClockId::CLOCK_MONOTONIC).ok()?;
        let boot = clock_gettime(ClockId::CLOCK_BOOTTIME).ok()?;
        Some((Duration::from(mono), Duration::from(boot)))
    }

    /// How much longer the boot clock ran than the monotonic one since the last call.
    fn gap_since_last_look(&mut self) -> Duration {
        let now = Self::read();
        let gap = match (self.last, now) {
            (Some((m0, b0)), Some((m1, b1))) => {
                b1.saturating_sub(b0).saturating_sub(m1.saturating_sub(m0))
            }
            _ => Duration::ZERO,
        };
        self.last = now;
        gap
    }
}
