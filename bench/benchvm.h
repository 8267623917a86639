/* SPDX-License-Identifier: MIT */
/*
 * benchvm.h - the benchmarks' VMs: the KVM tests' tiny-guest harness (tests/kvm/tinyvm.h)
 * driving bench/benchguest.S on V vCPUs, one thread per vCPU, under one MCA implementation:
 * KVM's in-kernel emulation with a given bank count (what QEMU configures), vmce through
 * user-space MSR exits, or vmce's hybrid mode.  The main thread hands jobs to vCPU threads and
 * waits for them, so that several VMs can be measured interleaved in one run.
 */
#ifndef VMCE_BENCH_BENCHVM_H
#define VMCE_BENCH_BENCHVM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <vmce/kvm.h>

#include "tinyvm.h"

#define BV_MAX_VCPUS 16
#define BV_MEM	     (4u << 20)
#define BV_DATA	     0x60000u /* per-vCPU data areas, 64 bytes each (benchguest.S) */
#define BV_P_BENCH   0xe8

/* benchguest.S commands */
enum {
	BV_CMD_HLT = 3,
	BV_CMD_LOOP = 0x20,
	BV_CMD_BOOT = 0x23,
	BV_CMD_POLL = 0x24,
	BV_CMD_LOOP_OUT = 0x25
};
enum { BV_LOOP_NONE = 0, BV_LOOP_RDMSR = 1, BV_LOOP_WRMSR = 2 };

enum bv_impl { BV_KERNEL = 0, BV_USER = 1, BV_HYBRID = 2 };

struct bv_counts {
	uint64_t exits;	    /* every KVM_RUN exit to user space */
	uint64_t msr_exits; /* KVM_EXIT_X86_RDMSR / WRMSR */
	uint64_t reads;	    /* guest MCA MSR reads (counted by the guest) */
	uint64_t writes;    /* guest MCA MSR writes */
	uint64_t gp;	    /* #GP the guest took on an MSR access */
	uint64_t mc;	    /* #MC handlers run */
};

struct bvm;

struct bv_vcpu {
	struct bvm *bvm;
	unsigned index;
	struct tinyvm *tv; /* vCPU 0: the harness's own; others: the same VM, another vCPU */
	struct vmce_kvm_vcpu *kv;
	pthread_t thread;
	bool thread_ok;
	struct tv_hooks hooks;
	uint64_t msr_exits;
	/* set by the exit hook at the first report of an #MC handler (port BV_P_BENCH) */
	double mc_report_us;
	uint64_t bench_outs;
	/* job */
	uint64_t seen_gen;
	int result;
};

typedef int (*bv_job_fn)(struct bv_vcpu *c, void *arg);

struct bvm {
	enum bv_impl impl;
	unsigned banks, nr;
	char name[64];
	struct tinyvm tv0;
	struct bv_vcpu vcpu[BV_MAX_VCPUS];
	struct vmce_vm *vm;
	struct vmce_kvm *k;
	uint64_t kernel_cap;
	pthread_mutex_t lock;
	pthread_cond_t cond, done_cond;
	uint64_t gen;
	unsigned mask_lo; /* vCPUs the current job is for (bit i) */
	unsigned pending;
	bv_job_fn job;
	void *job_arg;
	bool quit;
	struct vmce_err err;
};

double bv_now_us(void);
const char *bv_impl_name(enum bv_impl i);

/*
 * Create a VM with nr vCPUs and start their threads.  KERNEL: KVM_X86_SETUP_MCE with `banks`
 * and QEMU's default capabilities (MCG_CTL_P | MCG_SER_P, as far as KVM offers them).
 * USER/HYBRID: vmce with the profile "intel,banks=<banks>,ser,tes,cmci".
 * Returns 0 or -1 with a message on stderr.
 */
int bv_create(struct bvm *b, enum bv_impl impl, unsigned banks, unsigned nr);
void bv_destroy(struct bvm *b);

/* Run fn on the vCPUs in mask (bit i: vCPU i) at once and wait for all of them.  Returns the
 * first non-zero result. */
int bv_run_job(struct bvm *b, unsigned mask, bv_job_fn fn, void *arg);

/* On a vCPU thread: queue a command and run the guest until it stops; 0 when it stopped as
 * `want` (TV_STOP_IDLE or TV_STOP_HLT), else -1 with a message. */
int bv_guest(struct bv_vcpu *c, enum tv_stop want, uint32_t cmd, unsigned nargs, uint32_t a0,
	     uint32_t a1, uint32_t a2);

/* Counters of a vCPU (guest data area and exits). */
void bv_counts(struct bv_vcpu *c, struct bv_counts *out);
/* Sum over all vCPUs. */
void bv_counts_all(struct bvm *b, struct bv_counts *out);
void bv_counts_sub(struct bv_counts *a, const struct bv_counts *b);

/*
 * Inject one memory error the way this implementation's VMM would, vCPU 0 the affected one,
 * broadcast to the others; the vCPUs must be stopped (between jobs).  KERNEL: what QEMU does
 * for an action-optional SIGBUS: KVM_X86_SET_MCE of an SRAO in bank 9 (bank 1 with fewer banks)
 * on vCPU 0 and of MCi_STATUS VAL|UC in bank 1 with MCG_STATUS MCIP|RIPV on every other vCPU.
 * USER/HYBRID: vmce_kvm_inject() of the same host error (SIGBUS AO at the page's host
 * address).  gpa: the guest page.
 */
int bv_inject_srao(struct bvm *b, uint64_t gpa);

/* Small helpers for the programs. */
int bv_cmp_double(const void *a, const void *b);
double bv_median(double *v, unsigned n);

#endif
