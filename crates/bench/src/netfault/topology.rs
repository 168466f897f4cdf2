//! The suite's network: one Linux network namespace per pgkeel node and per etcd member, each
//! joined by a veth pair to a bridge the suite creates. The suite itself (the client writer,
//! the probes and the observer) stays in the root namespace and reaches everyone through the
//! bridge's own address.
//!
//! Faults are silent drops, as a real partition is: on each veth an `htb` root qdisc sends
//! unclassified packets straight through and has one class whose leaf is a `blackhole` qdisc;
//! a `u32` filter that matches a peer's address steers packets into it. (This kernel has
//! neither netem nor the `gact` drop action, and there is no iptables.) A drop from A to B
//! sits on B's host-side veth (it carries everything delivered into B's namespace), matched on
//! A's source address; the one path that does not cross a host-side veth, a namespace to the
//! suite in the root namespace, is dropped on the sender's own veth, matched on destination.
//!
//! Every name starts with a per-run prefix (`pgk<pid>`), so parallel runs never collide, and
//! [`Cleanup`] removes everything on every exit path: drop, panic and SIGINT/SIGTERM.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};

/// Something with an address on the bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Ep {
    /// pgkeel node `i` (0 is node1): its agent and PostgreSQL.
    Node(usize),
    /// etcd member `i`.
    Etcd(usize),
    /// The suite in the root namespace: the client, the probes, the observer.
    Client,
}

impl Ep {
    /// Short tag used in interface and namespace names (`n1`, `e2`).
    fn tag(self) -> String {
        match self {
            Ep::Node(i) => format!("n{}", i + 1),
            Ep::Etcd(i) => format!("e{}", i + 1),
            Ep::Client => "br".into(),
        }
    }
}

/// The namespaces, veths and bridge of one run.
pub struct Topology {
    pub prefix: String,
    /// The /24's first three octets.
    net: [u8; 3],
    pub nodes: usize,
    pub etcd: usize,
    cleanup: Arc<Cleanup>,
}

/// What to remove at exit. Shared with the panic hook and the signal handler, and run once.
#[derive(Default)]
pub struct Cleanup {
    state: Mutex<CleanupState>,
}

#[derive(Default)]
struct CleanupState {
    done: bool,
    namespaces: Vec<String>,
    links: Vec<String>,
    mounts: Vec<std::path::PathBuf>,
    /// FUSE daemons (pids of our children) to continue before their mounts are removed.
    daemons: Vec<u32>,
}

impl Cleanup {
    /// Kills every process left in our namespaces (only ours run there: etcd, the agents and
    /// their PostgreSQL), unmounts our file systems and deletes the namespaces and the bridge.
    pub fn run(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.done {
            return;
        }
        s.done = true;
        for ns in &s.namespaces {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<i32>() {
                        let p = nix::unistd::Pid::from_raw(pid);
                        let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGCONT);
                        let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
                    }
                }
            }
        }
        // A stalled disk's daemon is stopped: let it run, or it would outlive its mount.
        // Only a child of ours that is still running, in case the pid was reaped and reused.
        for &pid in &s.daemons {
            if is_running_child(pid) {
                let p = nix::unistd::Pid::from_raw(pid as i32);
                let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGCONT);
            }
        }
        // Last mounted first: a FUSE mount passes through to a tmpfs mounted before it.
        for m in s.mounts.iter().rev() {
            let _ = quiet("umount", [std::ffi::OsStr::new("-l"), m.as_os_str()]);
        }
        for ns in &s.namespaces {
            let _ = quiet("ip", ["netns", "del", ns]);
        }
        for l in &s.links {
            let _ = quiet("ip", ["link", "del", l]);
        }
    }

    pub fn add_mount(&self, path: std::path::PathBuf) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .mounts
            .push(path);
    }

    /// A FUSE mount and its daemon (a child of this process): continued, then unmounted.
    pub fn add_fuse_mount(&self, path: std::path::PathBuf, daemon: u32) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.mounts.push(path);
        s.daemons.push(daemon);
    }
}

/// Whether `pid` is a live (not zombie) child of this process, from `/proc/<pid>/stat`.
fn is_running_child(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // After the command name in parentheses: state, then the parent's pid.
    let mut rest = stat
        .rfind(')')
        .map_or("", |i| &stat[i + 1..])
        .split_whitespace();
    let (state, ppid) = (rest.next(), rest.next());
    state.is_some_and(|s| s != "Z" && s != "X")
        && ppid.and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id())
}

fn quiet<I, S>(program: &str, args: I) -> std::io::Result<std::process::ExitStatus>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
}

/// Runs a command; fails with its stderr.
pub fn sh(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} (is iproute2 installed?)"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Topology {
    /// Creates the bridge and one namespace per node and etcd member. Fails (after removing
    /// what it made) if any step fails.
    pub fn create(prefix: &str, nodes: usize, etcd: usize) -> anyhow::Result<Topology> {
        let net = free_subnet(std::process::id())?;
        let t = Topology {
            prefix: prefix.to_string(),
            net,
            nodes,
            etcd,
            cleanup: Arc::new(Cleanup::default()),
        };
        t.build()?;
        Ok(t)
    }

    pub fn cleanup(&self) -> Arc<Cleanup> {
        self.cleanup.clone()
    }

    fn build(&self) -> anyhow::Result<()> {
        let br = self.bridge();
        sh("ip", &["link", "add", &br, "type", "bridge"])?;
        self.cleanup
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .links
            .push(br.clone());
        let me = format!("{}/24", self.ip(Ep::Client));
        sh("ip", &["addr", "add", &me, "dev", &br])?;
        sh("ip", &["link", "set", &br, "up"])?;
        for ep in self.endpoints() {
            let ns = self.namespace(ep);
            sh("ip", &["netns", "add", &ns])?;
            self.cleanup
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .namespaces
                .push(ns.clone());
            let (host, inner) = (self.host_veth(ep), self.inner_veth(ep));
            sh(
                "ip",
                &["link", "add", &host, "type", "veth", "peer", "name", &inner],
            )?;
            self.cleanup
                .state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .links
                .push(host.clone());
            sh("ip", &["link", "set", &inner, "netns", &ns])?;
            sh("ip", &["link", "set", &host, "master", &br, "up"])?;
            let addr = format!("{}/24", self.ip(ep));
            sh("ip", &["-n", &ns, "addr", "add", &addr, "dev", &inner])?;
            sh("ip", &["-n", &ns, "link", "set", &inner, "up"])?;
            sh("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
            drop_class(None, &host)?;
            drop_class(Some(&ns), &inner)?;
        }
        Ok(())
    }

    fn endpoints(&self) -> Vec<Ep> {
        (0..self.nodes)
            .map(Ep::Node)
            .chain((0..self.etcd).map(Ep::Etcd))
            .collect()
    }

    /// Every endpoint but `ep`, the client included.
    pub fn all_but(&self, ep: Ep) -> Vec<Ep> {
        self.endpoints()
            .into_iter()
            .chain([Ep::Client])
            .filter(|&e| e != ep)
            .collect()
    }

    pub fn etcd_eps(&self) -> Vec<Ep> {
        (0..self.etcd).map(Ep::Etcd).collect()
    }

    pub fn ip(&self, ep: Ep) -> Ipv4Addr {
        let last = match ep {
            Ep::Client => 1,
            Ep::Node(i) => 11 + i as u8,
            Ep::Etcd(i) => 21 + i as u8,
        };
        Ipv4Addr::new(10, self.net[1], self.net[2], last)
    }

    pub fn subnet(&self) -> String {
        format!("10.{}.{}.0/24", self.net[1], self.net[2])
    }

    pub fn bridge(&self) -> String {
        format!("{}br", self.prefix)
    }

    pub fn namespace(&self, ep: Ep) -> String {
        format!("{}-{}", self.prefix, ep.tag())
    }

    /// `ip netns exec <ns>`: the words that run a command inside `ep`'s namespace.
    pub fn exec_prefix(&self, ep: Ep) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.namespace(ep),
        ]
    }

    /// The root-namespace end of `ep`'s veth (≤ 15 characters: `pgk` + pid + tag).
    pub fn host_veth(&self, ep: Ep) -> String {
        format!("{}{}", self.prefix, ep.tag())
    }

    fn inner_veth(&self, ep: Ep) -> String {
        format!("{}{}i", self.prefix, ep.tag())
    }

    /// Silently drops every IPv4 packet from `from` to `to` (one way).
    pub fn drop_one_way(&self, from: Ep, to: Ep) -> anyhow::Result<()> {
        match (from, to) {
            (Ep::Client, Ep::Client) => Ok(()),
            (_, Ep::Client) => {
                let ns = self.namespace(from);
                drop_filter(
                    Some(&ns),
                    &self.inner_veth(from),
                    "dst",
                    self.ip(Ep::Client),
                )
            }
            _ => drop_filter(None, &self.host_veth(to), "src", self.ip(from)),
        }
    }

    /// Drops everything between `a` and each of `others`, both ways.
    pub fn partition(&self, a: Ep, others: &[Ep]) -> anyhow::Result<()> {
        for &b in others {
            self.drop_one_way(a, b)?;
            self.drop_one_way(b, a)?;
        }
        Ok(())
    }

    /// Sets `ep`'s veth down or up (its namespace loses carrier).
    pub fn set_link(&self, ep: Ep, up: bool) -> anyhow::Result<()> {
        let host = self.host_veth(ep);
        sh(
            "ip",
            &["link", "set", &host, if up { "up" } else { "down" }],
        )
    }

    /// Removes every drop and sets every link up.
    pub fn heal(&self) -> anyhow::Result<()> {
        for ep in self.endpoints() {
            // Deleting filters where there are none fails: only the links' state is checked.
            let host = self.host_veth(ep);
            let _ = quiet("tc", ["filter", "del", "dev", &host, "parent", "1:"]);
            let (ns, inner) = (self.namespace(ep), self.inner_veth(ep));
            let args = [
                "netns", "exec", &ns, "tc", "filter", "del", "dev", &inner, "parent", "1:",
            ];
            let _ = quiet("ip", args);
            self.set_link(ep, true)?;
        }
        Ok(())
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.cleanup.run();
    }
}

/// An `htb` root on `dev` whose class 1:1 ends in a `blackhole`: packets a filter steers to
/// 1:1 vanish, every other packet is sent directly (htb's default class 0).
fn drop_class(ns: Option<&str>, dev: &str) -> anyhow::Result<()> {
    let tc = |args: &[&str]| match ns {
        Some(ns) => {
            let mut all = vec!["netns", "exec", ns, "tc"];
            all.extend_from_slice(args);
            sh("ip", &all)
        }
        None => sh("tc", args),
    };
    tc(&["qdisc", "add", "dev", dev, "root", "handle", "1:", "htb"])?;
    tc(&[
        "class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit",
    ])?;
    tc(&[
        "qdisc",
        "add",
        "dev",
        dev,
        "parent",
        "1:1",
        "handle",
        "10:",
        "blackhole",
    ])
}

fn drop_filter(ns: Option<&str>, dev: &str, field: &str, ip: Ipv4Addr) -> anyhow::Result<()> {
    let m = format!("{ip}/32");
    let args = [
        "filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32", "match",
        "ip", field, &m, "flowid", "1:1",
    ];
    match ns {
        Some(ns) => {
            let mut all = vec!["netns", "exec", ns, "tc"];
            all.extend_from_slice(&args);
            sh("ip", &all)
        }
        None => sh("tc", &args),
    }
}

/// A 10.x.y.0/24 derived from `seed` that no address or route of this machine uses yet.
fn free_subnet(seed: u32) -> anyhow::Result<[u8; 3]> {
    let out = Command::new("ip")
        .args(["-4", "-o", "route", "show", "table", "all"])
        .output()
        .context("running ip route (is iproute2 installed?)")?;
    let routes = String::from_utf8_lossy(&out.stdout).to_string();
    let addrs = Command::new("ip").args(["-4", "-o", "addr"]).output()?;
    let used = routes + &String::from_utf8_lossy(&addrs.stdout);
    for k in 0..1000u32 {
        let v = seed.wrapping_add(k.wrapping_mul(7919));
        let (x, y) = (100 + (v / 250 % 100) as u8, (v % 250) as u8 + 1);
        let probe = format!("10.{x}.{y}.");
        if !used.contains(&probe) {
            return Ok([10, x, y]);
        }
    }
    bail!("no free 10.x.y.0/24 subnet found")
}
