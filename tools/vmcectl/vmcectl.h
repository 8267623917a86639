/* SPDX-License-Identifier: MIT */
/*
 * vmcectl.h - the pieces the vmcectl subcommands share: argument parsing helpers, error
 * reporting with the conventional exit statuses, and the subcommand entry points.
 */
#ifndef VMCECTL_H
#define VMCECTL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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
 * Number parsing.  Each returns 0, or -1 after filling why[] with what was wrong.
 *  parse_u64:  "0x..." hexadecimal or decimal; with suffixes, a K/M/G/T suffix (binary units).
 *  parse_hex:  hexadecimal with or without "0x".
 *  parse_uint: decimal, 0..max.
 */
int parse_u64(const char *s, bool suffixes, uint64_t *out, char *why, size_t len);
int parse_hex(const char *s, uint64_t *out, char *why, size_t len);
int parse_uint(const char *s, unsigned long max, unsigned long *out, char *why, size_t len);

/* Option-argument wrappers: on error they print a usage error naming the option. */
int opt_u64(const char *opt, const char *s, bool suffixes, uint64_t *out);
int opt_hex(const char *opt, const char *s, uint64_t *out);
int opt_uint(const char *opt, const char *s, unsigned long max, unsigned long *out);

/* Handle getopt_long's '?' and ':' returns (opterr must be 0): prints a usage error. */
int bad_option(int c, char **argv);

/* Append s to f as a JSON string (quoted, escaped). */
void json_put_string(FILE *f, const char *s);

/* Names of the bits set in MCG_STATUS, e.g. "MCIP RIPV" ("-" when none). */
const char *mcg_status_names(uint64_t v, char *buf, size_t len);

/* One line about an MCi_STATUS: its set bits and MCACOD, e.g. "VAL UC EN ..., MCACOD 0x134
 * DCACHEL0_DRD_ERR" (decode.c). */
const char *status_summary(uint64_t status, int vendor, char *buf, size_t len);

/* Subcommands: each gets argv with argv[0] = the subcommand name, returns an exit status. */
int cmd_synth(int argc, char **argv);
int cmd_decode(int argc, char **argv);
int cmd_profile(int argc, char **argv);
int cmd_inject(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_quit(int argc, char **argv);
int cmd_migrate(int argc, char **argv);

#endif /* VMCECTL_H */
