#!/bin/bash
# SPDX-License-Identifier: MIT
#
# abi.sh - libvmce's ABI discipline (see CHANGELOG.md, "ABI policy").
#
#   abi.sh exports LIB INCLUDE_DIR MAP [SYMBOLS]
#       The library's soname is libvmce.so.1; the dynamic symbols it defines are exactly the
#       functions declared with VMCE_API in INCLUDE_DIR/vmce/*.h, each in a version node of
#       the linker script MAP (VMCE_1, ...), and MAP lists exactly those functions.  With
#       SYMBOLS (debian/libvmce1.symbols), that file lists exactly the same name@node pairs.
#   abi.sh dump LIB INCLUDE_DIR OUT
#       Write the ABI of LIB (libabigail's abidw XML, public types only) to OUT.
#   abi.sh diff LIB INCLUDE_DIR BASELINE
#       Compare LIB's ABI with the committed BASELINE (abidiff); any difference fails: an
#       intended change regenerates the baseline (`make abi-baseline`) in the same commit, and
#       an incompatible one also bumps the soname and the version node.
#
# Exit status: 0 pass, 1 fail, 77 a tool is missing (binutils, abigail-tools).
set -u

die() {
	echo "abi: FAIL: $*" >&2
	exit 1
}

need() {
	command -v "$1" >/dev/null 2>&1 || {
		echo "abi: SKIP: $1 is not installed (Debian package $2; make deps installs it)" >&2
		exit 77
	}
}

# The functions the headers declare public: every `VMCE_API ... name(` declaration.
header_functions() {
	cat "$1"/vmce/*.h | tr '\n' ' ' | grep -oE 'VMCE_API[^;{]*\(' |
		grep -v '__attribute__' | sed -E 's/[[:space:]]*\($//; s/.*[[:space:]*]//' | sort -u
}

# The functions the version script exports (lines "name;" inside a node's global: part).
map_functions() {
	sed -e 's|/\*.*\*/||' "$1" | awk '
		/^[[:space:]]*\/\*/ { c = 1 } c { if (/\*\//) c = 0; next }
		/global:/ { g = 1; next } /local:/ { g = 0; next } /}/ { g = 0; next }
		g && /^[[:space:]]*[A-Za-z_][A-Za-z0-9_]*;/ { gsub(/[[:space:];]/, ""); print }' |
		sort -u
}

# "name@version" of every defined dynamic symbol of the library (the version nodes themselves
# appear as absolute symbols named VMCE_1 ...: not functions).
dynamic_symbols() {
	readelf --dyn-syms -W "$1" | awk '$1 ~ /^[0-9]+:$/ && $7 != "UND" && $8 != "" &&
		$4 != "SECTION" && $4 != "FILE" { print $8 }' | sed 's/@@*/@/' |
		grep -vE '^VMCE_[0-9][0-9.]*$' | sort -u
}

cmd_exports() {
	[ $# -eq 3 ] || [ $# -eq 4 ] || die "usage: abi.sh exports LIB INCLUDE_DIR MAP [SYMBOLS]"
	need readelf binutils
	lib=$1 inc=$2 map=$3 symbols=${4:-}
	[ -f "$lib" ] || die "$lib not found"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
	[ "$soname" = libvmce.so.1 ] || die "soname is '$soname', not libvmce.so.1"
	header_functions "$inc" >"$tmp/headers"
	map_functions "$map" >"$tmp/map"
	dynamic_symbols "$lib" >"$tmp/dyn"
	sed 's/@.*//' "$tmp/dyn" | sort -u >"$tmp/exported"
	[ -s "$tmp/headers" ] || die "no VMCE_API declaration found in $inc/vmce/*.h"
	fails=0
	cp "$tmp/exported" "$tmp/exported.fn"
	for f in $(comm -13 "$tmp/headers" "$tmp/exported.fn"); do
		echo "abi: exported but not declared with VMCE_API in a public header: $f" >&2
		fails=$((fails + 1))
	done
	for f in $(comm -23 "$tmp/headers" "$tmp/exported.fn"); do
		echo "abi: declared public but not exported by $lib: $f" >&2
		fails=$((fails + 1))
	done
	for f in $(comm -3 "$tmp/headers" "$tmp/map" | tr -d '\t'); do
		if grep -qx "$f" "$tmp/headers"; then
			echo "abi: public function missing from the version script $map: $f" >&2
		else
			echo "abi: the version script lists a function no header declares: $f" >&2
		fi
		fails=$((fails + 1))
	done
	for s in $(grep -vE '@VMCE_[0-9][0-9.]*$' "$tmp/dyn"); do
		echo "abi: exported without a VMCE_* version node: $s" >&2
		fails=$((fails + 1))
	done
	for s in $(grep -E '^vmce__|^_?vmce_[a-z0-9_]*_internal' "$tmp/exported"); do
		echo "abi: internal symbol exported: $s" >&2
		fails=$((fails + 1))
	done
	if [ -n "$symbols" ]; then
		# The Debian symbols file: " name@NODE version" lines, the nodes themselves included.
		sed -n 's/^ \([A-Za-z_][A-Za-z0-9_.]*@[A-Z0-9_.]*\) .*/\1/p' "$symbols" |
			grep -vE '^(VMCE_[0-9][0-9.]*)@\1$' | sort -u >"$tmp/symbols"
		for s in $(comm -3 "$tmp/dyn" "$tmp/symbols" | tr -d '\t'); do
			echo "abi: $symbols and the library disagree about $s" >&2
			fails=$((fails + 1))
		done
	fi
	[ "$fails" -eq 0 ] || die "$fails problem(s) with the exported symbols of $lib"
	echo "abi: $lib: soname $soname, $(wc -l <"$tmp/exported.fn") exported functions =" \
		"the VMCE_API declarations of $inc/vmce/*.h = $map" \
		"(nodes: $(sed 's/.*@//' "$tmp/dyn" | sort -u | paste -sd ' '))"
}

# abidw with everything that depends on the build machine or directory left out.
dump() {
	abidw --headers-dir "$2/vmce" --drop-private-types --no-corpus-path --no-comp-dir-path \
		--no-show-locs --type-id-style hash "$1"
}

cmd_dump() {
	[ $# -eq 3 ] || die "usage: abi.sh dump LIB INCLUDE_DIR OUT"
	need abidw abigail-tools
	readelf -S "$1" | grep -q '\.debug_info' ||
		die "$1 has no debug information (build with -g, e.g. RelWithDebInfo)"
	dump "$1" "$2" >"$3.tmp" || die "abidw failed on $1"
	mv "$3.tmp" "$3"
	echo "abi: wrote the ABI of $1 to $3 ($(grep -c '<elf-symbol ' "$3") ELF symbols)"
}

cmd_diff() {
	[ $# -eq 3 ] || die "usage: abi.sh diff LIB INCLUDE_DIR BASELINE"
	need abidw abigail-tools
	need abidiff abigail-tools
	lib=$1 inc=$2 base=$3
	[ -f "$base" ] || die "no ABI baseline $base (make abi-baseline writes it)"
	readelf -S "$lib" | grep -q '\.debug_info' ||
		die "$lib has no debug information (build with -g, e.g. RelWithDebInfo)"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	dump "$lib" "$inc" >"$tmp/current.abi" || die "abidw failed on $lib"
	abidiff --no-show-locs "$base" "$tmp/current.abi" >"$tmp/report" 2>&1
	rc=$?
	if [ "$rc" -ne 0 ]; then
		cat "$tmp/report" >&2
		# abidiff's status bits: 1 error, 2 usage, 4 ABI change, 8 incompatible change.
		[ $((rc & 3)) -eq 0 ] || die "abidiff could not compare (status $rc)"
		what="changed"
		[ $((rc & 8)) -eq 0 ] || what="changed INCOMPATIBLY (bump the soname)"
		die "the ABI of $lib $what against $base (abidiff status $rc).  If intended:" \
			"make abi-baseline, note it in CHANGELOG.md, and commit both"
	fi
	echo "abi: $lib matches the baseline $base ($(grep -c '<elf-symbol ' "$base") symbols)"
}

case "${1:-}" in
exports | dump | diff)
	c=$1
	shift
	"cmd_$c" "$@"
	;;
*)
	die "usage: abi.sh exports LIB INCLUDE_DIR MAP | dump LIB INCLUDE_DIR OUT | diff LIB INCLUDE_DIR BASELINE"
	;;
esac
