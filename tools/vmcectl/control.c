// SPDX-License-Identifier: MIT
/*
 * vmcectl inject, status, events and quit: requests to a running vmce-vm over its control
 * socket (docs/control-protocol.md).
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vmce/policy.h>
#include <vmce/vmce.h>

#include "client.h"
#include "vmcectl.h"

#define INJECT_MAX_TEXT	   4096 /* the server's string limit */
#define INJECT_MAX_RECORDS 16	/* the server's record limit */
#define EVENTS_PAGE	   4096

/* Options every online command takes. */
#define HELP_SOCKET                                                                                \
	"  --socket PATH   vmce-vm's control socket (default: $VMCE_SOCKET)\n"                     \
	"  --timeout S     seconds to wait for a response (default 10; 0: forever)\n"
#define HELP_JSON   "  --json          print vmce-vm's JSON response instead of a table\n"
#define HELP_HELP   "  -h, --help      show this help\n"
#define COMMON_HELP HELP_SOCKET HELP_JSON HELP_HELP

enum {
	OPT_SOCKET = 256,
	OPT_TIMEOUT,
	OPT_JSON,
	OPT_FILE,
	OPT_SRAO,
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
	OPT_AFTER,
	OPT_MAX,
	OPT_FOLLOW,
	OPT_TO,
	OPT_ABORT_ON_ERROR,
};

#define COMMON_OPTS                                                                                \
	{"socket", required_argument, NULL, OPT_SOCKET},                                           \
		{"timeout", required_argument, NULL, OPT_TIMEOUT},                                 \
		{"json", no_argument, NULL, OPT_JSON},                                             \
	{                                                                                          \
		"help", no_argument, NULL, 'h'                                                     \
	}

struct common {
	const char *socket;
	unsigned long timeout;
	bool json;
};

/* Handle a common option; returns 1 when c was not one, 0 when handled, else an exit status
 * (EXIT_USAGE), or -1 after printing help. */
static int common_opt(int c, struct common *co, const char *help)
{
	switch (c) {
	case 'h':
		fputs(help, stdout);
		return -1;
	case OPT_SOCKET:
		co->socket = optarg;
		return 0;
	case OPT_TIMEOUT:
		return opt_uint("--timeout", optarg, 86400, &co->timeout);
	case OPT_JSON:
		co->json = true;
		return 0;
	default:
		return 1;
	}
}

static int open_client(struct client *cl, const struct common *co)
{
	const char *path = client_socket_path(co->socket);

	if (!path)
		return EXIT_USAGE;
	return client_connect(cl, path, (int)co->timeout);
}

/* A request being built with open_memstream. */
struct req {
	char *buf;
	size_t len;
	FILE *f;
};

static int req_open(struct req *r, const char *cmd)
{
	r->buf = NULL;
	r->f = open_memstream(&r->buf, &r->len);
	if (!r->f)
		return fail("out of memory");
	fprintf(r->f, "{\"cmd\":\"%s\"", cmd);
	return 0;
}

static char *req_close(struct req *r)
{
	fputc('}', r->f);
	if (fclose(r->f)) {
		free(r->buf);
		return NULL;
	}
	return r->buf;
}

/* One call: builds nothing, sends `request`, returns the parsed response or NULL. */
static struct jval *call(struct client *cl, const char *request, const char **raw)
{
	return client_call(cl, request, raw);
}

static const char *str_or(const struct jval *v, const char *key, const char *dflt)
{
	const char *s = json_get_str(v, key);

	return s ? s : dflt;
}

/* ---- inject -------------------------------------------------------------------------------- */

static const char inject_help[] =
	"Usage: vmcectl inject [OPTIONS] --file PATH | -\n"
	"       vmcectl inject [OPTIONS] --srao|--srar|--ucna|--ce|--fatal --gpa ADDR\n"
	"       vmcectl inject [OPTIONS] --status HEX [--misc HEX] [--mcg-status HEX]\n"
	"\n"
	"Hand a host error to a running vmce-vm's policy, exactly as a real host\n"
	"error would be.  The verdict (forward, drop, fatal or refused) and what each\n"
	"vCPU receives are printed for every record; any verdict is a success.\n"
	"\n"
	"The error:\n"
	"  --file PATH, PATH  records in Linux's mce-inject format ('-': standard\n"
	"                     input), at most 16 records and 4096 bytes; checked\n"
	"                     here before anything is sent\n"
	"  --srao | --srar | --ucna | --ce | --fatal\n"
	"                     an error of that class\n"
	"  --status HEX       a raw MCi_STATUS (class derived from it), with\n"
	"                     --misc HEX and --mcg-status HEX\n"
	"  --gpa ADDR         guest-physical address (required with a class, except\n"
	"                     --fatal; the raw record's MCi_ADDR with --status)\n"
	"  --cpu N            reporting/consuming vCPU (default 0)\n"
	"  --no-broadcast     deliver to that vCPU only\n"
	"  --local            the host saw it as a local machine check (LMCE)\n"
	"\n"
	"Common options:\n" COMMON_HELP;

static int read_inject_file(const char *path, char **text, size_t *len)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	const char *name = strcmp(path, "-") ? path : "standard input";
	char *buf;
	size_t n;

	if (!f)
		return fail("cannot open %s: %s", path, strerror(errno));
	buf = malloc(INJECT_MAX_TEXT + 2);
	if (!buf) {
		if (f != stdin)
			fclose(f);
		return fail("out of memory");
	}
	n = fread(buf, 1, INJECT_MAX_TEXT + 1, f);
	if (ferror(f)) {
		free(buf);
		if (f != stdin)
			fclose(f);
		return fail("cannot read %s: %s", name, strerror(errno));
	}
	if (f != stdin)
		fclose(f);
	if (n > INJECT_MAX_TEXT) {
		free(buf);
		return fail("%s is longer than %d bytes (vmce-vm's limit for mce-inject text)",
			    name, INJECT_MAX_TEXT);
	}
	if (memchr(buf, '\0', n)) {
		free(buf);
		return fail("%s contains a NUL byte: not mce-inject text", name);
	}
	buf[n] = '\0';
	*text = buf;
	*len = n;
	return 0;
}

/* Check mce-inject text with the library's parser, so errors name the line here. */
static int check_inject_text(const char *name, const char *text, size_t len)
{
	struct vmce_host_error recs[INJECT_MAX_RECORDS];
	struct vmce_err err = {{0}};
	int n = vmce_parse_inject_text(text, len, VMCE_ADDR_GPA, recs, INJECT_MAX_RECORDS, &err);

	if (n < 0)
		return fail("%s: %s", name, err.msg[0] ? err.msg : strerror(-n));
	if (n == 0)
		return fail("%s has no mce-inject record", name);
	return 0;
}

/* What each vCPU receives under a plan (vmce_plan_format_json()'s "vcpus" array). */
static void print_plan_vcpus(const struct jval *vcpus)
{
	for (size_t i = 0; vcpus && vcpus->type == J_ARR && i < vcpus->n; i++) {
		const struct jval *v = &vcpus->v[i];
		const char *sig = str_or(v, "signal", "?");
		uint64_t cpu = 0, bank = 0;

		json_get_u64(v, "cpu", &cpu);
		printf("  vCPU %llu: %s", (unsigned long long)cpu,
		       !strcmp(sig, "mc")     ? "#MC"
		       : !strcmp(sig, "cmci") ? "CMCI"
		       : !strcmp(sig, "none") ? "load"
					      : sig);
		if (!strcmp(sig, "mc"))
			printf(" MCG_STATUS %s", str_or(v, "mcg_status", "?"));
		if (json_get_u64(v, "bank", &bank))
			printf(" bank %llu STATUS %s ADDR %s MISC %s", (unsigned long long)bank,
			       str_or(v, "status", "?"), str_or(v, "addr", "?"),
			       str_or(v, "misc", "?"));
		printf("\n");
	}
}

static void print_inject_result(const struct jval *r, size_t i)
{
	const struct jval *gpa = json_get(r, "gpa");
	bool queued = false;

	json_get_bool(r, "queued", &queued);
	printf("record %zu: %-7s class %-5s gpa %-12s %s\n", i + 1, str_or(r, "verdict", "?"),
	       str_or(r, "class", "?"), gpa && gpa->type == J_STR ? gpa->s : "none",
	       queued ? "queued" : "not queued");
	printf("  reason: %s\n", str_or(r, "reason", "-"));
	print_plan_vcpus(json_get(json_get(r, "plan"), "vcpus"));
}

int cmd_inject(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_OPTS,
		{"file", required_argument, NULL, OPT_FILE},
		{"srao", no_argument, NULL, OPT_SRAO},
		{"srar", no_argument, NULL, OPT_SRAR},
		{"ucna", no_argument, NULL, OPT_UCNA},
		{"ce", no_argument, NULL, OPT_CE},
		{"fatal", no_argument, NULL, OPT_FATAL},
		{"status", required_argument, NULL, OPT_STATUS},
		{"misc", required_argument, NULL, OPT_MISC},
		{"mcg-status", required_argument, NULL, OPT_MCG_STATUS},
		{"gpa", required_argument, NULL, OPT_GPA},
		{"cpu", required_argument, NULL, OPT_CPU},
		{"no-broadcast", no_argument, NULL, OPT_NO_BROADCAST},
		{"local", no_argument, NULL, OPT_LOCAL},
		{NULL, 0, NULL, 0},
	};
	struct common co = {.timeout = CLIENT_DEF_TIMEOUT};
	const char *file = NULL, *cls = NULL, *form = NULL, *raw;
	uint64_t gpa = 0, status = 0, misc = 0, mcg = 0;
	bool has_gpa = false, has_misc = false, has_mcg = false, has_cpu = false;
	bool no_bcast = false, local = false;
	unsigned long cpu = 0;
	char *text = NULL, *request;
	size_t text_len = 0;
	const struct jval *results;
	struct jval *resp;
	struct client cl;
	struct req rq;
	int c, rc = 0;

	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		const char *this_form = NULL, *this_cls = NULL;

		rc = common_opt(c, &co, inject_help);
		if (rc < 0)
			return EXIT_OK;
		if (rc == 0)
			continue;
		if (rc != 1)
			return rc;
		rc = 0;
		switch (c) {
		case OPT_FILE:
			this_form = "--file";
			file = optarg;
			break;
		case OPT_SRAO:
			this_form = "--srao";
			this_cls = "srao";
			break;
		case OPT_SRAR:
			this_form = "--srar";
			this_cls = "srar";
			break;
		case OPT_UCNA:
			this_form = "--ucna";
			this_cls = "ucna";
			break;
		case OPT_CE:
			this_form = "--ce";
			this_cls = "ce";
			break;
		case OPT_FATAL:
			this_form = "--fatal";
			this_cls = "fatal";
			break;
		case OPT_STATUS:
			this_form = "--status";
			rc = opt_hex("--status", optarg, &status);
			break;
		case OPT_MISC:
			rc = opt_hex("--misc", optarg, &misc);
			has_misc = true;
			break;
		case OPT_MCG_STATUS:
			rc = opt_hex("--mcg-status", optarg, &mcg);
			has_mcg = true;
			break;
		case OPT_GPA:
			if (has_gpa)
				return usage_error("--gpa is given twice");
			rc = opt_u64("--gpa", optarg, true, &gpa);
			has_gpa = true;
			break;
		case OPT_CPU:
			rc = opt_uint("--cpu", optarg, VMCE_MAX_VCPUS - 1, &cpu);
			has_cpu = true;
			break;
		case OPT_NO_BROADCAST:
			no_bcast = true;
			break;
		case OPT_LOCAL:
			local = true;
			break;
		default:
			return bad_option(c, argv);
		}
		if (rc)
			return rc;
		if (this_form) {
			if (form)
				return usage_error(
					"%s and %s both describe the error: give exactly "
					"one",
					form, this_form);
			form = this_form;
			cls = this_cls;
		}
	}
	if (optind < argc) {
		if (form)
			return usage_error("unexpected argument '%.64s' (%s already describes the "
					   "error)",
					   argv[optind], form);
		file = argv[optind++];
		form = "--file";
	}
	if (optind < argc)
		return usage_error("unexpected argument '%.64s'", argv[optind]);
	if (!form)
		return usage_error(
			"no error given: use --file PATH, one of --srao, --srar, --ucna, "
			"--ce, --fatal, or --status HEX");
	if (file && (has_gpa || has_cpu || has_misc || has_mcg || no_bcast || local))
		return usage_error("%s cannot be combined with --file (the mce-inject text carries "
				   "it)",
				   has_gpa    ? "--gpa"
				   : has_cpu  ? "--cpu"
				   : has_misc ? "--misc"
				   : has_mcg  ? "--mcg-status"
				   : no_bcast ? "--no-broadcast"
					      : "--local");
	if (cls && (has_misc || has_mcg))
		return usage_error("%s only describes a raw record: it needs --status",
				   has_misc ? "--misc" : "--mcg-status");
	if (cls && strcmp(cls, "fatal") && !has_gpa)
		return usage_error("%s needs --gpa ADDR (the guest-physical address of the error)",
				   form);

	if (file) {
		const char *name = strcmp(file, "-") ? file : "standard input";

		rc = read_inject_file(file, &text, &text_len);
		if (!rc)
			rc = check_inject_text(name, text, text_len);
		if (rc) {
			free(text);
			return rc;
		}
	}
	if (req_open(&rq, "inject")) {
		free(text);
		return EXIT_FAIL;
	}
	if (text) {
		fputs(",\"text\":", rq.f);
		json_put_string(rq.f, text);
		free(text);
	} else {
		if (cls)
			fprintf(rq.f, ",\"class\":\"%s\"", cls);
		else
			fprintf(rq.f, ",\"status\":\"0x%llx\"", (unsigned long long)status);
		if (has_gpa)
			fprintf(rq.f, ",\"%s\":\"0x%llx\"", cls ? "gpa" : "addr",
				(unsigned long long)gpa);
		if (has_misc)
			fprintf(rq.f, ",\"misc\":\"0x%llx\"", (unsigned long long)misc);
		if (has_mcg)
			fprintf(rq.f, ",\"mcg_status\":\"0x%llx\"", (unsigned long long)mcg);
		if (has_cpu)
			fprintf(rq.f, ",\"cpu\":%lu", cpu);
		if (no_bcast)
			fputs(",\"broadcast\":false", rq.f);
		if (local)
			fputs(",\"lmce\":true", rq.f);
	}
	request = req_close(&rq);
	if (!request)
		return fail("out of memory");
	rc = open_client(&cl, &co);
	if (rc) {
		free(request);
		return rc;
	}
	resp = call(&cl, request, &raw);
	free(request);
	if (!resp) {
		client_close(&cl);
		return EXIT_FAIL;
	}
	bool ok = false;

	json_get_bool(resp, "ok", &ok);
	if (!ok) {
		rc = client_error(resp);
	} else if (co.json) {
		puts(raw);
	} else {
		uint64_t last = 0;

		results = json_get(resp, "results");
		for (size_t i = 0; results && results->type == J_ARR && i < results->n; i++)
			print_inject_result(&results->v[i], i);
		if (json_get_u64(resp, "last_seq", &last))
			printf("last event: %llu\n", (unsigned long long)last);
	}
	json_free(resp);
	client_close(&cl);
	return rc;
}

/* ---- status -------------------------------------------------------------------------------- */

static const char status_help[] =
	"Usage: vmcectl status [OPTIONS]\n"
	"\n"
	"Show a running vmce-vm's profile, every vCPU's MCG_STATUS and banks, the\n"
	"poisoned pages, the counters, and the action-optional errors held until the\n"
	"guest's machine-check handler clears MCG_STATUS.MCIP.\n"
	"\n"
	"Options:\n" COMMON_HELP;

static const char *hexstr(const struct jval *v, const char *key)
{
	return str_or(v, key, "?");
}

static void print_status(const struct jval *r)
{
	const struct jval *vcpus = json_get(r, "vcpus"), *poison = json_get(r, "poisoned");
	const struct jval *counters = json_get(r, "counters"), *ex = json_get(r, "exit");
	const struct jval *held = json_get(r, "held");
	uint64_t n = 0, up = 0, mem = 0, last = 0;
	char names[64];

	json_get_u64(r, "uptime_ms", &up);
	printf("state:     %s (up %llu.%03llu s)\n", str_or(r, "state", "?"),
	       (unsigned long long)(up / 1000), (unsigned long long)(up % 1000));
	printf("profile:   %s (MCG_CAP %s)\n", str_or(r, "profile", "?"), hexstr(r, "mcg_cap"));
	json_get_u64(r, "nr_vcpus", &n);
	json_get_u64(r, "mem_size", &mem);
	printf("vcpus:     %llu, memory %llu MiB\n", (unsigned long long)n,
	       (unsigned long long)(mem >> 20));
	json_get_u64(r, "last_seq", &last);
	printf("events:    last sequence number %llu\n", (unsigned long long)last);
	if (ex && ex->type == J_OBJ) {
		int64_t st = -1;

		json_get_i64(ex, "status", &st);
		printf("exit:      status %lld: %s\n", (long long)st, str_or(ex, "reason", "?"));
	}
	printf("\n%-4s %-24s %-7s %-7s %-4s %-18s %-18s %-18s %-10s %s\n", "VCPU", "MCG_STATUS",
	       "EXT_CTL", "PENDING", "BANK", "CTL", "STATUS", "ADDR", "MISC", "CTL2");
	for (size_t i = 0; vcpus && vcpus->type == J_ARR && i < vcpus->n; i++) {
		const struct jval *v = &vcpus->v[i], *banks = json_get(v, "banks");
		uint64_t cpu = i, mcg = 0;
		bool pending = false;
		char mcgs[40];

		json_get_u64(v, "cpu", &cpu);
		json_get_u64(v, "mcg_status", &mcg);
		json_get_bool(v, "pending", &pending);
		snprintf(mcgs, sizeof(mcgs), "%s %s", hexstr(v, "mcg_status"),
			 mcg ? mcg_status_names(mcg, names, sizeof(names)) : "");
		for (size_t b = 0; banks && banks->type == J_ARR && b < banks->n; b++) {
			const struct jval *k = &banks->v[b];
			uint64_t bank = b;

			json_get_u64(k, "bank", &bank);
			if (b == 0)
				printf("%-4llu %-24s %-7s %-7s ", (unsigned long long)cpu, mcgs,
				       hexstr(v, "mcg_ext_ctl"), pending ? "yes" : "no");
			else
				printf("%-4s %-24s %-7s %-7s ", "", "", "", "");
			printf("%-4llu %-18s %-18s %-18s %-10s %s\n", (unsigned long long)bank,
			       hexstr(k, "ctl"), hexstr(k, "status"), hexstr(k, "addr"),
			       hexstr(k, "misc"), hexstr(k, "ctl2"));
		}
	}
	if (poison && poison->type == J_OBJ) {
		const struct jval *pages = json_get(poison, "pages");
		bool trunc = false;

		json_get_u64(poison, "count", &n);
		json_get_bool(poison, "truncated", &trunc);
		printf("\npoisoned pages: %llu", (unsigned long long)n);
		for (size_t i = 0; pages && pages->type == J_ARR && i < pages->n; i++)
			if (pages->v[i].type == J_STR)
				printf("%s%s", i ? " " : ": ", pages->v[i].s);
		printf("%s\n", trunc ? " ..." : "");
	}
	if (counters && counters->type == J_OBJ) {
		const struct jval *bc = json_get(counters, "by_class");
		static const char *const kinds[] = {"forwarded", "dropped", "fatal",
						    "delivered", "masked",  "refused"};

		printf("errors seen:");
		for (size_t i = 0; bc && bc->type == J_OBJ && i < bc->n; i++)
			printf(" %s=%s", bc->keys[i], bc->v[i].type == J_NUM ? bc->v[i].s : "?");
		printf("\nevents:     ");
		for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
			uint64_t k = 0;

			json_get_u64(counters, kinds[i], &k);
			printf(" %s=%llu", kinds[i], (unsigned long long)k);
		}
		printf("\n");
	}
	if (held && held->type == J_OBJ) {
		const struct jval *recs = json_get(held, "records");
		static const char *const keys[] = {"count", "max",	"timeout_ms", "stalled_ms",
						   "held",  "released", "overflowed", "expired"};

		printf("held:       ");
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
			uint64_t k = 0;

			json_get_u64(held, keys[i], &k);
			printf(" %s=%llu", keys[i], (unsigned long long)k);
		}
		printf("\n");
		for (size_t i = 0; recs && recs->type == J_ARR && i < recs->n; i++) {
			const struct jval *h = &recs->v[i];
			uint64_t seq = 0, cpu = 0, age = 0;
			int64_t wait = -1;
			bool bc = false;

			json_get_u64(h, "seq", &seq);
			json_get_u64(h, "vcpu", &cpu);
			json_get_u64(h, "age_ms", &age);
			json_get_i64(h, "waiting_for", &wait);
			json_get_bool(h, "broadcast", &bc);
			printf("  event %llu: %s vcpu %llu%s gpa %s, held %llu ms",
			       (unsigned long long)seq, str_or(h, "class", "?"),
			       (unsigned long long)cpu, bc ? " (broadcast)" : "",
			       str_or(h, "gpa", "-"), (unsigned long long)age);
			if (wait >= 0)
				printf(", waiting for vcpu %lld", (long long)wait);
			printf("\n");
		}
	}
}

static int simple_request(int argc, char **argv, const char *cmd, const char *help,
			  void (*print)(const struct jval *))
{
	static const struct option opts[] = {COMMON_OPTS, {NULL, 0, NULL, 0}};
	struct common co = {.timeout = CLIENT_DEF_TIMEOUT};
	struct client cl;
	struct jval *resp;
	const char *raw;
	char request[64];
	bool ok = false;
	int c, rc;

	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		rc = common_opt(c, &co, help);
		if (rc < 0)
			return EXIT_OK;
		if (rc == 1)
			return bad_option(c, argv);
		if (rc)
			return rc;
	}
	if (optind < argc)
		return usage_error("unexpected argument '%.64s'", argv[optind]);
	rc = open_client(&cl, &co);
	if (rc)
		return rc;
	snprintf(request, sizeof(request), "{\"cmd\":\"%s\"}", cmd);
	resp = call(&cl, request, &raw);
	if (!resp) {
		client_close(&cl);
		return EXIT_FAIL;
	}
	json_get_bool(resp, "ok", &ok);
	rc = EXIT_OK;
	if (!ok)
		rc = client_error(resp);
	else if (co.json)
		puts(raw);
	else
		print(resp);
	json_free(resp);
	client_close(&cl);
	return rc;
}

int cmd_status(int argc, char **argv)
{
	return simple_request(argc, argv, "status", status_help, print_status);
}

/* ---- quit ---------------------------------------------------------------------------------- */

static const char quit_help[] = "Usage: vmcectl quit [OPTIONS]\n"
				"\n"
				"Stop a running vmce-vm (it exits with status 0).\n"
				"\n"
				"Options:\n" COMMON_HELP;

static void print_quit(const struct jval *r)
{
	(void)r;
	printf("vmce-vm is stopping\n");
}

int cmd_quit(int argc, char **argv)
{
	return simple_request(argc, argv, "quit", quit_help, print_quit);
}

/* ---- migrate ------------------------------------------------------------------------------- */

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

int cmd_migrate(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_OPTS,
		{"to", required_argument, NULL, OPT_TO},
		{"abort-on-error", no_argument, NULL, OPT_ABORT_ON_ERROR},
		{NULL, 0, NULL, 0},
	};
	struct common co = {.timeout = 120};
	const char *to = NULL, *raw;
	bool abort_on_error = false, ok = false;
	struct client cl;
	struct jval *resp;
	struct req rq;
	char *request;
	int c, rc;

	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == OPT_TO) {
			to = optarg;
			continue;
		}
		if (c == OPT_ABORT_ON_ERROR) {
			abort_on_error = true;
			continue;
		}
		rc = common_opt(c, &co, migrate_help);
		if (rc < 0)
			return EXIT_OK;
		if (rc == 1)
			return bad_option(c, argv);
		if (rc)
			return rc;
	}
	if (optind < argc)
		return usage_error("unexpected argument '%.64s'", argv[optind]);
	if (!to)
		return usage_error("--to ADDR is required (the destination vmce-vm --incoming)");
	if (!*to || strlen(to) > 200)
		return usage_error("--to: the address must be 1 to 200 bytes");
	rc = open_client(&cl, &co);
	if (rc)
		return rc;
	if (req_open(&rq, "migrate")) {
		client_close(&cl);
		return EXIT_FAIL;
	}
	fputs(",\"to\":", rq.f);
	json_put_string(rq.f, to);
	if (abort_on_error)
		fputs(",\"abort_on_error\":true", rq.f);
	request = req_close(&rq);
	if (!request) {
		client_close(&cl);
		return fail("out of memory");
	}
	resp = call(&cl, request, &raw);
	free(request);
	if (!resp) {
		client_close(&cl);
		return EXIT_FAIL;
	}
	json_get_bool(resp, "ok", &ok);
	rc = EXIT_OK;
	if (!ok) {
		rc = client_error(resp);
	} else if (co.json) {
		puts(raw);
	} else {
		uint64_t bytes = 0, skipped = 0, resends = 0;

		json_get_u64(resp, "bytes", &bytes);
		json_get_u64(resp, "pages_skipped", &skipped);
		json_get_u64(resp, "resends", &resends);
		printf("migrated to %s: %llu bytes, %llu poisoned page(s) skipped, %llu "
		       "resend(s)\n",
		       to, (unsigned long long)bytes, (unsigned long long)skipped,
		       (unsigned long long)resends);
	}
	json_free(resp);
	client_close(&cl);
	return rc;
}

/* ---- events -------------------------------------------------------------------------------- */

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

static void print_event_header(void)
{
	printf("%-5s %-12s %-9s %-5s %-4s %-12s %-6s %-10s %-4s %-18s %s\n", "SEQ", "TIME", "KIND",
	       "CLASS", "VCPU", "GPA", "SIGNAL", "MCG_STATUS", "BANK", "STATUS", "REASON");
	fflush(stdout);
}

static void print_event(const struct jval *e)
{
	const struct jval *gpa = json_get(e, "gpa");
	uint64_t seq = 0, t = 0, bank = 0;
	int64_t vcpu = -1;
	char when[32] = "?", vc[24] = "-", bk[24] = "-";
	bool has_bank = json_get_u64(e, "bank", &bank);

	json_get_u64(e, "seq", &seq);
	if (json_get_u64(e, "time_ns", &t)) {
		time_t sec = (time_t)(t / 1000000000ull);
		struct tm tm;

		if (localtime_r(&sec, &tm))
			snprintf(when, sizeof(when), "%02d:%02d:%02d.%03u", tm.tm_hour, tm.tm_min,
				 tm.tm_sec, (unsigned)((t / 1000000ull) % 1000));
	}
	if (json_get_i64(e, "vcpu", &vcpu) && vcpu >= 0)
		snprintf(vc, sizeof(vc), "%lld", (long long)vcpu);
	if (has_bank)
		snprintf(bk, sizeof(bk), "%llu", (unsigned long long)bank);
	printf("%-5llu %-12s %-9s %-5s %-4s %-12s %-6s %-10s %-4s %-18s %s\n",
	       (unsigned long long)seq, when, str_or(e, "kind", "?"), str_or(e, "class", "?"), vc,
	       gpa && gpa->type == J_STR ? gpa->s : "-", str_or(e, "signal", "-"),
	       str_or(e, "mcg_status", "-"), bk, has_bank ? str_or(e, "status", "-") : "-",
	       str_or(e, "reason", ""));
	fflush(stdout);
}

/* One line of an event stream.  Returns 1 to go on, 0 at the VM's exit, or an exit status
 * (>= 2 is never returned; -1 for a protocol error). */
static int stream_line(const char *line, size_t len, bool json)
{
	struct jval *v;
	const char *kind;
	char why[160];
	int rc = 1;

	v = json_parse(line, len, why, sizeof(why));
	if (!v || v->type != J_OBJ) {
		json_free(v);
		fail("vmce-vm sent an event line that is not a JSON object%s%s", v ? "" : ": ",
		     v ? "" : why);
		return -1;
	}
	kind = str_or(v, "kind", "");
	if (json) {
		fwrite(line, 1, len, stdout);
		fputc('\n', stdout);
		fflush(stdout);
	} else if (!strcmp(kind, "lost")) {
		uint64_t a = 0, b = 0;

		json_get_u64(v, "after", &a);
		json_get_u64(v, "next", &b);
		printf("-- events %llu to %llu were lost (the reader was too slow) --\n",
		       (unsigned long long)(a + 1), (unsigned long long)(b ? b - 1 : 0));
		fflush(stdout);
	} else if (!strcmp(kind, "vm-exit")) {
		int64_t st = -1;

		json_get_i64(v, "status", &st);
		printf("-- the VM stopped: %s (exit status %lld) --\n", str_or(v, "reason", "?"),
		       (long long)st);
		fflush(stdout);
	} else if (json_get(v, "ok")) {
		bool ok = false;

		json_get_bool(v, "ok", &ok);
		if (!ok)
			fail("vmce-vm: %s", str_or(v, "error", "(no error text)"));
	} else {
		print_event(v);
	}
	if (!strcmp(kind, "vm-exit"))
		rc = 0;
	json_free(v);
	return rc;
}

static int events_follow(struct client *cl, uint64_t after, bool json)
{
	char request[96], *line;
	const char *raw;
	struct jval *resp;
	size_t len;
	bool ok = false;
	int r;

	snprintf(request, sizeof(request), "{\"cmd\":\"events\",\"follow\":true,\"after\":%llu}",
		 (unsigned long long)after);
	resp = call(cl, request, &raw);
	if (!resp)
		return EXIT_FAIL;
	json_get_bool(resp, "ok", &ok);
	if (!ok) {
		r = client_error(resp);
		json_free(resp);
		return r;
	}
	json_free(resp);
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
		if (r < 0)
			return EXIT_FAIL;
		if (r == 0)
			return EXIT_OK;
	}
}

static int events_read(struct client *cl, uint64_t after, uint64_t max, bool has_max, bool json)
{
	uint64_t done = 0;
	bool header = false;

	for (;;) {
		uint64_t want = has_max ? max - done : EVENTS_PAGE, last = after;
		const struct jval *evs;
		struct jval *resp;
		const char *raw;
		char request[128];
		bool ok = false, more = false;

		if (want > EVENTS_PAGE)
			want = EVENTS_PAGE;
		snprintf(request, sizeof(request),
			 "{\"cmd\":\"events\",\"after\":%llu,\"max\":%llu}",
			 (unsigned long long)after, (unsigned long long)want);
		resp = call(cl, request, &raw);
		if (!resp)
			return EXIT_FAIL;
		json_get_bool(resp, "ok", &ok);
		if (!ok) {
			int r = client_error(resp);

			json_free(resp);
			return r;
		}
		evs = json_get(resp, "events");
		if (!evs || evs->type != J_ARR) {
			json_free(resp);
			return fail("vmce-vm's events response has no \"events\" array");
		}
		if (!json && !header) {
			print_event_header();
			header = true;
		}
		for (size_t i = 0; i < evs->n; i++) {
			const struct jval *e = &evs->v[i];

			if (json) {
				fwrite(raw + e->off, 1, e->len, stdout);
				fputc('\n', stdout);
			} else {
				print_event(e);
			}
			json_get_u64(e, "seq", &last);
		}
		done += evs->n;
		json_get_bool(resp, "more", &more);
		json_free(resp);
		if (!more || last == after || (has_max && done >= max))
			return EXIT_OK;
		after = last;
	}
}

int cmd_events(int argc, char **argv)
{
	static const struct option opts[] = {
		COMMON_OPTS,
		{"after", required_argument, NULL, OPT_AFTER},
		{"max", required_argument, NULL, OPT_MAX},
		{"follow", no_argument, NULL, OPT_FOLLOW},
		{NULL, 0, NULL, 0},
	};
	struct common co = {.timeout = CLIENT_DEF_TIMEOUT};
	uint64_t after = 0;
	unsigned long max = 0;
	bool follow = false, has_max = false;
	struct client cl;
	int c, rc;

	opterr = 0;
	optind = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		rc = common_opt(c, &co, events_help);
		if (rc < 0)
			return EXIT_OK;
		if (rc == 0)
			continue;
		if (rc != 1)
			return rc;
		switch (c) {
		case OPT_AFTER:
			rc = opt_u64("--after", optarg, false, &after);
			break;
		case OPT_MAX:
			rc = opt_uint("--max", optarg, 1000000, &max);
			if (!rc && max == 0)
				rc = usage_error("--max: 0 events asked for (at least 1)");
			has_max = true;
			break;
		case OPT_FOLLOW:
			follow = true;
			rc = 0;
			break;
		default:
			return bad_option(c, argv);
		}
		if (rc)
			return rc;
	}
	if (optind < argc)
		return usage_error("unexpected argument '%.64s'", argv[optind]);
	if (follow && has_max)
		return usage_error("--max cannot be combined with --follow");
	rc = open_client(&cl, &co);
	if (rc)
		return rc;
	if (follow)
		rc = events_follow(&cl, after, co.json);
	else
		rc = events_read(&cl, after, max, has_max, co.json);
	client_close(&cl);
	return rc;
}
