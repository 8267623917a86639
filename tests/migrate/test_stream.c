// SPDX-License-Identifier: MIT
/*
 * The state stream: random round trips, and every class of malformed stream refused with a
 * message that names the field, leaving the destination VM untouched.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmce_internal.h"
#include "migrate/migrate_internal.h"
#include "mig_util.h"

#define ROUND_TRIPS 100000

static struct vmce_vm *make_vm(const struct vmce_profile *p, unsigned nr_vcpus)
{
	struct vmce_vm_config cfg;
	struct vmce_vm *vm = NULL;
	struct vmce_err err;

	vmce_vm_config_default(&cfg);
	cfg.profile = *p;
	cfg.nr_vcpus = nr_vcpus;
	if (vmce_vm_create(&cfg, &vm, &err)) {
		fprintf(stderr, "vmce_vm_create: %s\n", err.msg);
		abort();
	}
	return vm;
}

static void save(struct vmce_vm *vm, uint8_t **s, size_t *n)
{
	struct vmce_err err;

	assert_int_equal(vmce_save_alloc(vm, (void **)s, n, &err), 0);
}

/*
 * VM pools, one VM per vendor and vCPU count, created with the widest profile.  A case first
 * restores a blank stream for its random profile into a source VM (this resets it and switches
 * it to that profile), fills it with random state, saves it, and restores that into a
 * destination VM, which switches to the guest's profile in turn.  No VM is created per case.
 */
static const unsigned pool_sizes[] = {1, 2, 3, 4, 8, 16, 33, 64};
#define NPOOL (sizeof(pool_sizes) / sizeof(pool_sizes[0]))
static struct vmce_vm *src_pool[2][NPOOL], *dst_pool[2][NPOOL];

static struct vmce_vm *pooled(struct vmce_vm *pool[2][NPOOL], enum vmce_vendor v, unsigned k)
{
	struct vmce_profile p;

	if (!pool[v][k]) {
		mu_ceiling_profile(v, &p);
		pool[v][k] = make_vm(&p, pool_sizes[k]);
	}
	return pool[v][k];
}

static void reset_to(struct vmce_vm *vm, const struct vmce_profile *p)
{
	struct mu_buf b;
	struct vmce_err err;

	mu_blank_stream(&b, p, vmce_vm_nr_vcpus(vm));
	if (vmce_restore(vm, b.p, b.len, &err)) {
		fprintf(stderr, "blank stream: %s\n", err.msg);
		fail();
	}
	mu_buf_free(&b);
}

static void test_round_trip(void **state)
{
	struct mu_rng r = {0x9e3779b97f4a7c15ull};
	size_t bytes = 0;

	(void)state;
	for (unsigned c = 0; c < ROUND_TRIPS; c++) {
		struct vmce_profile p;
		unsigned k = mu_below(&r, 50) ? (unsigned)mu_below(&r, 4)
					      : 4 + (unsigned)mu_below(&r, NPOOL - 4);
		struct vmce_vm *src, *dst;
		struct vmce_err err;
		uint8_t *s, *s2;
		size_t len, len2;
		char why[160];

		mu_random_profile(&r, &p);
		src = pooled(src_pool, p.vendor, k);
		dst = pooled(dst_pool, p.vendor, k);
		reset_to(src, &p);
		mu_random_state(&r, src, mu_below(&r, 10) ? 8 : 300);
		save(src, &s, &len);
		bytes += len;
		assert_int_equal(vmce_restore_check(&p, s, len, &err), 0);
		if (vmce_restore(dst, s, len, &err)) {
			fprintf(stderr, "case %u: restore: %s\n", c, err.msg);
			fail();
		}
		if (!mu_same_state(src, dst, why, sizeof(why))) {
			fprintf(stderr, "case %u: %s\n", c, why);
			fail();
		}
		/* Saving the restored VM gives the same stream, byte for byte (the writer section
		 * carries the source's last event number, which differs: compare the rest). */
		save(dst, &s2, &len2);
		assert_int_equal(len, len2);
		assert_memory_equal(s, s2, len - 4 - 16);
		free(s2);
		free(s);
	}
	printf("round trips: %d cases, %zu stream bytes in all\n", ROUND_TRIPS, bytes);
}

/* ---- malformed streams ------------------------------------------------------------------------- */

static struct vmce_vm *g_src, *g_dst;
static uint8_t *g_stream;
static size_t g_len;
static char *g_dst_dump;

static int setup_malformed(void **state)
{
	struct mu_rng r = {42};
	struct vmce_profile p;
	struct vmce_err err;
	uint8_t *s;
	size_t n;

	(void)state;
	assert_int_equal(vmce_profile_parse("intel,banks=3,ser,tes,cmci,lmce,ctl", &p, &err), 0);
	g_src = make_vm(&p, 3);
	mu_random_state(&r, g_src, 5);
	while (vmce_poison_count(g_src) < 3)
		vmce_poison_add(g_src, (0x1000 + vmce_poison_count(g_src)) << 12, NULL);
	mu_enqueue(g_src, 1, 1, VMCE_SIGNAL_MC, 0xbd000000000017aull, 0x5000, 5, 9, "srao");
	save(g_src, &g_stream, &g_len);
	/* The destination holds some other state; a refused stream must leave it as it is. */
	g_dst = make_vm(&p, 3);
	r.s = 7;
	mu_random_state(&r, g_dst, 4);
	save(g_dst, &s, &n);
	assert_int_equal(vmce_restore(g_dst, s, n, &err), 0);
	free(s);
	g_dst_dump = mu_dump(g_dst);
	return 0;
}

static int teardown_malformed(void **state)
{
	(void)state;
	vmce_vm_destroy(g_src);
	vmce_vm_destroy(g_dst);
	free(g_stream);
	free(g_dst_dump);
	return 0;
}

/* The stream must be refused with `code` and a message containing `field`; the destination
 * must not change. */
static void expect_refused(const uint8_t *s, size_t len, int code, const char *field)
{
	struct vmce_profile ceiling;
	struct vmce_err err = {{0}};
	char *dump;
	int rc;

	mu_ceiling_profile(VMCE_VENDOR_INTEL, &ceiling);
	rc = vmce_restore_check(&ceiling, s, len, &err);
	if (rc != code || !strstr(err.msg, field)) {
		fprintf(stderr, "check: expected %d naming '%s', got %d: %s\n", code, field, rc,
			err.msg);
		fail();
	}
	memset(&err, 0, sizeof(err));
	rc = vmce_restore(g_dst, s, len, &err);
	if (rc != code || !strstr(err.msg, field)) {
		fprintf(stderr, "restore: expected %d naming '%s', got %d: %s\n", code, field, rc,
			err.msg);
		fail();
	}
	dump = mu_dump(g_dst);
	assert_string_equal(dump, g_dst_dump);
	free(dump);
}

static void test_valid_reference(void **state)
{
	struct vmce_profile ceiling;
	struct vmce_err err;

	(void)state;
	mu_ceiling_profile(VMCE_VENDOR_INTEL, &ceiling);
	assert_int_equal(vmce_restore_check(&ceiling, g_stream, g_len, &err), 0);
	/* The library's CRC agrees with an independent bitwise one. */
	assert_int_equal(vmce__crc32c(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(mu_crc32c("123456789", 9), 0xe3069283u);
}

static void test_truncation(void **state)
{
	(void)state;
	for (size_t n = 0; n < g_len; n++) {
		struct vmce_err err = {{0}};
		int rc = vmce_stream_profile(g_stream, n, NULL, &err);

		if (rc != -EINVAL || !strstr(err.msg, "header.")) {
			fprintf(stderr, "truncated to %zu: %d %s\n", n, rc, err.msg);
			fail();
		}
	}
	/* Restoring a truncated stream leaves the destination as it was (every offset). */
	for (size_t n = 0; n < g_len; n++)
		expect_refused(g_stream, n, -EINVAL, "header.");
	/* Trailing data after a valid stream. */
	{
		uint8_t *s = malloc(g_len + 1);

		memcpy(s, g_stream, g_len);
		s[g_len] = 0;
		expect_refused(s, g_len + 1, -EINVAL, "header.total_len");
		free(s);
	}
}

static uint8_t *copy_stream(void)
{
	uint8_t *s = malloc(g_len);

	memcpy(s, g_stream, g_len);
	return s;
}

static void test_header_fields(void **state)
{
	uint8_t *s = copy_stream();

	(void)state;
	s[0] = 'V';
	expect_refused(s, g_len, -EINVAL, "header.magic");
	memcpy(s, g_stream, g_len);
	s[8] = 2;
	mu_fix_crc(s, g_len);
	expect_refused(s, g_len, -EPROTONOSUPPORT, "header.version");
	s[8] = 0;
	mu_fix_crc(s, g_len);
	expect_refused(s, g_len, -EINVAL, "header.version");
	memcpy(s, g_stream, g_len);
	s[10] = 1;
	mu_fix_crc(s, g_len);
	expect_refused(s, g_len, -EINVAL, "header.reserved");
	memcpy(s, g_stream, g_len);
	s[15] = 0x10; /* total_len > 64 MiB */
	expect_refused(s, g_len, -EINVAL, "header.total_len");
	memcpy(s, g_stream, g_len);
	s[16] = 65; /* section count over the bound */
	mu_fix_crc(s, g_len);
	expect_refused(s, g_len, -EINVAL, "header.sections");
	memcpy(s, g_stream, g_len);
	s[16] = 4; /* fewer sections than present */
	mu_fix_crc(s, g_len);
	expect_refused(s, g_len, -EINVAL, "header.sections");
	memcpy(s, g_stream, g_len);
	s[16] = 6; /* more sections than present */
	mu_fix_crc(s, g_len);
	expect_refused(s, g_len, -EINVAL, "section[5]");
	free(s);
}

static void test_checksum(void **state)
{
	uint8_t *s = copy_stream();

	(void)state;
	/* Any single flipped bit past the header's length fields is caught by the CRC. */
	for (size_t i = 24; i < g_len; i++) {
		s[i] ^= (uint8_t)(1u << (i % 8));
		expect_refused(s, g_len, -EINVAL, "trailer.crc32c");
		s[i] ^= (uint8_t)(1u << (i % 8));
	}
	free(s);
}

/* Rebuild the reference stream with one section replaced/added (CRC recomputed). */
static void rebuild(struct mu_buf *out, int replace_id, const uint8_t *payload, size_t len,
		    const struct mu_section *extra, size_t nextra)
{
	struct mu_section secs[16];
	int n = mu_split(g_stream, g_len, secs, 16);

	assert_true(n > 0);
	for (int i = 0; i < n; i++)
		if (secs[i].id == replace_id) {
			secs[i].payload = payload;
			secs[i].len = len;
		}
	for (size_t i = 0; i < nextra; i++)
		secs[n++] = extra[i];
	mu_build(out, 1, secs, (size_t)n);
}

static const struct mu_section *find(int id)
{
	static struct mu_section secs[16];
	int n = mu_split(g_stream, g_len, secs, 16);

	for (int i = 0; i < n; i++)
		if (secs[i].id == id)
			return &secs[i];
	fail();
	return NULL;
}

/* Patch a copy of a section's payload at off with a little-endian value of `width` bytes. */
static void patched(int id, size_t off, uint64_t v, unsigned width, int code, const char *field)
{
	const struct mu_section *sec = find(id);
	uint8_t *pl = malloc(sec->len);
	struct mu_buf b;

	memcpy(pl, sec->payload, sec->len);
	for (unsigned i = 0; i < width; i++)
		pl[off + i] = (uint8_t)(v >> (8 * i));
	rebuild(&b, id, pl, sec->len, NULL, 0);
	expect_refused(b.p, b.len, code, field);
	mu_buf_free(&b);
	free(pl);
}

static void test_sections(void **state)
{
	static const uint8_t junk[5] = {1, 2, 3, 4, 5};
	struct mu_section extra;
	struct mu_buf b;

	(void)state;
	/* An unknown optional section is skipped. */
	extra = (struct mu_section){.id = 999, .flags = 0, .payload = junk, .len = 5};
	rebuild(&b, -1, NULL, 0, &extra, 1);
	{
		struct vmce_err err;
		struct vmce_profile ceiling;

		mu_ceiling_profile(VMCE_VENDOR_INTEL, &ceiling);
		assert_int_equal(vmce_restore_check(&ceiling, b.p, b.len, &err), 0);
	}
	mu_buf_free(&b);
	/* An unknown mandatory one is refused with its id. */
	extra.flags = 1;
	rebuild(&b, -1, NULL, 0, &extra, 1);
	expect_refused(b.p, b.len, -EPROTONOSUPPORT, "999");
	mu_buf_free(&b);
	/* Unknown flag bits. */
	extra.flags = 4;
	rebuild(&b, -1, NULL, 0, &extra, 1);
	expect_refused(b.p, b.len, -EINVAL, "flags");
	mu_buf_free(&b);
	/* Duplicate sections. */
	extra = *find(VMCE_SEC_POISON);
	rebuild(&b, -1, NULL, 0, &extra, 1);
	expect_refused(b.p, b.len, -EINVAL, "'poison' (id 3) appears twice");
	mu_buf_free(&b);
	/* A known section with the wrong mandatory flag. */
	{
		struct mu_section secs[16];
		int n = mu_split(g_stream, g_len, secs, 16);

		for (int i = 0; i < n; i++)
			if (secs[i].id == VMCE_SEC_POISON)
				secs[i].flags = 0;
		mu_build(&b, 1, secs, (size_t)n);
		expect_refused(b.p, b.len, -EINVAL, "section 'poison'.flags");
		mu_buf_free(&b);
		/* A missing mandatory section. */
		n = mu_split(g_stream, g_len, secs, 16);
		for (int i = 0, m = n; i < m; i++)
			if (secs[i].id == VMCE_SEC_PENDING)
				secs[i] = secs[--n];
		mu_build(&b, 1, secs, (size_t)n);
		expect_refused(b.p, b.len, -EINVAL, "section 'pending' (id 4) is missing");
		mu_buf_free(&b);
	}
	/* A section length running past the end. */
	{
		uint8_t *s = copy_stream();

		s[24 + 4] = 0xff;
		s[24 + 5] = 0xff;
		mu_fix_crc(s, g_len);
		expect_refused(s, g_len, -EINVAL, "section[0].length");
		free(s);
	}
	/* Sections in another order are fine. */
	{
		struct mu_section secs[16], t;
		int n = mu_split(g_stream, g_len, secs, 16);
		struct vmce_err err;

		t = secs[0];
		secs[0] = secs[n - 1];
		secs[n - 1] = t;
		mu_build(&b, 1, secs, (size_t)n);
		assert_int_equal(vmce_stream_profile(b.p, b.len, NULL, &err), 0);
		mu_buf_free(&b);
	}
}

static void test_counts_and_values(void **state)
{
	(void)state;
	/* profile: vendor 0, banks 3, report 1, compat 3, caps, mcg_cap */
	patched(VMCE_SEC_PROFILE, 0, 2, 1, -EINVAL, "profile.vendor");
	patched(VMCE_SEC_PROFILE, 1, 33, 1, -EINVAL, "profile.banks");
	patched(VMCE_SEC_PROFILE, 1, 0, 1, -EINVAL, "profile.banks");
	patched(VMCE_SEC_PROFILE, 2, 3, 1, -EINVAL, "profile.report_bank");
	patched(VMCE_SEC_PROFILE, 3, 2, 1, -EINVAL, "profile.compat_banks");
	patched(VMCE_SEC_PROFILE, 3, 33, 1, -EINVAL, "profile.compat_banks");
	patched(VMCE_SEC_PROFILE, 4, 0x40 | 0x1f, 4, -EPROTONOSUPPORT, "profile.caps");
	patched(VMCE_SEC_PROFILE, 4, VMCE_CAP_SUCCOR, 4, -EINVAL, "profile.caps");
	patched(VMCE_SEC_PROFILE, 8, 0x123, 8, -EINVAL, "profile.mcg_cap");
	/* vcpus: count, banks, per-vCPU values (record 0 starts at 8, its banks at 40). */
	patched(VMCE_SEC_VCPUS, 0, 1025, 4, -EINVAL, "vcpus.nr_vcpus");
	patched(VMCE_SEC_VCPUS, 0, 0, 4, -EINVAL, "vcpus.nr_vcpus");
	patched(VMCE_SEC_VCPUS, 0, 0xffffffffu, 4, -EINVAL, "vcpus.nr_vcpus");
	patched(VMCE_SEC_VCPUS, 0, 4, 4, -EINVAL, "section 'vcpus'.length");
	patched(VMCE_SEC_VCPUS, 4, 2, 1, -EINVAL, "vcpus.banks");
	patched(VMCE_SEC_VCPUS, 5, 1, 1, -EINVAL, "vcpus.reserved");
	patched(VMCE_SEC_VCPUS, 8 + 24, 4, 4, -EINVAL, "vcpus[0].flags");
	patched(VMCE_SEC_VCPUS, 8 + 24, 1, 4, -EINVAL, "vcpus[0].flags: amd_mcstatus_wren");
	patched(VMCE_SEC_VCPUS, 8 + 28, 1, 4, -EINVAL, "vcpus[0].reserved");
	/* poison: count, order, alignment, range. */
	patched(VMCE_SEC_POISON, 0, VMCE_STREAM_MAX_POISON + 1, 4, -EINVAL, "poison.count");
	patched(VMCE_SEC_POISON, 0, 0xffffffffu, 4, -EINVAL, "poison.count");
	patched(VMCE_SEC_POISON, 0, 1, 4, -EINVAL, "section 'poison'.length");
	patched(VMCE_SEC_POISON, 4, 1, 4, -EINVAL, "poison.reserved");
	patched(VMCE_SEC_POISON, 8, 0x1234, 8, -EINVAL, "poison[0]");
	patched(VMCE_SEC_POISON, 8, 1ull << 52, 8, -EINVAL, "poison[0]");
	patched(VMCE_SEC_POISON, 16, 0, 8, -EINVAL, "poison[1]");
	/* pending: count, and a record's fields (record 0 starts at 8). */
	patched(VMCE_SEC_PENDING, 0, 3 * 16 + 1, 4, -EINVAL, "pending.count");
	patched(VMCE_SEC_PENDING, 0, 0xffffffffu, 4, -EINVAL, "pending.count");
	patched(VMCE_SEC_PENDING, 4, 1, 4, -EINVAL, "pending.reserved");
	patched(VMCE_SEC_PENDING, 8, 3, 4, -EINVAL, "pending[0].vcpu");
	patched(VMCE_SEC_PENDING, 12, 3, 1, -EINVAL, "pending[0].signal");
	patched(VMCE_SEC_PENDING, 13, 6, 1, -EINVAL, "pending[0].class");
	patched(VMCE_SEC_PENDING, 14, 4, 1, -EINVAL, "pending[0].flags");
	patched(VMCE_SEC_PENDING, 15, 3, 1, -EINVAL, "pending[0].bank");
	patched(VMCE_SEC_PENDING, 8 + 32, 0x10, 8, -EINVAL, "pending[0].mcg_status");
	patched(VMCE_SEC_PENDING, 8 + 56, 160, 2, -EINVAL, "pending[0].reason_len");
	patched(VMCE_SEC_PENDING, 8 + 58, 1, 2, -EINVAL, "pending[0].reserved");
	/* writer: optional but, when present, well-formed. */
	patched(VMCE_SEC_WRITER, 4, 1, 4, -EINVAL, "writer.reserved");
}

/* Values that only a hand-built stream can carry (the source's core would refuse them). */
static void test_profile_rules(void **state)
{
	struct mu_buf pro = {0}, vc = {0}, po = {0}, pe = {0}, b;
	struct mu_section secs[4];

	(void)state;
	/* intel, 1 bank, no capability */
	mu_put8(&pro, 0);
	mu_put8(&pro, 1);
	mu_put8(&pro, 0);
	mu_put8(&pro, 1);
	mu_put32(&pro, 0);
	mu_put64(&pro, 1);
	mu_put32(&vc, 1);
	mu_put8(&vc, 1);
	mu_put8(&vc, 0);
	mu_put16(&vc, 0);
	mu_put64(&vc, 0);
	mu_put64(&vc, 0);
	mu_put64(&vc, 1); /* mcg_ext_ctl without lmce */
	mu_put32(&vc, 2);
	mu_put32(&vc, 0);
	for (int i = 0; i < 5; i++)
		mu_put64(&vc, 0);
	mu_put32(&po, 0);
	mu_put32(&po, 0);
	mu_put32(&pe, 0);
	mu_put32(&pe, 0);
	secs[0] = (struct mu_section){1, 1, pro.p, pro.len};
	secs[1] = (struct mu_section){2, 1, vc.p, vc.len};
	secs[2] = (struct mu_section){3, 1, po.p, po.len};
	secs[3] = (struct mu_section){4, 1, pe.p, pe.len};
	mu_build(&b, 1, secs, 4);
	expect_refused(b.p, b.len, -EINVAL, "vcpus[0].mcg_ext_ctl");
	mu_buf_free(&b);
	vc.p[8 + 16] = 0;
	vc.p[8 + 32 + 32] = 1; /* bank 0 ctl2 without cmci */
	mu_build(&b, 1, secs, 4);
	expect_refused(b.p, b.len, -EINVAL, "vcpus[0].bank[0].ctl2");
	mu_buf_free(&b);
	vc.p[8 + 32 + 32] = 0;
	vc.p[8 + 8] = 1; /* mcg_ctl without ctl */
	mu_build(&b, 1, secs, 4);
	expect_refused(b.p, b.len, -EINVAL, "vcpus[0].mcg_ctl");
	mu_buf_free(&b);
	vc.p[8 + 8] = 0;
	/* A CMCI record on a profile without cmci. */
	pe.len = 0;
	mu_put32(&pe, 1);
	mu_put32(&pe, 0);
	mu_put32(&pe, 0);
	mu_put8(&pe, 2);
	mu_put8(&pe, 2);
	mu_put8(&pe, 0);
	mu_put8(&pe, 0);
	for (int i = 0; i < 6; i++)
		mu_put64(&pe, 0);
	mu_put16(&pe, 0);
	mu_put16(&pe, 0);
	secs[3] = (struct mu_section){4, 1, pe.p, pe.len};
	mu_build(&b, 1, secs, 4);
	expect_refused(b.p, b.len, -EINVAL, "pending[0].signal: cmci");
	mu_buf_free(&b);
	/* A record without a bank that is not a machine check. */
	pe.p[12] = 0;
	pe.p[15] = 0xff;
	mu_build(&b, 1, secs, 4);
	expect_refused(b.p, b.len, -EINVAL, "pending[0].bank");
	mu_buf_free(&b);
	/* gpa without has_gpa */
	pe.p[12] = 1;
	pe.p[8 + 40] = 0x10;
	mu_build(&b, 1, secs, 4);
	expect_refused(b.p, b.len, -EINVAL, "pending[0].gpa");
	mu_buf_free(&b);
	pe.p[8 + 40] = 0;
	/* A non-printable reason. */
	pe.p[8 + 56] = 1;
	mu_put8(&pe, 7);
	secs[3] = (struct mu_section){4, 1, pe.p, pe.len};
	mu_build(&b, 1, secs, 4);
	expect_refused(b.p, b.len, -EINVAL, "pending[0].reason");
	mu_buf_free(&b);
	/* A reason running past the section. */
	pe.len--;
	mu_build(&b, 1, secs, 4);
	expect_refused(b.p, b.len, -EINVAL, "pending[0].reason");
	mu_buf_free(&b);
	/* Trailing bytes after the records. */
	pe.p[8 + 56] = 0;
	mu_put8(&pe, 'x');
	secs[3] = (struct mu_section){4, 1, pe.p, pe.len};
	mu_build(&b, 1, secs, 4);
	expect_refused(b.p, b.len, -EINVAL, "section 'pending'.length");
	mu_buf_free(&b);
	/* 17 records for one vCPU. */
	pe.len = 0;
	mu_put32(&pe, 17);
	mu_put32(&pe, 0);
	for (int k = 0; k < 17; k++) {
		mu_put32(&pe, 0);
		mu_put8(&pe, 1);
		mu_put8(&pe, 3);
		mu_put8(&pe, 0);
		mu_put8(&pe, 0);
		for (int i = 0; i < 6; i++)
			mu_put64(&pe, 0);
		mu_put16(&pe, 0);
		mu_put16(&pe, 0);
	}
	secs[3] = (struct mu_section){4, 1, pe.p, pe.len};
	mu_build(&b, 1, secs, 4);
	expect_refused(b.p, b.len, -EINVAL, "pending.count");
	mu_buf_free(&b);
	mu_buf_free(&pro);
	mu_buf_free(&vc);
	mu_buf_free(&po);
	mu_buf_free(&pe);
}

static void test_save_api(void **state)
{
	struct vmce_err err;
	size_t need = 0, len = 0;
	uint8_t *buf;

	(void)state;
	assert_int_equal(vmce_save(g_src, NULL, 0, &need, &err), -ENOBUFS);
	assert_true(need == g_len);
	buf = malloc(need);
	assert_int_equal(vmce_save(g_src, buf, need - 1, &len, &err), -ENOBUFS);
	assert_int_equal(vmce_save(g_src, buf, need, &len, &err), 0);
	assert_int_equal(len, need);
	assert_memory_equal(buf, g_stream, len - 4 - 16);
	free(buf);
	assert_int_equal(vmce_save(NULL, NULL, 0, &len, &err), -EINVAL);
	assert_int_equal(vmce_restore(g_dst, NULL, 0, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "header.magic"));
}

/*
 * Section 5 'held' (optional): a stream with held records round-trips; every malformed field
 * is refused with its name and leaves the destination unchanged; without the section (older
 * writers) the stream still loads; a reader that does not know it skips it (optional flag).
 */
static void test_held_section(void **state)
{
	static const struct {
		size_t off; /* offset in the first record (after the 8-byte count) */
		unsigned width;
		uint64_t value;
		const char *field;
	} bad[] = {
		{0, 4, 2, "held[0].target"},
		{4, 1, 1, "held[0].class"},
		{5, 1, 0x80, "held[0].flags"},
		{5, 1, 0x6, "held[0].flags"}, /* broadcast and lmce */
		{6, 2, 200, "held[0].reason_len"},
		{8, 1, 2, "held[0].record.signal"},
		{9, 1, 7, "held[0].record.bank"},
		{9, 1, 0xff, "held[0].record.bank"},
		{10, 2, 1, "held[0].record.reserved"},
		{40, 8, 0x10, "held[0].record.mcg_status"},
		{48, 1, 0, "held[0].bystander.signal"},
		{49, 1, 5, "held[0].bystander.bank"},
		{104, 8, 1, "held[0].reserved"},
		{112, 1, 0x07, "held[0].reason"},
	};
	struct vmce_profile p;
	struct vmce_vm *src, *dst;
	struct vmce_host_error e;
	struct mu_section secs[16];
	struct vmce_err err;
	uint8_t *st, *copy;
	size_t n, held_off = 0;
	int ns;

	(void)state;
	vmce_profile_default(&p);
	src = make_vm(&p, 2);
	dst = make_vm(&p, 2);
	assert_int_equal(vmce_memmap_add(src, 0, 1ull << 30, 0x7f0000000000ull, VMCE_NO_HPA, &err),
			 0);
	assert_int_equal(vmce_wrmsr(vmce_vm_vcpu(src, 1), VMCE_MSR_MCG_STATUS,
				    VMCE_MCG_STATUS_MCIP | VMCE_MCG_STATUS_RIPV),
			 VMCE_MSR_OK);
	vmce_host_error_init(&e);
	e.origin = VMCE_ORIGIN_SIGBUS_AO;
	e.addr_kind = VMCE_ADDR_GPA;
	e.addr = 0x123000;
	assert_int_equal(vmce_handle_error(src, &e, NULL, &err), 0);
	save(src, &st, &n);
	ns = mu_split(st, n, secs, 16);
	assert_int_equal(ns, 6);
	for (int i = 0; i < ns; i++)
		if (secs[i].id == VMCE_SEC_HELD) {
			assert_int_equal(secs[i].flags, 0); /* optional */
			held_off = (size_t)(secs[i].payload - st);
			assert_true(secs[i].len > 8 + VMCE_HELD_FIXED_LEN); /* and the reason */
		}
	assert_true(held_off != 0);
	/* As is: loads, one record held at the destination. */
	assert_int_equal(vmce_restore(dst, st, n, &err), 0);
	{
		struct vmce_hold_status hs;

		vmce_hold_status(dst, &hs);
		assert_int_equal(hs.count, 1);
	}
	copy = malloc(n);
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		uint8_t *f;

		memcpy(copy, st, n);
		f = copy + held_off + 8 + bad[k].off;
		for (unsigned b = 0; b < bad[k].width; b++)
			f[b] = (uint8_t)(bad[k].value >> (8 * b));
		mu_fix_crc(copy, n);
		if (vmce_restore(dst, copy, n, &err) != -EINVAL || !strstr(err.msg, bad[k].field))
			fail_msg("case %zu: want -EINVAL naming %s, got '%s'", k, bad[k].field,
				 err.msg);
	}
	/* The count against the bound and against the section length. */
	memcpy(copy, st, n);
	copy[held_off] = 2;
	mu_fix_crc(copy, n);
	assert_int_equal(vmce_restore(dst, copy, n, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "section 'held'.length"));
	memcpy(copy, st, n);
	copy[held_off + 3] = 0x10;
	mu_fix_crc(copy, n);
	assert_int_equal(vmce_restore(dst, copy, n, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "held.count"));
	/* Marked mandatory: refused (it is optional by definition). */
	memcpy(copy, st, n);
	copy[held_off - 6] = 1;
	mu_fix_crc(copy, n);
	assert_int_equal(vmce_restore(dst, copy, n, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "section 'held'.flags"));
	/* An older writer: the same stream without the section loads (nothing held). */
	{
		struct mu_section keep[16];
		struct mu_buf b;
		int k = 0;
		struct vmce_hold_status hs;

		for (int i = 0; i < ns; i++)
			if (secs[i].id != VMCE_SEC_HELD)
				keep[k++] = secs[i];
		mu_build(&b, 1, keep, (size_t)k);
		assert_int_equal(vmce_restore(dst, b.p, b.len, &err), 0);
		vmce_hold_status(dst, &hs);
		assert_int_equal(hs.count, 0);
		assert_true(vmce_poison_contains(dst, 0x123000)); /* the page stays poisoned */
		mu_buf_free(&b);
	}
	free(copy);
	free(st);
	vmce_vm_destroy(src);
	vmce_vm_destroy(dst);
}

/* The poisoned-page set restored by the stream keeps working as a set. */
static void test_restored_set_grows(void **state)
{
	struct vmce_profile p;
	struct vmce_vm *a, *b;
	struct vmce_err err;
	uint8_t *s;
	size_t n;

	(void)state;
	vmce_profile_default(&p);
	a = make_vm(&p, 1);
	b = make_vm(&p, 1);
	for (uint64_t i = 0; i < 100; i++)
		assert_int_equal(vmce_poison_add(a, (i * 7919) << 12, NULL), 0);
	save(a, &s, &n);
	assert_int_equal(vmce_restore(b, s, n, &err), 0);
	for (uint64_t i = 0; i < 1000; i++)
		assert_int_equal(vmce_poison_add(b, (i * 7919) << 12, NULL), 0);
	assert_int_equal(vmce_poison_count(b), 1000);
	for (uint64_t i = 0; i < 1000; i++)
		assert_true(vmce_poison_contains(b, (i * 7919) << 12));
	assert_false(vmce_poison_contains(b, 1ull << 40));
	free(s);
	vmce_vm_destroy(a);
	vmce_vm_destroy(b);
}

int main(void)
{
	const struct CMUnitTest malformed[] = {
		cmocka_unit_test(test_valid_reference), cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_header_fields),	cmocka_unit_test(test_checksum),
		cmocka_unit_test(test_sections),	cmocka_unit_test(test_counts_and_values),
		cmocka_unit_test(test_profile_rules),	cmocka_unit_test(test_save_api),
	};
	const struct CMUnitTest rt[] = {
		cmocka_unit_test(test_restored_set_grows),
		cmocka_unit_test(test_held_section),
		cmocka_unit_test(test_round_trip),
	};
	int rc = cmocka_run_group_tests_name("malformed", malformed, setup_malformed,
					     teardown_malformed);

	rc |= cmocka_run_group_tests_name("round trip", rt, NULL, NULL);
	for (int v = 0; v < 2; v++)
		for (size_t k = 0; k < NPOOL; k++) {
			vmce_vm_destroy(src_pool[v][k]);
			vmce_vm_destroy(dst_pool[v][k]);
		}
	return rc;
}
