#!/bin/bash
# SPDX-License-Identifier: MIT
#
# test_package.sh SOURCE_DIR README_EXAMPLE.c: build the Debian packages (scripts/build-deb.sh,
# lintian included) into a scratch directory, unpack them with dpkg-deb -x into a scratch root,
# and use them from there as a user would: the README example against libvmce-dev with
# pkg-config (shared and static), vmcectl from vmce-tools, the man pages, the completion.
set -u
src=${1:?usage: $0 SOURCE_DIR README_EXAMPLE.c}
example=${2:?usage: $0 SOURCE_DIR README_EXAMPLE.c}
for t in dpkg-buildpackage dh lintian fakeroot pkg-config cc; do
	command -v "$t" >/dev/null 2>&1 || {
		echo "package: SKIP: $t is not installed (make deps installs what the packages need)"
		exit 77
	}
done
[ -f "$example" ] || { echo "package: FAIL: $example not found (configure first)" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmce-package.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0
bad() {
	echo "package: FAIL: $*" >&2
	fails=$((fails + 1))
}
start=$(date +%s)

JOBS=${JOBS:-2} bash "$src/scripts/build-deb.sh" "$tmp/debs" || {
	echo "package: FAIL: make deb (scripts/build-deb.sh) failed" >&2
	exit 1
}
built=$(($(date +%s) - start))

root=$tmp/root
for p in libvmce1 libvmce-dev vmce-tools; do
	deb=$(ls "$tmp"/debs/${p}_*.deb 2>/dev/null | head -n 1)
	[ -n "$deb" ] || { bad "no $p package was built"; continue; }
	dpkg-deb -x "$deb" "$root" || bad "dpkg-deb -x $deb failed"
done
[ "$fails" -eq 0 ] || exit 1

ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
libdir=$root/usr/lib/$ma
for f in usr/lib/$ma/libvmce.so.1 usr/lib/$ma/libvmce.so usr/lib/$ma/libvmce.a \
	usr/lib/$ma/pkgconfig/vmce.pc usr/include/vmce/vmce.h usr/include/vmce/policy.h \
	usr/include/vmce/kvm.h usr/include/vmce/migrate.h usr/bin/vmcectl usr/bin/vmce-vm \
	usr/share/man/man1/vmcectl.1.gz usr/share/man/man1/vmce-vm.1.gz \
	usr/share/man/man3/vmce_rdmsr.3.gz usr/share/man/man3/vmce.h.3.gz \
	usr/share/bash-completion/completions/vmcectl; do
	[ -e "$root/$f" ] || bad "/$f is in no package"
done
soname=$(readelf -d "$libdir/libvmce.so.1" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libvmce.so.1 ] || bad "libvmce1's soname is '$soname'"

# The README example against the unpacked libvmce-dev, found by pkg-config alone.
export PKG_CONFIG_PATH=$libdir/pkgconfig
unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR
# vmce.pc is relocatable (its prefix is relative to its own directory): no sysroot needed.
inc=$(pkg-config --variable=includedir vmce)
[ "$(readlink -f "$inc")" = "$(readlink -f "$root/usr/include")" ] ||
	bad "pkg-config: includedir '$inc' is not the unpacked /usr/include"
[ "$(readlink -f "$(pkg-config --variable=libdir vmce)")" = "$(readlink -f "$libdir")" ] ||
	bad "pkg-config: libdir '$(pkg-config --variable=libdir vmce)' is not the unpacked one"
if cc -std=c11 -Wall -Werror $(pkg-config --cflags vmce) "$example" -o "$tmp/shared" \
	$(pkg-config --libs vmce) -Wl,-rpath,"$libdir"; then
	out=$("$tmp/shared") || bad "the README example (shared) failed: $out"
	ldd "$tmp/shared" | grep -q "libvmce.so.1 => $root/.*/libvmce.so.1" ||
		bad "the example does not use the unpacked libvmce.so.1: $(ldd "$tmp/shared")"
	echo "package: README example (shared, unpacked libvmce1): $out"
else
	bad "the README example does not build against the unpacked libvmce-dev (shared)"
fi
if cc -std=c11 -Wall -Werror $(pkg-config --cflags vmce) "$example" -o "$tmp/static" \
	"$libdir/libvmce.a" $(pkg-config --libs-only-other --static vmce) -lpthread; then
	"$tmp/static" >/dev/null || bad "the README example (static) failed"
else
	bad "the README example does not build against the unpacked libvmce.a"
fi

# vmce-tools from the scratch root: its tools link libvmce.so.1 (from the unpacked libvmce1
# here), and the package depends on libvmce1.
export LD_LIBRARY_PATH=$libdir
for t in vmcectl vmce-vm; do
	ldd "$root/usr/bin/$t" | grep -q "libvmce.so.1 => $root/" ||
		bad "$t does not use the unpacked libvmce.so.1: $(ldd "$root/usr/bin/$t" | grep vmce)"
done
dep=$(dpkg-deb -f "$(ls "$tmp"/debs/vmce-tools_*.deb)" Depends)
case "$dep" in
*libvmce1*) ;;
*) bad "vmce-tools does not depend on libvmce1: Depends: $dep" ;;
esac
help=$("$root/usr/bin/vmcectl" --help) || bad "vmcectl --help failed"
printf '%s\n' "$help" | grep -q '^Usage: vmcectl' || bad "vmcectl --help: $help"
dec=$("$root/usr/bin/vmcectl" decode 0xbd000000000000c0) || bad "vmcectl decode failed"
printf '%s\n' "$dec" | grep -qi srao || bad "vmcectl decode does not say SRAO: $dec"
"$root/usr/bin/vmce-vm" --help | grep -q -- '--control' || bad "vmce-vm --help failed"
unset LD_LIBRARY_PATH
for page in man3/vmce_rdmsr.3.gz man3/vmce_profile.3.gz man1/vmcectl.1.gz; do
	text=$(cd "$root/usr/share/man" && MANWIDTH=80 man -l "$page" 2>&1) ||
		bad "man -l $page failed"
	[ "$(printf '%s\n' "$text" | wc -l)" -gt 10 ] || bad "$page renders to almost nothing"
done
got=$(bash --norc -c ". '$root/usr/share/bash-completion/completions/vmcectl'; complete -p vmcectl")
[ "$got" = "complete -F _vmcectl vmcectl" ] || bad "the installed completion: '$got'"

[ "$fails" -eq 0 ] || exit 1
total=$(($(date +%s) - start))
echo "package: PASS in ${total}s (build + lintian ${built}s): $(cd "$tmp/debs" &&
	for d in libvmce1_*.deb libvmce-dev_*.deb vmce-tools_*.deb; do
		printf '%s %s B; ' "$d" "$(stat -c %s "$d")"
	done)"
