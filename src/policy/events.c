// SPDX-License-Identifier: MIT
/*
 * The event log: every policy decision and every delivery, numbered without gaps.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/policy_internal.h"

void vmce__events_init(struct vmce_event_log *l)
{
	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->lock, NULL);
}

void vmce__events_fini(struct vmce_event_log *l)
{
	pthread_mutex_destroy(&l->lock);
}

/* decision: 1 a policy decision, 0 an event of the delivery path, -1 a follow-up about an
 * error already counted (a held record released or dropped). */
static void count(struct vmce_counters *c, enum vmce_event_kind kind, enum vmce_class cls,
		  int decision)
{
	switch (kind) {
	case VMCE_EVENT_FORWARDED:
		c->forwarded++;
		break;
	case VMCE_EVENT_DROPPED:
		c->dropped++;
		break;
	case VMCE_EVENT_FATAL:
		c->fatal++;
		break;
	case VMCE_EVENT_DELIVERED:
		c->delivered++;
		break;
	case VMCE_EVENT_MASKED:
		c->masked++;
		break;
	case VMCE_EVENT_REFUSED:
		c->refused++;
		break;
	default:
		break;
	}
	/* Errors are counted by class once, when the policy decides about them (a FATAL event
	 * from a vCPU's delivery is about an error already counted when it was forwarded). */
	if (decision >= 0 &&
	    (decision || kind == VMCE_EVENT_FORWARDED || kind == VMCE_EVENT_DROPPED ||
	     kind == VMCE_EVENT_REFUSED) &&
	    (unsigned)cls < VMCE_ARRAY_SIZE(c->by_class))
		c->by_class[cls]++;
}

static uint64_t log_event(struct vmce_vm *vm, enum vmce_event_kind kind, enum vmce_class cls,
			  int vcpu, bool has_gpa, uint64_t gpa, const struct vmce_vcpu_record *rec,
			  const char *reason, int decision)
{
	struct vmce_event_log *l = &vm->pol->log;
	struct vmce_event *ev;
	struct timespec ts;
	uint64_t seq;

	clock_gettime(CLOCK_REALTIME, &ts);
	pthread_mutex_lock(&l->lock);
	seq = ++l->last_seq;
	ev = &l->ring[seq % VMCE_EVENT_LOG_LEN];
	memset(ev, 0, sizeof(*ev));
	ev->seq = seq;
	ev->time_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	ev->kind = kind;
	ev->cls = cls;
	ev->vcpu = vcpu;
	ev->has_gpa = has_gpa;
	ev->gpa = has_gpa ? gpa : 0;
	if (rec)
		ev->record = *rec;
	else
		ev->record.bank = -1;
	snprintf(ev->reason, sizeof(ev->reason), "%s", reason ? reason : "");
	count(&l->counters, kind, cls, decision);
	if (l->fn)
		l->fn(ev, l->opaque);
	pthread_mutex_unlock(&l->lock);
	return seq;
}

uint64_t vmce__log_event(struct vmce_vm *vm, enum vmce_event_kind kind, enum vmce_class cls,
			 int vcpu, bool has_gpa, uint64_t gpa, const struct vmce_vcpu_record *rec,
			 const char *reason)
{
	return log_event(vm, kind, cls, vcpu, has_gpa, gpa, rec, reason, 0);
}

uint64_t vmce__log_followup(struct vmce_vm *vm, enum vmce_event_kind kind, enum vmce_class cls,
			    int vcpu, bool has_gpa, uint64_t gpa,
			    const struct vmce_vcpu_record *rec, const char *reason)
{
	return log_event(vm, kind, cls, vcpu, has_gpa, gpa, rec, reason, -1);
}

uint64_t vmce__log_decision(struct vmce_vm *vm, enum vmce_event_kind kind, enum vmce_class cls,
			    int vcpu, bool has_gpa, uint64_t gpa,
			    const struct vmce_vcpu_record *rec, const char *reason)
{
	return log_event(vm, kind, cls, vcpu, has_gpa, gpa, rec, reason, 1);
}

void vmce_set_event_callback(struct vmce_vm *vm, vmce_event_fn fn, void *opaque)
{
	struct vmce_event_log *l = &vm->pol->log;

	pthread_mutex_lock(&l->lock);
	l->fn = fn;
	l->opaque = opaque;
	pthread_mutex_unlock(&l->lock);
}

size_t vmce_events_read(struct vmce_vm *vm, uint64_t after, struct vmce_event *out, size_t max)
{
	struct vmce_event_log *l = &vm->pol->log;
	uint64_t first, seq;
	size_t n = 0;

	if (!out || max == 0)
		return 0;
	pthread_mutex_lock(&l->lock);
	first = l->last_seq > VMCE_EVENT_LOG_LEN ? l->last_seq - VMCE_EVENT_LOG_LEN + 1 : 1;
	if (after >= l->last_seq)
		first = l->last_seq + 1; /* nothing newer (also keeps after + 1 from wrapping) */
	else if (after + 1 > first)
		first = after + 1;
	for (seq = first; seq <= l->last_seq && n < max; seq++)
		out[n++] = l->ring[seq % VMCE_EVENT_LOG_LEN];
	pthread_mutex_unlock(&l->lock);
	return n;
}

uint64_t vmce_events_last_seq(struct vmce_vm *vm)
{
	struct vmce_event_log *l = &vm->pol->log;
	uint64_t s;

	pthread_mutex_lock(&l->lock);
	s = l->last_seq;
	pthread_mutex_unlock(&l->lock);
	return s;
}

void vmce_get_counters(struct vmce_vm *vm, struct vmce_counters *out)
{
	struct vmce_event_log *l = &vm->pol->log;

	pthread_mutex_lock(&l->lock);
	*out = l->counters;
	pthread_mutex_unlock(&l->lock);
}

const char *vmce_event_kind_name(enum vmce_event_kind k)
{
	static const char *const names[] = {"forwarded", "dropped", "fatal",	 "delivered",
					    "masked",	 "refused", "migration", "held"};

	return (unsigned)k < VMCE_ARRAY_SIZE(names) ? names[k] : "unknown";
}

int vmce_event_format_json(const struct vmce_event *ev, char *buf, size_t len)
{
	struct jbuf b = {buf, buf ? len : 0, 0};
	const struct vmce_vcpu_record *r = &ev->record;

	vmce__jprintf(&b,
		      "{\"seq\":%" PRIu64 ",\"time_ns\":%" PRIu64
		      ",\"kind\":\"%s\",\"class\":\"%s\",\"vcpu\":%d,\"gpa\":",
		      ev->seq, ev->time_ns, vmce_event_kind_name(ev->kind),
		      vmce_class_name(ev->cls), ev->vcpu);
	if (ev->has_gpa)
		vmce__jprintf(&b, "\"0x%" PRIx64 "\"", ev->gpa);
	else
		vmce__jput(&b, "null", 4);
	vmce__jprintf(&b, ",\"signal\":\"%s\",\"mcg_status\":\"0x%" PRIx64 "\"",
		      vmce__signal_name(r->signal), r->mcg_status);
	if (r->bank >= 0)
		vmce__jprintf(&b,
			      ",\"bank\":%d,\"status\":\"0x%016" PRIx64 "\",\"addr\":\"0x%" PRIx64
			      "\",\"misc\":\"0x%" PRIx64 "\"",
			      r->bank, r->status, r->addr, r->misc);
	vmce__jput(&b, ",\"reason\":", 10);
	vmce__jstr(&b, ev->reason, sizeof(ev->reason));
	vmce__jput(&b, "}", 1);
	return vmce__jfinish(&b);
}
