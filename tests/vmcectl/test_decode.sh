#!/bin/bash
# vmcectl decode: MCi_STATUS/MCG_STATUS decoding, MCA error codes and Linux's severity grading.
. "$(dirname "$0")/lib.sh"

# jq_is FILTER VALUE: the raw value of FILTER on stdout is VALUE.
jq_is() {
	CHECKS=$((CHECKS + 1))
	local got
	got=$(jq -r "$1" "$OUT" 2>/dev/null)
	[ "$got" = "$2" ] || bad "expected $1 to be '$2', got '$got'"
	return 0
}

# The SRAO a Linux 6.1 guest recovered from (design §5): L3 explicit writeback.
expect_ok decode 0xbd0000000000017a
out_line '^MCi_STATUS 0xbd0000000000017a \(Intel layout\)$'
for b in VAL UC EN MISCV ADDRV S; do
	out_line "^  $b +1 "
done
for b in OVER PCC AR; do
	out_line "^  $b +0 "
done
out_line '^  MCACOD +0x017a .*GCACHEL2_EVICT_ERR: cache hierarchy error: generic, level 2, eviction'
out_has 'last-level cache explicit writeback error (an SRAO code)'
out_line '^class: +srao: '
out_line '^  in user mode: +AO +Action optional: last level cache writeback error$'
out_line '^  in kernel mode: +AO +Action optional: last level cache writeback error$'
expect_ok decode 0xbd0000000000017a --json
jq_is '.class' srao
jq_is '.mcacod' 0x017a
jq_is '.mcacod_type' cache
jq_is '.mcacod_name' GCACHEL2_EVICT_ERR
jq_is '[.bits | .VAL, .OVER, .UC, .EN, .MISCV, .ADDRV, .PCC, .S, .AR] |
	map(tostring) | join(",")' \
	true,false,true,true,true,true,false,true,false
jq_is '.mcg_status.value' 0x5
jq_is '.mcg_status.assumed' true

# The SRAR a Linux 6.1 guest recovered from: data load, MCG_STATUS 7.
expect_ok decode 0xbd80000000000134 --mcg-status 7
out_line '^  AR +1 '
out_line '^  MCACOD +0x0134 .*DCACHEL0_DRD_ERR: cache hierarchy error: data, level 0, data read'
out_has 'data load error (an SRAR code)'
out_line '^MCG_STATUS 0x7: RIPV EIPV MCIP$'
out_line '^class: +srar: '
out_line '^  in user mode: +AR +Action required: data load error in a user process$'
out_line '^  in kernel mode: +PANIC +Data load in unrecoverable area of kernel$'
# RIPV=0: no return to the interrupted context: the user task is killed, the kernel panics.
expect_ok decode 0xbd80000000000134 --mcg-status 6 --json
jq_is '.linux.user.severity' AR
jq_is '.linux.kernel.message' 'In kernel and no restart IP'
# Neither RIPV nor EIPV: panic wherever it hit.
expect_ok decode 0xbd80000000000134 --mcg-status 4 --json
jq_is '.linux.user.message' 'Neither restart nor error IP'

# RIPV=1, EIPV=0: another thread consumed it; this one can continue.
expect_ok decode 0xbd80000000000134 --mcg-status 5 --json
jq_is '.linux.user.message' 'Action required but unaffected thread is continuable'
# No MCIP inside the handler: Linux panics.
expect_ok decode 0xbd80000000000134 --mcg-status 3 --json
jq_is '.linux.user.message' 'MCIP not set in MCA handler'
# Instruction fetch.
expect_ok decode 0xbd80000000000150 --mcg-status 7 --json
jq_is '.mcacod_name' ICACHEL0_IRD_ERR
jq_is '.linux.user.message' 'Action required: instruction fetch error in a user process'
jq_is '.linux.kernel.message' 'Instruction fetch error in kernel'
# SRAR with an unknown code, and SRAR without ADDRV/MISCV: panic.
expect_ok decode 0xbd80000000000135 --mcg-status 7 --json
jq_is '.linux.user.message' 'Action required: unknown MCACOD'
expect_ok decode 0xb180000000000134 --mcg-status 7 --json
jq_is '.linux.user.severity' PANIC
# Lost events.
expect_ok decode 0xfd80000000000134 --mcg-status 7 --json
jq_is '.linux.user.message' 'Action required with lost events'

# Memory scrubbing SRAO, channel 3 (memory controller compound code).
expect_ok decode 0xbd000000000000c3 --json
jq_is '.mcacod_type' memory
jq_is '.mcacod_name' MS_CHANNEL3_ERR
jq_is '.linux.user.message' 'Action optional: memory scrubbing error'
# The F bit (12) does not change the type or the name.
expect_ok decode 0xbd0000000000117a --json
jq_is '.mcacod_name' GCACHEL2_EVICT_ERR
jq_is '.mcacod_text | test("F set")' true
jq_is '.class' srao

# UCNA: UC without S.
expect_ok decode 0xbc0000000000009f --json
jq_is '.class' ucna
jq_is '.mcacod_name' RD_CHANNELx_ERR
jq_is '.linux.user.severity' UCNA
# PCC: fatal.
expect_ok decode 0xb200000000000005 --json
jq_is '.class' fatal
jq_is '.mcacod_text' 'internal parity error'
jq_is '.linux.user.message' 'Processor context corrupt'
jq_is '.linux.kernel.severity' PANIC
# A corrected error with a count of 3 and a "yellow" threshold status.
expect_ok decode 0x9440010000000151
out_line '^  UC +0 '
out_line '^  COUNT +4 \(bits 52:38\) corrected error count$'
out_line '^  THRESHOLD 2 \(bits 54:53\) yellow: above threshold$'
out_line '^class: +ce: corrected$'
out_line '^  poll/CMCI: +corrected'
# Not valid.
expect_ok decode 0 --json
jq_is '.class' invalid
jq_is '.linux.user.severity' NO
# Without SER: no recovery classes, an uncorrected error is UC.
expect_ok decode 0xbd0000000000017a --no-ser --json
jq_is '.class' uc
jq_is '.linux.user.message' Uncorrected
jq_is '.linux.kernel.severity' PANIC

# Simple and other compound codes.
expect_ok decode 0x8000000000000e0b --json
jq_is '.mcacod_text' 'I/O error'
expect_ok decode 0x8000000000000400 --json
jq_is '.mcacod_text' 'internal timer error'
expect_ok decode 0x8000000000000405 --json
jq_is '.mcacod_text | startswith("internal unclassified")' true
expect_ok decode 0x8000000000000014 --json
jq_is '.mcacod_name' DTLBL0_ERR
expect_ok decode 0x800000000000000e --json
jq_is '.mcacod_type' generic-cache
jq_is '.mcacod_text' 'generic cache hierarchy error, level 2'
expect_ok decode 0x8000000000000f0f --json
jq_is '.mcacod_name' BUSLG_GEN_ERR_OTHER_TIMEOUT_ERR
expect_ok decode 0x8000000000000a1d --json
jq_is '.mcacod_name' BUSL1_RES_RD_OTHER_NOTIMEOUT_ERR
expect_ok decode 0x8000000000002000 --json
jq_is '.mcacod_type' unknown

# MCi_MISC: the address granularity and mode, and whether Linux can act on the address
# (design §5: an SRAR needs MISCV and ADDRV with MISC 0x8c, physical mode, LSB 12).
expect_ok decode 0xbd80000000000134 --mcg-status 7 --misc 0x8c
out_line '^MCi_MISC 0x8c: address LSB 12 \(bits 5:0\), address mode 2 \(bits 8:6\): physical '\
'address$'
out_line '^address: +usable: '
expect_ok decode 0xbd80000000000134 --misc 0x8c --json
jq_is '[.misc.addr_lsb, .misc.addr_mode, .misc.usable_address] | map(tostring) | join(",")' \
	12,2,true
expect_ok decode 0xbd80000000000134 --misc 0x4c --json
jq_is '.misc.addr_mode_text' 'linear address'
jq_is '.misc.usable_address' false
expect_ok decode 0xbd80000000000134 --misc 0x8d --json
jq_is '.misc.why | test("above 12")' true
expect_ok decode 0xb980000000000134 --misc 0x8c --json
jq_is '.misc.why' 'ADDRV clear'
expect_ok decode 0xb580000000000134 --misc 0x8c --json
jq_is '.misc.why | startswith("MISCV clear")' true
expect_ok decode 0xbd80000000000134 --json
jq_is '.misc' null
expect_usage "--misc: 'x' is not a hexadecimal value" decode --misc x 0x1

# MCG_STATUS with LMCES, and reserved bits named.
expect_ok decode 0xbd80000000000134 --mcg-status 0xf
out_line '^MCG_STATUS 0xf: RIPV EIPV MCIP LMCES$'
expect_ok decode 0xbd80000000000134 --mcg-status 0x17
out_line '^MCG_STATUS 0x17: RIPV EIPV MCIP reserved:0x10$'

# AMD: Deferred and Poison bits, no S/AR; severity by AMD's rules.
expect_ok decode --vendor amd 0x9c00100000000000
out_line '^MCi_STATUS 0x9c00100000000000 \(AMD layout\)$'
out_line '^  DEFERRED +1 '
out_line '^  POISON +0 '
grep -qE '^  (S|AR) ' "$OUT" && bad "AMD layout must not show S/AR"
out_line '^class: +deferred: '
expect_ok decode --vendor amd 0xb400080000000134 --mcg-status 7 --json
jq_is '.bits.POISON' true
jq_is '.linux.user.severity' PANIC
jq_is '.linux.kernel.severity' PANIC
expect_ok decode --vendor amd --succor 0xb400080000000134 --mcg-status 7 --json
jq_is '.linux.user.severity' AR
jq_is '.linux.kernel.severity' PANIC

# Hexadecimal without 0x, upper case.
expect_ok decode BD0000000000017A --json
jq_is '.status' 0xbd0000000000017a

# Every JSON output is one line.
expect_ok decode 0xbd80000000000134 --json
check test "$(wc -l <"$OUT")" -eq 1

finish
