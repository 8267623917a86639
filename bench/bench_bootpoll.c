// SPDX-License-Identifier: MIT
/*
 * bench_bootpoll: Linux 6.1's boot-time MCA init on one vCPU (design §5: about 5N+10 reads and
 * 4N+1 writes with CMCI; without CMCI the 2N reads and 2N writes of MCi_CTL2 go) and one poll
 * (N+2 reads), under vmce with 2 banks (CMCI offered; user-space exits and hybrid), KVM
 * in-kernel with 10 banks (QEMU's default, no CMCI) and with 32 banks (KVM's maximum).
 * Per run: host time of the guest command (it includes the harness's 2-3 port I/O exits that
 * carry the command), MSR exits to user space and the guest's MCA MSR accesses.
 * Configurations are interleaved and ratios vmce / each are taken within one repetition.
 * Usage: bench_bootpoll [--smoke]
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "benchvm.h"

#define NCFG	4
#define MAXREPS 64

struct cfg {
	enum bv_impl impl;
	unsigned banks;
	bool cmci;
	const char *name;
};

static const struct cfg cfgs[NCFG] = {
	{BV_USER, 2, true, "vmce-2"},
	{BV_HYBRID, 2, true, "vmce-hybrid-2"},
	{BV_KERNEL, 10, false, "kvm-in-kernel-10"},
	{BV_KERNEL, 32, false, "kvm-in-kernel-32"},
};

struct job {
	uint32_t cmd, arg;
	double us;
	struct bv_counts d;
};

static int cmd_job(struct bv_vcpu *c, void *arg)
{
	struct job *j = arg;
	struct bv_counts c0, c1;
	double t0;
	int rc;

	bv_counts(c, &c0);
	t0 = bv_now_us();
	rc = bv_guest(c, TV_STOP_IDLE, j->cmd, j->cmd == BV_CMD_BOOT ? 1 : 0, j->arg, 0, 0);
	j->us = bv_now_us() - t0;
	bv_counts(c, &c1);
	bv_counts_sub(&c1, &c0);
	j->d = c1;
	return rc;
}

int main(int argc, char **argv)
{
	bool smoke = argc > 1 && !strcmp(argv[1], "--smoke");
	const unsigned reps = smoke ? 2 : 61;
	const char *what[2] = {"boot", "poll"};
	static double us[2][NCFG][MAXREPS], ratio[2][NCFG][MAXREPS];
	static struct bvm vms[NCFG];
	struct bv_counts cnt[2][NCFG];
	int rc = 1;

	if (!tv_kvm_available())
		return 77;
	for (int m = 0; m < NCFG; m++)
		if (bv_create(&vms[m], cfgs[m].impl, cfgs[m].banks, 1))
			goto out;
	for (unsigned r = 0; r <= reps; r++) { /* r = 0: warm-up */
		for (int w = 0; w < 2; w++) {
			for (int m = 0; m < NCFG; m++) {
				struct job j = {.cmd = w ? BV_CMD_POLL : BV_CMD_BOOT,
						.arg = cfgs[m].cmci};

				if (bv_run_job(&vms[m], 1, cmd_job, &j))
					goto out;
				if (j.d.gp) {
					fprintf(stderr, "%s %s: the guest took #GP\n", cfgs[m].name,
						what[w]);
					goto out;
				}
				cnt[w][m] = j.d;
				if (r)
					us[w][m][r - 1] = j.us;
			}
			if (r)
				for (int m = 0; m < NCFG; m++)
					ratio[w][m][r - 1] = us[w][0][r - 1] / us[w][m][r - 1];
		}
	}
	for (int w = 0; w < 2; w++) {
		for (int m = 0; m < NCFG; m++) {
			struct bv_counts *d = &cnt[w][m];
			double med = bv_median(us[w][m], reps), rm = bv_median(ratio[w][m], reps);

			printf("{\"bench\":\"%s\",\"vcpus\":1,\"config\":\"%s\",\"impl\":\"%s\","
			       "\"banks\":%u,\"cmci\":%s,\"host_us\":%.1f,\"msr_exits\":%" PRIu64
			       ",\"exits\":%" PRIu64 ",\"guest_msr_reads\":%" PRIu64
			       ",\"guest_msr_writes\":%" PRIu64 ",\"vmce_over_this\":%.2f,"
			       "\"reps\":%u}\n",
			       what[w], cfgs[m].name, bv_impl_name(cfgs[m].impl), cfgs[m].banks,
			       cfgs[m].cmci ? "true" : "false", med, d->msr_exits, d->exits,
			       d->reads, d->writes, rm, reps);
			us[w][m][0] = med;
			ratio[w][m][0] = rm;
		}
	}
	printf("\nLinux's MCA init at boot and one poll, per vCPU (median of %u interleaved "
	       "repetitions)\n",
	       reps);
	printf("| phase | configuration | host us | MSR exits | all exits | guest reads | guest "
	       "writes | vmce-2 / this |\n|---|---|---|---|---|---|---|---|\n");
	for (int w = 0; w < 2; w++)
		for (int m = 0; m < NCFG; m++)
			printf("| %s | %s | %.1f | %" PRIu64 " | %" PRIu64 " | %" PRIu64
			       " | %" PRIu64 " | %.2f |\n",
			       what[w], cfgs[m].name, us[w][m][0], cnt[w][m].msr_exits,
			       cnt[w][m].exits, cnt[w][m].reads, cnt[w][m].writes, ratio[w][m][0]);
	rc = 0;
out:
	for (int m = 0; m < NCFG; m++)
		if (vms[m].nr)
			bv_destroy(&vms[m]);
	return rc;
}
