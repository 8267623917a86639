// SPDX-License-Identifier: MIT
/*
 * The mce-inject text parser: the input styles of the mce-inject manual and of the mce-test
 * suite, then malformed inputs, each with the exact message that names the line and token.
 */
#include <errno.h>
#include <stdlib.h>

#include "ptest.h"

#define PARSE(text, out, max, err)                                                                 \
	vmce_parse_inject_text(text, strlen(text), VMCE_ADDR_GPA, out, max, err)

/* mce-test's SRAO and SRAR inputs, one record each. */
static void test_mce_test_srao_srar(void **state)
{
	static const char srao[] = "CPU 0 BANK 2\n"
				   "STATUS UNCORRECTED SRAO 0x17a\n"
				   "MCGSTATUS RIPV MCIP\n"
				   "ADDR 0x1234000\n"
				   "MISC 0x8c\n"
				   "RIP 0x73:0x1eadbabe\n";
	static const char srar[] = "CPU 1 BANK 1\n"
				   "STATUS UNCORRECTED SRAR 0x134\n"
				   "MCGSTATUS RIPV MCIP EIPV\n"
				   "ADDR 0x5678000\n"
				   "MISC 0x8c\n"
				   "RIP 0x73:0x3eadbabe\n";
	struct vmce_host_error e[2];
	struct vmce_err err;

	(void)state;
	assert_int_equal(PARSE(srao, e, 2, &err), 1);
	assert_int_equal(e[0].origin, VMCE_ORIGIN_INJECT);
	assert_int_equal(e[0].cls, VMCE_CLASS_AUTO);
	assert_int_equal(e[0].vcpu, 0);
	assert_int_equal(e[0].bank, 2);
	assert_int_equal(e[0].status, 0xbd0000000000017aull);
	assert_int_equal(e[0].mcg_status, 5);
	assert_int_equal(e[0].addr_kind, VMCE_ADDR_GPA);
	assert_int_equal(e[0].addr, 0x1234000);
	assert_int_equal(e[0].misc, 0x8c);
	assert_int_equal(e[0].rip, 0x1eadbabe);
	assert_false(e[0].no_broadcast);
	assert_false(e[0].local);

	assert_int_equal(PARSE(srar, e, 2, &err), 1);
	assert_int_equal(e[0].vcpu, 1);
	assert_int_equal(e[0].bank, 1);
	assert_int_equal(e[0].status, 0xbd80000000000134ull);
	assert_int_equal(e[0].mcg_status, 7);
	assert_int_equal(e[0].addr, 0x5678000);
}

/* Corrected, fatal and UCNA shorthands, NOBROADCAST, several records, comments, LMCES. */
static void test_several_records(void **state)
{
	static const char text[] =
		"# corrected error, then a fatal one\n"
		"CPU 0 BANK 2\n"
		"STATUS CORRECTED 0xc0\n"
		"ADDR 0x1000   # page one\n"
		"\n"
		"CPU 3 4\n"
		"STATUS FATAL 0x1234 MCGSTATUS MCIP NOBROADCAST\n"
		"MCE STATUS VAL UC EN UCNA 0x9f MISC 0x8c ADDR 010\n"
		"cpu 2 status uncorrected srar 0x150 mcgstatus ripv eipv mcip lmces"
		" addr 0x3000 misc 0x8c\n"
		"CPU 1 STATUS VAL OVER UC EN PCC S AR 0x17a TES_YELLOW"
		" MCGSTATUS SEAM_NR 0x1\n";
	struct vmce_host_error e[8];
	struct vmce_err err;

	(void)state;
	assert_int_equal(PARSE(text, e, 8, &err), 5);
	assert_int_equal(e[0].vcpu, 0);
	assert_int_equal(e[0].status, ST_VAL | ST_EN | ST_ADDRV | 0xc0);
	assert_int_equal(e[0].addr, 0x1000);
	assert_int_equal(e[1].vcpu, 3);
	assert_int_equal(e[1].bank, 4);
	assert_int_equal(e[1].status, ST_VAL | ST_UC | ST_EN | ST_PCC | 0x1234);
	assert_int_equal(e[1].mcg_status, MCG_MCIP);
	assert_true(e[1].no_broadcast);
	assert_int_equal(e[1].addr_kind, VMCE_ADDR_NONE);
	/* MCE starts a record on CPU 0. */
	assert_int_equal(e[2].vcpu, 0);
	assert_int_equal(e[2].status, ST_VAL | ST_UC | ST_EN | ST_MISCV | ST_ADDRV | 0x9f);
	assert_int_equal(e[2].addr, 8); /* octal */
	assert_int_equal(e[3].vcpu, 2);
	assert_int_equal(e[3].status, 0xbd80000000000150ull);
	assert_int_equal(e[3].mcg_status, 0xf);
	assert_true(e[3].local);
	assert_int_equal(e[4].status, 0xf38000000000017aull | (1ull << 54));
	assert_int_equal(e[4].mcg_status, (1ull << 12) | 1);
}

/* The kernel's panic line, RIP forms, ignored host-only keywords, blank lines not splitting. */
static void test_panic_line_and_rip(void **state)
{
	static const char text[] =
		"CPU 1: Machine Check Exception: 5 Bank 1: 0xbd0000000000017a\n"
		"RIP 0x10:<0xffffffff81000000> {do_thing}\n"
		"TSC 12345 TIME 1700000000 SOCKETID 0 APICID 2 MCGCAP 0x1000c02\n"
		"PROCESSOR 0:0x50654 HOLD IN_IRQ IN_PROC POLL EXCP IRQBROADCAST\n"
		"NMIBROADCAST\n"
		"\n"
		"ADDR 0x9000 MISC 0x8c\n"
		"CPU 0 RIP 0x1234\n";
	struct vmce_host_error e[4];
	struct vmce_err err;

	(void)state;
	assert_int_equal(PARSE(text, e, 4, &err), 2);
	assert_int_equal(e[0].vcpu, 1);
	assert_int_equal(e[0].bank, 1);
	assert_int_equal(e[0].mcg_status, 5);
	assert_int_equal(e[0].status, 0xbd0000000000017aull);
	assert_int_equal(e[0].rip, 0xffffffff81000000ull);
	assert_int_equal(e[0].addr, 0x9000);
	assert_int_equal(e[0].misc, 0x8c);
	assert_int_equal(e[1].rip, 0x1234);
	assert_int_equal(e[1].status, 0);
}

/* Parsed records go through the policy: the SRAO example is what design §5 says Linux needs. */
static void test_parse_then_plan(void **state)
{
	static const char text[] =
		"CPU 0 BANK 2\n"
		"STATUS UNCORRECTED SRAO 0x17a\n"
		"MCGSTATUS RIPV MCIP\n"
		"ADDR 0x7f0000345000\n"
		"MISC 0x8c\n"
		"CPU 1 BANK 2 STATUS UNCORRECTED SRAR 0x134 MCGSTATUS RIPV EIPV MCIP\n"
		"ADDR 0x7f0000346010 MISC 0x8c\n";
	struct vmce_vm *vm = ptest_vm(NULL, 2, 0, VMCE_FATAL_SHUTDOWN);
	struct vmce_host_error e[2];
	struct vmce_plan plan;
	struct vmce_err err;

	(void)state;
	assert_int_equal(vmce_parse_inject_text(text, strlen(text), VMCE_ADDR_HVA, e, 2, &err), 2);
	assert_int_equal(e[0].addr_kind, VMCE_ADDR_HVA);
	assert_int_equal(vmce_plan_error(vm, &e[0], &plan, &err), 0);
	assert_int_equal(plan.verdict, VMCE_VERDICT_FORWARD);
	assert_int_equal(plan.record.bank, 1);
	assert_int_equal(plan.record.status, 0xbd0000000000017aull);
	assert_int_equal(plan.record.addr, 0x345000);
	assert_int_equal(plan.record.misc, 0x8c);
	assert_int_equal(plan.record.mcg_status, 5);
	assert_int_equal(vmce_plan_error(vm, &e[1], &plan, &err), 0);
	assert_int_equal(plan.verdict, VMCE_VERDICT_FORWARD);
	assert_int_equal(plan.target, 1);
	assert_int_equal(plan.record.status, 0xbd80000000000134ull);
	assert_int_equal(plan.record.addr, 0x346000);
	assert_int_equal(plan.record.misc, 0x8c);
	assert_int_equal(plan.record.mcg_status, 7);
	vmce_vm_destroy(vm);
}

struct bad {
	const char *text;
	size_t len; /* 0: strlen */
	size_t max;
	const char *msg;
};

static void test_malformed(void **state)
{
	static char longline[1200], manyrec[64], bigword[64];
	const struct bad bad[] = {
		{"STATUS UC", 0, 4, "line 1: 'STATUS': a record must start with CPU or MCE"},
		{"CPU", 0, 4, "line 1: expected a number after CPU, found 'end of text'"},
		{"CPU 0", 0, 4, "line 1: the record has no fields (STATUS, ADDR, MISC, ...)"},
		{"CPU 0 FOO 1", 0, 4, "line 1: unknown keyword 'FOO'"},
		{"CPU 0\nSTATUS 0x12g", 0, 4, "line 2: malformed number '0x12g'"},
		{"CPU 0 ADDR 09", 0, 4, "line 1: malformed number '09' (a leading 0 means octal)"},
		{"CPU 0 ADDR 0x", 0, 4, "line 1: malformed number '0x': no hex digits after 0x"},
		{"CPU 0 ADDR 0x10000000000000000", 0, 4,
		 "line 1: number '0x10000000000000000' does not fit in 64 bits"},
		{"CPU 0 ADDR", 0, 4, "line 1: expected a number after ADDR, found 'end of text'"},
		{"CPU 0 STATUS RIPV", 0, 4, "line 1: 'RIPV' is a MCGSTATUS flag: not valid here"},
		{"CPU 0 MCGSTATUS UC", 0, 4, "line 1: 'UC' is a STATUS flag: not valid here"},
		{"CPU 0 STATUS UC $", 0, 4, "line 1: unrecognized character '$'"},
		{"CPU 5000 STATUS UC", 0, 4, "line 1: CPU 5000 is out of range (0 to 1023)"},
		{"CPU 0\n\nBANK 256", 0, 4, "line 3: BANK 256 is out of range (0 to 255)"},
		{"CPU 0 300 STATUS UC", 0, 4, "line 1: bank '300' is out of range (0 to 255)"},
		{"CPU 0 RIP 0x10:<0x20", 0, 4,
		 "line 1: expected '>' after the RIP value, found 'end of text'"},
		{"CPU 0 RIP 0x10:<0x20> {", 0, 4,
		 "line 1: expected a symbol name inside '{}', found 'end of text'"},
		{"CPU 1: Machine Check 5", 0, 4,
		 "line 1: expected EXCEPTION in the panic-line form, found '5'"},
		{"CPU 0 STATUS\0 UC", 16, 4, "line 1: NUL byte in the text"},
		{longline, 0, 4, "line 2: line is longer than 1024 characters"},
		{manyrec, 0, 1, "line 2: more than 1 record(s)"},
		{"CPU 0 STATUS UC 5 :", 0, 4, "line 1: unexpected ':' (expected a field keyword)"},
		{"CPU 0 PROCESSOR 0 0x5", 0, 4,
		 "line 1: expected ':' after 'PROCESSOR vendor', found '0x5'"},
		{"# one\n# two\nCPU 0\nSTATUS UC\nADDR zz", 0, 4,
		 "line 5: expected a number after ADDR, found 'zz'"},
		{"CPU 0 STATUS UC\nADDR 0x1000 ADDR", 0, 4,
		 "line 2: expected a number after ADDR, found 'end of text'"},
		{bigword, 0, 4, "line 1: unknown keyword 'ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF...'"},
		{"CPU 0 ADDR 1\n2", 0, 4, "line 2: unexpected '2' (expected a field keyword)"},
		{"CPU 0 STATUS UC # comment\0", 26, 4, "line 1: NUL byte in a comment"},
	};
	struct vmce_host_error e[4];
	struct vmce_err err;
	char *huge;

	(void)state;
	memcpy(longline, "CPU 0 STATUS UC\nADDR 0x1000 #", 29);
	memset(longline + 29, 'x', sizeof(longline) - 30);
	longline[sizeof(longline) - 1] = '\0';
	snprintf(manyrec, sizeof(manyrec), "CPU 0 STATUS UC\nCPU 1 STATUS UC\n");
	snprintf(bigword, sizeof(bigword), "CPU 0 %s", "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJ");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = bad[i].len ? bad[i].len : strlen(bad[i].text);
		int rc;

		memset(&err, 0, sizeof(err));
		rc = vmce_parse_inject_text(bad[i].text, len, VMCE_ADDR_GPA, e, bad[i].max, &err);
		if (rc != -EINVAL || strcmp(err.msg, bad[i].msg))
			fail_msg("input %zu: rc %d, message '%s'; want -EINVAL, '%s'", i, rc,
				 err.msg, bad[i].msg);
	}
	/* Whole-text bounds and arguments. */
	huge = calloc(1, (2u << 20) + 1);
	assert_non_null(huge);
	memset(huge, ' ', 2u << 20);
	assert_int_equal(vmce_parse_inject_text(huge, 2u << 20, VMCE_ADDR_GPA, e, 4, &err),
			 -EINVAL);
	assert_string_equal(err.msg, "text is 2097152 bytes: more than the limit of 1048576");
	free(huge);
	assert_int_equal(vmce_parse_inject_text("CPU 0 STATUS UC", 15, VMCE_ADDR_NONE, e, 4, &err),
			 -EINVAL);
	assert_string_equal(err.msg, "address kind 0 is not hva, hpa or gpa");
	assert_int_equal(vmce_parse_inject_text(NULL, 3, VMCE_ADDR_GPA, e, 4, &err), -EINVAL);
	assert_int_equal(vmce_parse_inject_text("", 0, VMCE_ADDR_GPA, e, 4, &err), 0);
	assert_int_equal(vmce_parse_inject_text("  # nothing\n\n", 13, VMCE_ADDR_GPA, e, 4, &err),
			 0);
	/* Not NUL-terminated: only len bytes are read. */
	assert_int_equal(
		vmce_parse_inject_text("CPU 0 ADDR 0x1000zzzz", 17, VMCE_ADDR_GPA, e, 4, &err), 1);
	assert_int_equal(e[0].addr, 0x1000);
}

/* Random token soups and random bytes: never a crash, and every rejection names its line. */
static void test_random_inputs(void **state)
{
	static const char *const vocab[] = {"CPU",	 "MCE",	      "STATUS",
					    "MCGSTATUS", "BANK",      "ADDR",
					    "MISC",	 "RIP",	      "NOBROADCAST",
					    "UC",	 "EN",	      "VAL",
					    "S",	 "AR",	      "SRAO",
					    "SRAR",	 "UCNA",      "RIPV",
					    "EIPV",	 "MCIP",      "LMCES",
					    "0x17a",	 "0",	      "1",
					    "077",	 "0x",	      "99999999999999999999",
					    ":",	 "<",	      ">",
					    "{",	 "}",	      "#c\n",
					    "\n",	 "MACHINE",   "CHECK",
					    "EXCEPTION", "PROCESSOR", "foo",
					    "$",	 "\t"};
	struct vmce_host_error e[8];
	struct vmce_err err;
	char buf[512];
	unsigned seed = 12345;

	(void)state;
	for (unsigned iter = 0; iter < 4000; iter++) {
		size_t len = 0;
		unsigned ntok;
		int rc;

		seed = seed * 1103515245u + 12345u;
		ntok = (seed >> 16) % 40;
		for (unsigned k = 0; k < ntok && len + 32 < sizeof(buf); k++) {
			const char *w;

			seed = seed * 1103515245u + 12345u;
			if (iter % 4 == 3) {
				buf[len++] = (char)(seed >> 16); /* raw bytes, NUL included */
				continue;
			}
			w = vocab[(seed >> 16) % (sizeof(vocab) / sizeof(vocab[0]))];
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s ", w);
		}
		memset(&err, 0, sizeof(err));
		rc = vmce_parse_inject_text(buf, len, VMCE_ADDR_GPA, e, 8, &err);
		if (rc < 0) {
			assert_int_equal(rc, -EINVAL);
			assert_true(strncmp(err.msg, "line ", 5) == 0);
		} else {
			assert_true(rc <= 8);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mce_test_srao_srar), cmocka_unit_test(test_several_records),
		cmocka_unit_test(test_panic_line_and_rip), cmocka_unit_test(test_parse_then_plan),
		cmocka_unit_test(test_malformed),	   cmocka_unit_test(test_random_inputs),
	};

	return cmocka_run_group_tests_name("policy_parse", tests, NULL, NULL);
}
