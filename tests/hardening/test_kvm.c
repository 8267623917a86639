// SPDX-License-Identifier: MIT
/*
 * hardening_kvm_p5_and_clears: through the KVM backend with a tiny guest (tests/kvm harness),
 * in both vmce modes (user-space MSR exits and hybrid):
 *   - RDMSR of P5_MC_ADDR (0x0) and P5_MC_TYPE (0x1) succeeds (Windows Server 2019 bugchecked
 *     on the #GP other implementations gave);
 *   - after an #MC, the guest's handler clears (0 to MC1_STATUS/ADDR/MISC and MCG_STATUS) never
 *     #GP, in several profiles.
 * Skips (77) without /dev/kvm.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "kvmtest.h"

#define SRAO 0xbd000000000000c0ull

static const char *const profiles[] = {"intel,banks=2,ser,tes,cmci", "intel,banks=8,ser,ctl",
				       "amd,banks=2,succor", "intel,banks=2,compat=10,ser"};

static void start(struct kt *t, enum kt_mode m, const char *profile)
{
	if (kt_start(t, m, profile))
		fail_msg("cannot start a %s guest with '%s'", kt_mode_name(m), profile);
}

static void test_p5(void **state)
{
	char out[128];
	struct kt t;

	(void)state;
	for (int m = KT_USER; m <= KT_HYBRID; m++) {
		for (size_t p = 0; p < sizeof(profiles) / sizeof(profiles[0]); p++) {
			start(&t, (enum kt_mode)m, profiles[p]);
			for (uint32_t idx = 0; idx <= 1; idx++) {
				kt_rdmsr(&t, idx, out, sizeof(out));
				if (strcmp(out, "0x0"))
					fail_msg("%s, %s: RDMSR %#x gave %s", kt_mode_name(m),
						 profiles[p], idx, out);
			}
			kt_stop(&t);
		}
	}
}

static void test_handler_clears(void **state)
{
	static const uint32_t regs[] = {0x405, 0x406, 0x407, 0x17a};
	char out[256];
	struct kt t;

	(void)state;
	for (int m = KT_USER; m <= KT_HYBRID; m++) {
		for (size_t p = 0; p < sizeof(profiles) / sizeof(profiles[0]); p++) {
			start(&t, (enum kt_mode)m, profiles[p]);
			kt_inject_step(&t, 1, SRAO, 0x9000, 0x8c, 5, out, sizeof(out));
			if (strncmp(out, "#MC", 3))
				fail_msg("%s, %s: no #MC: %s", kt_mode_name(m), profiles[p], out);
			for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
				kt_wrmsr(&t, regs[i], 0, out, sizeof(out));
				if (strcmp(out, "ok"))
					fail_msg("%s, %s: WRMSR %#x <- 0 gave %s", kt_mode_name(m),
						 profiles[p], regs[i], out);
			}
			kt_stop(&t);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_p5),
		cmocka_unit_test(test_handler_clears),
	};

	if (!tv_kvm_available()) {
		printf("no usable /dev/kvm: skipped\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
