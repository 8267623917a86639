// SPDX-License-Identifier: MIT
/*
 * Injection: a plan's records go onto the vCPUs' delivery queues, all of them or none.
 *
 * Everything happens under vm->inject_lock, so plans reach their vCPUs in the order they were
 * injected and a broadcast is never interleaved with another plan.  Only injectors add to the
 * queues (and they hold inject_lock); vCPU threads only remove.  So once every recipient's
 * queue has been seen to have room, the enqueues that follow cannot fail, and nothing is
 * changed (poisoned pages, events, queues) before every check has passed.
 *
 * Lock order: inject_lock, then the poisoned-page set's lock, the event log's lock, a vCPU's
 * queue lock (each of the last three is taken alone).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "policy/policy_internal.h"

static int refuse(struct vmce_vm *vm, const struct vmce_plan *plan, int vcpu, int code,
		  struct vmce_err *err, const char *msg)
{
	vmce__log_decision(vm, VMCE_EVENT_REFUSED, plan->cls, vcpu, plan->has_gpa, plan->gpa,
			   plan->verdict == VMCE_VERDICT_FORWARD ? &plan->record : NULL, msg);
	return vmce__fail(err, code, "%s", msg);
}

static bool queue_full(struct vmce_vcpu *v)
{
	return atomic_load_explicit(&v->qcount, memory_order_acquire) >= VMCE_VCPU_QUEUE_LEN;
}

static int check_plan(const struct vmce_vm *vm, const struct vmce_plan *p, struct vmce_err *err)
{
	const struct vmce_vcpu_record *r[2] = {&p->record, &p->bystander};

	if ((unsigned)p->verdict > VMCE_VERDICT_FATAL)
		return vmce__fail(err, -EINVAL, "plan has an unknown verdict %d", (int)p->verdict);
	if ((unsigned)p->cls > VMCE_CLASS_FATAL)
		return vmce__fail(err, -EINVAL, "plan has an unknown class %d", (int)p->cls);
	if (p->nr_vcpus != vm->nr_vcpus)
		return vmce__fail(err, -EINVAL, "plan is for %u vCPU(s) but the VM has %u",
				  p->nr_vcpus, vm->nr_vcpus);
	if (p->target >= vm->nr_vcpus)
		return vmce__fail(err, -EINVAL, "plan target vcpu %u is out of range (%u vCPUs)",
				  p->target, vm->nr_vcpus);
	if (p->verdict != VMCE_VERDICT_FORWARD)
		return 0;
	for (unsigned i = 0; i < 2; i++) {
		if (i == 1 && !p->broadcast)
			break;
		if ((unsigned)r[i]->signal > VMCE_SIGNAL_CMCI)
			return vmce__fail(err, -EINVAL, "plan record has an unknown signal %d",
					  (int)r[i]->signal);
		if (r[i]->bank < -1 || r[i]->bank >= (int)vm->profile.banks)
			return vmce__fail(err, -EINVAL,
					  "plan record bank %d is not a bank of the profile (%u)",
					  r[i]->bank, vm->profile.banks);
	}
	return 0;
}

int vmce__plan_room(struct vmce_vm *vm, const struct vmce_plan *plan)
{
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		if (vmce__plan_reaches(vm, plan, i) && queue_full(&vm->vcpus[i]))
			return (int)i;
	return -1;
}

bool vmce__plan_reaches(struct vmce_vm *vm, const struct vmce_plan *plan, unsigned i)
{
	return vmce_plan_vcpu(plan, i, NULL) &&
	       (i == plan->target || vmce_vcpu_started(&vm->vcpus[i]));
}

int vmce__queue_plan(struct vmce_vm *vm, const struct vmce_plan *plan, uint64_t seq,
		     uint64_t *kicks, struct vmce_err *err)
{
	struct vmce_queued q;
	char msg[120];

	memset(&q, 0, sizeof(q));
	q.cls = plan->cls;
	q.has_gpa = plan->has_gpa;
	q.gpa = plan->gpa;
	q.event_seq = seq;
	snprintf(q.reason, sizeof(q.reason), "%s", plan->reason);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		if (!vmce__plan_reaches(vm, plan, i))
			continue;
		vmce_plan_vcpu(plan, i, &q.rec);
		if (vmce__vcpu_enqueue(&vm->vcpus[i], &q)) {
			/* Cannot happen: the room was checked under inject_lock. */
			snprintf(msg, sizeof(msg),
				 "vcpu %u's delivery queue filled up during injection", i);
			return refuse(vm, plan, (int)i, -EBUSY, err, msg);
		}
		if (kicks)
			kicks[i / 64] |= 1ull << (i % 64);
	}
	return 0;
}

static int inject_forward(struct vmce_vm *vm, const struct vmce_plan *plan, uint64_t *kicks,
			  struct vmce_err *err)
{
	struct vmce_vcpu *t = &vm->vcpus[plan->target];
	struct vmce_err perr;
	char msg[320], reason[sizeof(plan->reason)];
	unsigned skipped = 0;
	uint64_t seq;
	int rc;

	if (!vmce_vcpu_started(t)) {
		snprintf(msg, sizeof(msg),
			 "vcpu %u is not started: injection of a %s error refused", plan->target,
			 vmce_class_name(plan->cls));
		return refuse(vm, plan, (int)plan->target, -ESRCH, err, msg);
	}
	/*
	 * Records that wait for MCG_STATUS.MCIP to clear (hold.c): release what can go first, so
	 * that arrival order is kept; an SRAO behind held records, or one that would reach a busy
	 * vCPU, is held.  An SRAR whose target has MCIP set is queued as before: applying it shuts
	 * the guest down (it consumed poison inside its handler).
	 */
	if (vmce__hold_applies(plan)) {
		vmce__hold_release_locked(vm, kicks);
		if (plan->cls == VMCE_CLASS_SRAO || !(LD(t->mcg_status) & VMCE_MCG_STATUS_MCIP)) {
			int busy = vmce__hold_busy(vm, plan);

			if (busy >= 0 ||
			    (plan->cls == VMCE_CLASS_SRAO && atomic_load(&vm->hold.count) != 0))
				return vmce__hold_add(vm, plan, busy, kicks, err);
		}
	}
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct vmce_vcpu *v = &vm->vcpus[i];

		if (!vmce_plan_vcpu(plan, i, NULL))
			continue;
		if (i != plan->target && !vmce_vcpu_started(v)) {
			skipped++; /* a bystander the guest has not brought up */
			continue;
		}
		if (queue_full(v)) {
			snprintf(msg, sizeof(msg),
				 "vcpu %u's delivery queue is full (%d records): injection of a %s "
				 "error refused",
				 i, VMCE_VCPU_QUEUE_LEN, vmce_class_name(plan->cls));
			return refuse(vm, plan, (int)i, -EBUSY, err, msg);
		}
	}
	if (plan->has_gpa) {
		rc = vmce_poison_add(vm, plan->gpa, &perr);
		if (rc) {
			snprintf(msg, sizeof(msg), "%.250s: injection refused", perr.msg);
			return refuse(vm, plan, (int)plan->target, rc, err, msg);
		}
	}
	if (skipped)
		snprintf(reason, sizeof(reason), "%.100s (%u vCPU(s) not started: skipped)",
			 plan->reason, skipped);
	else
		snprintf(reason, sizeof(reason), "%s", plan->reason);
	seq = vmce__log_decision(vm, VMCE_EVENT_FORWARDED, plan->cls, (int)plan->target,
				 plan->has_gpa, plan->gpa, &plan->record, reason);

	rc = vmce__queue_plan(vm, plan, seq, NULL, err);
	if (rc)
		return rc;
	if (vm->mig)
		vmce__migrate_note_forwarded(vm, seq);
	return 0;
}

int vmce__inject_fatal(struct vmce_vm *vm, const struct vmce_plan *plan, bool followup,
		       struct vmce_err *err)
{
	uint64_t (*log)(struct vmce_vm *, enum vmce_event_kind, enum vmce_class, int, bool,
			uint64_t, const struct vmce_vcpu_record *, const char *) =
		followup ? vmce__log_followup : vmce__log_decision;
	struct vmce_queued q;
	char msg[200];
	unsigned carrier = plan->target;
	uint64_t seq;

	if (vm->fatal == VMCE_FATAL_LOG_ONLY) {
		log(vm, VMCE_EVENT_FATAL, plan->cls, (int)plan->target, plan->has_gpa, plan->gpa,
		    NULL, plan->reason);
		return 0;
	}
	/* The shutdown rides on the target, or on any started vCPU. */
	if (!vmce_vcpu_started(&vm->vcpus[carrier])) {
		for (carrier = 0; carrier < vm->nr_vcpus; carrier++)
			if (vmce_vcpu_started(&vm->vcpus[carrier]))
				break;
		if (carrier == vm->nr_vcpus) {
			snprintf(msg, sizeof(msg),
				 "no vCPU is started to carry the shutdown for a fatal %s error",
				 vmce_class_name(plan->cls));
			return refuse(vm, plan, (int)plan->target, -ESRCH, err, msg);
		}
	}
	if (queue_full(&vm->vcpus[carrier])) {
		snprintf(msg, sizeof(msg),
			 "vcpu %u's delivery queue is full (%d records): shutdown for a fatal %s "
			 "error not queued",
			 carrier, VMCE_VCPU_QUEUE_LEN, vmce_class_name(plan->cls));
		return refuse(vm, plan, (int)carrier, -EBUSY, err, msg);
	}
	seq = log(vm, VMCE_EVENT_FATAL, plan->cls, (int)carrier, plan->has_gpa, plan->gpa, NULL,
		  plan->reason);
	memset(&q, 0, sizeof(q));
	q.rec.bank = -1;
	q.cls = plan->cls;
	q.has_gpa = plan->has_gpa;
	q.gpa = plan->gpa;
	q.shutdown = true;
	q.event_seq = seq;
	snprintf(q.reason, sizeof(q.reason), "%s", plan->reason);
	if (vmce__vcpu_enqueue(&vm->vcpus[carrier], &q)) {
		snprintf(msg, sizeof(msg), "vcpu %u's delivery queue filled up during injection",
			 carrier);
		return refuse(vm, plan, (int)carrier, -EBUSY, err, msg);
	}
	return 0;
}

int vmce_inject(struct vmce_vm *vm, const struct vmce_plan *plan, struct vmce_err *err)
{
	uint64_t kicks[VMCE_KICK_WORDS] = {0};
	struct vmce_plan text;
	int rc;

	if (!vm || !plan)
		return vmce__fail(err, -EINVAL, "vmce_inject: vm and plan are required");
	rc = check_plan(vm, plan, err);
	if (rc)
		return rc;
	if (!plan->reason[0]) {
		/* A plan from vmce_plan_decide(): its reason is written here, once, for the events
		 * and the records (outside the lock). */
		text = *plan;
		vmce_plan_reason(plan, text.reason, sizeof(text.reason));
		plan = &text;
	}
	pthread_mutex_lock(&vm->inject_lock);
	switch (plan->verdict) {
	case VMCE_VERDICT_FORWARD:
		rc = inject_forward(vm, plan, kicks, err);
		break;
	case VMCE_VERDICT_FATAL:
		vmce__hold_release_locked(vm, kicks);
		rc = vmce__inject_fatal(vm, plan, false, err);
		break;
	default:
		vmce__log_decision(vm, VMCE_EVENT_DROPPED, plan->cls, -1, plan->has_gpa, plan->gpa,
				   NULL, plan->reason);
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&vm->inject_lock);
	vmce__hold_kick(vm, kicks);
	return rc;
}

int vmce_handle_error(struct vmce_vm *vm, const struct vmce_host_error *e, struct vmce_plan *plan,
		      struct vmce_err *err)
{
	struct vmce_plan local;
	int rc;

	if (!plan)
		plan = &local;
	rc = vmce_plan_error(vm, e, plan, err);
	if (rc)
		return rc;
	return vmce_inject(vm, plan, err);
}
