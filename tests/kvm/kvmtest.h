/* SPDX-License-Identifier: MIT */
/*
 * kvmtest.h - one tiny guest under one of three MCA implementations, for the KVM tests:
 * KVM's in-kernel MCA (KVM_X86_SETUP_MCE / KVM_X86_SET_MCE), vmce through user-space MSR exits,
 * and vmce's hybrid mode.
 */
#ifndef VMCE_TESTS_KVMTEST_H
#define VMCE_TESTS_KVMTEST_H

#include <vmce/kvm.h>

#include "tinyvm.h"

enum kt_mode { KT_KERNEL = 0, KT_USER = 1, KT_HYBRID = 2 };

#define KT_MEM (4u << 20)

struct kt {
	enum kt_mode mode;
	struct tinyvm tv;
	struct vmce_vm *vm;
	struct vmce_kvm *k;
	struct vmce_kvm_vcpu *kv;
	uint64_t kernel_cap; /* MCG_CAP given to KVM_X86_SETUP_MCE (kernel mode and hybrid) */
	bool shutdown;	     /* vmce shut the guest down */
	_Atomic bool stop;   /* another thread asks kt_run() to return (then kicks) */
	char reason[160];
	unsigned respos; /* results consumed */
	unsigned mcpos;	 /* #MC reports consumed */
	struct tv_hooks hooks;
	struct vmce_err err;
};

const char *kt_mode_name(enum kt_mode m);
/* The closest MCG_CAP KVM accepts for a profile: bank count, and the profile's capability bits
 * that KVM_X86_GET_MCE_CAP_SUPPORTED reports. */
uint64_t kt_closest_cap(const struct vmce_profile *p);
/* Start a guest; returns 0 or -1 with a message on stdout. */
int kt_start(struct kt *t, enum kt_mode m, const char *profile);
/* The same with an in-kernel irqchip (LAPIC): HLT then stays in the kernel. */
int kt_start_irqchip(struct kt *t, enum kt_mode m, const char *profile);
void kt_stop(struct kt *t);

/* Run the queued script; returns the stop reason (vmce shutdowns give TV_STOP_HOOK). */
enum tv_stop kt_run(struct kt *t);

/* One guest RDMSR / WRMSR: "0x..." or "#GP" (or "shutdown"/"error" when the guest died). */
void kt_rdmsr(struct kt *t, uint32_t index, char *out, size_t len);
void kt_wrmsr(struct kt *t, uint32_t index, uint64_t value, char *out, size_t len);

/* Queue a record for the guest: kernel mode with KVM_X86_SET_MCE, vmce modes on the vCPU's
 * delivery queue (as the policy would) and a kick. */
int kt_inject(struct kt *t, int bank, uint64_t status, uint64_t addr, uint64_t misc,
	      uint64_t mcg_status);

/* HLT, inject, and run to the next command: the outcome as text ("#MC mcg=... st=... if=..",
 * "no #MC", "shutdown"). */
void kt_inject_step(struct kt *t, int bank, uint64_t status, uint64_t addr, uint64_t misc,
		    uint64_t mcg_status, char *out, size_t len);

/* Differences allowed by docs/kvm-differences.md: true when row `id` is listed for mode. */
bool kt_difference_listed(const char *doc_path, const char *id, enum kt_mode m);

#endif
