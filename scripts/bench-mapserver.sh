#!/usr/bin/env bash
# Map-Server benchmark on loopback: registrations/s (HMAC-SHA-256), Map-Requests answered/s and latency, resident
# memory, with 1k and 1M registered EIDs and 1 and 2 workers, and the machine's floor for the same exchange.
#
#   scripts/bench-mapserver.sh [--secs N] [--large 1000000] [--json FILE]
#
# The server runs as `out/fastxtr mapserver` on 127.0.0.1:24342 (1 worker pinned to CPU 0; 2 workers unpinned);
# the load generator (`FastXtr.Perf mapserver-load`, one thread on CPU 1, batched sends) sends from 64 loopback
# addresses. After an unreported 2 s warm-up: open-loop at full speed gives the answered rate; runs at half that
# rate and at 50,000/s (half of the 100k/s goal) give the latency; a run asks for unregistered EIDs half of the
# time (negative answers). Resident memory is read after registering and after the request runs. Last, a C
# responder that answers without any lookup (perf/Load/reply-floor.c) on CPU 0 gives the floor of this exchange
# on this machine. With one worker and the large set, also single-record refreshes (register_per_s) and attribute-only
# updates published to 100 subscribers each (update_publish_per_s: the highest rate all of whose updates reach every
# subscriber; at half that rate update_publish_p50_us/p99_us: from an update's arrival at the Map-Server to the send
# of its last publication, read from the server's fastxtr_mapserver_publication_delay_seconds histogram on its
# --metrics endpoint, 127.0.0.1:9349; update_publish_delivered_p50_us/p99_us: from the generator's send of the update
# to the arrival of its last publication there).
# Last, LISP-DDT (RFC 8111): a root delegating 10/8's /16s to four DDT Map-Servers holding the large set each (4x in
# all) and a DDT Map-Resolver in front (127.0.3.x, port 4342, as referrals carry addresses only; Map-Servers and
# Map-Resolver on CPU 0, one worker each): answered/s through the resolver with its referral cache warm against one
# Map-Server asked directly in the same run, the latency at half that rate, the cold walk (root, then Map-Server) of
# `fastxtr lig` for 20 /16s not asked before, and failover_ms: a Map-Server killed under load while its peer holds
# the same EIDs. Traffic stays on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=3; large=1000000; json=""
while [ $# -gt 0 ]; do
  case "$1" in
    --secs) secs="$2"; shift 2 ;;
    --large) large="$2"; shift 2 ;;
    --json) json="$2"; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "bench-mapserver.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v gcc >/dev/null || { echo "bench-mapserver.sh: gcc is needed for the floor responder (apt-get install gcc)" >&2; exit 1; }
bash scripts/build.sh >/dev/null
dotnet build perf -c Release --nologo -v quiet >/dev/null
load="dotnet perf/bin/Release/net10.0/FastXtr.Perf.dll mapserver-load"
work=$(mktemp -d)
gcc -O2 -o "$work/reply-floor" perf/Load/reply-floor.c
cat > "$work/ms.conf" <<CONF
listen 127.0.0.1:24342
map-request-rate 10000000 10000000
map-register-rate 10000000 10000000
registration-timeout 3600
control-socket $work/ms.sock
site bench
  key 0 sha256 "bench-key"
  eid-prefix 1000 10.0.0.0/8 accept-more-specifics
  proxy-reply
CONF
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM
# The number after NAME in a load generator line ("answered 123/s", "p99 456 us").
field() { echo "$1" | sed -n "s/.*$2 \([0-9]*\)[/ ].*/\1/p"; }
request() { taskset -c 1 $load request 127.0.0.1:24342 "$@" 64; }
results=()
for workers in 1 2; do
  for eids in 1000 "$large"; do
    if [ "$workers" = 1 ]; then taskset -c 0 ./out/fastxtr mapserver --config "$work/ms.conf" --workers 1 --metrics 127.0.0.1:9349 > "$work/ms.log" 2>&1 & pid=$!
    else ./out/fastxtr mapserver --config "$work/ms.conf" --workers 2 > "$work/ms.log" 2>&1 & pid=$!; fi
    for i in $(seq 50); do [ -S "$work/ms.sock" ] && break; sleep 0.1; done
    per=$([ "$eids" -ge 10000 ] && echo 50 || echo 1)
    reg=$(taskset -c 1 $load register 127.0.0.1:24342 bench-key "$eids" "$per")
    rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
    # Warm-up (not reported): the runtime compiles the hot paths to their final tier during the first seconds.
    request "$eids" 2 0 >/dev/null
    full=$(request "$eids" "$secs" 0)
    answered=$(field "$full" answered)
    half=$(request "$eids" "$secs" $((answered / 2)))
    at50k=$(request "$eids" "$secs" 50000)
    # Half of the requests for unregistered EIDs: negative answers, whose prefix comes from the ordered index.
    mixed=$(request $((eids * 2)) "$secs" 0)
    rss_after=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
    # One worker, the large set: refreshes of single-record, want-map-notify Map-Registers (HMAC-SHA-256), signed
    # by the generator before the clock starts; the highest of a doubling series of rates notified at >= 99%.
    reg_best=0; reg_full=""
    if [ "$workers" = 1 ] && [ "$eids" = "$large" ]; then
      taskset -c 1 $load register-rate 127.0.0.1:24342 bench-key 100000 2 0 >/dev/null
      reg_full=$(taskset -c 1 $load register-rate 127.0.0.1:24342 bench-key 100000 "$secs" 0)
      for r in 10000 20000 40000 80000 100000 120000 140000 160000; do
        out=$(taskset -c 1 $load register-rate 127.0.0.1:24342 bench-key 100000 "$secs" "$r")
        [ "$(echo "$out" | sed -n 's/.*notified \([0-9]*\)\/s.*/\1/p')" -ge $((r * 99 / 100)) ] || break
        reg_best=$r
      done
      # Attribute-only updates of 1,000 agents, each followed by 100 subscribers: the highest of a doubling series of
      # rates whose updates all reach all 100 subscribers (>= 99% complete), then the latency at half that rate.
      upd_best=0; upd_line=""
      for r in 250 500 1000 2000 4000 8000 16000 32000 64000; do
        out=$(taskset -c 1 $load update-publish 127.0.0.1:24342 bench-key 1000 100 "$secs" "$r" 2>/dev/null)
        [ "$(echo "$out" | sed -n 's/.*complete \([0-9]*\) updates.*/\1/p')" -ge $((r * 99 / 100)) ] || break
        upd_best=$r; upd_line=$out
      done
      upd_half=$(taskset -c 1 $load update-publish 127.0.0.1:24342 bench-key 1000 100 "$secs" $(( upd_best > 250 ? upd_best / 2 : 125 )) --metrics http://127.0.0.1:9349/metrics 2>/dev/null)
      upd_server=$(echo "$upd_half" | sed -n 's/.*at the Map-Server: //p')
    fi
    echo "workers=$workers eids=$eids"
    echo "  $reg"
    echo "  resident memory $((rss / 1024)) MiB after registering, $((rss_after / 1024)) MiB after the request runs"
    echo "  full speed: $full"
    echo "  half load:  $half"
    echo "  50,000/s:   $at50k"
    echo "  half unregistered, full speed: $mixed"
    [ -z "$reg_full" ] || echo "  single-record Map-Registers, full speed: $reg_full; highest rate notified at 99%: ${reg_best}/s"
    [ -z "$reg_full" ] || echo "  attribute updates to 100 subscribers each, highest rate complete at 99%: ${upd_best}/s ($upd_line); at half that: $upd_half"
    results+=("{\"workers\":$workers,\"eids\":$eids,\"registrations_per_s\":$(echo "$reg" | sed -n 's/.*s: \([0-9]*\) registrations.*/\1/p'),\"rss_mib\":$((rss / 1024)),\"rss_after_requests_mib\":$((rss_after / 1024)),\"answered_per_s\":$answered,\"half_unregistered_answered_per_s\":$(field "$mixed" answered),\"half_load_p50_us\":$(field "$half" p50),\"half_load_p99_us\":$(field "$half" p99),\"at_50k_p50_us\":$(field "$at50k" p50),\"at_50k_p99_us\":$(field "$at50k" p99)$([ -z "$reg_full" ] || echo ",\"register_per_s\":$reg_best,\"register_full_speed_notified_per_s\":$(echo "$reg_full" | sed -n 's/.*notified \([0-9]*\)\/s.*/\1/p'),\"update_publish_per_s\":$upd_best,\"update_publish_subscribers\":100,\"update_publish_p50_us\":$(field "$upd_server" p50),\"update_publish_p99_us\":$(field "$upd_server" p99),\"update_publish_delivered_p50_us\":$(echo "$upd_half" | head -1 | sed -n 's/.*p50 \([0-9]*\) us.*/\1/p'),\"update_publish_delivered_p99_us\":$(echo "$upd_half" | head -1 | sed -n 's/.*p99 \([0-9]*\) us.*/\1/p')")}")
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  done
done
taskset -c 0 "$work/reply-floor" 24342 & pid=$!
sleep 0.2
request 1000 2 0 >/dev/null
floor_full=$(request 1000 "$secs" 0)
floor_50k=$(request 1000 "$secs" 50000)
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
echo "floor (C responder, no lookup, CPU 0)"
echo "  full speed: $floor_full"
echo "  50,000/s:   $floor_50k"
results+=("{\"floor\":true,\"answered_per_s\":$(field "$floor_full" answered),\"at_50k_p50_us\":$(field "$floor_50k" p50),\"at_50k_p99_us\":$(field "$floor_50k" p99)}")

# LISP-DDT: root (127.0.3.1), DDT Map-Resolver (127.0.3.3), four DDT Map-Servers holding $large EIDs each (A 127.0.3.2,
# B .4, C .5, D .6) and D's peer D2 (.7) holding D's EIDs too, for the failover row.
for a in 1 2 3 4 5 6 7; do ! ss -uln | grep -q "127.0.3.$a:4342 " || { echo "bench-mapserver.sh: 127.0.3.$a:4342 is in use" >&2; exit 1; }; done
ms_addr=(127.0.3.2 127.0.3.4 127.0.3.5 127.0.3.6)
# EIDs are 10.0.0.1 up: Map-Server i holds indexes [i*dl, (i+1)*dl), dl the power of two at or above --large (1M:
# 1,048,576), so that each range fills whole /16s. The root delegates each /16 of 10/8 on its own (so that every new
# /16 asked is a cold walk): to the Map-Server whose range holds it (the last one's to D and its peer D2).
dl=1; while [ "$dl" -lt "$large" ]; do dl=$((dl * 2)); done
{ echo "listen 127.0.3.1:4342"; echo "control-socket $work/root.sock"; echo "ddt-authority 1000 0.0.0.0/0"
  for k in $(seq 0 255); do
    i=$(( (k * 65536) / dl )); [ "$i" -gt 3 ] && i=3
    if [ "$i" = 3 ]; then echo "ddt-delegate 1000 10.$k.0.0/16 map-server ${ms_addr[3]} 127.0.3.7"; else echo "ddt-delegate 1000 10.$k.0.0/16 map-server ${ms_addr[$i]}"; fi
  done; } > "$work/root.conf"
for i in 0 1 2 3 4; do
  addr=$([ "$i" = 4 ] && echo 127.0.3.7 || echo "${ms_addr[$i]}")
  sed -e "s/^listen .*/listen $addr:4342/" -e "s|^control-socket .*|control-socket $work/ddt-ms$i.sock|" "$work/ms.conf" > "$work/ddt-ms$i.conf"
  [ "$i" -ge 3 ] && echo "ddt-map-server-peer $([ "$i" = 3 ] && echo 127.0.3.7 || echo "${ms_addr[3]}")" >> "$work/ddt-ms$i.conf"
done
cat > "$work/mr.conf" <<CONF
listen 127.0.3.3:4342
control-socket $work/mr.sock
map-request-rate 10000000 10000000
ddt-root 127.0.3.1
CONF
ddt_pids=(); ms_pids=()
./out/fastxtr mapserver --config "$work/root.conf" > "$work/root.log" 2>&1 & ddt_pids+=($!)
for i in 0 1 2 3 4; do taskset -c 0 ./out/fastxtr mapserver --config "$work/ddt-ms$i.conf" --workers 1 > "$work/ddt-ms$i.log" 2>&1 & ms_pids+=($!); done
disown "${ms_pids[3]}" # killed on purpose by the failover row: no "Killed" notice from bash
start_mr() { taskset -c 0 ./out/fastxtr mapserver --config "$work/mr.conf" --workers 1 > "$work/mr.log" 2>&1 & mr_pid=$!; for i in $(seq 50); do [ -S "$work/mr.sock" ] && break; sleep 0.1; done; }
stop_mr() { kill "$mr_pid"; wait "$mr_pid" 2>/dev/null || true; rm -f "$work/mr.sock"; }
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; kill "${ddt_pids[@]}" "${ms_pids[@]}" ${mr_pid:-} 2>/dev/null || true; rm -rf "$work"; }
for i in $(seq 100); do [ -S "$work/root.sock" ] && [ -S "$work/ddt-ms0.sock" ] && [ -S "$work/ddt-ms4.sock" ] && break; sleep 0.1; done
start_mr
ddt_reg=""
for i in 0 1 2 3; do ddt_reg=$(taskset -c 1 $load register "${ms_addr[$i]}:4342" bench-key "$dl" 50 --first $((i * dl))); done
taskset -c 1 $load register 127.0.3.7:4342 bench-key "$dl" 50 --first $((3 * dl)) >/dev/null
total=$((4 * dl))
ddt_request() { taskset -c 1 $load request "$1" "$2" "$3" "$4" 64 "${@:5}"; }
ddt_request "${ms_addr[0]}:4342" "$dl" 2 0 >/dev/null
direct=$(ddt_request "${ms_addr[0]}:4342" "$dl" "$secs" 0)
ddt_request 127.0.3.3:4342 "$total" 2 0 >/dev/null
warm=$(ddt_request 127.0.3.3:4342 "$total" "$secs" 0)
warm_answered=$(field "$warm" answered)
# Open-loop overload measures collapse as much as capacity: also the highest of a doubling series of rates that each
# is answered at 99% or more, for the Map-Server asked directly and through the resolver.
sustained() {
  local best=0 r out got
  for r in 5000 10000 20000 40000 80000 160000 320000; do
    out=$(ddt_request "$1" "$2" "$secs" "$r"); got=$(field "$out" answered)
    [ "$got" -ge $((r * 99 / 100)) ] || break
    best=$r
  done
  echo "$best"
}
direct_sustained=$(sustained "${ms_addr[0]}:4342" "$dl")
warm_sustained=$(sustained 127.0.3.3:4342 "$total")
warm_half=$(ddt_request 127.0.3.3:4342 "$total" "$secs" $(( (warm_sustained > 0 ? warm_sustained : warm_answered) / 2)))
# Cold walks: an unregistered EID in a /16 not asked before (root: MS-REFERRAL, Map-Server: MS-NOT-REGISTERED,
# the resolver answers negatively), after one unreported walk that warms the resolver's code paths.
cold=()
for k in $(seq 199 219); do
  ms=$(./out/fastxtr lig "10.$k.0.1" --iid 1000 --mr 127.0.3.3:4342 --count 1 --timeout 3000 | sed -n 's/.* in \([0-9.]*\) ms:.*/\1/p')
  [ "$k" != 199 ] && [ -n "$ms" ] && cold+=("$ms")
done
# Failover: requests for D's EIDs through the resolver at 5,000/s; D (which the resolver's referrals list first) is
# killed 1.5 s in; D2 holds the same EIDs. The time until the requests sent just after the death are answered.
fail=$(ddt_request 127.0.3.3:4342 "$dl" 4 5000 --first $((3 * dl)) --kill "${ms_pids[3]}" --kill-at 1.5)
failover_ms=$(echo "$fail" | sed -n 's/.*failover \([0-9]*\) ms.*/\1/p')
stop_mr
kill "${ddt_pids[@]}" "${ms_pids[@]}" 2>/dev/null || true; { wait "${ddt_pids[@]}" "${ms_pids[@]}" || true; } 2>/dev/null
cold_stats=$(printf '%s\n' "${cold[@]}" | sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "0 0 0"; exit} p50=a[int((NR+1)/2)]; p99=a[NR]; printf "%d %d %d", p50*1000, p99*1000, NR}')
read -r cold_p50 cold_p99 cold_n <<< "$cold_stats"
echo "LISP-DDT, 4 Map-Servers with $dl EIDs each ($total in all) behind a root; last registration: $ddt_reg"
echo "  direct to one Map-Server:            $direct"
echo "  through the Map-Resolver, cache warm: $warm"
echo "  highest rate answered at 99%: direct ${direct_sustained}/s, through the Map-Resolver ${warm_sustained}/s"
echo "  through the Map-Resolver, half that:  $warm_half"
echo "  cold walk (root, Map-Server, negative answer) seen by lig: p50 ${cold_p50} us, max ${cold_p99} us over $cold_n walks"
echo "  a Map-Server killed under 5,000/s through the resolver: $(echo "$fail" | tail -n 1)"
results+=("{\"ddt\":true,\"map_servers\":4,\"eids\":$total,\"answered_per_s\":$warm_answered,\"direct_answered_per_s\":$(field "$direct" answered),\"sustained_per_s\":$warm_sustained,\"direct_sustained_per_s\":$direct_sustained,\"half_load_p50_us\":$(field "$warm_half" p50),\"half_load_p99_us\":$(field "$warm_half" p99),\"cold_p50_us\":$cold_p50,\"cold_p99_us\":$cold_p99,\"failover_ms\":${failover_ms:-null}}")
if [ -n "$json" ]; then (IFS=,; echo "[${results[*]}]") > "$json"; echo "wrote $json"; fi
