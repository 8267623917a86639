// SPDX-License-Identifier: MIT
/*
 * The options that describe a host error (errdesc.h).
 */
#include <string.h>

#include <vmce/vmce.h>

#include "errdesc.h"
#include "vmcectl.h"

static const struct {
	int opt;
	const char *form, *name;
	enum vmce_class cls;
} classes[] = {
	{OPT_SRAO, "--srao", "srao", VMCE_CLASS_SRAO},
	{OPT_SRAR, "--srar", "srar", VMCE_CLASS_SRAR},
	{OPT_UCNA, "--ucna", "ucna", VMCE_CLASS_UCNA},
	{OPT_CE, "--ce", "ce", VMCE_CLASS_CE},
	{OPT_FATAL, "--fatal", "fatal", VMCE_CLASS_FATAL},
};

int errdesc_form(struct errdesc *d, const char *form)
{
	if (d->form)
		return usage_error("%s and %s both describe the error: give exactly one", d->form,
				   form);
	d->form = form;
	return 0;
}

static int errdesc_class(struct errdesc *d, int c)
{
	for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
		if (classes[i].opt != c)
			continue;
		d->cls_name = classes[i].name;
		d->cls = classes[i].cls;
		return errdesc_form(d, classes[i].form);
	}
	return 1;
}

int errdesc_opt(struct errdesc *d, int c, const char *arg)
{
	switch (c) {
	case OPT_STATUS:
		d->raw = true;
		d->cls = VMCE_CLASS_AUTO;
		if (errdesc_form(d, "--status"))
			return EXIT_USAGE;
		return opt_hex("--status", arg, &d->status);
	case OPT_MISC:
		d->has_misc = true;
		return opt_hex("--misc", arg, &d->misc);
	case OPT_MCG_STATUS:
		d->has_mcg_status = true;
		return opt_hex("--mcg-status", arg, &d->mcg_status);
	case OPT_GPA:
		if (d->has_gpa)
			return usage_error("--gpa is given twice");
		d->has_gpa = true;
		return opt_u64("--gpa", arg, true, &d->gpa);
	case OPT_CPU:
		d->has_cpu = true;
		return opt_uint("--cpu", arg, VMCE_MAX_VCPUS - 1, &d->cpu);
	case OPT_NO_BROADCAST:
		d->no_broadcast = true;
		return 0;
	case OPT_LOCAL:
		d->local = true;
		return 0;
	default:
		return errdesc_class(d, c);
	}
}

int errdesc_check(const struct errdesc *d)
{
	if (!d->raw && (d->has_misc || d->has_mcg_status))
		return usage_error("%s only describes a raw record: it needs --status",
				   d->has_misc ? "--misc" : "--mcg-status");
	if (!d->raw && d->cls != VMCE_CLASS_FATAL && !d->has_gpa)
		return usage_error("%s needs --gpa ADDR (the guest-physical address of the error)",
				   d->form);
	return 0;
}
