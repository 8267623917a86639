/* SPDX-License-Identifier: MIT */
/*
 * kvm_internal.h - the KVM backend's structures and the calls its parts make into each other.
 *
 *   backend.c  create/destroy, vCPU binding, kicks, injection from any thread
 *   filter.c   which MSRs the backend owns, the merged MSR filter, RDMSR/WRMSR exits
 *   deliver.c  vmce_kvm_pre_run(): records -> #MC (vCPU events) / CMCI (LAPIC MSI)
 *   sigbus.c   the async-signal-safe SIGBUS handler and its processing
 *   cpuid.c    the CPUID helper
 *   hybrid.c   KVM's in-kernel MCA: SETUP_MCE and state sync
 */
#ifndef VMCE_KVM_INTERNAL_H
#define VMCE_KVM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include <vmce/kvm.h>

#include "vmce_internal.h"

/* The backend's part of the MSR filter: one range for reads, one for writes, over
 * [FILTER_BASE, FILTER_END]; bits of other MSRs in it come from the VMM's filter. */
#define VMCE_KVM_FILTER_BASE  VMCE_MSR_MCG_CAP
#define VMCE_KVM_FILTER_END   VMCE_MSR_MCG_EXT_CTL
#define VMCE_KVM_FILTER_NMSRS (VMCE_KVM_FILTER_END - VMCE_KVM_FILTER_BASE + 1)
#define VMCE_KVM_FILTER_BYTES ((VMCE_KVM_FILTER_NMSRS + 7) / 8)

/* A recorded SIGBUS (per-vCPU AR slot, or a slot of the process-wide ring). */
struct vmce_kvm_sigrec {
	_Atomic unsigned state; /* 0 free, 1 being written, 2 recorded */
	int code;		/* BUS_MCEERR_AR / BUS_MCEERR_AO */
	uint64_t addr;
	unsigned lsb;
	struct vmce_kvm_vcpu *kv; /* the vCPU thread that got it, or NULL */
};

struct vmce_kvm_vcpu {
	struct vmce_kvm *k;
	struct vmce_vcpu *v;
	unsigned index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	pid_t tid;
	bool mc_due;		   /* an applied #MC still to inject (an event was in flight) */
	struct vmce_kvm_sigrec ar; /* BUS_MCEERR_AR slot of this thread */
};

struct vmce_kvm {
	struct vmce_vm *vm;
	int vm_fd;
	enum vmce_kvm_mode mode;
	int kick_signal;
	uint64_t kernel_mcg_cap; /* hybrid: what KVM_X86_SETUP_MCE gets */
	/* User-space mode: what KVM_X86_SETUP_MCE gets so that KVM's LAPIC keeps the guest's
	 * LVT CMCI entry (bank count | CMCI_P, when the profile has CMCI and KVM offers it);
	 * 0: leave KVM's MCA alone.  KVM's MCA registers are never reached (all filtered). */
	uint64_t lapic_mcg_cap;
	uint64_t msr_reasons;

	pthread_mutex_t lock;	    /* vCPU binding, kicks, filter updates */
	struct vmce_kvm_vcpu **kvs; /* nr_vcpus entries, NULL while unbound */

	/* The VMM's filter (copied bitmaps). */
	uint32_t vmm_default;
	unsigned vmm_nr;
	struct kvm_msr_filter_range vmm_ranges[VMCE_KVM_MAX_VMM_RANGES];
	uint8_t *vmm_bitmaps[VMCE_KVM_MAX_VMM_RANGES];
	/* The backend's bitmaps (READ, WRITE) of the merged filter. */
	uint8_t own_bitmap[2][VMCE_KVM_FILTER_BYTES];
};

/* filter.c */
bool vmce__kvm_owns(const struct vmce_kvm *k, uint32_t index, bool write);
int vmce__kvm_install_filter(struct vmce_kvm *k, struct vmce_err *err);
/* True when MSR index is held by KVM (hybrid mode: in-kernel state that must be synced). */
bool vmce__kvm_kernel_holds(const struct vmce_kvm *k, uint32_t index);

/* hybrid.c */
int vmce__kvm_hybrid_setup(struct vmce_kvm *k, struct vmce_err *err);
/* User-space mode: choose lapic_mcg_cap (never fails: without it CMCI is not signalled). */
void vmce__kvm_user_setup(struct vmce_kvm *k);
int vmce__kvm_user_vcpu_init(struct vmce_kvm_vcpu *kv, struct vmce_err *err);
int vmce__kvm_hybrid_vcpu_init(struct vmce_kvm_vcpu *kv, struct vmce_err *err);
int vmce__kvm_get_msr(struct vmce_kvm_vcpu *kv, uint32_t index, uint64_t *value);
int vmce__kvm_set_msr(struct vmce_kvm_vcpu *kv, uint32_t index, uint64_t value);

/* sigbus.c */
void vmce__kvm_sigbus_register(struct vmce_kvm *k);
void vmce__kvm_sigbus_unregister(struct vmce_kvm *k);
void vmce__kvm_sigbus_bind_thread(struct vmce_kvm_vcpu *kv);
/* vCPU thread: forward this thread's AR slot and the ring (from vmce_kvm_pre_run). */
void vmce__kvm_sigbus_poll(struct vmce_kvm_vcpu *kv);

/* backend.c: kick without taking the lock twice; skips the calling thread. */
void vmce__kvm_kick_locked(struct vmce_kvm *k, unsigned index);

#endif /* VMCE_KVM_INTERNAL_H */
