/* SPDX-License-Identifier: MIT */
/*
 * vmce.h - virtual machine-check architecture for x86 virtual machines: the core.
 *
 * vmce presents a guest with a software-defined machine-check architecture (MCA) that does not
 * depend on the host's: a fixed MCG_CAP chosen by a *profile*, a few banks, per-vCPU state, and
 * the MSR semantics of the Intel SDM / AMD APM for exactly that profile.  A VMM embeds it by
 *
 *   1. building a profile (vmce_profile_default() or vmce_profile_parse()),
 *   2. creating a VM model with vmce_vm_create(),
 *   3. sending every guest RDMSR/WRMSR of an MCA MSR to vmce_rdmsr()/vmce_wrmsr() and giving
 *      the guest #GP when they say so,
 *   4. turning host memory errors into guest machine checks with the policy API (policy.h),
 *      and delivering what vmce_vcpu_deliver() says on each vCPU thread.
 *
 * Backends (kvm.h) do steps 3 and 4 for KVM.  Migration is in migrate.h.
 *
 * Errors: functions that can fail return 0 on success or a negative errno value, and fill a
 * caller-supplied struct vmce_err (which may be NULL) with a sentence naming what was wrong.
 *
 * Thread-safety contract
 * ----------------------
 * A vCPU's MCA state has one writer: the thread that runs that vCPU (its "vCPU thread").
 *  - vmce_rdmsr(), vmce_wrmsr(), vmce_host_rdmsr(), vmce_host_wrmsr(), vmce_vcpu_reset(),
 *    vmce_vcpu_set_state(), vmce_vcpu_set_amd_mcstatus_wren() and vmce_vcpu_deliver() may only
 *    be called by the vCPU's own thread (or by any one thread while the vCPU is not running).
 *    They allocate nothing.  The MSR calls and the state calls take no lock and make no system
 *    call; vmce_vcpu_deliver() takes the vCPU's queue lock (only to copy one record out) and the
 *    event log's lock, reads the clock, and calls the VMM's event callback.
 *  - vmce_vcpu_pending(), vmce_vcpu_set_started()/vmce_vcpu_started() and the read-only
 *    accessors (vmce_vm_profile(), vmce_vm_nr_vcpus(), vmce_vm_vcpu(), vmce_vcpu_index(),
 *    vmce_vcpu_vm()) may be called from any thread at any time.
 *  - vmce_vcpu_get_state() may be called from any thread at any time; it returns a consistent
 *    snapshot (a sequence counter, retried if a write raced with it).
 *  - vmce_inject() / vmce_handle_error() (policy.h) may be called from any thread at any time,
 *    concurrently with the MSR path: they never write another thread's vCPU state; they queue
 *    records that the target vCPU thread applies, atomically, in vmce_vcpu_deliver().
 *  - Profile functions are pure and thread-safe.  vmce_vm_create()/vmce_vm_destroy() must not
 *    race with any other call on the same VM.
 */
#ifndef VMCE_VMCE_H
#define VMCE_VMCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(VMCE_BUILDING)
#define VMCE_API __attribute__((visibility("default")))
#else
#define VMCE_API
#endif

/* The API version these headers describe (the library's soname is libvmce.so.1). */
#define VMCE_VERSION_MAJOR 0
#define VMCE_VERSION_MINOR 2

/* Limits. */
#define VMCE_MAX_BANKS 32   /* MCi MSRs 0x400..0x47F */
#define VMCE_MAX_VCPUS 1024 /* per VM */

/* Architectural MSR indices. */
#define VMCE_MSR_P5_MC_ADDR    0x0u
#define VMCE_MSR_P5_MC_TYPE    0x1u
#define VMCE_MSR_MCG_CAP       0x179u
#define VMCE_MSR_MCG_STATUS    0x17Au
#define VMCE_MSR_MCG_CTL       0x17Bu
#define VMCE_MSR_MC0_CTL2      0x280u
#define VMCE_MSR_MCG_EXT_CTL   0x4D0u
#define VMCE_MSR_MC0_CTL       0x400u
#define VMCE_MSR_MCi_CTL(i)    (0x400u + 4u * (i))
#define VMCE_MSR_MCi_STATUS(i) (0x401u + 4u * (i))
#define VMCE_MSR_MCi_ADDR(i)   (0x402u + 4u * (i))
#define VMCE_MSR_MCi_MISC(i)   (0x403u + 4u * (i))
#define VMCE_MSR_MCi_CTL2(i)   (0x280u + (i))

/* MCG_CAP bits. */
#define VMCE_MCG_CAP_COUNT_MASK 0xffull
#define VMCE_MCG_CTL_P		(1ull << 8)
#define VMCE_MCG_EXT_P		(1ull << 9)
#define VMCE_MCG_CMCI_P		(1ull << 10)
#define VMCE_MCG_TES_P		(1ull << 11)
#define VMCE_MCG_SER_P		(1ull << 24)
#define VMCE_MCG_LMCE_P		(1ull << 27)

/* MCG_STATUS bits. */
#define VMCE_MCG_STATUS_RIPV  (1ull << 0)
#define VMCE_MCG_STATUS_EIPV  (1ull << 1)
#define VMCE_MCG_STATUS_MCIP  (1ull << 2)
#define VMCE_MCG_STATUS_LMCES (1ull << 3)

/* MCG_EXT_CTL bits. */
#define VMCE_MCG_EXT_CTL_LMCE_EN (1ull << 0)

/* MCi_STATUS bits. */
#define VMCE_MCI_STATUS_VAL	 (1ull << 63)
#define VMCE_MCI_STATUS_OVER	 (1ull << 62)
#define VMCE_MCI_STATUS_UC	 (1ull << 61)
#define VMCE_MCI_STATUS_EN	 (1ull << 60)
#define VMCE_MCI_STATUS_MISCV	 (1ull << 59)
#define VMCE_MCI_STATUS_ADDRV	 (1ull << 58)
#define VMCE_MCI_STATUS_PCC	 (1ull << 57)
#define VMCE_MCI_STATUS_S	 (1ull << 56)
#define VMCE_MCI_STATUS_AR	 (1ull << 55)
#define VMCE_MCI_STATUS_DEFERRED (1ull << 44)	   /* AMD */
#define VMCE_MCI_STATUS_POISON	 (1ull << 43)	   /* AMD */
#define VMCE_MCI_STATUS_MCACOD	 0xffffull	   /* architectural error code */
#define VMCE_MCI_STATUS_MSCOD	 (0xffffull << 16) /* model-specific error code */

/* MCi_CTL2 bits (Intel, CMCI). */
#define VMCE_MCI_CTL2_CMCI_EN	(1ull << 30)
#define VMCE_MCI_CTL2_THRESHOLD 0x7fffull

/* AMD HWCR (MSR 0xC0010015) bit that lets software write MCi_STATUS. */
#define VMCE_AMD_HWCR_MCSTATUSWREN (1ull << 18)

/* An error message buffer: filled by failing calls with one sentence naming the problem. */
struct vmce_err {
	char msg[256];
};

/* --------------------------------------------------------------------------------------------
 * Profiles: the guest-visible capability set.
 * ------------------------------------------------------------------------------------------ */

/* The CPU vendor whose MCA flavour a profile presents (it must match the guest's CPUID). */
enum vmce_vendor {
	VMCE_VENDOR_INTEL = 0, /* GenuineIntel: SER, TES, CMCI, LMCE; SRAO/SRAR records */
	VMCE_VENDOR_AMD = 1,   /* AuthenticAMD: SUCCOR; action-optional errors as Deferred */
};

/* Capability flags of a profile (VMCE_CAP_*), independent of their MCG_CAP bit positions. */
#define VMCE_CAP_CTL	(1u << 0) /* MCG_CTL_P: MCG_CTL present */
#define VMCE_CAP_CMCI	(1u << 1) /* MCG_CMCI_P: corrected-error interrupt, MCi_CTL2 (Intel) */
#define VMCE_CAP_TES	(1u << 2) /* MCG_TES_P: threshold-based error status (Intel) */
#define VMCE_CAP_SER	(1u << 3) /* MCG_SER_P: software error recovery (Intel) */
#define VMCE_CAP_LMCE	(1u << 4) /* MCG_LMCE_P: local machine check (Intel) */
#define VMCE_CAP_SUCCOR (1u << 5) /* AMD: CPUID 0x80000007 EBX bit 1, recoverable MCA */
#define VMCE_CAP_ALL	0x3fu	  /* every capability flag above */

/*
 * A profile.  Build one with vmce_profile_default() or vmce_profile_parse(); a hand-built one
 * must pass vmce_profile_validate().
 *
 * Banks [0, banks) are real banks.  Banks [banks, compat_banks) exist only so that a guest
 * which once saw more banks (before a migration) can still read them: they read as zero and
 * ignore writes.  Banks at or above compat_banks give #GP like absent banks on hardware.
 */
struct vmce_profile {
	enum vmce_vendor vendor;
	uint32_t caps;	      /* VMCE_CAP_* */
	uint8_t banks;	      /* 1..VMCE_MAX_BANKS */
	uint8_t report_bank;  /* bank that carries forwarded errors, < banks */
	uint8_t compat_banks; /* banks..VMCE_MAX_BANKS */
};

/* The default profile: intel,banks=2,ser,tes,cmci (report bank 1, no RAZ/WI window). */
VMCE_API void vmce_profile_default(struct vmce_profile *p);

/*
 * Parse the text form, e.g. "intel,banks=2,ser,tes,cmci" or "amd,banks=4,succor".
 * Tokens (comma-separated, vendor first): intel | amd, banks=N (1..32), report=N,
 * compat=N, and the capability names ctl, cmci, tes, ser, lmce (Intel) and ctl, succor (AMD).
 * Unspecified: banks=2, report=1 (0 when banks=1), compat=banks, no capability.
 * Returns 0, or -EINVAL with err naming the bad token.
 */
VMCE_API int vmce_profile_parse(const char *text, struct vmce_profile *p, struct vmce_err *err);

/* Print the canonical text form (parses back to the same profile).  Returns the length that
 * the full text needs, like snprintf; the output is truncated (and terminated) to len. */
VMCE_API int vmce_profile_format(const struct vmce_profile *p, char *buf, size_t len);

/* Check a profile's fields and their combination.  Returns 0 or -EINVAL with a reason. */
VMCE_API int vmce_profile_validate(const struct vmce_profile *p, struct vmce_err *err);

/* The MCG_CAP value the guest reads. */
VMCE_API uint64_t vmce_profile_mcg_cap(const struct vmce_profile *p);

/* True when both profiles present the same interface to a guest. */
VMCE_API bool vmce_profile_equal(const struct vmce_profile *a, const struct vmce_profile *b);

/* --------------------------------------------------------------------------------------------
 * The VM model and its vCPUs.
 * ------------------------------------------------------------------------------------------ */

/* A VM model (opaque): the profile, every vCPU's MCA state, the memory map, the poisoned-page
 * set and the event log.  Created by vmce_vm_create(). */
struct vmce_vm;
/* One vCPU of a VM model (opaque), from vmce_vm_vcpu(). */
struct vmce_vcpu;

/* What to do with an error the policy finds fatal to the guest (PCC, unknown address, ...). */
enum vmce_fatal_policy {
	VMCE_FATAL_SHUTDOWN = 0, /* shut the guest down (default): what hardware would do */
	VMCE_FATAL_LOG_ONLY = 1, /* log it and keep the guest running */
};

/* How to create a VM model: fill it with vmce_vm_config_default(), then change fields. */
struct vmce_vm_config {
	struct vmce_profile profile;
	unsigned nr_vcpus;	      /* 1..VMCE_MAX_VCPUS */
	size_t max_poisoned_pages;    /* bound of the poisoned-page set; 0: 65536 */
	enum vmce_fatal_policy fatal; /* default VMCE_FATAL_SHUTDOWN */
};

/* Fill a config with the default profile, 1 vCPU and the default bounds. */
VMCE_API void vmce_vm_config_default(struct vmce_vm_config *cfg);

/* Create a VM model; all memory the MSR path uses is allocated here.  Every vCPU starts in the
 * reset state and is "started" (see vmce_vcpu_set_started()). */
VMCE_API int vmce_vm_create(const struct vmce_vm_config *cfg, struct vmce_vm **out,
			    struct vmce_err *err);
/* Free a VM model and everything it owns (NULL is ignored).  No other call may use it then. */
VMCE_API void vmce_vm_destroy(struct vmce_vm *vm);

/* The profile the VM presents (after a restore: the guest's, see migrate.h). */
VMCE_API const struct vmce_profile *vmce_vm_profile(const struct vmce_vm *vm);
/* The number of vCPUs the VM was created with. */
VMCE_API unsigned vmce_vm_nr_vcpus(const struct vmce_vm *vm);
/* The vCPU with that index, or NULL when out of range. */
VMCE_API struct vmce_vcpu *vmce_vm_vcpu(struct vmce_vm *vm, unsigned index);
/* The index of a vCPU in its VM (0 .. nr_vcpus - 1). */
VMCE_API unsigned vmce_vcpu_index(const struct vmce_vcpu *vcpu);
/* The VM a vCPU belongs to. */
VMCE_API struct vmce_vm *vmce_vcpu_vm(struct vmce_vcpu *vcpu);

/*
 * Whether the VMM has started the vCPU.  Injection into a vCPU that is not started is refused
 * (the policy reports it) rather than left queued forever.  vCPUs start as started; a VMM that
 * brings vCPUs up later (AP bring-up) clears and sets this.  Any thread.
 */
VMCE_API void vmce_vcpu_set_started(struct vmce_vcpu *vcpu, bool started);
/* Whether the vCPU is started (see vmce_vcpu_set_started()).  Any thread. */
VMCE_API bool vmce_vcpu_started(const struct vmce_vcpu *vcpu);

/* --------------------------------------------------------------------------------------------
 * The MSR path (vCPU thread only; no locks, no allocation, no system calls).
 * ------------------------------------------------------------------------------------------ */

/* What the VMM does with a guest MSR access after vmce_rdmsr()/vmce_wrmsr(). */
enum vmce_msr_result {
	VMCE_MSR_OK = 0,      /* done; for a read, *value is set */
	VMCE_MSR_GP = 1,      /* the guest must get #GP(0) */
	VMCE_MSR_NOT_MCA = 2, /* not an MCA MSR: the VMM handles it as before */
};

/* True for every index vmce may claim (whatever the profile): 0x0, 0x1, 0x179-0x17B,
 * 0x280-0x29F, 0x400-0x47F and 0x4D0. */
VMCE_API bool vmce_msr_is_mca(uint32_t index);

/* A guest RDMSR, with the semantics of the MSR contract (docs/msr-contract.md): *value is set
 * when the result is VMCE_MSR_OK. */
VMCE_API enum vmce_msr_result vmce_rdmsr(struct vmce_vcpu *vcpu, uint32_t index, uint64_t *value);
/* A guest WRMSR, with the semantics of the MSR contract (docs/msr-contract.md). */
VMCE_API enum vmce_msr_result vmce_wrmsr(struct vmce_vcpu *vcpu, uint32_t index, uint64_t value);

/*
 * Host-initiated access (VMM save/restore): any field of a present bank may be set to any
 * value, MCi_STATUS included.  MCG_CAP can be written only with the profile's value.  Returns
 * VMCE_MSR_GP for an index the profile does not back (absent bank, MCG_CTL without CTL_P, ...);
 * a bank in the RAZ/WI window reads 0 and accepts only 0.
 */
VMCE_API enum vmce_msr_result vmce_host_rdmsr(struct vmce_vcpu *vcpu, uint32_t index,
					      uint64_t *value);
/* The host-initiated write that goes with vmce_host_rdmsr() (same rules). */
VMCE_API enum vmce_msr_result vmce_host_wrmsr(struct vmce_vcpu *vcpu, uint32_t index,
					      uint64_t value);

/* AMD flavour: the VMM reports the guest's HWCR.McStatusWrEn (bit 18) when the guest writes
 * HWCR; while set, the guest may write non-zero values to MCi_STATUS.  No effect (the flag
 * stays clear) on an Intel profile. */
VMCE_API void vmce_vcpu_set_amd_mcstatus_wren(struct vmce_vcpu *vcpu, bool enabled);

/* --------------------------------------------------------------------------------------------
 * Whole-vCPU state, for save/restore, status displays and tests.
 * ------------------------------------------------------------------------------------------ */

/* One bank's registers: MCi_CTL, MCi_STATUS, MCi_ADDR, MCi_MISC and MCi_CTL2. */
struct vmce_bank_state {
	uint64_t ctl, status, addr, misc, ctl2;
};

/* A vCPU's whole MCA state (vmce_vcpu_get_state(), vmce_vcpu_set_state()). */
struct vmce_vcpu_state {
	uint64_t mcg_status;
	uint64_t mcg_ctl;
	uint64_t mcg_ext_ctl;
	bool amd_mcstatus_wren;
	struct vmce_bank_state bank[VMCE_MAX_BANKS]; /* only [0, profile.banks) is meaningful */
};

/* Reset state: every MCi_CTL all-ones, MCG_CTL all-ones when CTL_P, everything else zero. */
VMCE_API void vmce_vcpu_reset(struct vmce_vcpu *vcpu);

/* A consistent snapshot, from any thread. */
VMCE_API void vmce_vcpu_get_state(const struct vmce_vcpu *vcpu, struct vmce_vcpu_state *out);

/* Load a whole state (host side: any field value).  Banks at or above profile.banks must be
 * zero.  Returns 0 or -EINVAL naming the field. */
VMCE_API int vmce_vcpu_set_state(struct vmce_vcpu *vcpu, const struct vmce_vcpu_state *st,
				 struct vmce_err *err);

/* --------------------------------------------------------------------------------------------
 * Delivery: records queued by the policy (vmce_inject()) are applied on the vCPU thread.
 * ------------------------------------------------------------------------------------------ */

/* How a record is signalled. */
enum vmce_signal {
	VMCE_SIGNAL_NONE = 0, /* only loaded into the bank (a polled error) */
	VMCE_SIGNAL_MC = 1,   /* machine-check exception (#MC, vector 18) */
	VMCE_SIGNAL_CMCI = 2, /* corrected machine-check interrupt (LVT CMCI) */
};

/* What one vCPU is to receive: an optional bank record and, for #MC, MCG_STATUS. */
struct vmce_vcpu_record {
	enum vmce_signal signal;
	int bank;	     /* bank to load, or -1: none (a broadcast bystander) */
	uint64_t status;     /* MCi_STATUS */
	uint64_t addr;	     /* MCi_ADDR (guest-physical) */
	uint64_t misc;	     /* MCi_MISC */
	uint64_t mcg_status; /* MCG_STATUS to load with an #MC */
};

/* What the backend must do on this vCPU now. */
enum vmce_action {
	VMCE_ACTION_NONE = 0,	  /* nothing pending */
	VMCE_ACTION_MC = 1,	  /* inject #MC (vector 18) before the next guest entry */
	VMCE_ACTION_CMCI = 2,	  /* raise the CMCI (LVT CMCI vector of the guest's LAPIC) */
	VMCE_ACTION_SHUTDOWN = 3, /* the guest must be shut down; reason says why */
	VMCE_ACTION_LOADED = 4,	  /* record loaded into a bank without a signal (or masked) */
};

/* What vmce_vcpu_deliver() applied, and what the backend must do about it. */
struct vmce_delivery {
	enum vmce_action action;
	uint64_t event_seq; /* sequence number of the event that logged it */
	char reason[160];
};

/* True when records are queued for this vCPU (any thread; one relaxed atomic load). */
VMCE_API bool vmce_vcpu_pending(const struct vmce_vcpu *vcpu);

/*
 * Apply the oldest queued record to this vCPU's state and say what to signal (vCPU thread).
 * guest_cr4_mce: the guest's CR4.MCE bit now.  Architectural rules applied here:
 *   - MCG_STATUS.MCIP already set, or CR4.MCE clear, when an #MC is due: shutdown;
 *   - the bank already holds a valid record: OVER is set (an uncorrected record is kept over a
 *     corrected one);
 *   - MCi_CTL = 0 (the guest disabled the bank), or MCG_CTL = 0 with CTL_P: the record is
 *     loaded but not signalled;
 *   - CMCI only when the bank's CTL2.CMCI_EN is set at this moment.
 * Call it until it returns VMCE_ACTION_NONE, or once per guest entry: a second #MC applied
 * while the guest still handles the first shuts the guest down, as on hardware.
 * Every outcome is logged in the VM's event log (policy.h).  Returns 1 when a record was
 * applied, 0 when none was pending.
 */
VMCE_API int vmce_vcpu_deliver(struct vmce_vcpu *vcpu, bool guest_cr4_mce,
			       struct vmce_delivery *out);

/*
 * The guest of this vCPU ran and exited for a reason of its own (I/O, MMIO, an MSR access,
 * HLT...; not a kick or a signal) since the VMM last called vmce_vcpu_deliver() (vCPU thread;
 * no lock, no allocation).  After the guest cleared MCG_STATUS.MCIP this says its machine-check
 * handler has returned, so records held for this vCPU may go (policy.h, "Held records");
 * without it they wait VMCE_HOLD_SETTLE_MAX_US.  The KVM backend calls it in
 * vmce_kvm_pre_run().
 */
VMCE_API void vmce_vcpu_guest_progress(struct vmce_vcpu *vcpu);

#ifdef __cplusplus
}
#endif

#endif /* VMCE_VMCE_H */
