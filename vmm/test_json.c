// SPDX-License-Identifier: MIT
/*
 * Unit tests of the control-request parser (json.c): accepted forms, every rejection with its
 * message, bounds, and the output buffer.
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

static int parse(const char *text, struct json_obj *o, char *err)
{
	return json_parse_object(text, strlen(text), o, err, 256);
}

static void test_valid(void **state)
{
	struct json_obj o;
	char err[256];
	struct json_member *m;

	assert_int_equal(parse(" {\"cmd\" : \"inject\", \"gpa\":4096,\"b\":true,"
			       "\"f\":false,\"n\":null,\"x\":-1.5e3}\r\n",
			       &o, err),
			 0);
	assert_int_equal(o.n, 6);
	m = json_get(&o, "cmd");
	assert_non_null(m);
	assert_int_equal(m->type, JSON_STRING);
	assert_string_equal(m->str, "inject");
	m = json_get(&o, "gpa");
	assert_int_equal(m->type, JSON_NUMBER);
	assert_string_equal(m->str, "4096");
	assert_true(json_get(&o, "b")->b);
	assert_false(json_get(&o, "f")->b);
	assert_int_equal(json_get(&o, "n")->type, JSON_NULL);
	assert_string_equal(json_get(&o, "x")->str, "-1.5e3");
	assert_null(json_get(&o, "missing"));
	json_free(&o);

	assert_int_equal(parse("{}", &o, err), 0);
	assert_int_equal(o.n, 0);
}

static void test_escapes(void **state)
{
	struct json_obj o;
	char err[256];

	assert_int_equal(parse("{\"s\":\"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\ud83d\\ude00\"}", &o, err),
			 0);
	assert_string_equal(json_get(&o, "s")->str, "a\"b\\c/d\n\t\xc3\xa9\xf0\x9f\x98\x80");
	json_free(&o);
}

struct bad {
	const char *text;
	const char *msg;
};

static void test_rejections(void **state)
{
	static const struct bad cases[] = {
		{"", "empty request"},
		{"[1]", "request must be a JSON object"},
		{"\"x\"", "request must be a JSON object"},
		{"42", "request must be a JSON object"},
		{"x", "expected '{'"},
		{"{", "unterminated object"},
		{"{\"a\"}", "expected ':'"},
		{"{\"a\":}", "invalid number"},
		{"{\"a\":1,}", "expected a field name in double quotes"},
		{"{\"a\":1 \"b\":2}", "expected ',' or '}'"},
		{"{\"a\":1}x", "trailing characters after the object"},
		{"{\"a\":\"x}", "unterminated string"},
		{"{\"a\":\"\\q\"}", "invalid escape"},
		{"{\"a\":\"\\u12\"}", "invalid \\u escape"},
		{"{\"a\":\"\\ud800\"}", "unpaired surrogate"},
		{"{\"a\":\"\\udc00\"}", "unpaired surrogate"},
		{"{\"a\":\"\\u0000\"}", "NUL byte"},
		{"{\"a\":\"\t\"}", "control character in string"},
		{"{\"a\":01}", "expected ',' or '}'"},
		{"{\"a\":-}", "invalid number"},
		{"{\"a\":1.}", "invalid number"},
		{"{\"a\":1e}", "invalid number"},
		{"{\"a\":tru}", "unexpected character"},
		{"{\"a\":{}}", "field \"a\": nested objects and arrays are not accepted"},
		{"{\"a\":[1]}", "field \"a\": nested objects and arrays are not accepted"},
		{"{\"a\":1,\"a\":2}", "duplicate field \"a\""},
	};
	struct json_obj o;
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		if (parse(cases[i].text, &o, err) == 0)
			fail_msg("accepted: %s", cases[i].text);
		if (!strstr(err, cases[i].msg))
			fail_msg("%s: message \"%s\" lacks \"%s\"", cases[i].text, err,
				 cases[i].msg);
		assert_int_equal(o.n, 0);
	}
	/* A NUL byte inside the line. */
	assert_int_equal(json_parse_object("{\"a\":1}\0x", 9, &o, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "NUL byte at byte 7"));
}

static void test_bounds(void **state)
{
	char *big = malloc(16384);
	struct json_obj o;
	char err[256];
	size_t n;

	/* A string of exactly the limit passes; one more byte fails with the field's name. */
	n = (size_t)sprintf(big, "{\"t\":\"");
	memset(big + n, 'a', JSON_MAX_STR);
	strcpy(big + n + JSON_MAX_STR, "\"}");
	assert_int_equal(parse(big, &o, err), 0);
	assert_int_equal(json_get(&o, "t")->len, JSON_MAX_STR);
	json_free(&o);
	memset(big + n, 'a', JSON_MAX_STR + 1);
	strcpy(big + n + JSON_MAX_STR + 1, "\"}");
	assert_int_equal(parse(big, &o, err), -1);
	assert_string_equal(err, "field \"t\": string longer than 4096 bytes");
	/* Multi-byte escapes at the boundary never overflow. */
	n = (size_t)sprintf(big, "{\"t\":\"");
	for (int i = 0; i < 1500; i++)
		n += (size_t)sprintf(big + n, "\\u20ac");
	strcpy(big + n, "\"}");
	assert_int_equal(parse(big, &o, err), -1);
	assert_non_null(strstr(err, "string longer than"));

	/* Field names and field counts. */
	n = (size_t)sprintf(big, "{\"");
	memset(big + n, 'k', 65);
	strcpy(big + n + 65, "\":1}");
	assert_int_equal(parse(big, &o, err), -1);
	assert_string_equal(err, "a field name is longer than 64 bytes");
	n = (size_t)sprintf(big, "{");
	for (int i = 0; i < JSON_MAX_MEMBERS + 1; i++)
		n += (size_t)sprintf(big + n, "%s\"k%d\":%d", i ? "," : "", i, i);
	strcpy(big + n, "}");
	assert_int_equal(parse(big, &o, err), -1);
	assert_string_equal(err, "too many fields (limit 32)");
	free(big);
}

static void test_sbuf(void **state)
{
	struct sbuf s;

	sbuf_init(&s, 64);
	sbuf_printf(&s, "%d-", 12);
	sbuf_json_str(&s, "q\"\\\n\x01");
	assert_string_equal(s.buf, "12-\"q\\\"\\\\\\u000a\\u0001\"");
	assert_false(s.overflow);
	for (int i = 0; i < 10; i++)
		sbuf_printf(&s, "0123456789");
	assert_true(s.overflow);
	assert_true(s.len < 64);
	sbuf_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),	   cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_rejections), cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_sbuf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
