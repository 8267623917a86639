/* SPDX-License-Identifier: MIT */
/*
 * vmce_internal.h - the one internal header: the structures behind the public handles and the
 * calls the parts of the library make into each other.
 *
 * Parts and their direction of dependency:
 *   src/core/     profile, per-vCPU MCA state, MSR model, delivery queue   (depends on nothing)
 *   src/policy/   memory map, classification, poisoned pages, event log   (uses core)
 *   src/migrate/  state stream, restore checks, levelling, interlock      (uses core, policy)
 *   src/kvm/      the KVM backend                                         (uses all of the above)
 * core reaches policy only through the calls declared at the end of this file.
 */
#ifndef VMCE_INTERNAL_H
#define VMCE_INTERNAL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <time.h>

#include <vmce/vmce.h>
#include <vmce/policy.h>

/* Relaxed atomic access to state that has a single writer and seqcount readers. */
#define LD(x)		   atomic_load_explicit(&(x), memory_order_relaxed)
#define ST(x, v)	   atomic_store_explicit(&(x), (v), memory_order_relaxed)

#define VMCE_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* How long at most a vCPU stays busy after its guest cleared MCIP (see release_hint). */
#define VMCE_SETTLE_NS (VMCE_HOLD_SETTLE_MAX_US * 1000ull)

static inline uint64_t vmce__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One bank's registers, as the vCPU thread writes them. */
struct vmce_bank_regs {
	_Atomic uint64_t ctl, status, addr, misc, ctl2;
};

/* A record waiting in a vCPU's delivery queue (filled by vmce_inject()). */
struct vmce_queued {
	struct vmce_vcpu_record rec;
	enum vmce_class cls;
	bool has_gpa;
	uint64_t gpa;
	bool shutdown;	    /* a fatal verdict: shut down when applied */
	uint64_t event_seq; /* the "forwarded"/"fatal" event it came from */
	char reason[160];
};

/* Records a vCPU may have queued but not yet applied. */
#define VMCE_VCPU_QUEUE_LEN 16

struct vmce_vcpu {
	struct vmce_vm *vm;
	unsigned index;
	/* Sequence counter: odd while the vCPU thread is writing state (seqcount readers). */
	_Atomic uint32_t seq;
	_Atomic uint64_t mcg_status, mcg_ctl, mcg_ext_ctl;
	_Atomic bool amd_wren;
	struct vmce_bank_regs bank[VMCE_MAX_BANKS];
	_Atomic bool started;

	/* Delivery queue: producers are injectors (under qlock), the consumer is the vCPU thread
	 * (under qlock too; qcount lets it skip the lock when nothing is queued).  qmc counts the
	 * queued records that raise an #MC when applied (the vCPU is "busy" for held records). */
	pthread_mutex_t qlock;
	_Atomic unsigned qcount;
	_Atomic unsigned qmc;
	/* Set by the MSR path when the guest clears MCG_STATUS.MCIP; the next
	 * vmce_vcpu_deliver() turns it into settle_until (CLOCK_MONOTONIC ns): no new #MC reaches
	 * this vCPU before then, or before vmce_vcpu_guest_progress() says the guest ran past its
	 * handler's return (it sets settle_until to 1, a time long past).  vmce_vcpu_pending()
	 * reports the hint and that 1, so that the next delivery releases what waited, but not
	 * the wait itself (a kick then would stop the guest before it returns). */
	_Atomic bool release_hint;
	_Atomic uint64_t settle_until;
	unsigned qhead;
	struct vmce_queued queue[VMCE_VCPU_QUEUE_LEN];
};

/*
 * A plan held back because a vCPU it reaches has MCG_STATUS.MCIP set (src/policy/hold.c).
 * Held plans wait in a per-VM FIFO and are queued on their vCPUs, in arrival order, once the
 * guest has cleared MCIP on every one of them.
 */
struct vmce_held {
	struct vmce_plan plan;
	uint64_t event_seq; /* the "held" event */
	uint64_t since_ns;  /* CLOCK_MONOTONIC when it was held (or restored) */
};

struct vmce_hold {
	/* Everything is under vm->inject_lock; count is also read without it. */
	struct vmce_held *ring;
	unsigned cap, head;
	_Atomic unsigned count;
	unsigned nsrar; /* held SRARs (they are looked for first; 0: skip the scan) */
	uint64_t timeout_ns;
	uint64_t progress_ns; /* last release, or when the queue became non-empty */
	uint64_t held, released, overflowed, expired;
	vmce_kick_fn kick;
	void *kick_opaque;
};

struct vmce_policy_state;  /* src/policy: memory map, poisoned pages, event log */
struct vmce_migrate_state; /* src/migrate: interlock */

struct vmce_vm {
	struct vmce_profile profile;
	uint64_t mcg_cap;
	unsigned nr_vcpus;
	enum vmce_fatal_policy fatal;
	size_t max_poisoned_pages;
	/* Serialises injections so that a plan reaches all its vCPUs before the next one. */
	pthread_mutex_t inject_lock;
	struct vmce_policy_state *pol;
	struct vmce_migrate_state *mig;
	struct vmce_vcpu *vcpus; /* nr_vcpus entries */
	struct vmce_hold hold;
};

/* ---- core helpers -------------------------------------------------------------------------- */

/* Fill err (may be NULL) with a printf-style message; returns `code` for tail calls. */
int vmce__fail(struct vmce_err *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Seqcount write section on a vCPU (vCPU thread only). */
static inline void vmce__write_begin(struct vmce_vcpu *v)
{
	uint32_t s = atomic_load_explicit(&v->seq, memory_order_relaxed);

	atomic_store_explicit(&v->seq, s + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
}

static inline void vmce__write_end(struct vmce_vcpu *v)
{
	uint32_t s = atomic_load_explicit(&v->seq, memory_order_relaxed);

	atomic_store_explicit(&v->seq, s + 1, memory_order_release);
}

/* Store a whole, already validated state into a vCPU (its thread, or while it is stopped). */
void vmce__vcpu_store_state(struct vmce_vcpu *v, const struct vmce_vcpu_state *st);

/*
 * Put one record on a vCPU's queue (any thread; the caller holds vm->inject_lock).
 * Returns 0 or -EBUSY when the queue is full.
 */
int vmce__vcpu_enqueue(struct vmce_vcpu *v, const struct vmce_queued *q);

/* ---- policy calls made by core ------------------------------------------------------------- */

/* Held records (src/policy/hold.c).  init/fini with the VM. */
int vmce__hold_init(struct vmce_vm *vm, struct vmce_err *err);
void vmce__hold_fini(struct vmce_vm *vm);
/*
 * vCPU thread, from vmce_vcpu_deliver(): release what can be released (and expire what waited
 * too long), then kick the other vCPUs that got records.  Takes inject_lock.
 */
void vmce__hold_release(struct vmce_vm *vm);
/*
 * vCPU thread: an action-optional #MC record found MCIP set when it was applied (a stream from
 * an older writer, or a guest that set MCIP itself): hold it, at the front of the queue, for
 * this vCPU only.  Returns 0, or -ENOBUFS when the queue is full (the caller then drops it).
 */
int vmce__hold_requeue(struct vmce_vcpu *v, const struct vmce_queued *q);

/* Create / free the policy part of a VM (called by vmce_vm_create / vmce_vm_destroy). */
int vmce__policy_init(struct vmce_vm *vm, struct vmce_err *err);
void vmce__policy_fini(struct vmce_vm *vm);

/*
 * Append an event to the log, give it the next sequence number, call the VMM's callback, and
 * count it.  Returns the sequence number.  Any thread; takes the log's lock.
 */
uint64_t vmce__log_event(struct vmce_vm *vm, enum vmce_event_kind kind, enum vmce_class cls,
			 int vcpu, bool has_gpa, uint64_t gpa, const struct vmce_vcpu_record *rec,
			 const char *reason);

/* The same for a follow-up about an error already counted by class (a held record released,
 * dropped or expired): counted by kind only. */
uint64_t vmce__log_followup(struct vmce_vm *vm, enum vmce_event_kind kind, enum vmce_class cls,
			    int vcpu, bool has_gpa, uint64_t gpa,
			    const struct vmce_vcpu_record *rec, const char *reason);

/* ---- migrate calls made by core/policy ----------------------------------------------------- */

/* Create / free the migration part (may leave vm->mig NULL until migration is used). */
int vmce__migrate_init(struct vmce_vm *vm, struct vmce_err *err);
void vmce__migrate_fini(struct vmce_vm *vm);
/* Note that an error was forwarded (for the migration interlock).  Any thread. */
void vmce__migrate_note_forwarded(struct vmce_vm *vm, uint64_t event_seq);

#endif /* VMCE_INTERNAL_H */
