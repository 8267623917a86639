// SPDX-License-Identifier: MIT
/*
 * Pool levelling: the levelled profile (every host backs it; nothing that every host backs is
 * left out; each limit is explained with the host that caused it) and the checks of the
 * descriptions given.  Reading descriptions from JSON is vmcectl's (tests/vmcectl).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <vmce/migrate.h>

#include "mig_util.h"

static struct vmce_host_desc host(const char *name, enum vmce_vendor v, unsigned max_banks,
				  uint32_t caps, enum vmce_backend backend)
{
	struct vmce_host_desc h;

	memset(&h, 0, sizeof(h));
	snprintf(h.name, sizeof(h.name), "%s", name);
	h.vendor = v;
	h.max_banks = max_banks;
	h.caps = caps;
	h.version_minor = 1;
	h.backend = backend;
	return h;
}

#define INTEL_ALL (VMCE_CAP_SER | VMCE_CAP_TES | VMCE_CAP_CMCI | VMCE_CAP_LMCE | VMCE_CAP_CTL)

/* a: everything, 32 banks, hybrid; b: no lmce, 8 banks; c: no cmci or lmce, 16 banks. */
static void pool3(struct vmce_host_desc *h)
{
	h[0] = host("a", VMCE_VENDOR_INTEL, 32, INTEL_ALL, VMCE_BACKEND_KVM_HYBRID);
	h[1] = host("b", VMCE_VENDOR_INTEL, 8, INTEL_ALL & ~VMCE_CAP_LMCE,
		    VMCE_BACKEND_KVM_USERSPACE);
	h[2] = host("c", VMCE_VENDOR_INTEL, 16, VMCE_CAP_SER | VMCE_CAP_TES | VMCE_CAP_CTL,
		    VMCE_BACKEND_KVM_USERSPACE);
}

static const struct vmce_level_note *note_of(const struct vmce_level_result *r, const char *f)
{
	for (size_t i = 0; i < r->nr_notes; i++)
		if (!strcmp(r->notes[i].field, f))
			return &r->notes[i];
	return NULL;
}

static void test_level_pool(void **state)
{
	struct vmce_host_desc pool[3];
	struct vmce_level_result r;
	struct vmce_profile want;
	struct vmce_err err;
	char text[2048];

	(void)state;
	pool3(pool);
	assert_int_equal(vmce_level_descs(pool, 3, NULL, &r, &err), 0);
	vmce_profile_format(&r.profile, text, sizeof(text));
	assert_string_equal(text, "intel,banks=8,ser,tes,ctl");
	assert_string_equal(note_of(&r, "banks")->hosts, "b");
	assert_string_equal(note_of(&r, "cmci")->hosts, "c");
	assert_non_null(strstr(note_of(&r, "cmci")->text, "dropped"));
	assert_string_equal(note_of(&r, "lmce")->hosts, "b,c");
	assert_non_null(strstr(note_of(&r, "ser")->text, "kept"));
	{
		int len = vmce_level_format(&r, text, sizeof(text));

		assert_int_equal(len, (int)strlen(text));
	}
	assert_non_null(strstr(text, "profile: intel,banks=8,ser,tes,ctl\n"));
	assert_non_null(strstr(text, "lmce: dropped: hosts b,c cannot back it\n"));
	printf("%s", text);

	/* The default profile as the wish: 2 banks, ser, tes, cmci; c has no cmci. */
	vmce_profile_default(&want);
	assert_int_equal(vmce_level_descs(pool, 3, &want, &r, &err), 0);
	vmce_profile_format(&r.profile, text, sizeof(text));
	assert_string_equal(text, "intel,banks=2,ser,tes");
	assert_null(note_of(&r, "lmce")); /* not wanted: not mentioned */
	/* More banks than a host backs. */
	assert_int_equal(vmce_profile_parse("intel,banks=12,ser", &want, &err), 0);
	assert_int_equal(vmce_level_descs(pool, 3, &want, &r, &err), 0);
	assert_int_equal(r.profile.banks, 8);
	assert_string_equal(note_of(&r, "banks")->hosts, "b");
	assert_non_null(strstr(note_of(&r, "banks")->text, "not 12"));
}

static void test_level_refusals(void **state)
{
	struct vmce_host_desc mixed[2], old, broken[2];
	struct vmce_level_result r;
	struct vmce_profile want;
	struct vmce_err err;

	(void)state;
	mixed[0] = host("i", VMCE_VENDOR_INTEL, 4, VMCE_CAP_SER, VMCE_BACKEND_KVM_USERSPACE);
	mixed[1] = host("m", VMCE_VENDOR_AMD, 4, VMCE_CAP_SUCCOR, VMCE_BACKEND_KVM_USERSPACE);
	old = host("o", VMCE_VENDOR_INTEL, 4, 0, VMCE_BACKEND_KVM_USERSPACE);
	old.version_minor = 0;
	broken[0] = mixed[0];
	broken[1] = host("j", VMCE_VENDOR_INTEL, 0, VMCE_CAP_SER, VMCE_BACKEND_KVM_USERSPACE);
	assert_int_equal(vmce_level_descs(mixed, 2, NULL, &r, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "host 'i' is intel and host 'm' is amd"));
	assert_int_equal(vmce_level_descs(&old, 1, NULL, &r, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "'o'"));
	assert_int_equal(vmce_level_descs(broken, 2, NULL, &r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "host 'j': field 'max_banks': 0 is out of range"));
	broken[1] = host("", VMCE_VENDOR_INTEL, 4, 0, VMCE_BACKEND_KVM_USERSPACE);
	assert_int_equal(vmce_level_descs(broken, 2, NULL, &r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "host 2: field 'name'"));
	broken[1] = host("k", VMCE_VENDOR_INTEL, 4, 1u << 31, VMCE_BACKEND_KVM_USERSPACE);
	assert_int_equal(vmce_level_descs(broken, 2, NULL, &r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "host 'k': field 'caps': unknown bits"));
	assert_int_equal(vmce_level_descs(broken, 0, NULL, &r, &err), -EINVAL);
	vmce_profile_default(&want);
	assert_int_equal(vmce_level_descs(&mixed[1], 1, &want, &r, &err), -ENOTSUP);
	assert_non_null(strstr(err.msg, "vendor"));
}

/* Random pools: every host can back the result, and the result is the largest such profile. */
static void test_level_random(void **state)
{
	struct mu_rng rng = {12345};

	(void)state;
	for (int c = 0; c < 5000; c++) {
		struct vmce_host_desc h[6];
		size_t n = 1 + mu_below(&rng, 6);
		enum vmce_vendor v = mu_below(&rng, 2) ? VMCE_VENDOR_AMD : VMCE_VENDOR_INTEL;
		uint32_t all = v == VMCE_VENDOR_AMD ? (VMCE_CAP_SUCCOR | VMCE_CAP_CTL)
						    : (VMCE_CAP_SER | VMCE_CAP_TES | VMCE_CAP_CMCI |
						       VMCE_CAP_LMCE | VMCE_CAP_CTL);
		struct vmce_level_result r;
		struct vmce_err err;
		uint32_t common = all;
		unsigned min_banks = 32;

		for (size_t i = 0; i < n; i++) {
			memset(&h[i], 0, sizeof(h[i]));
			snprintf(h[i].name, sizeof(h[i].name), "h%zu", i);
			h[i].vendor = v;
			h[i].max_banks = 1 + (unsigned)mu_below(&rng, 32);
			h[i].caps = (uint32_t)mu_next(&rng) & all;
			h[i].version_minor = 1;
			common &= h[i].caps;
			if (h[i].max_banks < min_banks)
				min_banks = h[i].max_banks;
		}
		assert_int_equal(vmce_level_descs(h, n, NULL, &r, &err), 0);
		assert_int_equal(r.profile.caps, common);
		assert_int_equal(r.profile.banks, min_banks);
		for (size_t i = 0; i < n; i++) {
			struct vmce_profile hp;

			memset(&hp, 0, sizeof(hp));
			hp.vendor = v;
			hp.banks = (uint8_t)h[i].max_banks;
			hp.compat_banks = hp.banks;
			hp.report_bank = hp.banks > 1;
			hp.caps = h[i].caps;
			assert_int_equal(vmce_profile_can_back(&hp, &r.profile, &err), 0);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_level_pool),
		cmocka_unit_test(test_level_refusals),
		cmocka_unit_test(test_level_random),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
