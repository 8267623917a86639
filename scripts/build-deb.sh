#!/bin/bash
# SPDX-License-Identifier: MIT
#
# build-deb.sh OUTDIR [--no-lintian]: build the Debian packages libvmce1, libvmce-dev and
# vmce-tools from a clean copy of this tree (the files git tracks, plus new files it does not
# ignore: no build directories), check them with lintian (no error, no warning), and copy the
# .deb files into OUTDIR.  dpkg-buildpackage writes next to the source tree, so the copy lives
# in a scratch directory.  JOBS sets the parallelism (default 2).
set -euo pipefail
out=${1:?usage: build-deb.sh OUTDIR [--no-lintian]}
lint=1
[ "${2:-}" = --no-lintian ] && lint=0
src=$(cd "$(dirname "$0")/.." && pwd)
jobs=${JOBS:-2}
for tool in dpkg-buildpackage dh fakeroot; do
	command -v "$tool" >/dev/null || {
		echo "build-deb: $tool is missing (make deps installs dpkg-dev, debhelper, fakeroot)" >&2
		exit 1
	}
done
version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmce-deb.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
tree="$tmp/vmce-$version"
mkdir -p "$tree"
if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	(cd "$src" && git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
		tar --null -T - -cf -) | tar -xf - -C "$tree"
else
	tar -C "$src" --exclude='./build*' --exclude=./.git -cf - . | tar -xf - -C "$tree"
fi
start=$(date +%s)
echo "build-deb: dpkg-buildpackage -us -uc -b in $tree"
(cd "$tree" && DEB_BUILD_OPTIONS="parallel=$jobs ${DEB_BUILD_OPTIONS:-}" \
	dpkg-buildpackage -us -uc -b >"$tmp/build.log" 2>&1) || {
	tail -n 60 "$tmp/build.log" >&2
	echo "build-deb: dpkg-buildpackage failed (log above)" >&2
	exit 1
}
grep '^abi: ' "$tmp/build.log" | sed 's/^/build-deb: /' || true
echo "build-deb: built in $(($(date +%s) - start)) s"
changes=$(ls "$tmp"/vmce_"${version}"_*.changes)
if [ "$lint" = 1 ]; then
	command -v lintian >/dev/null || { echo "build-deb: lintian is missing" >&2; exit 1; }
	start=$(date +%s)
	lintian --fail-on error,warning --display-info "$changes" >"$tmp/lintian.log" 2>&1 || {
		cat "$tmp/lintian.log" >&2
		echo "build-deb: lintian reports errors or warnings (above)" >&2
		exit 1
	}
	sed 's/^/build-deb: lintian: /' "$tmp/lintian.log"
	echo "build-deb: lintian: no error, no warning ($(($(date +%s) - start)) s)"
fi
mkdir -p "$out"
for deb in "$tmp"/*.deb; do
	cp "$deb" "$out/"
	printf 'build-deb: %-45s %8d bytes, installed %6s KiB\n' "$(basename "$deb")" \
		"$(stat -c %s "$deb")" "$(dpkg-deb -f "$deb" Installed-Size)"
done
