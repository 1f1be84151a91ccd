#!/usr/bin/env bash
# gobench.sh runs the Go benchmarks (per-operation cost in process, over a
# real database) and appends their figures, with the command, to the file
# named as its argument. make bench calls it after the load test.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: gobench.sh FILE}
cmd=(go test -run '^$' -bench . -benchmem ./pkg/personas ./services/personas-internal)
{
  printf '\n## Go benchmarks\n\n'
  printf 'Per-operation cost in process over a real database (the service over real HTTP too), from\n'
  printf '`%s`:\n\n```\n' "${cmd[*]}"
  "${cmd[@]}" | grep -E '^(goos|goarch|pkg|cpu|Benchmark)'
  printf '```\n'
} >>"$out"
