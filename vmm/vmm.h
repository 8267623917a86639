/* SPDX-License-Identifier: MIT */
/*
 * vmm.h - vmce-vm, the reference VMM: shared state of the VM, its vCPU threads and the control
 * socket.
 */
#ifndef VMM_VMM_H
#define VMM_VMM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <vmce/vmce.h>
#include <vmce/policy.h>
#include <vmce/kvm.h>

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

uint64_t vmm_now_ns(void);
/* Stop the VM (first caller wins): record status and reason, log them, kick every vCPU. */
void vmm_stop(struct vmm *vm, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void vmm_wake_control(struct vmm *vm);

/* vcpu.c */
int vmm_setup(struct vmm *vm);
int vmm_start_vcpus(struct vmm *vm);
void vmm_join_vcpus(struct vmm *vm);
void vmm_teardown(struct vmm *vm);

/* migrate.c */
struct vmm_mig_result {
	uint64_t bytes, vmce_bytes, pages_sent, pages_skipped;
	unsigned resends;
	bool aborted; /* ended by the abort-on-error policy */
	double total_ms, downtime_ms;
	char reason[512];
};
/* Source: migrate the running guest to `to`.  0: the destination runs the guest (the caller
 * stops this VM); -1: res->reason says why, and the guest keeps running here. */
int vmm_migrate_out(struct vmm *vm, const char *to, bool abort_on_error,
		    struct vmm_mig_result *res);
/* Destination: wait on addr, set the VM up from the source's state.  0: committed, start the
 * vCPUs; -1: failed (reason printed); -2: the address is invalid; -3: --timeout expired while
 * waiting for a source. */
int vmm_migrate_in(struct vmm *vm, const char *addr);
void vmm_vcpu_park(struct vmm *vm);
void vmm_resume_vcpus(struct vmm *vm);

/* control.c */
int control_start(struct vmm *vm);
/* After the VM stopped: tell followers, close everything, join the thread. */
void control_finish(struct vmm *vm);

#endif
