#!/bin/sh
# SPDX-License-Identifier: MIT
# Verify a Promela model exhaustively with SPIN.
#   run_spin.sh MODEL WORKDIR pass [SPIN-DEFINES...]   must verify: no error, full state space,
#                                                      and every statement of proctype final
#                                                      reached (the end check is not vacuous)
#   run_spin.sh MODEL WORKDIR fail [SPIN-DEFINES...]   a mutation: verification must find an
#                                                      error (so the check can fail)
# Exit 77 when spin is not installed.
set -u
model=$1 work=$2 expect=$3
shift 3
if ! command -v spin >/dev/null 2>&1; then
	echo "spin is not installed (Debian package spin): skipped"
	exit 77
fi
CC=${CC_FOR_PAN:-gcc}
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
echo "spin $* -a $model"
spin "$@" -a "$model" >spin.out 2>&1 || { cat spin.out; echo "FAIL: spin -a"; exit 1; }
# Safety properties only (assertions and end states); the model is small: exhaustive search.
$CC -O2 -DSAFETY -DVECTORSZ=512 -w -o pan pan.c || { echo "FAIL: compiling pan"; exit 1; }
./pan -m1000000 >pan.out 2>&1
status=$?
cat pan.out
errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' pan.out)
if [ -z "$errors" ]; then
	echo "FAIL: no verification result from pan (exit $status)"
	exit 1
fi
if [ "$expect" = fail ]; then
	if [ "$errors" -gt 0 ]; then
		echo "OK: the mutated model fails verification as it must ($errors error(s))"
		exit 0
	fi
	echo "FAIL: the mutated model ($*) verified: the check cannot tell"
	exit 1
fi
if [ "$errors" -ne 0 ]; then
	echo "FAIL: $errors error(s); counterexample:"
	spin "$@" -t -p "$model" 2>&1 | tail -60
	exit 1
fi
if grep -q "search not completed\|max search depth too small\|resize hashtable\|out of memory" \
	pan.out; then
	echo "FAIL: the state space was not exhausted"
	exit 1
fi
if ! grep -q "Full statespace search" pan.out; then
	echo "FAIL: not a full state-space search"
	exit 1
fi
# The end-of-run check must be reachable: nothing of proctype final unreached.
if sed -n '/unreached in proctype final/,/unreached in proctype\|elapsed/p' pan.out |
	grep -q "state [0-9]*, \"[^-]"; then
	echo "FAIL: parts of the end-of-run check are unreachable (vacuous)"
	exit 1
fi
echo "OK: verified, $(sed -n 's/^ *\([0-9]*\) states, stored.*/\1/p' pan.out) states"
exit 0
