/* SPDX-License-Identifier: MIT */
/*
 * vmm.h - vmce-vm, the reference VMM: the VM's shared state and the interface between its
 * files.
 *
 * Files, and the only directions in which they call each other (scripts/code-metrics.py shows
 * the picture; nothing calls upwards, so there is no cycle):
 *
 *   main.c       options, the main thread's loop, exit statuses
 *     -> control*.c   the control socket: connections and dispatch (control.c), the command
 *                     table and handlers (control_cmd.c), requests (control_req.c: JSON
 *                     parsing with jansson, field access, rate limits); each calls only the
 *                     ones after it in this list
 *          -> mig_*.c      live migration: the wire format (mig_wire.c, mig.h), the source
 *                          (mig_out.c) and the destination (mig_in.c)
 *               -> vcpu.c       the vCPU threads and their run loop
 *                    -> vm.c         lifecycle: clock, stop, wake, pause/park/resume,
 *                                    teardown, the events log
 *   boot.c       KVM and vmce set-up, image loading, boot memory, CPUID: called by main.c and
 *                by the incoming migration (mig_in.c); it calls vm.c at most.
 *
 * Every file may call vm.c; main.c may call any of them.
 *
 * Errors, one style everywhere (vmcectl follows it too, with the library's `struct vmce_err`):
 * a function that can fail returns 0 on success and -1 on failure, and fills a
 * caller-provided `struct vmm_err` with one sentence saying why
 * (vmm_fail() does both).  The caller decides where the sentence goes: stderr prefixed with
 * "vmce-vm: ", a control response, a migration reply.  Where a caller must tell several
 * failures apart the function returns a named enum instead (enum vmm_mig_in_result, the
 * phases of mig_in.c with enum mig_step).  System calls report through errno as usual and are
 * turned into a sentence at once.
 */
#ifndef VMM_VMM_H
#define VMM_VMM_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <vmce/vmce.h>
#include <vmce/policy.h>
#include <vmce/kvm.h>

struct json_t; /* jansson */

#define VMM_MAX_VCPUS	 64
#define VMM_CONSOLE_LINE 512

/* Exit statuses (docs/control-protocol.md section 7). */
enum vmm_exit {
	VMM_EXIT_OK = 0,
	VMM_EXIT_ERROR = 1,
	VMM_EXIT_USAGE = 2,
	VMM_EXIT_GUEST_PANIC = 3,
	VMM_EXIT_VMCE_SHUTDOWN = 4,
	VMM_EXIT_TRIPLE_FAULT = 5,
	VMM_EXIT_TIMEOUT = 6,
	VMM_EXIT_GUEST_OTHER = 7,
	VMM_EXIT_SIGNAL = 8,
};

/* Why something failed: one sentence, without the "vmce-vm: " prefix. */
struct vmm_err {
	char msg[512];
};

/* Fill err with the formatted sentence; returns -1. */
static inline __attribute__((format(printf, 2, 3))) int vmm_fail(struct vmm_err *err,
								 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

struct vmm_vcpu {
	struct vmm *vm;
	unsigned index;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool thread_started;
	struct vmce_kvm_vcpu *kv;
	char line[VMM_CONSOLE_LINE];
	size_t line_len;
	/* An error to inject from this vCPU's thread at its first MCA MSR exit with MCIP set,
	 * i.e. while the guest's #MC handler runs (control "in_handler"): 0 none, 1 armed. */
	atomic_int armed;
	struct vmce_host_error armed_error;
};

struct vmm {
	/* Configuration. */
	uint64_t mem_size;
	unsigned nr_vcpus;
	struct vmce_profile profile;
	const char *image_path;
	bool workload, quiet_poller;
	const char *control_path;
	const char *console_file_path;
	const char *console_prefix;
	const char *events_log_path;
	double timeout;
	bool hybrid;
	enum vmce_fatal_policy fatal;
	unsigned hold_max, hold_timeout_ms; /* 0: vmce's defaults */

	/* KVM. */
	int kvm_fd, vm_fd;
	uint8_t *mem;
	unsigned nr_slots; /* KVM memory slots of guest RAM (several around poisoned pages) */
	uint64_t tsc_khz;
	struct kvm_cpuid2 *cpuid;
	struct vmce_vm *vmce;
	struct vmce_kvm *kvm;
	struct vmm_vcpu vcpu[VMM_MAX_VCPUS];
	uint64_t start_ns;

	/* Output. */
	pthread_mutex_t out_lock; /* console stdout/file and the events log */
	FILE *console_file;
	FILE *events_log;

	/* Lifecycle. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_bool stopped;
	int exit_status;
	char exit_reason[256];
	unsigned vcpus_ready;
	atomic_bool pause_req; /* a migration parks the vCPUs */
	unsigned vcpus_parked;
	const char *incoming; /* --incoming ADDR */
	void (*on_event)(const struct vmce_event *ev, void *opaque);
	int wake_fd; /* eventfd: wakes the control thread (new events, stop) */
};

/* ---- vm.c: lifecycle ---- */

uint64_t vmm_now_ns(void);
/* Stop the VM (first caller wins): record status and reason, log them, kick every vCPU. */
void vmm_stop(struct vmm *vm, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void vmm_wake_control(struct vmm *vm);
/* Park every vCPU before its next entry (a migration): 0 once all are parked. */
int vmm_pause_vcpus(struct vmm *vm, struct vmm_err *err);
void vmm_resume_vcpus(struct vmm *vm);
/* vCPU thread: park while a migration holds the vCPUs. */
void vmm_vcpu_park(struct vmm *vm);
/* A JSON string of s; bytes that are not UTF-8 become '?'.  NULL only when out of memory. */
struct json_t *vmm_json_text(const char *s);
/* obj as one line of compact JSON, keys in insertion order, reals with 15 significant digits
 * (malloc'd; NULL: out of memory). */
char *vmm_json_dump(const struct json_t *obj);
/* The "vm-exit" line of event streams and the events log (a new reference). */
struct json_t *vmm_exit_json(struct vmm *vm);
/* Append obj as one line to --events-log, if any (obj is not released). */
void vmm_log_json(struct vmm *vm, const struct json_t *obj);
/* vmce's JSON text of an event (malloc'd; NULL: out of memory). */
char *vmm_event_text(const struct vmce_event *ev);
/* vmce's event callback: the events log, stderr for fatal events, wake the followers. */
void vmm_on_event(const struct vmce_event *ev, void *opaque);
/* Release everything boot.c created (what exists of it). */
void vmm_teardown(struct vmm *vm);

/* ---- boot.c: KVM, vmce, the image and the boot state of docs/guest-boot.md ---- */

int vmm_setup(struct vmm *vm, struct vmm_err *err);

/* ---- vcpu.c ---- */

int vmm_start_vcpus(struct vmm *vm);
void vmm_join_vcpus(struct vmm *vm);

/* ---- mig_out.c, mig_in.c ---- */

struct vmm_mig_result {
	uint64_t bytes, vmce_bytes, pages_sent, pages_skipped;
	unsigned resends;
	bool aborted; /* ended by the abort-on-error policy */
	double total_ms, downtime_ms;
	struct vmm_err err; /* why it failed */
};
/* Source: migrate the running guest to `to`.  0: the destination runs the guest (the caller
 * stops this VM); -1: res->err says why, and the guest keeps running here. */
int vmm_migrate_out(struct vmm *vm, const char *to, bool abort_on_error,
		    struct vmm_mig_result *res);

enum vmm_mig_in_result {
	VMM_MIG_IN_OK,	     /* committed: start the vCPUs */
	VMM_MIG_IN_FAILED,   /* failed or stopped (reason printed) */
	VMM_MIG_IN_BAD_ADDR, /* the address is invalid (usage error) */
	VMM_MIG_IN_TIMEOUT,  /* --timeout expired while waiting for a source */
};
/* Destination: wait on addr, set the VM up from the source's state. */
enum vmm_mig_in_result vmm_migrate_in(struct vmm *vm, const char *addr);

/* ---- control.c ---- */

int control_start(struct vmm *vm);
/* After the VM stopped: tell followers, close everything, join the thread. */
void control_finish(struct vmm *vm);

#endif
