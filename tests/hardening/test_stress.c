// SPDX-License-Identifier: MIT
/*
 * hardening_stress: 8 injector threads call vmce_handle_error() while 4 vCPU threads serve MSR
 * accesses and apply their queues with vmce_vcpu_deliver(), acting as the guest's #MC handler.
 * 10^6 operations in all (injections + MSR accesses + deliveries), in every build.  Each
 * injection is an SRAR on one vCPU (no broadcast) whose guest page is its id and whose MCACOD
 * (data load / instruction fetch) is the id's parity.  Checked:
 *   - every injection is delivered exactly once, on its own vCPU;
 *   - no torn record: every bank the guest reads, and every snapshot another thread takes
 *     (vmce_vcpu_get_state), has STATUS, ADDR and MISC of one and the same injection;
 *   - the counters and the event sequence add up (forwarded = delivered = injections; every
 *     refused attempt, a full queue, is logged and counted; an SRAR for a vCPU that still has
 *     an #MC queued is held, logged "held", and forwarded once that one is handled).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <vmce/policy.h>

#include "sim_deliver.h"

#define NR_VCPUS     4
#define NR_INJECTORS 8
/* The same count under ThreadSanitizer: it stays a few seconds. */
#define SCALE	     1
#define TOTAL_OPS    (1000000ul / SCALE)
#define PER_INJECTOR (12500u / SCALE)
#define NR_INJECT    (NR_INJECTORS * PER_INJECTOR)
/* MSR accesses per vCPU thread, so that the total reaches TOTAL_OPS. */
#define MSR_PER_VCPU ((TOTAL_OPS - 2ul * NR_INJECT) / NR_VCPUS)

#define ST_SRAR                                                                                    \
	(VMCE_MCI_STATUS_VAL | VMCE_MCI_STATUS_UC | VMCE_MCI_STATUS_EN | VMCE_MCI_STATUS_MISCV |   \
	 VMCE_MCI_STATUS_ADDRV | VMCE_MCI_STATUS_S | VMCE_MCI_STATUS_AR)
#define MISC_PAGE ((2ull << 6) | 12)

static struct vmce_vm *vm;

static atomic_uint seen[NR_INJECT];
static atomic_uint injectors_done;
static atomic_ulong refused, msr_ops, deliveries, snapshots;
static atomic_int failed;
static char fail_text[256];

static void fail_once(const char *fmt, ...)
{
	va_list ap;

	if (atomic_exchange(&failed, 1))
		return;
	va_start(ap, fmt);
	vsnprintf(fail_text, sizeof(fail_text), fmt, ap);
	va_end(ap);
}

/* A valid bank record must be one injection's: returns its id, or -1 (none), or fails. */
static long record_id(uint64_t status, uint64_t addr, uint64_t misc, const char *who)
{
	uint64_t id;

	if (!(status & VMCE_MCI_STATUS_VAL))
		return -1; /* empty, or cleared by the handler (which leaves ADDR and MISC) */
	id = addr >> 12;
	if ((status & ~0xffffull) != ST_SRAR || (addr & 0xfff) || misc != MISC_PAGE ||
	    id >= NR_INJECT || (status & 0xffff) != ((id & 1) ? 0x150u : 0x134u)) {
		fail_once("%s: torn or foreign record: STATUS %#" PRIx64 " ADDR %#" PRIx64
			  " MISC %#" PRIx64,
			  who, status, addr, misc);
		return -1;
	}
	return (long)id;
}

static void *injector(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;
	struct vmce_vcpu_state st;

	for (unsigned k = 0; k < PER_INJECTOR && !atomic_load(&failed); k++) {
		unsigned id = me * PER_INJECTOR + k;
		struct vmce_host_error e;
		struct vmce_plan plan;
		struct vmce_err err;
		int rc;

		vmce_host_error_init(&e);
		e.origin = VMCE_ORIGIN_INJECT;
		e.addr_kind = VMCE_ADDR_GPA;
		e.addr = (uint64_t)id << 12;
		e.status = ST_SRAR | ((id & 1) ? 0x150u : 0x134u);
		e.misc = MISC_PAGE;
		e.vcpu = (int)(id % NR_VCPUS);
		e.no_broadcast = true;
		/* -ENOBUFS: the held-record queue is full (SRARs waiting for their vCPU). */
		while ((rc = vmce_handle_error(vm, &e, &plan, &err)) == -EBUSY || rc == -ENOBUFS) {
			atomic_fetch_add(&refused, 1);
			/* A full queue: let the vCPUs drain it (the held-record queue takes 1024
			 * records, so waiting beats retrying at once). */
			if (rc == -ENOBUFS)
				nanosleep(&(struct timespec){0, 100000}, NULL);
			else
				sched_yield();
		}
		if (rc || plan.verdict != VMCE_VERDICT_FORWARD) {
			fail_once("injection %u: %d %s %s", id, rc, rc ? err.msg : "", plan.reason);
			break;
		}
		if (k % 16 == 0) {
			vmce_vcpu_get_state(vmce_vm_vcpu(vm, k % NR_VCPUS), &st);
			record_id(st.bank[1].status, st.bank[1].addr, st.bank[1].misc, "snapshot");
			atomic_fetch_add(&snapshots, 1);
		}
	}
	atomic_fetch_add(&injectors_done, 1);
	return NULL;
}

static void *vcpu_thread(void *arg)
{
	unsigned me = (unsigned)(uintptr_t)arg;
	struct vmce_vcpu *vc = vmce_vm_vcpu(vm, me);
	unsigned long ops = 0;
	uint64_t v, status, addr, misc;

	for (;;) {
		struct vmce_delivery d;

		/* The guest's ordinary MSR traffic (a poller, the OS reading MCG_CAP...). */
		for (int i = 0; i < 8 && ops < MSR_PER_VCPU; i++, ops++) {
			static const uint32_t idx[] = {VMCE_MSR_MCG_CAP, VMCE_MSR_MCG_STATUS,
						       VMCE_MSR_MCi_CTL(1), VMCE_MSR_MCi_CTL2(1)};

			if (vmce_rdmsr(vc, idx[i & 3], &v) != VMCE_MSR_OK)
				fail_once("vcpu %u: RDMSR %#x failed", me, idx[i & 3]);
		}
		if (sim_deliver(vc, true, &d) == 1) {
			long id;

			atomic_fetch_add(&deliveries, 1);
			if (d.action != VMCE_ACTION_MC) {
				fail_once("vcpu %u: action %d: %s", me, (int)d.action, d.reason);
				break;
			}
			/* The handler: read the bank, then clear it and MCG_STATUS. */
			vmce_rdmsr(vc, VMCE_MSR_MCi_STATUS(1), &status);
			vmce_rdmsr(vc, VMCE_MSR_MCi_ADDR(1), &addr);
			vmce_rdmsr(vc, VMCE_MSR_MCi_MISC(1), &misc);
			ops += 3;
			id = record_id(status, addr, misc, "guest read");
			if (id < 0) {
				fail_once("vcpu %u: #MC without a record", me);
				break;
			}
			if ((unsigned long)id % NR_VCPUS != me)
				fail_once("vcpu %u got injection %ld, meant for vcpu %lu", me, id,
					  (unsigned long)id % NR_VCPUS);
			if (atomic_fetch_add(&seen[id], 1))
				fail_once("injection %ld delivered twice", id);
			vmce_wrmsr(vc, VMCE_MSR_MCi_STATUS(1), 0);
			vmce_wrmsr(vc, VMCE_MSR_MCG_STATUS, 0);
			ops += 2;
		} else if (atomic_load(&injectors_done) == NR_INJECTORS && ops >= MSR_PER_VCPU &&
			   !vmce_vcpu_pending(vc)) {
			break;
		} else if (ops >= MSR_PER_VCPU) {
			sched_yield(); /* the MSR budget is spent: only deliveries remain */
		}
		if (atomic_load(&failed))
			break;
	}
	atomic_fetch_add(&msr_ops, ops);
	return NULL;
}

static void test_stress(void **state)
{
	pthread_t inj[NR_INJECTORS], vcpu[NR_VCPUS];
	struct vmce_vm_config cfg;
	struct vmce_counters c;
	struct vmce_hold_status hs;
	struct vmce_err err = {{0}};
	unsigned long total, missing = 0;

	(void)state;
	vmce_vm_config_default(&cfg);
	cfg.nr_vcpus = NR_VCPUS;
	cfg.max_poisoned_pages = NR_INJECT;
	assert_int_equal(vmce_vm_create(&cfg, &vm, &err), 0);
	assert_int_equal(vmce_memmap_add(vm, 0, (uint64_t)NR_INJECT << 12, 0x7f0000000000ull,
					 VMCE_NO_HPA, &err),
			 0);
	for (unsigned i = 0; i < NR_VCPUS; i++)
		assert_int_equal(pthread_create(&vcpu[i], NULL, vcpu_thread, (void *)(uintptr_t)i),
				 0);
	for (unsigned i = 0; i < NR_INJECTORS; i++)
		assert_int_equal(pthread_create(&inj[i], NULL, injector, (void *)(uintptr_t)i), 0);
	for (unsigned i = 0; i < NR_INJECTORS; i++)
		pthread_join(inj[i], NULL);
	for (unsigned i = 0; i < NR_VCPUS; i++)
		pthread_join(vcpu[i], NULL);
	if (atomic_load(&failed))
		fail_msg("%s", fail_text);
	for (unsigned i = 0; i < NR_INJECT; i++)
		if (atomic_load(&seen[i]) != 1)
			missing++;
	if (missing)
		fail_msg("%lu injection(s) not delivered exactly once", missing);
	vmce_get_counters(vm, &c);
	assert_int_equal(c.forwarded, NR_INJECT);
	assert_int_equal(c.delivered, NR_INJECT);
	assert_int_equal(c.refused, atomic_load(&refused));
	vmce_hold_status(vm, &hs);
	assert_int_equal(hs.count, 0);
	assert_int_equal(hs.released, hs.held);
	assert_int_equal(hs.expired, 0);
	assert_int_equal(vmce_events_last_seq(vm), c.forwarded + c.delivered + c.refused + hs.held);
	assert_int_equal(vmce_poison_count(vm), NR_INJECT);
	total = NR_INJECT + atomic_load(&deliveries) + atomic_load(&msr_ops);
	print_message("%u injections (%lu refused while a queue was full, retried; %" PRIu64
		      " held), %lu deliveries, %lu MSR accesses, %lu snapshots: %lu operations\n",
		      NR_INJECT, atomic_load(&refused), hs.held, atomic_load(&deliveries),
		      atomic_load(&msr_ops), atomic_load(&snapshots), total);
	assert_true(total >= TOTAL_OPS);
	vmce_vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_stress)};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
