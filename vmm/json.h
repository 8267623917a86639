/* SPDX-License-Identifier: MIT */
/*
 * json.h - a bounded parser for the control protocol's requests: one JSON object whose members
 * are scalars (string, number, true, false, null).  Everything else is rejected with a message
 * that names the problem and its byte offset.
 */
#ifndef VMM_JSON_H
#define VMM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_MEMBERS 32
#define JSON_MAX_KEY	 64
#define JSON_MAX_STR	 4096

enum json_type {
	JSON_STRING,
	JSON_NUMBER, /* text kept verbatim in str */
	JSON_BOOL,
	JSON_NULL,
};

struct json_member {
	char key[JSON_MAX_KEY + 1];
	enum json_type type;
	bool b;
	size_t len; /* bytes in str (strings may contain NUL only as an error: rejected) */
	char *str;  /* malloc'd, NUL-terminated: string value or number text */
	bool used;  /* set by the request handler when it consumed the member */
};

struct json_obj {
	size_t n;
	struct json_member m[JSON_MAX_MEMBERS];
};

/* Parse one object from buf[0..len).  Returns 0, or -1 with err filled. */
int json_parse_object(const char *buf, size_t len, struct json_obj *o, char *err, size_t errlen);
void json_free(struct json_obj *o);
struct json_member *json_get(struct json_obj *o, const char *key);

/* Append s to out as a JSON string literal (quotes included); bounded by outlen. */
struct sbuf {
	char *buf;
	size_t len, cap, limit;
	bool overflow;
};

void sbuf_init(struct sbuf *s, size_t limit);
void sbuf_free(struct sbuf *s);
void sbuf_printf(struct sbuf *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_put(struct sbuf *s, const char *data, size_t len);
void sbuf_json_str(struct sbuf *s, const char *str);

#endif
