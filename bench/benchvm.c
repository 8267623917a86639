// SPDX-License-Identifier: MIT
/*
 * benchvm.c - see benchvm.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "benchvm.h"

#define MCG_CTL_P (1ull << 8)
#define MCG_SER_P (1ull << 24)

#define ST_VAL	  (1ull << 63)
#define ST_UC	  (1ull << 61)
#define ST_EN	  (1ull << 60)
#define ST_MISCV  (1ull << 59)
#define ST_ADDRV  (1ull << 58)
#define ST_S	  (1ull << 56)

double bv_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

const char *bv_impl_name(enum bv_impl i)
{
	switch (i) {
	case BV_KERNEL:
		return "kvm-in-kernel";
	case BV_USER:
		return "vmce-user-space";
	default:
		return "vmce-hybrid";
	}
}

int bv_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double bv_median(double *v, unsigned n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), bv_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t *data_area(struct bvm *b, unsigned i)
{
	return (uint64_t *)(b->tv0.mem + BV_DATA + 64 * i);
}

static int hook_pre_run(struct tinyvm *tv, void *opaque)
{
	struct bv_vcpu *c = opaque;
	struct vmce_kvm_status st;
	int rc;

	(void)tv;
	if (!c->kv)
		return 0;
	rc = vmce_kvm_pre_run(c->kv, &st, &c->bvm->err);
	if (rc == VMCE_KVM_SHUTDOWN) {
		fprintf(stderr, "%s vCPU %u: guest shut down: %s\n", c->bvm->name, c->index,
			st.reason);
		return 1;
	}
	if (rc < 0) {
		fprintf(stderr, "vmce_kvm_pre_run: %s\n", c->bvm->err.msg);
		return 1;
	}
	return 0;
}

static int hook_exit(struct tinyvm *tv, void *opaque)
{
	struct bv_vcpu *c = opaque;
	struct kvm_run *r = tv->run;

	switch (r->exit_reason) {
	case KVM_EXIT_IO:
		if (r->io.port != BV_P_BENCH || r->io.direction != KVM_EXIT_IO_OUT)
			return 0;
		if (c->mc_report_us == 0)
			c->mc_report_us = bv_now_us();
		c->bench_outs++;
		return 1;
	case KVM_EXIT_X86_RDMSR:
	case KVM_EXIT_X86_WRMSR:
		c->msr_exits++;
		return c->kv && vmce_kvm_handle_exit(c->kv) == VMCE_KVM_EXIT_HANDLED;
	}
	return 0;
}

int bv_guest(struct bv_vcpu *c, enum tv_stop want, uint32_t cmd, unsigned nargs, uint32_t a0,
	     uint32_t a1, uint32_t a2)
{
	struct tinyvm *tv = c->tv;
	enum tv_stop s;

	if (tv->script_pos == tv->script_len)
		tv->script_pos = tv->script_len = 0;
	tv_cmd(tv, cmd, nargs, a0, a1, a2);
	s = tv_run(tv, &c->hooks);
	if (s != want) {
		fprintf(stderr, "%s vCPU %u: command 0x%x stopped with %d (exit %u)%s%s\n",
			c->bvm->name, c->index, cmd, (int)s, tv->run->exit_reason,
			s == TV_STOP_ERROR ? ": " : "", s == TV_STOP_ERROR ? tv->err : "");
		return -1;
	}
	return 0;
}

void bv_counts(struct bv_vcpu *c, struct bv_counts *out)
{
	uint64_t *d = data_area(c->bvm, c->index);

	out->exits = c->tv->exits;
	out->msr_exits = c->msr_exits;
	out->reads = d[1];
	out->writes = d[2];
	out->gp = d[3];
	out->mc = d[4];
}

void bv_counts_all(struct bvm *b, struct bv_counts *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < b->nr; i++) {
		struct bv_counts c;

		bv_counts(&b->vcpu[i], &c);
		out->exits += c.exits;
		out->msr_exits += c.msr_exits;
		out->reads += c.reads;
		out->writes += c.writes;
		out->gp += c.gp;
		out->mc += c.mc;
	}
}

void bv_counts_sub(struct bv_counts *a, const struct bv_counts *b)
{
	a->exits -= b->exits;
	a->msr_exits -= b->msr_exits;
	a->reads -= b->reads;
	a->writes -= b->writes;
	a->gp -= b->gp;
	a->mc -= b->mc;
}

static void *vcpu_thread(void *arg)
{
	struct bv_vcpu *c = arg;
	struct bvm *b = c->bvm;
	int rc = 0;

	if (b->k &&
	    vmce_kvm_vcpu_init(b->k, c->index, c->tv->vcpu_fd, c->tv->run, &c->kv, &b->err)) {
		fprintf(stderr, "vmce_kvm_vcpu_init: %s\n", b->err.msg);
		rc = -1;
	}
	pthread_mutex_lock(&b->lock);
	c->result = rc;
	if (--b->pending == 0)
		pthread_cond_signal(&b->done_cond);
	while (!b->quit) {
		if (b->gen != c->seen_gen) {
			c->seen_gen = b->gen;
			if (b->mask_lo & (1u << c->index)) {
				bv_job_fn fn = b->job;
				void *ja = b->job_arg;

				pthread_mutex_unlock(&b->lock);
				rc = fn(c, ja);
				pthread_mutex_lock(&b->lock);
				c->result = rc;
				if (--b->pending == 0)
					pthread_cond_signal(&b->done_cond);
			}
			continue;
		}
		pthread_cond_wait(&b->cond, &b->lock);
	}
	pthread_mutex_unlock(&b->lock);
	vmce_kvm_vcpu_fini(c->kv);
	c->kv = NULL;
	return NULL;
}

static int add_vcpu(struct bvm *b, unsigned i)
{
	struct tinyvm *t0 = &b->tv0, *t;
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	b->vcpu[i].tv = t;
	t->kvm_fd = t->vm_fd = -1;
	t->vcpu_fd = ioctl(t0->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
	if (t->vcpu_fd < 0) {
		fprintf(stderr, "KVM_CREATE_VCPU %u: %s\n", i, strerror(errno));
		return -1;
	}
	t->run_size = t0->run_size;
	t->run = mmap(NULL, t->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, t->vcpu_fd, 0);
	if (t->run == MAP_FAILED) {
		t->run = NULL;
		fprintf(stderr, "mmap kvm_run: %s\n", strerror(errno));
		return -1;
	}
	t->entry = t0->entry;
	t->gp = t0->gp;
	t->mc = t0->mc;
	t->bad = t0->bad;
	t->irq = t0->irq;
	if (ioctl(t0->vcpu_fd, KVM_GET_SREGS, &sregs) || ioctl(t->vcpu_fd, KVM_SET_SREGS, &sregs)) {
		fprintf(stderr, "vCPU %u sregs: %s\n", i, strerror(errno));
		return -1;
	}
	memset(&regs, 0, sizeof(regs));
	regs.rip = t->entry;
	regs.rsp = 0x80000 - 0x1000 * i;
	regs.r14 = BV_DATA + 64 * i;
	regs.rflags = 2;
	if (ioctl(t->vcpu_fd, KVM_SET_REGS, &regs)) {
		fprintf(stderr, "vCPU %u regs: %s\n", i, strerror(errno));
		return -1;
	}
	return 0;
}

int bv_create(struct bvm *b, enum bv_impl impl, unsigned banks, unsigned nr)
{
	struct kvm_regs regs;
	char profile[64];

	memset(b, 0, sizeof(*b));
	b->tv0.vcpu_fd = b->tv0.vm_fd = b->tv0.kvm_fd = -1;
	b->impl = impl;
	b->banks = banks;
	b->nr = nr;
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
	pthread_cond_init(&b->done_cond, NULL);
	snprintf(b->name, sizeof(b->name), "%s-%ubanks-%uvcpu", bv_impl_name(impl), banks, nr);
	if (nr < 1 || nr > BV_MAX_VCPUS || banks < 2 || banks > 32) {
		fprintf(stderr, "%s: unsupported size\n", b->name);
		return -1;
	}
	if (tv_create(&b->tv0, BV_MEM, false)) {
		fprintf(stderr, "tinyvm: %s\n", b->tv0.err);
		return -1;
	}
	if (impl != BV_KERNEL) {
		struct vmce_vm_config cfg;
		struct vmce_kvm_config kc;

		vmce_vm_config_default(&cfg);
		snprintf(profile, sizeof(profile), "intel,banks=%u,ser,tes,cmci", banks);
		cfg.nr_vcpus = nr;
		if (vmce_profile_parse(profile, &cfg.profile, &b->err) ||
		    vmce_vm_create(&cfg, &b->vm, &b->err) ||
		    vmce_memmap_add(b->vm, 0, BV_MEM, (uint64_t)(uintptr_t)b->tv0.mem, VMCE_NO_HPA,
				    &b->err)) {
			fprintf(stderr, "vmce: %s\n", b->err.msg);
			return -1;
		}
		vmce_kvm_config_default(&kc);
		kc.vm_fd = b->tv0.vm_fd;
		kc.mode = impl == BV_HYBRID ? VMCE_KVM_MODE_HYBRID : VMCE_KVM_MODE_USERSPACE;
		if (vmce_kvm_create(b->vm, &kc, &b->k, &b->err)) {
			fprintf(stderr, "vmce_kvm_create: %s\n", b->err.msg);
			return -1;
		}
	} else {
		uint64_t supported = 0;

		if (ioctl(b->tv0.kvm_fd, KVM_X86_GET_MCE_CAP_SUPPORTED, &supported))
			supported = 0;
		b->kernel_cap = banks | ((MCG_CTL_P | MCG_SER_P) & supported);
	}
	if (tv_create_vcpu(&b->tv0)) {
		fprintf(stderr, "tinyvm: %s\n", b->tv0.err);
		return -1;
	}
	if (tv_get_regs(&b->tv0, &regs))
		return -1;
	regs.r14 = BV_DATA;
	if (tv_set_regs(&b->tv0, &regs))
		return -1;
	b->vcpu[0].tv = &b->tv0;
	for (unsigned i = 1; i < nr; i++)
		if (add_vcpu(b, i))
			return -1;
	for (unsigned i = 0; i < nr; i++) {
		struct bv_vcpu *c = &b->vcpu[i];

		memset(data_area(b, i), 0, 64);
		data_area(b, i)[0] = banks;
		c->bvm = b;
		c->index = i;
		c->hooks.pre_run = hook_pre_run;
		c->hooks.on_exit = hook_exit;
		c->hooks.opaque = c;
		if (impl == BV_KERNEL && ioctl(c->tv->vcpu_fd, KVM_X86_SETUP_MCE, &b->kernel_cap)) {
			fprintf(stderr, "KVM_X86_SETUP_MCE(0x%" PRIx64 "): %s\n", b->kernel_cap,
				strerror(errno));
			return -1;
		}
	}
	b->pending = nr;
	for (unsigned i = 0; i < nr; i++) {
		if (pthread_create(&b->vcpu[i].thread, NULL, vcpu_thread, &b->vcpu[i])) {
			fprintf(stderr, "pthread_create failed\n");
			pthread_mutex_lock(&b->lock);
			b->pending -= nr - i;
			pthread_mutex_unlock(&b->lock);
			break;
		}
		b->vcpu[i].thread_ok = true;
	}
	pthread_mutex_lock(&b->lock);
	while (b->pending)
		pthread_cond_wait(&b->done_cond, &b->lock);
	pthread_mutex_unlock(&b->lock);
	for (unsigned i = 0; i < nr; i++)
		if (!b->vcpu[i].thread_ok || b->vcpu[i].result)
			return -1;
	/* park every vCPU in HLT */
	for (unsigned i = 0; i < nr; i++)
		b->vcpu[i].result = 0;
	return 0;
}

void bv_destroy(struct bvm *b)
{
	pthread_mutex_lock(&b->lock);
	b->quit = true;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	for (unsigned i = 0; i < b->nr; i++)
		if (b->vcpu[i].thread_ok)
			pthread_join(b->vcpu[i].thread, NULL);
	for (unsigned i = 1; i < b->nr; i++) {
		if (b->vcpu[i].tv) {
			tv_destroy(b->vcpu[i].tv);
			free(b->vcpu[i].tv);
		}
	}
	vmce_kvm_destroy(b->k);
	tv_destroy(&b->tv0);
	if (b->vm)
		vmce_vm_destroy(b->vm);
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->cond);
	pthread_cond_destroy(&b->done_cond);
}

int bv_run_job(struct bvm *b, unsigned mask, bv_job_fn fn, void *arg)
{
	unsigned n = 0;
	int rc = 0;

	for (unsigned i = 0; i < b->nr; i++)
		if (mask & (1u << i))
			n++;
	pthread_mutex_lock(&b->lock);
	b->job = fn;
	b->job_arg = arg;
	b->mask_lo = mask;
	b->pending = n;
	b->gen++;
	pthread_cond_broadcast(&b->cond);
	while (b->pending)
		pthread_cond_wait(&b->done_cond, &b->lock);
	pthread_mutex_unlock(&b->lock);
	for (unsigned i = 0; i < b->nr; i++)
		if ((mask & (1u << i)) && b->vcpu[i].result && !rc)
			rc = b->vcpu[i].result;
	return rc;
}

int bv_inject_srao(struct bvm *b, uint64_t gpa)
{
	if (b->impl == BV_KERNEL) {
		for (unsigned i = 0; i < b->nr; i++) {
			struct kvm_x86_mce m;

			memset(&m, 0, sizeof(m));
			m.mcg_status = 5; /* MCIP | RIPV */
			if (i == 0) {
				m.bank = b->banks > 9 ? 9 : 1;
				m.status =
					ST_VAL | ST_UC | ST_EN | ST_MISCV | ST_ADDRV | ST_S | 0xc0;
				m.addr = gpa;
				m.misc = 0x8c;
			} else {
				m.bank = 1;
				m.status = ST_VAL | ST_UC;
			}
			if (ioctl(b->vcpu[i].tv->vcpu_fd, KVM_X86_SET_MCE, &m)) {
				fprintf(stderr, "KVM_X86_SET_MCE vCPU %u: %s\n", i,
					strerror(errno));
				return -1;
			}
		}
		return 0;
	}
	struct vmce_host_error e;

	vmce_host_error_init(&e);
	e.origin = VMCE_ORIGIN_SIGBUS_AO;
	e.addr_kind = VMCE_ADDR_HVA;
	e.addr = (uint64_t)(uintptr_t)b->tv0.mem + gpa;
	e.addr_lsb = 12;
	if (vmce_kvm_inject(b->k, &e, NULL, &b->err) < 0) {
		fprintf(stderr, "vmce_kvm_inject: %s\n", b->err.msg);
		return -1;
	}
	return 0;
}
