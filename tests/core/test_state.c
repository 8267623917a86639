// SPDX-License-Identifier: MIT
/*
 * Host-side access (save/restore): vmce_host_rdmsr/wrmsr, vmce_vcpu_get_state/set_state, and
 * the consistency of a snapshot taken by another thread while the vCPU thread writes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "core/core_util.h"

#define ONES (~0ull)

static const char *const profiles[] = {
	"intel,banks=1",
	"intel,banks=2,ser,tes,cmci",
	"intel,banks=2,compat=6,ser,tes,cmci,lmce,ctl",
	"intel,banks=32,ser,tes,cmci,lmce,ctl",
	"amd,banks=1,compat=2",
	"amd,banks=2,succor,ctl",
	"amd,banks=32",
};

#define N_PROFILES (sizeof(profiles) / sizeof(profiles[0]))

static bool has(const struct vmce_vm *vm, uint32_t cap)
{
	return (vmce_vm_profile(vm)->caps & cap) != 0;
}

/* ---- Host accessors ------------------------------------------------------------------------ */

static void check_host(const char *text)
{
	struct vmce_vm *vm = cu_vm(text, 1);
	struct vmce_vcpu *v = vmce_vm_vcpu(vm, 0);
	const struct vmce_profile *p = vmce_vm_profile(vm);
	uint64_t cap = vmce_profile_mcg_cap(p), val;
	const uint64_t rec = VMCE_MCI_STATUS_VAL | VMCE_MCI_STATUS_UC | VMCE_MCI_STATUS_EN |
			     VMCE_MCI_STATUS_S | VMCE_MCI_STATUS_AR | 0x134;

	/* MCG_CAP: only its own value. */
	assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCG_CAP, cap), VMCE_MSR_OK);
	assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCG_CAP, cap ^ 1), VMCE_MSR_GP);
	assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCG_CAP, cap | VMCE_MCG_LMCE_P | 0x100),
			 cap & VMCE_MCG_LMCE_P && cap & 0x100 ? VMCE_MSR_OK : VMCE_MSR_GP);
	assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCG_CAP, 0), VMCE_MSR_GP);
	assert_int_equal(vmce_host_rdmsr(v, VMCE_MSR_MCG_CAP, &val), VMCE_MSR_OK);
	assert_int_equal(val, cap);

	/* MCG_STATUS: any value, reserved bits included. */
	assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCG_STATUS, 0xf0), VMCE_MSR_OK);
	assert_int_equal(vmce_host_rdmsr(v, VMCE_MSR_MCG_STATUS, &val), VMCE_MSR_OK);
	assert_int_equal(val, 0xf0);
	assert_int_equal(vmce_rdmsr(v, VMCE_MSR_MCG_STATUS, &val), VMCE_MSR_OK);
	assert_int_equal(val, 0xf0);
	assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCG_STATUS, 5), VMCE_MSR_OK);

	/* MCG_CTL / MCG_EXT_CTL: any value when the profile backs them, else refused. */
	assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCG_CTL, 0x3),
			 has(vm, VMCE_CAP_CTL) ? VMCE_MSR_OK : VMCE_MSR_GP);
	assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCG_CTL, 0),
			 has(vm, VMCE_CAP_CTL) ? VMCE_MSR_OK : VMCE_MSR_GP);
	assert_int_equal(vmce_host_rdmsr(v, VMCE_MSR_MCG_CTL, &val),
			 has(vm, VMCE_CAP_CTL) ? VMCE_MSR_OK : VMCE_MSR_GP);
	assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCG_EXT_CTL, 3),
			 has(vm, VMCE_CAP_LMCE) ? VMCE_MSR_OK : VMCE_MSR_GP);
	assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCG_EXT_CTL, 0),
			 has(vm, VMCE_CAP_LMCE) ? VMCE_MSR_OK : VMCE_MSR_GP);

	/* A present bank: every field, any value, STATUS included (on either flavour). */
	for (unsigned i = 0; i < p->banks; i++) {
		assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCi_STATUS(i), rec), VMCE_MSR_OK);
		assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCi_ADDR(i), 0x123000 + i),
				 VMCE_MSR_OK);
		assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCi_MISC(i), 0x8c), VMCE_MSR_OK);
		assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCi_CTL(i), 0x3ff), VMCE_MSR_OK);
		assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCi_CTL2(i), ONES),
				 has(vm, VMCE_CAP_CMCI) ? VMCE_MSR_OK : VMCE_MSR_GP);
		assert_int_equal(vmce_host_rdmsr(v, VMCE_MSR_MCi_STATUS(i), &val), VMCE_MSR_OK);
		assert_int_equal(val, rec);
		assert_int_equal(vmce_rdmsr(v, VMCE_MSR_MCi_ADDR(i), &val), VMCE_MSR_OK);
		assert_int_equal(val, 0x123000 + i);
		assert_int_equal(vmce_rdmsr(v, VMCE_MSR_MCi_MISC(i), &val), VMCE_MSR_OK);
		assert_int_equal(val, 0x8c);
		assert_int_equal(vmce_rdmsr(v, VMCE_MSR_MCi_CTL(i), &val), VMCE_MSR_OK);
		assert_int_equal(val, 0x3ff);
		if (has(vm, VMCE_CAP_CMCI)) {
			assert_int_equal(vmce_host_rdmsr(v, VMCE_MSR_MCi_CTL2(i), &val),
					 VMCE_MSR_OK);
			assert_int_equal(val, ONES);
		}
	}
	/* The RAZ/WI window: reads 0, accepts 0 only. */
	for (unsigned i = p->banks; i < p->compat_banks; i++) {
		for (unsigned r = 0; r < 4; r++) {
			assert_int_equal(vmce_host_rdmsr(v, VMCE_MSR_MCi_CTL(i) + r, &val),
					 VMCE_MSR_OK);
			assert_int_equal(val, 0);
			assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCi_CTL(i) + r, 0),
					 VMCE_MSR_OK);
			assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCi_CTL(i) + r, 1),
					 VMCE_MSR_GP);
		}
		assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCi_CTL2(i), 0),
				 has(vm, VMCE_CAP_CMCI) ? VMCE_MSR_OK : VMCE_MSR_GP);
		assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCi_CTL2(i), 1), VMCE_MSR_GP);
	}
	/* Absent banks: refused, even 0. */
	for (unsigned i = p->compat_banks; i < VMCE_MAX_BANKS; i++) {
		for (unsigned r = 0; r < 4; r++) {
			assert_int_equal(vmce_host_rdmsr(v, VMCE_MSR_MCi_CTL(i) + r, &val),
					 VMCE_MSR_GP);
			assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCi_CTL(i) + r, 0),
					 VMCE_MSR_GP);
		}
		assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCi_CTL2(i), 0), VMCE_MSR_GP);
	}
	/* P5: read 0, writes ignored. */
	assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_P5_MC_ADDR, 7), VMCE_MSR_OK);
	assert_int_equal(vmce_host_rdmsr(v, VMCE_MSR_P5_MC_ADDR, &val), VMCE_MSR_OK);
	assert_int_equal(val, 0);
	assert_int_equal(vmce_host_rdmsr(v, VMCE_MSR_P5_MC_TYPE, &val), VMCE_MSR_OK);
	assert_int_equal(val, 0);
	/* Not ours. */
	assert_int_equal(vmce_host_wrmsr(v, 0x480, 0), VMCE_MSR_NOT_MCA);
	assert_int_equal(vmce_host_wrmsr(v, 0x2a0, 0), VMCE_MSR_NOT_MCA);
	assert_int_equal(vmce_host_wrmsr(v, 0x17c, 0), VMCE_MSR_NOT_MCA);
	vmce_vm_destroy(vm);
}

static void test_host_access(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_PROFILES; i++)
		check_host(profiles[i]);
}

/* ---- get_state / set_state ----------------------------------------------------------------- */

static uint64_t lcg(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s ^ (*s >> 29);
}

/* A random state the profile can hold. */
static void random_state(const struct vmce_vm *vm, uint64_t *seed, struct vmce_vcpu_state *st)
{
	const struct vmce_profile *p = vmce_vm_profile(vm);

	memset(st, 0, sizeof(*st));
	st->mcg_status = lcg(seed);
	st->mcg_ctl = has(vm, VMCE_CAP_CTL) ? lcg(seed) : 0;
	st->mcg_ext_ctl = has(vm, VMCE_CAP_LMCE) ? lcg(seed) : 0;
	st->amd_mcstatus_wren = p->vendor == VMCE_VENDOR_AMD && (lcg(seed) & 1);
	for (unsigned i = 0; i < p->banks; i++) {
		st->bank[i].ctl = lcg(seed);
		st->bank[i].status = lcg(seed);
		st->bank[i].addr = lcg(seed);
		st->bank[i].misc = lcg(seed);
		st->bank[i].ctl2 = has(vm, VMCE_CAP_CMCI) ? lcg(seed) : 0;
	}
}

static void test_state_round_trip(void **state)
{
	uint64_t seed = 0x5eed;
	char what[128];

	(void)state;
	for (size_t k = 0; k < N_PROFILES; k++) {
		struct vmce_vm *vm = cu_vm(profiles[k], 2);
		struct vmce_vcpu *a = vmce_vm_vcpu(vm, 0), *b = vmce_vm_vcpu(vm, 1);
		const struct vmce_profile *p = vmce_vm_profile(vm);
		struct vmce_vcpu_state st, got, got_b;
		struct vmce_err err;

		for (int round = 0; round < 20; round++) {
			random_state(vm, &seed, &st);
			assert_int_equal(vmce_vcpu_set_state(a, &st, &err), 0);
			vmce_vcpu_get_state(a, &got);
			if (!cu_state_eq(&got, &st, what, sizeof(what)))
				fail_msg("[%s] set/get: %s", profiles[k], what);
			/* The snapshot restores on another vCPU, MSR for MSR. */
			assert_int_equal(vmce_vcpu_set_state(b, &got, &err), 0);
			vmce_vcpu_get_state(b, &got_b);
			assert_true(cu_state_eq(&got_b, &got, what, sizeof(what)));
			for (uint32_t idx = 0x400; idx < 0x400 + 4u * p->banks; idx++) {
				uint64_t va, vb;

				assert_int_equal(vmce_rdmsr(a, idx, &va), VMCE_MSR_OK);
				assert_int_equal(vmce_rdmsr(b, idx, &vb), VMCE_MSR_OK);
				assert_int_equal(va, vb);
			}
		}
		/* The reset state round-trips too. */
		vmce_vcpu_reset(a);
		vmce_vcpu_get_state(a, &got);
		assert_int_equal(vmce_vcpu_set_state(b, &got, &err), 0);
		vmce_vcpu_get_state(b, &got_b);
		assert_true(cu_state_eq(&got_b, &got, what, sizeof(what)));
		vmce_vm_destroy(vm);
	}
}

/* Every rejection names the field, and leaves the state as it was. */
static void expect_reject(struct vmce_vcpu *v, const struct vmce_vcpu_state *st, const char *needle)
{
	struct vmce_vcpu_state before, after;
	struct vmce_err err;
	char what[128];

	memset(&err, 0, sizeof(err));
	vmce_vcpu_get_state(v, &before);
	assert_int_equal(vmce_vcpu_set_state(v, st, &err), -EINVAL);
	if (!strstr(err.msg, needle))
		fail_msg("set_state message '%s' does not name '%s'", err.msg, needle);
	vmce_vcpu_get_state(v, &after);
	if (!cu_state_eq(&before, &after, what, sizeof(what)))
		fail_msg("refused set_state changed %s", what);
	/* A NULL err is allowed. */
	assert_int_equal(vmce_vcpu_set_state(v, st, NULL), -EINVAL);
}

static void test_set_state_rejections(void **state)
{
	struct vmce_vm *vm = cu_vm("intel,banks=2,compat=4,ser", 1);
	struct vmce_vm *full = cu_vm("intel,banks=2,ser,tes,cmci,lmce,ctl", 1);
	struct vmce_vm *amd = cu_vm("amd,banks=1", 1);
	struct vmce_vcpu *v = vmce_vm_vcpu(vm, 0);
	struct vmce_vcpu_state st, base;
	struct vmce_err err;

	(void)state;
	vmce_vcpu_get_state(v, &base);
	/* State in a bank the profile does not have (window banks included), each field. */
	for (unsigned i = 2; i < VMCE_MAX_BANKS; i += 5) {
		char needle[32];

		snprintf(needle, sizeof(needle), "bank %u", i);
		for (unsigned f = 0; f < 5; f++) {
			uint64_t *fld[5];

			st = base;
			fld[0] = &st.bank[i].ctl;
			fld[1] = &st.bank[i].status;
			fld[2] = &st.bank[i].addr;
			fld[3] = &st.bank[i].misc;
			fld[4] = &st.bank[i].ctl2;
			*fld[f] = 1;
			expect_reject(v, &st, needle);
		}
	}
	st = base;
	st.bank[31].misc = ONES;
	expect_reject(v, &st, "bank 31");
	/* Fields of capabilities the profile lacks. */
	st = base;
	st.bank[1].ctl2 = VMCE_MCI_CTL2_CMCI_EN;
	expect_reject(v, &st, "CTL2");
	st = base;
	st.mcg_ext_ctl = 1;
	expect_reject(v, &st, "MCG_EXT_CTL");
	st = base;
	st.mcg_ctl = ONES;
	expect_reject(v, &st, "MCG_CTL");
	st = base;
	st.amd_mcstatus_wren = true;
	expect_reject(v, &st, "amd_mcstatus_wren");

	/* The same fields are fine where the profile backs them. */
	vmce_vcpu_get_state(vmce_vm_vcpu(full, 0), &st);
	st.bank[1].ctl2 = VMCE_MCI_CTL2_CMCI_EN;
	st.mcg_ext_ctl = 1;
	st.mcg_ctl = 0;
	assert_int_equal(vmce_vcpu_set_state(vmce_vm_vcpu(full, 0), &st, &err), 0);
	vmce_vcpu_get_state(vmce_vm_vcpu(amd, 0), &st);
	st.amd_mcstatus_wren = true;
	assert_int_equal(vmce_vcpu_set_state(vmce_vm_vcpu(amd, 0), &st, &err), 0);
	assert_int_equal(vmce_wrmsr(vmce_vm_vcpu(amd, 0), VMCE_MSR_MCi_STATUS(0), 5), VMCE_MSR_OK);
	st.bank[1].status = 5;
	expect_reject(vmce_vm_vcpu(amd, 0), &st, "bank 1");

	vmce_vm_destroy(vm);
	vmce_vm_destroy(full);
	vmce_vm_destroy(amd);
}

/* ---- VM creation limits -------------------------------------------------------------------- */

static void test_vm_create_limits(void **state)
{
	struct vmce_vm_config cfg;
	struct vmce_vm *vm = NULL;
	struct vmce_err err;

	(void)state;
	vmce_vm_config_default(&cfg);
	assert_int_equal(cfg.nr_vcpus, 1);
	cfg.nr_vcpus = 0;
	assert_int_equal(vmce_vm_create(&cfg, &vm, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "nr_vcpus=0"));
	cfg.nr_vcpus = VMCE_MAX_VCPUS + 1;
	assert_int_equal(vmce_vm_create(&cfg, &vm, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "nr_vcpus=1025"));
	cfg.nr_vcpus = 1;
	cfg.profile.banks = 0;
	assert_int_equal(vmce_vm_create(&cfg, &vm, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "banks=0"));
	vmce_vm_config_default(&cfg);
	cfg.profile.report_bank = 2;
	assert_int_equal(vmce_vm_create(&cfg, &vm, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "report=2"));
	vmce_vm_config_default(&cfg);
	cfg.profile.compat_banks = 1;
	assert_int_equal(vmce_vm_create(&cfg, &vm, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "compat=1"));
	vmce_vm_config_default(&cfg);
	cfg.profile.caps |= 0x40;
	assert_int_equal(vmce_vm_create(&cfg, &vm, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "0x40"));
	vmce_vm_config_default(&cfg);
	cfg.profile.vendor = VMCE_VENDOR_AMD;
	assert_int_equal(vmce_vm_create(&cfg, &vm, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "'ser'"));
	vmce_vm_config_default(&cfg);
	cfg.profile.vendor = (enum vmce_vendor)7;
	assert_int_equal(vmce_vm_create(&cfg, &vm, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "vendor 7"));
	assert_int_equal(vmce_vm_create(NULL, &vm, &err), -EINVAL);
	assert_null(vm);

	vmce_vm_config_default(&cfg);
	cfg.nr_vcpus = VMCE_MAX_VCPUS;
	assert_int_equal(vmce_vm_create(&cfg, &vm, &err), 0);
	assert_int_equal(vmce_vm_nr_vcpus(vm), VMCE_MAX_VCPUS);
	assert_non_null(vmce_vm_vcpu(vm, VMCE_MAX_VCPUS - 1));
	assert_null(vmce_vm_vcpu(vm, VMCE_MAX_VCPUS));
	vmce_vm_destroy(vm);
	vmce_vm_destroy(NULL);
}

/* ---- Snapshots from another thread --------------------------------------------------------- */

/*
 * The vCPU thread loads whole states in which every field holds the same counter value (and
 * changes single registers in between); a reader thread's snapshots must never mix two states.
 */
struct race {
	struct vmce_vm *vm;
	_Atomic bool stop;
	_Atomic unsigned long snapshots, torn;
	_Atomic unsigned long writes;
};

static void *race_writer(void *arg)
{
	struct race *r = arg;
	struct vmce_vcpu *v = vmce_vm_vcpu(r->vm, 0);
	struct vmce_vcpu_state st;
	struct timespec t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	memset(&st, 0, sizeof(st));
	for (uint64_t k = 1;; k++) {
		st.mcg_status = st.mcg_ctl = st.mcg_ext_ctl = k;
		for (unsigned i = 0; i < 4; i++)
			st.bank[i].ctl = st.bank[i].status = st.bank[i].addr = st.bank[i].misc =
				st.bank[i].ctl2 = k;
		if (vmce_vcpu_set_state(v, &st, NULL))
			abort();
		atomic_fetch_add(&r->writes, 1);
		if ((k & 255) == 0) {
			clock_gettime(CLOCK_MONOTONIC, &t);
			if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) >
			    300000000L)
				break;
		}
	}
	atomic_store(&r->stop, true);
	return NULL;
}

static void *race_reader(void *arg)
{
	struct race *r = arg;
	struct vmce_vcpu *v = vmce_vm_vcpu(r->vm, 0);
	struct vmce_vcpu_state st;

	while (!atomic_load(&r->stop)) {
		uint64_t k;
		bool torn = false;

		vmce_vcpu_get_state(v, &st);
		k = st.mcg_status;
		torn |= st.mcg_ctl != k || st.mcg_ext_ctl != k;
		for (unsigned i = 0; i < 4; i++)
			torn |= st.bank[i].ctl != k || st.bank[i].status != k ||
				st.bank[i].addr != k || st.bank[i].misc != k ||
				st.bank[i].ctl2 != k;
		if (torn)
			atomic_fetch_add(&r->torn, 1);
		atomic_fetch_add(&r->snapshots, 1);
	}
	return NULL;
}

static void test_snapshot_from_other_thread(void **state)
{
	struct race r = {.vm = cu_vm("intel,banks=4,ser,tes,cmci,lmce,ctl", 1)};
	pthread_t w, rd;

	struct vmce_vcpu_state zero;

	(void)state;
	/* Start from a state the reader accepts (k = 0 everywhere). */
	memset(&zero, 0, sizeof(zero));
	assert_int_equal(vmce_vcpu_set_state(vmce_vm_vcpu(r.vm, 0), &zero, NULL), 0);
	assert_int_equal(pthread_create(&rd, NULL, race_reader, &r), 0);
	assert_int_equal(pthread_create(&w, NULL, race_writer, &r), 0);
	pthread_join(w, NULL);
	pthread_join(rd, NULL);
	print_message("%lu writes, %lu snapshots, %lu torn\n", (unsigned long)r.writes,
		      (unsigned long)r.snapshots, (unsigned long)r.torn);
	assert_int_equal(r.torn, 0);
	assert_true(r.snapshots > 0);
	vmce_vm_destroy(r.vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_host_access),
		cmocka_unit_test(test_state_round_trip),
		cmocka_unit_test(test_set_state_rejections),
		cmocka_unit_test(test_vm_create_limits),
		cmocka_unit_test(test_snapshot_from_other_thread),
	};

	return cmocka_run_group_tests_name("core_state", tests, NULL, NULL);
}
