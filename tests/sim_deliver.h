/* SPDX-License-Identifier: MIT */
/* sim_deliver() for the unit tests: one copy, included by the areas' test headers. */
#ifndef VMCE_TESTS_SIM_DELIVER_H
#define VMCE_TESTS_SIM_DELIVER_H

#include <stdbool.h>

#include <vmce/vmce.h>

/*
 * Deliver as a VMM whose guest runs between deliveries: the guest's handler has returned
 * since the last call (vmce_vcpu_guest_progress()), so records held until it cleared MCIP go
 * now.  Returns 1 when a record was applied, 0 when nothing is pending for this vCPU.
 */
static inline int sim_deliver(struct vmce_vcpu *v, bool cr4_mce, struct vmce_delivery *d)
{
	for (;;) {
		vmce_vcpu_guest_progress(v);
		if (vmce_vcpu_deliver(v, cr4_mce, d))
			return 1;
		vmce_vcpu_guest_progress(v); /* and ran again after that delivery */
		if (!vmce_vcpu_pending(v))
			return 0;
	}
}

#endif /* VMCE_TESTS_SIM_DELIVER_H */
