#!/bin/bash
# vmcectl's command line: help, version, and malformed arguments, each rejected with exit
# status 2 (1 for a bad input file) and a message naming the problem.
. "$(dirname "$0")/lib.sh"
unset VMCE_SOCKET

# Help: stdout, exit 0.
expect_ok --help
out_line '^Usage: vmcectl '
for c in synth decode inject status events migrate quit; do
	out_line "^  $c "
done
expect_ok --version
out_line '^vmcectl \(vmce\) [0-9]+\.[0-9]+$'
for c in synth decode profile inject status events migrate quit; do
	expect_ok "$c" --help
	out_line "^Usage: vmcectl $c"
	expect_ok "$c" -h
	out_line "^Usage: vmcectl $c"
done
# Help texts fit in 80 columns.
for c in "" synth decode profile inject status events migrate quit; do
	run $c --help
	CHECKS=$((CHECKS + 1))
	awk 'length > 79 { exit 1 }' "$OUT" || bad "a line of 'vmcectl $c --help' is longer than 79"
done
# No command: the usage on stderr, exit 2.
run
check test "$RC" -eq 2
grep -q '^Usage: vmcectl' "$ERR" || bad "expected the usage on stderr"

# ---- Malformed arguments ----------------------------------------------------------------------
expect_usage "unknown command 'frob'" frob
expect_usage "unknown option '--frob' (a command comes first)" --frob
# synth
expect_usage "no error given: use one of --srao" synth --gpa 0x1000
expect_usage "--srao and --srar both describe the error" synth --srao --srar --gpa 0x1000
expect_usage "--ce and --status both describe the error" synth --ce --status 0x1 --gpa 1
expect_usage "--srar needs --gpa ADDR" synth --srar
expect_usage "--gpa: '0xzz' is not a hexadecimal number" synth --srao --gpa 0xzz
expect_usage "--gpa: 'twelve' is not a number" synth --srao --gpa twelve
expect_usage "--gpa: '12Q' has an unknown suffix" synth --srao --gpa 12Q
expect_usage "--gpa: '-5' is negative" synth --srao --gpa -5
expect_usage "--gpa: '99999999999999999999' does not fit in 64 bits" synth --srao \
	--gpa 99999999999999999999
expect_usage "--gpa: '0x' has no digits after 0x" synth --srao --gpa 0x
expect_usage "--gpa is given twice" synth --srao --gpa 1 --gpa 2
expect_usage "option '--gpa' needs a value" synth --srao --gpa
expect_usage "--status: 'xyz' is not a hexadecimal value" synth --status xyz --gpa 1
expect_usage "--status: '0x10000000000000000' does not fit in 64 bits" synth \
	--status 0x10000000000000000 --gpa 1
expect_usage "--misc only describes a raw record: it needs --status" synth --srao --gpa 1 \
	--misc 0x8c
expect_usage "--mcg-status only describes a raw record" synth --srao --gpa 1 --mcg-status 5
expect_usage "--vcpus: a VM needs at least one vCPU" synth --srao --gpa 1 --vcpus 0
expect_usage "--vcpus: '2000' is out of range (0 to 1024)" synth --srao --gpa 1 --vcpus 2000
expect_usage "--vcpus: '2x' is not a decimal number" synth --srao --gpa 1 --vcpus 2x
expect_usage "--cpu 2: the VM has 2 vCPUs (0 to 1)" synth --srao --gpa 1 --cpu 2
expect_usage "--cpu 1: the VM has 1 vCPU (0 to 0)" synth --srao --gpa 1 --cpu 1 --vcpus 1
expect_usage "--map '4096': expected GPA:SIZE" synth --srao --gpa 1 --map 4096
expect_usage "--map '0:0': the size is zero" synth --srao --gpa 1 --map 0:0
expect_usage "--map '0:1Z': size '1Z' has an unknown suffix" synth --srao --gpa 1 --map 0:1Z
expect_usage "--map 'x:1G': address 'x' is not a number" synth --srao --gpa 1 --map x:1G
expect_usage "overlaps" synth --srao --gpa 1 --map 0:1G --map 512M:1G
expect_usage "--profile 'arm': unknown vendor 'arm'" synth --srao --gpa 1 --profile arm
expect_usage "--lmce needs a profile with lmce" synth --srao --gpa 1 --lmce
expect_usage "--cmci needs a profile with cmci" synth --ucna --gpa 1 --cmci \
	--profile intel,banks=2,ser
expect_usage "unknown option '--bogus'" synth --srao --gpa 1 --bogus
expect_usage "unknown option '-q'" synth --srao --gpa 1 -q
expect_usage "unexpected argument 'extra'" synth --srao --gpa 1 extra
# decode
expect_usage "no STATUS given" decode
expect_usage "STATUS: 'banana' is not a hexadecimal value" decode banana
expect_usage "STATUS: '0x1ffffffffffffffff' does not fit in 64 bits" decode 0x1ffffffffffffffff
expect_usage "unexpected argument '0x2' (one STATUS only)" decode 0x1 0x2
expect_usage "--vendor 'arm': expected intel or amd" decode --vendor arm 0x1
expect_usage "--mcg-status: 'g' is not a hexadecimal value" decode --mcg-status g 0x1
expect_usage "--no-ser applies to --vendor intel only" decode --vendor amd --no-ser 0x1
expect_usage "--succor applies to --vendor amd only" decode --succor 0x1
# inject, status, events, quit (no VM needed to reject these)
expect_usage "no control socket: give --socket PATH or set VMCE_SOCKET" status
expect_usage "no control socket" quit
expect_usage "no error given: use --file PATH" inject --socket /nonexistent
expect_usage "--srao needs --gpa ADDR" inject --srao --socket /nonexistent
expect_usage "--srao and --file both describe the error" inject --srao --file x
expect_usage "--gpa cannot be combined with --file" inject --file x --gpa 1
expect_usage "--misc only describes a raw record" inject --ce --gpa 1 --misc 1
expect_usage "unexpected argument 'y' (--srao already describes the error)" inject --srao \
	--gpa 1 y
expect_usage "--timeout: 'soon' is not a decimal number" status --timeout soon
expect_usage "--max: 0 events asked for" events --max 0
expect_usage "--max cannot be combined with --follow" events --follow --max 3
expect_usage "--after: '-1' is negative" events --after -1
expect_usage "unexpected argument 'now'" quit now
expect_usage "--to ADDR is required" migrate --socket /nonexistent
expect_usage "--to: the address must be 1 to 200 bytes" migrate --to "" --socket /nonexistent
expect_usage "no control socket" migrate --to /tmp/x.sock
expect_usage "unexpected argument 'x'" migrate --to /tmp/x.sock x
expect_usage "unknown option '--frob'" migrate --frob
expect_fail "cannot connect to $TMP/none.sock" migrate --to /tmp/x.sock --socket "$TMP/none.sock"

# inject checks its mce-inject text before it connects: a bad file is a failure (1) that
# names the line, and nothing is sent.
printf 'CPU 0 BANK 1\nSTATUS 0xbd0000000000017a\nADDR 0x2000\nBOGUS 1\n' >"$TMP/bad.txt"
expect_fail "line 4" inject --file "$TMP/bad.txt" --socket "$TMP/none.sock"
grep -q "BOGUS" "$ERR" || bad "expected the message to name the bad token"
: >"$TMP/empty.txt"
expect_fail "has no mce-inject record" inject --file "$TMP/empty.txt" --socket "$TMP/none.sock"
head -c 5000 /dev/zero | tr '\0' '#' >"$TMP/big.txt"
expect_fail "is longer than 4096 bytes" inject --file "$TMP/big.txt" --socket "$TMP/none.sock"
expect_fail "cannot open $TMP/missing.txt" inject --file "$TMP/missing.txt" --socket x
printf 'CPU 0 BANK 1\nSTATUS 0xbd0000000000017a\nADDR 0x2000\n' >"$TMP/good.txt"
expect_fail "has no mce-inject record" inject - --socket "$TMP/none.sock" <"$TMP/empty.txt"
# A good file and no VM: the connection fails, with the socket named.
expect_fail "cannot connect to $TMP/none.sock" inject --file "$TMP/good.txt" \
	--socket "$TMP/none.sock"
VMCE_SOCKET=$TMP/env.sock expect_fail "cannot connect to $TMP/env.sock" status
expect_fail "is longer than 107 bytes" status --socket "/tmp/$(head -c 200 /dev/zero | tr '\0' a)"

finish
