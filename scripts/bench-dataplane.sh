#!/usr/bin/env bash
# Packet-rate benchmark: FastXtr ITR -> ETR against a kernel VXLAN tunnel, in the same run over the same veth.
#
#   scripts/bench-dataplane.sh [--secs N] [--workers "1 2"] [--offload "off on"] [--streams "1 4"] [--modes "tun af-packet af-xdp af-xdp-u"]
#                              [--rr "1 16"] [--rr-secs N] [--underlays "4 6"] [--pin] [--json FILE] [--png FILE]
#   (--png: the bar chart of the figures against VXLAN, default perf/dataplane-vs-vxlan.png)
#   (--pin: with one worker, pin the sending xTR's worker to CPU 0 beside the sender and the receiving one to CPU 1
#    beside the receiver)
#   (--rr: request/response with that many requests outstanding, "" for none; --rr-secs: seconds per measurement, 3)
#   (--underlays: "6" adds the IPv6-underlay rows: kernel VXLAN over IPv6 (VNI 43, overlay 10.251.0.0/24) and the
#    TUN data planes with IPv6 RLOCs fd00:77::1/2, keys with a 6 after the path: vxlan6_udp64, fx1on6_tcp1)
#
# Two namespaces joined by one veth pair (underlay 172.31.77.1/.2). Over it: a kernel VXLAN tunnel (VNI 42, overlay
# 10.250.0.0/24) and two FastXtr data planes (IID 1000, EIDs 10.1.0.1 and 10.2.0.1 on their TUNs, static map-cache
# entries). For each: UDP packets/s with 64- and 1400-byte payloads (udpflow from ../shared/perf-reference, sendmmsg
# batches of 32, measured at the receiver) and single-stream TCP Gbit/s (iperf3). With af-packet or af-xdp in
# --modes, two host namespaces join the xTRs through two-queue veths (hosts 10.3.0.2 and 10.4.0.2): the af-packet
# data planes (keys fx<workers>ap<offload>) and the af-xdp ones (fx<workers>xdp, and fx<workers>xdpu with
# --xdp-underlay on the underlay veth; offloads do not apply) serve them on those veths, and the same kernel VXLAN tunnel carries them once more with the two namespaces routing
# (the "routed" baseline, the kernel's way of serving the same hosts). Request/response (perf/Load/rr.c): UDP and TCP
# ping-pong with 64-byte and 1 KB messages, 1 and 16 outstanding, over the plain underlay ("underlay"), kernel VXLAN
# and every FastXtr path, reporting transactions/s and p50/p99/p99.9 round trips; JSON keys
# <path>_rr_<proto><size>_<p50|p99|p999>_us and <path>_rr_<proto><size>_tps (rr16 for 16 outstanding), e.g.
# vxlan_rr_udp64_p99_us, fx1on_rr16_tcp1k_tps. Everything stays inside the namespaces, which are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
secs=4; workers_list="1 2"; offload_list="off on"; streams_list="1 4"; modes="tun af-packet af-xdp af-xdp-u"; json=""; pin=""; png="perf/dataplane-vs-vxlan.png"
rr_list="1 16"; rr_secs=3; underlays="4 6"
while [ $# -gt 0 ]; do
  case "$1" in
    --secs) secs="$2"; shift 2 ;;
    --workers) workers_list="$2"; shift 2 ;;
    --offload) offload_list="$2"; shift 2 ;;
    --streams) streams_list="$2"; shift 2 ;;
    --modes) modes="$2"; shift 2 ;;
    --json) json="$2"; shift 2 ;;
    --png) png="$2"; shift 2 ;;
    --pin) pin=1; shift ;;
    --rr) rr_list="$2"; shift 2 ;;
    --rr-secs) rr_secs="$2"; shift 2 ;;
    --underlays) underlays="$2"; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "bench-dataplane.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench-dataplane.sh: needs root (network namespaces, TUN)" >&2; exit 1; }
for pkg in iperf3 gcc; do command -v "$pkg" >/dev/null || { apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iperf3 gcc >/dev/null; break; }; done
ref="$root/../shared/perf-reference"
[ -f "$ref/udpflow.c" ] || { echo "bench-dataplane.sh: $ref/udpflow.c not found (the shared perf-reference tools)" >&2; exit 1; }
work=$(mktemp -d)
gcc -O2 -o "$work/udpflow" "$ref/udpflow.c"
gcc -O2 -o "$work/rr" perf/Load/rr.c
bash scripts/build.sh >/dev/null

S="fxbench-s-$$"; D="fxbench-d-$$"; HS="fxbench-hs-$$"; HD="fxbench-hd-$$"; shm_s="fxbench-s-$$"; shm_d="fxbench-d-$$"
cleanup() {
  pkill -f "fastxtr dataplane .*--shm fxbench-[sd]-$$" 2>/dev/null || true
  sleep 0.3
  for ns in "$S" "$D" "$HS" "$HD"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -f "/dev/shm/$shm_s" "/dev/shm/$shm_d"; rm -rf "$work"
}
trap cleanup EXIT INT TERM

ip netns add "$S"; ip netns add "$D"
# (Two queues each way: --xdp-underlay binds an AF_XDP socket per queue, at least one per worker.)
uq="numtxqueues 2 numrxqueues 2"
ip link add fxbs$$ $uq netns "$S" type veth peer name fxbd$$ $uq netns "$D" 2>/dev/null || ip link add fxbs $uq netns "$S" type veth peer name fxbd $uq netns "$D"
vs=$(ip -n "$S" -o link | awk -F': ' '/fxbs/{print $2}' | cut -d@ -f1); vd=$(ip -n "$D" -o link | awk -F': ' '/fxbd/{print $2}' | cut -d@ -f1)
for ns in "$S" "$D"; do ip -n "$ns" link set lo up; done
ip -n "$S" addr add 172.31.77.1/24 dev "$vs"; ip -n "$S" link set "$vs" up
ip -n "$D" addr add 172.31.77.2/24 dev "$vd"; ip -n "$D" link set "$vd" up
ip -n "$S" link add fxvx type vxlan id 42 local 172.31.77.1 remote 172.31.77.2 dstport 4789 dev "$vs"
ip -n "$D" link add fxvx type vxlan id 42 local 172.31.77.2 remote 172.31.77.1 dstport 4789 dev "$vd"
ip -n "$S" addr add 10.250.0.1/24 dev fxvx; ip -n "$S" link set fxvx up
ip -n "$D" addr add 10.250.0.2/24 dev fxvx; ip -n "$D" link set fxvx up
v6=""; [[ " $underlays " == *" 6 "* ]] && v6=1
if [ -n "$v6" ]; then
  # The same veth with IPv6 addresses, and a second VXLAN tunnel over them.
  ip -n "$S" addr add fd00:77::1/64 dev "$vs" nodad; ip -n "$D" addr add fd00:77::2/64 dev "$vd" nodad
  ip -n "$S" link add fxvx6 type vxlan id 43 local fd00:77::1 remote fd00:77::2 dstport 4789 dev "$vs"
  ip -n "$D" link add fxvx6 type vxlan id 43 local fd00:77::2 remote fd00:77::1 dstport 4789 dev "$vd"
  ip -n "$S" addr add 10.251.0.1/24 dev fxvx6; ip -n "$S" link set fxvx6 up
  ip -n "$D" addr add 10.251.0.2/24 dev fxvx6; ip -n "$D" link set fxvx6 up
fi

udp_rate() { # ns_tx ns_rx dst payload -> received Mpps
  local txns=$1 rxns=$2 dst=$3 payload=$4
  ip netns exec "$rxns" "$work/udpflow" rx "$dst" 5001 $((secs + 2)) 1 > "$work/rx.out" &
  local r=$!; sleep 0.3
  ip netns exec "$txns" "$work/udpflow" tx "$dst" 5001 "$secs" "$payload" 32 0 > "$work/tx.out"
  wait $r || true
  awk '/^rx:/{print $2}' "$work/rx.out"
}
tcp_rate() { # ns_tx ns_rx dst streams [bind] -> Gbit/s
  local txns=$1 rxns=$2 dst=$3 streams=$4 bind=${5:-}
  ip netns exec "$rxns" iperf3 -s -B "$dst" -p 5201 -1 >/dev/null 2>&1 &
  local r=$!; sleep 0.5
  ip netns exec "$txns" iperf3 -c "$dst" -p 5201 -t "$secs" -P "$streams" ${bind:+-B $bind} -J 2>/dev/null \
    | /usr/bin/python3 -c "import json,sys; j=json.load(sys.stdin); print('%.2f' % (j['end']['sum_received']['bits_per_second']/1e9))" || echo 0
  wait $r 2>/dev/null || true
}

declare -A result
rr_keys=()
rr_measure() { # path-key ns_client ns_server server_ip [client_bind]: request/response for every protocol, size and depth
  local key=$1 cns=$2 sns=$3 dst=$4 bind=${5:-} proto size n label rrk line s
  for proto in udp tcp; do for size in 64 1024; do for n in $rr_list; do
    label=$([ "$size" = 1024 ] && echo 1k || echo "$size")
    rrk="${key}_rr$([ "$n" = 1 ] || echo "$n")_${proto}${label}"
    ip netns exec "$sns" "$work/rr" server "$proto" "$dst" 5301 $((rr_secs + 4)) & s=$!
    sleep 0.3
    line=$(ip netns exec "$cns" "$work/rr" client "$proto" "$dst" 5301 "$size" "$n" "$rr_secs" $bind || true)
    kill "$s" 2>/dev/null || true; wait "$s" 2>/dev/null || true
    read -r _ _ tps _ p50 _ p99 _ p999 _ lost <<< "${line:-rr: tps 0 p50_us 0 p99_us 0 p999_us 0 lost 0}"
    result[${rrk}_tps]=$tps; result[${rrk}_p50_us]=$p50; result[${rrk}_p99_us]=$p99; result[${rrk}_p999_us]=$p999
    rr_keys+=("$rrk")
    printf '%-10s rr %s %5s B x%-2s  %8s trans/s  p50 %7s us  p99 %7s us  p99.9 %7s us  lost %s\n' "$key" "$proto" "$size" "$n" "$tps" "$p50" "$p99" "$p999" "$lost"
  done; done; done
}
if [ -n "$rr_list" ]; then
  echo "# request/response over the plain underlay (no tunnel)"
  rr_measure underlay "$S" "$D" 172.31.77.2 172.31.77.1
fi
echo "# kernel VXLAN (VNI 42) over the veth"
result[vxlan_udp64]=$(udp_rate "$S" "$D" 10.250.0.2 64); echo "vxlan  udp 64 B    ${result[vxlan_udp64]} Mpps"
result[vxlan_udp1400]=$(udp_rate "$S" "$D" 10.250.0.2 1400); echo "vxlan  udp 1400 B  ${result[vxlan_udp1400]} Mpps"
for st in $streams_list; do result[vxlan_tcp$st]=$(tcp_rate "$S" "$D" 10.250.0.2 "$st"); echo "vxlan  tcp $st stream(s) ${result[vxlan_tcp$st]} Gbit/s"; done
[ -z "$rr_list" ] || rr_measure vxlan "$S" "$D" 10.250.0.2 10.250.0.1
if [ -n "$v6" ]; then
  echo "# kernel VXLAN (VNI 43) over IPv6 on the same veth"
  ip netns exec "$S" ping -c 1 -W 3 10.251.0.2 >/dev/null || { echo "the IPv6 VXLAN path does not work"; exit 1; }
  result[vxlan6_udp64]=$(udp_rate "$S" "$D" 10.251.0.2 64); echo "vxlan6 udp 64 B    ${result[vxlan6_udp64]} Mpps"
  result[vxlan6_udp1400]=$(udp_rate "$S" "$D" 10.251.0.2 1400); echo "vxlan6 udp 1400 B  ${result[vxlan6_udp1400]} Mpps"
  for st in $streams_list; do result[vxlan6_tcp$st]=$(tcp_rate "$S" "$D" 10.251.0.2 "$st"); echo "vxlan6 tcp $st stream(s) ${result[vxlan6_tcp$st]} Gbit/s"; done
fi

case " $modes " in *" tun "*)
for fam in $underlays; do [ "$fam" = 4 ] || [ -n "$v6" ] || continue
for w in $workers_list; do for off in $offload_list; do
  if [ "$fam" = 6 ]; then k="fx${w}${off}6"; rs=fd00:77::1; rd=fd00:77::2; else k="fx${w}${off}"; rs=172.31.77.1; rd=172.31.77.2; fi
  rm -f "/dev/shm/$shm_s" "/dev/shm/$shm_d"
  ip netns exec "$S" "$root/out/fastxtr" dataplane --rloc-addr "$rs" --instance 1000=fx1000 --workers "$w" --offload "$off" ${pin:+$([ "$w" = 1 ] && echo --cpus 0)} --shm "$shm_s" > "$work/dp-s.log" 2>&1 &
  ip netns exec "$D" "$root/out/fastxtr" dataplane --rloc-addr "$rd" --instance 1000=fx1000 --workers "$w" --offload "$off" ${pin:+$([ "$w" = 1 ] && echo --cpus 1)} --shm "$shm_d" > "$work/dp-d.log" 2>&1 &
  for i in $(seq 50); do ip -n "$S" link show fx1000 >/dev/null 2>&1 && ip -n "$D" link show fx1000 >/dev/null 2>&1 && break; sleep 0.1; done
  ip -n "$S" addr add 10.1.0.1/32 dev fx1000; ip -n "$S" link set fx1000 up; ip -n "$S" route add 10.2.0.0/24 dev fx1000
  ip -n "$D" addr add 10.2.0.1/32 dev fx1000; ip -n "$D" link set fx1000 up; ip -n "$D" route add 10.1.0.0/24 dev fx1000
  ./out/fastxtr map-cache add --shm "$shm_s" --iid 1000 --eid 10.2.0.0/24 --rloc "$rd" >/dev/null
  ./out/fastxtr map-cache add --shm "$shm_d" --iid 1000 --eid 10.1.0.0/24 --rloc "$rs" >/dev/null
  ip netns exec "$S" ping -c 1 -W 2 -I 10.1.0.1 10.2.0.1 >/dev/null || { echo "fastxtr path does not work:"; cat "$work"/dp-*.log; exit 1; }
  echo "# FastXtr, $w worker(s) per xTR, offload $off, IPv$fam underlay"
  grep -o 'offload .*' "$work/dp-s.log" | head -1 | sed 's/^/  /' || true
  result[${k}_udp64]=$(udp_rate "$S" "$D" 10.2.0.1 64); echo "fastxtr udp 64 B    ${result[${k}_udp64]} Mpps"
  result[${k}_udp1400]=$(udp_rate "$S" "$D" 10.2.0.1 1400); echo "fastxtr udp 1400 B  ${result[${k}_udp1400]} Mpps"
  for st in $streams_list; do result[${k}_tcp$st]=$(tcp_rate "$S" "$D" 10.2.0.1 "$st" 10.1.0.1); echo "fastxtr tcp $st stream(s) ${result[${k}_tcp$st]} Gbit/s"; done
  [ -z "$rr_list" ] || [ "$fam" = 6 ] || rr_measure "$k" "$S" "$D" 10.2.0.1 10.1.0.1
  ./out/fastxtr show stats --shm "$shm_s" | grep -E '^(drop|tun-rx-packets|udp-tx-packets|tun-super-packets|segments-cut|udp-gso-sends|checksums-completed|inner-fragments-sent)' | sed 's/^/  itr /' || true
  ./out/fastxtr show stats --shm "$shm_d" | grep -E '^(drop|udp-rx-packets|tun-tx-packets|udp-gro-receives|segments-coalesced|tun-super-packets-written|ipv6-underlay-rx-packets)' | sed 's/^/  etr /' || true
  pkill -f "fastxtr dataplane .*--shm fxbench-[sd]-$$" || true
  sleep 0.5
done; done; done
;; esac

ethernet_modes=""
for m in af-packet af-xdp af-xdp-u; do [[ " $modes " == *" $m "* ]] && ethernet_modes="$ethernet_modes $m"; done
if [ -n "$ethernet_modes" ]; then
  # Hosts behind the gateways: hS -- S (10.3.0.1) and D (10.4.0.1) -- hD, over veths with two queues each way (one
  # AF_XDP socket per worker binds a queue).
  ip netns add "$HS"; ip netns add "$HD"
  q="numtxqueues 2 numrxqueues 2"
  ip link add fxhs$$ $q netns "$HS" type veth peer name fxgs$$ $q netns "$S" 2>/dev/null || ip link add fxhs $q netns "$HS" type veth peer name fxgs $q netns "$S"
  ip link add fxhd$$ $q netns "$HD" type veth peer name fxgd$$ $q netns "$D" 2>/dev/null || ip link add fxhd $q netns "$HD" type veth peer name fxgd $q netns "$D"
  hs=$(ip -n "$HS" -o link | awk -F': ' '/fxhs/{print $2}' | cut -d@ -f1); gs=$(ip -n "$S" -o link | awk -F': ' '/fxgs/{print $2}' | cut -d@ -f1)
  hd=$(ip -n "$HD" -o link | awk -F': ' '/fxhd/{print $2}' | cut -d@ -f1); gd=$(ip -n "$D" -o link | awk -F': ' '/fxgd/{print $2}' | cut -d@ -f1)
  for ns in "$HS" "$HD"; do ip -n "$ns" link set lo up; done
  ip -n "$HS" addr add 10.3.0.2/24 dev "$hs"; ip -n "$HS" link set "$hs" up; ip -n "$HS" route add default via 10.3.0.1
  ip -n "$HD" addr add 10.4.0.2/24 dev "$hd"; ip -n "$HD" link set "$hd" up; ip -n "$HD" route add default via 10.4.0.1
  ip -n "$S" addr add 10.3.0.1/24 dev "$gs"; ip -n "$S" link set "$gs" up
  ip -n "$D" addr add 10.4.0.1/24 dev "$gd"; ip -n "$D" link set "$gd" up
  echo "# kernel VXLAN, routed: the hosts' traffic forwarded by S and D through the tunnel"
  for ns in "$S" "$D"; do ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=1; done
  ip -n "$S" route add 10.4.0.0/24 via 10.250.0.2; ip -n "$D" route add 10.3.0.0/24 via 10.250.0.1
  ip netns exec "$HS" ping -c 1 -W 2 10.4.0.2 >/dev/null || { echo "the routed VXLAN path does not work"; exit 1; }
  result[vxlanr_udp64]=$(udp_rate "$HS" "$HD" 10.4.0.2 64); echo "vxlan routed udp 64 B    ${result[vxlanr_udp64]} Mpps"
  result[vxlanr_udp1400]=$(udp_rate "$HS" "$HD" 10.4.0.2 1400); echo "vxlan routed udp 1400 B  ${result[vxlanr_udp1400]} Mpps"
  for st in $streams_list; do result[vxlanr_tcp$st]=$(tcp_rate "$HS" "$HD" 10.4.0.2 "$st"); echo "vxlan routed tcp $st stream(s) ${result[vxlanr_tcp$st]} Gbit/s"; done
  [ -z "$rr_list" ] || rr_measure vxlanr "$HS" "$HD" 10.4.0.2
  ip -n "$S" route del 10.4.0.0/24; ip -n "$D" route del 10.3.0.0/24
  # The af-packet data planes need the kernel not to forward what their rings take.
  for ns in "$S" "$D"; do ip netns exec "$ns" sysctl -qw net.ipv4.ip_forward=0; done
  for mode in $ethernet_modes; do
  offloads="$offload_list"; [[ "$mode" == af-xdp* ]] && offloads="off"
  for w in $workers_list; do for off in $offloads; do
    case "$mode" in af-xdp) k="fx${w}xdp" ;; af-xdp-u) k="fx${w}xdpu" ;; *) k="fx${w}ap${off}" ;; esac
    dpmode=${mode%-u}; us=(); ud=()
    [ "$mode" = af-xdp-u ] && { us=(--xdp-underlay "$vs"); ud=(--xdp-underlay "$vd"); }
    rm -f "/dev/shm/$shm_s" "/dev/shm/$shm_d"
    echo "# FastXtr $mode, $w worker(s), offload $off"
    ip netns exec "$S" "$root/out/fastxtr" dataplane --mode "$dpmode" "${us[@]}" --rloc-addr 172.31.77.1 --instance "1000=$gs" --workers "$w" --offload "$off" ${pin:+$([ "$w" = 1 ] && echo --cpus 0)} --shm "$shm_s" > "$work/dp-s.log" 2>&1 &
    ip netns exec "$D" "$root/out/fastxtr" dataplane --mode "$dpmode" "${ud[@]}" --rloc-addr 172.31.77.2 --instance "1000=$gd" --workers "$w" --offload "$off" ${pin:+$([ "$w" = 1 ] && echo --cpus 1)} --shm "$shm_d" > "$work/dp-d.log" 2>&1 &
    for i in $(seq 50); do [ -f "/dev/shm/$shm_s" ] && [ -f "/dev/shm/$shm_d" ] && ./out/fastxtr show stats --shm "$shm_s" >/dev/null 2>&1 && ./out/fastxtr show stats --shm "$shm_d" >/dev/null 2>&1 && break; sleep 0.1; done
    sleep 0.5
    ./out/fastxtr map-cache add --shm "$shm_s" --iid 1000 --eid 10.4.0.0/24 --rloc 172.31.77.2 >/dev/null
    ./out/fastxtr map-cache add --shm "$shm_d" --iid 1000 --eid 10.3.0.0/24 --rloc 172.31.77.1 >/dev/null
    ip netns exec "$HS" ping -c 2 -W 2 10.4.0.2 >/dev/null || { echo "fastxtr $mode path does not work:"; cat "$work"/dp-*.log; exit 1; }
    result[${k}_udp64]=$(udp_rate "$HS" "$HD" 10.4.0.2 64); echo "fastxtr $mode udp 64 B    ${result[${k}_udp64]} Mpps"
    result[${k}_udp1400]=$(udp_rate "$HS" "$HD" 10.4.0.2 1400); echo "fastxtr $mode udp 1400 B  ${result[${k}_udp1400]} Mpps"
    for st in $streams_list; do result[${k}_tcp$st]=$(tcp_rate "$HS" "$HD" 10.4.0.2 "$st"); echo "fastxtr $mode tcp $st stream(s) ${result[${k}_tcp$st]} Gbit/s"; done
    [ -z "$rr_list" ] || rr_measure "$k" "$HS" "$HD" 10.4.0.2
    ./out/fastxtr show stats --shm "$shm_s" | grep -E '^(drop|tun-rx-packets|udp-tx-packets|tun-super-packets|checksums-completed|eid-frames-ignored)' | sed 's/^/  itr /' || true
    ./out/fastxtr show stats --shm "$shm_d" | grep -E '^(drop|udp-rx-packets|tun-tx-packets|etr-kernel-routed|udp-gro-receives|segments-coalesced|tun-super-packets-written|busy-poll-hits)' | sed 's/^/  etr /' || true
    pkill -f "fastxtr dataplane .*--shm fxbench-[sd]-$$" || true
    sleep 0.5
  done; done; done
fi

ratio() { /usr/bin/python3 -c "a,b=float('$1' or 0),float('$2' or 0); print('%.2f' % (a/b) if b else 'n/a')"; }
echo
header="| path | UDP 64 B Mpps | UDP 1400 B Mpps |"; sep="|---|---:|---:|"
for st in $streams_list; do header="$header TCP $st stream(s) Gbit/s |"; sep="$sep---:|"; done
echo "$header"; echo "$sep"
row="| kernel VXLAN | ${result[vxlan_udp64]} | ${result[vxlan_udp1400]} |"
for st in $streams_list; do row="$row ${result[vxlan_tcp$st]} |"; done; echo "$row"
case " $modes " in *" tun "*)
for w in $workers_list; do for off in $offload_list; do
  k="fx${w}${off}"
  row="| FastXtr, $w worker(s), offload $off | ${result[${k}_udp64]} ($(ratio "${result[${k}_udp64]}" "${result[vxlan_udp64]}")x) | ${result[${k}_udp1400]} ($(ratio "${result[${k}_udp1400]}" "${result[vxlan_udp1400]}")x) |"
  for st in $streams_list; do row="$row ${result[${k}_tcp$st]} ($(ratio "${result[${k}_tcp$st]}" "${result[vxlan_tcp$st]}")x) |"; done
  echo "$row"
done; done ;; esac
if [ -n "$v6" ]; then
  row="| kernel VXLAN, IPv6 underlay | ${result[vxlan6_udp64]} | ${result[vxlan6_udp1400]} |"
  for st in $streams_list; do row="$row ${result[vxlan6_tcp$st]} |"; done; echo "$row"
  case " $modes " in *" tun "*)
  for w in $workers_list; do for off in $offload_list; do
    k="fx${w}${off}6"
    row="| FastXtr, $w worker(s), offload $off, IPv6 underlay | ${result[${k}_udp64]} ($(ratio "${result[${k}_udp64]}" "${result[vxlan6_udp64]}")x) | ${result[${k}_udp1400]} ($(ratio "${result[${k}_udp1400]}" "${result[vxlan6_udp1400]}")x) |"
    for st in $streams_list; do row="$row ${result[${k}_tcp$st]} ($(ratio "${result[${k}_tcp$st]}" "${result[vxlan6_tcp$st]}")x) |"; done
    echo "$row"
  done; done ;; esac
fi
if [ -n "$ethernet_modes" ]; then
  row="| kernel VXLAN, routed hosts | ${result[vxlanr_udp64]} | ${result[vxlanr_udp1400]} |"
  for st in $streams_list; do row="$row ${result[vxlanr_tcp$st]} |"; done; echo "$row"
  for mode in $ethernet_modes; do
  offloads="$offload_list"; [[ "$mode" == af-xdp* ]] && offloads="off"
  for w in $workers_list; do for off in $offloads; do
    case "$mode" in af-xdp) k="fx${w}xdp" ;; af-xdp-u) k="fx${w}xdpu" ;; *) k="fx${w}ap${off}" ;; esac
    row="| FastXtr $mode, $w worker(s), offload $off, routed hosts | ${result[${k}_udp64]} ($(ratio "${result[${k}_udp64]}" "${result[vxlanr_udp64]}")x) | ${result[${k}_udp1400]} ($(ratio "${result[${k}_udp1400]}" "${result[vxlanr_udp1400]}")x) |"
    for st in $streams_list; do row="$row ${result[${k}_tcp$st]} ($(ratio "${result[${k}_tcp$st]}" "${result[vxlanr_tcp$st]}")x) |"; done
    echo "$row"
  done; done; done
fi
if [ ${#rr_keys[@]} -gt 0 ]; then
  echo
  echo "| path | exchange | transactions/s | p50 µs | p99 µs | p99.9 µs | vs kernel VXLAN (tps, p50, p99) |"
  echo "|---|---|---:|---:|---:|---:|---|"
  for rrk in "${rr_keys[@]}"; do
    path=${rrk%%_rr*}; what=${rrk#*_rr}; depth=${what%%_*}; exchange=${what#*_}
    base=vxlan; case "$path" in *ap*|*xdp|*xdpu|vxlanr) base=vxlanr ;; esac
    ref_key="${base}_rr${depth}_${exchange}"
    cmp="—"
    if [ "$path" != "$base" ] && [ -n "${result[${ref_key}_tps]:-}" ]; then
      cmp="$(ratio "${result[${rrk}_tps]}" "${result[${ref_key}_tps]}")x, $(ratio "${result[${rrk}_p50_us]}" "${result[${ref_key}_p50_us]}")x, $(ratio "${result[${rrk}_p99_us]}" "${result[${ref_key}_p99_us]}")x"
    fi
    echo "| $path | ${exchange}, ${depth:-1} outstanding | ${result[${rrk}_tps]} | ${result[${rrk}_p50_us]} | ${result[${rrk}_p99_us]} | ${result[${rrk}_p999_us]} | $cmp |"
  done
fi
out_json="${json:-$work/results.json}"
{ echo "{"; echo "  \"seconds\": $secs,"; first=1
  for k in "${!result[@]}"; do [ $first -eq 1 ] || echo ","; first=0; printf '  "%s": %s' "$k" "${result[$k]:-0}"; done
  echo; echo "}"; } > "$out_json"
if [ -n "$json" ]; then echo "wrote $json"; fi
dotnet run -c Release --project perf -- dataplane-chart "$out_json" "$png" || echo "bench-dataplane.sh: the chart could not be drawn" >&2
