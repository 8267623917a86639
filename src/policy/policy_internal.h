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
