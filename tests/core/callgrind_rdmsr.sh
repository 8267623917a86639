#!/bin/sh
# Mean instructions per vmce_rdmsr (inclusive), measured with callgrind over bench_rdmsr's
# mixed sequence of reads of every MCA index; fails when above the bound given (a lock, a system
# call or an allocation on the MSR path would show up here).
#   callgrind_rdmsr.sh BENCH_BINARY MAX_MEAN PROFILE...
set -eu
bench=$1
max=$2
shift 2
if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
	echo "callgrind_rdmsr: valgrind/callgrind_annotate not installed: skipped"
	exit 77
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
n=100000
status=0
for profile in "$@"; do
	valgrind --tool=callgrind --callgrind-out-file="$out/cg.out" "$bench" "$profile" "$n" \
		>"$out/run.txt" 2>"$out/vg.txt" || { cat "$out/run.txt" "$out/vg.txt"; exit 1; }
	# The inclusive line of the function itself: "1,965,303 (37.08%)  .../msr.c:vmce_rdmsr [...]"
	ir=$(callgrind_annotate --inclusive=yes "$out/cg.out" |
		awk '$0 ~ /[^>] .*:vmce_rdmsr \[/ { gsub(",", "", $1); print $1; exit }')
	if [ -z "$ir" ]; then
		echo "callgrind_rdmsr: no vmce_rdmsr line in the callgrind report"
		exit 1
	fi
	mean=$(awk -v ir="$ir" -v n="$n" 'BEGIN { printf "%.2f", ir / n }')
	echo "$(cat "$out/run.txt")"
	echo "  vmce_rdmsr: $ir instructions inclusive over $n calls: mean $mean per call"
	if awk -v m="$mean" -v max="$max" 'BEGIN { exit !(m > max) }'; then
		echo "  FAIL: mean $mean is above $max"
		status=1
	fi
done
exit $status
