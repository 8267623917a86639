/* SPDX-License-Identifier: MIT */
/*
 * policy.h - from a host memory error to the record a guest must see.
 *
 * A host error (struct vmce_host_error) comes from a SIGBUS (BUS_MCEERR_AR/AO), a host MCE
 * record, or manual injection.  vmce_plan_error() classifies it, translates its address to
 * guest-physical through the VM's memory map, filters everything host-specific out, and
 * produces a delivery plan (struct vmce_plan): which vCPU gets which bank record, which vCPUs
 * get a broadcast, or why the error is dropped or fatal to the guest.  vmce_inject() queues a
 * plan's records on the vCPUs (any thread), and each vCPU thread applies them with
 * vmce_vcpu_deliver() (vmce.h).  vmce_handle_error() does both.
 *
 * Every decision becomes an event in the VM's event log, with a monotonic sequence number.
 * Every forwarded memory error adds its guest page to the poisoned-page set.
 *
 * Thread safety: every function here may be called from any thread.  The memory map, the
 * poisoned-page set and the event log have their own locks; none is taken on the MSR path.
 */
#ifndef VMCE_POLICY_H
#define VMCE_POLICY_H

#include <vmce/vmce.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where a host error came from. */
enum vmce_origin {
	VMCE_ORIGIN_SIGBUS_AR = 0, /* SIGBUS BUS_MCEERR_AR: a vCPU consumed poisoned memory */
	VMCE_ORIGIN_SIGBUS_AO = 1, /* SIGBUS BUS_MCEERR_AO: poison found, not consumed */
	VMCE_ORIGIN_HOST_MCE = 2,  /* a host MCE record (raw MCi_STATUS/ADDR/MISC/MCG_STATUS) */
	VMCE_ORIGIN_INJECT = 3,	   /* manual injection (vmcectl, control socket, tests) */
};

/* What kind of address a host error carries. */
enum vmce_addr_kind {
	VMCE_ADDR_NONE = 0, /* no address known */
	VMCE_ADDR_HVA = 1,  /* host virtual (the VMM's mapping of guest memory) */
	VMCE_ADDR_HPA = 2,  /* host physical */
	VMCE_ADDR_GPA = 3,  /* guest physical */
};

/* Error classes (design §4). */
enum vmce_class {
	VMCE_CLASS_AUTO = 0,  /* derive from the raw status (host MCE record / mce-inject) */
	VMCE_CLASS_CE = 1,    /* corrected */
	VMCE_CLASS_UCNA = 2,  /* uncorrected, no action required (UC, S=0) */
	VMCE_CLASS_SRAO = 3,  /* software-recoverable action optional */
	VMCE_CLASS_SRAR = 4,  /* software-recoverable action required */
	VMCE_CLASS_FATAL = 5, /* processor context corrupt, or unrecoverable */
};

/* A host error as the VMM saw it; vmce_host_error_init() first, then fill what is known. */
struct vmce_host_error {
	enum vmce_origin origin;
	enum vmce_class cls; /* VMCE_CLASS_AUTO: from status (or from origin for SIGBUS) */
	enum vmce_addr_kind addr_kind;
	uint64_t addr;
	unsigned addr_lsb; /* granularity, log2 bytes (12 = one 4 KiB page); 0: 12 */
	int vcpu;	   /* consuming / reporting vCPU, -1 when unknown */
	bool local;	   /* the host saw it as a local MCE (LMCE) */
	bool no_broadcast; /* deliver to the target vCPU only (mce-inject NOBROADCAST) */
	/* Raw host record (VMCE_ORIGIN_HOST_MCE, or VMCE_ORIGIN_INJECT with cls AUTO). */
	uint64_t status;
	uint64_t misc;
	uint64_t mcg_status;
	int bank;     /* host bank; informational only */
	uint64_t rip; /* informational only */
};

/* Initialise a host error to "nothing known": vcpu -1, no address, class AUTO. */
VMCE_API void vmce_host_error_init(struct vmce_host_error *e);

/* ---- Guest memory map ---------------------------------------------------------------------- */

#define VMCE_NO_HPA UINT64_MAX /* vmce_memmap_add(): the range's host-physical address is unknown */

/* Register guest-physical [gpa, gpa+size) backed by host-virtual hva (and host-physical hpa,
 * or VMCE_NO_HPA).  Ranges may not overlap in guest-physical or host-virtual space.
 * At most 4096 ranges. */
VMCE_API int vmce_memmap_add(struct vmce_vm *vm, uint64_t gpa, uint64_t size, uint64_t hva,
			     uint64_t hpa, struct vmce_err *err);
/* Remove the range that starts at gpa. */
VMCE_API int vmce_memmap_remove(struct vmce_vm *vm, uint64_t gpa, struct vmce_err *err);
/* Translate an address of the given kind to guest-physical: O(log n).  Returns 0, or -ENOENT
 * when the address is not in guest memory (it must then never be forwarded). */
VMCE_API int vmce_translate(struct vmce_vm *vm, enum vmce_addr_kind kind, uint64_t addr,
			    uint64_t *gpa);

/* ---- Plans ---------------------------------------------------------------------------------- */

/* What the policy decided about a host error (struct vmce_plan). */
enum vmce_verdict {
	VMCE_VERDICT_FORWARD = 0, /* deliver to the guest as planned */
	VMCE_VERDICT_DROP = 1,	  /* not for the guest (reason says why) */
	VMCE_VERDICT_FATAL = 2,	  /* fatal to the guest (reason says why) */
};

/*
 * A delivery plan.  The target vCPU gets `record`; when `broadcast` is set, every other vCPU
 * gets `bystander` (MCG_STATUS MCIP|RIPV and no bank record).  vmce_plan_vcpu() gives the
 * per-vCPU view.
 */
struct vmce_plan {
	enum vmce_verdict verdict;
	enum vmce_class cls;
	char reason[160]; /* why (empty from vmce_plan_decide(): see vmce_plan_reason()) */
	bool has_gpa;
	uint64_t gpa;	   /* guest-physical address of the error (when has_gpa) */
	unsigned nr_vcpus; /* the VM's vCPU count */
	unsigned target;   /* vCPU that gets the bank record */
	bool broadcast;
	bool lmce; /* delivered as a local machine check (MCG_STATUS.LMCES) */
	struct vmce_vcpu_record record;
	struct vmce_vcpu_record bystander;
};

/* Classify and synthesise (reads the guest's LMCE and CMCI enablement; changes nothing). */
VMCE_API int vmce_plan_error(struct vmce_vm *vm, const struct vmce_host_error *e,
			     struct vmce_plan *plan, struct vmce_err *err);

/*
 * vmce_plan_error() without writing the reason text, which is most of its cost: the plan is the
 * same, but `reason` is an empty string, and the rest of that array keeps what the text is made
 * of (a copy of the plan keeps it too).  vmce_plan_reason() writes the text when it is wanted;
 * vmce_inject() and vmce_plan_format_json() write it themselves.  Since 0.2.
 */
VMCE_API int vmce_plan_decide(struct vmce_vm *vm, const struct vmce_host_error *e,
			      struct vmce_plan *plan, struct vmce_err *err);

/* A plan's reason text into buf (len bytes, NUL-terminated): the plan's `reason`, or for a plan
 * from vmce_plan_decide() the text vmce_plan_error() would have given.  Returns the length of
 * the whole text, like snprintf, or -EINVAL.  Since 0.2. */
VMCE_API int vmce_plan_reason(const struct vmce_plan *plan, char *buf, size_t len);

/* What vCPU `index` receives under a plan: returns false when it receives nothing. */
VMCE_API bool vmce_plan_vcpu(const struct vmce_plan *plan, unsigned index,
			     struct vmce_vcpu_record *out);

/*
 * Queue a plan's records on the vCPUs, atomically with respect to other injections (any
 * thread).  A FORWARD plan adds the page to the poisoned-page set (memory errors) and logs a
 * "forwarded" event; DROP and FATAL plans are only logged (FATAL with VMCE_FATAL_SHUTDOWN also
 * queues a shutdown on the target vCPU).  Returns 0, or a negative errno: -ESRCH when a target
 * vCPU is not started, -ENOSPC when the poisoned-page set is full, -EBUSY when a vCPU's queue
 * is full, -ENOBUFS when the held-record queue is full (see "Held records" below); err says
 * which.  The caller then kicks the vCPUs that vmce_vcpu_pending() reports.
 */
VMCE_API int vmce_inject(struct vmce_vm *vm, const struct vmce_plan *plan, struct vmce_err *err);

/* vmce_plan_error() then vmce_inject().  plan may be NULL. */
VMCE_API int vmce_handle_error(struct vmce_vm *vm, const struct vmce_host_error *e,
			       struct vmce_plan *plan, struct vmce_err *err);

/* Text helpers. */
VMCE_API const char *vmce_class_name(enum vmce_class c);     /* "srao", ... */
VMCE_API const char *vmce_verdict_name(enum vmce_verdict v); /* "forward", ... */
/* One JSON object (no newline) describing a plan, per-vCPU records included. */
VMCE_API int vmce_plan_format_json(const struct vmce_plan *plan, char *buf, size_t len);

/* ---- Poisoned-page set ------------------------------------------------------------------------ */

/* Pages are 4 KiB guest-physical frames.  The set holds at most the VM's max_poisoned_pages. */
VMCE_API int vmce_poison_add(struct vmce_vm *vm, uint64_t gpa, struct vmce_err *err);
/* Whether the page that holds gpa is poisoned. */
VMCE_API bool vmce_poison_contains(struct vmce_vm *vm, uint64_t gpa);
/* How many pages are poisoned. */
VMCE_API size_t vmce_poison_count(struct vmce_vm *vm);
/* Copy up to max page addresses, in ascending order, starting after `after` (use 0 and
 * first=true to begin).  Returns how many were copied. */
VMCE_API size_t vmce_poison_list(struct vmce_vm *vm, uint64_t *out, size_t max, bool first,
				 uint64_t after);

/* ---- Event log ------------------------------------------------------------------------------ */

/* The kinds of entries in the event log. */
enum vmce_event_kind {
	VMCE_EVENT_FORWARDED = 0, /* a plan was queued for the guest */
	VMCE_EVENT_DROPPED = 1,	  /* the error was not forwarded; reason says why */
	VMCE_EVENT_FATAL = 2,	  /* the guest is shut down (or would be); reason says why */
	VMCE_EVENT_DELIVERED = 3, /* a vCPU applied a record (signal in record) */
	VMCE_EVENT_MASKED = 4,	  /* a vCPU loaded a record without signalling (bank disabled) */
	VMCE_EVENT_REFUSED = 5,	  /* the injection was refused (vCPU not started, set full...) */
	VMCE_EVENT_MIGRATION = 6, /* migration interlock notes */
	VMCE_EVENT_HELD = 7,	  /* a record waits for MCG_STATUS.MCIP to clear (see below) */
};

/* One entry of the VM's event log. */
struct vmce_event {
	uint64_t seq;	  /* 1, 2, 3, ... per VM, without gaps */
	uint64_t time_ns; /* CLOCK_REALTIME, nanoseconds */
	enum vmce_event_kind kind;
	enum vmce_class cls;
	int vcpu; /* -1 when not about one vCPU */
	bool has_gpa;
	uint64_t gpa;
	struct vmce_vcpu_record record;
	char reason[160];
};

/* Totals since the VM was created (vmce_get_counters()). */
struct vmce_counters {
	uint64_t by_class[6]; /* indexed by enum vmce_class: errors seen */
	uint64_t forwarded, dropped, fatal, delivered, masked, refused;
};

/* An event callback: see vmce_set_event_callback(). */
typedef void (*vmce_event_fn)(const struct vmce_event *ev, void *opaque);

/* Called for each new event, in sequence order, from the thread that caused it.  It must not
 * call back into the event-log functions. */
VMCE_API void vmce_set_event_callback(struct vmce_vm *vm, vmce_event_fn fn, void *opaque);
/* Copy events with seq > after (oldest first) into out.  The log keeps the last 4096. */
VMCE_API size_t vmce_events_read(struct vmce_vm *vm, uint64_t after, struct vmce_event *out,
				 size_t max);
/* The sequence number of the newest event (0: none yet). */
VMCE_API uint64_t vmce_events_last_seq(struct vmce_vm *vm);
/* Copy the VM's counters. */
VMCE_API void vmce_get_counters(struct vmce_vm *vm, struct vmce_counters *out);
/* The name of an event kind: "forwarded", "dropped", ... */
VMCE_API const char *vmce_event_kind_name(enum vmce_event_kind k);
/* One JSON object, no newline.  Returns the length needed, like snprintf. */
VMCE_API int vmce_event_format_json(const struct vmce_event *ev, char *buf, size_t len);

/* ---- Held records: errors that wait for the guest's machine-check handler ----------------- */

/*
 * An action-optional error (class SRAO, signalled with #MC) whose delivery would find
 * MCG_STATUS.MCIP set on a vCPU it is to reach (the target, and every started vCPU of a
 * broadcast) -- or a machine check still queued there -- is not delivered (which would shut
 * the guest down) nor dropped: vmce_inject() logs it as "held" and keeps the whole plan in a
 * per-VM FIFO.  Held plans are queued on their vCPUs in arrival order, one at a time, once
 * MCIP is clear on every vCPU the plan reaches; the release is logged as "forwarded", then each
 * vCPU's "delivered" follows as usual.  A new SRAO waits behind held ones even when its own
 * vCPUs are idle, so that order is kept.
 *
 * SRAR (class SRAR): on a target vCPU with MCIP set it stays fatal (the guest consumed poison
 * inside its machine-check handler; the fatal event says so).  On a target with MCIP clear
 * while another vCPU the plan reaches is busy, the SRAR is held too, ahead of every held SRAO,
 * and released as soon as those vCPUs clear MCIP: a broadcast must find every vCPU outside its
 * handler (Linux's rendezvous needs all of them; a bystander with MCIP set would be a
 * shutdown).  A second SRAR for the same vCPU and page while one is held is not held twice.
 * UCNA, corrected errors and AMD Deferred errors are never held (no #MC).
 *
 * Bounds: at most max_records plans are held (default VMCE_HOLD_DEFAULT_MAX).  One more is
 * refused (event "refused", -ENOBUFS): its page is still added to the poisoned-page set, and
 * the host keeps the page poisoned, so a later guest access raises an SRAR.  When no held plan
 * could be released for timeout_ms (default VMCE_HOLD_DEFAULT_TIMEOUT_MS) -- the guest never
 * clears MCIP, its handler hangs -- every held SRAO is dropped (event "dropped", pages stay
 * poisoned) and every held SRAR becomes fatal (the VM's fatal policy applies).  The timeout is
 * checked whenever vmce is entered (injection, delivery) and by vmce_hold_poll(), which a VMM
 * calls periodically (e.g. every 100 ms).
 *
 * The held plans travel in the migration stream (optional section "held").
 */
#define VMCE_HOLD_DEFAULT_MAX 1024u
/*
 * A vCPU whose guest cleared MCIP takes no new #MC until it has left its handler: the return
 * from the exception after the WRMSR that cleared MCIP must not be cut by the next machine
 * check, which would reuse the handler's stack (Linux and the built-in guest run #MC on an IST
 * stack).  vmce cannot see the IRET; it waits until the VMM reports an exit the guest caused
 * after the clear (vmce_vcpu_guest_progress(); the KVM backend does it), or at most this long.
 */
#define VMCE_HOLD_SETTLE_MAX_US	     50000u
#define VMCE_HOLD_MAX_RECORDS	     65536u
#define VMCE_HOLD_DEFAULT_TIMEOUT_MS 5000u

/* Change the bounds: max_records 1..VMCE_HOLD_MAX_RECORDS (0: the default), not below the
 * number held now; timeout_ms 1..3600000 (0: the default).  Any thread.  Returns 0, -EINVAL,
 * -EBUSY or -ENOMEM with err naming the reason. */
VMCE_API int vmce_hold_configure(struct vmce_vm *vm, unsigned max_records, unsigned timeout_ms,
				 struct vmce_err *err);

/* The state of the VM's held-record queue, filled by vmce_hold_status(). */
struct vmce_hold_status {
	unsigned count;	      /* plans held now */
	unsigned max_records; /* the bound */
	unsigned timeout_ms;
	uint64_t stalled_ns; /* how long nothing could be released (0 when nothing is held) */
	uint64_t held, released, overflowed, expired; /* totals since the VM was created */
};

/* One held plan, oldest first. */
struct vmce_held_info {
	uint64_t event_seq; /* its "held" event */
	enum vmce_class cls;
	unsigned target;
	bool broadcast;
	bool has_gpa;
	uint64_t gpa;
	uint64_t age_ns;
	int waiting_for; /* a vCPU the plan reaches that is still busy, or -1 */
};

/* Fill out with the held-record queue's state now (any thread). */
VMCE_API void vmce_hold_status(struct vmce_vm *vm, struct vmce_hold_status *out);
/* Copy up to max held plans (in release order); returns how many are held. */
VMCE_API size_t vmce_hold_list(struct vmce_vm *vm, struct vmce_held_info *out, size_t max);
/* Release what can be released and apply the timeout (any thread).  Returns the number of
 * plans still held. */
VMCE_API unsigned vmce_hold_poll(struct vmce_vm *vm);

/*
 * Called when held records were queued on vCPU `vcpu` by a thread other than an injection
 * caller's (a vCPU thread's vmce_vcpu_deliver(), or vmce_hold_poll()): the VMM must make that
 * vCPU call vmce_vcpu_deliver() soon (kick it out of KVM_RUN).  Called without vmce's locks
 * held.  The KVM backend sets it (kvm.h); a VMM with its own vCPU loop sets its own.
 */
typedef void (*vmce_kick_fn)(unsigned vcpu, void *opaque);
/* Set the VM's kick callback (fn NULL: none); opaque is passed to it.  Any thread. */
VMCE_API void vmce_set_kick_callback(struct vmce_vm *vm, vmce_kick_fn fn, void *opaque);

/* ---- mce-inject text ---------------------------------------------------------------------- */

/*
 * Parse the input format of Linux's mce-inject tool: records of "KEYWORD value" lines
 * (CPU, BANK, STATUS, MCGSTATUS, ADDR, MISC, RIP, NOBROADCAST...), '#' comments, several records
 * per text.  Addresses are taken as `kind` (usually VMCE_ADDR_GPA).  Returns the number of
 * records parsed (at most max), or -EINVAL with err naming the line and token.
 */
VMCE_API int vmce_parse_inject_text(const char *text, size_t len, enum vmce_addr_kind kind,
				    struct vmce_host_error *out, size_t max, struct vmce_err *err);

#ifdef __cplusplus
}
#endif

#endif /* VMCE_POLICY_H */
