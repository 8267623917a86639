/* SPDX-License-Identifier: MIT */
/*
 * mce.c - machine-check handling of the built-in test guest, modelled on what Linux 6.1 does
 * (arch/x86/kernel/cpu/mce/): the boot-time MSR sequence, the poller, severity grading with
 * the Intel SER rules (and the AMD rules), the broadcast rendezvous with its one-second
 * timeout, LMCE, and the recovery actions.  docs/guest.md lists where it differs from Linux.
 */
#include "guest.h"

#define MSR_MCG_CAP	 0x179u
#define MSR_MCG_STATUS	 0x17au
#define MSR_MCG_CTL	 0x17bu
#define MSR_MCG_EXT_CTL	 0x4d0u
#define MSR_MC_CTL(i)	 (0x400u + 4u * (i))
#define MSR_MC_STATUS(i) (0x401u + 4u * (i))
#define MSR_MC_ADDR(i)	 (0x402u + 4u * (i))
#define MSR_MC_MISC(i)	 (0x403u + 4u * (i))
#define MSR_MC_CTL2(i)	 (0x280u + (i))

#define MCG_CTL_P	 (1ull << 8)
#define MCG_CMCI_P	 (1ull << 10)
#define MCG_SER_P	 (1ull << 24)
#define MCG_LMCE_P	 (1ull << 27)

#define MCG_RIPV	 (1ull << 0)
#define MCG_EIPV	 (1ull << 1)
#define MCG_MCIP	 (1ull << 2)
#define MCG_LMCES	 (1ull << 3)

#define ST_VAL		 (1ull << 63)
#define ST_OVER		 (1ull << 62)
#define ST_UC		 (1ull << 61)
#define ST_EN		 (1ull << 60)
#define ST_MISCV	 (1ull << 59)
#define ST_ADDRV	 (1ull << 58)
#define ST_PCC		 (1ull << 57)
#define ST_S		 (1ull << 56)
#define ST_AR		 (1ull << 55)
#define ST_DEFERRED	 (1ull << 44)
#define ST_UC_S		 (ST_UC | ST_S)
#define ST_UC_SAR	 (ST_UC | ST_S | ST_AR)
#define ST_ADDR		 (ST_ADDRV | ST_MISCV)

/* MCACOD with the "filter" bit 12 ignored, and the architectural codes the rules know. */
#define MCACOD		 0xefffull
#define MCACOD_SCRUB	 0x00c0ull
#define SCRUB_MASK	 0xeff0ull
#define MCACOD_L3WB	 0x017aull
#define MCACOD_DATA	 0x0134ull
#define MCACOD_INSTR	 0x0150ull

#define CTL2_CMCI_EN	 (1ull << 30)
#define CTL2_THRESH_MASK 0x7fffull
#define EXT_CTL_LMCE_EN	 1ull

/* Severities, in Linux's order. */
enum sev {
	SEV_NO,
	SEV_DEFERRED,
	SEV_UCNA = SEV_DEFERRED,
	SEV_KEEP,
	SEV_SOME,
	SEV_AO,
	SEV_UC,
	SEV_AR,
	SEV_PANIC,
};

enum ctx { CTX_KERNEL = 1, CTX_USER = 2, CTX_KERNEL_RECOV = 3 };

struct mce_rec {
	u64 status, addr, misc, mcgstatus, ip;
	u32 cs, bank;
};

static bool ser;				/* some vCPU's MCG_CAP has SER_P */
static u64 bank_ctl[32] = {[0 ... 31] = ~0ull}; /* MCi_CTL to program; 0: bank ignored */
static u8 bank_init[32] = {[0 ... 31] = 1};	/* program MCi_CTL/STATUS at boot */

/* ---- MSR access ------------------------------------------------------------------------- */

/* pc->msr_busy names the access while it runs, so that a #GP can say which MSR failed. */
static u64 mce_rd(struct percpu *pc, u32 msr)
{
	u32 lo, hi;

	pc->msr_busy = msr | MSR_BUSY_RD;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr) : "memory");
	pc->msr_busy = 0;
	return ((u64)hi << 32) | lo;
}

static void mce_wr(struct percpu *pc, u32 msr, u64 v)
{
	pc->msr_busy = msr | MSR_BUSY_WR;
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
	pc->msr_busy = 0;
}

/* ---- Severity grading ------------------------------------------------------------------- */

/*
 * Intel rules (first match wins), as in Linux 6.1's severity table: status mask/value,
 * MCG_STATUS mask/value, whether SER is required (1) or must be absent (2), the context, and
 * whether the rule applies only in the #MC handler (1).
 */
struct rule {
	u64 mask, val;
	u8 mcgmask, mcgval;
	u8 ser, ctx, excp;
	u8 model, min_stepping, bank_lo, bank_hi;
	u8 sev;
	const char *msg;
};

#define R_SER  .ser = 1
#define R_NSER .ser = 2
#define R_EXCP .excp = 1

static const struct rule intel_rules[] = {
	{.mask = ST_VAL, .val = 0, .sev = SEV_NO, .msg = "Invalid"},
	{.mask = ST_EN, .val = 0, R_EXCP, .sev = SEV_NO, .msg = "Not enabled"},
	{.mask = ST_PCC, .val = ST_PCC, .sev = SEV_PANIC, .msg = "Processor context corrupt"},
	{.mcgmask = MCG_MCIP,
	 .mcgval = 0,
	 R_EXCP,
	 .sev = SEV_PANIC,
	 .msg = "MCIP not set in MCA handler"},
	{.mcgmask = MCG_RIPV | MCG_EIPV,
	 .mcgval = 0,
	 R_EXCP,
	 .sev = SEV_PANIC,
	 .msg = "Neither restart nor error IP"},
	{.mcgmask = MCG_RIPV,
	 .mcgval = 0,
	 R_EXCP,
	 .ctx = CTX_KERNEL,
	 .sev = SEV_PANIC,
	 .msg = "In kernel and no restart IP"},
	{.mcgmask = MCG_RIPV,
	 .mcgval = 0,
	 R_EXCP,
	 .ctx = CTX_KERNEL_RECOV,
	 .sev = SEV_PANIC,
	 .msg = "In kernel and no restart IP"},
	{.mask = ST_UC, .val = 0, R_NSER, .sev = SEV_KEEP, .msg = "Corrected error"},
	{.mask = ST_UC | ST_AR | SCRUB_MASK,
	 .val = ST_UC | MCACOD_SCRUB,
	 R_SER,
	 .sev = SEV_AO,
	 .msg = "Action optional: memory scrubbing error"},
	{.mask = ST_UC | ST_AR | MCACOD,
	 .val = ST_UC | MCACOD_L3WB,
	 R_SER,
	 .sev = SEV_AO,
	 .msg = "Action optional: last level cache writeback error"},
	{.mask = ST_UC | ST_ADDR | 0xffffeff0ull,
	 .val = ST_ADDR | 0x001000c0ull,
	 R_SER,
	 .model = 0x55,
	 .min_stepping = 4,
	 .bank_lo = 13,
	 .bank_hi = 18,
	 .sev = SEV_AO,
	 .msg = "Uncorrected Patrol Scrub Error"},
	{.mask = ST_UC_SAR,
	 .val = ST_UC,
	 R_SER,
	 .sev = SEV_UCNA,
	 .msg = "Uncorrected no action required"},
	{.mask = ST_OVER | ST_UC_SAR,
	 .val = ST_UC | ST_AR,
	 R_SER,
	 .sev = SEV_PANIC,
	 .msg = "Illegal combination (UCNA with AR=1)"},
	{.mask = ST_S, .val = 0, R_SER, .sev = SEV_KEEP, .msg = "Non signaled machine check"},
	{.mask = ST_OVER | ST_UC_SAR,
	 .val = ST_OVER | ST_UC_SAR,
	 R_SER,
	 .sev = SEV_PANIC,
	 .msg = "Action required with lost events"},
	{.mask = ST_OVER | ST_UC_SAR | ST_ADDR,
	 .val = ST_UC_SAR | ST_ADDR,
	 R_SER,
	 .mcgmask = MCG_RIPV | MCG_EIPV,
	 .mcgval = MCG_RIPV,
	 .sev = SEV_KEEP,
	 .msg = "Action required but unaffected thread is continuable"},
	{.mask = ST_OVER | ST_UC_SAR | ST_ADDR | MCACOD,
	 .val = ST_UC_SAR | ST_ADDR | MCACOD_DATA,
	 R_SER,
	 .ctx = CTX_KERNEL_RECOV,
	 .sev = SEV_AR,
	 .msg = "Action required: data load in error recoverable area of kernel"},
	{.mask = ST_OVER | ST_UC_SAR | ST_ADDR | MCACOD,
	 .val = ST_UC_SAR | ST_ADDR | MCACOD_DATA,
	 R_SER,
	 .ctx = CTX_USER,
	 .sev = SEV_AR,
	 .msg = "Action required: data load error in a user process"},
	{.mask = ST_OVER | ST_UC_SAR | ST_ADDR | MCACOD,
	 .val = ST_UC_SAR | ST_ADDR | MCACOD_INSTR,
	 R_SER,
	 .ctx = CTX_USER,
	 .sev = SEV_AR,
	 .msg = "Action required: instruction fetch error in a user process"},
	{.mask = ST_OVER | ST_UC_SAR | ST_ADDR | MCACOD,
	 .val = ST_UC_SAR | ST_ADDR | MCACOD_DATA,
	 R_SER,
	 .ctx = CTX_KERNEL,
	 .sev = SEV_PANIC,
	 .msg = "Data load in unrecoverable area of kernel"},
	{.mask = ST_OVER | ST_UC_SAR | ST_ADDR | MCACOD,
	 .val = ST_UC_SAR | ST_ADDR | MCACOD_INSTR,
	 R_SER,
	 .ctx = CTX_KERNEL,
	 .sev = SEV_PANIC,
	 .msg = "Instruction fetch error in kernel"},
	{.mask = ST_OVER | ST_UC_SAR,
	 .val = ST_UC_SAR,
	 R_SER,
	 .sev = SEV_PANIC,
	 .msg = "Action required: unknown MCACOD"},
	{.mask = ST_OVER | ST_UC_SAR,
	 .val = ST_UC_S,
	 R_SER,
	 .sev = SEV_SOME,
	 .msg = "Action optional: unknown MCACOD"},
	{.mask = ST_OVER | ST_UC_SAR,
	 .val = ST_OVER | ST_UC_S,
	 R_SER,
	 .sev = SEV_SOME,
	 .msg = "Action optional with lost events"},
	{.mask = ST_OVER | ST_UC,
	 .val = ST_OVER | ST_UC,
	 .sev = SEV_PANIC,
	 .msg = "Overflowed uncorrected"},
	{.mask = ST_UC, .val = ST_UC, .sev = SEV_UC, .msg = "Uncorrected"},
	{.mask = 0, .val = 0, .sev = SEV_SOME, .msg = "No match"},
};

/* User context only when the saved CS is ring 3 (CS is known only with RIPV or EIPV); the
 * guest has no exception fixups, so every kernel context is unrecoverable. */
static enum ctx error_context(const struct mce_rec *m)
{
	return (m->cs & 3) == 3 ? CTX_USER : CTX_KERNEL;
}

static int grade_intel(const struct mce_rec *m, bool excp, const char **msg)
{
	enum ctx ctx = error_context(m);

	for (const struct rule *r = intel_rules;; r++) {
		if ((m->status & r->mask) != r->val)
			continue;
		if ((m->mcgstatus & r->mcgmask) != r->mcgval)
			continue;
		if ((r->ser == 1 && !ser) || (r->ser == 2 && ser))
			continue;
		if (r->ctx && r->ctx != ctx)
			continue;
		if (r->excp && !excp)
			continue;
		if (r->model && (g.model != r->model || g.stepping < r->min_stepping))
			continue;
		if (r->bank_lo && (m->bank < r->bank_lo || m->bank > r->bank_hi))
			continue;
		*msg = r->msg;
		if (r->sev >= SEV_UC && ctx == CTX_KERNEL)
			return SEV_PANIC;
		return r->sev;
	}
}

/* AMD (Linux 6.1's simplified AMD grading; no SMCA). */
static int grade_amd(const struct mce_rec *m, const char **msg)
{
	if (m->status & ST_PCC) {
		*msg = "Processor Context Corrupt";
		return SEV_PANIC;
	}
	if (m->status & ST_DEFERRED) {
		*msg = "Deferred error";
		return SEV_DEFERRED;
	}
	if (!(m->status & ST_UC)) {
		*msg = "Corrected error";
		return SEV_KEEP;
	}
	if ((m->status & ST_OVER) && !g.overflow_recov) {
		*msg = "Overflowed uncorrected error without MCA Overflow Recovery";
		return SEV_PANIC;
	}
	if (!g.succor) {
		*msg = "Uncorrected error without MCA Recovery";
		return SEV_PANIC;
	}
	if (error_context(m) == CTX_KERNEL) {
		*msg = "Uncorrected unrecoverable error in kernel context";
		return SEV_PANIC;
	}
	*msg = "Uncorrected error in user context";
	return SEV_AR;
}

static int grade(const struct mce_rec *m, bool excp, const char **msg)
{
	return g.amd ? grade_amd(m, msg) : grade_intel(m, excp, msg);
}

/* An address memory_failure() can use: physical, page granularity or finer. */
static bool usable_address(const struct mce_rec *m)
{
	if (!(m->status & ST_ADDRV))
		return false;
	if (!g.intel)
		return true;
	if (!(m->status & ST_MISCV))
		return false;
	if ((m->misc & 0x3f) > 12)
		return false;
	return ((m->misc >> 6) & 7) == 2;
}

static void read_aux(struct percpu *pc, struct mce_rec *m)
{
	if (m->status & ST_MISCV)
		m->misc = mce_rd(pc, MSR_MC_MISC(m->bank));
	if (m->status & ST_ADDRV) {
		m->addr = mce_rd(pc, MSR_MC_ADDR(m->bank));
		if (ser && (m->status & ST_MISCV)) {
			unsigned lsb = (unsigned)(m->misc & 0x3f);
			m->addr = (m->addr >> lsb) << lsb;
		}
	}
}

static void log_rec(struct percpu *pc, const struct mce_rec *m, const char *action,
		    const char *result)
{
	if (pc->quiet)
		return;
	con_printf(pc,
		   "mce: cpu=%u bank=%u status=0x%016lx addr=0x%lx misc=0x%lx mcgstatus=0x%lx "
		   "action=%s result=%s",
		   pc->id, m->bank, (unsigned long)m->status, (unsigned long)m->addr,
		   (unsigned long)m->misc, (unsigned long)m->mcgstatus, action, result);
}

/* memory_failure() for an action-optional error: take the page offline. */
static void offline_and_log(struct percpu *pc, const struct mce_rec *m)
{
	int r = page_offline(m->addr);

	if (r > 0)
		log_rec(pc, m, "offline-page", "recovered");
	else
		log_rec(pc, m, "none", "ignored"); /* already offline, or the table is full */
}

/* ---- Boot-time initialisation ----------------------------------------------------------- */

void mce_cpu_init(struct percpu *pc)
{
	u64 cap;

	if (!g.has_mca) {
		con_printf(pc, "mce: disabled cpu=%u: CPUID has no MCE/MCA", pc->id);
		return;
	}

	/* Capabilities (__mcheck_cpu_cap_init). */
	cap = mce_rd(pc, MSR_MCG_CAP);
	pc->banks = (u32)(cap & 0xff) > 32 ? 32 : (u32)(cap & 0xff);
	if (cap & MCG_SER_P)
		ser = true;

	/* Quirks: K7 bank 0 is broken; Intel family 6 before model 0x1a aliases CTL0. */
	if (g.amd && g.family == 6 && pc->banks)
		bank_ctl[0] = 0;
	if (g.intel && g.family == 6 && g.model < 0x1a && pc->banks)
		bank_init[0] = 0;

	/* Log what was left from before the reset, enable #MC, MCG_CTL (__mcheck_cpu_init_generic). */
	mce_poll(pc, true);
	write_cr4(read_cr4() | CR4_MCE);
	cap = mce_rd(pc, MSR_MCG_CAP);
	if (cap & MCG_CTL_P)
		mce_wr(pc, MSR_MCG_CTL, ~0ull);

	/* Intel: claim the banks for CMCI, then LMCE (mce_intel_feature_init). */
	if (g.intel && (cap & MCG_CMCI_P)) {
		for (u32 i = 0; i < pc->banks; i++) {
			u64 v = mce_rd(pc, MSR_MC_CTL2(i));

			if (v & CTL2_CMCI_EN)
				continue; /* owned by another CPU */
			v = (v & ~CTL2_THRESH_MASK) | CTL2_CMCI_EN | 1;
			mce_wr(pc, MSR_MC_CTL2(i), v);
			if (mce_rd(pc, MSR_MC_CTL2(i)) & CTL2_CMCI_EN)
				pc->cmci_owned |= 1u << i;
		}
	}
	if (g.intel && (cap & (MCG_SER_P | MCG_LMCE_P)) == (MCG_SER_P | MCG_LMCE_P)) {
		u64 v = mce_rd(pc, MSR_MCG_EXT_CTL);

		if (!(v & EXT_CTL_LMCE_EN))
			mce_wr(pc, MSR_MCG_EXT_CTL, v | EXT_CTL_LMCE_EN);
		pc->lmce = true;
	}

	/* Enable every bank and clear its status, then read the controls back
	 * (__mcheck_cpu_init_clear_banks, __mcheck_cpu_check_banks). */
	for (u32 i = 0; i < pc->banks; i++) {
		if (!bank_init[i])
			continue;
		mce_wr(pc, MSR_MC_CTL(i), bank_ctl[i]);
		mce_wr(pc, MSR_MC_STATUS(i), 0);
	}
	for (u32 i = 0; i < pc->banks; i++)
		if (bank_init[i])
			(void)mce_rd(pc, MSR_MC_CTL(i));

	mce_mark_online(); /* before the line: a test may inject as soon as it sees it */
	con_printf(pc, "mce: init cpu=%u banks=%u ser=%u cmci=%u lmce=%u", pc->id, pc->banks,
		   (unsigned)((cap & MCG_SER_P) != 0), (unsigned)(pc->cmci_owned != 0),
		   (unsigned)pc->lmce);
}

/* ---- The poller (machine_check_poll) ---------------------------------------------------- */

void mce_poll(struct percpu *pc, bool boot)
{
	struct mce_rec m = {0};

	if (!pc->banks)
		return;
	(void)mce_rd(pc, MSR_MCG_CAP); /* mce_setup() */
	m.mcgstatus = mce_rd(pc, MSR_MCG_STATUS);

	for (u32 i = 0; i < pc->banks; i++) {
		const char *msg;
		int sev;

		if (!bank_ctl[i])
			continue;
		m.bank = i;
		m.addr = m.misc = 0;
		m.status = mce_rd(pc, MSR_MC_STATUS(i));
		if (!(m.status & ST_VAL))
			continue;
		/* Uncorrected errors are the #MC handler's, except at boot, UCNA and not-enabled
		 * ones (SER). */
		if (!boot && (m.status & ST_UC)) {
			if (!ser)
				continue;
			if ((m.status & ST_EN) && ((m.status & ST_PCC) || (m.status & ST_S)))
				continue;
		}
		read_aux(pc, &m);
		sev = grade(&m, false, &msg);
		/* The quiet poller (boot flag) acts as usual but prints nothing. */
		pc->quiet = !boot && (g.flags & BOOT_FLAG_QUIET);
		if (usable_address(&m) && (sev == SEV_AO || sev == SEV_DEFERRED))
			offline_and_log(pc, &m);
		else
			log_rec(pc, &m, "log", "logged");
		pc->quiet = false;
		mce_wr(pc, MSR_MC_STATUS(i), 0);
	}
}

/* ---- The #MC handler (do_machine_check) ------------------------------------------------- */

/* Broadcast rendezvous (mce_start/mce_end): entry order, the first CPU is the monarch. */
static volatile u32 mce_callin, mce_executing, global_nwo, mce_online;

/* What each CPU found, for the monarch's verdict (mce_reign). */
static struct {
	int sev;
	const char *msg;
} seen[GUEST_MAX_CPUS];

static void spin_or_timeout(struct percpu *pc, u64 start, const char *msg)
{
	if (rdtsc() - start > g.tsc_per_sec)
		guest_panic(pc, "mce", "%s", msg);
	cpu_relax();
}

static u32 online_cpus(void)
{
	return __atomic_load_n(&mce_online, __ATOMIC_ACQUIRE);
}

void mce_mark_online(void)
{
	__atomic_fetch_add(&mce_online, 1, __ATOMIC_ACQ_REL);
}

static u32 mce_start(struct percpu *pc, int *no_way_out)
{
	u64 t0 = rdtsc();
	u32 cpus = online_cpus();
	u32 order;

	__atomic_fetch_add(&global_nwo, (u32)*no_way_out, __ATOMIC_ACQ_REL);
	order = __atomic_add_fetch(&mce_callin, 1, __ATOMIC_ACQ_REL);
	while (__atomic_load_n(&mce_callin, __ATOMIC_ACQUIRE) != cpus)
		spin_or_timeout(pc, t0,
				"Timeout: Not all CPUs entered broadcast exception handler");

	if (order == 1) {
		__atomic_store_n(&mce_executing, 1, __ATOMIC_RELEASE);
	} else {
		t0 = rdtsc();
		while (__atomic_load_n(&mce_executing, __ATOMIC_ACQUIRE) < order)
			spin_or_timeout(pc, t0,
					"Timeout: Subject CPUs unable to finish machine check "
					"processing");
	}
	*no_way_out = (int)__atomic_load_n(&global_nwo, __ATOMIC_ACQUIRE);
	return order;
}

static void mce_reign(struct percpu *pc)
{
	int worst = SEV_NO;
	const char *msg = "";

	for (u32 c = 0; c < g.nr_vcpus; c++) {
		if (seen[c].sev > worst) {
			worst = seen[c].sev;
			msg = seen[c].msg;
		}
		seen[c].sev = SEV_NO;
	}
	if (worst >= SEV_PANIC)
		guest_panic(pc, "mce", "Fatal machine check: %s", msg);
	if (worst <= SEV_KEEP)
		guest_panic(pc, "mce", "Fatal machine check from unknown source");
}

static void mce_end(struct percpu *pc, u32 order)
{
	u64 t0 = rdtsc();

	__atomic_add_fetch(&mce_executing, 1, __ATOMIC_ACQ_REL);
	if (order == 1) {
		u32 cpus = online_cpus();

		while (__atomic_load_n(&mce_executing, __ATOMIC_ACQUIRE) <= cpus)
			spin_or_timeout(pc, t0,
					"Timeout: Monarch CPU unable to finish machine check "
					"processing");
		mce_reign(pc);
		__atomic_store_n(&global_nwo, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&mce_callin, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&mce_executing, 0, __ATOMIC_RELEASE);
	} else {
		while (__atomic_load_n(&mce_executing, __ATOMIC_ACQUIRE) != 0)
			spin_or_timeout(pc, t0,
					"Timeout: Monarch CPU did not finish machine check "
					"processing");
	}
}

static void print_and_panic(struct percpu *pc, const struct mce_rec *m, const char *what,
			    const char *msg)
{
	if (m)
		log_rec(pc, m, "panic", "fatal");
	guest_panic(pc, "mce", "%s: %s", what, msg);
}

void do_machine_check(struct percpu *pc, struct regs *r)
{
	struct mce_rec m = {0}, final;
	u32 valid = 0, toclear = 0, order = 0;
	int no_way_out = 0, worst = SEV_NO, kill_current = 0;
	bool lmce = true;
	const char *msg = "Unknown";

	pc->in_mce = 1;
	if (!pc->banks)
		guest_panic(pc, "mce", "machine check on cpu=%u before MCA was set up", pc->id);

	/* mce_gather_info() */
	(void)mce_rd(pc, MSR_MCG_CAP);
	m.mcgstatus = mce_rd(pc, MSR_MCG_STATUS);
	if (m.mcgstatus & (MCG_RIPV | MCG_EIPV)) {
		m.ip = r->rip;
		m.cs = (u32)r->cs;
	}
	final = m;

	/* mce_no_way_out(): a first look at every bank for a fatal error. */
	for (u32 i = 0; i < pc->banks; i++) {
		int sev;

		m.status = mce_rd(pc, MSR_MC_STATUS(i));
		if (!(m.status & ST_VAL))
			continue;
		valid |= 1u << i;
		m.bank = i;
		sev = grade(&m, true, &msg);
		if (sev >= SEV_PANIC) {
			read_aux(pc, &m);
			final = m;
			no_way_out = 1;
			break;
		}
	}

	if (!(m.mcgstatus & MCG_RIPV))
		kill_current = 1;
	if (g.intel)
		lmce = (m.mcgstatus & MCG_LMCES) != 0;

	if (lmce) {
		if (no_way_out)
			print_and_panic(pc, &final, "Fatal local machine check", msg);
	} else {
		order = mce_start(pc, &no_way_out);
	}

	/* __mc_scan_banks() */
	if (!valid)
		con_printf(pc, "mce: bystander cpu=%u", pc->id);
	for (u32 i = 0; i < pc->banks; i++) {
		const char *bmsg;
		int sev;

		if (!(valid & (1u << i)) || !bank_ctl[i])
			continue;
		m.misc = m.addr = 0;
		m.bank = i;
		m.status = mce_rd(pc, MSR_MC_STATUS(i));
		if (!(m.status & ST_VAL))
			continue;
		/* Corrected and non-signalled errors are the poller's, unless this panics. */
		if (!(m.status & (ser ? ST_S : ST_UC)) && !no_way_out)
			continue;
		sev = grade(&m, true, &bmsg);
		if ((sev == SEV_KEEP || sev == SEV_UCNA) && !no_way_out)
			continue;
		toclear |= 1u << i;
		if (sev == SEV_NO)
			continue;
		read_aux(pc, &m);

		if (no_way_out || sev >= SEV_PANIC)
			log_rec(pc, &m, "panic", "fatal");
		else if (sev == SEV_AO && usable_address(&m))
			offline_and_log(pc, &m);
		else if (sev == SEV_AR && error_context(&m) == CTX_USER && wl.running &&
			 wl.cpu == pc->id)
			log_rec(pc, &m, "kill-workload", "restarted");
		else
			log_rec(pc, &m, "log", "logged");

		if (sev > worst) {
			worst = sev;
			final = m;
			msg = bmsg;
		}
	}
	m = final;
	if (!lmce) {
		/* for the monarch's verdict; a local event has no monarch */
		seen[pc->id].sev = worst;
		seen[pc->id].msg = msg;
	}

	if (!no_way_out)
		for (u32 i = 0; i < pc->banks; i++)
			if (toclear & (1u << i))
				mce_wr(pc, MSR_MC_STATUS(i), 0);

	if (!lmce) {
		mce_end(pc, order);
		if (no_way_out)
			print_and_panic(pc, NULL, "Fatal machine check on current CPU", msg);
	} else if (worst >= SEV_PANIC) {
		print_and_panic(pc, NULL, "Local fatal machine check!", msg);
	}

	/* Recovery in the interrupted user context: kill_me_maybe() / kill_me_now(). */
	if ((worst == SEV_AR || kill_current) && (m.cs & 3) == 3 && (r->cs & 3) == 3) {
		if (wl.running && wl.cpu == pc->id) {
			if (!kill_current && usable_address(&m))
				(void)page_offline(m.addr);
			workload_restart(pc, r);
		}
	}

	/* The console lines wait for periodic(), outside the handler (as Linux's printk from #MC
	 * waits for irq_work): the handler must not take a lock once MCIP is clear, when another
	 * machine check may come.  On the workload's vCPU that is its next kernel entry. */
	mce_wr(pc, MSR_MCG_STATUS, 0);
	pc->in_mce = 0;
}
