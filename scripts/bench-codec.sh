#!/usr/bin/env bash
# Runs the codec and data-header micro-benchmarks (BenchmarkDotNet, [MemoryDiagnoser]) and prints their table.
# Usage: scripts/bench-codec.sh [--quick]   (--quick: BenchmarkDotNet's short job, about a minute)
set -euo pipefail
cd "$(dirname "$0")/.."
job=()
[ "${1:-}" = "--quick" ] && job=(--job short)
artifacts=$(mktemp -d)
trap 'rm -rf "$artifacts"' EXIT
dotnet run -c Release --project perf -- --filter '*DataHeaderBenchmarks*' '*ControlCodecBenchmarks*' "${job[@]}" --artifacts "$artifacts" >"$artifacts/run.log" 2>&1 || { tail -n 40 "$artifacts/run.log"; exit 1; }
echo "# $(grep -m1 -E '^BenchmarkDotNet v' "$artifacts/run.log")"
grep -m1 -E '^(Intel|AMD|.*CPU)' "$artifacts/run.log" || true
for f in "$artifacts"/results/*-report-github.md; do
  sed -n '/^|/p' "$f"
  echo
done
