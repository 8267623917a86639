// SPDX-License-Identifier: MIT
/*
 * The poisoned-page set: guest frames that took a forwarded memory error.  An open-addressing
 * hash set that grows by doubling up to the VM's bound (max_poisoned_pages); past it, adding
 * fails with -ENOSPC.  Memory: the table has at most the power of two at or above twice the
 * bound in 8-byte slots (load factor <= 1/2): 16 bytes per page of the bound when the bound is
 * a power of two, under 32 bytes otherwise (65536 pages: 1 MiB).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy_internal.h"

#define INITIAL_SLOTS 64

int vmce__poison_init(struct vmce_poison_set *s, size_t max, struct vmce_err *err)
{
	memset(s, 0, sizeof(*s));
	s->max = max;
	s->cap = INITIAL_SLOTS;
	s->slots = calloc(s->cap, sizeof(*s->slots));
	if (!s->slots)
		return vmce__fail(err, -ENOMEM, "out of memory for the poisoned-page set");
	pthread_mutex_init(&s->lock, NULL);
	return 0;
}

void vmce__poison_fini(struct vmce_poison_set *s)
{
	pthread_mutex_destroy(&s->lock);
	free(s->slots);
	s->slots = NULL;
}

static inline size_t hash_frame(uint64_t f)
{
	f ^= f >> 33;
	f *= 0xff51afd7ed558ccdull;
	f ^= f >> 33;
	return (size_t)f;
}

/* Slot holding frame, or the empty slot where it would go. */
static size_t probe(const uint64_t *slots, size_t cap, uint64_t frame)
{
	size_t i = hash_frame(frame) & (cap - 1);

	while (slots[i] && slots[i] != frame + 1)
		i = (i + 1) & (cap - 1);
	return i;
}

static int grow(struct vmce_poison_set *s)
{
	size_t ncap = s->cap * 2;
	uint64_t *n = calloc(ncap, sizeof(*n));

	if (!n)
		return -ENOMEM;
	for (size_t i = 0; i < s->cap; i++)
		if (s->slots[i])
			n[probe(n, ncap, s->slots[i] - 1)] = s->slots[i];
	free(s->slots);
	s->slots = n;
	s->cap = ncap;
	return 0;
}

int vmce_poison_add(struct vmce_vm *vm, uint64_t gpa, struct vmce_err *err)
{
	struct vmce_poison_set *s = &vm->pol->poison;
	uint64_t frame = gpa >> 12;
	size_t i;
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	i = probe(s->slots, s->cap, frame);
	if (s->slots[i])
		goto out; /* already poisoned */
	if (s->count >= s->max) {
		rc = vmce__fail(err, -ENOSPC,
				"poisoned-page set is full (%zu pages): page 0x%" PRIx64
				" not recorded",
				s->max, gpa & ~(uint64_t)0xfff);
		goto out;
	}
	if ((s->count + 1) * 2 > s->cap) {
		if (grow(s)) {
			rc = vmce__fail(err, -ENOMEM,
					"out of memory growing the poisoned-page set");
			goto out;
		}
		i = probe(s->slots, s->cap, frame);
	}
	s->slots[i] = frame + 1;
	s->count++;
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

bool vmce_poison_contains(struct vmce_vm *vm, uint64_t gpa)
{
	struct vmce_poison_set *s = &vm->pol->poison;
	bool r;

	pthread_mutex_lock(&s->lock);
	r = s->slots[probe(s->slots, s->cap, gpa >> 12)] != 0;
	pthread_mutex_unlock(&s->lock);
	return r;
}

size_t vmce_poison_count(struct vmce_vm *vm)
{
	struct vmce_poison_set *s = &vm->pol->poison;
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->count;
	pthread_mutex_unlock(&s->lock);
	return n;
}

size_t vmce_poison_list(struct vmce_vm *vm, uint64_t *out, size_t max, bool first, uint64_t after)
{
	struct vmce_poison_set *s = &vm->pol->poison;
	uint64_t lo = first ? 0 : (after >> 12) + 1;
	size_t n = 0;

	/*
	 * Selection of the `max` smallest frames >= lo: a pass over the table per output
	 * element would be quadratic, so collect candidates and keep them sorted with an
	 * insertion into a bounded array (max is small in practice: a page of a listing).
	 */
	if (max == 0 || (!first && after >> 12 == UINT64_MAX >> 12))
		return 0;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->cap; i++) {
		uint64_t f;
		size_t j;

		if (!s->slots[i])
			continue;
		f = s->slots[i] - 1;
		if (f < lo)
			continue;
		if (n == max && f << 12 >= out[n - 1])
			continue;
		j = n < max ? n++ : n - 1;
		while (j > 0 && out[j - 1] > f << 12) {
			out[j] = out[j - 1];
			j--;
		}
		out[j] = f << 12;
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int vmce__poison_copy(struct vmce_poison_set *s, size_t max, uint64_t **gpas, size_t *n)
{
	uint64_t *out;
	size_t k = 0;

	*gpas = NULL;
	pthread_mutex_lock(&s->lock);
	*n = s->count;
	if (s->count > max) {
		pthread_mutex_unlock(&s->lock);
		return -E2BIG;
	}
	out = malloc((s->count ? s->count : 1) * sizeof(*out));
	if (!out) {
		pthread_mutex_unlock(&s->lock);
		return -ENOMEM;
	}
	for (size_t i = 0; i < s->cap && k < s->count; i++)
		if (s->slots[i])
			out[k++] = (s->slots[i] - 1) << 12;
	pthread_mutex_unlock(&s->lock);
	qsort(out, k, sizeof(*out), cmp_u64);
	*gpas = out;
	*n = k;
	return 0;
}

int vmce__poison_table_build(const uint64_t *gpas, size_t n, struct vmce_poison_table *t)
{
	size_t cap = INITIAL_SLOTS;

	memset(t, 0, sizeof(*t));
	/* At most half full, as vmce_poison_add() keeps the set. */
	while (cap < 2 * n)
		cap *= 2;
	t->slots = calloc(cap, sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
	t->cap = cap;
	for (size_t i = 0; i < n; i++) {
		uint64_t frame = gpas[i] >> 12;
		size_t k = probe(t->slots, cap, frame);

		if (t->slots[k])
			continue; /* a duplicate */
		t->slots[k] = frame + 1;
		t->count++;
	}
	return 0;
}

void vmce__poison_replace(struct vmce_poison_set *s, struct vmce_poison_table *t)
{
	uint64_t *old;

	pthread_mutex_lock(&s->lock);
	old = s->slots;
	s->slots = t->slots;
	s->cap = t->cap;
	s->count = t->count;
	pthread_mutex_unlock(&s->lock);
	free(old);
	memset(t, 0, sizeof(*t));
}

void vmce__poison_table_free(struct vmce_poison_table *t)
{
	free(t->slots);
	memset(t, 0, sizeof(*t));
}
