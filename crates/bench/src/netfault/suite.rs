//! One run of the suite: a 3-node cluster and a 3-member etcd in their own namespaces, the
//! writers (the client through the multi-host read-write DSN, one probe per node), an observer
//! of the DCS, and the scenarios: healthy cluster → fault → hold → heal → convergence → check.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use pgkeel_dcs::Etcd;
use pgkeel_localcluster::{LocalCluster, Signal};

use super::check::Row;
use super::faults::{Budget, Fault, Mode};
use super::topology::{Ep, Topology};
use crate::client::connect;
use crate::deposed::{self, Sighting};
use crate::ready::{ready, Ready};
use crate::writer::{self, Ack, Journal, Writer};

/// How often the observer reads the DCS for timelines seen writable.
const OBSERVE_EVERY: Duration = Duration::from_millis(200);
/// How long a scenario waits for a healthy cluster before giving up on it (past the
/// convergence bound, so that a slow convergence is measured rather than cut short).
const GIVE_UP: Duration = Duration::from_secs(180);
/// How long a flapping link stays down, then up.
const FLAP: Duration = Duration::from_secs(1);

pub struct Suite {
    pub topo: Topology,
    pub c: LocalCluster,
    dcs: Etcd,
    pub budget: Budget,
    mode: Mode,
    client: Arc<Journal>,
    probes: Arc<Journal>,
    sightings: Arc<Mutex<Vec<Sighting>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    http: reqwest::Client,
}

/// What was done, so that it can be undone.
enum Injected {
    Network,
    EtcdKilled(usize),
    Frozen(usize),
    AgentKilled(usize),
    WalFilled(PathBuf),
    PgStopped(usize),
    PostmasterStopped(usize),
    DiskStalled(usize),
}

impl Suite {
    pub async fn start(topo: Topology, c: LocalCluster, budget: Budget) -> anyhow::Result<Suite> {
        let dcs = c.dcs().await.context("connecting to etcd")?;
        let mut s = Suite {
            topo,
            c,
            dcs,
            budget,
            mode: Mode::Async,
            client: Arc::default(),
            probes: Arc::default(),
            sightings: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
            tasks: Vec::new(),
            http: {
                pgkeel_tls::install_default_provider();
                reqwest::Client::builder()
                    .timeout(Duration::from_secs(3))
                    .build()?
            },
        };
        let ready = s.wait_ready(Duration::from_secs(180)).await?;
        println!(
            "# cluster healthy: leader {} on timeline {}",
            ready.leader, ready.timeline
        );
        writer::create_table(&s.c.rw_dsn()).await?;
        s.start_writers().await?;
        Ok(s)
    }

    async fn start_writers(&mut self) -> anyhow::Result<()> {
        let ids = Arc::new(AtomicI64::new(1));
        self.tasks
            .push(tokio::spawn(Writer::standard(self.c.rw_dsn()).run(
                ids.clone(),
                self.client.clone(),
                self.stop.clone(),
            )));
        for n in &self.c.nodes {
            self.tasks.push(tokio::spawn(Writer::probe(&n.dsn()).run(
                ids.clone(),
                self.probes.clone(),
                self.stop.clone(),
            )));
        }
        // The observer: a timeline the DCS shows as the leader's, while it is a primary, was
        // writable from then on.
        let dcs = self.c.dcs().await?;
        let (sightings, stop) = (self.sightings.clone(), self.stop.clone());
        self.tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let load = tokio::time::timeout(Duration::from_secs(2), dcs.load()).await;
                if let Ok(Ok(view)) = load {
                    if let Some(tl) = view
                        .leader_name()
                        .and_then(|l| view.member(l))
                        .filter(|m| m.role == "primary")
                        .and_then(|m| m.timeline)
                    {
                        sightings
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((Instant::now(), tl));
                    }
                }
                tokio::time::sleep(OBSERVE_EVERY).await;
            }
        }));
        Ok(())
    }

    pub async fn stop_writers(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }

    /// Switches `synchronous_mode` through the leader's `PATCH /config` and waits until the
    /// cluster is ready in that mode.
    pub async fn set_mode(&mut self, mode: Mode) -> anyhow::Result<()> {
        let on = mode == Mode::Sync;
        self.patch_config(serde_json::json!({ "synchronous_mode": on }))
            .await?;
        self.mode = mode;
        self.wait_ready(Duration::from_secs(120)).await?;
        Ok(())
    }

    /// `PATCH /config` on the leader, retried for a while: right after a fault the leader's
    /// etcd client may still be reconnecting, and it answers 503 until its write goes through.
    async fn patch_config(&self, body: serde_json::Value) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = self.wait_ready(Duration::from_secs(120)).await?;
            let li = self.index(&ready.leader)?;
            let url = format!("{}/config", self.c.nodes[li].api_url());
            let outcome = match self.http.patch(&url).json(&body).send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => format!("{}", r.status()),
                Err(e) => format!("{e}"),
            };
            if Instant::now() > deadline {
                bail!("PATCH {url} {body}: {outcome}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Sets `failsafe_mode`; when on, waits until every node answers `GET /failsafe` with
    /// every member. The key in etcd is not enough: the leader asks the members its own
    /// last DCS read listed, and a replica refuses `POST /failsafe` until its last read had
    /// failsafe mode on; an etcd outage before both demotes the leader as if failsafe were
    /// off (the first run's 6f: the fault came within a loop of the key being written).
    async fn set_failsafe(&self, on: bool) -> anyhow::Result<()> {
        self.patch_config(serde_json::json!({ "failsafe_mode": on }))
            .await?;
        if !on {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut unarmed = Vec::new();
            for node in &self.c.nodes {
                if self.failsafe_members(&node.api_url()).await != Some(self.c.nodes.len()) {
                    unarmed.push(node.name.clone());
                }
            }
            if unarmed.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "GET /failsafe did not list every member within 60s on {}",
                    unarmed.join(", ")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// How many members `GET /failsafe` on a node lists (`None`: failsafe mode is off there,
    /// it has not read the key yet, or it did not answer).
    async fn failsafe_members(&self, api_url: &str) -> Option<usize> {
        let url = format!("{api_url}/failsafe");
        let r = self
            .http
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        let body: serde_json::Value = r.json().await.ok()?;
        body.as_object().map(serde_json::Map::len)
    }

    /// Waits until [`healthy`] holds for every node and, in sync mode, the `/sync` key is the
    /// leader's and names a standby.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<Ready> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("etcd not read yet");
        while Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(3), self.dcs.load()).await {
                Ok(Ok(view)) => match ready(&view, self.c.nodes.len(), self.mode != Mode::Async) {
                    Ok(r) => return Ok(r),
                    Err(why) => last = why,
                },
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = "etcd did not answer within 3s".into(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("cluster not ready after {timeout:?}: {last}")
    }

    fn index(&self, name: &str) -> anyhow::Result<usize> {
        self.c
            .index_of(name)
            .with_context(|| format!("no node named {name}"))
    }

    /// Runs one scenario. An error means the cluster could not be brought back: the caller
    /// stops there.
    pub async fn scenario(&mut self, fault: Fault) -> Result<Row, (Row, anyhow::Error)> {
        let bounds = self.budget.bounds(fault.expect(self.mode));
        let mut row = Row {
            mode: self.mode,
            fault,
            leaders: (String::new(), String::new()),
            timelines: (0, 0),
            acked: 0,
            lost: 0,
            overlap: 0,
            write_recovery: None,
            max_gap: Duration::ZERO,
            converge: None,
            bounds,
            error: None,
        };
        match self.scenario_inner(fault, &mut row).await {
            Ok(()) => Ok(row),
            Err(e) => {
                row.error = Some(format!("{e:#}"));
                Err((row, e))
            }
        }
    }

    async fn scenario_inner(&mut self, fault: Fault, row: &mut Row) -> anyhow::Result<()> {
        if let Fault::EtcdMajorityLost { failsafe: true } = fault {
            self.set_failsafe(true).await?;
        }
        let before = self.wait_ready(GIVE_UP).await?;
        row.leaders.0 = before.leader.clone();
        row.timelines.0 = before.timeline;
        let li = self.index(&before.leader)?;
        // Writes must flow through the client to this leader before the fault.
        let leader_port = self.c.nodes[li].pg_port;
        self.wait_client_ack(Instant::now(), |a| a.port == leader_port)
            .await
            .context("the client wrote nothing on the leader before the fault")?;
        let from = (
            self.client.with_acks(<[_]>::len),
            self.probes.with_acks(<[_]>::len),
        );
        println!(
            "# {} {}: leader {} timeline {} sync {:?}: injecting",
            self.mode.name(),
            fault.name(),
            before.leader,
            before.timeline,
            before.sync
        );

        let t0 = Instant::now();
        let injected = self.inject(fault, li, &before).await;
        let hold = self.hold(fault, li).await;
        let t_heal = Instant::now();
        let healed = match &injected {
            Ok(i) => self.heal(i).await,
            Err(_) => self.topo.heal(),
        };
        // The fault must be undone before an error is reported, or the next scenario (and
        // the clean-up's graceful stop) would run against a broken cluster.
        injected?;
        hold?;
        healed?;
        if let Fault::EtcdMajorityLost { failsafe: true } = fault {
            // Back to the default for the following scenarios.
            let _ = self.set_failsafe(false).await;
        }

        let after = self.wait_ready(GIVE_UP).await;
        let t_healthy = Instant::now();
        let after = after?;
        row.converge = Some(t_healthy - t_heal);
        row.leaders.1 = after.leader.clone();
        row.timelines.1 = after.timeline;
        // Writes must flow to the final leader again, so that every write in flight has
        // been answered before the count.
        let final_port = self.c.nodes[self.index(&after.leader)?].pg_port;
        self.wait_client_ack(t_healthy, |a| a.port == final_port)
            .await
            .context("the client wrote nothing on the final leader")?;

        self.measure(row, from, t0, &after.leader).await
    }

    async fn inject(
        &mut self,
        fault: Fault,
        li: usize,
        before: &Ready,
    ) -> anyhow::Result<Injected> {
        let leader = Ep::Node(li);
        let replicas: Vec<Ep> = (0..self.c.nodes.len())
            .filter(|&i| i != li)
            .map(Ep::Node)
            .collect();
        Ok(match fault {
            Fault::LeaderFromEtcd => {
                self.topo.partition(leader, &self.topo.etcd_eps())?;
                Injected::Network
            }
            Fault::LeaderIsolated => {
                self.topo.partition(leader, &self.topo.all_but(leader))?;
                Injected::Network
            }
            Fault::ReplicaIsolated => {
                // In sync mode the synchronous standby: the cut that costs the most.
                let name =
                    before.sync.iter().next().cloned().unwrap_or_else(|| {
                        self.c.nodes[(li + 1) % self.c.nodes.len()].name.clone()
                    });
                let r = Ep::Node(self.index(&name)?);
                self.topo.partition(r, &self.topo.all_but(r))?;
                Injected::Network
            }
            Fault::LeaderFromReplicas => {
                self.topo.partition(leader, &replicas)?;
                Injected::Network
            }
            Fault::EtcdMemberKilled => {
                let e = self.etcd_leader().await.unwrap_or(0);
                self.c.etcd[e].stop();
                Injected::EtcdKilled(e)
            }
            Fault::EtcdMajorityLost { .. } => {
                // etcd's raft leader and one more: the member left has no quorum.
                let e = self.etcd_leader().await.unwrap_or(0);
                let other = (e + 1) % self.c.etcd.len();
                for m in [e, other] {
                    let ep = Ep::Etcd(m);
                    self.topo.partition(ep, &self.topo.all_but(ep))?;
                }
                Injected::Network
            }
            Fault::LeaderFrozen => {
                self.c.signal_agent_and_postmaster(li, Signal::Stop);
                Injected::Frozen(li)
            }
            Fault::LeaderAgentKilled => {
                let pid = self.c.nodes[li]
                    .agent_pid()
                    .context("the leader's agent is not running")?;
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .context("killing the leader's agent")?;
                self.c.reap_agent(li);
                Injected::AgentKilled(li)
            }
            Fault::LeaderWalFull => {
                let path = self.fill_wal(li).await?;
                Injected::WalFilled(path)
            }
            Fault::LeaderLinkFlapping => Injected::Network,
            Fault::LeaderPgHung => {
                self.c.signal_postgres(li, Signal::Stop);
                Injected::PgStopped(li)
            }
            Fault::LeaderPostmasterHung => {
                self.c.signal_postmaster(li, Signal::Stop);
                Injected::PostmasterStopped(li)
            }
            Fault::ReplicaPgHung => {
                let name =
                    before.sync.iter().next().cloned().unwrap_or_else(|| {
                        self.c.nodes[(li + 1) % self.c.nodes.len()].name.clone()
                    });
                let ri = self.index(&name)?;
                self.c.signal_postgres(ri, Signal::Stop);
                Injected::PgStopped(ri)
            }
            Fault::LeaderPgKilled => {
                self.c.signal_postgres(li, Signal::Kill);
                Injected::Network
            }
            Fault::LeaderDiskStalled => {
                self.c.stall_disk(li)?;
                Injected::DiskStalled(li)
            }
        })
    }

    /// Holds the fault for `budget.hold`; a flapping link is toggled meanwhile.
    async fn hold(&self, fault: Fault, li: usize) -> anyhow::Result<()> {
        let until = Instant::now() + self.budget.hold;
        if fault != Fault::LeaderLinkFlapping {
            tokio::time::sleep_until(until.into()).await;
            return Ok(());
        }
        while Instant::now() < until {
            self.topo.set_link(Ep::Node(li), false)?;
            tokio::time::sleep(FLAP).await;
            self.topo.set_link(Ep::Node(li), true)?;
            tokio::time::sleep(FLAP).await;
        }
        Ok(())
    }

    async fn heal(&mut self, injected: &Injected) -> anyhow::Result<()> {
        self.topo.heal()?;
        match injected {
            Injected::Network => {}
            Injected::EtcdKilled(e) => {
                self.c.etcd[*e].respawn()?;
                let url = format!("http://{}/health", self.c.etcd[*e].endpoint);
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let ok = match self.http.get(&url).send().await {
                        Ok(r) => r
                            .text()
                            .await
                            .unwrap_or_default()
                            .contains(r#""health":"true""#),
                        Err(_) => false,
                    };
                    if ok {
                        break;
                    }
                    if Instant::now() > deadline {
                        bail!("restarted etcd member {url} not healthy within 60s");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Injected::Frozen(li) => self.c.signal_agent_and_postmaster(*li, Signal::Cont),
            Injected::AgentKilled(li) => self.c.start_agent(*li)?,
            Injected::WalFilled(path) => std::fs::remove_file(path)
                .with_context(|| format!("removing {}", path.display()))?,
            // What the agent killed is gone; what is left runs on.
            Injected::PgStopped(i) => self.c.signal_postgres(*i, Signal::Cont),
            Injected::PostmasterStopped(i) => self.c.signal_postmaster(*i, Signal::Cont),
            // What waited on the disk goes on (or was killed); the agent rejoins its node.
            Injected::DiskStalled(i) => self.c.resume_disk(*i),
        }
        Ok(())
    }

    /// Fills the leader's WAL file system, then makes the leader need a new WAL segment (a
    /// recycled one needs no space, so switch until none is left) until it fails.
    async fn fill_wal(&self, li: usize) -> anyhow::Result<PathBuf> {
        let wal = self.c.nodes[li]
            .wal_dir
            .clone()
            .context("the cluster runs without a separate waldir")?;
        let fs_root = wal.parent().context("waldir has no parent")?.to_path_buf();
        let filler = fs_root.join("filler");
        let f2 = filler.clone();
        tokio::task::spawn_blocking(move || fill(&f2))
            .await
            .context("the filler task")??;
        let dsn = self.c.nodes[li].dsn();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let attempt = async {
                let c = connect(&dsn, Duration::from_secs(1)).await?;
                c.batch_execute(
                    "CREATE TABLE IF NOT EXISTS netfault_fill (x int); \
                     INSERT INTO netfault_fill VALUES (1); SELECT pg_switch_wal();",
                )
                .await?;
                anyhow::Ok(())
            };
            match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                Ok(Ok(())) => {}
                // The server failed to write WAL: the disk is full.
                _ => return Ok(filler),
            }
        }
        // Recycled segments may outlast the deadline: the fault is then a full disk that
        // has not bitten yet, which the row's figures show.
        println!("# the leader still writes WAL 20s after its WAL disk filled up");
        Ok(filler)
    }

    /// The index of etcd's raft leader, from each member's `/v3/maintenance/status`.
    async fn etcd_leader(&self) -> Option<usize> {
        let mut ids = Vec::new();
        let mut leader = None;
        for e in &self.c.etcd {
            let url = format!("http://{}/v3/maintenance/status", e.endpoint);
            let v: serde_json::Value = self
                .http
                .post(&url)
                .body("{}")
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            ids.push(v["header"]["member_id"].as_str()?.to_string());
            leader = v["leader"].as_str().map(str::to_string).or(leader);
        }
        let leader = leader?;
        ids.iter().position(|id| *id == leader)
    }

    /// Waits (up to [`GIVE_UP`]) for a client ack received after `after` that satisfies `want`.
    async fn wait_client_ack(
        &self,
        after: Instant,
        want: impl Fn(&Ack) -> bool,
    ) -> anyhow::Result<Ack> {
        let deadline = Instant::now() + GIVE_UP;
        loop {
            let found = self.client.with_acks(|acks| {
                acks.iter()
                    .rev()
                    .take_while(|a| a.at > after)
                    .find(|a| want(a))
                    .copied()
            });
            if let Some(a) = found {
                return Ok(a);
            }
            if Instant::now() > deadline {
                bail!("none within {GIVE_UP:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Fills `row` with what the journals say about the scenario's writes.
    async fn measure(
        &self,
        row: &mut Row,
        from: (usize, usize),
        t0: Instant,
        leader: &str,
    ) -> anyhow::Result<()> {
        let client_acks = self.client.with_acks(|a| a.to_vec());
        let probe_acks = self.probes.with_acks(|a| a.to_vec());
        let mut window: Vec<Ack> = client_acks[from.0..].to_vec();
        window.extend_from_slice(&probe_acks[from.1..]);
        row.acked = window.len();

        let ids: Vec<i64> = window.iter().map(|a| a.id).collect();
        let li = self.index(leader)?;
        let present = writer::present(&self.c.nodes[li].dsn(), &ids)
            .await
            .context("the final leader's table")?;
        let lost: Vec<&Ack> = window.iter().filter(|a| !present.contains(&a.id)).collect();
        row.lost = lost.len();
        for a in lost.iter().take(5) {
            println!(
                "# lost: id={} acknowledged by {} on timeline {}",
                a.id,
                self.node_of(a.port),
                a.timeline
            );
        }

        // Overlap is judged on every ack so far (a stint as primary may have begun before
        // this scenario), then counted for this scenario's writes only.
        let mut all = client_acks.clone();
        all.extend_from_slice(&probe_acks);
        let mut seen = self
            .sightings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for j in [&self.client, &self.probes] {
            seen.extend(j.sessions().iter().map(|s| (s.at, s.timeline)));
        }
        seen.extend(all.iter().map(|a| (a.at, a.timeline)));
        let mine: HashSet<i64> = ids.iter().copied().collect();
        let mut bad: Vec<Ack> = deposed::deposed(&all, &seen);
        bad.extend(deposed::overlapping(&all));
        bad.retain(|a| mine.contains(&a.id));
        bad.sort_by_key(|a| a.id);
        bad.dedup_by_key(|a| a.id);
        row.overlap = bad.len();
        for a in bad.iter().take(5) {
            println!(
                "# overlap: id={} acknowledged by {} on timeline {} {:.2}s after the fault",
                a.id,
                self.node_of(a.port),
                a.timeline,
                a.at.saturating_duration_since(t0).as_secs_f64()
            );
        }

        // Write recovery: the client's first failure after the fault → its next ack.
        row.write_recovery = match self.client.first_failure_after(t0) {
            None => Some(Duration::ZERO),
            Some(f) => client_acks.iter().find(|a| a.at > f).map(|a| a.at - f),
        };
        let mut last = (t0, None);
        let mut widest = None;
        for a in client_acks.iter().filter(|a| a.at > t0) {
            if a.at - last.0 > row.max_gap {
                row.max_gap = a.at - last.0;
                widest = Some((last, *a));
            }
            last = (a.at, Some(a.port));
        }
        // Where the longest gap lies, and between which servers' acks.
        if let Some(((from, before), next)) = widest {
            let after_fault = |t: Instant| t.saturating_duration_since(t0).as_secs_f64();
            println!(
                "# longest gap without a client ack: {:.2}s to {:.2}s after the fault (from {} to {})",
                after_fault(from),
                after_fault(next.at),
                before.map_or("the fault".into(), |p| self.node_of(p)),
                self.node_of(next.port)
            );
        }
        Ok(())
    }

    fn node_of(&self, port: u16) -> String {
        self.c
            .nodes
            .iter()
            .find(|n| n.pg_port == port)
            .map_or(port.to_string(), |n| n.name.clone())
    }
}

/// Writes zeros to `path` until its file system is full.
fn fill(path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let chunk = vec![0u8; 1 << 20];
    loop {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
            Err(e) => return Err(e).with_context(|| format!("filling {}", path.display())),
        }
    }
    // Fill the last partial chunk's worth too, a page at a time.
    let page = [0u8; 4096];
    while f.write_all(&page).is_ok() {}
    let _ = f.sync_all();
    Ok(())
}
