// SPDX-License-Identifier: MIT
/*
 * Pool levelling: host capability descriptions (a small JSON object each) and the profile every
 * host of a pool can back, with a note naming the host that limited each field.
 *
 * The JSON reader accepts exactly the description's shape: one object whose values are strings,
 * non-negative integers or arrays of strings.  Everything is bounded (text length, string
 * length, array length); escapes other than \" \\ \/ are refused; every error names the field
 * (or the byte offset, for syntax).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/migrate_internal.h"

#define STR_MAX	 63
#define CAPS_MAX 16

static const struct {
	const char *name;
	uint32_t cap;
	bool intel, amd;
} caps_tab[] = {
	{"ser", VMCE_CAP_SER, true, false},	  {"tes", VMCE_CAP_TES, true, false},
	{"cmci", VMCE_CAP_CMCI, true, false},	  {"lmce", VMCE_CAP_LMCE, true, false},
	{"succor", VMCE_CAP_SUCCOR, false, true}, {"ctl", VMCE_CAP_CTL, true, true},
};

/* ---- a strict reader for the host description ------------------------------------------------ */

struct jr {
	const char *s;
	size_t len, pos;
	struct vmce_err *err;
};

static void skip_ws(struct jr *j)
{
	while (j->pos < j->len && (j->s[j->pos] == ' ' || j->s[j->pos] == '\t' ||
				   j->s[j->pos] == '\n' || j->s[j->pos] == '\r'))
		j->pos++;
}

static int expect(struct jr *j, char c, const char *what)
{
	skip_ws(j);
	if (j->pos >= j->len)
		return vmce__fail(j->err, -EINVAL, "offset %zu: expected '%c' %s, got the end",
				  j->pos, c, what);
	if (j->s[j->pos] != c)
		return vmce__fail(j->err, -EINVAL, "offset %zu: expected '%c' %s, got '%c'", j->pos,
				  c, what,
				  j->s[j->pos] >= 0x20 && j->s[j->pos] < 0x7f ? j->s[j->pos] : '?');
	j->pos++;
	return 0;
}

/* A string of at most STR_MAX bytes of printable ASCII. */
static int read_string(struct jr *j, char *out, const char *field)
{
	size_t n = 0;
	int rc = expect(j, '"', field);

	if (rc)
		return rc;
	for (;;) {
		char c;

		if (j->pos >= j->len)
			return vmce__fail(j->err, -EINVAL, "field '%s': unterminated string",
					  field);
		c = j->s[j->pos++];
		if (c == '"')
			break;
		if (c == '\\') {
			if (j->pos >= j->len)
				return vmce__fail(j->err, -EINVAL,
						  "field '%s': unterminated string", field);
			c = j->s[j->pos++];
			if (c != '"' && c != '\\' && c != '/')
				return vmce__fail(j->err, -EINVAL,
						  "field '%s': escape '\\%c' is not supported",
						  field, c >= 0x20 && c < 0x7f ? c : '?');
		} else if ((unsigned char)c < 0x20 || (unsigned char)c > 0x7e) {
			return vmce__fail(
				j->err, -EINVAL,
				"field '%s': control or non-ASCII byte 0x%02x in a string", field,
				(unsigned char)c);
		}
		if (n >= STR_MAX)
			return vmce__fail(j->err, -EINVAL,
					  "field '%s': string longer than %d characters", field,
					  STR_MAX);
		out[n++] = c;
	}
	out[n] = '\0';
	return 0;
}

static int read_uint(struct jr *j, unsigned *out, const char *field)
{
	unsigned v = 0, digits = 0;

	skip_ws(j);
	if (j->pos < j->len && j->s[j->pos] == '-')
		return vmce__fail(j->err, -EINVAL, "field '%s': must not be negative", field);
	while (j->pos < j->len && j->s[j->pos] >= '0' && j->s[j->pos] <= '9') {
		if (digits == 0 && j->s[j->pos] == '0' && j->pos + 1 < j->len &&
		    j->s[j->pos + 1] >= '0' && j->s[j->pos + 1] <= '9')
			return vmce__fail(j->err, -EINVAL, "field '%s': leading zero", field);
		if (++digits > 6)
			return vmce__fail(j->err, -EINVAL, "field '%s': number too large", field);
		v = v * 10 + (unsigned)(j->s[j->pos++] - '0');
	}
	if (!digits)
		return vmce__fail(j->err, -EINVAL, "field '%s': expected a non-negative integer",
				  field);
	if (j->pos < j->len && (j->s[j->pos] == '.' || j->s[j->pos] == 'e' || j->s[j->pos] == 'E'))
		return vmce__fail(j->err, -EINVAL, "field '%s': expected an integer", field);
	*out = v;
	return 0;
}

static int parse_vendor(const char *s, enum vmce_vendor *v, struct vmce_err *err)
{
	if (!strcmp(s, "intel"))
		*v = VMCE_VENDOR_INTEL;
	else if (!strcmp(s, "amd"))
		*v = VMCE_VENDOR_AMD;
	else
		return vmce__fail(err, -EINVAL, "field 'vendor': '%s' is neither intel nor amd", s);
	return 0;
}

static int parse_version(const char *s, struct vmce_host_desc *h, struct vmce_err *err)
{
	unsigned maj = 0, min = 0;
	int n = 0;

	if (sscanf(s, "%3u.%3u%n", &maj, &min, &n) != 2 || s[n] || s[0] < '0' || s[0] > '9')
		return vmce__fail(err, -EINVAL, "field 'vmce_version': '%s' is not MAJOR.MINOR", s);
	h->version_major = maj;
	h->version_minor = min;
	return 0;
}

static int read_caps(struct jr *j, struct vmce_host_desc *h, uint32_t *seen_caps)
{
	char name[STR_MAX + 1], field[32];
	unsigned n = 0;
	int rc = expect(j, '[', "to start 'caps'");

	if (rc)
		return rc;
	skip_ws(j);
	if (j->pos < j->len && j->s[j->pos] == ']') {
		j->pos++;
		return 0;
	}
	for (;;) {
		bool found = false;

		snprintf(field, sizeof(field), "caps[%u]", n);
		if (n >= CAPS_MAX)
			return vmce__fail(j->err, -EINVAL, "field 'caps': more than %d entries",
					  CAPS_MAX);
		rc = read_string(j, name, field);
		if (rc)
			return rc;
		for (size_t i = 0; i < VMCE_ARRAY_SIZE(caps_tab); i++) {
			if (strcmp(name, caps_tab[i].name))
				continue;
			if (*seen_caps & caps_tab[i].cap)
				return vmce__fail(j->err, -EINVAL,
						  "field '%s': '%s' is listed twice", field, name);
			*seen_caps |= caps_tab[i].cap;
			found = true;
		}
		if (!found)
			return vmce__fail(j->err, -EINVAL,
					  "field '%s': unknown capability '%s' (expected ser, tes, "
					  "cmci, lmce, succor, ctl)",
					  field, name);
		n++;
		skip_ws(j);
		if (j->pos < j->len && j->s[j->pos] == ',') {
			j->pos++;
			continue;
		}
		rc = expect(j, ']', "to end 'caps'");
		if (rc)
			return rc;
		(void)h;
		return 0;
	}
}

enum { F_NAME = 1, F_VENDOR = 2, F_BANKS = 4, F_CAPS = 8, F_VERSION = 16, F_BACKEND = 32 };

int vmce_host_desc_parse(const char *json, size_t len, struct vmce_host_desc *out,
			 struct vmce_err *err)
{
	struct jr j = {json, len, 0, err};
	struct vmce_host_desc h;
	char key[STR_MAX + 1], val[STR_MAX + 1];
	unsigned seen = 0;
	uint32_t caps = 0;
	int rc;

	if (!json || !out)
		return vmce__fail(err, -EINVAL, "host description: text and result are required");
	if (len > VMCE_HOST_DESC_MAX_LEN)
		return vmce__fail(err, -EINVAL, "host description: %zu bytes (at most %d)", len,
				  VMCE_HOST_DESC_MAX_LEN);
	if (memchr(json, '\0', len))
		return vmce__fail(err, -EINVAL, "host description: contains a NUL byte");
	memset(&h, 0, sizeof(h));
	h.version_major = VMCE_VERSION_MAJOR;
	h.version_minor = VMCE_VERSION_MINOR;
	h.backend = VMCE_BACKEND_KVM_USERSPACE;
	rc = expect(&j, '{', "at the start of the host description");
	if (rc)
		return rc;
	skip_ws(&j);
	if (j.pos < j.len && json[j.pos] == '}')
		return vmce__fail(err, -EINVAL, "field 'name': missing (empty object)");
	for (;;) {
		unsigned bit;

		rc = read_string(&j, key, "(a key)");
		if (rc)
			return rc;
		if (!strcmp(key, "name"))
			bit = F_NAME;
		else if (!strcmp(key, "vendor"))
			bit = F_VENDOR;
		else if (!strcmp(key, "max_banks"))
			bit = F_BANKS;
		else if (!strcmp(key, "caps"))
			bit = F_CAPS;
		else if (!strcmp(key, "vmce_version"))
			bit = F_VERSION;
		else if (!strcmp(key, "backend"))
			bit = F_BACKEND;
		else
			return vmce__fail(
				err, -EINVAL,
				"field '%s': unknown (expected name, vendor, max_banks, caps, "
				"vmce_version, backend)",
				key);
		if (seen & bit)
			return vmce__fail(err, -EINVAL, "field '%s': given twice", key);
		seen |= bit;
		rc = expect(&j, ':', "after a key");
		if (rc)
			return rc;
		switch (bit) {
		case F_NAME:
			rc = read_string(&j, h.name, key);
			if (!rc && !h.name[0])
				rc = vmce__fail(err, -EINVAL, "field 'name': empty");
			break;
		case F_VENDOR:
			rc = read_string(&j, val, key);
			if (!rc)
				rc = parse_vendor(val, &h.vendor, err);
			break;
		case F_BANKS:
			rc = read_uint(&j, &h.max_banks, key);
			if (!rc && (h.max_banks < 1 || h.max_banks > VMCE_MAX_BANKS))
				rc = vmce__fail(err, -EINVAL,
						"field 'max_banks': %u is out of range (1 to %d)",
						h.max_banks, VMCE_MAX_BANKS);
			break;
		case F_CAPS:
			rc = read_caps(&j, &h, &caps);
			break;
		case F_VERSION:
			rc = read_string(&j, val, key);
			if (!rc)
				rc = parse_version(val, &h, err);
			break;
		default:
			rc = read_string(&j, val, key);
			if (rc)
				break;
			if (!strcmp(val, "kvm-userspace"))
				h.backend = VMCE_BACKEND_KVM_USERSPACE;
			else if (!strcmp(val, "kvm-hybrid"))
				h.backend = VMCE_BACKEND_KVM_HYBRID;
			else
				rc = vmce__fail(
					err, -EINVAL,
					"field 'backend': '%s' is neither kvm-userspace nor "
					"kvm-hybrid",
					val);
			break;
		}
		if (rc)
			return rc;
		skip_ws(&j);
		if (j.pos < j.len && json[j.pos] == ',') {
			j.pos++;
			continue;
		}
		rc = expect(&j, '}', "or ',' after a value");
		if (rc)
			return rc;
		break;
	}
	skip_ws(&j);
	if (j.pos != j.len)
		return vmce__fail(err, -EINVAL, "offset %zu: trailing data after the object",
				  j.pos);
	if (!(seen & F_NAME))
		return vmce__fail(err, -EINVAL, "field 'name': missing");
	if (!(seen & F_VENDOR))
		return vmce__fail(err, -EINVAL, "field 'vendor': missing");
	if (!(seen & F_BANKS))
		return vmce__fail(err, -EINVAL, "field 'max_banks': missing");
	if (!(seen & F_CAPS))
		return vmce__fail(err, -EINVAL, "field 'caps': missing");
	for (size_t i = 0; i < VMCE_ARRAY_SIZE(caps_tab); i++)
		if ((caps & caps_tab[i].cap) &&
		    !(h.vendor == VMCE_VENDOR_AMD ? caps_tab[i].amd : caps_tab[i].intel))
			return vmce__fail(err, -EINVAL,
					  "field 'caps': '%s' is an %s capability, the host is %s",
					  caps_tab[i].name, caps_tab[i].intel ? "Intel" : "AMD",
					  h.vendor == VMCE_VENDOR_AMD ? "amd" : "intel");
	h.caps = caps;
	*out = h;
	return 0;
}

/* ---- levelling ---------------------------------------------------------------------------------- */

static struct vmce_level_note *note(struct vmce_level_result *r, const char *field)
{
	struct vmce_level_note *n;

	if (r->nr_notes >= VMCE_LEVEL_MAX_NOTES)
		return NULL;
	n = &r->notes[r->nr_notes++];
	memset(n, 0, sizeof(*n));
	snprintf(n->field, sizeof(n->field), "%s", field);
	return n;
}

static void add_host(char *list, size_t len, const char *name)
{
	size_t n = strlen(list);

	if (n + 1 >= len)
		return;
	if (n + strlen(name) + 3 >= len) {
		snprintf(list + n, len - n, "%s...", n ? "," : "");
		return;
	}
	snprintf(list + n, len - n, "%s%s", n ? "," : "", name);
}

static const char *vname(enum vmce_vendor v)
{
	return v == VMCE_VENDOR_AMD ? "amd" : "intel";
}

int vmce_level_descs(const struct vmce_host_desc *hosts, size_t n, const struct vmce_profile *want,
		     struct vmce_level_result *out, struct vmce_err *err)
{
	struct vmce_profile p;
	struct vmce_level_note *nt;
	unsigned min_banks = VMCE_MAX_BANKS;
	size_t limiter = 0;
	struct vmce_err e;

	if (!hosts || !out || n == 0)
		return vmce__fail(err, -EINVAL, "levelling needs at least one host description");
	if (n > VMCE_LEVEL_MAX_HOSTS)
		return vmce__fail(err, -EINVAL, "levelling: %zu hosts (at most %d)", n,
				  VMCE_LEVEL_MAX_HOSTS);
	if (want && vmce_profile_validate(want, &e))
		return vmce__fail(err, -EINVAL, "wanted profile: %s", e.msg);
	for (size_t i = 0; i < n; i++) {
		const struct vmce_host_desc *h = &hosts[i];

		if (!h->name[0] || memchr(h->name, '\0', sizeof(h->name)) == NULL)
			return vmce__fail(err, -EINVAL,
					  "host %zu: field 'name': empty or unterminated", i + 1);
		if (h->vendor != VMCE_VENDOR_INTEL && h->vendor != VMCE_VENDOR_AMD)
			return vmce__fail(err, -EINVAL, "host '%s': field 'vendor': %d is unknown",
					  h->name, (int)h->vendor);
		if (h->max_banks < 1 || h->max_banks > VMCE_MAX_BANKS)
			return vmce__fail(
				err, -EINVAL,
				"host '%s': field 'max_banks': %u is out of range (1 to %d)",
				h->name, h->max_banks, VMCE_MAX_BANKS);
		if (h->caps & ~VMCE_CAP_ALL)
			return vmce__fail(err, -EINVAL,
					  "host '%s': field 'caps': unknown bits 0x%x", h->name,
					  h->caps & ~VMCE_CAP_ALL);
	}
	memset(out, 0, sizeof(*out));

	/* Vendor: one for the whole pool (a guest's vendor never changes). */
	for (size_t i = 1; i < n; i++)
		if (hosts[i].vendor != hosts[0].vendor)
			return vmce__fail(err, -ENOTSUP,
					  "vendor: host '%s' is %s and host '%s' is %s: no profile "
					  "fits both (a guest's vendor never changes)",
					  hosts[0].name, vname(hosts[0].vendor), hosts[i].name,
					  vname(hosts[i].vendor));
	if (want && want->vendor != hosts[0].vendor)
		return vmce__fail(err, -ENOTSUP,
				  "vendor: the wanted profile is %s but the pool is %s",
				  vname(want->vendor), vname(hosts[0].vendor));
	for (size_t i = 0; i < n; i++)
		if (hosts[i].version_major == 0 && hosts[i].version_minor == 0)
			return vmce__fail(err, -ENOTSUP,
					  "vmce_version: host '%s' runs vmce 0.0, which predates "
					  "migration stream version 1",
					  hosts[i].name);
	memset(&p, 0, sizeof(p));
	p.vendor = hosts[0].vendor;
	nt = note(out, "vendor");
	snprintf(nt->text, sizeof(nt->text), "%s: all %zu host(s) are %s", vname(p.vendor), n,
		 vname(p.vendor));

	/* Banks: the smallest max_banks, and no more than wanted. */
	for (size_t i = 0; i < n; i++)
		if (hosts[i].max_banks < min_banks) {
			min_banks = hosts[i].max_banks;
			limiter = i;
		}
	p.banks = (uint8_t)(want ? want->banks : min_banks);
	nt = note(out, "banks");
	if (p.banks > min_banks) {
		for (size_t i = 0; i < n; i++)
			if (hosts[i].max_banks < p.banks)
				add_host(nt->hosts, sizeof(nt->hosts), hosts[i].name);
		snprintf(nt->text, sizeof(nt->text),
			 "%u, not %u: limited by host '%s' (max_banks %u)", min_banks, p.banks,
			 hosts[limiter].name, min_banks);
		p.banks = (uint8_t)min_banks;
	} else if (!want) {
		snprintf(nt->hosts, sizeof(nt->hosts), "%s", hosts[limiter].name);
		snprintf(nt->text, sizeof(nt->text), "%u: the smallest max_banks, host '%s'",
			 p.banks, hosts[limiter].name);
	} else {
		snprintf(nt->text, sizeof(nt->text), "%u as wanted: every host backs it", p.banks);
	}
	p.report_bank = (uint8_t)(p.banks > 1 ? 1 : 0);
	if (want && want->report_bank < p.banks)
		p.report_bank = want->report_bank;
	else if (want && want->report_bank != p.report_bank) {
		nt = note(out, "report");
		snprintf(nt->text, sizeof(nt->text),
			 "%u, not %u: the wanted reporting bank is beyond %u bank(s)",
			 p.report_bank, want->report_bank, p.banks);
	}
	p.compat_banks = p.banks;
	if (want && want->compat_banks > p.banks) {
		p.compat_banks = want->compat_banks;
	}

	/* Capabilities: those wanted (or all of the vendor's) that every host backs. */
	for (size_t c = 0; c < VMCE_ARRAY_SIZE(caps_tab); c++) {
		uint32_t cap = caps_tab[c].cap;
		bool vendor_ok = p.vendor == VMCE_VENDOR_AMD ? caps_tab[c].amd : caps_tab[c].intel;
		char lacking[96] = "";
		size_t nlack = 0;

		if (!vendor_ok || (want && !(want->caps & cap)))
			continue;
		for (size_t i = 0; i < n; i++)
			if (!(hosts[i].caps & cap)) {
				add_host(lacking, sizeof(lacking), hosts[i].name);
				nlack++;
			}
		nt = note(out, caps_tab[c].name);
		if (!nlack) {
			p.caps |= cap;
			if (nt)
				snprintf(nt->text, sizeof(nt->text), "kept: every host backs it");
		} else if (nt) {
			snprintf(nt->hosts, sizeof(nt->hosts), "%s", lacking);
			snprintf(nt->text, sizeof(nt->text), "dropped: host%s %s cannot back it",
				 nlack > 1 ? "s" : "", lacking);
		}
	}
	/* Backends: the stream is backend-independent; say which the pool mixes. */
	{
		bool user = false, hybrid = false;

		for (size_t i = 0; i < n; i++) {
			user |= hosts[i].backend == VMCE_BACKEND_KVM_USERSPACE;
			hybrid |= hosts[i].backend == VMCE_BACKEND_KVM_HYBRID;
		}
		nt = note(out, "backend");
		if (nt)
			snprintf(nt->text, sizeof(nt->text),
				 "%s%s%s: migration between them is "
				 "backend-independent",
				 user ? "kvm-userspace" : "", user && hybrid ? " and " : "",
				 hybrid ? "kvm-hybrid" : "");
	}
	if (vmce_profile_validate(&p, &e))
		return vmce__fail(err, -EINVAL, "levelled profile: %s", e.msg);
	out->profile = p;
	return 0;
}

int vmce_level_hosts(const char *const *json_texts, size_t n, const struct vmce_profile *want,
		     struct vmce_level_result *out, struct vmce_err *err)
{
	struct vmce_host_desc *hosts;
	struct vmce_err e;
	int rc;

	if (!json_texts || n == 0)
		return vmce__fail(err, -EINVAL, "levelling needs at least one host description");
	if (n > VMCE_LEVEL_MAX_HOSTS)
		return vmce__fail(err, -EINVAL, "levelling: %zu hosts (at most %d)", n,
				  VMCE_LEVEL_MAX_HOSTS);
	hosts = calloc(n, sizeof(*hosts));
	if (!hosts)
		return vmce__fail(err, -ENOMEM, "out of memory for %zu host descriptions", n);
	for (size_t i = 0; i < n; i++) {
		if (!json_texts[i]) {
			free(hosts);
			return vmce__fail(err, -EINVAL, "host description %zu: missing", i + 1);
		}
		if (vmce_host_desc_parse(json_texts[i],
					 strnlen(json_texts[i], VMCE_HOST_DESC_MAX_LEN + 1),
					 &hosts[i], &e)) {
			free(hosts);
			return vmce__fail(err, -EINVAL, "host description %zu: %s", i + 1, e.msg);
		}
	}
	rc = vmce_level_descs(hosts, n, want, out, err);
	free(hosts);
	return rc;
}

int vmce_level_format(const struct vmce_level_result *r, char *buf, size_t len)
{
	char prof[128];
	size_t n;

	vmce_profile_format(&r->profile, prof, sizeof(prof));
	n = (size_t)snprintf(buf, len, "profile: %s\n", prof);
	for (size_t i = 0; i < r->nr_notes; i++)
		n += (size_t)snprintf(buf && n < len ? buf + n : NULL, n < len ? len - n : 0,
				      "%s: %s\n", r->notes[i].field, r->notes[i].text);
	return (int)n;
}

/* Append s as a JSON string (the notes hold printable ASCII only). */
static size_t json_str(char *buf, size_t len, size_t n, const char *s)
{
	n += (size_t)snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0, "\"");
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			n += (size_t)snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0,
					      "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			n += (size_t)snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0,
					      "\\u%04x", (unsigned char)*s);
		else
			n += (size_t)snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0, "%c",
					      *s);
	}
	return n + (size_t)snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0, "\"");
}

int vmce_level_format_json(const struct vmce_level_result *r, char *buf, size_t len)
{
	char prof[128];
	size_t n;

	if (buf && len)
		buf[0] = '\0';
	vmce_profile_format(&r->profile, prof, sizeof(prof));
	n = (size_t)snprintf(buf, len, "{\"profile\":");
	n = json_str(buf, len, n, prof);
	n += (size_t)snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0, ",\"notes\":[");
	for (size_t i = 0; i < r->nr_notes && i < VMCE_LEVEL_MAX_NOTES; i++) {
		n += (size_t)snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0,
				      "%s{\"field\":", i ? "," : "");
		n = json_str(buf, len, n, r->notes[i].field);
		n += (size_t)snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0,
				      ",\"hosts\":");
		n = json_str(buf, len, n, r->notes[i].hosts);
		n += (size_t)snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0,
				      ",\"text\":");
		n = json_str(buf, len, n, r->notes[i].text);
		n += (size_t)snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0, "}");
	}
	n += (size_t)snprintf(n < len ? buf + n : NULL, n < len ? len - n : 0, "]}");
	return (int)n;
}
