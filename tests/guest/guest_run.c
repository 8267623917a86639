/* SPDX-License-Identifier: MIT */
/*
 * guest_run.c - test-only KVM runner for the built-in test guest.
 *
 * Boots the guest image (vmce_guest_image) in a minimal VM that follows the boot protocol,
 * serves the MCA MSRs with libvmce's core model (vmce_rdmsr/vmce_wrmsr behind an MSR filter
 * and KVM_CAP_X86_USER_SPACE_MSR), loads machine-check records with vmce_host_wrmsr() and
 * raises #MC with KVM_SET_VCPU_EVENTS.  Each scenario checks the guest's console lines and the
 * MCA state the guest left behind.
 *
 * Usage: vmce-guest-run SCENARIO   (exit 0 pass, 1 fail, 77 skipped: no usable /dev/kvm)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>

#include <vmce/vmce.h>

#include "vmce_guest_image.h"

#define MEM_SIZE       (64ul << 20)
#define MAX_VCPUS      4
#define MAX_LINES      512
#define LINE_MAX_      256

#define ST_SRAO	       0xbd000000000000c0ull /* VAL UC EN MISCV ADDRV S, MCACOD 0xC0 (scrub) */
#define ST_SRAR	       0xbd80000000000134ull /* ... AR, MCACOD 0x134 (data load) */
#define ST_PCC	       0xbe00000000000150ull /* VAL UC EN MISCV ADDRV PCC */
#define ST_CE	       0x9c0000000000009full /* VAL EN MISCV ADDRV, memory read */
#define ST_UCNA	       0xbc0000000000009full /* VAL UC EN MISCV ADDRV, S=0 */
#define ST_DEFER       0x840010000000009cull /* AMD: VAL ADDRV Deferred */
#define ST_AMDUC       0xbc00000000000134ull /* AMD: VAL UC EN MISCV ADDRV */
#define MISC_PHYS_PAGE 0x8cull		     /* physical address mode, LSB 12 */
#define MCG_RIPV       1ull
#define MCG_EIPV       2ull
#define MCG_MCIP       4ull
#define MCG_LMCES      8ull

struct inj {
	bool user_only; /* wait until the vCPU runs in ring 3 */
	bool no_mc;	/* only load the bank (a polled error) */
	int bank;	/* -1: no bank record (broadcast bystander) */
	uint64_t status, addr, misc, mcgstatus;
};

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned idx;
	int fd;
	struct kvm_run *run;
	pthread_t thr;
	struct vmce_vcpu *model;
	volatile int inj_pending;
	struct inj inj;
	unsigned long msr_exits;
};

struct vm {
	int kvm, fd;
	uint8_t *mem;
	struct vmce_vm *model;
	unsigned nr;
	bool amd;
	struct vcpu vcpu[MAX_VCPUS];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char lines[MAX_LINES][LINE_MAX_];
	unsigned nlines;
	char cur[LINE_MAX_];
	unsigned curlen;
	volatile int done;
	int exit_status; /* guest's port 0x501 value, -1 triple fault, -2 other stop */
	char stop_reason[160];
	struct timespec t0;
};

static int fail_count;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                       \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			fail_count++;                                                              \
		}                                                                                  \
	} while (0)

static double elapsed(const struct vm *vm)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - vm->t0.tv_sec) + (double)(t.tv_nsec - vm->t0.tv_nsec) / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "guest-run: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* ---- Console ---------------------------------------------------------------------------- */

static void console_put(struct vm *vm, const uint8_t *p, unsigned n)
{
	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < n; i++) {
		if (p[i] == '\n' || vm->curlen == LINE_MAX_ - 1) {
			vm->cur[vm->curlen] = 0;
			printf("[%7.3f] %s\n", elapsed(vm), vm->cur);
			fflush(stdout);
			if (vm->nlines < MAX_LINES)
				memcpy(vm->lines[vm->nlines++], vm->cur, vm->curlen + 1);
			vm->curlen = 0;
			pthread_cond_broadcast(&vm->cond);
		}
		if (p[i] != '\n')
			vm->cur[vm->curlen++] = (char)p[i];
	}
	pthread_mutex_unlock(&vm->lock);
}

/*
 * Wait until a line starting with `prefix` appears at index >= *from (then *from moves past
 * it and the line is copied to out).  Returns false on timeout or when the VM stopped first.
 */
static bool wait_line(struct vm *vm, unsigned *from, const char *prefix, double timeout_s,
		      char *out)
{
	struct timespec dl;
	bool found = false;
	unsigned start = from ? *from : 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += (time_t)timeout_s;
	dl.tv_nsec += (long)((timeout_s - (double)(time_t)timeout_s) * 1e9);
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&vm->lock);
	for (;;) {
		for (unsigned i = start; i < vm->nlines; i++) {
			if (!strncmp(vm->lines[i], prefix, strlen(prefix))) {
				if (out)
					strcpy(out, vm->lines[i]);
				if (from)
					*from = i + 1;
				found = true;
				break;
			}
		}
		if (found || vm->done)
			break;
		if (pthread_cond_timedwait(&vm->cond, &vm->lock, &dl) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&vm->lock);
	return found;
}

static bool has_line(struct vm *vm, const char *prefix)
{
	unsigned from = 0;

	return wait_line(vm, &from, prefix, 0, NULL);
}

static bool expect_line(struct vm *vm, unsigned *from, const char *prefix, double timeout_s,
			char *out)
{
	bool ok = wait_line(vm, from, prefix, timeout_s, out);

	CHECK(ok, "no console line \"%s...\" within %.1f s", prefix, timeout_s);
	return ok;
}

/* Wait for the guest to stop (exit port, shutdown); returns its exit status. */
static int wait_stop(struct vm *vm, double timeout_s)
{
	for (double t = 0; t < timeout_s && !vm->done; t += 0.01)
		usleep(10000);
	return vm->done ? vm->exit_status : -100;
}

/* ---- vCPU threads ----------------------------------------------------------------------- */

static void stop_vm(struct vm *vm, int status, const char *reason)
{
	pthread_mutex_lock(&vm->lock);
	if (!vm->done) {
		vm->exit_status = status;
		snprintf(vm->stop_reason, sizeof(vm->stop_reason), "%s", reason);
		vm->done = 1;
	}
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->nr; i++)
		vm->vcpu[i].run->immediate_exit = 1;
}

static void try_inject(struct vcpu *vc)
{
	struct kvm_sregs sregs;
	struct kvm_vcpu_events ev;
	struct inj *in = &vc->inj;
	unsigned b = (unsigned)in->bank;

	if (ioctl(vc->fd, KVM_GET_SREGS, &sregs) < 0)
		die("KVM_GET_SREGS");
	if (in->user_only && (sregs.cs.selector & 3) != 3)
		return; /* not in ring 3 right now: try again at the next exit */
	if (in->bank >= 0) {
		vmce_host_wrmsr(vc->model, VMCE_MSR_MCi_ADDR(b), in->addr);
		vmce_host_wrmsr(vc->model, VMCE_MSR_MCi_MISC(b), in->misc);
		vmce_host_wrmsr(vc->model, VMCE_MSR_MCi_STATUS(b), in->status);
	}
	if (!in->no_mc) {
		if (!(sregs.cr4 & (1u << 6))) {
			stop_vm(vc->vm, -2, "test bug: #MC with guest CR4.MCE clear");
			return;
		}
		vmce_host_wrmsr(vc->model, VMCE_MSR_MCG_STATUS, in->mcgstatus);
		if (ioctl(vc->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
			die("KVM_GET_VCPU_EVENTS");
		ev.exception.injected = 1;
		ev.exception.pending = 0;
		ev.exception.nr = 18;
		ev.exception.has_error_code = 0;
		ev.exception.error_code = 0;
		ev.flags = 0;
		if (ioctl(vc->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
			die("KVM_SET_VCPU_EVENTS");
	}
	__atomic_store_n(&vc->inj_pending, 0, __ATOMIC_RELEASE);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *vc = arg;
	struct vm *vm = vc->vm;
	struct kvm_run *run = vc->run;
	char why[160];

	while (!vm->done) {
		if (__atomic_load_n(&vc->inj_pending, __ATOMIC_ACQUIRE))
			try_inject(vc);
		if (ioctl(vc->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				run->immediate_exit = 0;
				continue;
			}
			die("KVM_RUN");
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == 0x3f8) {
				console_put(vm, (uint8_t *)run + run->io.data_offset,
					    run->io.size * run->io.count);
			} else if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == 0x501) {
				uint8_t v = *((uint8_t *)run + run->io.data_offset);
				snprintf(why, sizeof(why), "guest exit %u", v);
				stop_vm(vm, v, why);
			} else if (run->io.direction == KVM_EXIT_IO_IN) {
				memset((uint8_t *)run + run->io.data_offset, 0xff,
				       run->io.size * run->io.count);
			}
			break;
		case KVM_EXIT_X86_RDMSR: {
			uint64_t v = 0;
			vc->msr_exits++;
			run->msr.error =
				vmce_rdmsr(vc->model, run->msr.index, &v) == VMCE_MSR_OK ? 0 : 1;
			run->msr.data = v;
			break;
		}
		case KVM_EXIT_X86_WRMSR:
			vc->msr_exits++;
			run->msr.error =
				vmce_wrmsr(vc->model, run->msr.index, run->msr.data) == VMCE_MSR_OK
					? 0
					: 1;
			break;
		case KVM_EXIT_HLT:
			break;
		case KVM_EXIT_SHUTDOWN:
			stop_vm(vm, -1, "triple fault (KVM_EXIT_SHUTDOWN)");
			break;
		case KVM_EXIT_INTR:
			break;
		default:
			snprintf(why, sizeof(why), "unexpected exit reason %u on vCPU %u",
				 run->exit_reason, vc->idx);
			stop_vm(vm, -2, why);
		}
	}
	return NULL;
}

static void kick_handler(int sig)
{
	(void)sig;
}

/* Queue a record for a vCPU and kick it until its thread has applied it. */
static bool inject(struct vm *vm, unsigned idx, const struct inj *in)
{
	struct vcpu *vc = &vm->vcpu[idx];

	vc->inj = *in;
	__atomic_store_n(&vc->inj_pending, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 5000 && !vm->done; i++) {
		if (!__atomic_load_n(&vc->inj_pending, __ATOMIC_ACQUIRE))
			return true;
		vc->run->immediate_exit = 1;
		pthread_kill(vc->thr, SIGUSR1);
		usleep(1000);
	}
	CHECK(0, "could not inject into vCPU %u", idx);
	return false;
}

/* A broadcast: the record on `target`, MCIP|RIPV bystanders on every other vCPU. */
static void inject_broadcast(struct vm *vm, unsigned target, const struct inj *in)
{
	struct inj by = {.bank = -1, .mcgstatus = MCG_MCIP | MCG_RIPV};

	inject(vm, target, in);
	for (unsigned i = 0; i < vm->nr; i++)
		if (i != target)
			inject(vm, i, &by);
}

/* ---- VM setup --------------------------------------------------------------------------- */

static void setup_cpuid(struct vm *vm, struct vcpu *vc, bool succor)
{
	int n = 128;
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + (size_t)n * sizeof(struct kvm_cpuid_entry2));

	c->nent = (uint32_t)n;
	if (ioctl(vm->kvm, KVM_GET_SUPPORTED_CPUID, c) < 0)
		die("KVM_GET_SUPPORTED_CPUID");
	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function == 0) {
			if (vm->amd) {
				e->ebx = 0x68747541; /* "Auth" */
				e->edx = 0x69746e65; /* "enti" */
				e->ecx = 0x444d4163; /* "cAMD" */
			} else {
				e->ebx = 0x756e6547; /* "Genu" */
				e->edx = 0x49656e69; /* "ineI" */
				e->ecx = 0x6c65746e; /* "ntel" */
			}
		} else if (e->function == 1) {
			/* Intel family 6 model 0x55 stepping 4; AMD family 0x17 model 0x31 */
			e->eax = vm->amd ? 0x00830f10 : 0x00050654;
			e->edx |= (1u << 7) | (1u << 14);
		} else if (e->function == 0x80000007) {
			e->ebx &= ~((1u << 1) | (1u << 3));
			if (vm->amd && succor)
				e->ebx |= 1u << 1;
		}
	}
	if (ioctl(vc->fd, KVM_SET_CPUID2, c) < 0)
		die("KVM_SET_CPUID2");
	free(c);
}

static void setup_memory(struct vm *vm, uint32_t flags)
{
	uint64_t *pml4 = (uint64_t *)(vm->mem + 0x1000);
	uint64_t *pdpt = (uint64_t *)(vm->mem + 0x2000);
	uint64_t *gdt = (uint64_t *)(vm->mem + 0x7000);
	uint32_t *bi = (uint32_t *)(vm->mem + 0x9000);

	pml4[0] = 0x2000 | 7;
	for (unsigned i = 0; i < 4; i++) {
		uint64_t *pd = (uint64_t *)(vm->mem + 0x3000 + 0x1000 * i);

		pdpt[i] = (0x3000 + 0x1000ull * i) | 7;
		for (unsigned j = 0; j < 512; j++)
			pd[j] = ((uint64_t)(i * 512 + j) << 21) | 0x87; /* P RW US PS */
	}
	gdt[0] = 0;
	gdt[1] = 0x00af9b000000ffffull;
	gdt[2] = 0x00cf93000000ffffull;
	memcpy(vm->mem + 0x100000, vmce_guest_image, vmce_guest_image_size);
	bi[0] = 0x45434d56;
	bi[1] = 1;
	bi[2] = vm->nr;
	bi[3] = flags;
	*(uint64_t *)(vm->mem + 0x9010) = MEM_SIZE;
	/* tsc_khz at 0x9018 is filled in per vCPU setup (same value on every vCPU) */
}

static void setup_vcpu_regs(struct vm *vm, struct vcpu *vc)
{
	struct kvm_sregs s;
	struct kvm_regs r;
	struct kvm_segment cs = {.base = 0,
				 .limit = 0xffffffff,
				 .selector = 0x08,
				 .type = 11,
				 .present = 1,
				 .dpl = 0,
				 .db = 0,
				 .s = 1,
				 .l = 1,
				 .g = 1};
	struct kvm_segment ds = {.base = 0,
				 .limit = 0xffffffff,
				 .selector = 0x10,
				 .type = 3,
				 .present = 1,
				 .dpl = 0,
				 .db = 1,
				 .s = 1,
				 .l = 0,
				 .g = 1};

	if (ioctl(vc->fd, KVM_GET_SREGS, &s) < 0)
		die("KVM_GET_SREGS");
	s.cs = cs;
	s.ds = s.es = s.fs = s.gs = s.ss = ds;
	s.gdt.base = 0x7000;
	s.gdt.limit = 3 * 8 - 1;
	s.cr3 = 0x1000;
	s.cr4 = 1u << 5;			     /* PAE */
	s.cr0 = 0x80050033;			     /* PG WP NE ET MP PE */
	s.efer = (1u << 8) | (1u << 10) | (1u << 0); /* LME LMA SCE */
	if (ioctl(vc->fd, KVM_SET_SREGS, &s) < 0)
		die("KVM_SET_SREGS");
	memset(&r, 0, sizeof(r));
	r.rip = 0x100000;
	r.rdi = vc->idx;
	r.rsi = 0x9000;
	r.rflags = 2;
	if (ioctl(vc->fd, KVM_SET_REGS, &r) < 0)
		die("KVM_SET_REGS");
	(void)vm;
}

static void setup_msr_filter(struct vm *vm)
{
	static uint8_t deny[32]; /* all zero: deny = exit to user space */
	struct kvm_enable_cap cap = {.cap = KVM_CAP_X86_USER_SPACE_MSR,
				     .args = {KVM_MSR_EXIT_REASON_FILTER}};
	struct kvm_msr_filter f = {.flags = KVM_MSR_FILTER_DEFAULT_ALLOW};
	const struct {
		uint32_t base, n;
	} r[] = {{0x179, 3}, {0x280, 32}, {0x400, 128}, {0x4d0, 1}};

	if (ioctl(vm->fd, KVM_ENABLE_CAP, &cap) < 0)
		die("KVM_ENABLE_CAP(KVM_CAP_X86_USER_SPACE_MSR)");
	for (unsigned i = 0; i < 4; i++) {
		f.ranges[i].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
		f.ranges[i].base = r[i].base;
		f.ranges[i].nmsrs = r[i].n;
		f.ranges[i].bitmap = deny;
	}
	if (ioctl(vm->fd, KVM_X86_SET_MSR_FILTER, &f) < 0)
		die("KVM_X86_SET_MSR_FILTER");
}

static struct vm *vm_start(const char *profile_text, unsigned nr, uint32_t flags)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	struct vmce_vm_config cfg;
	struct vmce_err err;
	struct sigaction sa = {.sa_handler = kick_handler};
	int run_size;
	bool succor;

	vmce_vm_config_default(&cfg);
	if (vmce_profile_parse(profile_text, &cfg.profile, &err)) {
		fprintf(stderr, "guest-run: profile: %s\n", err.msg);
		exit(1);
	}
	cfg.nr_vcpus = nr;
	if (vmce_vm_create(&cfg, &vm->model, &err)) {
		fprintf(stderr, "guest-run: vmce_vm_create: %s\n", err.msg);
		exit(1);
	}
	vm->amd = cfg.profile.vendor == VMCE_VENDOR_AMD;
	succor = (cfg.profile.caps & VMCE_CAP_SUCCOR) != 0;
	vm->nr = nr;
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	sigaction(SIGUSR1, &sa, NULL);

	vm->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm < 0)
		die("/dev/kvm");
	vm->fd = ioctl(vm->kvm, KVM_CREATE_VM, 0);
	if (vm->fd < 0)
		die("KVM_CREATE_VM");
	(void)ioctl(vm->fd, KVM_SET_TSS_ADDR, 0xfffbd000ul);
	vm->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (vm->mem == MAP_FAILED)
		die("mmap");
	struct kvm_userspace_memory_region reg = {.slot = 0,
						  .guest_phys_addr = 0,
						  .memory_size = MEM_SIZE,
						  .userspace_addr = (uint64_t)vm->mem};
	if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &reg) < 0)
		die("KVM_SET_USER_MEMORY_REGION");
	setup_msr_filter(vm);
	setup_memory(vm, flags);

	run_size = ioctl(vm->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	for (unsigned i = 0; i < nr; i++) {
		struct vcpu *vc = &vm->vcpu[i];
		long khz;

		vc->vm = vm;
		vc->idx = i;
		vc->model = vmce_vm_vcpu(vm->model, i);
		vc->fd = ioctl(vm->fd, KVM_CREATE_VCPU, i);
		if (vc->fd < 0)
			die("KVM_CREATE_VCPU");
		vc->run =
			mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vc->fd, 0);
		if (vc->run == MAP_FAILED)
			die("mmap kvm_run");
		setup_cpuid(vm, vc, succor);
		setup_vcpu_regs(vm, vc);
		khz = ioctl(vc->fd, KVM_GET_TSC_KHZ, 0);
		*(uint64_t *)(vm->mem + 0x9018) = khz > 0 ? (uint64_t)khz : 1000000;
	}
	clock_gettime(CLOCK_MONOTONIC, &vm->t0);
	for (unsigned i = 0; i < nr; i++)
		pthread_create(&vm->vcpu[i].thr, NULL, vcpu_thread, &vm->vcpu[i]);
	return vm;
}

static void vm_destroy(struct vm *vm)
{
	stop_vm(vm, vm->exit_status, "test finished");
	for (unsigned i = 0; i < vm->nr; i++) {
		for (int k = 0; k < 100; k++) {
			if (pthread_tryjoin_np(vm->vcpu[i].thr, NULL) == 0)
				break;
			vm->vcpu[i].run->immediate_exit = 1;
			pthread_kill(vm->vcpu[i].thr, SIGUSR1);
			usleep(2000);
		}
		close(vm->vcpu[i].fd);
	}
	close(vm->fd);
	close(vm->kvm);
	munmap(vm->mem, MEM_SIZE);
	vmce_vm_destroy(vm->model);
	free(vm);
}

/* Boot and wait for the init line of every vCPU (and the workload's start line). */
static bool boot(struct vm *vm, bool workload, char *wl_line)
{
	char want[64];
	bool ok = true;

	for (unsigned i = 0; i < vm->nr; i++) {
		snprintf(want, sizeof(want), "mce: init cpu=%u ", i);
		ok &= expect_line(vm, NULL, want, 10, NULL);
	}
	if (workload)
		ok &= expect_line(vm, NULL, "workload: start cpu=", 10, wl_line);
	return ok;
}

static uint64_t line_u64(const char *line, const char *key)
{
	const char *p = strstr(line, key);

	return p ? strtoull(p + strlen(key), NULL, 0) : 0;
}

static void get_state(struct vm *vm, unsigned idx, struct vmce_vcpu_state *st)
{
	vmce_vcpu_get_state(vmce_vm_vcpu(vm->model, idx), st);
}

/* ---- Scenarios -------------------------------------------------------------------------- */

static void sc_boot(void)
{
	struct vm *vm = vm_start("intel,banks=2,ser,tes,cmci", 2, 1);
	char wl[LINE_MAX_];
	struct vmce_vcpu_state st;
	double t_boot;

	CHECK(expect_line(vm, NULL, "guest: boot cpus=2 vendor=intel", 10, NULL), "boot line");
	CHECK(expect_line(vm, NULL, "mce: init cpu=0 banks=2 ser=1 cmci=1 lmce=0", 10, NULL),
	      "init line cpu 0");
	CHECK(expect_line(vm, NULL, "mce: init cpu=1 banks=2 ser=1 cmci=1 lmce=0", 10, NULL),
	      "init line cpu 1");
	if (expect_line(vm, NULL, "workload: start cpu=1 page=0x", 10, wl)) {
		uint64_t page = line_u64(wl, "page=");
		t_boot = elapsed(vm);
		printf("figure: boot to workload start %.3f s; MCA MSR exits at boot: vCPU0 %lu, "
		       "vCPU1 %lu\n",
		       t_boot, vm->vcpu[0].msr_exits, vm->vcpu[1].msr_exits);
		CHECK(page >= 0x400000 && page < MEM_SIZE && !(page & 0xfff), "workload page %s",
		      wl);
		CHECK(t_boot < 5.0, "boot took %.2f s", t_boot);
	}
	CHECK(expect_line(vm, NULL, "guest: alive tick=1", 6, NULL), "alive tick 1");
	CHECK(expect_line(vm, NULL, "guest: alive tick=2", 6, NULL), "alive tick 2");
	for (unsigned i = 0; i < 2; i++) {
		get_state(vm, i, &st);
		/* Linux's init sequence: every MCi_CTL all-ones, banks claimed for CMCI */
		CHECK(st.bank[0].ctl == ~0ull && st.bank[1].ctl == ~0ull, "MCi_CTL cpu %u", i);
		CHECK((st.bank[0].ctl2 & VMCE_MCI_CTL2_CMCI_EN) &&
			      (st.bank[1].ctl2 & VMCE_MCI_CTL2_CMCI_EN),
		      "CTL2.CMCI_EN cpu %u: 0x%llx 0x%llx", i, (unsigned long long)st.bank[0].ctl2,
		      (unsigned long long)st.bank[1].ctl2);
		CHECK(st.mcg_ext_ctl == 0, "no LMCE without LMCE_P");
	}
	CHECK(!has_line(vm, "mce: cpu="), "the poller reported something on a clean boot");
	CHECK(!vm->done, "guest stopped: %s", vm->stop_reason);
	vm_destroy(vm);
}

static void sc_srao(void)
{
	struct vm *vm = vm_start("intel,banks=2,ser,tes,cmci", 2, 1);
	struct inj in = {.bank = 1,
			 .status = ST_SRAO,
			 .addr = 0x2345000,
			 .misc = MISC_PHYS_PAGE,
			 .mcgstatus = MCG_MCIP | MCG_RIPV};
	struct vmce_vcpu_state st;
	unsigned from;

	if (!boot(vm, true, NULL))
		goto out;
	from = vm->nlines;
	inject_broadcast(vm, 0, &in);
	expect_line(vm, NULL,
		    "mce: cpu=0 bank=1 status=0xbd000000000000c0 addr=0x2345000 misc=0x8c "
		    "mcgstatus=0x5 action=offline-page result=recovered",
		    5, NULL);
	expect_line(vm, NULL, "mce: bystander cpu=1", 5, NULL);
	/* the guest lives on */
	expect_line(vm, &from, "guest: alive tick=", 5, NULL);
	get_state(vm, 0, &st);
	CHECK(st.bank[1].status == 0 && st.mcg_status == 0,
	      "cpu 0 did not clear MCi_STATUS/MCG_STATUS: 0x%llx 0x%llx",
	      (unsigned long long)st.bank[1].status, (unsigned long long)st.mcg_status);
	get_state(vm, 1, &st);
	CHECK(st.mcg_status == 0, "bystander did not clear MCG_STATUS");
	/* the same page again: already offline */
	inject_broadcast(vm, 0, &in);
	expect_line(vm, NULL,
		    "mce: cpu=0 bank=1 status=0xbd000000000000c0 addr=0x2345000 misc=0x8c "
		    "mcgstatus=0x5 action=none result=ignored",
		    5, NULL);
	CHECK(!has_line(vm, "mce: panic"), "unexpected panic");
out:
	vm_destroy(vm);
}

/* Four vCPUs: the monarch and three subjects scan in entry order; all leave the handler. */
static void sc_srao4(void)
{
	struct vm *vm = vm_start("intel,banks=2,ser,tes,cmci", 4, 1);
	struct inj in = {.bank = 1,
			 .status = ST_SRAO,
			 .addr = 0x2347000,
			 .misc = MISC_PHYS_PAGE,
			 .mcgstatus = MCG_MCIP | MCG_RIPV};
	char want[64];
	unsigned from;

	if (!boot(vm, true, NULL))
		goto out;
	for (int round = 0; round < 2; round++) {
		unsigned from0 = vm->nlines;

		from = from0;
		in.addr += 0x1000;
		inject_broadcast(vm, 2, &in);
		expect_line(vm, &from, "mce: cpu=2 bank=1 status=0xbd000000000000c0", 5, NULL);
		for (unsigned i = 0; i < 4; i++) {
			if (i == 2)
				continue;
			from = from0;
			snprintf(want, sizeof(want), "mce: bystander cpu=%u", i);
			expect_line(vm, &from, want, 5, NULL);
		}
	}
	from = vm->nlines;
	expect_line(vm, &from, "guest: alive tick=", 5, NULL);
	CHECK(!has_line(vm, "mce: panic"), "unexpected panic");
out:
	vm_destroy(vm);
}

static void sc_srar(void)
{
	struct vm *vm = vm_start("intel,banks=2,ser,tes,cmci", 2, 1);
	char wl[LINE_MAX_], line[LINE_MAX_] = "", want[LINE_MAX_];
	struct inj in = {.user_only = true,
			 .bank = 1,
			 .status = ST_SRAR,
			 .misc = MISC_PHYS_PAGE,
			 .mcgstatus = MCG_MCIP | MCG_RIPV | MCG_EIPV};
	uint64_t page, page2;
	unsigned from;

	if (!boot(vm, true, wl))
		goto out;
	page = line_u64(wl, "page=");
	in.addr = page + 0x40;
	from = vm->nlines;
	inject_broadcast(vm, 1, &in);
	snprintf(want, sizeof(want),
		 "mce: cpu=1 bank=1 status=0xbd80000000000134 addr=0x%llx misc=0x8c mcgstatus=0x7 "
		 "action=kill-workload result=restarted",
		 (unsigned long long)page);
	expect_line(vm, NULL, want, 5, NULL);
	expect_line(vm, NULL, "mce: bystander cpu=0", 5, NULL);
	if (expect_line(vm, NULL, "workload: restarted cpu=1 page=0x", 5, line)) {
		page2 = line_u64(line, "page=");
		CHECK(page2 && page2 != page, "restarted on the poisoned page: %s", line);
	}
	expect_line(vm, &from, "guest: alive tick=", 5, NULL);
	/* and it runs: a second SRAR on the new page restarts it again */
	in.addr = line_u64(line, "page=");
	inject_broadcast(vm, 1, &in);
	expect_line(vm, &from, "workload: restarted cpu=1 page=0x", 5, NULL);
	CHECK(!has_line(vm, "mce: panic"), "unexpected panic");
	CHECK(!vm->done, "guest stopped: %s", vm->stop_reason);
out:
	vm_destroy(vm);
}

static void sc_srar_ripv0(void)
{
	struct vm *vm = vm_start("intel,banks=2,ser,tes,cmci", 1, 1);
	char wl[LINE_MAX_];
	struct inj in = {.user_only = true,
			 .bank = 1,
			 .status = ST_SRAR,
			 .misc = MISC_PHYS_PAGE,
			 .mcgstatus = MCG_MCIP | MCG_EIPV};

	if (!boot(vm, true, wl))
		goto out;
	in.addr = line_u64(wl, "page=");
	inject(vm, 0, &in);
	expect_line(vm, NULL, "mce: cpu=0 bank=1 status=0xbd80000000000134", 5, NULL);
	expect_line(vm, NULL, "workload: restarted cpu=0 page=0x", 5, NULL);
	CHECK(!has_line(vm, "mce: panic"), "unexpected panic");
out:
	vm_destroy(vm);
}

static void expect_panic(struct vm *vm, const char *line)
{
	int st;

	expect_line(vm, NULL, line, 5, NULL);
	st = wait_stop(vm, 5);
	CHECK(st == 3, "guest exit status %d (%s), want 3", st, vm->stop_reason);
}

static void sc_srar_kernel(void)
{
	struct vm *vm = vm_start("intel,banks=2,ser,tes,cmci", 2, 1);
	struct inj in = {.bank = 1,
			 .status = ST_SRAR,
			 .addr = 0x3000000,
			 .misc = MISC_PHYS_PAGE,
			 .mcgstatus = MCG_MCIP | MCG_RIPV | MCG_EIPV};

	if (boot(vm, true, NULL)) {
		inject_broadcast(vm, 0, &in); /* vCPU 0 idles in the kernel */
		expect_line(vm, NULL, "mce: cpu=0 bank=1 status=0xbd80000000000134", 5, NULL);
		expect_panic(vm, "mce: panic: Fatal machine check: Data load in unrecoverable area "
				 "of kernel");
	}
	vm_destroy(vm);
}

static void sc_pcc(void)
{
	struct vm *vm = vm_start("intel,banks=2,ser,tes,cmci", 1, 0);
	struct inj in = {.bank = 1,
			 .status = ST_PCC,
			 .addr = 0x3000000,
			 .misc = MISC_PHYS_PAGE,
			 .mcgstatus = MCG_MCIP | MCG_RIPV | MCG_EIPV};

	if (boot(vm, false, NULL)) {
		inject(vm, 0, &in);
		expect_line(vm, NULL,
			    "mce: cpu=0 bank=1 status=0xbe00000000000150 addr=0x3000000 misc=0x8c "
			    "mcgstatus=0x7 action=panic result=fatal",
			    5, NULL);
		expect_panic(vm, "mce: panic: Fatal machine check: Processor context corrupt");
	}
	vm_destroy(vm);
}

static void sc_timeout(void)
{
	struct vm *vm = vm_start("intel,banks=2,ser,tes,cmci", 2, 1);
	struct inj in = {.bank = 1,
			 .status = ST_SRAO,
			 .addr = 0x2345000,
			 .misc = MISC_PHYS_PAGE,
			 .mcgstatus = MCG_MCIP | MCG_RIPV};
	double t;

	if (boot(vm, true, NULL)) {
		t = elapsed(vm);
		inject(vm, 0, &in); /* no broadcast: vCPU 1 never enters the handler */
		expect_panic(
			vm,
			"mce: panic: Timeout: Not all CPUs entered broadcast exception handler");
		t = elapsed(vm) - t;
		printf("figure: rendezvous timeout after %.3f s\n", t);
		CHECK(t >= 0.9, "timed out after %.3f s, before the 1 s timeout", t);
	}
	vm_destroy(vm);
}

/* A broadcast in which no vCPU finds an error: the monarch panics (mce_reign). */
static void sc_unknown_source(void)
{
	struct vm *vm = vm_start("intel,banks=2,ser,tes,cmci", 2, 1);
	struct inj by = {.bank = -1, .mcgstatus = MCG_MCIP | MCG_RIPV};

	if (boot(vm, true, NULL)) {
		inject(vm, 0, &by);
		inject(vm, 1, &by);
		expect_line(vm, NULL, "mce: bystander cpu=0", 5, NULL);
		expect_line(vm, NULL, "mce: bystander cpu=1", 5, NULL);
		expect_panic(vm, "mce: panic: Fatal machine check from unknown source");
	}
	vm_destroy(vm);
}

static void sc_lmce(void)
{
	struct vm *vm = vm_start("intel,banks=2,ser,tes,cmci,lmce", 2, 1);
	struct inj in = {.bank = 1,
			 .status = ST_SRAO,
			 .addr = 0x2346000,
			 .misc = MISC_PHYS_PAGE,
			 .mcgstatus = MCG_MCIP | MCG_RIPV | MCG_LMCES};
	struct vmce_vcpu_state st;
	unsigned from;

	CHECK(expect_line(vm, NULL, "mce: init cpu=0 banks=2 ser=1 cmci=1 lmce=1", 10, NULL),
	      "lmce init");
	if (!boot(vm, true, NULL))
		goto out;
	get_state(vm, 0, &st);
	CHECK(st.mcg_ext_ctl == 1, "MCG_EXT_CTL.LMCE_EN not set: 0x%llx",
	      (unsigned long long)st.mcg_ext_ctl);
	inject(vm, 0, &in); /* local: no rendezvous, no timeout */
	expect_line(vm, NULL,
		    "mce: cpu=0 bank=1 status=0xbd000000000000c0 addr=0x2346000 misc=0x8c "
		    "mcgstatus=0xd action=offline-page result=recovered",
		    5, NULL);
	from = vm->nlines;
	expect_line(vm, &from, "guest: alive tick=", 5, NULL);
	CHECK(!has_line(vm, "mce: panic") && !has_line(vm, "mce: bystander"),
	      "LMCE made a rendezvous");
out:
	vm_destroy(vm);
}

static void sc_poll(uint64_t status, const char *want, uint32_t flags)
{
	struct vm *vm = vm_start("intel,banks=2,ser,tes,cmci", 1, flags);
	struct inj in = {.no_mc = true,
			 .bank = 1,
			 .status = status,
			 .addr = 0x1234000,
			 .misc = MISC_PHYS_PAGE};
	struct vmce_vcpu_state st;

	if (boot(vm, false, NULL)) {
		inject(vm, 0, &in);
		if (want)
			expect_line(vm, NULL, want, 3, NULL);
		else
			usleep(1500000); /* three poller rounds */
		usleep(100000);
		CHECK(want || !has_line(vm, "mce: cpu="), "the quiet poller printed");
		get_state(vm, 0, &st);
		CHECK(st.bank[1].status == 0, "the poller did not clear MCi_STATUS");
		CHECK(!vm->done, "guest stopped: %s", vm->stop_reason);
	}
	vm_destroy(vm);
}

static void sc_amd_deferred(void)
{
	struct vm *vm = vm_start("amd,banks=2", 1, 0);
	struct inj in = {.no_mc = true, .bank = 1, .status = ST_DEFER, .addr = 0x1235000};

	CHECK(expect_line(vm, NULL, "guest: boot cpus=1 vendor=amd", 10, NULL), "amd boot");
	CHECK(expect_line(vm, NULL, "mce: init cpu=0 banks=2 ser=0 cmci=0 lmce=0", 10, NULL),
	      "amd init");
	if (!vm->done) {
		inject(vm, 0, &in);
		expect_line(vm, NULL,
			    "mce: cpu=0 bank=1 status=0x840010000000009c addr=0x1235000 misc=0x0 "
			    "mcgstatus=0x0 action=offline-page result=recovered",
			    3, NULL);
	}
	vm_destroy(vm);
}

static void sc_amd_uc(bool succor)
{
	struct vm *vm = vm_start(succor ? "amd,banks=2,succor" : "amd,banks=2", 1, 1);
	char wl[LINE_MAX_];
	struct inj in = {.user_only = succor,
			 .bank = 1,
			 .status = ST_AMDUC,
			 .misc = MISC_PHYS_PAGE,
			 .mcgstatus = MCG_MCIP | MCG_RIPV | MCG_EIPV};

	if (!boot(vm, true, wl))
		goto out;
	in.addr = line_u64(wl, "page=");
	inject(vm, 0, &in);
	if (succor) {
		expect_line(vm, NULL, "mce: cpu=0 bank=1 status=0xbc00000000000134", 5, NULL);
		expect_line(vm, NULL, "workload: restarted cpu=0 page=0x", 5, NULL);
		CHECK(!has_line(vm, "mce: panic"), "unexpected panic");
	} else {
		expect_panic(vm, "mce: panic: Fatal local machine check: Uncorrected error without "
				 "MCA Recovery");
	}
out:
	vm_destroy(vm);
}

int main(int argc, char **argv)
{
	const char *sc = argc > 1 ? argv[1] : "";
	int fd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		printf("SKIP: /dev/kvm is not usable (%s): the guest tests need KVM\n",
		       strerror(errno));
		return 77;
	}
	if (ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_USER_SPACE_MSR) <= 0 ||
	    ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_MSR_FILTER) <= 0) {
		printf("SKIP: this KVM lacks KVM_CAP_X86_USER_SPACE_MSR / "
		       "KVM_CAP_X86_MSR_FILTER\n");
		close(fd);
		return 77;
	}
	close(fd);

	if (!strcmp(sc, "boot"))
		sc_boot();
	else if (!strcmp(sc, "srao"))
		sc_srao();
	else if (!strcmp(sc, "srar"))
		sc_srar();
	else if (!strcmp(sc, "srao4"))
		sc_srao4();
	else if (!strcmp(sc, "srar_ripv0"))
		sc_srar_ripv0();
	else if (!strcmp(sc, "srar_kernel"))
		sc_srar_kernel();
	else if (!strcmp(sc, "pcc"))
		sc_pcc();
	else if (!strcmp(sc, "timeout"))
		sc_timeout();
	else if (!strcmp(sc, "lmce"))
		sc_lmce();
	else if (!strcmp(sc, "unknown_source"))
		sc_unknown_source();
	else if (!strcmp(sc, "poll_ce"))
		sc_poll(ST_CE,
			"mce: cpu=0 bank=1 status=0x9c0000000000009f addr=0x1234000 "
			"misc=0x8c mcgstatus=0x0 action=log result=logged",
			0);
	else if (!strcmp(sc, "poll_ucna"))
		sc_poll(ST_UCNA,
			"mce: cpu=0 bank=1 status=0xbc0000000000009f addr=0x1234000 "
			"misc=0x8c mcgstatus=0x0 action=offline-page result=recovered",
			0);
	else if (!strcmp(sc, "poll_quiet"))
		sc_poll(ST_CE, NULL, 2);
	else if (!strcmp(sc, "amd_deferred"))
		sc_amd_deferred();
	else if (!strcmp(sc, "amd_nosuccor"))
		sc_amd_uc(false);
	else if (!strcmp(sc, "amd_succor"))
		sc_amd_uc(true);
	else {
		fprintf(stderr,
			"usage: vmce-guest-run "
			"boot|srao|srao4|srar|srar_ripv0|srar_kernel|pcc|timeout|"
			"lmce|poll_ce|poll_ucna|poll_quiet|amd_deferred|amd_nosuccor|amd_succor\n");
		return 2;
	}
	printf("%s: %s\n", sc, fail_count ? "FAIL" : "PASS");
	return fail_count ? 1 : 0;
}
