#!/bin/bash
# Run every benchmark and write bench/results.json.  Usage: bash bench/run.sh [BUILD_DIR]
# (default: build).  Configures and builds the benchmarks in BUILD_DIR when needed.  The
# KVM benchmarks are skipped (and said so) when /dev/kvm is not usable; instruction counts come
# from valgrind --tool=callgrind when it is installed.  Takes about a minute here.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-build}
case $build in
/*) ;;
*) build=$PWD/$build ;;
esac
out=$root/bench/results.json
progs=(bench_access bench_event bench_bootpoll bench_latency bench_lib)

command -v jq >/dev/null || { echo "bench: jq is needed (apt-get install jq)" >&2; exit 1; }
[ -f "$build/CMakeCache.txt" ] ||
	cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j 2 --target "${progs[@]}" >/dev/null

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/results"
skipped=()
start=$(date +%s)

for p in "${progs[@]}"; do
	echo "== $p"
	rc=0
	"$build/bench/$p" >"$tmp/$p.out" || rc=$?
	if [ $rc -eq 77 ]; then
		skipped+=("$p")
		cat "$tmp/$p.out"
		continue
	fi
	if [ $rc -ne 0 ]; then
		cat "$tmp/$p.out"
		echo "bench: $p failed (exit $rc)" >&2
		exit 1
	fi
	grep -v '^{' "$tmp/$p.out" || true
	grep '^{' "$tmp/$p.out" >>"$tmp/results"
done

# Instructions per call (callgrind, inclusive): one run per function, collecting only inside it.
if command -v valgrind >/dev/null; then
	echo "== bench_lib under callgrind (instructions per call, inclusive)"
	"$build/bench/bench_lib" --callgrind >"$tmp/calls"
	echo "| function | VM vCPUs | calls | instructions per call | per call and vCPU |"
	echo "|---|---|---|---|---|"
	while IFS= read -r line; do
		fn=$(jq -r .function <<<"$line")
		calls=$(jq -r .calls <<<"$line")
		vcpus=$(jq -r .vcpus <<<"$line")
		valgrind --tool=callgrind --toggle-collect="$fn" \
			--callgrind-out-file="$tmp/cg.$fn" "$build/bench/bench_lib" --callgrind \
			>/dev/null 2>"$tmp/cg.$fn.log"
		ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$tmp/cg.$fn")
		[ -n "$ir" ] || { echo "bench: no callgrind total for $fn" >&2; exit 1; }
		jq -cn --arg fn "$fn" --argjson calls "$calls" --argjson ir "$ir" \
			--argjson vcpus "$vcpus" \
			'{bench: "lib-instr", function: $fn, calls: $calls, vm_vcpus: $vcpus,
			  instructions_inclusive: $ir,
			  instr_per_call: (($ir / $calls * 10 | round) / 10),
			  instr_per_call_per_vcpu: (($ir / $calls / $vcpus * 10 | round) / 10)}' \
			>>"$tmp/results"
		jq -r '"| \(.function) | \(.vm_vcpus) | \(.calls) | \(.instr_per_call) | \(.instr_per_call_per_vcpu) |"' \
			<<<"$(tail -n 1 "$tmp/results")"
	done <"$tmp/calls"
else
	skipped+=("callgrind")
fi

jq -s --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	--arg commit "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
	--arg kernel "$(uname -r)" \
	--arg cpu "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)" \
	--argjson cpus "$(nproc)" \
	--argjson seconds "$(($(date +%s) - start))" \
	--arg skipped "${skipped[*]:-}" \
	'{date: $date, commit: $commit, kernel: $kernel, cpu: $cpu, cpus: $cpus,
	  seconds: $seconds, skipped: ($skipped | split(" ") | map(select(. != ""))),
	  results: .}' "$tmp/results" >"$out"
echo "bench: $(jq '.results | length' "$out") results in $(($(date +%s) - start)) s -> $out"
if [ ${#skipped[@]} -gt 0 ]; then
	echo "bench: skipped: ${skipped[*]}"
fi
