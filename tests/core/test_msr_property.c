// SPDX-License-Identifier: MIT
/*
 * Property test of the MSR model: a long seeded sequence of random guest and host MSR accesses
 * on random profiles.  After every operation the library must
 *   - not crash (ASan/UBSan builds catch out-of-bounds accesses),
 *   - give the result and value a reference model gives, and
 *   - hold exactly the state the reference model holds, for every field of every vCPU: a write
 *     changes its own register or nothing, never another one.
 *
 * The reference model (core/msr_model.h) is written from the table of design §3 alone, in its
 * own terms (an MSR is classified once into a kind and a bank, then one rule per row).
 *
 * Usage: core_msr_property [--ops N] [--seed S]; or VMCE_PROPTEST_OPS / VMCE_PROPTEST_SEED.
 * Default: 1000000 operations, seed 0x766d6365.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "core/core_util.h"
#include "core/msr_model.h"

#define DEFAULT_OPS  1000000ul
#define DEFAULT_SEED 0x766d6365ull
#define NVCPU	     2
#define OPS_PER_VM   2500

static unsigned long n_ops = DEFAULT_OPS;
static uint64_t seed = DEFAULT_SEED;

/* ---- PRNG (splitmix64) --------------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n). */
static uint32_t below(uint32_t n)
{
	return (uint32_t)(rnd() % n);
}

/* The library's snapshot must equal the model, field for field. */
static void model_check(const struct model_profile *m, const struct model_vcpu *s,
			const struct vmce_vcpu_state *st, unsigned long op, unsigned vcpu)
{
	static const char *const reg[] = {"CTL", "STATUS", "ADDR", "MISC"};

	if (st->mcg_status != s->mcg_status)
		fail_msg("op %lu vcpu %u: MCG_STATUS %#" PRIx64 ", model %#" PRIx64, op, vcpu,
			 st->mcg_status, s->mcg_status);
	if (st->mcg_ctl != s->mcg_ctl)
		fail_msg("op %lu vcpu %u: MCG_CTL %#" PRIx64 ", model %#" PRIx64, op, vcpu,
			 st->mcg_ctl, s->mcg_ctl);
	if (st->mcg_ext_ctl != s->mcg_ext_ctl)
		fail_msg("op %lu vcpu %u: MCG_EXT_CTL %#" PRIx64 ", model %#" PRIx64, op, vcpu,
			 st->mcg_ext_ctl, s->mcg_ext_ctl);
	if (st->amd_mcstatus_wren != (m->amd && s->wren))
		fail_msg("op %lu vcpu %u: amd_mcstatus_wren %d", op, vcpu, st->amd_mcstatus_wren);
	for (unsigned i = 0; i < 32; i++) {
		const uint64_t got[4] = {st->bank[i].ctl, st->bank[i].status, st->bank[i].addr,
					 st->bank[i].misc};

		for (unsigned r = 0; r < 4; r++)
			if (got[r] != s->bank[i][r])
				fail_msg("op %lu vcpu %u: MC%u_%s %#" PRIx64 ", model %#" PRIx64,
					 op, vcpu, i, reg[r], got[r], s->bank[i][r]);
		if (st->bank[i].ctl2 != s->ctl2[i])
			fail_msg("op %lu vcpu %u: MC%u_CTL2 %#" PRIx64 ", model %#" PRIx64, op,
				 vcpu, i, st->bank[i].ctl2, s->ctl2[i]);
	}
}

/* ---- Random inputs ------------------------------------------------------------------------- */

static void random_profile(struct model_profile *m, struct vmce_profile *p)
{
	static const uint8_t some_banks[] = {1, 1, 2, 2, 2, 3, 4, 6, 8, 16, 31, 32};

	memset(m, 0, sizeof(*m));
	m->amd = below(2);
	m->banks = below(4) ? some_banks[below(sizeof(some_banks))] : 1 + below(32);
	m->compat = below(2) ? m->banks : m->banks + below(33 - m->banks);
	m->ctl = below(2);
	if (!m->amd) {
		m->cmci = below(2);
		m->tes = below(2);
		m->ser = below(2);
		m->lmce = below(2);
	}
	memset(p, 0, sizeof(*p));
	p->vendor = m->amd ? VMCE_VENDOR_AMD : VMCE_VENDOR_INTEL;
	p->banks = (uint8_t)m->banks;
	p->compat_banks = (uint8_t)m->compat;
	p->report_bank = (uint8_t)below(m->banks);
	p->caps = (m->ctl ? VMCE_CAP_CTL : 0) | (m->cmci ? VMCE_CAP_CMCI : 0) |
		  (m->tes ? VMCE_CAP_TES : 0) | (m->ser ? VMCE_CAP_SER : 0) |
		  (m->lmce ? VMCE_CAP_LMCE : 0) | (m->amd && below(2) ? VMCE_CAP_SUCCOR : 0);
}

/* Mostly MCA indices and their neighbours; a quarter aimed at the profile's own banks. */
static uint32_t random_index(const struct model_profile *m)
{
	static const uint32_t edges[] = {0x2,	0x178, 0x17c, 0x27f, 0x29f, 0x2a0,     0x3ff,
					 0x47f, 0x480, 0x481, 0x4cf, 0x4d1, 0xffffffff};
	uint32_t r = below(100);

	if (r < 25)
		return 0x400 + 4 * below(m->compat) + below(4);
	if (r < 45)
		return 0x400 + below(0x88); /* every bank, and up to 2 banks past the last */
	if (r < 57)
		return 0x280 + below(0x24);
	if (r < 72)
		return 0x179 + below(3);
	if (r < 75)
		return below(2) ? 0x178 : 0x17c;
	if (r < 80)
		return 0x4ce + below(5);
	if (r < 83)
		return below(4);
	if (r < 93)
		return edges[below(sizeof(edges) / sizeof(edges[0]))];
	return (uint32_t)rnd();
}

static uint64_t random_value(void)
{
	uint32_t r = below(100);

	if (r < 25)
		return 0;
	if (r < 33)
		return ~0ull;
	if (r < 53)
		return 1ull << below(64);
	if (r < 68)
		return (below(2) ? 1ull << 30 : 0) | below(0x8000);
	if (r < 72)
		return below(16);
	return rnd();
}

/* ---- The run ------------------------------------------------------------------------------- */

struct counts {
	unsigned long ok, gp, not_mca, reads, writes, host, resets, wren;
};

static void run(unsigned long ops, uint64_t s, struct counts *cnt)
{
	struct model_profile m;
	struct model_vcpu mv[NVCPU];
	struct vmce_profile p;
	struct vmce_vm *vm = NULL;
	struct vmce_vcpu_state prev[NVCPU], cur;
	unsigned long op;

	rng_state = s;
	memset(cnt, 0, sizeof(*cnt));
	for (op = 0; op < ops; op++) {
		unsigned n, kind;
		bool is_write = false, is_access = true;
		uint32_t idx;
		uint64_t val, got, want;
		enum vmce_msr_result r, wr;
		struct vmce_vcpu *v;
		struct msr_class c;

		if (op % OPS_PER_VM == 0) {
			if (vm) {
				for (n = 0; n < NVCPU; n++) {
					vmce_vcpu_get_state(vmce_vm_vcpu(vm, n), &cur);
					model_check(&m, &mv[n], &cur, op, n);
				}
				vmce_vm_destroy(vm);
			}
			random_profile(&m, &p);
			vm = cu_vm_profile(&p, NVCPU);
			for (n = 0; n < NVCPU; n++) {
				model_reset(&m, &mv[n]);
				vmce_vcpu_get_state(vmce_vm_vcpu(vm, n), &prev[n]);
				model_check(&m, &mv[n], &prev[n], op, n);
			}
		}
		n = below(NVCPU);
		v = vmce_vm_vcpu(vm, n);
		idx = random_index(&m);
		val = random_value();
		c = classify(idx);
		kind = below(100);
		got = 0x5a5a5a5a5a5a5a5aull;
		if (kind < 40 || (kind >= 95 && kind < 98)) {
			bool host = kind >= 95;

			r = host ? vmce_host_rdmsr(v, idx, &got) : vmce_rdmsr(v, idx, &got);
			wr = model_read(&m, &mv[n], idx, &want);
			if (r != wr || (r == VMCE_MSR_OK && got != want))
				fail_msg("op %lu (seed %#" PRIx64 "): %srdmsr %#x on vcpu %u = %s "
					 "%#" PRIx64 ", model %s %#" PRIx64,
					 op, s, host ? "host " : "", idx, n, cu_res(r), got,
					 cu_res(wr), want);
			cnt->reads++;
			cnt->host += host;
		} else if (kind < 95) {
			bool host = kind >= 82;

			r = host ? vmce_host_wrmsr(v, idx, val) : vmce_wrmsr(v, idx, val);
			wr = host ? model_host_write(&m, &mv[n], idx, val)
				  : model_guest_write(&m, &mv[n], idx, val);
			if (r != wr)
				fail_msg("op %lu (seed %#" PRIx64 "): %swrmsr %#x <- %#" PRIx64
					 " on vcpu %u = %s, model %s",
					 op, s, host ? "host " : "", idx, val, n, cu_res(r),
					 cu_res(wr));
			is_write = true;
			cnt->writes++;
			cnt->host += host;
		} else if (kind < 99) {
			bool en = below(2);

			vmce_vcpu_set_amd_mcstatus_wren(v, en);
			mv[n].wren = en && m.amd;
			r = VMCE_MSR_OK;
			is_access = false;
			cnt->wren++;
		} else {
			vmce_vcpu_reset(v);
			model_reset(&m, &mv[n]);
			r = VMCE_MSR_OK;
			is_access = false;
			cnt->resets++;
		}
		cnt->ok += r == VMCE_MSR_OK;
		cnt->gp += r == VMCE_MSR_GP;
		cnt->not_mca += r == VMCE_MSR_NOT_MCA;

		/* The whole state equals the model's... */
		vmce_vcpu_get_state(v, &cur);
		model_check(&m, &mv[n], &cur, op, n);
		/* ...and differs from the previous snapshot at most in the field a write addressed
		 * (a read changes nothing). */
		if (is_access) {
			struct vmce_vcpu_state tmp = cur;
			bool stored = is_write && r == VMCE_MSR_OK;
			char what[128];

			if (stored && c.kind == K_BANK && c.bank < m.banks) {
				uint64_t *f[4] = {&tmp.bank[c.bank].ctl, &tmp.bank[c.bank].status,
						  &tmp.bank[c.bank].addr, &tmp.bank[c.bank].misc};
				const uint64_t *o[4] = {
					&prev[n].bank[c.bank].ctl, &prev[n].bank[c.bank].status,
					&prev[n].bank[c.bank].addr, &prev[n].bank[c.bank].misc};

				*f[c.reg] = *o[c.reg];
			} else if (stored && c.kind == K_CTL2 && c.bank < m.banks) {
				tmp.bank[c.bank].ctl2 = prev[n].bank[c.bank].ctl2;
			} else if (stored && c.kind == K_STATUS) {
				tmp.mcg_status = prev[n].mcg_status;
			} else if (stored && c.kind == K_CTL) {
				tmp.mcg_ctl = prev[n].mcg_ctl;
			} else if (stored && c.kind == K_EXT) {
				tmp.mcg_ext_ctl = prev[n].mcg_ext_ctl;
			}
			if (!cu_state_eq(&tmp, &prev[n], what, sizeof(what)))
				fail_msg("op %lu (seed %#" PRIx64 "): access to %#x on vcpu %u "
					 "changed another field: %s",
					 op, s, idx, n, what);
		}
		prev[n] = cur;
	}
	for (unsigned k = 0; vm && k < NVCPU; k++) {
		vmce_vcpu_get_state(vmce_vm_vcpu(vm, k), &cur);
		model_check(&m, &mv[k], &cur, op, k);
	}
	vmce_vm_destroy(vm);
}

static void test_property(void **state)
{
	struct counts c;

	(void)state;
	print_message("core_msr_property: seed %#" PRIx64 ", %lu operations\n", seed, n_ops);
	run(n_ops, seed, &c);
	print_message("reads %lu, writes %lu (host %lu), wren %lu, resets %lu; "
		      "OK %lu, GP %lu, NOT_MCA %lu\n",
		      c.reads, c.writes, c.host, c.wren, c.resets, c.ok, c.gp, c.not_mca);
	/* The distribution really exercises all three outcomes. */
	assert_true(c.ok > n_ops / 5);
	assert_true(c.gp > n_ops / 20);
	assert_true(c.not_mca > n_ops / 50);
}

/* The same seed gives the same run (the failure report is reproducible). */
static void test_deterministic(void **state)
{
	struct counts a, b;

	(void)state;
	run(20000, seed ^ 1, &a);
	run(20000, seed ^ 1, &b);
	assert_memory_equal(&a, &b, sizeof(a));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_property),
		cmocka_unit_test(test_deterministic),
	};
	const char *e;

	if ((e = getenv("VMCE_PROPTEST_OPS")))
		n_ops = strtoul(e, NULL, 0);
	if ((e = getenv("VMCE_PROPTEST_SEED")))
		seed = strtoull(e, NULL, 0);
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--ops"))
			n_ops = strtoul(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--seed"))
			seed = strtoull(argv[i + 1], NULL, 0);
		else {
			fprintf(stderr, "usage: %s [--ops N] [--seed S]\n", argv[0]);
			return 2;
		}
	}
	if (n_ops < 1000) {
		fprintf(stderr, "--ops: at least 1000\n");
		return 2;
	}
	return cmocka_run_group_tests_name("core_msr_property", tests, NULL, NULL);
}
