// SPDX-License-Identifier: MIT
/*
 * Live migration, the source side (the control socket's "migrate" request): connect, hello,
 * park the vCPUs and copy memory and vCPU state, the vmce stream and the interlock with
 * errors forwarded meanwhile, commit.  Any failure before the destination's "running" answer
 * leaves the guest running here (docs/control-protocol.md §8).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mig.h"

/* What the source has done so far, for the clean-up of a failure. */
struct mig_out {
	struct vmm *vm;
	struct mig_conn m;
	struct vmm_mig_result *res;
	bool begun, paused;
	uint64_t t0, tp; /* start, and when the vCPUs were parked */
};

static int send_memory(struct mig_out *o)
{
	struct vmm *vm = o->vm;
	struct vmm_mig_result *res = o->res;
	uint64_t gpa = 0, counts[2];

	while (gpa < vm->mem_size) {
		uint64_t start, len = 0;

		if (vmce_poison_contains(vm->vmce, gpa)) {
			res->pages_skipped++;
			gpa += MIG_PAGE;
			continue;
		}
		start = gpa;
		while (gpa < vm->mem_size && len < MIG_MEM_CHUNK &&
		       !vmce_poison_contains(vm->vmce, gpa)) {
			gpa += MIG_PAGE;
			len += MIG_PAGE;
		}
		if (mig_send2(&o->m, F_MEM, &start, sizeof(start), vm->mem + start, len))
			return -1;
		res->pages_sent += len / MIG_PAGE;
	}
	counts[0] = res->pages_sent;
	counts[1] = res->pages_skipped;
	return mig_send(&o->m, F_MEM_DONE, counts, sizeof(counts));
}

static int send_vmce(struct mig_out *o)
{
	struct vmm *vm = o->vm;
	struct vmce_err err;
	void *buf;
	size_t len;
	int rc;

	/* Hybrid mode: KVM's MCA registers are the live state; the vCPUs are parked. */
	for (unsigned i = 0; vm->hybrid && i < vm->nr_vcpus; i++)
		if (vm->vcpu[i].kv && vmce_kvm_sync_from_kernel(vm->vcpu[i].kv, &err))
			return vmm_fail(&o->m.err, "vCPU %u: %s", i, err.msg);
	if (vmce_save_alloc(vm->vmce, &buf, &len, &err))
		return vmm_fail(&o->m.err, "vmce_save: %s", err.msg);
	o->res->vmce_bytes = len;
	rc = mig_send(&o->m, F_VMCE, buf, len);
	free(buf);
	if (rc)
		return -1;
	return mig_recv_reply(&o->m, "vmce state");
}

#ifdef VMCE_VM_TEST_HOOKS
/* Test hook: VMCE_VM_TEST_MIGRATE_INJECT=GPA[@CPU] injects an SRAO at GPA on the source after
 * the first vmce stream was sent, i.e. between vmce_migration_begin() and _end(); with @CPU, a
 * local one (LMCE, when the guest enabled it) on that vCPU. */
static void test_inject_during(struct vmm *vm)
{
	const char *s = getenv("VMCE_VM_TEST_MIGRATE_INJECT");
	struct vmce_host_error he;
	struct vmce_err err;
	char *end;
	uint64_t gpa;

	if (!s || !*s)
		return;
	vmce_host_error_init(&he);
	he.vcpu = 0;
	errno = 0;
	gpa = strtoull(s, &end, 0);
	if (*end == '@') {
		unsigned long cpu = strtoul(end + 1, &end, 10);

		if (cpu >= vm->nr_vcpus)
			errno = ERANGE;
		he.vcpu = (int)cpu;
		he.local = true;
	}
	if (errno || *end || gpa >= vm->mem_size) {
		fprintf(stderr, "vmce-vm: VMCE_VM_TEST_MIGRATE_INJECT=%s: not a guest address\n",
			s);
		return;
	}
	he.origin = VMCE_ORIGIN_INJECT;
	he.cls = VMCE_CLASS_SRAO;
	he.addr_kind = VMCE_ADDR_GPA;
	he.addr = gpa;
	if (vmce_kvm_inject(vm->kvm, &he, NULL, &err) < 0)
		fprintf(stderr, "vmce-vm: test injection during migration: %s\n", err.msg);
	else
		fprintf(stderr, "vmce-vm: test: SRAO at 0x%" PRIx64 " injected during migration\n",
			gpa);
}
#else
static void test_inject_during(struct vmm *vm)
{
}
#endif

static int connect_to(struct mig_out *o, const char *to)
{
	union mig_addr a;
	socklen_t alen;

	if (mig_parse_addr(to, &a, &alen, &o->m.err))
		return -1;
	o->m.fd = socket(a.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (o->m.fd < 0)
		return vmm_fail(&o->m.err, "socket: %s", strerror(errno));
	mig_set_timeouts(o->m.fd);
	if (connect(o->m.fd, &a.sa, alen) < 0) {
		vmm_fail(&o->m.err, "cannot connect to %s: %s", to, strerror(errno));
		close(o->m.fd);
		o->m.fd = -1;
		return -1;
	}
	return 0;
}

/* 1. The guest's profile first: the destination refuses early if it cannot back it. */
static int send_hello(struct mig_out *o)
{
	struct vmm *vm = o->vm;
	struct mig_hello hello;
	struct vmce_err err;

	memset(&hello, 0, sizeof(hello));
	hello.magic = MIG_MAGIC;
	hello.version = MIG_VERSION;
	hello.nr_vcpus = vm->nr_vcpus;
	hello.mem_size = vm->mem_size;
	vmce_profile_format(vmce_vm_profile(vm->vmce), hello.profile, sizeof(hello.profile));
	if (mig_send(&o->m, F_HELLO, &hello, sizeof(hello)) || mig_recv_reply(&o->m, "hello"))
		return -1;
	if (vmce_migration_begin(vm->vmce, &err))
		return vmm_fail(&o->m.err, "vmce_migration_begin: %s", err.msg);
	o->begun = true;
	return 0;
}

/* 2. Stop and copy: park the vCPUs, send memory (poisoned pages skipped), vCPU state. */
static int stop_and_copy(struct mig_out *o)
{
	static struct mig_msrs msrs;
	static struct mig_vcpu v;
	struct vmm *vm = o->vm;

	if (vmm_pause_vcpus(vm, &o->m.err))
		return -1;
	o->paused = true;
	o->tp = vmm_now_ns();
	if (send_memory(o))
		return -1;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		if (mig_get_vcpu(vm, i, &v, &msrs, &o->m.err))
			return -1;
		if (mig_send2(&o->m, F_VCPU, &v, sizeof(v), msrs.e,
			      v.nmsrs * sizeof(struct kvm_msr_entry)))
			return -1;
	}
	return 0;
}

/* 3. The vmce state; resent as long as errors were forwarded after the last save. */
static int send_vmce_state(struct mig_out *o, bool abort_on_error)
{
	struct vmm *vm = o->vm;
	struct vmce_migration_result mr;
	struct vmce_err err;

	if (send_vmce(o))
		return -1;
	test_inject_during(vm);
	for (;;) {
		if (vmce_migration_end(
			    vm->vmce, abort_on_error ? VMCE_MIGRATION_ABORT : VMCE_MIGRATION_RESEND,
			    &mr, &err))
			return vmm_fail(&o->m.err, "vmce_migration_end: %s", err.msg);
		if (mr.outcome == VMCE_MIGRATION_COMPLETE)
			break;
		if (mr.outcome == VMCE_MIGRATION_ABORTED) {
			o->begun = false;
			o->res->aborted = true;
			return vmm_fail(&o->m.err,
					"aborted: %" PRIu64 " error(s) forwarded during the "
					"migration (events %" PRIu64 "-%" PRIu64
					"); the guest stays here",
					mr.unsent, mr.first_seq, mr.last_seq);
		}
		o->res->resends++;
		if (send_vmce(o))
			return -1;
	}
	o->begun = false;
	return 0;
}

/* 4. Commit: from the destination's answer on, the guest runs there.  A VM told to stop
 * meanwhile (SIGTERM, --timeout) does not hand its guest over.  The migration is over in
 * vmce's view; a destination that answered nothing never started the guest: it keeps
 * running here. */
static int commit(struct mig_out *o)
{
	if (atomic_load(&o->vm->stopped))
		return vmm_fail(&o->m.err,
				"the VM is stopping: migration cancelled before the commit");
	return mig_send(&o->m, F_COMMIT, NULL, 0) || mig_recv_reply(&o->m, "commit") ? -1 : 0;
}

int vmm_migrate_out(struct vmm *vm, const char *to, bool abort_on_error, struct vmm_mig_result *res)
{
	struct mig_out o = {.vm = vm, .m = {.fd = -1}, .res = res, .t0 = vmm_now_ns()};
	int rc = -1;

	memset(res, 0, sizeof(*res));
	if (connect_to(&o, to)) {
		res->err = o.m.err;
		return -1;
	}
	if (send_hello(&o) || stop_and_copy(&o) || send_vmce_state(&o, abort_on_error) ||
	    commit(&o)) {
		res->err = o.m.err;
		(void)mig_send(&o.m, F_ABORT, NULL, 0);
		if (o.begun)
			vmce_migration_abort(vm->vmce, NULL);
		if (o.paused)
			vmm_resume_vcpus(vm);
	} else {
		res->total_ms = (double)(vmm_now_ns() - o.t0) / 1e6;
		res->downtime_ms = (double)(vmm_now_ns() - o.tp) / 1e6;
		rc = 0;
	}
	res->bytes = o.m.bytes_out;
	close(o.m.fd);
	return rc;
}
