// SPDX-License-Identifier: MIT
/*
 * Stream size and speed: bytes per vCPU and per poisoned page, and encode (vmce_save) and decode
 * (vmce_restore_check: decode and validate; vmce_restore: that plus applying the state) time per
 * vCPU for 1, 64 and 1024 vCPUs.  Times are the thread's CPU time (the machines this runs on are
 * shared), averaged over repetitions.  Prints one JSON object per figure, then a table.
 * Usage: migrate_stream_bench [--smoke]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vmce/migrate.h>
#include <vmce/policy.h>

#include "mig_util.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static struct vmce_vm *vm_of(const char *profile, unsigned n, size_t max_poison)
{
	struct vmce_vm_config cfg;
	struct vmce_vm *vm;
	struct vmce_err err;

	vmce_vm_config_default(&cfg);
	if (vmce_profile_parse(profile, &cfg.profile, &err))
		goto fail;
	cfg.nr_vcpus = n;
	if (max_poison)
		cfg.max_poisoned_pages = max_poison;
	if (vmce_vm_create(&cfg, &vm, &err))
		goto fail;
	return vm;
fail:
	fprintf(stderr, "%s\n", err.msg);
	exit(1);
}

static size_t stream_len(struct vmce_vm *vm)
{
	size_t n = 0;

	vmce_save(vm, NULL, 0, &n, NULL);
	return n;
}

struct timing {
	double save_us, check_us, restore_us;
	size_t len;
};

static void measure(const char *profile, unsigned n, double budget, struct timing *t)
{
	struct vmce_vm *src = vm_of(profile, n, 0), *dst = vm_of(profile, n, 0);
	struct mu_rng r = {n};
	struct vmce_err err;
	unsigned iters = 0;
	void *buf;
	size_t len;
	double t0, t1;

	/* Representative state: registers set, one record queued on every 8th vCPU. */
	for (unsigned i = 0; i < n; i++) {
		struct vmce_vcpu *v = vmce_vm_vcpu(src, i);

		vmce_wrmsr(v, VMCE_MSR_MCi_CTL2(1), VMCE_MCI_CTL2_CMCI_EN | 1);
		if (i % 8 == 0)
			mu_enqueue(src, i, 1, VMCE_SIGNAL_MC, 0xbd0000000000017aull,
				   (mu_next(&r) & 0xffffff) << 12, 5, i + 1, "srao");
	}
	len = stream_len(src);
	buf = malloc(len);
	t0 = now();
	do {
		if (vmce_save(src, buf, len, &len, &err))
			goto fail;
		iters++;
	} while ((t1 = now()) - t0 < budget);
	t->save_us = (t1 - t0) / iters * 1e6;
	iters = 0;
	t0 = now();
	do {
		if (vmce_restore_check(vmce_vm_profile(src), buf, len, &err))
			goto fail;
		iters++;
	} while ((t1 = now()) - t0 < budget);
	t->check_us = (t1 - t0) / iters * 1e6;
	iters = 0;
	t0 = now();
	do {
		if (vmce_restore(dst, buf, len, &err))
			goto fail;
		iters++;
	} while ((t1 = now()) - t0 < budget);
	t->restore_us = (t1 - t0) / iters * 1e6;
	t->len = len;
	free(buf);
	vmce_vm_destroy(src);
	vmce_vm_destroy(dst);
	return;
fail:
	fprintf(stderr, "bench: %s\n", err.msg);
	exit(1);
}

int main(int argc, char **argv)
{
	static const unsigned counts[] = {1, 64, 1024};
	static const char *profiles[] = {"intel,banks=2,ser,tes,cmci",
					 "intel,banks=32,ser,tes,cmci"};
	bool smoke = argc > 1 && !strcmp(argv[1], "--smoke");
	double budget = smoke ? 0.0 : 0.3;
	struct timing t[2][3];
	size_t base, with;
	struct vmce_vm *vm;
	unsigned pages = smoke ? 100 : 100000;
	double per_page;

	/* Bytes per poisoned page. */
	vm = vm_of("intel,banks=2,ser,tes,cmci", 1, pages);
	base = stream_len(vm);
	for (unsigned i = 0; i < pages; i++)
		vmce_poison_add(vm, (uint64_t)(i * 2654435761u % (1u << 30)) << 12, NULL);
	with = stream_len(vm);
	per_page = (double)(with - base) / vmce_poison_count(vm);
	vmce_vm_destroy(vm);
	printf("{\"figure\":\"bytes_per_poisoned_page\",\"value\":%.2f,\"pages\":%zu}\n", per_page,
	       (size_t)pages);

	for (int p = 0; p < 2; p++)
		for (int c = 0; c < 3; c++) {
			measure(profiles[p], counts[c], budget, &t[p][c]);
			printf("{\"figure\":\"stream\",\"profile\":\"%s\",\"vcpus\":%u,\"bytes\":%"
			       "zu,"
			       "\"save_us\":%.2f,\"check_us\":%.2f,\"restore_us\":%.2f}\n",
			       profiles[p], counts[c], t[p][c].len, t[p][c].save_us,
			       t[p][c].check_us, t[p][c].restore_us);
		}
	printf("\nbytes per poisoned page: %.2f\n", per_page);
	for (int p = 0; p < 2; p++) {
		double per_vcpu = (double)(t[p][2].len - t[p][0].len) / (counts[2] - counts[0]);

		printf("\nprofile %s: %.1f bytes per vCPU (one queued record per 8 vCPUs)\n",
		       profiles[p], per_vcpu);
		printf("%6s %10s %14s %14s %14s\n", "vCPUs", "bytes", "encode ns/vCPU",
		       "check ns/vCPU", "restore ns/vCPU");
		for (int c = 0; c < 3; c++)
			printf("%6u %10zu %14.1f %14.1f %14.1f\n", counts[c], t[p][c].len,
			       t[p][c].save_us * 1e3 / counts[c],
			       t[p][c].check_us * 1e3 / counts[c],
			       t[p][c].restore_us * 1e3 / counts[c]);
	}
	return 0;
}
