// SPDX-License-Identifier: MIT
/*
 * Unit tests of vmce-vm's control-request layer (vmm/control_req.c, on jansson): accepted
 * forms, every rejection with its message, bounds, and typed field access.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control_req.h"

static int parse(const char *text, struct ctl_req *r)
{
	return ctl_req_parse(r, text, strlen(text));
}

static void test_valid(void **state)
{
	struct ctl_req r;
	json_t *m;

	assert_int_equal(parse(" {\"cmd\" : \"inject\", \"gpa\":4096,\"b\":true,"
			       "\"f\":false,\"n\":null,\"x\":-1.5e3}\r\n",
			       &r),
			 0);
	assert_int_equal(json_object_size(r.obj), 6);
	m = ctl_req_get(&r, "cmd");
	assert_non_null(m);
	assert_string_equal(json_string_value(m), "inject");
	m = ctl_req_get(&r, "gpa");
	assert_true(json_is_integer(m));
	assert_int_equal(json_integer_value(m), 4096);
	assert_true(json_is_true(ctl_req_get(&r, "b")));
	assert_true(json_is_false(ctl_req_get(&r, "f")));
	assert_true(json_is_null(ctl_req_get(&r, "n")));
	assert_true(json_real_value(ctl_req_get(&r, "x")) == -1500.0);
	assert_null(ctl_req_get(&r, "missing"));
	ctl_req_free(&r);

	assert_int_equal(parse("{}", &r), 0);
	assert_int_equal(json_object_size(r.obj), 0);
	ctl_req_free(&r);
}

static void test_escapes(void **state)
{
	struct ctl_req r;

	assert_int_equal(parse("{\"s\":\"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\ud83d\\ude00\"}", &r), 0);
	assert_string_equal(json_string_value(ctl_req_get(&r, "s")),
			    "a\"b\\c/d\n\t\xc3\xa9\xf0\x9f\x98\x80");
	ctl_req_free(&r);
}

struct bad {
	const char *text;
	const char *msg;
};

static void test_rejections(void **state)
{
	/* Syntax errors are jansson's words, with the byte where it stopped. */
	static const struct bad cases[] = {
		{"", "request is not valid JSON: "},
		{"[1]", "request must be a JSON object"},
		{"\"x\"", "request must be a JSON object"},
		{"42", "request must be a JSON object"},
		{"x", "request is not valid JSON: invalid token near 'x' at byte 1"},
		{"{",
		 "request is not valid JSON: string or '}' expected near end of file at byte 1"},
		{"{\"a\"}", "request is not valid JSON: ':' expected near '}' at byte 5"},
		{"{\"a\":}", "request is not valid JSON: "},
		{"{\"a\":1,}", "request is not valid JSON: "},
		{"{\"a\":1 \"b\":2}", "request is not valid JSON: "},
		{"{\"a\":1}x",
		 "request is not valid JSON: end of file expected near 'x' at byte 8"},
		{"{\"a\":\"x}", "request is not valid JSON: premature end of input"},
		{"{\"a\":\"\\q\"}", "request is not valid JSON: invalid escape"},
		{"{\"a\":\"\\u12\"}", "request is not valid JSON: "},
		{"{\"a\":\"\\ud800\"}", "request is not valid JSON: invalid Unicode"},
		{"{\"a\":\"\\udc00\"}", "request is not valid JSON: invalid Unicode"},
		{"{\"a\":\"\\u0000\"}", "request is not valid JSON: NUL byte at byte "},
		{"{\"\\u0000\":1}", "request is not valid JSON: NUL byte at byte "},
		{"{\"a\":\"\t\"}", "request is not valid JSON: control character 0x9"},
		{"{\"a\":\"\xff\"}", "request is not valid JSON: unable to decode byte 0xff"},
		{"{\"a\":01}", "request is not valid JSON: invalid token"},
		{"{\"a\":-}", "request is not valid JSON: "},
		{"{\"a\":1.}", "request is not valid JSON: "},
		{"{\"a\":1e}", "request is not valid JSON: "},
		{"{\"a\":tru}", "request is not valid JSON: invalid token"},
		{"{\"a\":{}}", "field \"a\": nested objects and arrays are not accepted"},
		{"{\"a\":[1]}", "field \"a\": nested objects and arrays are not accepted"},
		{"{\"a\":1,\"a\":2}", "duplicate field \"a\""},
		{"{\"a\\u0062\":1,\"ab\":2}", "duplicate field \"ab\""},
		{"{\"gpa\":99999999999999999999}", "field \"gpa\": value out of range"},
	};
	struct ctl_req r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (parse(cases[i].text, &r) == 0)
			fail_msg("accepted: %s", cases[i].text);
		if (strncmp(r.err.msg, cases[i].msg, strlen(cases[i].msg)))
			fail_msg("%s: message \"%s\" does not start with \"%s\"", cases[i].text,
				 r.err.msg, cases[i].msg);
		ctl_req_free(&r);
	}
	/* A NUL byte inside the line. */
	assert_int_equal(ctl_req_parse(&r, "{\"a\":1}\0x", 9), -1);
	assert_string_equal(r.err.msg, "request is not valid JSON: NUL byte at byte 7");
	ctl_req_free(&r);
}

static void test_bounds(void **state)
{
	char *big = malloc(16384);
	struct ctl_req r;
	size_t n;

	/* A string of exactly the limit passes; one more byte fails with the field's name. */
	n = (size_t)sprintf(big, "{\"t\":\"");
	memset(big + n, 'a', CTL_MAX_STRING);
	strcpy(big + n + CTL_MAX_STRING, "\"}");
	assert_int_equal(parse(big, &r), 0);
	assert_int_equal(json_string_length(ctl_req_get(&r, "t")), CTL_MAX_STRING);
	ctl_req_free(&r);
	memset(big + n, 'a', CTL_MAX_STRING + 1);
	strcpy(big + n + CTL_MAX_STRING + 1, "\"}");
	assert_int_equal(parse(big, &r), -1);
	assert_string_equal(r.err.msg, "field \"t\": string longer than 4096 bytes");
	ctl_req_free(&r);
	/* Multi-byte escapes count after unescaping. */
	n = (size_t)sprintf(big, "{\"t\":\"");
	for (int i = 0; i < 1500; i++)
		n += (size_t)sprintf(big + n, "\\u20ac");
	strcpy(big + n, "\"}");
	assert_int_equal(parse(big, &r), -1);
	assert_non_null(strstr(r.err.msg, "string longer than"));
	ctl_req_free(&r);

	/* Field names and field counts. */
	n = (size_t)sprintf(big, "{\"");
	memset(big + n, 'k', 65);
	strcpy(big + n + 65, "\":1}");
	assert_int_equal(parse(big, &r), -1);
	assert_string_equal(r.err.msg, "a field name is longer than 64 bytes");
	ctl_req_free(&r);
	n = (size_t)sprintf(big, "{");
	for (int i = 0; i < CTL_MAX_FIELDS + 1; i++)
		n += (size_t)sprintf(big + n, "%s\"k%d\":%d", i ? "," : "", i, i);
	strcpy(big + n, "}");
	assert_int_equal(parse(big, &r), -1);
	assert_string_equal(r.err.msg, "too many fields (limit 32)");
	ctl_req_free(&r);
	free(big);
}

/* One u64 field: the value accepted, or the message. */
static void u64_case(const char *value, uint64_t want, const char *msg)
{
	char text[256];
	struct ctl_req r;
	uint64_t v = 0;
	bool present;
	int rc;

	snprintf(text, sizeof(text), "{\"gpa\":%s}", value);
	if (parse(text, &r)) {
		rc = -1;
	} else {
		rc = ctl_req_u64(&r, "gpa", &present, &v);
		assert_true(present);
	}
	if (msg) {
		if (rc == 0)
			fail_msg("%s accepted as %llu", value, (unsigned long long)v);
		assert_string_equal(r.err.msg, msg);
	} else {
		if (rc)
			fail_msg("%s refused: %s", value, r.err.msg);
		assert_true(v == want);
	}
	ctl_req_free(&r);
}

static void test_u64(void **state)
{
	u64_case("4096", 4096, NULL);
	u64_case("9007199254740992", 1ull << 53, NULL);
	u64_case("9007199254740993", 0, "field \"gpa\": value out of range");
	u64_case("18446744073709551615", 0, "field \"gpa\": value out of range");
	u64_case("-1", 0, "field \"gpa\": not an unsigned integer: -1");
	u64_case("1.5", 0, "field \"gpa\": not an unsigned integer: 1.5");
	u64_case("1e3", 0, "field \"gpa\": not an unsigned integer: 1000.0");
	u64_case("\"0x1000\"", 0x1000, NULL);
	u64_case("\"010\"", 8, NULL);
	u64_case("\"18446744073709551615\"", UINT64_MAX, NULL);
	u64_case("\"18446744073709551616\"", 0, "field \"gpa\": value out of range");
	u64_case("\"-1\"", 0, "field \"gpa\": not an unsigned integer: \"-1\"");
	u64_case("\" 1\"", 0, "field \"gpa\": not an unsigned integer: \" 1\"");
	u64_case("\"0x\"", 0, "field \"gpa\": not an unsigned integer: \"0x\"");
	u64_case("\"12k\"", 0, "field \"gpa\": not an unsigned integer: \"12k\"");
	u64_case("true", 0,
		 "field \"gpa\": not an unsigned integer (expected a number or a string)");
}

static void test_fields(void **state)
{
	struct ctl_req r;
	json_t *s;
	bool b;

	assert_int_equal(parse("{\"cmd\":\"events\",\"follow\":1,\"to\":2,\"x\":3}", &r), 0);
	r.cmd = "events";
	assert_int_equal(ctl_req_bool(&r, "follow", false, &b), -1);
	assert_string_equal(r.err.msg, "field \"follow\" must be a boolean");
	assert_int_equal(ctl_req_str(&r, "to", &s), -1);
	assert_string_equal(r.err.msg, "field \"to\" must be a string");
	assert_int_equal(ctl_req_bool(&r, "absent", true, &b), 0);
	assert_true(b);
	ctl_req_get(&r, "cmd");
	assert_int_equal(ctl_req_check_unknown(&r), -1);
	assert_string_equal(r.err.msg, "unknown field \"x\" for cmd \"events\"");
	ctl_req_get(&r, "x");
	assert_int_equal(ctl_req_check_unknown(&r), 0);
	ctl_req_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),	   cmocka_unit_test(test_escapes),
		cmocka_unit_test(test_rejections), cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_u64),	   cmocka_unit_test(test_fields),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
