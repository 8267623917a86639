// SPDX-License-Identifier: MIT
/*
 * Pool levelling: the host description reader (strict, bounded, errors naming the field) and
 * the levelled profile (every host backs it; nothing that every host backs is left out; each
 * limit is explained with the host that caused it).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <vmce/migrate.h>

#include "mig_util.h"

static int parse(const char *json, struct vmce_host_desc *h, struct vmce_err *err)
{
	return vmce_host_desc_parse(json, strlen(json), h, err);
}

static void test_parse_valid(void **state)
{
	struct vmce_host_desc h;
	struct vmce_err err;

	(void)state;
	assert_int_equal(parse(" {\"name\": \"h1\", \"vendor\": \"intel\", \"max_banks\": 32,\n"
			       "  \"caps\": [\"ser\", \"tes\", \"cmci\", \"lmce\", \"ctl\"],\n"
			       "  \"vmce_version\": \"0.1\", \"backend\": \"kvm-hybrid\"}\n",
			       &h, &err),
			 0);
	assert_string_equal(h.name, "h1");
	assert_int_equal(h.vendor, VMCE_VENDOR_INTEL);
	assert_int_equal(h.max_banks, 32);
	assert_int_equal(h.caps, VMCE_CAP_SER | VMCE_CAP_TES | VMCE_CAP_CMCI | VMCE_CAP_LMCE |
					 VMCE_CAP_CTL);
	assert_int_equal(h.version_major, 0);
	assert_int_equal(h.version_minor, 1);
	assert_int_equal(h.backend, VMCE_BACKEND_KVM_HYBRID);
	/* Optional fields take defaults; escapes \" \\ \/ are read. */
	assert_int_equal(
		parse("{\"caps\":[],\"max_banks\":1,\"vendor\":\"amd\",\"name\":\"a\\\"b\\/"
		      "c\\\\\"}",
		      &h, &err),
		0);
	assert_string_equal(h.name, "a\"b/c\\");
	assert_int_equal(h.caps, 0);
	assert_int_equal(h.backend, VMCE_BACKEND_KVM_USERSPACE);
}

static void test_parse_malformed(void **state)
{
	static const struct {
		const char *json, *field;
	} bad[] = {
		{"", "offset 0"},
		{"[]", "offset 0"},
		{"{}", "'name': missing"},
		{"{\"name\":\"a\",\"vendor\":\"intel\",\"max_banks\":2}", "'caps': missing"},
		{"{\"vendor\":\"intel\",\"max_banks\":2,\"caps\":[]}", "'name': missing"},
		{"{\"name\":\"a\",\"max_banks\":2,\"caps\":[]}", "'vendor': missing"},
		{"{\"name\":\"a\",\"vendor\":\"intel\",\"caps\":[]}", "'max_banks': missing"},
		{"{\"name\":\"a\",\"name\":\"b\"}", "'name': given twice"},
		{"{\"name\":\"a\",\"colour\":\"red\"}", "'colour': unknown"},
		{"{\"name\":\"\"}", "'name': empty"},
		{"{\"name\":\"a\",\"vendor\":\"via\"}", "'vendor'"},
		{"{\"name\":\"a\",\"vendor\":\"intel\",\"max_banks\":0}", "'max_banks'"},
		{"{\"name\":\"a\",\"vendor\":\"intel\",\"max_banks\":33}", "'max_banks'"},
		{"{\"name\":\"a\",\"vendor\":\"intel\",\"max_banks\":-1}", "'max_banks'"},
		{"{\"name\":\"a\",\"vendor\":\"intel\",\"max_banks\":02}",
		 "'max_banks': leading zero"},
		{"{\"name\":\"a\",\"vendor\":\"intel\",\"max_banks\":1.5}", "'max_banks'"},
		{"{\"name\":\"a\",\"vendor\":\"intel\",\"max_banks\":\"4\"}", "'max_banks'"},
		{"{\"name\":\"a\",\"vendor\":\"intel\",\"max_banks\":99999999}", "'max_banks'"},
		{"{\"name\":\"a\",\"caps\":[\"ser\",\"mcg\"]}", "'caps[1]': unknown capability"},
		{"{\"name\":\"a\",\"caps\":[\"ser\",\"ser\"]}", "'caps[1]': 'ser' is listed twice"},
		{"{\"name\":\"a\",\"caps\":[\"ser\",]}", "caps[1]"},
		{"{\"name\":\"a\",\"caps\":\"ser\"}", "'caps'"},
		{"{\"name\":\"a\",\"vendor\":\"amd\",\"max_banks\":2,\"caps\":[\"cmci\"]}",
		 "'caps': 'cmci' is an Intel capability"},
		{"{\"name\":\"a\",\"vendor\":\"intel\",\"max_banks\":2,\"caps\":[\"succor\"]}",
		 "'caps': 'succor' is an AMD capability"},
		{"{\"name\":\"a\\u0041\"}", "'name': escape"},
		{"{\"name\":\"a\tb\"}", "'name': control"},
		{"{\"name\":\"0123456789012345678901234567890123456789012345678901234567890123"
		 "4\"}",
		 "'name': string longer"},
		{"{\"name\":\"a\"", "offset"},
		{"{\"name\":\"a", "'name': unterminated"},
		{"{\"name\" \"a\"}", "offset 8"},
		{"{\"name\":\"a\"} x", "trailing data"},
		{"{\"name\":\"a\",\"vmce_version\":\"1\"}", "'vmce_version'"},
		{"{\"name\":\"a\",\"vmce_version\":\"0.1x\"}", "'vmce_version'"},
		{"{\"name\":\"a\",\"backend\":\"xen\"}", "'backend'"},
		{"{\"name\":\"a\",\"caps\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"]"
		 "}",
		 "caps[0]"},
	};
	struct vmce_host_desc h;
	char big[VMCE_HOST_DESC_MAX_LEN + 2];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vmce_err err = {{0}};
		int rc = parse(bad[i].json, &h, &err);

		if (rc != -EINVAL || !strstr(err.msg, bad[i].field)) {
			fprintf(stderr, "%s: expected an error naming \"%s\", got %d: %s\n",
				bad[i].json, bad[i].field, rc, err.msg);
			fail();
		}
	}
	memset(big, ' ', sizeof(big));
	big[0] = '{';
	{
		struct vmce_err err;

		assert_int_equal(vmce_host_desc_parse(big, sizeof(big), &h, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "at most"));
		assert_int_equal(vmce_host_desc_parse("{\"name\":\"a\0\"}", 13, &h, &err), -EINVAL);
		assert_non_null(strstr(err.msg, "NUL"));
	}
}

static const char *pool3[] = {
	"{\"name\":\"a\",\"vendor\":\"intel\",\"max_banks\":32,"
	"\"caps\":[\"ser\",\"tes\",\"cmci\",\"lmce\",\"ctl\"],\"backend\":\"kvm-hybrid\"}",
	"{\"name\":\"b\",\"vendor\":\"intel\",\"max_banks\":8,\"caps\":[\"ser\",\"tes\",\"cmci\","
	"\"ctl\"]}",
	"{\"name\":\"c\",\"vendor\":\"intel\",\"max_banks\":16,\"caps\":[\"ser\",\"tes\",\"ctl\"]}",
};

static const struct vmce_level_note *note_of(const struct vmce_level_result *r, const char *f)
{
	for (size_t i = 0; i < r->nr_notes; i++)
		if (!strcmp(r->notes[i].field, f))
			return &r->notes[i];
	return NULL;
}

static void test_level_pool(void **state)
{
	struct vmce_level_result r;
	struct vmce_profile want;
	struct vmce_err err;
	char text[2048];

	(void)state;
	assert_int_equal(vmce_level_hosts(pool3, 3, NULL, &r, &err), 0);
	vmce_profile_format(&r.profile, text, sizeof(text));
	assert_string_equal(text, "intel,banks=8,ser,tes,ctl");
	assert_string_equal(note_of(&r, "banks")->hosts, "b");
	assert_string_equal(note_of(&r, "cmci")->hosts, "c");
	assert_non_null(strstr(note_of(&r, "cmci")->text, "dropped"));
	assert_string_equal(note_of(&r, "lmce")->hosts, "b,c");
	assert_non_null(strstr(note_of(&r, "ser")->text, "kept"));
	{
		int len = vmce_level_format(&r, text, sizeof(text));

		assert_int_equal(len, (int)strlen(text));
	}
	assert_non_null(strstr(text, "profile: intel,banks=8,ser,tes,ctl\n"));
	assert_non_null(strstr(text, "lmce: dropped: hosts b,c cannot back it\n"));
	printf("%s", text);

	{
		static const char *quoted[] = {
			"{\"name\":\"q\\\"1\\\\\",\"vendor\":\"intel\",\"max_banks\":2,"
			"\"caps\":[\"ser\"]}",
		};
		char json[4096];
		int len = vmce_level_format_json(&r, json, sizeof(json));

		assert_int_equal(len, (int)strlen(json));
		assert_non_null(
			strstr(json, "{\"profile\":\"intel,banks=8,ser,tes,ctl\",\"notes\":[{"));
		assert_non_null(strstr(json, "{\"field\":\"lmce\",\"hosts\":\"b,c\",\"text\":"
					     "\"dropped: hosts b,c cannot back it\"}"));
		assert_int_equal(json[len - 1], '}');
		/* Truncation reports the length needed and stays terminated. */
		assert_int_equal(vmce_level_format_json(&r, json, 10), len);
		assert_int_equal(strlen(json), 9);
		/* Host names are escaped. */
		assert_int_equal(vmce_level_hosts(quoted, 1, NULL, &r, &err), 0);
		vmce_level_format_json(&r, json, sizeof(json));
		assert_non_null(strstr(json, "\"hosts\":\"q\\\"1\\\\\""));
		assert_int_equal(vmce_level_hosts(pool3, 3, NULL, &r, &err), 0);
	}

	/* The default profile as the wish: 2 banks, ser, tes, cmci; c has no cmci. */
	vmce_profile_default(&want);
	assert_int_equal(vmce_level_hosts(pool3, 3, &want, &r, &err), 0);
	vmce_profile_format(&r.profile, text, sizeof(text));
	assert_string_equal(text, "intel,banks=2,ser,tes");
	assert_null(note_of(&r, "lmce")); /* not wanted: not mentioned */
	/* More banks than a host backs. */
	assert_int_equal(vmce_profile_parse("intel,banks=12,ser", &want, &err), 0);
	assert_int_equal(vmce_level_hosts(pool3, 3, &want, &r, &err), 0);
	assert_int_equal(r.profile.banks, 8);
	assert_string_equal(note_of(&r, "banks")->hosts, "b");
	assert_non_null(strstr(note_of(&r, "banks")->text, "not 12"));
}

static void test_level_refusals(void **state)
{
	static const char *mixed[] = {
		"{\"name\":\"i\",\"vendor\":\"intel\",\"max_banks\":4,\"caps\":[\"ser\"]}",
		"{\"name\":\"m\",\"vendor\":\"amd\",\"max_banks\":4,\"caps\":[\"succor\"]}",
	};
	static const char *old[] = {
		"{\"name\":\"o\",\"vendor\":\"intel\",\"max_banks\":4,\"caps\":[],"
		"\"vmce_version\":\"0.0\"}",
	};
	static const char *broken[] = {
		"{\"name\":\"i\",\"vendor\":\"intel\",\"max_banks\":4,\"caps\":[\"ser\"]}",
		"{\"name\":\"j\",\"vendor\":\"intel\",\"max_banks\":4}",
	};
	struct vmce_level_result r;
	struct vmce_profile want;
	struct vmce_err err;

	(void)state;
	assert_int_equal(vmce_level_hosts(mixed, 2, NULL, &r, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "host 'i' is intel and host 'm' is amd"));
	assert_int_equal(vmce_level_hosts(old, 1, NULL, &r, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "'o'"));
	assert_int_equal(vmce_level_hosts(broken, 2, NULL, &r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "host description 2: field 'caps': missing"));
	assert_int_equal(vmce_level_hosts(broken, 0, NULL, &r, &err), -EINVAL);
	vmce_profile_default(&want);
	assert_int_equal(vmce_level_hosts(&mixed[1], 1, &want, &r, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "vendor"));
}

/* Random pools: every host can back the result, and the result is the largest such profile. */
static void test_level_random(void **state)
{
	struct mu_rng rng = {12345};

	(void)state;
	for (int c = 0; c < 5000; c++) {
		struct vmce_host_desc h[6];
		size_t n = 1 + mu_below(&rng, 6);
		enum vmce_vendor v = mu_below(&rng, 2) ? VMCE_VENDOR_AMD : VMCE_VENDOR_INTEL;
		uint32_t all = v == VMCE_VENDOR_AMD ? (VMCE_CAP_SUCCOR | VMCE_CAP_CTL)
						    : (VMCE_CAP_SER | VMCE_CAP_TES | VMCE_CAP_CMCI |
						       VMCE_CAP_LMCE | VMCE_CAP_CTL);
		struct vmce_level_result r;
		struct vmce_err err;
		uint32_t common = all;
		unsigned min_banks = 32;

		for (size_t i = 0; i < n; i++) {
			memset(&h[i], 0, sizeof(h[i]));
			snprintf(h[i].name, sizeof(h[i].name), "h%zu", i);
			h[i].vendor = v;
			h[i].max_banks = 1 + (unsigned)mu_below(&rng, 32);
			h[i].caps = (uint32_t)mu_next(&rng) & all;
			h[i].version_minor = 1;
			common &= h[i].caps;
			if (h[i].max_banks < min_banks)
				min_banks = h[i].max_banks;
		}
		assert_int_equal(vmce_level_descs(h, n, NULL, &r, &err), 0);
		assert_int_equal(r.profile.caps, common);
		assert_int_equal(r.profile.banks, min_banks);
		for (size_t i = 0; i < n; i++) {
			struct vmce_profile hp;

			memset(&hp, 0, sizeof(hp));
			hp.vendor = v;
			hp.banks = (uint8_t)h[i].max_banks;
			hp.compat_banks = hp.banks;
			hp.report_bank = hp.banks > 1;
			hp.caps = h[i].caps;
			assert_int_equal(vmce_profile_can_back(&hp, &r.profile, &err), 0);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),  cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_level_pool),   cmocka_unit_test(test_level_refusals),
		cmocka_unit_test(test_level_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
