#!/bin/sh
# /init of the test initramfs (busybox).  It mounts the kernel file systems, streams the
# kernel's machine-check messages, says it is ready, then runs the commands the host sends on
# the serial console, one a line:
#   ping N      answer "VMCE-GUEST PONG N" (the host's proof that the guest is alive)
#   victim [C]  start a process that owns a page and keeps loading from it (vmce-probe victim),
#               pinned to CPU C when given
#   freepage [N]  print the guest-physical address of a free page (of N free pages)
#   victim?     say whether the victim still runs
#   mcepoll N   make Linux poll the machine-check banks every second, wait for a poll, and
#               say "VMCE-GUEST MCEPOLL-DONE N"
#   banks       print the MCE bank control values Linux set (from sysfs)
#   dmesg N     print the kernel log, each line behind "VMCE-DMESG ", then "VMCE-GUEST DMESG-END N"
#   irqs N      print the machine-check interrupt counts (/proc/interrupts: MCE, THR, MCP)
#               behind "VMCE-IRQ ", then "VMCE-GUEST IRQS-END N"
#   rasdaemon   start Debian's rasdaemon recording into its database (only in the initramfs
#               that carries it), say "VMCE-GUEST RASDAEMON-READY" once it listens
#   rasdb N     print every mce_record row of rasdaemon's database as "VMCE-RAS ..." (the
#               fields of `ras-mc-ctl --errors`), then "VMCE-GUEST RASDB-DONE N"
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

# The console shows the kernel's messages of level err and above ("quiet"); machine-check
# lines of any level come through this stream too.
(
	while read -r line; do
		case "$line" in
		*mce* | *MCE* | *[Mm]achine[\ ]check* | *Memory\ failure* | *Hardware\ Error* | \
			*[Hh][Ww][Pp]oison*)
			echo "VMCE-KMSG $line"
			;;
		esac
	done </proc/kmsg
) &

victim=
cpus=$(grep -c '^processor' /proc/cpuinfo)
vendor=$(sed -n 's/^vendor_id[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
family=$(sed -n 's/^cpu family[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "VMCE-GUEST READY cpus=$cpus vendor=$vendor family=$family kernel=$(uname -r)"

while read -r cmd arg; do
	case "$cmd" in
	ping)
		echo "VMCE-GUEST PONG $arg"
		;;
	victim)
		(
			if [ -n "$arg" ]; then
				taskset -c "$arg" /bin/vmce-probe victim
			else
				/bin/vmce-probe victim
			fi
			echo "VMCE-GUEST VICTIM-EXIT status=$?"
		) &
		victim=$!
		;;
	'victim?')
		if [ -n "$victim" ] && kill -0 "$victim" 2>/dev/null; then
			echo "VMCE-GUEST VICTIM-RUNNING"
		else
			echo "VMCE-GUEST VICTIM-GONE"
		fi
		;;
	freepage)
		/bin/vmce-probe freepage $arg
		;;
	mcepoll)
		# Poll the banks every second from now on.  Changing the interval restarts the
		# MCE timers, whose first poll covers every bank of every CPU (logged on Intel;
		# AMD before family 0x11 clears such leftovers without logging them).  Then wait
		# for the timer's next poll.
		f=/sys/devices/system/machinecheck/machinecheck0/check_interval
		[ "$(cat $f)" = 1 ] || echo 1 >$f
		sleep 2
		echo "VMCE-GUEST MCEPOLL-DONE $arg"
		;;
	banks)
		for b in /sys/devices/system/machinecheck/machinecheck0/bank*; do
			# Linux refuses to show a bank it disabled (ENODEV).
			v=$(cat "$b" 2>/dev/null) || v=disabled
			echo "VMCE-GUEST BANK ${b##*/}=$v"
		done
		echo "VMCE-GUEST BANKS-END $arg"
		;;
	dmesg)
		dmesg | sed 's/^/VMCE-DMESG /'
		echo "VMCE-GUEST DMESG-END $arg"
		;;
	irqs)
		grep -E '^ *(MCE|THR|MCP):' /proc/interrupts | sed 's/^ */VMCE-IRQ /'
		echo "VMCE-GUEST IRQS-END $arg"
		;;
	rasdaemon)
		if [ ! -x /usr/sbin/rasdaemon ]; then
			echo "VMCE-GUEST RASDAEMON-MISSING"
			continue
		fi
		mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
		mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
		mkdir -p /var/lib/rasdaemon
		# rasdaemon 0.6.8 polls its trace instance's per-CPU pipes; since Linux 6.1 such a
		# poll waits until the buffer is buffer_percent (default 50) full, so an event or
		# two would never reach it.  Create its instance first, waking on every event.
		mkdir -p /sys/kernel/tracing/instances/rasdaemon
		echo 0 >/sys/kernel/tracing/instances/rasdaemon/buffer_percent
		/usr/sbin/rasdaemon --record --foreground >/tmp/rasdaemon.log 2>&1 &
		i=0
		while ! grep -q 'Recording mce_record events' /tmp/rasdaemon.log; do
			i=$((i + 1))
			if [ $i -gt 100 ]; then
				sed 's/^/VMCE-GUEST RASDAEMON-LOG /' /tmp/rasdaemon.log
				echo "VMCE-GUEST RASDAEMON-FAILED"
				continue 2
			fi
			sleep 0.1
		done
		echo "VMCE-GUEST RASDAEMON-READY $(/usr/sbin/rasdaemon --version 2>&1 | head -n 1)"
		;;
	rasdb)
		sqlite3 /var/lib/rasdaemon/ras-mc_event.db "SELECT printf('VMCE-RAS id=%d' ||
			' timestamp=\"%s\" bank=%d status=0x%016x addr=0x%x misc=0x%x' ||
			' mcgstatus=0x%x cpu=%d error=\"%s\" mcgstatus_msg=\"%s\"' ||
			' mcistatus_msg=\"%s\"', id, timestamp, bank, status, addr, misc,
			mcgstatus, cpu, error_msg, mcgstatus_msg, mcistatus_msg)
			FROM mce_record ORDER BY id;" 2>&1
		echo "VMCE-GUEST RASDB-DONE $arg"
		;;
	'') ;;
	*)
		echo "VMCE-GUEST UNKNOWN $cmd"
		;;
	esac
done </dev/console
echo "VMCE-GUEST CONSOLE-EOF"
exec sleep 2147483647
