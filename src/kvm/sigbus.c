// SPDX-License-Identifier: MIT
/*
 * Host SIGBUS: the kernel tells the VMM about poisoned memory with SIGBUS BUS_MCEERR_AR (this
 * thread consumed it) or BUS_MCEERR_AO (found, not consumed).  The handler only records into
 * preallocated storage with lock-free atomics (async-signal-safe); vCPU threads and
 * vmce_kvm_sigbus_process() turn the records into host errors later.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "kvm_internal.h"

static struct vmce_kvm *_Atomic registry[VMCE_KVM_MAX_BACKENDS];
static __thread struct vmce_kvm_vcpu *tls_kv __attribute__((tls_model("initial-exec")));

/* Process-wide ring for AO signals and ARs that no vCPU slot took. */
struct ring_rec {
	_Atomic unsigned state; /* 0 free, 1 being written, 2 recorded, 3 being read */
	int code;
	uint64_t addr;
	unsigned lsb;
	struct vmce_kvm *k; /* backend of the vCPU thread that got it, or NULL */
	int vcpu;
};
static struct ring_rec ring[VMCE_KVM_SIGBUS_RING];
static _Atomic unsigned ring_count;
static _Atomic uint64_t ring_lost;

static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static bool installed;
static struct sigaction old_action;

void vmce__kvm_sigbus_register(struct vmce_kvm *k)
{
	for (unsigned i = 0; i < VMCE_KVM_MAX_BACKENDS; i++) {
		struct vmce_kvm *expect = NULL;

		if (atomic_compare_exchange_strong(&registry[i], &expect, k))
			return;
	}
	/* More VMs than slots: their AO signals are matched only through vCPU slots. */
}

void vmce__kvm_sigbus_unregister(struct vmce_kvm *k)
{
	for (unsigned i = 0; i < VMCE_KVM_MAX_BACKENDS; i++) {
		struct vmce_kvm *expect = k;

		atomic_compare_exchange_strong(&registry[i], &expect, NULL);
	}
}

void vmce__kvm_sigbus_bind_thread(struct vmce_kvm_vcpu *kv)
{
	tls_kv = kv;
}

static bool ring_put(int code, uint64_t addr, unsigned lsb, struct vmce_kvm_vcpu *kv)
{
	for (unsigned i = 0; i < VMCE_KVM_SIGBUS_RING; i++) {
		struct ring_rec *r = &ring[i];
		unsigned expect = 0;

		if (!atomic_compare_exchange_strong(&r->state, &expect, 1))
			continue;
		r->code = code;
		r->addr = addr;
		r->lsb = lsb;
		r->k = kv ? kv->k : NULL;
		r->vcpu = kv ? (int)kv->index : -1;
		atomic_store_explicit(&r->state, 2, memory_order_release);
		atomic_fetch_add(&ring_count, 1);
		return true;
	}
	atomic_fetch_add(&ring_lost, 1);
	return false;
}

bool vmce_kvm_sigbus_record(int sig, const siginfo_t *si)
{
	struct vmce_kvm_vcpu *kv = tls_kv;
	uint64_t addr;
	unsigned lsb;

	if (sig != SIGBUS || !si || (si->si_code != BUS_MCEERR_AR && si->si_code != BUS_MCEERR_AO))
		return false;
	addr = (uint64_t)(uintptr_t)si->si_addr;
	lsb = (unsigned)si->si_addr_lsb;
	if (si->si_code == BUS_MCEERR_AR && kv) {
		unsigned expect = 0;

		if (atomic_compare_exchange_strong(&kv->ar.state, &expect, 1)) {
			kv->ar.code = si->si_code;
			kv->ar.addr = addr;
			kv->ar.lsb = lsb;
			kv->ar.kv = kv;
			atomic_store_explicit(&kv->ar.state, 2, memory_order_release);
			return true;
		}
	}
	ring_put(si->si_code, addr, lsb, si->si_code == BUS_MCEERR_AR ? kv : NULL);
	return true;
}

static void sigbus_handler(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;

	if (vmce_kvm_sigbus_record(sig, si)) {
		errno = saved;
		return;
	}
	if (old_action.sa_flags & SA_SIGINFO) {
		old_action.sa_sigaction(sig, si, uc);
	} else if (old_action.sa_handler == SIG_DFL) {
		struct sigaction dfl;

		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		sigemptyset(&dfl.sa_mask);
		sigaction(SIGBUS, &dfl, NULL);
		raise(SIGBUS); /* delivered with the default action once this handler returns */
	} else if (old_action.sa_handler != SIG_IGN) {
		old_action.sa_handler(sig);
	}
	errno = saved;
}

int vmce_kvm_sigbus_install(struct vmce_err *err)
{
	struct sigaction sa;
	int rc = 0;

	pthread_mutex_lock(&install_lock);
	if (!installed) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = sigbus_handler;
		sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
		sigemptyset(&sa.sa_mask);
		if (sigaction(SIGBUS, &sa, &old_action))
			rc = vmce__fail(err, -errno, "sigaction(SIGBUS): %s", strerror(errno));
		else
			installed = true;
	}
	pthread_mutex_unlock(&install_lock);
	return rc;
}

static bool registered(struct vmce_kvm *k)
{
	for (unsigned i = 0; i < VMCE_KVM_MAX_BACKENDS; i++)
		if (k && atomic_load(&registry[i]) == k)
			return true;
	return false;
}

/* The backend whose guest memory holds hva; else `fallback`, else the first registered one (so
 * that the refusal is logged somewhere). */
static struct vmce_kvm *backend_for(uint64_t hva, struct vmce_kvm *fallback)
{
	struct vmce_kvm *first = NULL;
	uint64_t gpa;

	for (unsigned i = 0; i < VMCE_KVM_MAX_BACKENDS; i++) {
		struct vmce_kvm *k = atomic_load(&registry[i]);

		if (!k)
			continue;
		if (!first)
			first = k;
		if (vmce_translate(k->vm, VMCE_ADDR_HVA, hva, &gpa) == 0)
			return k;
	}
	return fallback ? fallback : first;
}

static void forward(struct vmce_kvm *k, int code, uint64_t addr, unsigned lsb, int vcpu)
{
	struct vmce_host_error e;

	vmce_host_error_init(&e);
	e.origin = code == BUS_MCEERR_AR ? VMCE_ORIGIN_SIGBUS_AR : VMCE_ORIGIN_SIGBUS_AO;
	e.addr_kind = VMCE_ADDR_HVA;
	e.addr = addr;
	e.addr_lsb = lsb ? lsb : 12;
	e.vcpu = vcpu;
	vmce_kvm_inject(k, &e, NULL, NULL); /* outcomes are in the VM's event log */
}

unsigned vmce_kvm_sigbus_process(struct vmce_kvm *k, uint64_t *lost)
{
	unsigned done = 0;

	if (lost)
		*lost = atomic_exchange(&ring_lost, 0);
	if (!atomic_load(&ring_count))
		return 0;
	for (unsigned i = 0; i < VMCE_KVM_SIGBUS_RING; i++) {
		struct ring_rec *r = &ring[i];
		struct vmce_kvm *target;
		unsigned expect = 2;
		int code, vcpu;
		uint64_t addr;
		unsigned lsb;

		if (!atomic_compare_exchange_strong(&r->state, &expect, 3))
			continue;
		code = r->code;
		addr = r->addr;
		lsb = r->lsb;
		target = r->k;
		vcpu = r->vcpu;
		atomic_store_explicit(&r->state, 0, memory_order_release);
		atomic_fetch_sub(&ring_count, 1);
		if (!registered(target)) {
			target = backend_for(addr, k);
			vcpu = -1;
		}
		done++;
		if (target)
			forward(target, code, addr, lsb, vcpu);
	}
	return done;
}

void vmce__kvm_sigbus_poll(struct vmce_kvm_vcpu *kv)
{
	if (atomic_load_explicit(&kv->ar.state, memory_order_acquire) == 2) {
		int code = kv->ar.code;
		uint64_t addr = kv->ar.addr;
		unsigned lsb = kv->ar.lsb;

		atomic_store_explicit(&kv->ar.state, 0, memory_order_release);
		forward(kv->k, code, addr, lsb, (int)kv->index);
	}
	if (atomic_load_explicit(&ring_count, memory_order_relaxed))
		vmce_kvm_sigbus_process(kv->k, NULL);
}
