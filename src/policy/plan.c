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

static bool is_ao_code(unsigned mc)
{
	return (mc & MCACOD_SCRUBMSK) == MCACOD_SCRUB || mc == MCACOD_L3WB;
}

static bool is_ar_code(unsigned mc)
{
	return mc == MCACOD_DATA || mc == MCACOD_INSTR;
}

/* ---- Why: the facts a plan's reason text is made of ------------------------------------------ */

/*
 * Deciding and writing the reason are apart: the steps below record what the text needs in a
 * struct plan_why, and why_format() writes it only when asked for (vmce_plan_error(),
 * vmce_plan_reason(), vmce_inject()).  Formatting is most of the cost of a plan.
 */
enum why_code {
	WHY_NONE = 0,
	WHY_CLASS,	   /* "<class>: <text>" (classification: dropped or fatal) */
	WHY_NOT_GUEST,	   /* the address is outside guest memory */
	WHY_SRAR_NO_ADDR,  /* text: why no address */
	WHY_SRAO_NO_ADDR,  /* text: why no address */
	WHY_UCNA_NO_CMCI,  /* amd: the amd flavour, else no CMCI capability */
	WHY_UCNA_CMCI_OFF, /* CTL2.CMCI_EN clear on the target */
	WHY_UCNA_CMCI,	   /* CMCI on the target */
	WHY_AMD_DEFERRED,  /* an SRAO presented as a Deferred error (amd flavour) */
	WHY_SRAR_NO_VCPU,  /* no consuming vCPU is known */
	WHY_AMD_SRAR,	   /* #MC on the consuming vCPU (amd flavour) */
	WHY_MASKED,	   /* the bank is disabled on the target */
	WHY_LMCE,	   /* a local machine check */
	WHY_MC,		   /* #MC on the target only */
	WHY_BROADCAST,	   /* #MC on the target, broadcast to the others */
	WHY_CODES
};

/* The words of a WHY_CLASS or WHY_*_NO_ADDR reason. */
enum why_text {
	TXT_NONE = 0,
	TXT_VAL_CLEAR,
	TXT_PCC,
	TXT_UC_AR_NO_S,
	TXT_AO_UNKNOWN,
	TXT_AR_OVER,
	TXT_AR_MCACOD,
	TXT_AR_NO_ADDR,
	TXT_SOURCE_FATAL,
	TXT_CORRECTED,
	TXT_NO_ADDR_GIVEN,
	TXT_ADDRV_CLEAR,
	TXT_MISC_MODE,
	TXT_COUNT
};

static const char *const why_texts[TXT_COUNT] = {
	[TXT_NONE] = "",
	[TXT_VAL_CLEAR] = "raw STATUS has VAL clear: there is no error to forward",
	[TXT_PCC] = "processor context corrupt (PCC set in the raw STATUS)",
	[TXT_UC_AR_NO_S] = "illegal combination in the raw STATUS (UC with AR but not S)",
	[TXT_AO_UNKNOWN] = "action-optional error with an MCACOD that names no memory location: "
			   "nothing the guest can act on",
	[TXT_AR_OVER] = "action-required error with lost events (OVER set in the raw STATUS)",
	[TXT_AR_MCACOD] = "action-required error with an MCACOD other than data load (0x134) or "
			  "instruction fetch (0x150)",
	[TXT_AR_NO_ADDR] = "action-required error without ADDRV and MISCV: the consumed address "
			   "is unknown",
	[TXT_SOURCE_FATAL] = "the error was classified fatal by its source",
	[TXT_CORRECTED] = "corrected error: handled by the host, not forwarded",
	[TXT_NO_ADDR_GIVEN] = "no address was given",
	[TXT_ADDRV_CLEAR] = "ADDRV is clear in the raw STATUS",
	[TXT_MISC_MODE] = "the raw MISC gives a non-physical address mode",
};

/* A note at the end of an #MC reason. */
enum why_note {
	NOTE_NONE = 0,
	NOTE_NO_SUCCOR, /* amd flavour without SUCCOR */
	NOTE_MCIP,	/* MCIP is set on the target now */
	NOTE_COUNT
};

struct plan_why {
	uint8_t code; /* enum why_code */
	uint8_t cls;  /* enum vmce_class */
	uint8_t text; /* enum why_text */
	uint8_t kind; /* WHY_NOT_GUEST: enum vmce_addr_kind */
	uint8_t note; /* enum why_note */
	bool flag;    /* WHY_UCNA_NO_CMCI: amd flavour; WHY_MC: no_broadcast asked for */
	unsigned vcpu, bank, nr;
	uint64_t addr; /* WHY_NOT_GUEST: the host's address */
};

/*
 * A plan from vmce_plan_decide() keeps its facts in the reason array, behind an empty string:
 * reason[0] '\0', reason[1] WHY_KEPT, the struct plan_why from WHY_AT on.
 */
#define WHY_KEPT 0xa5
#define WHY_AT	 8
_Static_assert(WHY_AT + sizeof(struct plan_why) <= sizeof(((struct vmce_plan *)0)->reason),
	       "struct plan_why fits in a plan's reason");

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

/* The reason text, snprintf-style. */
static int why_format(const struct plan_why *w, char *buf, size_t len)
{
	const char *cls = vmce_class_name((enum vmce_class)w->cls), *text = why_texts[w->text];
	char note[48] = "";

	if (w->note == NOTE_NO_SUCCOR)
		snprintf(note, sizeof(note), "; no succor: Linux guests panic");
	else if (w->note == NOTE_MCIP)
		snprintf(note, sizeof(note), "; MCIP is set on vcpu %u now", w->vcpu);

	switch ((enum why_code)w->code) {
	case WHY_CLASS:
		return snprintf(buf, len, "%s: %s", cls, text);
	case WHY_NOT_GUEST:
		return snprintf(buf, len,
				"%s: %s 0x%" PRIx64 " is not guest memory: never forwarded", cls,
				kind_name((enum vmce_addr_kind)w->kind), w->addr);
	case WHY_SRAR_NO_ADDR:
		return snprintf(buf, len, "srar: no guest address (%s): the guest cannot recover",
				text);
	case WHY_SRAO_NO_ADDR:
		return snprintf(buf, len,
				"srao: no guest address (%s): nothing the guest can act on", text);
	case WHY_UCNA_NO_CMCI:
		return snprintf(buf, len, "ucna: the profile has no CMCI (%s): dropped",
				w->flag ? "amd flavour" : "no cmci capability");
	case WHY_UCNA_CMCI_OFF:
		return snprintf(buf, len,
				"ucna: vcpu %u has CMCI disabled in bank %u (CTL2.CMCI_EN clear): "
				"dropped",
				w->vcpu, w->bank);
	case WHY_UCNA_CMCI:
		return snprintf(buf, len, "ucna: CMCI on vcpu %u, bank %u", w->vcpu, w->bank);
	case WHY_AMD_DEFERRED:
		return snprintf(buf, len,
				"srao: presented as a Deferred error (amd flavour) in bank %u of "
				"vcpu %u, not signalled: for the poller",
				w->bank, w->vcpu);
	case WHY_SRAR_NO_VCPU:
		return snprintf(buf, len,
				"srar: no consuming vCPU is known: the guest cannot recover");
	case WHY_AMD_SRAR:
		return snprintf(buf, len,
				"srar: #MC on the consuming vcpu %u, bank %u (amd flavour)%s",
				w->vcpu, w->bank, note);
	case WHY_MASKED:
		return snprintf(
			buf, len,
			"%s: bank %u is disabled on vcpu %u: loaded, masked, no broadcast%s", cls,
			w->bank, w->vcpu, note);
	case WHY_LMCE:
		return snprintf(buf, len, "%s: local #MC (LMCE) on vcpu %u, bank %u%s", cls,
				w->vcpu, w->bank, note);
	case WHY_MC:
		return snprintf(buf, len, "%s: #MC on vcpu %u, bank %u%s%s", cls, w->vcpu, w->bank,
				w->flag ? ", not broadcast (no_broadcast)" : "", note);
	case WHY_BROADCAST:
		return snprintf(buf, len,
				"%s: #MC on vcpu %u, bank %u, broadcast to %u other vCPU(s)%s", cls,
				w->vcpu, w->bank, w->nr - 1, note);
	default:
		return snprintf(buf, len, "%s", "");
	}
}

/* The facts a plan from vmce_plan_decide() kept, when they are sound. */
static bool why_kept(const struct vmce_plan *plan, struct plan_why *w)
{
	if (plan->reason[0] || (uint8_t)plan->reason[1] != WHY_KEPT)
		return false;
	memcpy(w, plan->reason + WHY_AT, sizeof(*w));
	return w->code < WHY_CODES && w->cls <= VMCE_CLASS_FATAL && w->text < TXT_COUNT &&
	       w->kind <= VMCE_ADDR_GPA && w->note < NOTE_COUNT &&
	       (w->code != WHY_BROADCAST || w->nr > 0);
}

int vmce_plan_reason(const struct vmce_plan *plan, char *buf, size_t len)
{
	struct plan_why w;

	if (!plan || (!buf && len))
		return -EINVAL;
	if (why_kept(plan, &w))
		return why_format(&w, buf, len);
	return snprintf(buf, len, "%.*s", (int)sizeof(plan->reason), plan->reason);
}

/* ---- The decision ---------------------------------------------------------------------------- */

/*
 * Grade a raw status.  Returns FORWARD with *cls set when the class is one the policy handles
 * further, or DROP/FATAL with *why.
 */
static enum vmce_verdict classify_raw(uint64_t st, enum vmce_class *cls, enum why_text *why)
{
	unsigned mc = (unsigned)(st & MCACOD_MASK);
	bool s = st & ST_S, ar = st & ST_AR;

	*cls = VMCE_CLASS_AUTO;
	if (!(st & ST_VAL)) {
		*why = TXT_VAL_CLEAR;
		return VMCE_VERDICT_DROP;
	}
	if (st & ST_PCC) {
		*cls = VMCE_CLASS_FATAL;
		*why = TXT_PCC;
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
		*why = TXT_UC_AR_NO_S;
		return VMCE_VERDICT_FATAL;
	}
	if (!ar) {
		*cls = VMCE_CLASS_SRAO;
		*why = TXT_AO_UNKNOWN;
		return VMCE_VERDICT_DROP;
	}
	*cls = VMCE_CLASS_SRAR;
	if (st & ST_OVER) {
		*why = TXT_AR_OVER;
		return VMCE_VERDICT_FATAL;
	}
	if (!is_ar_code(mc)) {
		*why = TXT_AR_MCACOD;
		return VMCE_VERDICT_FATAL;
	}
	if ((st & (ST_ADDRV | ST_MISCV)) != (ST_ADDRV | ST_MISCV)) {
		*why = TXT_AR_NO_ADDR;
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

/* One plan in the making: the steps below fill plan and why. */
struct planning {
	struct vmce_vm *vm;
	const struct vmce_host_error *e;
	struct vmce_plan *plan;
	struct plan_why *why;
	bool raw;      /* a raw host record graded by its status (classify_raw()) */
	bool amd;      /* the profile's flavour */
	unsigned mc;   /* the guest's MCACOD */
	unsigned rb;   /* the profile's report bank */
	uint64_t misc; /* the guest's MISC when the plan has a guest address */
};

/* End a step with a verdict other than FORWARD: the plan is decided. */
static bool decided(struct planning *p, enum vmce_verdict v, enum vmce_class cls,
		    enum why_code code)
{
	plan_verdict(p->plan, v, cls);
	p->why->code = code;
	p->why->cls = cls;
	return true;
}

static int check_error(const struct vmce_vm *vm, const struct vmce_host_error *e,
		       struct vmce_err *err)
{
	unsigned nr = vm->nr_vcpus;

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
	return 0;
}

/* 1. Class, and the guest's error code.  Returns true when that decides the plan: drop, fatal. */
static bool step_class(struct planning *p)
{
	const struct vmce_host_error *e = p->e;
	enum vmce_verdict v = VMCE_VERDICT_FORWARD;
	enum why_text why = TXT_NONE;
	enum vmce_class cls = e->cls;
	unsigned mc = (unsigned)(e->status & MCACOD_MASK);

	p->raw = (e->origin == VMCE_ORIGIN_HOST_MCE || e->origin == VMCE_ORIGIN_INJECT) &&
		 e->cls == VMCE_CLASS_AUTO;
	if (p->raw) {
		v = classify_raw(e->status, &cls, &why);
	} else if (cls == VMCE_CLASS_AUTO) {
		cls = e->origin == VMCE_ORIGIN_SIGBUS_AR ? VMCE_CLASS_SRAR : VMCE_CLASS_SRAO;
		mc = 0;
	}
	if (v == VMCE_VERDICT_FORWARD && cls == VMCE_CLASS_FATAL) {
		v = VMCE_VERDICT_FATAL;
		why = TXT_SOURCE_FATAL;
	}
	if (v == VMCE_VERDICT_FORWARD && cls == VMCE_CLASS_CE) {
		v = VMCE_VERDICT_DROP;
		why = TXT_CORRECTED;
	}
	if (v != VMCE_VERDICT_FORWARD) {
		p->why->text = why;
		return decided(p, v, cls, WHY_CLASS);
	}
	p->plan->cls = cls;
	/* The guest's error code: the host's when it fits the class, else the class default. */
	if (cls == VMCE_CLASS_SRAO)
		mc = is_ao_code(mc) ? (mc & ~0x1000u) : MCACOD_SCRUB;
	else if (cls == VMCE_CLASS_SRAR)
		mc = is_ar_code(mc) ? mc : MCACOD_DATA;
	else if (mc == 0)
		mc = MCACOD_MEMREAD;
	p->mc = mc;
	return false;
}

/* 2. Address: translate to guest-physical; outside guest memory is never forwarded. */
static bool step_address(struct planning *p)
{
	const struct vmce_host_error *e = p->e;
	struct vmce_plan *plan = p->plan;
	enum vmce_class cls = plan->cls;
	enum why_text noaddr = TXT_NO_ADDR_GIVEN;
	bool addr_known = e->addr_kind != VMCE_ADDR_NONE;
	unsigned lsb = e->addr_lsb ? e->addr_lsb : 12, glsb;
	uint64_t gpa;

	if (p->raw && addr_known && !(e->status & ST_ADDRV)) {
		addr_known = false;
		noaddr = TXT_ADDRV_CLEAR;
	}
	if (p->raw && addr_known && (e->status & ST_MISCV)) {
		if (MISC_ADDR_MODE(e->misc) != MISC_MODE_PHYS) {
			addr_known = false;
			noaddr = TXT_MISC_MODE;
		} else if (!e->addr_lsb && MISC_ADDR_LSB(e->misc)) {
			lsb = MISC_ADDR_LSB(e->misc);
		}
	}
	if (addr_known) {
		if (vmce_translate(p->vm, e->addr_kind, e->addr, &gpa)) {
			p->why->kind = (uint8_t)e->addr_kind;
			p->why->addr = e->addr;
			return decided(p, VMCE_VERDICT_DROP, cls, WHY_NOT_GUEST);
		}
		/* Keep the offset only at the granularity given, and never coarser than a page:
		 * Linux ignores an address whose MISC LSB is above PAGE_SHIFT. */
		glsb = lsb < GUEST_LSB_MAX ? lsb : GUEST_LSB_MAX;
		plan->has_gpa = true;
		plan->gpa = gpa & ~((1ull << glsb) - 1);
		p->misc = ((uint64_t)MISC_MODE_PHYS << 6) | glsb;
		return false;
	}
	p->why->text = noaddr;
	if (cls == VMCE_CLASS_SRAR)
		return decided(p, VMCE_VERDICT_FATAL, cls, WHY_SRAR_NO_ADDR);
	if (cls == VMCE_CLASS_SRAO)
		return decided(p, VMCE_VERDICT_DROP, cls, WHY_SRAO_NO_ADDR);
	return false;
}

/* 3a. A UCNA: CMCI on the reporting vCPU (or vCPU 0), when the guest enabled it. */
static void target_ucna(struct planning *p)
{
	struct vmce_plan *plan = p->plan;
	struct vmce_vcpu_state st;

	if (p->amd || !(p->vm->profile.caps & VMCE_CAP_CMCI)) {
		p->why->flag = p->amd;
		decided(p, VMCE_VERDICT_DROP, plan->cls, WHY_UCNA_NO_CMCI);
		return;
	}
	vmce_vcpu_get_state(&p->vm->vcpus[plan->target], &st);
	if (!(st.bank[p->rb].ctl2 & VMCE_MCI_CTL2_CMCI_EN)) {
		decided(p, VMCE_VERDICT_DROP, plan->cls, WHY_UCNA_CMCI_OFF);
		return;
	}
	plan->record.signal = VMCE_SIGNAL_CMCI;
	plan->record.status = ST_VAL | ST_UC | ST_EN | p->mc;
	if (plan->has_gpa)
		plan->record.status |= ST_ADDRV | ST_MISCV;
	p->why->code = WHY_UCNA_CMCI;
}

/* 3b. An SRAO on AMD: Linux has no AO class there.  A Deferred error, left for the poller:
 * raising it as #MC hangs guests without SUCCOR (design §5). */
static void target_amd_deferred(struct planning *p)
{
	struct vmce_plan *plan = p->plan;

	plan->target = p->e->vcpu >= 0 && p->e->local ? (unsigned)p->e->vcpu : 0;
	plan->record.signal = VMCE_SIGNAL_NONE;
	plan->record.status = ST_VAL | ST_EN | ST_ADDRV | ST_DEFER | p->mc;
	p->why->code = WHY_AMD_DEFERRED;
}

/* 3c. An SRAO or SRAR as #MC: on which vCPU, local or broadcast. */
static void target_mc(struct planning *p)
{
	const struct vmce_host_error *e = p->e;
	const struct vmce_profile *prof = &p->vm->profile;
	struct vmce_plan *plan = p->plan;
	enum vmce_class cls = plan->cls;
	struct vmce_vcpu_state st;
	unsigned target;

	if (cls == VMCE_CLASS_SRAR) {
		if (e->vcpu < 0) {
			decided(p, VMCE_VERDICT_FATAL, cls, WHY_SRAR_NO_VCPU);
			return;
		}
		target = (unsigned)e->vcpu;
	} else {
		/* SRAO: vCPU 0, or the reporting vCPU when the host saw it as local and the guest
		 * takes local machine checks there (LMCE). */
		target = e->vcpu >= 0 && e->local ? (unsigned)e->vcpu : 0;
		if (target != 0) {
			vmce_vcpu_get_state(&p->vm->vcpus[target], &st);
			if (!lmce_enabled(prof, &st))
				target = 0;
		}
	}
	plan->target = target;
	p->why->vcpu = target;
	vmce_vcpu_get_state(&p->vm->vcpus[target], &st);

	plan->record.signal = VMCE_SIGNAL_MC;
	if (p->amd) {
		/* Linux's AMD grading: UC without PCC, in user context, with SUCCOR -> AR. */
		plan->record.status = ST_VAL | ST_UC | ST_EN | ST_ADDRV | ST_POISON | p->mc;
		plan->record.mcg_status = MCG_MCIP | MCG_RIPV | MCG_EIPV;
		if (!(prof->caps & VMCE_CAP_SUCCOR))
			p->why->note = NOTE_NO_SUCCOR;
		p->why->code = WHY_AMD_SRAR;
		return;
	}
	plan->record.status = ST_VAL | ST_UC | ST_EN | ST_MISCV | ST_ADDRV | ST_S | p->mc;
	plan->record.mcg_status = MCG_MCIP | MCG_RIPV;
	if (cls == VMCE_CLASS_SRAR) {
		plan->record.status |= ST_AR;
		plan->record.mcg_status |= MCG_EIPV;
	}
	if (st.mcg_status & MCG_MCIP)
		p->why->note = NOTE_MCIP;

	if (bank_masked(p->vm, &st, p->rb)) {
		p->why->code = WHY_MASKED;
	} else if (lmce_enabled(prof, &st) && (cls == VMCE_CLASS_SRAR || e->local)) {
		plan->lmce = true;
		plan->record.mcg_status |= MCG_LMCES;
		p->why->code = WHY_LMCE;
	} else if (e->no_broadcast || plan->nr_vcpus == 1) {
		p->why->flag = plan->nr_vcpus > 1;
		p->why->code = WHY_MC;
	} else {
		plan->broadcast = true;
		plan->bystander.signal = VMCE_SIGNAL_MC;
		plan->bystander.bank = -1;
		plan->bystander.mcg_status = MCG_MCIP | MCG_RIPV;
		p->why->code = WHY_BROADCAST;
	}
}

/* 3. Target and synthesis. */
static void step_target(struct planning *p)
{
	struct vmce_plan *plan = p->plan;
	enum vmce_class cls = plan->cls;

	plan_verdict(plan, VMCE_VERDICT_FORWARD, cls);
	plan->record.bank = (int)p->rb;
	plan->record.addr = plan->has_gpa ? plan->gpa : 0;
	plan->record.misc = plan->has_gpa && !p->amd ? p->misc : 0;
	p->why->cls = cls;
	p->why->vcpu = plan->target;
	if (cls == VMCE_CLASS_UCNA)
		target_ucna(p);
	else if (p->amd && cls == VMCE_CLASS_SRAO)
		target_amd_deferred(p);
	else
		target_mc(p);
	p->why->vcpu = plan->target;
}

/*
 * The plan, then its reason: written (text) or kept behind an empty string for
 * vmce_plan_reason().
 */
static int make_plan(struct vmce_vm *vm, const struct vmce_host_error *e, struct vmce_plan *plan,
		     bool text, struct vmce_err *err)
{
	struct plan_why w, *why = &w;
	struct planning p = {.vm = vm, .e = e, .plan = plan, .why = why};
	int rc;

	if (!vm || !e || !plan)
		return vmce__fail(err, -EINVAL, "vmce_plan_error: vm, error and plan are required");
	rc = check_error(vm, e, err);
	if (rc)
		return rc;
	memset(plan, 0, sizeof(*plan));
	memset(why, 0, sizeof(*why));
	plan->nr_vcpus = vm->nr_vcpus;
	plan->target = e->vcpu >= 0 ? (unsigned)e->vcpu : 0;
	plan_verdict(plan, VMCE_VERDICT_DROP, VMCE_CLASS_AUTO);
	p.amd = vm->profile.vendor == VMCE_VENDOR_AMD;
	p.rb = vm->profile.report_bank;
	why->bank = p.rb;
	why->nr = vm->nr_vcpus;
	why->vcpu = plan->target;
	if (!step_class(&p) && !step_address(&p))
		step_target(&p);
	if (text) {
		why_format(why, plan->reason, sizeof(plan->reason));
	} else {
		plan->reason[1] = (char)WHY_KEPT;
		memcpy(plan->reason + WHY_AT, why, sizeof(*why));
	}
	return 0;
}

int vmce_plan_error(struct vmce_vm *vm, const struct vmce_host_error *e, struct vmce_plan *plan,
		    struct vmce_err *err)
{
	return make_plan(vm, e, plan, true, err);
}

int vmce_plan_decide(struct vmce_vm *vm, const struct vmce_host_error *e, struct vmce_plan *plan,
		     struct vmce_err *err)
{
	return make_plan(vm, e, plan, false, err);
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
	char reason[sizeof(plan->reason)];
	bool first = true;

	if (!plan)
		return -EINVAL;
	vmce_plan_reason(plan, reason, sizeof(reason));
	vmce__jprintf(&b, "{\"verdict\":\"%s\",\"class\":\"%s\",\"reason\":",
		      vmce_verdict_name(plan->verdict), vmce_class_name(plan->cls));
	vmce__jstr(&b, reason, sizeof(reason));
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
