/* SPDX-License-Identifier: MIT */
/*
 * main.c - boot, descriptor tables, console, timing and the ring-3 workload of the built-in
 * test guest.  The machine-check code is in mce.c.
 */
#include "guest.h"

#define POLL_MS	 500u
#define ALIVE_MS 2000u

struct guest g;
struct workload wl;
struct percpu percpu[GUEST_MAX_CPUS] __attribute__((section(".noinit")));

static volatile u32 boot_stage;
static volatile u32 con_lock;	 /* 0 free, else owner vCPU + 1 */
static volatile u32 con_partial; /* the lock owner is in the middle of a line */
static volatile u32 panicking;
static u32 alive_tick;

/* ---- Descriptor tables ------------------------------------------------------------------ */

struct tss {
	u32 reserved0;
	u64 rsp[3];
	u64 reserved1;
	u64 ist[7];
	u64 reserved2;
	u16 reserved3;
	u16 iomap_base;
} __attribute__((packed));

static struct tss tss[GUEST_MAX_CPUS];

/* 0x08 kernel code64, 0x10 kernel data, 0x18 user data, 0x20 user code64, then TSSs. */
static u64 gdt[5 + 2 * GUEST_MAX_CPUS] __attribute__((aligned(16))) = {
	0,
	0x00af9a000000ffffull,
	0x00cf92000000ffffull,
	0x00cff2000000ffffull,
	0x00affa000000ffffull,
};

struct idt_entry {
	u16 off_lo;
	u16 sel;
	u8 ist;
	u8 type;
	u16 off_mid;
	u32 off_hi;
	u32 zero;
} __attribute__((packed));

#define IDT_ENTRIES 129 /* 0..31 exceptions, 0x80 the workload's gate */
static struct idt_entry idt[IDT_ENTRIES] __attribute__((aligned(16)));

struct desc_ptr {
	u16 limit;
	u64 base;
} __attribute__((packed));

extern char kstacks[], mcstacks[];

static void idt_set(unsigned vec, u64 handler, u8 ist, u8 dpl)
{
	struct idt_entry *e = &idt[vec];

	e->off_lo = (u16)handler;
	e->sel = KERNEL_CS;
	e->ist = ist;
	e->type = (u8)(0x8e | (dpl << 5)); /* present 64-bit interrupt gate */
	e->off_mid = (u16)(handler >> 16);
	e->off_hi = (u32)(handler >> 32);
	e->zero = 0;
}

static void idt_build(void)
{
	for (unsigned v = 0; v < 32; v++)
		idt_set(v, isr_table[v], v == 18 ? 1 : 0, 0);
	idt_set(0x80, isr_table[32], 0, 3);
}

static void cpu_load_tables(u32 cpu)
{
	struct tss *t = &tss[cpu];
	u64 base = (u64)t;
	u64 limit = sizeof(*t) - 1;
	unsigned slot = 5 + 2 * cpu;
	struct desc_ptr gp = {sizeof(gdt) - 1, (u64)gdt};
	struct desc_ptr ip = {sizeof(idt) - 1, (u64)idt};
	u16 sel = (u16)(TSS_SEL0 + 16 * cpu);

	t->rsp[0] = (u64)kstacks + ((u64)(cpu + 1) << KSTACK_SHIFT);
	t->ist[0] = (u64)mcstacks + ((u64)(cpu + 1) << MCSTACK_SHIFT);
	t->iomap_base = sizeof(*t);
	gdt[slot] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ull << 40) |
		    (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
	gdt[slot + 1] = base >> 32;

	__asm__ volatile("lgdt %0\n\t"
			 "pushq $0x08\n\t"
			 "leaq 1f(%%rip), %%rax\n\t"
			 "pushq %%rax\n\t"
			 "lretq\n"
			 "1:\n\t"
			 "movl $0x10, %%eax\n\t"
			 "movl %%eax, %%ds\n\t"
			 "movl %%eax, %%es\n\t"
			 "movl %%eax, %%ss\n\t"
			 "xorl %%eax, %%eax\n\t"
			 "movl %%eax, %%fs\n\t"
			 "movl %%eax, %%gs\n\t"
			 "ltr %1\n\t"
			 "lidt %2"
			 :
			 : "m"(gp), "r"(sel), "m"(ip)
			 : "rax", "memory");
}

/* ---- What the compiler may call even in a freestanding build ---------------------------- */

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);

void *memset(void *d, int c, size_t n)
{
	u8 *p = d;

	while (n--)
		*p++ = (u8)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	u8 *p = d;
	const u8 *q = s;

	while (n--)
		*p++ = *q++;
	return d;
}

/* ---- Formatting and console ------------------------------------------------------------- */

struct out {
	char *p;
	u32 len, cap;
};

static void out_c(struct out *o, char c)
{
	if (o->len < o->cap)
		o->p[o->len++] = c;
}

static void out_num(struct out *o, u64 v, unsigned base, unsigned width, char pad)
{
	char tmp[24];
	unsigned n = 0;

	do {
		unsigned d = (unsigned)(v % base);
		tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= base;
	} while (v);
	while (n < width--)
		out_c(o, pad);
	while (n)
		out_c(o, tmp[--n]);
}

/* %s %c %d %u %x with an optional '0' flag, a width and 'l'. */
static void vfmt(struct out *o, const char *f, va_list ap)
{
	for (; *f; f++) {
		char pad = ' ';
		unsigned width = 0;
		bool lng = false;

		if (*f != '%') {
			out_c(o, *f);
			continue;
		}
		f++;
		if (*f == '0') {
			pad = '0';
			f++;
		}
		while (*f >= '0' && *f <= '9')
			width = width * 10 + (unsigned)(*f++ - '0');
		if (*f == 'l') {
			lng = true;
			f++;
		}
		switch (*f) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			while (*s)
				out_c(o, *s++);
			break;
		}
		case 'c':
			out_c(o, (char)va_arg(ap, int));
			break;
		case 'd': {
			long v = lng ? va_arg(ap, long) : va_arg(ap, int);
			if (v < 0) {
				out_c(o, '-');
				v = -v;
			}
			out_num(o, (u64)v, 10, width, pad);
			break;
		}
		case 'u':
		case 'x': {
			u64 v = lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned);
			out_num(o, v, *f == 'u' ? 10 : 16, width, pad);
			break;
		}
		case '\0':
			return;
		default:
			out_c(o, *f);
		}
	}
}

/* One string I/O instruction: one exit to the VMM for the whole text, not one per byte. */
static void con_write(const char *s, u32 n)
{
	if (!n)
		return;
	con_partial = s[n - 1] != '\n';
	__asm__ volatile("rep outsb" : "+S"(s), "+c"(n) : "d"((u16)PORT_CONSOLE) : "memory");
}

static void con_lock_acquire(u32 cpu)
{
	u32 expected;

	for (;;) {
		expected = 0;
		if (__atomic_compare_exchange_n(&con_lock, &expected, cpu + 1, false,
						__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			return;
		cpu_relax();
	}
}

static void con_lock_release(void)
{
	__atomic_store_n(&con_lock, 0, __ATOMIC_RELEASE);
}

static void defer_write(struct percpu *pc, u32 head, u32 tail)
{
	while (head != tail) {
		u32 off = head % DEFER_SIZE, n = tail - head;

		if (n > DEFER_SIZE - off)
			n = DEFER_SIZE - off;
		con_write(&pc->defer[off], n);
		head += n;
	}
}

/*
 * Write the lines the #MC handler kept back.  Called outside the handler (from periodic(), the
 * guest's equivalent of Linux's irq_work after the exception returned): a machine check may
 * interrupt it and append more, which the next call writes.
 */
void con_flush_deferred(struct percpu *pc)
{
	u32 tail = pc->defer_tail;

	if (pc->defer_head == tail || con_lock == pc->id + 1)
		return; /* nothing, or this vCPU was interrupted in the middle of a line */
	con_lock_acquire(pc->id);
	defer_write(pc, pc->defer_head, tail);
	__atomic_store_n(&pc->defer_head, tail, __ATOMIC_RELEASE);
	con_lock_release();
}

/* One console line (the newline is added).  Inside the #MC handler the line is kept in the
 * vCPU's buffer and written when the handler ends (no lock wait inside the rendezvous). */
void con_printf(struct percpu *pc, const char *fmt, ...)
{
	char line[200];
	struct out o = {line, 0, sizeof(line) - 1};
	va_list ap;

	va_start(ap, fmt);
	vfmt(&o, fmt, ap);
	va_end(ap);
	line[o.len++] = '\n';

	if (pc->in_mce) {
		u32 tail = pc->defer_tail;

		if (tail - pc->defer_head + o.len <= DEFER_SIZE) {
			for (u32 i = 0; i < o.len; i++)
				pc->defer[(tail + i) % DEFER_SIZE] = line[i];
			__atomic_store_n(&pc->defer_tail, tail + o.len, __ATOMIC_RELEASE);
		}
		return;
	}
	con_lock_acquire(pc->id);
	con_write(line, o.len);
	con_lock_release();
	con_flush_deferred(pc);
}

static void guest_exit(u8 status)
{
	outb(PORT_EXIT, status);
	for (;;)
		__asm__ volatile("cli; hlt");
}

/*
 * Print "<prefix>: panic: <reason>" and end the VM with status 3.  Only the first vCPU to
 * panic prints; the others stop here.  The console lock is taken with a bounded wait: its
 * holder may be a vCPU that cannot release it any more.
 */
void guest_panic(struct percpu *pc, const char *prefix, const char *fmt, ...)
{
	char line[200];
	struct out o = {line, 0, sizeof(line) - 1};
	va_list ap;
	u32 expected = 0;

	if (__atomic_exchange_n(&panicking, 1, __ATOMIC_ACQ_REL))
		for (;;)
			cpu_relax();

	va_start(ap, fmt);
	for (const char *s = prefix; *s; s++)
		out_c(&o, *s);
	for (const char *s = ": panic: "; *s; s++)
		out_c(&o, *s);
	vfmt(&o, fmt, ap);
	va_end(ap);
	line[o.len++] = '\n';

	if (con_lock == pc->id + 1) {
		if (con_partial)
			con_write("\n", 1); /* interrupted in the middle of a line */
	} else {
		u64 until = rdtsc() + g.tsc_per_sec / 100;
		while (!__atomic_compare_exchange_n(&con_lock, &expected, pc->id + 1, false,
						    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
			expected = 0;
			if (rdtsc() > until) {
				if (con_partial)
					con_write("\n", 1);
				break;
			}
			cpu_relax();
		}
	}
	/* Lines the vCPUs kept back inside the #MC handler come first. */
	for (u32 c = 0; c < g.nr_vcpus; c++)
		defer_write(&percpu[c], percpu[c].defer_head, percpu[c].defer_tail);
	con_write(line, o.len);
	guest_exit(EXIT_PANIC);
	__builtin_unreachable();
}

/* ---- Pages ------------------------------------------------------------------------------ */

#define OFFLINE_MAX 256
static volatile u64 offline_tab[OFFLINE_MAX]; /* page GPA + 1 (0: slot not filled yet) */
static volatile u32 offline_nr;
static volatile u32 pool_next;

bool page_is_offline(u64 gpa)
{
	u64 pfn = gpa & ~(PAGE_SIZE - 1);
	u32 n = __atomic_load_n(&offline_nr, __ATOMIC_ACQUIRE);

	if (n > OFFLINE_MAX)
		n = OFFLINE_MAX;
	for (u32 i = 0; i < n; i++)
		if (offline_tab[i] == pfn + 1)
			return true;
	return false;
}

int page_offline(u64 gpa)
{
	u64 pfn = gpa & ~(PAGE_SIZE - 1);
	u32 slot;

	if (page_is_offline(pfn))
		return 0;
	slot = __atomic_fetch_add(&offline_nr, 1, __ATOMIC_ACQ_REL);
	if (slot >= OFFLINE_MAX)
		return -1;
	offline_tab[slot] = pfn + 1;
	return 1;
}

/* A fresh workload page: never handed out before, not offline, inside guest memory. */
u64 page_alloc(void)
{
	for (;;) {
		u32 i = __atomic_fetch_add(&pool_next, 1, __ATOMIC_RELAXED);
		u64 gpa = POOL_BASE + (u64)(i % POOL_PAGES) * PAGE_SIZE;

		if (i >= POOL_PAGES * 4)
			return 0;
		if (gpa + PAGE_SIZE <= g.mem_size && !page_is_offline(gpa))
			return gpa;
	}
}

/* ---- Periodic work ---------------------------------------------------------------------- */

static void periodic(struct percpu *pc)
{
	u64 now = rdtsc();

	con_flush_deferred(pc);
	if ((long)(now - pc->next_poll) >= 0) {
		mce_poll(pc, false);
		pc->next_poll = now + g.tsc_per_sec / 1000 * POLL_MS;
	}
	if (pc->id == 0 && (long)(now - pc->next_alive) >= 0) {
		pc->next_alive += g.tsc_per_sec / 1000 * ALIVE_MS;
		if ((long)(now - pc->next_alive) >= 0)
			pc->next_alive = now + g.tsc_per_sec / 1000 * ALIVE_MS;
		con_printf(pc, "guest: alive tick=%u", ++alive_tick);
	}
	if (wl.running && wl.cpu == pc->id) {
		u64 next = pc->next_poll;
		if (pc->id == 0 && (long)(pc->next_alive - next) < 0)
			next = pc->next_alive;
		wl.next_kernel = next;
	}
}

/* ---- The ring-3 workload ---------------------------------------------------------------- */

/*
 * Runs in ring 3 with its data page in RDI.  It reads and writes the page and enters the
 * kernel (UD2, see trap_dispatch()) only when the kernel asked for it (wl.next_kernel, TSC), so that it spends
 * nearly all of its time in user mode.
 */
static void __attribute__((noreturn, noinline, used)) workload_main(volatile u64 *page)
{
	u64 n = 0;

	for (;;) {
		for (unsigned i = 0; i < 64; i++)
			page[i] = page[i] + n + i;
		n++;
		if ((long)(rdtsc() - wl.next_kernel) >= 0)
			__asm__ volatile("ud2" : : : "memory"); /* the workload's system call */
	}
}

static void __attribute__((noreturn)) workload_start(struct percpu *pc)
{
	u64 page = page_alloc();

	if (!page)
		guest_panic(pc, "guest", "no memory for the workload");
	wl.cpu = pc->id;
	wl.page = page;
	periodic(pc);
	wl.running = 1;
	periodic(pc);
	con_printf(pc, "workload: start cpu=%u page=0x%lx", pc->id, (unsigned long)page);
	enter_user((u64)workload_main, (u64)user_stack_top, page);
}

/* Kill the workload (its ring-3 frame is r) and start it again on a fresh page. */
void workload_restart(struct percpu *pc, struct regs *r)
{
	u64 page = page_alloc();

	if (!page)
		guest_panic(pc, "guest", "no memory to restart the workload");
	wl.page = page;
	r->rip = (u64)workload_main;
	r->rsp = (u64)user_stack_top;
	r->rflags = 0x2;
	r->rdi = page;
	r->rax = r->rbx = r->rcx = r->rdx = r->rsi = r->rbp = 0;
	con_printf(pc, "workload: restarted cpu=%u page=0x%lx", pc->id, (unsigned long)page);
}

/* ---- Traps ------------------------------------------------------------------------------ */

static struct percpu *this_cpu(void)
{
	/* The kernel stack, or the #MC stack, tells which vCPU this is. */
	u64 sp = (u64)__builtin_frame_address(0);
	u64 k = (u64)kstacks, m = (u64)mcstacks;

	if (sp >= m && sp < m + ((u64)GUEST_MAX_CPUS << MCSTACK_SHIFT))
		return &percpu[(sp - m) >> MCSTACK_SHIFT];
	if (sp >= k && sp < k + ((u64)GUEST_MAX_CPUS << KSTACK_SHIFT))
		return &percpu[(sp - k) >> KSTACK_SHIFT];
	return &percpu[0];
}

static const char *const exc_names[32] = {
	"#DE", "#DB", "NMI", "#BP", "#OF",   "#BR", "#UD", "#NM", "#DF", "CSO", "#TS",
	"#NP", "#SS", "#GP", "#PF", "exc15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

void trap_dispatch(struct regs *r);
void trap_dispatch(struct regs *r)
{
	struct percpu *pc = this_cpu();

	if (r->vector == 18) {
		do_machine_check(pc, r);
		return;
	}
	/*
	 * The workload's one system call is UD2 in ring 3 (INT n from ring 3 is not emulated by
	 * every KVM that runs this guest by instruction emulation; exceptions are).  INT 0x80 is
	 * accepted too.
	 */
	if ((r->cs & 3) == 3 &&
	    (r->vector == 0x80 || (r->vector == 6 && *(const volatile u16 *)r->rip == 0x0b0f))) {
		if (r->vector == 6)
			r->rip += 2;
		periodic(pc);
		if (wl.running && wl.cpu == pc->id && page_is_offline(wl.page))
			workload_restart(pc, r); /* its page went offline (SRAO/deferred) */
		return;
	}
	if (r->vector == 13 && pc->msr_busy)
		guest_panic(pc, "mce", "MCA architectural violation: #GP on %s 0x%x",
			    (pc->msr_busy & MSR_BUSY_RD) ? "rdmsr" : "wrmsr",
			    pc->msr_busy & 0xffffu);
	if (r->vector == 14) {
		u64 cr2;
		__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
		guest_panic(pc, "guest", "#PF cpu=%u rip=0x%lx cr2=0x%lx error=0x%lx", pc->id,
			    (unsigned long)r->rip, (unsigned long)cr2, (unsigned long)r->error);
	}
	guest_panic(pc, "guest", "exception %s (vector %lu) cpu=%u rip=0x%lx error=0x%lx",
		    r->vector < 32 && exc_names[r->vector] ? exc_names[r->vector] : "?",
		    (unsigned long)r->vector, pc->id, (unsigned long)r->rip,
		    (unsigned long)r->error);
}

/* ---- Boot ------------------------------------------------------------------------------- */

static void detect_cpu(void)
{
	u32 a, b, c, d, max_ext;

	cpuid(0, &a, &b, &c, &d);
	/* "GenuineIntel": EBX "Genu", EDX "ineI", ECX "ntel"; "AuthenticAMD": "Auth" "enti" "cAMD" */
	g.intel = b == 0x756e6547 && d == 0x49656e69 && c == 0x6c65746e;
	g.amd = b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;
	cpuid(1, &a, &b, &c, &d);
	g.family = (a >> 8) & 0xf;
	g.model = (a >> 4) & 0xf;
	g.stepping = a & 0xf;
	if (g.family == 0xf)
		g.family += (a >> 20) & 0xff;
	if (g.family >= 6)
		g.model |= ((a >> 16) & 0xf) << 4;
	g.has_mca = (d & (1u << 7)) && (d & (1u << 14));
	cpuid(0x80000000, &max_ext, &b, &c, &d);
	if (g.amd && max_ext >= 0x80000007) {
		cpuid(0x80000007, &a, &b, &c, &d);
		g.overflow_recov = b & 1;
		g.succor = (b >> 1) & 1;
	}
}

void guest_main(u64 cpu, const struct boot_info *bi) __attribute__((noreturn));
void guest_main(u64 cpu, const struct boot_info *bi)
{
	struct percpu *pc = &percpu[cpu];

	pc->id = (u32)cpu;
	pc->in_mce = 0;
	pc->msr_busy = 0;
	pc->defer_head = pc->defer_tail = 0;
	pc->banks = 0;
	pc->cmci_owned = 0;
	pc->lmce = false;
	pc->quiet = false;

	if (cpu == 0) {
		g.tsc_per_sec = 1000000000ull; /* until the boot info says otherwise */
		g.nr_vcpus = 1;
		if (bi->magic != BOOT_MAGIC || bi->version != BOOT_VERSION)
			guest_panic(pc, "guest", "bad boot info: magic 0x%x version %u", bi->magic,
				    bi->version);
		if (bi->nr_vcpus == 0 || bi->nr_vcpus > GUEST_MAX_CPUS)
			guest_panic(pc, "guest", "bad boot info: nr_vcpus %u (1..%u)", bi->nr_vcpus,
				    GUEST_MAX_CPUS);
		if (bi->tsc_khz == 0 || bi->mem_size < POOL_BASE + 16 * PAGE_SIZE)
			guest_panic(pc, "guest", "bad boot info: tsc_khz %lu mem_size 0x%lx",
				    (unsigned long)bi->tsc_khz, (unsigned long)bi->mem_size);
		g.nr_vcpus = bi->nr_vcpus;
		g.flags = bi->flags;
		g.mem_size = bi->mem_size;
		g.tsc_khz = bi->tsc_khz;
		g.tsc_per_sec = bi->tsc_khz * 1000;
		detect_cpu();
		idt_build();
		con_printf(pc, "guest: boot cpus=%u vendor=%s", g.nr_vcpus,
			   g.intel ? "intel"
			   : g.amd ? "amd"
				   : "unknown");
		__atomic_store_n(&boot_stage, 1, __ATOMIC_RELEASE);
	} else {
		while (__atomic_load_n(&boot_stage, __ATOMIC_ACQUIRE) == 0)
			cpu_relax();
		if (cpu >= g.nr_vcpus)
			guest_panic(pc, "guest", "vCPU %lu started but boot info says %u vCPUs",
				    (unsigned long)cpu, g.nr_vcpus);
	}

	cpu_load_tables(pc->id);
	mce_cpu_init(pc);

	pc->next_poll = rdtsc() + g.tsc_per_sec / 1000 * POLL_MS;
	pc->next_alive = rdtsc() + g.tsc_per_sec / 1000 * ALIVE_MS;
	if ((g.flags & BOOT_FLAG_WORKLOAD) && pc->id == g.nr_vcpus - 1)
		workload_start(pc);

	for (;;) {
		periodic(pc);
		for (unsigned i = 0; i < 100; i++)
			cpu_relax();
	}
}
