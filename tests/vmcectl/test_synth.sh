#!/bin/bash
# vmcectl synth: the delivery plan for each class of host error, checked against the policy
# contract (docs: design §4): who gets what, MCG_STATUS, bank, STATUS bits, ADDR, MISC.
. "$(dirname "$0")/lib.sh"

# The record of vCPU N in the plan on stdout, as "signal mcg_status bank status addr misc".
rec() {
	jq -r --argjson n "$1" '.vcpus[] | select(.cpu == $n) |
		"\(.signal) \(.mcg_status) \(.bank // "-") \(.status // "-") " +
		"\(.addr // "-") \(.misc // "-")"' "$OUT"
}

# MCACOD (bits 15:0) of a status, in hex.
mcacod() {
	printf '0x%x' $(($1 & 0xffff))
}

srao_code() {
	local c=$(($1 & 0xefff))
	((c == 0x17a || (c & 0xfff0) == 0xc0))
}

# ---- SRAO: #MC on vCPU 0 in the reporting bank, broadcast to the others ----------------------
expect_ok synth --srao --gpa 0x2000000 --json
jq_true '.verdict == "forward" and .class == "srao" and .target == 0'
jq_true '.broadcast == true and .lmce == false and .gpa == "0x2000000" and .nr_vcpus == 2'
jq_true '(.vcpus | length) == 2'
read -r sig mcg bank st addr misc <<<"$(rec 0)"
check test "$sig" = mc
check test "$((mcg))" -eq $((MCIP | RIPV))
check test "$bank" = 1
check test "$((addr))" -eq $((0x2000000))
check test "$((misc))" -eq $((0x8c))
check bits_set "$st" $((VAL | UC | EN | MISCV | ADDRV | S))
check bits_clear "$st" $((AR | PCC | OVER))
check bits_clear "$st" 0xffff0000 # no model-specific code
check srao_code "$st"
read -r sig mcg bank st addr misc <<<"$(rec 1)"
check test "$sig $((mcg)) $bank $st" = "mc $((MCIP | RIPV)) - -"
# The status the plan carries decodes as an SRAO that Linux handles as action-optional.
SRAO_STATUS=$(jq -r '.vcpus[0].status' "$OUT")
expect_ok decode "$SRAO_STATUS" --json
jq_true '.class == "srao" and .linux.user.severity == "AO" and .recovery_code != null'

# The same plan as a table: one row per vCPU.
expect_ok synth --srao --gpa 0x2000000
out_line '^verdict: +forward$'
out_line '^class: +srao$'
out_line '^target: +vCPU 0, broadcast'
out_line "^0 +#MC +0x5 RIPV MCIP +1 +$SRAO_STATUS +0x0000000002000000 +0x8c$"
out_line '^1 +#MC +0x5 RIPV MCIP +- +- +- +-$'

# ---- SRAR: #MC on the consuming vCPU with EIPV, bystanders MCIP|RIPV -------------------------
expect_ok synth --srar --gpa 0x2000000 --cpu 1 --json
jq_true '.verdict == "forward" and .class == "srar" and .target == 1 and .broadcast == true'
read -r sig mcg bank st addr misc <<<"$(rec 1)"
check test "$sig $((mcg)) $bank" = "mc $((MCIP | RIPV | EIPV)) 1"
check test "$((addr)) $((misc))" = "$((0x2000000)) $((0x8c))"
check bits_set "$st" $((VAL | UC | EN | MISCV | ADDRV | S | AR))
check bits_clear "$st" $((PCC | OVER))
check test "$(mcacod "$st")" = 0x134 -o "$(mcacod "$st")" = 0x150
read -r sig mcg bank st addr misc <<<"$(rec 0)"
check test "$sig $((mcg)) $bank" = "mc $((MCIP | RIPV)) -"
SRAR_STATUS=$(jq -r '.vcpus[] | select(.cpu == 1) | .status' "$OUT")
expect_ok decode "$SRAR_STATUS" --mcg-status 7 --json
jq_true '.class == "srar" and .linux.user.severity == "AR" and .linux.kernel.severity == "PANIC"'

# A raw SRAR record (the one a Linux 6.1 guest recovered from) is forwarded unchanged.
expect_ok synth --status 0xbd80000000000134 --misc 0x8c --mcg-status 7 --gpa 0x2000000 --cpu 1 \
	--json
jq_true '.class == "srar" and .target == 1'
check test "$(rec 1)" = "mc 0x7 1 0xbd80000000000134 0x2000000 0x8c"
# ... and a raw SRAO keeps its architectural bits but loses the model-specific code.
expect_ok synth --status 0xbd00001f0012017a --misc 0x8c --mcg-status 5 --gpa 0x2000000 \
	--vcpus 4 --json
jq_true '.class == "srao" and (.vcpus | length) == 4'
check test "$(rec 0)" = "mc 0x5 1 0xbd0000000000017a 0x2000000 0x8c"
for v in 1 2 3; do
	check test "$(rec $v)" = "mc 0x5 - - - -"
done

# ---- CE: never forwarded -------------------------------------------------------------------
expect_ok synth --ce --gpa 0x1000 --json
jq_true '.verdict == "drop" and .class == "ce" and .vcpus == [] and .broadcast == false'
expect_ok synth --ce --gpa 0x1000
out_line '^verdict: +drop$'
out_line '^0 +none +- +- +- +- +-$'
out_line '^1 +none +- +- +- +- +-$'

# ---- Out of guest memory: never forwarded ---------------------------------------------------
expect_ok synth --srao --gpa 5G --json
jq_true '.verdict == "drop" and .gpa == null and .vcpus == []'
jq_true '.reason | test("0x140000000")'
expect_ok synth --srao --gpa 64M --map 0:64M --json
jq_true '.verdict == "drop" and .vcpus == []'
expect_ok synth --srao --gpa 0x3ffffff --map 0:64M --json
jq_true '.verdict == "forward" and .target == 0'
expect_ok synth --srao --gpa 5G --map 0:64M --map 4G:2G --json
jq_true '.verdict == "forward" and .gpa == "0x140000000"'

# ---- UCNA: a CMCI in the reporting bank when the guest enabled CMCI, else dropped ------------
expect_ok synth --ucna --gpa 0x1000 --json
jq_true '.verdict == "drop" and .class == "ucna" and .vcpus == []'
expect_ok synth --ucna --gpa 0x1000 --cmci --json
jq_true '.verdict == "forward" and .class == "ucna" and .broadcast == false'
jq_true '(.vcpus | length) == 1'
read -r sig mcg bank st addr misc <<<"$(rec 0)"
check test "$sig $bank $((addr))" = "cmci 1 $((0x1000))"
check bits_set "$st" $((VAL | UC | EN))
check bits_clear "$st" $((S | AR | PCC))
UCNA_STATUS=$st
expect_ok decode "$UCNA_STATUS" --json
jq_true '.class == "ucna" and .linux.user.severity == "UCNA"'

# ---- Fatal ---------------------------------------------------------------------------------
expect_ok synth --fatal --json
jq_true '.verdict == "fatal" and .vcpus == []'
expect_ok synth --status 0xb200000000000005 --gpa 0x1000 --json
jq_true '.verdict == "fatal" and (.reason | test("PCC|context corrupt"))'

# ---- LMCE: local #MC with LMCES, no broadcast ------------------------------------------------
expect_ok synth --profile intel,banks=2,ser,lmce --lmce --srar --gpa 0x3000 --cpu 1 --json
jq_true '.lmce == true and .broadcast == false and .target == 1 and (.vcpus | length) == 1'
read -r sig mcg bank st addr misc <<<"$(rec 1)"
check test "$sig $((mcg))" = "mc $((MCIP | RIPV | EIPV | LMCES))"
# Without the guest's enable the same error is broadcast.
expect_ok synth --profile intel,banks=2,ser,lmce --srar --gpa 0x3000 --cpu 1 --json
jq_true '.lmce == false and .broadcast == true'

# ---- NOBROADCAST: the target only ----------------------------------------------------------
expect_ok synth --srao --gpa 0x3000 --no-broadcast --vcpus 3 --json
jq_true '.broadcast == false and (.vcpus | length) == 1 and .vcpus[0].cpu == 0'

# ---- AMD: action-optional errors are Deferred, not signalled --------------------------------
expect_ok synth --profile amd,banks=2,succor --srao --gpa 0x3000 --json
jq_true '.verdict == "forward" and (.vcpus | length) == 1'
read -r sig mcg bank st addr misc <<<"$(rec 0)"
check test "$sig" = none
check bits_set "$st" $((VAL | DEFERRED | ADDRV))
check bits_clear "$st" $((UC | PCC))

# ---- A one-bank profile reports in bank 0 ---------------------------------------------------
expect_ok synth --profile intel,banks=1,ser --srao --gpa 0x1000 --json
check test "$(jq -r '.vcpus[0].bank' "$OUT")" = 0

# ---- Many vCPUs: every bystander is listed --------------------------------------------------
expect_ok synth --srao --gpa 0x1000 --vcpus 64 --json
jq_true '(.vcpus | length) == 64 and ([.vcpus[] | select(.bank != null)] | length) == 1'

# ---- Exit statuses: the verdict never makes synth fail --------------------------------------
for cls in --srao --srar --ucna --ce; do
	expect_ok synth $cls --gpa 0x1000
done

finish
