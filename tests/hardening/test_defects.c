// SPDX-License-Identifier: MIT
/*
 * Regression tests for the defect classes other vMCE implementations shipped (design §7), on
 * the core and the policy (no KVM needed).  One executable, one CTest test per defect class:
 *
 *   hardening_mc_clears <- mc_clears:  a #MC handler's clears (0 to MCi_STATUS/ADDR/MISC and
 *                          MCG_STATUS) got #GP (Windows/Linux panic in the handler);
 *   hardening_migrate_banks <- migrate_banks: after migration the guest's banks 0..N-1 gave #GP
 *                          (caps not restored verbatim);
 *   hardening_broadcast <- broadcast: only one vCPU got the #MC, or bystanders read
 *                          MCG_STATUS 0 (Xen: Windows 8 rebooted, guests panicked);
 *   hardening_inject_target <- inject_target: injection into a vCPU not started, or out of range;
 *   hardening_isolation <- isolation: host addresses, MSCOD, other-info or another VM's addresses
 *                          reaching a guest register (10^6 random host errors);
 *   hardening_uninit <- uninit: uninitialised memory reaching the guest (run with
 *                          MALLOC_PERTURB_ and a heap filled with a pattern first);
 *   hardening_p5 <- p5: P5_MC_ADDR/P5_MC_TYPE giving #GP (Windows Server 2019 bugchecked).
 *
 * Usage: hardening_defects NAME [--ops N]
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <vmce/migrate.h>
#include <vmce/policy.h>

#include "core/core_util.h"
#include "hardening/isolation.h"

static unsigned long n_ops = 1000000ul;

/* ---- PRNG (splitmix64) --------------------------------------------------------------------- */

static uint64_t rng_state = 0x68617264656eull;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd_cb(void *unused)
{
	(void)unused;
	return rnd();
}

static uint64_t below(uint64_t n)
{
	return rnd() % n;
}

/* ---- Every profile ------------------------------------------------------------------------- */

/* Enumerate profiles: both vendors, every capability subset, a spread of bank counts and
 * RAZ/WI windows.  Calls fn for each one that validates; returns how many. */
static unsigned for_each_profile(void (*fn)(const struct vmce_profile *, void *), void *arg)
{
	static const uint8_t banks[] = {1, 2, 3, 4, 8, 16, 31, 32};
	static const uint32_t intel_caps[] = {VMCE_CAP_CTL, VMCE_CAP_CMCI, VMCE_CAP_TES,
					      VMCE_CAP_SER, VMCE_CAP_LMCE};
	static const uint32_t amd_caps[] = {VMCE_CAP_CTL, VMCE_CAP_SUCCOR};
	unsigned n = 0;

	for (int v = 0; v < 2; v++) {
		const uint32_t *caps = v ? amd_caps : intel_caps;
		unsigned ncaps = v ? 2 : 5;

		for (uint32_t sub = 0; sub < (1u << ncaps); sub++) {
			for (size_t b = 0; b < sizeof(banks); b++) {
				for (int w = 0; w < 3; w++) {
					struct vmce_profile p = {0};

					p.vendor = v ? VMCE_VENDOR_AMD : VMCE_VENDOR_INTEL;
					for (unsigned c = 0; c < ncaps; c++)
						if (sub & (1u << c))
							p.caps |= caps[c];
					p.banks = banks[b];
					p.report_bank = p.banks > 1 ? 1 : 0;
					p.compat_banks =
						w == 0	 ? p.banks
						: w == 1 ? (uint8_t)(p.banks + (32 - p.banks) / 2)
							 : 32;
					if (vmce_profile_validate(&p, NULL))
						continue;
					fn(&p, arg);
					n++;
				}
			}
		}
	}
	return n;
}

static void profile_text(const struct vmce_profile *p, char *buf, size_t len)
{
	vmce_profile_format(p, buf, len);
}

/* ---- hardening_mc_clears ------------------------------------------------------------------- */

static void clears_one(const struct vmce_profile *p, void *arg)
{
	struct vmce_vm *vm = cu_vm_profile(p, 2);
	char name[128];
	uint64_t v;

	(void)arg;
	profile_text(p, name, sizeof(name));
	for (unsigned c = 0; c < 2; c++) {
		struct vmce_vcpu *vc = vmce_vm_vcpu(vm, c);

		/* A record in every real bank and MCG_STATUS as an #MC leaves them. */
		for (unsigned i = 0; i < p->banks; i++) {
			assert_int_equal(vmce_host_wrmsr(vc, VMCE_MSR_MCi_STATUS(i),
							 VMCE_MCI_STATUS_VAL | VMCE_MCI_STATUS_UC |
								 VMCE_MCI_STATUS_EN | 0x134),
					 VMCE_MSR_OK);
			assert_int_equal(vmce_host_wrmsr(vc, VMCE_MSR_MCi_ADDR(i), 0x1000),
					 VMCE_MSR_OK);
			assert_int_equal(vmce_host_wrmsr(vc, VMCE_MSR_MCi_MISC(i), 0x8c),
					 VMCE_MSR_OK);
		}
		assert_int_equal(vmce_host_wrmsr(vc, VMCE_MSR_MCG_STATUS,
						 VMCE_MCG_STATUS_MCIP | VMCE_MCG_STATUS_RIPV),
				 VMCE_MSR_OK);
		/* The handler clears every bank it can read (0..compat-1), then MCG_STATUS. */
		for (unsigned i = 0; i < p->compat_banks; i++) {
			static const char *const r[] = {"STATUS", "ADDR", "MISC"};
			const uint32_t idx[] = {VMCE_MSR_MCi_STATUS(i), VMCE_MSR_MCi_ADDR(i),
						VMCE_MSR_MCi_MISC(i)};

			for (unsigned k = 0; k < 3; k++) {
				enum vmce_msr_result res = vmce_wrmsr(vc, idx[k], 0);

				if (res != VMCE_MSR_OK)
					fail_msg("profile %s vcpu %u: WRMSR MC%u_%s <- 0 gave %s",
						 name, c, i, r[k], cu_res(res));
				res = vmce_rdmsr(vc, idx[k], &v);
				if (res != VMCE_MSR_OK || v != 0)
					fail_msg("profile %s: MC%u_%s reads %s %#" PRIx64
						 " after the clear",
						 name, i, r[k], cu_res(res), v);
			}
		}
		if (vmce_wrmsr(vc, VMCE_MSR_MCG_STATUS, 0) != VMCE_MSR_OK)
			fail_msg("profile %s: WRMSR MCG_STATUS <- 0 gave #GP", name);
		assert_int_equal(vmce_rdmsr(vc, VMCE_MSR_MCG_STATUS, &v), VMCE_MSR_OK);
		assert_int_equal(v, 0);
	}
	vmce_vm_destroy(vm);
}

static void test_mc_clears(void **state)
{
	unsigned n;

	(void)state;
	n = for_each_profile(clears_one, NULL);
	print_message("handler clears checked on %u profiles\n", n);
	assert_true(n > 400);
}

/* ---- hardening_migrate_banks --------------------------------------------------------------- */

static void read_banks_no_gp(struct vmce_vm *vm, unsigned n, const char *what)
{
	uint64_t v;

	for (unsigned c = 0; c < vmce_vm_nr_vcpus(vm); c++)
		for (unsigned i = 0; i < n; i++)
			for (unsigned r = 0; r < 4; r++) {
				enum vmce_msr_result res =
					vmce_rdmsr(vmce_vm_vcpu(vm, c), 0x400 + 4 * i + r, &v);

				if (res != VMCE_MSR_OK)
					fail_msg("%s: vcpu %u RDMSR %#x (bank %u) gave %s", what, c,
						 0x400 + 4 * i + r, i, cu_res(res));
				if (r == 0)
					continue;
				res = vmce_wrmsr(vmce_vm_vcpu(vm, c), 0x400 + 4 * i + r, 0);
				if (res != VMCE_MSR_OK)
					fail_msg("%s: vcpu %u WRMSR %#x <- 0 gave %s", what, c,
						 0x400 + 4 * i + r, cu_res(res));
			}
}

static void migrate_to(struct vmce_vm *src, const char *dest_text, unsigned n, bool must_take)
{
	struct vmce_err err = {{0}};
	struct vmce_vm *dst = cu_vm(dest_text, vmce_vm_nr_vcpus(src));
	uint64_t cap_before, cap_after;
	size_t len;
	void *s;
	int rc;
	char what[160];

	assert_int_equal(vmce_save_alloc(src, &s, &len, &err), 0);
	assert_int_equal(vmce_rdmsr(vmce_vm_vcpu(dst, 0), VMCE_MSR_MCG_CAP, &cap_before),
			 VMCE_MSR_OK);
	rc = vmce_restore(dst, s, len, &err);
	snprintf(what, sizeof(what), "guest with %u banks restored on '%s'", n, dest_text);
	if (must_take) {
		if (rc)
			fail_msg("%s: refused: %s", what, err.msg);
		assert_int_equal(vmce_rdmsr(vmce_vm_vcpu(dst, 0), VMCE_MSR_MCG_CAP, &cap_after),
				 VMCE_MSR_OK);
		if (cap_after != vmce_profile_mcg_cap(vmce_vm_profile(src)))
			fail_msg("%s: MCG_CAP %#" PRIx64 " is not the one the guest booted with",
				 what, cap_after);
		read_banks_no_gp(dst, n, what);
	} else {
		/* A destination that cannot back the banks refuses clearly and is left alone:
		 * the guest stays at the source, where its banks still read. */
		if (rc != -ENOTSUP || !strstr(err.msg, "banks"))
			fail_msg("%s: expected -ENOTSUP naming the banks, got %d '%s'", what, rc,
				 err.msg);
		assert_int_equal(vmce_rdmsr(vmce_vm_vcpu(dst, 0), VMCE_MSR_MCG_CAP, &cap_after),
				 VMCE_MSR_OK);
		assert_int_equal(cap_after, cap_before);
		read_banks_no_gp(src, n, what);
	}
	free(s);
	vmce_vm_destroy(dst);
}

static void test_migrate_banks(void **state)
{
	char text[96];

	(void)state;
	for (unsigned n = 2; n <= 32; n++) {
		struct vmce_vm *src;

		/* Booted with n real banks; the destination host's default is 2 banks. */
		snprintf(text, sizeof(text), "intel,banks=%u,ser,tes,cmci", n);
		src = cu_vm(text, 2);
		read_banks_no_gp(src, n, "source");
		migrate_to(src, "intel,banks=32,ser,tes,cmci,ctl,lmce", n, true);
		migrate_to(src, "intel,banks=32,compat=32,ser,tes,cmci", n, true);
		if (n > 2)
			migrate_to(src, "intel,banks=2,compat=32,ser,tes,cmci", n, false);
		vmce_vm_destroy(src);

		/* Booted under a VMM that showed n banks, now a 2-bank profile with a RAZ/WI
		 * window up to n: every later destination keeps banks 0..n-1 readable. */
		snprintf(text, sizeof(text), "intel,banks=2,compat=%u,ser,tes,cmci", n);
		src = cu_vm(text, 2);
		read_banks_no_gp(src, n, "source (window)");
		migrate_to(src, "intel,banks=2,compat=32,ser,tes,cmci", n, true);
		migrate_to(src, text, n, true);
		vmce_vm_destroy(src);
	}
}

/* ---- hardening_broadcast ------------------------------------------------------------------- */

static void deliver_all(struct vmce_vm *vm, struct vmce_delivery *d)
{
	for (unsigned c = 0; c < vmce_vm_nr_vcpus(vm); c++) {
		d[c].action = VMCE_ACTION_NONE;
		while (vmce_vcpu_pending(vmce_vm_vcpu(vm, c)))
			assert_int_equal(vmce_vcpu_deliver(vmce_vm_vcpu(vm, c), true, &d[c]), 1);
	}
}

static void test_broadcast(void **state)
{
	/* Intel flavour: AMD SRAO is a Deferred error and AMD #MCs are not broadcast. */
	static const char *const profiles[] = {"intel,banks=2,ser,tes,cmci", "intel,banks=6,ser",
					       "intel,banks=1,ser", "intel,banks=32,ser,lmce"};
	struct vmce_delivery d[16];

	(void)state;
	for (size_t p = 0; p < sizeof(profiles) / sizeof(profiles[0]); p++) {
		for (unsigned nr = 2; nr <= 16; nr += 7) {
			for (int cls = VMCE_CLASS_SRAO; cls <= VMCE_CLASS_SRAR; cls++) {
				struct vmce_vm *vm = cu_vm(profiles[p], nr);
				struct vmce_host_error e;
				struct vmce_plan plan;
				struct vmce_err err = {{0}};
				unsigned target;

				assert_int_equal(vmce_memmap_add(vm, 0, 1ull << 30, ISO_HVA_BASE,
								 VMCE_NO_HPA, &err),
						 0);
				vmce_host_error_init(&e);
				e.origin = VMCE_ORIGIN_INJECT;
				e.cls = (enum vmce_class)cls;
				e.addr_kind = VMCE_ADDR_HVA;
				e.addr = ISO_HVA_BASE + 0x5000;
				e.vcpu = (int)nr - 1;
				if (vmce_handle_error(vm, &e, &plan, &err))
					fail_msg("%s: %s", profiles[p], err.msg);
				assert_int_equal(plan.verdict, VMCE_VERDICT_FORWARD);
				assert_true(plan.broadcast);
				target = plan.target; /* SRAO: vCPU 0; SRAR: the consumer */
				deliver_all(vm, d);
				for (unsigned c = 0; c < nr; c++) {
					struct vmce_vcpu_state st;
					uint64_t mcg;

					if (d[c].action != VMCE_ACTION_MC)
						fail_msg("%s, %u vCPUs, %s: vcpu %u got action %d, "
							 "not #MC",
							 profiles[p], nr, vmce_class_name(e.cls), c,
							 (int)d[c].action);
					assert_int_equal(vmce_rdmsr(vmce_vm_vcpu(vm, c),
								    VMCE_MSR_MCG_STATUS, &mcg),
							 VMCE_MSR_OK);
					if (!(mcg & VMCE_MCG_STATUS_MCIP) ||
					    !(mcg & VMCE_MCG_STATUS_RIPV))
						fail_msg("%s, %u vCPUs: vcpu %u reads MCG_STATUS "
							 "%#" PRIx64 ", not MCIP|RIPV",
							 profiles[p], nr, c, mcg);
					vmce_vcpu_get_state(vmce_vm_vcpu(vm, c), &st);
					if (c == target)
						assert_true(
							st.bank[vmce_vm_profile(vm)->report_bank]
								.status &
							VMCE_MCI_STATUS_VAL);
					else
						for (unsigned b = 0; b < VMCE_MAX_BANKS; b++)
							assert_int_equal(st.bank[b].status, 0);
				}
				vmce_vm_destroy(vm);
			}
		}
	}
}

/* ---- hardening_inject_target --------------------------------------------------------------- */

static void test_inject_target(void **state)
{
	static const int bad[] = {4, 5, 1023, 1024, 65536, 0x7fffffff, -2, -1000, -0x7fffffff - 1};
	struct vmce_vm *vm = cu_vm("intel,banks=2,ser,tes,cmci", 4);
	struct vmce_err err;
	struct vmce_host_error e;
	struct vmce_plan plan;
	int rc;

	(void)state;
	assert_int_equal(vmce_memmap_add(vm, 0, 1ull << 30, ISO_HVA_BASE, VMCE_NO_HPA, NULL), 0);
	assert_null(vmce_vm_vcpu(vm, 4));
	assert_null(vmce_vm_vcpu(vm, UINT32_MAX));
	vmce_host_error_init(&e);
	e.origin = VMCE_ORIGIN_INJECT;
	e.cls = VMCE_CLASS_SRAR;
	e.addr_kind = VMCE_ADDR_GPA;
	e.addr = 0x3000;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&err, 0, sizeof(err));
		e.vcpu = bad[i];
		rc = vmce_handle_error(vm, &e, &plan, &err);
		if (rc != -EINVAL || !strstr(err.msg, "vcpu"))
			fail_msg("vcpu %d: expected -EINVAL naming the vcpu, got %d '%s'", bad[i],
				 rc, err.msg);
	}
	/* vCPU 2 not started yet (AP bring-up): as a target, a clear refusal with nothing queued
	 * anywhere; as a bystander, skipped (it has no handler to run yet). */
	vmce_vcpu_set_started(vmce_vm_vcpu(vm, 2), false);
	e.cls = VMCE_CLASS_SRAR;
	for (int target = 0; target < 4; target++) {
		memset(&err, 0, sizeof(err));
		e.vcpu = target;
		rc = vmce_handle_error(vm, &e, &plan, &err);
		if (target == 2) {
			if (rc != -ESRCH || !strstr(err.msg, "vcpu 2 is not started"))
				fail_msg("srar to vcpu 2 (not started): got %d '%s'", rc, err.msg);
			for (unsigned c = 0; c < 4; c++)
				assert_false(vmce_vcpu_pending(vmce_vm_vcpu(vm, c)));
			continue;
		}
		if (rc)
			fail_msg("srar to vcpu %d (vcpu 2 not started): %d '%s'", target, rc,
				 err.msg);
		assert_false(vmce_vcpu_pending(vmce_vm_vcpu(vm, 2)));
		for (unsigned c = 0; c < 4; c++) {
			struct vmce_vcpu *vc = vmce_vm_vcpu(vm, c);
			struct vmce_delivery d;

			assert_true(c == 2 || vmce_vcpu_pending(vc));
			while (sim_deliver(vc, true, &d) == 1) {
				assert_int_equal(d.action, VMCE_ACTION_MC);
				vmce_wrmsr(vc, VMCE_MSR_MCi_STATUS(1), 0);
				vmce_wrmsr(vc, VMCE_MSR_MCG_STATUS, 0);
			}
		}
	}
	/* Once started, it takes errors. */
	vmce_vcpu_set_started(vmce_vm_vcpu(vm, 2), true);
	e.vcpu = 2;
	assert_int_equal(vmce_handle_error(vm, &e, &plan, &err), 0);
	for (unsigned c = 0; c < 4; c++)
		assert_true(vmce_vcpu_pending(vmce_vm_vcpu(vm, c)));
	vmce_vm_destroy(vm);
}

/* ---- hardening_isolation ------------------------------------------------------------------- */

static uint64_t random_status(void)
{
	static const uint16_t codes[] = {0x134, 0x150,	0xc0, 0xc3,   0x17a,
					 0x9f,	0x1134, 0x0,  0x10c0, 0xffff};
	uint64_t s = rnd();

	if (below(4)) {
		/* Mostly plausible: VAL, EN, UC/S/AR mixes, ADDRV/MISCV, a known MCACOD. */
		s = (s & ~0xffffull & ~(0x1ffull << 55)) | codes[below(10)];
		s |= VMCE_MCI_STATUS_VAL | VMCE_MCI_STATUS_EN;
		s |= (rnd() & 0xffull) << 55; /* UC, S, AR, PCC, ADDRV, MISCV, OVER... */
		s &= ~(below(3) ? VMCE_MCI_STATUS_PCC : 0);
	}
	return s;
}

static void random_error(const struct iso_map *m, const struct iso_map *other,
			 struct vmce_host_error *e, unsigned nr)
{
	vmce_host_error_init(e);
	e->origin = (enum vmce_origin)below(4);
	e->cls = (enum vmce_class)below(6);
	e->addr_kind = (enum vmce_addr_kind)below(4);
	switch (below(4)) {
	case 0:
		e->addr = rnd();
		break;
	case 1: { /* another VM's memory */
		unsigned i = (unsigned)below(other->n);

		e->addr = other->hva[i] + below(other->size[i]);
		e->addr_kind = VMCE_ADDR_HVA;
		break;
	}
	default: {
		unsigned i = (unsigned)below(m->n);
		uint64_t base = e->addr_kind == VMCE_ADDR_HVA	? m->hva[i]
				: e->addr_kind == VMCE_ADDR_HPA ? m->hpa[i]
								: m->gpa[i];

		e->addr = (base == VMCE_NO_HPA ? rnd() : base) + below(m->size[i] + 4096);
		break;
	}
	}
	e->addr_lsb = below(3) ? 0 : (unsigned)below(64);
	e->vcpu = (int)below(nr + 1) - 1;
	e->local = below(4) == 0;
	e->no_broadcast = below(4) == 0;
	e->status = random_status();
	e->misc = below(2) ? rnd() : ((rnd() & ~0x1c0ull) | (2u << 6));
	e->mcg_status = rnd();
	e->bank = (int)rnd();
	e->rip = rnd();
}

/* The guest's #MC handler: read what it needs, then clear bank and MCG_STATUS. */
static void guest_handler(struct vmce_vcpu *vc, unsigned banks)
{
	for (unsigned i = 0; i < banks; i++)
		vmce_wrmsr(vc, VMCE_MSR_MCi_STATUS(i), 0);
	vmce_wrmsr(vc, VMCE_MSR_MCG_STATUS, 0);
}

static void test_isolation(void **state)
{
	static const char *const profiles[] = {"intel,banks=2,ser,tes,cmci",
					       "intel,banks=4,ser,cmci,lmce,ctl",
					       "intel,banks=1",
					       "amd,banks=2,succor",
					       "amd,banks=6,ctl",
					       "intel,banks=32,compat=32,ser,tes,cmci,lmce"};
	struct vmce_vm *vm = NULL, *other = NULL;
	struct iso_map m = {0}, om = {0};
	unsigned long forwarded = 0, delivered = 0;
	char why[256];

	(void)state;
	for (unsigned long op = 0; op < n_ops; op++) {
		struct vmce_host_error e;
		struct vmce_plan plan;
		struct vmce_err err;
		unsigned nr;
		int rc;

		if (op % 2000 == 0) {
			struct vmce_vm_config cfg;

			vmce_vm_destroy(vm);
			vmce_vm_destroy(other);
			vmce_vm_config_default(&cfg);
			assert_int_equal(vmce_profile_parse(profiles[below(6)], &cfg.profile, NULL),
					 0);
			cfg.nr_vcpus = 1 + (unsigned)below(4);
			cfg.fatal = below(2) ? VMCE_FATAL_SHUTDOWN : VMCE_FATAL_LOG_ONLY;
			assert_int_equal(vmce_vm_create(&cfg, &vm, NULL), 0);
			assert_int_equal(vmce_vm_create(&cfg, &other, NULL), 0);
			assert_int_equal(iso_map_build(&m, vm, ISO_HVA_BASE, rnd_cb, NULL), 0);
			assert_int_equal(iso_map_build(&om, other, ISO_OTHER_HVA, rnd_cb, NULL), 0);
			/* The guest enables CMCI and LMCE when the profile has them. */
			for (unsigned c = 0; c < cfg.nr_vcpus; c++) {
				struct vmce_vcpu *vc = vmce_vm_vcpu(vm, c);

				vmce_wrmsr(vc, VMCE_MSR_MCi_CTL2(cfg.profile.report_bank),
					   VMCE_MCI_CTL2_CMCI_EN | 1);
				vmce_wrmsr(vc, VMCE_MSR_MCG_EXT_CTL, VMCE_MCG_EXT_CTL_LMCE_EN);
			}
		}
		nr = vmce_vm_nr_vcpus(vm);
		random_error(&m, &om, &e, nr);
		memset(&err, 0, sizeof(err));
		rc = vmce_plan_error(vm, &e, &plan, &err);
		if (rc)
			fail_msg("op %lu: plan refused a well-formed error: %s", op, err.msg);
		if (!iso_check_plan(&m, vmce_vm_profile(vm), &e, &plan, why, sizeof(why)))
			fail_msg("op %lu: %s (origin %d class %d kind %d addr %#" PRIx64
				 " status %#" PRIx64 ")",
				 op, why, (int)e.origin, (int)e.cls, (int)e.addr_kind, e.addr,
				 e.status);
		if (plan.verdict != VMCE_VERDICT_FORWARD)
			continue;
		forwarded++;
		rc = vmce_inject(vm, &plan, &err);
		if (rc && rc != -ENOSPC && rc != -EBUSY)
			fail_msg("op %lu: inject: %d %s", op, rc, err.msg);
		for (unsigned c = 0; c < nr; c++) {
			struct vmce_vcpu *vc = vmce_vm_vcpu(vm, c);
			struct vmce_vcpu_state st;
			struct vmce_delivery d;

			while (sim_deliver(vc, true, &d) == 1) {
				delivered++;
				vmce_vcpu_get_state(vc, &st);
				if (!iso_check_state(&m, vmce_vm_profile(vm), &st, why,
						     sizeof(why)))
					fail_msg("op %lu: vcpu %u after delivery: %s", op, c, why);
				if (d.action == VMCE_ACTION_MC)
					guest_handler(vc, vmce_vm_profile(vm)->banks);
			}
		}
	}
	print_message("%lu host errors, %lu forwarded, %lu records applied and checked\n", n_ops,
		      forwarded, delivered);
	assert_true(forwarded > n_ops / 50);
	vmce_vm_destroy(vm);
	vmce_vm_destroy(other);
}

/* ---- hardening_uninit ---------------------------------------------------------------------- */

#define PATTERN 0xa5

/* Leave freed heap blocks of many sizes full of a pattern, so that a VM allocated next sits on
 * memory that is anything but zero (glibc reuses freed chunks of the same size). */
static void dirty_heap(void)
{
	void *blk[64];
	size_t n = 0;

	for (size_t sz = 16; sz <= (256u << 10) && n < 64; sz += sz / 2 + 8) {
		blk[n] = malloc(sz);
		assert_non_null(blk[n]);
		memset(blk[n], PATTERN, sz);
		n++;
	}
	while (n)
		free(blk[--n]);
}

static void uninit_one(const struct vmce_profile *p, void *arg)
{
	struct vmce_vm *vm;
	char name[128];
	uint64_t cap = vmce_profile_mcg_cap(p);

	(*(unsigned *)arg)++;
	dirty_heap();
	vm = cu_vm_profile(p, 3);
	profile_text(p, name, sizeof(name));
	for (unsigned c = 0; c < 3; c++) {
		struct vmce_vcpu *vc = vmce_vm_vcpu(vm, c);

		for (uint32_t idx = 0; idx < 0x500; idx++) {
			uint64_t v = 0x5a5a5a5a5a5a5a5aull, want;
			enum vmce_msr_result r;

			if (!vmce_msr_is_mca(idx))
				continue;
			r = vmce_rdmsr(vc, idx, &v);
			if (r == VMCE_MSR_GP)
				continue;
			assert_int_equal(r, VMCE_MSR_OK);
			if (idx == VMCE_MSR_MCG_CAP)
				want = cap;
			else if (idx == VMCE_MSR_MCG_CTL)
				want = ~0ull;
			else if (idx >= 0x400 && idx < 0x480 && (idx & 3) == 0 &&
				 (idx - 0x400) / 4 < p->banks)
				want = ~0ull; /* MCi_CTL */
			else
				want = 0;
			if (v != want)
				fail_msg("profile %s vcpu %u: fresh MSR %#x reads %#" PRIx64
					 ", reset value %#" PRIx64,
					 name, c, idx, v, want);
		}
		assert_false(vmce_vcpu_pending(vc));
	}
	assert_int_equal(vmce_poison_count(vm), 0);
	assert_int_equal(vmce_events_last_seq(vm), 0);
	vmce_vm_destroy(vm);
}

static void test_uninit(void **state)
{
	unsigned n = 0;

	(void)state;
	if (!getenv("MALLOC_PERTURB_"))
		print_message("note: MALLOC_PERTURB_ is not set; the heap pattern still is\n");
	for_each_profile(uninit_one, &n);
	print_message("fresh VMs on %u profiles read their reset values\n", n);
}

/* ---- hardening_p5 -------------------------------------------------------------------------- */

static void p5_one(const struct vmce_profile *p, void *arg)
{
	struct vmce_vm *vm = cu_vm_profile(p, 1);
	struct vmce_vcpu *vc = vmce_vm_vcpu(vm, 0);
	uint64_t v = 1;

	(void)arg;
	for (uint32_t idx = VMCE_MSR_P5_MC_ADDR; idx <= VMCE_MSR_P5_MC_TYPE; idx++) {
		assert_true(vmce_msr_is_mca(idx));
		assert_int_equal(vmce_rdmsr(vc, idx, &v), VMCE_MSR_OK);
		assert_int_equal(v, 0);
		/* With an error pending and after one, still readable. */
		vmce_host_wrmsr(vc, VMCE_MSR_MCG_STATUS, VMCE_MCG_STATUS_MCIP);
		assert_int_equal(vmce_rdmsr(vc, idx, &v), VMCE_MSR_OK);
		assert_int_equal(vmce_host_rdmsr(vc, idx, &v), VMCE_MSR_OK);
		vmce_host_wrmsr(vc, VMCE_MSR_MCG_STATUS, 0);
	}
	vmce_vm_destroy(vm);
}

static void test_p5(void **state)
{
	(void)state;
	assert_true(for_each_profile(p5_one, NULL) > 400);
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		struct CMUnitTest t;
	} all[] = {
		{"mc_clears", cmocka_unit_test(test_mc_clears)},
		{"migrate_banks", cmocka_unit_test(test_migrate_banks)},
		{"broadcast", cmocka_unit_test(test_broadcast)},
		{"inject_target", cmocka_unit_test(test_inject_target)},
		{"isolation", cmocka_unit_test(test_isolation)},
		{"uninit", cmocka_unit_test(test_uninit)},
		{"p5", cmocka_unit_test(test_p5)},
	};
	struct CMUnitTest run[1];

	for (int i = 2; i + 1 < argc; i++)
		if (!strcmp(argv[i], "--ops"))
			n_ops = strtoul(argv[i + 1], NULL, 0);
	if (argc < 2) {
		fprintf(stderr, "usage: %s NAME [--ops N]\n", argv[0]);
		return 2;
	}
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (strcmp(argv[1], all[i].name))
			continue;
		run[0] = all[i].t;
		return _cmocka_run_group_tests(all[i].name, run, 1, NULL, NULL);
	}
	fprintf(stderr, "%s: unknown test '%s'\n", argv[0], argv[1]);
	return 2;
}
