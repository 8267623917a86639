// SPDX-License-Identifier: MIT
/*
 * bench_access: the host cost of one guest MCA MSR read (MC1_STATUS) and write (MC1_STATUS = 0,
 * what a guest's handler does to clear a bank) served by KVM's in-kernel MCA, by vmce through
 * user-space exits and by vmce's hybrid mode.  The guest runs three loops that differ only in
 * the MSR instruction (none / RDMSR / WRMSR); cost per access = (loop - empty loop) / n.  The
 * three VMs are measured interleaved in one run; the medians over repetitions are printed,
 * and the ratios are those of the medians.  Usage: bench_access [--smoke]
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "benchvm.h"

#define MSR   0x405u
#define NIMPL 3

struct loop_arg {
	uint32_t kind, n;
	double us;
	uint64_t msr_exits;
};

static int loop_job(struct bv_vcpu *c, void *arg)
{
	struct loop_arg *a = arg;
	uint64_t e0 = c->msr_exits;
	double t0 = bv_now_us();

	if (bv_guest(c, TV_STOP_IDLE, BV_CMD_LOOP, 3, a->kind, MSR, a->n))
		return -1;
	a->us = bv_now_us() - t0;
	a->msr_exits = c->msr_exits - e0;
	return 0;
}

static int timed_loop(struct bvm *b, uint32_t kind, uint32_t n, double *us, uint64_t *exits)
{
	struct loop_arg a = {.kind = kind, .n = n};

	if (bv_run_job(b, 1, loop_job, &a))
		return -1;
	*us = a.us;
	if (exits)
		*exits = a.msr_exits;
	return 0;
}

int main(int argc, char **argv)
{
	bool smoke = argc > 1 && !strcmp(argv[1], "--smoke");
	const unsigned reps = smoke ? 2 : 21;
	/* iterations per loop: fewer where every access is an exit */
	const uint32_t iters[NIMPL] = {smoke ? 50 : 16000, smoke ? 20 : 1600, smoke ? 50 : 16000};
	static double cost[2][NIMPL][64], empty[NIMPL][128];
	uint64_t exits[2][NIMPL] = {{0}};
	static struct bvm vms[NIMPL];
	const char *ops[2] = {"rdmsr", "wrmsr"};
	double med[2][NIMPL], rmed[2][NIMPL], emed[NIMPL];
	int rc = 1;

	if (!tv_kvm_available())
		return 77;
	for (int m = 0; m < NIMPL; m++)
		if (bv_create(&vms[m], (enum bv_impl)m, 2, 1))
			goto out;
	for (unsigned r = 0; r < reps; r++) {
		for (int m = 0; m < NIMPL; m++) {
			for (int op = 0; op < 2; op++) {
				double none, acc;
				uint64_t e;

				if (timed_loop(&vms[m], BV_LOOP_NONE, iters[m], &none, NULL) ||
				    timed_loop(&vms[m], op ? BV_LOOP_WRMSR : BV_LOOP_RDMSR,
					       iters[m], &acc, &e))
					goto out;
				cost[op][m][r] = (acc - none) / iters[m];
				empty[m][2 * r + (unsigned)op] = none / iters[m];
				exits[op][m] = e;
			}
		}
	}
	for (int m = 0; m < NIMPL; m++)
		emed[m] = bv_median(empty[m], 2 * reps);
	for (int op = 0; op < 2; op++) {
		for (int m = 0; m < NIMPL; m++)
			med[op][m] = bv_median(cost[op][m], reps);
		for (int m = 0; m < NIMPL; m++) {
			/* ratio of the medians of one run: a difference can be near 0 in a single
			 * repetition, which makes per-repetition ratios unstable */
			rmed[op][m] = med[op][m] / med[op][BV_KERNEL];
			printf("{\"bench\":\"access\",\"op\":\"%s\",\"msr\":\"0x%x\","
			       "\"impl\":\"%s\",\"us_per_access\":%.3f,"
			       "\"msr_exits_per_access\":%.3f,\"ratio_to_kvm_in_kernel\":%.2f,"
			       "\"iterations\":%u,\"reps\":%u,\"empty_iteration_us\":%.3f}\n",
			       ops[op], MSR, bv_impl_name((enum bv_impl)m), med[op][m],
			       (double)exits[op][m] / iters[m], rmed[op][m], iters[m], reps,
			       emed[m]);
		}
	}
	printf("\none guest MCA MSR access (MC1_STATUS; median of %u interleaved repetitions)\n",
	       reps);
	printf("| access | implementation | us per access | MSR exits per access | ratio to "
	       "in-kernel |\n|---|---|---|---|---|\n");
	for (int op = 0; op < 2; op++)
		for (int m = 0; m < NIMPL; m++)
			printf("| %s | %s | %.2f | %.2f | %.2f |\n", ops[op],
			       bv_impl_name((enum bv_impl)m), med[op][m],
			       (double)exits[op][m] / iters[m], rmed[op][m]);
	rc = 0;
	/* what the figures rest on: one exit per access in user-space mode, none otherwise */
	for (int op = 0; op < 2; op++) {
		if (exits[op][BV_USER] != iters[BV_USER] || exits[op][BV_KERNEL] ||
		    exits[op][BV_HYBRID]) {
			fprintf(stderr,
				"%s: unexpected MSR exit counts %" PRIu64 "/%" PRIu64 "/%" PRIu64
				"\n",
				ops[op], exits[op][0], exits[op][1], exits[op][2]);
			rc = 1;
		}
	}
out:
	for (int m = 0; m < NIMPL; m++)
		if (vms[m].nr)
			bv_destroy(&vms[m]);
	return rc;
}
