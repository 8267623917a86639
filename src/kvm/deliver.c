// SPDX-License-Identifier: MIT
/*
 * Delivery on the vCPU thread, right before KVM_RUN: queued records are applied to the model
 * (vmce_vcpu_deliver) and signalled to the guest: #MC with KVM_SET_VCPU_EVENTS, CMCI as an MSI
 * to the vCPU's in-kernel LAPIC with the vector of its LVT CMCI entry.
 *
 * Doing this after the VMM's last register write and immediately before KVM_RUN is what keeps
 * an #MC from being lost: KVM forgets an injected exception when the VMM loads new registers.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm_internal.h"

#define X86_CR4_MCE	(1ull << 6)
#define MC_VECTOR	18
#define APIC_ID_OFF	0x20
#define APIC_LVTCMCI	0x2f0
#define APIC_LVT_MASKED (1u << 16)

/* Inject #MC now.  Returns 1 when injected, 0 when another event is in flight (retried at
 * the next entry), or a negative errno. */
static int inject_mc(struct vmce_kvm_vcpu *kv, struct vmce_err *err)
{
	struct kvm_vcpu_events ev;
	struct kvm_mp_state mp;

	memset(&ev, 0, sizeof(ev));
	if (ioctl(kv->fd, KVM_GET_VCPU_EVENTS, &ev))
		return vmce__fail(err, -errno, "vCPU %u: KVM_GET_VCPU_EVENTS: %s", kv->index,
				  strerror(errno));
	if (ev.exception.injected || ev.exception.pending || ev.nmi.injected ||
	    ev.interrupt.injected)
		return 0;
	ev.flags &= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW |
		    KVM_VCPUEVENT_VALID_PAYLOAD;
	ev.exception.injected = 1;
	ev.exception.pending = 0;
	ev.exception.nr = MC_VECTOR;
	ev.exception.has_error_code = 0;
	ev.exception.error_code = 0;
	ev.exception_has_payload = 0;
	ev.exception_payload = 0;
	if (ioctl(kv->fd, KVM_SET_VCPU_EVENTS, &ev))
		return vmce__fail(err, -errno, "vCPU %u: KVM_SET_VCPU_EVENTS (#MC): %s", kv->index,
				  strerror(errno));
	kv->mc_due = false;
	/*
	 * With an in-kernel LAPIC, a vCPU that executed HLT stays halted inside KVM_RUN, and an
	 * injected exception does not wake it.  A machine check ends HLT on hardware: make the
	 * vCPU runnable (RIP is already past the HLT).  Without an in-kernel LAPIC, HLT exits to
	 * user space and the vCPU is never halted in KVM.
	 */
	if (ioctl(kv->fd, KVM_GET_MP_STATE, &mp) == 0 && mp.mp_state == KVM_MP_STATE_HALTED) {
		mp.mp_state = KVM_MP_STATE_RUNNABLE;
		if (ioctl(kv->fd, KVM_SET_MP_STATE, &mp))
			return vmce__fail(err, -errno,
					  "vCPU %u: KVM_SET_MP_STATE (wake for #MC): %s", kv->index,
					  strerror(errno));
	}
	return 1;
}

/*
 * Raise the CMCI through the in-kernel LAPIC.  Returns 1 when signalled, 0 when it cannot be
 * (no in-kernel LAPIC, LVT CMCI masked or not kept by this KVM): the record stays in the bank
 * for the guest's poller, as on hardware with a masked LVT entry.
 */
static int raise_cmci(struct vmce_kvm_vcpu *kv)
{
	struct kvm_lapic_state lapic;
	struct kvm_msi msi;
	uint32_t lvt, id;

	if (ioctl(kv->fd, KVM_GET_LAPIC, &lapic))
		return 0;
	memcpy(&lvt, &lapic.regs[APIC_LVTCMCI], sizeof(lvt));
	memcpy(&id, &lapic.regs[APIC_ID_OFF], sizeof(id));
	if ((lvt & APIC_LVT_MASKED) || (lvt & 0xff) < 16)
		return 0;
	memset(&msi, 0, sizeof(msi));
	msi.address_lo = 0xfee00000u | ((id >> 24) << 12);
	msi.data = lvt & 0xff; /* fixed delivery, edge */
	return ioctl(kv->k->vm_fd, KVM_SIGNAL_MSI, &msi) > 0;
}

int vmce_kvm_pre_run(struct vmce_kvm_vcpu *kv, struct vmce_kvm_status *st, struct vmce_err *err)
{
	struct vmce_kvm_status local;
	struct vmce_delivery d;
	struct kvm_sregs sregs;
	bool hybrid;
	int rc = VMCE_KVM_RUN, r;

	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (!kv)
		return vmce__fail(err, -EINVAL, "vmce_kvm_pre_run: vCPU is required");
	hybrid = kv->k->mode == VMCE_KVM_MODE_HYBRID;
	/* Clear the kick before looking at the queue: an injector queues first, then kicks. */
	__atomic_store_n(&kv->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
	atomic_thread_fence(memory_order_seq_cst);
	/*
	 * The guest ran and exited on its own (not a kick): a handler that cleared MCIP before
	 * this KVM_RUN has returned, the next #MC may come (policy.h, "Held records").  A KVM_RUN
	 * that returns at once for immediate_exit leaves exit_reason as it was, so it is set to
	 * KVM_EXIT_INTR here, before the next KVM_RUN; a real exit overwrites it.
	 */
	if (kv->run->exit_reason != KVM_EXIT_INTR && kv->run->exit_reason != KVM_EXIT_UNKNOWN)
		vmce_vcpu_guest_progress(kv->v);
	kv->run->exit_reason = KVM_EXIT_INTR;
	vmce__kvm_sigbus_poll(kv);

	if (kv->mc_due) {
		r = inject_mc(kv, err);
		if (r < 0)
			return r;
		st->mc = (unsigned)r;
		if (!r)
			return VMCE_KVM_RUN; /* still in flight: the next entry retries */
	}
	if (!vmce_vcpu_pending(kv->v))
		return VMCE_KVM_RUN;

	if (ioctl(kv->fd, KVM_GET_SREGS, &sregs))
		return vmce__fail(err, -errno, "vCPU %u: KVM_GET_SREGS: %s", kv->index,
				  strerror(errno));
	if (hybrid) {
		r = vmce_kvm_sync_from_kernel(kv, err);
		if (r)
			return r;
	}
	for (unsigned n = 0; n < VMCE_VCPU_QUEUE_LEN && !kv->mc_due; n++) {
		if (!vmce_vcpu_deliver(kv->v, (sregs.cr4 & X86_CR4_MCE) != 0, &d))
			break;
		st->delivered++;
		st->event_seq = d.event_seq;
		if (d.action == VMCE_ACTION_SHUTDOWN) {
			snprintf(st->reason, sizeof(st->reason), "%s", d.reason);
			rc = VMCE_KVM_SHUTDOWN;
			break;
		}
		if (d.action == VMCE_ACTION_MC)
			kv->mc_due = true; /* one #MC per entry: the rest waits */
		else if (d.action == VMCE_ACTION_CMCI)
			st->cmci += (unsigned)raise_cmci(kv);
	}
	if (hybrid) {
		r = vmce_kvm_sync_to_kernel(kv, err);
		if (r)
			return r;
	}
	if (rc == VMCE_KVM_SHUTDOWN) {
		kv->mc_due = false;
		return rc;
	}
	if (kv->mc_due) {
		r = inject_mc(kv, err);
		if (r < 0)
			return r;
		st->mc = (unsigned)r;
	}
	return rc;
}
