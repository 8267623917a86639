#!/bin/bash
# SPDX-License-Identifier: MIT
# The API reference: every public symbol of include/vmce/*.h is documented (scripts/apidoc.py
# check), every function has its section-3 page in the build's man3 directory, and every page
# renders with man(1) without a warning.
#
#   check_apidoc.sh SOURCE_DIR MAN3_DIR
set -u
src=${1:?usage: $0 SOURCE_DIR MAN3_DIR}
man3=${2:?usage: $0 SOURCE_DIR MAN3_DIR}
fails=0
python3 "$src/scripts/apidoc.py" check "$src/include" || fails=$((fails + 1))
if ! command -v man >/dev/null 2>&1 || ! command -v groff >/dev/null 2>&1; then
	echo "apidoc: SKIP: man (man-db) or groff (groff-base) is not installed" >&2
	exit 77
fi
[ -f "$man3/.stamp" ] || { echo "apidoc: FAIL: $man3 was not generated (build first)" >&2; exit 1; }
for f in $(grep -h -oE '^VMCE_API[^;]*' "$src"/include/vmce/*.h | tr '\n' ' ' |
	grep -oE '[a-z_0-9]+[[:space:]]*\(' | tr -d ' (' | grep '^vmce_' | sort -u); do
	[ -f "$man3/$f.3" ] || { echo "apidoc: no man page for $f" >&2; fails=$((fails + 1)); }
done
# Every page through groff with all warnings (one run), the header pages also through man(1)
# as lintian renders them.
pages=$(grep -L '^\.so ' "$man3"/*.3)
w=$(groff -man -Tutf8 -ww -z $pages 2>&1)
[ -z "$w" ] || { echo "apidoc: groff warns: $w" >&2; fails=$((fails + 1)); }
for p in "$man3"/*.h.3; do
	w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z "$p" 2>&1 >/dev/null)
	[ -z "$w" ] || { echo "apidoc: $p: $w" >&2; fails=$((fails + 1)); }
done
pages=$(printf '%s\n' $pages | wc -l)
[ "$fails" -eq 0 ] || { echo "apidoc: FAIL: $fails problem(s)" >&2; exit 1; }
echo "apidoc: $pages man pages (+ $(grep -l '^\.so ' "$man3"/*.3 | wc -l) type links) render cleanly"
