// SPDX-License-Identifier: MIT
/*
 * vmce-vm: a small reference VMM on KVM that embeds vmce.  Options, lifecycle, exit statuses.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "vmm.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vmce-vm [options]\n"
		"Run a guest on KVM with vmce's virtual machine-check architecture.\n"
		"\n"
		"  --mem SIZE           guest memory (default 64M; K, M, G suffixes; 4M..3G)\n"
		"  --cpus N             vCPUs, 1..%d (default 2)\n"
		"  --profile TEXT       vmce profile (default intel,banks=2,ser,tes,cmci)\n"
		"  --image PATH         flat image (loaded at 1 MiB) or ELF64 instead of the\n"
		"                       built-in guest\n"
		"  --no-workload        do not start the guest's user-mode workload\n"
		"  --quiet-poller       ask the guest's poller not to print\n"
		"  --control PATH       control socket (docs/control-protocol.md)\n"
		"  --console-file FILE  also write the guest console to FILE\n"
		"  --console-prefix STR prefix every console line on stdout with STR\n"
		"  --events-log FILE    append every vmce event as a JSON line to FILE\n"
		"  --timeout SECONDS    stop the guest after that long (exit status 6)\n"
		"  --hybrid             let KVM's in-kernel MCA serve the hot path\n"
		"  --fatal POLICY       errors fatal to the guest: shutdown (default) or log-only\n"
		"  --hold-max N         action-optional errors held while the guest handles a\n"
		"                       machine check (MCIP set), at most N (default 1024)\n"
		"  --hold-timeout MS    drop held errors when none could be delivered for MS\n"
		"                       milliseconds (hung handler; default 5000)\n"
		"  --incoming ADDR      wait for a migrated guest on ADDR (a UNIX socket path or\n"
		"                       a loopback HOST:PORT) instead of booting one; --profile\n"
		"                       is then what this host can back\n"
		"  -h, --help           this text\n"
		"\n"
		"Exit status: 0 guest exit 0 or quit, 1 VMM error, 2 usage, 3 guest panic,\n"
		"4 shut down by vmce, 5 triple fault, 6 timeout, 7 other guest exit value,\n"
		"8 SIGINT/SIGTERM.\n",
		VMM_MAX_VCPUS);
}

uint64_t vmm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vmm_wake_control(struct vmm *vm)
{
	uint64_t one = 1;

	if (vm->wake_fd >= 0)
		(void)!write(vm->wake_fd, &one, sizeof(one));
}

void vmm_stop(struct vmm *vm, int status, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&vm->lock);
	if (atomic_load(&vm->stopped)) {
		pthread_mutex_unlock(&vm->lock);
		return;
	}
	vm->exit_status = status;
	va_start(ap, fmt);
	vsnprintf(vm->exit_reason, sizeof(vm->exit_reason), fmt, ap);
	va_end(ap);
	atomic_store(&vm->stopped, true);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);

	fprintf(stderr, "vmce-vm: guest stopped: %s (exit status %d)\n", vm->exit_reason, status);
	if (vm->kvm)
		for (unsigned i = 0; i < vm->nr_vcpus; i++)
			vmce_kvm_kick(vm->kvm, i);
	vmm_wake_control(vm);
}

/* vmce's event callback: the events log file, stderr for fatal events, wake the followers. */
static void on_event(const struct vmce_event *ev, void *opaque)
{
	struct vmm *vm = opaque;
	char buf[1024];

	if (vm->events_log) {
		int n = vmce_event_format_json(ev, buf, sizeof(buf));
		char *line = buf;

		/* A reason full of escaped bytes may not fit: format it again, whole. */
		if (n >= (int)sizeof(buf)) {
			line = malloc((size_t)n + 1);
			if (line)
				vmce_event_format_json(ev, line, (size_t)n + 1);
		}
		if (line && n > 0) {
			pthread_mutex_lock(&vm->out_lock);
			fprintf(vm->events_log, "%s\n", line);
			fflush(vm->events_log);
			pthread_mutex_unlock(&vm->out_lock);
		}
		if (line != buf)
			free(line);
	}
	if (ev->kind == VMCE_EVENT_FATAL)
		fprintf(stderr,
			"vmce-vm: vmce: fatal to the guest (vCPU %d, event %" PRIu64 "): %s\n",
			ev->vcpu, ev->seq, ev->reason);
	vmm_wake_control(vm);
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || s[0] == '-')
		return -1;
	switch (*end) {
	case 'G':
	case 'g':
		v <<= 30;
		end++;
		break;
	case 'M':
	case 'm':
		v <<= 20;
		end++;
		break;
	case 'K':
	case 'k':
		v <<= 10;
		end++;
		break;
	default:
		break;
	}
	if (*end == 'i' || *end == 'B')
		end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
	if (*end)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"mem", required_argument, NULL, 'm'},
		{"cpus", required_argument, NULL, 'c'},
		{"profile", required_argument, NULL, 'p'},
		{"image", required_argument, NULL, 'i'},
		{"no-workload", no_argument, NULL, 'W'},
		{"quiet-poller", no_argument, NULL, 'Q'},
		{"control", required_argument, NULL, 'C'},
		{"console-file", required_argument, NULL, 'f'},
		{"console-prefix", required_argument, NULL, 'P'},
		{"events-log", required_argument, NULL, 'e'},
		{"timeout", required_argument, NULL, 't'},
		{"hybrid", no_argument, NULL, 'H'},
		{"fatal", required_argument, NULL, 'F'},
		{"incoming", required_argument, NULL, 'I'},
		{"hold-max", required_argument, NULL, 'x'},
		{"hold-timeout", required_argument, NULL, 'y'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct vmm vmstore;
	struct vmm *vm = &vmstore;
	struct vmce_err err;
	sigset_t sigs;
	int opt, status;
	char *end;

	vm->mem_size = 64ull << 20;
	vm->nr_vcpus = 2;
	vm->workload = true;
	vm->wake_fd = -1;
	vmce_profile_default(&vm->profile);
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->out_lock, NULL);
	pthread_cond_init(&vm->cond, NULL);

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'm':
			if (parse_size(optarg, &vm->mem_size) || vm->mem_size < (4ull << 20) ||
			    vm->mem_size > (3ull << 30) || (vm->mem_size & 0xfff)) {
				fprintf(stderr,
					"vmce-vm: --mem %s: expected a size of 4M to 3G, a "
					"multiple "
					"of 4 KiB\n",
					optarg);
				return VMM_EXIT_USAGE;
			}
			break;
		case 'c': {
			unsigned long n;

			errno = 0;
			n = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || n < 1 || n > VMM_MAX_VCPUS) {
				fprintf(stderr, "vmce-vm: --cpus %s: expected 1 to %d\n", optarg,
					VMM_MAX_VCPUS);
				return VMM_EXIT_USAGE;
			}
			vm->nr_vcpus = (unsigned)n;
			break;
		}
		case 'p':
			if (vmce_profile_parse(optarg, &vm->profile, &err)) {
				fprintf(stderr, "vmce-vm: --profile %s: %s\n", optarg, err.msg);
				return VMM_EXIT_USAGE;
			}
			break;
		case 'i':
			vm->image_path = optarg;
			break;
		case 'W':
			vm->workload = false;
			break;
		case 'Q':
			vm->quiet_poller = true;
			break;
		case 'C':
			vm->control_path = optarg;
			break;
		case 'f':
			vm->console_file_path = optarg;
			break;
		case 'P':
			vm->console_prefix = optarg;
			break;
		case 'e':
			vm->events_log_path = optarg;
			break;
		case 't':
			errno = 0;
			vm->timeout = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(vm->timeout > 0) ||
			    vm->timeout > 1e7) {
				fprintf(stderr,
					"vmce-vm: --timeout %s: expected a positive number "
					"of seconds\n",
					optarg);
				return VMM_EXIT_USAGE;
			}
			break;
		case 'H':
			vm->hybrid = true;
			break;
		case 'F':
			if (!strcmp(optarg, "shutdown")) {
				vm->fatal = VMCE_FATAL_SHUTDOWN;
			} else if (!strcmp(optarg, "log-only")) {
				vm->fatal = VMCE_FATAL_LOG_ONLY;
			} else {
				fprintf(stderr,
					"vmce-vm: --fatal %s: expected shutdown or log-only\n",
					optarg);
				return VMM_EXIT_USAGE;
			}
			break;
		case 'I':
			vm->incoming = optarg;
			break;
		case 'x':
		case 'y': {
			unsigned long n;

			errno = 0;
			n = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || n < 1 ||
			    n > (opt == 'x' ? VMCE_HOLD_MAX_RECORDS : 3600000u)) {
				fprintf(stderr, "vmce-vm: --%s %s: expected 1 to %u\n",
					opt == 'x' ? "hold-max" : "hold-timeout", optarg,
					opt == 'x' ? VMCE_HOLD_MAX_RECORDS : 3600000u);
				return VMM_EXIT_USAGE;
			}
			if (opt == 'x')
				vm->hold_max = (unsigned)n;
			else
				vm->hold_timeout_ms = (unsigned)n;
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return VMM_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vmce-vm: unexpected argument '%s' (see --help)\n", argv[optind]);
		return VMM_EXIT_USAGE;
	}

	/* SIGINT/SIGTERM are taken by the main thread with sigtimedwait(); threads inherit the
	 * mask.  SIGPIPE: a control client that went away is handled by send()'s error. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	if (vm->console_file_path) {
		vm->console_file = fopen(vm->console_file_path, "we");
		if (!vm->console_file) {
			fprintf(stderr, "vmce-vm: --console-file %s: %s\n", vm->console_file_path,
				strerror(errno));
			return VMM_EXIT_USAGE;
		}
	}
	if (vm->events_log_path) {
		vm->events_log = fopen(vm->events_log_path, "ae");
		if (!vm->events_log) {
			fprintf(stderr, "vmce-vm: --events-log %s: %s\n", vm->events_log_path,
				strerror(errno));
			return VMM_EXIT_USAGE;
		}
	}
	vm->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	vm->on_event = on_event;

	if (vm->incoming) {
		int r;

		r = vmm_migrate_in(vm, vm->incoming);
		if (r) {
			vmm_teardown(vm);
			return r == -2	 ? VMM_EXIT_USAGE
			       : r == -3 ? VMM_EXIT_TIMEOUT
					 : VMM_EXIT_ERROR;
		}
	} else if (vmm_setup(vm)) {
		vmm_teardown(vm);
		return VMM_EXIT_ERROR;
	}
	vmce_set_event_callback(vm->vmce, on_event, vm);
	if (vm->control_path && control_start(vm)) {
		vmm_teardown(vm);
		return VMM_EXIT_ERROR;
	}
	if (vmm_start_vcpus(vm) == 0) {
		uint64_t deadline =
			vm->timeout > 0 ? vm->start_ns + (uint64_t)(vm->timeout * 1e9) : UINT64_MAX;

		unsigned held = 0;

		while (!atomic_load(&vm->stopped)) {
			/* 1 ms while errors are held (their vCPUs may not exit on their own once
			 * they settled), else 100 ms. */
			struct timespec ts = {0, held ? 1000 * 1000 : 100 * 1000 * 1000};
			uint64_t lost = 0;
			int sig = sigtimedwait(&sigs, NULL, &ts);

			/* Host memory errors reported as BUS_MCEERR_AO land in vmce's ring; vCPU
			 * threads process it before each entry, but halted vCPUs may not run. */
			vmce_kvm_sigbus_process(vm->kvm, &lost);
			/* Held records: release what the vCPUs left, apply the hung-handler
			 * timeout. */
			held = vmce_hold_poll(vm->vmce);
			/* A safety net: a vCPU with records still pending is kicked again (a
			 * broadcast must reach every vCPU within the guest's 1 s rendezvous). */
			vmce_kvm_kick_pending(vm->kvm);
			if (lost)
				fprintf(stderr,
					"vmce-vm: %" PRIu64 " host memory-error signal(s) lost "
					"(ring full)\n",
					lost);
			if (sig == SIGINT || sig == SIGTERM)
				vmm_stop(vm, VMM_EXIT_SIGNAL, "stopped by %s",
					 sig == SIGINT ? "SIGINT" : "SIGTERM");
			else if (vmm_now_ns() >= deadline)
				vmm_stop(vm, VMM_EXIT_TIMEOUT, "--timeout of %g s expired",
					 vm->timeout);
		}
	}
	vmm_join_vcpus(vm);
	if (vm->events_log) {
		struct sbuf line;
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		sbuf_init(&line, 4096);
		sbuf_printf(&line,
			    "{\"kind\":\"vm-exit\",\"status\":%d,\"reason\":", vm->exit_status);
		sbuf_json_str(&line, vm->exit_reason);
		sbuf_printf(&line, ",\"time_ns\":%" PRIu64 "}\n",
			    (uint64_t)now.tv_sec * UINT64_C(1000000000) + (uint64_t)now.tv_nsec);
		pthread_mutex_lock(&vm->out_lock);
		if (line.buf)
			fputs(line.buf, vm->events_log);
		fflush(vm->events_log);
		pthread_mutex_unlock(&vm->out_lock);
		sbuf_free(&line);
	}
	if (vm->control_path)
		control_finish(vm);
	status = vm->exit_status;
	vmce_set_event_callback(vm->vmce, NULL, NULL);
	vmm_teardown(vm);
	if (vm->events_log)
		fclose(vm->events_log);
	if (vm->console_file)
		fclose(vm->console_file);
	if (vm->wake_fd >= 0)
		close(vm->wake_fd);
	return status;
}
