#!/usr/bin/env bash
# dev.sh brings the whole system up locally (make dev): PostgreSQL (found,
# started or installed by db.sh), migrations, the mana-auth stand-in, both
# services, the nginx gateway on :3060, and the persona catalog seeded
# through the gateway. It prints an admin token and commands to try.
# Ctrl-C stops everything it started; logs are in .dev/logs/.
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

export DATABASE_URL="${DATABASE_URL:-$(deploy/scripts/db.sh)}"
key="${MANA_SERVICE_KEY:-dev-service-key}"
auth_url="http://localhost:3001"

deploy/scripts/deps.sh
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

for port in 3001 3060 3061 3062; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port is already in use (is another make dev running?)"
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

start mana-auth-dev env PORT=3001 MANA_SERVICE_KEY="$key" MANA_AUTH_DEV_BASE_URL="$auth_url" bin/mana-auth-dev
wait_ready mana-auth-dev "$auth_url/healthz"

start personas-internal env PORT=3061 MANA_SERVICE_KEY="$key" bin/personas-internal
wait_ready personas-internal http://localhost:3061/readyz

start personas-admin env PORT=3062 MANA_SERVICE_KEY="$key" MANA_AUTH_URL="$auth_url" bin/personas-admin
wait_ready personas-admin http://localhost:3062/readyz

start gateway env GATEWAY_ACCESS_LOG="$logs/gateway-access.log" NGINX_BIN="$nginx_bin" deploy/gateway/render.sh --exec "$dev/gateway"
wait_ready gateway http://localhost:3060/gateway/healthz

token=$(PORT=3001 MANA_SERVICE_KEY="$key" MANA_AUTH_DEV_BASE_URL="$auth_url" bin/mana-auth-dev admin-token) \
  || die "could not get an admin token from mana-auth-dev"

echo "seeding the persona catalog through the gateway:"
bin/personasctl seed --api http://localhost:3060 --jwt "$token" || die "seeding failed (see above)"

cat <<MSG

The system is up. Logs: .dev/logs/{mana-auth-dev,personas-internal,personas-admin,gateway}.log

  gateway            http://localhost:3060   (the platform's API port)
  dashboard          http://localhost:3060/personas/   (sign in: ${MANA_AUTH_DEV_ADMIN_EMAIL:-admin@mana.test} / ${MANA_AUTH_DEV_ADMIN_PASSWORD:-mana-dev-admin-password})
  personas-internal  http://localhost:3061
  personas-admin     http://localhost:3062
  mana-auth-dev      http://localhost:3001   (development stand-in)

Admin token (valid 15 minutes; again with: bin/mana-auth-dev admin-token):
  export MANA_ADMIN_JWT='$token'

Try:
  # list personas (admin)
  curl -s -H "Authorization: Bearer \$MANA_ADMIN_JWT" localhost:3060/api/v1/personas/admin

  # claim due personas as a runner
  curl -s -H 'X-Service-Key: $key' -H 'Content-Type: application/json' \\
       -d '{"runnerId":"my-runner","limit":2,"leaseSeconds":300}' localhost:3060/api/v1/personas/internal/due/claim

  # post actions for a claimed persona (use a userId from the claim)
  curl -s -H 'X-Service-Key: $key' -H 'Content-Type: application/json' \\
       -d '{"actions":[{"tickId":"tick-1","seq":0,"toolName":"todo.create","result":"ok","latencyMs":120}]}' \\
       localhost:3060/api/v1/personas/internal/USER_ID/actions

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
