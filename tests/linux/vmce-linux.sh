#!/bin/sh
# SPDX-License-Identifier: MIT
#
# vmce-linux.sh - boot an unmodified Debian Linux 6.1 kernel under QEMU's software emulation
# (TCG) and inject, through QEMU's monitor command `mce`, exactly the records that
# `vmcectl synth --json` plans; then check what the guest does with them.
#
#   vmce-linux.sh prepare WORKDIR PROBE INIT
#       Install qemu-system-x86, busybox-static and cpio when missing (apt-get, as root), fetch
#       Debian's linux-image-6.1.*-amd64-unsigned into the cache (apt-get download; reused
#       between runs) and build WORKDIR/initrd.gz (busybox, INIT as /init, PROBE as
#       /bin/vmce-probe).  Writes WORKDIR/guest.env.
#   vmce-linux.sh prepare-ras WORKDIR PROBE INIT
#       The same initramfs plus Debian's rasdaemon and sqlite3 with their libraries
#       (WORKDIR/initrd-ras.gz, for the scenario rasdaemon): the packages are fetched with
#       apt-get download into the cache and unpacked there (reused between runs).
#   vmce-linux.sh run SCENARIO WORKDIR VMCECTL
#       Boot the guest prepared in WORKDIR and run one scenario (see `list`).
#   vmce-linux.sh list
#
# Cache: $VMCE_LINUX_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/vmce/linux; the rasdaemon
# userland in $VMCE_RAS_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/vmce/rasdaemon.
# Exit status: 0 pass, 1 fail (with the tail of the guest console), 77 skipped (something this
# machine cannot provide: say which).
set -u

SCENARIOS="srao_free srao_victim srar_victim srao_smp_broadcast srao_smp_no_broadcast
drop_ce_outside amd_bank0 amd_bank1 rasdaemon"

# The guest userland of the scenario rasdaemon: Debian packages, unpacked into the initramfs.
RAS_PACKAGES="rasdaemon sqlite3 libsqlite3-0 libreadline8 libtinfo6 zlib1g libc6"

# Guest memory: QEMU's pc machine maps all of a guest smaller than 3 GiB at GPA 0.
GUEST_MEM_MB=256
GUEST_MAP="0x0:0x$(printf '%x' $((GUEST_MEM_MB * 1024 * 1024)))"
# Intel flavour: vendor GenuineIntel, family 6, model 85 (>= 0x1A: Linux's SER-capable Intel
# path; >= 14: QEMU allows broadcast).  AMD flavour: family 6, whose bank 0 Linux disables.
CPU_INTEL="qemu64,vendor=GenuineIntel,family=6,model=85,stepping=4,+mce,+mca"
CPU_AMD="qemu64,vendor=AuthenticAMD,family=6,model=8,stepping=1,+mce,+mca"
KERNEL_ARGS="console=ttyS0 mce=print_all quiet panic=-1 nokaslr audit=0 tsc=reliable no_timer_check"
BOOT_TIMEOUT=${VMCE_LINUX_BOOT_TIMEOUT:-90}
WAIT_TIMEOUT=${VMCE_LINUX_WAIT_TIMEOUT:-30}
# MCi_STATUS bits 63:52 (the top three hex digits): UC 61, PCC 57, S 56, AR 55 (bit 3 of
# the third digit).  Shell arithmetic is signed 64-bit, so STATUS is edited as text.
MCI_TOP_UC_PCC_S_AR=$(((1 << 9) | (1 << 5) | (1 << 4) | (1 << 3)))

say() {
	echo "vmce-linux: $*"
}

die() {
	echo "vmce-linux: $*" >&2
	exit 1
}

skip() {
	echo "vmce-linux: SKIP: $*" >&2
	exit 77
}

cache_dir() {
	echo "${VMCE_LINUX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmce/linux}"
}

# ---- prepare -----------------------------------------------------------------------------------

ensure_packages() {
	missing=""
	for p in qemu-system-x86 busybox-static cpio; do
		if command -v dpkg-query >/dev/null 2>&1; then
			dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
				missing="$missing $p"
		fi
	done
	if [ -n "$missing" ]; then
		[ "$(id -u)" = 0 ] || skip "missing Debian packages:$missing (not root: cannot install)"
		say "installing$missing"
		apt-get update -qq >/dev/null 2>&1
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null ||
			skip "apt-get install$missing failed"
	fi
	command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not found"
	command -v cpio >/dev/null || skip "cpio not found"
	[ -x /bin/busybox ] || skip "/bin/busybox (busybox-static) not found"
	/bin/busybox --list | grep -qx sh || skip "/bin/busybox has no sh applet"
}

# Newest Debian linux-image-6.1.*-amd64-unsigned (not -cloud: it lacks CONFIG_X86_MCE).
kernel_package() {
	apt-cache search --names-only '^linux-image-6\.1\.[0-9]+-[0-9]+-amd64-unsigned$' 2>/dev/null |
		cut -d' ' -f1 | sort -V | tail -n 1
}

ensure_kernel() {
	cache=$(cache_dir)
	mkdir -p "$cache" || skip "cannot create the cache directory $cache"
	# One preparer at a time per cache (several build trees may share it).
	exec 9>"$cache/.lock"
	flock -w 600 9 || die "timed out waiting for the lock on $cache"
	kernel=$(ls "$cache"/vmlinuz-6.1.*-amd64 2>/dev/null | sort -V | tail -n 1)
	if [ -z "$kernel" ]; then
		pkg=$(kernel_package)
		if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
			apt-get update -qq >/dev/null 2>&1
			pkg=$(kernel_package)
		fi
		[ -n "$pkg" ] || skip "apt knows no linux-image-6.1.*-amd64-unsigned package"
		say "fetching $pkg into $cache"
		tmp="$cache/tmp.$$"
		rm -rf "$tmp" && mkdir -p "$tmp" || die "cannot create $tmp"
		if ! (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null); then
			rm -rf "$tmp"
			skip "apt-get download $pkg failed (no network or apt archive?)"
		fi
		if ! dpkg-deb --fsys-tarfile "$tmp"/*.deb | tar -x -C "$tmp" ./boot; then
			rm -rf "$tmp"
			die "cannot unpack $pkg"
		fi
		for f in "$tmp"/boot/vmlinuz-* "$tmp"/boot/config-*; do
			mv "$f" "$cache/" || die "cannot move $f into $cache"
		done
		rm -rf "$tmp"
		kernel=$(ls "$cache"/vmlinuz-6.1.*-amd64 2>/dev/null | sort -V | tail -n 1)
		[ -n "$kernel" ] || die "$pkg has no /boot/vmlinuz-6.1.*-amd64"
	fi
	config="$cache/config-${kernel##*/vmlinuz-}"
	if [ -f "$config" ]; then
		for opt in CONFIG_X86_MCE CONFIG_MEMORY_FAILURE CONFIG_BLK_DEV_INITRD \
			CONFIG_SERIAL_8250_CONSOLE CONFIG_PROC_PAGE_MONITOR; do
			grep -q "^$opt=y" "$config" || die "$kernel: $opt is not built in"
		done
	fi
	exec 9>&-
}

ras_cache_dir() {
	echo "${VMCE_RAS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vmce/rasdaemon}"
}

# The libraries an ELF file needs that ROOT does not have.
missing_libs() {
	for lib in $(readelf -d "$2" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		[ -e "$1/lib/x86_64-linux-gnu/$lib" ] || [ -e "$1/usr/lib/x86_64-linux-gnu/$lib" ] ||
			echo "$lib"
	done
}

# RAS_ROOT: Debian's rasdaemon, sqlite3 and their libraries unpacked (cached).
ensure_ras_userland() {
	command -v readelf >/dev/null || skip "readelf (binutils) not found"
	cache=$(ras_cache_dir)
	mkdir -p "$cache" || skip "cannot create the cache directory $cache"
	exec 8>"$cache/.lock"
	flock -w 600 8 || die "timed out waiting for the lock on $cache"
	RAS_ROOT="$cache/root"
	if [ ! -f "$cache/packages" ] || [ "$(cat "$cache/packages")" != "$RAS_PACKAGES" ] ||
		[ ! -x "$RAS_ROOT/usr/sbin/rasdaemon" ]; then
		say "fetching $RAS_PACKAGES into $cache"
		tmp="$cache/tmp.$$"
		rm -rf "$tmp" "$RAS_ROOT" "$cache/packages" && mkdir -p "$tmp/root" ||
			die "cannot create $tmp"
		if ! (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root $RAS_PACKAGES \
			>/dev/null 2>&1); then
			if [ "$(id -u)" = 0 ]; then
				apt-get update -qq >/dev/null 2>&1
				(cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root \
					$RAS_PACKAGES >/dev/null 2>&1)
			fi || {
				rm -rf "$tmp"
				skip "apt-get download $RAS_PACKAGES failed (no network or apt archive?)"
			}
		fi
		for deb in "$tmp"/*.deb; do
			dpkg-deb -x "$deb" "$tmp/root" || die "cannot unpack $deb"
			dpkg-deb -f "$deb" Package Version | tr '\n' ' ' >>"$tmp/versions"
			echo >>"$tmp/versions"
		done
		# What a guest does not need: documentation, locales, charset converters.
		rm -rf "$tmp/root/usr/share" "$tmp/root/usr/lib/x86_64-linux-gnu/gconv" \
			"$tmp/root/lib/systemd" "$tmp/root/etc/init.d"
		mv "$tmp/root" "$RAS_ROOT" && mv "$tmp/versions" "$cache/versions" ||
			die "cannot move the unpacked packages into $cache"
		rm -rf "$tmp"
		echo "$RAS_PACKAGES" >"$cache/packages"
	fi
	for bin in "$RAS_ROOT/usr/sbin/rasdaemon" "$RAS_ROOT/usr/bin/sqlite3"; do
		[ -x "$bin" ] || die "$bin is missing from the unpacked packages"
		for l in "$bin" "$RAS_ROOT"/usr/lib/x86_64-linux-gnu/lib*.so.* \
			"$RAS_ROOT"/lib/x86_64-linux-gnu/lib*.so.*; do
			m=$(missing_libs "$RAS_ROOT" "$l")
			[ -z "$m" ] || die "${l#"$RAS_ROOT"} needs $m, which no package of" \
				"RAS_PACKAGES provides"
		done
	done
	exec 8>&-
}

build_initramfs() {
	work=$1
	probe=$2
	init=$3
	extra=${4:-}
	out=${5:-initrd.gz}
	[ -x "$probe" ] || die "guest probe $probe not found"
	[ -f "$init" ] || die "guest init $init not found"
	# One staging directory per initramfs: prepare and prepare-ras may run at once.
	root="$work/$out.d"
	rm -rf "$root" && mkdir -p "$root/bin" "$root/sbin" "$root/proc" "$root/sys" \
		"$root/dev" "$root/tmp" || die "cannot create $root"
	cp /bin/busybox "$root/bin/busybox" || die "cannot copy /bin/busybox"
	for a in $(/bin/busybox --list); do
		[ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
	done
	cp "$probe" "$root/bin/vmce-probe" && cp "$init" "$root/init" &&
		chmod 755 "$root/init" "$root/bin/vmce-probe" || die "cannot install /init"
	if [ -n "$extra" ]; then
		cp -a "$extra/." "$root/" && mkdir -p "$root/var/lib/rasdaemon" ||
			die "cannot copy $extra into the initramfs"
	fi
	(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$work/$out.tmp" &&
		mv "$work/$out.tmp" "$work/$out" || die "cannot build $work/$out"
	rm -rf "$root"
}

cmd_prepare() {
	[ $# -eq 3 ] || die "usage: vmce-linux.sh prepare WORKDIR PROBE INIT"
	mkdir -p "$1" || die "cannot create $1"
	ensure_packages
	ensure_kernel
	build_initramfs "$1" "$2" "$3"
	printf 'KERNEL=%s\nINITRD=%s\n' "$kernel" "$1/initrd.gz" >"$1/guest.env"
	say "kernel $kernel"
	say "initramfs $1/initrd.gz ($(wc -c <"$1/initrd.gz") bytes)"
}

cmd_prepare_ras() {
	[ $# -eq 3 ] || die "usage: vmce-linux.sh prepare-ras WORKDIR PROBE INIT"
	mkdir -p "$1" || die "cannot create $1"
	ensure_packages
	ensure_ras_userland
	build_initramfs "$1" "$2" "$3" "$RAS_ROOT" initrd-ras.gz
	printf 'INITRD_RAS=%s\n' "$1/initrd-ras.gz" >"$1/ras.env"
	say "rasdaemon userland: $(tr '\n' ';' <"$(ras_cache_dir)/versions")"
	say "initramfs $1/initrd-ras.gz ($(wc -c <"$1/initrd-ras.gz") bytes)"
}

# ---- one guest ---------------------------------------------------------------------------------

QPID=
READERS=
RUN=
MARK=1
NONCE=0

cleanup() {
	exec 3>&- 4>&- 2>/dev/null
	if [ -n "$QPID" ]; then
		kill "$QPID" 2>/dev/null
		wait "$QPID" 2>/dev/null
	fi
	for p in $READERS; do
		kill "$p" 2>/dev/null
	done
}

# The console's complete lines without carriage returns, from line MARK on.
console() {
	head -n "$(wc -l <"$RUN/console.log")" "$RUN/console.log" | tail -n "+$MARK" | tr -d '\r'
}

fail() {
	echo "vmce-linux: FAIL [$SCENARIO]: $*" >&2
	echo "---- guest console (last 40 lines; full log: $RUN/console.log) ----" >&2
	tr -d '\r' <"$RUN/console.log" | tail -n 40 >&2
	echo "---- QEMU monitor (last 10 lines) ----" >&2
	monitor_text <"$RUN/monitor.log" | tail -n 10 >&2
	if [ -s "$RUN/qemu.log" ]; then
		echo "---- QEMU stderr ----" >&2
		tail -n 10 "$RUN/qemu.log" >&2
	fi
	exit 1
}

# boot NAME SMP CPU: start QEMU and wait for the guest's ready marker.
boot() {
	RUN="$WORK/run-$1"
	rm -rf "$RUN" && mkdir -p "$RUN" || die "cannot create $RUN"
	for f in serial mon; do
		mkfifo "$RUN/$f.in" "$RUN/$f.out" || die "mkfifo in $RUN failed"
	done
	: >"$RUN/console.log"
	: >"$RUN/monitor.log"
	say "booting $1: $2 vCPU(s), -cpu $3"
	qemu-system-x86_64 -accel tcg -machine pc -cpu "$3" -smp "$2" -m "$GUEST_MEM_MB" \
		-nodefaults -display none -no-reboot -kernel "$KERNEL" -initrd "$INITRD" \
		-append "$KERNEL_ARGS" -serial "pipe:$RUN/serial" -monitor "pipe:$RUN/mon" \
		>"$RUN/qemu.log" 2>&1 &
	QPID=$!
	cat "$RUN/serial.out" >>"$RUN/console.log" &
	READERS="$READERS $!"
	cat "$RUN/mon.out" >>"$RUN/monitor.log" &
	READERS="$READERS $!"
	exec 3<>"$RUN/serial.in" 4<>"$RUN/mon.in"
	BOOT_START=$(date +%s)
	expect 'VMCE-GUEST READY' "$BOOT_TIMEOUT"
	BOOT_SECONDS=$(($(date +%s) - BOOT_START))
	say "guest ready after ${BOOT_SECONDS}s: $MATCH"
	wait_monitor_prompt 1
}

# Skip the console seen so far: later expectations look only at what comes next.
mark() {
	MARK=$(($(wc -l <"$RUN/console.log") + 1))
}

# expect REGEX [TIMEOUT]: wait for a console line (after the mark) that matches; MATCH is it.
expect() {
	deadline=$(($(date +%s) + ${2:-$WAIT_TIMEOUT}))
	while :; do
		MATCH=$(console | grep -E -m 1 -- "$1")
		[ -n "$MATCH" ] && return 0
		if ! kill -0 "$QPID" 2>/dev/null; then
			sleep 0.3
			MATCH=$(console | grep -E -m 1 -- "$1")
			[ -n "$MATCH" ] && return 0
			fail "QEMU exited while waiting for /$1/ on the guest console"
		fi
		[ "$(date +%s)" -lt "$deadline" ] ||
			fail "no console line matched /$1/ within ${2:-$WAIT_TIMEOUT}s"
		sleep 0.2
	done
}

# reject REGEX WHAT: fail when a console line after the mark matches.
reject() {
	bad=$(console | grep -E -m 1 -- "$1")
	[ -z "$bad" ] || fail "$2: $bad"
}

send() {
	printf '%s\n' "$1" >&3 || fail "cannot write to the guest's serial port"
}

# The monitor's output without its line editor's redrawing: an echoed command line reads
# "(qemu) COMMAND".
monitor_text() {
	tr -d '\r' | sed -e 's/^\((qemu) \).*\x1b\[D/\1/' -e 's/\x1b\[[0-9]*[A-Z]//g'
}

prompts() {
	grep -o '(qemu)' "$RUN/monitor.log" | wc -l
}

wait_monitor_prompt() {
	deadline=$(($(date +%s) + 20))
	while [ "$(prompts)" -lt "$1" ]; do
		[ "$(date +%s)" -lt "$deadline" ] || fail "the QEMU monitor did not answer"
		sleep 0.1
	done
}

# monitor CMD: run a monitor command and wait for the next prompt; MON_OUT is its output.
monitor() {
	before=$(prompts)
	lines=$(wc -l <"$RUN/monitor.log")
	say "monitor: $1"
	printf '%s\n' "$1" >&4 || fail "cannot write to the QEMU monitor"
	wait_monitor_prompt $((before + 1))
	MON_OUT=$(tail -n "+$((lines + 1))" "$RUN/monitor.log" | monitor_text |
		grep -v -e '^(qemu)' -e '^[[:space:]]*$')
}

# alive: the guest's init answers a fresh heartbeat.
alive() {
	NONCE=$((NONCE + 1))
	send "ping $$-$NONCE"
	expect "VMCE-GUEST PONG $$-$NONCE\$|VMCE-GUEST PONG $$-$NONCE[^0-9]" "${1:-$WAIT_TIMEOUT}"
}

# poll_banks: Linux polls every machine-check bank (its poller, every second from now on).
poll_banks() {
	NONCE=$((NONCE + 1))
	send "mcepoll $$-$NONCE"
	expect "VMCE-GUEST MCEPOLL-DONE $$-$NONCE\$|VMCE-GUEST MCEPOLL-DONE $$-$NONCE[^0-9]" 30
}

# ---- plans -------------------------------------------------------------------------------------

# plan ARGS...: PLAN is the JSON line `vmcectl synth ARGS --json` prints.
plan() {
	PLAN=$("$VMCECTL" synth "$@" --json) || fail "vmcectl synth $* --json failed"
	say "plan (vmcectl synth $*): $PLAN"
	printf '%s\n' "$PLAN" | jq -e 'has("verdict") and has("vcpus")' >/dev/null 2>&1 ||
		fail "vmcectl synth printed no plan JSON: $PLAN"
}

jplan() {
	printf '%s\n' "$PLAN" | jq -r "$@"
}

# plan_commands: the monitor commands that deliver PLAN (none for drop/fatal), into CMDS.
#   A vCPU with a bank record: `mce CPU BANK STATUS MCG_STATUS ADDR MISC`.
#   Broadcast: QEMU cannot raise #MC on a vCPU without a valid UC bank record, so the plan's
#   bystanders (MCG_STATUS MCIP|RIPV, no bank) become `mce -b` on the target: QEMU then gives
#   every other vCPU MCG_STATUS MCIP|RIPV and bank 1 = VAL|UC (see docs/linux-guests.md).
plan_commands() {
	CMDS=""
	verdict=$(jplan .verdict)
	if [ "$verdict" != forward ]; then
		[ "$(jplan '.vcpus | length')" = 0 ] || fail "a $verdict plan lists vCPUs: $PLAN"
		return 0
	fi
	target=$(jplan .target)
	rec=$(jplan --argjson t "$target" '.vcpus[] | select(.cpu == $t and has("bank")) |
		"\(.bank) \(.status) \(.mcg_status) \(.addr) \(.misc)"')
	[ -n "$rec" ] || fail "the plan gives its target vCPU $target no bank record: $PLAN"
	nr=$(jplan .nr_vcpus)
	others=$(jplan --argjson t "$target" '[.vcpus[] | select(.cpu != $t)] | length')
	if [ "$(jplan .broadcast)" = true ]; then
		bad=$(jplan --argjson t "$target" '.vcpus[] | select(.cpu != $t) |
			select(has("bank") or .signal != "mc" or
			((.mcg_status | ascii_downcase | ltrimstr("0x") | sub("^0+"; "")) != "5")) |
			.cpu')
		[ -z "$bad" ] ||
			fail "bystander vCPU(s) $bad differ from QEMU's broadcast (MCIP|RIPV): $PLAN"
		[ "$others" = $((nr - 1)) ] ||
			fail "broadcast plan covers $others of the $((nr - 1)) other vCPUs: $PLAN"
		CMDS="mce -b $target $rec"
		return 0
	fi
	CMDS="mce $target $rec"
	extra=$(jplan --argjson t "$target" '.vcpus[] | select(.cpu != $t) |
		if has("bank") then "mce \(.cpu) \(.bank) \(.status) \(.mcg_status) \(.addr) \(.misc)"
		else "none \(.cpu)" end')
	case "$extra" in
	*none*) fail "QEMU cannot signal a vCPU without a bank record unless by -b: $PLAN" ;;
	esac
	[ -z "$extra" ] || CMDS="$CMDS
$extra"
}

# deliver [user]: inject the plan's records.  With "user", the target vCPU is first stopped
# in user mode (an action-required error is raised by the consuming instruction, which is the
# victim's load): the VM is paused, and resumed for a moment until `info registers` shows
# CS 0x33 on the target; the records are injected while it is paused and the #MC is the first
# thing the vCPU takes when it resumes (QEMU checks #MC before interrupts).
deliver() {
	plan_commands
	[ -n "$CMDS" ] || fail "the plan delivers nothing: $PLAN"
	printf '%s\n' "$CMDS" >"$RUN/cmds"
	[ "${1:-}" != user ] || stop_in_user "$(jplan .target)"
	while IFS= read -r c; do
		monitor "$c"
		check_monitor_quiet "$c"
	done <"$RUN/cmds"
	[ "${1:-}" != user ] || monitor cont
}

stop_in_user() {
	monitor "cpu $1"
	tries=0
	while :; do
		monitor stop
		monitor "info registers"
		cs=$(printf '%s\n' "$MON_OUT" | sed -n 's/^CS =\([0-9a-f]*\) .*/\1/p')
		rip=$(printf '%s\n' "$MON_OUT" | sed -n 's/^RIP=\([0-9a-f]*\) .*/\1/p')
		[ "$cs" != 0033 ] || break
		tries=$((tries + 1))
		[ "$tries" -lt 100 ] || fail "vCPU $1 not seen in user mode in 100 tries (CS $cs)"
		monitor cont
		sleep 0.05
	done
	say "vCPU $1 paused in user mode (CS 0x33, RIP 0x$rip) after $tries resume(s)"
}

# QEMU prints nothing for an accepted `mce`; anything else (bank disabled, invalid status) is
# the injection failing.
check_monitor_quiet() {
	out=$(printf '%s\n' "$MON_OUT" | grep -v -F -- "$1")
	[ -z "$out" ] || fail "QEMU refused '$1': $out"
}

# The lines that show a guest reacting to a machine check.
MCE_LINES='Hardware Error|Machine [Cc]heck|Memory failure|mce: \[|Uncorrected|Kernel panic|MCE:'

# ---- scenarios ---------------------------------------------------------------------------------

pfn_of() {
	printf '0x%x' $(($1 >> 12))
}

free_page() {
	send freepage
	expect 'VMCE-PROBE FREEPAGE gpa=0x[0-9a-f]+'
	FREE_GPA=$(printf '%s\n' "$MATCH" | sed 's/.*gpa=\(0x[0-9a-f]*\).*/\1/')
	say "free guest page at $FREE_GPA"
}

start_victim() {
	send victim
	expect 'VMCE-PROBE VICTIM pid=[0-9]+ va=0x[0-9a-f]+ gpa=0x[0-9a-f]+'
	VICTIM_VA=$(printf '%s\n' "$MATCH" | sed 's/.* va=\(0x[0-9a-f]*\).*/\1/')
	VICTIM_GPA=$(printf '%s\n' "$MATCH" | sed 's/.* gpa=\(0x[0-9a-f]*\).*/\1/')
	say "victim page: va $VICTIM_VA gpa $VICTIM_GPA"
	# Let the victim reach its load loop (it is then the only runnable task).
	sleep 1
}

expect_recovered() {
	expect "Memory failure: $(pfn_of "$1"): recovery action for [^:]*: Recovered"
	say "observed: $MATCH"
	RECOVERED_LINE=$MATCH
}

record() {
	say "RESULT $SCENARIO: $*"
}

scenario_srao_free() {
	boot srao_free 1 "$CPU_INTEL"
	free_page
	plan --vcpus 1 --map "$GUEST_MAP" --srao --gpa "$FREE_GPA"
	mark
	deliver
	expect_recovered "$FREE_GPA"
	reject 'Kernel panic' "the guest panicked"
	alive
	record "$RECOVERED_LINE; guest answered $MATCH"
}

scenario_srao_victim() {
	boot srao_victim 1 "$CPU_INTEL"
	start_victim
	plan --vcpus 1 --map "$GUEST_MAP" --srao --gpa "$VICTIM_GPA"
	mark
	deliver
	expect_recovered "$VICTIM_GPA"
	# The page is gone from the victim; its next load takes the hwpoison fault (SIGBUS).
	send 'victim?'
	expect 'VMCE-PROBE SIGBUS|VMCE-GUEST VICTIM-(RUNNING|GONE)'
	victim=$MATCH
	case "$victim" in
	*SIGBUS*) expect 'VMCE-GUEST VICTIM-EXIT status=42' ;;
	esac
	reject 'Kernel panic' "the guest panicked"
	alive
	record "$RECOVERED_LINE; victim: $victim; guest answered $MATCH"
}

scenario_srar_victim() {
	boot srar_victim 1 "$CPU_INTEL"
	start_victim
	plan --vcpus 1 --map "$GUEST_MAP" --srar --gpa "$VICTIM_GPA" --cpu 0
	mark
	deliver user
	expect 'VMCE-PROBE SIGBUS si_code=[0-9]+ si_addr=0x[0-9a-f]+'
	sigbus=$MATCH
	code=$(printf '%s\n' "$sigbus" | sed 's/.*si_code=\([0-9]*\).*/\1/')
	addr=$(printf '%s\n' "$sigbus" | sed 's/.*si_addr=\(0x[0-9a-f]*\).*/\1/')
	[ "$code" = 4 ] || fail "the victim's SIGBUS has si_code $code, not 4 (BUS_MCEERR_AR)"
	[ $((addr >> 12)) = $((VICTIM_VA >> 12)) ] ||
		fail "the victim's SIGBUS names $addr, outside its page $VICTIM_VA"
	expect 'VMCE-GUEST VICTIM-EXIT status=42'
	expect "mce: Uncorrected hardware memory error in user-access at ${VICTIM_GPA#0x}"
	ua=$MATCH
	expect_recovered "$VICTIM_GPA"
	reject 'Kernel panic' "the guest panicked"
	alive
	record "$ua; $sigbus; $RECOVERED_LINE; guest answered $MATCH"
}

scenario_srao_smp_broadcast() {
	boot srao_smp_broadcast 2 "$CPU_INTEL"
	free_page
	plan --vcpus 2 --map "$GUEST_MAP" --srao --gpa "$FREE_GPA"
	[ "$(jplan .broadcast)" = true ] || fail "the 2-vCPU SRAO plan does not broadcast: $PLAN"
	mark
	deliver
	expect_recovered "$FREE_GPA"
	# A failed rendezvous panics before memory_failure() runs, so the line above already
	# shows that every vCPU entered the handler.
	reject 'Timeout: Not all CPUs|Kernel panic' "the guest panicked"
	alive
	pong=$MATCH
	# What Linux makes of QEMU's bystander record (bank 1 = VAL|UC, S=0, EN=0 on vCPU 1):
	# the #MC handler leaves it ("not signaled", severity keep) and the next poll logs it as
	# an error of its own; vmce's bystander (no valid bank) leaves nothing to log.
	mark
	poll_banks
	expect 'CPU 1: Machine Check: 0 Bank 1: a000000000000000'
	by=$MATCH
	record "$RECOVERED_LINE; guest answered $pong; QEMU's bystander record at the next poll: $by"
}

scenario_srao_smp_no_broadcast() {
	boot srao_smp_no_broadcast 2 "$CPU_INTEL"
	free_page
	plan --vcpus 2 --map "$GUEST_MAP" --srao --gpa "$FREE_GPA" --no-broadcast
	[ "$(jplan .broadcast)" = false ] || fail "--no-broadcast plan broadcasts: $PLAN"
	mark
	deliver
	expect 'CPUs not responding to MCE broadcast' 60
	late=$MATCH
	expect 'Kernel panic - not syncing: Timeout: Not all CPUs entered broadcast exception handler' 20
	record "$late; $MATCH"
}

scenario_drop_ce_outside() {
	boot drop_ce_outside 1 "$CPU_INTEL"
	free_page
	mark
	plan --vcpus 1 --map "$GUEST_MAP" --ce --gpa "$FREE_GPA"
	[ "$(jplan .verdict)" = drop ] || fail "a corrected error is not dropped: $PLAN"
	plan_commands
	[ -z "$CMDS" ] || fail "a dropped plan produced monitor commands: $CMDS"
	ce=$(jplan .reason)
	outside=$(printf '0x%x' $((GUEST_MEM_MB * 1024 * 1024 + 0x1000)))
	plan --vcpus 1 --map "$GUEST_MAP" --srao --gpa "$outside"
	[ "$(jplan .verdict)" = drop ] || fail "an SRAO outside guest memory is not dropped: $PLAN"
	plan_commands
	[ -z "$CMDS" ] || fail "a dropped plan produced monitor commands: $CMDS"
	out=$(jplan .reason)
	# Nothing reached the guest: its banks are empty (a forced poll logs nothing) and it runs.
	poll_banks
	alive
	sleep 1
	reject "$MCE_LINES" "the guest reported a machine check although nothing was injected"
	record "CE: drop ($ce); SRAO at $outside: drop ($out); no MCE line, guest answered $MATCH"
}

# AMD family 6: Linux zeroes bank 0's MCi_CTL ("broken bank 0" on K7s) and skips bank 0 in
# both the #MC handler and the poller.  The plan's record is placed in bank 0 and then bank 1.
amd_record() {
	free_page
	plan --vcpus 1 --map "$GUEST_MAP" --srao --gpa "$FREE_GPA"
	plan_commands
	set -- $CMDS
	[ "$1" = mce ] && [ $# = 7 ] || fail "unexpected plan commands: $CMDS"
	REC_STATUS=$4
	REC_MCG=$5
	REC_ADDR=$6
	REC_MISC=$7
	# The same record, corrected (UC, PCC, S and AR cleared): no #MC, found by the poller.
	hex=$(printf '%016s' "${REC_STATUS#0x}" | tr ' ' 0)
	top=$(printf '%03x' $((0x$(printf '%.3s' "$hex") & ~MCI_TOP_UC_PCC_S_AR)))
	CE_STATUS="0x$top${hex#???}"
	send banks
	expect 'VMCE-GUEST BANK bank1='
	BANK0=$(console | grep -E -m 1 'VMCE-GUEST BANK bank0=' | sed 's/.*=//')
	say "Linux's MC0_CTL: ${BANK0:-unknown}"
}

scenario_amd_bank0() {
	boot amd_bank0 1 "$CPU_AMD"
	amd_record
	poll_banks
	mark
	# The forwarded (UC) record into bank 0: QEMU, like hardware, signals nothing for a bank
	# whose MCi_CTL is not all ones (Linux's handler would skip the bank anyway).
	monitor "mce 0 0 $REC_STATUS $REC_MCG $REC_ADDR $REC_MISC"
	uc_out=$(printf '%s\n' "$MON_OUT" | grep 'bank 0')
	[ -n "$uc_out" ] ||
		fail "expected QEMU to refuse the bank-0 UC record (MC0_CTL $BANK0): '$MON_OUT'"
	# The corrected form into bank 0: stored in the bank, never logged by Linux's poller.
	monitor "mce 0 0 $CE_STATUS 0 $REC_ADDR $REC_MISC"
	check_monitor_quiet "mce 0 0 $CE_STATUS 0 $REC_ADDR $REC_MISC"
	poll_banks
	poll_banks
	alive
	reject "$MCE_LINES" "Linux reported a bank-0 error"
	record "MC0_CTL $BANK0; UC record: QEMU: $uc_out; CE record $CE_STATUS: no log after" \
		"two polls; guest answered $MATCH"
}

scenario_amd_bank1() {
	boot amd_bank1 1 "$CPU_AMD"
	amd_record
	poll_banks
	mark
	# The corrected form into bank 1: logged by the next poll.
	monitor "mce 0 1 $CE_STATUS 0 $REC_ADDR $REC_MISC"
	check_monitor_quiet "mce 0 1 $CE_STATUS 0 $REC_ADDR $REC_MISC"
	poll_banks
	expect "CPU 0: Machine Check: 0 Bank 1: ${CE_STATUS#0x}"
	ce_line=$MATCH
	alive
	# The forwarded (UC) record into bank 1: Linux's handler reads it.  A family-6 AMD CPU
	# has no SUCCOR, so Linux takes an uncorrected error as fatal: it panics, naming bank 1.
	mark
	monitor "mce 0 1 $REC_STATUS $REC_MCG $REC_ADDR $REC_MISC"
	check_monitor_quiet "mce 0 1 $REC_STATUS $REC_MCG $REC_ADDR $REC_MISC"
	expect "CPU 0: Machine Check Exception: [0-9a-f]+ Bank 1: ${REC_STATUS#0x}"
	uc_line=$MATCH
	expect 'Kernel panic - not syncing'
	record "CE: $ce_line; UC: $uc_line; $MATCH"
}

# Hex text without 0x and leading zeros, lower case (shell arithmetic is signed 64-bit).
hexnorm() {
	printf '%s\n' "${1#0x}" | tr 'A-F' 'a-f' | sed 's/^0*//; s/^$/0/'
}

# field NAME LINE: the value of NAME=... in a VMCE-RAS line.
ras_field() {
	printf '%s\n' "$2" | sed -n "s/.* $1=\\([^ ]*\\).*/\\1/p"
}

# The target vCPU's record of PLAN as "bank status addr misc mcg_status".
plan_record() {
	jplan --argjson t "$(jplan .target)" '.vcpus[] | select(.cpu == $t and has("bank")) |
		"\(.bank) \(.status) \(.addr) \(.misc) \(.mcg_status)"'
}

# ras_row_matches LINE RECORD WHAT: the database row holds the record vmce planned.
ras_row_matches() {
	set -- "$1" $2 "$3"
	[ "$(ras_field bank "$1")" = "$2" ] || fail "$7: rasdaemon's bank is not $2: $1"
	for f in status:3 addr:4 misc:5 mcgstatus:6; do
		name=${f%:*}
		eval "want=\${${f#*:}}"
		[ "$(hexnorm "$(ras_field "$name" "$1")")" = "$(hexnorm "$want")" ] ||
			fail "$7: rasdaemon's $name is not vmce's $want: $1"
	done
}

# Debian's rasdaemon in the guest records what vmce delivers: an SRAO and an SRAR each become
# a row of its database with vmce's bank, STATUS, ADDR, MISC and MCG_STATUS; a corrected error,
# which vmce drops, leaves nothing.
scenario_rasdaemon() {
	[ -f "$WORK/ras.env" ] ||
		skip "no rasdaemon initramfs in $WORK (the prepare-ras step was skipped or failed)"
	. "$WORK/ras.env"
	[ -f "$INITRD_RAS" ] || die "the initramfs $INITRD_RAS of $WORK/ras.env is missing"
	INITRD=$INITRD_RAS
	boot rasdaemon 1 "$CPU_INTEL"
	send rasdaemon
	expect 'VMCE-GUEST RASDAEMON-(READY|FAILED|MISSING)' 30
	case "$MATCH" in
	*READY*) ras=${MATCH#*READY } ;;
	*) fail "rasdaemon did not start in the guest: $MATCH" ;;
	esac
	say "guest runs rasdaemon ($ras)"

	# A corrected error: vmce drops it, nothing reaches the guest.
	free_page
	plan --vcpus 1 --map "$GUEST_MAP" --ce --gpa "$FREE_GPA"
	[ "$(jplan .verdict)" = drop ] || fail "a corrected error is not dropped: $PLAN"
	plan_commands
	[ -z "$CMDS" ] || fail "a dropped plan produced monitor commands: $CMDS"
	ce=$(jplan .reason)

	# An SRAO on a free page.
	plan --vcpus 1 --map "$GUEST_MAP" --srao --gpa "$FREE_GPA"
	srao=$(plan_record)
	mark
	deliver
	expect_recovered "$FREE_GPA"

	# An SRAR consumed by the victim process.
	start_victim
	plan --vcpus 1 --map "$GUEST_MAP" --srar --gpa "$VICTIM_GPA" --cpu 0
	srar=$(plan_record)
	mark
	deliver user
	expect 'VMCE-PROBE SIGBUS si_code=4 '
	expect 'VMCE-GUEST VICTIM-EXIT status=42'
	expect_recovered "$VICTIM_GPA"

	# A poll of every bank, then rasdaemon's database.
	poll_banks
	alive
	mark
	NONCE=$((NONCE + 1))
	send "rasdb $$-$NONCE"
	expect "VMCE-GUEST RASDB-DONE $$-$NONCE\$|VMCE-GUEST RASDB-DONE $$-$NONCE[^0-9]"
	rows=$(console | grep '^VMCE-RAS ')
	printf '%s\n' "$rows" | sed 's/^/vmce-linux: database: /'
	n=$(printf '%s\n' "$rows" | grep -c '^VMCE-RAS ')
	[ "$n" = 2 ] || fail "rasdaemon's database has $n machine-check rows, not 2 (SRAO, SRAR): $rows"
	row1=$(printf '%s\n' "$rows" | sed -n 1p)
	row2=$(printf '%s\n' "$rows" | sed -n 2p)
	ras_row_matches "$row1" "$srao" "SRAO"
	ras_row_matches "$row2" "$srar" "SRAR"
	case "$row1" in *mcistatus_msg=*SRAO*) ;; *) fail "rasdaemon does not call it SRAO: $row1" ;; esac
	case "$row2" in *mcistatus_msg=*SRAR*) ;; *) fail "rasdaemon does not call it SRAR: $row2" ;; esac
	reject 'Kernel panic' "the guest panicked"
	record "$ras recorded SRAO [$row1] and SRAR [$row2]; CE dropped ($ce): no row"
}

cmd_run() {
	[ $# -eq 3 ] || die "usage: vmce-linux.sh run SCENARIO WORKDIR VMCECTL"
	SCENARIO=$1
	WORK=$2
	VMCECTL=$3
	case " $(echo $SCENARIOS) " in
	*" $SCENARIO "*) ;;
	*) die "unknown scenario '$SCENARIO' (known: $(echo $SCENARIOS))" ;;
	esac
	[ -f "$WORK/guest.env" ] ||
		skip "no prepared guest in $WORK (the prepare step was skipped or failed)"
	. "$WORK/guest.env"
	[ -f "$KERNEL" ] && [ -f "$INITRD" ] || die "kernel or initramfs of $WORK/guest.env missing"
	command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not found"
	command -v jq >/dev/null || skip "jq not found"
	[ -n "$VMCECTL" ] || skip "vmcectl is not built (tools/vmcectl): no plans to inject"
	[ -x "$VMCECTL" ] || die "vmcectl $VMCECTL not found"
	trap cleanup EXIT
	trap 'exit 1' INT TERM
	start=$(date +%s)
	"scenario_$SCENARIO"
	say "PASS $SCENARIO in $(($(date +%s) - start))s (boot ${BOOT_SECONDS:-?}s)"
}

case "${1:-}" in
prepare)
	shift
	cmd_prepare "$@"
	;;
prepare-ras)
	shift
	cmd_prepare_ras "$@"
	;;
run)
	shift
	cmd_run "$@"
	;;
list)
	echo $SCENARIOS
	;;
*)
	die "usage: vmce-linux.sh prepare|prepare-ras WORKDIR PROBE INIT |" \
		"run SCENARIO WORKDIR VMCECTL | list"
	;;
esac
