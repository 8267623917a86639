// SPDX-License-Identifier: MIT
/*
 * The commands of the control socket (docs/control-protocol.md §4-8) and their table.  Each
 * handler reads its fields through control_req.h and builds its response with jansson.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"

static json_t *hex(uint64_t v)
{
	return json_sprintf("0x%" PRIx64, v);
}

/* Add more's members to resp (more is released). */
static void merge(json_t *resp, json_t *more)
{
	if (more)
		json_object_update(resp, more);
	json_decref(more);
}

/* vmce's JSON text (of a plan or an event) as a value; NULL when it does not parse. */
static json_t *json_of_text(char *text)
{
	json_t *v = text ? json_loads(text, 0, NULL) : NULL;

	free(text);
	return v;
}

/* ---- inject --------------------------------------------------------------------------------- */

static const char *const class_names[] = {"srao", "srar", "ucna", "ce", "fatal"};
static const enum vmce_class class_values[] = {VMCE_CLASS_SRAO, VMCE_CLASS_SRAR, VMCE_CLASS_UCNA,
					       VMCE_CLASS_CE, VMCE_CLASS_FATAL};
static const char *const common_fields[] = {CTL_F_CPU, CTL_F_BROADCAST, CTL_F_LMCE};
static const char *const raw_fields[] = {CTL_F_ADDR, CTL_F_MISC, CTL_F_MCG_STATUS};

static json_t *plan_json(const struct vmce_plan *plan)
{
	int n = vmce_plan_format_json(plan, NULL, 0);
	char *text;

	if (n <= 0 || n >= 65536)
		return NULL;
	text = malloc((size_t)n + 1);
	if (text)
		vmce_plan_format_json(plan, text, (size_t)n + 1);
	return json_of_text(text);
}

/* Queue one planned error, kick its vCPUs and describe the outcome. */
static json_t *inject_one(struct control *c, const struct vmce_plan *planp)
{
	struct vmm *vm = c->vm;
	struct vmce_plan plan = *planp;
	struct vmce_err err = {""};
	bool queued = false;
	const char *verdict = "refused";
	int r = vmce_inject(vm->vmce, &plan, &err);
	json_t *res, *pj;

	if (r == 0) {
		vmce_kvm_kick_pending(vm->kvm);
		/* FORWARD queues records; FATAL queues a shutdown unless the policy only logs. */
		queued = plan.verdict != VMCE_VERDICT_DROP;
		verdict = vmce_verdict_name(plan.verdict);
	}
	res = json_pack("{s:s, s:s, s:o, s:b, s:o}", "verdict", verdict, "class",
			vmce_class_name(plan.cls), "gpa",
			plan.has_gpa ? hex(plan.gpa) : json_null(), "queued", queued, "reason",
			vmm_json_text(r == 0 ? plan.reason : err.msg));
	pj = plan_json(&plan);
	if (res && pj)
		json_object_set_new(res, "plan", pj);
	else
		json_decref(pj);
	return res;
}

static int parse_class(struct ctl_req *r, const char *name, enum vmce_class *out)
{
	for (size_t i = 0; i < sizeof(class_names) / sizeof(class_names[0]); i++)
		if (!strcmp(name, class_names[i])) {
			*out = class_values[i];
			return 0;
		}
	return vmm_fail(&r->err, "field \"class\" must be one of srao, srar, ucna, ce, fatal");
}

/* Form B: mce-inject text, every record checked; *nrec records in he. */
static int inject_text_form(struct control *c, struct ctl_req *r, json_t *text, bool in_handler,
			    struct vmce_host_error *he, int *nrec)
{
	struct vmce_err err = {""};
	int n;

	for (size_t i = 0; i < 3; i++) {
		const char *bad = ctl_req_get(r, common_fields[i]) ? common_fields[i]
				  : ctl_req_get(r, raw_fields[i])  ? raw_fields[i]
				  : ctl_req_get(r, CTL_F_GPA)	   ? CTL_F_GPA
								   : NULL;

		if (bad)
			return vmm_fail(&r->err, "field \"%s\" cannot be combined with \"text\"",
					bad);
	}
	if (ctl_req_check_unknown(r))
		return -1;
	n = vmce_parse_inject_text(json_string_value(text), json_string_length(text), VMCE_ADDR_GPA,
				   he, CTL_MAX_TEXT_RECORDS, &err);
	if (n < 0)
		return vmm_fail(&r->err, "mce-inject text: %s", err.msg);
	if (n == 0)
		return vmm_fail(&r->err, "mce-inject text has no record");
	if (in_handler && (n != 2 || he[0].vcpu < 0))
		return vmm_fail(&r->err,
				"field \"in_handler\": the text needs exactly two records, "
				"the first with a CPU");
	for (int i = 0; i < n; i++)
		if (he[i].vcpu >= (int)c->vm->nr_vcpus)
			return vmm_fail(&r->err,
					"mce-inject text: record %d: CPU %d does not exist (the VM "
					"has %u vCPUs)",
					i + 1, he[i].vcpu, c->vm->nr_vcpus);
	*nrec = n;
	return 0;
}

/* Form A's class and address. */
static int class_fields(struct ctl_req *r, json_t *cls, struct vmce_host_error *he)
{
	bool present;
	uint64_t v;

	for (size_t i = 0; i < 3; i++)
		if (ctl_req_get(r, raw_fields[i]))
			return vmm_fail(&r->err, "field \"%s\" cannot be combined with \"class\"",
					raw_fields[i]);
	if (parse_class(r, json_string_value(cls), &he->cls) ||
	    ctl_req_u64(r, CTL_F_GPA, &present, &v))
		return -1;
	if (present) {
		he->addr_kind = VMCE_ADDR_GPA;
		he->addr = v;
	} else if (he->cls != VMCE_CLASS_FATAL) {
		return vmm_fail(&r->err, "inject with class %s needs field \"gpa\"",
				json_string_value(cls));
	}
	return 0;
}

/* Form C's raw record fields. */
static int raw_record_fields(struct ctl_req *r, struct vmce_host_error *he)
{
	bool present;
	uint64_t v;

	if (ctl_req_get(r, CTL_F_GPA))
		return vmm_fail(&r->err, "field \"gpa\" cannot be combined with \"status\" (use "
					 "\"addr\")");
	he->cls = VMCE_CLASS_AUTO;
	if (ctl_req_u64(r, CTL_F_STATUS, &present, &he->status) ||
	    ctl_req_u64(r, CTL_F_ADDR, &present, &v))
		return -1;
	if (present) {
		he->addr_kind = VMCE_ADDR_GPA;
		he->addr = v;
	}
	return ctl_req_u64(r, CTL_F_MISC, &present, &he->misc) ||
			       ctl_req_u64(r, CTL_F_MCG_STATUS, &present, &he->mcg_status)
		       ? -1
		       : 0;
}

/* Forms A and C: one record from the fields. */
static int inject_fields_form(struct control *c, struct ctl_req *r, json_t *cls,
			      struct vmce_host_error *he)
{
	uint64_t cpu = 0;
	bool present, bcast, lmce;

	vmce_host_error_init(he);
	he->origin = VMCE_ORIGIN_INJECT;
	if (ctl_req_u64(r, CTL_F_CPU, &present, &cpu))
		return -1;
	if (cpu >= c->vm->nr_vcpus)
		return vmm_fail(&r->err,
				"field \"cpu\": vCPU %" PRIu64
				" does not exist (the VM has %u vCPUs)",
				cpu, c->vm->nr_vcpus);
	if (ctl_req_bool(r, CTL_F_BROADCAST, true, &bcast) ||
	    ctl_req_bool(r, CTL_F_LMCE, false, &lmce))
		return -1;
	he->vcpu = (int)cpu;
	he->no_broadcast = !bcast;
	he->local = lmce;
	if (cls ? class_fields(r, cls, he) : raw_record_fields(r, he))
		return -1;
	return ctl_req_check_unknown(r);
}

/* Plan every record first: a description the policy rejects injects nothing. */
static int plan_all(struct control *c, struct ctl_req *r, const struct vmce_host_error *he,
		    int nrec, struct vmce_plan *plans)
{
	for (int i = 0; i < nrec; i++) {
		struct vmce_err err = {""};

		if (vmce_plan_error(c->vm->vmce, &he[i], &plans[i], &err)) {
			if (nrec > 1)
				return vmm_fail(&r->err, "policy error: record %d: %s", i + 1,
						err.msg);
			return vmm_fail(&r->err, "policy error: %s", err.msg);
		}
	}
	return 0;
}

/* The second record is injected by the first one's vCPU while its handler runs (the guest
 * consumed poison inside its #MC handler: vcpu.c, armed_inject()). */
static void inject_armed(struct control *c, const struct vmce_host_error *he,
			 const struct vmce_plan *plans, json_t *results)
{
	struct vmm_vcpu *t = &c->vm->vcpu[he[0].vcpu];
	char reason[80];

	t->armed_error = he[1];
	atomic_store(&t->armed, 1);
	json_array_append_new(results, inject_one(c, &plans[0]));
	snprintf(reason, sizeof(reason), "injected by vCPU %d inside its #MC handler", he[0].vcpu);
	json_array_append_new(results, json_pack("{s:s, s:s, s:i, s:s}", "verdict", "armed",
						 "class", vmce_class_name(plans[1].cls), "cpu",
						 he[0].vcpu, "reason", reason));
}

static int do_inject(struct control *c, struct conn *cn, struct ctl_req *r, json_t *resp)
{
	struct vmm *vm = c->vm;
	struct vmce_host_error he[CTL_MAX_TEXT_RECORDS];
	struct vmce_plan plans[CTL_MAX_TEXT_RECORDS];
	json_t *cls, *text, *results;
	bool in_handler;
	int nrec = 1;

	if (ctl_req_str(r, CTL_F_CLASS, &cls) || ctl_req_str(r, CTL_F_TEXT, &text))
		return -1;
	if (!!cls + !!text + !!ctl_req_get(r, CTL_F_STATUS) != 1)
		return vmm_fail(&r->err,
				"inject needs exactly one of \"class\", \"text\" or \"status\"");
	if (ctl_req_bool(r, CTL_F_IN_HANDLER, false, &in_handler))
		return -1;
	if (in_handler && !text)
		return vmm_fail(&r->err, "field \"in_handler\" needs \"text\"");
	if (text ? inject_text_form(c, r, text, in_handler, he, &nrec)
		 : inject_fields_form(c, r, cls, &he[0]))
		return -1;
	if (!ctl_bucket_take(&c->inj_tokens, &c->inj_tokens_ns, vmm_now_ns(), CTL_INJ_RATE))
		return vmm_fail(&r->err, "rate limit: more than %d injections per second",
				CTL_INJ_RATE);
	if (plan_all(c, r, he, nrec, plans))
		return -1;
	if (in_handler && atomic_load(&vm->vcpu[he[0].vcpu].armed))
		return vmm_fail(&r->err, "field \"in_handler\": vCPU %d already has an armed error",
				he[0].vcpu);
	results = json_array();
	if (in_handler)
		inject_armed(c, he, plans, results);
	else
		for (int i = 0; i < nrec; i++)
			json_array_append_new(results, inject_one(c, &plans[i]));
	json_object_set_new(resp, "results", results);
	json_object_set_new(resp, CTL_F_LAST_SEQ,
			    json_integer((json_int_t)vmce_events_last_seq(vm->vmce)));
	return 0;
}

/* ---- status --------------------------------------------------------------------------------- */

/* Records waiting for MCG_STATUS.MCIP to clear (policy.h, "Held records"): the bounds, the
 * totals and the oldest CTL_STATUS_HELD of them. */
static json_t *held_json(struct vmce_vm *vmce)
{
	struct vmce_held_info h[CTL_STATUS_HELD];
	struct vmce_hold_status hs;
	json_t *records = json_array();
	size_t n;

	vmce_hold_status(vmce, &hs);
	n = vmce_hold_list(vmce, h, CTL_STATUS_HELD);
	for (size_t i = 0; i < n && i < CTL_STATUS_HELD; i++)
		json_array_append_new(records,
				      json_pack("{s:I, s:s, s:i, s:b, s:o, s:I, s:i}", "seq",
						(json_int_t)h[i].event_seq, "class",
						vmce_class_name(h[i].cls), "vcpu", (int)h[i].target,
						"broadcast", h[i].broadcast, "gpa",
						h[i].has_gpa ? hex(h[i].gpa) : json_null(),
						"age_ms", (json_int_t)(h[i].age_ns / 1000000),
						"waiting_for", h[i].waiting_for));
	return json_pack("{s:i, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:o, s:b}", "count",
			 (int)hs.count, "max", (int)hs.max_records, "timeout_ms",
			 (int)hs.timeout_ms, "stalled_ms", (json_int_t)(hs.stalled_ns / 1000000),
			 "held", (json_int_t)hs.held, "released", (json_int_t)hs.released,
			 "overflowed", (json_int_t)hs.overflowed, "expired", (json_int_t)hs.expired,
			 "records", records, "truncated", n > CTL_STATUS_HELD);
}

static json_t *vcpu_json(struct vmm *vm, unsigned i, unsigned banks)
{
	struct vmce_vcpu *vc = vmce_vm_vcpu(vm->vmce, i);
	struct vmce_vcpu_state st;
	json_t *b = json_array();

	vmce_vcpu_get_state(vc, &st);
	for (unsigned k = 0; k < banks && k < VMCE_MAX_BANKS; k++)
		json_array_append_new(
			b, json_pack("{s:i, s:o, s:o, s:o, s:o, s:o}", "bank", (int)k, "ctl",
				     hex(st.bank[k].ctl), "status", hex(st.bank[k].status), "addr",
				     hex(st.bank[k].addr), "misc", hex(st.bank[k].misc), "ctl2",
				     hex(st.bank[k].ctl2)));
	return json_pack("{s:i, s:o, s:o, s:b, s:o}", "cpu", (int)i, "mcg_status",
			 hex(st.mcg_status), "mcg_ext_ctl", hex(st.mcg_ext_ctl), "pending",
			 vmce_vcpu_pending(vc), "banks", b);
}

static json_t *poisoned_json(struct vmce_vm *vmce)
{
	uint64_t pages[CTL_STATUS_PAGES];
	size_t total = vmce_poison_count(vmce);
	size_t np = vmce_poison_list(vmce, pages, CTL_STATUS_PAGES, true, 0);
	json_t *list = json_array();

	for (size_t i = 0; i < np; i++)
		json_array_append_new(list, hex(pages[i]));
	return json_pack("{s:I, s:o, s:b}", "count", (json_int_t)total, "pages", list, "truncated",
			 total > np);
}

static json_t *counters_json(struct vmce_vm *vmce)
{
	struct vmce_counters cnt;
	json_t *by_class = json_object();

	vmce_get_counters(vmce, &cnt);
	for (unsigned k = 0; k < 6; k++)
		json_object_set_new(by_class, vmce_class_name((enum vmce_class)k),
				    json_integer((json_int_t)cnt.by_class[k]));
	return json_pack("{s:o, s:I, s:I, s:I, s:I, s:I, s:I}", "by_class", by_class, "forwarded",
			 (json_int_t)cnt.forwarded, "dropped", (json_int_t)cnt.dropped, "fatal",
			 (json_int_t)cnt.fatal, "delivered", (json_int_t)cnt.delivered, "masked",
			 (json_int_t)cnt.masked, "refused", (json_int_t)cnt.refused);
}

static int do_status(struct control *c, struct conn *cn, struct ctl_req *r, json_t *resp)
{
	struct vmm *vm = c->vm;
	const struct vmce_profile *p = vmce_vm_profile(vm->vmce);
	json_t *vcpus, *ex = json_null();
	char prof[256];
	bool stopped;

	if (ctl_req_check_unknown(r))
		return -1;
	stopped = atomic_load(&vm->stopped);
	vmce_profile_format(p, prof, sizeof(prof));
	vcpus = json_array();
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		json_array_append_new(vcpus, vcpu_json(vm, i, p->banks));
	if (stopped) {
		pthread_mutex_lock(&vm->lock);
		ex = json_pack("{s:i, s:o}", "status", vm->exit_status, "reason",
			       vmm_json_text(vm->exit_reason));
		pthread_mutex_unlock(&vm->lock);
	}
	merge(resp,
	      json_pack("{s:s, s:s, s:o, s:s, s:i, s:o, s:I, s:I, s:o, s:o, s:o, s:o, s:o}",
			"state", stopped ? "stopped" : "running", "profile", prof, "mcg_cap",
			hex(vmce_profile_mcg_cap(p)), "vendor",
			p->vendor == VMCE_VENDOR_AMD ? "amd" : "intel", "nr_vcpus",
			(int)vm->nr_vcpus, "mem_size", hex(vm->mem_size), "uptime_ms",
			(json_int_t)(vm->start_ns ? (vmm_now_ns() - vm->start_ns) / 1000000 : 0),
			CTL_F_LAST_SEQ, (json_int_t)vmce_events_last_seq(vm->vmce), "vcpus", vcpus,
			"poisoned", poisoned_json(vm->vmce), "counters", counters_json(vm->vmce),
			"held", held_json(vm->vmce), "exit", ex));
	return 0;
}

/* ---- events --------------------------------------------------------------------------------- */

static int do_events(struct control *c, struct conn *cn, struct ctl_req *r, json_t *resp)
{
	struct vmm *vm = c->vm;
	uint64_t after = 0, max = CTL_EVENTS_DEFAULT, last;
	bool present, max_present, follow;
	size_t n, i, used = cn->out.len;
	json_t *events;

	if (ctl_req_u64(r, CTL_F_AFTER, &present, &after) ||
	    ctl_req_u64(r, CTL_F_MAX, &max_present, &max) ||
	    ctl_req_bool(r, CTL_F_FOLLOW, false, &follow))
		return -1;
	if (max_present && follow)
		return vmm_fail(&r->err, "field \"max\" cannot be combined with \"follow\"");
	if (max < 1 || max > CTL_EVENTS_MAX)
		return vmm_fail(&r->err, "field \"max\" must be between 1 and %d", CTL_EVENTS_MAX);
	if (ctl_req_check_unknown(r))
		return -1;
	last = vmce_events_last_seq(vm->vmce);
	if (follow) {
		json_object_set_new(resp, CTL_F_FOLLOW, json_true());
		json_object_set_new(resp, CTL_F_LAST_SEQ, json_integer((json_int_t)last));
		cn->following = true;
		cn->follow_after = after;
		return 0;
	}
	n = vmce_events_read(vm->vmce, after, c->evbuf, (size_t)max);
	events = json_array();
	/* A page stops growing near CTL_RESPONSE_SOFT_MAX bytes of output. */
	for (i = 0; i < n && used < CTL_RESPONSE_SOFT_MAX; i++) {
		char *text = vmm_event_text(&c->evbuf[i]);

		used += text ? strlen(text) + 1 : 0;
		json_array_append_new(events, json_of_text(text));
	}
	if (i)
		after = c->evbuf[i - 1].seq;
	json_object_set_new(resp, CTL_F_EVENTS, events);
	json_object_set_new(resp, CTL_F_LAST_SEQ, json_integer((json_int_t)last));
	json_object_set_new(resp, CTL_F_MORE, json_boolean(last > after));
	return 0;
}

/* ---- migrate -------------------------------------------------------------------------------- */

static double tenths(double ms)
{
	return round(ms * 10) / 10;
}

/*
 * Stop-and-copy migration to a `vmce-vm --incoming` (mig_out.c).  Runs on this thread: the
 * control socket answers nothing else meanwhile (the guest is paused for most of it anyway).
 * Success: the response, a "migrated" line in the events log, and the VM stops with status 0.
 */
static int do_migrate(struct control *c, struct conn *cn, struct ctl_req *r, json_t *resp)
{
	struct vmm *vm = c->vm;
	struct vmm_mig_result res;
	const char *to;
	json_t *to_m, *line;
	bool abort_on_error;

	if (ctl_req_str(r, CTL_F_TO, &to_m) ||
	    ctl_req_bool(r, CTL_F_ABORT_ON_ERROR, false, &abort_on_error))
		return -1;
	if (!to_m)
		return vmm_fail(&r->err, "migrate needs field \"to\" (the destination)");
	to = json_string_value(to_m);
	if (json_string_length(to_m) == 0 || json_string_length(to_m) > CTL_MAX_MIGRATE_TO ||
	    strlen(to) != json_string_length(to_m))
		return vmm_fail(&r->err, "field \"to\" must be 1 to %d bytes, no NUL",
				CTL_MAX_MIGRATE_TO);
	if (ctl_req_check_unknown(r))
		return -1;
	if (vmm_migrate_out(vm, to, abort_on_error, &res))
		return vmm_fail(&r->err, "migration failed, the guest keeps running here: %.400s",
				res.err.msg);
	merge(resp,
	      json_pack("{s:b, s:s, s:I, s:I, s:I, s:I, s:i, s:f, s:f}", "migrated", 1, CTL_F_TO,
			to, "bytes", (json_int_t)res.bytes, "pages_sent",
			(json_int_t)res.pages_sent, "pages_skipped", (json_int_t)res.pages_skipped,
			"vmce_bytes", (json_int_t)res.vmce_bytes, "resends", (int)res.resends,
			"total_ms", tenths(res.total_ms), "downtime_ms", tenths(res.downtime_ms)));
	line = json_pack("{s:s, s:s, s:I, s:I, s:i, s:I}", "kind", "migrated", CTL_F_TO, to,
			 "bytes", (json_int_t)res.bytes, "pages_skipped",
			 (json_int_t)res.pages_skipped, "resends", (int)res.resends, CTL_F_LAST_SEQ,
			 (json_int_t)vmce_events_last_seq(vm->vmce));
	vmm_log_json(vm, line);
	json_decref(line);
	vmm_stop(vm, VMM_EXIT_OK, "migrated to %.200s", to);
	return 0;
}

/* ---- quit ----------------------------------------------------------------------------------- */

static int do_quit(struct control *c, struct conn *cn, struct ctl_req *r, json_t *resp)
{
	if (ctl_req_check_unknown(r))
		return -1;
	json_object_set_new(resp, CTL_CMD_QUIT, json_true());
	vmm_stop(c->vm, VMM_EXIT_OK, "quit requested on the control socket");
	return 0;
}

/* ---- the table ------------------------------------------------------------------------------ */

static const struct ctl_cmd commands[] = {
	{CTL_CMD_INJECT, do_inject, true},  {CTL_CMD_STATUS, do_status, false},
	{CTL_CMD_EVENTS, do_events, false}, {CTL_CMD_MIGRATE, do_migrate, true},
	{CTL_CMD_QUIT, do_quit, false},
};

const struct ctl_cmd *ctl_cmd_find(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}
