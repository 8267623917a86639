#!/bin/bash
# Live migration of the built-in guest between two vmce-vm processes (vmcectl migrate --to,
# vmce-vm --incoming), asserting on both consoles, both event logs, vmcectl's output and the exit
# statuses.
#
#   test_migrate.sh PATH/TO/vmce-vm-test PATH/TO/vmcectl SCENARIO
#
# vmce-vm-test is vmce-vm built with the test hooks (VMCE_VM_TEST_*) these scenarios use.
#
# Scenarios:
#   errors     SRAO before (handled at the source), during (injected on the source between
#              vmce_migration_begin and _end: the vmce state is sent again) and after (at the
#              destination) a migration over loopback TCP: each handled exactly once
#   hybrid     errors, with --hybrid on both sides (KVM's in-kernel MCA holds the bank state)
#   abort      the same "during" error with --abort-on-error: the migration is cancelled, the
#              guest stays at the source and handles it there, once; the destination exits 1
#   srar       a page poisoned during the migration stays poisoned: the workload touching it at
#              the destination gets an SRAR, is killed and restarted there
#   srar_before  the same with the SRAO injected before the migration (handled at the source, or
#              finished at the destination): the workload keeps touching its page until its next
#              kernel entry, so the migration follows the injection at once (one connection);
#              when a kernel entry came first (the workload already moved on, rare), the attempt
#              says so and is repeated (at most 3)
#   dest_dies  the destination exits after receiving memory: the source keeps running, answers
#              status and handles a later SRAO; refusals (profile, address, garbage) likewise
#   garbage    malformed migration streams sent to a destination: each makes it exit 1 with a
#              message naming the problem, without running anything
set -u
VMM=${1:?usage: $0 PATH/TO/vmce-vm-test PATH/TO/vmcectl SCENARIO}
VMCECTL=${2:?usage: $0 PATH/TO/vmce-vm-test PATH/TO/vmcectl SCENARIO}
SCENARIO=${3:?usage: $0 PATH/TO/vmce-vm-test PATH/TO/vmcectl SCENARIO}
if [ ! -c /dev/kvm ] || [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "SKIP: /dev/kvm is missing or not accessible"
	exit 77
fi
if ! command -v jq >/dev/null 2>&1; then
	echo "SKIP: jq is not installed"
	exit 77
fi
unset VMCE_SOCKET VMCE_VM_TEST_MIGRATE_INJECT VMCE_VM_TEST_EXIT_AFTER_MEMORY
TMP=$(mktemp -d "${TMPDIR:-/tmp}/vmce-mig.XXXXXX")
SRC_PID=
DST_PID=
FAILS=0
CHECKS=0

stop_all() {
	[ -n "$SRC_PID" ] && kill -9 "$SRC_PID" 2>/dev/null
	[ -n "$DST_PID" ] && kill -9 "$DST_PID" 2>/dev/null
	rm -rf "$TMP"
}
trap stop_all EXIT

bad() {
	FAILS=$((FAILS + 1))
	echo "FAIL: $*" >&2
	for f in src.err dst.err src.con dst.con src.ev dst.ev out err; do
		[ -s "$TMP/$f" ] && sed "s/^/  $f: /" "$TMP/$f" | tail -15 >&2
	done
	return 0
}

check() {
	CHECKS=$((CHECKS + 1))
	"$@" || bad "check failed: $*"
	return 0
}

finish() {
	CHECKS=$((CHECKS + 1))
	if grep -qE 'runtime error|Sanitizer' "$TMP/src.err" "$TMP/dst.err" 2>/dev/null; then
		bad "a sanitizer reported an error"
	fi
	echo "$SCENARIO: $CHECKS checks, $FAILS failed"
	[ "$FAILS" -eq 0 ] && exit 0
	exit 1
}

# wait_for FILE TEXT SECONDS: until FILE contains the fixed string TEXT.
wait_for() {
	local i
	CHECKS=$((CHECKS + 1))
	for ((i = 0; i < $3 * 10; i++)); do
		grep -qF -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	bad "waited $3 s for '$2' in $(basename "$1")"
	finish
}

# wait_exit PID SECONDS: the process's exit status (124: still running).
wait_exit() {
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		if ! kill -0 "$1" 2>/dev/null; then
			wait "$1"
			return $?
		fi
		sleep 0.1
	done
	return 124
}

# count FILE PATTERN: lines of FILE matching the extended regex.
count() {
	grep -cE -- "$2" "$1" 2>/dev/null
}

jqe() { # jqe FILTER FILE: FILTER is true on FILE's JSON
	jq -e "$1" "$2" >/dev/null
}

ctl() { # ctl SOCKET ARGS...: vmcectl with output in $TMP/out and $TMP/err; status in RC
	local s=$1
	shift
	"$VMCECTL" "$@" --socket "$s" >"$TMP/out" 2>"$TMP/err"
	RC=$?
}

# start_src [ARGS...]: the source, booted, its MCA set up (first alive line).
start_src() {
	# Removed here, not by the process: wait_for must not find a previous run's line
	rm -f "$TMP/src.con"
	"$VMM" --control "$TMP/src.sock" --console-file "$TMP/src.con" --events-log "$TMP/src.ev" \
		--timeout 150 "$@" >/dev/null 2>"$TMP/src.err" &
	SRC_PID=$!
	wait_for "$TMP/src.con" "guest: alive" 60
}

# start_dst ADDR [ARGS...]: a destination waiting on ADDR.
start_dst() {
	local addr=$1
	shift
	# Removed here: the shell truncates it in the background child, possibly after wait_for
	# found a previous destination's "waiting" line (the source then met its dead socket)
	rm -f "$TMP/dst.err"
	"$VMM" --incoming "$addr" --control "$TMP/dst.sock" --console-file "$TMP/dst.con" \
		--events-log "$TMP/dst.ev" --timeout 150 "$@" >/dev/null 2>"$TMP/dst.err" &
	DST_PID=$!
	wait_for "$TMP/dst.err" "waiting for a migration" 10
}

srao() { # srao SOCKET GPA
	ctl "$1" inject --srao --gpa "$2"
	check test "$RC" -eq 0
}

offline_line() { # offline_line FILE GPA: lines recording the page's offlining
	count "$1" "^mce: cpu=[0-9]+ bank=1 .*addr=$2 .*action=offline-page result=recovered"
}

PORT=$((20000 + ($$ % 20000)))

scenario_errors() { # [--hybrid]
	VMCE_VM_TEST_MIGRATE_INJECT=0x2400000 start_src --cpus 2 "$@"
	start_dst "127.0.0.1:$PORT" "$@"
	# Before: handled at the source.
	srao "$TMP/src.sock" 0x2000000
	wait_for "$TMP/src.con" "addr=0x2000000 misc=0x8c mcgstatus=0x5 action=offline-page" 30
	wait_for "$TMP/src.con" "mce: bystander cpu=1" 30
	# During: the hook injects 0x2400000 after the first vmce stream was sent: resent once.
	ctl "$TMP/src.sock" migrate --to "127.0.0.1:$PORT" --json
	check test "$RC" -eq 0
	check jqe '.ok and .migrated and .resends == 1 and .pages_skipped == 1' "$TMP/out"
	check jqe '.pages_sent + .pages_skipped == 16384' "$TMP/out"
	jq -r '"migration figures: \(.bytes) bytes, \(.pages_sent) pages sent, " +
		"\(.pages_skipped) skipped, vmce stream \(.vmce_bytes) bytes, " +
		"\(.resends) resend(s), total \(.total_ms) ms, downtime \(.downtime_ms) ms"' "$TMP/out"
	wait_exit "$SRC_PID" 20
	check test $? -eq 0
	SRC_PID=
	check grep -q '"kind":"migrated"' "$TMP/src.ev"
	check grep -q '"kind":"vm-exit","status":0,"reason":"migrated to 127.0.0.1' "$TMP/src.ev"
	# The during-error is handled at the destination; the guest keeps running there.
	wait_for "$TMP/dst.con" "addr=0x2400000 misc=0x8c mcgstatus=0x5 action=offline-page" 30
	wait_for "$TMP/dst.con" "guest: alive" 30
	# After: at the destination.
	srao "$TMP/dst.sock" 0x2800000
	wait_for "$TMP/dst.con" "addr=0x2800000 misc=0x8c mcgstatus=0x5 action=offline-page" 30
	ctl "$TMP/dst.sock" status --json
	check jqe '.state == "running" and .poisoned.count == 3' "$TMP/out"
	# The MCA state the guest set up at the source (MCi_CTL, CMCI enabled in CTL2) came along.
	check jqe '[.vcpus[].banks[] | .ctl == "0xffffffffffffffff" and .ctl2 == "0x40000001"]
		| all and length == 4' "$TMP/out"
	check jqe '.poisoned.pages == ["0x2000000","0x2400000","0x2800000"]' "$TMP/out"
	# Exactly once: each page's offline line on one console only, matching the event logs.
	check test "$(offline_line "$TMP/src.con" 0x2000000)" -eq 1
	check test "$(offline_line "$TMP/dst.con" 0x2000000)" -eq 0
	check test "$(offline_line "$TMP/src.con" 0x2400000)" -eq 0
	check test "$(offline_line "$TMP/dst.con" 0x2400000)" -eq 1
	check test "$(offline_line "$TMP/src.con" 0x2800000)" -eq 0
	check test "$(offline_line "$TMP/dst.con" 0x2800000)" -eq 1
	total=$(($(count "$TMP/src.con" 'action=offline-page') +
		$(count "$TMP/dst.con" 'action=offline-page')))
	fwd=$(($(count "$TMP/src.ev" '"kind":"forwarded","class":"srao"') +
		$(count "$TMP/dst.ev" '"kind":"forwarded","class":"srao"')))
	check test "$total" -eq 3
	check test "$fwd" -eq 3
	check test "$(count "$TMP/src.ev" '"kind":"forwarded".*"gpa":"0x2(0|4)00000"')" -eq 2
	check test "$(count "$TMP/dst.ev" '"kind":"forwarded".*"gpa":"0x2800000"')" -eq 1
	# The interlock's verdicts at the source: a resend, then complete.
	check grep -q '"kind":"migration".*resend' "$TMP/src.ev"
	ctl "$TMP/dst.sock" quit
	wait_exit "$DST_PID" 20
	check test $? -eq 0
	DST_PID=
}

scenario_abort() {
	VMCE_VM_TEST_MIGRATE_INJECT=0x2400000 start_src --cpus 2
	start_dst "$TMP/mig.sock"
	ctl "$TMP/src.sock" migrate --to "$TMP/mig.sock" --abort-on-error
	check test "$RC" -eq 1
	check grep -q "the guest keeps running here: aborted: 1 error(s) forwarded" "$TMP/err"
	# The destination never ran the guest.
	wait_exit "$DST_PID" 20
	check test $? -eq 1
	DST_PID=
	check grep -q "the source aborted the migration" "$TMP/dst.err"
	check test ! -s "$TMP/dst.con"
	# The source handles the error itself, once, and keeps running.
	wait_for "$TMP/src.con" "addr=0x2400000 misc=0x8c mcgstatus=0x5 action=offline-page" 30
	ctl "$TMP/src.sock" status --json
	check jqe '.state == "running" and .poisoned.pages == ["0x2400000"]' "$TMP/out"
	srao "$TMP/src.sock" 0x2800000
	wait_for "$TMP/src.con" "addr=0x2800000 misc=0x8c mcgstatus=0x5 action=offline-page" 30
	sleep 0.5
	check test "$(offline_line "$TMP/src.con" 0x2400000)" -eq 1
	check test "$(count "$TMP/src.ev" '"kind":"forwarded"')" -eq 2
	ctl "$TMP/src.sock" quit
	wait_exit "$SRC_PID" 20
	check test $? -eq 0
	SRC_PID=
}

scenario_srar() {
	local line cpu page prof=intel,banks=2,ser,tes,cmci,lmce
	# The workload's page and vCPU come from the guest's console; the hook needs them at the
	# source's start, so boot once to learn them (the guest is deterministic).
	"$VMM" --profile $prof --console-file "$TMP/probe.con" --timeout 60 >/dev/null \
		2>"$TMP/probe.err" &
	local probe=$!
	wait_for "$TMP/probe.con" "workload: start" 60
	kill "$probe"
	wait "$probe" 2>/dev/null
	line=$(grep -m1 'workload: start' "$TMP/probe.con")
	cpu=$(sed -E 's/.*cpu=([0-9]+).*/\1/' <<<"$line")
	page=$(sed -E 's/.*page=(0x[0-9a-f]+).*/\1/' <<<"$line")
	VMCE_VM_TEST_MIGRATE_INJECT="$page@$cpu" start_src --profile $prof
	check grep -q "workload: start cpu=$cpu page=$page" "$TMP/src.con"
	start_dst "localhost:$PORT" --profile $prof
	ctl "$TMP/src.sock" migrate --to "localhost:$PORT" --json
	check test "$RC" -eq 0
	check jqe '.resends == 1' "$TMP/out"
	wait_exit "$SRC_PID" 20
	check test $? -eq 0
	SRC_PID=
	# At the destination: the SRAO offlines the page, the workload touches it (the page is
	# out of the guest's memory slots): SRAR on its vCPU, killed and restarted elsewhere.
	wait_for "$TMP/dst.con" "addr=$page misc=0x8c mcgstatus=0xd action=offline-page" 30
	wait_for "$TMP/dst.con" "action=kill-workload result=restarted" 30
	wait_for "$TMP/dst.con" "workload: restarted cpu=$cpu" 30
	check grep -qE \
		"^mce: cpu=$cpu bank=1 status=0xbd80000000000134 addr=$page .*action=kill-workload" \
		"$TMP/dst.con"
	check test "$(grep -c 'kill-workload' "$TMP/src.con")" -eq 0
	check test "$(offline_line "$TMP/src.con" "$page")" -eq 0
	check test "$(offline_line "$TMP/dst.con" "$page")" -eq 1
	check grep -q "\"kind\":\"forwarded\",\"class\":\"srar\",\"vcpu\":$cpu,\"gpa\":\"$page\"" \
		"$TMP/dst.ev"
	ctl "$TMP/dst.sock" status --json
	check jqe ".poisoned.pages == [\"$page\"] and .counters.by_class.srar == 1" "$TMP/out"
	wait_for "$TMP/dst.con" "guest: alive" 30
	ctl "$TMP/dst.sock" quit
	wait_exit "$DST_PID" 20
	check test $? -eq 0
	DST_PID=
}

# One attempt of srar_before; 0: SRAR at the destination, 2: inconclusive (the workload moved off
# the page at a kernel entry before it touched it at the destination).
srar_before_once() {
	local prof=intel,banks=2,ser,tes,cmci,lmce cpu page line send
	send="$(dirname "$VMM")/vmce-vm-send"
	rm -f "$TMP"/src.* "$TMP"/dst.*
	start_src --profile $prof
	line=$(grep -m1 'workload: start' "$TMP/src.con")
	cpu=$(sed -E 's/.*cpu=([0-9]+).*/\1/' <<<"$line")
	page=$(sed -E 's/.*page=(0x[0-9a-f]+).*/\1/' <<<"$line")
	start_dst "$TMP/mig.sock" --profile $prof
	"$send" "$TMP/src.sock" \
		"{\"cmd\":\"inject\",\"class\":\"srao\",\"gpa\":\"$page\",\"cpu\":$cpu,\"lmce\":true}" \
		"{\"cmd\":\"migrate\",\"to\":\"$TMP/mig.sock\"}" >"$TMP/out" 2>"$TMP/err"
	check test $? -eq 0
	check grep -q '"verdict":"forward"' "$TMP/out"
	check grep -q '"migrated":true' "$TMP/out"
	wait_exit "$SRC_PID" 20
	check test $? -eq 0
	SRC_PID=
	wait_for "$TMP/dst.con" "workload: restarted cpu=$cpu" 30
	if ! grep -q "action=kill-workload" "$TMP/dst.con"; then
		echo "srar_before: the workload left its page before touching it at the destination"
		ctl "$TMP/dst.sock" quit
		wait_exit "$DST_PID" 20
		DST_PID=
		return 2
	fi
	check grep -qE \
		"^mce: cpu=$cpu bank=1 status=0xbd80000000000134 addr=$page .*action=kill-workload" \
		"$TMP/dst.con"
	check test "$(grep -c 'workload: restarted' "$TMP/src.con")" -eq 0
	# The SRAO was handled once, at the source or (its handler finished) at the destination.
	check test $(($(offline_line "$TMP/src.con" "$page") + $(offline_line "$TMP/dst.con" "$page"))) \
		-eq 1
	check test "$(count "$TMP/src.ev" "\"kind\":\"forwarded\",\"class\":\"srao\"")" -eq 1
	check grep -q "\"kind\":\"forwarded\",\"class\":\"srar\",\"vcpu\":$cpu,\"gpa\":\"$page\"" \
		"$TMP/dst.ev"
	ctl "$TMP/dst.sock" status --json
	check jqe ".poisoned.pages == [\"$page\"] and .counters.by_class.srar == 1" "$TMP/out"
	ctl "$TMP/dst.sock" quit
	wait_exit "$DST_PID" 20
	check test $? -eq 0
	DST_PID=
	return 0
}

scenario_srar_before() {
	local i
	for i in 1 2 3; do
		srar_before_once
		[ $? -eq 2 ] || return 0
	done
	bad "srar_before: inconclusive 3 times in a row"
}

scenario_dest_dies() {
	start_src --cpus 2
	srao "$TMP/src.sock" 0x2000000
	wait_for "$TMP/src.con" "addr=0x2000000 misc=0x8c mcgstatus=0x5 action=offline-page" 30
	# 1. The destination exits after receiving the memory.
	VMCE_VM_TEST_EXIT_AFTER_MEMORY=1 start_dst "$TMP/mig.sock"
	ctl "$TMP/src.sock" migrate --to "$TMP/mig.sock"
	check test "$RC" -eq 1
	check grep -q "migration failed, the guest keeps running here" "$TMP/err"
	wait_exit "$DST_PID" 20
	check test $? -eq 1
	DST_PID=
	check grep -q "exiting after the memory was received" "$TMP/dst.err"
	# 2. A destination that cannot back the guest's profile refuses, saying why.
	start_dst "$TMP/mig.sock" --profile amd,banks=4,succor
	ctl "$TMP/src.sock" migrate --to "$TMP/mig.sock"
	check test "$RC" -eq 1
	check grep -q "the destination refused (hello): this host (--profile amd,banks=4,succor) \
cannot back the guest (intel,banks=2,ser,tes,cmci): profile.vendor" "$TMP/err"
	wait_exit "$DST_PID" 20
	check test $? -eq 1
	DST_PID=
	# 3. Non-loopback and malformed addresses are refused before any connection.
	ctl "$TMP/src.sock" migrate --to 10.1.2.3:4444
	check test "$RC" -eq 1
	check grep -q "10.1.2.3 is not a loopback address" "$TMP/err"
	ctl "$TMP/src.sock" migrate --to example.com:80
	check test "$RC" -eq 1
	check grep -q "not an IP address or localhost" "$TMP/err"
	ctl "$TMP/src.sock" migrate --to 127.0.0.1:99999
	check test "$RC" -eq 1
	check grep -q "port '99999' is not a number from 1 to 65535" "$TMP/err"
	ctl "$TMP/src.sock" migrate
	check test "$RC" -eq 2
	"$VMM" --incoming 192.168.1.1:5555 >/dev/null 2>"$TMP/out"
	check test $? -eq 2
	check grep -q "192.168.1.1 is not a loopback address" "$TMP/out"
	"$VMM" --incoming "$TMP/never.sock" --timeout 0.3 >/dev/null 2>"$TMP/out"
	check test $? -eq 6
	check grep -q "expired while waiting for a migration" "$TMP/out"
	# 4. Garbage on a destination's socket: it exits 1 naming the problem, runs nothing.
	start_dst "$TMP/mig.sock"
	python3 - "$TMP/mig.sock" <<'EOF'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(struct.pack("<IIQ", 1, 0, 1 << 40))
s.recv(100)
EOF
	wait_exit "$DST_PID" 20
	check test $? -eq 1
	DST_PID=
	check grep -q "protocol error: hello frame of 1099511627776 bytes" "$TMP/dst.err"
	check test ! -s "$TMP/dst.con"
	# The source is intact: it answers, runs, and handles a later error once.
	ctl "$TMP/src.sock" status --json
	check jqe '.state == "running" and .poisoned.pages == ["0x2000000"]' "$TMP/out"
	srao "$TMP/src.sock" 0x2400000
	wait_for "$TMP/src.con" "addr=0x2400000 misc=0x8c mcgstatus=0x5 action=offline-page" 30
	n=$(count "$TMP/src.con" "guest: alive")
	# The guest ticks once a second; on a loaded host a tick can take longer: wait up to 10 s.
	for _ in $(seq 50); do
		[ "$(count "$TMP/src.con" "guest: alive")" -gt "$n" ] && break
		sleep 0.2
	done
	check test "$(count "$TMP/src.con" "guest: alive")" -gt "$n"
	check test "$(offline_line "$TMP/src.con" 0x2000000)" -eq 1
	check test "$(count "$TMP/src.ev" '"kind":"forwarded"')" -eq 2
	ctl "$TMP/src.sock" quit
	wait_exit "$SRC_PID" 20
	check test $? -eq 0
	SRC_PID=
}

# A client of the migration protocol that sends one malformed sequence (frames: u32 type,
# u32 reserved, u64 length; hello: u64 magic, u32 version, u32 vCPUs, u64 memory, char[128]).
GARBAGE_PY='
import socket, struct, sys
path, case = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX)
s.connect(path)
def frame(t, data, reserved=0, length=None):
    n = len(data) if length is None else length
    s.sendall(struct.pack("<IIQ", t, reserved, n) + data)
def hello(magic=0x31474d45434d56, version=1, cpus=1, mem=4 << 20, prof=b"intel,banks=2,ser"):
    frame(1, struct.pack("<QIIQ", magic, version, cpus, mem) + prof.ljust(128, b"\0"))
def reply():
    h = s.recv(16)
    if len(h) == 16:
        s.recv(struct.unpack("<IIQ", h)[2])
def mem(gpa, data):
    frame(3, struct.pack("<Q", gpa) + data)
pg = b"\xaa" * 4096
if case == "type": frame(2, b"\0" * 8)
elif case == "reserved": frame(1, b"", reserved=5)
elif case == "huge": frame(1, b"", length=1 << 40)
elif case == "short": frame(1, b"\0" * 10)
elif case == "magic": hello(magic=1)
elif case == "cpus": hello(cpus=0)
elif case == "mem": hello(mem=5)
elif case == "profile": hello(prof=b"arm,banks=2")
else:
    hello()
    reply()
    if case == "outside": mem(4 << 20, pg)
    elif case == "unaligned": mem(0, pg + b"x")
    elif case == "twice": mem(0, pg); mem(0, pg)
    elif case == "counts": frame(4, struct.pack("<QQ", 5, 0))
    elif case == "vcpu": frame(4, struct.pack("<QQ", 0, 1024)); frame(5, b"\0" * 16)
    elif case == "vcpubig": frame(4, struct.pack("<QQ", 0, 1024)); frame(5, b"", length=1 << 30)
    elif case == "commit": frame(7, b"")
    elif case == "eof": frame(3, struct.pack("<Q", 0) + pg[:100], length=8 + 4096)
try:
    s.shutdown(socket.SHUT_WR)
    s.recv(4096)
except OSError:
    pass
'

scenario_garbage() {
	local c msg
	if ! command -v python3 >/dev/null 2>&1; then
		echo "SKIP: python3 is not installed"
		exit 77
	fi
	while IFS='|' read -r c msg; do
		start_dst "$TMP/mig.sock"
		python3 -c "$GARBAGE_PY" "$TMP/mig.sock" "$c"
		wait_exit "$DST_PID" 20
		check test $? -eq 1
		DST_PID=
		CHECKS=$((CHECKS + 1))
		grep -qF -- "incoming migration failed: $msg" "$TMP/dst.err" ||
			bad "case $c: expected the destination to say: $msg"
		check test ! -s "$TMP/dst.con"
	done <<'EOF'
type|protocol error: unexpected frame type 2
reserved|protocol error: hello frame: reserved field is 0x5, not 0
huge|protocol error: hello frame of 1099511627776 bytes (at most 152)
short|protocol error: hello frame of 10 bytes, expected 152
magic|hello: not a vmce-vm migration of version 1
cpus|hello: nr_vcpus 0 out of range (1 to 64)
mem|hello: mem_size 0x5 out of range
profile|hello: profile: unknown vendor 'arm'
outside|memory: range 0x400000+0x1000 is not page-aligned inside guest memory
unaligned|protocol error: mem frame of 4105 bytes
twice|memory: page 0x0 received twice
counts|memory: 0 pages received, the source says 5 sent and 0 skipped of 1024
vcpu|protocol error: vcpu frame of 16 bytes
vcpubig|protocol error: vcpu frame of 1073741824 bytes (at most
commit|protocol error: unexpected frame type 7
eof|the peer closed the connection
EOF
}

case $SCENARIO in
errors | abort | srar | srar_before | dest_dies | garbage) "scenario_$SCENARIO" ;;
hybrid) scenario_errors --hybrid ;;
*)
	echo "unknown scenario '$SCENARIO'" >&2
	exit 2
	;;
esac
finish
