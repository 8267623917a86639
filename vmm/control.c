// SPDX-License-Identifier: MIT
/*
 * The control socket of vmce-vm: a UNIX stream socket, one JSON request per line, one JSON
 * response per line (docs/control-protocol.md).  One thread serves every connection with
 * poll(); every input is bounded and every malformed request gets an error naming the problem.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "vmm.h"

#define SBUF_LIT(s, lit)    sbuf_put((s), (lit), sizeof(lit) - 1)

#define MAX_CONNS	    8
#define MAX_LINE	    8192
#define OUT_LIMIT	    (1u << 20)
#define REQ_RATE	    500.0
#define INJ_RATE	    1000.0 /* requests per second, and the burst allowed */
#define MAX_TEXT_RECORDS    16
#define EVENTS_MAX	    4096
#define FOLLOW_BATCH	    64
#define POISON_LIST	    256
#define RESPONSE_SOFT_LIMIT (900u << 10)

struct conn {
	int fd;
	char in[MAX_LINE + 1];
	size_t in_len;
	bool discarding; /* dropping the rest of an over-long line */
	struct sbuf out; /* pending output */
	size_t out_off;	 /* bytes of out already sent */
	bool following;
	uint64_t follow_after;
	bool closing; /* close once the output is flushed */
	double tokens;
	uint64_t tokens_ns;
};

struct control {
	struct vmm *vm;
	int listen_fd;
	pthread_t thread;
	bool thread_started;
	atomic_bool finishing;
	struct conn *conns[MAX_CONNS];
	double inj_tokens;
	uint64_t inj_tokens_ns;
	struct vmce_event *evbuf; /* EVENTS_MAX events */
};

static struct control ctl_store;

static bool bucket_take(double *tokens, uint64_t *last_ns, double rate)
{
	uint64_t now = vmm_now_ns();

	if (*last_ns == 0) {
		*tokens = rate;
	} else {
		*tokens += (double)(now - *last_ns) * rate / 1e9;
		if (*tokens > rate)
			*tokens = rate;
	}
	*last_ns = now;
	if (*tokens < 1.0)
		return false;
	*tokens -= 1.0;
	return true;
}

/* ---- Responses ------------------------------------------------------------------------------ */

struct req {
	struct json_obj obj;
	const char *cmd;
	struct json_member *id;
	char err[512];
};

static void put_id(struct sbuf *s, const struct json_member *id)
{
	if (!id)
		return;
	SBUF_LIT(s, ",\"id\":");
	if (id->type == JSON_STRING)
		sbuf_json_str(s, id->str);
	else
		sbuf_put(s, id->str, id->len);
}

static void respond_error(struct sbuf *s, const struct json_member *id, const char *msg)
{
	SBUF_LIT(s, "{\"ok\":false");
	put_id(s, id);
	SBUF_LIT(s, ",\"error\":");
	sbuf_json_str(s, msg);
	SBUF_LIT(s, "}\n");
}

/* ---- Field access --------------------------------------------------------------------------- */

static int get_u64(struct req *r, const char *key, bool *present, uint64_t *out)
{
	struct json_member *m = json_get(&r->obj, key);
	const char *s;
	char *end;
	unsigned long long v;

	*present = m != NULL;
	if (!m)
		return 0;
	s = m->str;
	if (m->type == JSON_NUMBER) {
		if (strpbrk(s, ".eE-")) {
			snprintf(r->err, sizeof(r->err),
				 "field \"%s\": not an unsigned integer: %s", key, s);
			return -1;
		}
		errno = 0;
		v = strtoull(s, &end, 10);
		if (errno || *end || v > (1ull << 53)) {
			snprintf(r->err, sizeof(r->err), "field \"%s\": value out of range", key);
			return -1;
		}
		*out = v;
		return 0;
	}
	if (m->type != JSON_STRING) {
		snprintf(r->err, sizeof(r->err),
			 "field \"%s\": not an unsigned integer (expected a number or a string)",
			 key);
		return -1;
	}
	if (!*s || *s == '-' || *s == '+' || *s == ' ' || (*s < '0' || *s > '9')) {
		snprintf(r->err, sizeof(r->err), "field \"%s\": not an unsigned integer: \"%.64s\"",
			 key, s);
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno == ERANGE) {
		snprintf(r->err, sizeof(r->err), "field \"%s\": value out of range", key);
		return -1;
	}
	if (errno || *end || end == s) {
		snprintf(r->err, sizeof(r->err), "field \"%s\": not an unsigned integer: \"%.64s\"",
			 key, s);
		return -1;
	}
	*out = v;
	return 0;
}

static int get_bool(struct req *r, const char *key, bool def, bool *out)
{
	struct json_member *m = json_get(&r->obj, key);

	*out = def;
	if (!m)
		return 0;
	if (m->type != JSON_BOOL) {
		snprintf(r->err, sizeof(r->err), "field \"%s\" must be a boolean", key);
		return -1;
	}
	*out = m->b;
	return 0;
}

static int get_str(struct req *r, const char *key, struct json_member **out)
{
	struct json_member *m = json_get(&r->obj, key);

	*out = m;
	if (m && m->type != JSON_STRING) {
		snprintf(r->err, sizeof(r->err), "field \"%s\" must be a string", key);
		return -1;
	}
	return 0;
}

/* After a handler took its fields: any member not taken is unknown. */
static int check_unknown(struct req *r)
{
	for (size_t i = 0; i < r->obj.n; i++)
		if (!r->obj.m[i].used) {
			snprintf(r->err, sizeof(r->err), "unknown field \"%.64s\" for cmd \"%s\"",
				 r->obj.m[i].key, r->cmd);
			return -1;
		}
	return 0;
}

/* ---- inject --------------------------------------------------------------------------------- */

static const char *const class_names[] = {"srao", "srar", "ucna", "ce", "fatal"};
static const enum vmce_class class_values[] = {VMCE_CLASS_SRAO, VMCE_CLASS_SRAR, VMCE_CLASS_UCNA,
					       VMCE_CLASS_CE, VMCE_CLASS_FATAL};

/* Queue one planned error, kick its vCPUs and describe the outcome. */
static void inject_one(struct control *c, struct vmce_plan *planp, struct sbuf *s, bool first)
{
	struct vmm *vm = c->vm;
	struct vmce_plan plan = *planp;
	struct vmce_err err = {""};
	char gpa[32] = "null";
	bool queued = false;
	const char *verdict;
	char *pj;
	int r, n;

	if (!first)
		SBUF_LIT(s, ",");
	r = vmce_inject(vm->vmce, &plan, &err);
	if (r == 0) {
		vmce_kvm_kick_pending(vm->kvm);
		/* FORWARD queues records; FATAL queues a shutdown unless the policy only logs. */
		queued = plan.verdict != VMCE_VERDICT_DROP;
		verdict = vmce_verdict_name(plan.verdict);
	} else {
		verdict = "refused";
	}
	if (plan.has_gpa)
		snprintf(gpa, sizeof(gpa), "\"0x%" PRIx64 "\"", plan.gpa);
	SBUF_LIT(s, "{\"verdict\":");
	sbuf_json_str(s, verdict);
	SBUF_LIT(s, ",\"class\":");
	sbuf_json_str(s, vmce_class_name(plan.cls));
	sbuf_printf(s, ",\"gpa\":%s,\"queued\":%s,\"reason\":", gpa, queued ? "true" : "false");
	sbuf_json_str(s, r == 0 ? plan.reason : err.msg);
	n = vmce_plan_format_json(&plan, NULL, 0);
	if (n > 0 && n < 65536) {
		pj = malloc((size_t)n + 1);
		if (pj) {
			vmce_plan_format_json(&plan, pj, (size_t)n + 1);
			SBUF_LIT(s, ",\"plan\":");
			sbuf_put(s, pj, strlen(pj));
			free(pj);
		}
	}
	SBUF_LIT(s, "}");
}

static int parse_class(struct req *r, const struct json_member *m, enum vmce_class *out)
{
	for (size_t i = 0; i < sizeof(class_names) / sizeof(class_names[0]); i++)
		if (!strcmp(m->str, class_names[i])) {
			*out = class_values[i];
			return 0;
		}
	snprintf(r->err, sizeof(r->err),
		 "field \"class\" must be one of srao, srar, ucna, ce, fatal");
	return -1;
}

static int do_inject(struct control *c, struct req *r, struct sbuf *s)
{
	static const char *const common[] = {"cpu", "broadcast", "lmce"};
	static const char *const raw[] = {"addr", "misc", "mcg_status"};
	struct vmm *vm = c->vm;
	struct json_member *cls_m, *text_m, *status_m;
	struct vmce_host_error he[MAX_TEXT_RECORDS];
	struct vmce_plan plans[MAX_TEXT_RECORDS];
	uint64_t v, cpu = 0;
	bool present, bcast, lmce, in_handler;
	int forms, nrec = 1;

	if (get_str(r, "class", &cls_m) || get_str(r, "text", &text_m))
		return -1;
	status_m = json_get(&r->obj, "status");
	forms = !!cls_m + !!text_m + !!status_m;
	if (forms != 1) {
		snprintf(r->err, sizeof(r->err),
			 "inject needs exactly one of \"class\", \"text\" or \"status\"");
		return -1;
	}
	if (get_bool(r, "in_handler", false, &in_handler))
		return -1;
	if (in_handler && !text_m) {
		snprintf(r->err, sizeof(r->err), "field \"in_handler\" needs \"text\"");
		return -1;
	}
	if (text_m) {
		struct vmce_err err = {""};
		int n;

		for (size_t i = 0; i < 3; i++) {
			if (json_get(&r->obj, common[i]) || json_get(&r->obj, raw[i]) ||
			    json_get(&r->obj, "gpa")) {
				const char *bad = json_get(&r->obj, common[i]) ? common[i]
						  : json_get(&r->obj, raw[i])  ? raw[i]
									       : "gpa";

				snprintf(r->err, sizeof(r->err),
					 "field \"%s\" cannot be combined with \"text\"", bad);
				return -1;
			}
		}
		if (check_unknown(r))
			return -1;
		n = vmce_parse_inject_text(text_m->str, text_m->len, VMCE_ADDR_GPA, he,
					   MAX_TEXT_RECORDS, &err);
		if (n < 0) {
			snprintf(r->err, sizeof(r->err), "mce-inject text: %s", err.msg);
			return -1;
		}
		if (n == 0) {
			snprintf(r->err, sizeof(r->err), "mce-inject text has no record");
			return -1;
		}
		nrec = n;
		if (in_handler && (n != 2 || he[0].vcpu < 0)) {
			snprintf(r->err, sizeof(r->err),
				 "field \"in_handler\": the text needs exactly two records, the "
				 "first with a CPU");
			return -1;
		}
		for (int i = 0; i < n; i++)
			if (he[i].vcpu >= (int)vm->nr_vcpus) {
				snprintf(r->err, sizeof(r->err),
					 "mce-inject text: record %d: CPU %d does not exist (the "
					 "VM has %u vCPUs)",
					 i + 1, he[i].vcpu, vm->nr_vcpus);
				return -1;
			}
	} else {
		vmce_host_error_init(&he[0]);
		he[0].origin = VMCE_ORIGIN_INJECT;
		if (get_u64(r, "cpu", &present, &cpu))
			return -1;
		if (cpu >= vm->nr_vcpus) {
			snprintf(r->err, sizeof(r->err),
				 "field \"cpu\": vCPU %" PRIu64 " does not exist (the VM has %u "
				 "vCPUs)",
				 cpu, vm->nr_vcpus);
			return -1;
		}
		if (get_bool(r, "broadcast", true, &bcast) || get_bool(r, "lmce", false, &lmce))
			return -1;
		he[0].vcpu = (int)cpu;
		he[0].no_broadcast = !bcast;
		he[0].local = lmce;
		if (cls_m) {
			for (size_t i = 0; i < 3; i++)
				if (json_get(&r->obj, raw[i])) {
					snprintf(r->err, sizeof(r->err),
						 "field \"%s\" cannot be combined with \"class\"",
						 raw[i]);
					return -1;
				}
			if (parse_class(r, cls_m, &he[0].cls))
				return -1;
			if (get_u64(r, "gpa", &present, &v))
				return -1;
			if (present) {
				he[0].addr_kind = VMCE_ADDR_GPA;
				he[0].addr = v;
			} else if (he[0].cls != VMCE_CLASS_FATAL) {
				snprintf(r->err, sizeof(r->err),
					 "inject with class %s needs field \"gpa\"", cls_m->str);
				return -1;
			}
		} else {
			if (json_get(&r->obj, "gpa")) {
				snprintf(r->err, sizeof(r->err),
					 "field \"gpa\" cannot be combined with \"status\" (use "
					 "\"addr\")");
				return -1;
			}
			he[0].cls = VMCE_CLASS_AUTO;
			if (get_u64(r, "status", &present, &he[0].status))
				return -1;
			if (get_u64(r, "addr", &present, &v))
				return -1;
			if (present) {
				he[0].addr_kind = VMCE_ADDR_GPA;
				he[0].addr = v;
			}
			if (get_u64(r, "misc", &present, &he[0].misc) ||
			    get_u64(r, "mcg_status", &present, &he[0].mcg_status))
				return -1;
		}
		if (check_unknown(r))
			return -1;
	}
	if (!bucket_take(&c->inj_tokens, &c->inj_tokens_ns, INJ_RATE)) {
		snprintf(r->err, sizeof(r->err), "rate limit: more than %d injections per second",
			 (int)INJ_RATE);
		return -1;
	}
	/* Plan every record first: a description the policy rejects injects nothing. */
	for (int i = 0; i < nrec; i++) {
		struct vmce_err err = {""};

		if (vmce_plan_error(vm->vmce, &he[i], &plans[i], &err)) {
			if (nrec > 1)
				snprintf(r->err, sizeof(r->err), "policy error: record %d: %s",
					 i + 1, err.msg);
			else
				snprintf(r->err, sizeof(r->err), "policy error: %s", err.msg);
			return -1;
		}
	}
	if (in_handler && atomic_load(&vm->vcpu[he[0].vcpu].armed)) {
		snprintf(r->err, sizeof(r->err),
			 "field \"in_handler\": vCPU %d already has an armed error", he[0].vcpu);
		return -1;
	}
	SBUF_LIT(s, "{\"ok\":true");
	put_id(s, r->id);
	SBUF_LIT(s, ",\"results\":[");
	if (in_handler) {
		/* The second record is injected by the first one's vCPU while its handler runs
		 * (the guest consumed poison inside its #MC handler: vcpu.c, armed_inject()). */
		struct vmm_vcpu *t = &vm->vcpu[he[0].vcpu];

		t->armed_error = he[1];
		atomic_store(&t->armed, 1);
		inject_one(c, &plans[0], s, true);
		SBUF_LIT(s, ",{\"verdict\":\"armed\",\"class\":");
		sbuf_json_str(s, vmce_class_name(plans[1].cls));
		sbuf_printf(s,
			    ",\"cpu\":%d,\"reason\":\"injected by vCPU %d inside its "
			    "#MC handler\"}",
			    he[0].vcpu, he[0].vcpu);
	} else {
		for (int i = 0; i < nrec; i++)
			inject_one(c, &plans[i], s, i == 0);
	}
	sbuf_printf(s, "],\"last_seq\":%" PRIu64 "}\n", vmce_events_last_seq(vm->vmce));
	return 0;
}

/* ---- status --------------------------------------------------------------------------------- */

/* Records waiting for MCG_STATUS.MCIP to clear (policy.h, "Held records"): the bounds, the
 * totals and the oldest HELD_LIST of them. */
#define HELD_LIST 32

static void put_held(struct sbuf *s, struct vmce_vm *vmce)
{
	struct vmce_held_info h[HELD_LIST];
	struct vmce_hold_status hs;
	size_t n;

	vmce_hold_status(vmce, &hs);
	n = vmce_hold_list(vmce, h, HELD_LIST);
	sbuf_printf(s,
		    ",\"held\":{\"count\":%u,\"max\":%u,\"timeout_ms\":%u,\"stalled_ms\":%" PRIu64
		    ",\"held\":%" PRIu64 ",\"released\":%" PRIu64 ",\"overflowed\":%" PRIu64
		    ",\"expired\":%" PRIu64 ",\"records\":[",
		    hs.count, hs.max_records, hs.timeout_ms, hs.stalled_ns / 1000000, hs.held,
		    hs.released, hs.overflowed, hs.expired);
	for (size_t i = 0; i < n && i < HELD_LIST; i++) {
		sbuf_printf(s,
			    "%s{\"seq\":%" PRIu64 ",\"class\":\"%s\",\"vcpu\":%u,"
			    "\"broadcast\":%s,\"gpa\":",
			    i ? "," : "", h[i].event_seq, vmce_class_name(h[i].cls), h[i].target,
			    h[i].broadcast ? "true" : "false");
		if (h[i].has_gpa)
			sbuf_printf(s, "\"0x%" PRIx64 "\"", h[i].gpa);
		else
			SBUF_LIT(s, "null");
		sbuf_printf(s, ",\"age_ms\":%" PRIu64 ",\"waiting_for\":%d}", h[i].age_ns / 1000000,
			    h[i].waiting_for);
	}
	sbuf_printf(s, "],\"truncated\":%s}", n > HELD_LIST ? "true" : "false");
}

static int do_status(struct control *c, struct req *r, struct sbuf *s)
{
	struct vmm *vm = c->vm;
	const struct vmce_profile *p = vmce_vm_profile(vm->vmce);
	struct vmce_counters cnt;
	uint64_t pages[POISON_LIST];
	char prof[256];
	size_t np, total;
	bool stopped;

	if (check_unknown(r))
		return -1;
	stopped = atomic_load(&vm->stopped);
	vmce_profile_format(p, prof, sizeof(prof));
	SBUF_LIT(s, "{\"ok\":true");
	put_id(s, r->id);
	sbuf_printf(s, ",\"state\":\"%s\",\"profile\":", stopped ? "stopped" : "running");
	sbuf_json_str(s, prof);
	sbuf_printf(s,
		    ",\"mcg_cap\":\"0x%" PRIx64 "\",\"vendor\":\"%s\",\"nr_vcpus\":%u,"
		    "\"mem_size\":\"0x%" PRIx64 "\",\"uptime_ms\":%" PRIu64 ",\"last_seq\":%" PRIu64
		    ",\"vcpus\":[",
		    vmce_profile_mcg_cap(p), p->vendor == VMCE_VENDOR_AMD ? "amd" : "intel",
		    vm->nr_vcpus, vm->mem_size,
		    vm->start_ns ? (vmm_now_ns() - vm->start_ns) / 1000000 : 0,
		    vmce_events_last_seq(vm->vmce));
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct vmce_vcpu *vc = vmce_vm_vcpu(vm->vmce, i);
		struct vmce_vcpu_state st;

		vmce_vcpu_get_state(vc, &st);
		sbuf_printf(s,
			    "%s{\"cpu\":%u,\"mcg_status\":\"0x%" PRIx64
			    "\",\"mcg_ext_ctl\":\"0x%" PRIx64 "\",\"pending\":%s,\"banks\":[",
			    i ? "," : "", i, st.mcg_status, st.mcg_ext_ctl,
			    vmce_vcpu_pending(vc) ? "true" : "false");
		for (unsigned b = 0; b < p->banks && b < VMCE_MAX_BANKS; b++)
			sbuf_printf(s,
				    "%s{\"bank\":%u,\"ctl\":\"0x%" PRIx64
				    "\",\"status\":\"0x%" PRIx64 "\",\"addr\":\"0x%" PRIx64
				    "\",\"misc\":\"0x%" PRIx64 "\",\"ctl2\":\"0x%" PRIx64 "\"}",
				    b ? "," : "", b, st.bank[b].ctl, st.bank[b].status,
				    st.bank[b].addr, st.bank[b].misc, st.bank[b].ctl2);
		SBUF_LIT(s, "]}");
	}
	total = vmce_poison_count(vm->vmce);
	np = vmce_poison_list(vm->vmce, pages, POISON_LIST, true, 0);
	sbuf_printf(s, "],\"poisoned\":{\"count\":%zu,\"pages\":[", total);
	for (size_t i = 0; i < np; i++)
		sbuf_printf(s, "%s\"0x%" PRIx64 "\"", i ? "," : "", pages[i]);
	sbuf_printf(s, "],\"truncated\":%s}", total > np ? "true" : "false");
	vmce_get_counters(vm->vmce, &cnt);
	SBUF_LIT(s, ",\"counters\":{\"by_class\":{");
	for (unsigned k = 0; k < 6; k++)
		sbuf_printf(s, "%s\"%s\":%" PRIu64, k ? "," : "",
			    vmce_class_name((enum vmce_class)k), cnt.by_class[k]);
	sbuf_printf(s,
		    "},\"forwarded\":%" PRIu64 ",\"dropped\":%" PRIu64 ",\"fatal\":%" PRIu64
		    ",\"delivered\":%" PRIu64 ",\"masked\":%" PRIu64 ",\"refused\":%" PRIu64 "}",
		    cnt.forwarded, cnt.dropped, cnt.fatal, cnt.delivered, cnt.masked, cnt.refused);
	put_held(s, vm->vmce);
	if (stopped) {
		pthread_mutex_lock(&vm->lock);
		sbuf_printf(s, ",\"exit\":{\"status\":%d,\"reason\":", vm->exit_status);
		sbuf_json_str(s, vm->exit_reason);
		pthread_mutex_unlock(&vm->lock);
		SBUF_LIT(s, "}}\n");
	} else {
		SBUF_LIT(s, ",\"exit\":null}\n");
	}
	return 0;
}

/* ---- events --------------------------------------------------------------------------------- */

static void put_event(struct sbuf *s, const struct vmce_event *ev)
{
	char buf[1024];
	int n = vmce_event_format_json(ev, buf, sizeof(buf));

	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf)) {
		char *big = malloc((size_t)n + 1);

		if (!big)
			return;
		vmce_event_format_json(ev, big, (size_t)n + 1);
		sbuf_put(s, big, (size_t)n);
		free(big);
		return;
	}
	sbuf_put(s, buf, (size_t)n);
}

static int do_events(struct control *c, struct conn *cn, struct req *r, struct sbuf *s)
{
	struct vmm *vm = c->vm;
	uint64_t after = 0, max = 256, last;
	bool present, max_present, follow;
	size_t n, i;

	if (get_u64(r, "after", &present, &after) || get_u64(r, "max", &max_present, &max) ||
	    get_bool(r, "follow", false, &follow))
		return -1;
	if (max_present && follow) {
		snprintf(r->err, sizeof(r->err),
			 "field \"max\" cannot be combined with \"follow\"");
		return -1;
	}
	if (max < 1 || max > EVENTS_MAX) {
		snprintf(r->err, sizeof(r->err), "field \"max\" must be between 1 and %d",
			 EVENTS_MAX);
		return -1;
	}
	if (check_unknown(r))
		return -1;
	last = vmce_events_last_seq(vm->vmce);
	SBUF_LIT(s, "{\"ok\":true");
	put_id(s, r->id);
	if (follow) {
		sbuf_printf(s, ",\"follow\":true,\"last_seq\":%" PRIu64 "}\n", last);
		cn->following = true;
		cn->follow_after = after;
		return 0;
	}
	n = vmce_events_read(vm->vmce, after, c->evbuf, (size_t)max);
	SBUF_LIT(s, ",\"events\":[");
	for (i = 0; i < n && s->len < RESPONSE_SOFT_LIMIT; i++) {
		if (i)
			SBUF_LIT(s, ",");
		put_event(s, &c->evbuf[i]);
	}
	if (i)
		after = c->evbuf[i - 1].seq;
	sbuf_printf(s, "],\"last_seq\":%" PRIu64 ",\"more\":%s}\n", last,
		    last > after ? "true" : "false");
	return 0;
}

/* ---- migrate -------------------------------------------------------------------------------- */

/*
 * Stop-and-copy migration to a `vmce-vm --incoming` (vmm/migrate.c).  Runs on this thread: the
 * control socket answers nothing else meanwhile (the guest is paused for most of it anyway).
 * Success: the response, a "migrated" line in the events log, and the VM stops with status 0.
 */
static int do_migrate(struct control *c, struct req *r, struct sbuf *s)
{
	struct vmm *vm = c->vm;
	struct json_member *to;
	struct vmm_mig_result res;
	bool abort_on_error;

	if (get_str(r, "to", &to) || get_bool(r, "abort_on_error", false, &abort_on_error))
		return -1;
	if (!to) {
		snprintf(r->err, sizeof(r->err), "migrate needs field \"to\" (the destination)");
		return -1;
	}
	if (to->len == 0 || to->len > 200 || strlen(to->str) != to->len) {
		snprintf(r->err, sizeof(r->err), "field \"to\" must be 1 to 200 bytes, no NUL");
		return -1;
	}
	if (check_unknown(r))
		return -1;
	if (vmm_migrate_out(vm, to->str, abort_on_error, &res)) {
		snprintf(r->err, sizeof(r->err),
			 "migration failed, the guest keeps running here: %.400s", res.err.msg);
		return -1;
	}
	SBUF_LIT(s, "{\"ok\":true");
	put_id(s, r->id);
	SBUF_LIT(s, ",\"migrated\":true,\"to\":");
	sbuf_json_str(s, to->str);
	sbuf_printf(s,
		    ",\"bytes\":%" PRIu64 ",\"pages_sent\":%" PRIu64 ",\"pages_skipped\":%" PRIu64
		    ",\"vmce_bytes\":%" PRIu64 ",\"resends\":%u,\"total_ms\":%.1f,"
		    "\"downtime_ms\":%.1f}\n",
		    res.bytes, res.pages_sent, res.pages_skipped, res.vmce_bytes, res.resends,
		    res.total_ms, res.downtime_ms);
	if (vm->events_log) {
		struct sbuf line;

		sbuf_init(&line, 4096);
		SBUF_LIT(&line, "{\"kind\":\"migrated\",\"to\":");
		sbuf_json_str(&line, to->str);
		sbuf_printf(&line,
			    ",\"bytes\":%" PRIu64 ",\"pages_skipped\":%" PRIu64
			    ",\"resends\":%u,\"last_seq\":%" PRIu64 "}\n",
			    res.bytes, res.pages_skipped, res.resends,
			    vmce_events_last_seq(vm->vmce));
		pthread_mutex_lock(&vm->out_lock);
		if (line.buf)
			fputs(line.buf, vm->events_log);
		fflush(vm->events_log);
		pthread_mutex_unlock(&vm->out_lock);
		sbuf_free(&line);
	}
	vmm_stop(vm, VMM_EXIT_OK, "migrated to %.200s", to->str);
	return 0;
}

/* ---- dispatch ------------------------------------------------------------------------------- */

static void handle_line(struct control *c, struct conn *cn, char *line, size_t len)
{
	struct sbuf *s = &cn->out;
	struct req r;
	struct json_member *cmd;
	size_t before = s->len;
	int ret = -1;

	while (len && (line[len - 1] == '\r'))
		len--;
	{
		size_t k = 0;

		while (k < len && (line[k] == ' ' || line[k] == '\t'))
			k++;
		if (k == len)
			return;
	}
	if (!bucket_take(&cn->tokens, &cn->tokens_ns, REQ_RATE)) {
		respond_error(s, NULL,
			      "rate limit: more than 500 requests per second on this connection");
		return;
	}
	if (cn->following) {
		respond_error(s, NULL,
			      "this connection is following events; use another connection for "
			      "requests");
		return;
	}
	memset(&r, 0, sizeof(r));
	if (json_parse_object(line, len, &r.obj, r.err, sizeof(r.err))) {
		respond_error(s, NULL, r.err);
		return;
	}
	r.id = json_get(&r.obj, "id");
	if (r.id &&
	    !(r.id->type == JSON_NUMBER || (r.id->type == JSON_STRING && r.id->len <= 64))) {
		r.id = NULL;
		respond_error(s, NULL,
			      "field \"id\" must be a number or a string of at most 64 bytes");
		goto out;
	}
	cmd = json_get(&r.obj, "cmd");
	if (!cmd) {
		snprintf(r.err, sizeof(r.err), "missing field \"cmd\"");
	} else if (cmd->type != JSON_STRING) {
		snprintf(r.err, sizeof(r.err), "field \"cmd\" must be a string");
	} else {
		r.cmd = cmd->str;
		if (!strcmp(r.cmd, "inject")) {
			if (atomic_load(&c->vm->stopped))
				snprintf(r.err, sizeof(r.err), "the VM is shutting down");
			else
				ret = do_inject(c, &r, s);
		} else if (!strcmp(r.cmd, "status")) {
			ret = do_status(c, &r, s);
		} else if (!strcmp(r.cmd, "events")) {
			ret = do_events(c, cn, &r, s);
		} else if (!strcmp(r.cmd, "migrate")) {
			if (atomic_load(&c->vm->stopped))
				snprintf(r.err, sizeof(r.err), "the VM is shutting down");
			else
				ret = do_migrate(c, &r, s);
		} else if (!strcmp(r.cmd, "quit")) {
			ret = check_unknown(&r);
			if (!ret) {
				SBUF_LIT(s, "{\"ok\":true");
				put_id(s, r.id);
				SBUF_LIT(s, ",\"quit\":true}\n");
				vmm_stop(c->vm, VMM_EXIT_OK,
					 "quit requested on the control socket");
			}
		} else {
			snprintf(r.err, sizeof(r.err),
				 "unknown cmd \"%.64s\" (expected inject, status, events, migrate "
				 "or quit)",
				 r.cmd);
		}
	}
	if (ret) {
		/* Drop a partial response, answer the error instead. */
		s->len = before;
		s->overflow = false;
		if (s->buf)
			s->buf[s->len] = '\0';
		respond_error(s, r.id, r.err);
	}
out:
	json_free(&r.obj);
}

/* ---- connections ---------------------------------------------------------------------------- */

static void conn_close(struct control *c, int slot)
{
	struct conn *cn = c->conns[slot];

	close(cn->fd);
	sbuf_free(&cn->out);
	free(cn);
	c->conns[slot] = NULL;
}

static void conn_compact(struct conn *cn)
{
	if (cn->out_off == 0)
		return;
	memmove(cn->out.buf, cn->out.buf + cn->out_off, cn->out.len - cn->out_off);
	cn->out.len -= cn->out_off;
	cn->out_off = 0;
	cn->out.buf[cn->out.len] = '\0';
}

/* Returns -1 when the connection must be closed. */
static int conn_flush(struct conn *cn)
{
	while (cn->out_off < cn->out.len) {
		ssize_t w = send(cn->fd, cn->out.buf + cn->out_off, cn->out.len - cn->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR)
				continue;
			return -1;
		}
		cn->out_off += (size_t)w;
	}
	if (cn->out_off == cn->out.len) {
		cn->out.len = 0;
		cn->out_off = 0;
	} else if (cn->out_off > (64u << 10)) {
		conn_compact(cn);
	}
	return 0;
}

static int conn_read(struct control *c, struct conn *cn)
{
	char buf[4096];
	ssize_t n = recv(cn->fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n == 0)
		return -1;
	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
	for (ssize_t i = 0; i < n; i++) {
		char ch = buf[i];

		if (ch == '\n') {
			if (cn->discarding)
				cn->discarding = false;
			else
				handle_line(c, cn, cn->in, cn->in_len);
			cn->in_len = 0;
			if (cn->out.overflow)
				return -1;
			continue;
		}
		if (cn->discarding)
			continue;
		if (cn->in_len >= MAX_LINE - 1) {
			respond_error(&cn->out, NULL, "request line too long (limit 8192 bytes)");
			cn->discarding = true;
			cn->in_len = 0;
			continue;
		}
		cn->in[cn->in_len++] = ch;
	}
	return cn->out.overflow ? -1 : 0;
}

/* Write new events (and gaps) to a following connection, bounded by its output limit. */
static void pump_follower(struct control *c, struct conn *cn)
{
	struct vmm *vm = c->vm;

	while (cn->out.len - cn->out_off < OUT_LIMIT / 2) {
		size_t n = vmce_events_read(vm->vmce, cn->follow_after, c->evbuf, FOLLOW_BATCH);

		if (n == 0)
			break;
		if (c->evbuf[0].seq > cn->follow_after + 1)
			sbuf_printf(&cn->out,
				    "{\"kind\":\"lost\",\"after\":%" PRIu64 ",\"next\":%" PRIu64
				    "}\n",
				    cn->follow_after, c->evbuf[0].seq);
		for (size_t i = 0; i < n; i++) {
			put_event(&cn->out, &c->evbuf[i]);
			SBUF_LIT(&cn->out, "\n");
		}
		cn->follow_after = c->evbuf[n - 1].seq;
	}
}

static void accept_conn(struct control *c)
{
	int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	struct conn *cn;
	int slot = -1;

	if (fd < 0)
		return;
	for (int i = 0; i < MAX_CONNS; i++)
		if (!c->conns[i]) {
			slot = i;
			break;
		}
	if (slot < 0) {
		static const char msg[] =
			"{\"ok\":false,\"error\":\"too many control connections (limit 8)\"}\n";

		(void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		return;
	}
	cn = calloc(1, sizeof(*cn));
	if (!cn) {
		close(fd);
		return;
	}
	cn->fd = fd;
	sbuf_init(&cn->out, OUT_LIMIT);
	c->conns[slot] = cn;
}

static void send_vm_exit(struct control *c)
{
	struct vmm *vm = c->vm;
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	for (int i = 0; i < MAX_CONNS; i++) {
		struct conn *cn = c->conns[i];

		if (!cn || !cn->following)
			continue;
		pump_follower(c, cn);
		pthread_mutex_lock(&vm->lock);
		sbuf_printf(&cn->out,
			    "{\"kind\":\"vm-exit\",\"status\":%d,\"reason\":", vm->exit_status);
		sbuf_json_str(&cn->out, vm->exit_reason);
		pthread_mutex_unlock(&vm->lock);
		sbuf_printf(&cn->out, ",\"time_ns\":%" PRIu64 "}\n",
			    (uint64_t)now.tv_sec * UINT64_C(1000000000) + (uint64_t)now.tv_nsec);
		cn->closing = true;
	}
}

static void *control_thread(void *arg)
{
	struct control *c = arg;
	struct vmm *vm = c->vm;
	bool exit_sent = false;
	uint64_t finish_deadline = 0;

	for (;;) {
		struct pollfd pfd[MAX_CONNS + 2];
		int slot_of[MAX_CONNS + 2];
		nfds_t n = 0;
		bool finishing = atomic_load(&c->finishing);

		if (finishing && !exit_sent) {
			send_vm_exit(c);
			exit_sent = true;
		}
		for (int i = 0; i < MAX_CONNS; i++) {
			struct conn *cn = c->conns[i];

			if (!cn)
				continue;
			if (cn->following)
				pump_follower(c, cn);
			if (conn_flush(cn) || cn->out.overflow ||
			    (cn->closing && cn->out.len == 0)) {
				conn_close(c, i);
				continue;
			}
			pfd[n].fd = cn->fd;
			pfd[n].events = (cn->out.len ? POLLOUT : 0) | (finishing ? 0 : POLLIN);
			pfd[n].revents = 0;
			slot_of[n++] = i;
		}
		if (finishing) {
			bool pending = false;

			for (int i = 0; i < MAX_CONNS; i++)
				pending |= c->conns[i] && c->conns[i]->out.len > 0;
			if (!pending)
				break;
		}
		pfd[n].fd = c->listen_fd;
		pfd[n].events = finishing ? 0 : POLLIN;
		pfd[n].revents = 0;
		slot_of[n++] = -1;
		pfd[n].fd = vm->wake_fd;
		pfd[n].events = POLLIN;
		pfd[n].revents = 0;
		slot_of[n++] = -2;
		if (poll(pfd, n, finishing ? 100 : 1000) < 0 && errno != EINTR)
			break;
		for (nfds_t k = 0; k < n; k++) {
			if (!pfd[k].revents)
				continue;
			if (slot_of[k] == -1) {
				accept_conn(c);
			} else if (slot_of[k] == -2) {
				uint64_t v;

				(void)!read(vm->wake_fd, &v, sizeof(v));
			} else {
				struct conn *cn = c->conns[slot_of[k]];

				if (!cn)
					continue;
				if ((pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) &&
				    conn_read(c, cn)) {
					/* Flush what can be flushed (e.g. an error) then close. */
					(void)conn_flush(cn);
					conn_close(c, slot_of[k]);
				}
			}
		}
		if (finishing) {
			/* Bounded: give slow readers at most about 2 s. */
			if (!finish_deadline)
				finish_deadline = vmm_now_ns() + 2000000000ull;
			else if (vmm_now_ns() > finish_deadline)
				break;
		}
	}
	for (int i = 0; i < MAX_CONNS; i++)
		if (c->conns[i])
			conn_close(c, i);
	return NULL;
}

int control_start(struct vmm *vm)
{
	struct control *c = &ctl_store;
	struct sockaddr_un addr;
	struct stat st;
	int r;

	memset(c, 0, sizeof(*c));
	c->vm = vm;
	c->listen_fd = -1;
	if (strlen(vm->control_path) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "vmce-vm: --control %s: path longer than %zu bytes\n",
			vm->control_path, sizeof(addr.sun_path) - 1);
		return -1;
	}
	if (lstat(vm->control_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			fprintf(stderr, "vmce-vm: --control %s: exists and is not a socket\n",
				vm->control_path);
			return -1;
		}
		unlink(vm->control_path);
	}
	c->evbuf = calloc(EVENTS_MAX, sizeof(*c->evbuf));
	if (!c->evbuf)
		return -1;
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c->listen_fd < 0) {
		fprintf(stderr, "vmce-vm: socket: %s\n", strerror(errno));
		return -1;
	}
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	strcpy(addr.sun_path, vm->control_path);
	{
		mode_t old = umask(0177);

		r = bind(c->listen_fd, (struct sockaddr *)&addr, sizeof(addr));
		umask(old);
	}
	if (r < 0 || listen(c->listen_fd, 16) < 0) {
		fprintf(stderr, "vmce-vm: --control %s: %s\n", vm->control_path, strerror(errno));
		close(c->listen_fd);
		return -1;
	}
	r = pthread_create(&c->thread, NULL, control_thread, c);
	if (r) {
		fprintf(stderr, "vmce-vm: control thread: %s\n", strerror(r));
		close(c->listen_fd);
		unlink(vm->control_path);
		return -1;
	}
	c->thread_started = true;
	return 0;
}

void control_finish(struct vmm *vm)
{
	struct control *c = &ctl_store;

	if (!c->thread_started)
		return;
	atomic_store(&c->finishing, true);
	vmm_wake_control(vm);
	pthread_join(c->thread, NULL);
	c->thread_started = false;
	close(c->listen_fd);
	unlink(vm->control_path);
	free(c->evbuf);
	c->evbuf = NULL;
}
