// SPDX-License-Identifier: MIT
/*
 * bench_rdmsr - the instruction cost of vmce_rdmsr(), for callgrind.
 *
 *   bench_rdmsr [PROFILE] [N]
 *
 * Creates a one-vCPU VM with PROFILE (default intel,banks=2,ser,tes,cmci), then issues N
 * (default 100000) guest reads in a fixed pseudo-random order over every index vmce claims
 * (P5_MC_ADDR/TYPE, MCG_CAP/STATUS/CTL, the 32 MCi_CTL2, the 128 MCi_CTL/STATUS/ADDR/MISC,
 * MCG_EXT_CTL: 166 indices), so the mix has OK and #GP outcomes as the profile dictates.  The
 * sequence is generated before the measured loop; vmce_rdmsr() is called exactly N times, so
 *
 *   valgrind --tool=callgrind --callgrind-out-file=cg.out ./bench_rdmsr
 *   callgrind_annotate --inclusive=yes cg.out | grep vmce_rdmsr
 *
 * gives the inclusive instruction count of all N calls; divided by N, the mean per call.
 * The program prints N, the result counts and a checksum of the values read.
 */
#include <stdio.h>
#include <stdlib.h>

#include <vmce/vmce.h>

static uint32_t mca_index[256];
static unsigned n_mca;

static void add(uint32_t idx)
{
	mca_index[n_mca++] = idx;
}

/* The measured loop: nothing but the calls and a checksum. */
static __attribute__((noinline)) uint64_t run_reads(struct vmce_vcpu *v, const uint32_t *seq,
						    unsigned n, unsigned counts[3])
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < n; i++) {
		uint64_t val = 0;
		enum vmce_msr_result r = vmce_rdmsr(v, seq[i], &val);

		counts[r]++;
		sum += val;
	}
	return sum;
}

int main(int argc, char **argv)
{
	const char *text = argc > 1 ? argv[1] : "intel,banks=2,ser,tes,cmci";
	unsigned n = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 100000;
	struct vmce_vm_config cfg;
	struct vmce_vm *vm;
	struct vmce_err err;
	unsigned counts[3] = {0, 0, 0};
	uint32_t *seq;
	uint64_t x = 0x766d6365, sum;

	if (n == 0 || n > 100000000) {
		fprintf(stderr, "bench_rdmsr: N must be 1..100000000\n");
		return 2;
	}
	vmce_vm_config_default(&cfg);
	if (vmce_profile_parse(text, &cfg.profile, &err) || vmce_vm_create(&cfg, &vm, &err)) {
		fprintf(stderr, "bench_rdmsr: %s\n", err.msg);
		return 1;
	}
	add(VMCE_MSR_P5_MC_ADDR);
	add(VMCE_MSR_P5_MC_TYPE);
	for (uint32_t i = VMCE_MSR_MCG_CAP; i <= VMCE_MSR_MCG_CTL; i++)
		add(i);
	for (uint32_t i = 0; i < VMCE_MAX_BANKS; i++)
		add(VMCE_MSR_MCi_CTL2(i));
	for (uint32_t i = 0; i < 4 * VMCE_MAX_BANKS; i++)
		add(VMCE_MSR_MC0_CTL + i);
	add(VMCE_MSR_MCG_EXT_CTL);

	seq = malloc(sizeof(*seq) * n);
	if (!seq) {
		vmce_vm_destroy(vm);
		return 1;
	}
	for (unsigned i = 0; i < n; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		seq[i] = mca_index[(x >> 33) % n_mca];
	}
	sum = run_reads(vmce_vm_vcpu(vm, 0), seq, n, counts);
	printf("profile %s: %u reads over %u MCA indices: %u OK, %u GP, %u NOT_MCA; "
	       "checksum %#llx\n",
	       text, n, n_mca, counts[VMCE_MSR_OK], counts[VMCE_MSR_GP], counts[VMCE_MSR_NOT_MCA],
	       (unsigned long long)sum);
	free(seq);
	vmce_vm_destroy(vm);
	return counts[VMCE_MSR_NOT_MCA] == 0 ? 0 : 1;
}
