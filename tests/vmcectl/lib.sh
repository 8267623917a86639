# Shared helpers of the vmcectl CLI tests (sourced).  Usage of a test: test_X.sh PATH/TO/vmcectl
# Every check runs vmcectl, then asserts on its exit status, stdout and stderr.
set -u
VMCECTL=${1:?usage: $0 PATH/TO/vmcectl}
if ! command -v jq >/dev/null 2>&1; then
	echo "SKIP: jq is not installed (apt-get install jq)"
	exit 77
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/vmcectl-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
OUT=$TMP/out
ERR=$TMP/err
FAILS=0
CHECKS=0
ARGS=()
RC=0

bad() {
	FAILS=$((FAILS + 1))
	{
		echo "FAIL: $*"
		echo "  command: vmcectl ${ARGS[*]}"
		echo "  exit status: $RC"
		sed 's/^/  stdout: /' "$OUT" | head -20
		sed 's/^/  stderr: /' "$ERR" | head -5
	} >&2
}

# run ARGS...: run vmcectl, keep its status in RC and its output in $OUT/$ERR.
run() {
	ARGS=("$@")
	CHECKS=$((CHECKS + 1))
	"$VMCECTL" "$@" >"$OUT" 2>"$ERR"
	RC=$?
}

# expect_ok ARGS...: exit 0, nothing on stderr.
expect_ok() {
	run "$@"
	[ "$RC" -eq 0 ] || bad "expected exit status 0"
	[ -s "$ERR" ] && bad "expected an empty stderr"
	return 0
}

# expect_usage MESSAGE ARGS...: exit 2, MESSAGE on stderr, nothing on stdout.
expect_usage() {
	local msg=$1
	shift
	run "$@"
	[ "$RC" -eq 2 ] || bad "expected exit status 2 (usage error)"
	grep -qF -- "$msg" "$ERR" || bad "expected stderr to say: $msg"
	grep -q '^vmcectl' "$ERR" || bad "expected stderr to start with the program's name"
	[ -s "$OUT" ] && bad "expected an empty stdout"
	return 0
}

# expect_fail MESSAGE ARGS...: exit 1, MESSAGE on stderr.
expect_fail() {
	local msg=$1
	shift
	run "$@"
	[ "$RC" -eq 1 ] || bad "expected exit status 1 (failure)"
	grep -qF -- "$msg" "$ERR" || bad "expected stderr to say: $msg"
	return 0
}

# out_has TEXT: stdout contains TEXT (a fixed string).
out_has() {
	CHECKS=$((CHECKS + 1))
	grep -qF -- "$1" "$OUT" || bad "expected stdout to contain: $1"
	return 0
}

# out_line REGEX: some stdout line matches the extended regular expression.
out_line() {
	CHECKS=$((CHECKS + 1))
	grep -qE -- "$1" "$OUT" || bad "expected a stdout line matching: $1"
	return 0
}

# jq_true FILTER: the JSON on stdout makes FILTER true.
jq_true() {
	CHECKS=$((CHECKS + 1))
	jq -e "$1" "$OUT" >/dev/null 2>&1 || bad "expected jq '$1' to be true"
	return 0
}

# jq_get FILTER: print FILTER's raw value.
jq_get() {
	jq -r "$1" "$OUT"
}

# bits_set VALUE MASK: every bit of MASK is set in VALUE (64-bit hex strings).
bits_set() {
	(((($1) & ($2)) == ($2)))
}

# bits_clear VALUE MASK: no bit of MASK is set in VALUE.
bits_clear() {
	(((($1) & ($2)) == 0))
}

check() {
	CHECKS=$((CHECKS + 1))
	"$@" || bad "check failed: $*"
	return 0
}

finish() {
	echo "$CHECKS checks, $FAILS failed"
	[ "$FAILS" -eq 0 ]
	exit
}

# MCi_STATUS and MCG_STATUS bits.
VAL=0x8000000000000000
OVER=0x4000000000000000
UC=0x2000000000000000
EN=0x1000000000000000
MISCV=0x0800000000000000
ADDRV=0x0400000000000000
PCC=0x0200000000000000
S=0x0100000000000000
AR=0x0080000000000000
DEFERRED=0x0000100000000000
RIPV=0x1
EIPV=0x2
MCIP=0x4
LMCES=0x8
