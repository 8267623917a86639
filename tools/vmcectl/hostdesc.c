// SPDX-License-Identifier: MIT
/*
 * The host description reader of pool levelling (hostdesc.h): Jansson parses the text, then
 * every member is checked against the description's shape, in document order, and every error
 * names the field.  Jansson is more lenient than the format in a few lexical points (it decodes
 * every escape, and reports bad strings and numbers without a field), so a short lexical pass
 * checks those first: strings of at most STR_MAX printable ASCII characters with no escape but
 * \" \\ \/, and numbers without a leading zero.  The same pass names the field of a syntax
 * error.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hostdesc.h"
#include "jsonutil.h"
#include "vmcectl.h"

#define STR_MAX	 63
#define CAPS_MAX 16

static int desc_fail(struct vmce_err *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int desc_fail(struct vmce_err *err, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* ---- the lexical pass ----------------------------------------------------------------------- */

/* Where the pass is: which member's key or value, which element of an array. */
struct lex {
	const char *s;
	size_t pos;
	bool want_key, in_array;
	unsigned idx;
	char key[STR_MAX + 1];
};

/* The field a position belongs to: a key, a member's value, or an element of caps. */
static const char *lex_field(const struct lex *l, char *buf, size_t len)
{
	if (l->want_key)
		return "(a key)";
	if (l->in_array)
		snprintf(buf, len, "%s[%u]", l->key, l->idx);
	else
		snprintf(buf, len, "%s", l->key);
	return buf;
}

/* A string (l->pos at the opening quote); a key's text goes to l->key. */
static int lex_string(struct lex *l, size_t end, struct vmce_err *err)
{
	char field[STR_MAX + 16], out[STR_MAX + 1];
	size_t n = 0;

	lex_field(l, field, sizeof(field));
	for (l->pos++;; l->pos++) {
		unsigned char c = l->pos < end ? (unsigned char)l->s[l->pos] : 0;

		if (l->pos >= end || (c == '\\' && l->pos + 1 >= end))
			return desc_fail(err, "field '%s': unterminated string", field);
		if (c == '"')
			break;
		if (c == '\\') {
			c = (unsigned char)l->s[++l->pos];
			if (c != '"' && c != '\\' && c != '/')
				return desc_fail(err, "field '%s': escape '\\%c' is not supported",
						 field, c >= 0x20 && c < 0x7f ? c : '?');
		} else if (c < 0x20 || c > 0x7e) {
			return desc_fail(err,
					 "field '%s': control or non-ASCII byte 0x%02x in a string",
					 field, c);
		}
		if (n >= STR_MAX)
			return desc_fail(err, "field '%s': string longer than %d characters", field,
					 STR_MAX);
		out[n++] = (char)c;
	}
	out[n] = '\0';
	if (l->want_key)
		memcpy(l->key, out, n + 1);
	return 0;
}

/* Check text[0, end) (end: the whole text, or where Jansson found a syntax error). */
static int lex_scan(struct lex *l, size_t end, struct vmce_err *err)
{
	char field[STR_MAX + 16];
	bool in_number = false;

	for (l->pos = 0; l->pos < end; l->pos++) {
		char c = l->s[l->pos];
		bool digit = c >= '0' && c <= '9';

		if (digit && !in_number && c == '0' && l->pos + 1 < end &&
		    l->s[l->pos + 1] >= '0' && l->s[l->pos + 1] <= '9')
			return desc_fail(err, "field '%s': leading zero",
					 lex_field(l, field, sizeof(field)));
		in_number = digit || c == '-' || c == '.' || c == 'e' || c == 'E' || c == '+';
		if (c == '"' && lex_string(l, end, err))
			return -EINVAL;
		else if (c == '{' || (c == ',' && !l->in_array))
			l->want_key = true;
		else if (c == ',')
			l->idx++;
		else if (c == ':')
			l->want_key = false;
		else if (c == '[' || c == ']') {
			l->in_array = c == '[';
			l->idx = 0;
		}
	}
	return 0;
}

/* Parse with Jansson; a syntax error names the byte (and the field, inside a value). */
static json_t *desc_load(const char *text, size_t len, struct vmce_err *err)
{
	struct lex l = {.s = text};
	char field[STR_MAX + 16];
	json_error_t e;
	json_t *root;
	int off;

	if (lex_scan(&l, len, err))
		return NULL;
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &e);
	if (root)
		return root;
	/* The duplicate key is the token before e.position; other errors start at off. */
	off = jerr_offset(&e);
	if (json_error_code(&e) == json_error_end_of_input_expected) {
		desc_fail(err, "offset %d: trailing data after the object", off);
		return NULL;
	}
	if (json_error_code(&e) == json_error_duplicate_key) {
		lex_scan(&l, (size_t)e.position, NULL);
		desc_fail(err, "field '%s': given twice", l.key);
		return NULL;
	}
	memset(&l, 0, sizeof(l));
	l.s = text;
	lex_scan(&l, (size_t)off, NULL);
	if (json_error_code(&e) == json_error_numeric_overflow && !l.want_key)
		desc_fail(err, "field '%s': number too large", lex_field(&l, field, sizeof(field)));
	else if (l.want_key || !l.key[0])
		desc_fail(err, "offset %d: %s", off, e.text);
	else
		desc_fail(err, "field '%s': offset %d: %s", lex_field(&l, field, sizeof(field)),
			  off, e.text);
	return NULL;
}

/* ---- the fields ----------------------------------------------------------------------------- */

/* The value of a string field, or NULL after an error naming the field. */
static const char *get_string(const char *field, const json_t *v, struct vmce_err *err)
{
	if (!json_is_string(v)) {
		desc_fail(err, "field '%s': expected a string", field);
		return NULL;
	}
	return json_string_value(v);
}

static int get_name(const char *f, const json_t *v, struct vmce_host_desc *h, struct vmce_err *err)
{
	const char *s = get_string(f, v, err);

	if (!s)
		return -EINVAL;
	if (!s[0])
		return desc_fail(err, "field '%s': empty", f);
	snprintf(h->name, sizeof(h->name), "%s", s);
	return 0;
}

/* A string field with one of two values: 0 for the first, 1 for the second, or -EINVAL. */
static int get_choice(const char *field, const json_t *v, const char *first, const char *second,
		      struct vmce_err *err)
{
	const char *s = get_string(field, v, err);

	if (!s)
		return -EINVAL;
	if (strcmp(s, first) && strcmp(s, second))
		return desc_fail(err, "field '%s': '%s' is neither %s nor %s", field, s, first,
				 second);
	return strcmp(s, first) ? 1 : 0;
}

static int get_vendor(const char *f, const json_t *v, struct vmce_host_desc *h,
		      struct vmce_err *err)
{
	int c = get_choice(f, v, "intel", "amd", err);

	h->vendor = c == 1 ? VMCE_VENDOR_AMD : VMCE_VENDOR_INTEL;
	return c < 0 ? c : 0;
}

static int get_banks(const char *f, const json_t *v, struct vmce_host_desc *h, struct vmce_err *err)
{
	json_int_t n = json_integer_value(v);

	if (json_is_real(v))
		return desc_fail(err, "field '%s': expected an integer", f);
	if (!json_is_integer(v))
		return desc_fail(err, "field '%s': expected a non-negative integer", f);
	if (n < 0)
		return desc_fail(err, "field '%s': must not be negative", f);
	if (n > 999999)
		return desc_fail(err, "field '%s': number too large", f);
	if (n < 1 || n > VMCE_MAX_BANKS)
		return desc_fail(err, "field '%s': %u is out of range (1 to %d)", f, (unsigned)n,
				 VMCE_MAX_BANKS);
	h->max_banks = (unsigned)n;
	return 0;
}

static int get_caps(const char *f, const json_t *v, struct vmce_host_desc *h, struct vmce_err *err)
{
	const json_t *m;
	char field[32];
	size_t i, c;

	if (!json_is_array(v))
		return desc_fail(err, "field '%s': expected an array of strings", f);
	if (json_array_size(v) > CAPS_MAX)
		return desc_fail(err, "field '%s': more than %d entries", f, CAPS_MAX);
	json_array_foreach(v, i, m) {
		const char *name;

		snprintf(field, sizeof(field), "%s[%zu]", f, i);
		name = get_string(field, m, err);
		if (!name)
			return -EINVAL;
		for (c = 0; c < NR_CAPS && strcmp(name, capdescs[c].name); c++)
			;
		if (c == NR_CAPS)
			return desc_fail(err,
					 "field '%s': unknown capability '%s' (expected ser, tes, "
					 "cmci, lmce, succor, ctl)",
					 field, name);
		if (h->caps & capdescs[c].cap)
			return desc_fail(err, "field '%s': '%s' is listed twice", field, name);
		h->caps |= capdescs[c].cap;
	}
	return 0;
}

static int get_version(const char *f, const json_t *v, struct vmce_host_desc *h,
		       struct vmce_err *err)
{
	const char *s = get_string(f, v, err);
	unsigned maj = 0, min = 0;
	int n = 0;

	if (!s)
		return -EINVAL;
	if (sscanf(s, "%3u.%3u%n", &maj, &min, &n) != 2 || s[n] || s[0] < '0' || s[0] > '9')
		return desc_fail(err, "field '%s': '%s' is not MAJOR.MINOR", f, s);
	h->version_major = maj;
	h->version_minor = min;
	return 0;
}

static int get_backend(const char *f, const json_t *v, struct vmce_host_desc *h,
		       struct vmce_err *err)
{
	int c = get_choice(f, v, "kvm-userspace", "kvm-hybrid", err);

	h->backend = c == 1 ? VMCE_BACKEND_KVM_HYBRID : VMCE_BACKEND_KVM_USERSPACE;
	return c < 0 ? c : 0;
}

/* QEMU's accelerator, checked only: the MCA MSRs are vmce's in user space under either, so the
 * backend stays the default, kvm-userspace. */
static int get_accel(const char *f, const json_t *v, struct vmce_host_desc *h, struct vmce_err *err)
{
	(void)h;
	return get_choice(f, v, "tcg", "kvm", err) < 0 ? -EINVAL : 0;
}

/* The fields of each format (NULL: not in it), in the order the "missing" checks name them. */
static const struct {
	const char *name[2]; /* by enum host_desc_format */
	int (*get)(const char *f, const json_t *v, struct vmce_host_desc *h, struct vmce_err *err);
	bool required;
} fields[] = {
	{{"name", "name"}, get_name, true},
	{{"vendor", "vendor"}, get_vendor, true},
	{{"max_banks", "max-banks"}, get_banks, true},
	{{"caps", "caps"}, get_caps, true},
	{{"vmce_version", "vmce-version"}, get_version, false},
	{{"backend", NULL}, get_backend, false},
	{{NULL, "accel"}, get_accel, false},
};

#define NR_FIELDS (sizeof(fields) / sizeof(fields[0]))

/* The field called key in format fmt, or NR_FIELDS. */
static size_t field_of(enum host_desc_format fmt, const char *key)
{
	size_t f;

	for (f = 0; f < NR_FIELDS; f++)
		if (fields[f].name[fmt] && !strcmp(key, fields[f].name[fmt]))
			break;
	return f;
}

/* The object's members in document order, then the required ones that are missing. */
static int get_fields(const json_t *root, enum host_desc_format fmt, struct vmce_host_desc *h,
		      struct vmce_err *err)
{
	const char *key;
	json_t *v;
	size_t f;

	json_object_foreach((json_t *)root, key, v) {
		f = field_of(fmt, key);
		if (f == NR_FIELDS)
			return desc_fail(err, "field '%s': unknown (expected %s)", key,
					 fmt == HOST_DESC_QEMU ? "name, vendor, max-banks, caps, "
								 "vmce-version, accel"
							       : "name, vendor, max_banks, caps, "
								 "vmce_version, backend");
		if (fields[f].get(key, v, h, err))
			return -EINVAL;
	}
	for (f = 0; f < NR_FIELDS; f++)
		if (fields[f].required && fields[f].name[fmt] &&
		    !json_object_get(root, fields[f].name[fmt]))
			return desc_fail(err, "field '%s': missing", fields[f].name[fmt]);
	for (size_t c = 0; c < NR_CAPS; c++)
		if ((h->caps & capdescs[c].cap) &&
		    !(h->vendor == VMCE_VENDOR_AMD ? capdescs[c].amd : capdescs[c].intel))
			return desc_fail(err,
					 "field 'caps': '%s' is an %s capability, the host is %s",
					 capdescs[c].name, capdescs[c].intel ? "Intel" : "AMD",
					 h->vendor == VMCE_VENDOR_AMD ? "amd" : "intel");
	return 0;
}

int host_desc_parse(const char *text, size_t len, enum host_desc_format fmt,
		    struct vmce_host_desc *out, struct vmce_err *err)
{
	struct vmce_host_desc h;
	size_t first;
	json_t *root;
	int rc;

	if (len > HOST_DESC_MAX_LEN)
		return desc_fail(err, "host description: %zu bytes (at most %d)", len,
				 HOST_DESC_MAX_LEN);
	if (memchr(text, '\0', len))
		return desc_fail(err, "host description: contains a NUL byte");
	root = desc_load(text, len, err);
	if (!root)
		return -EINVAL;
	first = strspn(text, " \t\r\n");
	if (fmt == HOST_DESC_QEMU && json_is_object(root) && json_object_get(root, "return")) {
		/* a whole QMP reply: its value is the description */
		json_t *ret = json_incref(json_object_get(root, "return"));

		json_decref(root);
		root = ret;
		if (!json_is_object(root)) {
			json_decref(root);
			return desc_fail(err, "field 'return': expected query-vmce-host's object");
		}
	}
	if (!json_is_object(root))
		rc = desc_fail(err,
			       "offset %zu: expected '{' at the start of the host description, got "
			       "'%c'",
			       first,
			       text[first] >= 0x20 && text[first] < 0x7f ? text[first] : '?');
	else if (json_object_size(root) == 0)
		rc = desc_fail(err, "field 'name': missing (empty object)");
	else {
		memset(&h, 0, sizeof(h));
		h.version_major = VMCE_VERSION_MAJOR;
		h.version_minor = VMCE_VERSION_MINOR;
		h.backend = VMCE_BACKEND_KVM_USERSPACE;
		rc = get_fields(root, fmt, &h, err);
		if (!rc)
			*out = h;
	}
	json_decref(root);
	return rc;
}
