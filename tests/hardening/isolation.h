/* SPDX-License-Identifier: MIT */
/*
 * isolation.h - the isolation invariants of the forwarding policy, checked independently of
 * the library: a reference memory map (host-virtual and host-physical ranges far from any
 * guest-physical address), its own translation, and checks that a plan record or a vCPU's
 * whole MCA state carries nothing host-only.  Used by the hardening tests and the policy fuzzer
 * (no test framework needed: checks return false and name the violation).
 *
 * Address layout: guest-physical addresses are below 2^40; host-virtual ranges start at
 * ISO_HVA_BASE and host-physical ones at ISO_HPA_BASE (both above 2^43), so a guest register
 * holding a value at or above ISO_HOST_MIN is a host address leaking.
 */
#ifndef VMCE_TESTS_HARDENING_ISOLATION_H
#define VMCE_TESTS_HARDENING_ISOLATION_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <vmce/policy.h>

#define ISO_MAX_RANGES 8
#define ISO_GPA_LIMIT  (1ull << 40)
#define ISO_HOST_MIN   (1ull << 43)
#define ISO_HPA_BASE   (1ull << 44)
#define ISO_HVA_BASE   0x7f0000000000ull
/* Another VM of the same VMM process: its host-virtual ranges live here. */
#define ISO_OTHER_HVA 0x7e0000000000ull
#define ISO_PAGE      4096ull

struct iso_map {
	unsigned n;
	uint64_t gpa[ISO_MAX_RANGES], size[ISO_MAX_RANGES], hva[ISO_MAX_RANGES],
		hpa[ISO_MAX_RANGES];
};

/* Build a map from a random source (next() returns 64 random bits) and register it on vm. */
static inline int iso_map_build(struct iso_map *m, struct vmce_vm *vm, uint64_t hva_base,
				uint64_t (*next)(void *), void *rng)
{
	uint64_t gpa = (next(rng) % 1024) * ISO_PAGE, hva = hva_base, hpa = ISO_HPA_BASE;
	struct vmce_err err;

	m->n = 1 + (unsigned)(next(rng) % ISO_MAX_RANGES);
	for (unsigned i = 0; i < m->n; i++) {
		m->size[i] = (1 + next(rng) % 4096) * ISO_PAGE;
		m->gpa[i] = gpa;
		m->hva[i] = hva + (next(rng) % 64) * ISO_PAGE;
		m->hpa[i] = next(rng) % 4 ? hpa + (next(rng) % 64) * ISO_PAGE : VMCE_NO_HPA;
		gpa = m->gpa[i] + m->size[i] +
		      (next(rng) % 3) * (next(rng) % (1ull << 30)) / ISO_PAGE * ISO_PAGE;
		hva = m->hva[i] + m->size[i];
		if (m->hpa[i] != VMCE_NO_HPA)
			hpa = m->hpa[i] + m->size[i];
		if (vm && vmce_memmap_add(vm, m->gpa[i], m->size[i], m->hva[i], m->hpa[i], &err))
			return -1;
	}
	return 0;
}

/* Reference translation. */
static inline bool iso_translate(const struct iso_map *m, enum vmce_addr_kind kind, uint64_t a,
				 uint64_t *gpa)
{
	for (unsigned i = 0; i < m->n; i++) {
		uint64_t base = kind == VMCE_ADDR_GPA	? m->gpa[i]
				: kind == VMCE_ADDR_HVA ? m->hva[i]
				: kind == VMCE_ADDR_HPA ? m->hpa[i]
							: VMCE_NO_HPA;

		if (base == VMCE_NO_HPA || a < base || a - base >= m->size[i])
			continue;
		*gpa = m->gpa[i] + (a - base);
		return true;
	}
	return false;
}

static inline bool iso_gpa_in_map(const struct iso_map *m, uint64_t gpa)
{
	uint64_t g;

	return iso_translate(m, VMCE_ADDR_GPA, gpa, &g);
}

/* Bits of MCi_STATUS that carry host-only data: MSCOD (31:16) and the other-information field
 * (Intel 52:32; on AMD 52:32 minus the architectural POISON and DEFERRED bits). */
static inline uint64_t iso_host_only_status(bool amd)
{
	uint64_t other = ((1ull << 53) - 1) & ~((1ull << 32) - 1);

	if (amd)
		other &= ~(VMCE_MCI_STATUS_POISON | VMCE_MCI_STATUS_DEFERRED);
	return VMCE_MCI_STATUS_MSCOD | other;
}

/* One bank record (status, addr, misc) of a guest. */
static inline bool iso_check_bank(const struct iso_map *m, bool amd, uint64_t status, uint64_t addr,
				  uint64_t misc, char *why, size_t len)
{
	if (status & iso_host_only_status(amd)) {
		snprintf(why, len, "STATUS %#" PRIx64 " carries host-only bits %#" PRIx64, status,
			 status & iso_host_only_status(amd));
		return false;
	}
	if (addr && !iso_gpa_in_map(m, addr)) {
		snprintf(why, len, "ADDR %#" PRIx64 " is not an address of this guest's memory",
			 addr);
		return false;
	}
	if (misc && (amd || (misc & ~0x1ffull) || ((misc >> 6) & 7) != 2 || (misc & 0x3f) > 12)) {
		snprintf(why, len, "MISC %#" PRIx64 " is not a synthesised physical-mode MISC",
			 misc);
		return false;
	}
	return true;
}

/* A whole vCPU state, as the guest can read it. */
static inline bool iso_check_state(const struct iso_map *m, const struct vmce_profile *p,
				   const struct vmce_vcpu_state *st, char *why, size_t len)
{
	bool amd = p->vendor == VMCE_VENDOR_AMD;

	if (st->mcg_status & ~0xfull) {
		snprintf(why, len, "MCG_STATUS %#" PRIx64 " has bits beyond LMCES", st->mcg_status);
		return false;
	}
	for (unsigned i = 0; i < VMCE_MAX_BANKS; i++) {
		const struct vmce_bank_state *b = &st->bank[i];

		if (i >= p->banks) {
			if (b->status || b->addr || b->misc || b->ctl2) {
				snprintf(why, len, "bank %u beyond the profile holds data", i);
				return false;
			}
			continue;
		}
		if (!iso_check_bank(m, amd, b->status, b->addr, b->misc, why, len))
			return false;
		if (b->addr >= ISO_HOST_MIN || b->misc >= ISO_HOST_MIN) {
			snprintf(why, len, "bank %u holds a host address", i);
			return false;
		}
	}
	return true;
}

/*
 * A plan for host error e: a forwarded address must be exactly this VM's translation of the
 * host address (the same page, truncated to the granularity given), and every vCPU's
 * record must pass iso_check_bank().
 */
static inline bool iso_check_plan(const struct iso_map *m, const struct vmce_profile *p,
				  const struct vmce_host_error *e, const struct vmce_plan *plan,
				  char *why, size_t len)
{
	bool amd = p->vendor == VMCE_VENDOR_AMD;
	struct vmce_vcpu_record r;
	uint64_t gpa;

	if (plan->verdict != VMCE_VERDICT_FORWARD)
		return true;
	if (plan->has_gpa) {
		if (e->addr_kind == VMCE_ADDR_NONE ||
		    !iso_translate(m, e->addr_kind, e->addr, &gpa)) {
			snprintf(why, len,
				 "forwarded GPA %#" PRIx64 " for a host address (%#" PRIx64
				 ", kind %d) outside this guest's memory",
				 plan->gpa, e->addr, (int)e->addr_kind);
			return false;
		}
		if (plan->gpa > gpa || (plan->gpa >> 12) != (gpa >> 12)) {
			snprintf(why, len,
				 "forwarded GPA %#" PRIx64
				 " is not in the page of the translation %#" PRIx64,
				 plan->gpa, gpa);
			return false;
		}
	}
	for (unsigned i = 0; i < plan->nr_vcpus; i++) {
		if (!vmce_plan_vcpu(plan, i, &r))
			continue;
		if (r.mcg_status & ~0xfull) {
			snprintf(why, len, "vcpu %u: MCG_STATUS %#" PRIx64, i, r.mcg_status);
			return false;
		}
		if (r.bank < 0)
			continue;
		if (r.bank >= p->banks) {
			snprintf(why, len, "vcpu %u: bank %d outside the profile", i, r.bank);
			return false;
		}
		if (!iso_check_bank(m, amd, r.status, r.addr, r.misc, why, len))
			return false;
		if (r.addr && r.addr != plan->gpa) {
			snprintf(why, len, "vcpu %u: ADDR %#" PRIx64 " is not the plan's GPA", i,
				 r.addr);
			return false;
		}
	}
	return true;
}

#include "sim_deliver.h"

#endif
