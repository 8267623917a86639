/* SPDX-License-Identifier: MIT */
/*
 * migrate.h - vMCE state that travels with a VM: the state stream, restore checks, pool
 * levelling and the in-migration interlock (design §6; the format is in
 * docs/migration-format.md).
 *
 * The guest keeps the profile it booted with.  The stream carries that profile and the
 * destination presents exactly its MCG_CAP after restore, whatever the destination VM was
 * created with: the destination VM's creation profile is what that host *can back* (same vendor,
 * every capability of the guest's profile, at least as many real banks and as wide a RAZ/WI
 * window).  A destination that cannot back the guest's profile refuses the stream, naming the
 * field; levelling (vmce_level_descs()) picks, before boot, a profile every host of a pool can
 * back so that later migrations inside the pool never hit that refusal.
 *
 * A migration on the source side:
 *
 *   vmce_migration_begin(vm)            before the first byte of guest state is sent
 *   ... pre-copy guest memory ...
 *   pause the vCPUs; vmce_save_alloc(vm, &s, &n); send s
 *   vmce_migration_end(vm, VMCE_MIGRATION_RESEND, &r)
 *     r.outcome == VMCE_MIGRATION_COMPLETE:    the stream sent is final: commit, the guest runs
 *                                              at the destination, the source VM is destroyed
 *     r.outcome == VMCE_MIGRATION_RESEND_STATE: errors were forwarded after the save: save and
 *                                              send again, then call vmce_migration_end() again
 *     r.outcome == VMCE_MIGRATION_ABORTED:     (policy VMCE_MIGRATION_ABORT) cancel; the guest
 *                                              keeps running here and gets the errors here
 *
 * and on the destination: vmce_stream_profile() gives the guest's profile;
 * vmce_restore_check() with the widest profile this host can back says whether it can take the
 * guest (and why not); vmce_vm_create() with the guest's profile, attach the backend,
 * vmce_restore(), and run the vCPUs only if it returned 0.  (Restoring into a VM created with a
 * wider profile also works and switches the VM to the guest's profile, but a backend attached
 * before the restore, e.g. the KVM hybrid mode's in-kernel MCG_CAP, would keep the wider one:
 * attach backends after such a restore.)
 *
 * Thread safety: vmce_save() needs the vCPUs paused (no vCPU thread inside a vmce call) and may
 * run concurrently with injections (it takes the injection lock, so a plan is in the stream
 * whole or not at all).  vmce_restore() must not race with any other call on the VM.  Stream
 * checks, vmce_stream_profile() and the levelling functions are pure and thread-safe.  The
 * interlock calls may be made from any thread.
 */
#ifndef VMCE_MIGRATE_H
#define VMCE_MIGRATE_H

#include <vmce/vmce.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The stream version this build writes; it reads every version from 1 to this one. */
#define VMCE_STREAM_VERSION 1

/* Bounds a stream may not exceed (a reader refuses larger values before allocating). */
#define VMCE_STREAM_MAX_LEN	(64u << 20) /* bytes in a whole stream */
#define VMCE_STREAM_MAX_POISON	(1u << 22)  /* poisoned pages */
#define VMCE_STREAM_MAX_SECTION 64	    /* sections */

/* ---- Saving ----------------------------------------------------------------------------------- */

/*
 * Encode the VM's vMCE state (profile, every vCPU's MCA state, the poisoned-page set and the
 * records queued but not yet applied) into buf.  *len receives the stream's length.  When buf
 * is NULL or size is too small, nothing is written, *len is set to the size needed and the call
 * returns -ENOBUFS (a size query).  The size can grow between a query and the save if errors are
 * injected in between; vmce_save_alloc() avoids that race.  Returns 0 or a negative errno with
 * err naming the problem.
 */
VMCE_API int vmce_save(struct vmce_vm *vm, void *buf, size_t size, size_t *len,
		       struct vmce_err *err);

/* The same into a malloc'd buffer (release it with free()). */
VMCE_API int vmce_save_alloc(struct vmce_vm *vm, void **buf, size_t *len, struct vmce_err *err);

/* ---- Checking and restoring ------------------------------------------------------------------ */

/*
 * The guest profile a stream carries (after a full check of the stream's structure and values).
 * A destination VMM may create its VM with exactly that profile.  Returns 0, or -EINVAL (a
 * malformed stream) / -EPROTONOSUPPORT (a version or mandatory section this build cannot read)
 * with err naming the field.
 */
VMCE_API int vmce_stream_profile(const void *stream, size_t len, struct vmce_profile *guest,
				 struct vmce_err *err);

/*
 * Whether a destination whose VMs are created with profile `dest` can take the stream: the
 * stream is decoded and every value validated, then the guest's profile is compared with what
 * `dest` can back.  Returns 0 when it can, else a negative errno and err says why, naming the
 * field: -EINVAL for a malformed stream, -EPROTONOSUPPORT for a version or mandatory section
 * this build cannot read, -ENOTSUP when the destination cannot back the guest (vendor, a
 * capability, the bank count or the RAZ/WI window).
 */
VMCE_API int vmce_restore_check(const struct vmce_profile *dest, const void *stream, size_t len,
				struct vmce_err *err);

/*
 * Replace the VM's vMCE state with the stream's, all or nothing: on any error the VM is left
 * exactly as it was.  On success the VM presents the guest's profile (vmce_vm_profile() and
 * MCG_CAP are the source's) and holds the source's vCPU states, poisoned pages and queued
 * records (vmce_vcpu_pending() tells which vCPUs have some).  Checks as vmce_restore_check()
 * against the profile the VM was created with, plus: the vCPU count must be equal and the
 * poisoned pages must fit the VM's bound.  A VM may be restored more than once (a resend).
 */
VMCE_API int vmce_restore(struct vmce_vm *vm, const void *stream, size_t len, struct vmce_err *err);

/*
 * Whether a destination profile can back a guest profile, without a stream.  Returns 0 or
 * -ENOTSUP with err naming the field (vendor, banks, compat, or the capability).
 */
VMCE_API int vmce_profile_can_back(const struct vmce_profile *dest,
				   const struct vmce_profile *guest, struct vmce_err *err);

/* ---- The migration interlock ------------------------------------------------------------------ */

/* What vmce_migration_end() does when errors were forwarded after the last save. */
enum vmce_migration_policy {
	VMCE_MIGRATION_RESEND = 0, /* the VMM saves and sends the state again (default) */
	VMCE_MIGRATION_ABORT = 1,  /* the migration is cancelled; the guest stays at the source */
};

/* The result of vmce_migration_end(). */
enum vmce_migration_outcome {
	VMCE_MIGRATION_COMPLETE = 0,	 /* the last stream saved holds every forwarded error */
	VMCE_MIGRATION_RESEND_STATE = 1, /* save and send again, then call end again */
	VMCE_MIGRATION_ABORTED = 2,	 /* cancelled: errors are delivered at the source */
};

/* What vmce_migration_end() found: the outcome, and the errors forwarded during the migration. */
struct vmce_migration_result {
	enum vmce_migration_outcome outcome;
	uint64_t forwarded;	      /* errors forwarded since vmce_migration_begin() */
	uint64_t unsent;	      /* of those, forwarded after the last save */
	uint64_t first_seq, last_seq; /* event sequence numbers of the unsent ones (0: none) */
	unsigned saves;		      /* streams saved since begin */
	char reason[160];
};

/*
 * Start a migration: from now on every forwarded error is noted.  Returns 0, or -EBUSY when a
 * migration is already in progress.
 */
VMCE_API int vmce_migration_begin(struct vmce_vm *vm, struct vmce_err *err);

/*
 * The final handshake.  When no error was forwarded after the last vmce_save() since begin, the
 * outcome is COMPLETE and the migration is over.  Otherwise, with policy RESEND the outcome is
 * RESEND_STATE and the migration stays in progress (save, send, end again); with policy ABORT
 * the outcome is ABORTED and the migration is over (the guest keeps running at the source, where
 * the errors are still queued or already delivered).  With no save since begin, the state was
 * never sent: RESEND_STATE or ABORTED by the policy.  Returns 0, or -EINVAL when no migration is
 * in progress.  Every outcome is logged as a "migration" event.
 */
VMCE_API int vmce_migration_end(struct vmce_vm *vm, enum vmce_migration_policy policy,
				struct vmce_migration_result *res, struct vmce_err *err);

/* Cancel a migration in progress (e.g. the destination failed): the guest stays here.
 * Returns 0, or -EINVAL when none is in progress. */
VMCE_API int vmce_migration_abort(struct vmce_vm *vm, struct vmce_err *err);

/* True between vmce_migration_begin() and the end of the migration. */
VMCE_API bool vmce_migration_active(struct vmce_vm *vm);

/* The name of an outcome: "complete", "resend", "aborted". */
VMCE_API const char *vmce_migration_outcome_name(enum vmce_migration_outcome o);

/* ---- Pool levelling ----------------------------------------------------------------------------- */

/* The vmce backend a host runs VMs with (a host description's "backend"). */
enum vmce_backend {
	VMCE_BACKEND_KVM_USERSPACE = 0, /* "kvm-userspace": every MCA MSR served by vmce */
	VMCE_BACKEND_KVM_HYBRID = 1,	/* "kvm-hybrid": KVM's in-kernel MCA serves the hot path */
};

/*
 * One host's description: what the host and its vmce backend can back.  Operators write it as
 * a small JSON object, which `vmcectl profile level` reads (docs/migration-format.md §4):
 *   {"name": "h1", "vendor": "intel", "max_banks": 32,
 *    "caps": ["ser", "tes", "cmci", "lmce", "ctl"],
 *    "vmce_version": "0.1", "backend": "kvm-userspace"}
 */
struct vmce_host_desc {
	char name[64];
	enum vmce_vendor vendor;
	unsigned max_banks;	/* 1..VMCE_MAX_BANKS */
	uint32_t caps;		/* VMCE_CAP_* the host and its backend can back */
	unsigned version_major; /* vmce_version */
	unsigned version_minor;
	enum vmce_backend backend;
};

/* One levelling decision: which field, which host(s) limited it, and a sentence. */
struct vmce_level_note {
	char field[16]; /* "vendor", "banks", "report", "ser", "tes", "cmci", "lmce", ... */
	char hosts[96]; /* the limiting host names, comma-separated; "" when nothing limited it */
	char text[192];
};

#define VMCE_LEVEL_MAX_HOSTS 256 /* hosts vmce_level_descs() takes at most */
#define VMCE_LEVEL_MAX_NOTES 16	 /* notes a levelling result holds at most */

/* The outcome of levelling: the profile and why each limited field is what it is. */
struct vmce_level_result {
	struct vmce_profile profile; /* the profile every host can back */
	size_t nr_notes;
	struct vmce_level_note notes[VMCE_LEVEL_MAX_NOTES];
};

/*
 * Compute the profile every host can back, from n host descriptions.  want: the profile the
 * operator would like (NULL: as much as the pool allows, i.e. every capability all hosts share
 * and the smallest max_banks).  The result never exceeds want; each field that a host limited
 * gets a note naming the host(s).  Returns 0, or -EINVAL (a description is out of range: err
 * names the host and the field) or -ENOTSUP (no profile fits, e.g. hosts of different vendors;
 * err says which).
 */
VMCE_API int vmce_level_descs(const struct vmce_host_desc *hosts, size_t n,
			      const struct vmce_profile *want, struct vmce_level_result *out,
			      struct vmce_err *err);

/* The notes as text, one "field: text" line each.  Returns the length needed, like snprintf. */
VMCE_API int vmce_level_format(const struct vmce_level_result *r, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* VMCE_MIGRATE_H */
