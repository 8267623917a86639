// SPDX-License-Identifier: MIT
/*
 * vmcectl's host description reader (tools/vmcectl/hostdesc.c: strict, bounded, errors naming
 * the field or the byte) and the JSON form of a levelling result (tools/vmcectl/level.c).
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

#include "hostdesc.h"
#include "level.h"

static int parse(const char *json, struct vmce_host_desc *h, struct vmce_err *err)
{
	return host_desc_parse(json, strlen(json), HOST_DESC_VMCE, h, err);
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
	char big[HOST_DESC_MAX_LEN + 2];

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

		assert_int_equal(host_desc_parse(big, sizeof(big), HOST_DESC_VMCE, &h, &err),
				 -EINVAL);
		assert_non_null(strstr(err.msg, "at most"));
		assert_int_equal(
			host_desc_parse("{\"name\":\"a\0\"}", 13, HOST_DESC_VMCE, &h, &err),
			-EINVAL);
		assert_non_null(strstr(err.msg, "NUL"));
	}
}

/* Parse each text; the texts are valid descriptions. */
static void parse_all(const char *const *texts, size_t n, struct vmce_host_desc *hosts)
{
	for (size_t i = 0; i < n; i++) {
		struct vmce_err err = {{0}};

		if (parse(texts[i], &hosts[i], &err))
			fail_msg("%s: %s", texts[i], err.msg);
	}
}

static const char *pool3[] = {
	"{\"name\":\"a\",\"vendor\":\"intel\",\"max_banks\":32,"
	"\"caps\":[\"ser\",\"tes\",\"cmci\",\"lmce\",\"ctl\"],\"backend\":\"kvm-hybrid\"}",
	"{\"name\":\"b\",\"vendor\":\"intel\",\"max_banks\":8,\"caps\":[\"ser\",\"tes\",\"cmci\","
	"\"ctl\"]}",
	"{\"name\":\"c\",\"vendor\":\"intel\",\"max_banks\":16,\"caps\":[\"ser\",\"tes\",\"ctl\"]}",
};

/* The levelling result as JSON: the profile, then one {field, hosts, text} per note. */
static void test_level_json(void **state)
{
	static const char *quoted[] = {
		"{\"name\":\"q\\\"1\\\\\",\"vendor\":\"intel\",\"max_banks\":2,"
		"\"caps\":[\"ser\"]}",
	};
	struct vmce_host_desc hosts[3];
	struct vmce_level_result r;
	struct vmce_err err;
	json_t *j;
	char *json;

	(void)state;
	parse_all(pool3, 3, hosts);
	assert_int_equal(vmce_level_descs(hosts, 3, NULL, &r, &err), 0);
	j = level_result_json(&r);
	assert_non_null(j);
	json = json_dumps(j, JSON_COMPACT);
	assert_non_null(json);
	assert_non_null(strstr(json, "{\"profile\":\"intel,banks=8,ser,tes,ctl\",\"notes\":[{"));
	assert_non_null(strstr(json, "{\"field\":\"lmce\",\"hosts\":\"b,c\",\"text\":"
				     "\"dropped: hosts b,c cannot back it\"}"));
	assert_int_equal(json_array_size(json_object_get(j, "notes")), r.nr_notes);
	assert_int_equal(json[strlen(json) - 1], '}');
	free(json);
	json_decref(j);
	/* Host names are escaped. */
	parse_all(quoted, 1, hosts);
	assert_int_equal(vmce_level_descs(hosts, 1, NULL, &r, &err), 0);
	j = level_result_json(&r);
	json = json_dumps(j, JSON_COMPACT);
	assert_non_null(strstr(json, "\"hosts\":\"q\\\"1\\\\\""));
	free(json);
	json_decref(j);
}

/* A description that does not parse never reaches levelling; one that does levels as the
 * library says (the refusals of tests/migrate/test_level.c, from JSON texts). */
static void test_level_from_text(void **state)
{
	static const char *mixed[] = {
		"{\"name\":\"i\",\"vendor\":\"intel\",\"max_banks\":4,\"caps\":[\"ser\"]}",
		"{\"name\":\"m\",\"vendor\":\"amd\",\"max_banks\":4,\"caps\":[\"succor\"]}",
	};
	struct vmce_host_desc hosts[2];
	struct vmce_level_result r;
	struct vmce_err err;

	(void)state;
	assert_int_equal(
		parse("{\"name\":\"j\",\"vendor\":\"intel\",\"max_banks\":4}", &hosts[0], &err),
		-EINVAL);
	assert_non_null(strstr(err.msg, "field 'caps': missing"));
	parse_all(mixed, 2, hosts);
	assert_int_equal(vmce_level_descs(hosts, 2, NULL, &r, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "host 'i' is intel and host 'm' is amd"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_level_json),
		cmocka_unit_test(test_level_from_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
