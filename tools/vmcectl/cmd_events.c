// SPDX-License-Identifier: MIT
/*
 * vmcectl events: a running vmce-vm's event log, read page by page or followed
 * (docs/control-protocol.md, "events").
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonutil.h"
#include "online.h"
#include "vmcectl.h"

static const char events_help[] =
	"Usage: vmcectl events [OPTIONS]\n"
	"\n"
	"Show a running vmce-vm's event log: every decision of the policy\n"
	"(forwarded, dropped, fatal, refused) and every delivery on a vCPU\n"
	"(delivered, masked).\n"
	"\n"
	"Options:\n"
	"  --after SEQ     only events with a greater sequence number (default 0)\n"
	"  --max N         at most N events (default: all the log holds)\n"
	"  --follow        keep the connection open and print events as they\n"
	"                  happen, until the VM ends (its exit is printed) or the\n"
	"                  command is interrupted; not with --max\n"
	"  --json          print each event as one line of JSON, as vmce-vm sends it\n" HELP_SOCKET
		HELP_HELP;

#define EVENTS_MAX_ASKED 1000000 /* --max */

enum { OPT_AFTER = OPT_CMD, OPT_MAX, OPT_FOLLOW };

struct events_args {
	struct online o;
	uint64_t after;
	unsigned long max;
	bool follow, has_max;
};

static void print_event_header(void)
{
	printf("%-5s %-12s %-9s %-5s %-4s %-12s %-6s %-10s %-4s %-18s %s\n", "SEQ", "TIME", "KIND",
	       "CLASS", "VCPU", "GPA", "SIGNAL", "MCG_STATUS", "BANK", "STATUS", "REASON");
	fflush(stdout);
}

static void print_event(const json_t *e)
{
	uint64_t seq = 0, t = 0, bank = 0;
	int64_t vcpu = -1;
	char when[32] = "?", vc[24] = "-", bk[24] = "-";
	bool has_bank = jget_u64(e, "bank", &bank);

	jget_u64(e, "seq", &seq);
	if (jget_u64(e, "time_ns", &t)) {
		time_t sec = (time_t)(t / 1000000000ull);
		struct tm tm;

		if (localtime_r(&sec, &tm))
			snprintf(when, sizeof(when), "%02d:%02d:%02d.%03u", tm.tm_hour, tm.tm_min,
				 tm.tm_sec, (unsigned)((t / 1000000ull) % 1000));
	}
	if (jget_i64(e, "vcpu", &vcpu) && vcpu >= 0)
		snprintf(vc, sizeof(vc), "%lld", (long long)vcpu);
	if (has_bank)
		snprintf(bk, sizeof(bk), "%llu", (unsigned long long)bank);
	printf("%-5llu %-12s %-9s %-5s %-4s %-12s %-6s %-10s %-4s %-18s %s\n",
	       (unsigned long long)seq, when, jget_str(e, "kind", "?"), jget_str(e, "class", "?"),
	       vc, jget_str(e, "gpa", "-"), jget_str(e, "signal", "-"),
	       jget_str(e, "mcg_status", "-"), bk, has_bank ? jget_str(e, "status", "-") : "-",
	       jget_str(e, "reason", ""));
	fflush(stdout);
}

/* Print one event as one line of JSON. */
static void print_event_json(const json_t *e)
{
	json_dumpf(e, stdout, JSON_COMPACT);
	fputc('\n', stdout);
}

/* A line of the stream that is not an event: lost events, the VM's exit, an error. */
static void print_stream_note(const json_t *v, const char *kind)
{
	uint64_t a = 0, b = 0;
	int64_t st = -1;
	bool ok = false;

	if (!strcmp(kind, "lost")) {
		jget_u64(v, "after", &a);
		jget_u64(v, "next", &b);
		printf("-- events %llu to %llu were lost (the reader was too slow) --\n",
		       (unsigned long long)(a + 1), (unsigned long long)(b ? b - 1 : 0));
	} else if (!strcmp(kind, "vm-exit")) {
		jget_i64(v, "status", &st);
		printf("-- the VM stopped: %s (exit status %lld) --\n", jget_str(v, "reason", "?"),
		       (long long)st);
	} else if (jget_bool(v, CTL_F_OK, &ok) && !ok) {
		fail("vmce-vm: %s", jget_str(v, CTL_F_ERROR, "(no error text)"));
	}
}

/* One line of an event stream.  Returns 1 to go on, 0 at the VM's exit, -1 for a protocol
 * error. */
static int stream_line(const char *line, size_t len, bool json)
{
	struct vmce_err err = {""};
	json_t *v = jparse(line, len, JSON_DECODE_ANY, &err);
	const char *kind;
	int rc;

	if (!json_is_object(v)) {
		json_decref(v);
		fail("vmce-vm sent an event line that is not a JSON object%s%s", v ? "" : ": ",
		     v ? "" : err.msg);
		return -1;
	}
	kind = jget_str(v, "kind", "");
	if (json) {
		fwrite(line, 1, len, stdout);
		fputc('\n', stdout);
	} else if (!strcmp(kind, "lost") || !strcmp(kind, "vm-exit") ||
		   json_object_get(v, CTL_F_OK)) {
		print_stream_note(v, kind);
	} else {
		print_event(v);
	}
	fflush(stdout);
	rc = strcmp(kind, "vm-exit") ? 1 : 0;
	json_decref(v);
	return rc;
}

/* Send a request on cl; the response if ok, else NULL after printing why. */
static json_t *call_ok(struct client *cl, const char *request, int *rc)
{
	json_t *resp = client_call(cl, request, NULL);
	bool ok = false;

	*rc = EXIT_FAIL;
	if (resp && jget_bool(resp, CTL_F_OK, &ok) && ok)
		return resp;
	if (resp)
		*rc = client_error(resp);
	json_decref(resp);
	return NULL;
}

static int events_follow(struct client *cl, uint64_t after, bool json)
{
	char request[96], *line;
	size_t len;
	json_t *resp;
	int r;

	snprintf(request, sizeof(request), "{\"cmd\":\"%s\",\"%s\":true,\"%s\":%llu}",
		 CTL_CMD_EVENTS, CTL_F_FOLLOW, CTL_F_AFTER, (unsigned long long)after);
	resp = call_ok(cl, request, &r);
	if (!resp)
		return r;
	json_decref(resp);
	if (!json)
		print_event_header();
	cl->timeout_ms = -1; /* events come when they come */
	for (;;) {
		r = client_recv(cl, &line, &len);
		if (r < 0)
			return EXIT_FAIL;
		if (r == 0)
			return fail("%s closed the event stream before the VM stopped", cl->path);
		if (len == 0)
			continue;
		r = stream_line(line, len, json);
		if (r <= 0)
			return r < 0 ? EXIT_FAIL : EXIT_OK;
	}
}

/* Print one page's events; *last gets the last sequence number. */
static void print_page(const json_t *evs, bool json, uint64_t *last)
{
	const json_t *e;
	size_t i;

	json_array_foreach(evs, i, e) {
		if (json)
			print_event_json(e);
		else
			print_event(e);
		jget_u64(e, "seq", last);
	}
}

static int events_read(struct client *cl, const struct events_args *a)
{
	uint64_t done = 0, after = a->after;

	for (bool header = false;; header = true) {
		uint64_t want = a->has_max ? a->max - done : CTL_EVENTS_MAX, last = after;
		const json_t *evs;
		char request[128];
		bool more = false;
		json_t *resp;
		int rc;

		snprintf(request, sizeof(request), "{\"cmd\":\"%s\",\"%s\":%llu,\"%s\":%llu}",
			 CTL_CMD_EVENTS, CTL_F_AFTER, (unsigned long long)after, CTL_F_MAX,
			 (unsigned long long)(want > CTL_EVENTS_MAX ? CTL_EVENTS_MAX : want));
		resp = call_ok(cl, request, &rc);
		if (!resp)
			return rc;
		evs = json_object_get(resp, CTL_F_EVENTS);
		if (!json_is_array(evs)) {
			json_decref(resp);
			return fail("vmce-vm's events response has no \"events\" array");
		}
		if (!a->o.json && !header)
			print_event_header();
		print_page(evs, a->o.json, &last);
		done += json_array_size(evs);
		jget_bool(resp, CTL_F_MORE, &more);
		json_decref(resp);
		if (!more || last == after || (a->has_max && done >= a->max))
			return EXIT_OK;
		after = last;
	}
}

static int events_opt(int c, const char *arg, void *ctx)
{
	struct events_args *a = ctx;
	int rc;

	switch (c) {
	case OPT_AFTER:
		return opt_u64("--after", arg, false, &a->after);
	case OPT_MAX:
		a->has_max = true;
		rc = opt_uint("--max", arg, EVENTS_MAX_ASKED, &a->max);
		if (!rc && a->max == 0)
			rc = usage_error("--max: 0 events asked for (at least 1)");
		return rc;
	case OPT_FOLLOW:
		a->follow = true;
		return 0;
	default:
		return online_opt(&a->o, c, arg);
	}
}

int cmd_events(int argc, char **argv)
{
	static const struct option opts[] = {
		ONLINE_OPTS,
		{"after", required_argument, NULL, OPT_AFTER},
		{"max", required_argument, NULL, OPT_MAX},
		{"follow", no_argument, NULL, OPT_FOLLOW},
		{NULL, 0, NULL, 0},
	};
	struct events_args a = {.o = {.timeout = CLIENT_DEF_TIMEOUT}};
	struct client cl;
	int rc = parse_options(argc, argv, opts, events_help, events_opt, &a);

	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	if (optind < argc)
		return usage_error("unexpected argument '%.64s'", argv[optind]);
	if (a.follow && a.has_max)
		return usage_error("--max cannot be combined with --follow");
	rc = online_connect(&cl, &a.o);
	if (rc)
		return rc;
	if (a.follow)
		rc = events_follow(&cl, a.after, a.o.json);
	else
		rc = events_read(&cl, &a);
	client_close(&cl);
	return rc;
}
