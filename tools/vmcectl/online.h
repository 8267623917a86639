/* SPDX-License-Identifier: MIT */
/*
 * online.h - what the online subcommands (inject, status, events, migrate, quit) share: their
 * common options and one request with its response (docs/control-protocol.md).
 */
#ifndef VMCECTL_ONLINE_H
#define VMCECTL_ONLINE_H

#include <getopt.h>
#include <stdbool.h>

#include <jansson.h>

#include "client.h"
#include "control_proto.h"

/* Help lines of the common options. */
#define HELP_SOCKET                                                                                \
	"  --socket PATH   vmce-vm's control socket (default: $VMCE_SOCKET)\n"                     \
	"  --timeout S     seconds to wait for a response (default 10; 0: forever)\n"
#define HELP_JSON   "  --json          print vmce-vm's JSON response instead of a table\n"
#define HELP_HELP   "  -h, --help      show this help\n"
#define COMMON_HELP HELP_SOCKET HELP_JSON HELP_HELP

/* getopt_long values of the common options; a command's own start at OPT_CMD. */
enum { OPT_SOCKET = 0x100, OPT_TIMEOUT, OPT_JSON, OPT_CMD = 0x180 };

/* The struct option entries of the common options (--help included). */
#define ONLINE_OPTS                                                                                \
	{"socket", required_argument, NULL, OPT_SOCKET},                                           \
		{"timeout", required_argument, NULL, OPT_TIMEOUT},                                 \
		{"json", no_argument, NULL, OPT_JSON},                                             \
	{                                                                                          \
		"help", no_argument, NULL, 'h'                                                     \
	}

struct online {
	const char *socket;
	unsigned long timeout; /* seconds; 0: forever */
	bool json;
};

/* Handle common option c: returns 0, an exit status, or 1 when c is none of them. */
int online_opt(struct online *o, int c, const char *arg);

/* Connect to the socket the options name.  Returns 0 or an exit status after printing why. */
int online_connect(struct client *cl, const struct online *o);

/* A new request {"cmd": cmd} (NULL when out of memory). */
json_t *online_req(const char *cmd);

/* Print a successful response as a table. */
typedef void online_print_fn(const json_t *resp, void *ctx);

/*
 * Send req (consumed) on a new connection and print the response: as received with --json,
 * else with print.  An ok:false response prints vmce-vm's error.  Returns an exit status.
 */
int online_request(const struct online *o, json_t *req, online_print_fn *print, void *ctx);

/* A command with the common options only and a request {"cmd": cmd} (status, quit). */
int online_simple(int argc, char **argv, const char *cmd, const char *help, online_print_fn *print);

#endif /* VMCECTL_ONLINE_H */
