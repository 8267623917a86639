// SPDX-License-Identifier: MIT
/*
 * tinyvm.c - see tinyvm.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tinyvm.h"

#define P_CMD	   0xe0
#define P_ARG	   0xe1
#define P_RES	   0xe2
#define P_MARK	   0xe3
#define P_MCREP	   0xe4

#define GUEST_BASE 0x10000u
#define PML4	   0x1000u
#define PDPT	   0x2000u
#define PD	   0x3000u
#define GDT	   0x4000u
#define IDT	   0x5000u
#define PD3	   0x6000u /* the fourth GiB (LAPIC at 0xfee00000) */

static int fail(struct tinyvm *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct tinyvm *t, const char *fmt, ...)
{
	va_list ap;
	int e = errno;

	va_start(ap, fmt);
	vsnprintf(t->err, sizeof(t->err), fmt, ap);
	va_end(ap);
	size_t n = strlen(t->err);
	snprintf(t->err + n, sizeof(t->err) - n, ": %s", strerror(e));
	return -1;
}

bool tv_kvm_available(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	int api;

	if (fd < 0) {
		printf("SKIP: /dev/kvm is not usable here (%s): the KVM tests need it\n",
		       strerror(errno));
		return false;
	}
	api = ioctl(fd, KVM_GET_API_VERSION, 0);
	close(fd);
	if (api != KVM_API_VERSION) {
		printf("SKIP: /dev/kvm does not answer as KVM (API version %d): the KVM tests need "
		       "it\n",
		       api);
		return false;
	}
	return true;
}

int tv_create(struct tinyvm *t, size_t mem_size, bool irqchip)
{
	struct kvm_userspace_memory_region region;

	memset(t, 0, sizeof(*t));
	t->kvm_fd = t->vm_fd = t->vcpu_fd = -1;
	t->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (t->kvm_fd < 0)
		return fail(t, "open /dev/kvm");
	t->vm_fd = ioctl(t->kvm_fd, KVM_CREATE_VM, 0);
	if (t->vm_fd < 0)
		return fail(t, "KVM_CREATE_VM");
	if (irqchip && ioctl(t->vm_fd, KVM_CREATE_IRQCHIP, 0))
		return fail(t, "KVM_CREATE_IRQCHIP");
	t->mem_size = mem_size;
	t->mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (t->mem == MAP_FAILED) {
		t->mem = NULL;
		return fail(t, "mmap guest memory");
	}
	memset(&region, 0, sizeof(region));
	region.slot = 0;
	region.guest_phys_addr = 0;
	region.memory_size = mem_size;
	region.userspace_addr = (uintptr_t)t->mem;
	if (ioctl(t->vm_fd, KVM_SET_USER_MEMORY_REGION, &region))
		return fail(t, "KVM_SET_USER_MEMORY_REGION");
	return 0;
}

static void set_seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code;
	s->db = !code;
}

static void idt_set(uint8_t *mem, unsigned vec, uint64_t handler)
{
	uint8_t *e = mem + IDT + 16 * vec;
	uint16_t w;
	uint32_t d;

	w = (uint16_t)handler;
	memcpy(e, &w, 2);
	w = 0x08;
	memcpy(e + 2, &w, 2);
	w = 0x8e00; /* present, DPL 0, 64-bit interrupt gate */
	memcpy(e + 4, &w, 2);
	w = (uint16_t)(handler >> 16);
	memcpy(e + 6, &w, 2);
	d = (uint32_t)(handler >> 32);
	memcpy(e + 8, &d, 4);
	memset(e + 12, 0, 4);
}

int tv_create_vcpu(struct tinyvm *t)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	uint64_t off[5], *pt;
	int sz;

	if (tinyguest_bin_len + GUEST_BASE > 0x80000 - 0x4000)
		return fail(t, "guest binary too large");
	t->vcpu_fd = ioctl(t->vm_fd, KVM_CREATE_VCPU, 0);
	if (t->vcpu_fd < 0)
		return fail(t, "KVM_CREATE_VCPU");
	sz = ioctl(t->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz <= 0)
		return fail(t, "KVM_GET_VCPU_MMAP_SIZE");
	t->run_size = (size_t)sz;
	t->run = mmap(NULL, t->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, t->vcpu_fd, 0);
	if (t->run == MAP_FAILED) {
		t->run = NULL;
		return fail(t, "mmap kvm_run");
	}

	memcpy(t->mem + GUEST_BASE, tinyguest_bin, tinyguest_bin_len);
	memcpy(off, tinyguest_bin, sizeof(off));
	t->entry = GUEST_BASE + off[0];
	t->gp = GUEST_BASE + off[1];
	t->mc = GUEST_BASE + off[2];
	t->bad = GUEST_BASE + off[3];
	t->irq = GUEST_BASE + off[4];

	/* Identity map of the first and the fourth GiB with 2 MiB pages. */
	pt = (uint64_t *)(t->mem + PML4);
	pt[0] = PDPT | 3;
	pt = (uint64_t *)(t->mem + PDPT);
	pt[0] = PD | 3;
	pt[3] = PD3 | 3;
	pt = (uint64_t *)(t->mem + PD);
	for (uint64_t i = 0; i < 512; i++)
		pt[i] = (i << 21) | 0x83;
	pt = (uint64_t *)(t->mem + PD3);
	for (uint64_t i = 0; i < 512; i++)
		pt[i] = ((3ull << 30) + (i << 21)) | 0x9b; /* uncached */
	pt = (uint64_t *)(t->mem + GDT);
	pt[0] = 0;
	pt[1] = 0x00af9a000000ffffull; /* 0x08: 64-bit code */
	pt[2] = 0x00cf92000000ffffull; /* 0x10: data */
	for (unsigned v = 0; v < 32; v++)
		idt_set(t->mem, v, t->bad);
	idt_set(t->mem, 13, t->gp);
	idt_set(t->mem, 18, t->mc);
	idt_set(t->mem, TV_IRQ_VECTOR, t->irq);

	if (ioctl(t->vcpu_fd, KVM_GET_SREGS, &sregs))
		return fail(t, "KVM_GET_SREGS");
	set_seg(&sregs.cs, 0x08, 11, true);
	set_seg(&sregs.ds, 0x10, 3, false);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.gdt.base = GDT;
	sregs.gdt.limit = 3 * 8 - 1;
	sregs.idt.base = IDT;
	sregs.idt.limit = 256 * 16 - 1;
	sregs.cr3 = PML4;
	sregs.cr4 = (1u << 5) | (1u << 6); /* PAE, MCE */
	sregs.cr0 = 0x80000033;		   /* PG, NE, ET, MP, PE */
	sregs.efer = 0x500;		   /* LME, LMA */
	if (ioctl(t->vcpu_fd, KVM_SET_SREGS, &sregs))
		return fail(t, "KVM_SET_SREGS");
	memset(&regs, 0, sizeof(regs));
	regs.rip = t->entry;
	regs.rsp = 0x80000;
	regs.rflags = 2;
	if (ioctl(t->vcpu_fd, KVM_SET_REGS, &regs))
		return fail(t, "KVM_SET_REGS");
	return 0;
}

void tv_destroy(struct tinyvm *t)
{
	if (t->run)
		munmap(t->run, t->run_size);
	if (t->vcpu_fd >= 0)
		close(t->vcpu_fd);
	if (t->mem)
		munmap(t->mem, t->mem_size);
	if (t->vm_fd >= 0)
		close(t->vm_fd);
	if (t->kvm_fd >= 0)
		close(t->kvm_fd);
	t->run = NULL;
	t->mem = NULL;
	t->vcpu_fd = t->vm_fd = t->kvm_fd = -1;
}

void tv_cmd(struct tinyvm *t, uint32_t cmd, unsigned nargs, uint32_t a0, uint32_t a1, uint32_t a2)
{
	uint32_t a[3] = {a0, a1, a2};

	if (t->script_len + 1 + nargs > TV_MAX_SCRIPT)
		return;
	t->script[t->script_len++] = cmd;
	for (unsigned i = 0; i < nargs && i < 3; i++)
		t->script[t->script_len++] = a[i];
}

bool tv_res_take(struct tinyvm *t, unsigned *pos, uint32_t *v)
{
	if (*pos >= t->nres)
		return false;
	*v = t->res[(*pos)++];
	return true;
}

int tv_get_regs(struct tinyvm *t, struct kvm_regs *r)
{
	return ioctl(t->vcpu_fd, KVM_GET_REGS, r);
}

int tv_set_regs(struct tinyvm *t, const struct kvm_regs *r)
{
	return ioctl(t->vcpu_fd, KVM_SET_REGS, r);
}

static void push_out(uint32_t *arr, unsigned *n, uint32_t v)
{
	if (*n < TV_MAX_OUT)
		arr[(*n)++] = v;
}

/* Serve a harness port access.  Returns 1 handled, 0 the guest wants a command and the script
 * is empty, -1 not a harness port. */
static int do_io(struct tinyvm *t)
{
	struct kvm_run *r = t->run;
	uint32_t v = 0;
	uint8_t *data = (uint8_t *)r + r->io.data_offset;

	if (r->io.size != 4 || r->io.count != 1)
		return -1;
	if (r->io.direction == KVM_EXIT_IO_IN) {
		if (r->io.port != P_CMD && r->io.port != P_ARG)
			return -1;
		if (t->script_pos >= t->script_len) {
			t->in_pending = true;
			return 0;
		}
		v = t->script[t->script_pos++];
		memcpy(data, &v, 4);
		return 1;
	}
	memcpy(&v, data, 4);
	switch (r->io.port) {
	case P_RES:
		push_out(t->res, &t->nres, v);
		return 1;
	case P_MARK:
		if (t->nmark < TV_MAX_OUT)
			t->mark_nres[t->nmark] = t->nres;
		push_out(t->mark, &t->nmark, v);
		return 1;
	case P_MCREP:
		push_out(t->mcrep, &t->nmcrep, v);
		return 1;
	}
	return -1;
}

enum tv_stop tv_run(struct tinyvm *t, const struct tv_hooks *hooks)
{
	unsigned bad_marks = 0;

	for (;;) {
		int rc;

		if (t->in_pending) {
			if (t->script_pos >= t->script_len)
				return TV_STOP_IDLE;
			uint32_t v = t->script[t->script_pos++];

			memcpy((uint8_t *)t->run + t->run->io.data_offset, &v, 4);
			t->in_pending = false;
		}
		if (hooks && hooks->pre_run && hooks->pre_run(t, hooks->opaque))
			return TV_STOP_HOOK;
		rc = ioctl(t->vcpu_fd, KVM_RUN, 0);
		if (rc < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				t->intr++;
				continue;
			}
			fail(t, "KVM_RUN");
			return TV_STOP_ERROR;
		}
		t->exits++;
		switch (t->run->exit_reason) {
		case KVM_EXIT_IO:
			rc = do_io(t);
			if (rc == 0)
				return TV_STOP_IDLE;
			if (rc == 1) {
				if (t->nmark > bad_marks && t->mark[t->nmark - 1] == TV_MARK_BAD)
					return TV_STOP_BAD;
				continue;
			}
			break;
		case KVM_EXIT_HLT:
			return TV_STOP_HLT;
		case KVM_EXIT_SHUTDOWN:
			return TV_STOP_SHUTDOWN;
		case KVM_EXIT_INTR:
			t->intr++;
			continue;
		}
		if (hooks && hooks->on_exit && hooks->on_exit(t, hooks->opaque) == 1)
			continue;
		return TV_STOP_EXIT;
	}
}
