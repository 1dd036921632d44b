#!/usr/bin/env bash
# Builds the Debian package dist/fastxtr_VERSION_amd64.deb from this tree, with nothing fetched at install time:
#   /usr/lib/fastxtr/fastxtr            self-contained single-file executable (the .NET runtime inside: a gateway
#                                       needs no .NET, and Debian 12 has no .NET 10 package to depend on)
#   /usr/lib/fastxtr/lib*Sharp.so       the lab chart's native libraries (loaded only by `fastxtr lab`)
#   /usr/bin/fastxtr                    -> ../lib/fastxtr/fastxtr
#   /lib/systemd/system/fastxtr-{dataplane,agent,mapserver,rtr}@.service
#   /etc/fastxtr/{mapserver.conf,xtr.conf,xtr.dataplane}   commented defaults (conffiles, 0640 root:fastxtr)
#   /usr/share/doc/fastxtr/             README, design notes, full example configurations, dashboard, dissector
#   /usr/share/fastxtr/                 the Grafana dashboard and the Wireshark dissector
# Usage: scripts/package.sh [OUTPUT-DIR]   (default dist; needs dotnet and dpkg-deb)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
for tool in dotnet dpkg-deb; do
  command -v "$tool" >/dev/null 2>&1 || { echo "package.sh: $tool is not installed" >&2; exit 1; }
done
stage="$(mktemp -d /tmp/fastxtr-package.XXXXXX)"
trap 'rm -rf "$stage"' EXIT

# Built from a copy of the sources, so that the working tree's build outputs are neither used nor disturbed (a test
# run may be using them).
mkdir -p "$stage/src"
tar -c --exclude=./.git --exclude='*/bin' --exclude='*/obj' --exclude=./out --exclude=./dist --exclude=./TestResults --exclude=./demo-out --exclude=./.fuzz-work \
  --exclude=./BenchmarkDotNet.Artifacts . | tar -x -C "$stage/src"
(cd "$stage/src" && dotnet publish controlagent/Cli/FastXtr.Cli.csproj -c Release -r linux-x64 --self-contained true \
  -p:PublishSingleFile=true -p:DebugType=embedded -p:SourceRevisionId="$(git -C "$OLDPWD" rev-parse HEAD 2>/dev/null || echo unknown)" \
  -o "$stage/publish" --nologo -v quiet >/dev/null)
"$stage/publish/fastxtr" --version >/dev/null

# 1.0.0+<commit> from the executable; the package version adds the commit count so that newer builds sort higher.
upstream="$("$stage/publish/fastxtr" --version | cut -d+ -f1)"
count="$(git rev-list --count HEAD 2>/dev/null || echo 0)"
commit="$(git rev-parse --short=10 HEAD 2>/dev/null || echo unknown)"
version="${upstream}+git${count}.${commit}"

root="$stage/root"
install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/fastxtr" "$root/lib/systemd/system" "$root/etc/fastxtr" \
  "$root/usr/share/doc/fastxtr/examples" "$root/usr/share/fastxtr"
install -m 0755 "$stage/publish/fastxtr" "$root/usr/lib/fastxtr/fastxtr"
install -m 0644 "$stage/publish"/*.so "$root/usr/lib/fastxtr/"
ln -s ../lib/fastxtr/fastxtr "$root/usr/bin/fastxtr"
install -m 0644 packaging/systemd/*.service "$root/lib/systemd/system/"
install -m 0640 packaging/etc/* "$root/etc/fastxtr/"
install -m 0644 README.md "$root/usr/share/doc/fastxtr/README.md"
install -m 0644 packaging/debian/copyright "$root/usr/share/doc/fastxtr/copyright"
install -m 0644 controlagent/MapServer/mapserver.example.conf controlagent/Agent/agent.example.conf "$root/usr/share/doc/fastxtr/examples/"
for f in packaging/grafana/fastxtr-dashboard.json packaging/wireshark/fastxtr-context.lua; do
  if [ -f "$f" ]; then install -m 0644 "$f" "$root/usr/share/fastxtr/"; fi
done
printf 'fastxtr (%s) unstable; urgency=medium\n\n  * Built from commit %s.\n\n -- FastXtr developers <fastxtr@example.org>  %s\n' \
  "$version" "$commit" "$(date -R)" | gzip -9n > "$root/usr/share/doc/fastxtr/changelog.Debian.gz"

size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" packaging/debian/control.in > "$root/DEBIAN/control"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
(cd "$root" && find etc -type f | sed 's|^|/|' | sort) > "$root/DEBIAN/conffiles"
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"

mkdir -p "$out"
deb="$out/fastxtr_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "built $deb ($(du -h "$deb" | cut -f1), installed ${size} KiB)"
