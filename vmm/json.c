// SPDX-License-Identifier: MIT
/*
 * A bounded, strict parser for flat JSON objects, and a growable output buffer.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

struct parser {
	const char *p, *start, *end;
	char *err;
	size_t errlen;
};

static int fail(struct parser *ps, const char *what)
{
	snprintf(ps->err, ps->errlen, "request is not valid JSON: %s at byte %zu", what,
		 (size_t)(ps->p - ps->start));
	return -1;
}

static void skip_ws(struct parser *ps)
{
	while (ps->p < ps->end &&
	       (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r' || *ps->p == '\n'))
		ps->p++;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int hex4(struct parser *ps, unsigned *out)
{
	unsigned v = 0;

	if (ps->end - ps->p < 4)
		return fail(ps, "truncated \\u escape");
	for (int i = 0; i < 4; i++) {
		int h = hexval(ps->p[i]);

		if (h < 0)
			return fail(ps, "invalid \\u escape");
		v = v * 16 + (unsigned)h;
	}
	ps->p += 4;
	*out = v;
	return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Parse a string literal at ps->p (which is '"') into out (capacity max + 1). */
static int parse_string(struct parser *ps, char *out, size_t max, size_t *outlen,
			const char *toolong)
{
	size_t n = 0;

	ps->p++;
	for (;;) {
		unsigned char c;

		if (ps->p >= ps->end)
			return fail(ps, "unterminated string");
		c = (unsigned char)*ps->p;
		if (c == '"') {
			ps->p++;
			break;
		}
		if (c < 0x20)
			return fail(ps, c == 0 ? "NUL byte" : "control character in string");
		if (n + 4 > max) {
			snprintf(ps->err, ps->errlen, "%s", toolong);
			return -1;
		}
		if (c != '\\') {
			out[n++] = (char)c;
			ps->p++;
			continue;
		}
		ps->p++;
		if (ps->p >= ps->end)
			return fail(ps, "unterminated string");
		switch (*ps->p++) {
		case '"':
			out[n++] = '"';
			break;
		case '\\':
			out[n++] = '\\';
			break;
		case '/':
			out[n++] = '/';
			break;
		case 'b':
			out[n++] = '\b';
			break;
		case 'f':
			out[n++] = '\f';
			break;
		case 'n':
			out[n++] = '\n';
			break;
		case 'r':
			out[n++] = '\r';
			break;
		case 't':
			out[n++] = '\t';
			break;
		case 'u': {
			unsigned cp, lo;

			if (hex4(ps, &cp))
				return -1;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return fail(ps, "unpaired surrogate in \\u escape");
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u')
					return fail(ps, "unpaired surrogate in \\u escape");
				ps->p += 2;
				if (hex4(ps, &lo))
					return -1;
				if (lo < 0xdc00 || lo > 0xdfff)
					return fail(ps, "unpaired surrogate in \\u escape");
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			if (cp == 0)
				return fail(ps, "NUL byte");
			n += put_utf8(out + n, cp);
			break;
		}
		default:
			ps->p--;
			return fail(ps, "invalid escape");
		}
	}
	out[n] = '\0';
	*outlen = n;
	return 0;
}

static int parse_number(struct parser *ps, struct json_member *m)
{
	const char *s = ps->p;
	size_t n;

	if (ps->p < ps->end && *ps->p == '-')
		ps->p++;
	if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
		return fail(ps, "invalid number");
	if (*ps->p == '0') {
		ps->p++;
	} else {
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
			ps->p++;
	}
	if (ps->p < ps->end && *ps->p == '.') {
		ps->p++;
		if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
			return fail(ps, "invalid number");
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
			ps->p++;
	}
	if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
		ps->p++;
		if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
			ps->p++;
		if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9')
			return fail(ps, "invalid number");
		while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
			ps->p++;
	}
	n = (size_t)(ps->p - s);
	if (n > 64)
		return fail(ps, "number too long");
	m->str = malloc(n + 1);
	if (!m->str)
		return fail(ps, "out of memory");
	memcpy(m->str, s, n);
	m->str[n] = '\0';
	m->len = n;
	m->type = JSON_NUMBER;
	return 0;
}

static int literal(struct parser *ps, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
		return fail(ps, "unexpected character");
	ps->p += n;
	return 0;
}

int json_parse_object(const char *buf, size_t len, struct json_obj *o, char *err, size_t errlen)
{
	struct parser ps = {buf, buf, buf + len, err, errlen};

	memset(o, 0, sizeof(*o));
	if (memchr(buf, '\0', len)) {
		ps.p = memchr(buf, '\0', len);
		return fail(&ps, "NUL byte");
	}
	skip_ws(&ps);
	if (ps.p >= ps.end)
		return fail(&ps, "empty request");
	if (*ps.p != '{') {
		if (*ps.p == '[' || *ps.p == '"' || *ps.p == '-' ||
		    (*ps.p >= '0' && *ps.p <= '9') || *ps.p == 't' || *ps.p == 'f' ||
		    *ps.p == 'n') {
			snprintf(err, errlen, "request must be a JSON object");
			return -1;
		}
		return fail(&ps, "expected '{'");
	}
	ps.p++;
	skip_ws(&ps);
	if (ps.p < ps.end && *ps.p == '}') {
		ps.p++;
		goto done;
	}
	for (;;) {
		struct json_member *m;
		char key[JSON_MAX_KEY + 8];
		size_t klen;

		skip_ws(&ps);
		if (ps.p >= ps.end || *ps.p != '"')
			goto bad_key;
		if (parse_string(&ps, key, JSON_MAX_KEY + 3, &klen,
				 "a field name is longer than 64 bytes"))
			goto bad;
		if (klen > JSON_MAX_KEY || strlen(key) != klen) {
			snprintf(err, errlen, "a field name is longer than 64 bytes");
			goto bad;
		}
		for (size_t i = 0; i < o->n; i++)
			if (!strcmp(o->m[i].key, key)) {
				snprintf(err, errlen, "duplicate field \"%s\"", key);
				goto bad;
			}
		if (o->n == JSON_MAX_MEMBERS) {
			snprintf(err, errlen, "too many fields (limit %d)", JSON_MAX_MEMBERS);
			goto bad;
		}
		m = &o->m[o->n];
		memset(m, 0, sizeof(*m));
		memcpy(m->key, key, klen + 1);
		skip_ws(&ps);
		if (ps.p >= ps.end || *ps.p != ':') {
			fail(&ps, "expected ':'");
			goto bad;
		}
		ps.p++;
		skip_ws(&ps);
		if (ps.p >= ps.end) {
			fail(&ps, "expected a value");
			goto bad;
		}
		switch (*ps.p) {
		case '"': {
			char toolong[128];

			snprintf(toolong, sizeof(toolong),
				 "field \"%s\": string longer than %d bytes", key, JSON_MAX_STR);
			m->str = malloc(JSON_MAX_STR + 4);
			if (!m->str) {
				fail(&ps, "out of memory");
				goto bad;
			}
			o->n++;
			if (parse_string(&ps, m->str, JSON_MAX_STR + 3, &m->len, toolong))
				goto bad;
			if (m->len > JSON_MAX_STR) {
				snprintf(err, errlen, "%s", toolong);
				goto bad;
			}
			m->type = JSON_STRING;
			break;
		}
		case '{':
		case '[':
			snprintf(err, errlen,
				 "field \"%s\": nested objects and arrays are not accepted", key);
			goto bad;
		case 't':
			if (literal(&ps, "true"))
				goto bad;
			m->type = JSON_BOOL;
			m->b = true;
			o->n++;
			break;
		case 'f':
			if (literal(&ps, "false"))
				goto bad;
			m->type = JSON_BOOL;
			o->n++;
			break;
		case 'n':
			if (literal(&ps, "null"))
				goto bad;
			m->type = JSON_NULL;
			o->n++;
			break;
		default:
			o->n++;
			if (parse_number(&ps, m))
				goto bad;
			break;
		}
		skip_ws(&ps);
		if (ps.p < ps.end && *ps.p == ',') {
			ps.p++;
			continue;
		}
		if (ps.p < ps.end && *ps.p == '}') {
			ps.p++;
			break;
		}
		fail(&ps, "expected ',' or '}'");
		goto bad;
	}
done:
	skip_ws(&ps);
	if (ps.p != ps.end) {
		fail(&ps, "trailing characters after the object");
		goto bad;
	}
	return 0;
bad_key:
	fail(&ps, ps.p < ps.end ? "expected a field name in double quotes" : "unterminated object");
bad:
	json_free(o);
	return -1;
}

void json_free(struct json_obj *o)
{
	for (size_t i = 0; i < o->n; i++) {
		free(o->m[i].str);
		o->m[i].str = NULL;
	}
	o->n = 0;
}

struct json_member *json_get(struct json_obj *o, const char *key)
{
	for (size_t i = 0; i < o->n; i++)
		if (!strcmp(o->m[i].key, key)) {
			o->m[i].used = true;
			return &o->m[i];
		}
	return NULL;
}

void sbuf_init(struct sbuf *s, size_t limit)
{
	memset(s, 0, sizeof(*s));
	s->limit = limit;
}

void sbuf_free(struct sbuf *s)
{
	free(s->buf);
	memset(s, 0, sizeof(*s));
}

static bool sbuf_reserve(struct sbuf *s, size_t extra)
{
	size_t need = s->len + extra + 1;

	if (s->overflow)
		return false;
	if (need > s->limit) {
		s->overflow = true;
		return false;
	}
	if (need > s->cap) {
		size_t cap = s->cap ? s->cap : 256;
		char *nb;

		while (cap < need)
			cap *= 2;
		if (cap > s->limit)
			cap = s->limit;
		nb = realloc(s->buf, cap);
		if (!nb) {
			s->overflow = true;
			return false;
		}
		s->buf = nb;
		s->cap = cap;
	}
	return true;
}

void sbuf_put(struct sbuf *s, const char *data, size_t len)
{
	if (!sbuf_reserve(s, len))
		return;
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	s->buf[s->len] = '\0';
}

void sbuf_printf(struct sbuf *s, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !sbuf_reserve(s, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(s->buf + s->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	s->len += (size_t)n;
}

void sbuf_json_str(struct sbuf *s, const char *str)
{
	sbuf_put(s, "\"", 1);
	for (const unsigned char *c = (const unsigned char *)str; *c; c++) {
		if (*c == '"' || *c == '\\') {
			char e[2] = {'\\', (char)*c};

			sbuf_put(s, e, 2);
		} else if (*c < 0x20 || *c == 0x7f) {
			sbuf_printf(s, "\\u%04x", *c);
		} else {
			sbuf_put(s, (const char *)c, 1);
		}
	}
	sbuf_put(s, "\"", 1);
}
