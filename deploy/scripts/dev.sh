#!/usr/bin/env bash
# dev.sh brings the local system up; see `make dev`. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DATABASE_URL="${DATABASE_URL:-$(deploy/scripts/db.sh)}"
mkdir -p .dev/logs
bin/personas-internal migrate >/dev/null
PORT=3061 bin/personas-internal >.dev/logs/personas-internal.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT INT TERM
for _ in $(seq 1 50); do curl -fsS localhost:3061/readyz >/dev/null 2>&1 && break; sleep 0.2; done
cat <<MSG
personas-internal is up on :3061 (log: .dev/logs/personas-internal.log)
Try:
  curl -s -H 'X-Service-Key: dev-service-key' localhost:3061/api/v1/personas/internal/due
Ctrl-C stops it.
MSG
wait $pid
