#!/usr/bin/env bash
# Mobility convergence (issue #5's benchmark): runs the lab with B moved between gateways 2 and 3 twenty times
# (step 2 plus --extra-moves) under A's 1 ms probe stream from gateway 1, and prints the
# outage per move (median, p99) and the time from B's new link to the first probe delivered there.
# Usage (as root): scripts/bench-mobility.sh [MOVES]   (default 20; odd counts are rounded up to keep B on gateway 3)
set -euo pipefail
cd "$(dirname "$0")/.."
moves="${1:-20}"
extra=$((moves - 1)); [ $((extra % 2)) -ne 0 ] && extra=$((extra + 1))
bash scripts/build.sh Release >/dev/null
out=perf/results/mobility
mkdir -p "$out"
trap 'out/fastxtr lab down --prefix fxm >/dev/null 2>&1 || true' EXIT
out/fastxtr lab run --prefix fxm --out "$out" --extra-moves "$extra" | grep -E "moves:|step 2"
python3 - "$out/summary.json" <<'PY' 2>/dev/null || grep -o '"move_[a-z_0-9]*": [0-9.]*' "$out/summary.json"
import json, sys
f = json.load(open(sys.argv[1]))["figures"]
print(f"moves {f['moves']}: outage median {f['move_outage_ms_median']} ms, p99 {f['move_outage_ms_p99']} ms; "
      f"first probe after the new link median {f['move_first_probe_after_relink_ms_median']} ms, p99 {f['move_first_probe_after_relink_ms_p99']} ms")
PY
