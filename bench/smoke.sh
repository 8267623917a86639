#!/bin/bash
# Smoke run of one benchmark (CTest, label "bench"): run it with --smoke and check that every
# result is well-formed JSON with the expected keys and non-zero counts.  No timing assertions.
# Usage: smoke.sh PROGRAM NAME.  Exit 77 (skip) when the program finds no /dev/kvm.
set -u
prog=$1
name=$2
out=$(mktemp)
trap 'rm -f "$out"' EXIT

"$prog" --smoke >"$out"
rc=$?
if [ $rc -eq 77 ]; then
	cat "$out"
	exit 77
fi
if [ $rc -ne 0 ]; then
	echo "$name --smoke exited $rc"
	cat "$out"
	exit 1
fi
command -v jq >/dev/null || { echo "jq is needed to check the results"; exit 1; }

# What every result of each program must carry; `count` is how many results it prints.
case $name in
bench_access)
	count=6
	filter='.bench == "access" and (.op | test("^(rd|wr)msr$")) and (.impl | type == "string")
		and (.us_per_access | type == "number") and (.ratio_to_kvm_in_kernel | type == "number")
		and .iterations > 0 and .reps > 0 and .empty_iteration_us > 0
		and (if .impl == "vmce-user-space" then .msr_exits_per_access > 0
		     else .msr_exits_per_access == 0 end)'
	;;
bench_event)
	count=8
	filter='.bench == "event" and .vcpus > 0 and (.config | type == "string") and .banks > 0
		and .host_us > 0 and .exits > 0 and .guest_msr_reads > 0 and .guest_msr_writes > 0
		and .guest_msr_accesses == .guest_msr_reads + .guest_msr_writes
		and .mc_handlers == .vcpus and .vmce_over_this > 0 and (.msr_exits | type == "number")
		and (if .impl == "vmce-user-space" then .msr_exits == .guest_msr_accesses
		     else true end)'
	;;
bench_bootpoll)
	count=8
	filter='(.bench == "boot" or .bench == "poll") and (.config | type == "string")
		and .banks > 0 and .host_us > 0 and .exits > 0 and .guest_msr_reads > 0
		and (.guest_msr_writes | type == "number") and .vmce_over_this > 0
		and (if .impl == "vmce-user-space" then
			.msr_exits == .guest_msr_reads + .guest_msr_writes else true end)'
	;;
bench_latency)
	count=3
	filter='.bench == "latency" and (.impl | type == "string") and .sigbus_to_handler_us > 0
		and .kvm_run_roundtrip_us > 0 and .roundtrip_exits > 0
		and .latency_over_roundtrip > 0 and .samples > 0'
	;;
bench_lib)
	count=22
	filter='.bench == "lib" and (.op | type == "string") and (.param | type == "string")
		and (if .op == "stream_bytes" then .bytes > 0 and .bytes_per_vcpu > 0
		     else .ns_per_call > 0 and .calls > 0 end)'
	;;
*)
	echo "smoke.sh: unknown benchmark $name"
	exit 1
	;;
esac

n=0
fail=0
while IFS= read -r line; do
	case $line in
	'{'*) ;;
	*) continue ;;
	esac
	n=$((n + 1))
	if ! jq -e "$filter" <<<"$line" >/dev/null 2>&1; then
		echo "malformed or incomplete result: $line"
		fail=1
	fi
done <"$out"
if [ "$n" -ne "$count" ]; then
	echo "$name printed $n results, expected $count"
	fail=1
fi
cat "$out"
[ $fail -eq 0 ] && echo "$name: $n results well-formed"
exit $fail
