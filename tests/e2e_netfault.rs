//! The network-fault suite's short subset (`pgkeel-netfault --short`): a 3-node cluster and a
//! 3-member etcd in their own network namespaces, the leader cut from etcd, the leader cut
//! from everything, an etcd member killed, the etcd majority lost with failsafe mode, the
//! leader frozen and the leader's agent killed (asynchronous), then the leader cut from etcd
//! in synchronous mode; no acknowledged write may be lost in synchronous mode, none may be
//! acknowledged by two primaries, and each must recover within its bound.
//!
//! It needs root, iproute2 (`ip`, `tc`) and tmpfs mounts. CI runs as root, so a missing piece
//! fails the test with its name rather than skipping it.

use std::process::Command;

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

#[test]
fn the_short_network_fault_suite_meets_its_targets() {
    let lacking = missing();
    assert!(
        lacking.is_empty(),
        "the network-fault suite cannot run here; it needs: {}",
        lacking.join(", ")
    );
    let out = Command::new(env!("CARGO_BIN_EXE_pgkeel-netfault"))
        .arg("--short")
        .output()
        .expect("running pgkeel-netfault");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The table and SUMMARY lines are the test's report.
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "pgkeel-netfault --short missed a target ({}); see the table above and the kept \
         directory it names for the agents' logs",
        out.status
    );
    assert!(
        stdout.contains("SUMMARY total") && stdout.contains("result=PASS"),
        "no passing total line in the suite's output"
    );
}
