// SPDX-License-Identifier: MIT
/*
 * vmcectl inject: hand a host error to a running vmce-vm's policy (docs/control-protocol.md,
 * "inject").
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <vmce/policy.h>
#include <vmce/vmce.h>

#include "errdesc.h"
#include "jsonutil.h"
#include "online.h"
#include "vmcectl.h"

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

enum { OPT_FILE = OPT_CMD };

struct inject_args {
	struct online o;
	struct errdesc d;
	const char *file;
};

static int inject_opt(int c, const char *arg, void *ctx)
{
	struct inject_args *a = ctx;
	int rc = online_opt(&a->o, c, arg);

	if (rc == 1)
		rc = errdesc_opt(&a->d, c, arg);
	if (rc == 1 && c == OPT_FILE) {
		a->file = arg;
		rc = errdesc_form(&a->d, "--file");
	}
	return rc;
}

/* The option that cannot go with --file, or NULL. */
static const char *not_with_file(const struct errdesc *d)
{
	return d->has_gpa	   ? "--gpa"
	       : d->has_cpu	   ? "--cpu"
	       : d->has_misc	   ? "--misc"
	       : d->has_mcg_status ? "--mcg-status"
	       : d->no_broadcast   ? "--no-broadcast"
	       : d->local	   ? "--local"
				   : NULL;
}

static int parse_inject_args(int argc, char **argv, struct inject_args *a)
{
	static const struct option opts[] = {
		ONLINE_OPTS,
		ERRDESC_OPTS,
		{"file", required_argument, NULL, OPT_FILE},
		{NULL, 0, NULL, 0},
	};
	int rc = parse_options(argc, argv, opts, inject_help, inject_opt, a);

	if (rc)
		return rc;
	if (optind < argc) {
		if (a->d.form)
			return usage_error("unexpected argument '%.64s' (%s already describes the "
					   "error)",
					   argv[optind], a->d.form);
		a->file = argv[optind++];
		a->d.form = "--file";
	}
	if (optind < argc)
		return usage_error("unexpected argument '%.64s'", argv[optind]);
	if (!a->d.form)
		return usage_error("no error given: use --file PATH, one of --srao, --srar, "
				   "--ucna, --ce, --fatal, or --status HEX");
	if (a->file && not_with_file(&a->d))
		return usage_error("%s cannot be combined with --file (the mce-inject text carries "
				   "it)",
				   not_with_file(&a->d));
	return a->file ? 0 : errdesc_check(&a->d);
}

/* Read at most CTL_MAX_TEXT bytes of mce-inject text from path ("-": standard input). */
static int read_inject_file(const char *path, const char *name, char **text)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	char *buf = malloc(CTL_MAX_TEXT + 2);
	size_t n = 0;
	int rc = 0;

	if (!f)
		rc = fail("cannot open %s: %s", path, strerror(errno));
	else if (!buf)
		rc = fail("out of memory");
	else
		n = fread(buf, 1, CTL_MAX_TEXT + 1, f);
	if (!rc && ferror(f))
		rc = fail("cannot read %s: %s", name, strerror(errno));
	else if (!rc && n > CTL_MAX_TEXT)
		rc = fail("%s is longer than %d bytes (vmce-vm's limit for mce-inject text)", name,
			  CTL_MAX_TEXT);
	else if (!rc && memchr(buf, '\0', n))
		rc = fail("%s contains a NUL byte: not mce-inject text", name);
	if (f && f != stdin)
		fclose(f);
	if (rc) {
		free(buf);
		return rc;
	}
	buf[n] = '\0';
	*text = buf;
	return 0;
}

/* Check mce-inject text with the library's parser, so errors name the line here. */
static int check_inject_text(const char *name, const char *text)
{
	struct vmce_host_error recs[CTL_MAX_TEXT_RECORDS];
	struct vmce_err err = {{0}};
	int n = vmce_parse_inject_text(text, strlen(text), VMCE_ADDR_GPA, recs,
				       CTL_MAX_TEXT_RECORDS, &err);

	if (n < 0)
		return fail("%s: %s", name, err.msg[0] ? err.msg : strerror(-n));
	if (n == 0)
		return fail("%s has no mce-inject record", name);
	return 0;
}

/* Add "key":"0x..." to the request. */
static void put_hex(json_t *req, const char *key, uint64_t v)
{
	char hex[24];

	snprintf(hex, sizeof(hex), "0x%llx", (unsigned long long)v);
	json_object_set_new(req, key, json_string(hex));
}

/* The request for a class or a raw record. */
static json_t *error_request(const struct errdesc *d)
{
	json_t *req = online_req(CTL_CMD_INJECT);

	if (!req)
		return NULL;
	if (d->cls_name)
		json_object_set_new(req, CTL_F_CLASS, json_string(d->cls_name));
	else
		put_hex(req, CTL_F_STATUS, d->status);
	if (d->has_gpa)
		put_hex(req, d->cls_name ? CTL_F_GPA : CTL_F_ADDR, d->gpa);
	if (d->has_misc)
		put_hex(req, CTL_F_MISC, d->misc);
	if (d->has_mcg_status)
		put_hex(req, CTL_F_MCG_STATUS, d->mcg_status);
	if (d->has_cpu)
		json_object_set_new(req, CTL_F_CPU, json_integer((json_int_t)d->cpu));
	if (d->no_broadcast)
		json_object_set_new(req, CTL_F_BROADCAST, json_false());
	if (d->local)
		json_object_set_new(req, CTL_F_LMCE, json_true());
	return req;
}

/* The request for mce-inject text from a file. */
static int text_request(const char *file, json_t **req)
{
	const char *name = strcmp(file, "-") ? file : "standard input";
	char *text = NULL;
	int rc = read_inject_file(file, name, &text);
	json_t *t;

	if (!rc)
		rc = check_inject_text(name, text);
	if (rc) {
		free(text);
		return rc;
	}
	t = json_string(text);
	free(text);
	if (!t)
		return fail("%s is not UTF-8 text", name);
	*req = online_req(CTL_CMD_INJECT);
	if (*req)
		json_object_set_new(*req, CTL_F_TEXT, t);
	else
		json_decref(t);
	return 0;
}

/* What each vCPU receives under a plan (vmce_plan_format_json()'s "vcpus" array). */
static void print_plan_vcpus(const json_t *vcpus)
{
	const json_t *v;
	size_t i;

	json_array_foreach(vcpus, i, v) {
		const char *sig = jget_str(v, "signal", "?");
		uint64_t cpu = 0, bank = 0;

		jget_u64(v, "cpu", &cpu);
		printf("  vCPU %llu: %s", (unsigned long long)cpu,
		       !strcmp(sig, "mc")     ? "#MC"
		       : !strcmp(sig, "cmci") ? "CMCI"
		       : !strcmp(sig, "none") ? "load"
					      : sig);
		if (!strcmp(sig, "mc"))
			printf(" MCG_STATUS %s", jget_str(v, "mcg_status", "?"));
		if (jget_u64(v, "bank", &bank))
			printf(" bank %llu STATUS %s ADDR %s MISC %s", (unsigned long long)bank,
			       jget_str(v, "status", "?"), jget_str(v, "addr", "?"),
			       jget_str(v, "misc", "?"));
		printf("\n");
	}
}

static void print_inject(const json_t *resp, void *ctx)
{
	const json_t *r;
	uint64_t last = 0;
	size_t i;

	(void)ctx;
	json_array_foreach(json_object_get(resp, "results"), i, r) {
		bool queued = false;

		jget_bool(r, "queued", &queued);
		printf("record %zu: %-7s class %-5s gpa %-12s %s\n", i + 1,
		       jget_str(r, "verdict", "?"), jget_str(r, "class", "?"),
		       jget_str(r, "gpa", "none"), queued ? "queued" : "not queued");
		printf("  reason: %s\n", jget_str(r, "reason", "-"));
		print_plan_vcpus(json_object_get(json_object_get(r, "plan"), "vcpus"));
	}
	if (jget_u64(resp, CTL_F_LAST_SEQ, &last))
		printf("last event: %llu\n", (unsigned long long)last);
}

int cmd_inject(int argc, char **argv)
{
	struct inject_args a = {.o = {.timeout = CLIENT_DEF_TIMEOUT}};
	json_t *req = NULL;
	int rc = parse_inject_args(argc, argv, &a);

	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	if (a.file) {
		rc = text_request(a.file, &req);
		if (rc)
			return rc;
	} else {
		req = error_request(&a.d);
	}
	return online_request(&a.o, req, print_inject, NULL);
}
