// SPDX-License-Identifier: MIT
/*
 * Delivery: records put on a vCPU's queue (vmce__vcpu_enqueue) and applied by
 * vmce_vcpu_deliver() with the architectural rules: MCIP and CR4.MCE shutdowns, OVER, masked
 * banks, CMCI enable; every outcome logged with contiguous sequence numbers.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "vmce_internal.h"
#include "core/core_util.h"

#define RIPV VMCE_MCG_STATUS_RIPV
#define EIPV VMCE_MCG_STATUS_EIPV
#define MCIP VMCE_MCG_STATUS_MCIP

/* SRAO memory error, as design §4 builds it. */
#define SRAO                                                                                       \
	(VMCE_MCI_STATUS_VAL | VMCE_MCI_STATUS_UC | VMCE_MCI_STATUS_EN | VMCE_MCI_STATUS_MISCV |   \
	 VMCE_MCI_STATUS_ADDRV | VMCE_MCI_STATUS_S | 0x17a)
#define SRAR (SRAO | VMCE_MCI_STATUS_AR | 0x134)
#define CE   (VMCE_MCI_STATUS_VAL | VMCE_MCI_STATUS_EN | VMCE_MCI_STATUS_ADDRV | 0x9f)
#define UCNA (VMCE_MCI_STATUS_VAL | VMCE_MCI_STATUS_UC | VMCE_MCI_STATUS_ADDRV | 0x9f)

static void enqueue(struct vmce_vcpu *v, enum vmce_signal sig, int bank, uint64_t status,
		    uint64_t addr, uint64_t mcg_status)
{
	struct vmce_vm *vm = vmce_vcpu_vm(v);
	struct vmce_queued q;

	memset(&q, 0, sizeof(q));
	q.rec.signal = sig;
	q.rec.bank = bank;
	q.rec.status = status;
	q.rec.addr = addr;
	q.rec.misc = 0x8c;
	q.rec.mcg_status = mcg_status;
	q.cls = (status & VMCE_MCI_STATUS_AR)	? VMCE_CLASS_SRAR
		: (status & VMCE_MCI_STATUS_S)	? VMCE_CLASS_SRAO
		: (status & VMCE_MCI_STATUS_UC) ? VMCE_CLASS_UCNA
						: VMCE_CLASS_CE;
	if (bank < 0 && sig == VMCE_SIGNAL_MC)
		q.cls = VMCE_CLASS_SRAO; /* a broadcast bystander of an SRAO */
	q.has_gpa = addr != 0;
	q.gpa = addr;
	pthread_mutex_lock(&vm->inject_lock);
	assert_int_equal(vmce__vcpu_enqueue(v, &q), 0);
	pthread_mutex_unlock(&vm->inject_lock);
	assert_true(vmce_vcpu_pending(v));
}

static enum vmce_action deliver(struct vmce_vcpu *v, bool cr4_mce, struct vmce_delivery *d)
{
	assert_int_equal(vmce_vcpu_deliver(v, cr4_mce, d), 1);
	return d->action;
}

static uint64_t rd(struct vmce_vcpu *v, uint32_t idx)
{
	uint64_t val;

	assert_int_equal(vmce_rdmsr(v, idx, &val), VMCE_MSR_OK);
	return val;
}

/* The event with that sequence number. */
static struct vmce_event event(struct vmce_vm *vm, uint64_t seq)
{
	struct vmce_event ev;

	assert_int_equal(vmce_events_read(vm, seq - 1, &ev, 1), 1);
	assert_int_equal(ev.seq, seq);
	return ev;
}

static void test_nothing_pending(void **state)
{
	struct vmce_vm *vm = cu_vm("intel,banks=2,ser,tes,cmci", 1);
	struct vmce_vcpu *v = vmce_vm_vcpu(vm, 0);
	struct vmce_delivery d;

	(void)state;
	memset(&d, 0x55, sizeof(d));
	assert_false(vmce_vcpu_pending(v));
	assert_int_equal(vmce_vcpu_deliver(v, true, &d), 0);
	assert_int_equal(d.action, VMCE_ACTION_NONE);
	assert_int_equal(d.event_seq, 0);
	assert_string_equal(d.reason, "");
	assert_int_equal(vmce_vcpu_deliver(v, true, NULL), 0);
	assert_int_equal(vmce_events_last_seq(vm), 0);
	vmce_vm_destroy(vm);
}

static void test_mc_then_mcip_shutdown(void **state)
{
	struct vmce_vm *vm = cu_vm("intel,banks=2,ser,tes,cmci", 1);
	struct vmce_vcpu *v = vmce_vm_vcpu(vm, 0);
	struct vmce_vcpu_state before, after;
	struct vmce_delivery d;
	struct vmce_event ev;
	char what[128];

	(void)state;
	enqueue(v, VMCE_SIGNAL_MC, 1, SRAO, 0x123000, MCIP | RIPV);
	assert_int_equal(deliver(v, true, &d), VMCE_ACTION_MC);
	assert_false(vmce_vcpu_pending(v));
	assert_int_equal(rd(v, VMCE_MSR_MCG_STATUS), MCIP | RIPV);
	assert_int_equal(rd(v, VMCE_MSR_MCi_STATUS(1)), SRAO);
	assert_int_equal(rd(v, VMCE_MSR_MCi_ADDR(1)), 0x123000);
	assert_int_equal(rd(v, VMCE_MSR_MCi_MISC(1)), 0x8c);
	assert_int_equal(rd(v, VMCE_MSR_MCi_STATUS(0)), 0);
	ev = event(vm, d.event_seq);
	assert_int_equal(ev.kind, VMCE_EVENT_DELIVERED);
	assert_int_equal(ev.vcpu, 0);
	assert_int_equal(ev.record.status, SRAO);
	assert_true(ev.has_gpa);
	assert_int_equal(ev.gpa, 0x123000);

	/* A second #MC while the guest still handles the first (MCIP set): shutdown; the bank
	 * and MCG_STATUS stay as the guest's handler sees them. */
	vmce_vcpu_get_state(v, &before);
	enqueue(v, VMCE_SIGNAL_MC, 1, SRAR, 0x456000, MCIP | RIPV | EIPV);
	assert_int_equal(deliver(v, true, &d), VMCE_ACTION_SHUTDOWN);
	assert_non_null(strstr(d.reason, "MCIP"));
	assert_non_null(strstr(d.reason, "consumed poisoned memory inside its machine-check "
					 "handler"));
	vmce_vcpu_get_state(v, &after);
	if (!cu_state_eq(&before, &after, what, sizeof(what)))
		fail_msg("shutdown changed the state: %s", what);
	ev = event(vm, d.event_seq);
	assert_int_equal(ev.kind, VMCE_EVENT_FATAL);
	assert_string_equal(ev.reason, d.reason);
	vmce_vm_destroy(vm);
}

/*
 * An SRAO record that is applied while MCIP is set (queued before the guest set MCIP itself, or
 * restored from a stream) is not a shutdown: it goes back to the held queue, and is applied
 * once the guest clears MCIP.
 */
static void test_srao_at_mcip_is_held(void **state)
{
	struct vmce_vm *vm = cu_vm("intel,banks=2,ser,tes,cmci", 1);
	struct vmce_vcpu *v = vmce_vm_vcpu(vm, 0);
	struct vmce_hold_status hs;
	struct vmce_delivery d;
	struct vmce_event ev;

	(void)state;
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCG_STATUS, MCIP | RIPV), VMCE_MSR_OK);
	enqueue(v, VMCE_SIGNAL_MC, 1, SRAO, 0x123000, MCIP | RIPV);
	assert_int_equal(vmce_vcpu_deliver(v, true, &d), 0);
	assert_int_equal(d.action, VMCE_ACTION_NONE);
	vmce_hold_status(vm, &hs);
	assert_int_equal(hs.count, 1);
	ev = event(vm, vmce_events_last_seq(vm));
	assert_int_equal(ev.kind, VMCE_EVENT_HELD);
	assert_non_null(strstr(ev.reason, "MCIP was set"));
	assert_int_equal(rd(v, VMCE_MSR_MCi_STATUS(1)), 0);
	/* The guest's handler ends: the record is applied at the next delivery. */
	assert_false(vmce_vcpu_pending(v));
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCG_STATUS, 0), VMCE_MSR_OK);
	assert_true(vmce_vcpu_pending(v));
	/* The delivery right after the WRMSR exit: the guest is still returning from its
	 * handler, nothing yet (settle time). */
	vmce_vcpu_guest_progress(v); /* the WRMSR exit itself does not count */
	assert_int_equal(vmce_vcpu_deliver(v, true, &d), 0);
	assert_false(vmce_vcpu_pending(v)); /* settling: nothing to do, no kick wanted */
	vmce_hold_status(vm, &hs);
	assert_int_equal(hs.count, 1);
	/* The guest ran and exited again: its handler has returned. */
	vmce_vcpu_guest_progress(v);
	assert_true(vmce_vcpu_pending(v));
	assert_int_equal(deliver(v, true, &d), VMCE_ACTION_MC);
	assert_int_equal(rd(v, VMCE_MSR_MCi_ADDR(1)), 0x123000);
	vmce_hold_status(vm, &hs);
	assert_int_equal(hs.count, 0);
	assert_int_equal(hs.released, 1);
	vmce_vm_destroy(vm);
}

static void test_cr4_mce_clear_shutdown(void **state)
{
	struct vmce_vm *vm = cu_vm("amd,banks=2,succor", 1);
	struct vmce_vcpu *v = vmce_vm_vcpu(vm, 0);
	struct vmce_vcpu_state before, after;
	struct vmce_delivery d;
	char what[128];

	(void)state;
	vmce_vcpu_get_state(v, &before);
	enqueue(v, VMCE_SIGNAL_MC, 1, SRAO, 0x1000, MCIP | RIPV);
	assert_int_equal(deliver(v, false, &d), VMCE_ACTION_SHUTDOWN);
	assert_non_null(strstr(d.reason, "CR4.MCE"));
	vmce_vcpu_get_state(v, &after);
	assert_true(cu_state_eq(&before, &after, what, sizeof(what)));
	assert_int_equal(event(vm, d.event_seq).kind, VMCE_EVENT_FATAL);
	/* CR4.MCE does not matter for a record that is not an #MC. */
	enqueue(v, VMCE_SIGNAL_NONE, 1, UCNA, 0x2000, 0);
	assert_int_equal(deliver(v, false, &d), VMCE_ACTION_LOADED);
	assert_int_equal(rd(v, VMCE_MSR_MCi_STATUS(1)), UCNA);
	vmce_vm_destroy(vm);
}

/* After the guest clears MCG_STATUS the next #MC is delivered; the bank's record it did not
 * clear is kept and OVER is set. */
static void test_second_mc_after_handler(void **state)
{
	struct vmce_vm *vm = cu_vm("intel,banks=2,ser,tes,cmci", 1);
	struct vmce_vcpu *v = vmce_vm_vcpu(vm, 0);
	struct vmce_delivery d;

	(void)state;
	enqueue(v, VMCE_SIGNAL_MC, 1, SRAO, 0x1000, MCIP | RIPV);
	assert_int_equal(deliver(v, true, &d), VMCE_ACTION_MC);
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCG_STATUS, 0), VMCE_MSR_OK);
	enqueue(v, VMCE_SIGNAL_MC, 1, SRAR, 0x2000, MCIP | RIPV | EIPV);
	assert_int_equal(deliver(v, true, &d), VMCE_ACTION_MC);
	assert_int_equal(rd(v, VMCE_MSR_MCi_STATUS(1)), SRAO | VMCE_MCI_STATUS_OVER);
	assert_int_equal(rd(v, VMCE_MSR_MCi_ADDR(1)), 0x1000);
	assert_int_equal(rd(v, VMCE_MSR_MCG_STATUS), MCIP | RIPV | EIPV);
	/* A guest that clears the bank too gets the next record clean. */
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCi_STATUS(1), 0), VMCE_MSR_OK);
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCG_STATUS, 0), VMCE_MSR_OK);
	enqueue(v, VMCE_SIGNAL_MC, 1, SRAR, 0x3000, MCIP | RIPV | EIPV);
	assert_int_equal(deliver(v, true, &d), VMCE_ACTION_MC);
	assert_int_equal(rd(v, VMCE_MSR_MCi_STATUS(1)), SRAR);
	assert_int_equal(rd(v, VMCE_MSR_MCi_ADDR(1)), 0x3000);
	vmce_vm_destroy(vm);
}

/* OVER: (old, new) -> what the bank holds. */
static void test_over_rules(void **state)
{
	static const struct {
		uint64_t old, new_, want;
		uint64_t want_addr; /* 1: old record's address, 2: new record's */
	} t[] = {
		{0, CE, CE, 2},
		{0, SRAO, SRAO, 2},
		{CE, CE, CE | VMCE_MCI_STATUS_OVER, 2},
		{CE, SRAO, SRAO | VMCE_MCI_STATUS_OVER, 2},
		{CE, UCNA, UCNA | VMCE_MCI_STATUS_OVER, 2},
		{SRAO, CE, SRAO | VMCE_MCI_STATUS_OVER, 1},
		{SRAO, SRAR, SRAO | VMCE_MCI_STATUS_OVER, 1},
		{UCNA, SRAO, UCNA | VMCE_MCI_STATUS_OVER, 1},
		{CE | VMCE_MCI_STATUS_OVER, CE, CE | VMCE_MCI_STATUS_OVER, 2},
		/* A bank without VAL is free, whatever else it holds. */
		{SRAO & ~VMCE_MCI_STATUS_VAL, CE, CE, 2},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct vmce_vm *vm = cu_vm("intel,banks=2,ser,tes,cmci", 1);
		struct vmce_vcpu *v = vmce_vm_vcpu(vm, 0);
		struct vmce_delivery d;
		uint64_t s;

		if (t[i].old) {
			assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCi_STATUS(1), t[i].old),
					 VMCE_MSR_OK);
			assert_int_equal(vmce_host_wrmsr(v, VMCE_MSR_MCi_ADDR(1), 0xaaa000),
					 VMCE_MSR_OK);
		}
		enqueue(v, VMCE_SIGNAL_NONE, 1, t[i].new_, 0xbbb000, 0);
		assert_int_equal(deliver(v, true, &d), VMCE_ACTION_LOADED);
		s = rd(v, VMCE_MSR_MCi_STATUS(1));
		if (s != t[i].want)
			fail_msg("row %zu: old %#llx new %#llx -> %#llx, expected %#llx", i,
				 (unsigned long long)t[i].old, (unsigned long long)t[i].new_,
				 (unsigned long long)s, (unsigned long long)t[i].want);
		assert_int_equal(rd(v, VMCE_MSR_MCi_ADDR(1)),
				 t[i].want_addr == 1 ? 0xaaa000 : 0xbbb000);
		/* Bank 0 untouched. */
		assert_int_equal(rd(v, VMCE_MSR_MCi_STATUS(0)), 0);
		vmce_vm_destroy(vm);
	}
}

/* The guest disabled the bank (MCi_CTL = 0), or MCG_CTL = 0 with CTL_P: loaded, not signalled,
 * no MCG_STATUS change, and no shutdown whatever MCIP and CR4.MCE say. */
static void test_masked(void **state)
{
	struct vmce_vm *vm = cu_vm("intel,banks=2,ser,tes,cmci,ctl", 1);
	struct vmce_vcpu *v = vmce_vm_vcpu(vm, 0);
	struct vmce_delivery d;
	struct vmce_event ev;

	(void)state;
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCi_CTL(1), 0), VMCE_MSR_OK);
	enqueue(v, VMCE_SIGNAL_MC, 1, SRAO, 0x5000, MCIP | RIPV);
	assert_int_equal(deliver(v, false, &d), VMCE_ACTION_LOADED);
	assert_int_equal(rd(v, VMCE_MSR_MCG_STATUS), 0);
	assert_int_equal(rd(v, VMCE_MSR_MCi_STATUS(1)), SRAO);
	assert_int_equal(rd(v, VMCE_MSR_MCi_ADDR(1)), 0x5000);
	ev = event(vm, d.event_seq);
	assert_int_equal(ev.kind, VMCE_EVENT_MASKED);
	assert_non_null(strstr(d.reason, "disabled"));

	/* MCIP set by the guest: still only loaded. */
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCi_STATUS(1), 0), VMCE_MSR_OK);
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCG_STATUS, MCIP), VMCE_MSR_OK);
	enqueue(v, VMCE_SIGNAL_MC, 1, SRAO, 0x6000, MCIP | RIPV);
	assert_int_equal(deliver(v, true, &d), VMCE_ACTION_LOADED);
	assert_int_equal(rd(v, VMCE_MSR_MCG_STATUS), MCIP);

	/* Partially enabled bank (Linux on K8 clears bit 10): signalled. */
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCG_STATUS, 0), VMCE_MSR_OK);
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCi_CTL(1), ~0ull & ~(1ull << 10)), VMCE_MSR_OK);
	enqueue(v, VMCE_SIGNAL_MC, 1, SRAO, 0x7000, MCIP | RIPV);
	assert_int_equal(deliver(v, true, &d), VMCE_ACTION_MC);
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCG_STATUS, 0), VMCE_MSR_OK);
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCi_STATUS(1), 0), VMCE_MSR_OK);

	/* MCG_CTL = 0 masks uncorrected records in every bank. */
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCi_CTL(1), ~0ull), VMCE_MSR_OK);
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCG_CTL, 0), VMCE_MSR_OK);
	enqueue(v, VMCE_SIGNAL_MC, 1, SRAO, 0x8000, MCIP | RIPV);
	assert_int_equal(deliver(v, true, &d), VMCE_ACTION_LOADED);
	assert_int_equal(event(vm, d.event_seq).kind, VMCE_EVENT_MASKED);
	assert_int_equal(rd(v, VMCE_MSR_MCG_STATUS), 0);
	assert_int_equal(rd(v, VMCE_MSR_MCi_ADDR(1)), 0x8000);
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCG_CTL, ~0ull), VMCE_MSR_OK);
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCi_STATUS(1), 0), VMCE_MSR_OK);
	enqueue(v, VMCE_SIGNAL_MC, 1, SRAO, 0x9000, MCIP | RIPV);
	assert_int_equal(deliver(v, true, &d), VMCE_ACTION_MC);
	vmce_vm_destroy(vm);
}

/* MCG_CTL is not there without CTL_P: a zero in the (absent) register masks nothing. */
static void test_mcg_ctl_without_ctl_p(void **state)
{
	struct vmce_vm *vm = cu_vm("intel,banks=2,ser,tes,cmci", 1);
	struct vmce_vcpu *v = vmce_vm_vcpu(vm, 0);
	struct vmce_delivery d;
	struct vmce_vcpu_state st;

	(void)state;
	vmce_vcpu_get_state(v, &st);
	assert_int_equal(st.mcg_ctl, 0);
	enqueue(v, VMCE_SIGNAL_MC, 1, SRAO, 0x1000, MCIP | RIPV);
	assert_int_equal(deliver(v, true, &d), VMCE_ACTION_MC);
	vmce_vm_destroy(vm);
}

static void test_cmci_needs_ctl2_en(void **state)
{
	struct vmce_vm *vm = cu_vm("intel,banks=2,ser,tes,cmci", 1);
	struct vmce_vcpu *v = vmce_vm_vcpu(vm, 0);
	struct vmce_delivery d;
	struct vmce_event ev;

	(void)state;
	/* CTL2.CMCI_EN clear (reset): loaded for the poller, no interrupt. */
	enqueue(v, VMCE_SIGNAL_CMCI, 1, UCNA, 0x1000, 0);
	assert_int_equal(deliver(v, true, &d), VMCE_ACTION_LOADED);
	assert_non_null(strstr(d.reason, "CMCI disabled"));
	ev = event(vm, d.event_seq);
	assert_int_equal(ev.kind, VMCE_EVENT_DELIVERED);
	assert_int_equal(rd(v, VMCE_MSR_MCi_STATUS(1)), UCNA);
	assert_int_equal(rd(v, VMCE_MSR_MCG_STATUS), 0);
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCi_STATUS(1), 0), VMCE_MSR_OK);

	/* Enabled in another bank only: still no interrupt. */
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCi_CTL2(0), VMCE_MCI_CTL2_CMCI_EN | 1),
			 VMCE_MSR_OK);
	enqueue(v, VMCE_SIGNAL_CMCI, 1, UCNA, 0x2000, 0);
	assert_int_equal(deliver(v, true, &d), VMCE_ACTION_LOADED);
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCi_STATUS(1), 0), VMCE_MSR_OK);

	/* The guest enables CMCI in bank 1: CMCI, CR4.MCE irrelevant, MCG_STATUS untouched. */
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCi_CTL2(1), VMCE_MCI_CTL2_CMCI_EN | 1),
			 VMCE_MSR_OK);
	enqueue(v, VMCE_SIGNAL_CMCI, 1, UCNA, 0x3000, 0);
	assert_int_equal(deliver(v, false, &d), VMCE_ACTION_CMCI);
	assert_int_equal(rd(v, VMCE_MSR_MCi_STATUS(1)), UCNA);
	assert_int_equal(rd(v, VMCE_MSR_MCi_ADDR(1)), 0x3000);
	assert_int_equal(rd(v, VMCE_MSR_MCG_STATUS), 0);
	assert_int_equal(event(vm, d.event_seq).kind, VMCE_EVENT_DELIVERED);

	/* Disabled again by the time the record is applied: no interrupt. */
	enqueue(v, VMCE_SIGNAL_CMCI, 1, UCNA, 0x4000, 0);
	assert_int_equal(vmce_wrmsr(v, VMCE_MSR_MCi_CTL2(1), 1), VMCE_MSR_OK);
	assert_int_equal(deliver(v, true, &d), VMCE_ACTION_LOADED);
	vmce_vm_destroy(vm);
}

/* A broadcast bystander: MCG_STATUS only, no bank touched. */
static void test_bystander(void **state)
{
	struct vmce_vm *vm = cu_vm("intel,banks=2,ser,tes,cmci", 2);
	struct vmce_vcpu *v = vmce_vm_vcpu(vm, 1);
	struct vmce_vcpu_state before, after;
	struct vmce_delivery d;
	char what[128];

	(void)state;
	vmce_vcpu_get_state(v, &before);
	enqueue(v, VMCE_SIGNAL_MC, -1, 0, 0, MCIP | RIPV);
	assert_false(vmce_vcpu_pending(vmce_vm_vcpu(vm, 0)));
	assert_int_equal(deliver(v, true, &d), VMCE_ACTION_MC);
	vmce_vcpu_get_state(v, &after);
	before.mcg_status = MCIP | RIPV;
	assert_true(cu_state_eq(&before, &after, what, sizeof(what)));
	assert_int_equal(event(vm, d.event_seq).vcpu, 1);
	vmce_vm_destroy(vm);
}

/* A bank number the profile does not have loads and reads nothing. */
static void test_bank_out_of_range(void **state)
{
	static const int banks[] = {2, 5, 31, 32, 40, 1000, -2};
	struct vmce_vm *vm = cu_vm("intel,banks=2,compat=8,ser,tes,cmci", 1);
	struct vmce_vcpu *v = vmce_vm_vcpu(vm, 0);
	struct vmce_vcpu_state before, after;
	struct vmce_delivery d;
	char what[128];

	(void)state;
	for (size_t i = 0; i < sizeof(banks) / sizeof(banks[0]); i++) {
		vmce_vcpu_get_state(v, &before);
		enqueue(v, VMCE_SIGNAL_CMCI, banks[i], UCNA, 0x1000, 0);
		assert_int_equal(deliver(v, true, &d), VMCE_ACTION_LOADED);
		enqueue(v, VMCE_SIGNAL_NONE, banks[i], UCNA, 0x1000, 0);
		assert_int_equal(deliver(v, true, &d), VMCE_ACTION_LOADED);
		vmce_vcpu_get_state(v, &after);
		if (!cu_state_eq(&before, &after, what, sizeof(what)))
			fail_msg("bank %d changed the state: %s", banks[i], what);
	}
	vmce_vm_destroy(vm);
}

/* A shutdown verdict queued by the policy comes out as it went in. */
static void test_queued_shutdown(void **state)
{
	struct vmce_vm *vm = cu_vm("intel,banks=2,ser,tes,cmci", 1);
	struct vmce_vcpu *v = vmce_vm_vcpu(vm, 0);
	struct vmce_delivery d;
	struct vmce_queued q;

	(void)state;
	memset(&q, 0, sizeof(q));
	q.shutdown = true;
	q.event_seq = 77;
	q.rec.bank = -1;
	snprintf(q.reason, sizeof(q.reason), "fatal: PCC set");
	assert_int_equal(vmce__vcpu_enqueue(v, &q), 0);
	assert_int_equal(deliver(v, true, &d), VMCE_ACTION_SHUTDOWN);
	assert_int_equal(d.event_seq, 77);
	assert_string_equal(d.reason, "fatal: PCC set");
	assert_int_equal(vmce_vcpu_deliver(v, true, &d), 0);
	vmce_vm_destroy(vm);
}

/* The queue: bounded, first in first out. */
static void test_queue_bound_and_order(void **state)
{
	struct vmce_vm *vm = cu_vm("intel,banks=2,ser,tes,cmci", 1);
	struct vmce_vcpu *v = vmce_vm_vcpu(vm, 0);
	struct vmce_delivery d;
	struct vmce_queued q;
	unsigned n = 0;

	(void)state;
	for (unsigned round = 0; round < 3; round++) {
		for (unsigned i = 0; i < VMCE_VCPU_QUEUE_LEN; i++)
			enqueue(v, VMCE_SIGNAL_NONE, 0, CE, 0x1000 * (i + 1), 0);
		memset(&q, 0, sizeof(q));
		assert_int_equal(vmce__vcpu_enqueue(v, &q), -EBUSY);
		for (unsigned i = 0; i < VMCE_VCPU_QUEUE_LEN; i++) {
			assert_int_equal(deliver(v, true, &d), VMCE_ACTION_LOADED);
			assert_int_equal(event(vm, d.event_seq).record.addr, 0x1000 * (i + 1));
			assert_int_equal(rd(v, VMCE_MSR_MCi_ADDR(0)), 0x1000 * (i + 1));
			n++;
		}
		assert_false(vmce_vcpu_pending(v));
		/* Half a queue, to move the ring's head. */
		for (unsigned i = 0; i < 5; i++)
			enqueue(v, VMCE_SIGNAL_NONE, 0, CE, 0x77000, 0);
		while (vmce_vcpu_deliver(v, true, &d))
			n++;
	}
	assert_int_equal(vmce_events_last_seq(vm), n);
	vmce_vm_destroy(vm);
}

/* Every outcome is one event; sequence numbers are 1, 2, 3, ... without gaps. */
static void test_event_sequence(void **state)
{
	struct vmce_vm *vm = cu_vm("intel,banks=2,ser,tes,cmci,ctl", 2);
	struct vmce_vcpu *v0 = vmce_vm_vcpu(vm, 0), *v1 = vmce_vm_vcpu(vm, 1);
	struct vmce_event evs[32];
	uint64_t seqs[32];
	struct vmce_delivery d;
	size_t n = 0, got;

	(void)state;
	enqueue(v0, VMCE_SIGNAL_MC, 1, SRAO, 0x1000, MCIP | RIPV); /* MC */
	enqueue(v1, VMCE_SIGNAL_MC, -1, 0, 0, MCIP | RIPV);	   /* bystander MC */
	seqs[n++] = (deliver(v0, true, &d), d.event_seq);
	seqs[n++] = (deliver(v1, true, &d), d.event_seq);
	enqueue(v0, VMCE_SIGNAL_MC, 1, SRAR, 0x2000, MCIP | RIPV); /* MCIP: shutdown */
	seqs[n++] = (deliver(v0, true, &d), d.event_seq);
	assert_int_equal(d.action, VMCE_ACTION_SHUTDOWN);
	assert_int_equal(vmce_wrmsr(v1, VMCE_MSR_MCG_STATUS, 0), VMCE_MSR_OK);
	enqueue(v1, VMCE_SIGNAL_MC, 0, SRAO, 0x3000, MCIP | RIPV); /* CR4: shutdown */
	seqs[n++] = (deliver(v1, false, &d), d.event_seq);
	assert_int_equal(vmce_wrmsr(v1, VMCE_MSR_MCi_CTL(0), 0), VMCE_MSR_OK);
	enqueue(v1, VMCE_SIGNAL_MC, 0, SRAO, 0x4000, MCIP | RIPV); /* masked */
	seqs[n++] = (deliver(v1, true, &d), d.event_seq);
	enqueue(v1, VMCE_SIGNAL_CMCI, 1, UCNA, 0x5000, 0); /* CMCI disabled */
	seqs[n++] = (deliver(v1, true, &d), d.event_seq);
	assert_int_equal(vmce_wrmsr(v1, VMCE_MSR_MCi_CTL2(1), VMCE_MCI_CTL2_CMCI_EN), VMCE_MSR_OK);
	enqueue(v1, VMCE_SIGNAL_CMCI, 1, UCNA, 0x6000, 0); /* CMCI */
	seqs[n++] = (deliver(v1, true, &d), d.event_seq);
	enqueue(v0, VMCE_SIGNAL_NONE, 0, CE, 0x7000, 0); /* poll */
	seqs[n++] = (deliver(v0, true, &d), d.event_seq);

	got = vmce_events_read(vm, 0, evs, 32);
	assert_int_equal(got, n);
	assert_int_equal(vmce_events_last_seq(vm), n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(evs[i].seq, i + 1);
		assert_int_equal(seqs[i], i + 1);
	}
	assert_int_equal(evs[0].kind, VMCE_EVENT_DELIVERED);
	assert_int_equal(evs[0].vcpu, 0);
	assert_int_equal(evs[1].kind, VMCE_EVENT_DELIVERED);
	assert_int_equal(evs[1].vcpu, 1);
	assert_int_equal(evs[2].kind, VMCE_EVENT_FATAL);
	assert_int_equal(evs[3].kind, VMCE_EVENT_FATAL);
	assert_int_equal(evs[4].kind, VMCE_EVENT_MASKED);
	assert_int_equal(evs[5].kind, VMCE_EVENT_DELIVERED);
	assert_int_equal(evs[6].kind, VMCE_EVENT_DELIVERED);
	assert_int_equal(evs[6].record.signal, VMCE_SIGNAL_CMCI);
	assert_int_equal(evs[7].record.addr, 0x7000);
	/* Reading after a sequence number gives the rest. */
	assert_int_equal(vmce_events_read(vm, 5, evs, 32), n - 5);
	assert_int_equal(evs[0].seq, 6);
	vmce_vm_destroy(vm);
}

/* Injectors on another thread queue while the vCPU thread delivers and a third thread takes
 * snapshots: every record arrives once, in order, and snapshots are never torn. */
#define RACE_RECORDS 20000

struct race {
	struct vmce_vm *vm;
	_Atomic bool done;
	_Atomic unsigned long busy;
};

static void *injector(void *arg)
{
	struct race *r = arg;
	struct vmce_vcpu *v = vmce_vm_vcpu(r->vm, 0);
	struct vmce_queued q;

	memset(&q, 0, sizeof(q));
	q.rec.signal = VMCE_SIGNAL_NONE;
	q.rec.bank = 0;
	q.rec.status = CE;
	q.rec.misc = 0x8c;
	for (unsigned i = 1; i <= RACE_RECORDS;) {
		int rc;

		q.rec.addr = i;
		pthread_mutex_lock(&r->vm->inject_lock);
		rc = vmce__vcpu_enqueue(v, &q);
		pthread_mutex_unlock(&r->vm->inject_lock);
		if (rc == 0) {
			i++;
		} else {
			assert_int_equal(rc, -EBUSY);
			atomic_fetch_add(&r->busy, 1);
			sched_yield();
		}
	}
	atomic_store(&r->done, true);
	return NULL;
}

static void *snapshotter(void *arg)
{
	struct race *r = arg;
	struct vmce_vcpu_state st;
	uint64_t last = 0;

	while (!atomic_load(&r->done)) {
		vmce_vcpu_get_state(vmce_vm_vcpu(r->vm, 0), &st);
		/* ADDR only grows (records come in order). */
		if (st.bank[0].addr < last)
			abort();
		last = st.bank[0].addr;
		sched_yield();
	}
	return NULL;
}

static void test_concurrent_injection(void **state)
{
	struct race r = {.vm = cu_vm("intel,banks=2,ser,tes,cmci", 1)};
	struct vmce_vcpu *v = vmce_vm_vcpu(r.vm, 0);
	struct vmce_delivery d;
	pthread_t inj, snap;
	uint64_t expect = 1;

	(void)state;
	assert_int_equal(pthread_create(&inj, NULL, injector, &r), 0);
	assert_int_equal(pthread_create(&snap, NULL, snapshotter, &r), 0);
	while (expect <= RACE_RECORDS) {
		if (!vmce_vcpu_deliver(v, true, &d)) {
			sched_yield();
			continue;
		}
		assert_int_equal(d.action, VMCE_ACTION_LOADED);
		assert_int_equal(rd(v, VMCE_MSR_MCi_ADDR(0)), expect);
		expect++;
	}
	pthread_join(inj, NULL);
	pthread_join(snap, NULL);
	assert_false(vmce_vcpu_pending(v));
	assert_int_equal(vmce_events_last_seq(r.vm), RACE_RECORDS);
	print_message("%d records, %lu full-queue retries\n", RACE_RECORDS, (unsigned long)r.busy);
	vmce_vm_destroy(r.vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_nothing_pending),
		cmocka_unit_test(test_mc_then_mcip_shutdown),
		cmocka_unit_test(test_srao_at_mcip_is_held),
		cmocka_unit_test(test_cr4_mce_clear_shutdown),
		cmocka_unit_test(test_second_mc_after_handler),
		cmocka_unit_test(test_over_rules),
		cmocka_unit_test(test_masked),
		cmocka_unit_test(test_mcg_ctl_without_ctl_p),
		cmocka_unit_test(test_cmci_needs_ctl2_en),
		cmocka_unit_test(test_bystander),
		cmocka_unit_test(test_bank_out_of_range),
		cmocka_unit_test(test_queued_shutdown),
		cmocka_unit_test(test_queue_bound_and_order),
		cmocka_unit_test(test_event_sequence),
		cmocka_unit_test(test_concurrent_injection),
	};

	return cmocka_run_group_tests_name("core_deliver", tests, NULL, NULL);
}
