#!/bin/sh
# The network-fault suite: a pgkeel cluster (3 nodes) and a 3-member etcd, each in its own
# network namespace, faulted under continuous writes (see crates/bench/src/netfault/).
#
#   sudo scripts/netfault.sh            # every fault, async and sync (about 15 minutes)
#   sudo scripts/netfault.sh --short    # the CI subset (a few minutes)
#   sudo scripts/netfault.sh --fault 7 --mode sync --keep
#
# Needs root, iproute2 (ip, tc), bindfs (FUSE), PostgreSQL 15 and etcd (scripts/deps.sh
# installs them).
# The suite removes its namespaces, bridge and mounts itself on exit, panic and Ctrl-C; this
# script also sweeps anything left under its prefix if the suite was killed outright.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "scripts/netfault.sh: needs root (network namespaces, veths, tc, tmpfs): run it with sudo" >&2
    exit 2
fi
sh scripts/deps.sh
: "${CARGO_TARGET_DIR:=target}"
cargo build --quiet -p pgkeel -p pgkeel-bench --bin pgkeel --bin pgkeel-netfault
prefix="pgk$$"
dir="${TMPDIR:-/tmp}/pgkeel-netfault-$prefix"
sweep() {
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$prefix-" || true); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
    ip link del "${prefix}br" 2>/dev/null || true
    awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | tac | while read -r mnt; do
        umount -l "$mnt" 2>/dev/null || true
    done
}
trap sweep EXIT
# The working directory is kept (and named) when a target is missed.
"$CARGO_TARGET_DIR/debug/pgkeel-netfault" --prefix "$prefix" --dir "$dir" "$@"
