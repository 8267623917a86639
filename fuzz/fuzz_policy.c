// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the forwarding policy.  The input chooses a profile, a guest memory map
 * (and another VM's), and a sequence of host errors (origin, class, address and its kind,
 * granularity, vCPU, raw STATUS/MISC/MCG_STATUS); every plan is checked against the isolation
 * invariants (tests/hardening/isolation.h), injected and delivered, and every vCPU's state is
 * checked again: no host address, model-specific code, other-information bits or other VM's
 * address may reach a guest register.  A refused plan must name what was wrong.
 */
#include <errno.h>

#include "fuzz_util.h"
#include "hardening/isolation.h"

static const char *const profiles[] = {"intel,banks=2,ser,tes,cmci",
				       "intel,banks=4,ser,cmci,lmce,ctl",
				       "intel,banks=1",
				       "amd,banks=2,succor",
				       "amd,banks=6,ctl",
				       "intel,banks=2,ser",
				       "intel,banks=32,compat=32,ser,tes,cmci,lmce"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	struct vmce_vm_config cfg;
	struct vmce_vm *vm, *other;
	struct iso_map m = {0}, om = {0};
	char why[256];
	uint8_t b = (uint8_t)fz_bytes(&f, 1);

	vmce_vm_config_default(&cfg);
	if (vmce_profile_parse(profiles[b % 7], &cfg.profile, NULL))
		FZ_FAIL("profile refused");
	cfg.nr_vcpus = 1 + (b >> 3) % 4;
	cfg.fatal = (b >> 5) & 1 ? VMCE_FATAL_LOG_ONLY : VMCE_FATAL_SHUTDOWN;
	cfg.max_poisoned_pages = 64;
	if (vmce_vm_create(&cfg, &vm, NULL) || vmce_vm_create(&cfg, &other, NULL))
		FZ_FAIL("VM refused");
	if (iso_map_build(&m, vm, ISO_HVA_BASE, fz_next, &f) ||
	    iso_map_build(&om, other, ISO_OTHER_HVA, fz_next, &f))
		FZ_FAIL("memory map refused");
	/* Held records: a small bound sometimes, so that the input can reach it. */
	if (b >> 7)
		vmce_hold_configure(vm, 1 + (b & 3), 0, NULL);
	if ((b >> 6) & 1)
		for (unsigned c = 0; c < cfg.nr_vcpus; c++) {
			vmce_wrmsr(vmce_vm_vcpu(vm, c), VMCE_MSR_MCi_CTL2(cfg.profile.report_bank),
				   VMCE_MCI_CTL2_CMCI_EN | 1);
			vmce_wrmsr(vmce_vm_vcpu(vm, c), VMCE_MSR_MCG_EXT_CTL, 1);
		}

	while (f.left) {
		struct vmce_host_error e;
		struct vmce_plan plan, lazy;
		struct vmce_err err = {{0}};
		char text[sizeof(plan.reason)];
		uint8_t sel = (uint8_t)fz_bytes(&f, 1);
		uint8_t slow = (uint8_t)fz_bytes(&f, 1); /* vCPUs whose handler has not ended */
		struct vmce_hold_status hs;
		int rc;

		vmce_host_error_init(&e);
		e.origin = (enum vmce_origin)(sel & 7); /* out-of-range values included */
		e.cls = (enum vmce_class)((sel >> 3) & 7);
		e.addr_kind = (enum vmce_addr_kind)fz_bytes(&f, 1) % 5;
		switch (fz_bytes(&f, 1) & 3) {
		case 0:
			e.addr = fz_value(&f);
			break;
		case 1: {
			unsigned i = (unsigned)(fz_bytes(&f, 1) % om.n);

			e.addr = om.hva[i] + fz_bytes(&f, 4) % om.size[i];
			break;
		}
		default: {
			unsigned i = (unsigned)(fz_bytes(&f, 1) % m.n);
			uint64_t base = e.addr_kind == VMCE_ADDR_HVA   ? m.hva[i]
					: e.addr_kind == VMCE_ADDR_HPA ? m.hpa[i]
								       : m.gpa[i];

			e.addr = (base == VMCE_NO_HPA ? 0 : base) +
				 fz_bytes(&f, 4) % (m.size[i] + 8192);
			break;
		}
		}
		e.addr_lsb = (unsigned)fz_bytes(&f, 1) % 70;
		e.vcpu = (int)(int8_t)fz_bytes(&f, 1) % 6;
		e.local = sel & 0x40;
		e.no_broadcast = sel & 0x80;
		e.status = fz_value(&f);
		e.misc = fz_value(&f);
		e.mcg_status = fz_value(&f);
		rc = vmce_plan_error(vm, &e, &plan, &err);
		if (rc) {
			if (rc != -EINVAL || !err.msg[0])
				FZ_FAIL("plan refused with %d and no message", rc);
			continue;
		}
		if (!iso_check_plan(&m, &cfg.profile, &e, &plan, why, sizeof(why)))
			FZ_FAIL("plan: %s", why);
		/* The same plan without its text; the text on demand is the same text. */
		if (vmce_plan_decide(vm, &e, &lazy, &err))
			FZ_FAIL("vmce_plan_decide refused what vmce_plan_error accepted: %s",
				err.msg);
		if (lazy.reason[0] || lazy.verdict != plan.verdict || lazy.target != plan.target ||
		    lazy.gpa != plan.gpa || lazy.broadcast != plan.broadcast ||
		    memcmp(&lazy.record, &plan.record, sizeof(plan.record)))
			FZ_FAIL("vmce_plan_decide made another plan than vmce_plan_error");
		if (vmce_plan_reason(&lazy, text, sizeof(text)) != (int)strlen(plan.reason) ||
		    strcmp(text, plan.reason))
			FZ_FAIL("vmce_plan_reason '%s', vmce_plan_error '%s'", text, plan.reason);
		rc = vmce_inject(vm, e.misc & 1 ? &lazy : &plan, &err);
		if (rc && !err.msg[0])
			FZ_FAIL("inject refused with %d and no message", rc);
		for (unsigned c = 0; c < cfg.nr_vcpus; c++) {
			struct vmce_vcpu *v = vmce_vm_vcpu(vm, c);
			struct vmce_delivery d;
			struct vmce_vcpu_state st;

			while (sim_deliver(v, sel & 0x20, &d) == 1) {
				vmce_vcpu_get_state(v, &st);
				if (!iso_check_state(&m, &cfg.profile, &st, why, sizeof(why)))
					FZ_FAIL("vcpu %u: %s", c, why);
				if (d.action == VMCE_ACTION_MC && (slow >> c) & 1)
					break; /* still in its handler: later records are held */
				if (d.action == VMCE_ACTION_MC) {
					vmce_wrmsr(v, VMCE_MSR_MCi_STATUS(cfg.profile.report_bank),
						   0);
					vmce_wrmsr(v, VMCE_MSR_MCG_STATUS, 0);
				}
			}
		}
		vmce_hold_status(vm, &hs);
		if (hs.count > hs.max_records || hs.released + hs.expired + hs.count > hs.held)
			FZ_FAIL("held queue: %u of %u, %llu held, %llu released, %llu expired",
				hs.count, hs.max_records, (unsigned long long)hs.held,
				(unsigned long long)hs.released, (unsigned long long)hs.expired);
		if (slow & 0x80)
			vmce_hold_poll(vm);
	}
	/* Every handler ends: nothing stays held. */
	for (unsigned round = 0; round < 64; round++)
		for (unsigned c = 0; c < cfg.nr_vcpus; c++) {
			struct vmce_vcpu *v = vmce_vm_vcpu(vm, c);
			struct vmce_delivery d;

			vmce_wrmsr(v, VMCE_MSR_MCG_STATUS, 0);
			while (sim_deliver(v, true, &d) == 1)
				vmce_wrmsr(v, VMCE_MSR_MCG_STATUS, 0);
		}
	{
		struct vmce_hold_status hs;

		vmce_hold_status(vm, &hs);
		if (hs.count)
			FZ_FAIL("%u record(s) still held after every handler ended", hs.count);
	}
	vmce_vm_destroy(vm);
	vmce_vm_destroy(other);
	return 0;
}
