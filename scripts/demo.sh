#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The vmce demo: boot a 2-vCPU guest in vmce-vm and show what happens to each kind of memory
# error: SRAO (page offlined), SRAR in the guest's workload (workload killed and restarted), a
# corrected error (not forwarded), an error outside guest memory (refused), and a second #MC
# while the first is being handled (guest shut down, reason logged).  Prints the guest console
# as it runs, then the event log as a table.
#
# Environment: BUILD (build directory, default build), JOBS (default 2).
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
JOBS=${JOBS:-2}
START=$(date +%s)

if [ -t 1 ]; then
	say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
else
	say() { printf '\n==> %s\n' "$*"; }
fi
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

command -v jq >/dev/null || die "jq is needed (apt-get install jq)"
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	die "/dev/kvm is not usable here: the demo needs KVM"
fi

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
	say "Configuring $BUILD"
	cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
say "Building vmce-vm"
cmake --build "$BUILD" -j "$JOBS" --target vmce-vm vmce-vm-send >/dev/null
VM="$BUILD/vmm/vmce-vm"
SEND="$BUILD/vmm/vmce-vm-send"

TMP=$(mktemp -d /tmp/vmce-demo.XXXXXX)
CTL="$TMP/ctl"
CONSOLE="$TMP/console"
EVENTS="$TMP/events.jsonl"
VMPID=
cleanup() {
	if [ -n "$VMPID" ] && kill -0 "$VMPID" 2>/dev/null; then
		kill "$VMPID" 2>/dev/null || true
		wait "$VMPID" 2>/dev/null || true
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT

# Wait until the console has a line matching the regular expression; print it.
wait_console() {
	local re=$1 timeout=${2:-30} end line
	end=$(($(date +%s) + timeout))
	while :; do
		line=$(grep -E -m1 -- "$re" "$CONSOLE" 2>/dev/null || true)
		if [ -n "$line" ]; then
			printf '%s\n' "$line"
			return 0
		fi
		if ! kill -0 "$VMPID" 2>/dev/null; then
			die "vmce-vm ended before the console showed /$re/"
		fi
		[ "$(date +%s)" -lt "$end" ] || die "no console line /$re/ within ${timeout}s"
		sleep 0.1
	done
}

# Count console lines matching a regular expression.
count_console() { grep -c -E -- "$1" "$CONSOLE" 2>/dev/null || true; }

# Wait for the (n+1)-th line matching re, where n is the count before the step.
wait_next() {
	local re=$1 before=$2 timeout=${3:-30} end
	end=$(($(date +%s) + timeout))
	while [ "$(count_console "$re")" -le "$before" ]; do
		kill -0 "$VMPID" 2>/dev/null || die "vmce-vm ended while waiting for /$re/"
		[ "$(date +%s)" -lt "$end" ] || die "no new console line /$re/ within ${timeout}s"
		sleep 0.1
	done
	grep -E -- "$re" "$CONSOLE" | tail -n 1
}

# Send one request; print a one-line summary of the verdict(s); keep the response in $RESP.
inject() {
	local req=$1
	printf '    request:  %s\n' "$req"
	RESP=$("$SEND" "$CTL" "$req") || true
	if [ "$(jq -r .ok <<<"$RESP")" != true ]; then
		printf '    error:    %s\n' "$(jq -r .error <<<"$RESP")"
		return
	fi
	jq -r '.results[] | "    vmce:     \(.verdict) (\(.class)\(if .gpa then " at " + .gpa else "" end)): \(.reason)"' <<<"$RESP"
}

say "Booting a 2-vCPU guest: vmce-vm --cpus 2 (profile intel,banks=2,ser,tes,cmci)"
"$VM" --cpus 2 --control "$CTL" --events-log "$EVENTS" --console-file "$CONSOLE" \
	--console-prefix "    guest | " --timeout 120 2>"$TMP/stderr" &
VMPID=$!
wait_console '^mce: init cpu=0 ' 60 >/dev/null
wait_console '^mce: init cpu=1 ' 60 >/dev/null
WORK=$(wait_console '^workload: start cpu=[0-9]+ page=0x' 60)

say "1. SRAO (action optional) on a free page: the guest offlines the page and continues"
alive=$(count_console '^guest: alive')
inject '{"cmd":"inject","class":"srao","gpa":"0x2000000"}'
wait_console 'action=offline-page result=recovered' 30 >/dev/null
wait_next '^guest: alive' "$alive" 30 >/dev/null
echo "    -> page 0x2000000 offlined; guest alive"

say "2. SRAR (action required) on the workload's page: workload killed and restarted"
cpu=$(sed -E 's/.*cpu=([0-9]+).*/\1/' <<<"$WORK")
page=$(sed -E 's/.*page=(0x[0-9a-fA-F]+).*/\1/' <<<"$WORK")
echo "    console said: $WORK"
restarted=$(count_console '^workload: restarted')
alive=$(count_console '^guest: alive')
inject "{\"cmd\":\"inject\",\"class\":\"srar\",\"gpa\":\"$page\",\"cpu\":$cpu}"
wait_next '^workload: restarted' "$restarted" 30 >/dev/null
wait_next '^guest: alive' "$alive" 30 >/dev/null
echo "    -> workload killed and restarted; guest alive"

say "3. A corrected error (CE): counted and logged, not forwarded"
inject '{"cmd":"inject","class":"ce","gpa":"0x2400000"}'

say "4. An error outside guest memory (4 GiB; the guest has 64 MiB): refused"
inject '{"cmd":"inject","class":"srao","gpa":"0x100000000"}'
alive=$(count_console '^guest: alive')
wait_next '^guest: alive' "$alive" 30 >/dev/null
echo "    -> nothing reached the guest; guest alive"

say "5. A second #MC while the first is being handled: two SRAO records queued at once"
echo "    (the second is applied when the guest's #MC handler exits on its first MSR read,"
echo "     with MCG_STATUS.MCIP still set: architecturally a shutdown)"
rec='STATUS UNCORRECTED SRAO 0x17a\nMCGSTATUS RIPV MCIP\nMISC 0x8c\n'
inject "{\"cmd\":\"inject\",\"text\":\"CPU 0 BANK 1\n${rec}ADDR 0x2800000\nCPU 0 BANK 1\n${rec}ADDR 0x2801000\n\"}"
set +e
wait "$VMPID"
status=$?
set -e
VMPID=
echo "    -> vmce-vm exited with status $status (4 = shut down by vmce)"
grep -E 'guest stopped|fatal' "$TMP/stderr" | sed 's/^/    stderr: /'

say "Event log ($EVENTS)"
jq -r '
	def short: if . == null then "-" else tostring end;
	if .kind == "vm-exit" then
		["-", "vm-exit", "-", "-", "-", "-", "-", "status \(.status): \(.reason)"]
	else
		[(.seq|short), .kind, .class, (.vcpu|short), (.gpa|short), .signal,
		 (.status // "-"), .reason]
	end | @tsv' "$EVENTS" |
	awk -F'\t' 'BEGIN {
		printf "%-4s %-9s %-5s %-4s %-10s %-4s %-18s %s\n", "seq", "kind", "class", "vcpu",
			"gpa", "sig", "status", "reason"
		printf "%-4s %-9s %-5s %-4s %-10s %-4s %-18s %s\n", "---", "----", "-----", "----",
			"---", "---", "------", "------"
	}
	{ printf "%-4s %-9s %-5s %-4s %-10s %-4s %-18s %s\n", $1, $2, $3, $4, $5, $6, $7, $8 }'

say "Demo finished in $(($(date +%s) - START)) s"
[ "$status" -eq 4 ] || die "expected the last scenario to end the guest with status 4"
