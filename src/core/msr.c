// SPDX-License-Identifier: MIT
/*
 * The MSR model: guest and host RDMSR/WRMSR of the MCA MSRs (docs/msr-contract.md).
 *
 * This is the hot path: it takes no lock, allocates nothing and makes no system call.  Every
 * index is range-checked before it selects a field, so no guest value can reach memory outside
 * the vCPU's state.
 */
#include "vmce_internal.h"

#define MCG_STATUS_WRITABLE                                                                        \
	(VMCE_MCG_STATUS_RIPV | VMCE_MCG_STATUS_EIPV | VMCE_MCG_STATUS_MCIP | VMCE_MCG_STATUS_LMCES)
#define CTL2_WRITABLE (VMCE_MCI_CTL2_CMCI_EN | VMCE_MCI_CTL2_THRESHOLD)

bool vmce_msr_is_mca(uint32_t index)
{
	return index <= VMCE_MSR_P5_MC_TYPE ||
	       (index >= VMCE_MSR_MCG_CAP && index <= VMCE_MSR_MCG_CTL) ||
	       (index >= VMCE_MSR_MC0_CTL2 && index < VMCE_MSR_MC0_CTL2 + VMCE_MAX_BANKS) ||
	       (index >= VMCE_MSR_MC0_CTL && index < VMCE_MSR_MC0_CTL + 4 * VMCE_MAX_BANKS) ||
	       index == VMCE_MSR_MCG_EXT_CTL;
}

/* Which kind of bank a bank number is under the profile. */
enum bank_kind { BANK_REAL, BANK_RAZWI, BANK_ABSENT };

static inline enum bank_kind bank_kind(const struct vmce_profile *p, unsigned i)
{
	if (i < p->banks)
		return BANK_REAL;
	if (i < p->compat_banks)
		return BANK_RAZWI;
	return BANK_ABSENT;
}

static inline _Atomic uint64_t *bank_reg(struct vmce_vcpu *v, unsigned i, unsigned reg)
{
	struct vmce_bank_regs *b = &v->bank[i];

	switch (reg) {
	case 0:
		return &b->ctl;
	case 1:
		return &b->status;
	case 2:
		return &b->addr;
	default:
		return &b->misc;
	}
}

static inline void set_reg(struct vmce_vcpu *v, _Atomic uint64_t *reg, uint64_t value)
{
	vmce__write_begin(v);
	atomic_store_explicit(reg, value, memory_order_relaxed);
	vmce__write_end(v);
}

/* Shared by guest and host reads: host reads follow the guest's rules. */
static enum vmce_msr_result do_rdmsr(struct vmce_vcpu *v, uint32_t index, uint64_t *value)
{
	const struct vmce_profile *p = &v->vm->profile;
	unsigned i;

	if (index >= VMCE_MSR_MC0_CTL && index < VMCE_MSR_MC0_CTL + 4 * VMCE_MAX_BANKS) {
		i = (index - VMCE_MSR_MC0_CTL) / 4;
		switch (bank_kind(p, i)) {
		case BANK_REAL:
			*value = atomic_load_explicit(bank_reg(v, i, index & 3),
						      memory_order_relaxed);
			return VMCE_MSR_OK;
		case BANK_RAZWI:
			*value = 0;
			return VMCE_MSR_OK;
		default:
			return VMCE_MSR_GP;
		}
	}
	switch (index) {
	case VMCE_MSR_MCG_STATUS:
		*value = LD(v->mcg_status);
		return VMCE_MSR_OK;
	case VMCE_MSR_MCG_CAP:
		*value = v->vm->mcg_cap;
		return VMCE_MSR_OK;
	case VMCE_MSR_MCG_CTL:
		if (!(p->caps & VMCE_CAP_CTL))
			return VMCE_MSR_GP;
		*value = LD(v->mcg_ctl);
		return VMCE_MSR_OK;
	case VMCE_MSR_MCG_EXT_CTL:
		if (!(p->caps & VMCE_CAP_LMCE))
			return VMCE_MSR_GP;
		*value = LD(v->mcg_ext_ctl);
		return VMCE_MSR_OK;
	case VMCE_MSR_P5_MC_ADDR:
	case VMCE_MSR_P5_MC_TYPE:
		*value = 0;
		return VMCE_MSR_OK;
	}
	if (index >= VMCE_MSR_MC0_CTL2 && index < VMCE_MSR_MC0_CTL2 + VMCE_MAX_BANKS) {
		i = index - VMCE_MSR_MC0_CTL2;
		if (!(p->caps & VMCE_CAP_CMCI))
			return VMCE_MSR_GP;
		switch (bank_kind(p, i)) {
		case BANK_REAL:
			*value = LD(v->bank[i].ctl2);
			return VMCE_MSR_OK;
		case BANK_RAZWI:
			*value = 0;
			return VMCE_MSR_OK;
		default:
			return VMCE_MSR_GP;
		}
	}
	return VMCE_MSR_NOT_MCA;
}

enum vmce_msr_result vmce_rdmsr(struct vmce_vcpu *v, uint32_t index, uint64_t *value)
{
	return do_rdmsr(v, index, value);
}

enum vmce_msr_result vmce_host_rdmsr(struct vmce_vcpu *v, uint32_t index, uint64_t *value)
{
	return do_rdmsr(v, index, value);
}

enum vmce_msr_result vmce_wrmsr(struct vmce_vcpu *v, uint32_t index, uint64_t value)
{
	const struct vmce_profile *p = &v->vm->profile;
	unsigned i;

	if (index >= VMCE_MSR_MC0_CTL && index < VMCE_MSR_MC0_CTL + 4 * VMCE_MAX_BANKS) {
		i = (index - VMCE_MSR_MC0_CTL) / 4;
		switch (bank_kind(p, i)) {
		case BANK_RAZWI:
			return VMCE_MSR_OK;
		case BANK_ABSENT:
			return VMCE_MSR_GP;
		default:
			break;
		}
		/* MCi_STATUS: only 0 (clear), unless AMD's HWCR.McStatusWrEn allows more. */
		if ((index & 3) == 1 && value != 0 &&
		    !(p->vendor == VMCE_VENDOR_AMD && LD(v->amd_wren)))
			return VMCE_MSR_GP;
		set_reg(v, bank_reg(v, i, index & 3), value);
		return VMCE_MSR_OK;
	}
	switch (index) {
	case VMCE_MSR_MCG_STATUS:
		if (value & ~MCG_STATUS_WRITABLE)
			return VMCE_MSR_GP;
		set_reg(v, &v->mcg_status, value);
		return VMCE_MSR_OK;
	case VMCE_MSR_MCG_CAP:
		return VMCE_MSR_GP;
	case VMCE_MSR_MCG_CTL:
		if (!(p->caps & VMCE_CAP_CTL) || (value != 0 && value != ~0ull))
			return VMCE_MSR_GP;
		set_reg(v, &v->mcg_ctl, value);
		return VMCE_MSR_OK;
	case VMCE_MSR_MCG_EXT_CTL:
		if (!(p->caps & VMCE_CAP_LMCE) || (value & ~VMCE_MCG_EXT_CTL_LMCE_EN))
			return VMCE_MSR_GP;
		set_reg(v, &v->mcg_ext_ctl, value);
		return VMCE_MSR_OK;
	case VMCE_MSR_P5_MC_ADDR:
	case VMCE_MSR_P5_MC_TYPE:
		return VMCE_MSR_OK;
	}
	if (index >= VMCE_MSR_MC0_CTL2 && index < VMCE_MSR_MC0_CTL2 + VMCE_MAX_BANKS) {
		i = index - VMCE_MSR_MC0_CTL2;
		if (!(p->caps & VMCE_CAP_CMCI))
			return VMCE_MSR_GP;
		switch (bank_kind(p, i)) {
		case BANK_RAZWI:
			return VMCE_MSR_OK;
		case BANK_ABSENT:
			return VMCE_MSR_GP;
		default:
			break;
		}
		if (value & ~CTL2_WRITABLE)
			return VMCE_MSR_GP;
		set_reg(v, &v->bank[i].ctl2, value);
		return VMCE_MSR_OK;
	}
	return VMCE_MSR_NOT_MCA;
}

/*
 * Host-initiated write (save/restore).  A real bank's registers and the MCG registers the
 * profile backs take any value; a bank in the RAZ/WI window accepts only 0 (the value a host
 * read returned, so a restore of saved state succeeds) and refuses anything else rather than
 * drop it silently; everything the profile does not back is refused.
 */
enum vmce_msr_result vmce_host_wrmsr(struct vmce_vcpu *v, uint32_t index, uint64_t value)
{
	const struct vmce_profile *p = &v->vm->profile;
	enum bank_kind k;
	unsigned i;

	if (index >= VMCE_MSR_MC0_CTL && index < VMCE_MSR_MC0_CTL + 4 * VMCE_MAX_BANKS) {
		i = (index - VMCE_MSR_MC0_CTL) / 4;
		k = bank_kind(p, i);
		if (k == BANK_REAL) {
			set_reg(v, bank_reg(v, i, index & 3), value);
			return VMCE_MSR_OK;
		}
		return k == BANK_RAZWI && value == 0 ? VMCE_MSR_OK : VMCE_MSR_GP;
	}
	if (index >= VMCE_MSR_MC0_CTL2 && index < VMCE_MSR_MC0_CTL2 + VMCE_MAX_BANKS) {
		i = index - VMCE_MSR_MC0_CTL2;
		if (!(p->caps & VMCE_CAP_CMCI))
			return VMCE_MSR_GP;
		k = bank_kind(p, i);
		if (k == BANK_REAL) {
			set_reg(v, &v->bank[i].ctl2, value);
			return VMCE_MSR_OK;
		}
		return k == BANK_RAZWI && value == 0 ? VMCE_MSR_OK : VMCE_MSR_GP;
	}
	switch (index) {
	case VMCE_MSR_MCG_CAP:
		return value == v->vm->mcg_cap ? VMCE_MSR_OK : VMCE_MSR_GP;
	case VMCE_MSR_MCG_STATUS:
		set_reg(v, &v->mcg_status, value);
		return VMCE_MSR_OK;
	case VMCE_MSR_MCG_CTL:
		if (!(p->caps & VMCE_CAP_CTL))
			return VMCE_MSR_GP;
		set_reg(v, &v->mcg_ctl, value);
		return VMCE_MSR_OK;
	case VMCE_MSR_MCG_EXT_CTL:
		if (!(p->caps & VMCE_CAP_LMCE))
			return VMCE_MSR_GP;
		set_reg(v, &v->mcg_ext_ctl, value);
		return VMCE_MSR_OK;
	case VMCE_MSR_P5_MC_ADDR:
	case VMCE_MSR_P5_MC_TYPE:
		return VMCE_MSR_OK;
	}
	return VMCE_MSR_NOT_MCA;
}

/* HWCR is an AMD register: on an Intel profile the flag stays clear (and get_state/set_state
 * round-trip). */
void vmce_vcpu_set_amd_mcstatus_wren(struct vmce_vcpu *v, bool enabled)
{
	vmce__write_begin(v);
	ST(v->amd_wren, enabled && v->vm->profile.vendor == VMCE_VENDOR_AMD);
	vmce__write_end(v);
}
