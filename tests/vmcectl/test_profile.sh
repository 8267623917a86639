#!/bin/bash
# vmcectl profile parse|print|validate: canonical form, MCG_CAP, capability list, errors.
. "$(dirname "$0")/lib.sh"

jq_is() {
	CHECKS=$((CHECKS + 1))
	local got
	got=$(jq -c "$1" "$OUT" 2>/dev/null)
	[ "$got" = "$2" ] || bad "expected $1 to be $2, got $got"
	return 0
}

# The default profile (design §2): Intel, 2 banks, SER, TES, CMCI; report bank 1.
expect_ok profile parse
out_line '^profile: +intel,banks=2,ser,tes,cmci$'
out_line '^vendor: +intel$'
out_line '^banks: +2 \(MC0..MC1\)$'
out_line '^report bank: +1$'
out_line '^MCG_CAP: +0x1000c02 \(count 2 MCG_CMCI_P MCG_TES_P MCG_SER_P\)$'
out_line '^  ser '
out_line '^  tes '
out_line '^  cmci '
expect_ok profile print
check test "$(cat "$OUT")" = intel,banks=2,ser,tes,cmci

# Every field, as JSON.
expect_ok profile parse --json intel,banks=4,ser,lmce,cmci,compat=8
jq_is .profile '"intel,banks=4,compat=8,ser,cmci,lmce"'
jq_is .mcg_cap '"0x9000404"'
jq_is .caps '["ser","cmci","lmce"]'
jq_is '[.banks,.report_bank,.compat_banks]' '[4,1,8]'
expect_ok profile parse intel,banks=4,compat=8
out_line '^compat banks: 8 \(MC4..MC7 read as zero, ignore writes\)$'
out_line '^capabilities: none$'

# The canonical form is a fixed point: print(print(x)) == print(x).
for text in "intel,cmci,ser,banks=2" "intel,banks=1,ser" "amd,succor,banks=4,ctl" \
	"intel,banks=8,report=3,compat=12,lmce,ser,ctl,tes,cmci"; do
	expect_ok profile print "$text"
	canon=$(cat "$OUT")
	expect_ok profile print "$canon"
	check test "$(cat "$OUT")" = "$canon"
done
expect_ok profile print intel,cmci,ser,banks=2
check test "$(cat "$OUT")" = intel,banks=2,ser,cmci
expect_ok profile print intel,banks=1
check test "$(cat "$OUT")" = intel,banks=1

# AMD: no Intel MCG_CAP bits, ctl is MCG_CTL_P.
expect_ok profile parse --json amd,banks=4,succor
jq_is .mcg_cap '"0x4"'
jq_is .vendor '"amd"'
jq_is .caps '["succor"]'
expect_ok profile parse --json amd,banks=2,ctl
jq_is .mcg_cap '"0x102"'

# validate.
expect_ok profile validate intel,banks=2,ser,lmce
out_line '^valid: intel,banks=2,ser,lmce$'

# Invalid profiles: exit 1 and a message that names the problem.
expect_fail "banks=0" profile validate intel,banks=0
expect_fail "out of range" profile validate intel,banks=33
expect_fail "unknown vendor 'arm'" profile validate arm,banks=2
expect_fail "'lmce' is an Intel capability" profile validate amd,lmce
expect_fail "'succor' is an AMD capability" profile parse intel,succor
expect_fail "'ser' is given twice" profile validate intel,ser,ser
expect_fail "report=2 is not a bank" profile validate intel,banks=2,report=2
expect_fail "compat=1 must be between banks" profile validate intel,banks=2,compat=1
expect_fail "empty token" profile validate intel,,ser
expect_fail "needs a decimal number" profile validate intel,banks=x
expect_fail "unknown capability 'foo'" profile print intel,foo
expect_fail "empty profile" profile validate ""
expect_fail "ends with ','" profile validate intel,
for t in intel,banks=0 arm; do
	run profile validate "$t"
	check test ! -s "$OUT"
done

# Usage errors.
expect_usage "no action given" profile
expect_usage "unknown action 'frob'" profile frob intel
expect_usage "validate needs a profile TEXT" profile validate
expect_usage "one profile TEXT only" profile print intel amd
expect_usage "--json applies to 'profile parse' only" profile print --json intel
expect_usage "unknown option '--frob'" profile parse --frob

finish
