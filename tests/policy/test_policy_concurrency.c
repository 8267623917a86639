// SPDX-License-Identifier: MIT
/*
 * Concurrency: 4 injector threads call vmce_handle_error() while 4 vCPU threads (one per vCPU)
 * hammer the MSR path and apply their queues with vmce_vcpu_deliver(), acting like a guest's
 * #MC handler (read MCG_STATUS and bank 1, clear them).  Checked afterwards:
 *   - no torn record: every bank record a vCPU or a snapshot (vmce_vcpu_get_state from the
 *     injector threads) sees is exactly one that was injected (STATUS, ADDR and MISC agree);
 *   - no lost or duplicated event: sequence numbers are contiguous from 1, each successful
 *     injection has exactly one FORWARDED event and one DELIVERED event per recipient (an
 *     injection that reached a busy vCPU has one HELD event before its FORWARDED one);
 *   - no shutdown, and the poisoned-page set holds exactly the injected pages.
 * Built under ThreadSanitizer by `make test-tsan` (label unit).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "ptest.h"

#define NR_VCPUS     4
#define NR_INJECTORS 4
/* Fewer under ThreadSanitizer, which is ~10x slower on a loaded 2-core machine. */
#if defined(__SANITIZE_THREAD__)
#define PER_INJECTOR 250
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PER_INJECTOR 250
#endif
#endif
#ifndef PER_INJECTOR
#define PER_INJECTOR 1000
#endif
#define NR_INJECT  (NR_INJECTORS * PER_INJECTOR)
#define MAX_EVENTS (1u << 20)

#define G_SRAO	   0xbd00000000000000ull
#define G_SRAR	   0xbd80000000000000ull

struct mini_event {
	uint64_t seq, gpa;
	int vcpu;
	enum vmce_event_kind kind;
	bool has_gpa;
};

static struct vmce_vm *vm;
static atomic_bool injectors_done;
static atomic_uint failures;
static char first_failure[256];
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;

/* Written by the event callback, which runs under the event log's lock. */
static struct mini_event *events;
static size_t nr_events;
static bool events_overflow;

/* Per injection (index = injector * PER_INJECTOR + i). */
static bool injected[NR_INJECT];
static unsigned recipients[NR_INJECT];
static atomic_uint target_seen[NR_INJECT];

static void failure(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void failure(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&fail_lock);
	if (atomic_fetch_add(&failures, 1) == 0) {
		va_start(ap, fmt);
		vsnprintf(first_failure, sizeof(first_failure), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&fail_lock);
}

static uint64_t gpa_of(unsigned idx)
{
	return ((uint64_t)idx + 16) << 12;
}

/* Injection idx: even ones are SRAO (broadcast from vCPU 0), odd ones SRAR on vCPU (idx/2)%4;
 * vCPUs 0 and 1 enable LMCE, so SRARs there are local. */
static bool is_srar(unsigned idx)
{
	return idx & 1;
}

static unsigned srar_vcpu(unsigned idx)
{
	return (idx / 2) % NR_VCPUS;
}

/* The guest record of injection idx: the error codes and the address granularity vary with
 * idx, so that a record torn between two injections cannot look like either of them. */
static unsigned mcacod_of(unsigned idx)
{
	if (is_srar(idx))
		return (idx / 2) % 2 ? 0x150 : 0x134;
	return idx % 3 == 0 ? 0x17a : 0xc0 | (idx % 16);
}

static unsigned lsb_of(unsigned idx)
{
	return 6 + idx % 7; /* 6..12 */
}

static void record_of(unsigned idx, uint64_t *status, uint64_t *addr, uint64_t *misc)
{
	*status = (is_srar(idx) ? G_SRAR : G_SRAO) | mcacod_of(idx);
	*addr = (gpa_of(idx) + 0x80) & ~((1ull << lsb_of(idx)) - 1);
	*misc = 0x80 | lsb_of(idx);
}

/* The injection an address belongs to; false when the address is in no injected page. */
static bool index_of(uint64_t addr, unsigned *idx)
{
	if (addr < gpa_of(0) || addr >= gpa_of(NR_INJECT))
		return false;
	*idx = (unsigned)((addr >> 12) - 16);
	return true;
}

static void check_bank(const char *who, unsigned cpu, uint64_t status, uint64_t addr, uint64_t misc)
{
	uint64_t ws, wa, wm;
	unsigned idx;

	if (!(status & ST_VAL))
		return;
	if (index_of(addr, &idx)) {
		record_of(idx, &ws, &wa, &wm);
		if (status == ws && addr == wa && misc == wm)
			return;
	}
	failure("%s: vcpu %u bank 1 holds status 0x%016" PRIx64 " addr 0x%" PRIx64
		" misc 0x%" PRIx64 ": not an injected record",
		who, cpu, status, addr, misc);
}

static void on_event(const struct vmce_event *ev, void *opaque)
{
	(void)opaque;
	if (nr_events >= MAX_EVENTS) {
		events_overflow = true;
		return;
	}
	events[nr_events++] =
		(struct mini_event){ev->seq, ev->gpa, ev->vcpu, ev->kind, ev->has_gpa};
}

static void *vcpu_thread(void *arg)
{
	unsigned cpu = (unsigned)(uintptr_t)arg;
	struct vmce_vcpu *v = vmce_vm_vcpu(vm, cpu);
	uint64_t x, threshold = 0;
	bool idle;

	for (;;) {
		struct vmce_delivery d;
		bool done = atomic_load(&injectors_done);

		/* The MSR path, as a guest's poller and CMCI set-up would use it. */
		for (unsigned k = 0; k < 8; k++) {
			if (vmce_rdmsr(v, VMCE_MSR_MCG_CAP, &x) != VMCE_MSR_OK ||
			    vmce_rdmsr(v, VMCE_MSR_MCG_STATUS, &x) != VMCE_MSR_OK ||
			    vmce_rdmsr(v, VMCE_MSR_MCi_STATUS(0), &x) != VMCE_MSR_OK ||
			    vmce_wrmsr(v, VMCE_MSR_MCi_CTL2(0), threshold++ & 0x7fff) !=
				    VMCE_MSR_OK ||
			    vmce_wrmsr(v, VMCE_MSR_MCi_CTL(0), ~0ull) != VMCE_MSR_OK ||
			    vmce_wrmsr(v, VMCE_MSR_MCi_MISC(0), threshold) != VMCE_MSR_OK)
				failure("vcpu %u: MSR access refused", cpu);
		}
		idle = true;
		while (sim_deliver(v, true, &d)) {
			uint64_t mcg, st, addr, misc;
			unsigned idx;

			idle = false;
			if (d.action != VMCE_ACTION_MC) {
				failure("vcpu %u: delivery action %d (%s)", cpu, (int)d.action,
					d.reason);
				continue;
			}
			/* The guest's #MC handler. */
			vmce_rdmsr(v, VMCE_MSR_MCG_STATUS, &mcg);
			vmce_rdmsr(v, VMCE_MSR_MCi_STATUS(1), &st);
			vmce_rdmsr(v, VMCE_MSR_MCi_ADDR(1), &addr);
			vmce_rdmsr(v, VMCE_MSR_MCi_MISC(1), &misc);
			if (st & ST_VAL) {
				check_bank("handler", cpu, st, addr, misc);
				if (index_of(addr, &idx)) {
					uint64_t wmcg = !is_srar(idx)	     ? 5
							: srar_vcpu(idx) < 2 ? 0xf
									     : 7;

					if (mcg != wmcg)
						failure("vcpu %u: MCG_STATUS 0x%" PRIx64
							" for injection %u, want 0x%" PRIx64,
							cpu, mcg, idx, wmcg);
					atomic_fetch_add(&target_seen[idx], 1);
				}
			} else if (mcg != 5) {
				failure("vcpu %u: bystander MCG_STATUS 0x%" PRIx64, cpu, mcg);
			}
			if (vmce_wrmsr(v, VMCE_MSR_MCi_STATUS(1), 0) != VMCE_MSR_OK ||
			    vmce_wrmsr(v, VMCE_MSR_MCG_STATUS, 0) != VMCE_MSR_OK)
				failure("vcpu %u: clearing refused", cpu);
		}
		if (done) {
			struct vmce_hold_status hs;

			/* Held records go to this vCPU too: wait until none is left (the count
			 * first: a release queues, then lowers it). */
			vmce_hold_status(vm, &hs);
			if (!hs.count && !vmce_vcpu_pending(v))
				break;
		}
		if (idle) /* a guest that runs a while before its next MSR access */
			nanosleep(&(struct timespec){0, 10000}, NULL);
	}
	return NULL;
}

static void *injector_thread(void *arg)
{
	unsigned j = (unsigned)(uintptr_t)arg;
	unsigned seed = j * 7919 + 1;

	for (unsigned i = 0; i < PER_INJECTOR; i++) {
		unsigned idx = j * PER_INJECTOR + i;
		struct vmce_host_error e;
		struct vmce_plan plan;
		struct vmce_err err;
		struct vmce_vcpu_state st;
		int rc;

		vmce_host_error_init(&e);
		e.addr_kind = VMCE_ADDR_GPA;
		e.addr = gpa_of(idx) + 0x80;
		e.misc = 0x80 | lsb_of(idx); /* physical address mode, the granularity */
		e.status = ST_VAL | ST_UC | ST_EN | ST_S | ST_ADDRV | ST_MISCV | mcacod_of(idx);
		if (is_srar(idx)) {
			e.status |= ST_AR;
			e.vcpu = (int)srar_vcpu(idx);
		}
		for (;;) {
			rc = vmce_handle_error(vm, &e, &plan, &err);
			if (rc != -EBUSY && rc != -ENOBUFS)
				break;
			/* A vCPU's queue, or the held-record queue, is full: let it drain. */
			nanosleep(&(struct timespec){0, 200000}, NULL);
		}
		if (rc) {
			failure("injection %u: %s", idx, err.msg);
			continue;
		}
		if (plan.verdict != VMCE_VERDICT_FORWARD) {
			failure("injection %u: verdict %s (%s)", idx,
				vmce_verdict_name(plan.verdict), plan.reason);
			continue;
		}
		injected[idx] = true;
		recipients[idx] = plan.broadcast ? NR_VCPUS : 1;
		/* Snapshots from another thread are never torn. */
		for (unsigned k = 0; k < 2 * NR_VCPUS; k++) {
			unsigned cpu;

			seed = seed * 1103515245u + 12345u;
			cpu = (seed >> 16) % NR_VCPUS;
			vmce_vcpu_get_state(vmce_vm_vcpu(vm, cpu), &st);
			check_bank("snapshot", cpu, st.bank[1].status, st.bank[1].addr,
				   st.bank[1].misc);
		}
	}
	return NULL;
}

/* An observer (a status display, a migration pre-copy) taking snapshots all the time. */
static void *snapshot_thread(void *arg)
{
	unsigned long n = 0;

	(void)arg;
	while (!atomic_load(&injectors_done)) {
		for (unsigned cpu = 0; cpu < NR_VCPUS; cpu++) {
			struct vmce_vcpu_state st;

			vmce_vcpu_get_state(vmce_vm_vcpu(vm, cpu), &st);
			check_bank("snapshot", cpu, st.bank[1].status, st.bank[1].addr,
				   st.bank[1].misc);
		}
		n++;
		nanosleep(&(struct timespec){0, 20000}, NULL); /* leave the 2 cores to the rest */
	}
	return (void *)(uintptr_t)n;
}

static void test_inject_vs_msr_path(void **state)
{
	pthread_t vt[NR_VCPUS], it[NR_INJECTORS], snap;
	void *snaps;
	unsigned *fwd, *dlv, *held, ok = 0;
	size_t refused = 0, nheld = 0;

	(void)state;
	events = calloc(MAX_EVENTS, sizeof(*events));
	fwd = calloc(NR_INJECT, sizeof(*fwd));
	dlv = calloc(NR_INJECT, sizeof(*dlv));
	held = calloc(NR_INJECT, sizeof(*held));
	assert_non_null(held);
	assert_non_null(events);
	assert_non_null(fwd);
	assert_non_null(dlv);
	vm = ptest_vm("intel,banks=2,ser,tes,cmci,lmce", NR_VCPUS, 1u << 16, VMCE_FATAL_SHUTDOWN);
	vmce_set_event_callback(vm, on_event, NULL);
	/* The guest enabled LMCE on vCPUs 0 and 1 (before their threads run). */
	for (unsigned i = 0; i < 2; i++)
		assert_int_equal(vmce_wrmsr(vmce_vm_vcpu(vm, i), VMCE_MSR_MCG_EXT_CTL,
					    VMCE_MCG_EXT_CTL_LMCE_EN),
				 VMCE_MSR_OK);

	for (unsigned i = 0; i < NR_VCPUS; i++)
		assert_int_equal(pthread_create(&vt[i], NULL, vcpu_thread, (void *)(uintptr_t)i),
				 0);
	assert_int_equal(pthread_create(&snap, NULL, snapshot_thread, NULL), 0);
	for (unsigned i = 0; i < NR_INJECTORS; i++)
		assert_int_equal(
			pthread_create(&it[i], NULL, injector_thread, (void *)(uintptr_t)i), 0);
	for (unsigned i = 0; i < NR_INJECTORS; i++)
		pthread_join(it[i], NULL);
	atomic_store(&injectors_done, true);
	pthread_join(snap, &snaps);
	for (unsigned i = 0; i < NR_VCPUS; i++)
		pthread_join(vt[i], NULL);
	vmce_set_event_callback(vm, NULL, NULL);

	if (atomic_load(&failures))
		fail_msg("%u failure(s); first: %s", atomic_load(&failures), first_failure);
	assert_false(events_overflow);

	/* Contiguous sequence numbers, in callback order, and the log agrees. */
	for (size_t k = 0; k < nr_events; k++)
		if (events[k].seq != k + 1)
			fail_msg("event %zu has seq %" PRIu64, k, events[k].seq);
	assert_int_equal(vmce_events_last_seq(vm), nr_events);

	for (size_t k = 0; k < nr_events; k++) {
		unsigned idx = 0;

		if (events[k].kind == VMCE_EVENT_REFUSED) {
			refused++;
			continue;
		}
		if (!events[k].has_gpa || !index_of(events[k].gpa, &idx))
			fail_msg("event %" PRIu64 " (%s) has no injected gpa", events[k].seq,
				 vmce_event_kind_name(events[k].kind));
		if (events[k].kind == VMCE_EVENT_FORWARDED)
			fwd[idx]++;
		else if (events[k].kind == VMCE_EVENT_DELIVERED)
			dlv[idx]++;
		else if (events[k].kind == VMCE_EVENT_HELD && !fwd[idx] && !held[idx]++)
			nheld++;
		else
			fail_msg("unexpected %s event", vmce_event_kind_name(events[k].kind));
	}
	for (unsigned idx = 0; idx < NR_INJECT; idx++) {
		if (!injected[idx])
			fail_msg("injection %u did not succeed", idx);
		ok++;
		if (fwd[idx] != 1 || dlv[idx] != recipients[idx] ||
		    atomic_load(&target_seen[idx]) != 1)
			fail_msg(
				"injection %u: %u forwarded, %u delivered (want %u), target saw it "
				"%u times",
				idx, fwd[idx], dlv[idx], recipients[idx],
				atomic_load(&target_seen[idx]));
		if (!vmce_poison_contains(vm, gpa_of(idx)))
			fail_msg("injection %u: page not poisoned", idx);
	}
	assert_int_equal(vmce_poison_count(vm), ok);
	print_message("policy_concurrency: %u injections (%zu held first), %zu events, %zu refused "
		      "while a queue was full, %lu snapshot rounds\n",
		      ok, nheld, nr_events, refused, (unsigned long)(uintptr_t)snaps);
	vmce_vm_destroy(vm);
	free(events);
	free(fwd);
	free(dlv);
	free(held);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inject_vs_msr_path),
	};

	return cmocka_run_group_tests_name("policy_concurrency", tests, NULL, NULL);
}
