// SPDX-License-Identifier: MIT
/*
 * A small recursive-descent JSON reader (RFC 8259) for the control protocol's responses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

struct jparser {
	const char *p, *end, *start;
	char *why;
	size_t whylen;
	bool failed;
};

static void jfail(struct jparser *j, const char *what)
{
	if (!j->failed)
		snprintf(j->why, j->whylen, "%s at byte %zu", what, (size_t)(j->p - j->start));
	j->failed = true;
}

static void skip_ws(struct jparser *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static void put_utf8(char *out, size_t *o, unsigned cp)
{
	if (cp < 0x80) {
		out[(*o)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*o)++] = (char)(0xc0 | (cp >> 6));
		out[(*o)++] = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		out[(*o)++] = (char)(0xe0 | (cp >> 12));
		out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*o)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		out[(*o)++] = (char)(0xf0 | (cp >> 18));
		out[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
		out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[(*o)++] = (char)(0x80 | (cp & 0x3f));
	}
}

static int hex4(struct jparser *j, unsigned *out)
{
	unsigned v = 0;

	if (j->end - j->p < 4) {
		jfail(j, "truncated \\u escape");
		return -1;
	}
	for (int i = 0; i < 4; i++) {
		char c = *j->p++;

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else {
			jfail(j, "invalid \\u escape");
			return -1;
		}
	}
	*out = v;
	return 0;
}

/* Parse a string (j->p at the opening quote) into a new NUL-terminated buffer. */
static char *parse_string(struct jparser *j)
{
	const char *q = ++j->p;
	char *out;
	size_t o = 0;

	/* The unescaped text is never longer than the escaped one (\u escapes included). */
	while (q < j->end && *q != '"') {
		if (*q == '\\')
			q++;
		q++;
	}
	if (q >= j->end) {
		jfail(j, "unterminated string");
		return NULL;
	}
	out = malloc((size_t)(q - j->p) + 1);
	if (!out) {
		jfail(j, "out of memory");
		return NULL;
	}
	while (*j->p != '"') {
		unsigned char c = (unsigned char)*j->p++;
		unsigned cp, lo;

		if (c < 0x20) {
			jfail(j, "control character in string");
			free(out);
			return NULL;
		}
		if (c != '\\') {
			out[o++] = (char)c;
			continue;
		}
		c = (unsigned char)*j->p++;
		switch (c) {
		case '"':
		case '\\':
		case '/':
			out[o++] = (char)c;
			break;
		case 'b':
			out[o++] = '\b';
			break;
		case 'f':
			out[o++] = '\f';
			break;
		case 'n':
			out[o++] = '\n';
			break;
		case 'r':
			out[o++] = '\r';
			break;
		case 't':
			out[o++] = '\t';
			break;
		case 'u':
			if (hex4(j, &cp))
				goto bad;
			if (cp >= 0xd800 && cp < 0xdc00 && j->end - j->p >= 6 && j->p[0] == '\\' &&
			    j->p[1] == 'u') {
				j->p += 2;
				if (hex4(j, &lo))
					goto bad;
				if (lo < 0xdc00 || lo > 0xdfff) {
					jfail(j, "invalid surrogate pair");
					goto bad;
				}
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xd800 && cp < 0xe000) {
				cp = 0xfffd;
			}
			if (cp == 0)
				cp = 0xfffd; /* keep strings NUL-free */
			put_utf8(out, &o, cp);
			break;
		default:
			jfail(j, "invalid escape");
			goto bad;
		}
	}
	j->p++;
	out[o] = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

static void free_members(struct jval *v)
{
	for (size_t i = 0; i < v->n; i++) {
		free_members(&v->v[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->v);
	free(v->keys);
	free(v->s);
	v->v = NULL;
	v->keys = NULL;
	v->s = NULL;
	v->n = 0;
}

static int parse_value(struct jparser *j, struct jval *v, int depth);

static int add_member(struct jparser *j, struct jval *v, size_t *cap, char *key)
{
	if (v->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		struct jval *nv = realloc(v->v, ncap * sizeof(*nv));
		char **nk;

		if (!nv) {
			jfail(j, "out of memory");
			return -1;
		}
		v->v = nv;
		if (v->type == J_OBJ) {
			nk = realloc(v->keys, ncap * sizeof(*nk));
			if (!nk) {
				jfail(j, "out of memory");
				return -1;
			}
			v->keys = nk;
		}
		*cap = ncap;
	}
	memset(&v->v[v->n], 0, sizeof(v->v[v->n]));
	if (v->type == J_OBJ)
		v->keys[v->n] = key;
	v->n++;
	return 0;
}

static int parse_container(struct jparser *j, struct jval *v, int depth)
{
	char close = v->type == J_OBJ ? '}' : ']';
	size_t cap = 0;

	j->p++;
	skip_ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return 0;
	}
	for (;;) {
		char *key = NULL;

		skip_ws(j);
		if (v->type == J_OBJ) {
			if (j->p >= j->end || *j->p != '"') {
				jfail(j, "expected a string key");
				return -1;
			}
			key = parse_string(j);
			if (!key)
				return -1;
			skip_ws(j);
			if (j->p >= j->end || *j->p != ':') {
				free(key);
				jfail(j, "expected ':'");
				return -1;
			}
			j->p++;
		}
		if (add_member(j, v, &cap, key)) {
			free(key);
			return -1;
		}
		if (parse_value(j, &v->v[v->n - 1], depth + 1))
			return -1;
		skip_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return 0;
		}
		jfail(j, v->type == J_OBJ ? "expected ',' or '}'" : "expected ',' or ']'");
		return -1;
	}
}

static int parse_number(struct jparser *j, struct jval *v)
{
	const char *s = j->p;

	if (j->p < j->end && *j->p == '-')
		j->p++;
	if (j->p >= j->end || *j->p < '0' || *j->p > '9') {
		jfail(j, "invalid number");
		return -1;
	}
	if (*j->p == '0')
		j->p++;
	else
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9') {
			jfail(j, "invalid number");
			return -1;
		}
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9') {
			jfail(j, "invalid number");
			return -1;
		}
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	v->type = J_NUM;
	v->s = strndup(s, (size_t)(j->p - s));
	if (!v->s) {
		jfail(j, "out of memory");
		return -1;
	}
	return 0;
}

static bool literal(struct jparser *j, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n))
		return false;
	j->p += n;
	return true;
}

static int parse_value(struct jparser *j, struct jval *v, int depth)
{
	int rc = 0;

	if (depth > JSON_MAX_DEPTH) {
		jfail(j, "nested too deeply");
		return -1;
	}
	skip_ws(j);
	v->off = (size_t)(j->p - j->start);
	if (j->p >= j->end) {
		jfail(j, "unexpected end of text");
		return -1;
	}
	switch (*j->p) {
	case '{':
		v->type = J_OBJ;
		rc = parse_container(j, v, depth);
		break;
	case '[':
		v->type = J_ARR;
		rc = parse_container(j, v, depth);
		break;
	case '"':
		v->type = J_STR;
		v->s = parse_string(j);
		rc = v->s ? 0 : -1;
		break;
	case 't':
	case 'f':
		v->type = J_BOOL;
		v->b = *j->p == 't';
		if (!literal(j, v->b ? "true" : "false")) {
			jfail(j, "invalid literal");
			rc = -1;
		}
		break;
	case 'n':
		v->type = J_NULL;
		if (!literal(j, "null")) {
			jfail(j, "invalid literal");
			rc = -1;
		}
		break;
	default:
		rc = parse_number(j, v);
		break;
	}
	v->len = (size_t)(j->p - j->start) - v->off;
	return rc;
}

struct jval *json_parse(const char *text, size_t len, char *why, size_t whylen)
{
	struct jparser j = {text, text + len, text, why, whylen, false};
	struct jval *v = calloc(1, sizeof(*v));

	if (!v) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	if (memchr(text, '\0', len)) {
		snprintf(why, whylen, "NUL byte in the text");
		free(v);
		return NULL;
	}
	if (parse_value(&j, v, 0) == 0) {
		skip_ws(&j);
		if (j.p == j.end)
			return v;
		jfail(&j, "trailing characters after the value");
	}
	json_free(v);
	return NULL;
}

void json_free(struct jval *v)
{
	if (!v)
		return;
	free_members(v);
	free(v);
}

const struct jval *json_get(const struct jval *v, const char *key)
{
	if (!v || v->type != J_OBJ)
		return NULL;
	for (size_t i = 0; i < v->n; i++)
		if (!strcmp(v->keys[i], key))
			return &v->v[i];
	return NULL;
}

bool json_get_bool(const struct jval *v, const char *key, bool *out)
{
	const struct jval *m = json_get(v, key);

	if (!m || m->type != J_BOOL)
		return false;
	*out = m->b;
	return true;
}

const char *json_get_str(const struct jval *v, const char *key)
{
	const struct jval *m = json_get(v, key);

	return m && m->type == J_STR ? m->s : NULL;
}

static bool text_u64(const char *s, uint64_t *out)
{
	unsigned base = 10;
	uint64_t v = 0;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			return false;
		if (v > (UINT64_MAX - d) / base)
			return false;
		v = v * base + d;
	}
	*out = v;
	return true;
}

bool json_get_u64(const struct jval *v, const char *key, uint64_t *out)
{
	const struct jval *m = json_get(v, key);

	if (!m || (m->type != J_NUM && m->type != J_STR))
		return false;
	return text_u64(m->s, out);
}

bool json_get_i64(const struct jval *v, const char *key, int64_t *out)
{
	const struct jval *m = json_get(v, key);
	uint64_t u;

	if (!m || m->type != J_NUM)
		return false;
	if (m->s[0] == '-') {
		if (!text_u64(m->s + 1, &u) || u > (uint64_t)INT64_MAX)
			return false;
		*out = -(int64_t)u;
		return true;
	}
	if (!text_u64(m->s, &u) || u > (uint64_t)INT64_MAX)
		return false;
	*out = (int64_t)u;
	return true;
}
