/* SPDX-License-Identifier: MIT */
/* Shared helpers of the policy tests. */
#ifndef VMCE_TESTS_POLICY_PTEST_H
#define VMCE_TESTS_POLICY_PTEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <vmce/policy.h>

#define ST_VAL	  VMCE_MCI_STATUS_VAL
#define ST_OVER	  VMCE_MCI_STATUS_OVER
#define ST_UC	  VMCE_MCI_STATUS_UC
#define ST_EN	  VMCE_MCI_STATUS_EN
#define ST_MISCV  VMCE_MCI_STATUS_MISCV
#define ST_ADDRV  VMCE_MCI_STATUS_ADDRV
#define ST_PCC	  VMCE_MCI_STATUS_PCC
#define ST_S	  VMCE_MCI_STATUS_S
#define ST_AR	  VMCE_MCI_STATUS_AR
#define MCG_RIPV  VMCE_MCG_STATUS_RIPV
#define MCG_EIPV  VMCE_MCG_STATUS_EIPV
#define MCG_MCIP  VMCE_MCG_STATUS_MCIP
#define MCG_LMCES VMCE_MCG_STATUS_LMCES

/* The guest memory map the tests register:
 *   A: gpa 0 .. 2 GiB          <- hva 0x7f0000000000, hpa 0x100000000
 *   B: gpa 4 GiB .. 5 GiB      <- hva 0x7f8000000000, no hpa
 */
#define MAP_A_GPA  0x0ull
#define MAP_A_SIZE 0x80000000ull
#define MAP_A_HVA  0x7f0000000000ull
#define MAP_A_HPA  0x100000000ull
#define MAP_B_GPA  0x100000000ull
#define MAP_B_SIZE 0x40000000ull
#define MAP_B_HVA  0x7f8000000000ull

static inline struct vmce_vm *ptest_vm(const char *profile, unsigned nr, size_t max_poison,
				       enum vmce_fatal_policy fatal)
{
	struct vmce_vm_config cfg;
	struct vmce_vm *vm = NULL;
	struct vmce_err err = {{0}};
	int rc;

	vmce_vm_config_default(&cfg);
	if (profile) {
		rc = vmce_profile_parse(profile, &cfg.profile, &err);
		if (rc)
			fail_msg("profile '%s': %s", profile, err.msg);
	}
	cfg.nr_vcpus = nr;
	if (max_poison)
		cfg.max_poisoned_pages = max_poison;
	cfg.fatal = fatal;
	rc = vmce_vm_create(&cfg, &vm, &err);
	if (rc)
		fail_msg("vmce_vm_create: %s", err.msg);
	rc = vmce_memmap_add(vm, MAP_A_GPA, MAP_A_SIZE, MAP_A_HVA, MAP_A_HPA, &err);
	if (rc)
		fail_msg("memmap A: %s", err.msg);
	rc = vmce_memmap_add(vm, MAP_B_GPA, MAP_B_SIZE, MAP_B_HVA, VMCE_NO_HPA, &err);
	if (rc)
		fail_msg("memmap B: %s", err.msg);
	return vm;
}

#include "sim_deliver.h"

#endif
