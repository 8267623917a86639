// SPDX-License-Identifier: MIT
/*
 * vmcectl's JSON reader (tools/vmcectl/json.c), which parses what a control socket sends:
 * valid documents decode exactly (escapes, UTF-8, numbers, byte ranges of values), every
 * malformed one is rejected with a reason, and random mutations of real responses never
 * crash it (run under ASan/UBSan in the sanitizer build).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

static struct jval *parse(const char *text, char *why, size_t whylen)
{
	return json_parse(text, strlen(text), why, whylen);
}

static void test_values(void **state)
{
	const char *text =
		" {\"ok\":true,\"n\":-12.5e3,\"s\":\"a\\\"b\\\\c\\/\\n\\u00e9\\ud83d\\ude00\","
		"\"arr\":[1,\"0x10\",null,false,{}],\"u\":\"0xffffffffffffffff\","
		"\"big\":18446744073709551616} ";
	char why[128];
	struct jval *v = parse(text, why, sizeof(why));
	const struct jval *arr;
	uint64_t u;
	int64_t i;
	bool b;

	assert_non_null(v);
	assert_int_equal(v->type, J_OBJ);
	assert_int_equal(v->n, 6);
	assert_true(json_get_bool(v, "ok", &b) && b);
	assert_string_equal(json_get(v, "n")->s, "-12.5e3");
	assert_false(json_get_u64(v, "n", &u));
	assert_string_equal(json_get_str(v, "s"), "a\"b\\c/\n\xc3\xa9\xf0\x9f\x98\x80");
	arr = json_get(v, "arr");
	assert_int_equal(arr->type, J_ARR);
	assert_int_equal(arr->n, 5);
	assert_int_equal(arr->v[2].type, J_NULL);
	assert_int_equal(arr->v[4].type, J_OBJ);
	/* Byte ranges: each value can be printed as it was received. */
	assert_int_equal(arr->v[1].len, 6);
	assert_memory_equal(text + arr->v[1].off, "\"0x10\"", 6);
	assert_memory_equal(text + arr->off, "[1,\"0x10\",null,false,{}]", arr->len);
	assert_true(json_get_u64(v, "u", &u) && u == UINT64_MAX);
	assert_false(json_get_u64(v, "big", &u)); /* 2^64 does not fit */
	assert_false(json_get_i64(v, "s", &i));
	assert_null(json_get(v, "missing"));
	assert_null(json_get_str(v, "ok"));
	json_free(v);

	v = parse("[-9223372036854775807, 42]", why, sizeof(why));
	assert_non_null(v);
	json_free(v);
	v = parse("{\"a\":-7,\"b\":9223372036854775808}", why, sizeof(why));
	assert_true(json_get_i64(v, "a", &i) && i == -7);
	assert_false(json_get_i64(v, "b", &i));
	json_free(v);
}

static void test_malformed(void **state)
{
	static const struct {
		const char *text, *why;
	} cases[] = {
		{"", "unexpected end of text at byte 0"},
		{"   ", "unexpected end of text"},
		{"{", "expected a string key at byte 1"},
		{"{\"a\"}", "expected ':' at byte 4"},
		{"{\"a\":1,}", "expected a string key"},
		{"{\"a\":1 \"b\":2}", "expected ',' or '}'"},
		{"[1 2]", "expected ',' or ']'"},
		{"[1,]", "invalid number"},
		{"\"abc", "unterminated string"},
		{"\"a\\", "unterminated string"},
		{"\"\\x\"", "invalid escape"},
		{"\"\\u12\"", "truncated \\u escape"},
		{"\"\\u12zz\"", "invalid \\u escape"},
		{"\"\\ud800\\u0041\"", "invalid surrogate pair"},
		{"\"a\tb\"", "control character in string"},
		{"tru", "invalid literal"},
		{"nul", "invalid literal"},
		{"01", "trailing characters after the value at byte 1"},
		{"-", "invalid number"},
		{"1.", "invalid number"},
		{"1e", "invalid number"},
		{"+1", "invalid number"},
		{"{} {}", "trailing characters"},
		{"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
		 "nested too deeply"},
	};
	char why[128];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct jval *v;

		why[0] = '\0';
		v = parse(cases[i].text, why, sizeof(why));
		if (v || !strstr(why, cases[i].why))
			fail_msg("'%s': got %s '%s', want '%s'", cases[i].text,
				 v ? "a value" : "error", why, cases[i].why);
	}
	/* A NUL byte inside the text. */
	assert_null(json_parse("{\"a\":\"x\0\"}", 9, why, sizeof(why)));
	assert_non_null(strstr(why, "NUL byte"));
}

/* Random byte mutations of real responses: parse, walk, free; never a crash or a leak. */
static void walk(const struct jval *v, size_t *count)
{
	(*count)++;
	if (v->type == J_OBJ || v->type == J_ARR)
		for (size_t i = 0; i < v->n; i++)
			walk(&v->v[i], count);
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
		char buf[512], why[128];
		struct jval *v;

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
		v = json_parse(buf, len, why, sizeof(why));
		if (v) {
			parsed++;
			walk(v, &values);
			assert_true(v->off + v->len <= len);
			json_free(v);
		} else {
			assert_true(strlen(why) > 0);
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
