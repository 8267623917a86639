// SPDX-License-Identifier: MIT
/*
 * kvm_msr_cost: the cost of one guest MCA MSR read (MC1_STATUS, the hot path of a guest's #MC
 * handler and poller) under KVM's in-kernel MCA, vmce through user-space exits, and vmce's
 * hybrid mode.  A guest loop of N RDMSRs is timed against the same loop without the RDMSR;
 * the median of a few runs is kept.  Prints the figures and the ratios of one run.
 * Checks what the numbers rest on: N exits in user-space mode, almost none otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvmtest.h"

#define PROFILE "intel,banks=2,ser,tes,cmci"
#define REPS	5

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Time one guest loop; returns microseconds, or -1. */
static double timed(struct kt *t, uint32_t cmd, uint32_t index, unsigned n, uint64_t *exits)
{
	uint64_t e0 = t->tv.exits;
	double t0;

	tv_cmd(&t->tv, cmd, 2, index, n, 0);
	t0 = now_us();
	if (kt_run(t) != TV_STOP_IDLE)
		return -1;
	*exits = t->tv.exits - e0;
	return now_us() - t0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(void)
{
	/* loop iterations (4 RDMSRs each): fewer where every access is an exit */
	const unsigned iters[3] = {20000, 500, 20000};
	double cost[3];
	uint64_t exits[3] = {0};

	if (!tv_kvm_available())
		return 77;
	for (int m = 0; m < 3; m++) {
		double d[REPS];
		struct kt t;

		if (kt_start(&t, (enum kt_mode)m, PROFILE))
			return 1;
		for (int r = 0; r < REPS; r++) {
			uint64_t e_nop, e_rd;
			unsigned n = iters[m];
			double nop = timed(&t, TV_LOOP_NOP, 0x405, n, &e_nop);
			double rd = timed(&t, TV_LOOP_RDMSR, 0x405, n, &e_rd);

			if (nop < 0 || rd < 0) {
				printf("%s: the guest loop did not finish\n", kt_mode_name(m));
				return 1;
			}
			d[r] = (rd - nop) / (4.0 * n);
			exits[m] = e_rd;
		}
		qsort(d, REPS, sizeof(d[0]), cmp_double);
		cost[m] = d[REPS / 2];
		kt_stop(&t);
	}
	printf("one guest RDMSR of MC1_STATUS (4 x %u / %u / %u accesses, median of %d):\n",
	       iters[0], iters[1], iters[2], REPS);
	printf("| implementation | us per access | exits per loop | ratio to in-kernel |\n");
	printf("|---|---|---|---|\n");
	for (int m = 0; m < 3; m++)
		printf("| %s | %.2f | %llu | %.2f |\n", kt_mode_name(m), cost[m],
		       (unsigned long long)exits[m], cost[m] / cost[KT_KERNEL]);
	if (exits[KT_USER] < 4 * iters[KT_USER]) {
		printf("user-space mode: expected at least %u exits, saw %llu\n",
		       4 * iters[KT_USER], (unsigned long long)exits[KT_USER]);
		return 1;
	}
	if (exits[KT_KERNEL] > iters[KT_KERNEL] / 10 || exits[KT_HYBRID] > iters[KT_HYBRID] / 10) {
		printf("in-kernel and hybrid: expected almost no exits\n");
		return 1;
	}
	return 0;
}
