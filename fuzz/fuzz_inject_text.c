// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the mce-inject text parser (vmce_parse_inject_text).  Any input either
 * parses into at most `max` records or is refused with -EINVAL and a message; every record
 * parsed then goes through the policy, which accepts it or refuses it with a message.
 */
#include <errno.h>

#include <vmce/policy.h>

#include "fuzz_util.h"

#define MAX_RECORDS 16

static struct vmce_vm *vm;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmce_host_error rec[MAX_RECORDS + 1];
	struct vmce_err err = {{0}};
	struct vmce_plan plan;
	int n;

	if (!vm) {
		struct vmce_vm_config cfg;

		vmce_vm_config_default(&cfg);
		cfg.nr_vcpus = 4;
		if (vmce_vm_create(&cfg, &vm, NULL) ||
		    vmce_memmap_add(vm, 0, 1ull << 32, 0x7f0000000000ull, VMCE_NO_HPA, NULL))
			FZ_FAIL("VM refused");
	}
	/* A canary record past max: the parser must never write it. */
	memset(&rec[MAX_RECORDS], 0xa5, sizeof(rec[MAX_RECORDS]));
	n = vmce_parse_inject_text((const char *)data, size, VMCE_ADDR_GPA, rec, MAX_RECORDS, &err);
	for (size_t i = 0; i < sizeof(rec[MAX_RECORDS]); i++)
		if (((const uint8_t *)&rec[MAX_RECORDS])[i] != 0xa5)
			FZ_FAIL("the parser wrote past max records");
	if (n < 0) {
		if (n != -EINVAL || !err.msg[0] || !memchr(err.msg, 0, sizeof(err.msg)))
			FZ_FAIL("refused with %d and no message", n);
		return 0;
	}
	if (n > MAX_RECORDS)
		FZ_FAIL("%d records for a maximum of %d", n, MAX_RECORDS);
	for (int i = 0; i < n; i++) {
		int rc = vmce_plan_error(vm, &rec[i], &plan, &err);

		if (rc && (rc != -EINVAL || !err.msg[0]))
			FZ_FAIL("record %d: plan refused with %d and no message", i, rc);
	}
	return 0;
}
