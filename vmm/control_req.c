// SPDX-License-Identifier: MIT
/*
 * Control requests (control_req.h): jansson parses the line (strict: duplicate keys and NUL
 * bytes refused), then the bounds of the protocol are checked member by member, and handlers
 * read typed fields.  No JSON is parsed by hand here.  Also the token buckets of the rate
 * limits.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control_req.h"

/* What jansson refuses, as the protocol words it ("request is not valid JSON: ... at byte N");
 * a duplicate key is named from the token jansson quotes in its message. */
static void syntax_error(struct ctl_req *r, const json_error_t *je)
{
	const char *near = strstr(je->text, " near '");

	switch (json_error_code(je)) {
	case json_error_duplicate_key:
		if (near) {
			size_t n = strlen(near + 7);
			json_t *key = n ? json_loadb(near + 7, n - 1, JSON_DECODE_ANY, NULL) : NULL;

			if (json_is_string(key)) {
				vmm_fail(&r->err, "duplicate field \"%.64s\"",
					 json_string_value(key));
				json_decref(key);
				return;
			}
			json_decref(key);
		}
		break;
	case json_error_null_character:
	case json_error_null_byte_in_key:
		vmm_fail(&r->err, "request is not valid JSON: NUL byte at byte %d", je->position);
		return;
	default:
		break;
	}
	vmm_fail(&r->err, "request is not valid JSON: %s at byte %d", je->text, je->position);
}

/* jansson refuses integers beyond 64 bits: parse again with them as reals only to find the
 * field that holds one, and refuse it as out of range (the value itself is never used). */
static void integer_overflow(struct ctl_req *r, const char *buf, size_t len,
			     const json_error_t *first)
{
	json_t *o = json_loadb(buf, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, NULL);
	const char *key;
	json_t *v;

	if (json_is_object(o))
		json_object_foreach(o, key, v) {
			if (json_is_real(v) &&
			    (json_real_value(v) >= 0x1p63 || json_real_value(v) < -0x1p63)) {
				vmm_fail(&r->err, "field \"%.64s\": value out of range", key);
				json_decref(o);
				return;
			}
		}
	json_decref(o);
	syntax_error(r, first);
}

/* The protocol's bounds on a parsed object: member count, key length, scalars only, string
 * length. */
static int check_members(struct ctl_req *r)
{
	const char *key;
	json_t *v;

	if (json_object_size(r->obj) > CTL_MAX_FIELDS)
		return vmm_fail(&r->err, "too many fields (limit %d)", CTL_MAX_FIELDS);
	json_object_foreach(r->obj, key, v) {
		if (strlen(key) > CTL_MAX_KEY)
			return vmm_fail(&r->err, "a field name is longer than %d bytes",
					CTL_MAX_KEY);
		if (json_is_object(v) || json_is_array(v))
			return vmm_fail(&r->err,
					"field \"%s\": nested objects and arrays are not accepted",
					key);
		if (json_is_string(v) && json_string_length(v) > CTL_MAX_STRING)
			return vmm_fail(&r->err, "field \"%s\": string longer than %d bytes", key,
					CTL_MAX_STRING);
	}
	return 0;
}

int ctl_req_parse(struct ctl_req *r, const char *buf, size_t len)
{
	const char *nul = memchr(buf, '\0', len);
	json_error_t je;

	memset(r, 0, sizeof(*r));
	if (nul)
		return vmm_fail(&r->err, "request is not valid JSON: NUL byte at byte %zu",
				(size_t)(nul - buf));
	r->obj = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (!r->obj) {
		if (json_error_code(&je) == json_error_numeric_overflow)
			integer_overflow(r, buf, len, &je);
		else
			syntax_error(r, &je);
		return -1;
	}
	if (!json_is_object(r->obj))
		return vmm_fail(&r->err, "request must be a JSON object");
	return check_members(r);
}

void ctl_req_free(struct ctl_req *r)
{
	json_decref(r->obj);
	r->obj = NULL;
}

/* Has a handler taken the member key? */
static bool taken(const struct ctl_req *r, const char *key)
{
	for (size_t i = 0; i < r->nused; i++)
		if (!strcmp(r->used[i], key))
			return true;
	return false;
}

json_t *ctl_req_get(struct ctl_req *r, const char *key)
{
	json_t *v = json_object_get(r->obj, key);

	/* Each member once: at most CTL_MAX_FIELDS of them. */
	if (v && !taken(r, key) && r->nused < CTL_MAX_FIELDS)
		r->used[r->nused++] = key;
	return v;
}

int ctl_req_check_unknown(struct ctl_req *r)
{
	const char *key;
	json_t *v;

	json_object_foreach(r->obj, key, v) {
		if (!taken(r, key))
			return vmm_fail(&r->err, "unknown field \"%.64s\" for cmd \"%s\"", key,
					r->cmd);
	}
	return 0;
}

/* A u64 given as a string: C-style decimal, hexadecimal (0x) or octal (leading 0). */
static int u64_of_string(struct ctl_req *r, const char *key, const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return vmm_fail(&r->err, "field \"%s\": not an unsigned integer: \"%.64s\"", key,
				s);
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno == ERANGE)
		return vmm_fail(&r->err, "field \"%s\": value out of range", key);
	if (errno || *end || end == s)
		return vmm_fail(&r->err, "field \"%s\": not an unsigned integer: \"%.64s\"", key,
				s);
	*out = v;
	return 0;
}

int ctl_req_u64(struct ctl_req *r, const char *key, bool *present, uint64_t *out)
{
	json_t *v = ctl_req_get(r, key);

	*present = v != NULL;
	if (!v)
		return 0;
	if (json_is_string(v))
		return u64_of_string(r, key, json_string_value(v), out);
	if (json_is_real(v)) {
		char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));

		vmm_fail(&r->err, "field \"%s\": not an unsigned integer: %s", key,
			 text ? text : "?");
		free(text);
		return -1;
	}
	if (!json_is_integer(v))
		return vmm_fail(&r->err,
				"field \"%s\": not an unsigned integer (expected a number or a "
				"string)",
				key);
	if (json_integer_value(v) < 0)
		return vmm_fail(&r->err,
				"field \"%s\": not an unsigned integer: %" JSON_INTEGER_FORMAT, key,
				json_integer_value(v));
	if ((uint64_t)json_integer_value(v) > CTL_MAX_JSON_U64)
		return vmm_fail(&r->err, "field \"%s\": value out of range", key);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

int ctl_req_bool(struct ctl_req *r, const char *key, bool def, bool *out)
{
	json_t *v = ctl_req_get(r, key);

	*out = def;
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return vmm_fail(&r->err, "field \"%s\" must be a boolean", key);
	*out = json_is_true(v);
	return 0;
}

int ctl_req_str(struct ctl_req *r, const char *key, json_t **out)
{
	json_t *v = ctl_req_get(r, key);

	*out = v;
	if (v && !json_is_string(v))
		return vmm_fail(&r->err, "field \"%s\" must be a string", key);
	return 0;
}

bool ctl_bucket_take(double *tokens, uint64_t *last_ns, uint64_t now, double rate)
{
	if (*last_ns == 0) {
		*tokens = rate;
	} else {
		*tokens += (double)(now - *last_ns) * rate / 1e9;
		if (*tokens > rate)
			*tokens = rate;
	}
	*last_ns = now;
	if (*tokens < 1.0)
		return false;
	*tokens -= 1.0;
	return true;
}
