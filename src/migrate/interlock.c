// SPDX-License-Identifier: MIT
/*
 * The migration interlock: errors forwarded between vmce_migration_begin() and
 * vmce_migration_end() are noted so that the final handshake can resend state or abort.
 */
#include <errno.h>
#include <stdlib.h>

#include "vmce_internal.h"

struct vmce_migrate_state {
	pthread_mutex_t lock;
	bool active;
	uint64_t forwarded_during; /* errors forwarded since begin */
	uint64_t first_seq, last_seq;
};

int vmce__migrate_init(struct vmce_vm *vm, struct vmce_err *err)
{
	struct vmce_migrate_state *m = calloc(1, sizeof(*m));

	if (!m)
		return vmce__fail(err, -ENOMEM, "out of memory for the migration state");
	pthread_mutex_init(&m->lock, NULL);
	vm->mig = m;
	return 0;
}

void vmce__migrate_fini(struct vmce_vm *vm)
{
	if (!vm->mig)
		return;
	pthread_mutex_destroy(&vm->mig->lock);
	free(vm->mig);
	vm->mig = NULL;
}

void vmce__migrate_note_forwarded(struct vmce_vm *vm, uint64_t event_seq)
{
	struct vmce_migrate_state *m = vm->mig;

	pthread_mutex_lock(&m->lock);
	if (m->active) {
		if (!m->forwarded_during++)
			m->first_seq = event_seq;
		m->last_seq = event_seq;
	}
	pthread_mutex_unlock(&m->lock);
}
