// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the MSR model.  The input chooses a profile and a sequence of guest and
 * host MSR accesses, HWCR.McStatusWrEn changes and resets on two vCPUs; every result, every
 * value read and, after every access, each vCPU's whole state must equal the reference model
 * of the core tests (tests/core/msr_model.h).
 */
#include <inttypes.h>

#include "core/msr_model.h"
#include "fuzz_util.h"

#define NVCPU 2

static uint32_t pick_index(struct fz *f)
{
	uint32_t x = (uint32_t)fz_bytes(f, 2);

	if (x < 0xf000)
		return x % 0x500; /* every MCA index and its neighbours */
	return (x << 16) | (uint32_t)fz_bytes(f, 2);
}

static void check_state(const struct model_profile *m, const struct model_vcpu *s,
			struct vmce_vcpu *v, unsigned n)
{
	struct vmce_vcpu_state st;

	vmce_vcpu_get_state(v, &st);
	if (st.mcg_status != s->mcg_status || st.mcg_ctl != s->mcg_ctl ||
	    st.mcg_ext_ctl != s->mcg_ext_ctl || st.amd_mcstatus_wren != (m->amd && s->wren))
		FZ_FAIL("vcpu %u: global registers differ from the model", n);
	for (unsigned i = 0; i < 32; i++) {
		const uint64_t got[4] = {st.bank[i].ctl, st.bank[i].status, st.bank[i].addr,
					 st.bank[i].misc};

		for (unsigned r = 0; r < 4; r++)
			if (got[r] != s->bank[i][r])
				FZ_FAIL("vcpu %u: MC%u register %u is %#" PRIx64
					", model %#" PRIx64,
					n, i, r, got[r], s->bank[i][r]);
		if (st.bank[i].ctl2 != s->ctl2[i])
			FZ_FAIL("vcpu %u: MC%u_CTL2 differs from the model", n, i);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz f = {data, size};
	struct vmce_vm_config cfg;
	struct vmce_profile *p = &cfg.profile;
	struct model_profile m;
	struct model_vcpu mv[NVCPU];
	struct vmce_vm *vm;
	uint8_t caps;

	vmce_vm_config_default(&cfg);
	cfg.nr_vcpus = NVCPU;
	memset(&m, 0, sizeof(m));
	m.amd = fz_bytes(&f, 1) & 1;
	caps = (uint8_t)fz_bytes(&f, 1);
	p->vendor = m.amd ? VMCE_VENDOR_AMD : VMCE_VENDOR_INTEL;
	p->caps = m.amd ? caps & (VMCE_CAP_CTL | VMCE_CAP_SUCCOR) : caps & 0x1f;
	p->banks = (uint8_t)(1 + fz_bytes(&f, 1) % 32);
	p->compat_banks = (uint8_t)(p->banks + fz_bytes(&f, 1) % (33u - p->banks));
	p->report_bank = (uint8_t)(fz_bytes(&f, 1) % p->banks);
	if (vmce_profile_validate(p, NULL))
		return 0;
	m.ctl = p->caps & VMCE_CAP_CTL;
	m.cmci = p->caps & VMCE_CAP_CMCI;
	m.tes = p->caps & VMCE_CAP_TES;
	m.ser = p->caps & VMCE_CAP_SER;
	m.lmce = p->caps & VMCE_CAP_LMCE;
	m.banks = p->banks;
	m.compat = p->compat_banks;
	if (vmce_vm_create(&cfg, &vm, NULL))
		FZ_FAIL("a valid profile was refused");
	if (vmce_profile_mcg_cap(p) != model_cap(&m))
		FZ_FAIL("MCG_CAP %#" PRIx64 ", model %#" PRIx64, vmce_profile_mcg_cap(p),
			model_cap(&m));
	for (unsigned n = 0; n < NVCPU; n++)
		model_reset(&m, &mv[n]);

	while (f.left) {
		uint8_t op = (uint8_t)fz_bytes(&f, 1);
		unsigned n = op >> 7;
		struct vmce_vcpu *v = vmce_vm_vcpu(vm, n);
		uint32_t idx;
		uint64_t val, got, want;
		enum vmce_msr_result r, w;

		switch (op & 7) {
		case 0: /* guest read */
		case 1: /* host read */
			idx = pick_index(&f);
			got = 0x5a5a5a5a5a5a5a5aull;
			r = (op & 7) ? vmce_host_rdmsr(v, idx, &got) : vmce_rdmsr(v, idx, &got);
			w = model_read(&m, &mv[n], idx, &want);
			if (r != w || (r == VMCE_MSR_OK && got != want))
				FZ_FAIL("%s RDMSR %#x: %d %#" PRIx64 ", model %d %#" PRIx64,
					(op & 7) ? "host" : "guest", idx, (int)r, got, (int)w,
					want);
			break;
		case 2: /* guest write */
		case 3:
			idx = pick_index(&f);
			val = fz_value(&f);
			r = vmce_wrmsr(v, idx, val);
			w = model_guest_write(&m, &mv[n], idx, val);
			if (r != w)
				FZ_FAIL("guest WRMSR %#x <- %#" PRIx64 ": %d, model %d", idx, val,
					(int)r, (int)w);
			break;
		case 4: /* host write */
		case 5:
			idx = pick_index(&f);
			val = fz_value(&f);
			r = vmce_host_wrmsr(v, idx, val);
			w = model_host_write(&m, &mv[n], idx, val);
			if (r != w)
				FZ_FAIL("host WRMSR %#x <- %#" PRIx64 ": %d, model %d", idx, val,
					(int)r, (int)w);
			break;
		case 6: /* the guest writes HWCR */
			vmce_vcpu_set_amd_mcstatus_wren(v, op & 8);
			mv[n].wren = (op & 8) && m.amd;
			break;
		case 7:
			vmce_vcpu_reset(v);
			model_reset(&m, &mv[n]);
			break;
		}
		check_state(&m, &mv[n], v, n);
	}
	vmce_vm_destroy(vm);
	return 0;
}
