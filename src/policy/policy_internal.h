/* SPDX-License-Identifier: MIT */
/*
 * policy_internal.h - the policy part of a VM: memory map, poisoned-page set and event log.
 * Only src/policy/ and src/migrate/ include this.
 */
#ifndef VMCE_POLICY_INTERNAL_H
#define VMCE_POLICY_INTERNAL_H

#include "vmce_internal.h"

#define VMCE_MEMMAP_MAX	   4096
#define VMCE_EVENT_LOG_LEN 4096

struct vmce_mem_range {
	uint64_t gpa, size, hva, hpa;
};

/* Sorted arrays of ranges, one index per address kind, for O(log n) translation. */
struct vmce_memmap {
	pthread_rwlock_t lock;
	size_t n;
	struct vmce_mem_range by_gpa[VMCE_MEMMAP_MAX];
	struct vmce_mem_range by_hva[VMCE_MEMMAP_MAX];
	struct vmce_mem_range by_hpa[VMCE_MEMMAP_MAX]; /* only ranges with an hpa; nh of them */
	size_t nh;
};

/* Open-addressing hash set of 4 KiB guest frame numbers. */
struct vmce_poison_set {
	pthread_mutex_t lock;
	size_t count, cap, max; /* cap: slots (power of two); max: bound on count */
	uint64_t *slots;	/* frame + 1; 0 = empty */
};

struct vmce_event_log {
	pthread_mutex_t lock;
	uint64_t last_seq;
	struct vmce_event ring[VMCE_EVENT_LOG_LEN];
	struct vmce_counters counters;
	vmce_event_fn fn;
	void *opaque;
};

struct vmce_policy_state {
	struct vmce_memmap memmap;
	struct vmce_poison_set poison;
	struct vmce_event_log log;
};

/*
 * vmce__log_event() for a policy decision (forwarded, dropped, fatal, refused): the error is
 * also counted in by_class, fatal verdicts included.
 */
uint64_t vmce__log_decision(struct vmce_vm *vm, enum vmce_event_kind kind, enum vmce_class cls,
			    int vcpu, bool has_gpa, uint64_t gpa,
			    const struct vmce_vcpu_record *rec, const char *reason);

/* ---- injection and held records (inject.c, hold.c); all under vm->inject_lock ----------- */

/* A bitmap of vCPUs to kick once inject_lock is dropped. */
#define VMCE_KICK_WORDS (VMCE_MAX_VCPUS / 64)

/* Whether vCPU i receives something under the plan (the target, or a started bystander). */
bool vmce__plan_reaches(struct vmce_vm *vm, const struct vmce_plan *plan, unsigned i);
/* The first vCPU the plan reaches whose delivery queue is full, or -1. */
int vmce__plan_room(struct vmce_vm *vm, const struct vmce_plan *plan);
/* Queue a FORWARD plan's records (room checked), as event seq; marks them in kicks (or NULL). */
int vmce__queue_plan(struct vmce_vm *vm, const struct vmce_plan *plan, uint64_t seq,
		     uint64_t *kicks, struct vmce_err *err);
/* The FATAL verdict: log it, queue the shutdown (per the VM's fatal policy); followup: the
 * error was already counted (a held SRAR that expired). */
int vmce__inject_fatal(struct vmce_vm *vm, const struct vmce_plan *plan, bool followup,
		       struct vmce_err *err);

/* Whether a plan is one that may be held: FORWARD, signalled by #MC, class SRAO or SRAR. */
bool vmce__hold_applies(const struct vmce_plan *plan);
/* The first vCPU the plan reaches that has MCIP set or an #MC queued, or -1. */
int vmce__hold_busy(struct vmce_vm *vm, const struct vmce_plan *plan);
/* Hold a plan (logs "held", poisons its page); -ENOBUFS when the queue is full. */
int vmce__hold_add(struct vmce_vm *vm, const struct vmce_plan *plan, int busy, uint64_t *kicks,
		   struct vmce_err *err);
/* Apply the timeout, then release every plan that can go now.  Returns how many went. */
unsigned vmce__hold_release_locked(struct vmce_vm *vm, uint64_t *kicks);
/* Call the VMM's kick callback for every vCPU in kicks (without inject_lock). */
void vmce__hold_kick(struct vmce_vm *vm, const uint64_t *kicks);

int vmce__poison_init(struct vmce_poison_set *s, size_t max, struct vmce_err *err);
void vmce__poison_fini(struct vmce_poison_set *s);

/*
 * Every poisoned page of the set, sorted by address, into a malloc'd array (*gpas, *n pages;
 * free() it).  The copy is taken under the set's lock.  Returns 0; -E2BIG when the set holds
 * more than max pages (*n then says how many, nothing is allocated); -ENOMEM.
 */
int vmce__poison_copy(struct vmce_poison_set *s, size_t max, uint64_t **gpas, size_t *n);

/*
 * Replacing the whole set in two steps, so that a caller can prepare everything that may fail
 * before it changes anything: vmce__poison_table_build() makes a table from n page addresses
 * (duplicates counted once; may fail with -ENOMEM), vmce__poison_replace() installs it (cannot
 * fail: the old table is released, t is emptied).  vmce__poison_table_free() releases a table
 * that was built but not installed.  Does not check the set's bound: the caller does.
 */
struct vmce_poison_table {
	uint64_t *slots;
	size_t cap, count;
};

int vmce__poison_table_build(const uint64_t *gpas, size_t n, struct vmce_poison_table *t);
void vmce__poison_replace(struct vmce_poison_set *s, struct vmce_poison_table *t);
void vmce__poison_table_free(struct vmce_poison_table *t);
int vmce__memmap_init(struct vmce_memmap *m);
void vmce__memmap_fini(struct vmce_memmap *m);
void vmce__events_init(struct vmce_event_log *l);
void vmce__events_fini(struct vmce_event_log *l);

/*
 * JSON output (json.c).  A jbuf writes into buf (len bytes, may be 0) and counts in pos the
 * bytes the whole text needs; vmce__jfinish() terminates it and returns that count, like
 * snprintf.  vmce__jstr() writes a quoted, escaped string of at most max bytes of s.
 */
struct jbuf {
	char *buf;
	size_t len, pos;
};

void vmce__jput(struct jbuf *b, const char *s, size_t n);
void vmce__jprintf(struct jbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vmce__jstr(struct jbuf *b, const char *s, size_t max);
int vmce__jfinish(struct jbuf *b);
const char *vmce__signal_name(enum vmce_signal s); /* "mc", "cmci", "none" */

#endif /* VMCE_POLICY_INTERNAL_H */
