#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The vmce demo: boot a 2-vCPU guest in vmce-vm and show what happens to each kind of memory
# error: SRAO (page offlined), SRAR in the guest's workload (workload killed and restarted), a
# corrected error (not forwarded), an error outside guest memory (refused), a burst of SRAOs
# that arrive while the guest still handles the previous one (held, then delivered in order:
# every page offlined once), and an SRAR that the guest raises inside its own #MC handler
# (guest shut down, reason logged).  Prints the guest console as it runs, then the event log
# as a table.
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

say "5. A burst of 50 SRAOs on distinct pages, back to back"
echo "    (each arrives while the guest still handles the previous one, MCG_STATUS.MCIP set:"
echo "     vmce holds it and raises it once the guest cleared MCIP; nothing is lost)"
BURST=50
recovered=$(count_console 'action=offline-page result=recovered')
reqs=()
for i in $(seq 0 $((BURST - 1))); do
	reqs+=("{\"cmd\":\"inject\",\"class\":\"srao\",\"gpa\":\"$(printf '0x%x' $((0x3000000 + i * 0x1000)))\"}")
done
T0=$(date +%s.%N)
"$SEND" "$CTL" "${reqs[@]}" >"$TMP/burst.out" || die "the burst was refused: $(grep -m1 '"ok":false' "$TMP/burst.out")"
end=$(($(date +%s) + 60))
while [ "$(count_console 'action=offline-page result=recovered')" -lt $((recovered + BURST)) ]; do
	kill -0 "$VMPID" 2>/dev/null || die "vmce-vm ended during the burst"
	[ "$(date +%s)" -lt "$end" ] || die "not every page of the burst was offlined within 60 s"
	sleep 0.05
done
T1=$(date +%s.%N)
pages=$(grep -oE 'addr=0x3[0-9a-f]{6} .*action=offline-page result=recovered' "$CONSOLE" | cut -d' ' -f1 | sort -u | wc -l)
held=$(grep -c '"kind":"held"' "$EVENTS" || true)
printf '    -> %d SRAOs, %d held first, %d distinct pages offlined (each once) in %.2f s; guest alive\n' \
	"$BURST" "$held" "$pages" "$(awk -v a="$T0" -v b="$T1" 'BEGIN { print b - a }')"
[ "$pages" -eq "$BURST" ] || die "expected $BURST pages offlined, got $pages"
alive=$(count_console '^guest: alive')
wait_next '^guest: alive' "$alive" 30 >/dev/null

say "6. The genuinely fatal case: an SRAR on vCPU 0 while it is still in its #MC handler"
echo "    (an SRAO on vCPU 0, then vCPU 0 consumes poison inside its handler: control field"
echo "     in_handler; architecturally a shutdown, and the event log says why)"
rec='STATUS UNCORRECTED SRAO 0x17a\nMCGSTATUS RIPV MCIP\nMISC 0x8c\n'
srar='STATUS UNCORRECTED SRAR 0x134\nMCGSTATUS RIPV EIPV MCIP\nMISC 0x8c\n'
inject "{\"cmd\":\"inject\",\"in_handler\":true,\"text\":\"CPU 0 BANK 1\n${rec}ADDR 0x2800000\nCPU 0 BANK 1\n${srar}ADDR 0x2801000\n\"}"
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
	# The burst of step 5: its first three pages only, then a count.
	$5 ~ /^0x30[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]$/ && $5 >= "0x3003000" { skipped++; next }
	{ printf "%-4s %-9s %-5s %-4s %-10s %-4s %-18s %s\n", $1, $2, $3, $4, $5, $6, $7, $8 }
	END { if (skipped) printf "     (%d more events of the burst of step 5 not shown)\n", skipped }'

say "Demo finished in $(($(date +%s) - START)) s"
[ "$status" -eq 4 ] || die "expected the last scenario to end the guest with status 4"
