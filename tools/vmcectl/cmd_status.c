// SPDX-License-Identifier: MIT
/*
 * vmcectl status: a running vmce-vm's MCA state and counters (docs/control-protocol.md,
 * "status").
 */
#include <vmce/vmce.h>

#include "jsonutil.h"
#include "online.h"
#include "vmcectl.h"

static const char status_help[] =
	"Usage: vmcectl status [OPTIONS]\n"
	"\n"
	"Show a running vmce-vm's profile, every vCPU's MCG_STATUS and banks, the\n"
	"poisoned pages, the counters, and the action-optional errors held until the\n"
	"guest's machine-check handler clears MCG_STATUS.MCIP.\n"
	"\n"
	"Options:\n" COMMON_HELP;

static const char *hexstr(const json_t *v, const char *key)
{
	return jget_str(v, key, "?");
}

static void print_summary(const json_t *r)
{
	const json_t *ex = json_object_get(r, "exit");
	uint64_t n = 0, up = 0, mem = 0, last = 0;

	jget_u64(r, "uptime_ms", &up);
	printf("state:     %s (up %llu.%03llu s)\n", jget_str(r, "state", "?"),
	       (unsigned long long)(up / 1000), (unsigned long long)(up % 1000));
	printf("profile:   %s (MCG_CAP %s)\n", jget_str(r, "profile", "?"), hexstr(r, "mcg_cap"));
	jget_u64(r, "nr_vcpus", &n);
	jget_u64(r, "mem_size", &mem);
	printf("vcpus:     %llu, memory %llu MiB\n", (unsigned long long)n,
	       (unsigned long long)(mem >> 20));
	jget_u64(r, CTL_F_LAST_SEQ, &last);
	printf("events:    last sequence number %llu\n", (unsigned long long)last);
	if (json_is_object(ex)) {
		int64_t st = -1;

		jget_i64(ex, "status", &st);
		printf("exit:      status %lld: %s\n", (long long)st, jget_str(ex, "reason", "?"));
	}
}

/* One vCPU: its MCG_STATUS, then one line per bank. */
static void print_vcpu(const json_t *v, size_t i)
{
	const json_t *banks = json_object_get(v, "banks"), *k;
	uint64_t cpu = i, mcg = 0;
	bool pending = false;
	char mcgs[40], names[64];
	size_t b;

	jget_u64(v, "cpu", &cpu);
	jget_u64(v, "mcg_status", &mcg);
	jget_bool(v, "pending", &pending);
	snprintf(mcgs, sizeof(mcgs), "%s %s", hexstr(v, "mcg_status"),
		 mcg ? mcg_status_names(mcg, names, sizeof(names)) : "");
	json_array_foreach(banks, b, k) {
		uint64_t bank = b;

		jget_u64(k, "bank", &bank);
		if (b == 0)
			printf("%-4llu %-24s %-7s %-7s ", (unsigned long long)cpu, mcgs,
			       hexstr(v, "mcg_ext_ctl"), pending ? "yes" : "no");
		else
			printf("%-4s %-24s %-7s %-7s ", "", "", "", "");
		printf("%-4llu %-18s %-18s %-18s %-10s %s\n", (unsigned long long)bank,
		       hexstr(k, "ctl"), hexstr(k, "status"), hexstr(k, "addr"), hexstr(k, "misc"),
		       hexstr(k, "ctl2"));
	}
}

static void print_poison(const json_t *poison)
{
	const json_t *page;
	bool trunc = false;
	uint64_t n = 0;
	size_t i;

	jget_u64(poison, "count", &n);
	jget_bool(poison, "truncated", &trunc);
	printf("\npoisoned pages: %llu", (unsigned long long)n);
	json_array_foreach(json_object_get(poison, "pages"), i, page)
		if (json_is_string(page))
			printf("%s%s", i ? " " : ": ", json_string_value(page));
	printf("%s\n", trunc ? " ..." : "");
}

/* "key=value" for each of keys (0 when absent). */
static void print_u64s(const json_t *obj, const char *const *keys, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t k = 0;

		jget_u64(obj, keys[i], &k);
		printf(" %s=%llu", keys[i], (unsigned long long)k);
	}
}

static void print_counters(const json_t *counters)
{
	static const char *const kinds[] = {"forwarded", "dropped", "fatal",
					    "delivered", "masked",  "refused"};
	const json_t *by_class = json_object_get(counters, "by_class"), *v;
	const char *cls;

	printf("errors seen:");
	json_object_foreach((json_t *)by_class, cls, v) {
		if (json_is_integer(v))
			printf(" %s=%lld", cls, (long long)json_integer_value(v));
		else if (json_is_real(v))
			printf(" %s=%.17g", cls, json_real_value(v));
		else
			printf(" %s=?", cls);
	}
	printf("\nevents:     ");
	print_u64s(counters, kinds, sizeof(kinds) / sizeof(kinds[0]));
	printf("\n");
}

static void print_held(const json_t *held)
{
	static const char *const keys[] = {"count", "max",	"timeout_ms", "stalled_ms",
					   "held",  "released", "overflowed", "expired"};
	const json_t *h;
	size_t i;

	printf("held:       ");
	print_u64s(held, keys, sizeof(keys) / sizeof(keys[0]));
	printf("\n");
	json_array_foreach(json_object_get(held, "records"), i, h) {
		uint64_t seq = 0, cpu = 0, age = 0;
		int64_t wait = -1;
		bool bc = false;

		jget_u64(h, "seq", &seq);
		jget_u64(h, "vcpu", &cpu);
		jget_u64(h, "age_ms", &age);
		jget_i64(h, "waiting_for", &wait);
		jget_bool(h, "broadcast", &bc);
		printf("  event %llu: %s vcpu %llu%s gpa %s, held %llu ms", (unsigned long long)seq,
		       jget_str(h, "class", "?"), (unsigned long long)cpu, bc ? " (broadcast)" : "",
		       jget_str(h, "gpa", "-"), (unsigned long long)age);
		if (wait >= 0)
			printf(", waiting for vcpu %lld", (long long)wait);
		printf("\n");
	}
}

static void print_status(const json_t *r, void *ctx)
{
	const json_t *v;
	size_t i;

	(void)ctx;
	print_summary(r);
	printf("\n%-4s %-24s %-7s %-7s %-4s %-18s %-18s %-18s %-10s %s\n", "VCPU", "MCG_STATUS",
	       "EXT_CTL", "PENDING", "BANK", "CTL", "STATUS", "ADDR", "MISC", "CTL2");
	json_array_foreach(json_object_get(r, "vcpus"), i, v)
		print_vcpu(v, i);
	if (json_is_object(json_object_get(r, "poisoned")))
		print_poison(json_object_get(r, "poisoned"));
	if (json_is_object(json_object_get(r, "counters")))
		print_counters(json_object_get(r, "counters"));
	if (json_is_object(json_object_get(r, "held")))
		print_held(json_object_get(r, "held"));
}

int cmd_status(int argc, char **argv)
{
	return online_simple(argc, argv, CTL_CMD_STATUS, status_help, print_status);
}
