// SPDX-License-Identifier: MIT
/*
 * The online subcommands' common options and request (online.h).
 */
#include <stdlib.h>

#include "jsonutil.h"
#include "online.h"
#include "vmcectl.h"

int online_opt(struct online *o, int c, const char *arg)
{
	switch (c) {
	case OPT_SOCKET:
		o->socket = arg;
		return 0;
	case OPT_TIMEOUT:
		return opt_uint("--timeout", arg, 86400, &o->timeout);
	case OPT_JSON:
		o->json = true;
		return 0;
	default:
		return 1;
	}
}

int online_connect(struct client *cl, const struct online *o)
{
	const char *path = client_socket_path(o->socket);

	if (!path)
		return EXIT_USAGE;
	return client_connect(cl, path, (int)o->timeout);
}

json_t *online_req(const char *cmd)
{
	return json_pack("{s:s}", CTL_F_CMD, cmd);
}

int online_request(const struct online *o, json_t *req, online_print_fn *print, void *ctx)
{
	char *request = req ? json_dumps(req, JSON_COMPACT) : NULL;
	struct client cl;
	const char *raw;
	json_t *resp;
	bool ok = false;
	int rc;

	json_decref(req);
	if (!request)
		return fail("cannot encode the request (out of memory, or a string that is not "
			    "UTF-8)");
	rc = online_connect(&cl, o);
	if (rc) {
		free(request);
		return rc;
	}
	resp = client_call(&cl, request, &raw);
	free(request);
	if (!resp) {
		client_close(&cl);
		return EXIT_FAIL;
	}
	jget_bool(resp, CTL_F_OK, &ok);
	if (!ok)
		rc = client_error(resp);
	else if (o->json)
		puts(raw);
	else
		print(resp, ctx);
	json_decref(resp);
	client_close(&cl);
	return rc;
}

static int common_opt_only(int c, const char *arg, void *ctx)
{
	return online_opt(ctx, c, arg);
}

int online_simple(int argc, char **argv, const char *cmd, const char *help, online_print_fn *print)
{
	static const struct option opts[] = {ONLINE_OPTS, {NULL, 0, NULL, 0}};
	struct online o = {.timeout = CLIENT_DEF_TIMEOUT};
	int rc = parse_options(argc, argv, opts, help, common_opt_only, &o);

	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	if (optind < argc)
		return usage_error("unexpected argument '%.64s'", argv[optind]);
	return online_request(&o, online_req(cmd), print, NULL);
}
