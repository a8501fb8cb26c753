#!/usr/bin/env bash
# Run a command (the test suite) with a throwaway PostgreSQL server, so that the ledger tests run on PostgreSQL as
# well as SQLite:
#   1. install Debian's PostgreSQL server when no /usr/lib/postgresql/*/bin/initdb is there (apt-get, like the
#      Makefile's dataset step; the packages' own "main" cluster is not created);
#   2. initdb + pg_ctl start a cluster in a temporary folder: 127.0.0.1 only, a free port, trust authentication
#      (nothing else can reach it), no fsync (throwaway data). initdb refuses to run as root: as root the cluster
#      runs as the `postgres` user (created by the Debian package) through runuser;
#   3. export OBLIVIO_TEST_PG_URL and run "$@";
#   4. stop the server and remove the folder at the end, even when the command fails or is interrupted (a trap).
# Usage: scripts/with_postgres.sh COMMAND [ARGS...]     (make test runs the suite through it)
# OBLIVIO_PG=off runs the command without a server (the PostgreSQL tests then skip and say why); so does a machine
# with neither PostgreSQL nor apt-get. When OBLIVIO_TEST_PG_URL is already set, that server is used as it is.
set -euo pipefail

say() { echo "with_postgres: $*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
find_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

if [ $# -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi
if [ "${OBLIVIO_PG:-on}" = off ]; then
    say "OBLIVIO_PG=off: no PostgreSQL server; the PostgreSQL ledger tests will skip"
    exec "$@"
fi
if [ -n "${OBLIVIO_TEST_PG_URL:-}" ]; then
    say "using the server in OBLIVIO_TEST_PG_URL"
    exec "$@"
fi

t_install=$(now)
bindir=$(find_bindir)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    if ! command -v apt-get >/dev/null; then
        say "no PostgreSQL server and no apt-get to install one: the PostgreSQL ledger tests will skip"
        exec "$@"
    fi
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    say "installing Debian's PostgreSQL server (apt-get install postgresql)"
    # no "main" cluster (and no server started by the package): the tests make their own
    $SUDO mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/oblivio-tests.conf >/dev/null
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    bindir=$(find_bindir)
    say "installed in $(since "$t_install") s"
fi

t_start=$(now)
dir=$(mktemp -d "${TMPDIR:-/tmp}/oblivio-pg.XXXXXX")
as_owner=()
if [ "$(id -u)" = 0 ]; then  # initdb and postgres refuse to run as root
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    chown postgres "$dir"
    as_owner=(runuser -u postgres --)
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

server_cpu() {  # CPU seconds of the server: the postmaster and its finished backends (utime+stime+cutime+cstime)
    local pid
    pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null) || return 0
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.1f", ($12 + $13 + $14 + $15) / hz }' \
        "/proc/$pid/stat" 2>/dev/null || true
}

stop() {
    local rc=$?
    if [ -f "$dir/data/postmaster.pid" ]; then
        local cpu
        cpu=$(server_cpu)
        "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
        say "PostgreSQL at 127.0.0.1:$port stopped (server CPU: ${cpu:-?} s)"
    fi
    rm -rf "$dir"
    exit "$rc"
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"${as_owner[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
"${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
version=$("$bindir/postgres" --version | awk '{print $3}')
say "PostgreSQL $version at 127.0.0.1:$port (throwaway cluster in $dir), initdb + start in $(since "$t_start") s"
export OBLIVIO_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"

# The command runs in the background so that a signal to this script is handled at once (bash runs traps only
# between commands): it is passed on as SIGTERM (a background command ignores SIGINT), then the EXIT trap stops the
# server.
"$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 130' INT
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' TERM
set +e
wait "$child"
rc=$?
set -e
exit "$rc"
