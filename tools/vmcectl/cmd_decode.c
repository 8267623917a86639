// SPDX-License-Identifier: MIT
/*
 * vmcectl decode: MCi_STATUS and MCG_STATUS in words.
 *
 * The MCA error code (MCACOD, bits 15:0) follows the Intel SDM's rules (vol. 3B, "Interpreting
 * the MCA Error Codes"): simple codes first, then compound codes, whose bit 12 (F, correction
 * report filtering) is ignored when matching the type.  AMD uses the same compound encoding.
 * The severity lines grade the record the way Linux's machine-check handler does
 * (arch/x86/kernel/cpu/mce/severity.c): an ordered list of rules, first match wins.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <vmce/vmce.h>

#include "vmcectl.h"

static const char decode_help[] =
	"Usage: vmcectl decode [OPTIONS] STATUS\n"
	"\n"
	"Decode a machine-check bank status value (MCi_STATUS, hexadecimal, 0x\n"
	"optional): every architectural bit and field, the MCA error code with its\n"
	"architectural meaning, the error class and the severity Linux's #MC handler\n"
	"would assign.\n"
	"\n"
	"Options:\n"
	"  --vendor intel|amd  bit layout and severity rules (default intel)\n"
	"  --mcg-status HEX    also decode MCG_STATUS, and grade the record with it\n"
	"                      (default: 0x5 MCIP|RIPV assumed, 0x7 with AR)\n"
	"  --misc HEX          also decode MCi_MISC (address granularity and mode) and\n"
	"                      say whether Linux can act on the address\n"
	"  --no-ser            Intel: grade as for a CPU without MCG_SER_P\n"
	"  --succor            AMD: grade as for a guest that sees SUCCOR\n"
	"  --json              print one JSON object\n"
	"  -h, --help          show this help\n"
	"\n"
	"Examples:\n"
	"  vmcectl decode 0xbd0000000000017a                  SRAO, L3 writeback\n"
	"  vmcectl decode 0xbd80000000000134 --mcg-status 7   SRAR, data load\n";

#define ST_VAL	  VMCE_MCI_STATUS_VAL
#define ST_OVER	  VMCE_MCI_STATUS_OVER
#define ST_UC	  VMCE_MCI_STATUS_UC
#define ST_EN	  VMCE_MCI_STATUS_EN
#define ST_MISCV  VMCE_MCI_STATUS_MISCV
#define ST_ADDRV  VMCE_MCI_STATUS_ADDRV
#define ST_PCC	  VMCE_MCI_STATUS_PCC
#define ST_S	  VMCE_MCI_STATUS_S
#define ST_AR	  VMCE_MCI_STATUS_AR
#define ST_TCC	  (1ull << 55) /* AMD: task context corrupt */
#define ST_SYNDV  (1ull << 53) /* AMD: MCA_SYND valid */
#define ST_DEFER  VMCE_MCI_STATUS_DEFERRED
#define ST_POISON VMCE_MCI_STATUS_POISON
#define ST_SCRUB  (1ull << 40) /* AMD: found by the scrubber */

#define UC_S	  (ST_UC | ST_S)
#define UC_SAR	  (ST_UC | ST_S | ST_AR)
#define ST_AV	  (ST_ADDRV | ST_MISCV)

/* MCACOD values the recovery rules name (bit 12, F, masked out by CODE_MASK). */
#define CODE_MASK	0xefffull
#define CODE_SCRUB	0x00c0ull /* memory scrubbing, any channel */
#define CODE_SCRUB_MASK 0xeff0ull
#define CODE_L3WB	0x017aull /* last-level cache explicit writeback */
#define CODE_DATA	0x0134ull /* data load */
#define CODE_INSTR	0x0150ull /* instruction fetch */

/* ---- MCA error codes ----------------------------------------------------------------------- */

struct mcacod {
	const char *type; /* "simple", "cache", "tlb", "memory", "bus", "generic-cache", ... */
	char name[48];	  /* the SDM's mnemonic, when it gives one */
	char text[200];	  /* in words */
};

static const char *const tt_name[] = {"I", "D", "G", "R"};
static const char *const tt_text[] = {"instruction", "data", "generic", "reserved type"};
static const char *const ll_name[] = {"L0", "L1", "L2", "LG"};
static const char *const ll_text[] = {"level 0", "level 1", "level 2", "generic level"};
static const char *const rrrr_name[16] = {"ERR", "RD",	     "WR",    "DRD",  "DWR",
					  "IRD", "PREFETCH", "EVICT", "SNOOP"};
static const char *const rrrr_text[16] = {"generic error", "generic read", "generic write",
					  "data read",	   "data write",   "instruction fetch",
					  "prefetch",	   "eviction",	   "snoop"};
static const char *const pp_name[] = {"SRC", "RES", "OBS", "GEN"};
static const char *const pp_text[] = {
	"originated by the local processor", "the local processor responded",
	"observed by the local processor as a third party", "generic participation"};
static const char *const ii_name[] = {"M", "R", "IO", "OTHER"};
static const char *const ii_text[] = {"memory access", "reserved space", "I/O",
				      "other transaction"};
static const char *const mmm_name[8] = {"GEN", "RD", "WR", "AC", "MS"};
static const char *const mmm_text[8] = {"generic undefined request", "memory read", "memory write",
					"address/command error", "memory scrubbing"};

static const char *rname(unsigned r)
{
	return rrrr_name[r] ? rrrr_name[r] : "RSVD";
}

static const char *rtext(unsigned r)
{
	return rrrr_text[r] ? rrrr_text[r] : "reserved request";
}

/* The simple error codes with a fixed meaning. */
static const struct {
	unsigned code;
	const char *text;
} simple_codes[] = {
	{0x0000, "no error"},
	{0x0001, "unclassified error"},
	{0x0002, "microcode ROM parity error"},
	{0x0003, "external error (BINIT# from another processor)"},
	{0x0004, "functional redundancy check (FRC) error"},
	{0x0005, "internal parity error"},
	{0x0006, "SMM handler code access violation"},
	{0x0400, "internal timer error"},
	{0x0e0b, "I/O error"},
};

static void decode_mcacod(unsigned code, struct mcacod *m)
{
	unsigned c = code & 0xefffu; /* without F */
	unsigned ll = c & 3, tt = (c >> 2) & 3, rrrr = (c >> 4) & 0xf;
	const char *f = (code & 0x1000u) ? "; F set: later corrected errors of this kind are "
					   "not reported"
					 : "";

	m->name[0] = '\0';
	for (size_t i = 0; i < sizeof(simple_codes) / sizeof(simple_codes[0]); i++) {
		if (simple_codes[i].code != code)
			continue;
		m->type = "simple";
		snprintf(m->text, sizeof(m->text), "%s", simple_codes[i].text);
		return;
	}
	if ((code & 0xfc00u) == 0x0400u) {
		m->type = "simple";
		snprintf(m->text, sizeof(m->text), "internal unclassified error (model-specific)");
		return;
	}
	if ((c & 0xf800u) == 0x0800u) {
		unsigned pp = (c >> 9) & 3, t = (c >> 8) & 1, ii = (c >> 2) & 3;

		m->type = "bus";
		snprintf(m->name, sizeof(m->name), "BUS%s_%s_%s_%s_%s_ERR", ll_name[ll],
			 pp_name[pp], rname(rrrr), ii_name[ii], t ? "TIMEOUT" : "NOTIMEOUT");
		snprintf(m->text, sizeof(m->text), "bus/interconnect error: %s, %s, %s, %s, %s%s",
			 ll_text[ll], pp_text[pp], rtext(rrrr), ii_text[ii],
			 t ? "timed out" : "no timeout", f);
		return;
	}
	if ((c & 0xff00u) == 0x0100u) {
		m->type = "cache";
		snprintf(m->name, sizeof(m->name), "%sCACHE%s_%s_ERR", tt_name[tt], ll_name[ll],
			 rname(rrrr));
		snprintf(m->text, sizeof(m->text), "cache hierarchy error: %s, %s, %s%s",
			 tt_text[tt], ll_text[ll], rtext(rrrr), f);
		return;
	}
	if ((c & 0xff80u) == 0x0080u) {
		unsigned mmm = (c >> 4) & 7, ch = c & 0xf;
		char chan[24];

		if (ch == 0xf)
			snprintf(chan, sizeof(chan), "channel not specified");
		else
			snprintf(chan, sizeof(chan), "channel %u", ch);
		m->type = "memory";
		if (ch == 0xf)
			snprintf(m->name, sizeof(m->name), "%s_CHANNELx_ERR",
				 mmm_name[mmm] ? mmm_name[mmm] : "RSVD");
		else
			snprintf(m->name, sizeof(m->name), "%s_CHANNEL%u_ERR",
				 mmm_name[mmm] ? mmm_name[mmm] : "RSVD", ch);
		snprintf(m->text, sizeof(m->text), "memory controller error: %s, %s%s",
			 mmm_text[mmm] ? mmm_text[mmm] : "reserved transaction", chan, f);
		return;
	}
	if ((c & 0xfff0u) == 0x0010u) {
		m->type = "tlb";
		snprintf(m->name, sizeof(m->name), "%sTLB%s_ERR", tt_name[tt], ll_name[ll]);
		snprintf(m->text, sizeof(m->text), "TLB error: %s, %s%s", tt_text[tt], ll_text[ll],
			 f);
		return;
	}
	if ((c & 0xfffcu) == 0x000cu) {
		m->type = "generic-cache";
		snprintf(m->text, sizeof(m->text), "generic cache hierarchy error, %s%s",
			 ll_text[ll], f);
		return;
	}
	m->type = "unknown";
	snprintf(m->text, sizeof(m->text), "not an architectural error code");
}

/* What the recovery rules call this code (Intel SDM, "SRAO/SRAR error codes"), or NULL. */
static const char *recovery_code(uint64_t status)
{
	if ((status & CODE_SCRUB_MASK) == CODE_SCRUB)
		return "memory scrubbing error (an SRAO code)";
	if ((status & CODE_MASK) == CODE_L3WB)
		return "last-level cache explicit writeback error (an SRAO code)";
	if ((status & CODE_MASK) == CODE_DATA)
		return "data load error (an SRAR code)";
	if ((status & CODE_MASK) == CODE_INSTR)
		return "instruction fetch error (an SRAR code)";
	return NULL;
}

/* ---- Classes and Linux severities ---------------------------------------------------------- */

struct grade {
	const char *
		sev; /* Linux's severity level: NO, KEEP, SOME, AO, UCNA, DEFERRED, UC, AR, PANIC */
	const char *msg;
};

enum ctx { CTX_KERNEL = 1, CTX_USER = 2 };

/* One rule of the Intel table: (status & mask) == result, (mcg & mcgmask) == mcgres, ... */
struct rule {
	uint64_t mask, result;
	uint8_t mcgmask, mcgres;
	uint8_t ser;	 /* 1: only with SER, 2: only without */
	uint8_t context; /* 0: any, else enum ctx */
	uint8_t rank;	 /* severity order, for the in-kernel upgrade to PANIC */
	const char *sev, *msg;
};

#define R_NO	0
#define R_KEEP	1
#define R_SOME	2
#define R_AO	3
#define R_UCNA	4
#define R_UC	6
#define R_AR	7
#define R_PANIC 8
#define MCG_RE	(VMCE_MCG_STATUS_RIPV | VMCE_MCG_STATUS_EIPV)

/* The rules a handler applies in #MC context, in order (the model-specific quirks left out). */
static const struct rule intel_rules[] = {
	{ST_VAL, 0, 0, 0, 0, 0, R_NO, "NO", "Invalid"},
	{ST_EN, 0, 0, 0, 0, 0, R_NO, "NO", "Not enabled"},
	{ST_PCC, ST_PCC, 0, 0, 0, 0, R_PANIC, "PANIC", "Processor context corrupt"},
	{0, 0, VMCE_MCG_STATUS_MCIP, 0, 0, 0, R_PANIC, "PANIC", "MCIP not set in MCA handler"},
	{0, 0, MCG_RE, 0, 0, 0, R_PANIC, "PANIC", "Neither restart nor error IP"},
	{0, 0, VMCE_MCG_STATUS_RIPV, 0, 0, CTX_KERNEL, R_PANIC, "PANIC",
	 "In kernel and no restart IP"},
	{ST_UC, 0, 0, 0, 2, 0, R_KEEP, "KEEP", "Corrected error"},
	{ST_UC | ST_AR | CODE_SCRUB_MASK, ST_UC | CODE_SCRUB, 0, 0, 1, 0, R_AO, "AO",
	 "Action optional: memory scrubbing error"},
	{ST_UC | ST_AR | CODE_MASK, ST_UC | CODE_L3WB, 0, 0, 1, 0, R_AO, "AO",
	 "Action optional: last level cache writeback error"},
	{UC_SAR, ST_UC, 0, 0, 1, 0, R_UCNA, "UCNA", "Uncorrected no action required"},
	{ST_OVER | UC_SAR, ST_UC | ST_AR, 0, 0, 1, 0, R_PANIC, "PANIC",
	 "Illegal combination (UCNA with AR=1)"},
	{ST_S, 0, 0, 0, 1, 0, R_KEEP, "KEEP", "Non signaled machine check"},
	{ST_OVER | UC_SAR, ST_OVER | UC_SAR, 0, 0, 1, 0, R_PANIC, "PANIC",
	 "Action required with lost events"},
	{ST_OVER | UC_SAR | ST_AV, UC_SAR | ST_AV, MCG_RE, VMCE_MCG_STATUS_RIPV, 1, 0, R_KEEP,
	 "KEEP", "Action required but unaffected thread is continuable"},
	{ST_OVER | UC_SAR | ST_AV | CODE_MASK, UC_SAR | ST_AV | CODE_DATA, 0, 0, 1, CTX_USER, R_AR,
	 "AR", "Action required: data load error in a user process"},
	{ST_OVER | UC_SAR | ST_AV | CODE_MASK, UC_SAR | ST_AV | CODE_INSTR, 0, 0, 1, CTX_USER, R_AR,
	 "AR", "Action required: instruction fetch error in a user process"},
	{ST_OVER | UC_SAR | ST_AV | CODE_MASK, UC_SAR | ST_AV | CODE_DATA, 0, 0, 1, CTX_KERNEL,
	 R_PANIC, "PANIC", "Data load in unrecoverable area of kernel"},
	{ST_OVER | UC_SAR | ST_AV | CODE_MASK, UC_SAR | ST_AV | CODE_INSTR, 0, 0, 1, CTX_KERNEL,
	 R_PANIC, "PANIC", "Instruction fetch error in kernel"},
	{ST_OVER | UC_SAR, UC_SAR, 0, 0, 1, 0, R_PANIC, "PANIC", "Action required: unknown MCACOD"},
	{ST_OVER | UC_SAR, UC_S, 0, 0, 1, 0, R_SOME, "SOME", "Action optional: unknown MCACOD"},
	{ST_OVER | UC_SAR, ST_OVER | UC_S, 0, 0, 1, 0, R_SOME, "SOME",
	 "Action optional with lost events"},
	{ST_OVER | ST_UC, ST_OVER | ST_UC, 0, 0, 0, 0, R_PANIC, "PANIC", "Overflowed uncorrected"},
	{ST_UC, ST_UC, 0, 0, 0, 0, R_UC, "UC", "Uncorrected"},
	{0, 0, 0, 0, 0, 0, R_SOME, "SOME", "No match"},
};

/* The context a handler would find: user mode only if the saved CS is known (RIPV or EIPV). */
static enum ctx effective_ctx(enum ctx want, uint64_t mcg)
{
	return (mcg & MCG_RE) ? want : CTX_KERNEL;
}

static struct grade grade_intel(uint64_t st, uint64_t mcg, bool ser, enum ctx want)
{
	enum ctx ctx = effective_ctx(want, mcg);

	for (size_t i = 0; i < sizeof(intel_rules) / sizeof(intel_rules[0]); i++) {
		const struct rule *r = &intel_rules[i];

		if ((st & r->mask) != r->result || (mcg & r->mcgmask) != r->mcgres)
			continue;
		if ((r->ser == 1 && !ser) || (r->ser == 2 && ser))
			continue;
		if (r->context && r->context != ctx)
			continue;
		if (r->rank >= R_UC && ctx == CTX_KERNEL && r->rank != R_PANIC)
			return (struct grade){"PANIC", r->msg};
		return (struct grade){r->sev, r->msg};
	}
	return (struct grade){"SOME", "No match"};
}

/* AMD (family 17h and later, SMCA): PCC panics, UC recovers in user mode only with SUCCOR. */
static struct grade grade_amd(uint64_t st, uint64_t mcg, bool succor, enum ctx want)
{
	enum ctx ctx = effective_ctx(want, mcg);

	if (!(st & ST_VAL))
		return (struct grade){"NO", "Invalid"};
	if (st & ST_PCC)
		return (struct grade){"PANIC", "Processor context corrupt"};
	if (st & ST_UC) {
		if (ctx == CTX_KERNEL)
			return (struct grade){"PANIC", "Uncorrected error in kernel context"};
		if (!succor)
			return (struct grade){"PANIC", "Uncorrected error and no SUCCOR (no "
						       "recoverable MCA)"};
		return (struct grade){"AR", "Uncorrected error in a user process: kill it and "
					    "offline the page"};
	}
	if (st & ST_DEFER)
		return (struct grade){"DEFERRED", "Deferred error: the poller offlines the page"};
	return (struct grade){"KEEP", "Corrected error"};
}

/* The architectural class of a record, in vmce's terms. */
static const char *arch_class(uint64_t st, int vendor, bool ser, const char **text)
{
	if (!(st & ST_VAL)) {
		*text = "no valid error (VAL clear)";
		return "invalid";
	}
	if (st & ST_PCC) {
		*text = "processor context corrupt: not recoverable";
		return "fatal";
	}
	if (vendor == VMCE_VENDOR_AMD) {
		if (st & ST_UC) {
			*text = "uncorrected (recoverable in user mode with SUCCOR)";
			return "uc";
		}
		if (st & ST_DEFER) {
			*text = "deferred: uncorrected, not consumed yet (action optional)";
			return "deferred";
		}
		*text = "corrected";
		return "ce";
	}
	if (!(st & ST_UC)) {
		*text = "corrected";
		return "ce";
	}
	if (!ser) {
		*text = "uncorrected (no software error recovery)";
		return "uc";
	}
	if (!(st & ST_S)) {
		if (st & ST_AR) {
			*text = "illegal: action required without a signal";
			return "fatal";
		}
		*text = "uncorrected, no action required (UCNA)";
		return "ucna";
	}
	if (st & ST_AR) {
		*text = "software recoverable, action required (SRAR)";
		return "srar";
	}
	*text = "software recoverable, action optional (SRAO)";
	return "srao";
}

/* ---- Output -------------------------------------------------------------------------------- */

struct bitdesc {
	uint64_t bit;
	const char *name, *set, *clear;
	bool intel, amd;
};

static const struct bitdesc bits[] = {
	{ST_VAL, "VAL", "valid", "not valid", true, true},
	{ST_OVER, "OVER", "overflow: an earlier error was lost", "no overflow", true, true},
	{ST_UC, "UC", "uncorrected", "corrected", true, true},
	{ST_EN, "EN", "error reporting enabled", "error reporting disabled", true, true},
	{ST_MISCV, "MISCV", "MCi_MISC valid", "MCi_MISC not valid", true, true},
	{ST_ADDRV, "ADDRV", "MCi_ADDR valid", "MCi_ADDR not valid", true, true},
	{ST_PCC, "PCC", "processor context corrupt", "processor context not corrupt", true, true},
	{ST_S, "S", "signaled by #MC", "not signaled (CMCI or poll)", true, false},
	{ST_AR, "AR", "action required", "action optional (or none)", true, false},
	{ST_TCC, "TCC", "task context corrupt", "task context intact", false, true},
	{ST_SYNDV, "SYNDV", "MCA_SYND valid", "no syndrome", false, true},
	{ST_DEFER, "DEFERRED", "deferred error (not yet consumed)", "not deferred", false, true},
	{ST_POISON, "POISON", "poison consumed", "no poison", false, true},
	{ST_SCRUB, "SCRUB", "found by the memory scrubber", "not from the scrubber", false, true},
};

static bool bit_applies(const struct bitdesc *b, int vendor)
{
	return vendor == VMCE_VENDOR_AMD ? b->amd : b->intel;
}

const char *status_summary(uint64_t status, int vendor, char *buf, size_t len)
{
	struct mcacod m;
	size_t o = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]) && o < len; i++)
		if (bit_applies(&bits[i], vendor) && (status & bits[i].bit))
			o += (size_t)snprintf(buf + o, len - o, "%s ", bits[i].name);
	decode_mcacod((unsigned)(status & 0xffff), &m);
	if (o < len)
		snprintf(buf + o, len - o, "MCACOD 0x%04x %s", (unsigned)(status & 0xffff),
			 m.name[0] ? m.name : m.text);
	return buf;
}

struct decode_args {
	uint64_t status, mcg, misc;
	bool has_mcg, has_misc, json, ser, succor;
	int vendor;
};

static const char *addr_mode_text(unsigned mode)
{
	static const char *const modes[8] = {"segment offset",
					     "linear address",
					     "physical address",
					     "memory address",
					     NULL,
					     NULL,
					     NULL,
					     "generic"};

	return modes[mode & 7] ? modes[mode & 7] : "reserved";
}

/* Whether Linux takes MCi_ADDR as a page it can act on (offline, poison), and if not why. */
static bool usable_address(const struct decode_args *a, const char **why)
{
	*why = "";
	if (!(a->status & ST_ADDRV)) {
		*why = "ADDRV clear";
		return false;
	}
	if (a->vendor == VMCE_VENDOR_AMD)
		return true;
	if (!(a->status & ST_MISCV)) {
		*why = "MISCV clear: the address's granularity is unknown";
		return false;
	}
	if ((a->misc & 0x3f) > 12) {
		*why = "the address LSB is above 12 (coarser than a page)";
		return false;
	}
	if (((a->misc >> 6) & 7) != 2) {
		*why = "the address mode is not physical (2)";
		return false;
	}
	return true;
}

static void print_human(const struct decode_args *a)
{
	uint64_t st = a->status;
	unsigned code = (unsigned)(st & 0xffff);
	const char *ctext, *cls = arch_class(st, a->vendor, a->ser, &ctext), *rc;
	struct grade gu, gk;
	struct mcacod m;
	char mcgn[64];

	printf("MCi_STATUS 0x%016llx (%s layout)\n", (unsigned long long)st,
	       a->vendor == VMCE_VENDOR_AMD ? "AMD" : "Intel");
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
		const struct bitdesc *b = &bits[i];
		int pos = __builtin_ctzll(b->bit);

		if (bit_applies(b, a->vendor))
			printf("  %-9s %d  (bit %2d) %s\n", b->name, (st & b->bit) ? 1 : 0, pos,
			       (st & b->bit) ? b->set : b->clear);
	}
	decode_mcacod(code, &m);
	printf("  MCACOD    0x%04x (bits 15:0) %s%s%s\n", code, m.name, m.name[0] ? ": " : "",
	       m.text);
	rc = recovery_code(st);
	if (rc)
		printf("                              %s\n", rc);
	if (a->vendor == VMCE_VENDOR_AMD) {
		printf("  XEC       0x%02x (bits 21:16) extended error code\n",
		       (unsigned)((st >> 16) & 0x3f));
	} else {
		printf("  MSCOD     0x%04x (bits 31:16) model-specific error code\n",
		       (unsigned)((st >> 16) & 0xffff));
		printf("  OTHER     0x%02x (bits 37:32) other information\n",
		       (unsigned)((st >> 32) & 0x3f));
		printf("  COUNT     %u (bits 52:38) corrected error count\n",
		       (unsigned)((st >> 38) & 0x7fff));
		if (st & ST_UC)
			printf("  THRESHOLD %u (bits 54:53) reserved for uncorrected errors\n",
			       (unsigned)((st >> 53) & 3));
		else
			printf("  THRESHOLD %u (bits 54:53) %s\n", (unsigned)((st >> 53) & 3),
			       ((const char *const[]){"no tracking", "green: below threshold",
						      "yellow: above threshold",
						      "reserved"})[(st >> 53) & 3]);
	}
	if (a->has_mcg)
		printf("MCG_STATUS 0x%llx: %s\n", (unsigned long long)a->mcg,
		       mcg_status_names(a->mcg, mcgn, sizeof(mcgn)));
	if (a->has_misc) {
		const char *why;
		bool ok = usable_address(a, &why);

		printf("MCi_MISC 0x%llx: address LSB %u (bits 5:0), address mode %u (bits 8:6): "
		       "%s\n",
		       (unsigned long long)a->misc, (unsigned)(a->misc & 0x3f),
		       (unsigned)((a->misc >> 6) & 7), addr_mode_text((unsigned)(a->misc >> 6)));
		printf("address:   %s%s%s\n",
		       ok ? "usable: Linux can act on the page" : "not usable", ok ? "" : ": ",
		       why);
	}
	printf("class:     %s: %s\n", cls, ctext);
	if (a->vendor == VMCE_VENDOR_AMD) {
		gu = grade_amd(st, a->mcg, a->succor, CTX_USER);
		gk = grade_amd(st, a->mcg, a->succor, CTX_KERNEL);
	} else {
		gu = grade_intel(st, a->mcg, a->ser, CTX_USER);
		gk = grade_intel(st, a->mcg, a->ser, CTX_KERNEL);
	}
	printf("linux:     #MC with MCG_STATUS 0x%llx%s, %s\n", (unsigned long long)a->mcg,
	       a->has_mcg ? "" : " (assumed; --mcg-status sets it)",
	       a->vendor == VMCE_VENDOR_AMD ? (a->succor ? "SUCCOR" : "no SUCCOR")
					    : (a->ser ? "SER" : "no SER"));
	printf("  in user mode:   %-8s %s\n", gu.sev, gu.msg);
	printf("  in kernel mode: %-8s %s\n", gk.sev, gk.msg);
	if ((st & ST_VAL) && !(st & ST_UC))
		printf("  poll/CMCI:      corrected: the poller or the CMCI handler logs it; no "
		       "action\n");
	else if ((st & ST_VAL) && a->vendor == VMCE_VENDOR_INTEL && !(st & ST_S))
		printf("  poll/CMCI:      not signaled: the poller or the CMCI handler reports "
		       "it\n");
}

static json_t *bits_json(const struct decode_args *a)
{
	json_t *o = json_object();

	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		if (bit_applies(&bits[i], a->vendor))
			json_object_set_new(o, bits[i].name, json_boolean(a->status & bits[i].bit));
	return o;
}

/* The fields of MCi_STATUS above MCACOD. */
static void add_model_fields(json_t *o, uint64_t st, int vendor)
{
	if (vendor == VMCE_VENDOR_AMD) {
		json_object_set_new(o, "xec",
				    json_sprintf("0x%02x", (unsigned)((st >> 16) & 0x3f)));
		return;
	}
	json_object_set_new(o, "mscod", json_sprintf("0x%04x", (unsigned)((st >> 16) & 0xffff)));
	json_object_set_new(o, "other_info", json_sprintf("0x%02x", (unsigned)((st >> 32) & 0x3f)));
	json_object_set_new(o, "corrected_count", json_integer((st >> 38) & 0x7fff));
	json_object_set_new(o, "threshold", json_integer((st >> 53) & 3));
}

static json_t *mcg_json(const struct decode_args *a)
{
	return json_pack("{s:o, s:b, s:b, s:b, s:b, s:b, s:o}", "value",
			 json_sprintf("0x%llx", (unsigned long long)a->mcg), "assumed", !a->has_mcg,
			 "RIPV", !!(a->mcg & VMCE_MCG_STATUS_RIPV), "EIPV",
			 !!(a->mcg & VMCE_MCG_STATUS_EIPV), "MCIP",
			 !!(a->mcg & VMCE_MCG_STATUS_MCIP), "LMCES",
			 !!(a->mcg & VMCE_MCG_STATUS_LMCES), "reserved",
			 json_sprintf("0x%llx", (unsigned long long)(a->mcg & ~0xfull)));
}

static json_t *misc_json(const struct decode_args *a)
{
	const char *why;
	bool ok;

	if (!a->has_misc)
		return json_null();
	ok = usable_address(a, &why);
	return json_pack("{s:o, s:i, s:i, s:s, s:b, s:s}", "value",
			 json_sprintf("0x%llx", (unsigned long long)a->misc), "addr_lsb",
			 (int)(a->misc & 0x3f), "addr_mode", (int)((a->misc >> 6) & 7),
			 "addr_mode_text", addr_mode_text((unsigned)(a->misc >> 6)),
			 "usable_address", ok, "why", why);
}

static json_t *linux_json(const struct decode_args *a)
{
	struct grade g[2];

	for (int i = 0; i < 2; i++) {
		enum ctx c = i ? CTX_KERNEL : CTX_USER;

		g[i] = a->vendor == VMCE_VENDOR_AMD ? grade_amd(a->status, a->mcg, a->succor, c)
						    : grade_intel(a->status, a->mcg, a->ser, c);
	}
	return json_pack("{s:{s:s, s:s}, s:{s:s, s:s}}", "user", "severity", g[0].sev, "message",
			 g[0].msg, "kernel", "severity", g[1].sev, "message", g[1].msg);
}

static int print_json(const struct decode_args *a)
{
	uint64_t st = a->status;
	const char *ctext, *cls = arch_class(st, a->vendor, a->ser, &ctext), *rc;
	struct mcacod m;
	json_t *o;
	char *out;

	decode_mcacod((unsigned)(st & 0xffff), &m);
	rc = recovery_code(st);
	o = json_pack("{s:o, s:s, s:o, s:o, s:s, s:s, s:s, s:o}", "status",
		      json_sprintf("0x%016llx", (unsigned long long)st), "vendor",
		      a->vendor == VMCE_VENDOR_AMD ? "amd" : "intel", "bits", bits_json(a),
		      "mcacod", json_sprintf("0x%04x", (unsigned)(st & 0xffff)), "mcacod_type",
		      m.type, "mcacod_name", m.name, "mcacod_text", m.text, "recovery_code",
		      rc ? json_string(rc) : json_null());
	add_model_fields(o, st, a->vendor);
	json_object_set_new(o, "class", json_string(cls));
	json_object_set_new(o, "class_text", json_string(ctext));
	json_object_set_new(o, "mcg_status", mcg_json(a));
	json_object_set_new(o, "misc", misc_json(a));
	json_object_set_new(o, "linux", linux_json(a));
	out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!out)
		return fail("out of memory");
	puts(out);
	free(out);
	return EXIT_OK;
}

enum { OPT_VENDOR = 256, OPT_MCG, OPT_MISC, OPT_NOSER, OPT_SUCCOR, OPT_JSON };

static const struct option decode_opts[] = {
	{"vendor", required_argument, NULL, OPT_VENDOR},
	{"mcg-status", required_argument, NULL, OPT_MCG},
	{"misc", required_argument, NULL, OPT_MISC},
	{"no-ser", no_argument, NULL, OPT_NOSER},
	{"succor", no_argument, NULL, OPT_SUCCOR},
	{"json", no_argument, NULL, OPT_JSON},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

static int decode_opt(int c, const char *arg, void *ctx)
{
	struct decode_args *a = ctx;

	switch (c) {
	case OPT_VENDOR:
		if (!strcmp(arg, "intel"))
			a->vendor = VMCE_VENDOR_INTEL;
		else if (!strcmp(arg, "amd"))
			a->vendor = VMCE_VENDOR_AMD;
		else
			return usage_error("--vendor '%.32s': expected intel or amd", arg);
		return 0;
	case OPT_MCG:
		a->has_mcg = true;
		return opt_hex("--mcg-status", arg, &a->mcg);
	case OPT_MISC:
		a->has_misc = true;
		return opt_hex("--misc", arg, &a->misc);
	case OPT_NOSER:
		a->ser = false;
		return 0;
	case OPT_SUCCOR:
		a->succor = true;
		return 0;
	case OPT_JSON:
		a->json = true;
		return 0;
	}
	return 0;
}

int cmd_decode(int argc, char **argv)
{
	struct decode_args a = {.ser = true, .vendor = VMCE_VENDOR_INTEL};
	int rc = parse_options(argc, argv, decode_opts, decode_help, decode_opt, &a);

	if (rc)
		return rc < 0 ? EXIT_OK : rc;
	if (optind >= argc)
		return usage_error("no STATUS given (an MCi_STATUS value in hexadecimal)");
	if (argc - optind > 1)
		return usage_error("unexpected argument '%.64s' (one STATUS only)",
				   argv[optind + 1]);
	rc = opt_hex("STATUS", argv[optind], &a.status);
	if (rc)
		return rc;
	if (!a.ser && a.vendor == VMCE_VENDOR_AMD)
		return usage_error("--no-ser applies to --vendor intel only");
	if (a.succor && a.vendor != VMCE_VENDOR_AMD)
		return usage_error("--succor applies to --vendor amd only");
	if (!a.has_mcg)
		a.mcg = VMCE_MCG_STATUS_MCIP | VMCE_MCG_STATUS_RIPV |
			((a.status & ST_AR) ? VMCE_MCG_STATUS_EIPV : 0);
	if (a.json)
		return print_json(&a);
	print_human(&a);
	return EXIT_OK;
}
