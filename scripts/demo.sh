#!/usr/bin/env bash
# The main job: builds FastXtr and runs the lab (`fastxtr lab run`) in network namespaces on this machine —
# a Map-Server, three gateways, seven agents in two groups — and shows persistent identity across a move,
# context-aware routing, a state change and isolation, with measured figures. Outputs in demo-out/:
# summary.json, underlay.pcap, timeline.png, logs/. Cleans up on exit, error or Ctrl-C.
# Usage (as root): scripts/demo.sh [extra 'fastxtr lab run' options, e.g. --prefix lab2, or --nat: gateway 3 behind
# NAT, reached through fastxtr rtr, so that B's move is onto a gateway behind NAT]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "demo.sh: the lab creates network namespaces and TUN devices: run it as root" >&2
  exit 1
fi
if ! command -v dotnet >/dev/null 2>&1; then
  echo "demo.sh: the .NET 10 SDK (dotnet) is not on PATH; install it (https://learn.microsoft.com/dotnet/core/install/linux-debian)" >&2
  exit 1
fi

# iproute2 (namespaces), tcpdump (the underlay capture), tshark (to read it afterwards), a font (the chart),
# nftables (the NAT of --nat).
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v tcpdump >/dev/null 2>&1 || missing+=(tcpdump)
command -v tshark >/dev/null 2>&1 || missing+=(tshark)
# A face for the lab's timeline chart (ScottPlot draws its text with a system font).
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
  echo "demo.sh: installing ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[ -e /dev/net/tun ] || modprobe tun 2>/dev/null || true

echo "demo.sh: building out/fastxtr"
bash scripts/build.sh Release

# fastxtr removes the lab itself on success, failure or Ctrl-C; this also catches a kill of fastxtr itself.
prefix=fxl
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[$i]}" = "--prefix" ] && prefix="${args[$((i + 1))]:-fxl}"; done
trap 'out/fastxtr lab down --prefix "$prefix" >/dev/null 2>&1 || true' EXIT
status=0
out/fastxtr lab run --out demo-out "$@" || status=$?

if [ -f demo-out/underlay.pcap ] && command -v tshark >/dev/null 2>&1; then
  echo
  echo "demo.sh: what tshark (Wireshark's LISP dissector) reads in demo-out/underlay.pcap:"
  tshark -r demo-out/underlay.pcap -q -z io,phs 2>/dev/null | grep -E "lisp|udp" | sed 's/^/  /' || true
  echo "  data packets per Instance ID: $(tshark -r demo-out/underlay.pcap -Y lisp-data -T fields -e lisp-data.iid 2>/dev/null | sort | uniq -c | awk '{printf "IID %s: %s  ", $2, $1}')"
fi
echo
echo "demo.sh: results in demo-out/ (summary.json, timeline.png, underlay.pcap, logs/)"
exit $status
