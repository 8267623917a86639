// SPDX-License-Identifier: MIT
/*
 * Hybrid mode: KVM's in-kernel MCA emulation serves the hot path.  This file chooses the
 * MCG_CAP KVM gets (the profile's subset that KVM supports), sets it up on each vCPU, and keeps
 * the model and KVM's registers coherent (KVM_GET_MSRS / KVM_SET_MSRS).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm_internal.h"

#define MAX_SYNC_MSRS (2 + 3 * VMCE_MAX_BANKS)

/* struct kvm_msrs with room for MAX_SYNC_MSRS entries (it ends in a flexible array). */
struct msrs_buf {
	uint64_t raw[(sizeof(struct kvm_msrs) + MAX_SYNC_MSRS * sizeof(struct kvm_msr_entry)) / 8 +
		     1];
};

static struct kvm_msrs *msrs(struct msrs_buf *b)
{
	return (struct kvm_msrs *)b->raw;
}

int vmce__kvm_get_msr(struct vmce_kvm_vcpu *kv, uint32_t index, uint64_t *value)
{
	struct msrs_buf b;
	struct kvm_msrs *m = msrs(&b);

	memset(&b, 0, sizeof(b));
	m->nmsrs = 1;
	m->entries[0].index = index;
	if (ioctl(kv->fd, KVM_GET_MSRS, m) != 1)
		return -EIO;
	*value = m->entries[0].data;
	return 0;
}

int vmce__kvm_set_msr(struct vmce_kvm_vcpu *kv, uint32_t index, uint64_t value)
{
	struct msrs_buf b;
	struct kvm_msrs *m = msrs(&b);

	memset(&b, 0, sizeof(b));
	m->nmsrs = 1;
	m->entries[0].index = index;
	m->entries[0].data = value;
	return ioctl(kv->fd, KVM_SET_MSRS, m) == 1 ? 0 : -EIO;
}

static int mce_cap_supported(uint64_t *supported)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	r = ioctl(fd, KVM_X86_GET_MCE_CAP_SUPPORTED, supported);
	if (r)
		r = -errno;
	close(fd);
	return r;
}

void vmce__kvm_user_setup(struct vmce_kvm *k)
{
	const struct vmce_profile *p = &k->vm->profile;
	uint64_t supported = 0;

	k->lapic_mcg_cap = 0;
	if (!(p->caps & VMCE_CAP_CMCI) ||
	    ioctl(k->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MCE) < p->banks)
		return;
	if (mce_cap_supported(&supported) == 0 && (supported & VMCE_MCG_CMCI_P))
		k->lapic_mcg_cap = p->banks | VMCE_MCG_CMCI_P;
}

int vmce__kvm_user_vcpu_init(struct vmce_kvm_vcpu *kv, struct vmce_err *err)
{
	uint64_t cap = kv->k->lapic_mcg_cap;

	if (cap && ioctl(kv->fd, KVM_X86_SETUP_MCE, &cap))
		return vmce__fail(err, -errno, "vCPU %u: KVM_X86_SETUP_MCE(0x%llx): %s", kv->index,
				  (unsigned long long)cap, strerror(errno));
	return 0;
}

int vmce__kvm_hybrid_setup(struct vmce_kvm *k, struct vmce_err *err)
{
	const struct vmce_profile *p = &k->vm->profile;
	uint64_t supported = 0, want;
	int r;

	r = ioctl(k->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MCE);
	if (r <= 0)
		return vmce__fail(err, -ENOTSUP, "hybrid mode: this KVM lacks KVM_CAP_MCE");
	if (r < p->banks)
		return vmce__fail(err, -ENOTSUP,
				  "hybrid mode: KVM emulates at most %d banks, the profile has %u",
				  r, p->banks);
	r = mce_cap_supported(&supported);
	if (r)
		return vmce__fail(err, r,
				  "hybrid mode: KVM_X86_GET_MCE_CAP_SUPPORTED on /dev/kvm: %s",
				  strerror(-r));
	/* The guest's MCG_CAP without TES_P, which KVM never accepts: MCG_CAP then exits to
	 * user space. */
	want = k->vm->mcg_cap & ~(VMCE_MCG_CAP_COUNT_MASK | VMCE_MCG_TES_P);
	k->kernel_mcg_cap = p->banks | (want & supported);
	if ((p->caps & VMCE_CAP_CTL) && !(supported & VMCE_MCG_CTL_P))
		return vmce__fail(err, -ENOTSUP,
				  "hybrid mode: the profile has MCG_CTL_P but KVM does not emulate "
				  "it (supported MCG_CAP 0x%llx)",
				  (unsigned long long)supported);
	return 0;
}

int vmce__kvm_hybrid_vcpu_init(struct vmce_kvm_vcpu *kv, struct vmce_err *err)
{
	uint64_t cap = kv->k->kernel_mcg_cap;

	if (ioctl(kv->fd, KVM_X86_SETUP_MCE, &cap))
		return vmce__fail(err, -errno, "vCPU %u: KVM_X86_SETUP_MCE(0x%llx): %s", kv->index,
				  (unsigned long long)cap, strerror(errno));
	return vmce_kvm_sync_to_kernel(kv, err);
}

/*
 * The MSRs KVM holds in hybrid mode, listed in b for KVM_GET_MSRS / KVM_SET_MSRS, *e their
 * entries.  Returns how many (MCG_STATUS at least), or 0 when the backend is not in hybrid mode:
 * there is nothing to sync then.
 */
static unsigned kernel_msr_list(struct vmce_kvm_vcpu *kv, struct msrs_buf *b,
				struct kvm_msr_entry **e)
{
	const struct vmce_profile *p;
	struct kvm_msr_entry *l = msrs(b)->entries;
	unsigned n = 0;

	if (!kv || kv->k->mode != VMCE_KVM_MODE_HYBRID)
		return 0;
	p = &kv->k->vm->profile;
	memset(b, 0, sizeof(*b));
	l[n++].index = VMCE_MSR_MCG_STATUS;
	if (p->caps & VMCE_CAP_CTL)
		l[n++].index = VMCE_MSR_MCG_CTL;
	for (unsigned i = 0; i < p->banks; i++) {
		l[n++].index = VMCE_MSR_MCi_STATUS(i);
		l[n++].index = VMCE_MSR_MCi_ADDR(i);
		l[n++].index = VMCE_MSR_MCi_MISC(i);
	}
	msrs(b)->nmsrs = n;
	*e = l;
	return n;
}

int vmce_kvm_sync_from_kernel(struct vmce_kvm_vcpu *kv, struct vmce_err *err)
{
	struct kvm_msr_entry *e;
	struct msrs_buf b;
	unsigned n;
	int r;

	n = kernel_msr_list(kv, &b, &e);
	if (!n)
		return 0;
	r = ioctl(kv->fd, KVM_GET_MSRS, msrs(&b));
	if (r != (int)n)
		return vmce__fail(err, r < 0 ? -errno : -EIO,
				  "vCPU %u: KVM_GET_MSRS of the MCA state read %d of %u MSRs",
				  kv->index, r, n);
	for (unsigned i = 0; i < n; i++)
		if (vmce_host_wrmsr(kv->v, e[i].index, e[i].data) != VMCE_MSR_OK)
			return vmce__fail(err, -EIO, "vCPU %u: the model refused KVM's MSR 0x%x",
					  kv->index, e[i].index);
	return 0;
}

int vmce_kvm_sync_to_kernel(struct vmce_kvm_vcpu *kv, struct vmce_err *err)
{
	struct kvm_msr_entry *e;
	struct msrs_buf b;
	unsigned n;
	int r;

	n = kernel_msr_list(kv, &b, &e);
	if (!n)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		uint64_t value;

		if (vmce_host_rdmsr(kv->v, e[i].index, &value) != VMCE_MSR_OK)
			return vmce__fail(err, -EIO, "vCPU %u: the model cannot read MSR 0x%x",
					  kv->index, e[i].index);
		e[i].data = value;
	}
	r = ioctl(kv->fd, KVM_SET_MSRS, msrs(&b));
	if (r != (int)n)
		return vmce__fail(err, r < 0 ? -errno : -EIO,
				  "vCPU %u: KVM_SET_MSRS of the MCA state wrote %d of %u MSRs "
				  "(stopped at 0x%x)",
				  kv->index, r, n, r >= 0 && r < (int)n ? e[r].index : 0);
	return 0;
}
