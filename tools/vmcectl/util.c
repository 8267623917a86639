// SPDX-License-Identifier: MIT
/*
 * Shared helpers of vmcectl: messages, exit statuses and number parsing.
 */
#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <string.h>

#include <vmce/vmce.h>

#include "vmcectl.h"

const char *vmcectl_cmd;

const struct capdesc capdescs[NR_CAPS] = {
	{VMCE_CAP_SER, "ser", "software error recovery (MCG_SER_P): SRAO/SRAR", true, false},
	{VMCE_CAP_TES, "tes", "threshold-based error status (MCG_TES_P)", true, false},
	{VMCE_CAP_CMCI, "cmci", "corrected machine-check interrupt (MCG_CMCI_P, MCi_CTL2)", true,
	 false},
	{VMCE_CAP_LMCE, "lmce", "local machine check (MCG_LMCE_P, MCG_EXT_CTL)", true, false},
	{VMCE_CAP_SUCCOR, "succor", "recoverable MCA (CPUID 0x80000007 EBX bit 1)", false, true},
	{VMCE_CAP_CTL, "ctl", "global control register (MCG_CTL_P, MCG_CTL)", true, true},
};

static void vmsg(const char *fmt, va_list ap)
{
	if (vmcectl_cmd)
		fprintf(stderr, "vmcectl %s: ", vmcectl_cmd);
	else
		fputs("vmcectl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	return EXIT_FAIL;
}

int usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(fmt, ap);
	va_end(ap);
	if (vmcectl_cmd)
		fprintf(stderr, "Try 'vmcectl %s --help'.\n", vmcectl_cmd);
	else
		fputs("Try 'vmcectl --help'.\n", stderr);
	return EXIT_USAGE;
}

/* Printable form of a user-supplied string for a message: bounded, control chars as '?'. */
static const char *shown(const char *s, char *buf, size_t len)
{
	size_t i;

	for (i = 0; s[i] && i + 4 < len; i++)
		buf[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
	if (s[i]) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

static int why_fail(struct vmce_err *err, const char *s, const char *what)
{
	char b[48];

	snprintf(err->msg, sizeof(err->msg), "'%s' %s", shown(s, b, sizeof(b)), what);
	return -1;
}

/* Digits of base 10 or 16 into *out, with overflow detection; *end gets the first non-digit. */
static int digits(const char *s, unsigned base, uint64_t *out, const char **end)
{
	uint64_t v = 0;
	const char *p = s;

	for (; *p; p++) {
		unsigned d;

		if (*p >= '0' && *p <= '9')
			d = (unsigned)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (unsigned)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = (unsigned)(*p - 'A' + 10);
		else
			break;
		if (v > (UINT64_MAX - d) / base)
			return -2;
		v = v * base + d;
	}
	*end = p;
	*out = v;
	return p == s ? -1 : 0;
}

int parse_u64(const char *text, bool suffixes, uint64_t *out, struct vmce_err *err)
{
	const char *end, *s = text;
	unsigned base = 10, shift = 0;
	uint64_t v;
	int rc;

	if (!*s)
		return why_fail(err, text, "is empty: expected a number");
	if (s[0] == '-')
		return why_fail(err, text, "is negative");
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		if (!*s)
			return why_fail(err, text, "has no digits after 0x");
	}
	rc = digits(s, base, &v, &end);
	if (rc == -2)
		return why_fail(err, text, "does not fit in 64 bits");
	if (rc)
		return why_fail(err, text,
				base == 16 ? "is not a hexadecimal number"
					   : "is not a number (expected decimal or 0x hex)");
	if (*end && suffixes && !end[1]) {
		switch (*end) {
		case 'k':
		case 'K':
			shift = 10;
			break;
		case 'm':
		case 'M':
			shift = 20;
			break;
		case 'g':
		case 'G':
			shift = 30;
			break;
		case 't':
		case 'T':
			shift = 40;
			break;
		default:
			return why_fail(err, text, "has an unknown suffix (expected K, M, G or T)");
		}
		if (v > (UINT64_MAX >> shift))
			return why_fail(err, text, "does not fit in 64 bits");
		v <<= shift;
	} else if (*end) {
		return why_fail(err, text,
				suffixes ? "has trailing characters (a number, optionally with "
					   "K, M, G or T)"
					 : "has trailing characters after the number");
	}
	*out = v;
	return 0;
}

int parse_hex(const char *s, uint64_t *out, struct vmce_err *err)
{
	const char *p = s, *end;
	int rc;

	if (!*s)
		return why_fail(err, s, "is empty: expected a hexadecimal value");
	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
		p += 2;
	if (!*p)
		return why_fail(err, s, "has no digits after 0x");
	if (strlen(p) > 16 && strspn(p, "0") < strlen(p) - 16)
		return why_fail(err, s, "does not fit in 64 bits");
	rc = digits(p, 16, out, &end);
	if (rc == -2)
		return why_fail(err, s, "does not fit in 64 bits");
	if (rc || *end)
		return why_fail(err, s, "is not a hexadecimal value");
	return 0;
}

int parse_uint(const char *s, unsigned long max, unsigned long *out, struct vmce_err *err)
{
	const char *end;
	uint64_t v;
	char b[48];
	int rc;

	if (!*s)
		return why_fail(err, s, "is empty: expected a number");
	if (s[0] == '-')
		return why_fail(err, s, "is negative");
	rc = digits(s, 10, &v, &end);
	if (rc == -1 || (rc == 0 && *end))
		return why_fail(err, s, "is not a decimal number");
	if (rc == -2 || v > max) {
		snprintf(err->msg, sizeof(err->msg), "'%s' is out of range (0 to %lu)",
			 shown(s, b, sizeof(b)), max);
		return -1;
	}
	*out = (unsigned long)v;
	return 0;
}

int opt_u64(const char *opt, const char *s, bool suffixes, uint64_t *out)
{
	struct vmce_err err;

	if (parse_u64(s, suffixes, out, &err))
		return usage_error("%s: %s", opt, err.msg);
	return 0;
}

int opt_hex(const char *opt, const char *s, uint64_t *out)
{
	struct vmce_err err;

	if (parse_hex(s, out, &err))
		return usage_error("%s: %s", opt, err.msg);
	return 0;
}

int opt_uint(const char *opt, const char *s, unsigned long max, unsigned long *out)
{
	struct vmce_err err;

	if (parse_uint(s, max, out, &err))
		return usage_error("%s: %s", opt, err.msg);
	return 0;
}

int bad_option(int c, char **argv)
{
	char b[48];
	const char *arg = optind > 0 ? argv[optind - 1] : "?";
	size_t n = strcspn(arg, "=");
	bool is_long = arg[0] == '-' && arg[1] == '-';

	if (n > 40)
		n = 40;
	if (c == ':') {
		if (is_long)
			return usage_error("option '%.*s' needs a value", (int)n, arg);
		return usage_error("option '-%c' needs a value", optopt);
	}
	if (is_long || !optopt)
		return usage_error("unknown option '%s'", shown(arg, b, sizeof(b)));
	return usage_error("unknown option '-%c'", optopt);
}

int parse_options(int argc, char **argv, const struct option *opts, const char *help, opt_fn *fn,
		  void *ctx)
{
	int c, rc;

	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == 'h') {
			fputs(help, stdout);
			return -1;
		}
		if (c == '?' || c == ':')
			return bad_option(c, argv);
		rc = fn(c, optarg, ctx);
		if (rc)
			return rc;
	}
	return 0;
}

const char *mcg_status_names(uint64_t v, char *buf, size_t len)
{
	static const char *const names[] = {"RIPV", "EIPV", "MCIP", "LMCES"};
	size_t o = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < 4; i++)
		if (v & (1ull << i))
			o += (size_t)snprintf(buf + o, o < len ? len - o : 0, "%s%s", o ? " " : "",
					      names[i]);
	if (v & ~0xfull)
		snprintf(buf + o, o < len ? len - o : 0, "%sreserved:0x%llx", o ? " " : "",
			 (unsigned long long)(v & ~0xfull));
	if (!buf[0])
		snprintf(buf, len, "-");
	return buf;
}
