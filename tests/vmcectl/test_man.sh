#!/bin/bash
# docs/man/vmcectl.1 renders without a warning, and documents every command and every option
# that `vmcectl COMMAND --help` lists.
#
#   test_man.sh PATH/TO/vmcectl PATH/TO/vmcectl.1
. "$(dirname "$0")/lib.sh"
MAN=${2:?usage: $0 PATH/TO/vmcectl PATH/TO/vmcectl.1}
if ! command -v groff >/dev/null 2>&1; then
	echo "SKIP: groff is not installed"
	exit 77
fi

CHECKS=$((CHECKS + 1))
groff -man -Tutf8 -ww "$MAN" >"$TMP/page" 2>"$TMP/warnings"
[ $? -eq 0 ] || bad "groff failed on $MAN"
[ -s "$TMP/warnings" ] && bad "groff warns about $MAN: $(head -5 "$TMP/warnings")"
CHECKS=$((CHECKS + 1))
[ "$(wc -l <"$TMP/page")" -gt 100 ] || bad "the rendered page is too short"

for c in synth decode profile inject status events migrate quit; do
	CHECKS=$((CHECKS + 1))
	grep -q "^\.SS $c\$" "$MAN" || bad "no section for the command $c"
	expect_ok "$c" --help
	for opt in $(grep -oE -- '--[a-z][a-z-]*' "$OUT" | sort -u); do
		CHECKS=$((CHECKS + 1))
		grep -qF -- "${opt//-/\\-}" "$MAN" || bad "$c: option $opt is not in the man page"
	done
done

finish
