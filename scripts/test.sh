#!/usr/bin/env bash
# Installs what the tests need, builds, runs every test, and ends with "N passed, N failed, N skipped".
# Exits non-zero when anything failed. Usage: scripts/test.sh [extra dotnet test arguments, e.g. --filter ...]
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

fail_early() {
  echo "test.sh: $1" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
}

command -v dotnet >/dev/null 2>&1 || fail_early "the .NET 10 SDK (dotnet) is not on PATH"

# Debian packages: tshark (the independent LISP dissector), openssl (independent HMACs), iproute2 (namespaces),
# iputils-ping and python3 (traffic inside the end-to-end namespaces), tcpdump (the lab's underlay capture), nftables.
missing=()
command -v tshark >/dev/null 2>&1 || missing+=(tshark)
# A face for the lab's timeline chart (ScottPlot draws its text with a system font).
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v ping >/dev/null 2>&1 || missing+=(iputils-ping)
[ -x /usr/bin/python3 ] || missing+=(python3)
# The reference Prometheus text parser that the metrics tests read our /metrics with.
/usr/bin/python3 -c 'import prometheus_client' >/dev/null 2>&1 || missing+=(python3-prometheus-client)
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v tcpdump >/dev/null 2>&1 || missing+=(tcpdump)
# The NAT in the NAT-discovery namespaces (masquerading).
command -v nft >/dev/null 2>&1 || missing+=(nftables)
# The package's checks: systemd-analyze reads its units, dpkg installs it into a scratch root.
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v dpkg-deb >/dev/null 2>&1 || missing+=(dpkg)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then fail_early "missing ${missing[*]}; run as root so that apt-get can install them"; fi
  echo "test.sh: installing ${missing[*]}"
  apt-get update -qq >/dev/null || fail_early "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null || fail_early "apt-get install ${missing[*]} failed"
fi

dotnet restore FastXtr.sln --nologo -v quiet || fail_early "dotnet restore failed"
dotnet build FastXtr.sln -c Release --no-restore --nologo -v quiet || fail_early "the build failed"
bash scripts/build.sh Release >/dev/null || fail_early "scripts/build.sh failed"
# The Debian package, built from a copy of the tree the way a release is (the package tests read out/deb).
rm -rf out/deb
bash scripts/package.sh out/deb >/dev/null || fail_early "scripts/package.sh failed"

results="$root/TestResults"
rm -rf "$results"
FASTXTR_EXE="$root/out/fastxtr" dotnet test tests/FastXtr.Tests/FastXtr.Tests.csproj -c Release --no-build --nologo \
  --logger "trx;LogFileName=tests.trx" --logger "console;verbosity=normal" --results-directory "$results" "$@"
status=$?

trx="$results/tests.trx"
if [ ! -f "$trx" ]; then
  echo "test.sh: the test run produced no results (dotnet test exit $status)" >&2
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
field() { printf '%s' "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
passed=$(field passed); failed=$(field failed); total=$(field total); executed=$(field executed)
passed=${passed:-0}; failed=${failed:-0}; total=${total:-0}; executed=${executed:-0}
errors=$(field error); errors=${errors:-0}; timeouts=$(field timeout); timeouts=${timeouts:-0}
failed=$((failed + errors + timeouts))
skipped=$((total - executed))
[ "$skipped" -lt 0 ] && skipped=0
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
# The failures again at the end, where a truncated CI log still shows them.
[ "$failed" -gt 0 ] && /usr/bin/python3 scripts/trx-failures.py "$trx"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
