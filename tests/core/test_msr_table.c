// SPDX-License-Identifier: MIT
/*
 * The MSR contract (design §3), row by row, for the Intel and AMD flavours and 1, 2 and 32
 * banks, with and without every optional capability and with and without a RAZ/WI window.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/core_util.h"

#define ONES (~0ull)

/* The profiles every row is checked against. */
static const char *const profiles[] = {
	"intel,banks=1",
	"intel,banks=1,ser,tes,cmci,lmce,ctl",
	"intel,banks=1,compat=4,cmci",
	"intel,banks=2",
	"intel,banks=2,ser,tes,cmci",
	"intel,banks=2,ser,tes,cmci,lmce,ctl",
	"intel,banks=2,compat=5,ser,tes,cmci",
	"intel,banks=2,compat=32,ctl",
	"intel,banks=32",
	"intel,banks=32,ser,tes,cmci,lmce,ctl",
	"intel,banks=32,report=31,cmci",
	"amd,banks=1",
	"amd,banks=1,compat=3,succor,ctl",
	"amd,banks=2",
	"amd,banks=2,succor",
	"amd,banks=2,compat=6,ctl",
	"amd,banks=32",
	"amd,banks=32,succor,ctl",
};

struct ctx {
	const char *text;
	struct vmce_profile p;
	struct vmce_vm *vm;
	struct vmce_vcpu *v;
};

static void ctx_open(struct ctx *c, const char *text)
{
	struct vmce_err err;

	c->text = text;
	assert_int_equal(vmce_profile_parse(text, &c->p, &err), 0);
	c->vm = cu_vm(text, 2);
	c->v = vmce_vm_vcpu(c->vm, 0);
	assert_non_null(c->v);
}

static void ctx_close(struct ctx *c)
{
	vmce_vm_destroy(c->vm);
}

static bool has(const struct ctx *c, uint32_t cap)
{
	return (c->p.caps & cap) != 0;
}

/* Guest read: result and (for OK) value. */
static void rd(struct ctx *c, uint32_t idx, enum vmce_msr_result want, uint64_t want_val)
{
	uint64_t val = 0xdeadbeefdeadbeefull;
	enum vmce_msr_result r = vmce_rdmsr(c->v, idx, &val);

	if (r != want)
		fail_msg("[%s] rdmsr %#x: %s, expected %s", c->text, idx, cu_res(r), cu_res(want));
	if (r == VMCE_MSR_OK && val != want_val)
		fail_msg("[%s] rdmsr %#x = %#llx, expected %#llx", c->text, idx,
			 (unsigned long long)val, (unsigned long long)want_val);
}

/* Guest write: result, and that a refused or ignored write changes no state at all. */
static void wr(struct ctx *c, uint32_t idx, uint64_t val, enum vmce_msr_result want)
{
	struct vmce_vcpu_state before, after;
	enum vmce_msr_result r;
	char what[128];

	vmce_vcpu_get_state(c->v, &before);
	r = vmce_wrmsr(c->v, idx, val);
	if (r != want)
		fail_msg("[%s] wrmsr %#x <- %#llx: %s, expected %s", c->text, idx,
			 (unsigned long long)val, cu_res(r), cu_res(want));
	if (r != VMCE_MSR_OK) {
		vmce_vcpu_get_state(c->v, &after);
		if (!cu_state_eq(&before, &after, what, sizeof(what)))
			fail_msg("[%s] refused wrmsr %#x changed state: %s", c->text, idx, what);
	}
}

/* A guest write that is accepted and ignored: nothing changes. */
static void wr_ignored(struct ctx *c, uint32_t idx, uint64_t val)
{
	struct vmce_vcpu_state before, after;
	char what[128];

	vmce_vcpu_get_state(c->v, &before);
	wr(c, idx, val, VMCE_MSR_OK);
	vmce_vcpu_get_state(c->v, &after);
	if (!cu_state_eq(&before, &after, what, sizeof(what)))
		fail_msg("[%s] ignored wrmsr %#x <- %#llx changed state: %s", c->text, idx,
			 (unsigned long long)val, what);
}

/* The snapshot field an MSR of a real bank or an MCG register lives in. */
static uint64_t *field_of(struct vmce_vcpu_state *st, uint32_t idx)
{
	if (idx >= 0x400 && idx < 0x480) {
		struct vmce_bank_state *b = &st->bank[(idx - 0x400) / 4];
		uint64_t *f[4] = {&b->ctl, &b->status, &b->addr, &b->misc};

		return f[(idx - 0x400) % 4];
	}
	if (idx >= 0x280 && idx < 0x2a0)
		return &st->bank[idx - 0x280].ctl2;
	switch (idx) {
	case VMCE_MSR_MCG_STATUS:
		return &st->mcg_status;
	case VMCE_MSR_MCG_CTL:
		return &st->mcg_ctl;
	case VMCE_MSR_MCG_EXT_CTL:
		return &st->mcg_ext_ctl;
	}
	fail_msg("index %#x holds no state", idx);
	return NULL;
}

/* A guest write that is stored: it reads back and changes only its own register. */
static void wr_stored(struct ctx *c, uint32_t idx, uint64_t val)
{
	struct vmce_vcpu_state before, after;
	char what[128];

	vmce_vcpu_get_state(c->v, &before);
	wr(c, idx, val, VMCE_MSR_OK);
	rd(c, idx, VMCE_MSR_OK, val);
	vmce_vcpu_get_state(c->v, &after);
	*field_of(&before, idx) = val;
	if (!cu_state_eq(&after, &before, what, sizeof(what)))
		fail_msg("[%s] wrmsr %#x <- %#llx: state differs from the expected: %s", c->text,
			 idx, (unsigned long long)val, what);
}

typedef void (*row_fn)(struct ctx *c);

static void for_each_profile(row_fn fn)
{
	for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++) {
		struct ctx c;

		ctx_open(&c, profiles[i]);
		fn(&c);
		ctx_close(&c);
	}
}

/* ---- MCG_CAP ------------------------------------------------------------------------------- */

static void test_mcg_cap_values(void **state)
{
	static const struct {
		const char *text;
		uint64_t cap;
	} t[] = {
		{"intel,banks=2,ser,tes,cmci", 0x1000c02},
		{"intel", 0x2},
		{"intel,banks=1", 0x1},
		{"intel,banks=1,ser", 0x1000001},
		{"intel,banks=2,tes", 0x802},
		{"intel,banks=2,cmci", 0x402},
		{"intel,banks=2,ctl", 0x102},
		{"intel,banks=4,lmce", 0x8000004},
		{"intel,banks=2,compat=8,ser", 0x1000002},
		{"intel,banks=32,ser,tes,cmci,lmce,ctl", 0x9000d20},
		{"intel,banks=32,report=0,ctl,cmci", 0x520},
		{"amd,banks=2", 0x2},
		{"amd,banks=6,succor,ctl", 0x106},
		{"amd,banks=32,succor", 0x20},
		{"amd,banks=1,ctl", 0x101},
	};
	struct vmce_profile p;
	struct vmce_err err;
	uint64_t v;

	(void)state;
	vmce_profile_default(&p);
	assert_int_equal(vmce_profile_mcg_cap(&p), 0x1000c02);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct vmce_vm *vm = cu_vm(t[i].text, 1);

		assert_int_equal(vmce_profile_parse(t[i].text, &p, &err), 0);
		if (vmce_profile_mcg_cap(&p) != t[i].cap)
			fail_msg("[%s] MCG_CAP %#llx, expected %#llx", t[i].text,
				 (unsigned long long)vmce_profile_mcg_cap(&p),
				 (unsigned long long)t[i].cap);
		assert_int_equal(vmce_rdmsr(vmce_vm_vcpu(vm, 0), VMCE_MSR_MCG_CAP, &v),
				 VMCE_MSR_OK);
		assert_int_equal(v, t[i].cap);
		vmce_vm_destroy(vm);
	}
}

static void row_mcg_cap(struct ctx *c)
{
	uint64_t cap = vmce_profile_mcg_cap(&c->p);

	rd(c, VMCE_MSR_MCG_CAP, VMCE_MSR_OK, cap);
	assert_int_equal(cap & VMCE_MCG_CAP_COUNT_MASK, c->p.banks);
	/* Read-only for the guest, even when writing its own value. */
	wr(c, VMCE_MSR_MCG_CAP, cap, VMCE_MSR_GP);
	wr(c, VMCE_MSR_MCG_CAP, 0, VMCE_MSR_GP);
	wr(c, VMCE_MSR_MCG_CAP, ONES, VMCE_MSR_GP);
	rd(c, VMCE_MSR_MCG_CAP, VMCE_MSR_OK, cap);
}

static void test_mcg_cap(void **state)
{
	(void)state;
	for_each_profile(row_mcg_cap);
}

/* ---- MCG_STATUS ---------------------------------------------------------------------------- */

static void row_mcg_status(struct ctx *c)
{
	rd(c, VMCE_MSR_MCG_STATUS, VMCE_MSR_OK, 0);
	for (uint64_t v = 0; v < 16; v++)
		wr_stored(c, VMCE_MSR_MCG_STATUS, v);
	wr_stored(c, VMCE_MSR_MCG_STATUS, 0x5);
	/* Every reserved bit, alone and with valid bits: #GP, value kept. */
	for (unsigned b = 4; b < 64; b++) {
		wr(c, VMCE_MSR_MCG_STATUS, 1ull << b, VMCE_MSR_GP);
		wr(c, VMCE_MSR_MCG_STATUS, (1ull << b) | 0x7, VMCE_MSR_GP);
	}
	wr(c, VMCE_MSR_MCG_STATUS, ONES, VMCE_MSR_GP);
	rd(c, VMCE_MSR_MCG_STATUS, VMCE_MSR_OK, 0x5);
	/* Writing 0 always succeeds (guests clear it in their #MC handler). */
	wr_stored(c, VMCE_MSR_MCG_STATUS, 0);
}

static void test_mcg_status(void **state)
{
	(void)state;
	for_each_profile(row_mcg_status);
}

/* ---- MCG_CTL ------------------------------------------------------------------------------- */

static void row_mcg_ctl(struct ctx *c)
{
	if (!has(c, VMCE_CAP_CTL)) {
		rd(c, VMCE_MSR_MCG_CTL, VMCE_MSR_GP, 0);
		wr(c, VMCE_MSR_MCG_CTL, 0, VMCE_MSR_GP);
		wr(c, VMCE_MSR_MCG_CTL, ONES, VMCE_MSR_GP);
		wr(c, VMCE_MSR_MCG_CTL, 1, VMCE_MSR_GP);
		return;
	}
	rd(c, VMCE_MSR_MCG_CTL, VMCE_MSR_OK, ONES);
	wr_stored(c, VMCE_MSR_MCG_CTL, 0);
	wr(c, VMCE_MSR_MCG_CTL, 1, VMCE_MSR_GP);
	wr(c, VMCE_MSR_MCG_CTL, 0xffffffffull, VMCE_MSR_GP);
	wr(c, VMCE_MSR_MCG_CTL, ONES - 1, VMCE_MSR_GP);
	wr(c, VMCE_MSR_MCG_CTL, 1ull << 63, VMCE_MSR_GP);
	rd(c, VMCE_MSR_MCG_CTL, VMCE_MSR_OK, 0);
	wr_stored(c, VMCE_MSR_MCG_CTL, ONES);
}

static void test_mcg_ctl(void **state)
{
	(void)state;
	for_each_profile(row_mcg_ctl);
}

/* ---- MCG_EXT_CTL --------------------------------------------------------------------------- */

static void row_mcg_ext_ctl(struct ctx *c)
{
	if (!has(c, VMCE_CAP_LMCE)) {
		rd(c, VMCE_MSR_MCG_EXT_CTL, VMCE_MSR_GP, 0);
		wr(c, VMCE_MSR_MCG_EXT_CTL, 0, VMCE_MSR_GP);
		wr(c, VMCE_MSR_MCG_EXT_CTL, 1, VMCE_MSR_GP);
		return;
	}
	rd(c, VMCE_MSR_MCG_EXT_CTL, VMCE_MSR_OK, 0);
	wr_stored(c, VMCE_MSR_MCG_EXT_CTL, VMCE_MCG_EXT_CTL_LMCE_EN);
	for (unsigned b = 1; b < 64; b++) {
		wr(c, VMCE_MSR_MCG_EXT_CTL, 1ull << b, VMCE_MSR_GP);
		wr(c, VMCE_MSR_MCG_EXT_CTL, (1ull << b) | 1, VMCE_MSR_GP);
	}
	rd(c, VMCE_MSR_MCG_EXT_CTL, VMCE_MSR_OK, 1);
	wr_stored(c, VMCE_MSR_MCG_EXT_CTL, 0);
}

static void test_mcg_ext_ctl(void **state)
{
	(void)state;
	for_each_profile(row_mcg_ext_ctl);
}

/* ---- MCi_CTL / ADDR / MISC ----------------------------------------------------------------- */

static void row_bank_ctl_addr_misc(struct ctx *c)
{
	static const uint64_t vals[] = {
		0, 1, ONES, ONES & ~(1ull << 10), 0x8c, 0x123456789abcdef0ull};

	for (unsigned i = 0; i < c->p.banks; i++) {
		rd(c, VMCE_MSR_MCi_CTL(i), VMCE_MSR_OK, ONES);
		rd(c, VMCE_MSR_MCi_ADDR(i), VMCE_MSR_OK, 0);
		rd(c, VMCE_MSR_MCi_MISC(i), VMCE_MSR_OK, 0);
		for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++) {
			wr_stored(c, VMCE_MSR_MCi_CTL(i), vals[k]);
			wr_stored(c, VMCE_MSR_MCi_ADDR(i), vals[k] ^ i);
			wr_stored(c, VMCE_MSR_MCi_MISC(i), vals[k] + i);
		}
	}
	/* Each bank kept its own last values. */
	for (unsigned i = 0; i < c->p.banks; i++) {
		rd(c, VMCE_MSR_MCi_CTL(i), VMCE_MSR_OK, 0x123456789abcdef0ull);
		rd(c, VMCE_MSR_MCi_ADDR(i), VMCE_MSR_OK, 0x123456789abcdef0ull ^ i);
		rd(c, VMCE_MSR_MCi_MISC(i), VMCE_MSR_OK, 0x123456789abcdef0ull + i);
	}
}

static void test_bank_ctl_addr_misc(void **state)
{
	(void)state;
	for_each_profile(row_bank_ctl_addr_misc);
}

/* ---- MCi_STATUS ---------------------------------------------------------------------------- */

static void row_bank_status(struct ctx *c)
{
	const uint64_t rec = VMCE_MCI_STATUS_VAL | VMCE_MCI_STATUS_UC | VMCE_MCI_STATUS_EN | 0x134;
	bool amd = c->p.vendor == VMCE_VENDOR_AMD;

	for (unsigned i = 0; i < c->p.banks; i++) {
		uint32_t idx = VMCE_MSR_MCi_STATUS(i);

		rd(c, idx, VMCE_MSR_OK, 0);
		wr_stored(c, idx, 0);
		wr(c, idx, rec, VMCE_MSR_GP);
		wr(c, idx, 1, VMCE_MSR_GP);
		wr(c, idx, ONES, VMCE_MSR_GP);
		/* A record the host put there: the guest clears it with 0. */
		assert_int_equal(vmce_host_wrmsr(c->v, idx, rec | i), VMCE_MSR_OK);
		rd(c, idx, VMCE_MSR_OK, rec | i);
		wr(c, idx, rec, VMCE_MSR_GP);
		rd(c, idx, VMCE_MSR_OK, rec | i);
		wr_stored(c, idx, 0);

		/* HWCR.McStatusWrEn: AMD only. */
		vmce_vcpu_set_amd_mcstatus_wren(c->v, true);
		if (amd) {
			wr_stored(c, idx, rec);
			wr_stored(c, idx, ONES);
			wr_stored(c, idx, 0);
		} else {
			wr(c, idx, rec, VMCE_MSR_GP);
			wr_stored(c, idx, 0);
		}
		vmce_vcpu_set_amd_mcstatus_wren(c->v, false);
		wr(c, idx, rec, VMCE_MSR_GP);
		rd(c, idx, VMCE_MSR_OK, 0);
	}
}

static void test_bank_status(void **state)
{
	(void)state;
	for_each_profile(row_bank_status);
}

static void test_amd_wren_state(void **state)
{
	struct vmce_vm *vm = cu_vm("amd,banks=2", 1);
	struct vmce_vm *vi = cu_vm("intel,banks=2", 1);
	struct vmce_vcpu_state st;
	struct vmce_err err;

	(void)state;
	vmce_vcpu_set_amd_mcstatus_wren(vmce_vm_vcpu(vm, 0), true);
	vmce_vcpu_get_state(vmce_vm_vcpu(vm, 0), &st);
	assert_true(st.amd_mcstatus_wren);
	/* Reset clears HWCR's flag. */
	vmce_vcpu_reset(vmce_vm_vcpu(vm, 0));
	vmce_vcpu_get_state(vmce_vm_vcpu(vm, 0), &st);
	assert_false(st.amd_mcstatus_wren);
	assert_int_equal(vmce_wrmsr(vmce_vm_vcpu(vm, 0), VMCE_MSR_MCi_STATUS(0), 1), VMCE_MSR_GP);

	/* On Intel the flag stays clear, so a snapshot restores. */
	vmce_vcpu_set_amd_mcstatus_wren(vmce_vm_vcpu(vi, 0), true);
	vmce_vcpu_get_state(vmce_vm_vcpu(vi, 0), &st);
	assert_false(st.amd_mcstatus_wren);
	assert_int_equal(vmce_vcpu_set_state(vmce_vm_vcpu(vi, 0), &st, &err), 0);
	vmce_vm_destroy(vm);
	vmce_vm_destroy(vi);
}

/* ---- MCi_CTL2 ------------------------------------------------------------------------------ */

static void row_ctl2(struct ctx *c)
{
	for (unsigned i = 0; i < VMCE_MAX_BANKS; i++) {
		uint32_t idx = VMCE_MSR_MCi_CTL2(i);

		if (!has(c, VMCE_CAP_CMCI)) {
			/* No CMCI_P: every CTL2 is absent, window or not. */
			rd(c, idx, VMCE_MSR_GP, 0);
			wr(c, idx, 0, VMCE_MSR_GP);
			wr(c, idx, VMCE_MCI_CTL2_CMCI_EN, VMCE_MSR_GP);
			continue;
		}
		if (i >= c->p.compat_banks) {
			rd(c, idx, VMCE_MSR_GP, 0);
			wr(c, idx, 0, VMCE_MSR_GP);
			wr(c, idx, VMCE_MCI_CTL2_CMCI_EN, VMCE_MSR_GP);
			continue;
		}
		if (i >= c->p.banks) {
			rd(c, idx, VMCE_MSR_OK, 0);
			wr_ignored(c, idx, VMCE_MCI_CTL2_CMCI_EN | 1);
			wr_ignored(c, idx, ONES);
			rd(c, idx, VMCE_MSR_OK, 0);
			continue;
		}
		rd(c, idx, VMCE_MSR_OK, 0);
		wr_stored(c, idx, VMCE_MCI_CTL2_CMCI_EN);
		wr_stored(c, idx, VMCE_MCI_CTL2_CMCI_EN | 0x7fff);
		wr_stored(c, idx, 0x1);
		wr_stored(c, idx, 0x7fff);
		for (unsigned b = 0; b < 64; b++) {
			if (b == 30 || b < 15)
				continue;
			wr(c, idx, 1ull << b, VMCE_MSR_GP);
			wr(c, idx, (1ull << b) | VMCE_MCI_CTL2_CMCI_EN, VMCE_MSR_GP);
		}
		wr(c, idx, ONES, VMCE_MSR_GP);
		rd(c, idx, VMCE_MSR_OK, 0x7fff);
		wr_stored(c, idx, 0);
	}
}

static void test_ctl2(void **state)
{
	(void)state;
	for_each_profile(row_ctl2);
}

/* ---- RAZ/WI window and absent banks -------------------------------------------------------- */

static void row_window_and_absent(struct ctx *c)
{
	static const uint64_t vals[] = {0, 1, ONES, VMCE_MCI_STATUS_VAL | VMCE_MCI_STATUS_UC};

	for (unsigned i = c->p.banks; i < VMCE_MAX_BANKS; i++) {
		for (unsigned r = 0; r < 4; r++) {
			uint32_t idx = VMCE_MSR_MCi_CTL(i) + r;

			if (i < c->p.compat_banks) {
				rd(c, idx, VMCE_MSR_OK, 0);
				for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++)
					wr_ignored(c, idx, vals[k]);
				rd(c, idx, VMCE_MSR_OK, 0);
			} else {
				rd(c, idx, VMCE_MSR_GP, 0);
				for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++)
					wr(c, idx, vals[k], VMCE_MSR_GP);
			}
		}
	}
	/* The last MCA bank index: 0x47F is bank 31's MISC. */
	if (c->p.banks == 32)
		wr_stored(c, 0x47f, 0x8c);
	else if (c->p.compat_banks == 32)
		rd(c, 0x47f, VMCE_MSR_OK, 0);
	else
		rd(c, 0x47f, VMCE_MSR_GP, 0);
}

static void test_window_and_absent(void **state)
{
	(void)state;
	for_each_profile(row_window_and_absent);
}

/* A guest that booted with 4 banks and now runs a 2-bank profile with compat=4. */
static void test_window_after_migration(void **state)
{
	struct ctx c;

	(void)state;
	ctx_open(&c, "intel,banks=2,compat=4,ser,tes,cmci");
	/* The guest's poller walks banks 0..3 and clears each STATUS: all succeed. */
	for (unsigned i = 0; i < 4; i++) {
		rd(&c, VMCE_MSR_MCi_STATUS(i), VMCE_MSR_OK, 0);
		wr(&c, VMCE_MSR_MCi_STATUS(i), 0, VMCE_MSR_OK);
		wr(&c, VMCE_MSR_MCi_CTL(i), ONES, VMCE_MSR_OK);
		wr(&c, VMCE_MSR_MCi_CTL2(i), VMCE_MCI_CTL2_CMCI_EN | 1, VMCE_MSR_OK);
	}
	rd(&c, VMCE_MSR_MCi_CTL2(1), VMCE_MSR_OK, VMCE_MCI_CTL2_CMCI_EN | 1);
	rd(&c, VMCE_MSR_MCi_CTL2(3), VMCE_MSR_OK, 0);
	rd(&c, VMCE_MSR_MCi_CTL(3), VMCE_MSR_OK, 0);
	rd(&c, VMCE_MSR_MCi_STATUS(4), VMCE_MSR_GP, 0);
	rd(&c, VMCE_MSR_MCi_CTL2(4), VMCE_MSR_GP, 0);
	rd(&c, VMCE_MSR_MCG_CAP, VMCE_MSR_OK, 0x1000c02);
	ctx_close(&c);
}

/* ---- P5_MC_ADDR / P5_MC_TYPE --------------------------------------------------------------- */

static void row_p5(struct ctx *c)
{
	for (uint32_t idx = VMCE_MSR_P5_MC_ADDR; idx <= VMCE_MSR_P5_MC_TYPE; idx++) {
		rd(c, idx, VMCE_MSR_OK, 0);
		wr_ignored(c, idx, 0);
		wr_ignored(c, idx, 0x1234);
		wr_ignored(c, idx, ONES);
		rd(c, idx, VMCE_MSR_OK, 0);
	}
}

static void test_p5(void **state)
{
	(void)state;
	for_each_profile(row_p5);
}

/* ---- Indices vmce does not claim ----------------------------------------------------------- */

static const uint32_t not_mca[] = {
	0x2,	    0x3,	0x10,	    0x178,	     0x17c,	 0x17d,	     0x1a0,
	0x27f,	    0x2a0,	0x2a1,	    0x2ff,	     0x3ff,	 0x480,	     0x481,
	0x483,	    0x484,	0x4c0,	    0x4cf,	     0x4d1,	 0x4d2,	     0x500,
	0x6e0,	    0x800,	0xc0000080, 0xc0000400,	     0xc0002000, 0xc0010015, 0xffffffff,
	0x80000000, 0x40000000, 0x1000,	    0x17a + 0x10000,
};

static void row_not_mca(struct ctx *c)
{
	uint64_t v;

	for (size_t k = 0; k < sizeof(not_mca) / sizeof(not_mca[0]); k++) {
		uint32_t idx = not_mca[k];

		rd(c, idx, VMCE_MSR_NOT_MCA, 0);
		wr(c, idx, 0, VMCE_MSR_NOT_MCA);
		wr(c, idx, ONES, VMCE_MSR_NOT_MCA);
		assert_int_equal(vmce_host_rdmsr(c->v, idx, &v), VMCE_MSR_NOT_MCA);
		assert_int_equal(vmce_host_wrmsr(c->v, idx, 0), VMCE_MSR_NOT_MCA);
		assert_false(vmce_msr_is_mca(idx));
	}
}

static void test_not_mca(void **state)
{
	(void)state;
	for_each_profile(row_not_mca);
}

/* vmce_msr_is_mca() against the list of claimed ranges, and rdmsr never says NOT_MCA for them. */
static void row_is_mca(struct ctx *c)
{
	for (uint32_t idx = 0; idx < 0x600; idx++) {
		bool want = idx <= 1 || (idx >= 0x179 && idx <= 0x17b) ||
			    (idx >= 0x280 && idx <= 0x29f) || (idx >= 0x400 && idx <= 0x47f) ||
			    idx == 0x4d0;
		uint64_t v;

		if (vmce_msr_is_mca(idx) != want)
			fail_msg("vmce_msr_is_mca(%#x) = %d", idx, !want);
		if ((vmce_rdmsr(c->v, idx, &v) != VMCE_MSR_NOT_MCA) != want)
			fail_msg("[%s] rdmsr %#x: claimed %d", c->text, idx, !want);
		if ((vmce_host_rdmsr(c->v, idx, &v) != VMCE_MSR_NOT_MCA) != want)
			fail_msg("[%s] host rdmsr %#x: claimed %d", c->text, idx, !want);
	}
}

static void test_is_mca(void **state)
{
	(void)state;
	for_each_profile(row_is_mca);
}

/* ---- Reset state --------------------------------------------------------------------------- */

static void row_reset(struct ctx *c)
{
	struct vmce_vcpu_state st, want;
	char what[128];

	memset(&want, 0, sizeof(want));
	want.mcg_ctl = has(c, VMCE_CAP_CTL) ? ONES : 0;
	for (unsigned i = 0; i < c->p.banks; i++)
		want.bank[i].ctl = ONES;
	/* Fresh vCPUs are in the reset state. */
	for (unsigned n = 0; n < 2; n++) {
		vmce_vcpu_get_state(vmce_vm_vcpu(c->vm, n), &st);
		if (!cu_state_eq(&st, &want, what, sizeof(what)))
			fail_msg("[%s] vcpu %u initial state: %s", c->text, n, what);
	}
	/* Dirty everything the host can, then reset. */
	vmce_vcpu_set_amd_mcstatus_wren(c->v, true);
	assert_int_equal(vmce_host_wrmsr(c->v, VMCE_MSR_MCG_STATUS, 7), VMCE_MSR_OK);
	if (has(c, VMCE_CAP_CTL))
		assert_int_equal(vmce_host_wrmsr(c->v, VMCE_MSR_MCG_CTL, 0), VMCE_MSR_OK);
	if (has(c, VMCE_CAP_LMCE))
		assert_int_equal(vmce_host_wrmsr(c->v, VMCE_MSR_MCG_EXT_CTL, 1), VMCE_MSR_OK);
	for (unsigned i = 0; i < c->p.banks; i++) {
		for (unsigned r = 0; r < 4; r++)
			assert_int_equal(vmce_host_wrmsr(c->v, VMCE_MSR_MCi_CTL(i) + r, 0x55 + r),
					 VMCE_MSR_OK);
		if (has(c, VMCE_CAP_CMCI))
			assert_int_equal(vmce_host_wrmsr(c->v, VMCE_MSR_MCi_CTL2(i), 0x40000001),
					 VMCE_MSR_OK);
	}
	vmce_vcpu_reset(c->v);
	vmce_vcpu_get_state(c->v, &st);
	if (!cu_state_eq(&st, &want, what, sizeof(what)))
		fail_msg("[%s] state after reset: %s", c->text, what);
	/* And through the MSRs. */
	rd(c, VMCE_MSR_MCG_STATUS, VMCE_MSR_OK, 0);
	if (has(c, VMCE_CAP_CTL))
		rd(c, VMCE_MSR_MCG_CTL, VMCE_MSR_OK, ONES);
	if (has(c, VMCE_CAP_LMCE))
		rd(c, VMCE_MSR_MCG_EXT_CTL, VMCE_MSR_OK, 0);
	for (unsigned i = 0; i < c->p.banks; i++) {
		rd(c, VMCE_MSR_MCi_CTL(i), VMCE_MSR_OK, ONES);
		rd(c, VMCE_MSR_MCi_STATUS(i), VMCE_MSR_OK, 0);
		rd(c, VMCE_MSR_MCi_ADDR(i), VMCE_MSR_OK, 0);
		rd(c, VMCE_MSR_MCi_MISC(i), VMCE_MSR_OK, 0);
		if (has(c, VMCE_CAP_CMCI))
			rd(c, VMCE_MSR_MCi_CTL2(i), VMCE_MSR_OK, 0);
	}
	/* The other vCPU was never touched. */
	vmce_vcpu_get_state(vmce_vm_vcpu(c->vm, 1), &st);
	if (!cu_state_eq(&st, &want, what, sizeof(what)))
		fail_msg("[%s] vcpu 1 changed: %s", c->text, what);
}

static void test_reset(void **state)
{
	(void)state;
	for_each_profile(row_reset);
}

/* ---- Per-vCPU isolation -------------------------------------------------------------------- */

static void test_vcpus_are_independent(void **state)
{
	struct vmce_vm *vm = cu_vm("intel,banks=2,ser,tes,cmci,lmce,ctl", 4);
	uint64_t v;

	(void)state;
	for (unsigned n = 0; n < 4; n++) {
		struct vmce_vcpu *c = vmce_vm_vcpu(vm, n);

		assert_int_equal(vmce_vcpu_index(c), n);
		assert_ptr_equal(vmce_vcpu_vm(c), vm);
		assert_int_equal(vmce_wrmsr(c, VMCE_MSR_MCG_STATUS, n), VMCE_MSR_OK);
		assert_int_equal(vmce_wrmsr(c, VMCE_MSR_MCi_ADDR(1), 0x1000 * n), VMCE_MSR_OK);
		assert_int_equal(vmce_wrmsr(c, VMCE_MSR_MCi_CTL2(0), n), VMCE_MSR_OK);
	}
	for (unsigned n = 0; n < 4; n++) {
		struct vmce_vcpu *c = vmce_vm_vcpu(vm, n);

		assert_int_equal(vmce_rdmsr(c, VMCE_MSR_MCG_STATUS, &v), VMCE_MSR_OK);
		assert_int_equal(v, n);
		assert_int_equal(vmce_rdmsr(c, VMCE_MSR_MCi_ADDR(1), &v), VMCE_MSR_OK);
		assert_int_equal(v, 0x1000 * n);
		assert_int_equal(vmce_rdmsr(c, VMCE_MSR_MCi_CTL2(0), &v), VMCE_MSR_OK);
		assert_int_equal(v, n);
	}
	assert_null(vmce_vm_vcpu(vm, 4));
	assert_null(vmce_vm_vcpu(vm, ~0u));
	assert_int_equal(vmce_vm_nr_vcpus(vm), 4);
	vmce_vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mcg_cap_values),
		cmocka_unit_test(test_mcg_cap),
		cmocka_unit_test(test_mcg_status),
		cmocka_unit_test(test_mcg_ctl),
		cmocka_unit_test(test_mcg_ext_ctl),
		cmocka_unit_test(test_bank_ctl_addr_misc),
		cmocka_unit_test(test_bank_status),
		cmocka_unit_test(test_amd_wren_state),
		cmocka_unit_test(test_ctl2),
		cmocka_unit_test(test_window_and_absent),
		cmocka_unit_test(test_window_after_migration),
		cmocka_unit_test(test_p5),
		cmocka_unit_test(test_not_mca),
		cmocka_unit_test(test_is_mca),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_vcpus_are_independent),
	};

	return cmocka_run_group_tests_name("core_msr_table", tests, NULL, NULL);
}
