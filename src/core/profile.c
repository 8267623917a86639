// SPDX-License-Identifier: MIT
/*
 * Profiles: the guest-visible capability set, its text form and its MCG_CAP.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmce_internal.h"

#define PROFILE_TEXT_MAX 256

struct cap_name {
	const char *name;
	uint32_t cap;
	bool intel, amd;
};

/* Printing order of the canonical text form. */
static const struct cap_name cap_names[] = {
	{"ser", VMCE_CAP_SER, true, false},	  {"tes", VMCE_CAP_TES, true, false},
	{"cmci", VMCE_CAP_CMCI, true, false},	  {"lmce", VMCE_CAP_LMCE, true, false},
	{"succor", VMCE_CAP_SUCCOR, false, true}, {"ctl", VMCE_CAP_CTL, true, true},
};

int vmce__fail(struct vmce_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

void vmce_profile_default(struct vmce_profile *p)
{
	memset(p, 0, sizeof(*p));
	p->vendor = VMCE_VENDOR_INTEL;
	p->banks = 2;
	p->report_bank = 1;
	p->compat_banks = 2;
	p->caps = VMCE_CAP_SER | VMCE_CAP_TES | VMCE_CAP_CMCI;
}

static const char *vendor_name(enum vmce_vendor v)
{
	return v == VMCE_VENDOR_AMD ? "amd" : "intel";
}

int vmce_profile_validate(const struct vmce_profile *p, struct vmce_err *err)
{
	if (p->vendor != VMCE_VENDOR_INTEL && p->vendor != VMCE_VENDOR_AMD)
		return vmce__fail(err, -EINVAL, "vendor %d is neither intel nor amd",
				  (int)p->vendor);
	if (p->banks < 1 || p->banks > VMCE_MAX_BANKS)
		return vmce__fail(err, -EINVAL, "banks=%u is out of range (1 to %d)", p->banks,
				  VMCE_MAX_BANKS);
	if (p->report_bank >= p->banks)
		return vmce__fail(err, -EINVAL, "report=%u is not a bank of a %u-bank profile",
				  p->report_bank, p->banks);
	if (p->compat_banks < p->banks || p->compat_banks > VMCE_MAX_BANKS)
		return vmce__fail(err, -EINVAL, "compat=%u must be between banks (%u) and %d",
				  p->compat_banks, p->banks, VMCE_MAX_BANKS);
	if (p->caps & ~VMCE_CAP_ALL)
		return vmce__fail(err, -EINVAL, "unknown capability bits 0x%x",
				  p->caps & ~VMCE_CAP_ALL);
	for (size_t i = 0; i < VMCE_ARRAY_SIZE(cap_names); i++) {
		const struct cap_name *c = &cap_names[i];
		bool ok = p->vendor == VMCE_VENDOR_AMD ? c->amd : c->intel;

		if ((p->caps & c->cap) && !ok)
			return vmce__fail(err, -EINVAL, "'%s' is %s capability: not valid with %s",
					  c->name, c->intel ? "an Intel" : "an AMD",
					  vendor_name(p->vendor));
	}
	return 0;
}

uint64_t vmce_profile_mcg_cap(const struct vmce_profile *p)
{
	uint64_t cap = p->banks & VMCE_MCG_CAP_COUNT_MASK;

	if (p->caps & VMCE_CAP_CTL)
		cap |= VMCE_MCG_CTL_P;
	if (p->vendor == VMCE_VENDOR_INTEL) {
		if (p->caps & VMCE_CAP_CMCI)
			cap |= VMCE_MCG_CMCI_P;
		if (p->caps & VMCE_CAP_TES)
			cap |= VMCE_MCG_TES_P;
		if (p->caps & VMCE_CAP_SER)
			cap |= VMCE_MCG_SER_P;
		if (p->caps & VMCE_CAP_LMCE)
			cap |= VMCE_MCG_LMCE_P;
	}
	return cap;
}

bool vmce_profile_equal(const struct vmce_profile *a, const struct vmce_profile *b)
{
	return a->vendor == b->vendor && a->caps == b->caps && a->banks == b->banks &&
	       a->report_bank == b->report_bank && a->compat_banks == b->compat_banks;
}

/* Parse a decimal number 0..max from s (whole string); -1 when malformed. */
static long parse_small_uint(const char *s, long max)
{
	long v = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
		if (v > max)
			return max + 1;
	}
	return v;
}

/* Handle a key=value token (tok is the whole token, val points after its '=').  Values are
 * checked against 1..max here so that a message can quote the token as written.  Returns 0, or
 * -EINVAL with err set. */
static int parse_keyval(const char *tok, const char *key, const char *val, long min, long max,
			long *out, unsigned *seen, unsigned bit, struct vmce_err *err)
{
	long v;

	if (*seen & bit)
		return vmce__fail(err, -EINVAL, "'%s': %s= is given twice", tok, key);
	*seen |= bit;
	v = parse_small_uint(val, max);
	if (v < 0)
		return vmce__fail(err, -EINVAL, "'%s': %s= needs a decimal number", tok, key);
	if (v < min || v > max)
		return vmce__fail(err, -EINVAL, "'%s': %s= is out of range (%ld to %ld)", tok, key,
				  min, max);
	*out = v;
	return 0;
}

/* A token with a space or a byte outside printable ASCII: name the token (non-printable bytes
 * shown as '?'), its position and the byte. */
static int bad_char(const char *tok, const char *c, unsigned pos, struct vmce_err *err)
{
	char shown[PROFILE_TEXT_MAX + 1];
	size_t n = 0;

	for (const char *t = tok; *t && n < PROFILE_TEXT_MAX; t++)
		shown[n++] = (*t >= ' ' && *t <= '~') ? *t : '?';
	shown[n] = '\0';
	return vmce__fail(err, -EINVAL, "token %u '%s' contains byte 0x%02x (space or control)",
			  pos + 1, shown, (unsigned)(unsigned char)*c);
}

int vmce_profile_parse(const char *text, struct vmce_profile *p, struct vmce_err *err)
{
	char buf[PROFILE_TEXT_MAX + 1];
	struct vmce_profile r;
	unsigned seen_kv = 0, pos = 0;
	long banks = 2, report = -1, compat = -1;
	char *save = NULL, *tok;
	size_t n;
	int rc;

	if (!text)
		return vmce__fail(err, -EINVAL, "no profile text");
	n = strlen(text);
	if (n == 0)
		return vmce__fail(err, -EINVAL, "empty profile: expected a vendor (intel or amd)");
	if (n > PROFILE_TEXT_MAX)
		return vmce__fail(err, -EINVAL, "profile text is %zu bytes long (at most %d)", n,
				  PROFILE_TEXT_MAX);
	if (text[n - 1] == ',')
		return vmce__fail(err, -EINVAL, "profile ends with ',': a token is missing");
	if (text[0] == ',')
		return vmce__fail(err, -EINVAL, "profile starts with ',': expected a vendor first");
	if (strstr(text, ",,"))
		return vmce__fail(err, -EINVAL, "empty token (',,') in '%s'", text);
	memcpy(buf, text, n + 1);
	memset(&r, 0, sizeof(r));

	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save), pos++) {
		char *eq = strchr(tok, '=');
		bool found = false;

		for (const char *c = tok; *c; c++)
			if (*c <= ' ' || *c > '~')
				return bad_char(tok, c, pos, err);
		if (pos == 0) {
			if (!strcmp(tok, "intel"))
				r.vendor = VMCE_VENDOR_INTEL;
			else if (!strcmp(tok, "amd"))
				r.vendor = VMCE_VENDOR_AMD;
			else
				return vmce__fail(
					err, -EINVAL,
					"unknown vendor '%s': expected intel or amd first", tok);
			continue;
		}
		if (!strcmp(tok, "intel") || !strcmp(tok, "amd"))
			return vmce__fail(err, -EINVAL, "vendor '%s' may only be the first token",
					  tok);
		if (eq) {
			size_t klen = (size_t)(eq - tok);

			if (klen == 5 && !strncmp(tok, "banks", klen))
				rc = parse_keyval(tok, "banks", eq + 1, 1, VMCE_MAX_BANKS, &banks,
						  &seen_kv, 1, err);
			else if (klen == 6 && !strncmp(tok, "report", klen))
				rc = parse_keyval(tok, "report", eq + 1, 0, VMCE_MAX_BANKS - 1,
						  &report, &seen_kv, 2, err);
			else if (klen == 6 && !strncmp(tok, "compat", klen))
				rc = parse_keyval(tok, "compat", eq + 1, 1, VMCE_MAX_BANKS, &compat,
						  &seen_kv, 4, err);
			else
				return vmce__fail(err, -EINVAL,
						  "unknown setting '%s': expected banks=, report= "
						  "or compat=",
						  tok);
			if (rc)
				return rc;
			continue;
		}
		for (size_t i = 0; i < VMCE_ARRAY_SIZE(cap_names); i++) {
			if (strcmp(tok, cap_names[i].name))
				continue;
			if (r.caps & cap_names[i].cap)
				return vmce__fail(err, -EINVAL, "'%s' is given twice", tok);
			r.caps |= cap_names[i].cap;
			found = true;
		}
		if (!found)
			return vmce__fail(err, -EINVAL,
					  "unknown capability '%s' (expected ser, tes, cmci, lmce, "
					  "ctl, succor, banks=, report=, compat=)",
					  tok);
	}
	if (report < 0)
		report = banks > 1 ? 1 : 0;
	if (compat < 0)
		compat = banks;
	if (report >= banks)
		return vmce__fail(err, -EINVAL, "report=%ld is not a bank of a %ld-bank profile",
				  report, banks);
	if (compat < banks)
		return vmce__fail(err, -EINVAL, "compat=%ld must be between banks (%ld) and %d",
				  compat, banks, VMCE_MAX_BANKS);
	r.banks = (uint8_t)banks;
	r.report_bank = (uint8_t)report;
	r.compat_banks = (uint8_t)compat;
	rc = vmce_profile_validate(&r, err);
	if (rc)
		return rc;
	*p = r;
	return 0;
}

int vmce_profile_format(const struct vmce_profile *p, char *buf, size_t len)
{
	char tmp[PROFILE_TEXT_MAX];
	int n;

	n = snprintf(tmp, sizeof(tmp), "%s,banks=%u", vendor_name(p->vendor), p->banks);
	if (p->report_bank != (p->banks > 1 ? 1 : 0))
		n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, ",report=%u", p->report_bank);
	if (p->compat_banks != p->banks)
		n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, ",compat=%u", p->compat_banks);
	for (size_t i = 0; i < VMCE_ARRAY_SIZE(cap_names); i++)
		if (p->caps & cap_names[i].cap)
			n += snprintf(tmp + n, sizeof(tmp) - (size_t)n, ",%s", cap_names[i].name);
	return snprintf(buf, len, "%s", tmp);
}
