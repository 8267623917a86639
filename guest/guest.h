/* SPDX-License-Identifier: MIT */
/*
 * guest.h - the built-in test guest of vmce-vm: shared definitions.
 *
 * A freestanding x86-64 kernel (long mode from the first instruction, see docs/guest.md and the
 * boot protocol in docs/guest-boot.md).  Everything here is compiled with -ffreestanding
 * -nostdlib -mgeneral-regs-only: no libc, no SSE, no red zone.
 */
#ifndef VMCE_GUEST_H
#define VMCE_GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

#define GUEST_MAX_CPUS 64
#define KSTACK_SHIFT   13 /* 8 KiB kernel stack per vCPU */
#define MCSTACK_SHIFT  13 /* 8 KiB #MC (IST1) stack per vCPU */
#define PAGE_SIZE      4096ull

/* Boot protocol. */
#define BOOT_MAGIC	   0x45434d56u /* "VMCE" */
#define BOOT_VERSION	   1u
#define BOOT_FLAG_WORKLOAD (1u << 0)
#define BOOT_FLAG_QUIET	   (1u << 1)
#define PORT_CONSOLE	   0x3f8
#define PORT_EXIT	   0x501
#define EXIT_PANIC	   3

struct boot_info {
	u32 magic;
	u32 version;
	u32 nr_vcpus;
	u32 flags;
	u64 mem_size;
	u64 tsc_khz;
};

/* Segment selectors of the guest's own GDT. */
#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define USER_DS	  0x1b /* 0x18 | RPL 3 */
#define USER_CS	  0x23 /* 0x20 | RPL 3 */
#define TSS_SEL0  0x28 /* 16-byte TSS descriptors follow, one per vCPU */

/* Workload data pages come from this pool (page-aligned GPAs). */
#define POOL_BASE  0x400000ull
#define POOL_PAGES 256u

/* Saved by the exception stubs (entry.S), lowest address first. */
struct regs {
	u64 r15, r14, r13, r12, r11, r10, r9, r8;
	u64 rbp, rdi, rsi, rdx, rcx, rbx, rax;
	u64 vector, error;
	u64 rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};

/* Per-vCPU state.  Lives in a section that is not part of the image: every field is set by
 * cpu_early_init() before use. */
#define DEFER_SIZE 16384 /* ~130 lines: a burst of machine checks outruns the console */
struct percpu {
	u32 id;
	volatile u32 in_mce; /* inside the #MC handler: console lines are deferred */
	u32 msr_busy;	     /* MSR index being accessed | MSR_BUSY_* (for #GP reports) */
	u64 next_poll, next_alive;
	u32 banks;	/* MCG_CAP.Count (at most 32) */
	u32 cmci_owned; /* banks claimed with CTL2.CMCI_EN */
	bool lmce;	/* MCG_EXT_CTL.LMCE_EN set */
	bool quiet;	/* the poller runs quietly (boot flag bit 1) */
	/* Console bytes kept back inside the #MC handler: a ring that the handler appends to
	 * (tail) and the flush outside it drains (head), so that a machine check arriving while
	 * the flush runs loses nothing. */
	volatile u32 defer_head, defer_tail;
	char defer[DEFER_SIZE];
};
#define MSR_BUSY_RD 0x80000000u
#define MSR_BUSY_WR 0x40000000u

/* Global guest state (main.c). */
struct guest {
	u32 nr_vcpus;
	u32 flags;
	u64 mem_size;
	u64 tsc_khz;
	u64 tsc_per_sec;
	bool intel, amd;
	u32 family, model, stepping;
	bool has_mca;		     /* CPUID.1:EDX MCE and MCA */
	bool succor, overflow_recov; /* AMD CPUID 0x80000007 EBX bits 1 and 0 */
};
extern struct guest g;
extern struct percpu percpu[GUEST_MAX_CPUS];

/* Workload (main.c). */
struct workload {
	volatile u32 running;
	u32 cpu;
	volatile u64 page;	  /* GPA of its data page */
	volatile u64 next_kernel; /* TSC at which the ring-3 loop enters the kernel */
};
extern struct workload wl;

/* ---- Instructions ---------------------------------------------------------------------- */

static inline void outb(u16 port, u8 v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline u64 rdtsc(void)
{
	u32 lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((u64)hi << 32) | lo;
}

static inline void cpu_relax(void)
{
	__asm__ volatile("pause" ::: "memory");
}

static inline void cpuid(u32 leaf, u32 *a, u32 *b, u32 *c, u32 *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

static inline u64 read_cr4(void)
{
	u64 v;

	__asm__ volatile("mov %%cr4, %0" : "=r"(v));
	return v;
}

static inline void write_cr4(u64 v)
{
	__asm__ volatile("mov %0, %%cr4" : : "r"(v) : "memory");
}

#define CR4_MCE (1ull << 6)

/* ---- main.c ------------------------------------------------------------------------------ */

void con_printf(struct percpu *pc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void con_flush_deferred(struct percpu *pc);
void guest_panic(struct percpu *pc, const char *prefix, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 3, 4)));
u64 page_alloc(void);
bool page_is_offline(u64 gpa);
int page_offline(u64 gpa); /* 1: newly offlined, 0: already offline, -1: table full */
void workload_restart(struct percpu *pc, struct regs *r);

/* ---- mce.c ------------------------------------------------------------------------------- */

void mce_cpu_init(struct percpu *pc);
void mce_poll(struct percpu *pc, bool boot);
void do_machine_check(struct percpu *pc, struct regs *r);
void mce_mark_online(void);

/* ---- entry.S ----------------------------------------------------------------------------- */

extern u64 isr_table[33]; /* vectors 0-31, then 0x80 */
void enter_user(u64 rip, u64 rsp, u64 arg) __attribute__((noreturn));
extern char user_stack_top[];

#endif /* VMCE_GUEST_H */
