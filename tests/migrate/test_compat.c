// SPDX-License-Identifier: MIT
/*
 * Restore compatibility.  The guest keeps the profile it booted with: after restore the
 * destination presents the source's MCG_CAP.  A destination refuses only what it cannot back
 * (design §6): another vendor, a capability it lacks, fewer real banks than the guest was
 * given, or a narrower RAZ/WI window than the banks the guest saw.  Fewer banks is refused, not
 * papered over with the RAZ/WI window: the guest read MCG_CAP.Count once at boot and polls every
 * bank below it; a destination presenting fewer real banks would have to present an MCG_CAP it
 * does not back.  The RAZ/WI window is for banks the guest saw *beyond* its current profile
 * (compat_banks), and those must stay readable.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <vmce/migrate.h>
#include <vmce/policy.h>

static struct vmce_vm *vm_of(const char *profile, unsigned nr_vcpus, size_t max_poison)
{
	struct vmce_vm_config cfg;
	struct vmce_vm *vm = NULL;
	struct vmce_err err;

	vmce_vm_config_default(&cfg);
	if (vmce_profile_parse(profile, &cfg.profile, &err)) {
		fprintf(stderr, "%s: %s\n", profile, err.msg);
		abort();
	}
	cfg.nr_vcpus = nr_vcpus;
	if (max_poison)
		cfg.max_poisoned_pages = max_poison;
	if (vmce_vm_create(&cfg, &vm, &err)) {
		fprintf(stderr, "%s\n", err.msg);
		abort();
	}
	assert_int_equal(vmce_memmap_add(vm, 0, 64 << 20, 0x7f0000000000ull, VMCE_NO_HPA, &err), 0);
	return vm;
}

static void srao(struct vmce_vm *vm, uint64_t gpa)
{
	struct vmce_host_error e;
	struct vmce_err err;

	vmce_host_error_init(&e);
	e.addr_kind = VMCE_ADDR_GPA;
	e.addr = gpa;
	e.misc = 0x8c;
	e.status = VMCE_MCI_STATUS_VAL | VMCE_MCI_STATUS_UC | VMCE_MCI_STATUS_EN |
		   VMCE_MCI_STATUS_S | VMCE_MCI_STATUS_ADDRV | VMCE_MCI_STATUS_MISCV | 0x17a;
	if (vmce_handle_error(vm, &e, NULL, &err)) {
		fprintf(stderr, "inject: %s\n", err.msg);
		fail();
	}
}

/* Save `src`, then try it on a destination created with `dest_profile`. */
static int migrate_to(struct vmce_vm *src, const char *dest_profile, struct vmce_vm **out,
		      struct vmce_err *err)
{
	struct vmce_profile dp;
	void *s;
	size_t n;
	int rc, rc2;

	assert_int_equal(vmce_save_alloc(src, &s, &n, err), 0);
	assert_int_equal(vmce_profile_parse(dest_profile, &dp, err), 0);
	rc = vmce_restore_check(&dp, s, n, err);
	*out = vm_of(dest_profile, vmce_vm_nr_vcpus(src), 0);
	rc2 = vmce_restore(*out, s, n, err);
	assert_int_equal(rc, rc2);
	free(s);
	return rc;
}

static uint64_t rd(struct vmce_vm *vm, unsigned vcpu, uint32_t msr, enum vmce_msr_result want)
{
	uint64_t v = 0xdead;

	assert_int_equal(vmce_rdmsr(vmce_vm_vcpu(vm, vcpu), msr, &v), want);
	return v;
}

static void test_same_profile(void **state)
{
	struct vmce_vm *src = vm_of("intel,banks=2,ser,tes,cmci", 2, 0), *dst;
	struct vmce_delivery d;
	struct vmce_err err;

	(void)state;
	srao(src, 0x123000);
	assert_int_equal(migrate_to(src, "intel,banks=2,ser,tes,cmci", &dst, &err), 0);
	assert_true(vmce_poison_contains(dst, 0x123000));
	/* The queued SRAO is delivered at the destination: the target gets the record. */
	assert_int_equal(vmce_vcpu_deliver(vmce_vm_vcpu(dst, 0), true, &d), 1);
	assert_int_equal(d.action, VMCE_ACTION_MC);
	assert_int_equal(rd(dst, 0, VMCE_MSR_MCi_ADDR(1), VMCE_MSR_OK), 0x123000);
	vmce_vm_destroy(src);
	vmce_vm_destroy(dst);
}

/* intel -> intel, fewer banks: refused (see the file comment). */
static void test_fewer_banks_refused(void **state)
{
	struct vmce_vm *src = vm_of("intel,banks=4,ser,tes,cmci", 1, 0), *dst;
	struct vmce_err err;

	(void)state;
	assert_int_equal(migrate_to(src, "intel,banks=2,compat=4,ser,tes,cmci", &dst, &err),
			 -ENOTSUP);
	assert_non_null(strstr(err.msg, "profile.banks"));
	/* The destination is untouched: still its own profile. */
	assert_int_equal(vmce_vm_profile(dst)->banks, 2);
	vmce_vm_destroy(dst);
	vmce_vm_destroy(src);
}

/* A destination that backs more than the guest's profile presents the guest's MCG_CAP. */
static void test_more_banks_keeps_mcg_cap(void **state)
{
	struct vmce_vm *src = vm_of("intel,banks=2,ser,tes,cmci", 1, 0), *dst;
	struct vmce_err err;
	uint64_t cap_src = rd(src, 0, VMCE_MSR_MCG_CAP, VMCE_MSR_OK);

	(void)state;
	assert_int_equal(migrate_to(src, "intel,banks=8,ser,tes,cmci,lmce,ctl", &dst, &err), 0);
	assert_int_equal(rd(dst, 0, VMCE_MSR_MCG_CAP, VMCE_MSR_OK), cap_src);
	assert_true(vmce_profile_equal(vmce_vm_profile(dst), vmce_vm_profile(src)));
	/* Bank 2 was never the guest's: still #GP, as before the migration. */
	rd(dst, 0, VMCE_MSR_MCi_STATUS(2), VMCE_MSR_GP);
	rd(dst, 0, VMCE_MSR_MCG_CTL, VMCE_MSR_GP);
	vmce_vm_destroy(src);
	vmce_vm_destroy(dst);
}

/* A guest that once saw 6 banks (compat=6) keeps reading banks 2..5 after migration. */
static void test_compat_window_travels(void **state)
{
	struct vmce_vm *src = vm_of("intel,banks=2,compat=6,ser,tes,cmci", 1, 0), *dst;
	struct vmce_err err;

	(void)state;
	assert_int_equal(rd(src, 0, VMCE_MSR_MCi_STATUS(5), VMCE_MSR_OK), 0);
	assert_int_equal(migrate_to(src, "intel,banks=2,compat=4,ser,tes,cmci", &dst, &err),
			 -ENOTSUP);
	assert_non_null(strstr(err.msg, "profile.compat_banks"));
	vmce_vm_destroy(dst);
	assert_int_equal(migrate_to(src, "intel,banks=4,compat=8,ser,tes,cmci", &dst, &err), 0);
	for (unsigned b = 2; b < 6; b++) {
		assert_int_equal(rd(dst, 0, VMCE_MSR_MCi_STATUS(b), VMCE_MSR_OK), 0);
		assert_int_equal(rd(dst, 0, VMCE_MSR_MCi_CTL2(b), VMCE_MSR_OK), 0);
		assert_int_equal(vmce_wrmsr(vmce_vm_vcpu(dst, 0), VMCE_MSR_MCi_CTL(b), ~0ull),
				 VMCE_MSR_OK);
	}
	rd(dst, 0, VMCE_MSR_MCi_STATUS(6), VMCE_MSR_GP);
	vmce_vm_destroy(src);
	vmce_vm_destroy(dst);
}

static void test_vendor_refused(void **state)
{
	struct vmce_vm *src = vm_of("intel,banks=2,ser,tes,cmci", 1, 0), *dst;
	struct vmce_err err;

	(void)state;
	assert_int_equal(migrate_to(src, "amd,banks=8,succor,ctl", &dst, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "profile.vendor"));
	vmce_vm_destroy(dst);
	vmce_vm_destroy(src);
	src = vm_of("amd,banks=2,succor", 1, 0);
	assert_int_equal(migrate_to(src, "intel,banks=2,ser,tes,cmci,lmce,ctl", &dst, &err),
			 -ENOTSUP);
	assert_non_null(strstr(err.msg, "profile.vendor"));
	vmce_vm_destroy(dst);
	assert_int_equal(migrate_to(src, "amd,banks=2,succor,ctl", &dst, &err), 0);
	vmce_vm_destroy(dst);
	assert_int_equal(migrate_to(src, "amd,banks=2", &dst, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "'succor'"));
	vmce_vm_destroy(dst);
	vmce_vm_destroy(src);
}

/* CMCI -> no CMCI: refused, unless the pool was levelled before boot. */
static void test_cmci(void **state)
{
	/* a backs cmci and lmce with 32 banks, b neither with 8. */
	static const struct vmce_host_desc hosts[] = {
		{.name = "a",
		 .vendor = VMCE_VENDOR_INTEL,
		 .max_banks = 32,
		 .version_minor = 1,
		 .caps = VMCE_CAP_SER | VMCE_CAP_TES | VMCE_CAP_CMCI | VMCE_CAP_LMCE},
		{.name = "b",
		 .vendor = VMCE_VENDOR_INTEL,
		 .max_banks = 8,
		 .version_minor = 1,
		 .caps = VMCE_CAP_SER | VMCE_CAP_TES},
	};
	struct vmce_vm *src = vm_of("intel,banks=2,ser,tes,cmci", 1, 0), *dst;
	struct vmce_level_result lr;
	struct vmce_profile want;
	struct vmce_vm_config cfg;
	struct vmce_err err;
	char text[64];

	(void)state;
	assert_int_equal(
		vmce_wrmsr(vmce_vm_vcpu(src, 0), VMCE_MSR_MCi_CTL2(1), VMCE_MCI_CTL2_CMCI_EN | 1),
		VMCE_MSR_OK);
	assert_int_equal(migrate_to(src, "intel,banks=2,ser,tes", &dst, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "'cmci'"));
	vmce_vm_destroy(dst);
	vmce_vm_destroy(src);

	/* Levelled: the guest boots with the pool's profile and moves freely between a and b. */
	vmce_profile_default(&want);
	assert_int_equal(vmce_level_descs(hosts, 2, &want, &lr, &err), 0);
	vmce_profile_format(&lr.profile, text, sizeof(text));
	assert_string_equal(text, "intel,banks=2,ser,tes");
	vmce_vm_config_default(&cfg);
	cfg.profile = lr.profile;
	assert_int_equal(vmce_vm_create(&cfg, &src, &err), 0);
	assert_int_equal(migrate_to(src, "intel,banks=8,ser,tes", &dst, &err), 0); /* b */
	vmce_vm_destroy(src);
	assert_int_equal(migrate_to(dst, "intel,banks=32,ser,tes,cmci,lmce", &src, &err), 0);
	/* Back on a, the guest still has no CMCI: MCi_CTL2 is #GP as at boot. */
	rd(src, 0, VMCE_MSR_MCi_CTL2(1), VMCE_MSR_GP);
	vmce_vm_destroy(src);
	vmce_vm_destroy(dst);
}

static void test_lmce(void **state)
{
	struct vmce_vm *src = vm_of("intel,banks=2,ser,tes,cmci,lmce", 2, 0), *dst;
	struct vmce_err err;

	(void)state;
	assert_int_equal(
		vmce_wrmsr(vmce_vm_vcpu(src, 1), VMCE_MSR_MCG_EXT_CTL, VMCE_MCG_EXT_CTL_LMCE_EN),
		VMCE_MSR_OK);
	assert_int_equal(migrate_to(src, "intel,banks=2,ser,tes,cmci", &dst, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "'lmce'"));
	vmce_vm_destroy(dst);
	assert_int_equal(migrate_to(src, "intel,banks=2,ser,tes,cmci,lmce", &dst, &err), 0);
	assert_int_equal(rd(dst, 1, VMCE_MSR_MCG_EXT_CTL, VMCE_MSR_OK), VMCE_MCG_EXT_CTL_LMCE_EN);
	assert_int_equal(rd(dst, 0, VMCE_MSR_MCG_EXT_CTL, VMCE_MSR_OK), 0);
	vmce_vm_destroy(dst);
	vmce_vm_destroy(src);
}

static void test_vm_shape(void **state)
{
	struct vmce_vm *src = vm_of("intel,banks=2,ser,tes,cmci", 2, 0), *dst;
	struct vmce_profile guest;
	struct vmce_err err;
	void *s;
	size_t n;

	(void)state;
	for (uint64_t i = 0; i < 10; i++)
		assert_int_equal(vmce_poison_add(src, i << 12, &err), 0);
	assert_int_equal(vmce_save_alloc(src, &s, &n, &err), 0);
	assert_int_equal(vmce_stream_profile(s, n, &guest, &err), 0);
	assert_true(vmce_profile_equal(&guest, vmce_vm_profile(src)));
	dst = vm_of("intel,banks=2,ser,tes,cmci", 3, 0);
	assert_int_equal(vmce_restore(dst, s, n, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "vcpus.nr_vcpus"));
	vmce_vm_destroy(dst);
	dst = vm_of("intel,banks=2,ser,tes,cmci", 2, 5);
	assert_int_equal(vmce_restore(dst, s, n, &err), -ENOSPC);
	assert_non_null(strstr(err.msg, "poison.count"));
	assert_int_equal(vmce_poison_count(dst), 0);
	vmce_vm_destroy(dst);
	free(s);
	vmce_vm_destroy(src);
}

static void test_can_back(void **state)
{
	struct vmce_profile g, d;
	struct vmce_err err;

	(void)state;
	assert_int_equal(vmce_profile_parse("intel,banks=2,ser,tes,cmci", &g, &err), 0);
	assert_int_equal(vmce_profile_parse("intel,banks=2,ser,cmci", &d, &err), 0);
	assert_int_equal(vmce_profile_can_back(&d, &g, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "'tes'"));
	assert_int_equal(vmce_profile_can_back(&g, &g, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_profile),
		cmocka_unit_test(test_fewer_banks_refused),
		cmocka_unit_test(test_more_banks_keeps_mcg_cap),
		cmocka_unit_test(test_compat_window_travels),
		cmocka_unit_test(test_vendor_refused),
		cmocka_unit_test(test_cmci),
		cmocka_unit_test(test_lmce),
		cmocka_unit_test(test_vm_shape),
		cmocka_unit_test(test_can_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
