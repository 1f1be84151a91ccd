#!/usr/bin/env bash
# dev.sh brings the whole system up locally (make dev): PostgreSQL (found,
# started or installed by db.sh) with its own database personas_dev,
# migrations, the mana-auth stand-in, both services, the nginx gateway on
# :3060, and the persona catalog seeded through the gateway. Every listener
# binds 127.0.0.1. It prints an admin token and commands to try.
# Ctrl-C stops everything it started; logs are in .dev/logs/.
#
# Environment: DATABASE_URL (used as is; default personas_dev on the server
# db.sh finds), MANA_SERVICE_KEY [dev-service-key], DEV_GATEWAY_PORT [3060],
# DEV_INTERNAL_PORT [3061], DEV_ADMIN_PORT [3062], DEV_AUTH_PORT [3001],
# DEV_SIMULATE [1]: run the runner simulator (`personasctl simulate`, two
# runners with a scripted mix of ok, empty, failed, timeout and crashed
# ticks) so the system is alive; 0 leaves the personas to your own runner.
# DEV_DAY_LENGTH [4m]: the schedule's day in development
# (PERSONAS_DEV_DAY_LENGTH): a daily persona comes due once per 4 minutes,
# so the simulator, the overview and the trends keep moving; 24h is the
# real calendar.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
dev="$root/.dev"
logs="$dev/logs"
mkdir -p "$logs"

die() { printf 'make dev: %s\n' "$*" >&2; exit 1; }

for bin in personas-internal personas-admin mana-auth-dev personasctl; do
  [ -x "bin/$bin" ] || die "bin/$bin is missing: run make build (make dev does)"
done

# Ports: the defaults are the platform's; override any of them to run next
# to something else.
gw_port=${DEV_GATEWAY_PORT:-3060}
internal_port=${DEV_INTERNAL_PORT:-3061}
admin_port=${DEV_ADMIN_PORT:-3062}
auth_port=${DEV_AUTH_PORT:-3001}
for p in "$gw_port" "$internal_port" "$admin_port" "$auth_port"; do
  [[ $p =~ ^[0-9]{1,5}$ ]] && [ "$p" -ge 1 ] && [ "$p" -le 65535 ] || die "port '$p' is not a port number"
done
# Every listener binds loopback only: the stand-in serves a published admin
# password and fault injection.
host=127.0.0.1

# The database: DATABASE_URL as given, or the database personas_dev on the
# server db.sh finds (created if missing), never that server's shared
# "postgres" database, which tests and other checkouts use too.
if [ -z "${DATABASE_URL:-}" ]; then
  server=$(deploy/scripts/db.sh)
  command -v psql >/dev/null 2>&1 || die "psql is needed to create the database personas_dev (apt-get install -y postgresql-client), or set DATABASE_URL"
  if [ "$(psql "$server" -XAtqc "select 1 from pg_database where datname = 'personas_dev'")" != 1 ]; then
    echo "creating the database personas_dev"
    # Two make devs may race here: "already exists" is fine.
    psql "$server" -Xqc 'create database personas_dev' 2>"$logs/createdb.err" ||
      grep -q 'already exists' "$logs/createdb.err" || { cat "$logs/createdb.err" >&2; die "could not create the database personas_dev"; }
    rm -f "$logs/createdb.err"
  fi
  DATABASE_URL=$(printf '%s' "$server" | sed -E 's#^([a-z]+://[^/?]*)(/[^?]*)?#\1/personas_dev#')
fi
export DATABASE_URL
key="${MANA_SERVICE_KEY:-dev-service-key}"
auth_url="http://$host:$auth_port"
gw_url="http://$host:$gw_port"

deploy/scripts/deps.sh
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

for port in "$auth_port" "$gw_port" "$internal_port" "$admin_port"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port is already in use (is another make dev running? DEV_*_PORT choose others)"
  fi
done

pids=()
names=()
stop_all() {
  trap - EXIT INT TERM
  if [ ${#pids[@]} -gt 0 ]; then
    echo; echo "stopping: ${names[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap stop_all EXIT
trap 'exit 0' INT TERM # a deliberate stop is not a failure

start() { # name, then the command; output goes to .dev/logs/<name>.log
  local name=$1; shift
  "$@" >"$logs/$name.log" 2>&1 &
  pids+=($!)
  names+=("$name")
}

wait_ready() { # name url
  local name=$1 url=$2 pid=${pids[-1]}
  for _ in $(seq 1 150); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$logs/$name.log" >&2
      die "$name exited during start; log: .dev/logs/$name.log"
    fi
    sleep 0.2
  done
  tail -n 20 "$logs/$name.log" >&2
  die "$name did not become ready at $url; log: .dev/logs/$name.log"
}

echo "database: $(printf '%s' "$DATABASE_URL" | sed -E 's#//([^:@/]+):[^@]*@#//\1:***@#')"
bin/personas-internal migrate >"$logs/migrate.log" 2>&1 || { cat "$logs/migrate.log" >&2; die "migration failed"; }

# The dashboard signs in through the gateway: trust its origin.
start mana-auth-dev env LISTEN_HOST=$host PORT="$auth_port" MANA_SERVICE_KEY="$key" MANA_AUTH_DEV_BASE_URL="$auth_url" \
  MANA_AUTH_DEV_TRUSTED_ORIGINS="$gw_url,http://localhost:$gw_port" bin/mana-auth-dev
wait_ready mana-auth-dev "$auth_url/healthz"

# Short backoffs, so the simulator's failed ticks come round again within
# minutes instead of hours; short schedule days, so a daily persona that
# ticked ok is due again minutes later (not tomorrow).
day_length=${DEV_DAY_LENGTH:-4m}
if [ "$day_length" = 24h ]; then day_length=; fi
start personas-internal env LISTEN_HOST=$host PORT="$internal_port" MANA_SERVICE_KEY="$key" \
  PERSONAS_BACKOFF_MIN=5s PERSONAS_BACKOFF_MAX=30s PERSONAS_DEV_DAY_LENGTH="$day_length" bin/personas-internal
wait_ready personas-internal "http://$host:$internal_port/readyz"

start personas-admin env LISTEN_HOST=$host PORT="$admin_port" MANA_SERVICE_KEY="$key" MANA_AUTH_URL="$auth_url" bin/personas-admin
wait_ready personas-admin "http://$host:$admin_port/readyz"

start gateway env GATEWAY_LISTEN_HOST=$host GATEWAY_PORT="$gw_port" \
  PERSONAS_INTERNAL_UPSTREAM="$host:$internal_port" PERSONAS_ADMIN_UPSTREAM="$host:$admin_port" MANA_AUTH_UPSTREAM="$host:$auth_port" \
  GATEWAY_ACCESS_LOG="$logs/gateway-access.log" NGINX_BIN="$nginx_bin" deploy/gateway/render.sh --exec "$dev/gateway"
wait_ready gateway "$gw_url/gateway/healthz"

# The command that prints a fresh admin token, complete: it runs as printed
# from any directory and in a new shell (admin-token reads the same
# configuration as the stand-in, the service key included).
token_cmd="MANA_SERVICE_KEY='$key' MANA_AUTH_DEV_BASE_URL='$auth_url'"
for v in MANA_AUTH_DEV_ADMIN_EMAIL MANA_AUTH_DEV_ADMIN_PASSWORD; do
  if [ -n "${!v:-}" ]; then token_cmd+=" $v='${!v}'"; fi
done
token_cmd+=" '$root/bin/mana-auth-dev' admin-token"
token=$(eval "$token_cmd") || die "could not get an admin token from mana-auth-dev"

echo "seeding the persona catalog through the gateway:"
bin/personasctl seed --api "$gw_url" --jwt "$token" || die "seeding failed (see above)"

simulator="off (DEV_SIMULATE=0)"
if [ "${DEV_SIMULATE:-1}" != 0 ]; then
  start simulator env MANA_SERVICE_KEY="$key" bin/personasctl simulate --api "$gw_url" --runners 2 --per-minute 12 --lease 15 --work 3s
  simulator="two runners ticking the catalog personas (DEV_SIMULATE=0 turns it off); log: $logs/simulator.log"
  if [ -n "$day_length" ]; then simulator+="
                     schedule days last $day_length (DEV_DAY_LENGTH=24h: real days), so personas keep coming due"; fi
fi

cat <<MSG

The system is up, on 127.0.0.1 only. Database: $(printf '%s' "$DATABASE_URL" | sed -E 's#//([^:@/]+):[^@]*@#//\1:***@#')
Logs in $logs: $(cd "$logs" && ls | tr '\n' ' ')

  gateway            $gw_url   (the platform's API port)
  dashboard          $gw_url/personas/   (sign in: ${MANA_AUTH_DEV_ADMIN_EMAIL:-admin@mana.test} / ${MANA_AUTH_DEV_ADMIN_PASSWORD:-mana-dev-admin-password})
  personas-internal  http://$host:$internal_port
  personas-admin     http://$host:$admin_port
  mana-auth-dev      $auth_url   (development stand-in)
  simulator          $simulator

Admin token (valid 15 minutes):
  export MANA_ADMIN_JWT='$token'
A fresh one:
  export MANA_ADMIN_JWT=\$($token_cmd)

Try:
  # list personas (admin)
  curl -s -H "Authorization: Bearer \$MANA_ADMIN_JWT" $gw_url/api/v1/personas/admin

  # the ticks the simulator ran for a persona (USER_ID from the list)
  curl -s -H "Authorization: Bearer \$MANA_ADMIN_JWT" $gw_url/api/v1/personas/admin/USER_ID/ticks

  # claim due personas as a runner
  curl -s -H 'X-Service-Key: $key' -H 'Content-Type: application/json' \\
       -d '{"runnerId":"my-runner","limit":2,"leaseSeconds":300}' $gw_url/api/v1/personas/internal/due/claim

  # post actions for a claimed persona (use a userId from the claim)
  curl -s -H 'X-Service-Key: $key' -H 'Content-Type: application/json' \\
       -d '{"actions":[{"tickId":"tick-1","seq":0,"toolName":"todo.create","result":"ok","latencyMs":120}]}' \\
       $gw_url/api/v1/personas/internal/USER_ID/actions

Ctrl-C stops everything.
MSG

# Stay up until Ctrl-C or until one process dies.
set +e
wait -n "${pids[@]}"
for i in "${!pids[@]}"; do
  if ! kill -0 "${pids[$i]}" 2>/dev/null; then
    echo "make dev: ${names[$i]} stopped; log: .dev/logs/${names[$i]}.log" >&2
  fi
done
exit 1
