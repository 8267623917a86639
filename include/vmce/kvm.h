/* SPDX-License-Identifier: MIT */
/*
 * kvm.h - the KVM backend: guests' MCA MSRs served by vmce, #MC/CMCI delivery, host SIGBUS.
 *
 * A KVM-based VMM embeds vmce with these calls (docs/kvm-backend.md has a complete loop):
 *
 *   VM setup (any thread, before any vCPU runs):
 *     vmce_vm_create()                          the model (vmce.h)
 *     vmce_memmap_add()                         every guest RAM slot (policy.h)
 *     vmce_kvm_create(vm, &cfg)                 enables user-space MSR exits and installs the
 *                                               MSR filter (merged with the VMM's ranges)
 *     vmce_kvm_cpuid_apply(profile, cpuid)      before KVM_SET_CPUID2 on every vCPU
 *     vmce_kvm_sigbus_install()                 optional: the process's SIGBUS handler
 *
 *   vCPU thread:
 *     vmce_kvm_vcpu_init(k, index, fd, run)     once, on the thread that will run the vCPU
 *     loop:
 *       (VMM writes registers, KVM_SET_REGS / KVM_SET_SREGS, ... as it likes)
 *       r = vmce_kvm_pre_run(kv, &st)           right before every KVM_RUN
 *       if (r == VMCE_KVM_SHUTDOWN) -> guest is dead, st.reason says why
 *       ioctl(fd, KVM_RUN)                      -1/EINTR is normal (a kick): loop again
 *       if (vmce_kvm_handle_exit(kv) == VMCE_KVM_EXIT_HANDLED) continue;
 *       ... the VMM's own exit handling ...
 *     vmce_kvm_vcpu_fini(kv)                    before the thread ends
 *
 *   any thread:
 *     vmce_kvm_inject(k, &host_error)           plan + queue + kick the target vCPUs
 *     vmce_kvm_sigbus_process(k)                turn recorded BUS_MCEERR_AO signals into
 *                                               guest errors (vCPU threads also do it in
 *                                               vmce_kvm_pre_run())
 *
 * Modes
 * -----
 *  - VMCE_KVM_MODE_USERSPACE: every guest access to an MCA MSR (0x179-0x17B, 0x280-0x29F,
 *    0x400-0x47F, 0x4D0) exits to user space and is served by the core model.  KVM's own MCA
 *    emulation is never used.  P5_MC_ADDR/P5_MC_TYPE (0x0, 0x1) stay with KVM, which reads them
 *    as 0.
 *  - VMCE_KVM_MODE_HYBRID: KVM's in-kernel MCA emulation (KVM_X86_SETUP_MCE with the subset of
 *    the profile KVM supports) serves the hot path (bank and MCG_STATUS reads, MCi_STATUS /
 *    ADDR / MISC writes); only what KVM cannot present the way the profile says exits to user
 *    space (MCG_CAP when it differs, MCG_STATUS writes, MCi_CTL writes, CTL2 and MCG_EXT_CTL
 *    when KVM lacks CMCI_P/LMCE_P, RAZ/WI banks).  KVM's registers are the live state; the
 *    backend reads them (KVM_GET_MSRS) before applying a record and writes them back after.
 *    vmce_kvm_sync_from_kernel() / vmce_kvm_sync_to_kernel() make vmce_vcpu_get_state() /
 *    vmce_vcpu_set_state() (save/restore) see and set the whole state.
 *
 * Delivery
 * --------
 * Records queued by the policy are applied in vmce_kvm_pre_run() on the vCPU thread: CR4.MCE is
 * read with KVM_GET_SREGS only when something is pending; an #MC is injected with
 * KVM_SET_VCPU_EVENTS (exception.injected = 1, vector 18), so a later KVM_SET_REGS by the VMM
 * cannot discard it as long as the VMM calls vmce_kvm_pre_run() after its register writes.  An
 * #MC is an exception: it is delivered whatever RFLAGS.IF says.  CMCI goes through the in-kernel
 * LAPIC (an MSI to the vCPU's APIC id with the vector of the guest's LVT CMCI entry), so the
 * VM needs an in-kernel irqchip for profiles with CMCI.
 *
 * Kicks: an injection from another thread sets the target's kvm_run->immediate_exit and sends
 * the kick signal to the vCPU thread, so that a vCPU inside KVM_RUN (or about to enter it)
 * returns with EINTR and applies the record in its next vmce_kvm_pre_run().
 * vmce_kvm_pre_run() clears immediate_exit before it looks at the queue; a VMM that uses
 * immediate_exit for its own kicks checks its own stop flags after vmce_kvm_pre_run(), just
 * before KVM_RUN, so that none of its kicks is lost.  Records held until the guest clears
 * MCG_STATUS.MCIP (policy.h, "Held records") are released by the vCPU thread whose WRMSR cleared
 * it; the backend registers itself as the VM's kick callback (vmce_set_kick_callback()) so that
 * the other vCPUs they reach are kicked the same way.  A VMM calls vmce_hold_poll() every
 * 100 ms or so, for the hung-handler timeout.
 *
 * CMCI: in user-space mode the backend still gives KVM_X86_SETUP_MCE the bank count and CMCI_P
 * when the profile has CMCI and KVM offers it (Intel hosts): only then does KVM's LAPIC keep
 * the guest's LVT CMCI entry.  Where KVM cannot keep it (AMD hosts), a CMCI record stays in the
 * bank for the guest's poller.
 *
 * Thread safety: vmce_kvm_create()/vmce_kvm_destroy() must not race with other calls on the
 * same backend.  vmce_kvm_vcpu_*() calls that take a struct vmce_kvm_vcpu are for that vCPU's
 * thread only.  vmce_kvm_inject(), vmce_kvm_kick(), vmce_kvm_sigbus_process() and
 * vmce_kvm_set_vmm_filter() may be called from any thread.
 */
#ifndef VMCE_KVM_H
#define VMCE_KVM_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <linux/kvm.h>

#include <vmce/vmce.h>
#include <vmce/policy.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Filter ranges the backend itself needs; the VMM may pass the rest of KVM's 16. */
#define VMCE_KVM_FILTER_RANGES	2
#define VMCE_KVM_MAX_VMM_RANGES (KVM_MSR_FILTER_MAX_RANGES - VMCE_KVM_FILTER_RANGES)
/* Preallocated slots for BUS_MCEERR_AO signals not yet processed (process-wide). */
#define VMCE_KVM_SIGBUS_RING 64
/* Backends (VMs) per process that the installed SIGBUS handler knows about. */
#define VMCE_KVM_MAX_BACKENDS 16

/* AMD HWCR (read by the backend to learn McStatusWrEn when a guest writes MCi_STATUS). */
#define VMCE_MSR_AMD_HWCR 0xC0010015u

/* How the KVM backend serves the guest's MCA MSRs (see "Modes" above). */
enum vmce_kvm_mode {
	VMCE_KVM_MODE_USERSPACE = 0, /* every MCA MSR served by vmce through exits */
	VMCE_KVM_MODE_HYBRID = 1,    /* KVM's in-kernel MCA serves the hot path */
};

/* How to attach the backend: fill it with vmce_kvm_config_default(), then set vm_fd. */
struct vmce_kvm_config {
	int vm_fd; /* the KVM VM file descriptor (KVM_CREATE_VM); the backend does not close it */
	enum vmce_kvm_mode mode;
	/*
	 * The VMM's own MSR filter, merged with the backend's: for every MSR the backend does not
	 * own, the VMM's ranges and default decide as if the VMM had installed them itself.
	 * filter_default is KVM_MSR_FILTER_DEFAULT_ALLOW (0) or KVM_MSR_FILTER_DEFAULT_DENY;
	 * at most VMCE_KVM_MAX_VMM_RANGES ranges; the bitmaps are copied.  A VMM that enables
	 * KVM_CAP_X86_USER_SPACE_MSR itself must include KVM_MSR_EXIT_REASON_FILTER, and gets
	 * the exits of its own ranges back from vmce_kvm_handle_exit() as "not ours".
	 */
	uint32_t filter_default;
	const struct kvm_msr_filter_range *filter_ranges;
	unsigned nr_filter_ranges;
	/*
	 * Extra KVM_CAP_X86_USER_SPACE_MSR reasons the VMM wants (KVM_MSR_EXIT_REASON_INVAL,
	 * _UNKNOWN); the backend always adds _FILTER.
	 */
	uint64_t user_space_msr_reasons;
	/*
	 * Signal used to kick vCPU threads out of KVM_RUN; 0: SIGUSR2.  If its disposition is
	 * SIG_DFL or SIG_IGN, vmce_kvm_create() installs an empty handler (without SA_RESTART);
	 * a handler the VMM already has is kept (any handler interrupts KVM_RUN).  The signal
	 * must not be blocked on vCPU threads while they are in KVM_RUN.
	 */
	int kick_signal;
};

/* mode USERSPACE, no VMM filter ranges (default allow), kick signal SIGUSR2, vm_fd -1. */
VMCE_API void vmce_kvm_config_default(struct vmce_kvm_config *cfg);

struct vmce_kvm;      /* per VM */
struct vmce_kvm_vcpu; /* per vCPU */

/*
 * Attach the backend to a KVM VM: enable KVM_CAP_X86_USER_SPACE_MSR (filter reason), install
 * the merged MSR filter, register the VM for the SIGBUS handler and check (hybrid mode) that
 * KVM supports KVM_X86_SETUP_MCE and the profile's bank count.  Call before any vCPU runs.
 * Returns 0, or a negative errno with err naming the step that failed (-ENOTSUP when this
 * KVM lacks a capability the mode needs).
 */
VMCE_API int vmce_kvm_create(struct vmce_vm *vm, const struct vmce_kvm_config *cfg,
			     struct vmce_kvm **out, struct vmce_err *err);
/* Detach: unregisters from the SIGBUS handler and frees the backend.  Every vCPU must have
 * called vmce_kvm_vcpu_fini() (or its thread must be gone).  Leaves the VM's filter in place. */
VMCE_API void vmce_kvm_destroy(struct vmce_kvm *k);

/* The VM model a backend serves. */
VMCE_API struct vmce_vm *vmce_kvm_vm(struct vmce_kvm *k);
/* The mode a backend was created with. */
VMCE_API enum vmce_kvm_mode vmce_kvm_mode(const struct vmce_kvm *k);

/* Replace the VMM's part of the merged filter (same rules as in the config). */
VMCE_API int vmce_kvm_set_vmm_filter(struct vmce_kvm *k, uint32_t filter_default,
				     const struct kvm_msr_filter_range *ranges, unsigned nr,
				     struct vmce_err *err);

/*
 * The MCG_CAP the backend gives KVM_X86_SETUP_MCE in hybrid mode: the profile's bank count
 * and those of its capabilities that KVM reports in KVM_X86_GET_MCE_CAP_SUPPORTED.  Computed
 * by vmce_kvm_create(); 0 in user-space mode.
 */
VMCE_API uint64_t vmce_kvm_kernel_mcg_cap(const struct vmce_kvm *k);

/* ---- CPUID ---------------------------------------------------------------------------------- */

/*
 * Make the VMM's CPUID table (for KVM_SET_CPUID2) present the profile's MCA:
 * CPUID.1:EDX MCE (bit 7) and MCA (bit 14) set; for the AMD flavour, leaf 0x80000007 EBX
 * SUCCOR (bit 1) set exactly when the profile has succor, and ScalableMca (bit 3) cleared
 * (vmce does not model the SMCA MSRs).
 * Refuses (-EINVAL) a table whose vendor (leaf 0) does not match the profile's flavour, with a
 * message naming both; -ENOENT when leaf 0, leaf 1 or (AMD with succor) leaf 0x80000007 is
 * missing.  Pure: no system call.
 */
VMCE_API int vmce_kvm_cpuid_apply(const struct vmce_profile *p, struct kvm_cpuid2 *cpuid,
				  struct vmce_err *err);

/* ---- vCPUs ---------------------------------------------------------------------------------- */

/*
 * On the vCPU's own thread, once, after KVM_CREATE_VCPU and mmap of its kvm_run: bind vmce vCPU
 * `index` to the KVM vCPU, register the calling thread for kicks and SIGBUS AR, and (hybrid
 * mode) run KVM_X86_SETUP_MCE and load the reset state into KVM.  Returns 0 or a negative errno
 * (-EBUSY when the index is already bound).
 */
VMCE_API int vmce_kvm_vcpu_init(struct vmce_kvm *k, unsigned index, int vcpu_fd,
				struct kvm_run *run, struct vmce_kvm_vcpu **out,
				struct vmce_err *err);
/* On the vCPU thread, before it ends: no more kicks or SIGBUS slot for it. */
VMCE_API void vmce_kvm_vcpu_fini(struct vmce_kvm_vcpu *kv);

/* The vmce vCPU (vmce.h) a backend vCPU is bound to. */
VMCE_API struct vmce_vcpu *vmce_kvm_vcpu_model(struct vmce_kvm_vcpu *kv);

/* What vmce_kvm_handle_exit() did. */
enum vmce_kvm_exit_result {
	VMCE_KVM_EXIT_NOT_OURS = 0, /* not an MCA MSR exit: the VMM handles it as before */
	VMCE_KVM_EXIT_HANDLED = 1,  /* served: kvm_run->msr.data / .error are set; just re-enter */
};

/*
 * Serve a KVM_EXIT_X86_RDMSR / KVM_EXIT_X86_WRMSR of an MCA MSR (vCPU thread, after KVM_RUN).
 * Sets run->msr.error = 1 when the guest must get #GP, else 0 (and msr.data for a read).
 * Any other exit, and MSR exits of indices the backend does not own (the VMM's own filter),
 * return VMCE_KVM_EXIT_NOT_OURS and change nothing.
 */
VMCE_API enum vmce_kvm_exit_result vmce_kvm_handle_exit(struct vmce_kvm_vcpu *kv);

/* Outcome of vmce_kvm_pre_run(). */
enum vmce_kvm_run_result {
	VMCE_KVM_RUN = 0,      /* enter the guest */
	VMCE_KVM_SHUTDOWN = 1, /* the guest is shut down (fatal): do not enter it again */
};

/* What vmce_kvm_pre_run() did on this entry. */
struct vmce_kvm_status {
	unsigned delivered; /* records applied by this call */
	unsigned mc;	    /* #MCs injected by this call (0 or 1) */
	unsigned cmci;	    /* CMCIs raised by this call */
	uint64_t event_seq; /* event of the shutdown (VMCE_KVM_SHUTDOWN), else the last applied */
	char reason[160];   /* why the guest is shut down */
};

/*
 * Call on the vCPU thread right before every KVM_RUN, after any register write of the VMM.
 * Clears run->immediate_exit, turns this thread's recorded SIGBUS (AR slot, and the AO ring)
 * into host errors, and when records are pending: reads CR4.MCE (KVM_GET_SREGS), applies them
 * with vmce_vcpu_deliver(), injects at most one #MC (KVM_GET/SET_VCPU_EVENTS) and raises CMCIs.
 * A record that would be a second #MC stays queued for a later entry.
 * Returns VMCE_KVM_RUN, VMCE_KVM_SHUTDOWN (st->reason says why; also logged as a fatal event),
 * or a negative errno when a KVM ioctl failed (err says which).  st may be NULL.
 */
VMCE_API int vmce_kvm_pre_run(struct vmce_kvm_vcpu *kv, struct vmce_kvm_status *st,
			      struct vmce_err *err);

/* ---- Injection from any thread -------------------------------------------------------------- */

/*
 * vmce_handle_error() (policy.h), then kick every vCPU that has records pending.  plan may be
 * NULL.  Returns what vmce_handle_error() returns.
 */
VMCE_API int vmce_kvm_inject(struct vmce_kvm *k, const struct vmce_host_error *e,
			     struct vmce_plan *plan, struct vmce_err *err);

/* Kick vCPU `index` out of KVM_RUN (immediate_exit + the kick signal) if its thread is bound. */
VMCE_API void vmce_kvm_kick(struct vmce_kvm *k, unsigned index);
/* Kick every bound vCPU that has records pending. */
VMCE_API void vmce_kvm_kick_pending(struct vmce_kvm *k);

/* ---- Host SIGBUS (memory errors the host kernel reports to the VMM process) ----------------- */

/*
 * Install the process's SIGBUS handler (SA_SIGINFO, SA_ONSTACK).  It is async-signal-safe: it
 * only records into preallocated storage.
 *  - BUS_MCEERR_AR on a thread bound by vmce_kvm_vcpu_init(): recorded in that vCPU's slot;
 *    its next vmce_kvm_pre_run() forwards it as an SRAR for that vCPU.
 *  - BUS_MCEERR_AO (any thread), and BUS_MCEERR_AR on a thread that runs no vCPU: recorded in
 *    a process-wide ring of VMCE_KVM_SIGBUS_RING slots (a full ring counts the loss);
 *    processed by vmce_kvm_sigbus_process() or any vCPU's vmce_kvm_pre_run().
 *  - Other SIGBUS: passed to the handler that was installed before (re-raised with the default
 *    action when there was none).
 * Installing twice is harmless.  Returns 0 or -errno from sigaction.
 */
VMCE_API int vmce_kvm_sigbus_install(struct vmce_err *err);

/*
 * For a VMM with its own SIGBUS handler: call this from it (async-signal-safe).  Records the
 * signal as above and returns true when it was a BUS_MCEERR_AR/AO signal; false otherwise.
 */
VMCE_API bool vmce_kvm_sigbus_record(int sig, const siginfo_t *si);

/*
 * Any thread: turn recorded signals of the AO ring into host errors (origin SIGBUS_AO/AR,
 * address kind HVA: the policy translates it through the VM's memory map, and refuses an
 * address outside guest memory), inject them into the backend whose memory map contains the
 * address (k when it is NULL: every registered backend is tried), and kick.  Returns how many
 * signals were processed.  lost (may be NULL) gets how many signals were dropped since the
 * last call because the ring was full.
 */
VMCE_API unsigned vmce_kvm_sigbus_process(struct vmce_kvm *k, uint64_t *lost);

/* ---- Hybrid-mode state sync ----------------------------------------------------------------- */

/*
 * vCPU thread (or any thread while the vCPU does not run).  Hybrid mode only; in user-space
 * mode both return 0 and do nothing (the model is the whole state).
 *  - from_kernel: read KVM's MCA MSRs (KVM_GET_MSRS) into the model, so that
 *    vmce_vcpu_get_state() shows the guest's current state (before save).
 *  - to_kernel: write the model's state into KVM (KVM_SET_MSRS) after vmce_vcpu_set_state()
 *    (after restore).
 */
VMCE_API int vmce_kvm_sync_from_kernel(struct vmce_kvm_vcpu *kv, struct vmce_err *err);
/* The other direction of vmce_kvm_sync_from_kernel(): see above. */
VMCE_API int vmce_kvm_sync_to_kernel(struct vmce_kvm_vcpu *kv, struct vmce_err *err);

#ifdef __cplusplus
}
#endif

#endif /* VMCE_KVM_H */
