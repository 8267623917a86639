// SPDX-License-Identifier: MIT
/*
 * The policy part of a VM: created with the VM, freed with it.
 */
#include <errno.h>
#include <stdlib.h>

#include "policy/policy_internal.h"

int vmce__policy_init(struct vmce_vm *vm, struct vmce_err *err)
{
	struct vmce_policy_state *s = calloc(1, sizeof(*s));
	int rc;

	if (!s)
		return vmce__fail(err, -ENOMEM, "out of memory for the policy state");
	rc = vmce__poison_init(&s->poison, vm->max_poisoned_pages, err);
	if (rc) {
		free(s);
		return rc;
	}
	if (vmce__memmap_init(&s->memmap)) {
		vmce__poison_fini(&s->poison);
		free(s);
		return vmce__fail(err, -ENOMEM, "cannot initialise the memory map's lock");
	}
	vmce__events_init(&s->log);
	vm->pol = s;
	return 0;
}

void vmce__policy_fini(struct vmce_vm *vm)
{
	struct vmce_policy_state *s = vm->pol;

	if (!s)
		return;
	vmce__events_fini(&s->log);
	vmce__memmap_fini(&s->memmap);
	vmce__poison_fini(&s->poison);
	free(s);
	vm->pol = NULL;
}
