#!/bin/bash
# vmcectl against a running vmce-vm (built-in guest, 2 vCPUs): inject (by class, mce-inject
# text from a file and from standard input), status, events (table, JSON, paging, --follow)
# and quit, asserting on vmcectl's output, the guest console and the VMM's exit status.
#
#   test_e2e.sh PATH/TO/vmcectl PATH/TO/vmce-vm
. "$(dirname "$0")/lib.sh"
VMM=${2:?usage: $0 PATH/TO/vmcectl PATH/TO/vmce-vm}
if [ ! -c /dev/kvm ] || [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "SKIP: /dev/kvm is missing or not accessible"
	exit 77
fi
unset VMCE_SOCKET
SOCK=$TMP/ctl.sock
CONSOLE=$TMP/console
VM_PID=
FOLLOW_PID=

stop_all() {
	[ -n "$FOLLOW_PID" ] && kill "$FOLLOW_PID" 2>/dev/null
	[ -n "$VM_PID" ] && kill -9 "$VM_PID" 2>/dev/null
	rm -rf "$TMP"
}
trap stop_all EXIT

# wait_for FILE TEXT SECONDS: until FILE contains the fixed string TEXT.
wait_for() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -qF -- "$2" "$1" 2>/dev/null && return 0
		kill -0 "$VM_PID" 2>/dev/null || break
		sleep 0.1
	done
	CHECKS=$((CHECKS + 1))
	bad "waited $3 s for '$2' in $(basename "$1")"
	sed 's/^/  console: /' "$CONSOLE" >&2
	sed 's/^/  vmm: /' "$TMP/vmm.err" >&2
	return 1
}

# start_vm: boot vmce-vm on $SOCK; return once the guest has set up its MCA (CR4.MCE, banks,
# CMCI), which it says by its first "alive" line.
start_vm() {
	rm -f "$CONSOLE"
	"$VMM" --control "$SOCK" --console-file "$CONSOLE" --no-workload --quiet-poller \
		--timeout 150 >"$TMP/vmm.out" 2>"$TMP/vmm.err" &
	VM_PID=$!
	wait_for "$CONSOLE" "guest: alive" 60
}

start_vm || finish
"$VMCECTL" events --follow --json --socket "$SOCK" >"$TMP/follow" 2>"$TMP/follow.err" &
FOLLOW_PID=$!

# status before any error.
expect_ok status --socket "$SOCK" --json
jq_true '.ok and .state == "running" and .nr_vcpus == 2 and .poisoned.count == 0'
jq_true '.profile == "intel,banks=2,ser,tes,cmci" and .mcg_cap == "0x1000c02"'
jq_true '.held.count == 0 and .held.max == 1024 and .held.timeout_ms == 5000 and .held.records == []'
export VMCE_SOCKET=$SOCK
expect_ok status
out_line '^state: +running '
out_line '^profile: +intel,banks=2,ser,tes,cmci \(MCG_CAP 0x1000c02\)$'
out_line '^0 +0x0 +0x0 +no +0 +0xffffffffffffffff '
out_line '^poisoned pages: 0$'
out_line '^held: +count=0 max=1024 timeout_ms=5000 stalled_ms=0 held=0 released=0 overflowed=0 expired=0$'

# SRAO by class: forwarded, the guest offlines the page and goes on.
expect_ok inject --srao --gpa 0x2000000
out_line '^record 1: forward +class srao +gpa 0x2000000 +queued$'
out_line '^  vCPU 0: #MC MCG_STATUS 0x5 bank 1 STATUS 0xbd[0-9a-f]{14} ADDR 0x2000000 MISC 0x8c$'
out_line '^  vCPU 1: #MC MCG_STATUS 0x5$'
out_line '^last event: [0-9]+$'
wait_for "$CONSOLE" "addr=0x2000000 misc=0x8c mcgstatus=0x5 action=offline-page result=recovered" 30

# CE: dropped (JSON response with the plan).
expect_ok inject --ce --gpa 0x1000 --json
jq_true '.ok and (.results | length) == 1 and .results[0].verdict == "drop"'
jq_true '.results[0].class == "ce" and .results[0].queued == false'
jq_true '.results[0].plan.verdict == "drop" and .results[0].plan.vcpus == []'

# Outside guest memory (64 MiB): refused by the policy.
expect_ok inject --srao --gpa 1G
out_line '^record 1: drop +class srao +gpa none +not queued$'
out_has 'not guest memory'

# mce-inject text, from a file: the SRAO a Linux guest recovers from.
cat >"$TMP/srao.txt" <<'TXT'
# L3 explicit writeback, as Linux's mce-inject reads it
CPU 0 BANK 1
STATUS 0xbd0000000000017a
MCGSTATUS 0x5
ADDR 0x2100000
MISC 0x8c
TXT
expect_ok inject --file "$TMP/srao.txt"
out_line '^record 1: forward +class srao +gpa 0x2100000 +queued$'
wait_for "$CONSOLE" "status=0xbd0000000000017a addr=0x2100000" 30
# ... and from standard input, a raw UCNA (the guest enabled CMCI: a CMCI in bank 1).
printf 'CPU 1 BANK 1\nSTATUS 0xbc0000000000009f\nADDR 0x2200000\nMISC 0x8c\n' >"$TMP/ucna.txt"
run inject - <"$TMP/ucna.txt"
check test "$RC" -eq 0
out_line '^record 1: forward +class ucna +gpa 0x2200000 +queued$'
out_line '^  vCPU 1: CMCI bank 1 STATUS 0xbc0000000000009f ADDR 0x2200000 MISC 0x8c$'

# A raw record by options.
expect_ok inject --status 0x9000000000000000 --gpa 0x1000 --json
jq_true '.ok and .results[0].class == "ce" and .results[0].verdict == "drop"'

# Requests vmce-vm refuses: exit 1 with its message.
expect_fail 'vmce-vm refused the request: field "cpu": vCPU 5 does not exist' \
	inject --srao --gpa 0x3000 --cpu 5

# status after the errors.
expect_ok status --json
jq_true '.poisoned.count >= 2 and (.poisoned.pages | index("0x2000000") != null)'
jq_true '(.poisoned.pages | index("0x2100000") != null) and .poisoned.truncated == false'
jq_true '.counters.by_class.srao == 3 and .counters.by_class.ce == 2'
jq_true '.counters.forwarded == 3 and .counters.dropped == 3'
expect_ok status
out_line '^poisoned pages: 3: 0x2000000 0x2100000 0x2200000$'
out_line '^errors seen: .*srao=3'
out_line '^events: .* forwarded=3 dropped=3 '

# events: the whole log as a table and as JSON lines, and pages of it.
expect_ok events
out_line '^SEQ +TIME +KIND +CLASS +VCPU +GPA +SIGNAL +MCG_STATUS +BANK +STATUS +REASON$'
out_line '^1 +[0-9:.]+ +forwarded +srao +0 +0x2000000 +mc +0x5 +1 +0xbd[0-9a-f]+ +srao: '
out_line '^[0-9]+ +[0-9:.]+ +delivered +srao +1 +0x2000000 +mc +0x5 +- +- '
out_line '^[0-9]+ +[0-9:.]+ +dropped +ce '
expect_ok events --json
cp "$OUT" "$TMP/all.json"
NEV=$(wc -l <"$TMP/all.json")
check test "$NEV" -ge 9
# Every line is one event; sequence numbers run 1..N without gaps.
check test "$(jq -s '[.[].seq] == [range(1; length + 1)]' "$TMP/all.json")" = true
check test "$(jq -s '[.[] | select(.kind == "delivered" and .signal == "mc")] | length' \
	"$TMP/all.json")" -eq 4
check test "$(jq -s '[.[] | select(.kind == "delivered" and .signal == "cmci")] | length' \
	"$TMP/all.json")" -eq 1
expect_ok events --json --after 1 --max 2
check test "$(jq -s -c '[.[].seq]' "$OUT")" = "[2,3]"
expect_ok events --json --after "$NEV"
check test ! -s "$OUT"

# quit: the VMM exits 0; the follower saw every event as it happened, then the exit.
wait_for "$TMP/follow" "{\"seq\":$NEV," 20
expect_ok quit
out_line '^vmce-vm is stopping$'
wait "$VM_PID"
VM_STATUS=$?
VM_PID=
check test "$VM_STATUS" -eq 0
wait "$FOLLOW_PID"
FOLLOW_STATUS=$?
FOLLOW_PID=
check test "$FOLLOW_STATUS" -eq 0
check test "$(tail -n 1 "$TMP/follow" | jq -r '.kind + " " + (.status | tostring)')" = "vm-exit 0"
check test "$(jq -s -c '[.[] | select(.seq != null) | .seq]' "$TMP/follow")" = \
	"$(jq -s -c '[.[].seq]' "$TMP/all.json")"
check test ! -s "$TMP/follow.err"

# No VM any more.
expect_fail "cannot connect to $SOCK" status

# ---- A fatal error: vmce shuts the guest down, the VMM exits with status 4 ------------------
SOCK=$TMP/ctl2.sock
export VMCE_SOCKET=$SOCK
start_vm || finish
"$VMCECTL" events --follow >"$TMP/follow" 2>"$TMP/follow.err" &
FOLLOW_PID=$!
wait_for "$TMP/follow" "SEQ" 20 # connected: the header follows the server's answer
expect_ok inject --fatal
out_line '^record 1: fatal +class fatal +gpa none +queued$'
wait "$VM_PID"
VM_STATUS=$?
VM_PID=
check test "$VM_STATUS" -eq 4
wait "$FOLLOW_PID"
FOLLOW_STATUS=$?
FOLLOW_PID=
check test "$FOLLOW_STATUS" -eq 0
cp "$TMP/follow" "$OUT"
out_line '^1 +[0-9:.]+ +fatal +fatal +0 +- '
check grep -qE '^-- the VM stopped: vmce shut the guest down.* \(exit status 4\) --$' "$OUT"

finish
