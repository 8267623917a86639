/* SPDX-License-Identifier: MIT */
/*
 * core_util.h - small helpers shared by the core tests (cmocka must be included first).
 */
#ifndef VMCE_TESTS_CORE_UTIL_H
#define VMCE_TESTS_CORE_UTIL_H

#include <stdio.h>
#include <string.h>

#include <vmce/vmce.h>

/* A VM built from profile text; fails the test when the text or the VM is refused. */
static inline struct vmce_vm *cu_vm(const char *text, unsigned nr_vcpus)
{
	struct vmce_vm_config cfg;
	struct vmce_err err = {{0}};
	struct vmce_vm *vm = NULL;

	vmce_vm_config_default(&cfg);
	if (vmce_profile_parse(text, &cfg.profile, &err))
		fail_msg("profile '%s' refused: %s", text, err.msg);
	cfg.nr_vcpus = nr_vcpus;
	if (vmce_vm_create(&cfg, &vm, &err))
		fail_msg("VM with '%s' refused: %s", text, err.msg);
	return vm;
}

static inline struct vmce_vm *cu_vm_profile(const struct vmce_profile *p, unsigned nr_vcpus)
{
	struct vmce_vm_config cfg;
	struct vmce_err err = {{0}};
	struct vmce_vm *vm = NULL;

	vmce_vm_config_default(&cfg);
	cfg.profile = *p;
	cfg.nr_vcpus = nr_vcpus;
	if (vmce_vm_create(&cfg, &vm, &err))
		fail_msg("VM refused: %s", err.msg);
	return vm;
}

static inline const char *cu_res(enum vmce_msr_result r)
{
	switch (r) {
	case VMCE_MSR_OK:
		return "OK";
	case VMCE_MSR_GP:
		return "GP";
	case VMCE_MSR_NOT_MCA:
		return "NOT_MCA";
	}
	return "?";
}

/* Compare two snapshots field by field; names the first difference in *what. */
static inline bool cu_state_eq(const struct vmce_vcpu_state *a, const struct vmce_vcpu_state *b,
			       char *what, size_t len)
{
	static const char *const f[] = {"ctl", "status", "addr", "misc", "ctl2"};

	if (a->mcg_status != b->mcg_status) {
		snprintf(what, len, "mcg_status %#llx != %#llx", (unsigned long long)a->mcg_status,
			 (unsigned long long)b->mcg_status);
		return false;
	}
	if (a->mcg_ctl != b->mcg_ctl) {
		snprintf(what, len, "mcg_ctl %#llx != %#llx", (unsigned long long)a->mcg_ctl,
			 (unsigned long long)b->mcg_ctl);
		return false;
	}
	if (a->mcg_ext_ctl != b->mcg_ext_ctl) {
		snprintf(what, len, "mcg_ext_ctl %#llx != %#llx",
			 (unsigned long long)a->mcg_ext_ctl, (unsigned long long)b->mcg_ext_ctl);
		return false;
	}
	if (a->amd_mcstatus_wren != b->amd_mcstatus_wren) {
		snprintf(what, len, "amd_mcstatus_wren %d != %d", a->amd_mcstatus_wren,
			 b->amd_mcstatus_wren);
		return false;
	}
	for (unsigned i = 0; i < VMCE_MAX_BANKS; i++) {
		const uint64_t xa[5] = {a->bank[i].ctl, a->bank[i].status, a->bank[i].addr,
					a->bank[i].misc, a->bank[i].ctl2};
		const uint64_t ya[5] = {b->bank[i].ctl, b->bank[i].status, b->bank[i].addr,
					b->bank[i].misc, b->bank[i].ctl2};

		for (unsigned j = 0; j < 5; j++)
			if (xa[j] != ya[j]) {
				snprintf(what, len, "bank %u %s %#llx != %#llx", i, f[j],
					 (unsigned long long)xa[j], (unsigned long long)ya[j]);
				return false;
			}
	}
	return true;
}

#include "sim_deliver.h"

#endif /* VMCE_TESTS_CORE_UTIL_H */
