// SPDX-License-Identifier: MIT
/*
 * The KVM backend's frame: creation, vCPU binding, kicks and injection from any thread.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "kvm_internal.h"

void vmce_kvm_config_default(struct vmce_kvm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->vm_fd = -1;
	cfg->mode = VMCE_KVM_MODE_USERSPACE;
	cfg->filter_default = KVM_MSR_FILTER_DEFAULT_ALLOW;
	cfg->kick_signal = SIGUSR2;
}

static void kick_handler(int sig)
{
	(void)sig; /* its only job is to make KVM_RUN return with EINTR */
}

static int setup_kick_signal(int sig, struct vmce_err *err)
{
	struct sigaction old, sa;

	if (sig <= 0 || sig >= NSIG || sig == SIGBUS || sig == SIGKILL || sig == SIGSTOP)
		return vmce__fail(err, -EINVAL, "kick signal %d is not usable", sig);
	if (sigaction(sig, NULL, &old))
		return vmce__fail(err, -errno, "sigaction(%d): %s", sig, strerror(errno));
	if (!(old.sa_flags & SA_SIGINFO) &&
	    (old.sa_handler == SIG_DFL || old.sa_handler == SIG_IGN)) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = kick_handler;
		sigemptyset(&sa.sa_mask);
		if (sigaction(sig, &sa, NULL))
			return vmce__fail(err, -errno, "sigaction(%d): %s", sig, strerror(errno));
	}
	return 0;
}

static void kick_cb(unsigned vcpu, void *opaque)
{
	vmce_kvm_kick(opaque, vcpu);
}

int vmce_kvm_create(struct vmce_vm *vm, const struct vmce_kvm_config *cfg, struct vmce_kvm **out,
		    struct vmce_err *err)
{
	struct kvm_enable_cap cap;
	struct vmce_kvm *k;
	uint64_t extra;
	int rc;

	if (!vm || !cfg || !out)
		return vmce__fail(err, -EINVAL,
				  "vmce_kvm_create: vm, config and result are required");
	*out = NULL;
	if (cfg->vm_fd < 0)
		return vmce__fail(err, -EBADF, "vmce_kvm_create: vm_fd %d is not a KVM VM",
				  cfg->vm_fd);
	if (cfg->mode != VMCE_KVM_MODE_USERSPACE && cfg->mode != VMCE_KVM_MODE_HYBRID)
		return vmce__fail(err, -EINVAL, "unknown KVM backend mode %d", (int)cfg->mode);
	extra = cfg->user_space_msr_reasons;
	if (extra & ~(uint64_t)(KVM_MSR_EXIT_REASON_INVAL | KVM_MSR_EXIT_REASON_UNKNOWN |
				KVM_MSR_EXIT_REASON_FILTER))
		return vmce__fail(err, -EINVAL, "unknown user-space MSR exit reasons 0x%llx",
				  (unsigned long long)extra);

	k = calloc(1, sizeof(*k));
	if (!k)
		return vmce__fail(err, -ENOMEM, "out of memory for the KVM backend");
	k->kvs = calloc(vm->nr_vcpus, sizeof(*k->kvs));
	if (!k->kvs) {
		free(k);
		return vmce__fail(err, -ENOMEM, "out of memory for the KVM backend's vCPUs");
	}
	k->vm = vm;
	k->vm_fd = cfg->vm_fd;
	k->mode = cfg->mode;
	k->kick_signal = cfg->kick_signal ? cfg->kick_signal : SIGUSR2;
	k->msr_reasons = extra | KVM_MSR_EXIT_REASON_FILTER;
	pthread_mutex_init(&k->lock, NULL);

	rc = setup_kick_signal(k->kick_signal, err);
	if (rc)
		goto fail;
	if (k->mode == VMCE_KVM_MODE_HYBRID) {
		rc = vmce__kvm_hybrid_setup(k, err);
		if (rc)
			goto fail;
	} else {
		vmce__kvm_user_setup(k);
	}
	rc = ioctl(k->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_USER_SPACE_MSR);
	if (rc <= 0) {
		rc = vmce__fail(err, -ENOTSUP,
				"this KVM lacks KVM_CAP_X86_USER_SPACE_MSR (user-space MSR exits)");
		goto fail;
	}
	memset(&cap, 0, sizeof(cap));
	cap.cap = KVM_CAP_X86_USER_SPACE_MSR;
	cap.args[0] = k->msr_reasons;
	if (ioctl(k->vm_fd, KVM_ENABLE_CAP, &cap)) {
		rc = vmce__fail(err, -errno, "KVM_ENABLE_CAP(KVM_CAP_X86_USER_SPACE_MSR): %s",
				strerror(errno));
		goto fail;
	}
	rc = vmce_kvm_set_vmm_filter(k, cfg->filter_default, cfg->filter_ranges,
				     cfg->nr_filter_ranges, err);
	if (rc)
		goto fail;
	vmce__kvm_sigbus_register(k);
	/* Records held until MCIP clears are released by whichever thread sees it clear: the
	 * other vCPUs they reach are kicked like after an injection. */
	vmce_set_kick_callback(vm, kick_cb, k);
	*out = k;
	return 0;
fail:
	vmce_kvm_destroy(k);
	return rc;
}

void vmce_kvm_destroy(struct vmce_kvm *k)
{
	if (!k)
		return;
	vmce_set_kick_callback(k->vm, NULL, NULL);
	vmce__kvm_sigbus_unregister(k);
	for (unsigned i = 0; i < k->vm->nr_vcpus; i++)
		free(k->kvs[i]);
	for (unsigned i = 0; i < VMCE_KVM_MAX_VMM_RANGES; i++)
		free(k->vmm_bitmaps[i]);
	pthread_mutex_destroy(&k->lock);
	free(k->kvs);
	free(k);
}

struct vmce_vm *vmce_kvm_vm(struct vmce_kvm *k)
{
	return k->vm;
}

enum vmce_kvm_mode vmce_kvm_mode(const struct vmce_kvm *k)
{
	return k->mode;
}

uint64_t vmce_kvm_kernel_mcg_cap(const struct vmce_kvm *k)
{
	return k->mode == VMCE_KVM_MODE_HYBRID ? k->kernel_mcg_cap : 0;
}

int vmce_kvm_vcpu_init(struct vmce_kvm *k, unsigned index, int vcpu_fd, struct kvm_run *run,
		       struct vmce_kvm_vcpu **out, struct vmce_err *err)
{
	struct vmce_kvm_vcpu *kv;
	int rc;

	if (!k || !run || !out)
		return vmce__fail(err, -EINVAL,
				  "vmce_kvm_vcpu_init: backend, run and result are "
				  "required");
	*out = NULL;
	if (index >= k->vm->nr_vcpus)
		return vmce__fail(err, -EINVAL, "vCPU index %u is out of range (the VM has %u)",
				  index, k->vm->nr_vcpus);
	if (vcpu_fd < 0)
		return vmce__fail(err, -EBADF, "vCPU %u: fd %d is not a KVM vCPU", index, vcpu_fd);
	kv = calloc(1, sizeof(*kv));
	if (!kv)
		return vmce__fail(err, -ENOMEM, "out of memory for vCPU %u", index);
	kv->k = k;
	kv->v = vmce_vm_vcpu(k->vm, index);
	kv->index = index;
	kv->fd = vcpu_fd;
	kv->run = run;
	kv->thread = pthread_self();
	kv->tid = gettid();
	rc = k->mode == VMCE_KVM_MODE_HYBRID ? vmce__kvm_hybrid_vcpu_init(kv, err)
					     : vmce__kvm_user_vcpu_init(kv, err);
	if (rc) {
		free(kv);
		return rc;
	}
	pthread_mutex_lock(&k->lock);
	if (k->kvs[index]) {
		pthread_mutex_unlock(&k->lock);
		free(kv);
		return vmce__fail(err, -EBUSY, "vCPU %u is already bound to a thread", index);
	}
	k->kvs[index] = kv;
	pthread_mutex_unlock(&k->lock);
	vmce__kvm_sigbus_bind_thread(kv);
	*out = kv;
	return 0;
}

void vmce_kvm_vcpu_fini(struct vmce_kvm_vcpu *kv)
{
	struct vmce_kvm *k;

	if (!kv)
		return;
	k = kv->k;
	vmce__kvm_sigbus_bind_thread(NULL);
	pthread_mutex_lock(&k->lock);
	k->kvs[kv->index] = NULL;
	pthread_mutex_unlock(&k->lock);
	free(kv);
}

struct vmce_vcpu *vmce_kvm_vcpu_model(struct vmce_kvm_vcpu *kv)
{
	return kv->v;
}

void vmce__kvm_kick_locked(struct vmce_kvm *k, unsigned index)
{
	struct vmce_kvm_vcpu *kv = k->kvs[index];

	/* The vCPU's own thread applies its records in its next vmce_kvm_pre_run() anyway. */
	if (!kv || pthread_equal(kv->thread, pthread_self()))
		return;
	/* Seen by a KVM_RUN that has not started yet; the signal ends one in progress. */
	__atomic_store_n(&kv->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_kill(kv->thread, k->kick_signal);
}

void vmce_kvm_kick(struct vmce_kvm *k, unsigned index)
{
	if (!k || index >= k->vm->nr_vcpus)
		return;
	pthread_mutex_lock(&k->lock);
	vmce__kvm_kick_locked(k, index);
	pthread_mutex_unlock(&k->lock);
}

void vmce_kvm_kick_pending(struct vmce_kvm *k)
{
	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	for (unsigned i = 0; i < k->vm->nr_vcpus; i++)
		if (vmce_vcpu_pending(&k->vm->vcpus[i]))
			vmce__kvm_kick_locked(k, i);
	pthread_mutex_unlock(&k->lock);
}

int vmce_kvm_inject(struct vmce_kvm *k, const struct vmce_host_error *e, struct vmce_plan *plan,
		    struct vmce_err *err)
{
	int rc;

	if (!k || !e)
		return vmce__fail(err, -EINVAL, "vmce_kvm_inject: backend and error are required");
	rc = vmce_handle_error(k->vm, e, plan, err);
	vmce_kvm_kick_pending(k);
	return rc;
}
