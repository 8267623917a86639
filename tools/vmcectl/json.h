/* SPDX-License-Identifier: MIT */
/*
 * json.h - a small JSON reader for vmce-vm's responses (untrusted input: bounded depth and
 * size, every error named).  Values keep their byte range in the source so that a caller can
 * print one exactly as it was received.
 */
#ifndef VMCECTL_JSON_H
#define VMCECTL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
	enum jtype type;
	bool b;		 /* J_BOOL */
	char *s;	 /* J_STR: unescaped, NUL-terminated; J_NUM: the number's text */
	size_t n;	 /* J_ARR/J_OBJ: number of members */
	struct jval *v;	 /* J_ARR/J_OBJ: the members */
	char **keys;	 /* J_OBJ: their names */
	size_t off, len; /* where the value is in the source text */
};

#define JSON_MAX_DEPTH 32

/* Parse text[0, len) as exactly one JSON value.  Returns the value (free with json_free()), or
 * NULL with why[] saying what was wrong and where. */
struct jval *json_parse(const char *text, size_t len, char *why, size_t whylen);
void json_free(struct jval *v);

/* The member `key` of an object, or NULL (also when v is not an object). */
const struct jval *json_get(const struct jval *v, const char *key);
/* Typed lookups: false when absent or of another type. */
bool json_get_bool(const struct jval *v, const char *key, bool *out);
const char *json_get_str(const struct jval *v, const char *key);
/* A number (a non-negative integer) or a string "0x..."/decimal: the server's u64 forms. */
bool json_get_u64(const struct jval *v, const char *key, uint64_t *out);
bool json_get_i64(const struct jval *v, const char *key, int64_t *out);

#endif /* VMCECTL_JSON_H */
