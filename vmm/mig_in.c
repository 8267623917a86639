// SPDX-License-Identifier: MIT
/*
 * Live migration, the destination side (--incoming ADDR): wait for one source, then build the
 * VM from what it sends, phase by phase -- hello (can this host back the guest?), memory, vCPU
 * states, the vmce stream (again after a resend) until the commit.  Nothing runs before the
 * commit; every byte read is untrusted (mig.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mig.h"

/* How a phase ended. */
enum mig_step {
	STEP_OK,
	STEP_FAIL,   /* transport or protocol error: m.err says why */
	STEP_REFUSE, /* the source's guest cannot be taken: tell the source m.err */
};

/* The destination's state across the phases. */
struct mig_in {
	struct vmm *vm;
	struct mig_conn m;
	struct vmce_profile backing; /* what this host can back (its --profile) */
	uint8_t *got;		     /* one bit per guest page received */
	uint64_t pages;		     /* pages received */
};

static int listen_on(union mig_addr *a, socklen_t alen, struct vmm_err *err)
{
	struct stat st;
	int fd, one = 1;

	fd = socket(a->sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return vmm_fail(err, "%s", strerror(errno));
	if (a->sa.sa_family == AF_UNIX) {
		if (lstat(a->un.sun_path, &st) == 0) {
			if (!S_ISSOCK(st.st_mode)) {
				close(fd);
				return vmm_fail(err, "exists and is not a socket");
			}
			unlink(a->un.sun_path);
		}
	} else {
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	}
	if (bind(fd, &a->sa, alen) < 0 || listen(fd, 1) < 0) {
		vmm_fail(err, "%s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static bool sigterm_pending(void)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, SIGINT);
	sigaddset(&s, SIGTERM);
	return sigtimedwait(&s, NULL, &(struct timespec){0, 0}) > 0;
}

/*
 * Keep every poisoned page out of the guest's memory slots: guest RAM becomes one KVM memory slot
 * per run of healthy pages, so that a guest access to a poisoned page is an MMIO exit with its
 * exact address (vcpu.c turns it into an SRAR on the touching vCPU).  Unprotected before the
 * first KVM_RUN only: runs when the vmce state was restored (again after a resend).
 */
static int protect_poisoned(struct vmm *vm, struct mig_conn *m)
{
	uint64_t pages[MIG_MAX_HOLES];
	size_t n = vmce_poison_list(vm->vmce, pages, MIG_MAX_HOLES, true, 0);
	uint64_t start = 0;
	unsigned slot = 0;

	if (vmce_poison_count(vm->vmce) > MIG_MAX_HOLES)
		return vmm_fail(&m->err,
				"%zu poisoned pages: this VMM keeps at most %d out of the guest's "
				"memory",
				vmce_poison_count(vm->vmce), MIG_MAX_HOLES);
	for (unsigned i = 0; i < vm->nr_slots; i++) {
		struct kvm_userspace_memory_region r = {.slot = i};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
			return vmm_fail(&m->err, "deleting memory slot %u: %s", i, strerror(errno));
	}
	for (size_t i = 0; i <= n; i++) {
		uint64_t end = i < n ? pages[i] : vm->mem_size;
		struct kvm_userspace_memory_region r;

		if (i < n && pages[i] >= vm->mem_size)
			return vmm_fail(&m->err, "poisoned page 0x%" PRIx64 " outside guest memory",
					pages[i]);
		if (end > start) {
			memset(&r, 0, sizeof(r));
			r.slot = slot;
			r.guest_phys_addr = start;
			r.memory_size = end - start;
			r.userspace_addr = (uintptr_t)(vm->mem + start);
			if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
				return vmm_fail(&m->err,
						"memory slot %u (0x%" PRIx64 "-0x%" PRIx64 "): %s",
						slot, start, end, strerror(errno));
			slot++;
		}
		start = end + MIG_PAGE;
	}
	vm->nr_slots = slot;
	return 0;
}

/* Every page the source did not send must be poisoned (it skipped it for that reason only). */
static int check_skipped(struct vmm *vm, struct mig_conn *m, const uint8_t *got)
{
	for (uint64_t p = 0; p < vm->mem_size / MIG_PAGE; p++)
		if (!(got[p / 8] & (1u << (p % 8))) &&
		    !vmce_poison_contains(vm->vmce, p * MIG_PAGE))
			return vmm_fail(&m->err,
					"memory: page 0x%" PRIx64
					" was not sent and is not poisoned in the vmce state",
					p * MIG_PAGE);
	return 0;
}

#ifdef VMCE_VM_TEST_HOOKS
/* Test hook: VMCE_VM_TEST_EXIT_AFTER_MEMORY=1, a destination that dies once it has the memory. */
static void test_exit_after_memory(void)
{
	if (getenv("VMCE_VM_TEST_EXIT_AFTER_MEMORY")) {
		fprintf(stderr, "vmce-vm: test: exiting after the memory was received\n");
		_exit(VMM_EXIT_ERROR);
	}
}
#else
static void test_exit_after_memory(void)
{
}
#endif

/* Wait for a source on lfd; SIGINT/SIGTERM and --timeout end the wait. */
static enum vmm_mig_in_result wait_for_source(struct vmm *vm, int lfd)
{
	uint64_t t0 = vmm_now_ns();

	for (;;) {
		struct pollfd p = {lfd, POLLIN, 0};

		if (sigterm_pending()) {
			fprintf(stderr, "vmce-vm: stopped while waiting for a migration\n");
			return VMM_MIG_IN_FAILED;
		}
		if (vm->timeout > 0 && (double)(vmm_now_ns() - t0) / 1e9 > vm->timeout) {
			fprintf(stderr,
				"vmce-vm: --timeout of %g s expired while waiting for a "
				"migration\n",
				vm->timeout);
			return VMM_MIG_IN_TIMEOUT;
		}
		if (poll(&p, 1, 200) > 0)
			return VMM_MIG_IN_OK;
	}
}

/* A frame of type F_ABORT where another was expected. */
static enum mig_step source_aborted(struct mig_in *in)
{
	vmm_fail(&in->m.err, "the source aborted the migration");
	return STEP_FAIL;
}

/* 1. Hello: can this host back the guest?  Then set the VM up with the guest's profile. */
static enum mig_step recv_hello(struct mig_in *in)
{
	struct vmm *vm = in->vm;
	struct mig_conn *m = &in->m;
	struct mig_hello hello;
	struct vmce_profile guest;
	struct vmce_err err;
	struct vmm_err serr;
	struct mig_hdr h;

	if (mig_recv_hdr(m, 1u << F_HELLO, sizeof(hello), &h))
		return STEP_FAIL;
	if (h.len != sizeof(hello)) {
		vmm_fail(&m->err, "protocol error: hello frame of %" PRIu64 " bytes, expected %zu",
			 h.len, sizeof(hello));
		return STEP_FAIL;
	}
	if (mig_read(m, &hello, sizeof(hello)))
		return STEP_FAIL;
	hello.profile[sizeof(hello.profile) - 1] = '\0';
	if (hello.magic != MIG_MAGIC || hello.version != MIG_VERSION) {
		vmm_fail(&m->err, "hello: not a vmce-vm migration of version %d", MIG_VERSION);
		return STEP_REFUSE;
	}
	if (hello.nr_vcpus < 1 || hello.nr_vcpus > VMM_MAX_VCPUS) {
		vmm_fail(&m->err, "hello: nr_vcpus %u out of range (1 to %d)", hello.nr_vcpus,
			 VMM_MAX_VCPUS);
		return STEP_REFUSE;
	}
	if (hello.mem_size < (4ull << 20) || hello.mem_size > (3ull << 30) ||
	    (hello.mem_size & (MIG_PAGE - 1))) {
		vmm_fail(&m->err, "hello: mem_size 0x%" PRIx64 " out of range", hello.mem_size);
		return STEP_REFUSE;
	}
	if (vmce_profile_parse(hello.profile, &guest, &err) ||
	    vmce_profile_validate(&guest, &err)) {
		vmm_fail(&m->err, "hello: profile: %s", err.msg);
		return STEP_REFUSE;
	}
	if (vmce_profile_can_back(&in->backing, &guest, &err)) {
		char text[128];

		vmce_profile_format(&in->backing, text, sizeof(text));
		vmm_fail(&m->err, "this host (--profile %s) cannot back the guest (%s): %s", text,
			 hello.profile, err.msg);
		return STEP_REFUSE;
	}
	vm->profile = guest;
	vm->nr_vcpus = hello.nr_vcpus;
	vm->mem_size = hello.mem_size;
	if (vmm_setup(vm, &serr)) {
		fprintf(stderr, "vmce-vm: %s\n", serr.msg);
		vmm_fail(&m->err, "cannot set up the destination VM (see its stderr)");
		return STEP_REFUSE;
	}
	vmce_set_event_callback(vm->vmce, vm->on_event, vm);
	return mig_send_reply(m, true, "ready for memory") ? STEP_FAIL : STEP_OK;
}

/* One mem frame (header h read): a range of whole pages inside guest memory, each once. */
static enum mig_step recv_mem_frame(struct mig_in *in, const struct mig_hdr *h)
{
	struct vmm *vm = in->vm;
	struct mig_conn *m = &in->m;
	uint64_t gpa, len;

	if (h->len <= sizeof(gpa) || (h->len - sizeof(gpa)) % MIG_PAGE) {
		vmm_fail(&m->err, "protocol error: mem frame of %" PRIu64 " bytes", h->len);
		return STEP_FAIL;
	}
	if (mig_read(m, &gpa, sizeof(gpa)))
		return STEP_FAIL;
	len = h->len - sizeof(gpa);
	if ((gpa & (MIG_PAGE - 1)) || gpa >= vm->mem_size || len > vm->mem_size - gpa) {
		vmm_fail(&m->err,
			 "memory: range 0x%" PRIx64 "+0x%" PRIx64
			 " is not page-aligned inside guest memory",
			 gpa, len);
		return STEP_FAIL;
	}
	for (uint64_t p = gpa / MIG_PAGE; p < (gpa + len) / MIG_PAGE; p++) {
		if (in->got[p / 8] & (1u << (p % 8))) {
			vmm_fail(&m->err, "memory: page 0x%" PRIx64 " received twice",
				 p * MIG_PAGE);
			return STEP_FAIL;
		}
		in->got[p / 8] |= (uint8_t)(1u << (p % 8));
	}
	if (mig_read(m, vm->mem + gpa, (size_t)len))
		return STEP_FAIL;
	in->pages += len / MIG_PAGE;
	return STEP_OK;
}

/* 2. Memory: mem frames, then mem-done with counts that must match what arrived. */
static enum mig_step recv_memory(struct mig_in *in)
{
	struct vmm *vm = in->vm;
	struct mig_conn *m = &in->m;
	uint64_t counts[2];
	struct mig_hdr h;

	in->got = calloc(vm->mem_size / MIG_PAGE / 8 + 1, 1);
	if (!in->got) {
		vmm_fail(&m->err, "out of memory");
		return STEP_FAIL;
	}
	for (;;) {
		enum mig_step st;

		if (mig_recv_hdr(m, 1u << F_MEM | 1u << F_MEM_DONE | 1u << F_ABORT,
				 sizeof(uint64_t) + MIG_MEM_CHUNK, &h))
			return STEP_FAIL;
		if (h.type == F_ABORT)
			return source_aborted(in);
		if (h.type == F_MEM_DONE)
			break;
		st = recv_mem_frame(in, &h);
		if (st != STEP_OK)
			return st;
	}
	if (h.len != sizeof(counts) || mig_read(m, counts, sizeof(counts))) {
		vmm_fail(&m->err, "protocol error: mem-done frame");
		return STEP_FAIL;
	}
	if (counts[0] != in->pages || counts[0] + counts[1] != vm->mem_size / MIG_PAGE) {
		vmm_fail(&m->err,
			 "memory: %" PRIu64 " pages received, the source says %" PRIu64
			 " sent and %" PRIu64 " skipped of %" PRIu64,
			 in->pages, counts[0], counts[1], (uint64_t)(vm->mem_size / MIG_PAGE));
		return STEP_FAIL;
	}
	test_exit_after_memory();
	return STEP_OK;
}

/* One vcpu frame (header h read) into v and msrs: well-formed, its index not seen yet. */
static enum mig_step recv_vcpu_frame(struct mig_in *in, const struct mig_hdr *h, bool *seen,
				     struct mig_vcpu *v, struct mig_msrs *msrs)
{
	struct mig_conn *m = &in->m;
	uint64_t extra;

	if (h->len < sizeof(*v) || mig_read(m, v, sizeof(*v))) {
		vmm_fail(&m->err, "protocol error: vcpu frame of %" PRIu64 " bytes", h->len);
		return STEP_FAIL;
	}
	extra = h->len - sizeof(*v);
	if (v->index >= in->vm->nr_vcpus || seen[v->index]) {
		vmm_fail(&m->err, "vcpu: index %u out of range or repeated", v->index);
		return STEP_FAIL;
	}
	if (v->nmsrs > MIG_MAX_MSRS || extra != v->nmsrs * sizeof(struct kvm_msr_entry) ||
	    (v->flags & ~(VF_XSAVE | VF_XCRS)) || v->pad) {
		vmm_fail(&m->err, "vcpu %u: %u MSRs in %" PRIu64 " bytes, flags 0x%x: malformed",
			 v->index, v->nmsrs, extra, v->flags);
		return STEP_FAIL;
	}
	if (mig_read(m, msrs->e, (size_t)extra))
		return STEP_FAIL;
	for (unsigned j = 0; j < v->nmsrs; j++)
		if (mig_mca_msr(msrs->e[j].index) || msrs->e[j].reserved) {
			vmm_fail(&m->err, "vcpu %u: MSR 0x%x is not one that travels", v->index,
				 msrs->e[j].index);
			return STEP_FAIL;
		}
	seen[v->index] = true;
	return STEP_OK;
}

/* 3. vCPU states, each exactly once, loaded into KVM as they arrive. */
static enum mig_step recv_vcpus(struct mig_in *in)
{
	static struct mig_msrs msrs;
	static struct mig_vcpu v;
	struct vmm *vm = in->vm;
	enum mig_step st = STEP_OK;
	struct mig_hdr h;
	bool *seen = calloc(vm->nr_vcpus, sizeof(*seen));

	if (!seen) {
		vmm_fail(&in->m.err, "out of memory");
		return STEP_FAIL;
	}
	for (unsigned k = 0; k < vm->nr_vcpus && st == STEP_OK; k++) {
		if (mig_recv_hdr(&in->m, 1u << F_VCPU | 1u << F_ABORT,
				 sizeof(v) + MIG_MAX_MSRS * sizeof(struct kvm_msr_entry), &h))
			st = STEP_FAIL;
		else if (h.type == F_ABORT)
			st = source_aborted(in);
		else
			st = recv_vcpu_frame(in, &h, seen, &v, &msrs);
		if (st == STEP_OK && mig_set_vcpu(vm, &v, &msrs, &in->m.err))
			st = STEP_REFUSE;
	}
	free(seen);
	return st;
}

/* One vmce frame (header h read): check it against what this host backs, restore it, check
 * the skipped pages and keep the poisoned ones out of the memory slots. */
static enum mig_step take_vmce(struct mig_in *in, const struct mig_hdr *h)
{
	struct vmm *vm = in->vm;
	struct mig_conn *m = &in->m;
	enum mig_step st = STEP_REFUSE;
	struct vmce_err err;
	void *buf = malloc(h->len ? (size_t)h->len : 1);

	if (!buf) {
		vmm_fail(&m->err, "out of memory for a %" PRIu64 "-byte vmce stream", h->len);
		return STEP_FAIL;
	}
	if (mig_read(m, buf, (size_t)h->len))
		st = STEP_FAIL;
	else if (vmce_restore_check(&in->backing, buf, (size_t)h->len, &err))
		vmm_fail(&m->err, "vmce_restore_check: %s", err.msg);
	else if (vmce_restore(vm->vmce, buf, (size_t)h->len, &err))
		vmm_fail(&m->err, "vmce_restore: %s", err.msg);
	else if (!check_skipped(vm, m, in->got) && !protect_poisoned(vm, m))
		st = STEP_OK;
	free(buf);
	return st;
}

/* 4. The vmce stream, then commit (or a resend, or an abort). */
static enum mig_step recv_vmce_until_commit(struct mig_in *in)
{
	struct mig_conn *m = &in->m;
	struct mig_hdr h;

	if (mig_recv_hdr(m, 1u << F_VMCE | 1u << F_ABORT, VMCE_STREAM_MAX_LEN, &h))
		return STEP_FAIL;
	for (;;) {
		enum mig_step st;

		if (h.type == F_ABORT)
			return source_aborted(in);
		if (h.type == F_COMMIT)
			break;
		st = take_vmce(in, &h);
		if (st != STEP_OK)
			return st;
		if (mig_send_reply(m, true, "vmce state restored"))
			return STEP_FAIL;
		if (mig_recv_hdr(m, 1u << F_VMCE | 1u << F_COMMIT | 1u << F_ABORT,
				 VMCE_STREAM_MAX_LEN, &h))
			return STEP_FAIL;
	}
	if (h.len) {
		vmm_fail(&m->err, "protocol error: commit frame with data");
		return STEP_FAIL;
	}
	return mig_send_reply(m, true, "running") ? STEP_FAIL : STEP_OK;
}

/* The phases on an accepted connection. */
static enum mig_step receive(struct mig_in *in)
{
	enum mig_step st = recv_hello(in);

	if (st == STEP_OK)
		st = recv_memory(in);
	if (st == STEP_OK)
		st = recv_vcpus(in);
	if (st == STEP_OK)
		st = recv_vmce_until_commit(in);
	return st;
}

enum vmm_mig_in_result vmm_migrate_in(struct vmm *vm, const char *addr_text)
{
	struct mig_in in = {.vm = vm, .m = {.fd = -1}, .backing = vm->profile};
	enum vmm_mig_in_result rc;
	enum mig_step st;
	struct vmm_err err;
	union mig_addr a;
	socklen_t alen;
	int lfd;

	if (mig_parse_addr(addr_text, &a, &alen, &err)) {
		fprintf(stderr, "vmce-vm: --incoming %s: %s\n", addr_text, err.msg);
		return VMM_MIG_IN_BAD_ADDR;
	}
	lfd = listen_on(&a, alen, &err);
	if (lfd < 0) {
		fprintf(stderr, "vmce-vm: --incoming %s: %s\n", addr_text, err.msg);
		return VMM_MIG_IN_FAILED;
	}
	fprintf(stderr, "vmce-vm: waiting for a migration on %s\n", addr_text);
	rc = wait_for_source(vm, lfd);
	if (rc == VMM_MIG_IN_OK) {
		in.m.fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (in.m.fd < 0) {
			fprintf(stderr, "vmce-vm: accept: %s\n", strerror(errno));
			rc = VMM_MIG_IN_FAILED;
		}
	}
	if (rc == VMM_MIG_IN_OK) {
		mig_set_timeouts(in.m.fd);
		st = receive(&in);
		/* Tell the source why; a source that is gone already does not change the reason. */
		if (st == STEP_REFUSE) {
			err = in.m.err;
			(void)mig_send_reply(&in.m, false, err.msg);
			in.m.err = err;
		}
		if (st == STEP_OK) {
			fprintf(stderr,
				"vmce-vm: migration received: %" PRIu64 " pages, %zu poisoned, "
				"%u vCPU(s); running\n",
				in.pages, vmce_poison_count(vm->vmce), vm->nr_vcpus);
		} else {
			fprintf(stderr, "vmce-vm: incoming migration failed: %s\n", in.m.err.msg);
			rc = VMM_MIG_IN_FAILED;
		}
		free(in.got);
		close(in.m.fd);
	}
	close(lfd);
	if (a.sa.sa_family == AF_UNIX)
		unlink(a.un.sun_path);
	return rc;
}
