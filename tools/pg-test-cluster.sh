#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback, for the benchmark and for trying things by hand
# (the tests start their own from tests/testthat/helper-databases.R, the same way).
#   tools/pg-test-cluster.sh start   DIR PORT   initdb into DIR/data when DIR has no cluster yet,
#                                               then start it: TCP on 127.0.0.1:PORT only, the
#                                               unix socket in DIR/socket, trust authentication,
#                                               superuser "postgres", database "postgres".
#   tools/pg-test-cluster.sh stop    DIR [PORT] stop it (the data stay, for the next start).
#   tools/pg-test-cluster.sh destroy DIR [PORT] stop it and remove DIR.
# initdb and the server refuse to run as root: as root they run as the `postgres` system user
# (Debian's postgresql package creates it), who then owns DIR. Durability is switched off
# (fsync, full-page writes, synchronous commit): the cluster is for tests and benchmarks.
# Connect with: psql -h 127.0.0.1 -p PORT -U postgres postgres
set -euo pipefail

usage() { echo "usage: $0 start|stop|destroy DIR [PORT]" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd="$1"; dir="$2"; port="${3:-}"

# The PostgreSQL programs: $MIXEDRS_PG_BIN, else the newest /usr/lib/postgresql/*/bin, else PATH.
bin="${MIXEDRS_PG_BIN:-}"
if [ -z "$bin" ]; then
  for b in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V); do
    [ -x "$b/initdb" ] && [ -x "$b/pg_ctl" ] && bin="$b"
  done
fi
if [ -z "$bin" ] && command -v pg_ctl >/dev/null 2>&1; then bin="$(dirname "$(command -v pg_ctl)")"; fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "pg-test-cluster: no PostgreSQL server programs (initdb, pg_ctl) found; install Debian's postgresql" >&2
  exit 1
fi

# Run a command as the cluster's owner: ourselves, or `postgres` when we are root.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "pg-test-cluster: running as root needs the 'postgres' system user (initdb refuses root)" >&2
  exit 1
fi

case "$cmd" in
  start)
    [ -n "$port" ] || usage
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    chmod 700 "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner mkdir -p "$dir/socket"
      as_owner "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale --no-sync \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='$dir/socket' -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
      start >/dev/null || { tail -n 20 "$dir/server.log" >&2; exit 1; }
    echo "pg-test-cluster: running on 127.0.0.1:$port (user postgres, database postgres), data in $dir/data"
    ;;
  stop|destroy)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null
    fi
    if [ "$cmd" = destroy ]; then
      # Remove only what looks like a cluster made here, never an arbitrary directory.
      if [ -f "$dir/data/PG_VERSION" ] || [ ! -e "$dir" ]; then rm -rf "$dir"; else
        echo "pg-test-cluster: $dir holds no cluster; not removing it" >&2; exit 1; fi
    fi
    ;;
  *) usage ;;
esac
