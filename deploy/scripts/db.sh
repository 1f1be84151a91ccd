#!/usr/bin/env bash
# db.sh finds (or starts, or installs) a PostgreSQL server and prints a
# superuser connection URL on stdout. Everything else goes to stderr.
#
# Order, stopping at the first that works:
#   1. $DATABASE_URL, if set (it must answer; no silent fallback);
#   2. a server on 127.0.0.1:5432 (trust auth as postgres, then root);
#   3. an installed but stopped Debian cluster, started with pg_ctlcluster;
#   4. PostgreSQL installed from Debian (needs root and apt), then started.
# Used by `make test`, `make dev` and .ci/run.
set -euo pipefail

log() { printf 'db.sh: %s\n' "$*" >&2; }

try_url() {
  command -v psql >/dev/null 2>&1 || return 1
  PGCONNECT_TIMEOUT=3 psql "$1" -XAtqc 'select 1' >/dev/null 2>&1
}

fail() {
  cat >&2 <<MSG
db.sh: no PostgreSQL available: $*
  Start one and point the project at it, for example:
    sudo apt-get install -y postgresql && sudo pg_ctlcluster 15 main start
    export DATABASE_URL='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable'
  The URL must name a role allowed to CREATE DATABASE (tests clone one per test).
MSG
  exit 1
}

if [ -n "${DATABASE_URL:-}" ]; then
  if try_url "$DATABASE_URL"; then echo "$DATABASE_URL"; exit 0; fi
  # psql may be missing while the server is fine; trust the caller then.
  if ! command -v psql >/dev/null 2>&1; then echo "$DATABASE_URL"; exit 0; fi
  fail "DATABASE_URL is set but does not answer (check host, port, role)"
fi

candidates=(
  "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
  "postgres://root@127.0.0.1:5432/postgres?sslmode=disable"
  "postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable"
)
find_running() {
  for u in "${candidates[@]}"; do
    if try_url "$u"; then echo "$u"; return 0; fi
  done
  return 1
}

if url=$(find_running); then echo "$url"; exit 0; fi

start_clusters() {
  command -v pg_ctlcluster >/dev/null 2>&1 || return 1
  [ -d /etc/postgresql ] || return 1
  local started=1
  for ver in $(ls /etc/postgresql); do
    for cl in $(ls "/etc/postgresql/$ver"); do
      log "starting installed cluster $ver/$cl"
      pg_ctlcluster --skip-systemctl-redirect "$ver" "$cl" start >&2 2>&1 || true
      started=0
    done
  done
  return $started
}

wait_running() {
  for _ in $(seq 1 30); do
    if url=$(find_running); then echo "$url"; return 0; fi
    sleep 1
  done
  return 1
}

if start_clusters; then
  if url=$(wait_running); then echo "$url"; exit 0; fi
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  fail "nothing on 127.0.0.1:5432 and cannot install (need root and apt-get)"
fi

log "installing PostgreSQL from Debian (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq postgresql postgresql-client >&2
start_clusters || fail "installed PostgreSQL but found no cluster to start"
# A fresh Debian cluster uses peer auth on the socket and passwords on TCP:
# give postgres a password so the candidates above can reach it over TCP.
for _ in $(seq 1 30); do
  if su postgres -c "psql -XAtqc \"ALTER ROLE postgres PASSWORD 'postgres'\"" >/dev/null 2>&1; then break; fi
  sleep 1
done
if url=$(wait_running); then echo "$url"; exit 0; fi
fail "installed and started PostgreSQL, but cannot connect on 127.0.0.1:5432"
