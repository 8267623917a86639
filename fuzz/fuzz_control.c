// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the control-socket request parser of vmce-vm (vmm/json.c, compiled in).
 * Any line is parsed into at most JSON_MAX_MEMBERS scalar members or refused with a message;
 * for each member accepted, the key and value must be bounded and NUL-free, lookups must find
 * it, and a string value written back with sbuf_json_str() must parse again to the same bytes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_obj o;
	char err[256];

	if (size > 8192) /* the socket's line bound (MAX_LINE) */
		return 0;
	memset(err, 0, sizeof(err));
	if (json_parse_object((const char *)data, size, &o, err, sizeof(err))) {
		if (!err[0])
			FZ_FAIL("refused without a message");
		return 0;
	}
	if (o.n > JSON_MAX_MEMBERS)
		FZ_FAIL("%zu members", o.n);
	for (size_t i = 0; i < o.n; i++) {
		struct json_member *mb = &o.m[i];

		if (strlen(mb->key) > JSON_MAX_KEY)
			FZ_FAIL("key longer than the bound");
		if (json_get(&o, mb->key) == NULL)
			FZ_FAIL("member '%s' not found by json_get", mb->key);
		if (mb->type == JSON_STRING || mb->type == JSON_NUMBER) {
			if (!mb->str || strlen(mb->str) != mb->len || mb->len > JSON_MAX_STR)
				FZ_FAIL("value of '%s' is not a bounded NUL-free string", mb->key);
		}
		if (mb->type == JSON_STRING) {
			struct sbuf s;
			struct json_obj back;

			sbuf_init(&s, 1u << 16);
			sbuf_put(&s, "{\"k\":", 5);
			sbuf_json_str(&s, mb->str);
			sbuf_put(&s, "}", 1);
			if (s.overflow)
				FZ_FAIL("output buffer overflow for a bounded string");
			if (json_parse_object(s.buf, s.len, &back, err, sizeof(err)))
				FZ_FAIL("a string written back does not parse: %s", err);
			if (back.n != 1 || back.m[0].type != JSON_STRING ||
			    back.m[0].len != mb->len || memcmp(back.m[0].str, mb->str, mb->len))
				FZ_FAIL("string of '%s' does not survive a round trip", mb->key);
			json_free(&back);
			sbuf_free(&s);
		}
	}
	json_free(&o);
	return 0;
}
