// SPDX-License-Identifier: MIT
/*
 * vmcectl quit: stop a running vmce-vm (docs/control-protocol.md, "quit").
 */
#include "online.h"
#include "vmcectl.h"

static const char quit_help[] = "Usage: vmcectl quit [OPTIONS]\n"
				"\n"
				"Stop a running vmce-vm (it exits with status 0).\n"
				"\n"
				"Options:\n" COMMON_HELP;

static void print_quit(const json_t *r, void *ctx)
{
	(void)r;
	(void)ctx;
	printf("vmce-vm is stopping\n");
}

int cmd_quit(int argc, char **argv)
{
	return online_simple(argc, argv, CTL_CMD_QUIT, quit_help, print_quit);
}
