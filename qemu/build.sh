#!/bin/sh
# SPDX-License-Identifier: MIT
#
# qemu/build.sh - build Debian 12's QEMU with vmce's patch series (qemu/patches/series), linked
# dynamically against libvmce, and cache the result outside the source tree.
#
#   qemu/build.sh --libvmce-build DIR [--out FILE] [--asan]
#
#   --libvmce-build DIR  the vmce build tree holding libvmce.so (its public headers are this
#                        source tree's include/vmce/)
#   --out FILE           write QEMU=<binary>, VMCE_LIB_DIR=DIR, QEMU_DEBIAN_VERSION=...,
#                        QEMU_KEY=... there (run the binary with LD_LIBRARY_PATH=DIR)
#   --asan               build QEMU with AddressSanitizer and UBSan (configure
#                        --enable-sanitizers), in a build directory and cache entry of its own
#
# What it does:
#   1. installs the build dependencies when missing (apt-get, as root), and adds a deb-src
#      entry (same URIs and suites as the system's Debian sources) when there is none;
#   2. under a lock on the cache (parallel test runs share it), looks for a binary built from
#      the same key: a hash of the patches, this script, the Debian source version and
#      libvmce's public headers (its ABI: a libvmce changed elsewhere needs no rebuild);
#   3. otherwise fetches the source (apt-get source, kept in the cache), resets its tree,
#      applies the series with `git am` (a patch that does not apply fails the build, with
#      git's reason), configures a minimal x86_64-softmmu build and builds qemu-system-x86_64
#      (incrementally: the build directory is kept between keys).
#
# Cache: $VMCE_QEMU_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/vmce/qemu.
# Exit status: 0 built or found, 1 failed (with the reason), 77 no QEMU source can be had.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
patches="$here/patches"
libdir=
out=
asan=

say() {
	echo "vmce-qemu-build: $*"
}

die() {
	echo "vmce-qemu-build: $*" >&2
	exit 1
}

skip() {
	echo "vmce-qemu-build: SKIP: $*" >&2
	exit 77
}

while [ $# -gt 0 ]; do
	case "$1" in
	--libvmce-build)
		[ $# -ge 2 ] || die "--libvmce-build needs a directory"
		libdir=$2
		shift 2
		;;
	--out)
		[ $# -ge 2 ] || die "--out needs a file name"
		out=$2
		shift 2
		;;
	--asan)
		asan=1
		shift
		;;
	*)
		die "unknown argument '$1' (usage: build.sh --libvmce-build DIR [--out FILE] [--asan])"
		;;
	esac
done
[ -n "$libdir" ] || die "usage: build.sh --libvmce-build DIR [--out FILE]"
libdir=$(cd "$libdir" && pwd) || die "no directory $libdir"
# --out relative to the caller's directory (the build runs elsewhere)
case $out in
'' | /*) ;;
*) out=$(pwd)/$out ;;
esac
[ -e "$libdir/libvmce.so" ] || die "$libdir/libvmce.so not found: build vmce first"
[ -f "$patches/series" ] || die "$patches/series not found"

# ---- 1. packages and the deb-src entry -----------------------------------------------------

BUILD_DEPS="build-essential ninja-build meson pkg-config libglib2.0-dev libpixman-1-dev
zlib1g-dev python3-venv flex bison libslirp-dev libfdt-dev dpkg-dev git seabios ipxe-qemu"

missing=
for p in $BUILD_DEPS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	[ "$(id -u)" = 0 ] || die "missing packages:$missing (not root: apt-get install them)"
	say "installing:$missing"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing \
		>/dev/null || die "apt-get install$missing failed"
fi

has_deb_src() {
	grep -Eqs '^[[:space:]]*(Types:.*deb-src|deb-src[[:space:]])' /etc/apt/sources.list \
		/etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources
}

if ! has_deb_src; then
	[ "$(id -u)" = 0 ] || skip "no deb-src entry in the apt sources, and not root to add one"
	src=/etc/apt/sources.list.d/debian.sources
	[ -f "$src" ] || skip "no deb-src entry and no $src to derive one from"
	say "adding a deb-src entry (from $src)"
	sed 's/^Types:.*/Types: deb-src/' "$src" >/etc/apt/sources.list.d/vmce-deb-src.sources
	apt-get update -qq || skip "apt-get update failed after adding deb-src"
fi

version=$(apt-cache showsrc qemu 2>/dev/null | sed -n 's/^Version: //p' | sort -V | tail -n 1)
[ -n "$version" ] || skip "apt-cache knows no source package 'qemu'"
case "$version" in
1:7.2+dfsg-7+deb12u*) ;;
*) die "QEMU source $version is not Debian 12's 7.2 (the series is for 1:7.2+dfsg-7+deb12uN)" ;;
esac

# ---- 2. the key and the cache --------------------------------------------------------------

cache=${VMCE_QEMU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmce/qemu}
mkdir -p "$cache" || die "cannot create $cache"
exec 9>"$cache/.lock"
flock -w 3600 9 || die "timed out waiting for the lock on $cache"

key=$( (
	echo "$version"
	cat "$0"
	while read -r p; do
		[ -n "$p" ] && cat "$patches/$p"
	done <"$patches/series"
	cat "$top"/include/vmce/*.h
	echo "asan=$asan"
) | sha256sum | cut -c1-16)
# A build variant: its own build directory and binaries
if [ -n "$asan" ]; then
	variant=asan
	builddir=build-vmce-asan
	sanitize=--enable-sanitizers
else
	variant=bin
	builddir=build-vmce
	sanitize=
fi
bin="$cache/$variant-$key/qemu-system-x86_64"

write_out() {
	[ -n "$out" ] || return 0
	printf 'QEMU=%s\nVMCE_LIB_DIR=%s\nQEMU_DEBIAN_VERSION=%s\nQEMU_KEY=%s\n' \
		"$bin" "$libdir" "$version" "$key" >"$out.tmp" && mv "$out.tmp" "$out"
}

check_binary() {
	ASAN_OPTIONS=detect_leaks=0 LD_LIBRARY_PATH="$libdir" "$bin" -object vmce,help 2>&1 |
		grep -q profile
}

if [ -x "$bin" ] && check_binary; then
	say "cached: $bin (key $key, QEMU $version)"
	write_out
	exit 0
fi

# ---- 3. source, series, build --------------------------------------------------------------

start=$(date +%s)
srcdir="$cache/src-$(echo "$version" | tr ':+~' '___')"
if [ ! -d "$srcdir/.git" ]; then
	say "fetching the QEMU source $version"
	rm -rf "$cache/fetch" && mkdir -p "$cache/fetch" || die "cannot create $cache/fetch"
	(cd "$cache/fetch" && apt-get source -qq "qemu=$version" >apt-source.log 2>&1) ||
		skip "apt-get source qemu=$version failed: $(tail -n 3 "$cache/fetch/apt-source.log")"
	d=$(find "$cache/fetch" -mindepth 1 -maxdepth 1 -type d -name 'qemu-*' | head -n 1)
	[ -n "$d" ] || die "apt-get source left no qemu-* directory"
	(cd "$d" && git init -q && git add -A -f . && git -c user.name=vmce -c user.email=vmce@localhost \
		commit -qm "Debian QEMU $version") || die "cannot record the pristine source in git"
	rm -rf "$srcdir" && mv "$d" "$srcdir" && rm -rf "$cache/fetch"
fi

cd "$srcdir"
git checkout -q -f "$(git rev-list --max-parents=0 HEAD)" 2>/dev/null &&
	git clean -fdxq -e /build-vmce -e /build-vmce-asan || die "cannot reset $srcdir"
say "applying $(grep -c . "$patches/series") patches"
while read -r p; do
	[ -n "$p" ] || continue
	git -c user.name=vmce -c user.email=vmce@localhost am -q "$patches/$p" >"$cache/am.log" 2>&1 ||
		{
			cat "$cache/am.log" >&2
			git am --abort >/dev/null 2>&1 || true
			die "patch $p does not apply to QEMU $version"
		}
done <"$patches/series"

# libvmce for pkg-config at a stable place, so the build does not depend on the tree that
# first built it: the public headers (part of the key) and a link to the library.
pc="$cache/libvmce"
rm -rf "$pc" && mkdir -p "$pc/include" "$pc/lib" || die "cannot create $pc"
cp -r "$top/include/vmce" "$pc/include/" && cp -P "$libdir"/libvmce.so* "$pc/lib/" ||
	die "cannot copy libvmce into $pc"
vmce_version=$(sed -n 's/^project(vmce VERSION \([0-9.]*\).*/\1/p' "$top/CMakeLists.txt")
cat >"$pc/vmce.pc" <<EOF
prefix=$pc
includedir=\${prefix}/include
libdir=\${prefix}/lib

Name: vmce
Description: Virtual machine-check architecture (vMCE) for x86 virtual machines
Version: ${vmce_version:-0.1.0}
Libs: -L\${libdir} -lvmce
Cflags: -I\${includedir}
EOF

mkdir -p "$builddir" && cd "$builddir"
if [ ! -f build.ninja ]; then
	say "configuring $builddir"
	PKG_CONFIG_PATH="$pc" ../configure --target-list=x86_64-softmmu --disable-docs \
		--disable-werror --without-default-features --enable-tcg --enable-kvm \
		--enable-slirp --enable-fdt=system --enable-vmce $sanitize >configure.log 2>&1 ||
		{
			tail -n 30 configure.log >&2
			die "configure failed ($builddir/configure.log)"
		}
fi
say "building qemu-system-x86_64 ($(nproc) jobs)"
PKG_CONFIG_PATH="$pc" ninja -j "$(nproc)" qemu-system-x86_64 >ninja.log 2>&1 ||
	{
		grep -E -A5 'error:|FAILED' ninja.log | head -n 60 >&2
		die "the build failed ($srcdir/$builddir/ninja.log)"
	}
store="$cache/$variant-$key"
mkdir -p "$store.tmp" && cp qemu-system-x86_64 "$store.tmp/" &&
	rm -rf "$store" && mv "$store.tmp" "$store" || die "cannot store the binary in $store"
check_binary || die "$bin does not list the vmce object"
# Keep the three newest builds of each variant.
ls -dt "$cache/$variant"-* 2>/dev/null | tail -n +4 | xargs -r rm -rf
say "built $bin in $(($(date +%s) - start))s (key $key, QEMU $version)"
write_out
