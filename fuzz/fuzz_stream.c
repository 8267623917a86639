// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the migration stream decoder.
 *
 * Every input goes through vmce_restore_check() against both vendors' widest profiles.  An
 * input that decodes is restored into a VM of its shape (which must then succeed: the widest
 * profile backs every valid guest profile), saved, restored into a second VM and saved again:
 * the two saved streams must be identical (save/restore is idempotent), and a refused restore
 * must leave the VM unchanged.  Any violation aborts (a finding).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vmce/migrate.h>

#include "migrate/migrate_internal.h"

#define CACHE_VCPUS 16

static struct vmce_vm *cache[2][2][CACHE_VCPUS + 1];

static void ceiling(enum vmce_vendor v, struct vmce_profile *p)
{
	memset(p, 0, sizeof(*p));
	p->vendor = v;
	p->banks = VMCE_MAX_BANKS;
	p->compat_banks = VMCE_MAX_BANKS;
	p->report_bank = 1;
	p->caps = v == VMCE_VENDOR_INTEL ? (VMCE_CAP_CTL | VMCE_CAP_CMCI | VMCE_CAP_TES |
					    VMCE_CAP_SER | VMCE_CAP_LMCE)
					 : (VMCE_CAP_CTL | VMCE_CAP_SUCCOR);
}

static struct vmce_vm *vm_for(int which, enum vmce_vendor v, unsigned n)
{
	struct vmce_vm_config cfg;
	struct vmce_err err;

	if (!cache[which][v][n]) {
		vmce_vm_config_default(&cfg);
		ceiling(v, &cfg.profile);
		cfg.nr_vcpus = n;
		if (vmce_vm_create(&cfg, &cache[which][v][n], &err)) {
			fprintf(stderr, "vm_create: %s\n", err.msg);
			abort();
		}
	}
	return cache[which][v][n];
}

static void must(bool ok, const char *what, const struct vmce_err *err)
{
	if (!ok) {
		fprintf(stderr, "fuzz_stream: %s: %s\n", what, err ? err->msg : "");
		abort();
	}
}

static int one(const uint8_t *data, size_t size)
{
	struct vmce_profile pi, pa;
	struct vmce_mig_image img;
	struct vmce_err err;
	struct vmce_vm *a, *b;
	void *s1 = NULL, *s2 = NULL, *before = NULL;
	size_t n1, n2, nb;
	int rc_i, rc_a, rc;

	ceiling(VMCE_VENDOR_INTEL, &pi);
	ceiling(VMCE_VENDOR_AMD, &pa);
	err.msg[0] = '\0';
	rc_i = vmce_restore_check(&pi, data, size, &err);
	must(rc_i <= 0 && (rc_i == 0 || err.msg[0]), "a refusal without a message", &err);
	rc_a = vmce_restore_check(&pa, data, size, &err);
	rc = vmce__stream_decode(data, size, &img, &err);
	if (rc) {
		must(rc_i == rc && rc_a == rc, "decode and check disagree", &err);
		/* A refused restore leaves the VM as it was. */
		a = vm_for(0, VMCE_VENDOR_INTEL, 1);
		must(vmce_save_alloc(a, &before, &nb, &err) == 0, "save", &err);
		must(vmce_restore(a, data, size, &err) == rc, "restore disagrees with decode",
		     &err);
		must(vmce_save_alloc(a, &s1, &n1, &err) == 0, "save", &err);
		must(n1 == nb && !memcmp(s1, before, n1 - 12), "refused restore changed the VM",
		     NULL);
		free(before);
		free(s1);
		return 0;
	}
	must((img.profile.vendor == VMCE_VENDOR_INTEL ? rc_i : rc_a) == 0,
	     "a valid stream refused by the widest profile", &err);
	if (img.nr_vcpus > CACHE_VCPUS) {
		vmce__mig_image_free(&img);
		return 0;
	}
	a = vm_for(0, img.profile.vendor, img.nr_vcpus);
	b = vm_for(1, img.profile.vendor, img.nr_vcpus);
	vmce__mig_image_free(&img);
	must(vmce_restore(a, data, size, &err) == 0, "restore of a valid stream", &err);
	must(vmce_save_alloc(a, &s1, &n1, &err) == 0, "save", &err);
	must(vmce_restore(b, s1, n1, &err) == 0, "restore of a saved stream", &err);
	must(vmce_save_alloc(b, &s2, &n2, &err) == 0, "save", &err);
	must(n1 == n2 && !memcmp(s1, s2, n1 - 12), "save/restore is not idempotent", NULL);
	free(s1);
	free(s2);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The input as given, then (so that mutations get past the checksum into the structure) a copy
 * whose header.total_len and trailer CRC are made to match it.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *fixed;
	uint32_t crc;

	one(data, size);
	if (size < VMCE_STREAM_HDR_LEN + VMCE_STREAM_TRAILER_LEN || size > VMCE_STREAM_MAX_LEN)
		return 0;
	fixed = malloc(size);
	if (!fixed)
		return 0;
	memcpy(fixed, data, size);
	for (int i = 0; i < 4; i++)
		fixed[12 + i] = (uint8_t)(size >> (8 * i));
	crc = vmce__crc32c(0, fixed, size - 4);
	for (int i = 0; i < 4; i++)
		fixed[size - 4 + i] = (uint8_t)(crc >> (8 * i));
	one(fixed, size);
	free(fixed);
	return 0;
}
