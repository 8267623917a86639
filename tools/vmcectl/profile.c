// SPDX-License-Identifier: MIT
/*
 * vmcectl profile: the text form of a guest profile, parsed, printed and checked.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <vmce/migrate.h>
#include <vmce/vmce.h>

#include "vmcectl.h"

static const char profile_help[] =
	"Usage: vmcectl profile parse [--json] [TEXT]\n"
	"       vmcectl profile print [TEXT]\n"
	"       vmcectl profile validate TEXT\n"
	"       vmcectl profile level [--want PROFILE] [--json] HOST.json...\n"
	"\n"
	"A profile is the machine-check interface a guest sees, e.g.\n"
	"intel,banks=2,ser,tes,cmci or amd,banks=4,succor.  Tokens: the vendor\n"
	"(intel or amd) first, then banks=N (1..32), report=N (the bank that carries\n"
	"errors), compat=N (read-as-zero banks kept after a migration), and the\n"
	"capabilities ser, tes, cmci, lmce (Intel), succor (AMD) and ctl.\n"
	"\n"
	"  parse     show every field, the capability list and the MCG_CAP value\n"
	"            (TEXT omitted: the default profile)\n"
	"  print     print the canonical text form (TEXT omitted: the default)\n"
	"  validate  exit 0 when TEXT is a valid profile, 1 (saying why) when not\n"
	"  level     the profile every host of a pool can back, from one JSON host\n"
	"            description per file, and which host limited which field\n"
	"\n"
	"Options:\n"
	"  --json          parse, level: print one JSON object\n"
	"  --want PROFILE  level: the profile wanted (default: all the pool allows)\n"
	"  -h, --help      show this help\n";

struct capdesc {
	uint32_t cap;
	const char *name, *text;
};

static const struct capdesc caps[] = {
	{VMCE_CAP_SER, "ser", "software error recovery (MCG_SER_P): SRAO/SRAR"},
	{VMCE_CAP_TES, "tes", "threshold-based error status (MCG_TES_P)"},
	{VMCE_CAP_CMCI, "cmci", "corrected machine-check interrupt (MCG_CMCI_P, MCi_CTL2)"},
	{VMCE_CAP_LMCE, "lmce", "local machine check (MCG_LMCE_P, MCG_EXT_CTL)"},
	{VMCE_CAP_SUCCOR, "succor", "recoverable MCA (CPUID 0x80000007 EBX bit 1)"},
	{VMCE_CAP_CTL, "ctl", "global control register (MCG_CTL_P, MCG_CTL)"},
};

static void print_parsed(const struct vmce_profile *p, const char *canon)
{
	uint64_t cap = vmce_profile_mcg_cap(p);
	static const struct {
		uint64_t bit;
		const char *name;
	} capbits[] = {{VMCE_MCG_CTL_P, "MCG_CTL_P"},	{VMCE_MCG_EXT_P, "MCG_EXT_P"},
		       {VMCE_MCG_CMCI_P, "MCG_CMCI_P"}, {VMCE_MCG_TES_P, "MCG_TES_P"},
		       {VMCE_MCG_SER_P, "MCG_SER_P"},	{VMCE_MCG_LMCE_P, "MCG_LMCE_P"}};

	printf("profile:      %s\n", canon);
	printf("vendor:       %s\n", p->vendor == VMCE_VENDOR_AMD ? "amd" : "intel");
	printf("banks:        %u (MC0..MC%u)\n", p->banks, p->banks - 1u);
	printf("report bank:  %u\n", p->report_bank);
	if (p->compat_banks > p->banks)
		printf("compat banks: %u (MC%u..MC%u read as zero, ignore writes)\n",
		       p->compat_banks, p->banks, p->compat_banks - 1u);
	else
		printf("compat banks: %u (none beyond the real banks)\n", p->compat_banks);
	printf("MCG_CAP:      0x%llx (count %u", (unsigned long long)cap,
	       (unsigned)(cap & VMCE_MCG_CAP_COUNT_MASK));
	for (size_t i = 0; i < sizeof(capbits) / sizeof(capbits[0]); i++)
		if (cap & capbits[i].bit)
			printf(" %s", capbits[i].name);
	printf(")\ncapabilities:%s\n", p->caps ? "" : " none");
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		if (p->caps & caps[i].cap)
			printf("  %-7s %s\n", caps[i].name, caps[i].text);
}

static void print_parsed_json(const struct vmce_profile *p, const char *canon)
{
	bool first = true;

	printf("{\"profile\":");
	json_put_string(stdout, canon);
	printf(",\"vendor\":\"%s\",\"banks\":%u,\"report_bank\":%u,\"compat_banks\":%u,"
	       "\"mcg_cap\":\"0x%llx\",\"caps\":[",
	       p->vendor == VMCE_VENDOR_AMD ? "amd" : "intel", p->banks, p->report_bank,
	       p->compat_banks, (unsigned long long)vmce_profile_mcg_cap(p));
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		if (!(p->caps & caps[i].cap))
			continue;
		printf("%s\"%s\"", first ? "" : ",", caps[i].name);
		first = false;
	}
	printf("]}\n");
}

/* Read a host description file: at most VMCE_HOST_DESC_MAX_LEN bytes, NUL-terminated. */
static char *read_host_file(const char *path)
{
	char *buf = malloc(VMCE_HOST_DESC_MAX_LEN + 2);
	FILE *f;
	size_t n;

	if (!buf) {
		fail("%.200s: out of memory", path);
		return NULL;
	}
	f = fopen(path, "rb");
	if (!f) {
		fail("%.200s: cannot open: %s", path, strerror(errno));
		free(buf);
		return NULL;
	}
	n = fread(buf, 1, VMCE_HOST_DESC_MAX_LEN + 1, f);
	if (ferror(f)) {
		fail("%.200s: cannot read: %s", path, strerror(errno));
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	if (n > VMCE_HOST_DESC_MAX_LEN) {
		fail("%.200s: longer than %d bytes (a host description is one small JSON object)",
		     path, VMCE_HOST_DESC_MAX_LEN);
		free(buf);
		return NULL;
	}
	if (memchr(buf, '\0', n)) {
		fail("%.200s: contains a NUL byte (not a JSON text)", path);
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	return buf;
}

static int profile_level(char **files, size_t n, const char *want_text, bool json)
{
	struct vmce_profile want;
	struct vmce_level_result *res;
	struct vmce_host_desc desc;
	struct vmce_err err = {{0}};
	char **texts;
	char *out = NULL;
	int rc = EXIT_FAIL, len;

	if (n > VMCE_LEVEL_MAX_HOSTS)
		return usage_error("%zu host files (at most %d)", n, VMCE_LEVEL_MAX_HOSTS);
	if (want_text) {
		if (vmce_profile_parse(want_text, &want, &err) ||
		    vmce_profile_validate(&want, &err))
			return usage_error("--want: invalid profile '%.64s': %s", want_text,
					   err.msg);
	}
	texts = calloc(n, sizeof(*texts));
	res = calloc(1, sizeof(*res));
	if (!texts || !res) {
		free(texts);
		free(res);
		return fail("out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		texts[i] = read_host_file(files[i]);
		if (!texts[i])
			goto out;
		/* Check each file on its own so that the message names it. */
		if (vmce_host_desc_parse(texts[i], strlen(texts[i]), &desc, &err)) {
			fail("%.200s: %s", files[i], err.msg);
			goto out;
		}
	}
	if (vmce_level_hosts((const char *const *)texts, n, want_text ? &want : NULL, res, &err)) {
		fail("no profile fits the pool: %s", err.msg);
		goto out;
	}
	len = json ? vmce_level_format_json(res, NULL, 0) : vmce_level_format(res, NULL, 0);
	out = malloc((size_t)len + 1);
	if (!out) {
		fail("out of memory");
		goto out;
	}
	if (json)
		vmce_level_format_json(res, out, (size_t)len + 1);
	else
		vmce_level_format(res, out, (size_t)len + 1);
	fputs(out, stdout);
	if (json)
		putchar('\n');
	rc = EXIT_OK;
out:
	for (size_t i = 0; i < n; i++)
		free(texts[i]);
	free(texts);
	free(res);
	free(out);
	return rc;
}

int cmd_profile(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"want", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct vmce_profile p;
	struct vmce_err err = {{0}};
	const char *action, *text = NULL, *want = NULL;
	char canon[256];
	bool json = false;
	int c;

	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(profile_help, stdout);
			return EXIT_OK;
		case 'j':
			json = true;
			break;
		case 'w':
			want = optarg;
			break;
		default:
			return bad_option(c, argv);
		}
	}
	if (optind >= argc)
		return usage_error("no action given (expected parse, print, validate or level)");
	action = argv[optind++];
	if (!strcmp(action, "level")) {
		if (optind >= argc)
			return usage_error("level needs at least one HOST.json file");
		return profile_level(argv + optind, (size_t)(argc - optind), want, json);
	}
	if (want)
		return usage_error("--want applies to 'profile level' only");
	if (strcmp(action, "parse") && strcmp(action, "print") && strcmp(action, "validate"))
		return usage_error("unknown action '%.32s' (expected parse, print, validate or "
				   "level)",
				   action);
	if (optind < argc)
		text = argv[optind++];
	if (optind < argc)
		return usage_error("unexpected argument '%.64s' (one profile TEXT only)",
				   argv[optind]);
	if (json && strcmp(action, "parse"))
		return usage_error("--json applies to 'profile parse' and 'profile level' only");
	if (!text && !strcmp(action, "validate"))
		return usage_error("validate needs a profile TEXT");
	if (text) {
		if (vmce_profile_parse(text, &p, &err))
			return fail("invalid profile '%.64s': %s", text, err.msg);
	} else {
		vmce_profile_default(&p);
	}
	if (vmce_profile_validate(&p, &err))
		return fail("invalid profile: %s", err.msg);
	vmce_profile_format(&p, canon, sizeof(canon));
	if (!strcmp(action, "print"))
		puts(canon);
	else if (!strcmp(action, "validate"))
		printf("valid: %s\n", canon);
	else if (json)
		print_parsed_json(&p, canon);
	else
		print_parsed(&p, canon);
	return EXIT_OK;
}
