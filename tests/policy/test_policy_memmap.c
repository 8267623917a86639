// SPDX-License-Identifier: MIT
/*
 * The guest memory map (bounds, overlaps, translation edges) and the poisoned-page set
 * (bound, -ENOSPC, listing order), plus the event log's counters and JSON.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "ptest.h"

static struct vmce_vm *bare_vm(size_t max_poison)
{
	struct vmce_vm_config cfg;
	struct vmce_vm *vm = NULL;
	struct vmce_err err;

	vmce_vm_config_default(&cfg);
	cfg.max_poisoned_pages = max_poison;
	if (vmce_vm_create(&cfg, &vm, &err))
		fail_msg("vmce_vm_create: %s", err.msg);
	return vm;
}

static void test_memmap_translate(void **state)
{
	struct vmce_vm *vm = bare_vm(0);
	struct vmce_err err;
	uint64_t g = 0;

	(void)state;
	assert_int_equal(vmce_memmap_add(vm, 0x0, 0xa0000, 0x7f0000000000, 0x100000000, &err), 0);
	assert_int_equal(
		vmce_memmap_add(vm, 0x100000, 0x7ff00000, 0x7f0000100000, VMCE_NO_HPA, &err), 0);
	/* First and last byte of each range, one past the end, the hole between. */
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_GPA, 0x0, &g), 0);
	assert_int_equal(g, 0);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_GPA, 0x9ffff, &g), 0);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_GPA, 0xa0000, &g), -ENOENT);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_GPA, 0xfffff, &g), -ENOENT);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_GPA, 0x100000, &g), 0);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_GPA, 0x7fffffff, &g), 0);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_GPA, 0x80000000, &g), -ENOENT);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_HVA, 0x7f0000000123, &g), 0);
	assert_int_equal(g, 0x123);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_HVA, 0x7f00000a0000, &g), -ENOENT);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_HVA, 0x7f0000100000 + 0x7fefffff, &g), 0);
	assert_int_equal(g, 0x7fffffff);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_HVA, 0x7effffffffffull, &g), -ENOENT);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_HPA, 0x100000000 + 0x9fffe, &g), 0);
	assert_int_equal(g, 0x9fffe);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_HPA, 0x100000000 + 0xa0000, &g), -ENOENT);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_HPA, 0xffffffff, &g), -ENOENT);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_NONE, 0, &g), -EINVAL);

	/* Remove: the range is gone from every index. */
	assert_int_equal(vmce_memmap_remove(vm, 0x0, &err), 0);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_HPA, 0x100000000, &g), -ENOENT);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_HVA, 0x7f0000000000, &g), -ENOENT);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_GPA, 0x1000, &g), -ENOENT);
	assert_int_equal(vmce_memmap_remove(vm, 0x0, &err), -ENOENT);
	assert_string_equal(err.msg, "no memory range starts at gpa 0x0");
	assert_int_equal(vmce_memmap_remove(vm, 0x100001, &err), -ENOENT);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_GPA, 0x100000, &g), 0);
	vmce_vm_destroy(vm);
}

static void test_memmap_overlaps_and_bounds(void **state)
{
	struct vmce_vm *vm = bare_vm(0);
	struct vmce_err err;
	uint64_t g = 0;

	(void)state;
	assert_int_equal(vmce_memmap_add(vm, 0x10000, 0x10000, 0x1000000, 0x2000000, &err), 0);
	/* gpa overlaps: inside, straddling the start, straddling the end, covering. */
	assert_int_equal(vmce_memmap_add(vm, 0x18000, 0x1000, 0x5000000, VMCE_NO_HPA, &err),
			 -EEXIST);
	assert_string_equal(err.msg, "gpa range 0x18000+0x1000 overlaps a registered range");
	assert_int_equal(vmce_memmap_add(vm, 0xf000, 0x2000, 0x5000000, VMCE_NO_HPA, &err),
			 -EEXIST);
	assert_int_equal(vmce_memmap_add(vm, 0x1f000, 0x2000, 0x5000000, VMCE_NO_HPA, &err),
			 -EEXIST);
	assert_int_equal(vmce_memmap_add(vm, 0x0, 0x100000, 0x5000000, VMCE_NO_HPA, &err), -EEXIST);
	/* Adjacent on both sides is fine. */
	assert_int_equal(vmce_memmap_add(vm, 0x0, 0x10000, 0x5000000, VMCE_NO_HPA, &err), 0);
	assert_int_equal(vmce_memmap_add(vm, 0x20000, 0x10000, 0x6000000, VMCE_NO_HPA, &err), 0);
	/* hva and hpa overlaps. */
	assert_int_equal(vmce_memmap_add(vm, 0x40000, 0x1000, 0x100ffff, VMCE_NO_HPA, &err),
			 -EEXIST);
	assert_string_equal(err.msg, "hva range 0x100ffff+0x1000 overlaps a registered range");
	assert_int_equal(vmce_memmap_add(vm, 0x40000, 0x1000, 0x7000000, 0x200f000, &err), -EEXIST);
	assert_string_equal(err.msg, "hpa range 0x200f000+0x1000 overlaps a registered range");
	/* Size 0 and wrap-around. */
	assert_int_equal(vmce_memmap_add(vm, 0x50000, 0, 0x8000000, VMCE_NO_HPA, &err), -EINVAL);
	assert_string_equal(err.msg, "memory range at gpa 0x50000 has size 0");
	assert_int_equal(
		vmce_memmap_add(vm, UINT64_MAX - 0xfff, 0x2000, 0x8000000, VMCE_NO_HPA, &err),
		-EINVAL);
	assert_non_null(strstr(err.msg, "wraps around"));
	/* A range that ends at the very top of the address space, then one that overlaps it. */
	assert_int_equal(
		vmce_memmap_add(vm, UINT64_MAX - 0xfff, 0x1000, 0x9000000, VMCE_NO_HPA, &err), 0);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_GPA, UINT64_MAX, &g), 0);
	assert_int_equal(g, UINT64_MAX);
	assert_int_equal(
		vmce_memmap_add(vm, UINT64_MAX - 0x1fff, 0x2000, 0xa000000, VMCE_NO_HPA, &err),
		-EEXIST);
	vmce_vm_destroy(vm);

	/* The bound: 4096 ranges. */
	vm = bare_vm(0);
	for (unsigned i = 0; i < 4096; i++)
		if (vmce_memmap_add(vm, (uint64_t)i * 0x2000, 0x1000, 0x10000000 + i * 0x1000ull,
				    VMCE_NO_HPA, &err))
			fail_msg("range %u: %s", i, err.msg);
	assert_int_equal(vmce_memmap_add(vm, 0x40000000, 0x1000, 0x80000000, VMCE_NO_HPA, &err),
			 -ENOSPC);
	assert_string_equal(err.msg, "memory map is full (4096 ranges)");
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_HVA, 0x10000000 + 4095 * 0x1000ull + 5, &g),
			 0);
	assert_int_equal(g, 4095 * 0x2000ull + 5);
	assert_int_equal(vmce_translate(vm, VMCE_ADDR_GPA, 4095 * 0x2000ull + 0x1000, &g), -ENOENT);
	vmce_vm_destroy(vm);
}

static void test_poison_bound_and_list(void **state)
{
	struct vmce_vm *vm = bare_vm(100);
	struct vmce_err err;
	uint64_t out[128];
	size_t n, total;

	(void)state;
	/* Descending insertion, duplicates and sub-page offsets are the same page. */
	for (unsigned i = 0; i < 100; i++)
		assert_int_equal(vmce_poison_add(vm, (uint64_t)(99 - i) * 0x3000 + 0x123, &err), 0);
	assert_int_equal(vmce_poison_count(vm), 100);
	assert_int_equal(vmce_poison_add(vm, 0x3000, &err), 0); /* already there */
	assert_int_equal(vmce_poison_add(vm, 0x3fff, &err), 0); /* same page */
	assert_int_equal(vmce_poison_count(vm), 100);
	assert_int_equal(vmce_poison_add(vm, 0x1000, &err), -ENOSPC);
	assert_string_equal(err.msg,
			    "poisoned-page set is full (100 pages): page 0x1000 not recorded");
	assert_true(vmce_poison_contains(vm, 0x3abc));
	assert_false(vmce_poison_contains(vm, 0x1000));
	assert_false(vmce_poison_contains(vm, 0x4000));

	/* Listing in ascending order, in pages of 7. */
	total = 0;
	n = vmce_poison_list(vm, out, 7, true, 0);
	while (n) {
		for (size_t i = 0; i < n; i++)
			assert_int_equal(out[i], (total + i) * 0x3000);
		total += n;
		n = vmce_poison_list(vm, out, 7, false, out[n - 1]);
	}
	assert_int_equal(total, 100);
	n = vmce_poison_list(vm, out, 128, true, 0);
	assert_int_equal(n, 100);
	assert_int_equal(vmce_poison_list(vm, out, 0, true, 0), 0);
	assert_int_equal(vmce_poison_list(vm, out, 5, false, UINT64_MAX), 0);
	assert_int_equal(vmce_poison_list(vm, out, 5, false, 98 * 0x3000 + 0x10), 1);
	assert_int_equal(out[0], 99 * 0x3000);
	vmce_vm_destroy(vm);

	/* The default bound grows the table past its first size. */
	vm = bare_vm(0);
	for (unsigned i = 0; i < 5000; i++)
		assert_int_equal(vmce_poison_add(vm, (uint64_t)i << 21, &err), 0);
	assert_int_equal(vmce_poison_count(vm), 5000);
	for (unsigned i = 0; i < 5000; i++)
		assert_true(vmce_poison_contains(vm, ((uint64_t)i << 21) | 0x800));
	vmce_vm_destroy(vm);
}

static void count_cb(const struct vmce_event *ev, void *opaque)
{
	uint64_t *last = opaque;

	assert_int_equal(ev->seq, *last + 1);
	*last = ev->seq;
}

static void test_event_log(void **state)
{
	struct vmce_vm *vm = ptest_vm(NULL, 1, 0, VMCE_FATAL_SHUTDOWN);
	struct vmce_host_error e;
	struct vmce_counters c;
	struct vmce_event ev[8];
	struct vmce_err err;
	struct vmce_delivery d;
	uint64_t last = 0;
	char json[1200];
	int n;

	(void)state;
	vmce_set_event_callback(vm, count_cb, &last);
	vmce_host_error_init(&e);
	e.status = ST_VAL | ST_EN | 0x9f; /* CE */
	assert_int_equal(vmce_handle_error(vm, &e, NULL, &err), 0);
	e.status = ST_VAL | ST_UC | ST_EN | ST_S | ST_ADDRV | ST_MISCV | 0x17a;
	e.misc = 0x8c;
	e.addr_kind = VMCE_ADDR_GPA;
	e.addr = 0x4000;
	assert_int_equal(vmce_handle_error(vm, &e, NULL, &err), 0);
	e.status |= ST_PCC;
	assert_int_equal(vmce_handle_error(vm, &e, NULL, &err), 0);
	assert_int_equal(vmce_vcpu_deliver(vmce_vm_vcpu(vm, 0), true, &d), 1);
	assert_int_equal(d.action, VMCE_ACTION_MC);
	assert_int_equal(vmce_vcpu_deliver(vmce_vm_vcpu(vm, 0), true, &d), 1);
	assert_int_equal(d.action, VMCE_ACTION_SHUTDOWN);
	assert_int_equal(d.event_seq, 3);
	assert_int_equal(last, 4);
	vmce_get_counters(vm, &c);
	assert_int_equal(c.by_class[VMCE_CLASS_CE], 1);
	assert_int_equal(c.by_class[VMCE_CLASS_SRAO], 1);
	assert_int_equal(c.by_class[VMCE_CLASS_FATAL], 1);
	assert_int_equal(c.dropped, 1);
	assert_int_equal(c.forwarded, 1);
	assert_int_equal(c.fatal, 1);
	assert_int_equal(c.delivered, 1);
	assert_int_equal(vmce_events_read(vm, 0, ev, 8), 4);
	assert_int_equal(ev[0].kind, VMCE_EVENT_DROPPED);
	assert_int_equal(ev[1].kind, VMCE_EVENT_FORWARDED);
	assert_int_equal(ev[1].record.status, 0xbd0000000000017aull);
	assert_int_equal(ev[2].kind, VMCE_EVENT_FATAL);
	assert_int_equal(ev[3].kind, VMCE_EVENT_DELIVERED);
	assert_int_equal(ev[3].seq, 4);
	assert_int_equal(vmce_events_read(vm, 4, ev, 8), 0);
	assert_int_equal(vmce_events_read(vm, UINT64_MAX, ev, 8), 0);
	assert_int_equal(vmce_events_read(vm, 2, ev, 1), 1);
	assert_int_equal(ev[0].seq, 3);
	n = vmce_event_format_json(&ev[0], json, sizeof(json));
	assert_int_equal(n, (int)strlen(json));
	assert_non_null(strstr(json, "\"kind\":\"fatal\",\"class\":\"fatal\""));
	assert_true(vmce_poison_contains(vm, 0x4000));
	vmce_vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memmap_translate),
		cmocka_unit_test(test_memmap_overlaps_and_bounds),
		cmocka_unit_test(test_poison_bound_and_list),
		cmocka_unit_test(test_event_log),
	};

	return cmocka_run_group_tests_name("policy_memmap", tests, NULL, NULL);
}
