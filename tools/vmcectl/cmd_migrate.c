// SPDX-License-Identifier: MIT
/*
 * vmcectl migrate: move a running vmce-vm's guest to another vmce-vm (docs/control-protocol.md,
 * "migrate").
 */
#include <string.h>

#include "jsonutil.h"
#include "online.h"
#include "vmcectl.h"

#define MIGRATE_DEF_TIMEOUT 120 /* seconds: a migration copies the guest's memory */

static const char migrate_help[] =
	"Usage: vmcectl migrate --to ADDR [OPTIONS]\n"
	"\n"
	"Move the running guest to a 'vmce-vm --incoming ADDR' (stop and copy): its\n"
	"memory (poisoned pages stay poisoned), vCPU state and vmce state.  On success\n"
	"the source vmce-vm exits 0; on any failure the guest keeps running at the\n"
	"source and the reason is printed.\n"
	"\n"
	"Options:\n"
	"  --to ADDR         the destination: a UNIX socket path or a loopback\n"
	"                    HOST:PORT (127.0.0.1:4444, localhost:4444, [::1]:4444)\n"
	"  --abort-on-error  cancel the migration when an error is forwarded while it\n"
	"                    runs (default: send the vmce state again)\n"
	"  --socket PATH     vmce-vm's control socket (default: $VMCE_SOCKET)\n"
	"  --timeout S       seconds to wait for the result (default 120; 0: forever)\n" HELP_JSON
		HELP_HELP;

enum { OPT_TO = OPT_CMD, OPT_ABORT_ON_ERROR };

struct migrate_args {
	struct online o;
	const char *to;
	bool abort_on_error;
};

static int migrate_opt(int c, const char *arg, void *ctx)
{
	struct migrate_args *a = ctx;

	if (c == OPT_TO)
		a->to = arg;
	else if (c == OPT_ABORT_ON_ERROR)
		a->abort_on_error = true;
	else
		return online_opt(&a->o, c, arg);
	return 0;
}

static void print_migrate(const json_t *resp, void *ctx)
{
	const struct migrate_args *a = ctx;
	uint64_t bytes = 0, skipped = 0, resends = 0;

	jget_u64(resp, "bytes", &bytes);
	jget_u64(resp, "pages_skipped", &skipped);
	jget_u64(resp, "resends", &resends);
	printf("migrated to %s: %llu bytes, %llu poisoned page(s) skipped, %llu resend(s)\n", a->to,
	       (unsigned long long)bytes, (unsigned long long)skipped, (unsigned long long)resends);
}

int cmd_migrate(int argc, char **argv)
{
	static const struct option opts[] = {
		ONLINE_OPTS,
		{"to", required_argument, NULL, OPT_TO},
		{"abort-on-error", no_argument, NULL, OPT_ABORT_ON_ERROR},
		{NULL, 0, NULL, 0},
	};
	struct migrate_args a = {.o = {.timeout = MIGRATE_DEF_TIMEOUT}};
	json_t *req, *to;
	int rc = parse_options(argc, argv, opts, migrate_help, migrate_opt, &a);

	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	if (optind < argc)
		return usage_error("unexpected argument '%.64s'", argv[optind]);
	if (!a.to)
		return usage_error("--to ADDR is required (the destination vmce-vm --incoming)");
	if (!*a.to || strlen(a.to) > CTL_MAX_MIGRATE_TO)
		return usage_error("--to: the address must be 1 to %d bytes", CTL_MAX_MIGRATE_TO);
	to = json_string(a.to);
	if (!to)
		return usage_error("--to: the address is not UTF-8 text");
	req = online_req(CTL_CMD_MIGRATE);
	if (req)
		json_object_set_new(req, CTL_F_TO, to);
	else
		json_decref(to);
	if (req && a.abort_on_error)
		json_object_set_new(req, CTL_F_ABORT_ON_ERROR, json_true());
	return online_request(&a.o, req, print_migrate, &a);
}
