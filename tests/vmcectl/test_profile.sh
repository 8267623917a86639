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
expect_usage "--json applies to 'profile parse' and 'profile level' only" profile print --json intel
expect_usage "unknown option '--frob'" profile parse --frob

# level: the profile every host of a pool backs, from one JSON file per host (tests/vmcectl/hosts).
H=$(cd "$(dirname "$0")/hosts" && pwd)
expect_ok profile level "$H/a.json" "$H/b.json" "$H/c.json"
out_line '^profile: intel,banks=8,ser,tes,ctl$'
out_line "^banks: 8: the smallest max_banks, host 'b'\$"
out_line '^cmci: dropped: host c cannot back it$'
out_line '^lmce: dropped: hosts b,c cannot back it$'
out_line '^ser: kept: every host backs it$'
out_line '^backend: kvm-userspace and kvm-hybrid'
expect_ok profile level --json "$H/a.json" "$H/b.json" "$H/c.json"
jq_is .profile '"intel,banks=8,ser,tes,ctl"'
jq_is '[.notes[] | select(.field == "lmce") | .hosts]' '["b,c"]'
jq_is '[.notes[] | select(.field == "banks") | .hosts]' '["b"]'
jq_is '[.notes[] | .field]' '["vendor","banks","ser","tes","cmci","lmce","ctl","backend"]'
# The levelled profile is a valid profile text.
expect_ok profile level --json "$H/b.json" "$H/c.json"
prof=$(jq -r .profile "$OUT")
expect_ok profile validate "$prof"
# One host alone: its own capabilities; --want narrows the result (options after the files too).
expect_ok profile level "$H/a.json"
out_line '^profile: intel,banks=32,ser,tes,cmci,lmce,ctl$'
expect_ok profile level --want intel,banks=4,ser "$H/a.json" "$H/b.json"
out_line '^profile: intel,banks=4,ser$'
out_line '^banks: 4 as wanted'
expect_ok profile level "$H/a.json" "$H/c.json" --want intel,banks=2,ser,cmci --json
jq_is .profile '"intel,banks=2,ser"'
jq_is '[.notes[] | select(.field == "cmci") | .hosts]' '["c"]'

# Errors name the file and the field; vendors do not mix.
expect_fail "no profile fits the pool: vendor: host 'a' is intel and host 'm' is amd" \
	profile level "$H/a.json" "$H/amd.json"
expect_fail "bad-banks.json: field 'max_banks': 99 is out of range" \
	profile level "$H/a.json" "$H/bad-banks.json"
expect_fail "bad-field.json: field 'colour': unknown" profile level "$H/bad-field.json"
expect_fail "missing.json: cannot open" profile level "$H/a.json" "$TMP/missing.json"
head -c 5000 /dev/zero | tr '\0' ' ' >"$TMP/big.json"
expect_fail "big.json: longer than 4096 bytes" profile level "$TMP/big.json"
printf '{"name": "t", "vendor": "intel",' >"$TMP/trunc.json"
expect_fail "trunc.json: " profile level "$TMP/trunc.json"
printf '{"name": "n", "vendor": "intel", "max_banks": 4}' >"$TMP/nocaps.json"
expect_fail "nocaps.json: " profile level "$TMP/nocaps.json"
grep -q caps "$ERR" || bad "expected the missing field 'caps' to be named"
for f in "$H/bad-banks.json" "$TMP/missing.json"; do
	run profile level "$H/a.json" "$f"
	check test ! -s "$OUT"
done
expect_usage "level needs at least one HOST.json file" profile level
expect_usage "level needs at least one HOST.json file" profile level --json
expect_usage "--want: invalid profile 'arm'" profile level --want arm "$H/a.json"
expect_usage "--want applies to 'profile level' only" profile parse --want intel

# QEMU hosts (--qemu): QEMU's query-vmce-host replies (whole, or the value alone) in; without
# --want vmce's default profile as far as every host backs it; the -object option out.
Q=$H/qemu
expect_ok profile level --qemu "$Q/tcg.json" "$Q/kvm.json"
out_line '^profile: intel,banks=2,ser,tes$'
out_line '^cmci: dropped: host q-kvm cannot back it$'
out_line '^qemu: -object vmce,id=vmce0,profile=intel,,banks=2,,ser,,tes$'
expect_ok profile level --qemu --json "$Q/tcg.json" "$Q/kvm.json"
jq_is .profile '"intel,banks=2,ser,tes"'
jq_is .qemu_object '"vmce,id=vmce0,profile=intel,,banks=2,,ser,,tes"'
expect_ok profile level --qemu --want intel,banks=4,ser,lmce,ctl "$Q/tcg.json"
out_line '^qemu: -object vmce,id=vmce0,profile=intel,,banks=4,,ser,,lmce,,ctl$'
expect_ok profile level --qemu "$Q/amd.json"
out_line '^qemu: -object vmce,id=vmce0,profile=amd,,banks=2,,succor$'
# The formats do not mix, and a reply must hold the host's object.
expect_fail "tcg.json: field 'return': unknown (expected name, vendor, max_banks" \
	profile level "$Q/tcg.json"
expect_fail "a.json: field 'max_banks': unknown (expected name, vendor, max-banks" \
	profile level --qemu "$H/a.json"
printf '{"return": [1]}' >"$TMP/reply.json"
expect_fail "reply.json: field 'return': expected query-vmce-host's object" \
	profile level --qemu "$TMP/reply.json"
printf '{"name": "x", "vendor": "intel", "max-banks": 4, "caps": [], "accel": "xen"}' \
	>"$TMP/accel.json"
expect_fail "accel.json: field 'accel': 'xen' is neither tcg nor kvm" \
	profile level --qemu "$TMP/accel.json"
expect_fail "no profile fits the pool: vendor:" profile level --qemu "$Q/tcg.json" "$Q/amd.json"
expect_usage "--qemu applies to 'profile level' only" profile parse --qemu

finish
