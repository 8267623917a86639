#!/bin/bash
# SPDX-License-Identifier: MIT
#
# try_test.sh README BUILD_DIR: run the README's "try it by hand" block (between
# `<!-- example:try begin -->` and `<!-- example:try end -->`) as a newcomer would paste it at
# the top of the tree, and check what it printed.  Two things differ from a person's paste:
# `build` is this build directory (already built, so `make build` does nothing), and the block's
# /tmp/vmce* paths move into a scratch directory so that parallel runs do not collide.
set -u
readme=${1:?usage: $0 README BUILD_DIR}
build=${2:?usage: $0 README BUILD_DIR}
if [ ! -c /dev/kvm ] || [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "SKIP: /dev/kvm is missing or not accessible: vmce-vm cannot run"
	exit 77
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmce-try.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
awk '/<!-- example:try end -->/ { on = 0 } on && !/^```/ { print }
	/<!-- example:try begin -->/ { on = 1 }' "$readme" >"$tmp/block.sh"
[ -s "$tmp/block.sh" ] || { echo "FAIL: $readme has no example:try block" >&2; exit 1; }
grep -q '/tmp/vmce' "$tmp/block.sh" || { echo "FAIL: the block uses no /tmp/vmce path" >&2; exit 1; }
sed -i "s|/tmp/vmce|$tmp/vmce|g" "$tmp/block.sh"
mkdir "$tmp/tree"
ln -s "$(cd "$build" && pwd)" "$tmp/tree/build"
# `make build` is the only make the block may run; the build directory is already built.
cd "$tmp/tree" &&
	timeout 120 bash -c 'make() { [ "$*" = build ] || { echo "unexpected: make $*"; return 1; }; }
		export -f make
		. "$0"' "$tmp/block.sh" >"$tmp/out" 2>&1
rc=$?
fails=0
expect() {
	grep -qE -- "$1" "$tmp/out" || { echo "FAIL: no output line matches /$1/ ($2)" >&2; fails=$((fails + 1)); }
}
[ "$rc" -eq 0 ] || { echo "FAIL: the block exited with status $rc" >&2; fails=$((fails + 1)); }
expect '^state: +running' "vmcectl status"
expect '^record 1: forward +class srao +gpa 0x2000000 +queued' "vmcectl inject --srao"
expect '^record 1: forward +class srar ' "vmcectl inject --srar"
expect ' delivered srao ' "vmcectl events --follow shows the SRAO delivered"
expect ' delivered srar ' "vmcectl events --follow shows the SRAR delivered"
expect 'action=offline-page result=recovered' "the guest offlined the SRAO page"
expect 'action=kill-workload result=restarted' "the guest killed the workload on SRAR"
expect '^workload: restarted' "the workload restarted"
expect '^class: +srar' "vmcectl decode"
expect 'quit requested on the control socket \(exit status 0\)' "vmcectl quit stopped the VM"
if [ "$fails" -ne 0 ]; then
	echo "---- the block's output ----" >&2
	cat "$tmp/out" >&2
	exit 1
fi
echo "try: the README block ran as pasted ($(grep -c . "$tmp/block.sh") lines); output:"
sed 's/^/  | /' "$tmp/out" | head -n 60
