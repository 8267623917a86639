/* SPDX-License-Identifier: MIT */
/*
 * vmcectl.h - the pieces the vmcectl subcommands share (util.c): argument parsing helpers, error
 * reporting with the conventional exit statuses, and the subcommand entry points.
 *
 * Layout: main.c dispatches through its table of subcommands to cmd_NAME.c, one file per
 * subcommand.  The offline ones (synth, decode, profile) call the library; the online ones
 * (inject, status, events, migrate, quit) share online.[ch] (their common options, one
 * request and its response) over client.[ch] (the control socket).  errdesc.[ch] holds the
 * options that describe a host error (synth and inject), hostdesc.[ch] and level.[ch] the
 * pool levelling of `profile level`, jsonutil.[ch] what vmcectl adds to Jansson.
 *
 * Errors, the programs' one style (vmm/vmm.h): a helper that can fail returns 0 (or a value)
 * on success and -1 / a negative errno / NULL on failure, and fills a caller-provided
 * `struct vmce_err` with one sentence saying why.  Only the subcommands (cmd_*.c, and the
 * option helpers they call) turn a failure into a message on stderr, "vmcectl CMD: ...",
 * and an exit status: EXIT_FAIL, or EXIT_USAGE for a wrong command line.
 */
#ifndef VMCECTL_H
#define VMCECTL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <vmce/vmce.h>

/* Exit statuses. */
#define EXIT_OK	   0
#define EXIT_FAIL  1 /* the command ran and failed (or found the input invalid) */
#define EXIT_USAGE 2 /* the command line was wrong */

/* The subcommand being run, for messages ("vmcectl synth: ..."). */
extern const char *vmcectl_cmd;

/* Print "vmcectl CMD: <message>" on stderr; the return value is EXIT_FAIL. */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print "vmcectl CMD: <message>" and a pointer to --help on stderr; returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Number parsing.  Each returns 0, or -1 after filling err with what was wrong.
 *  parse_u64:  "0x..." hexadecimal or decimal; with suffixes, a K/M/G/T suffix (binary units).
 *  parse_hex:  hexadecimal with or without "0x".
 *  parse_uint: decimal, 0..max.
 */
int parse_u64(const char *s, bool suffixes, uint64_t *out, struct vmce_err *err);
int parse_hex(const char *s, uint64_t *out, struct vmce_err *err);
int parse_uint(const char *s, unsigned long max, unsigned long *out, struct vmce_err *err);

/* Option-argument wrappers: on error they print a usage error naming the option. */
int opt_u64(const char *opt, const char *s, bool suffixes, uint64_t *out);
int opt_hex(const char *opt, const char *s, uint64_t *out);
int opt_uint(const char *opt, const char *s, unsigned long max, unsigned long *out);

/* Handle getopt_long's '?' and ':' returns (opterr must be 0): prints a usage error. */
int bad_option(int c, char **argv);

struct option;

/* A command's handler of one of its options (c: getopt_long's value, arg: optarg): returns 0,
 * or an exit status after printing why. */
typedef int opt_fn(int c, const char *arg, void *ctx);

/*
 * Parse a command's options (opts ends with {NULL, 0, NULL, 0} and has {"help", ..., 'h'}):
 * -h/--help prints help; an unknown option or a missing value is a usage error; every other
 * option goes to fn.  Returns 0 (optind is then the first operand), -1 after printing help (the
 * command exits 0), or an exit status.
 */
int parse_options(int argc, char **argv, const struct option *opts, const char *help, opt_fn *fn,
		  void *ctx);

/* The profile capabilities (VMCE_CAP_*): name, meaning, and which vendor has them. */
struct capdesc {
	uint32_t cap;
	const char *name, *text;
	bool intel, amd;
};

#define NR_CAPS 6
extern const struct capdesc capdescs[NR_CAPS];

/* Names of the bits set in MCG_STATUS, e.g. "MCIP RIPV" ("-" when none). */
const char *mcg_status_names(uint64_t v, char *buf, size_t len);

/* One line about an MCi_STATUS: its set bits and MCACOD, e.g. "VAL UC EN ..., MCACOD 0x134
 * DCACHEL0_DRD_ERR" (decode.c). */
const char *status_summary(uint64_t status, int vendor, char *buf, size_t len);

/* Subcommands (cmd_NAME.c): each gets argv with argv[0] = the subcommand name, returns an exit
 * status.  main.c's table lists them. */
int cmd_synth(int argc, char **argv);
int cmd_decode(int argc, char **argv);
int cmd_profile(int argc, char **argv);
int cmd_inject(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_quit(int argc, char **argv);
int cmd_migrate(int argc, char **argv);

#endif /* VMCECTL_H */
