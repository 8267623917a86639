// SPDX-License-Identifier: MIT
/*
 * vmcectl profile: the text form of a guest profile, parsed, printed and checked.
 */
#include <getopt.h>
#include <string.h>

#include <vmce/vmce.h>

#include "vmcectl.h"

static const char profile_help[] =
	"Usage: vmcectl profile parse [--json] [TEXT]\n"
	"       vmcectl profile print [TEXT]\n"
	"       vmcectl profile validate TEXT\n"
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
	"\n"
	"Options:\n"
	"  --json      parse: print one JSON object\n"
	"  -h, --help  show this help\n";

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

int cmd_profile(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct vmce_profile p;
	struct vmce_err err = {{0}};
	const char *action, *text = NULL;
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
		default:
			return bad_option(c, argv);
		}
	}
	if (optind >= argc)
		return usage_error("no action given (expected parse, print or validate)");
	action = argv[optind++];
	if (strcmp(action, "parse") && strcmp(action, "print") && strcmp(action, "validate"))
		return usage_error("unknown action '%.32s' (expected parse, print or validate)",
				   action);
	if (optind < argc)
		text = argv[optind++];
	if (optind < argc)
		return usage_error("unexpected argument '%.64s' (one profile TEXT only)",
				   argv[optind]);
	if (json && strcmp(action, "parse"))
		return usage_error("--json applies to 'profile parse' only");
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
