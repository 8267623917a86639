// SPDX-License-Identifier: MIT
/*
 * The guest memory map: guest-physical ranges and their host-virtual (and host-physical)
 * backing.  Kept as sorted arrays, one per address kind, so translation is a binary search.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "policy/policy_internal.h"

int vmce__memmap_init(struct vmce_memmap *m)
{
	m->n = 0;
	m->nh = 0;
	return pthread_rwlock_init(&m->lock, NULL) ? -ENOMEM : 0;
}

void vmce__memmap_fini(struct vmce_memmap *m)
{
	pthread_rwlock_destroy(&m->lock);
}

static uint64_t key_of(const struct vmce_mem_range *r, enum vmce_addr_kind kind)
{
	return kind == VMCE_ADDR_HVA ? r->hva : kind == VMCE_ADDR_HPA ? r->hpa : r->gpa;
}

/* Index of the last range whose start is <= addr, or -1. */
static long find_le(const struct vmce_mem_range *a, size_t n, enum vmce_addr_kind kind,
		    uint64_t addr)
{
	long lo = 0, hi = (long)n - 1, best = -1;

	while (lo <= hi) {
		long mid = lo + (hi - lo) / 2;

		if (key_of(&a[mid], kind) <= addr) {
			best = mid;
			lo = mid + 1;
		} else {
			hi = mid - 1;
		}
	}
	return best;
}

static bool overlaps(const struct vmce_mem_range *a, size_t n, enum vmce_addr_kind kind,
		     uint64_t start, uint64_t size)
{
	long i = find_le(a, n, kind, start + size - 1);

	/* Compare last bytes: a range may end at the top of the address space. */
	return i >= 0 && key_of(&a[i], kind) + (a[i].size - 1) >= start;
}

static void insert_sorted(struct vmce_mem_range *a, size_t n, enum vmce_addr_kind kind,
			  const struct vmce_mem_range *r)
{
	long i = find_le(a, n, kind, key_of(r, kind)) + 1;

	memmove(&a[i + 1], &a[i], (n - (size_t)i) * sizeof(*a));
	a[i] = *r;
}

static void remove_at(struct vmce_mem_range *a, size_t n, size_t i)
{
	memmove(&a[i], &a[i + 1], (n - i - 1) * sizeof(*a));
}

int vmce_memmap_add(struct vmce_vm *vm, uint64_t gpa, uint64_t size, uint64_t hva, uint64_t hpa,
		    struct vmce_err *err)
{
	struct vmce_memmap *m = &vm->pol->memmap;
	struct vmce_mem_range r = {gpa, size, hva, hpa};
	int rc = 0;

	if (size == 0)
		return vmce__fail(err, -EINVAL, "memory range at gpa 0x%" PRIx64 " has size 0",
				  gpa);
	if (gpa + size - 1 < gpa || hva + size - 1 < hva ||
	    (hpa != VMCE_NO_HPA && hpa + size - 1 < hpa))
		return vmce__fail(err, -EINVAL,
				  "memory range gpa 0x%" PRIx64 " size 0x%" PRIx64
				  " wraps around the address space",
				  gpa, size);
	pthread_rwlock_wrlock(&m->lock);
	if (m->n >= VMCE_MEMMAP_MAX)
		rc = vmce__fail(err, -ENOSPC, "memory map is full (%d ranges)", VMCE_MEMMAP_MAX);
	else if (overlaps(m->by_gpa, m->n, VMCE_ADDR_GPA, gpa, size))
		rc = vmce__fail(err, -EEXIST,
				"gpa range 0x%" PRIx64 "+0x%" PRIx64 " overlaps a registered range",
				gpa, size);
	else if (overlaps(m->by_hva, m->n, VMCE_ADDR_HVA, hva, size))
		rc = vmce__fail(err, -EEXIST,
				"hva range 0x%" PRIx64 "+0x%" PRIx64 " overlaps a registered range",
				hva, size);
	else if (hpa != VMCE_NO_HPA && overlaps(m->by_hpa, m->nh, VMCE_ADDR_HPA, hpa, size))
		rc = vmce__fail(err, -EEXIST,
				"hpa range 0x%" PRIx64 "+0x%" PRIx64 " overlaps a registered range",
				hpa, size);
	if (rc == 0) {
		insert_sorted(m->by_gpa, m->n, VMCE_ADDR_GPA, &r);
		insert_sorted(m->by_hva, m->n, VMCE_ADDR_HVA, &r);
		if (hpa != VMCE_NO_HPA)
			insert_sorted(m->by_hpa, m->nh++, VMCE_ADDR_HPA, &r);
		m->n++;
	}
	pthread_rwlock_unlock(&m->lock);
	return rc;
}

static long find_exact(const struct vmce_mem_range *a, size_t n, enum vmce_addr_kind kind,
		       uint64_t key, uint64_t gpa)
{
	long i = find_le(a, n, kind, key);

	return (i >= 0 && a[i].gpa == gpa) ? i : -1;
}

int vmce_memmap_remove(struct vmce_vm *vm, uint64_t gpa, struct vmce_err *err)
{
	struct vmce_memmap *m = &vm->pol->memmap;
	struct vmce_mem_range r;
	long i;

	pthread_rwlock_wrlock(&m->lock);
	i = find_exact(m->by_gpa, m->n, VMCE_ADDR_GPA, gpa, gpa);
	if (i < 0) {
		pthread_rwlock_unlock(&m->lock);
		return vmce__fail(err, -ENOENT, "no memory range starts at gpa 0x%" PRIx64, gpa);
	}
	r = m->by_gpa[i];
	remove_at(m->by_gpa, m->n, (size_t)i);
	i = find_exact(m->by_hva, m->n, VMCE_ADDR_HVA, r.hva, gpa);
	remove_at(m->by_hva, m->n, (size_t)i);
	if (r.hpa != VMCE_NO_HPA) {
		i = find_exact(m->by_hpa, m->nh, VMCE_ADDR_HPA, r.hpa, gpa);
		remove_at(m->by_hpa, m->nh--, (size_t)i);
	}
	m->n--;
	pthread_rwlock_unlock(&m->lock);
	return 0;
}

int vmce_translate(struct vmce_vm *vm, enum vmce_addr_kind kind, uint64_t addr, uint64_t *gpa)
{
	struct vmce_memmap *m = &vm->pol->memmap;
	const struct vmce_mem_range *a;
	size_t n;
	long i;
	int rc = -ENOENT;

	if (kind != VMCE_ADDR_GPA && kind != VMCE_ADDR_HVA && kind != VMCE_ADDR_HPA)
		return -EINVAL;
	pthread_rwlock_rdlock(&m->lock);
	a = kind == VMCE_ADDR_GPA ? m->by_gpa : kind == VMCE_ADDR_HVA ? m->by_hva : m->by_hpa;
	n = kind == VMCE_ADDR_HPA ? m->nh : m->n;
	i = find_le(a, n, kind, addr);
	if (i >= 0 && addr - key_of(&a[i], kind) < a[i].size) {
		*gpa = a[i].gpa + (addr - key_of(&a[i], kind));
		rc = 0;
	}
	pthread_rwlock_unlock(&m->lock);
	return rc;
}
