// SPDX-License-Identifier: MIT
/*
 * Writes the stream fixtures of this version into a directory (tests/fixtures/ in the tree):
 * for each scenario, migrate-v<version>-<name>.stream (the stream) and .expect (the state a
 * reader must restore from it, in the text form of mu_dump()).  The outputs are committed; a
 * later version keeps reading them (test_migrate_fixtures).  Usage: gen_fixtures DIR
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vmce/migrate.h>
#include <vmce/policy.h>

#include "mig_util.h"

static struct vmce_vm *vm_of(const char *profile, unsigned nr_vcpus)
{
	struct vmce_vm_config cfg;
	struct vmce_vm *vm = NULL;
	struct vmce_err err;

	vmce_vm_config_default(&cfg);
	if (vmce_profile_parse(profile, &cfg.profile, &err))
		goto fail;
	cfg.nr_vcpus = nr_vcpus;
	if (vmce_vm_create(&cfg, &vm, &err))
		goto fail;
	if (vmce_memmap_add(vm, 0, 1ull << 32, 0x7f0000000000ull, VMCE_NO_HPA, &err))
		goto fail;
	return vm;
fail:
	fprintf(stderr, "gen_fixtures: %s\n", err.msg);
	exit(1);
}

static void inject(struct vmce_vm *vm, uint64_t status, uint64_t gpa, int vcpu)
{
	struct vmce_host_error e;
	struct vmce_err err;

	vmce_host_error_init(&e);
	e.addr_kind = VMCE_ADDR_GPA;
	e.addr = gpa;
	e.misc = 0x8c;
	e.status = status;
	e.vcpu = vcpu;
	if (vmce_handle_error(vm, &e, NULL, &err)) {
		fprintf(stderr, "gen_fixtures: inject: %s\n", err.msg);
		exit(1);
	}
}

#define SRAO 0xbd0000000000017aull
#define SRAR 0xbd80000000000134ull

static void write_file(const char *dir, const char *name, const char *ext, const void *p, size_t n)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/migrate-v%d-%s.%s", dir, VMCE_STREAM_VERSION, name, ext);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
		perror(path);
		exit(1);
	}
	printf("%s (%zu bytes)\n", path, n);
}

static void emit(const char *dir, const char *name, struct vmce_vm *vm)
{
	struct vmce_err err;
	void *s;
	size_t n;
	char *dump;

	if (vmce_save_alloc(vm, &s, &n, &err)) {
		fprintf(stderr, "gen_fixtures: save: %s\n", err.msg);
		exit(1);
	}
	dump = mu_dump(vm);
	write_file(dir, name, "stream", s, n);
	write_file(dir, name, "expect", dump, strlen(dump));
	free(dump);
	free(s);
	vmce_vm_destroy(vm);
}

int main(int argc, char **argv)
{
	struct vmce_vm *vm;
	struct vmce_delivery d;
	struct mu_rng r = {20261126};

	if (argc != 2) {
		fprintf(stderr, "usage: gen_fixtures DIR\n");
		return 2;
	}
	/* 1. The default profile, one vCPU, reset state. */
	emit(argv[1], "intel-default", vm_of("intel,banks=2,ser,tes,cmci", 1));

	/* 2. An SRAO broadcast still queued on both vCPUs of a 2-vCPU guest. */
	vm = vm_of("intel,banks=2,ser,tes,cmci", 2);
	inject(vm, SRAO, 0x1234000, -1);
	emit(argv[1], "intel-srao-queued", vm);

	/* 3. LMCE and MCG_CTL on, CMCI enabled, an SRAR delivered (MCIP set) and one queued. */
	vm = vm_of("intel,banks=4,ser,tes,cmci,lmce,ctl", 4);
	for (unsigned i = 0; i < 4; i++) {
		struct vmce_vcpu *v = vmce_vm_vcpu(vm, i);

		vmce_wrmsr(v, VMCE_MSR_MCG_EXT_CTL, VMCE_MCG_EXT_CTL_LMCE_EN);
		vmce_wrmsr(v, VMCE_MSR_MCi_CTL2(1), VMCE_MCI_CTL2_CMCI_EN | 1);
	}
	inject(vm, SRAR, 0x2000040, 2);
	vmce_vcpu_deliver(vmce_vm_vcpu(vm, 2), true, &d);
	inject(vm, SRAO, 0x3000000, 1);
	vmce_poison_add(vm, 0xfffff000, NULL);
	emit(argv[1], "intel-lmce-ctl", vm);

	/* 4. AMD flavour: McStatusWrEn set, a status written by the guest. */
	vm = vm_of("amd,banks=2,succor,ctl", 2);
	vmce_vcpu_set_amd_mcstatus_wren(vmce_vm_vcpu(vm, 1), true);
	vmce_wrmsr(vmce_vm_vcpu(vm, 1), VMCE_MSR_MCi_STATUS(0), 0x8c00004000010151ull);
	vmce_wrmsr(vmce_vm_vcpu(vm, 0), VMCE_MSR_MCi_CTL(0), 0xfffffffffffffbffull);
	emit(argv[1], "amd-wren", vm);

	/* 5. A guest with a RAZ/WI window (it saw 6 banks once), random register values. */
	vm = vm_of("intel,banks=2,compat=6,ser,tes,cmci", 3);
	mu_random_state(&r, vm, 20);
	emit(argv[1], "intel-compat-random", vm);

	/* 6. 16 vCPUs, 32 banks, full queues on some, many poisoned pages. */
	vm = vm_of("intel,banks=32,report=5,ser,tes,cmci,lmce,ctl", 16);
	mu_random_state(&r, vm, 200);
	emit(argv[1], "intel-32banks-random", vm);
	return 0;
}
