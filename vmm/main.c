// SPDX-License-Identifier: MIT
/*
 * vmce-vm: a small reference VMM on KVM that embeds vmce.  Options, lifecycle, exit statuses.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

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

/* --cpus, --hold-max, --hold-timeout: an integer from 1 to max. */
static int parse_count(const char *opt, const char *arg, unsigned long max, unsigned *out)
{
	unsigned long n;
	char *end;

	errno = 0;
	n = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || n < 1 || n > max) {
		fprintf(stderr, "vmce-vm: --%s %s: expected 1 to %lu\n", opt, arg, max);
		return -1;
	}
	*out = (unsigned)n;
	return 0;
}

static int parse_option(struct vmm *vm, int opt, const char *arg)
{
	struct vmce_err err;
	char *end;

	switch (opt) {
	case 'm':
		if (parse_size(arg, &vm->mem_size) || vm->mem_size < (4ull << 20) ||
		    vm->mem_size > (3ull << 30) || (vm->mem_size & 0xfff)) {
			fprintf(stderr,
				"vmce-vm: --mem %s: expected a size of 4M to 3G, a multiple of "
				"4 KiB\n",
				arg);
			return -1;
		}
		return 0;
	case 'c':
		return parse_count("cpus", arg, VMM_MAX_VCPUS, &vm->nr_vcpus);
	case 'p':
		if (vmce_profile_parse(arg, &vm->profile, &err)) {
			fprintf(stderr, "vmce-vm: --profile %s: %s\n", arg, err.msg);
			return -1;
		}
		return 0;
	case 't':
		errno = 0;
		vm->timeout = strtod(arg, &end);
		if (errno || end == arg || *end || !(vm->timeout > 0) || vm->timeout > 1e7) {
			fprintf(stderr,
				"vmce-vm: --timeout %s: expected a positive number of seconds\n",
				arg);
			return -1;
		}
		return 0;
	case 'F':
		if (!strcmp(arg, "shutdown")) {
			vm->fatal = VMCE_FATAL_SHUTDOWN;
		} else if (!strcmp(arg, "log-only")) {
			vm->fatal = VMCE_FATAL_LOG_ONLY;
		} else {
			fprintf(stderr, "vmce-vm: --fatal %s: expected shutdown or log-only\n",
				arg);
			return -1;
		}
		return 0;
	case 'x':
		return parse_count("hold-max", arg, VMCE_HOLD_MAX_RECORDS, &vm->hold_max);
	case 'y':
		return parse_count("hold-timeout", arg, 3600000u, &vm->hold_timeout_ms);
	}
	return -1;
}

/* The options; -1: exit with *status (usage error, or --help). */
static int parse_options(struct vmm *vm, int argc, char **argv, int *status)
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
	/* Options that only record their argument or set a flag. */
	const char **path = NULL;
	int opt;

	*status = VMM_EXIT_USAGE;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			path = &vm->image_path;
			break;
		case 'C':
			path = &vm->control_path;
			break;
		case 'f':
			path = &vm->console_file_path;
			break;
		case 'P':
			path = &vm->console_prefix;
			break;
		case 'e':
			path = &vm->events_log_path;
			break;
		case 'I':
			path = &vm->incoming;
			break;
		case 'W':
			vm->workload = false;
			continue;
		case 'Q':
			vm->quiet_poller = true;
			continue;
		case 'H':
			vm->hybrid = true;
			continue;
		case 'h':
			usage(stdout);
			*status = 0;
			return -1;
		case '?':
			usage(stderr);
			return -1;
		default:
			if (parse_option(vm, opt, optarg))
				return -1;
			continue;
		}
		*path = optarg;
	}
	if (optind < argc) {
		fprintf(stderr, "vmce-vm: unexpected argument '%s' (see --help)\n", argv[optind]);
		return -1;
	}
	return 0;
}

/* --console-file, --events-log: opened before anything starts (a usage error otherwise). */
static int open_outputs(struct vmm *vm)
{
	if (vm->console_file_path) {
		vm->console_file = fopen(vm->console_file_path, "we");
		if (!vm->console_file) {
			fprintf(stderr, "vmce-vm: --console-file %s: %s\n", vm->console_file_path,
				strerror(errno));
			return -1;
		}
	}
	if (vm->events_log_path) {
		vm->events_log = fopen(vm->events_log_path, "ae");
		if (!vm->events_log) {
			fprintf(stderr, "vmce-vm: --events-log %s: %s\n", vm->events_log_path,
				strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* A booted VM, or one received from a source (--incoming); the exit status on failure. */
static int create_vm(struct vmm *vm)
{
	struct vmm_err err;

	if (vm->incoming) {
		switch (vmm_migrate_in(vm, vm->incoming)) {
		case VMM_MIG_IN_OK:
			return 0;
		case VMM_MIG_IN_BAD_ADDR:
			return VMM_EXIT_USAGE;
		case VMM_MIG_IN_TIMEOUT:
			return VMM_EXIT_TIMEOUT;
		case VMM_MIG_IN_FAILED:
			break;
		}
		return VMM_EXIT_ERROR;
	}
	if (vmm_setup(vm, &err)) {
		fprintf(stderr, "vmce-vm: %s\n", err.msg);
		return VMM_EXIT_ERROR;
	}
	return 0;
}

/* The main thread while the guest runs: signals, host memory errors, held records, --timeout. */
static void run(struct vmm *vm, const sigset_t *sigs)
{
	uint64_t deadline =
		vm->timeout > 0 ? vm->start_ns + (uint64_t)(vm->timeout * 1e9) : UINT64_MAX;
	unsigned held = 0;

	while (!atomic_load(&vm->stopped)) {
		/* 1 ms while errors are held (their vCPUs may not exit on their own once they
		 * settled), else 100 ms. */
		struct timespec ts = {0, held ? 1000 * 1000 : 100 * 1000 * 1000};
		uint64_t lost = 0;
		int sig = sigtimedwait(sigs, NULL, &ts);

		/* Host memory errors reported as BUS_MCEERR_AO land in vmce's ring; vCPU threads
		 * process it before each entry, but halted vCPUs may not run. */
		vmce_kvm_sigbus_process(vm->kvm, &lost);
		/* Held records: release what the vCPUs left, apply the hung-handler timeout. */
		held = vmce_hold_poll(vm->vmce);
		/* A safety net: a vCPU with records still pending is kicked again (a broadcast
		 * must reach every vCPU within the guest's 1 s rendezvous). */
		vmce_kvm_kick_pending(vm->kvm);
		if (lost)
			fprintf(stderr,
				"vmce-vm: %" PRIu64
				" host memory-error signal(s) lost (ring full)\n",
				lost);
		if (sig == SIGINT || sig == SIGTERM)
			vmm_stop(vm, VMM_EXIT_SIGNAL, "stopped by %s",
				 sig == SIGINT ? "SIGINT" : "SIGTERM");
		else if (vmm_now_ns() >= deadline)
			vmm_stop(vm, VMM_EXIT_TIMEOUT, "--timeout of %g s expired", vm->timeout);
	}
}

static void close_outputs(struct vmm *vm)
{
	if (vm->events_log)
		fclose(vm->events_log);
	if (vm->console_file)
		fclose(vm->console_file);
	if (vm->wake_fd >= 0)
		close(vm->wake_fd);
}

int main(int argc, char **argv)
{
	static struct vmm vmstore;
	struct vmm *vm = &vmstore;
	json_t *exit_line;
	sigset_t sigs;
	int status;

	vm->mem_size = 64ull << 20;
	vm->nr_vcpus = 2;
	vm->workload = true;
	vm->wake_fd = -1;
	vmce_profile_default(&vm->profile);
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->out_lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	if (parse_options(vm, argc, argv, &status))
		return status;

	/* SIGINT/SIGTERM are taken by the main thread with sigtimedwait(); threads inherit the
	 * mask.  SIGPIPE: a control client that went away is handled by send()'s error. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	if (open_outputs(vm))
		return VMM_EXIT_USAGE;
	vm->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	vm->on_event = vmm_on_event;

	status = create_vm(vm);
	if (!status) {
		vmce_set_event_callback(vm->vmce, vmm_on_event, vm);
		if (vm->control_path && control_start(vm))
			status = VMM_EXIT_ERROR;
	}
	if (status) {
		vmm_teardown(vm);
		return status;
	}
	if (vmm_start_vcpus(vm) == 0)
		run(vm, &sigs);
	vmm_join_vcpus(vm);
	exit_line = vmm_exit_json(vm);
	vmm_log_json(vm, exit_line);
	json_decref(exit_line);
	if (vm->control_path)
		control_finish(vm);
	status = vm->exit_status;
	vmce_set_event_callback(vm->vmce, NULL, NULL);
	vmm_teardown(vm);
	close_outputs(vm);
	return status;
}
