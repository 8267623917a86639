// SPDX-License-Identifier: MIT
/*
 * `vmcectl synth --json` prints exactly what vmce_plan_format_json() makes of the plan the
 * library computes for the same VM and host error.  The expected text is computed here with
 * the library; the actual one comes from running the tool.
 *
 *   test_vmcectl_synth_json PATH/TO/vmcectl
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <vmce/policy.h>
#include <vmce/vmce.h>

static const char *vmcectl;

struct scenario {
	const char *args;    /* vmcectl synth arguments (besides --json) */
	const char *profile; /* NULL: default */
	unsigned vcpus;
	uint64_t map_gpa, map_size;
	enum vmce_class cls;
	bool raw;
	uint64_t status, misc, mcg_status;
	uint64_t gpa;
	int cpu;
	bool lmce_en, cmci_en, no_broadcast;
};

/* The plan's JSON, computed with the library. */
static char *expected_json(const struct scenario *s)
{
	struct vmce_vm_config cfg;
	struct vmce_host_error e;
	struct vmce_plan plan;
	struct vmce_vm *vm;
	struct vmce_err err;
	char *buf;
	int n;

	vmce_vm_config_default(&cfg);
	if (s->profile)
		assert_int_equal(vmce_profile_parse(s->profile, &cfg.profile, &err), 0);
	cfg.nr_vcpus = s->vcpus;
	assert_int_equal(vmce_vm_create(&cfg, &vm, &err), 0);
	assert_int_equal(vmce_memmap_add(vm, s->map_gpa, s->map_size,
					 0x7f0000000000ull + s->map_gpa, VMCE_NO_HPA, &err),
			 0);
	for (unsigned v = 0; v < s->vcpus; v++) {
		struct vmce_vcpu *vcpu = vmce_vm_vcpu(vm, v);

		if (s->lmce_en)
			assert_int_equal(vmce_host_wrmsr(vcpu, VMCE_MSR_MCG_EXT_CTL,
							 VMCE_MCG_EXT_CTL_LMCE_EN),
					 VMCE_MSR_OK);
		for (unsigned b = 0; s->cmci_en && b < cfg.profile.banks; b++)
			assert_int_equal(vmce_host_wrmsr(vcpu, VMCE_MSR_MCi_CTL2(b),
							 VMCE_MCI_CTL2_CMCI_EN | 1),
					 VMCE_MSR_OK);
	}
	vmce_host_error_init(&e);
	e.origin = VMCE_ORIGIN_INJECT;
	e.cls = s->cls;
	e.addr_kind = VMCE_ADDR_GPA;
	e.addr = s->gpa;
	e.vcpu = s->cpu;
	e.no_broadcast = s->no_broadcast;
	if (s->raw) {
		e.status = s->status;
		e.misc = s->misc;
		e.mcg_status = s->mcg_status;
	}
	assert_int_equal(vmce_plan_error(vm, &e, &plan, &err), 0);
	n = vmce_plan_format_json(&plan, NULL, 0);
	assert_true(n > 0);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(vmce_plan_format_json(&plan, buf, (size_t)n + 1), n);
	vmce_vm_destroy(vm);
	return buf;
}

/* The tool's output (one line, newline removed) and its exit status. */
static char *run_tool(const char *args, int *status)
{
	char cmd[1024], *out = calloc(1, 1 << 20);
	size_t n = 0, r;
	FILE *p;

	assert_non_null(out);
	snprintf(cmd, sizeof(cmd), "'%s' synth %s --json", vmcectl, args);
	p = popen(cmd, "r");
	assert_non_null(p);
	while ((r = fread(out + n, 1, (1 << 20) - 1 - n, p)) > 0)
		n += r;
	*status = pclose(p);
	assert_true(n > 0 && out[n - 1] == '\n');
	out[n - 1] = '\0';
	assert_null(strchr(out, '\n'));
	return out;
}

static void check(const struct scenario *s)
{
	char *want = expected_json(s);
	int status;
	char *got = run_tool(s->args, &status);

	assert_int_equal(status, 0);
	assert_string_equal(got, want);
	free(want);
	free(got);
}

#define GIB (1ull << 30)

static void test_srao(void **state)
{
	check(&(struct scenario){.args = "--srao --gpa 0x2000000",
				 .vcpus = 2,
				 .map_size = 4 * GIB,
				 .cls = VMCE_CLASS_SRAO,
				 .gpa = 0x2000000,
				 .cpu = 0});
}

static void test_srar(void **state)
{
	check(&(struct scenario){.args = "--srar --gpa 0x2345000 --cpu 3 --vcpus 4",
				 .vcpus = 4,
				 .map_size = 4 * GIB,
				 .cls = VMCE_CLASS_SRAR,
				 .gpa = 0x2345000,
				 .cpu = 3});
}

static void test_ce(void **state)
{
	check(&(struct scenario){.args = "--ce --gpa 4096",
				 .vcpus = 2,
				 .map_size = 4 * GIB,
				 .cls = VMCE_CLASS_CE,
				 .gpa = 4096});
}

static void test_out_of_map(void **state)
{
	check(&(struct scenario){.args = "--srao --gpa 1G --map 0:64M",
				 .vcpus = 2,
				 .map_size = 64ull << 20,
				 .cls = VMCE_CLASS_SRAO,
				 .gpa = GIB});
}

static void test_ucna(void **state)
{
	check(&(struct scenario){.args = "--ucna --gpa 0x5000 --cmci",
				 .vcpus = 2,
				 .map_size = 4 * GIB,
				 .cls = VMCE_CLASS_UCNA,
				 .gpa = 0x5000,
				 .cmci_en = true});
	check(&(struct scenario){.args = "--ucna --gpa 0x5000",
				 .vcpus = 2,
				 .map_size = 4 * GIB,
				 .cls = VMCE_CLASS_UCNA,
				 .gpa = 0x5000});
}

static void test_raw_lmce(void **state)
{
	check(&(struct scenario){
		.args = "--profile intel,banks=3,ser,cmci,lmce --lmce --status 0xbd80000000000134 "
			"--misc 0x8c --mcg-status 7 --gpa 0x7000 --cpu 1 --map 4K:16M",
		.profile = "intel,banks=3,ser,cmci,lmce",
		.vcpus = 2,
		.map_gpa = 4096,
		.map_size = 16ull << 20,
		.cls = VMCE_CLASS_AUTO,
		.raw = true,
		.status = 0xbd80000000000134ull,
		.misc = 0x8c,
		.mcg_status = 7,
		.gpa = 0x7000,
		.cpu = 1,
		.lmce_en = true});
}

static void test_no_broadcast(void **state)
{
	check(&(struct scenario){.args = "--srao --gpa 0x9000 --no-broadcast --vcpus 8",
				 .vcpus = 8,
				 .map_size = 4 * GIB,
				 .cls = VMCE_CLASS_SRAO,
				 .gpa = 0x9000,
				 .no_broadcast = true});
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_srao),	     cmocka_unit_test(test_srar),
		cmocka_unit_test(test_ce),	     cmocka_unit_test(test_out_of_map),
		cmocka_unit_test(test_ucna),	     cmocka_unit_test(test_raw_lmce),
		cmocka_unit_test(test_no_broadcast),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: %s PATH/TO/vmcectl\n", argv[0]);
		return 2;
	}
	vmcectl = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
