// SPDX-License-Identifier: MIT
/*
 * kvm_sigbus: real SIGBUS signals (rt_tgsigqueueinfo with si_code BUS_MCEERR_AR/AO and si_addr)
 * caught by the backend's handler and turned into guest machine checks, or refused when the
 * address is outside guest memory.  This host cannot poison pages; Linux lets a process send
 * itself such signals.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <pthread.h>

#include "kvmtest.h"

#define PROFILE "intel,banks=2,ser,tes,cmci"

/* Plain checks: cmocka replaces the SIGBUS handler while a test runs, so this test has its own
 * runner and keeps the handler the backend installed. */
#define assert_true(c)                                                                             \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			printf("FAILED %s:%d: %s (errno %s)\n", __FILE__, __LINE__, #c,            \
			       strerror(errno));                                                   \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)
#define assert_false(c)	   assert_true(!(c))
#define assert_non_null(p) assert_true((p) != NULL)
#define assert_int_equal(a, b)                                                                     \
	do {                                                                                       \
		unsigned long long a_ = (unsigned long long)(a), b_ = (unsigned long long)(b);     \
		if (a_ != b_) {                                                                    \
			printf("FAILED %s:%d: %s == %s: 0x%llx != 0x%llx\n", __FILE__, __LINE__,   \
			       #a, #b, a_, b_);                                                    \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

static int send_sigbus(pid_t tid, int code, void *addr)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	si.si_signo = SIGBUS;
	si.si_code = code;
	si.si_addr = addr;
	si.si_addr_lsb = 12;
	return (int)syscall(SYS_rt_tgsigqueueinfo, getpid(), tid, SIGBUS, &si);
}

struct vt {
	struct kt t;
	_Atomic int ready;
	_Atomic pid_t tid;
	enum tv_stop stop;
	unsigned spin;
	/* When ar: the vCPU thread gets BUS_MCEERR_AR at its first HLT exit, for guest memory
	 * + ar_offset, or for ar_outside when set. */
	bool ar;
	size_t ar_offset;
	void *ar_outside;
	int ar_rc;
};

static void *vcpu_thread(void *arg)
{
	struct vt *x = arg;

	if (kt_start(&x->t, KT_USER, PROFILE)) {
		x->ready = -1;
		return NULL;
	}
	x->tid = gettid();
	if (x->ar)
		tv_cmd(&x->t.tv, TV_HLT, 0, 0, 0, 0);
	tv_cmd(&x->t.tv, TV_SPIN, 1, x->spin, 0, 0);
	x->ready = 1;
	x->stop = kt_run(&x->t);
	if (x->ar && x->stop == TV_STOP_HLT) {
		void *addr = x->ar_outside ? x->ar_outside : x->t.tv.mem + x->ar_offset;

		/* What KVM does when the vCPU touches a poisoned page: SIGBUS to this thread. */
		x->ar_rc = send_sigbus(gettid(), BUS_MCEERR_AR, addr);
		x->stop = kt_run(&x->t);
	}
	return NULL;
}

static struct vt *launch(unsigned spin, bool ar, size_t ar_offset, void *ar_outside, pthread_t *th)
{
	struct vt *x = calloc(1, sizeof(*x));

	assert_non_null(x);
	x->spin = spin;
	x->ar = ar;
	x->ar_offset = ar_offset;
	x->ar_outside = ar_outside;
	assert_int_equal(pthread_create(th, NULL, vcpu_thread, x), 0);
	while (!x->ready)
		usleep(1000);
	assert_int_equal(x->ready, 1);
	usleep(30000); /* inside KVM_RUN */
	return x;
}

static bool has_event(struct vmce_vm *vm, enum vmce_event_kind kind, const char *text)
{
	struct vmce_event ev[64];
	size_t n = vmce_events_read(vm, 0, ev, 64);

	for (size_t i = 0; i < n; i++)
		if (ev[i].kind == kind && (!text || strstr(ev[i].reason, text)))
			return true;
	return false;
}

static void last_report(struct kt *t, uint64_t r[5])
{
	const uint32_t *p;

	assert_true(t->tv.nmcrep >= 9);
	p = &t->tv.mcrep[t->tv.nmcrep - 9];
	for (int i = 0; i < 4; i++)
		r[i] = ((uint64_t)p[2 * i + 1] << 32) | p[2 * i];
	r[4] = p[8];
}

/* AR on the vCPU thread inside KVM_RUN: the vCPU's own slot, SRAR into the guest. */
static void test_ar_vcpu_thread(void **state)
{
	pthread_t th;
	struct vt *x;
	uint64_t r[5];

	(void)state;
	x = launch(1000, true, 0x301234, NULL, &th);
	pthread_join(th, NULL);
	assert_int_equal(x->ar_rc, 0);
	assert_int_equal(x->stop, TV_STOP_IDLE);
	assert_int_equal(x->t.tv.mark[0], TV_MARK_MC_IN);
	assert_int_equal(x->t.tv.mark_nres[0], 0); /* right at the next entry */
	last_report(&x->t, r);
	assert_int_equal(r[0], VMCE_MCG_STATUS_MCIP | VMCE_MCG_STATUS_RIPV | VMCE_MCG_STATUS_EIPV);
	assert_true(r[1] & VMCE_MCI_STATUS_AR);
	assert_true(r[1] & VMCE_MCI_STATUS_S);
	assert_int_equal(r[2], 0x301000);
	assert_int_equal(r[3], 0x8c);
	assert_true(vmce_poison_contains(x->t.vm, 0x301000));
	assert_true(has_event(x->t.vm, VMCE_EVENT_FORWARDED, NULL));
	kt_stop(&x->t);
	free(x);
}

/* AO from another thread: the ring, processed by vmce_kvm_sigbus_process(), SRAO into vCPU 0. */
static void test_ao_any_thread(void **state)
{
	uint64_t lost = 99, r[5];
	pthread_t th;
	struct vt *x;

	(void)state;
	x = launch(400000, false, 0, NULL, &th);
	assert_int_equal(send_sigbus(gettid(), BUS_MCEERR_AO, x->t.tv.mem + 0x2ff000), 0);
	/* 1, or 0 when the vCPU thread's own poll got there first */
	assert_true(vmce_kvm_sigbus_process(x->t.k, &lost) <= 1);
	assert_int_equal(lost, 0);
	pthread_join(th, NULL);
	assert_int_equal(x->stop, TV_STOP_IDLE);
	assert_int_equal(x->t.tv.mark[0], TV_MARK_MC_IN);
	last_report(&x->t, r);
	assert_int_equal(r[0], VMCE_MCG_STATUS_MCIP | VMCE_MCG_STATUS_RIPV);
	assert_false(r[1] & VMCE_MCI_STATUS_AR);
	assert_true(r[1] & VMCE_MCI_STATUS_S);
	assert_int_equal(r[2], 0x2ff000);
	kt_stop(&x->t);
	free(x);
}

/* Outside guest memory (AR on the vCPU thread, AO anywhere): refused, logged, no #MC. */
static void test_outside_guest_memory(void **state)
{
	static char not_guest[8192];
	pthread_t th;
	struct vt *x;

	(void)state;
	x = launch(100000, true, 0, not_guest + 100, &th);
	assert_int_equal(send_sigbus(gettid(), BUS_MCEERR_AO, not_guest + 5000), 0);
	assert_true(vmce_kvm_sigbus_process(x->t.k, NULL) <= 1);
	pthread_join(th, NULL);
	assert_int_equal(x->ar_rc, 0);
	vmce_kvm_sigbus_process(x->t.k, NULL);
	assert_int_equal(x->stop, TV_STOP_IDLE);
	assert_int_equal(x->t.tv.nmark, 0); /* no #MC */
	assert_true(has_event(x->t.vm, VMCE_EVENT_DROPPED, "not guest memory"));
	assert_int_equal(vmce_poison_count(x->t.vm), 0);
	struct vmce_counters c;
	vmce_get_counters(x->t.vm, &c);
	assert_int_equal(c.dropped, 2);
	assert_int_equal(c.forwarded, 0);
	kt_stop(&x->t);
	free(x);
}

/* The ring is bounded: signals beyond it are counted as lost, never overwrite. */
static void test_ring_full(void **state)
{
	struct kt t;
	uint64_t lost = 0;
	unsigned n;

	(void)state;
	assert_int_equal(kt_start(&t, KT_USER, PROFILE), 0);
	for (int i = 0; i < VMCE_KVM_SIGBUS_RING + 6; i++)
		assert_int_equal(send_sigbus(gettid(), BUS_MCEERR_AO, (char *)&t + i), 0);
	n = vmce_kvm_sigbus_process(t.k, &lost);
	assert_int_equal(n, VMCE_KVM_SIGBUS_RING);
	assert_int_equal(lost, 6);
	assert_int_equal(vmce_kvm_sigbus_process(t.k, &lost), 0);
	assert_int_equal(lost, 0);
	kt_stop(&t);
}

static _Atomic int old_handler_calls;
static _Atomic int old_handler_code;

static void old_handler(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (sig == SIGBUS) {
		old_handler_calls++;
		old_handler_code = si->si_code;
	}
}

/* Other SIGBUS codes go to the handler that was there before. */
static void test_chain(void **state)
{
	(void)state;
	assert_int_equal(send_sigbus(gettid(), BUS_ADRERR, (void *)0x1000), 0);
	assert_int_equal(old_handler_calls, 1);
	assert_int_equal(old_handler_code, BUS_ADRERR);
	assert_true(vmce_kvm_sigbus_record(SIGSEGV, NULL) == false);
}

#define RUN(fn)                                                                                    \
	do {                                                                                       \
		printf("[ RUN  ] %s\n", #fn);                                                      \
		fn(NULL);                                                                          \
		printf("[  OK  ] %s\n", #fn);                                                      \
	} while (0)

int main(void)
{
	struct sigaction sa;
	struct vmce_err err;

	if (!tv_kvm_available())
		return 77;
	if (getpid() != gettid()) {
		printf("must run on the main thread: rt_tgsigqueueinfo with a kernel si_code is "
		       "only "
		       "allowed from the thread whose id is the process id\n");
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = old_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	if (vmce_kvm_sigbus_install(&err) || vmce_kvm_sigbus_install(&err)) {
		printf("vmce_kvm_sigbus_install: %s\n", err.msg);
		return 1;
	}
	RUN(test_ar_vcpu_thread);
	RUN(test_ao_any_thread);
	RUN(test_outside_guest_memory);
	RUN(test_ring_full);
	RUN(test_chain);
	printf("all SIGBUS tests passed\n");
	return 0;
}
