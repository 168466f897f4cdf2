//! Driving a run: the generated configuration, the "physics" tick (lease expiry,
//! replication, commits, invariant 1), and the fault schedule from bootstrap to convergence.

use std::sync::Arc;
use std::time::Duration;

use pgkeel_core::Config;

use crate::postgres::Proc;
use crate::scenario::{
    writable_again_formula, writable_again_within, Ep, Fault, FaultKind, Gray, GrayTiming,
    Scenario, SyncMode, Target, CLIENTS,
};
use crate::world::{now, State, World};
use crate::Agents;

const TICK: Duration = Duration::from_millis(20);

/// Node `i`'s pgkeel configuration, in Patroni's YAML, through the real parser.
pub fn config(sc: &Scenario, i: usize) -> Result<Config, String> {
    let sync = match sc.sync {
        SyncMode::Off => "    synchronous_mode: off\n".to_string(),
        SyncMode::On => "    synchronous_mode: on\n".to_string(),
        SyncMode::Strict => {
            "    synchronous_mode: on\n    synchronous_mode_strict: true\n".to_string()
        }
        SyncMode::Quorum => "    synchronous_mode: quorum\n".to_string(),
    };
    let yaml = format!(
        r#"scope: sim
namespace: /service
name: node{n}
restapi:
  listen: 127.0.0.1:8008
  connect_address: node{n}:8008
etcd3:
  hosts:
    - etcd:2379
bootstrap:
  dcs:
    ttl: {ttl}
    loop_wait: {lw}
    retry_timeout: {rt}
{sync}    synchronous_node_count: {snc}
    failsafe_mode: {fs}
{hang}    postgresql:
      use_pg_rewind: true
      use_slots: true
postgresql:
  listen: 127.0.0.1:5432
  connect_address: node{n}:5432
  data_dir: /sim/node{n}
  authentication:
    superuser:
      username: postgres
      password: sim
    replication:
      username: replicator
      password: sim
"#,
        n = i + 1,
        ttl = sc.ttl,
        lw = sc.loop_wait,
        rt = sc.retry_timeout,
        snc = sc.sync_node_count,
        fs = sc.failsafe,
        hang = sc.hang_timeout.map_or(String::new(), |h| format!(
            "    primary_hang_timeout: {h}\n"
        )),
    );
    pgkeel_core::config::load_str(&yaml, "simulation")
        .map(|l| l.config)
        .map_err(|e| e.to_string())
}

/// Every tick: leases run out, WAL streams, commits return, and invariant 1 is checked.
pub async fn physics(world: Arc<World>) {
    loop {
        tokio::time::sleep(TICK).await;
        let mut s = world.lock();
        let now = s.now();
        // A down etcd has no leader, and nobody expires leases.
        let gone = if s.net.etcd_down > 0 {
            Vec::new()
        } else {
            s.store.expire(now)
        };
        if !gone.is_empty() {
            s.note(format!("etcd: lease expired, removed {gone:?}"));
            world.etcd_changed();
        }
        s.replicate();
        s.check.overlap(now);
    }
}

/// Returns once any invariant is broken.
pub async fn first_violation(world: &World) {
    loop {
        tokio::time::sleep(TICK).await;
        if !world.lock().check.violations.is_empty() {
            return;
        }
    }
}

/// One leader key holder running as a primary, every other node streaming from it on its
/// timeline. `Err` says what is still missing.
pub fn converged(s: &State, world: &World) -> Result<usize, String> {
    let leader = s.store.leader().ok_or("no leader key")?;
    let l = world.node_of(&leader).ok_or("leader key names no node")?;
    let pg = &s.nodes[l].pg;
    if !pg.is_primary() || s.frozen(l) {
        return Err(format!(
            "{leader} holds the key but is not a running primary"
        ));
    }
    let tl = pg.data.as_ref().map_or(0, |d| d.timeline);
    for (i, n) in s.nodes.iter().enumerate().filter(|(i, _)| *i != l) {
        let ok = n.pg.proc == (Proc::Standby { upstream: Some(l) })
            && n.pg.streaming
            && n.pg.data.as_ref().is_some_and(|d| d.timeline == tl);
        if !ok {
            return Err(format!("node{} does not stream from {leader}", i + 1));
        }
    }
    Ok(l)
}

/// Waits until `converged` or `bound` passes (checking every 100 ms); stops early on a
/// violation. Returns the leader and how long it took.
async fn wait_converged(world: &World, bound: Duration) -> Result<(usize, Duration), String> {
    let start = now();
    loop {
        {
            let s = world.lock();
            if !s.check.violations.is_empty() {
                return Err("a violation".into());
            }
            match converged(&s, world) {
                Ok(l) => return Ok((l, now() - start)),
                Err(why) if now() - start > bound => return Err(why),
                Err(_) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Bootstrap, the faults, the heal, convergence. Returns the convergence time after the
/// last fault and the number of acknowledged writes the final leader lacks.
pub async fn drive(world: &Arc<World>, agents: &Arc<Agents>) -> (Option<Duration>, usize) {
    let sc = world.scenario.clone();
    let boot_bound = Duration::from_secs(60) + sc.convergence_bound();
    if let Err(why) = wait_converged(world, boot_bound).await {
        let mut s = world.lock();
        if s.check.violations.is_empty() {
            s.check.violations.push(format!(
                "invariant 4: no healthy cluster {boot_bound:?} after start: {why}"
            ));
        }
        return (None, 0);
    }
    world.note("bootstrap done; faults begin".into());
    let boot = tokio::time::Instant::now();
    let timing = GrayTiming::of(&agents.configs[0]);
    let mut tasks = Vec::new();
    for (id, f) in sc.faults.iter().enumerate() {
        let (world, agents, f) = (world.clone(), agents.clone(), f.clone());
        let alone = alone(&sc, id, &timing);
        tasks.push(tokio::task::spawn_local(async move {
            tokio::time::sleep_until(boot + f.at).await;
            let watch = availability_due(&world, &f, alone);
            apply(&world, &agents, id, &f, true);
            let watcher = watch.map(|(gray, node)| {
                let (world, bound) = (world.clone(), writable_again_within(gray, &timing));
                tokio::task::spawn_local(async move {
                    writable_again(&world, id, gray, node, bound, &timing).await;
                })
            });
            tokio::time::sleep(f.lasts).await;
            apply(&world, &agents, id, &f, false);
            if let Some(w) = watcher {
                let _ = w.await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    world.note("all faults healed".into());
    let bound = sc.convergence_bound();
    match wait_converged(world, bound).await {
        Ok((leader, took)) => {
            // Let the clients write a little more, then check the final leader's data.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut s = world.lock();
            let data = s.nodes[leader].pg.data.clone();
            let lost = data.map_or(0, |d| s.check.final_check(leader, &d));
            (Some(took), lost)
        }
        Err(why) => {
            let mut s = world.lock();
            if s.check.violations.is_empty() {
                let dcs = s.store.load();
                s.check.violations.push(format!(
                    "invariant 4: not converged {bound:?} after the last fault: {why} (leader {:?}, /history {:?})",
                    dcs.leader.map(|l| l.name),
                    dcs.history.unwrap_or_default().iter().map(|e| (e.timeline, e.lsn, e.new_leader.clone())).collect::<Vec<_>>()
                ));
            }
            (None, 0)
        }
    }
}

/// Gray failure `id` of the scenario meets no other fault while its bound runs (from a
/// second before it, so the cluster is not still recovering from one that just ended).
fn alone(sc: &Scenario, id: usize, timing: &GrayTiming) -> bool {
    let f = &sc.faults[id];
    let Some((gray, _)) = f.kind.gray() else {
        return false;
    };
    let from = f.at.saturating_sub(Duration::from_secs(1));
    let to = f.at + writable_again_within(gray, timing);
    sc.faults
        .iter()
        .enumerate()
        .all(|(j, g)| j == id || g.at >= to || g.at + g.lasts <= from)
}

/// Whether the availability bound applies to gray failure `f` beginning now: it hits the
/// leader of a healthy cluster, and nothing else fails meanwhile. Returns what to watch.
fn availability_due(world: &World, f: &Fault, alone: bool) -> Option<(Gray, usize)> {
    let (gray, target) = f.kind.gray()?;
    if !alone {
        return None;
    }
    let s = world.lock();
    let leader = converged(&s, world).ok()?;
    match target {
        Target::Leader => Some((gray, leader)),
        Target::Node(i) if i == leader => Some((gray, leader)),
        Target::Node(_) => None,
    }
}

/// Invariant 5: after a gray failure of the leader begins, some node is a writable primary
/// (one new clients can connect and write to) again within `bound`.
async fn writable_again(
    world: &World,
    id: usize,
    gray: Gray,
    node: usize,
    bound: Duration,
    timing: &GrayTiming,
) {
    let start = now();
    loop {
        tokio::time::sleep(TICK).await;
        let mut s = world.lock();
        if let Some(w) = (0..s.nodes.len()).find(|j| s.serving(*j)) {
            let took = now() - start;
            s.recoveries.push((gray, took, bound));
            s.note(format!(
                "fault {id}: node{} writable {:.1}s after the {gray:?} of leader node{} began (bound {:.1}s)",
                w + 1,
                took.as_secs_f64(),
                node + 1,
                bound.as_secs_f64()
            ));
            return;
        }
        if now() - start > bound {
            s.check.violations.push(format!(
                "invariant 5 (writable again after a gray failure of the leader) broken: no writable primary {:.1}s after the {gray:?} of leader node{} (fault {id}) began; bound {:.1}s = {} (writable_again_within: ttl {:.1}s, primary_hang_timeout {:.1}s, probe deadline {:.1}s, loop_wait {:.1}s)",
                bound.as_secs_f64(),
                node + 1,
                bound.as_secs_f64(),
                writable_again_formula(gray),
                timing.ttl.as_secs_f64(),
                timing.hang.as_secs_f64(),
                timing.probe.as_secs_f64(),
                timing.loop_wait.as_secs_f64(),
            ));
            return;
        }
    }
}

/// Starts (`on`) or ends fault `id`.
fn apply(world: &Arc<World>, agents: &Arc<Agents>, id: usize, f: &Fault, on: bool) {
    let verb = if on { "begins" } else { "ends" };
    world.note(format!("fault {id} {verb}: {:?}", f.kind));
    let crash_agent = |i: usize| {
        let down = {
            let mut s = world.lock();
            let n = &mut s.nodes[i];
            if on {
                n.agent_down += 1;
            } else {
                n.agent_down -= 1;
            }
            n.agent_down
        };
        match (on, down) {
            (true, 1) => agents.crash(i),
            (false, 0) => agents.start(i),
            _ => {}
        }
    };
    match &f.kind {
        FaultKind::AgentCrash(i) => crash_agent(*i),
        FaultKind::PgCrash(i) => {
            if on {
                world.lock().kill_pg(*i, "postmaster crashed");
            }
        }
        FaultKind::HostCrash(i) => {
            if on {
                world.lock().kill_pg(*i, "host crashed");
            }
            crash_agent(*i);
        }
        FaultKind::Freeze(i) => {
            let mut s = world.lock();
            if on {
                s.nodes[*i].freezes += 1;
            } else {
                s.nodes[*i].freezes -= 1;
            }
            world.set_frozen(*i, s.nodes[*i].freezes > 0);
            s.refresh(*i);
        }
        FaultKind::Partition {
            side,
            etcd_with_side,
            clients_with_side,
        } => {
            let mut s = world.lock();
            if on {
                let n = s.nodes.len();
                let mut a: Vec<Ep> = side.iter().map(|i| Ep::Node(*i)).collect();
                let mut b: Vec<Ep> = (0..n).filter(|i| !side.contains(i)).map(Ep::Node).collect();
                if *etcd_with_side {
                    a.push(Ep::Etcd);
                } else {
                    b.push(Ep::Etcd);
                }
                for (k, with) in clients_with_side.iter().enumerate().take(CLIENTS) {
                    if *with {
                        a.push(Ep::Client(k));
                    } else {
                        b.push(Ep::Client(k));
                    }
                }
                let mut cuts = Vec::new();
                for x in &a {
                    for y in &b {
                        cuts.push((*x, *y));
                        cuts.push((*y, *x));
                    }
                }
                s.net.cuts.insert(id, cuts);
            } else {
                s.net.cuts.remove(&id);
            }
        }
        FaultKind::OneWay { from, to } => {
            let mut s = world.lock();
            if on {
                s.net.cuts.insert(id, vec![(*from, *to)]);
            } else {
                s.net.cuts.remove(&id);
            }
        }
        FaultKind::Delay { a, b, extra } => {
            let mut s = world.lock();
            if on {
                s.net.delays.insert(id, (*a, *b, *extra));
            } else {
                s.net.delays.remove(&id);
            }
        }
        FaultKind::EtcdDown => {
            let mut s = world.lock();
            if on {
                s.net.etcd_down += 1;
            } else {
                s.net.etcd_down -= 1;
                if s.net.etcd_down == 0 {
                    let now = s.now();
                    s.store.refresh_all(now);
                }
            }
        }
        FaultKind::SlowDisk(i) => {
            let mut s = world.lock();
            if on {
                s.nodes[*i].slow += 1;
            } else {
                s.nodes[*i].slow -= 1;
            }
        }
        FaultKind::PgHang(t) | FaultKind::PmHang(t) | FaultKind::DiskStall(t) => {
            let gray = f.kind.gray().map_or(Gray::PgHang, |(g, _)| g);
            let mut s = world.lock();
            if on {
                let node = match *t {
                    Target::Node(i) => Some(i),
                    Target::Leader => s.store.leader().and_then(|l| world.node_of(&l)),
                };
                let Some(i) = node else {
                    s.note(format!("fault {id}: no leader to hit"));
                    return;
                };
                s.note(format!("fault {id}: {gray:?} of node{}", i + 1));
                s.gray_nodes.insert(id, i);
                s.begin_gray(i, id, gray);
            } else if let Some(i) = s.gray_nodes.remove(&id) {
                s.end_gray(i, id, gray);
            }
        }
    }
}
