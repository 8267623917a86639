// SPDX-License-Identifier: MIT
/*
 * kvm_conformance: the same table of guest MSR accesses and injections under KVM's in-kernel
 * MCA emulation (KVM_X86_SETUP_MCE with the closest MCG_CAP, KVM_X86_SET_MCE), under vmce
 * through user-space MSR exits, and under vmce's hybrid mode.  Prints the table side by side
 * and fails on any difference that docs/kvm-differences.md does not list with its reason.
 *
 * Usage: kvm_conformance <path of docs/kvm-differences.md>
 */
#include <stdio.h>
#include <string.h>

#include "kvmtest.h"

#define PROFILE "intel,banks=2,report=1,compat=3,ctl,ser,tes,cmci"
#define NMODES	3
#define OUTLEN	96

enum op { RD, WR };

struct row {
	const char *id;
	enum op op;
	uint32_t index;
	uint64_t value;
};

/* Executed in order on one guest per mode: later rows see earlier rows' writes. */
static const struct row msr_rows[] = {
	{"cap-read", RD, 0x179, 0},
	{"cap-write", WR, 0x179, 0},
	{"status-read", RD, 0x17a, 0},
	{"status-write-mcip-ripv", WR, 0x17a, 0x5},
	{"status-read-back", RD, 0x17a, 0},
	{"status-write-reserved", WR, 0x17a, 0x10},
	{"status-write-zero", WR, 0x17a, 0},
	{"status-read-zero", RD, 0x17a, 0},
	{"ctl-read", RD, 0x17b, 0},
	{"ctl-write-zero", WR, 0x17b, 0},
	{"ctl-read-zero", RD, 0x17b, 0},
	{"ctl-write-other", WR, 0x17b, 0x1},
	{"ctl-write-ones", WR, 0x17b, ~0ull},
	{"ext-ctl-read", RD, 0x4d0, 0},
	{"ext-ctl-write", WR, 0x4d0, 1},
	{"mc0-ctl-read", RD, 0x400, 0},
	{"mc1-ctl-write-zero", WR, 0x404, 0},
	{"mc1-ctl-read-zero", RD, 0x404, 0},
	{"mc1-ctl-write-k8", WR, 0x404, ~0ull & ~(1ull << 10)},
	{"mc1-ctl-read-k8", RD, 0x404, 0},
	{"mc1-ctl-write-other", WR, 0x404, 0x1234},
	{"mc1-ctl-read-other", RD, 0x404, 0},
	{"mc1-ctl-write-ones", WR, 0x404, ~0ull},
	{"mc1-status-read", RD, 0x405, 0},
	{"mc1-status-write-zero", WR, 0x405, 0},
	{"mc1-status-write-nonzero", WR, 0x405, 1},
	{"mc1-addr-write", WR, 0x406, 0x1234000},
	{"mc1-addr-read", RD, 0x406, 0},
	{"mc1-misc-write", WR, 0x407, 0x8c},
	{"mc1-misc-read", RD, 0x407, 0},
	{"mc1-addr-clear", WR, 0x406, 0},
	{"mc1-misc-clear", WR, 0x407, 0},
	{"mc2-ctl-read", RD, 0x408, 0},
	{"mc2-status-read", RD, 0x409, 0},
	{"mc2-status-write-zero", WR, 0x409, 0},
	{"mc3-status-read", RD, 0x40d, 0},
	{"mc3-status-write-zero", WR, 0x40d, 0},
	{"mc31-misc-read", RD, 0x47f, 0},
	{"mc0-ctl2-read", RD, 0x280, 0},
	{"mc1-ctl2-write-en", WR, 0x281, 0x40000001},
	{"mc1-ctl2-read", RD, 0x281, 0},
	{"mc1-ctl2-write-reserved", WR, 0x281, 0x80000000},
	{"mc2-ctl2-read", RD, 0x282, 0},
	{"p5-mc-addr-read", RD, 0x0, 0},
	{"p5-mc-type-read", RD, 0x1, 0},
};

#define SRAO 0xbd0000000000017aull
#define SRAR 0xbd80000000000134ull
#define CE   0x9c0000000000009full

enum prep { P_NONE, P_STI, P_CLI, P_CR4_OFF, P_MCIP, P_MASK, P_CE_TWICE };

struct inj {
	const char *id;
	enum prep prep;
	uint64_t status, mcg;
};

static const struct inj inj_rows[] = {
	{"inj-srao-if1", P_STI, SRAO, 0x5},	     {"inj-srar-if0", P_CLI, SRAR, 0x7},
	{"inj-cr4-mce-clear", P_CR4_OFF, SRAO, 0x5}, {"inj-mcip-set", P_MCIP, SRAO, 0x5},
	{"inj-srar-mcip-set", P_MCIP, SRAR, 0x7},    {"inj-bank-disabled", P_MASK, SRAO, 0x5},
	{"inj-ce-twice-over", P_CE_TWICE, CE, 0},
};

static void run_inj(struct kt *t, const struct inj *in, char *out, size_t len)
{
	char a[OUTLEN], b[OUTLEN];

	switch (in->prep) {
	case P_STI:
		tv_cmd(&t->tv, TV_STI, 0, 0, 0, 0);
		break;
	case P_CLI:
		tv_cmd(&t->tv, TV_CLI, 0, 0, 0, 0);
		break;
	case P_CR4_OFF:
		tv_cmd(&t->tv, TV_CR4_MCE, 1, 0, 0, 0);
		break;
	case P_MCIP:
		kt_wrmsr(t, 0x17a, 0x4, a, sizeof(a));
		break;
	case P_MASK:
		kt_wrmsr(t, 0x404, 0, a, sizeof(a));
		break;
	default:
		break;
	}
	if (in->prep == P_CE_TWICE) {
		kt_inject_step(t, 1, in->status, 0x2000, 0x8c, 0, a, sizeof(a));
		kt_inject_step(t, 1, in->status, 0x3000, 0x8c, 0, b, sizeof(b));
		char c[OUTLEN];

		kt_rdmsr(t, 0x405, c, sizeof(c));
		snprintf(out, len, "%.90s; %.90s; MC1_STATUS=%.90s", a, b, c);
		return;
	}
	kt_inject_step(t, 1, in->status, 0x123000, 0x8c, in->mcg, a, sizeof(a));
	if (in->prep == P_MASK) {
		kt_rdmsr(t, 0x405, b, sizeof(b));
		snprintf(out, len, "%.90s; MC1_STATUS=%.90s", a, b);
		return;
	}
	if (!strncmp(a, "#MC", 3)) {
		kt_rdmsr(t, 0x405, b, sizeof(b)); /* the handler cleared it */
		snprintf(out, len, "%.90s; after=%.90s", a, b);
		return;
	}
	snprintf(out, len, "%s", a);
}

static char results[64][NMODES][OUTLEN * 3];

int main(int argc, char **argv)
{
	const char *doc = argc > 1 ? argv[1] : "docs/kvm-differences.md";
	unsigned nmsr = sizeof(msr_rows) / sizeof(msr_rows[0]);
	unsigned ninj = sizeof(inj_rows) / sizeof(inj_rows[0]);
	unsigned unlisted = 0, listed = 0;
	struct vmce_profile p;
	struct kt t;

	if (!tv_kvm_available())
		return 77;
	vmce_profile_parse(PROFILE, &p, NULL);
	for (int m = 0; m < NMODES; m++) {
		if (kt_start(&t, (enum kt_mode)m, PROFILE))
			return 1;
		for (unsigned i = 0; i < nmsr; i++) {
			const struct row *r = &msr_rows[i];

			if (r->op == RD)
				kt_rdmsr(&t, r->index, results[i][m], OUTLEN);
			else
				kt_wrmsr(&t, r->index, r->value, results[i][m], OUTLEN);
		}
		kt_stop(&t);
		for (unsigned i = 0; i < ninj; i++) {
			if (kt_start(&t, (enum kt_mode)m, PROFILE))
				return 1;
			run_inj(&t, &inj_rows[i], results[nmsr + i][m], sizeof(results[0][0]));
			kt_stop(&t);
		}
	}

	printf("profile %s: vmce MCG_CAP 0x%llx, KVM in-kernel (closest) MCG_CAP 0x%llx\n\n",
	       PROFILE, (unsigned long long)vmce_profile_mcg_cap(&p),
	       (unsigned long long)kt_closest_cap(&p));
	printf("| row | access | %s | %s | %s | verdict |\n|---|---|---|---|---|---|\n",
	       kt_mode_name(KT_KERNEL), kt_mode_name(KT_USER), kt_mode_name(KT_HYBRID));
	for (unsigned i = 0; i < nmsr + ninj; i++) {
		const char *id = i < nmsr ? msr_rows[i].id : inj_rows[i - nmsr].id;
		char access[48], verdict[96] = "same";
		bool bad = false, doc_ok = false;

		if (i < nmsr)
			snprintf(access, sizeof(access), "%s 0x%x%s",
				 msr_rows[i].op == RD ? "rd" : "wr", msr_rows[i].index, "");
		else
			snprintf(access, sizeof(access), "inject");
		if (i < nmsr && msr_rows[i].op == WR)
			snprintf(access + strlen(access), sizeof(access) - strlen(access),
				 "=0x%llx", (unsigned long long)msr_rows[i].value);
		for (int m = KT_USER; m <= KT_HYBRID; m++) {
			if (!strcmp(results[i][KT_KERNEL], results[i][m]))
				continue;
			if (kt_difference_listed(doc, id, (enum kt_mode)m)) {
				doc_ok = true;
			} else {
				bad = true;
				snprintf(verdict + strlen(verdict) - (strlen(verdict) == 4 ? 4 : 0),
					 sizeof(verdict), "%sUNLISTED(%s)",
					 strlen(verdict) == 4 ? "" : " ",
					 kt_mode_name((enum kt_mode)m));
			}
		}
		if (bad)
			unlisted++;
		else if (doc_ok) {
			listed++;
			snprintf(verdict, sizeof(verdict), "listed difference");
		}
		printf("| %s | %s | %s | %s | %s | %s |\n", id, access, results[i][KT_KERNEL],
		       results[i][KT_USER], results[i][KT_HYBRID], verdict);
	}
	printf("\n%u rows, %u listed differences, %u unlisted differences (%s)\n", nmsr + ninj,
	       listed, unlisted, doc);
	return unlisted ? 1 : 0;
}
