// SPDX-License-Identifier: MIT
/*
 * Delivery: the per-vCPU queue of records that injectors fill and the vCPU thread applies.
 *
 * Injectors never write another thread's vCPU state.  They queue records (under the vCPU's
 * queue lock); the vCPU thread applies them one at a time in vmce_vcpu_deliver(), where the
 * architectural rules (MCIP, CR4.MCE, OVER, masked banks, CMCI enable) are evaluated against
 * the state the guest has at that moment.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmce_internal.h"

int vmce__vcpu_enqueue(struct vmce_vcpu *v, const struct vmce_queued *q)
{
	unsigned n;

	pthread_mutex_lock(&v->qlock);
	n = atomic_load_explicit(&v->qcount, memory_order_relaxed);
	if (n >= VMCE_VCPU_QUEUE_LEN) {
		pthread_mutex_unlock(&v->qlock);
		return -EBUSY;
	}
	v->queue[(v->qhead + n) % VMCE_VCPU_QUEUE_LEN] = *q;
	if (q->rec.signal == VMCE_SIGNAL_MC && !q->shutdown)
		atomic_fetch_add_explicit(&v->qmc, 1, memory_order_relaxed);
	atomic_store_explicit(&v->qcount, n + 1, memory_order_release);
	pthread_mutex_unlock(&v->qlock);
	return 0;
}

void vmce_vcpu_guest_progress(struct vmce_vcpu *v)
{
	/* Not the exit of the clearing WRMSR itself: that one still has the hint set. */
	if (!atomic_load_explicit(&v->release_hint, memory_order_relaxed) &&
	    atomic_load_explicit(&v->settle_until, memory_order_relaxed) > 1)
		atomic_store_explicit(&v->settle_until, 1, memory_order_release);
}

bool vmce_vcpu_pending(const struct vmce_vcpu *cv)
{
	struct vmce_vcpu *v = (struct vmce_vcpu *)cv; /* atomics are read only */

	/* Not while the vCPU settles (settle_until > 1): a kick would end its KVM_RUN before the
	 * guest ran its handler's return, the one thing it waits for. */
	return atomic_load_explicit(&v->qcount, memory_order_acquire) != 0 ||
	       atomic_load_explicit(&v->release_hint, memory_order_acquire) ||
	       atomic_load_explicit(&v->settle_until, memory_order_acquire) == 1;
}

static bool dequeue(struct vmce_vcpu *v, struct vmce_queued *q)
{
	unsigned n;

	if (!atomic_load_explicit(&v->qcount, memory_order_acquire))
		return false;
	pthread_mutex_lock(&v->qlock);
	n = atomic_load_explicit(&v->qcount, memory_order_relaxed);
	if (n == 0) {
		pthread_mutex_unlock(&v->qlock);
		return false;
	}
	*q = v->queue[v->qhead];
	v->qhead = (v->qhead + 1) % VMCE_VCPU_QUEUE_LEN;
	if (q->rec.signal == VMCE_SIGNAL_MC && !q->shutdown)
		atomic_fetch_sub_explicit(&v->qmc, 1, memory_order_relaxed);
	atomic_store_explicit(&v->qcount, n - 1, memory_order_release);
	pthread_mutex_unlock(&v->qlock);
	return true;
}

/*
 * Load a record into a bank with the SDM's overwrite rules: an uncorrected record is not
 * replaced by a later one (the later one only sets OVER); an uncorrected record replaces a
 * corrected one; OVER is set whenever a valid record was already there.
 */
static void load_bank(struct vmce_vcpu *v, const struct vmce_vcpu_record *rec)
{
	struct vmce_bank_regs *b = &v->bank[rec->bank];
	uint64_t old = LD(b->status);

	if (old & VMCE_MCI_STATUS_VAL) {
		if (old & VMCE_MCI_STATUS_UC) {
			/* Keep the uncorrected record (and its ADDR/MISC); note the loss. */
			ST(b->status, old | VMCE_MCI_STATUS_OVER);
			return;
		}
		ST(b->status, rec->status | VMCE_MCI_STATUS_OVER);
	} else {
		ST(b->status, rec->status);
	}
	ST(b->addr, rec->addr);
	ST(b->misc, rec->misc);
}

static int finish(struct vmce_delivery *out, enum vmce_action action, uint64_t seq,
		  const char *reason)
{
	if (out) {
		out->action = action;
		out->event_seq = seq;
		snprintf(out->reason, sizeof(out->reason), "%s", reason ? reason : "");
	}
	return 1;
}

int vmce_vcpu_deliver(struct vmce_vcpu *v, bool guest_cr4_mce, struct vmce_delivery *out)
{
	struct vmce_vm *vm = v->vm;
	const struct vmce_profile *p = &vm->profile;
	struct vmce_queued q;
	const struct vmce_vcpu_record *rec = &q.rec;
	char reason[160];
	bool masked = false, has_bank;
	uint64_t seq;

	/*
	 * The guest cleared MCIP since the last call: no #MC for this vCPU during its settle
	 * time.  When the settle ends here, this vCPU became idle: release what waited for it
	 * (hold.c); what is released for this vCPU is applied below.  Other calls leave the held
	 * queue alone (the vCPU that becomes idle, an injector or vmce_hold_poll() release).
	 */
	if (atomic_load_explicit(&v->release_hint, memory_order_acquire) ||
	    atomic_load_explicit(&v->settle_until, memory_order_relaxed)) {
		uint64_t now = vmce__now_ns();

		if (atomic_exchange_explicit(&v->release_hint, false, memory_order_acq_rel)) {
			atomic_store_explicit(&v->settle_until, now + VMCE_SETTLE_NS,
					      memory_order_release);
		} else if (now >= atomic_load_explicit(&v->settle_until, memory_order_relaxed)) {
			atomic_store_explicit(&v->settle_until, 0, memory_order_release);
			if (atomic_load_explicit(&vm->hold.count, memory_order_acquire))
				vmce__hold_release(vm);
		}
	}
again:
	if (!dequeue(v, &q)) {
		if (out) {
			out->action = VMCE_ACTION_NONE;
			out->event_seq = 0;
			out->reason[0] = '\0';
		}
		return 0;
	}
	if (q.shutdown)
		return finish(out, VMCE_ACTION_SHUTDOWN, q.event_seq, q.reason);

	/* A bank number outside the profile's banks loads nothing (and reads nothing). */
	has_bank = rec->bank >= 0 && (unsigned)rec->bank < p->banks;
	if (has_bank) {
		masked = LD(v->bank[rec->bank].ctl) == 0;
		if ((p->caps & VMCE_CAP_CTL) && LD(v->mcg_ctl) == 0 &&
		    (rec->status & VMCE_MCI_STATUS_UC))
			masked = true;
	}
	if (rec->signal == VMCE_SIGNAL_MC && !masked) {
		const char *why = NULL;
		bool mcip = LD(v->mcg_status) & VMCE_MCG_STATUS_MCIP;

		/* An action-optional record never shuts the guest down: it waits (hold.c). */
		if (mcip && q.cls == VMCE_CLASS_SRAO) {
			if (vmce__hold_requeue(v, &q) == 0)
				goto again;
			snprintf(reason, sizeof(reason),
				 "vcpu %u: MCG_STATUS.MCIP is set and the held-record queue is "
				 "full: srao dropped; the page stays poisoned, a guest access "
				 "raises SRAR",
				 v->index);
			vmce__log_followup(vm, VMCE_EVENT_DROPPED, q.cls, (int)v->index, q.has_gpa,
					   q.gpa, rec, reason);
			goto again;
		}
		if (mcip && q.cls == VMCE_CLASS_SRAR && rec->bank >= 0)
			why = "SRAR while MCG_STATUS.MCIP is set: the guest consumed poisoned "
			      "memory inside its machine-check handler: shutdown";
		else if (mcip && q.cls == VMCE_CLASS_SRAR)
			why = "SRAR broadcast while MCG_STATUS.MCIP is set on this vCPU (still in "
			      "its machine-check handler): shutdown";
		else if (mcip)
			why = "machine check while MCG_STATUS.MCIP is set (the guest is still "
			      "handling the previous one): shutdown";
		else if (!guest_cr4_mce)
			why = "machine check while the guest has CR4.MCE clear: shutdown";
		if (why) {
			snprintf(reason, sizeof(reason), "vcpu %u: %s", v->index, why);
			seq = vmce__log_event(vm, VMCE_EVENT_FATAL, q.cls, (int)v->index, q.has_gpa,
					      q.gpa, rec, reason);
			return finish(out, VMCE_ACTION_SHUTDOWN, seq, reason);
		}
	}

	vmce__write_begin(v);
	if (has_bank)
		load_bank(v, rec);
	if (rec->signal == VMCE_SIGNAL_MC && !masked)
		ST(v->mcg_status, rec->mcg_status);
	vmce__write_end(v);

	if (masked) {
		/* No #MC after all: this vCPU may be idle now (hold.c). */
		if (atomic_load_explicit(&vm->hold.count, memory_order_acquire))
			vmce__hold_release(vm);
		snprintf(reason, sizeof(reason),
			 "vcpu %u: bank %d is disabled by the guest (MCi_CTL/MCG_CTL = 0): "
			 "loaded, not signalled",
			 v->index, rec->bank);
		seq = vmce__log_event(vm, VMCE_EVENT_MASKED, q.cls, (int)v->index, q.has_gpa, q.gpa,
				      rec, reason);
		return finish(out, VMCE_ACTION_LOADED, seq, reason);
	}
	switch (rec->signal) {
	case VMCE_SIGNAL_MC:
		snprintf(reason, sizeof(reason), "vcpu %u: #MC raised", v->index);
		seq = vmce__log_event(vm, VMCE_EVENT_DELIVERED, q.cls, (int)v->index, q.has_gpa,
				      q.gpa, rec, reason);
		return finish(out, VMCE_ACTION_MC, seq, reason);
	case VMCE_SIGNAL_CMCI:
		if (has_bank && (LD(v->bank[rec->bank].ctl2) & VMCE_MCI_CTL2_CMCI_EN)) {
			snprintf(reason, sizeof(reason), "vcpu %u: CMCI raised", v->index);
			seq = vmce__log_event(vm, VMCE_EVENT_DELIVERED, q.cls, (int)v->index,
					      q.has_gpa, q.gpa, rec, reason);
			return finish(out, VMCE_ACTION_CMCI, seq, reason);
		}
		if (has_bank)
			snprintf(reason, sizeof(reason),
				 "vcpu %u: CMCI disabled in bank %d's CTL2 since planned: loaded "
				 "for the poller",
				 v->index, rec->bank);
		else
			snprintf(reason, sizeof(reason),
				 "vcpu %u: CMCI record without a bank of this profile (bank %d): "
				 "not signalled",
				 v->index, rec->bank);
		break;
	default:
		snprintf(reason, sizeof(reason), "vcpu %u: loaded into bank %d for the poller",
			 v->index, rec->bank);
		break;
	}
	seq = vmce__log_event(vm, VMCE_EVENT_DELIVERED, q.cls, (int)v->index, q.has_gpa, q.gpa, rec,
			      reason);
	return finish(out, VMCE_ACTION_LOADED, seq, reason);
}
