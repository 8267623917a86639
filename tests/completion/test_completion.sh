#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The bash completion of vmcectl: loaded the way bash-completion loads it, it completes the
# commands vmcectl --help lists, every option of every command's --help, and the values of the
# options that take a known set.
#
#   test_completion.sh PATH/TO/completion/vmcectl PATH/TO/vmcectl
set -u
COMPLETION=${1:?usage: $0 COMPLETION_FILE VMCECTL}
VMCECTL=${2:?usage: $0 COMPLETION_FILE VMCECTL}
FAILS=0
CHECKS=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/vmce-completion.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

bad() {
	FAILS=$((FAILS + 1))
	echo "FAIL: $*" >&2
}

bash -n "$COMPLETION" || { echo "FAIL: $COMPLETION has a syntax error" >&2; exit 1; }

# bash-completion's on-demand loader finds the file by the command's name in
# <dir>/completions/ (that is where the package installs it).
if [ -f /usr/share/bash-completion/bash_completion ]; then
	mkdir -p "$TMP/user/completions"
	cp "$COMPLETION" "$TMP/user/completions/vmcectl"
	CHECKS=$((CHECKS + 1))
	got=$(BASH_COMPLETION_USER_DIR=$TMP/user bash --norc -c '
		. /usr/share/bash-completion/bash_completion
		_completion_loader vmcectl
		complete -p vmcectl' 2>&1)
	[ "$got" = "complete -F _vmcectl vmcectl" ] ||
		bad "bash-completion's loader did not load the completion: '$got'"
else
	echo "note: bash-completion is not installed: its loader is not exercised" >&2
fi

. "$COMPLETION"

# comp WORDS...: complete the last word of "vmcectl WORDS..."; REPLY is the sorted answer.
comp() {
	COMP_WORDS=("$VMCECTL" "$@")
	COMP_CWORD=$#
	COMPREPLY=()
	_vmcectl
	REPLY=$(printf '%s\n' "${COMPREPLY[@]}" | grep -v '^$' | sort | tr '\n' ' ')
	REPLY=${REPLY% }
}

# expect WANT WORDS...: the completion of WORDS is exactly WANT (space-separated, sorted).
expect() {
	local want
	want=$(printf '%s\n' $1 | sort | tr '\n' ' ')
	want=${want% }
	shift
	CHECKS=$((CHECKS + 1))
	comp "$@"
	[ "$REPLY" = "$want" ] || bad "vmcectl $* <TAB>: got '$REPLY', want '$want'"
}

# expect_has WORD WORDS...: the completion of WORDS offers WORD.
expect_has() {
	local w=$1
	shift
	CHECKS=$((CHECKS + 1))
	comp "$@"
	case " $REPLY " in
	*" $w "*) ;;
	*) bad "vmcectl $* <TAB> does not offer $w (got '$REPLY')" ;;
	esac
}

commands=$("$VMCECTL" --help | sed -n 's/^  \([a-z][a-z-]*\)  .*/\1/p' | tr '\n' ' ')
[ -n "$commands" ] || { echo "FAIL: vmcectl --help lists no command" >&2; exit 1; }
for c in synth decode profile inject status events migrate quit; do
	case " $commands " in
	*" $c "*) ;;
	*) bad "vmcectl --help does not list $c" ;;
	esac
done
expect "$commands" ""
expect "inject" inj
expect "decode" dec
expect "--help --version" --
for c in $commands; do
	# Every long option the command's help mentions, and nothing else.
	opts=$("$VMCECTL" "$c" --help | grep -oE -- '(^|[][ |(,])--[a-z][a-z-]*' |
		sed 's/^[][ |(,]//' | sort -u | tr '\n' ' ')
	[ -n "$opts" ] || bad "vmcectl $c --help mentions no option"
	expect "$opts" "$c" --
done
expect_has --srao inject --
expect_has --srar inject --gpa 0x1000 --
expect_has --socket events --
expect "--follow" events --fo
expect "--vendor" decode --ven
expect "intel amd" decode --vendor ""
expect "amd" decode --vendor a
expect "parse print validate level" profile ""
expect "level" profile le
expect "--want" profile level --w
expect "--qemu" profile level --q
expect "" inject --gpa ""
touch "$TMP/records.txt" "$TMP/pool-a.json" "$TMP/notes.txt"
expect "$TMP/records.txt" inject --file "$TMP/rec"
expect "$TMP/pool-a.json" profile level "$TMP/"
expect_has intel,banks=2,ser,tes,cmci synth --profile ""

if [ "$FAILS" -ne 0 ]; then
	echo "completion: $FAILS of $CHECKS checks failed" >&2
	exit 1
fi
echo "completion: $CHECKS checks passed (commands: $commands)"
