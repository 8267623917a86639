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

/* Register numbers of a bank: MCi_CTL/STATUS/ADDR/MISC are index & 3, CTL2 is REG_CTL2. */
enum { REG_CTL, REG_STATUS, REG_ADDR, REG_MISC, REG_CTL2 };

static inline _Atomic uint64_t *bank_reg(struct vmce_vcpu *v, unsigned i, unsigned reg)
{
	struct vmce_bank_regs *b = &v->bank[i];

	switch (reg) {
	case REG_CTL:
		return &b->ctl;
	case REG_STATUS:
		return &b->status;
	case REG_ADDR:
		return &b->addr;
	case REG_MISC:
		return &b->misc;
	default:
		return &b->ctl2;
	}
}

/*
 * Decode a per-bank MSR index (MCi_CTL/STATUS/ADDR/MISC or MCi_CTL2): bank number, register
 * and what the profile makes of that bank (CTL2 exists only with CMCI_P).  False for any other
 * index.
 */
static inline bool bank_msr(const struct vmce_profile *p, uint32_t index, unsigned *i,
			    unsigned *reg, enum bank_kind *kind)
{
	if (index >= VMCE_MSR_MC0_CTL && index < VMCE_MSR_MC0_CTL + 4 * VMCE_MAX_BANKS) {
		*i = (index - VMCE_MSR_MC0_CTL) / 4;
		*reg = index & 3;
		*kind = bank_kind(p, *i);
		return true;
	}
	if (index >= VMCE_MSR_MC0_CTL2 && index < VMCE_MSR_MC0_CTL2 + VMCE_MAX_BANKS) {
		*i = index - VMCE_MSR_MC0_CTL2;
		*reg = REG_CTL2;
		*kind = (p->caps & VMCE_CAP_CMCI) ? bank_kind(p, *i) : BANK_ABSENT;
		return true;
	}
	return false;
}

static inline void set_reg(struct vmce_vcpu *v, _Atomic uint64_t *reg, uint64_t value)
{
	vmce__write_begin(v);
	atomic_store_explicit(reg, value, memory_order_relaxed);
	vmce__write_end(v);
}

/*
 * MCG_STATUS: when a write clears MCIP, the vCPU's next vmce_vcpu_deliver() starts its settle
 * time and then releases what waits for it (src/policy/hold.c).  One relaxed store, no lock.
 */
static inline void set_mcg_status(struct vmce_vcpu *v, uint64_t value)
{
	uint64_t old = LD(v->mcg_status);

	set_reg(v, &v->mcg_status, value);
	if ((old & VMCE_MCG_STATUS_MCIP) && !(value & VMCE_MCG_STATUS_MCIP))
		atomic_store_explicit(&v->release_hint, true, memory_order_release);
}

/*
 * Writes of the MCG registers and the P5 ones, shared by guest and host writes.  A guest may
 * write only the values a register takes (MCG_STATUS its writable bits, MCG_CTL all ones or 0,
 * MCG_EXT_CTL only LMCE_EN) and never MCG_CAP; the host writes any value, and MCG_CAP only as
 * it is.  MCG_CTL and MCG_EXT_CTL exist only when the profile has CTL_P / LMCE_P.  The P5
 * registers ignore writes.  NOT_MCA for any other index.
 */
static inline enum vmce_msr_result write_mcg(struct vmce_vcpu *v, uint32_t index, uint64_t value,
					     bool guest)
{
	const struct vmce_profile *p = &v->vm->profile;

	switch (index) {
	case VMCE_MSR_MCG_STATUS:
		if (guest && (value & ~MCG_STATUS_WRITABLE))
			return VMCE_MSR_GP;
		set_mcg_status(v, value);
		return VMCE_MSR_OK;
	case VMCE_MSR_MCG_CAP:
		return !guest && value == v->vm->mcg_cap ? VMCE_MSR_OK : VMCE_MSR_GP;
	case VMCE_MSR_MCG_CTL:
		if (!(p->caps & VMCE_CAP_CTL) || (guest && value != 0 && value != ~0ull))
			return VMCE_MSR_GP;
		set_reg(v, &v->mcg_ctl, value);
		return VMCE_MSR_OK;
	case VMCE_MSR_MCG_EXT_CTL:
		if (!(p->caps & VMCE_CAP_LMCE) || (guest && (value & ~VMCE_MCG_EXT_CTL_LMCE_EN)))
			return VMCE_MSR_GP;
		set_reg(v, &v->mcg_ext_ctl, value);
		return VMCE_MSR_OK;
	case VMCE_MSR_P5_MC_ADDR:
	case VMCE_MSR_P5_MC_TYPE:
		return VMCE_MSR_OK;
	}
	return VMCE_MSR_NOT_MCA;
}

/* Shared by guest and host reads: host reads follow the guest's rules. */
static enum vmce_msr_result do_rdmsr(struct vmce_vcpu *v, uint32_t index, uint64_t *value)
{
	const struct vmce_profile *p = &v->vm->profile;
	enum bank_kind kind;
	unsigned i, reg;

	if (bank_msr(p, index, &i, &reg, &kind)) {
		switch (kind) {
		case BANK_REAL:
			*value = atomic_load_explicit(bank_reg(v, i, reg), memory_order_relaxed);
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
	enum bank_kind kind;
	unsigned i, reg;

	if (bank_msr(p, index, &i, &reg, &kind)) {
		if (kind == BANK_RAZWI)
			return VMCE_MSR_OK;
		if (kind == BANK_ABSENT)
			return VMCE_MSR_GP;
		/* MCi_STATUS: only 0 (clear), unless AMD's HWCR.McStatusWrEn allows more. */
		if (reg == REG_STATUS && value != 0 &&
		    !(p->vendor == VMCE_VENDOR_AMD && LD(v->amd_wren)))
			return VMCE_MSR_GP;
		if (reg == REG_CTL2 && (value & ~CTL2_WRITABLE))
			return VMCE_MSR_GP;
		set_reg(v, bank_reg(v, i, reg), value);
		return VMCE_MSR_OK;
	}
	return write_mcg(v, index, value, true);
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
	enum bank_kind kind;
	unsigned i, reg;

	if (bank_msr(p, index, &i, &reg, &kind)) {
		if (kind == BANK_REAL) {
			set_reg(v, bank_reg(v, i, reg), value);
			return VMCE_MSR_OK;
		}
		return kind == BANK_RAZWI && value == 0 ? VMCE_MSR_OK : VMCE_MSR_GP;
	}
	return write_mcg(v, index, value, false);
}

/* HWCR is an AMD register: on an Intel profile the flag stays clear (and get_state/set_state
 * round-trip). */
void vmce_vcpu_set_amd_mcstatus_wren(struct vmce_vcpu *v, bool enabled)
{
	vmce__write_begin(v);
	ST(v->amd_wren, enabled && v->vm->profile.vendor == VMCE_VENDOR_AMD);
	vmce__write_end(v);
}
