#!/usr/bin/env bash
# Forwarding capacity of one core: the data plane under test alone on CPU 0, the generator and the sink on CPU 1.
#
#   scripts/bench-capacity.sh [--secs N] [--modes "vxlan tun af-packet af-xdp af-xdp-u c-ceiling rtr"] [--dirs "itr etr"] [--json FILE]
#                             [--profile DIR] [--busy-poll-us N] [--offload off|on]
#   (--busy-poll-us: the data plane's, 0 by default here: a worker that keeps checking takes its core from the
#    kernel's receive work on the same core)
#   (--offload: the tun and af-packet data planes' segmentation offloads, off by default here as in the data plane)
#   (--profile: perf record -C 0 during each final trial into DIR/<key>.data, the data plane with its JIT map)
#
# Three namespaces in a line, G (generator) -- T (the device under test) -- K (sink), joined by veths. The generator
# (perf/Capacity/pktgen.c) sends pre-built frames through an AF_PACKET TX ring with qdisc bypass from CPU 1; the sink
# is an XDP program that drops every frame on K's veth (perf/Capacity/xdpdrop.c), run by the veth's NAPI thread
# pinned to CPU 1, and counted by that veth (rx_packets): what T delivered. T reaches K through static neighbour
# entries. T's receive processing is steered to CPU 0 (RPS on the ingress veth, or the veth's NAPI thread pinned
# there where an XDP program runs on it), and a FastXtr data plane under test runs one worker pinned to CPU 0, so that
# everything T does lands on CPU 0. (Steering the sink with RPS instead charged T an inter-processor interrupt per
# batch, a VM exit here: a third of CPU 0 in the profile.)
#   ITR: 64-byte IPv4/UDP frames (60 bytes plus the FCS) from a host 10.3.0.2 to 10.4.0.2 into T's EID side;
#        T sends them encapsulated to the RLOC 172.31.77.2 (K).
#   ETR: the same packets encapsulated (LISP, or VXLAN for the kernel) from 172.31.77.2 to T's RLOC; T sends the
#        inner packets to the host 10.4.0.2 (K).
# For each mode and direction: the capacity (the highest offered rate delivered at >= 99%, by bisection), CPU 0's busy
# share at that rate, and CPU-ns per packet on CPU 0. First the generator alone into a sink at T's ingress, to show
# how fast it can feed.
# --json FILE writes {"generator_mpps": x, "itr": {"vxlan": x, "tun": x, "af-packet": x, "af-xdp": x},
# "etr": {...}, "itr_ns_per_packet": {...}, "etr_ns_per_packet": {...}, "itr_cpu0_busy": {...}, ...}.
# af-xdp-u: af-xdp with --xdp-underlay (LISP data received through AF_XDP on the underlay too; the ITR is unchanged).
# rtr: fastxtr rtr on CPU 0 (its worker pinned there), the ETR direction only: the generator's LISP packets (from the
# RLOC 172.31.77.2) decapsulated, checked by the decapsulation filter and encapsulated again to the RLOC 172.31.78.2 (K)
# from the data port; the two bindings given with signed Info-Requests (perf/Capacity/info_request.py), one from each
# end, as xTRs behind NAT give theirs. Its row's ETR column is the RTR's forwarding rate, to be read against the
# direct path: the ITR and ETR of the same run (a packet that goes through an RTR crosses the ITR, the RTR and the ETR).
# c-ceiling: perf/Capacity/xskfwd.c on CPU 0, the least an AF_XDP xTR can do (AF_XDP in, a fixed header added or
# removed, AF_XDP out on the other interface, one copy between UMEMs, no lookup). Everything stays inside the
# namespaces, which are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
secs=5; modes="vxlan tun af-packet af-xdp af-xdp-u c-ceiling rtr"; json=""; profile=""; dirs="itr etr"; busy_poll=0; offload=off
while [ $# -gt 0 ]; do
  case "$1" in
    --secs) secs="$2"; shift 2 ;;
    --modes) modes="$2"; shift 2 ;;
    --json) json="$2"; shift 2 ;;
    --profile) profile="$2"; mkdir -p "$profile"; shift 2 ;;
    --dirs) dirs="$2"; shift 2 ;;
    --busy-poll-us) busy_poll="$2"; shift 2 ;;
    --offload) offload="$2"; shift 2 ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "bench-capacity.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench-capacity.sh: needs root (network namespaces, XDP)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "bench-capacity.sh: needs 2 CPUs (the device under test on CPU 0, generator and sink on CPU 1)" >&2; exit 1; }
command -v gcc >/dev/null || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libc6-dev >/dev/null; }
work=$(mktemp -d)
gcc -O2 -o "$work/pktgen" perf/Capacity/pktgen.c
gcc -O2 -o "$work/xdpdrop" perf/Capacity/xdpdrop.c
gcc -O2 -o "$work/xskfwd" perf/Capacity/xskfwd.c
bash scripts/build.sh >/dev/null
G="fxcap-g-$$"; T="fxcap-t-$$"; K="fxcap-k-$$"; shm="fxcap-$$"
MAC_G=02:00:00:00:0a:01; MAC_TIN=02:00:00:00:0a:02; MAC_TOUT=02:00:00:00:0a:03; MAC_K=02:00:00:00:0a:04; MAC_VX=02:00:00:00:0a:05
teardown() {
  pkill -f "fastxtr dataplane .*--shm $shm" 2>/dev/null || true
  pkill -f "fastxtr rtr --config $work/rtr.conf" 2>/dev/null || true
  pkill -f "$work/xdpdrop" 2>/dev/null || true
  pkill -f "$work/xskfwd" 2>/dev/null || true
  sleep 0.3
  for ns in "$G" "$T" "$K"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -f "/dev/shm/$shm"
}
trap 'teardown; rm -rf "$work"' EXIT INT TERM

# build ROLE: G -- gin/tin -- T -- tout/kin -- K. ROLE itr: tin is the EID side (10.3.0.0/24), tout the underlay;
# etr: tin is the underlay (172.31.77.0/24), tout the EID side (10.4.0.0/24).
build() {
  local role=$1
  teardown
  for ns in "$G" "$T" "$K"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
  ip link add gin address $MAC_G netns "$G" type veth peer name tin address $MAC_TIN netns "$T"
  ip link add tout address $MAC_TOUT netns "$T" type veth peer name kin address $MAC_K netns "$K"
  for l in "$G gin" "$T tin" "$T tout" "$K kin"; do set -- $l; ip -n "$1" link set "$2" up; done
  for ns in "$G" "$T" "$K"; do
    ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  done
  if [ "$role" = itr ]; then
    ip -n "$G" addr add 10.3.0.2/24 dev gin; ip -n "$T" addr add 10.3.0.1/24 dev tin
    ip -n "$T" addr add 172.31.77.1/24 dev tout; ip -n "$T" neigh replace 172.31.77.2 lladdr $MAC_K dev tout
  else
    ip -n "$G" addr add 172.31.77.2/24 dev gin; ip -n "$T" addr add 172.31.77.1/24 dev tin
    ip -n "$T" addr add 10.4.0.1/24 dev tout; ip -n "$T" neigh replace 10.4.0.2 lladdr $MAC_K dev tout
  fi
  for ns in "$G" "$T" "$K"; do for dev in gin tin tout kin; do ip netns exec "$ns" sysctl -qw "net.ipv4.conf.$dev.rp_filter=0" 2>/dev/null || true; done; done
  # T's receive processing on CPU 0; the sink's XDP drop on CPU 1.
  ip netns exec "$T" sh -c 'echo 1 > /sys/class/net/tin/queues/rx-0/rps_cpus'
  xdp_sink "$K" kin 1
}

# xdp_sink NS DEV CPU: frames arriving on DEV dropped by xdpdrop in the veth's NAPI thread, pinned to CPU.
xdp_sink() {
  ip netns exec "$1" "$work/xdpdrop" "$2" > "$work/xdpdrop-$2.log" 2>&1 &
  for _ in $(seq 30); do grep -q dropping "$work/xdpdrop-$2.log" 2>/dev/null && break; sleep 0.1; done
  grep -q dropping "$work/xdpdrop-$2.log" || { echo "bench-capacity.sh: the XDP sink did not attach to $2:"; cat "$work/xdpdrop-$2.log"; exit 1; }
  napi_on "$1" "$2" "$3"
}

# napi_on NS DEV CPU: the veth's NAPI in a thread of its own, pinned to CPU.
napi_on() {
  ip netns exec "$1" sh -c "echo 1 > /sys/class/net/$2/threaded"
  sleep 0.2
  for pid in $(pgrep -f "napi/$2-"); do taskset -pc "$3" "$pid" >/dev/null; done
}

# Frames the sink dropped so far: at K's kin, or at T's tin while the generator is measured alone.
sink_ns=""; sink_dev=kin
sink_count() { ip netns exec "$sink_ns" cat "/sys/class/net/$sink_dev/statistics/rx_packets"; }
cpu0_busy() { awk '/^cpu0 / {print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }

# measure KEY FRAME_ARGS...: runs the generator for $secs s and records Mpps at the sink, CPU 0 busy share and ns/packet.
# With RATE set the generator offers that many packets/s.
declare -A result
measure() {
  local key=$1; shift
  local c0 b0 t0 c1 b1 t1 gen
  c0=$(sink_count); read -r b0 t0 < <(cpu0_busy)
  local rec=""
  if [ -n "$profile" ] && [ -z "${QUIET:-}" ]; then
    perf record -q -g -C 0 -o "$profile/$key.data" -- sleep "$secs" >/dev/null 2>&1 & rec=$!
  fi
  gen=$(RATE=${RATE:-0} taskset -c 1 ip netns exec "$G" "$work/pktgen" gin "$MAC_TIN" "$MAC_G" "$@")
  [ -z "$rec" ] || wait "$rec" || true
  c1=$(sink_count); read -r b1 t1 < <(cpu0_busy)
  local out
  out=$(/usr/bin/python3 - "$c0" "$c1" "$b0" "$b1" "$t0" "$t1" "$secs" "$gen" <<'PY'
import sys
c0, c1, b0, b1, t0, t1, secs = (float(x) for x in sys.argv[1:8]); gen = sys.argv[8].split()
n = c1 - c0; hz = 100.0
busy = (b1 - b0) / max(1.0, t1 - t0)
mpps = n / secs / 1e6
ns = (b1 - b0) / hz * 1e9 / n if n > 0 else 0
print("%.3f %.2f %.0f %s" % (mpps, busy, ns, gen[2]))
PY
)
  read -r mpps busy ns genmpps <<<"$out"
  result[$key]=$mpps; result[${key}_busy]=$busy; result[${key}_ns]=$ns; result[${key}_offered]=$genmpps
  [ -n "${QUIET:-}" ] || printf '%-22s %7s Mpps at the sink  (offered %s Mpps)  CPU 0 busy %s  %s ns/packet on CPU 0\n' "$key" "$mpps" "$genmpps" "$busy" "$ns"
}

# capacity KEY FRAME_ARGS...: the highest offered rate that arrives at >= 99% (RFC 2544's throughput, with 1% loss
# allowed), found by bisection between 0 and the generator's full speed in 2-second trials; the figures of that
# trial are KEY's. A user-space data plane on an overloaded core loses its CPU to the kernel's receive processing
# (receive livelock), so its figure at full offered load says little: the rate it sustains is the capacity.
capacity() {
  local key=$1; shift
  local lo=0 hi hi_mpps s_secs=$secs best=""
  secs=2
  QUIET=1 RATE=0 measure "$key" "$@"
  hi_mpps=${result[${key}_offered]}
  if /usr/bin/python3 -c "import sys; sys.exit(0 if float('${result[$key]}') >= 0.99*float('$hi_mpps') else 1)"; then best=$hi_mpps
  else
    hi=$(/usr/bin/python3 -c "print(int(float('$hi_mpps')*1e6))")
    for _ in 1 2 3 4 5 6 7; do
      local mid=$(( (lo + hi) / 2 ))
      sleep 1 # what the last trial left in the queues drains first: trials are independent
      QUIET=1 RATE=$mid measure "$key" "$@"
      if /usr/bin/python3 -c "import sys; sys.exit(0 if float('${result[$key]}')*1e6 >= 0.99*$mid else 1)"; then lo=$mid; best=$mid; else hi=$mid; fi
    done
  fi
  secs=$s_secs
  RATE=${best:-$lo}; [ -n "$best" ] && [ "$best" = "$hi_mpps" ] && RATE=0
  sleep 1
  RATE=$RATE measure "$key" "$@"
}

start_fastxtr() {
  local mode=$1 eid=$2 underlay=${3:-}
  local dev="$eid" extra=()
  local off=(); case "$mode" in tun|af-packet) off=(--offload "$offload") ;; esac
  if [ "$mode" = tun ]; then dev=fxcap0; fi
  if [ "$mode" = af-xdp-u ]; then mode=af-xdp; extra=(--xdp-underlay "$underlay"); fi
  ip netns exec "$T" env ${profile:+DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0} "$root/out/fastxtr" dataplane --mode "$mode" --rloc-addr 172.31.77.1 --instance "1000=$dev" "${extra[@]}" --cpus 0 --shm "$shm" --busy-poll-us "$busy_poll" "${off[@]}" > "$work/dp.log" 2>&1 &
  for _ in $(seq 50); do [ -f "/dev/shm/$shm" ] && ./out/fastxtr show stats --shm "$shm" >/dev/null 2>&1 && break; sleep 0.1; done
  sleep 0.5
  if [ "$mode" = tun ]; then ip -n "$T" addr add 10.9.0.1/24 dev fxcap0; ip -n "$T" link set fxcap0 up; fi
  # An XDP program on T's ingress runs in the veth's NAPI: in a thread of its own, pinned to CPU 0.
  if [ "$mode" = af-xdp ] && { [ "$eid" = tin ] || { [ "$underlay" = tin ] && [ ${#extra[@]} -gt 0 ]; }; }; then napi_on "$T" tin 0; fi
  grep -q "worker" "$work/dp.log" || { echo "the $mode data plane did not start:"; cat "$work/dp.log"; exit 1; }
}

echo "# the generator alone into an XDP drop at T's ingress (on CPU 0)"
build itr
xdp_sink "$T" tin 0
sink_ns=$T; sink_dev=tin
measure generator 10.3.0.2 10.4.0.2 "$secs" plain
sink_ns=$K; sink_dev=kin

for dir in $dirs; do
  for mode in $modes; do
    [ "$mode" = rtr ] && [ "$dir" = itr ] && continue # an RTR has one direction: LISP in, LISP out
    build "$dir"
    case "$mode" in
      vxlan)
        ip -n "$T" link add vxlan0 address $MAC_VX type vxlan id 42 local 172.31.77.1 remote 172.31.77.2 dstport 4789 dev "$([ "$dir" = itr ] && echo tout || echo tin)"
        ip -n "$T" link set vxlan0 up; ip -n "$T" addr add 10.250.0.1/24 dev vxlan0
        ip netns exec "$T" sysctl -qw net.ipv4.ip_forward=1
        if [ "$dir" = itr ]; then
          ip -n "$T" neigh add 10.250.0.2 lladdr 02:00:00:00:0b:01 dev vxlan0; ip -n "$T" route add 10.4.0.0/24 via 10.250.0.2
        fi
        ;;
      tun)
        ip netns exec "$T" sysctl -qw net.ipv4.ip_forward=1
        start_fastxtr tun "" ;;
      rtr)
        ip -n "$T" addr add 172.31.78.1/24 dev tout; ip -n "$T" neigh replace 172.31.78.2 lladdr $MAC_K dev tout
        ip -n "$K" addr add 172.31.78.2/24 dev kin; ip -n "$K" neigh replace 172.31.78.1 lladdr $MAC_TOUT dev kin
        ip -n "$K" route add 172.31.77.0/24 via 172.31.78.1
        printf 'rloc-addr 172.31.77.1\nshm %s\napi-socket %s\nmap-resolver 127.0.0.1\nrloc-probe-interval 0\nnat-binding-timeout 86400\nnat-site 1000 10.0.0.0/8 0 sha256 "bench"\n' \
          "$shm" "$work/rtr.sock" > "$work/rtr.conf"
        ip netns exec "$T" env ${profile:+DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0} "$root/out/fastxtr" rtr --config "$work/rtr.conf" --cpus 0 --busy-poll-us "$busy_poll" > "$work/dp.log" 2>&1 &
        for _ in $(seq 50); do [ -S "$work/rtr.sock" ] && break; sleep 0.1; done
        grep -q "worker" "$work/dp.log" || { echo "the RTR did not start:"; cat "$work/dp.log"; exit 1; }
        ip netns exec "$G" /usr/bin/python3 perf/Capacity/info_request.py 172.31.77.1 4341 4341 1000 10.3.0.0/24 0 bench
        ip netns exec "$K" /usr/bin/python3 perf/Capacity/info_request.py 172.31.77.1 4341 4341 1000 10.4.0.0/24 0 bench
        for _ in $(seq 50); do ./out/fastxtr show agents --api-socket "$work/rtr.sock" | grep -q "RTR: 2 xTR binding" && break; sleep 0.1; done
        ./out/fastxtr show agents --api-socket "$work/rtr.sock" | grep -q "RTR: 2 xTR binding" || { echo "the RTR did not take the two bindings:"; ./out/fastxtr show agents --api-socket "$work/rtr.sock"; cat "$work/dp.log"; exit 1; } ;;
      c-ceiling)
        if [ "$dir" = itr ]; then set -- encap 172.31.77.1 172.31.77.2 1000; else set -- decap; fi
        taskset -c 0 ip netns exec "$T" "$work/xskfwd" tin tout $MAC_K $MAC_TOUT "$@" > "$work/xskfwd.log" 2>&1 &
        for _ in $(seq 30); do grep -q xskfwd: "$work/xskfwd.log" 2>/dev/null && break; sleep 0.1; done
        grep -q "tin -> tout" "$work/xskfwd.log" || { echo "the C ceiling did not start:"; cat "$work/xskfwd.log"; exit 1; }
        napi_on "$T" tin 0 ;;
      af-packet|af-xdp|af-xdp-u)
        if [ "$dir" = itr ]; then start_fastxtr "$mode" tin tout; else start_fastxtr "$mode" tout tin; fi ;;
    esac
    if [ "$mode" != vxlan ] && [ "$mode" != c-ceiling ] && [ "$mode" != rtr ]; then
      if [ "$dir" = itr ]; then
        ./out/fastxtr map-cache add --shm "$shm" --iid 1000 --eid 10.4.0.0/24 --rloc 172.31.77.2 >/dev/null
        [ "$mode" = tun ] && ip -n "$T" route add 10.4.0.0/24 dev fxcap0
      else
        ./out/fastxtr map-cache add --shm "$shm" --iid 1000 --eid 10.3.0.0/24 --rloc 172.31.77.2 >/dev/null
        # The EID host speaks once, so that an af-packet or af-xdp ETR knows its MAC; then K loses its address.
        # (K's XDP sink drops ARP replies as well: it knows T's MAC statically.)
        ip -n "$K" addr add 10.4.0.2/24 dev kin; ip -n "$K" route add default via 10.4.0.1
        ip -n "$K" neigh replace 10.4.0.1 lladdr $MAC_TOUT dev kin
        ip netns exec "$K" ping -c 1 -W 0.3 10.3.0.2 >/dev/null 2>&1 || true
        ip -n "$K" addr flush dev kin
      fi
    fi
    if [ "$dir" = itr ]; then
      capacity "itr_$mode" 10.3.0.2 10.4.0.2 "$secs" plain
    elif [ "$mode" = vxlan ]; then
      capacity "etr_$mode" 10.3.0.2 10.4.0.2 "$secs" vxlan 172.31.77.2 172.31.77.1 42 $MAC_VX
    else
      capacity "etr_$mode" 10.3.0.2 10.4.0.2 "$secs" lisp 172.31.77.2 172.31.77.1 1000
    fi
    if [ "$mode" != vxlan ] && [ "$mode" != c-ceiling ]; then
      ./out/fastxtr show stats --shm "$shm" | grep -E '^(drop|tun-rx-packets|udp-tx-packets|udp-rx-packets|tun-tx-packets|etr-kernel-routed|rtr-)' | awk '$2 != 0' | sed 's/^/    /' || true
    fi
  done
done
teardown

ratio() { /usr/bin/python3 -c "a,b=float('$1' or 0),float('$2' or 0); print('%.2f' % (a/b) if b else 'n/a')"; }
echo
echo "generator alone: ${result[generator]} Mpps into a drop sink"
echo
echo "| data plane on CPU 0 | ITR Mpps | ITR ns/packet | vs VXLAN | vs C ceiling | ETR Mpps | ETR ns/packet | vs VXLAN | vs C ceiling |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for mode in $modes; do
  echo "| $mode | ${result[itr_$mode]:-} | ${result[itr_${mode}_ns]:-} | $(ratio "${result[itr_$mode]:-}" "${result[itr_vxlan]:-}")x | $(ratio "${result[itr_$mode]:-}" "${result[itr_c-ceiling]:-}")x | ${result[etr_$mode]:-} | ${result[etr_${mode}_ns]:-} | $(ratio "${result[etr_$mode]:-}" "${result[etr_vxlan]:-}")x | $(ratio "${result[etr_$mode]:-}" "${result[etr_c-ceiling]:-}")x |"
done
if [ -n "$json" ]; then
  { echo "{"; echo "  \"seconds\": $secs,"; echo "  \"generator_mpps\": ${result[generator]},"
    for what in "" _ns _busy; do for dir in $dirs; do
      name="$dir"; [ "$what" = _ns ] && name="${dir}_ns_per_packet"; [ "$what" = _busy ] && name="${dir}_cpu0_busy"
      printf '  "%s": {' "$name"; first=1
      for mode in $modes; do [ $first -eq 1 ] || printf ', '; first=0; printf '"%s": %s' "$mode" "${result[${dir}_${mode}${what}]:-0}"; done
      echo "},"
    done; done
    echo "  \"modes\": \"$modes\""; echo "}"; } > "$json"
  echo "wrote $json"
fi
