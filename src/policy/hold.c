// SPDX-License-Identifier: MIT
/*
 * Held records: an action-optional machine check that would find MCG_STATUS.MCIP set on a vCPU
 * it reaches waits here instead of shutting the guest down (policy.h, "Held records").
 *
 * The queue is a per-VM ring of whole plans, under vm->inject_lock like everything else an
 * injector changes.  A plan is released -- its records queued on its vCPUs, exactly as
 * vmce_inject() would have queued them -- when no vCPU it reaches is busy: MCIP clear and no
 * #MC queued but not yet applied.  SRARs go first; SRAOs leave in arrival order.
 *
 * Busy means: MCIP set, an #MC queued and not yet applied, or MCIP cleared but the guest not yet
 * seen to run past its handler's return (vmce_vcpu_guest_progress(), at most
 * VMCE_HOLD_SETTLE_MAX_US): an #MC injected right after the WRMSR that cleared MCIP would land
 * in the handler's epilogue and overwrite its IST frame.
 *
 * Who releases: an injector (before it decides about a new error), a vCPU thread in
 * vmce_vcpu_deliver() (vmce_vcpu_pending() stays true from the guest's MCIP clear until the
 * settle ends, so the VMM keeps calling it), and vmce_hold_poll().  Records released for other
 * vCPUs are announced with the VMM's kick callback once inject_lock is dropped.  Because the
 * MSR path only sets a per-vCPU flag that the vCPU's own next delivery consumes, a record held
 * just as its vCPU cleared MCIP is still seen by that delivery (no lost wake-up).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/policy_internal.h"

#define NS_PER_MS	 1000000ull
#define MAX_TIMEOUT_MS	 3600000u
#define HOLD_REASON_HEAD 96 /* bytes of the plan's reason kept in a "held" event */

static uint64_t mono_ns(void)
{
	return vmce__now_ns();
}

static struct vmce_held *at(struct vmce_hold *h, unsigned i)
{
	return &h->ring[(h->head + i) % h->cap];
}

static unsigned count_of(struct vmce_hold *h)
{
	return atomic_load_explicit(&h->count, memory_order_relaxed);
}

/* Publish a new count; the fence orders it before the MCIP loads that follow. */
static void set_count(struct vmce_hold *h, unsigned n)
{
	atomic_store_explicit(&h->count, n, memory_order_seq_cst);
	atomic_thread_fence(memory_order_seq_cst);
}

int vmce__hold_init(struct vmce_vm *vm, struct vmce_err *err)
{
	struct vmce_hold *h = &vm->hold;

	memset(h, 0, sizeof(*h));
	h->ring = calloc(VMCE_HOLD_DEFAULT_MAX, sizeof(*h->ring));
	if (!h->ring)
		return vmce__fail(err, -ENOMEM, "out of memory for %u held records",
				  VMCE_HOLD_DEFAULT_MAX);
	h->cap = VMCE_HOLD_DEFAULT_MAX;
	h->timeout_ns = VMCE_HOLD_DEFAULT_TIMEOUT_MS * NS_PER_MS;
	atomic_init(&h->count, 0);
	return 0;
}

void vmce__hold_fini(struct vmce_vm *vm)
{
	free(vm->hold.ring);
	vm->hold.ring = NULL;
}

bool vmce__hold_applies(const struct vmce_plan *plan)
{
	return plan->verdict == VMCE_VERDICT_FORWARD && plan->record.signal == VMCE_SIGNAL_MC &&
	       (plan->cls == VMCE_CLASS_SRAO || plan->cls == VMCE_CLASS_SRAR);
}

/*
 * Busy: in its handler (MCIP), an #MC queued, MCIP cleared but the vCPU has not been through
 * vmce_vcpu_deliver() since (release_hint), or within its settle time.
 */
static bool vcpu_busy(struct vmce_vcpu *v, uint64_t now)
{
	return (LD(v->mcg_status) & VMCE_MCG_STATUS_MCIP) ||
	       atomic_load_explicit(&v->qmc, memory_order_relaxed) != 0 ||
	       atomic_load_explicit(&v->release_hint, memory_order_acquire) ||
	       atomic_load_explicit(&v->settle_until, memory_order_acquire) > now;
}

int vmce__hold_busy(struct vmce_vm *vm, const struct vmce_plan *plan)
{
	uint64_t now = mono_ns();

	/* The target first: it names the vCPU in the reason when several are busy. */
	if (vcpu_busy(&vm->vcpus[plan->target], now))
		return (int)plan->target;
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		if (i != plan->target && vmce__plan_reaches(vm, plan, i) &&
		    vcpu_busy(&vm->vcpus[i], now))
			return (int)i;
	return -1;
}

static const char *busy_why(struct vmce_vm *vm, int busy)
{
	struct vmce_vcpu *v = &vm->vcpus[busy < 0 ? 0 : busy];

	if (busy < 0)
		return "older records are held";
	if (LD(v->mcg_status) & VMCE_MCG_STATUS_MCIP)
		return "is in its #MC handler (MCIP set)";
	if (atomic_load(&v->qmc))
		return "has an #MC queued";
	return "is leaving its #MC handler (MCIP just cleared)";
}

static void remove_at(struct vmce_hold *h, unsigned i)
{
	unsigned n = count_of(h);

	if (at(h, i)->plan.cls == VMCE_CLASS_SRAR)
		h->nsrar--;
	if (i == 0) {
		h->head = (h->head + 1) % h->cap;
	} else {
		for (unsigned k = i; k + 1 < n; k++)
			*at(h, k) = *at(h, k + 1);
	}
	set_count(h, n - 1);
}

static void log_refused(struct vmce_vm *vm, const struct vmce_plan *plan, const char *msg)
{
	vmce__log_decision(vm, VMCE_EVENT_REFUSED, plan->cls, (int)plan->target, plan->has_gpa,
			   plan->gpa, &plan->record, msg);
}

int vmce__hold_add(struct vmce_vm *vm, const struct vmce_plan *plan, int busy, uint64_t *kicks,
		   struct vmce_err *err)
{
	struct vmce_hold *h = &vm->hold;
	unsigned n = count_of(h);
	struct vmce_held *e;
	struct vmce_err perr;
	char msg[320];
	uint64_t now = mono_ns(), seq;
	int rc;

	/* A vCPU that consumed poison runs into it again while its SRAR waits: hold it once. */
	if (plan->cls == VMCE_CLASS_SRAR)
		for (unsigned i = 0; i < n; i++) {
			const struct vmce_plan *o = &at(h, i)->plan;

			if (o->cls == VMCE_CLASS_SRAR && o->target == plan->target &&
			    o->has_gpa == plan->has_gpa && o->gpa == plan->gpa)
				return 0;
		}
	if (n >= h->cap) {
		h->overflowed++;
		rc = plan->has_gpa ? vmce_poison_add(vm, plan->gpa, &perr) : 0;
		snprintf(msg, sizeof(msg),
			 "the held-record queue is full (%u records waiting for MCG_STATUS.MCIP "
			 "to clear): %s error refused; %s",
			 h->cap, vmce_class_name(plan->cls),
			 !plan->has_gpa ? "it has no guest address"
			 : rc		? "the poisoned-page set is full too"
					: "its page stays poisoned (at the host and in the "
					  "poisoned-page set), so a guest access raises SRAR");
		log_refused(vm, plan, msg);
		return vmce__fail(err, -ENOBUFS, "%s", msg);
	}
	if (plan->has_gpa) {
		rc = vmce_poison_add(vm, plan->gpa, &perr);
		if (rc) {
			snprintf(msg, sizeof(msg), "%.250s: injection refused", perr.msg);
			log_refused(vm, plan, msg);
			return vmce__fail(err, rc, "%s", msg);
		}
	}
	if (busy >= 0)
		snprintf(msg, sizeof(msg), "held: vcpu %d %s, %u held before it; %s", busy,
			 busy_why(vm, busy), n, plan->reason);
	else
		snprintf(msg, sizeof(msg), "held: %u older record(s) held (arrival order); %s", n,
			 plan->reason);
	seq = vmce__log_decision(vm, VMCE_EVENT_HELD, plan->cls, (int)plan->target, plan->has_gpa,
				 plan->gpa, &plan->record, msg);
	e = at(h, n);
	e->plan = *plan;
	e->event_seq = seq;
	e->since_ns = now;
	if (n == 0)
		h->progress_ns = now;
	h->held++;
	h->nsrar += plan->cls == VMCE_CLASS_SRAR;
	set_count(h, n + 1);
	if (vm->mig)
		vmce__migrate_note_forwarded(vm, seq);
	/* A vCPU may have cleared MCIP since we looked (see the top of this file). */
	vmce__hold_release_locked(vm, kicks);
	return 0;
}

/* Queue held plan i on its vCPUs (its vCPUs are idle and have room). */
static void release_one(struct vmce_vm *vm, unsigned i, uint64_t now, uint64_t *kicks)
{
	struct vmce_hold *h = &vm->hold;
	struct vmce_held e = *at(h, i);
	char reason[160];
	uint64_t seq;

	remove_at(h, i);
	snprintf(reason, sizeof(reason),
		 "released after %" PRIu64 " us held (event %" PRIu64
		 "): MCG_STATUS.MCIP is clear on every vCPU it reaches",
		 (now - e.since_ns) / 1000, e.event_seq);
	seq = vmce__log_followup(vm, VMCE_EVENT_FORWARDED, e.plan.cls, (int)e.plan.target,
				 e.plan.has_gpa, e.plan.gpa, &e.plan.record, reason);
	/* Not a new error for the migration interlock: a stream saved before this holds it as
	 * held, one saved after as queued. */
	(void)vmce__queue_plan(vm, &e.plan, seq, kicks, NULL);
	h->released++;
	h->progress_ns = now;
}

static bool can_go(struct vmce_vm *vm, const struct vmce_plan *plan)
{
	return vmce__hold_busy(vm, plan) < 0 && vmce__plan_room(vm, plan) < 0;
}

/* Nothing could be released for the timeout: the guest's handler hangs. */
static void expire_all(struct vmce_vm *vm, uint64_t now, uint64_t *kicks)
{
	struct vmce_hold *h = &vm->hold;
	uint64_t stalled_ms = (now - h->progress_ns) / NS_PER_MS;

	while (count_of(h)) {
		struct vmce_held e = *at(h, 0);
		int busy = vmce__hold_busy(vm, &e.plan);
		struct vmce_plan fp;
		char why[120], msg[300];

		remove_at(h, 0);
		h->expired++;
		if (busy >= 0)
			snprintf(why, sizeof(why), "vcpu %d %s", busy, busy_why(vm, busy));
		else
			snprintf(why, sizeof(why), "its vCPUs' delivery queues stayed full");
		if (e.plan.cls == VMCE_CLASS_SRAR) {
			fp = e.plan;
			fp.verdict = VMCE_VERDICT_FATAL;
			snprintf(fp.reason, sizeof(fp.reason),
				 "srar held %" PRIu64 " ms (nothing released): %.50s; the guest's "
				 "machine-check handler hangs",
				 stalled_ms, why);
			(void)vmce__inject_fatal(vm, &fp, true, NULL);
			if (kicks)
				for (unsigned i = 0; i < vm->nr_vcpus; i++)
					if (vmce_vcpu_pending(&vm->vcpus[i]))
						kicks[i / 64] |= 1ull << (i % 64);
			continue;
		}
		snprintf(msg, sizeof(msg),
			 "held %" PRIu64 " ms (nothing released): %s: dropped; the page stays "
			 "poisoned, a guest access raises SRAR",
			 stalled_ms, why);
		vmce__log_followup(vm, VMCE_EVENT_DROPPED, e.plan.cls, (int)e.plan.target,
				   e.plan.has_gpa, e.plan.gpa, &e.plan.record, msg);
	}
}

unsigned vmce__hold_release_locked(struct vmce_vm *vm, uint64_t *kicks)
{
	struct vmce_hold *h = &vm->hold;
	unsigned released = 0;
	uint64_t now;
	bool progress = true;

	if (!count_of(h))
		return 0;
	now = mono_ns();
	while (progress && count_of(h)) {
		unsigned n = count_of(h);

		progress = false;
		/*
		 * SRARs first: a vCPU that consumed poison waits for them.  Targets found busy
		 * are remembered, so that a long queue is not looked at record by record once
		 * every vCPU is known to be busy.
		 */
		uint64_t busy_mask[VMCE_KICK_WORDS] = {0};
		unsigned nbusy = 0;

		for (unsigned i = 0; h->nsrar && i < n && nbusy < vm->nr_vcpus; i++) {
			const struct vmce_plan *pl = &at(h, i)->plan;
			unsigned t = pl->target;

			if (pl->cls != VMCE_CLASS_SRAR || (busy_mask[t / 64] >> (t % 64)) & 1)
				continue;
			if (vcpu_busy(&vm->vcpus[t], now)) {
				busy_mask[t / 64] |= 1ull << (t % 64);
				nbusy++;
				continue;
			}
			if (!can_go(vm, pl))
				continue;
			release_one(vm, i, now, kicks);
			released++;
			progress = true;
			break;
		}
		if (!progress && at(h, 0)->plan.cls == VMCE_CLASS_SRAO &&
		    can_go(vm, &at(h, 0)->plan)) {
			release_one(vm, 0, now, kicks);
			released++;
			progress = true;
		}
	}
	if (count_of(h) && now - h->progress_ns > h->timeout_ns)
		expire_all(vm, now, kicks);
	return released;
}

void vmce__hold_kick(struct vmce_vm *vm, const uint64_t *kicks)
{
	vmce_kick_fn fn;
	void *opaque;
	uint64_t any = 0;

	for (unsigned w = 0; w < VMCE_KICK_WORDS; w++)
		any |= kicks[w];
	if (!any)
		return;
	pthread_mutex_lock(&vm->inject_lock);
	fn = vm->hold.kick;
	opaque = vm->hold.kick_opaque;
	pthread_mutex_unlock(&vm->inject_lock);
	if (!fn)
		return;
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		if (kicks[i / 64] & (1ull << (i % 64)))
			fn(i, opaque);
}

void vmce__hold_release(struct vmce_vm *vm)
{
	uint64_t kicks[VMCE_KICK_WORDS] = {0};

	pthread_mutex_lock(&vm->inject_lock);
	vmce__hold_release_locked(vm, kicks);
	pthread_mutex_unlock(&vm->inject_lock);
	vmce__hold_kick(vm, kicks);
}

int vmce__hold_requeue(struct vmce_vcpu *v, const struct vmce_queued *q)
{
	struct vmce_vm *vm = v->vm;
	struct vmce_hold *h = &vm->hold;
	struct vmce_held *e;
	char reason[160];
	unsigned n;

	pthread_mutex_lock(&vm->inject_lock);
	n = count_of(h);
	if (n >= h->cap) {
		h->overflowed++;
		pthread_mutex_unlock(&vm->inject_lock);
		return -ENOBUFS;
	}
	snprintf(reason, sizeof(reason),
		 "vcpu %u: MCG_STATUS.MCIP was set when this #MC was due: held at the head of "
		 "the queue (%u record(s) behind it)",
		 v->index, n);
	h->head = (h->head + h->cap - 1) % h->cap;
	e = at(h, 0);
	memset(e, 0, sizeof(*e));
	e->plan.verdict = VMCE_VERDICT_FORWARD;
	e->plan.cls = q->cls;
	snprintf(e->plan.reason, sizeof(e->plan.reason), "%s", q->reason);
	e->plan.has_gpa = q->has_gpa;
	e->plan.gpa = q->gpa;
	e->plan.nr_vcpus = vm->nr_vcpus;
	e->plan.target = v->index;
	e->plan.record = q->rec;
	e->plan.bystander.bank = -1;
	e->since_ns = mono_ns();
	if (n == 0)
		h->progress_ns = e->since_ns;
	h->held++;
	h->nsrar += q->cls == VMCE_CLASS_SRAR;
	e->event_seq = vmce__log_event(vm, VMCE_EVENT_HELD, q->cls, (int)v->index, q->has_gpa,
				       q->gpa, &q->rec, reason);
	set_count(h, n + 1);
	pthread_mutex_unlock(&vm->inject_lock);
	return 0;
}

/* ---- public ----------------------------------------------------------------------------------- */

int vmce_hold_configure(struct vmce_vm *vm, unsigned max_records, unsigned timeout_ms,
			struct vmce_err *err)
{
	struct vmce_hold *h;
	struct vmce_held *ring, *old;
	unsigned n;

	if (!vm)
		return vmce__fail(err, -EINVAL, "vmce_hold_configure: vm is required");
	if (!max_records)
		max_records = VMCE_HOLD_DEFAULT_MAX;
	if (!timeout_ms)
		timeout_ms = VMCE_HOLD_DEFAULT_TIMEOUT_MS;
	if (max_records > VMCE_HOLD_MAX_RECORDS)
		return vmce__fail(err, -EINVAL, "hold max_records %u is out of range (1 to %u)",
				  max_records, VMCE_HOLD_MAX_RECORDS);
	if (timeout_ms > MAX_TIMEOUT_MS)
		return vmce__fail(err, -EINVAL, "hold timeout_ms %u is out of range (1 to %u)",
				  timeout_ms, MAX_TIMEOUT_MS);
	ring = calloc(max_records, sizeof(*ring));
	if (!ring)
		return vmce__fail(err, -ENOMEM, "out of memory for %u held records", max_records);
	h = &vm->hold;
	pthread_mutex_lock(&vm->inject_lock);
	n = count_of(h);
	if (n > max_records) {
		pthread_mutex_unlock(&vm->inject_lock);
		free(ring);
		return vmce__fail(err, -EBUSY,
				  "hold max_records %u is below the %u record(s) held now",
				  max_records, n);
	}
	for (unsigned i = 0; i < n; i++)
		ring[i] = *at(h, i);
	old = h->ring;
	h->ring = ring;
	h->cap = max_records;
	h->head = 0;
	h->timeout_ns = (uint64_t)timeout_ms * NS_PER_MS;
	pthread_mutex_unlock(&vm->inject_lock);
	free(old);
	return 0;
}

void vmce_hold_status(struct vmce_vm *vm, struct vmce_hold_status *out)
{
	struct vmce_hold *h = &vm->hold;
	uint64_t now = mono_ns();

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&vm->inject_lock);
	out->count = count_of(h);
	out->max_records = h->cap;
	out->timeout_ms = (unsigned)(h->timeout_ns / NS_PER_MS);
	out->stalled_ns = out->count && now > h->progress_ns ? now - h->progress_ns : 0;
	out->held = h->held;
	out->released = h->released;
	out->overflowed = h->overflowed;
	out->expired = h->expired;
	pthread_mutex_unlock(&vm->inject_lock);
}

size_t vmce_hold_list(struct vmce_vm *vm, struct vmce_held_info *out, size_t max)
{
	struct vmce_hold *h = &vm->hold;
	uint64_t now = mono_ns();
	size_t n;

	pthread_mutex_lock(&vm->inject_lock);
	n = count_of(h);
	for (size_t i = 0; out && i < n && i < max; i++) {
		const struct vmce_held *e = at(h, (unsigned)i);

		memset(&out[i], 0, sizeof(out[i]));
		out[i].event_seq = e->event_seq;
		out[i].cls = e->plan.cls;
		out[i].target = e->plan.target;
		out[i].broadcast = e->plan.broadcast;
		out[i].has_gpa = e->plan.has_gpa;
		out[i].gpa = e->plan.gpa;
		out[i].age_ns = now > e->since_ns ? now - e->since_ns : 0;
		out[i].waiting_for = vmce__hold_busy(vm, &e->plan);
	}
	pthread_mutex_unlock(&vm->inject_lock);
	return n;
}

unsigned vmce_hold_poll(struct vmce_vm *vm)
{
	uint64_t kicks[VMCE_KICK_WORDS] = {0};
	unsigned left;

	pthread_mutex_lock(&vm->inject_lock);
	vmce__hold_release_locked(vm, kicks);
	left = count_of(&vm->hold);
	pthread_mutex_unlock(&vm->inject_lock);
	vmce__hold_kick(vm, kicks);
	return left;
}

void vmce_set_kick_callback(struct vmce_vm *vm, vmce_kick_fn fn, void *opaque)
{
	pthread_mutex_lock(&vm->inject_lock);
	vm->hold.kick = fn;
	vm->hold.kick_opaque = opaque;
	pthread_mutex_unlock(&vm->inject_lock);
}
