#!/usr/bin/env bash
# Builds the fastxtr executable at out/fastxtr (framework-dependent, one file, for linux-x64), with beside it the two
# native libraries of the lab's chart (libSkiaSharp.so, libHarfBuzzSharp.so), which no other role loads.
# Usage: scripts/build.sh [Debug|Release]   (default Release)
set -euo pipefail
cd "$(dirname "$0")/.."
configuration="${1:-Release}"
if ! command -v dotnet >/dev/null 2>&1; then
  echo "build.sh: the .NET 10 SDK (dotnet) is not on PATH" >&2
  exit 1
fi
dotnet restore FastXtr.sln >/dev/null
dotnet publish controlagent/Cli/FastXtr.Cli.csproj -c "$configuration" -r linux-x64 --self-contained false \
  -p:PublishSingleFile=true -p:DebugType=embedded -o out --nologo -v quiet
test -x out/fastxtr
echo "built out/fastxtr ($(du -h out/fastxtr | cut -f1))"
