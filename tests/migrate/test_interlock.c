// SPDX-License-Identifier: MIT
/*
 * The migration interlock (design §6): an error forwarded during a migration is delivered
 * exactly once, whether it arrives before begin, between begin and the save, between the save
 * and end (resend or abort), after end, or while the destination fails.
 *
 * Each test plays source and destination in one process: the source is a VM fed by the real
 * policy (vmce_handle_error), the destination a VM restored from the source's stream.  Which
 * side runs the guest afterwards is what the outcome says; "delivered" counts #MCs with a bank
 * record applied on the side that runs it (the guest's handler is modelled: it clears MCIP and
 * the bank after each #MC).
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <vmce/migrate.h>
#include <vmce/policy.h>

#include "sim_deliver.h"

#define PROFILE "intel,banks=2,ser,tes,cmci"

static struct vmce_vm *vm_n(unsigned nr_vcpus)
{
	struct vmce_vm_config cfg;
	struct vmce_vm *vm = NULL;
	struct vmce_err err;

	vmce_vm_config_default(&cfg);
	assert_int_equal(vmce_profile_parse(PROFILE, &cfg.profile, &err), 0);
	cfg.nr_vcpus = nr_vcpus;
	assert_int_equal(vmce_vm_create(&cfg, &vm, &err), 0);
	assert_int_equal(vmce_memmap_add(vm, 0, 64 << 20, 0x7f0000000000ull, VMCE_NO_HPA, &err), 0);
	return vm;
}

static int srao(struct vmce_vm *vm, uint64_t gpa)
{
	struct vmce_host_error e;
	struct vmce_err err;

	vmce_host_error_init(&e);
	e.addr_kind = VMCE_ADDR_GPA;
	e.addr = gpa;
	e.misc = 0x8c;
	e.status = VMCE_MCI_STATUS_VAL | VMCE_MCI_STATUS_UC | VMCE_MCI_STATUS_EN |
		   VMCE_MCI_STATUS_S | VMCE_MCI_STATUS_ADDRV | VMCE_MCI_STATUS_MISCV | 0x17a;
	return vmce_handle_error(vm, &e, NULL, &err);
}

static struct vmce_vm *vm_new(void)
{
	return vm_n(1);
}

/* Run the guest on vm: apply everything queued; count #MCs that carried an address, check each
 * address is one of the expected ones and appears once; the modelled handler clears state. */
static unsigned run_guest(struct vmce_vm *vm, uint64_t *seen, unsigned max_seen)
{
	struct vmce_vcpu *v = vmce_vm_vcpu(vm, 0);
	struct vmce_delivery d;
	unsigned n = 0;

	while (sim_deliver(v, true, &d)) {
		uint64_t addr = 0;

		assert_int_equal(d.action, VMCE_ACTION_MC);
		assert_int_equal(vmce_rdmsr(v, VMCE_MSR_MCi_ADDR(1), &addr), VMCE_MSR_OK);
		for (unsigned i = 0; i < n; i++)
			assert_true(seen[i] != addr);
		assert_true(n < max_seen);
		seen[n++] = addr;
		assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCi_STATUS(1), 0), VMCE_MSR_OK);
		assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCG_STATUS, 0), VMCE_MSR_OK);
	}
	return n;
}

/* Save the source and restore the stream at the destination ("send"). */
static void send_state(struct vmce_vm *src, struct vmce_vm *dst)
{
	struct vmce_err err;
	void *s;
	size_t n;

	assert_int_equal(vmce_save_alloc(src, &s, &n, &err), 0);
	assert_int_equal(vmce_restore(dst, s, n, &err), 0);
	free(s);
}

static void end(struct vmce_vm *vm, enum vmce_migration_policy pol,
		enum vmce_migration_outcome want, struct vmce_migration_result *r)
{
	struct vmce_err err;

	assert_int_equal(vmce_migration_end(vm, pol, r, &err), 0);
	if (r->outcome != want) {
		fprintf(stderr, "outcome %s, expected %s: %s\n",
			vmce_migration_outcome_name(r->outcome), vmce_migration_outcome_name(want),
			r->reason);
		fail();
	}
}

static void test_no_error(void **state)
{
	struct vmce_vm *src = vm_new(), *dst = vm_new();
	struct vmce_migration_result r;
	uint64_t seen[4];

	(void)state;
	assert_int_equal(vmce_migration_begin(src, NULL), 0);
	assert_true(vmce_migration_active(src));
	send_state(src, dst);
	end(src, VMCE_MIGRATION_RESEND, VMCE_MIGRATION_COMPLETE, &r);
	assert_int_equal(r.forwarded, 0);
	assert_int_equal(r.saves, 1);
	assert_false(vmce_migration_active(src));
	assert_int_equal(run_guest(dst, seen, 4), 0);
	vmce_vm_destroy(src);
	vmce_vm_destroy(dst);
}

static void test_error_before_begin(void **state)
{
	struct vmce_vm *src = vm_new(), *dst = vm_new();
	struct vmce_migration_result r;
	uint64_t seen[4];

	(void)state;
	/* One error already delivered at the source, one still queued. */
	assert_int_equal(srao(src, 0x10000), 0);
	assert_int_equal(run_guest(src, seen, 4), 1);
	assert_int_equal(srao(src, 0x20000), 0);
	assert_int_equal(vmce_migration_begin(src, NULL), 0);
	send_state(src, dst);
	end(src, VMCE_MIGRATION_RESEND, VMCE_MIGRATION_COMPLETE, &r);
	assert_int_equal(r.forwarded, 0);
	/* The queued one is delivered at the destination, the delivered one is not repeated. */
	assert_int_equal(run_guest(dst, seen, 4), 1);
	assert_int_equal(seen[0], 0x20000);
	assert_true(vmce_poison_contains(dst, 0x10000));
	assert_true(vmce_poison_contains(dst, 0x20000));
	vmce_vm_destroy(src);
	vmce_vm_destroy(dst);
}

static void test_error_during_before_save(void **state)
{
	struct vmce_vm *src = vm_new(), *dst = vm_new();
	struct vmce_migration_result r;
	uint64_t seen[4];

	(void)state;
	assert_int_equal(vmce_migration_begin(src, NULL), 0);
	assert_int_equal(srao(src, 0x30000), 0);
	send_state(src, dst);
	end(src, VMCE_MIGRATION_RESEND, VMCE_MIGRATION_COMPLETE, &r);
	assert_int_equal(r.forwarded, 1);
	assert_int_equal(r.unsent, 0);
	assert_int_equal(run_guest(dst, seen, 4), 1);
	assert_int_equal(seen[0], 0x30000);
	vmce_vm_destroy(src);
	vmce_vm_destroy(dst);
}

static void test_error_after_save_resend(void **state)
{
	struct vmce_vm *src = vm_new(), *dst = vm_new();
	struct vmce_migration_result r;
	uint64_t seen[4];

	(void)state;
	assert_int_equal(vmce_migration_begin(src, NULL), 0);
	send_state(src, dst);
	assert_int_equal(srao(src, 0x40000), 0); /* after the save: not in the stream sent */
	end(src, VMCE_MIGRATION_RESEND, VMCE_MIGRATION_RESEND_STATE, &r);
	assert_int_equal(r.forwarded, 1);
	assert_int_equal(r.unsent, 1);
	assert_true(r.first_seq > 0 && r.first_seq == r.last_seq);
	assert_true(vmce_migration_active(src)); /* still in progress */
	send_state(src, dst);			 /* the resend replaces the first stream */
	end(src, VMCE_MIGRATION_RESEND, VMCE_MIGRATION_COMPLETE, &r);
	assert_int_equal(r.saves, 2);
	assert_int_equal(run_guest(dst, seen, 4), 1);
	assert_int_equal(seen[0], 0x40000);
	assert_true(vmce_poison_contains(dst, 0x40000));
	vmce_vm_destroy(src);
	vmce_vm_destroy(dst);
}

static void test_error_after_save_abort(void **state)
{
	struct vmce_vm *src = vm_new(), *dst = vm_new();
	struct vmce_migration_result r;
	uint64_t seen[4];

	(void)state;
	assert_int_equal(vmce_migration_begin(src, NULL), 0);
	send_state(src, dst);
	assert_int_equal(srao(src, 0x50000), 0);
	end(src, VMCE_MIGRATION_ABORT, VMCE_MIGRATION_ABORTED, &r);
	assert_int_equal(r.unsent, 1);
	assert_false(vmce_migration_active(src));
	/* The destination is discarded; the guest keeps running at the source. */
	vmce_vm_destroy(dst);
	assert_int_equal(run_guest(src, seen, 4), 1);
	assert_int_equal(seen[0], 0x50000);
	/* A later migration starts clean. */
	assert_int_equal(vmce_migration_begin(src, NULL), 0);
	dst = vm_new();
	send_state(src, dst);
	end(src, VMCE_MIGRATION_ABORT, VMCE_MIGRATION_COMPLETE, &r);
	assert_int_equal(r.forwarded, 0);
	assert_int_equal(run_guest(dst, seen, 4), 0);
	vmce_vm_destroy(src);
	vmce_vm_destroy(dst);
}

static void test_error_after_end(void **state)
{
	struct vmce_vm *src = vm_new(), *dst = vm_new();
	struct vmce_migration_result r;
	uint64_t seen[4];

	(void)state;
	assert_int_equal(vmce_migration_begin(src, NULL), 0);
	send_state(src, dst);
	end(src, VMCE_MIGRATION_RESEND, VMCE_MIGRATION_COMPLETE, &r);
	/* After the handover, host errors are handled where the guest runs. */
	assert_int_equal(srao(dst, 0x60000), 0);
	assert_int_equal(run_guest(dst, seen, 4), 1);
	assert_int_equal(seen[0], 0x60000);
	vmce_vm_destroy(src);
	vmce_vm_destroy(dst);
}

static void test_destination_fails(void **state)
{
	struct vmce_vm *src = vm_new(), *dst = vm_new();
	uint64_t seen[4];
	struct vmce_err err;

	(void)state;
	assert_int_equal(vmce_migration_begin(src, NULL), 0);
	assert_int_equal(srao(src, 0x70000), 0);
	send_state(src, dst);
	/* The destination dies before the handshake: the VMM aborts. */
	vmce_vm_destroy(dst);
	assert_int_equal(vmce_migration_abort(src, &err), 0);
	assert_int_equal(run_guest(src, seen, 4), 1);
	assert_int_equal(seen[0], 0x70000);
	vmce_vm_destroy(src);
}

static void test_misuse(void **state)
{
	struct vmce_vm *src = vm_new();
	struct vmce_migration_result r;
	struct vmce_err err;

	(void)state;
	assert_int_equal(vmce_migration_end(src, VMCE_MIGRATION_RESEND, &r, &err), -EINVAL);
	assert_int_equal(vmce_migration_abort(src, &err), -EINVAL);
	assert_int_equal(vmce_migration_begin(src, &err), 0);
	assert_int_equal(vmce_migration_begin(src, &err), -EBUSY);
	assert_int_equal(vmce_migration_end(src, (enum vmce_migration_policy)7, &r, &err), -EINVAL);
	/* No save since begin: the state was never sent. */
	end(src, VMCE_MIGRATION_RESEND, VMCE_MIGRATION_RESEND_STATE, &r);
	assert_int_equal(r.saves, 0);
	end(src, VMCE_MIGRATION_ABORT, VMCE_MIGRATION_ABORTED, &r);
	assert_false(vmce_migration_active(src));
	vmce_vm_destroy(src);
}

/* Errors injected from another thread while the VMM loops save/send/end: each one is delivered
 * at the destination exactly once. */
#define RACE_ERRORS 12

static void *injector(void *arg)
{
	struct vmce_vm *vm = arg;

	for (unsigned i = 0; i < RACE_ERRORS; i++) {
		nanosleep(&(struct timespec){0, 300000}, NULL);
		if (srao(vm, (0x100 + i) << 12))
			abort();
	}
	return NULL;
}

static void test_concurrent_resend(void **state)
{
	unsigned resends = 0, carried = 0;

	(void)state;
	for (int round = 0; round < 30; round++) {
		struct vmce_vm *src = vm_new(), *dst = vm_new();
		struct vmce_migration_result r;
		uint64_t seen[RACE_ERRORS];
		pthread_t t;

		nanosleep(&(struct timespec){0, 100000L * (round % 7)}, NULL);
		assert_int_equal(vmce_migration_begin(src, NULL), 0);
		assert_int_equal(pthread_create(&t, NULL, injector, src), 0);
		for (;;) {
			struct vmce_err err;

			send_state(src, dst);
			nanosleep(&(struct timespec){0, 400000}, NULL);
			assert_int_equal(vmce_migration_end(src, VMCE_MIGRATION_RESEND, &r, &err),
					 0);
			if (r.outcome == VMCE_MIGRATION_COMPLETE)
				break;
			assert_int_equal(r.outcome, VMCE_MIGRATION_RESEND_STATE);
			resends++;
		}
		pthread_join(t, NULL);
		/* Exactly the errors forwarded during the migration run at the destination, each
		 * once (run_guest fails on a repeated address). */
		assert_int_equal(run_guest(dst, seen, RACE_ERRORS), r.forwarded);
		carried += (unsigned)r.forwarded;
		vmce_vm_destroy(src);
		vmce_vm_destroy(dst);
	}
	printf("concurrent: %u errors carried, %u resends\n", carried, resends);
}

/* A broadcast plan is in a stream whole or not at all: with 4 vCPUs and injections racing the
 * saves, every vCPU of the destination gets exactly r.forwarded #MCs (one record, three
 * bystanders each time), whether a plan travelled queued or held (section 'held'). */
static void *injector4(void *arg)
{
	struct vmce_vm *vm = arg;

	for (unsigned i = 0; i < 8; i++) {
		nanosleep(&(struct timespec){0, 200000}, NULL);
		if (srao(vm, (0x200 + i) << 12))
			abort();
	}
	return NULL;
}

static void test_broadcast_atomic(void **state)
{
	(void)state;
	for (int round = 0; round < 20; round++) {
		struct vmce_vm *src = vm_n(4), *dst = vm_n(4);
		struct vmce_migration_result r;
		pthread_t t;

		assert_int_equal(vmce_migration_begin(src, NULL), 0);
		assert_int_equal(pthread_create(&t, NULL, injector4, src), 0);
		do {
			struct vmce_err err;

			send_state(src, dst);
			nanosleep(&(struct timespec){0, 300000}, NULL);
			assert_int_equal(vmce_migration_end(src, VMCE_MIGRATION_RESEND, &r, &err),
					 0);
		} while (r.outcome != VMCE_MIGRATION_COMPLETE);
		pthread_join(t, NULL);
		/* The guest's 4 vCPUs run side by side: a broadcast held because a vCPU was
		 * busy is released once all of them have cleared MCIP. */
		unsigned mcs[4] = {0};
		bool any = true;

		while (any) {
			any = false;
			for (unsigned i = 0; i < 4; i++) {
				struct vmce_vcpu *v = vmce_vm_vcpu(dst, i);
				struct vmce_delivery d;

				if (!sim_deliver(v, true, &d))
					continue;
				any = true;
				assert_int_equal(d.action, VMCE_ACTION_MC);
				mcs[i]++;
				vmce_wrmsr(v, VMCE_MSR_MCi_STATUS(1), 0);
				vmce_wrmsr(v, VMCE_MSR_MCG_STATUS, 0);
			}
		}
		for (unsigned i = 0; i < 4; i++)
			assert_int_equal(mcs[i], r.forwarded);
		vmce_vm_destroy(src);
		vmce_vm_destroy(dst);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_error),
		cmocka_unit_test(test_error_before_begin),
		cmocka_unit_test(test_error_during_before_save),
		cmocka_unit_test(test_error_after_save_resend),
		cmocka_unit_test(test_error_after_save_abort),
		cmocka_unit_test(test_error_after_end),
		cmocka_unit_test(test_destination_fails),
		cmocka_unit_test(test_misuse),
		cmocka_unit_test(test_concurrent_resend),
		cmocka_unit_test(test_broadcast_atomic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
