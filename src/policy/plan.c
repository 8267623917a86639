// SPDX-License-Identifier: MIT
/*
 * Classification and synthesis (design §4, §5): from a host error to a delivery plan.
 *
 * The guest record is built from scratch: only the architectural bits the guest needs are set,
 * so nothing host-specific (model-specific error code 31:16, other information 52:32, OVER,
 * threshold status, host addresses) can reach the guest.
 *
 * Classification of a raw host record (class AUTO) follows Linux's Intel SER grading rules
 * (arch/x86/kernel/cpu/mce/severity.c), first match wins, on the status bits only:
 *   VAL clear -> nothing; PCC -> fatal; UC clear -> corrected;
 *   UC, AR clear, MCACOD scrub (0xC0-0xCF, bit 12 ignored) or L3 writeback (0x17A) -> SRAO
 *     (Linux checks neither S nor OVER here: such errors come by #MC or by CMCI);
 *   UC, S clear, AR clear -> UCNA (OVER ignored);  UC, S clear, AR set -> fatal (illegal);
 *   UC, S, AR clear, other MCACOD -> "action optional, unknown MCACOD": nothing to act on;
 *   UC, S, AR, OVER -> fatal (lost events);
 *   UC, S, AR, ADDRV, MISCV, MCACOD 0x134 (data load) or 0x150 (instruction fetch) -> SRAR;
 *   any other action-required error -> fatal (unknown MCACOD or no address).
 * A SIGBUS BUS_MCEERR_AR is an SRAR data load (0x134: the signal does not say whether it was a
 * fetch; Linux treats both the same way) and BUS_MCEERR_AO an SRAO memory-scrub error (0xC0).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "policy/policy_internal.h"

#define MCACOD_MASK	  0xefffull /* Linux's MCACOD: bit 12 (correction filtering) ignored */
#define MCACOD_SCRUB	  0x00c0u   /* memory scrubbing error; bits 3:0 give the channel */
#define MCACOD_SCRUBMSK	  0xeff0u
#define MCACOD_L3WB	  0x017au /* last-level cache writeback error */
#define MCACOD_DATA	  0x0134u /* data load (action required) */
#define MCACOD_INSTR	  0x0150u /* instruction fetch (action required) */
#define MCACOD_MEMREAD	  0x009fu /* memory read error, channel unspecified (UCNA default) */

#define MISC_ADDR_MODE(m) (((m) >> 6) & 7u)
#define MISC_ADDR_LSB(m)  ((unsigned)((m)&0x3f))
#define MISC_MODE_PHYS	  2u
/* Linux (Intel) uses an address only when MISC's LSB is at most PAGE_SHIFT. */
#define GUEST_LSB_MAX 12u

#define ST_VAL	      VMCE_MCI_STATUS_VAL
#define ST_OVER	      VMCE_MCI_STATUS_OVER
#define ST_UC	      VMCE_MCI_STATUS_UC
#define ST_EN	      VMCE_MCI_STATUS_EN
#define ST_MISCV      VMCE_MCI_STATUS_MISCV
#define ST_ADDRV      VMCE_MCI_STATUS_ADDRV
#define ST_PCC	      VMCE_MCI_STATUS_PCC
#define ST_S	      VMCE_MCI_STATUS_S
#define ST_AR	      VMCE_MCI_STATUS_AR
#define ST_DEFER      VMCE_MCI_STATUS_DEFERRED
#define ST_POISON     VMCE_MCI_STATUS_POISON
#define MCG_RIPV      VMCE_MCG_STATUS_RIPV
#define MCG_EIPV      VMCE_MCG_STATUS_EIPV
#define MCG_MCIP      VMCE_MCG_STATUS_MCIP
#define MCG_LMCES     VMCE_MCG_STATUS_LMCES

void vmce_host_error_init(struct vmce_host_error *e)
{
	memset(e, 0, sizeof(*e));
	e->origin = VMCE_ORIGIN_INJECT;
	e->cls = VMCE_CLASS_AUTO;
	e->addr_kind = VMCE_ADDR_NONE;
	e->vcpu = -1;
	e->bank = -1;
}

static const char *kind_name(enum vmce_addr_kind k)
{
	switch (k) {
	case VMCE_ADDR_HVA:
		return "hva";
	case VMCE_ADDR_HPA:
		return "hpa";
	case VMCE_ADDR_GPA:
		return "gpa";
	default:
		return "none";
	}
}

static void set_reason(struct vmce_plan *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_reason(struct vmce_plan *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->reason, sizeof(p->reason), fmt, ap);
	va_end(ap);
}

static bool is_ao_code(unsigned mc)
{
	return (mc & MCACOD_SCRUBMSK) == MCACOD_SCRUB || mc == MCACOD_L3WB;
}

static bool is_ar_code(unsigned mc)
{
	return mc == MCACOD_DATA || mc == MCACOD_INSTR;
}

/*
 * Grade a raw status.  Returns FORWARD with *cls set when the class is one the policy handles
 * further, or DROP/FATAL with *why.
 */
static enum vmce_verdict classify_raw(uint64_t st, enum vmce_class *cls, const char **why)
{
	unsigned mc = (unsigned)(st & MCACOD_MASK);
	bool s = st & ST_S, ar = st & ST_AR;

	*cls = VMCE_CLASS_AUTO;
	if (!(st & ST_VAL)) {
		*why = "raw STATUS has VAL clear: there is no error to forward";
		return VMCE_VERDICT_DROP;
	}
	if (st & ST_PCC) {
		*cls = VMCE_CLASS_FATAL;
		*why = "processor context corrupt (PCC set in the raw STATUS)";
		return VMCE_VERDICT_FATAL;
	}
	if (!(st & ST_UC)) {
		*cls = VMCE_CLASS_CE;
		return VMCE_VERDICT_FORWARD;
	}
	if (!ar && is_ao_code(mc)) {
		*cls = VMCE_CLASS_SRAO;
		return VMCE_VERDICT_FORWARD;
	}
	if (!s && !ar) {
		*cls = VMCE_CLASS_UCNA;
		return VMCE_VERDICT_FORWARD;
	}
	if (!s) {
		*cls = VMCE_CLASS_FATAL;
		*why = "illegal combination in the raw STATUS (UC with AR but not S)";
		return VMCE_VERDICT_FATAL;
	}
	if (!ar) {
		*cls = VMCE_CLASS_SRAO;
		*why = "action-optional error with an MCACOD that names no memory location: "
		       "nothing the guest can act on";
		return VMCE_VERDICT_DROP;
	}
	*cls = VMCE_CLASS_SRAR;
	if (st & ST_OVER) {
		*why = "action-required error with lost events (OVER set in the raw STATUS)";
		return VMCE_VERDICT_FATAL;
	}
	if (!is_ar_code(mc)) {
		*why = "action-required error with an MCACOD other than data load (0x134) or "
		       "instruction fetch (0x150)";
		return VMCE_VERDICT_FATAL;
	}
	if ((st & (ST_ADDRV | ST_MISCV)) != (ST_ADDRV | ST_MISCV)) {
		*why = "action-required error without ADDRV and MISCV: the consumed address is "
		       "unknown";
		return VMCE_VERDICT_FATAL;
	}
	return VMCE_VERDICT_FORWARD;
}

static void plan_verdict(struct vmce_plan *p, enum vmce_verdict v, enum vmce_class cls)
{
	p->verdict = v;
	p->cls = cls;
	p->broadcast = false;
	p->lmce = false;
	memset(&p->record, 0, sizeof(p->record));
	memset(&p->bystander, 0, sizeof(p->bystander));
	p->record.bank = -1;
	p->bystander.bank = -1;
}

static bool bank_masked(const struct vmce_vm *vm, const struct vmce_vcpu_state *st, unsigned bank)
{
	if (st->bank[bank].ctl == 0)
		return true;
	return (vm->profile.caps & VMCE_CAP_CTL) && st->mcg_ctl == 0;
}

/* The guest takes local machine checks on this vCPU: profile lmce and MCG_EXT_CTL.LMCE_EN. */
static bool lmce_enabled(const struct vmce_profile *prof, const struct vmce_vcpu_state *st)
{
	return prof->vendor == VMCE_VENDOR_INTEL && (prof->caps & VMCE_CAP_LMCE) &&
	       (st->mcg_ext_ctl & VMCE_MCG_EXT_CTL_LMCE_EN);
}

int vmce_plan_error(struct vmce_vm *vm, const struct vmce_host_error *e, struct vmce_plan *plan,
		    struct vmce_err *err)
{
	const struct vmce_profile *prof;
	struct vmce_vcpu_state st;
	enum vmce_class cls;
	enum vmce_verdict v = VMCE_VERDICT_FORWARD;
	const char *why = NULL, *noaddr = "no address was given";
	bool raw, addr_known, amd, lmce_ok;
	unsigned mc, lsb, glsb, rb, target, nr;
	uint64_t gpa = 0, misc;
	char note[64] = "";
	int rc;

	if (!vm || !e || !plan)
		return vmce__fail(err, -EINVAL, "vmce_plan_error: vm, error and plan are required");
	prof = &vm->profile;
	nr = vm->nr_vcpus;
	if ((unsigned)e->origin > VMCE_ORIGIN_INJECT)
		return vmce__fail(err, -EINVAL, "unknown error origin %d", (int)e->origin);
	if ((unsigned)e->cls > VMCE_CLASS_FATAL)
		return vmce__fail(err, -EINVAL, "unknown error class %d", (int)e->cls);
	if ((unsigned)e->addr_kind > VMCE_ADDR_GPA)
		return vmce__fail(err, -EINVAL, "unknown address kind %d", (int)e->addr_kind);
	if (e->addr_lsb > 63)
		return vmce__fail(err, -EINVAL, "addr_lsb=%u is out of range (0 to 63)",
				  e->addr_lsb);
	if (e->vcpu < -1 || (e->vcpu >= 0 && (unsigned)e->vcpu >= nr))
		return vmce__fail(err, -EINVAL, "vcpu %d is out of range: the VM has %u vCPU(s)",
				  e->vcpu, nr);

	memset(plan, 0, sizeof(*plan));
	plan->nr_vcpus = nr;
	plan->target = e->vcpu >= 0 ? (unsigned)e->vcpu : 0;
	plan_verdict(plan, VMCE_VERDICT_DROP, VMCE_CLASS_AUTO);
	amd = prof->vendor == VMCE_VENDOR_AMD;
	rb = prof->report_bank;

	/* 1. Class. */
	raw = (e->origin == VMCE_ORIGIN_HOST_MCE || e->origin == VMCE_ORIGIN_INJECT) &&
	      e->cls == VMCE_CLASS_AUTO;
	cls = e->cls;
	mc = (unsigned)(e->status & MCACOD_MASK);
	if (raw) {
		v = classify_raw(e->status, &cls, &why);
	} else if (cls == VMCE_CLASS_AUTO) {
		cls = e->origin == VMCE_ORIGIN_SIGBUS_AR ? VMCE_CLASS_SRAR : VMCE_CLASS_SRAO;
		mc = 0;
	}
	if (v == VMCE_VERDICT_FORWARD && cls == VMCE_CLASS_FATAL) {
		v = VMCE_VERDICT_FATAL;
		why = "the error was classified fatal by its source";
	}
	if (v == VMCE_VERDICT_FORWARD && cls == VMCE_CLASS_CE) {
		v = VMCE_VERDICT_DROP;
		why = "corrected error: handled by the host, not forwarded";
	}
	if (v != VMCE_VERDICT_FORWARD) {
		plan_verdict(plan, v, cls);
		set_reason(plan, "%s: %s", vmce_class_name(cls), why);
		return 0;
	}
	/* The guest's error code: the host's when it fits the class, else the class default. */
	if (cls == VMCE_CLASS_SRAO)
		mc = is_ao_code(mc) ? (mc & ~0x1000u) : MCACOD_SCRUB;
	else if (cls == VMCE_CLASS_SRAR)
		mc = is_ar_code(mc) ? mc : MCACOD_DATA;
	else if (mc == 0)
		mc = MCACOD_MEMREAD;

	/* 2. Address: translate to guest-physical; outside guest memory is never forwarded. */
	addr_known = e->addr_kind != VMCE_ADDR_NONE;
	lsb = e->addr_lsb ? e->addr_lsb : 12;
	if (raw && addr_known && !(e->status & ST_ADDRV)) {
		addr_known = false;
		noaddr = "ADDRV is clear in the raw STATUS";
	}
	if (raw && addr_known && (e->status & ST_MISCV)) {
		if (MISC_ADDR_MODE(e->misc) != MISC_MODE_PHYS) {
			addr_known = false;
			noaddr = "the raw MISC gives a non-physical address mode";
		} else if (!e->addr_lsb && MISC_ADDR_LSB(e->misc)) {
			lsb = MISC_ADDR_LSB(e->misc);
		}
	}
	if (addr_known) {
		rc = vmce_translate(vm, e->addr_kind, e->addr, &gpa);
		if (rc) {
			plan_verdict(plan, VMCE_VERDICT_DROP, cls);
			set_reason(plan,
				   "%s: %s 0x%" PRIx64 " is not guest memory: never forwarded",
				   vmce_class_name(cls), kind_name(e->addr_kind), e->addr);
			return 0;
		}
		/* Keep the offset only at the granularity given, and never coarser than a page:
		 * Linux ignores an address whose MISC LSB is above PAGE_SHIFT. */
		glsb = lsb < GUEST_LSB_MAX ? lsb : GUEST_LSB_MAX;
		gpa &= ~((1ull << glsb) - 1);
		plan->has_gpa = true;
		plan->gpa = gpa;
		misc = ((uint64_t)MISC_MODE_PHYS << 6) | glsb;
	} else {
		glsb = 0;
		misc = 0;
	}
	if (!addr_known && cls == VMCE_CLASS_SRAR) {
		plan_verdict(plan, VMCE_VERDICT_FATAL, cls);
		set_reason(plan, "srar: no guest address (%s): the guest cannot recover", noaddr);
		return 0;
	}
	if (!addr_known && cls == VMCE_CLASS_SRAO) {
		plan_verdict(plan, VMCE_VERDICT_DROP, cls);
		set_reason(plan, "srao: no guest address (%s): nothing the guest can act on",
			   noaddr);
		return 0;
	}

	/* 3. Target and synthesis. */
	plan_verdict(plan, VMCE_VERDICT_FORWARD, cls);
	plan->record.bank = (int)rb;
	plan->record.addr = plan->has_gpa ? gpa : 0;
	plan->record.misc = plan->has_gpa && !amd ? misc : 0;

	if (cls == VMCE_CLASS_UCNA) {
		target = e->vcpu >= 0 ? (unsigned)e->vcpu : 0;
		plan->target = target;
		if (amd || !(prof->caps & VMCE_CAP_CMCI)) {
			plan_verdict(plan, VMCE_VERDICT_DROP, cls);
			set_reason(plan, "ucna: the profile has no CMCI (%s): dropped",
				   amd ? "amd flavour" : "no cmci capability");
			return 0;
		}
		vmce_vcpu_get_state(&vm->vcpus[target], &st);
		if (!(st.bank[rb].ctl2 & VMCE_MCI_CTL2_CMCI_EN)) {
			plan_verdict(plan, VMCE_VERDICT_DROP, cls);
			set_reason(
				plan,
				"ucna: vcpu %u has CMCI disabled in bank %u (CTL2.CMCI_EN clear): "
				"dropped",
				target, rb);
			return 0;
		}
		plan->record.signal = VMCE_SIGNAL_CMCI;
		plan->record.status = ST_VAL | ST_UC | ST_EN | mc;
		if (plan->has_gpa)
			plan->record.status |= ST_ADDRV | ST_MISCV;
		set_reason(plan, "ucna: CMCI on vcpu %u, bank %u", target, rb);
		return 0;
	}

	if (amd && cls == VMCE_CLASS_SRAO) {
		/* Linux has no AO class on AMD: a Deferred error, left for the poller.  Raising it
		 * as #MC hangs guests without SUCCOR (design §5). */
		target = e->vcpu >= 0 && e->local ? (unsigned)e->vcpu : 0;
		plan->target = target;
		plan->record.signal = VMCE_SIGNAL_NONE;
		plan->record.status = ST_VAL | ST_EN | ST_ADDRV | ST_DEFER | mc;
		set_reason(
			plan,
			"srao: presented as a Deferred error (amd flavour) in bank %u of vcpu %u, "
			"not signalled: for the poller",
			rb, target);
		return 0;
	}

	if (cls == VMCE_CLASS_SRAR) {
		if (e->vcpu < 0) {
			plan_verdict(plan, VMCE_VERDICT_FATAL, cls);
			set_reason(plan, "srar: no consuming vCPU is known: the guest cannot "
					 "recover");
			return 0;
		}
		target = (unsigned)e->vcpu;
	} else {
		/* SRAO: vCPU 0, or the reporting vCPU when the host saw it as local and the guest
		 * takes local machine checks there (LMCE). */
		target = e->vcpu >= 0 && e->local ? (unsigned)e->vcpu : 0;
		vmce_vcpu_get_state(&vm->vcpus[target], &st);
		if (target != 0 && !lmce_enabled(prof, &st))
			target = 0;
	}
	plan->target = target;
	vmce_vcpu_get_state(&vm->vcpus[target], &st);

	plan->record.signal = VMCE_SIGNAL_MC;
	if (amd) {
		/* Linux's AMD grading: UC without PCC, in user context, with SUCCOR -> AR. */
		plan->record.status = ST_VAL | ST_UC | ST_EN | ST_ADDRV | ST_POISON | mc;
		plan->record.mcg_status = MCG_MCIP | MCG_RIPV | MCG_EIPV;
		if (!(prof->caps & VMCE_CAP_SUCCOR))
			snprintf(note, sizeof(note), "; no succor: Linux guests panic");
		set_reason(plan, "srar: #MC on the consuming vcpu %u, bank %u (amd flavour)%s",
			   target, rb, note);
		return 0;
	}
	plan->record.status = ST_VAL | ST_UC | ST_EN | ST_MISCV | ST_ADDRV | ST_S | mc;
	plan->record.mcg_status = MCG_MCIP | MCG_RIPV;
	if (cls == VMCE_CLASS_SRAR) {
		plan->record.status |= ST_AR;
		plan->record.mcg_status |= MCG_EIPV;
	}
	if (st.mcg_status & MCG_MCIP)
		snprintf(note, sizeof(note), "; MCIP is set on vcpu %u now", target);

	lmce_ok = lmce_enabled(prof, &st) && (cls == VMCE_CLASS_SRAR || e->local);
	if (bank_masked(vm, &st, rb)) {
		set_reason(plan,
			   "%s: bank %u is disabled on vcpu %u: loaded, masked, no broadcast%s",
			   vmce_class_name(cls), rb, target, note);
		return 0;
	}
	if (lmce_ok) {
		plan->lmce = true;
		plan->record.mcg_status |= MCG_LMCES;
		set_reason(plan, "%s: local #MC (LMCE) on vcpu %u, bank %u%s", vmce_class_name(cls),
			   target, rb, note);
		return 0;
	}
	if (e->no_broadcast || nr == 1) {
		set_reason(plan, "%s: #MC on vcpu %u, bank %u%s%s", vmce_class_name(cls), target,
			   rb, nr > 1 ? ", not broadcast (no_broadcast)" : "", note);
		return 0;
	}
	plan->broadcast = true;
	plan->bystander.signal = VMCE_SIGNAL_MC;
	plan->bystander.bank = -1;
	plan->bystander.mcg_status = MCG_MCIP | MCG_RIPV;
	set_reason(plan, "%s: #MC on vcpu %u, bank %u, broadcast to %u other vCPU(s)%s",
		   vmce_class_name(cls), target, rb, nr - 1, note);
	return 0;
}

bool vmce_plan_vcpu(const struct vmce_plan *plan, unsigned index, struct vmce_vcpu_record *out)
{
	if (!plan || plan->verdict != VMCE_VERDICT_FORWARD || index >= plan->nr_vcpus)
		return false;
	if (index == plan->target) {
		if (out)
			*out = plan->record;
		return true;
	}
	if (!plan->broadcast)
		return false;
	if (out)
		*out = plan->bystander;
	return true;
}

/* ---- JSON ----------------------------------------------------------------------------------- */

int vmce_plan_format_json(const struct vmce_plan *plan, char *buf, size_t len)
{
	struct jbuf b = {buf, buf ? len : 0, 0};
	struct vmce_vcpu_record r;
	bool first = true;

	if (!plan)
		return -EINVAL;
	vmce__jprintf(&b, "{\"verdict\":\"%s\",\"class\":\"%s\",\"reason\":",
		      vmce_verdict_name(plan->verdict), vmce_class_name(plan->cls));
	vmce__jstr(&b, plan->reason, sizeof(plan->reason));
	if (plan->has_gpa)
		vmce__jprintf(&b, ",\"gpa\":\"0x%" PRIx64 "\"", plan->gpa);
	else
		vmce__jprintf(&b, ",\"gpa\":null");
	vmce__jprintf(&b, ",\"nr_vcpus\":%u,\"target\":%u,\"broadcast\":%s,\"lmce\":%s,\"vcpus\":[",
		      plan->nr_vcpus, plan->target, plan->broadcast ? "true" : "false",
		      plan->lmce ? "true" : "false");
	for (unsigned i = 0; i < plan->nr_vcpus; i++) {
		if (!vmce_plan_vcpu(plan, i, &r))
			continue;
		vmce__jprintf(&b,
			      "%s{\"cpu\":%u,\"signal\":\"%s\",\"mcg_status\":\"0x%" PRIx64 "\"",
			      first ? "" : ",", i, vmce__signal_name(r.signal), r.mcg_status);
		if (r.bank >= 0)
			vmce__jprintf(&b,
				      ",\"bank\":%d,\"status\":\"0x%016" PRIx64
				      "\",\"addr\":\"0x%" PRIx64 "\",\"misc\":\"0x%" PRIx64 "\"",
				      r.bank, r.status, r.addr, r.misc);
		vmce__jput(&b, "}", 1);
		first = false;
	}
	vmce__jput(&b, "]}", 2);
	return vmce__jfinish(&b);
}
