// SPDX-License-Identifier: MIT
/*
 * vmcectl: the vmce command-line tool.  Offline subcommands (synth, decode, profile) use the
 * library directly; online ones (inject, status, events, migrate, quit) talk to a running
 * vmce-vm over its control socket.  The table below dispatches to cmd_NAME.c.
 */
#include <string.h>

#include <vmce/vmce.h>

#include "vmcectl.h"

struct subcommand {
	const char *name;
	int (*fn)(int argc, char **argv); /* cmd_NAME.c */
	bool online;			  /* talks to a running vmce-vm */
	const char *summary;
};

static const struct subcommand subcommands[] = {
	{"synth", cmd_synth, false, "print the delivery plan for a host error (no VM needed)"},
	{"decode", cmd_decode, false, "decode an MCi_STATUS (and MCG_STATUS) value"},
	{"profile", cmd_profile, false, "parse, print or validate a profile; level a host pool"},
	{"inject", cmd_inject, true, "inject a host error into a running vmce-vm"},
	{"status", cmd_status, true, "show a running vmce-vm's MCA state and counters"},
	{"events", cmd_events, true, "show (or follow) a running vmce-vm's event log"},
	{"migrate", cmd_migrate, true, "move a running vmce-vm's guest to another vmce-vm"},
	{"quit", cmd_quit, true, "stop a running vmce-vm"},
};

#define NR_SUBCOMMANDS (sizeof(subcommands) / sizeof(subcommands[0]))

static void list(FILE *f, bool online)
{
	for (size_t i = 0; i < NR_SUBCOMMANDS; i++)
		if (subcommands[i].online == online)
			fprintf(f, "  %-9s %s\n", subcommands[i].name, subcommands[i].summary);
}

static void usage(FILE *f)
{
	fputs("Usage: vmcectl [--help | --version] COMMAND [ARGS...]\n"
	      "\n"
	      "The vmce command-line tool.\n"
	      "\n"
	      "Commands that need no VM:\n",
	      f);
	list(f, false);
	fputs("\nCommands for a running 'vmce-vm --control SOCKET' (the socket: --socket PATH\n"
	      "or $VMCE_SOCKET):\n",
	      f);
	list(f, true);
	fputs("\n'vmcectl COMMAND --help' describes a command.  Exit status: 0 success,\n"
	      "1 failure, 2 usage error.  See vmcectl(1).\n",
	      f);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("vmcectl (vmce) %d.%d\n", VMCE_VERSION_MAJOR, VMCE_VERSION_MINOR);
		return EXIT_OK;
	}
	for (size_t i = 0; i < NR_SUBCOMMANDS; i++) {
		if (strcmp(argv[1], subcommands[i].name))
			continue;
		vmcectl_cmd = subcommands[i].name;
		return subcommands[i].fn(argc - 1, argv + 1);
	}
	if (argv[1][0] == '-')
		return usage_error("unknown option '%.64s' (a command comes first)", argv[1]);
	return usage_error("unknown command '%.64s' (expected synth, decode, profile, inject, "
			   "status, events, migrate or quit)",
			   argv[1]);
}
