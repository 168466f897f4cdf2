#!/bin/sh
# Makes sure the system packages pgkeel needs are installed: PostgreSQL 15 (the server and
# its programs), etcd (the DCS) and protoc (to build the etcd gRPC client), and Patroni (from
# PyPI, for the migration test). As root it installs what is missing with apt-get (Patroni
# with pip, into a virtualenv); otherwise it says exactly what to install.
set -eu

missing=""
[ -x /usr/lib/postgresql/15/bin/pg_ctl ] || missing="$missing postgresql-15"
command -v etcd >/dev/null 2>&1 || [ -x /usr/bin/etcd ] || missing="$missing etcd-server"
command -v protoc >/dev/null 2>&1 || missing="$missing protobuf-compiler"
# The network-fault suite (scripts/netfault.sh, tests/e2e_netfault.rs): ip and tc.
command -v tc >/dev/null 2>&1 || missing="$missing iproute2"
# The gray-failure tests (tests/e2e_hang.rs) stall a data directory's storage on a FUSE
# pass-through mount.
command -v bindfs >/dev/null 2>&1 || missing="$missing bindfs"
# The rolling-migration test (tests/e2e_migration.rs) runs real Patroni in a virtualenv made
# with Debian's python3 (below); only root installs it, so only root needs python3-venv.
PATRONI_VENV=${PGKEEL_PATRONI_VENV:-/opt/patroni-venv}
PATRONI_PKG='patroni[etcd3,psycopg3]==4.1.5'
if [ "$(id -u)" = 0 ] && [ ! -x "$PATRONI_VENV/bin/patroni" ] &&
    ! /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    missing="$missing python3-venv"
fi

if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "Installing:$missing" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq $missing >/dev/null
        # Debian starts a default cluster on 5432 and etcd on 2379; pgkeel needs neither.
        (service postgresql stop || true) >/dev/null 2>&1
        # Only the packaged etcd (it runs as the etcd user): never another cluster's.
        (service etcd stop || pkill -x -u etcd etcd || true) >/dev/null 2>&1
    else
        echo "pgkeel needs these Debian packages:$missing" >&2
        echo "Install them as root with: apt-get install -y$missing" >&2
        exit 1
    fi
fi

# Patroni 4.1.5 from PyPI, for tests/e2e_migration.rs (a Patroni cluster migrated to pgkeel
# node by node). Readable by the postgres user, who runs it. Without it that test is skipped
# and says what to install.
if [ ! -x "$PATRONI_VENV/bin/patroni" ] || [ ! -x "$PATRONI_VENV/bin/patronictl" ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "Installing $PATRONI_PKG into $PATRONI_VENV" >&2
        /usr/bin/python3 -m venv "$PATRONI_VENV"
        "$PATRONI_VENV/bin/pip" install -q --disable-pip-version-check "$PATRONI_PKG" >&2
        chmod -R a+rX "$PATRONI_VENV"
    else
        echo "tests/e2e_migration.rs needs Patroni: as root, /usr/bin/python3 -m venv $PATRONI_VENV && $PATRONI_VENV/bin/pip install '$PATRONI_PKG'" >&2
    fi
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "pgkeel is built with Rust: install it from https://rustup.rs (cargo 1.85 or newer)" >&2
    exit 1
fi
if ! id postgres >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "PostgreSQL refuses to run as root and there is no 'postgres' user: apt-get install -y postgresql-15 creates it" >&2
    exit 1
fi
