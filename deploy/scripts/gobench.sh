#!/usr/bin/env bash
# gobench.sh runs the Go benchmarks (per-operation cost in process, over a
# real database) and appends their figures, with the command, to the file
# named as its argument. make bench calls it after the load test.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: gobench.sh FILE}
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
cmd=(go test -run '^$' -bench . -benchmem ./pkg/personas ./services/personas-internal)
{
  printf '\n## Go benchmarks\n\n'
  printf 'Per-operation cost in process over a real database (the service over real HTTP too), from\n'
  printf '`%s`:\n\n```\n' "${cmd[*]}"
  "${cmd[@]}" | grep -E '^(goos|goarch|pkg|cpu|Benchmark)' | tee /dev/fd/3
  printf '```\n'
} 3>"$tmp" >>"$out"
# Issue 11's ingest target from BenchmarkIngestRollups: throughput with ÷
# without is the inverse ratio of their ns/op.
awk '/^BenchmarkIngestRollups\/with-rollups/ {w=$3; wc=$5}
     /^BenchmarkIngestRollups\/without-rollups/ {o=$3; oc=$5}
     END {
       if (w == "" || o == "") exit 1
       printf "\nIngest with rollups (issue 11: ≥ 90%% of ingest without them): **%.0f%%** of the throughput without them "\
              "(%d vs %d ns per 20-action batch at 8 writers per CPU); PostgreSQL CPU per batch %d µs with them, %d µs without. "\
              "%s\n", 100 * o / w, w, o, wc, oc, (100 * o / w >= 90 ? "Met." : "Not met.")
     }' "$tmp" >>"$out"
