// SPDX-License-Identifier: MIT
/*
 * vmcectl synth: the delivery plan vmce's policy makes for a host error, without a VM.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <vmce/policy.h>
#include <vmce/vmce.h>

#include "errdesc.h"
#include "vmcectl.h"

#define SYNTH_MAX_MAPS	 4096
#define SYNTH_HVA_BASE	 0x100000000000ull /* host-virtual twin of each range (gpa + base) */
#define SYNTH_DEF_VCPUS	 2
#define SYNTH_JSON_FIRST 4096

static const char synth_help[] =
	"Usage: vmcectl synth [OPTIONS] CLASS --gpa ADDR\n"
	"\n"
	"Print the delivery plan vmce's policy makes for a host memory error: what\n"
	"each vCPU of a VM with the given profile would see.  No VM is started.\n"
	"\n"
	"The error (exactly one class):\n"
	"  --srao | --srar | --ucna | --ce | --fatal\n"
	"                     an error of that class\n"
	"  --status HEX       a raw MCi_STATUS; the class is derived from its bits\n"
	"    --misc HEX         MCi_MISC of the raw record (default 0)\n"
	"    --mcg-status HEX   MCG_STATUS of the raw record (default 0)\n"
	"  --gpa ADDR         guest-physical address of the error (required, except\n"
	"                     with --fatal); decimal or 0x hex, K/M/G/T suffixes\n"
	"  --cpu N            reporting/consuming vCPU (default 0)\n"
	"  --no-broadcast     deliver to that vCPU only (mce-inject NOBROADCAST)\n"
	"  --local            the host saw it as a local machine check (LMCE)\n"
	"\n"
	"The VM model:\n"
	"  --profile TEXT     guest profile (default intel,banks=2,ser,tes,cmci)\n"
	"  --vcpus N          number of vCPUs, 1 to 1024 (default 2)\n"
	"  --map GPA:SIZE     a guest memory range; repeatable (default 0:4G)\n"
	"  --lmce             the guest enabled LMCE (MCG_EXT_CTL.LMCE_EN on every\n"
	"                     vCPU); needs a profile with lmce\n"
	"  --cmci             the guest enabled CMCI (MCi_CTL2.CMCI_EN in every bank\n"
	"                     of every vCPU), as Linux does; needs a profile with cmci\n"
	"\n"
	"Output:\n"
	"  --json             the plan as one line of JSON (vmce_plan_format_json())\n"
	"  -h, --help         show this help\n"
	"\n"
	"Exit status: 0 whatever the verdict (forward, drop or fatal), 1 when the\n"
	"policy rejects the description, 2 for a usage error.\n";

enum { OPT_PROFILE = 0x100, OPT_VCPUS, OPT_MAP, OPT_LMCE, OPT_CMCI, OPT_JSON };

static const struct option synth_opts[] = {
	{"profile", required_argument, NULL, OPT_PROFILE},
	{"vcpus", required_argument, NULL, OPT_VCPUS},
	{"map", required_argument, NULL, OPT_MAP},
	ERRDESC_OPTS,
	{"lmce", no_argument, NULL, OPT_LMCE},
	{"cmci", no_argument, NULL, OPT_CMCI},
	{"json", no_argument, NULL, OPT_JSON},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

struct range {
	uint64_t gpa, size;
};

struct synth_args {
	const char *profile_text;
	unsigned long vcpus;
	struct range *maps;
	size_t nr_maps;
	struct errdesc d;
	bool lmce, cmci, json;
};

static int parse_map(struct synth_args *a, const char *arg)
{
	const char *colon = strchr(arg, ':');
	struct vmce_err err;
	char gpa_text[64];
	struct range r;
	size_t n;

	if (!colon)
		return usage_error("--map '%.64s': expected GPA:SIZE (e.g. 0:4G)", arg);
	n = (size_t)(colon - arg);
	if (n >= sizeof(gpa_text))
		return usage_error("--map '%.64s': the address is too long", arg);
	memcpy(gpa_text, arg, n);
	gpa_text[n] = '\0';
	if (parse_u64(gpa_text, true, &r.gpa, &err))
		return usage_error("--map '%.64s': address %s", arg, err.msg);
	if (parse_u64(colon + 1, true, &r.size, &err))
		return usage_error("--map '%.64s': size %s", arg, err.msg);
	if (r.size == 0)
		return usage_error("--map '%.64s': the size is zero", arg);
	if (r.gpa + r.size < r.gpa || r.gpa + r.size > SYNTH_HVA_BASE)
		return usage_error("--map '%.64s': the range ends beyond 0x%llx", arg,
				   (unsigned long long)SYNTH_HVA_BASE);
	if (a->nr_maps == SYNTH_MAX_MAPS)
		return usage_error("--map: more than %d ranges", SYNTH_MAX_MAPS);
	a->maps[a->nr_maps++] = r;
	return 0;
}

static int synth_opt(int c, const char *arg, void *ctx)
{
	struct synth_args *a = ctx;
	int rc = 0;

	switch (c) {
	case OPT_PROFILE:
		a->profile_text = arg;
		break;
	case OPT_VCPUS:
		rc = opt_uint("--vcpus", arg, VMCE_MAX_VCPUS, &a->vcpus);
		if (!rc && a->vcpus == 0)
			rc = usage_error("--vcpus: a VM needs at least one vCPU");
		break;
	case OPT_MAP:
		rc = parse_map(a, arg);
		break;
	case OPT_LMCE:
		a->lmce = true;
		break;
	case OPT_CMCI:
		a->cmci = true;
		break;
	case OPT_JSON:
		a->json = true;
		break;
	default:
		rc = errdesc_opt(&a->d, c, arg);
		break;
	}
	return rc;
}

static int parse_synth_args(int argc, char **argv, struct synth_args *a)
{
	int rc = parse_options(argc, argv, synth_opts, synth_help, synth_opt, a);

	if (rc)
		return rc;
	if (optind < argc)
		return usage_error("unexpected argument '%.64s'", argv[optind]);
	if (!a->d.form)
		return usage_error("no error given: use one of --srao, --srar, --ucna, --ce, "
				   "--fatal or --status HEX");
	rc = errdesc_check(&a->d);
	if (rc)
		return rc;
	if (a->d.cpu >= a->vcpus)
		return usage_error("--cpu %lu: the VM has %lu vCPU%s (0 to %lu)", a->d.cpu,
				   a->vcpus, a->vcpus == 1 ? "" : "s", a->vcpus - 1);
	return 0;
}

/* Create the VM model the plan is made for: profile, vCPUs, memory map, guest enables. */
static int build_vm(const struct synth_args *a, struct vmce_vm **out)
{
	struct vmce_vm_config cfg;
	struct vmce_vm *vm;
	struct vmce_err err = {{0}};
	char ptext[128];
	int rc;

	vmce_vm_config_default(&cfg);
	if (a->profile_text && vmce_profile_parse(a->profile_text, &cfg.profile, &err))
		return usage_error("--profile '%.64s': %s", a->profile_text, err.msg);
	vmce_profile_format(&cfg.profile, ptext, sizeof(ptext));
	if (a->lmce && !(cfg.profile.caps & VMCE_CAP_LMCE))
		return usage_error("--lmce needs a profile with lmce (the profile is %s)", ptext);
	if (a->cmci && !(cfg.profile.caps & VMCE_CAP_CMCI))
		return usage_error("--cmci needs a profile with cmci (the profile is %s)", ptext);
	cfg.nr_vcpus = (unsigned)a->vcpus;
	rc = vmce_vm_create(&cfg, &vm, &err);
	if (rc)
		return fail("cannot create the VM model: %s", err.msg);
	for (size_t i = 0; i < a->nr_maps; i++) {
		const struct range *r = &a->maps[i];

		if (vmce_memmap_add(vm, r->gpa, r->size, SYNTH_HVA_BASE + r->gpa, VMCE_NO_HPA,
				    &err)) {
			vmce_vm_destroy(vm);
			return usage_error("--map 0x%llx:0x%llx: %s", (unsigned long long)r->gpa,
					   (unsigned long long)r->size, err.msg);
		}
	}
	for (unsigned v = 0; v < cfg.nr_vcpus; v++) {
		struct vmce_vcpu *vcpu = vmce_vm_vcpu(vm, v);
		enum vmce_msr_result mr = VMCE_MSR_OK;

		if (a->lmce)
			mr = vmce_host_wrmsr(vcpu, VMCE_MSR_MCG_EXT_CTL, VMCE_MCG_EXT_CTL_LMCE_EN);
		for (unsigned b = 0; a->cmci && mr == VMCE_MSR_OK && b < cfg.profile.banks; b++)
			mr = vmce_host_wrmsr(vcpu, VMCE_MSR_MCi_CTL2(b),
					     VMCE_MCI_CTL2_CMCI_EN | 1u);
		if (mr != VMCE_MSR_OK) {
			vmce_vm_destroy(vm);
			return fail("vCPU %u refused the guest's %s enable", v,
				    a->lmce ? "LMCE" : "CMCI");
		}
	}
	*out = vm;
	return 0;
}

static const char *signal_text(const struct vmce_vcpu_record *r)
{
	switch (r->signal) {
	case VMCE_SIGNAL_MC:
		return "#MC";
	case VMCE_SIGNAL_CMCI:
		return "CMCI";
	default:
		return r->bank >= 0 ? "load" : "none";
	}
}

static void print_table(const struct vmce_vm *vm, const struct vmce_plan *plan)
{
	const struct vmce_profile *p = vmce_vm_profile(vm);
	char ptext[128], mcg[64], bits[160];

	vmce_profile_format(p, ptext, sizeof(ptext));
	printf("verdict:  %s\n", vmce_verdict_name(plan->verdict));
	printf("class:    %s\n", vmce_class_name(plan->cls));
	printf("reason:   %s\n", plan->reason[0] ? plan->reason : "-");
	if (plan->has_gpa)
		printf("gpa:      0x%llx\n", (unsigned long long)plan->gpa);
	else
		printf("gpa:      none\n");
	printf("profile:  %s (MCG_CAP 0x%llx), %u vCPU%s\n", ptext,
	       (unsigned long long)vmce_profile_mcg_cap(p), plan->nr_vcpus,
	       plan->nr_vcpus == 1 ? "" : "s");
	if (plan->verdict == VMCE_VERDICT_FORWARD) {
		printf("target:   vCPU %u, %s\n", plan->target,
		       plan->lmce	 ? "local machine check (LMCES), no broadcast"
		       : plan->broadcast ? "broadcast: every other vCPU gets MCG_STATUS only"
					 : "no broadcast");
		if (plan->record.bank >= 0)
			printf("status:   %s\n",
			       status_summary(plan->record.status, p->vendor, bits, sizeof(bits)));
	}
	printf("\n%-5s %-6s %-24s %-4s %-18s %-18s %s\n", "VCPU", "SIGNAL", "MCG_STATUS", "BANK",
	       "STATUS", "ADDR", "MISC");
	for (unsigned v = 0; v < plan->nr_vcpus; v++) {
		struct vmce_vcpu_record r;
		char mcgv[40];

		if (!vmce_plan_vcpu(plan, v, &r)) {
			printf("%-5u %-6s %-24s %-4s %-18s %-18s %s\n", v, "none", "-", "-", "-",
			       "-", "-");
			continue;
		}
		if (r.signal == VMCE_SIGNAL_MC)
			snprintf(mcgv, sizeof(mcgv), "0x%llx %s", (unsigned long long)r.mcg_status,
				 mcg_status_names(r.mcg_status, mcg, sizeof(mcg)));
		else
			snprintf(mcgv, sizeof(mcgv), "-");
		if (r.bank < 0) {
			printf("%-5u %-6s %-24s %-4s %-18s %-18s %s\n", v, signal_text(&r), mcgv,
			       "-", "-", "-", "-");
			continue;
		}
		printf("%-5u %-6s %-24s %-4d 0x%016llx 0x%016llx 0x%llx\n", v, signal_text(&r),
		       mcgv, r.bank, (unsigned long long)r.status, (unsigned long long)r.addr,
		       (unsigned long long)r.misc);
	}
}

static int print_json(const struct vmce_plan *plan)
{
	size_t len = SYNTH_JSON_FIRST;
	char *buf = NULL;
	int n;

	for (int tries = 0; tries < 2; tries++) {
		char *nb = realloc(buf, len);

		if (!nb) {
			free(buf);
			return fail("out of memory");
		}
		buf = nb;
		n = vmce_plan_format_json(plan, buf, len);
		if (n < 0) {
			free(buf);
			return fail("cannot format the plan as JSON (error %d)", n);
		}
		if ((size_t)n < len) {
			puts(buf);
			free(buf);
			return EXIT_OK;
		}
		len = (size_t)n + 1;
	}
	free(buf);
	return fail("the plan's JSON did not fit in %zu bytes", len);
}

int cmd_synth(int argc, char **argv)
{
	struct synth_args a = {.vcpus = SYNTH_DEF_VCPUS};
	struct vmce_host_error e;
	struct vmce_err err = {{0}};
	struct vmce_plan plan;
	struct vmce_vm *vm = NULL;
	int rc;

	a.maps = calloc(SYNTH_MAX_MAPS, sizeof(*a.maps));
	if (!a.maps)
		return fail("out of memory");
	rc = parse_synth_args(argc, argv, &a);
	if (rc) {
		free(a.maps);
		return rc < 0 ? EXIT_OK : rc;
	}
	if (a.nr_maps == 0) {
		a.maps[0] = (struct range){0, 4ull << 30};
		a.nr_maps = 1;
	}
	rc = build_vm(&a, &vm);
	free(a.maps);
	if (rc)
		return rc;

	vmce_host_error_init(&e);
	e.origin = VMCE_ORIGIN_INJECT;
	e.cls = a.d.cls;
	e.addr_kind = a.d.has_gpa ? VMCE_ADDR_GPA : VMCE_ADDR_NONE;
	e.addr = a.d.gpa;
	e.vcpu = (int)a.d.cpu;
	e.no_broadcast = a.d.no_broadcast;
	e.local = a.d.local;
	if (a.d.raw) {
		e.status = a.d.status;
		e.misc = a.d.misc;
		e.mcg_status = a.d.mcg_status;
	}
	memset(&plan, 0, sizeof(plan));
	rc = vmce_plan_error(vm, &e, &plan, &err);
	if (rc) {
		rc = fail("the policy rejected the error: %s",
			  err.msg[0] ? err.msg : strerror(-rc));
	} else if (a.json) {
		rc = print_json(&plan);
	} else {
		print_table(vm, &plan);
		rc = EXIT_OK;
	}
	vmce_vm_destroy(vm);
	return rc;
}
