// SPDX-License-Identifier: MIT
/*
 * vmcectl profile: the text form of a guest profile, parsed, printed and checked.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <vmce/vmce.h>

#include "level.h"
#include "vmcectl.h"

static const char profile_help[] =
	"Usage: vmcectl profile parse [--json] [TEXT]\n"
	"       vmcectl profile print [TEXT]\n"
	"       vmcectl profile validate TEXT\n"
	"       vmcectl profile level [--want PROFILE] [--json] [--qemu] HOST.json...\n"
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
	"  --qemu          level: the hosts are QEMU's (query-vmce-host replies); also\n"
	"                  print the -object vmce option for the pool (without --want:\n"
	"                  vmce's default profile, intel,banks=2,ser,tes,cmci or\n"
	"                  amd,banks=2,succor, as far as every host backs it)\n"
	"  -h, --help      show this help\n";

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
	for (size_t i = 0; i < NR_CAPS; i++)
		if (p->caps & capdescs[i].cap)
			printf("  %-7s %s\n", capdescs[i].name, capdescs[i].text);
}

static int print_parsed_json(const struct vmce_profile *p, const char *canon)
{
	char mcg_cap[24];
	json_t *caps_arr = json_array(), *j;
	char *out;

	for (size_t i = 0; caps_arr && i < NR_CAPS; i++)
		if (p->caps & capdescs[i].cap)
			json_array_append_new(caps_arr, json_string(capdescs[i].name));
	snprintf(mcg_cap, sizeof(mcg_cap), "0x%llx", (unsigned long long)vmce_profile_mcg_cap(p));
	j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:o}", "profile", canon, "vendor",
		      p->vendor == VMCE_VENDOR_AMD ? "amd" : "intel", "banks", (json_int_t)p->banks,
		      "report_bank", (json_int_t)p->report_bank, "compat_banks",
		      (json_int_t)p->compat_banks, "mcg_cap", mcg_cap, "caps", caps_arr);
	out = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!out)
		return fail("out of memory");
	puts(out);
	free(out);
	return EXIT_OK;
}

/* parse, print or validate a profile TEXT (NULL: the default profile). */
static int profile_show(const char *action, const char *text, bool json)
{
	struct vmce_err err = {{0}};
	struct vmce_profile p;
	char canon[256];

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
		return print_parsed_json(&p, canon);
	else
		print_parsed(&p, canon);
	return EXIT_OK;
}

struct profile_args {
	const char *want;
	bool json;
	bool qemu;
};

static int profile_opt(int c, const char *arg, void *ctx)
{
	struct profile_args *a = ctx;

	if (c == 'j')
		a->json = true;
	else if (c == 'q')
		a->qemu = true;
	else
		a->want = arg;
	return 0;
}

int cmd_profile(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"want", required_argument, NULL, 'w'},
		{"qemu", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct profile_args a = {NULL, false, false};
	const char *action, *text = NULL;
	int rc = parse_options(argc, argv, opts, profile_help, profile_opt, &a);

	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	if (optind >= argc)
		return usage_error("no action given (expected parse, print, validate or level)");
	action = argv[optind++];
	if (!strcmp(action, "level")) {
		if (optind >= argc)
			return usage_error("level needs at least one HOST.json file");
		return profile_level(argv + optind, (size_t)(argc - optind), a.want,
				     a.json ? LEVEL_JSON : LEVEL_TEXT,
				     a.qemu ? HOST_DESC_QEMU : HOST_DESC_VMCE);
	}
	if (a.want)
		return usage_error("--want applies to 'profile level' only");
	if (a.qemu)
		return usage_error("--qemu applies to 'profile level' only");
	if (strcmp(action, "parse") && strcmp(action, "print") && strcmp(action, "validate"))
		return usage_error("unknown action '%.32s' (expected parse, print, validate or "
				   "level)",
				   action);
	if (optind < argc)
		text = argv[optind++];
	if (optind < argc)
		return usage_error("unexpected argument '%.64s' (one profile TEXT only)",
				   argv[optind]);
	if (a.json && strcmp(action, "parse"))
		return usage_error("--json applies to 'profile parse' and 'profile level' only");
	if (!text && !strcmp(action, "validate"))
		return usage_error("validate needs a profile TEXT");
	return profile_show(action, text, a.json);
}
