#!/bin/sh
# `make install` as a user sees it: install into a scratch prefix, then build the README example
# against the installed headers with pkg-config, once with the shared and once with the static
# library, and run both.
set -eu
build=$1 example=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/install.log" || {
	cat "$tmp/install.log"; echo "install_test: cmake --install failed" >&2; exit 1; }
for f in include/vmce/vmce.h include/vmce/policy.h include/vmce/kvm.h include/vmce/migrate.h; do
	[ -f "$tmp/prefix/$f" ] || { echo "install_test: $f was not installed" >&2; exit 1; }
done
pc=$(find "$tmp/prefix" -name vmce.pc | head -n 1)
[ -n "$pc" ] || { echo "install_test: vmce.pc was not installed" >&2; exit 1; }
export PKG_CONFIG_PATH="$(dirname "$pc")"
libdir=$(pkg-config --variable=libdir vmce)
cc -std=c11 -Wall -Werror $(pkg-config --cflags vmce) "$example" -o "$tmp/shared" \
	$(pkg-config --libs vmce) -Wl,-rpath,"$libdir"
"$tmp/shared" >/dev/null || { echo "install_test: example (shared) failed" >&2; exit 1; }
cc -std=c11 -Wall -Werror $(pkg-config --cflags vmce) "$example" -o "$tmp/static" \
	"$libdir/libvmce.a" $(pkg-config --libs-only-other --static vmce) -lpthread
"$tmp/static" >/dev/null || { echo "install_test: example (static) failed" >&2; exit 1; }
ldd "$tmp/static" | grep -q libvmce && { echo "install_test: static build links libvmce.so" >&2; exit 1; }
echo "install_test: headers, vmce.pc, shared and static libraries work from $tmp/prefix"
