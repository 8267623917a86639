// SPDX-License-Identifier: MIT
/*
 * MSR ownership: which MSRs exit to user space, the merged MSR filter, and the RDMSR/WRMSR
 * exits served from the core model.
 *
 * KVM evaluates filter ranges in order and the first range that covers an MSR for the kind of
 * access decides.  The backend's two ranges (reads, writes) come first and cover
 * MCG_CAP..MCG_EXT_CTL; inside them, the bit of an MSR the backend does not own is the VMM's
 * decision for it (its ranges, then its default), so the merge changes nothing for the VMM.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "kvm_internal.h"

static bool is_bank(uint32_t index)
{
	return index >= VMCE_MSR_MC0_CTL && index < VMCE_MSR_MC0_CTL + 4 * VMCE_MAX_BANKS;
}

static bool is_ctl2(uint32_t index)
{
	return index >= VMCE_MSR_MC0_CTL2 && index < VMCE_MSR_MC0_CTL2 + VMCE_MAX_BANKS;
}

bool vmce__kvm_kernel_holds(const struct vmce_kvm *k, uint32_t index)
{
	const struct vmce_profile *p = &k->vm->profile;

	if (k->mode != VMCE_KVM_MODE_HYBRID)
		return false;
	if (index == VMCE_MSR_MCG_STATUS)
		return true;
	if (index == VMCE_MSR_MCG_CTL)
		return (p->caps & VMCE_CAP_CTL) != 0;
	/* MCi_STATUS/ADDR/MISC of real banks; MCi_CTL stays in the model (KVM refuses values
	 * other than 0 and all-ones, even from the host). */
	return is_bank(index) && (index - VMCE_MSR_MC0_CTL) / 4 < p->banks && (index & 3) != 0;
}

bool vmce__kvm_owns(const struct vmce_kvm *k, uint32_t index, bool write)
{
	const struct vmce_profile *p = &k->vm->profile;

	if (!vmce_msr_is_mca(index) || index <= VMCE_MSR_P5_MC_TYPE)
		return false;
	if (k->mode == VMCE_KVM_MODE_USERSPACE)
		return true;
	/* Hybrid: only what KVM cannot present as the profile says. */
	switch (index) {
	case VMCE_MSR_MCG_CAP:
		return write || k->kernel_mcg_cap != k->vm->mcg_cap;
	case VMCE_MSR_MCG_STATUS:
		return write; /* KVM stores reserved bits */
	case VMCE_MSR_MCG_CTL:
		return false;
	case VMCE_MSR_MCG_EXT_CTL:
		return true;
	}
	if (is_ctl2(index))
		return true;
	if ((index - VMCE_MSR_MC0_CTL) / 4 >= p->banks)
		return true;	 /* RAZ/WI window and absent banks */
	return (index & 3) == 0; /* MCi_CTL: any value is stored */
}

/* The VMM's decision for an MSR: its first matching range, else its default. */
static bool vmm_allows(const struct vmce_kvm *k, uint32_t index, uint32_t type)
{
	for (unsigned i = 0; i < k->vmm_nr; i++) {
		const struct kvm_msr_filter_range *r = &k->vmm_ranges[i];
		uint32_t off = index - r->base;

		if (index >= r->base && off < r->nmsrs && (r->flags & type))
			return (k->vmm_bitmaps[i][off / 8] >> (off % 8)) & 1;
	}
	return !(k->vmm_default & KVM_MSR_FILTER_DEFAULT_DENY);
}

static void build_own_bitmaps(struct vmce_kvm *k)
{
	memset(k->own_bitmap, 0, sizeof(k->own_bitmap));
	for (uint32_t n = 0; n < VMCE_KVM_FILTER_NMSRS; n++) {
		uint32_t index = VMCE_KVM_FILTER_BASE + n;

		if (!vmce__kvm_owns(k, index, false) && vmm_allows(k, index, KVM_MSR_FILTER_READ))
			k->own_bitmap[0][n / 8] |= (uint8_t)(1u << (n % 8));
		if (!vmce__kvm_owns(k, index, true) && vmm_allows(k, index, KVM_MSR_FILTER_WRITE))
			k->own_bitmap[1][n / 8] |= (uint8_t)(1u << (n % 8));
	}
}

int vmce__kvm_install_filter(struct vmce_kvm *k, struct vmce_err *err)
{
	struct kvm_msr_filter f;

	build_own_bitmaps(k);
	memset(&f, 0, sizeof(f));
	f.flags = k->vmm_default;
	f.ranges[0].flags = KVM_MSR_FILTER_READ;
	f.ranges[0].base = VMCE_KVM_FILTER_BASE;
	f.ranges[0].nmsrs = VMCE_KVM_FILTER_NMSRS;
	f.ranges[0].bitmap = k->own_bitmap[0];
	f.ranges[1].flags = KVM_MSR_FILTER_WRITE;
	f.ranges[1].base = VMCE_KVM_FILTER_BASE;
	f.ranges[1].nmsrs = VMCE_KVM_FILTER_NMSRS;
	f.ranges[1].bitmap = k->own_bitmap[1];
	for (unsigned i = 0; i < k->vmm_nr; i++) {
		f.ranges[VMCE_KVM_FILTER_RANGES + i] = k->vmm_ranges[i];
		f.ranges[VMCE_KVM_FILTER_RANGES + i].bitmap = k->vmm_bitmaps[i];
	}
	if (ioctl(k->vm_fd, KVM_X86_SET_MSR_FILTER, &f))
		return vmce__fail(err, -errno, "KVM_X86_SET_MSR_FILTER: %s", strerror(errno));
	return 0;
}

int vmce_kvm_set_vmm_filter(struct vmce_kvm *k, uint32_t filter_default,
			    const struct kvm_msr_filter_range *ranges, unsigned nr,
			    struct vmce_err *err)
{
	struct kvm_msr_filter_range copy[VMCE_KVM_MAX_VMM_RANGES];
	uint8_t *maps[VMCE_KVM_MAX_VMM_RANGES] = {0};
	struct kvm_msr_filter_range old_ranges[VMCE_KVM_MAX_VMM_RANGES];
	uint32_t old_default;
	unsigned old_nr;
	int rc;

	if (!k)
		return vmce__fail(err, -EINVAL, "vmce_kvm_set_vmm_filter: backend is required");
	if (filter_default & ~(uint32_t)KVM_MSR_FILTER_DEFAULT_DENY)
		return vmce__fail(err, -EINVAL, "VMM MSR filter: unknown default flags 0x%x",
				  filter_default);
	if (nr > VMCE_KVM_MAX_VMM_RANGES)
		return vmce__fail(err, -E2BIG,
				  "VMM MSR filter: %u ranges, at most %d fit next to the backend's",
				  nr, VMCE_KVM_MAX_VMM_RANGES);
	if (nr && !ranges)
		return vmce__fail(err, -EINVAL, "VMM MSR filter: %u ranges but no array", nr);
	for (unsigned i = 0; i < nr; i++) {
		const struct kvm_msr_filter_range *r = &ranges[i];
		size_t bytes = ((size_t)r->nmsrs + 7) / 8;

		if (!r->nmsrs || !r->bitmap || !r->flags ||
		    (r->flags & ~(uint32_t)(KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE)) ||
		    bytes > KVM_MSR_FILTER_MAX_BITMAP_SIZE) {
			rc = vmce__fail(err, -EINVAL,
					"VMM MSR filter range %u (base 0x%x, %u MSRs, flags 0x%x) "
					"is invalid",
					i, r->base, r->nmsrs, r->flags);
			goto fail;
		}
		maps[i] = malloc(bytes);
		if (!maps[i]) {
			rc = vmce__fail(err, -ENOMEM, "out of memory for VMM filter range %u", i);
			goto fail;
		}
		memcpy(maps[i], r->bitmap, bytes);
		copy[i] = *r;
		copy[i].bitmap = NULL;
	}

	pthread_mutex_lock(&k->lock);
	old_default = k->vmm_default;
	old_nr = k->vmm_nr;
	memcpy(old_ranges, k->vmm_ranges, sizeof(old_ranges));
	for (unsigned i = 0; i < VMCE_KVM_MAX_VMM_RANGES; i++) {
		uint8_t *t = k->vmm_bitmaps[i];

		k->vmm_bitmaps[i] = maps[i];
		maps[i] = t;
		if (i < nr)
			k->vmm_ranges[i] = copy[i];
	}
	k->vmm_default = filter_default;
	k->vmm_nr = nr;
	rc = vmce__kvm_install_filter(k, err);
	if (rc) {
		/* Put the previous filter back as it was. */
		for (unsigned i = 0; i < VMCE_KVM_MAX_VMM_RANGES; i++) {
			uint8_t *t = k->vmm_bitmaps[i];

			k->vmm_bitmaps[i] = maps[i];
			maps[i] = t;
		}
		memcpy(k->vmm_ranges, old_ranges, sizeof(old_ranges));
		k->vmm_default = old_default;
		k->vmm_nr = old_nr;
		build_own_bitmaps(k);
	}
	pthread_mutex_unlock(&k->lock);
fail:
	for (unsigned i = 0; i < VMCE_KVM_MAX_VMM_RANGES; i++)
		free(maps[i]);
	return rc;
}

/* AMD flavour: learn the guest's HWCR.McStatusWrEn when it writes a non-zero MCi_STATUS. */
static void refresh_amd_wren(struct vmce_kvm_vcpu *kv)
{
	uint64_t hwcr;

	if (vmce__kvm_get_msr(kv, VMCE_MSR_AMD_HWCR, &hwcr) == 0)
		vmce_vcpu_set_amd_mcstatus_wren(kv->v, (hwcr & VMCE_AMD_HWCR_MCSTATUSWREN) != 0);
}

enum vmce_kvm_exit_result vmce_kvm_handle_exit(struct vmce_kvm_vcpu *kv)
{
	struct kvm_run *run = kv->run;
	struct vmce_kvm *k = kv->k;
	enum vmce_msr_result r;
	uint32_t index;
	uint64_t value = 0;
	bool write;

	if (run->exit_reason == KVM_EXIT_X86_RDMSR)
		write = false;
	else if (run->exit_reason == KVM_EXIT_X86_WRMSR)
		write = true;
	else
		return VMCE_KVM_EXIT_NOT_OURS;
	index = run->msr.index;
	if (run->msr.reason != KVM_MSR_EXIT_REASON_FILTER || !vmce__kvm_owns(k, index, write))
		return VMCE_KVM_EXIT_NOT_OURS;

	if (!write) {
		r = vmce_rdmsr(kv->v, index, &value);
		run->msr.data = r == VMCE_MSR_OK ? value : 0;
		run->msr.error = r != VMCE_MSR_OK;
		return VMCE_KVM_EXIT_HANDLED;
	}
	value = run->msr.data;
	if (k->vm->profile.vendor == VMCE_VENDOR_AMD && is_bank(index) && (index & 3) == 1 &&
	    value != 0)
		refresh_amd_wren(kv);
	r = vmce_wrmsr(kv->v, index, value);
	if (r == VMCE_MSR_OK && vmce__kvm_kernel_holds(k, index) &&
	    vmce__kvm_set_msr(kv, index, value) != 0)
		r = VMCE_MSR_GP; /* KVM refused the value it holds: the guest sees the refusal */
	run->msr.error = r != VMCE_MSR_OK;
	return VMCE_KVM_EXIT_HANDLED;
}
