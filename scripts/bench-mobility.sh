#!/usr/bin/env bash
# Mobility convergence benchmark: runs the lab twice, once per move style, with B moved between
# gateways 2 and 3 twenty times (step 2 plus --extra-moves) under A's 1 ms probe stream from gateway 1, and prints
# per style the outage per move (the longest silence of the probe stream: median, p99) and the convergence (from
# the registration that sent the traffic to the new gateway to the first probe B received over the new link).
#   make-before-break: B is linked and attached at the new gateway before it detaches from the old one.
#   break-before-make: B is detached, re-linked (namespace plumbing, ~50 ms of `ip` commands), then attached.
# Usage (as root): scripts/bench-mobility.sh [MOVES]   (default 20; odd counts are rounded up to keep B on gateway 3)
# Writes perf/results/mobility/<style>/summary.json (and the lab's other outputs) per style.
set -euo pipefail
cd "$(dirname "$0")/.."
moves="${1:-20}"
extra=$((moves - 1)); [ $((extra % 2)) -ne 0 ] && extra=$((extra + 1))
bash scripts/build.sh Release >/dev/null
trap 'out/fastxtr lab down --prefix fxm >/dev/null 2>&1 || true' EXIT
for style in make-before-break break-before-make; do
  out=perf/results/mobility/$style
  mkdir -p "$out"
  out/fastxtr lab run --prefix fxm --out "$out" --extra-moves "$extra" --move-style "$style" | grep -E "moves \(|step 2 (PASS|FAIL)"
  /usr/bin/python3 - "$out/summary.json" "$style" <<'PY' || grep -o '"move_[a-z_0-9]*": [0-9.]*' "$out/summary.json"
import json, sys
f = json.load(open(sys.argv[1]))["figures"]
print(f"{sys.argv[2]}: {f['moves']} moves: outage median {f['move_outage_ms_median']} ms, p99 {f['move_outage_ms_p99']} ms; "
      f"convergence median {f['move_convergence_ms_median']} ms, p99 {f['move_convergence_ms_p99']} ms")
PY
done
