// SPDX-License-Identifier: MIT
/*
 * What vmcectl adds to Jansson (tools/vmcectl/jsonutil.c) to read what a control socket sends:
 * the typed lookups accept the protocol's forms of a number and nothing else, malformed text
 * is rejected with a reason and the byte it is at, the nesting bound holds, and random
 * mutations of real responses never crash the reader (run under ASan/UBSan in the sanitizer
 * build).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsonutil.h"

static json_t *parse(const char *text, char *why, size_t whylen)
{
	struct vmce_err err = {""};
	json_t *v = jparse(text, strlen(text), JSON_DECODE_ANY, &err);

	snprintf(why, whylen, "%s", err.msg);
	return v;
}

static void test_values(void **state)
{
	const char *text =
		" {\"ok\":true,\"n\":-12.5e3,\"s\":\"a\\\"b\\\\c\\/\\n\\u00e9\\ud83d\\ude00\","
		"\"arr\":[1,\"0x10\",null,false,{}],\"u\":\"0xffffffffffffffff\","
		"\"big\":\"18446744073709551616\",\"d\":\"42\",\"neg\":-3,\"x\":\"0x\"} ";
	char why[128];
	json_t *v = parse(text, why, sizeof(why));
	uint64_t u;
	int64_t i;
	bool b;

	assert_non_null(v);
	assert_true(json_is_object(v));
	assert_true(jget_bool(v, "ok", &b) && b);
	assert_false(jget_bool(v, "n", &b));
	assert_false(jget_u64(v, "n", &u)); /* a real is not a u64 */
	assert_false(jget_i64(v, "n", &i));
	assert_string_equal(jget_str(v, "s", NULL), "a\"b\\c/\n\xc3\xa9\xf0\x9f\x98\x80");
	assert_string_equal(jget_str(v, "ok", "dflt"), "dflt");
	assert_string_equal(jget_str(v, "missing", "dflt"), "dflt");
	assert_true(jget_u64(v, "u", &u) && u == UINT64_MAX);
	assert_false(jget_u64(v, "big", &u)); /* 2^64 does not fit */
	assert_true(jget_u64(v, "d", &u) && u == 42);
	assert_false(jget_u64(v, "neg", &u));
	assert_true(jget_i64(v, "neg", &i) && i == -3);
	assert_false(jget_u64(v, "x", &u));
	assert_false(jget_u64(v, "arr", &u));
	assert_false(jget_i64(v, "s", &i));
	assert_false(jget_u64(v, "missing", &u));
	json_decref(v);

	v = parse("{\"a\":-7,\"b\":9223372036854775807,\"c\":0}", why, sizeof(why));
	assert_true(jget_i64(v, "a", &i) && i == -7);
	assert_true(jget_u64(v, "b", &u) && u == INT64_MAX);
	assert_true(jget_u64(v, "c", &u) && u == 0);
	json_decref(v);
}

static void test_malformed(void **state)
{
	static const struct {
		const char *text, *why;
	} cases[] = {
		{"", "at byte 0"},
		{"{", "at byte 1"},
		{"{\"a\"}", "':' expected near '}' at byte 4"},
		{"{\"a\":1,}", "string or '}' expected near '}' at byte 7"},
		{"{\"a\":1 \"b\":2}", "'}' expected near '\"b\"' at byte 7"},
		{"[1 2]", "']' expected near '2' at byte 3"},
		{"[1,]", "unexpected token near ']' at byte 3"},
		{"\"abc", "premature end of input"},
		{"\"\\x\"", "invalid escape"},
		{"\"\\u12zz\"", "invalid escape"},
		{"\"\\ud800\\u0041\"", "invalid Unicode"},
		{"\"a\tb\"", "control character 0x9"},
		{"tru", "invalid token near 'tru' at byte 0"},
		{"01", "invalid token"},
		{"-", "invalid token"},
		{"1.", "invalid token"},
		{"{} {}", "end of file expected near '{' at byte 3"},
		{"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
		 "nested too deeply"},
	};
	struct vmce_err err = {""};
	char why[200];
	json_t *v;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		why[0] = '\0';
		v = parse(cases[i].text, why, sizeof(why));
		if (v || !strstr(why, cases[i].why))
			fail_msg("'%s': got %s '%s', want '%s'", cases[i].text,
				 v ? "a value" : "error", why, cases[i].why);
	}
	/* The top array and 32 levels inside it are fine (34 are not, above). */
	v = parse("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", why,
		  sizeof(why));
	assert_non_null(v);
	json_decref(v);
	/* A NUL byte inside the text. */
	assert_null(jparse("{\"a\":\"x\0\"}", 9, 0, &err));
	assert_non_null(strstr(err.msg, "NUL byte"));
}

/* Random byte mutations of real responses: parse, walk, free; never a crash or a leak. */
static void walk(const json_t *v, size_t *count)
{
	const char *key;
	json_t *m;
	size_t i;
	uint64_t u;

	(*count)++;
	if (json_is_array(v))
		json_array_foreach(v, i, m)
			walk(m, count);
	if (json_is_object(v))
		json_object_foreach((json_t *)v, key, m) {
			jget_u64(v, key, &u);
			walk(m, count);
		}
}

static void test_mutations(void **state)
{
	static const char *const seeds[] = {
		"{\"ok\":true,\"results\":[{\"verdict\":\"forward\",\"class\":\"srao\",\"gpa\":"
		"\"0x2000000\",\"queued\":true,\"reason\":\"r\",\"plan\":{\"vcpus\":[{\"cpu\":0}]}}"
		"],"
		"\"last_seq\":3}",
		"{\"seq\":1,\"time_ns\":1764118000000000000,\"kind\":\"delivered\",\"class\":"
		"\"srar\","
		"\"vcpu\":1,\"gpa\":null,\"signal\":\"mc\",\"mcg_status\":\"0x7\",\"reason\":"
		"\"\\u00e9\\n\"}",
		"{\"ok\":false,\"error\":\"field \\\"cpu\\\": vCPU 5 does not exist\"}",
		"[[1,2,[3,[4,[5]]]],{\"a\":{\"b\":{\"c\":[true,false,null,-1.5e-3]}}}]",
	};
	static const char alphabet[] = "{}[]\":,\\u0123456789abcdefxtrunl.-+eE \t\n\x01\xff";
	uint64_t x = 0x9e3779b97f4a7c15ull;
	size_t parsed = 0, values = 0;

	for (int iter = 0; iter < 200000; iter++) {
		const char *seed = seeds[iter % 4];
		size_t len = strlen(seed);
		struct vmce_err err = {""};
		char buf[512];
		json_t *v;

		memcpy(buf, seed, len);
		for (int m = 0; m < 1 + iter % 4; m++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			switch (x % 3) {
			case 0: /* replace a byte */
				buf[(x >> 8) % len] = alphabet[(x >> 32) % (sizeof(alphabet) - 1)];
				break;
			case 1: /* truncate */
				len = 1 + (x >> 8) % len;
				break;
			default: /* insert a byte */
				if (len < sizeof(buf) - 1) {
					size_t at = (x >> 8) % len;

					memmove(buf + at + 1, buf + at, len - at);
					buf[at] = alphabet[(x >> 32) % (sizeof(alphabet) - 1)];
					len++;
				}
			}
		}
		v = jparse(buf, len, JSON_DECODE_ANY, &err);
		if (v) {
			parsed++;
			walk(v, &values);
			json_decref(v);
		} else {
			assert_true(strlen(err.msg) > 0);
		}
	}
	/* The mutations exercise both outcomes. */
	assert_true(parsed > 1000);
	assert_true(values > parsed);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
