/* SPDX-License-Identifier: MIT */
/*
 * errdesc.h - the options that describe a host error, shared by `vmcectl synth` (the plan for
 * it) and `vmcectl inject` (sent to a running vmce-vm): a class (--srao ... --fatal) or a raw
 * record (--status, --misc, --mcg-status), and where it hit (--gpa, --cpu, --no-broadcast,
 * --local).
 */
#ifndef VMCECTL_ERRDESC_H
#define VMCECTL_ERRDESC_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include <vmce/policy.h>

/* getopt_long values of the options (a command's own start elsewhere). */
enum {
	OPT_SRAO = 0x200,
	OPT_SRAR,
	OPT_UCNA,
	OPT_CE,
	OPT_FATAL,
	OPT_STATUS,
	OPT_MISC,
	OPT_MCG_STATUS,
	OPT_GPA,
	OPT_CPU,
	OPT_NO_BROADCAST,
	OPT_LOCAL,
};

/* The struct option entries of those options. */
#define ERRDESC_OPTS                                                                               \
	{"srao", no_argument, NULL, OPT_SRAO}, {"srar", no_argument, NULL, OPT_SRAR},              \
		{"ucna", no_argument, NULL, OPT_UCNA}, {"ce", no_argument, NULL, OPT_CE},          \
		{"fatal", no_argument, NULL, OPT_FATAL},                                           \
		{"status", required_argument, NULL, OPT_STATUS},                                   \
		{"misc", required_argument, NULL, OPT_MISC},                                       \
		{"mcg-status", required_argument, NULL, OPT_MCG_STATUS},                           \
		{"gpa", required_argument, NULL, OPT_GPA},                                         \
		{"cpu", required_argument, NULL, OPT_CPU},                                         \
		{"no-broadcast", no_argument, NULL, OPT_NO_BROADCAST},                             \
	{                                                                                          \
		"local", no_argument, NULL, OPT_LOCAL                                              \
	}

struct errdesc {
	const char *form; /* the option that describes the error (--srao, --status, --file...) */
	const char *cls_name; /* "srao" ... "fatal"; NULL for a raw record */
	enum vmce_class cls;  /* VMCE_CLASS_AUTO for a raw record */
	bool raw;	      /* --status */
	uint64_t status, misc, mcg_status, gpa;
	unsigned long cpu;
	bool has_misc, has_mcg_status, has_gpa, has_cpu, no_broadcast, local;
};

/* Handle option c: returns 0, an exit status (a usage error), or 1 when c is none of them. */
int errdesc_opt(struct errdesc *d, int c, const char *arg);

/* Note that `form` describes the error; a second description is a usage error. */
int errdesc_form(struct errdesc *d, const char *form);

/* After the options: --misc and --mcg-status need --status, a class (but fatal) needs --gpa.
 * Returns 0 or EXIT_USAGE after printing why. */
int errdesc_check(const struct errdesc *d);

#endif /* VMCECTL_ERRDESC_H */
