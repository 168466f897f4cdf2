//! The network-fault suite's short subset (`pgkeel-netfault --short`, run here through the
//! suite's library against this package's `pgkeel` binary): a 3-node cluster and a 3-member
//! etcd in their own network namespaces, the leader cut from etcd, the leader cut from
//! everything, an etcd member killed, the etcd majority lost with failsafe mode, the leader
//! frozen, the leader's agent killed and the leader's disk stalled (asynchronous), then the
//! leader cut from etcd in synchronous mode; no acknowledged write may be lost in synchronous mode, none may be
//! acknowledged by two primaries, and each must recover within its bound.
//!
//! It needs root, iproute2 (`ip`, `tc`), tmpfs mounts, bindfs and /dev/fuse (each node's
//! storage is a FUSE pass-through). CI runs as root, so a missing piece fails the test with
//! its name rather than skipping it.

use std::process::Command;

use pgkeel_bench::netfault::{self, faults::SHORT, Run};

/// What this machine lacks for the suite, if anything.
fn missing() -> Vec<String> {
    let mut m = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        m.push("root (run the tests as root, or: sudo scripts/netfault.sh --short)".to_string());
    }
    for program in ["ip", "tc"] {
        let ok = Command::new(program)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            m.push(format!(
                "`{program}` from iproute2 (apt-get install iproute2)"
            ));
        }
    }
    m
}

#[tokio::test]
async fn the_short_network_fault_suite_meets_its_targets() {
    let lacking = missing();
    assert!(
        lacking.is_empty(),
        "the network-fault suite cannot run here; it needs: {}",
        lacking.join(", ")
    );
    // The suite prints its table and SUMMARY lines as it goes: they are the test's report.
    let run = Run::new(SHORT.to_vec(), env!("CARGO_BIN_EXE_pgkeel").into());
    match netfault::run(run).await {
        Ok(true) => {}
        Ok(false) => panic!(
            "the short network-fault suite missed a target; see the table above and the kept \
             directory it names for the agents' logs"
        ),
        Err(e) => panic!("the network-fault suite could not run: {e:#}"),
    }
}
