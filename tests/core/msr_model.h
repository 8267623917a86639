/* SPDX-License-Identifier: MIT */
/*
 * msr_model.h - the reference model of the MSR contract, written from the table of design §3
 * alone, in its own terms (an MSR is classified once into a kind and a bank, then one rule per
 * row).  Used by the core property test and by the MSR fuzzer (fuzz/fuzz_msr.c).
 */
#ifndef VMCE_TESTS_CORE_MSR_MODEL_H
#define VMCE_TESTS_CORE_MSR_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <vmce/vmce.h>

enum kind { K_NONE, K_P5, K_CAP, K_STATUS, K_CTL, K_EXT, K_CTL2, K_BANK };

struct msr_class {
	enum kind kind;
	unsigned bank; /* K_CTL2, K_BANK */
	unsigned reg;  /* K_BANK: 0 CTL, 1 STATUS, 2 ADDR, 3 MISC */
};

static inline struct msr_class classify(uint32_t idx)
{
	struct msr_class c = {K_NONE, 0, 0};

	if (idx == 0x0 || idx == 0x1)
		c.kind = K_P5;
	else if (idx == 0x179)
		c.kind = K_CAP;
	else if (idx == 0x17a)
		c.kind = K_STATUS;
	else if (idx == 0x17b)
		c.kind = K_CTL;
	else if (idx == 0x4d0)
		c.kind = K_EXT;
	else if (idx >= 0x280 && idx < 0x280 + 32) {
		c.kind = K_CTL2;
		c.bank = idx - 0x280;
	} else if (idx >= 0x400 && idx < 0x400 + 4 * 32) {
		c.kind = K_BANK;
		c.bank = (idx - 0x400) >> 2;
		c.reg = (idx - 0x400) & 3;
	}
	return c;
}

struct model_profile {
	bool amd, ctl, cmci, tes, ser, lmce;
	unsigned banks, compat;
};

struct model_vcpu {
	uint64_t mcg_status, mcg_ctl, mcg_ext_ctl;
	bool wren;
	uint64_t bank[32][4]; /* CTL, STATUS, ADDR, MISC */
	uint64_t ctl2[32];
};

static inline uint64_t model_cap(const struct model_profile *m)
{
	uint64_t cap = m->banks;

	if (m->ctl)
		cap |= 1ull << 8;
	if (!m->amd) {
		cap |= (uint64_t)m->cmci << 10;
		cap |= (uint64_t)m->tes << 11;
		cap |= (uint64_t)m->ser << 24;
		cap |= (uint64_t)m->lmce << 27;
	}
	return cap;
}

static inline void model_reset(const struct model_profile *m, struct model_vcpu *s)
{
	memset(s, 0, sizeof(*s));
	s->mcg_ctl = m->ctl ? ~0ull : 0;
	for (unsigned i = 0; i < m->banks; i++)
		s->bank[i][0] = ~0ull;
}

/* Is bank i real (R), in the RAZ/WI window (W), or absent (A)? */
static inline char bank_is(const struct model_profile *m, unsigned i)
{
	return i < m->banks ? 'R' : i < m->compat ? 'W' : 'A';
}

/* Guest and host reads follow the same table. */
static inline enum vmce_msr_result
model_read(const struct model_profile *m, const struct model_vcpu *s, uint32_t idx, uint64_t *val)
{
	struct msr_class c = classify(idx);

	*val = 0;
	switch (c.kind) {
	case K_NONE:
		return VMCE_MSR_NOT_MCA;
	case K_P5:
		return VMCE_MSR_OK;
	case K_CAP:
		*val = model_cap(m);
		return VMCE_MSR_OK;
	case K_STATUS:
		*val = s->mcg_status;
		return VMCE_MSR_OK;
	case K_CTL:
		*val = s->mcg_ctl;
		return m->ctl ? VMCE_MSR_OK : VMCE_MSR_GP;
	case K_EXT:
		*val = s->mcg_ext_ctl;
		return m->lmce ? VMCE_MSR_OK : VMCE_MSR_GP;
	case K_CTL2:
		if (!m->cmci || bank_is(m, c.bank) == 'A')
			return VMCE_MSR_GP;
		if (bank_is(m, c.bank) == 'R')
			*val = s->ctl2[c.bank];
		return VMCE_MSR_OK;
	case K_BANK:
		if (bank_is(m, c.bank) == 'A')
			return VMCE_MSR_GP;
		if (bank_is(m, c.bank) == 'R')
			*val = s->bank[c.bank][c.reg];
		return VMCE_MSR_OK;
	}
	return VMCE_MSR_NOT_MCA;
}

static inline enum vmce_msr_result model_guest_write(const struct model_profile *m,
						     struct model_vcpu *s, uint32_t idx, uint64_t v)
{
	struct msr_class c = classify(idx);

	switch (c.kind) {
	case K_NONE:
		return VMCE_MSR_NOT_MCA;
	case K_P5:
		return VMCE_MSR_OK;
	case K_CAP:
		return VMCE_MSR_GP;
	case K_STATUS: /* RIPV, EIPV, MCIP, LMCES */
		if (v > 0xf)
			return VMCE_MSR_GP;
		s->mcg_status = v;
		return VMCE_MSR_OK;
	case K_CTL:
		if (!m->ctl || (v != 0 && v != ~0ull))
			return VMCE_MSR_GP;
		s->mcg_ctl = v;
		return VMCE_MSR_OK;
	case K_EXT:
		if (!m->lmce || v > 1)
			return VMCE_MSR_GP;
		s->mcg_ext_ctl = v;
		return VMCE_MSR_OK;
	case K_CTL2:
		if (!m->cmci || bank_is(m, c.bank) == 'A')
			return VMCE_MSR_GP;
		if (bank_is(m, c.bank) == 'W')
			return VMCE_MSR_OK;
		/* CMCI_EN (bit 30) and the threshold (bits 14:0) only. */
		if (v & ~((1ull << 30) | 0x7fffull))
			return VMCE_MSR_GP;
		s->ctl2[c.bank] = v;
		return VMCE_MSR_OK;
	case K_BANK:
		if (bank_is(m, c.bank) == 'A')
			return VMCE_MSR_GP;
		if (bank_is(m, c.bank) == 'W')
			return VMCE_MSR_OK;
		if (c.reg == 1 && v != 0 && !(m->amd && s->wren))
			return VMCE_MSR_GP;
		s->bank[c.bank][c.reg] = v;
		return VMCE_MSR_OK;
	}
	return VMCE_MSR_NOT_MCA;
}

static inline enum vmce_msr_result model_host_write(const struct model_profile *m,
						    struct model_vcpu *s, uint32_t idx, uint64_t v)
{
	struct msr_class c = classify(idx);

	switch (c.kind) {
	case K_NONE:
		return VMCE_MSR_NOT_MCA;
	case K_P5:
		return VMCE_MSR_OK;
	case K_CAP:
		return v == model_cap(m) ? VMCE_MSR_OK : VMCE_MSR_GP;
	case K_STATUS:
		s->mcg_status = v;
		return VMCE_MSR_OK;
	case K_CTL:
		if (!m->ctl)
			return VMCE_MSR_GP;
		s->mcg_ctl = v;
		return VMCE_MSR_OK;
	case K_EXT:
		if (!m->lmce)
			return VMCE_MSR_GP;
		s->mcg_ext_ctl = v;
		return VMCE_MSR_OK;
	case K_CTL2:
		if (!m->cmci || bank_is(m, c.bank) == 'A')
			return VMCE_MSR_GP;
		if (bank_is(m, c.bank) == 'W')
			return v == 0 ? VMCE_MSR_OK : VMCE_MSR_GP;
		s->ctl2[c.bank] = v;
		return VMCE_MSR_OK;
	case K_BANK:
		if (bank_is(m, c.bank) == 'A')
			return VMCE_MSR_GP;
		if (bank_is(m, c.bank) == 'W')
			return v == 0 ? VMCE_MSR_OK : VMCE_MSR_GP;
		s->bank[c.bank][c.reg] = v;
		return VMCE_MSR_OK;
	}
	return VMCE_MSR_NOT_MCA;
}

#endif
