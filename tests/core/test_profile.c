// SPDX-License-Identifier: MIT
/*
 * Profile text: the canonical form, parse/format round trips over the whole profile space, and
 * malformed inputs, each refused with a message that names the bad token.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/core_util.h"

static void test_default(void **state)
{
	struct vmce_profile d, p;
	struct vmce_err err;
	char buf[128];

	(void)state;
	vmce_profile_default(&d);
	assert_int_equal(d.vendor, VMCE_VENDOR_INTEL);
	assert_int_equal(d.banks, 2);
	assert_int_equal(d.report_bank, 1);
	assert_int_equal(d.compat_banks, 2);
	assert_int_equal(d.caps, VMCE_CAP_SER | VMCE_CAP_TES | VMCE_CAP_CMCI);
	assert_int_equal(vmce_profile_validate(&d, &err), 0);
	vmce_profile_format(&d, buf, sizeof(buf));
	assert_string_equal(buf, "intel,banks=2,ser,tes,cmci");
	assert_int_equal(vmce_profile_parse("intel,banks=2,ser,tes,cmci", &p, &err), 0);
	assert_true(vmce_profile_equal(&p, &d));
}

/* Unspecified settings take their defaults; tokens after the vendor come in any order. */
static void test_defaults_and_order(void **state)
{
	static const struct {
		const char *in, *canon;
	} t[] = {
		{"intel", "intel,banks=2"},
		{"amd", "amd,banks=2"},
		{"intel,banks=1", "intel,banks=1"},
		{"intel,banks=1,report=0", "intel,banks=1"},
		{"intel,banks=2,report=0", "intel,banks=2,report=0"},
		{"intel,banks=2,report=1,compat=2", "intel,banks=2"},
		{"intel,cmci,tes,ser,banks=2", "intel,banks=2,ser,tes,cmci"},
		{"intel,ctl,lmce,cmci,tes,ser", "intel,banks=2,ser,tes,cmci,lmce,ctl"},
		{"intel,compat=8,banks=4,report=3,lmce", "intel,banks=4,report=3,compat=8,lmce"},
		{"amd,ctl,banks=3,succor", "amd,banks=3,succor,ctl"},
		{"amd,banks=32,compat=32,report=31", "amd,banks=32,report=31"},
		{"intel,banks=002", "intel,banks=2"},
		{"intel,banks=1,compat=32", "intel,banks=1,compat=32"},
	};
	struct vmce_profile p;
	struct vmce_err err;
	char buf[128];

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (vmce_profile_parse(t[i].in, &p, &err))
			fail_msg("'%s' refused: %s", t[i].in, err.msg);
		vmce_profile_format(&p, buf, sizeof(buf));
		if (strcmp(buf, t[i].canon))
			fail_msg("'%s' formats as '%s', expected '%s'", t[i].in, buf, t[i].canon);
	}
	assert_int_equal(vmce_profile_parse("intel,banks=1", &p, &err), 0);
	assert_int_equal(p.report_bank, 0);
	assert_int_equal(p.compat_banks, 1);
	assert_int_equal(vmce_profile_parse("amd,banks=5", &p, &err), 0);
	assert_int_equal(p.report_bank, 1);
	assert_int_equal(p.compat_banks, 5);
	assert_int_equal(p.caps, 0);
}

static void test_format_truncation(void **state)
{
	struct vmce_profile p;
	char buf[8];
	int n;

	(void)state;
	vmce_profile_default(&p);
	n = vmce_profile_format(&p, NULL, 0);
	assert_int_equal(n, (int)strlen("intel,banks=2,ser,tes,cmci"));
	memset(buf, 'x', sizeof(buf));
	assert_int_equal(vmce_profile_format(&p, buf, 5), n);
	assert_string_equal(buf, "inte");
	assert_int_equal(buf[5], 'x');
	assert_int_equal(vmce_profile_format(&p, buf, 1), n);
	assert_string_equal(buf, "");
}

/* Every valid profile shape: format, parse back, same profile, same text, same MCG_CAP. */
static unsigned round_trip_space(void)
{
	static const uint32_t intel_caps[] = {VMCE_CAP_CTL, VMCE_CAP_CMCI, VMCE_CAP_TES,
					      VMCE_CAP_SER, VMCE_CAP_LMCE};
	static const uint32_t amd_caps[] = {VMCE_CAP_CTL, VMCE_CAP_SUCCOR};
	unsigned count = 0;

	for (int vendor = 0; vendor < 2; vendor++) {
		const uint32_t *cl = vendor ? amd_caps : intel_caps;
		unsigned ncl = vendor ? 2 : 5;

		for (unsigned banks = 1; banks <= VMCE_MAX_BANKS; banks++) {
			unsigned reports[3] = {0, banks > 1 ? 1 : 0, banks - 1};
			unsigned compats[3] = {banks, banks < 32 ? banks + 1 : 32, 32};

			for (unsigned set = 0; set < (1u << ncl); set++) {
				for (unsigned r = 0; r < 3; r++) {
					for (unsigned c = 0; c < 3; c++) {
						struct vmce_profile p, q;
						struct vmce_err err;
						char a[128], b[128];
						int n;

						memset(&p, 0, sizeof(p));
						p.vendor = (enum vmce_vendor)vendor;
						p.banks = (uint8_t)banks;
						p.report_bank = (uint8_t)reports[r];
						p.compat_banks = (uint8_t)compats[c];
						for (unsigned k = 0; k < ncl; k++)
							if (set & (1u << k))
								p.caps |= cl[k];
						if (vmce_profile_validate(&p, &err))
							fail_msg("valid profile refused: %s",
								 err.msg);
						n = vmce_profile_format(&p, a, sizeof(a));
						assert_int_equal(n, (int)strlen(a));
						if (vmce_profile_parse(a, &q, &err))
							fail_msg("'%s' does not parse back: %s", a,
								 err.msg);
						if (!vmce_profile_equal(&p, &q))
							fail_msg("'%s' parses to another profile",
								 a);
						vmce_profile_format(&q, b, sizeof(b));
						assert_string_equal(a, b);
						assert_int_equal(vmce_profile_mcg_cap(&p),
								 vmce_profile_mcg_cap(&q));
						count++;
					}
				}
			}
		}
	}
	return count;
}

static void test_round_trip(void **state)
{
	unsigned n;

	(void)state;
	n = round_trip_space();
	print_message("%u profiles round-tripped\n", n);
	assert_true(n > 5000);
}

static void test_equal(void **state)
{
	struct vmce_profile a, b;

	(void)state;
	vmce_profile_default(&a);
	b = a;
	assert_true(vmce_profile_equal(&a, &b));
	b.compat_banks = 3;
	assert_false(vmce_profile_equal(&a, &b));
	b = a;
	b.report_bank = 0;
	assert_false(vmce_profile_equal(&a, &b));
	b = a;
	b.caps |= VMCE_CAP_LMCE;
	assert_false(vmce_profile_equal(&a, &b));
	b = a;
	b.vendor = VMCE_VENDOR_AMD;
	assert_false(vmce_profile_equal(&a, &b));
	b = a;
	b.banks = 3;
	assert_false(vmce_profile_equal(&a, &b));
}

/* Malformed text: each refused with -EINVAL and a message containing the needle. */
static const struct {
	const char *in;
	const char *needle;
} bad[] = {
	{"", "empty profile"},
	{"foo", "unknown vendor 'foo'"},
	{"Intel,banks=2", "unknown vendor 'Intel'"},
	{"banks=2,intel", "unknown vendor 'banks=2'"},
	{"intel,banks=0", "'banks=0': banks= is out of range (1 to 32)"},
	{"intel,banks=33", "'banks=33': banks= is out of range"},
	{"intel,banks=99999999999999999999", "'banks=99999999999999999999'"},
	{"intel,banks=abc", "'banks=abc': banks= needs a decimal number"},
	{"intel,banks=", "'banks=': banks= needs a decimal number"},
	{"intel,banks=-1", "'banks=-1'"},
	{"intel,banks=2=3", "'banks=2=3'"},
	{"intel,banks=0x10", "'banks=0x10'"},
	{"intel,banks=2,banks=4", "'banks=4': banks= is given twice"},
	{"intel,report=2", "report=2 is not a bank of a 2-bank profile"},
	{"intel,banks=1,report=1", "report=1 is not a bank of a 1-bank profile"},
	{"intel,report=x", "'report=x': report= needs a decimal number"},
	{"intel,report=32", "'report=32': report= is out of range"},
	{"intel,banks=4,compat=3", "compat=3 must be between banks (4) and 32"},
	{"intel,compat=33", "'compat=33': compat= is out of range"},
	{"intel,compat=0", "'compat=0'"},
	{"intel,depth=3", "unknown setting 'depth=3'"},
	{"intel,=2", "unknown setting '=2'"},
	{"intel,foo", "unknown capability 'foo'"},
	{"intel,SER", "unknown capability 'SER'"},
	{"intel,banks", "unknown capability 'banks'"},
	{"intel,ser,ser", "'ser' is given twice"},
	{"amd,ser", "'ser' is an Intel capability: not valid with amd"},
	{"amd,cmci", "'cmci' is an Intel capability"},
	{"amd,tes", "'tes' is an Intel capability"},
	{"amd,lmce", "'lmce' is an Intel capability"},
	{"intel,succor", "'succor' is an AMD capability: not valid with intel"},
	{"intel,amd", "vendor 'amd' may only be the first token"},
	{"intel,", "ends with ','"},
	{",intel", "starts with ','"},
	{"intel,,ser", "empty token (',,')"},
	{"intel, ser", "token 2 ' ser' contains byte 0x20"},
	{"intel,ser\n", "token 2 'ser?' contains byte 0x0a"},
	{"intel,c\x01mci", "token 2 'c?mci' contains byte 0x01"},
	{"intel,\xc3\xa9", "contains byte 0xc3"},
};

static void test_malformed(void **state)
{
	struct vmce_profile p, untouched;
	struct vmce_err err;
	char longtext[400];

	(void)state;
	assert_true(sizeof(bad) / sizeof(bad[0]) >= 15);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&p, 0xa5, sizeof(p));
		untouched = p;
		memset(&err, 0, sizeof(err));
		if (vmce_profile_parse(bad[i].in, &p, &err) != -EINVAL)
			fail_msg("'%s' was accepted", bad[i].in);
		if (!strstr(err.msg, bad[i].needle))
			fail_msg("'%s': message '%s' lacks '%s'", bad[i].in, err.msg,
				 bad[i].needle);
		/* The output is left alone, and err may be NULL. */
		assert_memory_equal(&p, &untouched, sizeof(p));
		assert_int_equal(vmce_profile_parse(bad[i].in, &p, NULL), -EINVAL);
	}
	assert_int_equal(vmce_profile_parse(NULL, &p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "no profile text"));
	memset(longtext, 0, sizeof(longtext));
	strcpy(longtext, "intel");
	for (size_t n = strlen(longtext); n + 4 < 300; n = strlen(longtext))
		strcat(longtext, ",ser");
	assert_int_equal(vmce_profile_parse(longtext, &p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "bytes long (at most 256)"));
}

/* Hand-built profiles: vmce_profile_validate() names the bad field. */
static void test_validate(void **state)
{
	struct vmce_profile p;
	struct vmce_err err;

	(void)state;
	vmce_profile_default(&p);
	p.banks = 33;
	p.compat_banks = 33;
	assert_int_equal(vmce_profile_validate(&p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "banks=33"));
	vmce_profile_default(&p);
	p.compat_banks = 40;
	assert_int_equal(vmce_profile_validate(&p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "compat=40"));
	vmce_profile_default(&p);
	p.report_bank = 5;
	assert_int_equal(vmce_profile_validate(&p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "report=5"));
	vmce_profile_default(&p);
	p.caps = VMCE_CAP_SUCCOR;
	assert_int_equal(vmce_profile_validate(&p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "'succor'"));
	vmce_profile_default(&p);
	p.caps |= 1u << 9;
	assert_int_equal(vmce_profile_validate(&p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "0x200"));
	vmce_profile_default(&p);
	p.vendor = (enum vmce_vendor)2;
	assert_int_equal(vmce_profile_validate(&p, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "vendor 2"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default),
		cmocka_unit_test(test_defaults_and_order),
		cmocka_unit_test(test_format_truncation),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_validate),
	};

	return cmocka_run_group_tests_name("core_profile", tests, NULL, NULL);
}
