// SPDX-License-Identifier: MIT
/*
 * The vCPU threads of vmce-vm and their run loop: the console, the exit port, MCA MSRs and
 * machine checks through vmce, poisoned pages of a migrated guest, parking for a migration.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm.h"

#define PORT_CONSOLE 0x3f8
#define PORT_EXIT    0x501

static void console_flush(struct vmm_vcpu *c)
{
	struct vmm *vm = c->vm;
	const char *pfx = vm->console_prefix ? vm->console_prefix : "";

	pthread_mutex_lock(&vm->out_lock);
	fprintf(stdout, "%s%.*s\n", pfx, (int)c->line_len, c->line);
	fflush(stdout);
	if (vm->console_file) {
		fprintf(vm->console_file, "%.*s\n", (int)c->line_len, c->line);
		fflush(vm->console_file);
	}
	pthread_mutex_unlock(&vm->out_lock);
	c->line_len = 0;
}

static void console_byte(struct vmm_vcpu *c, uint8_t b)
{
	if (b == '\n') {
		console_flush(c);
		return;
	}
	if (b == '\r')
		return;
	/* A line that fills the buffer is printed in pieces; the buffer always keeps room for
	 * one escaped byte (4 characters) and the terminating NUL. */
	if (c->line_len + 5 > sizeof(c->line))
		console_flush(c);
	/* Non-printable bytes are shown escaped so the console stays one line per line. */
	if (b < 0x20 || b >= 0x7f) {
		c->line_len += (size_t)snprintf(c->line + c->line_len, 5, "\\x%02x", b);
		return;
	}
	c->line[c->line_len++] = (char)b;
}

/* Port I/O: console THR and LSR, the exit port; everything else reads as all-ones. */
static void handle_io(struct vmm_vcpu *c)
{
	struct kvm_run *run = c->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	size_t n = (size_t)run->io.size * run->io.count;

	if (run->io.data_offset > c->run_size || n > c->run_size - run->io.data_offset)
		return;
	if (run->io.direction == KVM_EXIT_IO_OUT) {
		if (run->io.port == PORT_CONSOLE) {
			for (size_t i = 0; i < n; i += run->io.size)
				console_byte(c, data[i]);
		} else if (run->io.port == PORT_EXIT) {
			unsigned v = data[0];

			if (c->line_len)
				console_flush(c);
			if (v == 0)
				vmm_stop(c->vm, VMM_EXIT_OK, "the guest exited with status 0");
			else if (v == 3)
				vmm_stop(c->vm, VMM_EXIT_GUEST_PANIC,
					 "the guest panicked (wrote 3 to port 0x501)");
			else
				vmm_stop(c->vm, VMM_EXIT_GUEST_OTHER,
					 "the guest exited with status %u (port 0x501)", v);
		}
		return;
	}
	if (run->io.port == PORT_CONSOLE + 5)
		memset(data, 0x60, n); /* LSR: THR empty, transmitter idle */
	else
		memset(data, 0xff, n);
}

/*
 * The guest touched poison inside its #MC handler (control "in_handler"): the armed error is
 * injected from this vCPU's thread at an MCA MSR exit that finds MCIP set, as a SIGBUS AR
 * would arrive while the handler runs.
 */
static void armed_inject(struct vmm_vcpu *c)
{
	struct vmce_vcpu_state st;
	struct vmce_err err;

	if (!atomic_load(&c->armed))
		return;
	if (c->run->exit_reason != KVM_EXIT_X86_RDMSR && c->run->exit_reason != KVM_EXIT_X86_WRMSR)
		return;
	vmce_vcpu_get_state(vmce_vm_vcpu(c->vm->vmce, c->index), &st);
	if (!(st.mcg_status & VMCE_MCG_STATUS_MCIP))
		return;
	atomic_store(&c->armed, 0);
	if (vmce_kvm_inject(c->vm->kvm, &c->armed_error, NULL, &err) < 0)
		fprintf(stderr, "vmce-vm: vCPU %u: in-handler injection: %s\n", c->index, err.msg);
}

/*
 * An MMIO exit inside guest RAM: the page is not in any memory slot because it is poisoned (a
 * migrated guest, see mig_in.c).  The guest consumed poison: an action-required error for this
 * vCPU through the policy, like a host SIGBUS BUS_MCEERR_AR.  Returns true when handled that way.
 */
static bool poisoned_access(struct vmm_vcpu *c)
{
	struct vmm *vm = c->vm;
	struct vmce_host_error he;
	struct vmce_err err;
	uint64_t gpa = c->run->mmio.phys_addr;

	if (gpa >= vm->mem_size || !vmce_poison_contains(vm->vmce, gpa))
		return false;
	if (!c->run->mmio.is_write)
		memset(c->run->mmio.data, 0xff, sizeof(c->run->mmio.data));
	vmce_host_error_init(&he);
	he.origin = VMCE_ORIGIN_SIGBUS_AR;
	he.cls = VMCE_CLASS_SRAR;
	he.addr_kind = VMCE_ADDR_GPA;
	he.addr = gpa & ~(uint64_t)0xfff;
	he.vcpu = (int)c->index;
	he.local = true; /* a data load on this vCPU: local when the guest enabled LMCE */
	if (vmce_kvm_inject(vm->kvm, &he, NULL, &err) < 0)
		fprintf(stderr, "vmce-vm: vCPU %u: access to poisoned page 0x%" PRIx64 ": %s\n",
			c->index, gpa, err.msg);
	return true;
}

/* An exit vmce did not handle. */
static void handle_exit(struct vmm_vcpu *c)
{
	struct vmm *vm = c->vm;

	switch (c->run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(c);
		break;
	case KVM_EXIT_MMIO:
		if (poisoned_access(c))
			break;
		if (!c->run->mmio.is_write)
			memset(c->run->mmio.data, 0xff, sizeof(c->run->mmio.data));
		break;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel LAPIC; nothing can wake the vCPU but an #MC. */
		usleep(1000);
		break;
	case KVM_EXIT_INTR:
		break;
	case KVM_EXIT_X86_RDMSR:
		c->run->msr.error = 1; /* an MSR vmce does not own and KVM refused */
		break;
	case KVM_EXIT_X86_WRMSR:
		c->run->msr.error = 1;
		break;
	case KVM_EXIT_SHUTDOWN:
		vmm_stop(vm, VMM_EXIT_TRIPLE_FAULT,
			 "the guest triple-faulted on vCPU %u (KVM_EXIT_SHUTDOWN)", c->index);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		vmm_stop(vm, VMM_EXIT_ERROR, "vCPU %u: KVM_EXIT_FAIL_ENTRY, hardware reason 0x%llx",
			 c->index,
			 (unsigned long long)c->run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		vmm_stop(vm, VMM_EXIT_ERROR, "vCPU %u: KVM internal error, suberror %u", c->index,
			 c->run->internal.suberror);
		break;
	default:
		vmm_stop(vm, VMM_EXIT_ERROR, "vCPU %u: unexpected KVM exit reason %u", c->index,
			 c->run->exit_reason);
		break;
	}
}

static void *vcpu_thread(void *arg)
{
	struct vmm_vcpu *c = arg;
	struct vmm *vm = c->vm;
	struct vmce_err err;
	sigset_t set;

	/* The kick signal must be deliverable here; everything else goes to the main thread. */
	sigfillset(&set);
	sigdelset(&set, SIGUSR2);
	sigdelset(&set, SIGBUS);
	sigdelset(&set, SIGSEGV);
	pthread_sigmask(SIG_SETMASK, &set, NULL);

	if (vmce_kvm_vcpu_init(vm->kvm, c->index, c->fd, c->run, &c->kv, &err)) {
		vmm_stop(vm, VMM_EXIT_ERROR, "vCPU %u: vmce KVM backend: %s", c->index, err.msg);
		c->kv = NULL;
	}
	pthread_mutex_lock(&vm->lock);
	vm->vcpus_ready++;
	pthread_cond_broadcast(&vm->cond);
	while (vm->vcpus_ready < vm->nr_vcpus && !atomic_load(&vm->stopped))
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);

	while (c->kv && !atomic_load(&vm->stopped)) {
		struct vmce_kvm_status st;
		int r = vmce_kvm_pre_run(c->kv, &st, &err);

		if (r < 0) {
			vmm_stop(vm, VMM_EXIT_ERROR, "vCPU %u: %s", c->index, err.msg);
			break;
		}
		if (r == VMCE_KVM_SHUTDOWN) {
			vmm_stop(vm, VMM_EXIT_VMCE_SHUTDOWN,
				 "vmce shut the guest down on vCPU %u: %s (event %" PRIu64 ")",
				 c->index, st.reason, st.event_seq);
			break;
		}
		if (atomic_load(&vm->stopped))
			break;
		if (atomic_load(&vm->pause_req)) {
			vmm_vcpu_park(vm);
			continue;
		}
		if (ioctl(c->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			vmm_stop(vm, VMM_EXIT_ERROR, "vCPU %u: KVM_RUN: %s", c->index,
				 strerror(errno));
			break;
		}
		if (vmce_kvm_handle_exit(c->kv) == VMCE_KVM_EXIT_HANDLED) {
			armed_inject(c);
			continue;
		}
		handle_exit(c);
	}
	if (c->line_len)
		console_flush(c);
	if (c->kv)
		vmce_kvm_vcpu_fini(c->kv);
	c->kv = NULL;
	return NULL;
}

int vmm_start_vcpus(struct vmm *vm)
{
	vm->start_ns = vmm_now_ns();
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		int r = pthread_create(&vm->vcpu[i].thread, NULL, vcpu_thread, &vm->vcpu[i]);

		if (r) {
			vmm_stop(vm, VMM_EXIT_ERROR, "cannot create vCPU thread %u: %s", i,
				 strerror(r));
			return -1;
		}
		vm->vcpu[i].thread_started = true;
	}
	return 0;
}

void vmm_join_vcpus(struct vmm *vm)
{
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		if (!vm->vcpu[i].thread_started)
			continue;
		pthread_join(vm->vcpu[i].thread, NULL);
		vm->vcpu[i].thread_started = false;
	}
}
