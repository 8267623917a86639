// SPDX-License-Identifier: MIT
/*
 * Held records (policy.h, "Held records"): action-optional errors that would find MCIP set on
 * a vCPU they reach wait in a per-VM queue.  Unit tests of the rule (order, bound, every vCPU
 * of a broadcast, the settle after a MCIP clear, SRAR first and SRAR fatal inside the handler,
 * the hung-handler timeout, the migration round trip and the stream's 'held' section), and a
 * property test: random injections, guest handlers and clears on 1-4 vCPUs against a reference
 * model of the queue (every SRAO delivered exactly once, in arrival order, never while MCIP is
 * set, no shutdown).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

#include <vmce/migrate.h>

#include "ptest.h"

#define SRAO_ST (ST_VAL | ST_UC | ST_EN | ST_S | ST_MISCV | ST_ADDRV | 0xc0)
#define SRAR_ST (ST_VAL | ST_UC | ST_EN | ST_S | ST_MISCV | ST_ADDRV | ST_AR | 0x134)

static struct vmce_vm *vm_n(unsigned nr)
{
	return ptest_vm("intel,banks=2,ser,tes,cmci,lmce", nr, 0, VMCE_FATAL_SHUTDOWN);
}

static int inject(struct vmce_vm *vm, uint64_t status, uint64_t gpa, int cpu, struct vmce_err *err)
{
	struct vmce_host_error e;

	vmce_host_error_init(&e);
	e.origin = VMCE_ORIGIN_INJECT;
	e.addr_kind = VMCE_ADDR_GPA;
	e.addr = gpa;
	e.status = status;
	e.misc = 0x8c;
	e.vcpu = cpu;
	return vmce_handle_error(vm, &e, NULL, err);
}

static uint64_t rd(struct vmce_vcpu *v, uint32_t idx)
{
	uint64_t x = 0;

	assert_int_equal(vmce_rdmsr(v, idx, &x), VMCE_MSR_OK);
	return x;
}

/* The guest's handler: read the bank, clear it and MCG_STATUS; returns ADDR (0: bystander). */
static uint64_t handler(struct vmce_vcpu *v)
{
	uint64_t st = rd(v, VMCE_MSR_MCi_STATUS(1)), addr = rd(v, VMCE_MSR_MCi_ADDR(1));

	assert_true(rd(v, VMCE_MSR_MCG_STATUS) & MCG_MCIP);
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCi_STATUS(1), 0), VMCE_MSR_OK);
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCG_STATUS, 0), VMCE_MSR_OK);
	return (st & ST_VAL) ? addr : 0;
}

static unsigned held(struct vmce_vm *vm)
{
	struct vmce_hold_status hs;

	vmce_hold_status(vm, &hs);
	return hs.count;
}

static struct vmce_event last_event(struct vmce_vm *vm)
{
	struct vmce_event ev;

	assert_int_equal(vmce_events_read(vm, vmce_events_last_seq(vm) - 1, &ev, 1), 1);
	return ev;
}

/* Three SRAOs while vCPU 0 handles a first one: held, then delivered one by one, in order,
 * each only once the previous handler returned. */
static void test_order(void **state)
{
	struct vmce_vm *vm = vm_n(1);
	struct vmce_vcpu *v = vmce_vm_vcpu(vm, 0);
	struct vmce_delivery d;
	struct vmce_held_info hi[4];
	struct vmce_err err;

	(void)state;
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(inject(vm, SRAO_ST, 0x10000 + i * 0x1000, 0, &err), 0);
	assert_int_equal(held(vm), 3); /* the first is queued, the rest wait behind it */
	assert_int_equal(vmce_hold_list(vm, hi, 4), 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(hi[i].gpa, 0x11000 + i * 0x1000);
		assert_int_equal(hi[i].waiting_for, 0);
		assert_int_equal(hi[i].cls, VMCE_CLASS_SRAO);
	}
	assert_int_equal(last_event(vm).kind, VMCE_EVENT_HELD);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(sim_deliver(v, true, &d), 1);
		assert_int_equal(d.action, VMCE_ACTION_MC);
		/* Nothing else while the handler runs, nor right after it cleared MCIP. */
		assert_int_equal(vmce_vcpu_deliver(v, true, &d), 0);
		assert_int_equal(handler(v), 0x10000 + i * 0x1000);
		assert_int_equal(vmce_vcpu_deliver(v, true, &d), 0);
		assert_int_equal(held(vm), 3 - i);
	}
	assert_int_equal(sim_deliver(v, true, &d), 0);
	assert_int_equal(held(vm), 0);
	vmce_vm_destroy(vm);
}

/* The bound: one more than max_records is refused (-ENOBUFS, "refused"), its page poisoned. */
static void test_bound(void **state)
{
	struct vmce_vm *vm = vm_n(1);
	struct vmce_hold_status hs;
	struct vmce_counters c;
	struct vmce_err err;
	struct vmce_event ev;

	(void)state;
	assert_int_equal(vmce_hold_configure(vm, 4, 0, &err), 0);
	assert_int_equal(vmce_hold_configure(vm, VMCE_HOLD_MAX_RECORDS + 1, 0, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "max_records"));
	assert_int_equal(vmce_wrmsr(vmce_vm_vcpu(vm, 0), VMCE_MSR_MCG_STATUS, MCG_MCIP | MCG_RIPV),
			 VMCE_MSR_OK);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(inject(vm, SRAO_ST, 0x20000 + i * 0x1000, 0, &err), 0);
	assert_int_equal(inject(vm, SRAO_ST, 0x30000, 0, &err), -ENOBUFS);
	assert_non_null(strstr(err.msg, "held-record queue is full (4 records"));
	assert_non_null(strstr(err.msg, "a guest access raises SRAR"));
	ev = last_event(vm);
	assert_int_equal(ev.kind, VMCE_EVENT_REFUSED);
	assert_true(vmce_poison_contains(vm, 0x30000));
	vmce_hold_status(vm, &hs);
	assert_int_equal(hs.count, 4);
	assert_int_equal(hs.max_records, 4);
	assert_int_equal(hs.overflowed, 1);
	/* Shrinking below what is held is refused; growing keeps the order. */
	assert_int_equal(vmce_hold_configure(vm, 3, 0, &err), -EBUSY);
	assert_int_equal(vmce_hold_configure(vm, 8, 100, &err), 0);
	vmce_hold_status(vm, &hs);
	assert_int_equal(hs.count, 4);
	assert_int_equal(hs.timeout_ms, 100);
	vmce_get_counters(vm, &c);
	assert_int_equal(c.by_class[VMCE_CLASS_SRAO], 5); /* each error counted once */
	assert_int_equal(c.refused, 1);
	vmce_vm_destroy(vm);
}

/* A broadcast waits for MCIP to clear on every vCPU it reaches, not only on the target. */
static void test_broadcast(void **state)
{
	struct vmce_vm *vm = vm_n(4);
	struct vmce_delivery d;
	struct vmce_held_info hi;
	struct vmce_err err;

	(void)state;
	for (unsigned i = 1; i < 4; i += 2)
		assert_int_equal(
			vmce_wrmsr(vmce_vm_vcpu(vm, i), VMCE_MSR_MCG_STATUS, MCG_MCIP | MCG_RIPV),
			VMCE_MSR_OK);
	assert_int_equal(inject(vm, SRAO_ST, 0x40000, 0, &err), 0);
	assert_int_equal(held(vm), 1);
	assert_int_equal(vmce_hold_list(vm, &hi, 1), 1);
	assert_true(hi.broadcast);
	assert_int_equal(hi.waiting_for, 1);
	for (unsigned i = 0; i < 4; i++)
		assert_false(vmce_vcpu_pending(vmce_vm_vcpu(vm, i)));
	/* vCPU 1 leaves its handler: vCPU 3 still has MCIP set. */
	assert_int_equal(vmce_wrmsr(vmce_vm_vcpu(vm, 1), VMCE_MSR_MCG_STATUS, 0), VMCE_MSR_OK);
	assert_int_equal(sim_deliver(vmce_vm_vcpu(vm, 1), true, &d), 0);
	assert_int_equal(held(vm), 1);
	assert_int_equal(vmce_hold_list(vm, &hi, 1), 1);
	assert_int_equal(hi.waiting_for, 3);
	assert_int_equal(vmce_wrmsr(vmce_vm_vcpu(vm, 3), VMCE_MSR_MCG_STATUS, 0), VMCE_MSR_OK);
	assert_int_equal(sim_deliver(vmce_vm_vcpu(vm, 3), true, &d), 1); /* released here */
	assert_int_equal(held(vm), 0);
	for (unsigned i = 0; i < 4; i++) {
		struct vmce_vcpu *v = vmce_vm_vcpu(vm, i);

		if (i != 3)
			assert_int_equal(sim_deliver(v, true, &d), 1);
		assert_int_equal(d.action, VMCE_ACTION_MC);
		assert_int_equal(handler(v), i == 0 ? 0x40000 : 0);
	}
	vmce_vm_destroy(vm);
}

/* SRAR: fatal with the exact reason when the target has MCIP set; held ahead of SRAOs when
 * only another vCPU is busy; a repeated SRAR for the same vCPU and page is held once. */
static void test_srar(void **state)
{
	struct vmce_vm *vm = vm_n(2);
	struct vmce_vcpu *v0 = vmce_vm_vcpu(vm, 0), *v1 = vmce_vm_vcpu(vm, 1);
	struct vmce_delivery d;
	struct vmce_held_info hi[4];
	struct vmce_err err;

	(void)state;
	/* vCPU 1 handles something: an SRAO (target 0, broadcast) and an SRAR on vCPU 0 wait. */
	assert_int_equal(vmce_wrmsr(v1, VMCE_MSR_MCG_STATUS, MCG_MCIP | MCG_RIPV), VMCE_MSR_OK);
	assert_int_equal(inject(vm, SRAO_ST, 0x50000, 0, &err), 0);
	assert_int_equal(inject(vm, SRAR_ST, 0x51000, 0, &err), 0);
	assert_int_equal(inject(vm, SRAR_ST, 0x51000, 0, &err), 0); /* runs into it again */
	assert_int_equal(vmce_hold_list(vm, hi, 4), 2);
	assert_int_equal(hi[1].cls, VMCE_CLASS_SRAR);
	assert_int_equal(vmce_wrmsr(v1, VMCE_MSR_MCG_STATUS, 0), VMCE_MSR_OK);
	assert_int_equal(sim_deliver(v1, true, &d), 1);
	/* The SRAR went first. */
	assert_int_equal(sim_deliver(v0, true, &d), 1);
	assert_int_equal(rd(v0, VMCE_MSR_MCi_ADDR(1)), 0x51000);
	assert_int_equal(rd(v0, VMCE_MSR_MCG_STATUS), MCG_MCIP | MCG_RIPV | MCG_EIPV);
	/* vCPU 0 consumes poison inside that handler: shutdown, and the log says why. */
	assert_int_equal(inject(vm, SRAR_ST, 0x52000, 0, &err), 0);
	assert_int_equal(sim_deliver(v0, true, &d), 1);
	assert_int_equal(d.action, VMCE_ACTION_SHUTDOWN);
	assert_string_equal(d.reason, "vcpu 0: SRAR while MCG_STATUS.MCIP is set: the guest "
				      "consumed poisoned memory inside its machine-check handler: "
				      "shutdown");
	assert_int_equal(last_event(vm).kind, VMCE_EVENT_FATAL);
	vmce_vm_destroy(vm);
}

/* The hung handler: nothing released for timeout_ms drops the SRAOs, makes the SRARs fatal. */
static void test_timeout(void **state)
{
	struct vmce_vm *vm = vm_n(2);
	struct vmce_vcpu *v1 = vmce_vm_vcpu(vm, 1);
	struct vmce_hold_status hs;
	struct vmce_event ev[8];
	struct vmce_delivery d;
	struct vmce_err err;
	uint64_t seq0;
	size_t n;

	(void)state;
	assert_int_equal(vmce_hold_configure(vm, 0, 30, &err), 0);
	assert_int_equal(vmce_wrmsr(v1, VMCE_MSR_MCG_STATUS, MCG_MCIP | MCG_RIPV), VMCE_MSR_OK);
	assert_int_equal(inject(vm, SRAO_ST, 0x60000, 0, &err), 0);
	assert_int_equal(inject(vm, SRAR_ST, 0x61000, 0, &err), 0);
	seq0 = vmce_events_last_seq(vm);
	assert_int_equal(vmce_hold_poll(vm), 2); /* not yet */
	nanosleep(&(struct timespec){0, 40 * 1000000}, NULL);
	assert_int_equal(vmce_hold_poll(vm), 0);
	vmce_hold_status(vm, &hs);
	assert_int_equal(hs.expired, 2);
	n = vmce_events_read(vm, seq0, ev, 8);
	assert_int_equal(n, 2);
	/* SRARs are released first, and expire first too: the queue's order. */
	assert_int_equal(ev[0].kind, VMCE_EVENT_DROPPED);
	assert_non_null(strstr(ev[0].reason, "vcpu 1 is in its #MC handler (MCIP set)"));
	assert_non_null(strstr(ev[0].reason, "a guest access raises SRAR"));
	assert_int_equal(ev[1].kind, VMCE_EVENT_FATAL);
	assert_non_null(strstr(ev[1].reason, "handler hangs"));
	assert_int_equal(sim_deliver(vmce_vm_vcpu(vm, 0), true, &d), 1);
	assert_int_equal(d.action, VMCE_ACTION_SHUTDOWN);
	vmce_vm_destroy(vm);
}

/* Held records travel: save with three held (one broadcast), restore, compare, re-save
 * byte-identical; the destination releases them; a destination with a smaller bound refuses. */
static void test_migration(void **state)
{
	struct vmce_vm *src = vm_n(2), *dst = vm_n(2), *small = vm_n(2);
	struct vmce_held_info a[4], b[4];
	struct vmce_delivery d;
	struct vmce_err err;
	void *s1, *s2;
	size_t n1, n2;

	(void)state;
	assert_int_equal(vmce_wrmsr(vmce_vm_vcpu(src, 1), VMCE_MSR_MCG_STATUS, MCG_MCIP | MCG_RIPV),
			 VMCE_MSR_OK);
	assert_int_equal(inject(src, SRAO_ST, 0x70000, 0, &err), 0);
	assert_int_equal(inject(src, SRAO_ST, 0x71000, 1, &err), 0);
	assert_int_equal(inject(src, SRAR_ST, 0x72000, 0, &err), 0);
	assert_int_equal(vmce_hold_list(src, a, 4), 3);
	assert_int_equal(vmce_save_alloc(src, &s1, &n1, &err), 0);
	assert_int_equal(vmce_restore(dst, s1, n1, &err), 0);
	assert_int_equal(vmce_hold_list(dst, b, 4), 3);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(a[i].event_seq, b[i].event_seq);
		assert_int_equal(a[i].gpa, b[i].gpa);
		assert_int_equal(a[i].target, b[i].target);
		assert_int_equal(a[i].broadcast, b[i].broadcast);
		assert_int_equal(a[i].cls, b[i].cls);
	}
	assert_int_equal(vmce_save_alloc(dst, &s2, &n2, &err), 0);
	assert_int_equal(n1, n2);
	/* All but the writer's last event number (and the CRC): the logs differ. */
	assert_memory_equal(s1, s2, n1 - 12);
	/* A destination that holds at most 2 records cannot take 3. */
	assert_int_equal(vmce_hold_configure(small, 2, 0, &err), 0);
	assert_int_equal(vmce_restore(small, s1, n1, &err), -ENOSPC);
	assert_non_null(strstr(err.msg, "held.count"));
	/* At the destination: vCPU 1 leaves its handler, everything is delivered, SRAR first. */
	assert_int_equal(vmce_wrmsr(vmce_vm_vcpu(dst, 1), VMCE_MSR_MCG_STATUS, 0), VMCE_MSR_OK);
	assert_int_equal(sim_deliver(vmce_vm_vcpu(dst, 1), true, &d), 1);
	assert_int_equal(sim_deliver(vmce_vm_vcpu(dst, 0), true, &d), 1);
	assert_int_equal(rd(vmce_vm_vcpu(dst, 0), VMCE_MSR_MCi_ADDR(1)), 0x72000);
	free(s1);
	free(s2);
	vmce_vm_destroy(src);
	vmce_vm_destroy(dst);
	vmce_vm_destroy(small);
}

/*
 * Property test against a reference model of the queue.  Each step is one of: inject an SRAO
 * on a random vCPU (distinct page, increasing), run one vCPU's delivery, run its handler (when
 * it has MCIP set), or set/clear MCIP by hand on a vCPU that is idle (a guest's own writes).
 * The model: every SRAO is delivered exactly once to its target, in injection order (one
 * global FIFO); an #MC is never applied to a vCPU that has MCIP set; nothing is fatal; at the
 * end, after every handler ran, nothing is held or pending.
 */
#define P_SEEDS 300
#define P_STEPS 400

static void test_property(void **state)
{
	(void)state;
	for (unsigned seed = 1; seed <= P_SEEDS; seed++) {
		unsigned nr = 1 + seed % 4, injected = 0, delivered = 0;
		struct vmce_vm *vm = vm_n(nr);
		uint64_t next_gpa = 0x100000, last_seen = 0;
		unsigned rng = seed * 2654435761u;
		struct vmce_err err;

		for (unsigned step = 0; step < P_STEPS * 20; step++) {
			unsigned op, c;
			struct vmce_vcpu *v;
			struct vmce_delivery d;
			bool draining = step >= P_STEPS;

			rng = rng * 1103515245u + 12345u;
			op = (rng >> 16) % 8;
			c = (rng >> 8) % nr;
			if (draining) /* no more injections: every vCPU in turn delivers and handles */
				op = step % 2 ? 4 : 1, c = (step / 2) % nr;
			v = vmce_vm_vcpu(vm, c);
			if (op == 0 && injected < 500) {
				int rc = inject(vm, SRAO_ST, next_gpa, (int)c, &err);

				if (rc)
					fail_msg("seed %u: inject: %s", seed, err.msg);
				next_gpa += 0x1000;
				injected++;
			} else if (op <= 3) {
				bool mcip = rd(v, VMCE_MSR_MCG_STATUS) & MCG_MCIP;

				vmce_vcpu_guest_progress(v);
				if (vmce_vcpu_deliver(v, true, &d)) {
					if (d.action != VMCE_ACTION_MC)
						fail_msg("seed %u: action %d: %s", seed,
							 (int)d.action, d.reason);
					if (mcip)
						fail_msg("seed %u: #MC applied with MCIP set",
							 seed);
				}
			} else if (op <= 6) {
				if (rd(v, VMCE_MSR_MCG_STATUS) & MCG_MCIP) {
					uint64_t addr = handler(v);

					if (addr) {
						if (addr <= last_seen)
							fail_msg("seed %u: 0x%" PRIx64
								 " after 0x%" PRIx64
								 ": out of order or twice",
								 seed, addr, last_seen);
						if (addr != 0x100000 + (uint64_t)delivered * 0x1000)
							fail_msg("seed %u: 0x%" PRIx64
								 ": a record was "
								 "skipped",
								 seed, addr);
						last_seen = addr;
						delivered++;
					}
				}
			} else if (!draining && !vmce_vcpu_pending(v) &&
				   !(rd(v, VMCE_MSR_MCG_STATUS) & MCG_MCIP)) {
				/* The guest sets and clears MCIP itself (it may). */
				vmce_wrmsr(v, VMCE_MSR_MCG_STATUS, MCG_MCIP | MCG_RIPV);
				vmce_wrmsr(v, VMCE_MSR_MCG_STATUS, 0);
			}
			if (draining && delivered == injected && !held(vm)) {
				bool busy = false;

				for (unsigned i = 0; i < nr; i++)
					busy |= vmce_vcpu_pending(vmce_vm_vcpu(vm, i)) ||
						(rd(vmce_vm_vcpu(vm, i), VMCE_MSR_MCG_STATUS) &
						 MCG_MCIP);
				if (!busy)
					break;
			}
		}
		if (delivered != injected)
			fail_msg("seed %u: %u injected, %u delivered, %u held", seed, injected,
				 delivered, held(vm));
		for (unsigned i = 0; i < nr; i++) {
			struct vmce_delivery d;

			assert_int_equal(sim_deliver(vmce_vm_vcpu(vm, i), true, &d), 0);
		}
		vmce_vm_destroy(vm);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order),	  cmocka_unit_test(test_bound),
		cmocka_unit_test(test_broadcast), cmocka_unit_test(test_srar),
		cmocka_unit_test(test_timeout),	  cmocka_unit_test(test_migration),
		cmocka_unit_test(test_property),
	};

	return cmocka_run_group_tests_name("policy_hold", tests, NULL, NULL);
}
