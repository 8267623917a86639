// SPDX-License-Identifier: MIT
/*
 * The migration interlock: errors forwarded between vmce_migration_begin() and
 * vmce_migration_end() are noted so that the final handshake can resend state or abort.
 *
 * Exactly-once argument.  A forwarded error is queued on the source's vCPUs (and applied there
 * by vmce_vcpu_deliver()).  vmce_save() snapshots the queues and vCPU states under the
 * injection lock, and vmce__migrate_note_forwarded() is called by vmce_inject() under that same
 * lock after the records are queued, so every forwarded error is either inside a given stream
 * (queued or already applied) or counted as "after the save"; vmce_migration_end() reads the
 * counts under that lock too, so no injection can be half done (queued, not yet noted) when it
 * decides.  At the end:
 *   - nothing after the last save: the last stream holds every error; the destination applies
 *     what is still queued, the source is discarded with its copies (COMPLETE);
 *   - errors after the last save, policy RESEND: the VMM saves again (the new stream holds
 *     them) and the destination restores that stream over the previous one (RESEND_STATE);
 *   - policy ABORT, or the destination failing: the destination is discarded, the source keeps
 *     running and applies its queues itself (ABORTED).
 * In each case exactly one side ever runs the guest with the error, so it is delivered once.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "migrate/migrate_internal.h"

struct vmce_migrate_state {
	pthread_mutex_t lock;
	struct vmce_profile backing; /* the profile the VM was created with: what it can back */
	bool active;
	uint64_t forwarded_during; /* errors forwarded since begin */
	uint64_t first_seq, last_seq;
	uint64_t unsent; /* errors forwarded since the last save */
	uint64_t unsent_first, unsent_last;
	unsigned saves;
};

int vmce__migrate_init(struct vmce_vm *vm, struct vmce_err *err)
{
	struct vmce_migrate_state *m = calloc(1, sizeof(*m));

	if (!m)
		return vmce__fail(err, -ENOMEM, "out of memory for the migration state");
	pthread_mutex_init(&m->lock, NULL);
	m->backing = vm->profile;
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

const struct vmce_profile *vmce__migrate_backing(struct vmce_vm *vm)
{
	return &vm->mig->backing;
}

void vmce__migrate_note_forwarded(struct vmce_vm *vm, uint64_t event_seq)
{
	struct vmce_migrate_state *m = vm->mig;

	pthread_mutex_lock(&m->lock);
	if (m->active) {
		if (!m->forwarded_during++)
			m->first_seq = event_seq;
		m->last_seq = event_seq;
		if (!m->unsent++)
			m->unsent_first = event_seq;
		m->unsent_last = event_seq;
	}
	pthread_mutex_unlock(&m->lock);
}

void vmce__migrate_note_saved(struct vmce_vm *vm)
{
	struct vmce_migrate_state *m = vm->mig;

	pthread_mutex_lock(&m->lock);
	if (m->active) {
		m->saves++;
		m->unsent = 0;
		m->unsent_first = m->unsent_last = 0;
	}
	pthread_mutex_unlock(&m->lock);
}

int vmce_migration_begin(struct vmce_vm *vm, struct vmce_err *err)
{
	struct vmce_migrate_state *m;

	if (!vm)
		return vmce__fail(err, -EINVAL, "vmce_migration_begin: vm is required");
	m = vm->mig;
	pthread_mutex_lock(&m->lock);
	if (m->active) {
		pthread_mutex_unlock(&m->lock);
		return vmce__fail(err, -EBUSY, "a migration is already in progress");
	}
	m->active = true;
	m->forwarded_during = m->unsent = 0;
	m->first_seq = m->last_seq = m->unsent_first = m->unsent_last = 0;
	m->saves = 0;
	pthread_mutex_unlock(&m->lock);
	vmce__log_event(vm, VMCE_EVENT_MIGRATION, VMCE_CLASS_AUTO, -1, false, 0, NULL,
			"migration begins: errors forwarded from now on are tracked");
	return 0;
}

const char *vmce_migration_outcome_name(enum vmce_migration_outcome o)
{
	switch (o) {
	case VMCE_MIGRATION_COMPLETE:
		return "complete";
	case VMCE_MIGRATION_RESEND_STATE:
		return "resend";
	case VMCE_MIGRATION_ABORTED:
		return "aborted";
	}
	return "unknown";
}

int vmce_migration_end(struct vmce_vm *vm, enum vmce_migration_policy policy,
		       struct vmce_migration_result *res, struct vmce_err *err)
{
	struct vmce_migration_result r = {0};
	struct vmce_migrate_state *m;

	if (!vm)
		return vmce__fail(err, -EINVAL, "vmce_migration_end: vm is required");
	if (policy != VMCE_MIGRATION_RESEND && policy != VMCE_MIGRATION_ABORT)
		return vmce__fail(err, -EINVAL, "vmce_migration_end: unknown policy %d",
				  (int)policy);
	m = vm->mig;
	/* The injection lock first: an injection queues its records and notes them under it, so
	 * none can sit on a queue after the last save without being counted here. */
	pthread_mutex_lock(&vm->inject_lock);
	pthread_mutex_lock(&m->lock);
	if (!m->active) {
		pthread_mutex_unlock(&m->lock);
		pthread_mutex_unlock(&vm->inject_lock);
		return vmce__fail(err, -EINVAL, "vmce_migration_end: no migration in progress");
	}
	r.forwarded = m->forwarded_during;
	r.unsent = m->unsent;
	r.first_seq = m->unsent_first;
	r.last_seq = m->unsent_last;
	r.saves = m->saves;
	if (m->saves && !m->unsent) {
		r.outcome = VMCE_MIGRATION_COMPLETE;
		snprintf(r.reason, sizeof(r.reason),
			 "migration complete: the last stream holds all %" PRIu64
			 " error(s) forwarded during it",
			 r.forwarded);
	} else if (policy == VMCE_MIGRATION_RESEND) {
		r.outcome = VMCE_MIGRATION_RESEND_STATE;
		if (!m->saves)
			snprintf(r.reason, sizeof(r.reason),
				 "migration: no state was saved since begin: save and send it");
		else
			snprintf(r.reason, sizeof(r.reason),
				 "migration: %" PRIu64 " error(s) (events %" PRIu64 "..%" PRIu64
				 ") forwarded after the last save: resend the vMCE state",
				 r.unsent, r.first_seq, r.last_seq);
	} else {
		r.outcome = VMCE_MIGRATION_ABORTED;
		snprintf(r.reason, sizeof(r.reason),
			 "migration aborted: %" PRIu64 " error(s) forwarded after the last save "
			 "stay with the guest at the source",
			 r.unsent);
	}
	if (r.outcome != VMCE_MIGRATION_RESEND_STATE)
		m->active = false;
	pthread_mutex_unlock(&m->lock);
	pthread_mutex_unlock(&vm->inject_lock);
	vmce__log_event(vm, VMCE_EVENT_MIGRATION, VMCE_CLASS_AUTO, -1, false, 0, NULL, r.reason);
	if (res)
		*res = r;
	return 0;
}

int vmce_migration_abort(struct vmce_vm *vm, struct vmce_err *err)
{
	struct vmce_migrate_state *m;

	if (!vm)
		return vmce__fail(err, -EINVAL, "vmce_migration_abort: vm is required");
	m = vm->mig;
	pthread_mutex_lock(&m->lock);
	if (!m->active) {
		pthread_mutex_unlock(&m->lock);
		return vmce__fail(err, -EINVAL, "vmce_migration_abort: no migration in progress");
	}
	m->active = false;
	pthread_mutex_unlock(&m->lock);
	vmce__log_event(vm, VMCE_EVENT_MIGRATION, VMCE_CLASS_AUTO, -1, false, 0, NULL,
			"migration aborted by the VMM: the guest stays at the source");
	return 0;
}

bool vmce_migration_active(struct vmce_vm *vm)
{
	bool a;

	pthread_mutex_lock(&vm->mig->lock);
	a = vm->mig->active;
	pthread_mutex_unlock(&vm->mig->lock);
	return a;
}
