// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the control-socket request parser of vmce-vm (vmm/control_req.c, compiled
 * in, on jansson).  Any line is parsed into at most CTL_MAX_FIELDS scalar members or refused
 * with a message; for each member accepted, the key and value must be bounded and NUL-free,
 * lookups must find it, the typed getters must answer or refuse with a message, and a string
 * value written back by jansson must parse again to the same bytes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control_req.h"
#include "fuzz_util.h"

static void check_getters(struct ctl_req *r, const char *key)
{
	json_t *s;
	uint64_t u;
	bool b, present;

	r->err.msg[0] = '\0';
	if (ctl_req_u64(r, key, &present, &u) && !r->err.msg[0])
		FZ_FAIL("u64 field '%s' refused without a message", key);
	r->err.msg[0] = '\0';
	if (ctl_req_bool(r, key, false, &b) && !r->err.msg[0])
		FZ_FAIL("bool field '%s' refused without a message", key);
	r->err.msg[0] = '\0';
	if (ctl_req_str(r, key, &s) && !r->err.msg[0])
		FZ_FAIL("string field '%s' refused without a message", key);
}

static void round_trip(const char *key, json_t *v)
{
	json_t *o = json_pack("{s:O}", "k", v);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
	struct ctl_req back;

	if (!text)
		FZ_FAIL("string of '%s' cannot be written back", key);
	if (ctl_req_parse(&back, text, strlen(text)))
		FZ_FAIL("a string written back does not parse: %s", back.err.msg);
	if (json_object_size(back.obj) != 1 || !json_equal(json_object_get(back.obj, "k"), v))
		FZ_FAIL("string of '%s' does not survive a round trip", key);
	ctl_req_free(&back);
	free(text);
	json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_req r;
	const char *key;
	json_t *v;

	if (size > CTL_MAX_LINE) /* the socket's line bound */
		return 0;
	if (ctl_req_parse(&r, (const char *)data, size)) {
		if (!r.err.msg[0])
			FZ_FAIL("refused without a message");
		ctl_req_free(&r);
		return 0;
	}
	if (!json_is_object(r.obj) || json_object_size(r.obj) > CTL_MAX_FIELDS)
		FZ_FAIL("%zu members", json_object_size(r.obj));
	r.cmd = "fuzz";
	json_object_foreach(r.obj, key, v) {
		if (strlen(key) > CTL_MAX_KEY)
			FZ_FAIL("key longer than the bound");
		if (ctl_req_get(&r, key) != v)
			FZ_FAIL("member '%s' not found by ctl_req_get", key);
		if (json_is_object(v) || json_is_array(v))
			FZ_FAIL("member '%s' is not a scalar", key);
		if (json_is_string(v)) {
			if (strlen(json_string_value(v)) != json_string_length(v) ||
			    json_string_length(v) > CTL_MAX_STRING)
				FZ_FAIL("value of '%s' is not a bounded NUL-free string", key);
			round_trip(key, v);
		}
		check_getters(&r, key);
	}
	if (ctl_req_check_unknown(&r))
		FZ_FAIL("every member was taken, yet: %s", r.err.msg);
	ctl_req_free(&r);
	return 0;
}
