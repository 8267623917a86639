/* SPDX-License-Identifier: MIT */
/*
 * tinyvm.h - a self-contained harness for tiny KVM guests (tests and benchmarks).
 *
 * One VM, one vCPU, guest RAM at guest-physical 0, the guest binary (tinyguest.S) at 0x10000,
 * started in 64-bit long mode (identity map of the first and the fourth GiB, which holds the
 * LAPIC page; GDT; IDT with #GP, #MC, an interrupt and a catch-all handler).  The guest runs a script of commands that the host queues with tv_cmd(); results,
 * markers and #MC reports come back through port I/O and land in the arrays below.
 */
#ifndef VMCE_TESTS_TINYVM_H
#define VMCE_TESTS_TINYVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

/* Guest commands (see tinyguest.S). */
enum tv_cmd {
	TV_RDMSR = 1,	   /* index -> gp, lo, hi */
	TV_WRMSR = 2,	   /* index, lo, hi -> gp */
	TV_HLT = 3,	   /* exits with KVM_EXIT_HLT */
	TV_LOOP_RDMSR = 4, /* index, n -> 0: n iterations of 4 RDMSRs */
	TV_CLI = 5,
	TV_STI = 6,
	TV_CR4_MCE = 7,	    /* 0/1 */
	TV_SPIN = 8,	    /* n -> 0 */
	TV_RFLAGS = 9,	    /* -> RFLAGS */
	TV_LOOP_NOP = 10,   /* index, n -> 0: the same loop without the RDMSRs */
	TV_LOAD = 11,	    /* gpa -> 32-bit value */
	TV_RDMSR_PAIR = 12, /* index -> gp, lo1, hi1, lo2, hi2: two back-to-back RDMSRs */
	TV_STORE = 13,	    /* address (< 4 GiB, e.g. the LAPIC page), 32-bit value -> 0 */
	TV_STOP = 0xff,	    /* any unknown command: marker 0xff and hlt */
};

/* Markers. */
#define TV_MARK_MC_IN  0x18
#define TV_MARK_MC_OUT 0x19
#define TV_MARK_BAD    0xee
#define TV_MARK_IRQ    0x40 /* the interrupt handler (IDT vector TV_IRQ_VECTOR) ran */
#define TV_IRQ_VECTOR  0x40
#define TV_MARK_STOP   0xff

#define TV_MAX_SCRIPT  8192
#define TV_MAX_OUT     8192

/* What tv_run() stopped on. */
enum tv_stop {
	TV_STOP_IDLE = 0,     /* the guest asked for a command and the script is empty */
	TV_STOP_HLT = 1,      /* KVM_EXIT_HLT */
	TV_STOP_SHUTDOWN = 2, /* KVM_EXIT_SHUTDOWN (triple fault) */
	TV_STOP_EXIT = 3,     /* another exit the hooks did not handle (run->exit_reason) */
	TV_STOP_HOOK = 4,     /* pre_run hook asked to stop (e.g. guest shut down by vmce) */
	TV_STOP_BAD = 5,      /* the guest took an unexpected exception */
	TV_STOP_ERROR = -1,   /* an ioctl failed (errno) */
};

struct tinyvm;

/* Called before every KVM_RUN (return non-zero to stop with TV_STOP_HOOK) and after every exit
 * that is not port I/O of the harness (return 1 when handled). */
struct tv_hooks {
	int (*pre_run)(struct tinyvm *t, void *opaque);
	int (*on_exit)(struct tinyvm *t, void *opaque);
	void *opaque;
};

struct tinyvm {
	int kvm_fd, vm_fd, vcpu_fd;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *mem;
	size_t mem_size;
	uint64_t entry, gp, mc, bad, irq;

	uint32_t script[TV_MAX_SCRIPT];
	unsigned script_len, script_pos;
	bool in_pending; /* an IN of the command port waits for data */

	uint32_t res[TV_MAX_OUT];
	unsigned nres;
	uint32_t mark[TV_MAX_OUT];
	unsigned mark_nres[TV_MAX_OUT]; /* how many results had arrived at each marker */
	unsigned nmark;
	uint32_t mcrep[TV_MAX_OUT];
	unsigned nmcrep;
	uint64_t exits, intr;
	char err[256];
};

/* The guest binary (generated at build time from tinyguest.S). */
extern const unsigned char tinyguest_bin[];
extern const unsigned tinyguest_bin_len;

/* True when /dev/kvm can be opened; else prints why (for exit code 77). */
bool tv_kvm_available(void);

/* Create the VM: mem_size bytes of RAM (>= 1 MiB).  irqchip: create the in-kernel irqchip.
 * Returns 0 or -1 with t->err set. */
int tv_create(struct tinyvm *t, size_t mem_size, bool irqchip);
/* Create the vCPU and load the guest in long mode.  Separate from tv_create so that a caller
 * can set up VM-wide state (MSR filter, backend) in between.  */
int tv_create_vcpu(struct tinyvm *t);
void tv_destroy(struct tinyvm *t);

/* Queue a command with up to 3 arguments (nargs of them). */
void tv_cmd(struct tinyvm *t, uint32_t cmd, unsigned nargs, uint32_t a0, uint32_t a1, uint32_t a2);
/* Run until something from enum tv_stop happens. */
enum tv_stop tv_run(struct tinyvm *t, const struct tv_hooks *hooks);

/* Results of the harness ports, consumed in order. */
bool tv_res_take(struct tinyvm *t, unsigned *pos, uint32_t *v);

/* Guest CR4 / RIP helpers. */
int tv_get_regs(struct tinyvm *t, struct kvm_regs *r);
int tv_set_regs(struct tinyvm *t, const struct kvm_regs *r);

#endif
