/* SPDX-License-Identifier: MIT */
/*
 * jsonutil.h - what vmcectl adds to Jansson: the byte an error is at, the nesting bound, and
 * typed lookups that accept the control protocol's forms of a number.
 */
#ifndef VMCECTL_JSONUTIL_H
#define VMCECTL_JSONUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <vmce/vmce.h>

#define JSON_MAX_DEPTH 32 /* arrays and objects inside the top one nested deeper: refused */

/* The byte offset where the token Jansson's error is about starts (its position is the byte
 * after that token). */
int jerr_offset(const json_error_t *e);

/* Parse text[0, len) as one JSON value (flags: Jansson's, e.g. JSON_DECODE_ANY), with at most
 * JSON_MAX_DEPTH levels inside the top one, without NUL bytes.  Returns the value, or NULL with err saying what was wrong and at which byte. */
json_t *jparse(const char *text, size_t len, size_t flags, struct vmce_err *err);

/* Typed lookups of an object's member: false (or dflt) when absent or of another type. */
bool jget_bool(const json_t *obj, const char *key, bool *out);
const char *jget_str(const json_t *obj, const char *key, const char *dflt);
/* A non-negative integer, or a string "0x..." or decimal: the server's forms of a u64. */
bool jget_u64(const json_t *obj, const char *key, uint64_t *out);
bool jget_i64(const json_t *obj, const char *key, int64_t *out);

#endif /* VMCECTL_JSONUTIL_H */
