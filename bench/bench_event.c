// SPDX-License-Identifier: MIT
/*
 * bench_event: one guest machine check handled the way Linux 6.1 handles it (design §5: the
 * affected vCPU makes N+7 MCA MSR accesses, each bystander N+3), broadcast to V = 1, 4, 16
 * vCPUs, under vmce with 2 banks (user-space exits, and hybrid), KVM in-kernel with 10 banks
 * (QEMU's default) and with 32 banks (KVM's maximum).  Per event: host time from the injection
 * to the last vCPU back in HLT after its handler, MSR exits to user space, all exits, and the
 * guest's MCA MSR accesses (counted by the guest).  Configurations are interleaved; ratios
 * vmce / each are taken within one repetition, then the median.  Usage: bench_event [--smoke]
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "benchvm.h"

#define NCFG	 4
#define MAXREPS	 64
#define PAGE_GPA 0x100000u

struct cfg {
	enum bv_impl impl;
	unsigned banks;
	const char *name;
};

static const struct cfg cfgs[NCFG] = {
	{BV_USER, 2, "vmce-2"},
	{BV_HYBRID, 2, "vmce-hybrid-2"},
	{BV_KERNEL, 10, "kvm-in-kernel-10"},
	{BV_KERNEL, 32, "kvm-in-kernel-32"},
};

static int hlt_job(struct bv_vcpu *c, void *arg)
{
	(void)arg;
	c->mc_report_us = 0;
	return bv_guest(c, TV_STOP_HLT, BV_CMD_HLT, 0, 0, 0, 0);
}

/* One event on a VM whose vCPUs are parked in HLT: inject, let every vCPU run its handler. */
static int one_event(struct bvm *b, unsigned seq, double *us, struct bv_counts *d)
{
	struct bv_counts c0, c1;
	unsigned mask = (1u << b->nr) - 1;
	double t0;

	bv_counts_all(b, &c0);
	t0 = bv_now_us();
	if (bv_inject_srao(b, PAGE_GPA + 0x1000ull * (seq % 768)))
		return -1;
	if (bv_run_job(b, mask, hlt_job, NULL))
		return -1;
	*us = bv_now_us() - t0;
	bv_counts_all(b, &c1);
	bv_counts_sub(&c1, &c0);
	*d = c1;
	if (c1.mc != b->nr) {
		fprintf(stderr, "%s: %" PRIu64 " #MC handlers ran, expected %u\n", b->name, c1.mc,
			b->nr);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	bool smoke = argc > 1 && !strcmp(argv[1], "--smoke");
	const unsigned vcpus[3] = {1, 4, 16};
	const unsigned nv = smoke ? 2 : 3;
	const unsigned reps = smoke ? 2 : 61;
	static double us[NCFG][MAXREPS], ratio[NCFG][MAXREPS];
	double med[3][NCFG], rmed[3][NCFG];
	struct bv_counts cnt[3][NCFG];
	unsigned seq = 0;
	int rc = 1;

	if (!tv_kvm_available())
		return 77;
	for (unsigned vi = 0; vi < nv; vi++) {
		unsigned v = vcpus[vi];
		static struct bvm vms[NCFG];

		memset(vms, 0, sizeof(vms));
		for (int m = 0; m < NCFG; m++) {
			if (bv_create(&vms[m], cfgs[m].impl, cfgs[m].banks, v) ||
			    bv_run_job(&vms[m], (1u << v) - 1, hlt_job, NULL))
				goto fail;
		}
		for (unsigned r = 0; r <= reps; r++) { /* r = 0: warm-up, not counted */
			for (int m = 0; m < NCFG; m++) {
				double t;
				struct bv_counts d;

				if (one_event(&vms[m], seq++, &t, &d))
					goto fail;
				if (r)
					us[m][r - 1] = t;
				cnt[vi][m] = d;
			}
			if (r)
				for (int m = 0; m < NCFG; m++)
					ratio[m][r - 1] = us[0][r - 1] / us[m][r - 1];
		}
		for (int m = 0; m < NCFG; m++) {
			struct bv_counts *d = &cnt[vi][m];

			med[vi][m] = bv_median(us[m], reps);
			rmed[vi][m] = bv_median(ratio[m], reps);
			printf("{\"bench\":\"event\",\"vcpus\":%u,\"config\":\"%s\","
			       "\"impl\":\"%s\",\"banks\":%u,\"host_us\":%.1f,"
			       "\"msr_exits\":%" PRIu64 ",\"exits\":%" PRIu64 ","
			       "\"guest_msr_reads\":%" PRIu64 ",\"guest_msr_writes\":%" PRIu64 ","
			       "\"guest_msr_accesses\":%" PRIu64 ",\"mc_handlers\":%" PRIu64 ","
			       "\"vmce_over_this\":%.2f,\"reps\":%u}\n",
			       v, cfgs[m].name, bv_impl_name(cfgs[m].impl), cfgs[m].banks,
			       med[vi][m], d->msr_exits, d->exits, d->reads, d->writes,
			       d->reads + d->writes, d->mc, rmed[vi][m], reps);
		}
		for (int m = 0; m < NCFG; m++)
			bv_destroy(&vms[m]);
		continue;
	fail:
		for (int m = 0; m < NCFG; m++)
			if (vms[m].nr)
				bv_destroy(&vms[m]);
		return 1;
	}
	printf("\none broadcast #MC handled as Linux does (median of %u interleaved repetitions;"
	       " exits and accesses per event, all vCPUs)\n",
	       reps);
	printf("| vCPUs | configuration | host us | MSR exits | all exits | guest MCA MSR "
	       "accesses | vmce-2 / this |\n|---|---|---|---|---|---|---|\n");
	for (unsigned vi = 0; vi < nv; vi++)
		for (int m = 0; m < NCFG; m++)
			printf("| %u | %s | %.1f | %" PRIu64 " | %" PRIu64 " | %" PRIu64
			       " | %.2f |\n",
			       vcpus[vi], cfgs[m].name, med[vi][m], cnt[vi][m].msr_exits,
			       cnt[vi][m].exits, cnt[vi][m].reads + cnt[vi][m].writes, rmed[vi][m]);
	rc = 0;
	return rc;
}
