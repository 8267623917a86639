// SPDX-License-Identifier: MIT
/*
 * vmcectl's additions to Jansson (jsonutil.h).
 */
#include <stdio.h>
#include <string.h>

#include "jsonutil.h"
#include "vmcectl.h"

int jerr_offset(const json_error_t *e)
{
	const char *near = strstr(e->text, " near '");
	int off = e->position;

	if (near) {
		size_t tok = strlen(near + 7);

		if (tok && near[7 + tok - 1] == '\'' && (int)tok - 1 <= off)
			off -= (int)tok - 1;
	}
	return off;
}

static bool too_deep(const json_t *v, int depth)
{
	const json_t *m;
	const char *key;
	size_t i;

	if (depth > JSON_MAX_DEPTH)
		return true;
	if (json_is_array(v)) {
		json_array_foreach(v, i, m)
			if (too_deep(m, depth + 1))
				return true;
	} else if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, m)
			if (too_deep(m, depth + 1))
				return true;
	}
	return false;
}

json_t *jparse(const char *text, size_t len, size_t flags, struct vmce_err *err)
{
	json_error_t e;
	json_t *v;

	if (memchr(text, '\0', len)) {
		snprintf(err->msg, sizeof(err->msg), "NUL byte in the text");
		return NULL;
	}
	v = json_loadb(text, len, flags, &e);
	if (!v) {
		snprintf(err->msg, sizeof(err->msg), "%s at byte %d", e.text, jerr_offset(&e));
		return NULL;
	}
	if (too_deep(v, 0)) {
		json_decref(v);
		snprintf(err->msg, sizeof(err->msg), "nested too deeply (more than %d levels)",
			 JSON_MAX_DEPTH);
		return NULL;
	}
	return v;
}

bool jget_bool(const json_t *obj, const char *key, bool *out)
{
	const json_t *m = json_object_get(obj, key);

	if (!json_is_boolean(m))
		return false;
	*out = json_is_true(m);
	return true;
}

const char *jget_str(const json_t *obj, const char *key, const char *dflt)
{
	const json_t *m = json_object_get(obj, key);

	return json_is_string(m) ? json_string_value(m) : dflt;
}

bool jget_u64(const json_t *obj, const char *key, uint64_t *out)
{
	const json_t *m = json_object_get(obj, key);
	struct vmce_err err;

	if (json_is_integer(m) && json_integer_value(m) >= 0) {
		*out = (uint64_t)json_integer_value(m);
		return true;
	}
	return json_is_string(m) && !parse_u64(json_string_value(m), false, out, &err);
}

bool jget_i64(const json_t *obj, const char *key, int64_t *out)
{
	const json_t *m = json_object_get(obj, key);

	if (!json_is_integer(m))
		return false;
	*out = json_integer_value(m);
	return true;
}
