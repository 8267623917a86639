/* SPDX-License-Identifier: MIT */
/*
 * guest.c - a tiny 32-bit multiboot guest for vmce inside QEMU under KVM.
 *
 * A Linux kernel is far too slow under a KVM that emulates each instruction;
 * this guest boots in a few seconds.  It reads the machine-check MSRs, checks
 * vmce's #GP rules (docs/msr-contract.md), prints every #MC it takes (all
 * banks with VAL, MCG_STATUS) and clears it as Linux does, and answers
 * commands on COM1:
 *   p  poll: print and clear every bank with VAL (as Linux's poller)
 *   c  print the number of #MCs taken
 *   a  enable the local APIC, print its max LVT entry, point LVT CMCI at
 *      vector 0x30 and take interrupts: a CMCI prints and clears the banks
 *   g  toggle a loop of #GP-raising MSR reads (MCG_CTL without CTL_P), so
 *      that errors meet a #GP that KVM has still to inject
 *   q  leave through isa-debug-exit
 * Every output line starts with "VMCE-KVM".
 */
#include <stdint.h>

#define COM1		0x3f8

#define APIC		0xfee00000u
#define CMCI_VECTOR	0x30
#define SPURIOUS_VECTOR 0x3f

extern uint64_t idt[64];
extern uint32_t isr_table[32], isr_cmci_addr, isr_63_addr;
volatile uint32_t gp_count;
static volatile uint32_t mc_count;
static unsigned nbanks;

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void putc_(char c)
{
	while (!(inb(COM1 + 5) & 0x20))
		;
	outb(COM1, (uint8_t)c);
}

static void puts_(const char *s)
{
	while (*s)
		putc_(*s++);
}

static void puthex(uint64_t v)
{
	static const char digits[] = "0123456789abcdef";
	char buf[19];
	int i = 18;

	buf[i] = 0;
	do {
		buf[--i] = digits[v & 0xf];
		v >>= 4;
	} while (v);
	buf[--i] = 'x';
	buf[--i] = '0';
	puts_(&buf[i]);
}

/* RDMSR/WRMSR; *gp is set when the access raised #GP (the stub skips it). */
static uint64_t rdmsr(uint32_t msr, int *gp)
{
	uint32_t lo = 0, hi = 0, before = gp_count;

	__asm__ volatile("rdmsr" : "+a"(lo), "+d"(hi) : "c"(msr) : "memory");
	if (gp)
		*gp = gp_count != before;
	return ((uint64_t)hi << 32) | lo;
}

static int wrmsr(uint32_t msr, uint64_t v)
{
	uint32_t before = gp_count;

	__asm__ volatile("wrmsr"
			 :
			 : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32))
			 : "memory");
	return gp_count != before;
}

static uint64_t gate(uint32_t h)
{
	/* 32-bit interrupt gate, selector 0x08, present, DPL 0 */
	return (h & 0xffff) | (0x08u << 16) | ((uint64_t)0x8e00 << 32) |
	       ((uint64_t)(h >> 16) << 48);
}

void idt_init(void)
{
	for (int i = 0; i < 64; i++)
		idt[i] = gate(i < 32 ? isr_table[i] : isr_63_addr);
	idt[CMCI_VECTOR] = gate(isr_cmci_addr);
}

static volatile uint32_t *apic_reg(uint32_t off)
{
	return (volatile uint32_t *)(APIC + off);
}

void bad_exception(uint32_t vec)
{
	puts_("VMCE-KVM EXCEPTION ");
	puthex(vec);
	puts_("\n");
	for (;;)
		__asm__ volatile("cli; hlt");
}

static void msr_line(const char *name, uint32_t msr)
{
	int gp;
	uint64_t v = rdmsr(msr, &gp);

	puts_("VMCE-KVM MSR ");
	puts_(name);
	puts_(" ");
	if (gp)
		puts_("GP");
	else
		puthex(v);
	puts_("\n");
}

static void gp_line(const char *name, int gp)
{
	puts_("VMCE-KVM GP ");
	puts_(name);
	puts_(gp ? " 1\n" : " 0\n");
}

static void print_bank(const char *what, unsigned b, uint64_t mcg)
{
	puts_("VMCE-KVM ");
	puts_(what);
	puts_(" bank=");
	puthex(b);
	puts_(" status=");
	puthex(rdmsr(0x401 + 4 * b, 0));
	puts_(" addr=");
	puthex(rdmsr(0x402 + 4 * b, 0));
	puts_(" misc=");
	puthex(rdmsr(0x403 + 4 * b, 0));
	puts_(" mcg_status=");
	puthex(mcg);
	puts_("\n");
}

/* #MC: report every valid bank, clear them, then MCG_STATUS (as Linux) */
void mc_handler(void)
{
	uint64_t mcg = rdmsr(0x17a, 0);
	int found = 0;

	mc_count++;
	for (unsigned b = 0; b < nbanks; b++) {
		if (rdmsr(0x401 + 4 * b, 0) >> 63) {
			print_bank("MC", b, mcg);
			wrmsr(0x401 + 4 * b, 0);
			found = 1;
		}
	}
	if (!found) {
		puts_("VMCE-KVM MC none mcg_status=");
		puthex(mcg);
		puts_("\n");
	}
	wrmsr(0x17a, 0);
	/* MCIP is clear: the next #MC is not a nested one */
	puts_("VMCE-KVM MC done\n");
}

static void scan_banks(const char *what)
{
	for (unsigned b = 0; b < nbanks; b++) {
		if (rdmsr(0x401 + 4 * b, 0) >> 63) {
			print_bank(what, b, rdmsr(0x17a, 0));
			wrmsr(0x401 + 4 * b, 0);
		}
	}
	puts_("VMCE-KVM ");
	puts_(what);
	puts_(" done\n");
}

/* LVT CMCI: report and clear the banks, as Linux's CMCI handler */
void cmci_handler(void)
{
	scan_banks("CMCI");
	*apic_reg(0xb0) = 0; /* EOI */
}

static void apic_setup(void)
{
	uint32_t maxlvt;

	/* mask the 8259s (the firmware's timer would come through LINT0) */
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
	*apic_reg(0xf0) = 0x100 | SPURIOUS_VECTOR; /* software enable */
	maxlvt = (*apic_reg(0x30) >> 16) & 0xff;
	puts_("VMCE-KVM APIC maxlvt=");
	puthex(maxlvt);
	puts_("\n");
	if (maxlvt >= 6)
		*apic_reg(0x2f0) = CMCI_VECTOR; /* LVT CMCI, fixed, unmasked */
	__asm__ volatile("sti");
}

void guest_main(void)
{
	uint64_t cap;
	int gp;
	uint32_t cr4;

	puts_("VMCE-KVM START\n");
	cap = rdmsr(0x179, &gp);
	nbanks = (unsigned)(cap & 0xff);
	msr_line("MCG_CAP", 0x179);
	msr_line("MCG_STATUS", 0x17a);
	msr_line("MC0_CTL", 0x400);
	msr_line("MC1_CTL", 0x404);
	msr_line("MC1_STATUS", 0x405);
	msr_line("MC1_CTL2", 0x281);
	msr_line("P5_MC_ADDR", 0x0);
	msr_line("P5_MC_TYPE", 0x1);
	/* QEMU's own MSR filter entry, next to vmce's ranges */
	msr_line("CORE_THREAD_COUNT", 0x35);

	/* docs/msr-contract.md, with the default profile (2 banks, no CTL_P, no LMCE_P) */
	rdmsr(0x400 + 4 * nbanks, &gp);
	gp_line("rd_bank_past_count", gp);
	rdmsr(0x17b, &gp);
	gp_line("rd_mcg_ctl", gp);
	gp_line("wr_mcg_ctl", wrmsr(0x17b, 0));
	gp_line("wr_mcg_cap", wrmsr(0x179, 0));
	gp_line("wr_mcg_status_reserved", wrmsr(0x17a, 1u << 4));
	gp_line("wr_mcg_status_zero", wrmsr(0x17a, 0));
	gp_line("wr_mc1_status_nonzero", wrmsr(0x405, 1));
	gp_line("wr_mc1_status_zero", wrmsr(0x405, 0));
	gp_line("wr_mc1_ctl_ones", wrmsr(0x404, ~0ull));
	rdmsr(0x4d0, &gp);
	gp_line("rd_mcg_ext_ctl", gp);
	gp_line("wr_mc1_ctl2_reserved", wrmsr(0x281, 1u << 31));
	/* CMCI_EN and a threshold of 1: UCNA is forwarded to this bank */
	gp_line("wr_mc1_ctl2_cmci_en", wrmsr(0x281, (1u << 30) | 1));
	msr_line("MC1_CTL2", 0x281);

	/* CR4.MCE: the guest takes #MC (vmce shuts it down otherwise) */
	__asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
	cr4 |= 1u << 6;
	__asm__ volatile("mov %0, %%cr4" : : "r"(cr4));
	puts_("VMCE-KVM READY\n");

	for (int gp_loop = 0;;) {
		if (gp_loop)
			rdmsr(0x17b, 0);
		if (inb(COM1 + 5) & 1) {
			char c = (char)inb(COM1);

			if (c == 'p') {
				scan_banks("POLL");
			} else if (c == 'g') {
				gp_loop = !gp_loop;
				puts_(gp_loop ? "VMCE-KVM GPLOOP on\n" : "VMCE-KVM GPLOOP off\n");
			} else if (c == 'a') {
				apic_setup();
			} else if (c == 'c') {
				puts_("VMCE-KVM COUNT mc=");
				puthex(mc_count);
				puts_(" gp=");
				puthex(gp_count);
				puts_("\n");
			} else if (c == 'q') {
				puts_("VMCE-KVM BYE\n");
				outb(0xf4, 0);
			}
		}
		__asm__ volatile("pause");
	}
}
