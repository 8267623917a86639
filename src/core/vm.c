// SPDX-License-Identifier: MIT
/*
 * The VM model: creation, per-vCPU state, reset, snapshots and save/restore of whole states.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmce_internal.h"

#define DEFAULT_MAX_POISONED 65536

void vmce_vm_config_default(struct vmce_vm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	vmce_profile_default(&cfg->profile);
	cfg->nr_vcpus = 1;
	cfg->max_poisoned_pages = DEFAULT_MAX_POISONED;
	cfg->fatal = VMCE_FATAL_SHUTDOWN;
}

int vmce_vm_create(const struct vmce_vm_config *cfg, struct vmce_vm **out, struct vmce_err *err)
{
	struct vmce_vm *vm;
	int rc;

	if (!cfg || !out)
		return vmce__fail(err, -EINVAL, "vmce_vm_create: config and result are required");
	rc = vmce_profile_validate(&cfg->profile, err);
	if (rc)
		return rc;
	if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > VMCE_MAX_VCPUS)
		return vmce__fail(err, -EINVAL, "nr_vcpus=%u is out of range (1 to %d)",
				  cfg->nr_vcpus, VMCE_MAX_VCPUS);
	if (cfg->fatal != VMCE_FATAL_SHUTDOWN && cfg->fatal != VMCE_FATAL_LOG_ONLY)
		return vmce__fail(err, -EINVAL, "unknown fatal policy %d", (int)cfg->fatal);

	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return vmce__fail(err, -ENOMEM, "out of memory for the VM model");
	vm->vcpus = calloc(cfg->nr_vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		free(vm);
		return vmce__fail(err, -ENOMEM, "out of memory for %u vCPUs", cfg->nr_vcpus);
	}
	vm->profile = cfg->profile;
	vm->mcg_cap = vmce_profile_mcg_cap(&cfg->profile);
	vm->nr_vcpus = cfg->nr_vcpus;
	vm->fatal = cfg->fatal;
	vm->max_poisoned_pages =
		cfg->max_poisoned_pages ? cfg->max_poisoned_pages : DEFAULT_MAX_POISONED;
	pthread_mutex_init(&vm->inject_lock, NULL);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct vmce_vcpu *v = &vm->vcpus[i];

		v->vm = vm;
		v->index = i;
		pthread_mutex_init(&v->qlock, NULL);
		atomic_init(&v->started, true);
		vmce_vcpu_reset(v);
	}
	rc = vmce__hold_init(vm, err);
	if (rc == 0) {
		rc = vmce__policy_init(vm, err);
		if (rc)
			vmce__hold_fini(vm);
	}
	if (rc == 0) {
		rc = vmce__migrate_init(vm, err);
		if (rc) {
			vmce__policy_fini(vm);
			vmce__hold_fini(vm);
		}
	}
	if (rc) {
		for (unsigned i = 0; i < vm->nr_vcpus; i++)
			pthread_mutex_destroy(&vm->vcpus[i].qlock);
		pthread_mutex_destroy(&vm->inject_lock);
		free(vm->vcpus);
		free(vm);
		return rc;
	}
	*out = vm;
	return 0;
}

void vmce_vm_destroy(struct vmce_vm *vm)
{
	if (!vm)
		return;
	vmce__migrate_fini(vm);
	vmce__policy_fini(vm);
	vmce__hold_fini(vm);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		pthread_mutex_destroy(&vm->vcpus[i].qlock);
	pthread_mutex_destroy(&vm->inject_lock);
	free(vm->vcpus);
	free(vm);
}

const struct vmce_profile *vmce_vm_profile(const struct vmce_vm *vm)
{
	return &vm->profile;
}

unsigned vmce_vm_nr_vcpus(const struct vmce_vm *vm)
{
	return vm->nr_vcpus;
}

struct vmce_vcpu *vmce_vm_vcpu(struct vmce_vm *vm, unsigned index)
{
	return index < vm->nr_vcpus ? &vm->vcpus[index] : NULL;
}

unsigned vmce_vcpu_index(const struct vmce_vcpu *vcpu)
{
	return vcpu->index;
}

struct vmce_vm *vmce_vcpu_vm(struct vmce_vcpu *vcpu)
{
	return vcpu->vm;
}

void vmce_vcpu_set_started(struct vmce_vcpu *vcpu, bool started)
{
	atomic_store(&vcpu->started, started);
}

bool vmce_vcpu_started(const struct vmce_vcpu *vcpu)
{
	return atomic_load(&vcpu->started);
}

void vmce_vcpu_reset(struct vmce_vcpu *v)
{
	const struct vmce_profile *p = &v->vm->profile;

	vmce__write_begin(v);
	ST(v->mcg_status, 0);
	ST(v->mcg_ctl, (p->caps & VMCE_CAP_CTL) ? ~0ull : 0);
	ST(v->mcg_ext_ctl, 0);
	ST(v->amd_wren, false);
	for (unsigned i = 0; i < VMCE_MAX_BANKS; i++) {
		ST(v->bank[i].ctl, i < p->banks ? ~0ull : 0);
		ST(v->bank[i].status, 0);
		ST(v->bank[i].addr, 0);
		ST(v->bank[i].misc, 0);
		ST(v->bank[i].ctl2, 0);
	}
	vmce__write_end(v);
}

void vmce_vcpu_get_state(const struct vmce_vcpu *cv, struct vmce_vcpu_state *out)
{
	struct vmce_vcpu *v = (struct vmce_vcpu *)cv; /* atomics are read only */
	unsigned banks = v->vm->profile.banks;
	uint32_t s1, s2;

	memset(out, 0, sizeof(*out));
	do {
		while ((s1 = atomic_load_explicit(&v->seq, memory_order_acquire)) & 1)
			;
		out->mcg_status = LD(v->mcg_status);
		out->mcg_ctl = LD(v->mcg_ctl);
		out->mcg_ext_ctl = LD(v->mcg_ext_ctl);
		out->amd_mcstatus_wren = LD(v->amd_wren);
		for (unsigned i = 0; i < banks; i++) {
			out->bank[i].ctl = LD(v->bank[i].ctl);
			out->bank[i].status = LD(v->bank[i].status);
			out->bank[i].addr = LD(v->bank[i].addr);
			out->bank[i].misc = LD(v->bank[i].misc);
			out->bank[i].ctl2 = LD(v->bank[i].ctl2);
		}
		atomic_thread_fence(memory_order_acquire);
		s2 = atomic_load_explicit(&v->seq, memory_order_relaxed);
	} while (s1 != s2);
}

int vmce_vcpu_set_state(struct vmce_vcpu *v, const struct vmce_vcpu_state *st, struct vmce_err *err)
{
	const struct vmce_profile *p = &v->vm->profile;

	for (unsigned i = p->banks; i < VMCE_MAX_BANKS; i++) {
		const struct vmce_bank_state *b = &st->bank[i];

		if (b->ctl || b->status || b->addr || b->misc || b->ctl2)
			return vmce__fail(err, -EINVAL,
					  "bank %u has state but the profile has %u bank(s)", i,
					  p->banks);
	}
	if (!(p->caps & VMCE_CAP_CMCI))
		for (unsigned i = 0; i < p->banks; i++)
			if (st->bank[i].ctl2)
				return vmce__fail(err, -EINVAL,
						  "bank %u CTL2 is 0x%llx but the profile has no "
						  "cmci",
						  i, (unsigned long long)st->bank[i].ctl2);
	if (!(p->caps & VMCE_CAP_LMCE) && st->mcg_ext_ctl)
		return vmce__fail(err, -EINVAL, "MCG_EXT_CTL is 0x%llx but the profile has no lmce",
				  (unsigned long long)st->mcg_ext_ctl);
	if (!(p->caps & VMCE_CAP_CTL) && st->mcg_ctl)
		return vmce__fail(err, -EINVAL, "MCG_CTL is 0x%llx but the profile has no ctl",
				  (unsigned long long)st->mcg_ctl);
	if (st->amd_mcstatus_wren && p->vendor != VMCE_VENDOR_AMD)
		return vmce__fail(err, -EINVAL, "amd_mcstatus_wren is set on an intel profile");

	vmce__vcpu_store_state(v, st);
	return 0;
}

void vmce__vcpu_store_state(struct vmce_vcpu *v, const struct vmce_vcpu_state *st)
{
	vmce__write_begin(v);
	ST(v->mcg_status, st->mcg_status);
	ST(v->mcg_ctl, st->mcg_ctl);
	ST(v->mcg_ext_ctl, st->mcg_ext_ctl);
	ST(v->amd_wren, st->amd_mcstatus_wren);
	for (unsigned i = 0; i < VMCE_MAX_BANKS; i++) {
		ST(v->bank[i].ctl, st->bank[i].ctl);
		ST(v->bank[i].status, st->bank[i].status);
		ST(v->bank[i].addr, st->bank[i].addr);
		ST(v->bank[i].misc, st->bank[i].misc);
		ST(v->bank[i].ctl2, st->bank[i].ctl2);
	}
	vmce__write_end(v);
}
