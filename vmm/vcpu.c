// SPDX-License-Identifier: MIT
/*
 * The KVM side of vmce-vm: guest memory, the boot state of docs/guest-boot.md, CPUID, the vCPU
 * threads and their run loop (console, exit port, MCA MSRs and machine checks through vmce).
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm.h"

#define BOOT_PML4      0x1000ull
#define BOOT_PDPT      0x2000ull
#define BOOT_PD	       0x3000ull /* 4 pages: 0x3000-0x6fff */
#define BOOT_GDT       0x7000ull
#define BOOT_INFO      0x9000ull
#define IMAGE_BASE     ((uint64_t)0x100000)
#define BOOT_MAGIC     0x45434d56u
#define BOOT_F_WORK    (1u << 0)
#define BOOT_F_QUIET   (1u << 1)
#define PORT_CONSOLE   0x3f8
#define PORT_EXIT      0x501
#define MAX_CPUID_ENTS 256

#ifdef VMCE_HAVE_GUEST
extern const unsigned char vmce_guest_image[];
extern const unsigned long vmce_guest_image_size;
#endif

static int load_elf(struct vmm *vm, const uint8_t *img, size_t size, uint64_t *entry)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;

	if (size < sizeof(*eh) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_X86_64) {
		fprintf(stderr, "vmce-vm: %s: not a little-endian x86-64 ELF64 file\n",
			vm->image_path);
		return -1;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum > 64 || eh->e_phoff > size ||
	    (size - eh->e_phoff) / sizeof(Elf64_Phdr) < eh->e_phnum) {
		fprintf(stderr, "vmce-vm: %s: program headers out of the file\n", vm->image_path);
		return -1;
	}
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const Elf64_Phdr *)(img + eh->e_phoff) + i;

		if (ph->p_type != PT_LOAD)
			continue;
		if (ph->p_filesz > ph->p_memsz || ph->p_offset > size ||
		    size - ph->p_offset < ph->p_filesz || ph->p_paddr < IMAGE_BASE ||
		    ph->p_paddr > vm->mem_size || vm->mem_size - ph->p_paddr < ph->p_memsz) {
			fprintf(stderr,
				"vmce-vm: %s: segment %u (paddr 0x%" PRIx64 ", %" PRIu64
				" bytes) is not inside guest memory 0x%" PRIx64 "-0x%" PRIx64 "\n",
				vm->image_path, i, (uint64_t)ph->p_paddr, (uint64_t)ph->p_memsz,
				IMAGE_BASE, vm->mem_size);
			return -1;
		}
		memcpy(vm->mem + ph->p_paddr, img + ph->p_offset, ph->p_filesz);
		memset(vm->mem + ph->p_paddr + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
	}
	*entry = eh->e_entry;
	return 0;
}

static int load_image(struct vmm *vm, uint64_t *entry)
{
	const uint8_t *img;
	size_t size;
	uint8_t *buf = NULL;
	int ret = 0;

	*entry = IMAGE_BASE;
	if (!vm->image_path) {
#ifdef VMCE_HAVE_GUEST
		img = vmce_guest_image;
		size = vmce_guest_image_size;
#else
		fprintf(stderr, "vmce-vm: this build has no built-in guest: use --image PATH\n");
		return -1;
#endif
	} else {
		int fd = open(vm->image_path, O_RDONLY | O_CLOEXEC);
		struct stat st;

		if (fd < 0 || fstat(fd, &st) < 0) {
			fprintf(stderr, "vmce-vm: %s: %s\n", vm->image_path, strerror(errno));
			if (fd >= 0)
				close(fd);
			return -1;
		}
		if (!S_ISREG(st.st_mode) || st.st_size <= 0 ||
		    (uint64_t)st.st_size > vm->mem_size - IMAGE_BASE) {
			fprintf(stderr,
				"vmce-vm: %s: not a regular file of 1 to %" PRIu64 " bytes\n",
				vm->image_path, vm->mem_size - IMAGE_BASE);
			close(fd);
			return -1;
		}
		size = (size_t)st.st_size;
		buf = malloc(size);
		if (!buf || read(fd, buf, size) != (ssize_t)size) {
			fprintf(stderr, "vmce-vm: %s: cannot read it\n", vm->image_path);
			close(fd);
			free(buf);
			return -1;
		}
		close(fd);
		img = buf;
	}
	if (size >= 4 && !memcmp(img, ELFMAG, SELFMAG)) {
		ret = load_elf(vm, img, size, entry);
	} else if (size > vm->mem_size - IMAGE_BASE) {
		fprintf(stderr, "vmce-vm: the image (%zu bytes) does not fit in guest memory\n",
			size);
		ret = -1;
	} else {
		memcpy(vm->mem + IMAGE_BASE, img, size);
	}
	free(buf);
	return ret;
}

static void put64(struct vmm *vm, uint64_t gpa, uint64_t v)
{
	memcpy(vm->mem + gpa, &v, 8);
}

static void put32(struct vmm *vm, uint64_t gpa, uint32_t v)
{
	memcpy(vm->mem + gpa, &v, 4);
}

static void build_boot_memory(struct vmm *vm)
{
	uint32_t flags = (vm->workload ? BOOT_F_WORK : 0) | (vm->quiet_poller ? BOOT_F_QUIET : 0);

	/* Identity map of the first 4 GiB with 2 MiB pages, present|writable|user. */
	put64(vm, BOOT_PML4, BOOT_PDPT | 0x7);
	for (unsigned i = 0; i < 4; i++) {
		put64(vm, BOOT_PDPT + 8 * i, (BOOT_PD + 0x1000ull * i) | 0x7);
		for (unsigned j = 0; j < 512; j++)
			put64(vm, BOOT_PD + 0x1000ull * i + 8 * j,
			      ((uint64_t)(i * 512 + j) << 21) | 0x87);
	}
	/* GDT: null, 0x08 64-bit code DPL0, 0x10 data DPL0. */
	put64(vm, BOOT_GDT, 0);
	put64(vm, BOOT_GDT + 8, 0x00af9b000000ffffull);
	put64(vm, BOOT_GDT + 16, 0x00cf93000000ffffull);
	/* Boot info. */
	put32(vm, BOOT_INFO, BOOT_MAGIC);
	put32(vm, BOOT_INFO + 4, 1);
	put32(vm, BOOT_INFO + 8, vm->nr_vcpus);
	put32(vm, BOOT_INFO + 12, flags);
	put64(vm, BOOT_INFO + 16, vm->mem_size);
	put64(vm, BOOT_INFO + 24, vm->tsc_khz);
}

static void set_vendor(struct kvm_cpuid_entry2 *e, const char *v)
{
	memcpy(&e->ebx, v, 4);
	memcpy(&e->edx, v + 4, 4);
	memcpy(&e->ecx, v + 8, 4);
}

/* The CPUID table: what KVM supports, with the profile's vendor, family and model. */
static int build_cpuid(struct vmm *vm)
{
	bool amd = vm->profile.vendor == VMCE_VENDOR_AMD;
	const char *vendor = amd ? "AuthenticAMD" : "GenuineIntel";
	struct vmce_err err;

	vm->cpuid = calloc(1, sizeof(*vm->cpuid) + MAX_CPUID_ENTS * sizeof(vm->cpuid->entries[0]));
	if (!vm->cpuid)
		return -1;
	vm->cpuid->nent = MAX_CPUID_ENTS;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, vm->cpuid) < 0) {
		fprintf(stderr, "vmce-vm: KVM_GET_SUPPORTED_CPUID: %s\n", strerror(errno));
		return -1;
	}
	for (unsigned i = 0; i < vm->cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &vm->cpuid->entries[i];

		if (e->function == 0) {
			set_vendor(e, vendor);
		} else if (e->function == 0x80000000 && amd) {
			set_vendor(e, vendor);
		} else if (e->function == 1) {
			/* Intel family 6 model 0x55 stepping 4; AMD family 0x17 model 0x31. */
			e->eax = amd ? 0x00830f10 : 0x00050654;
			e->edx |= (1u << 7) | (1u << 14);
		}
	}
	if (vmce_kvm_cpuid_apply(&vm->profile, vm->cpuid, &err)) {
		fprintf(stderr, "vmce-vm: CPUID: %s\n", err.msg);
		return -1;
	}
	return 0;
}

int vmm_setup(struct vmm *vm)
{
	struct kvm_userspace_memory_region region;
	struct vmce_kvm_config kcfg;
	struct vmce_vm_config cfg;
	struct vmce_err err;
	uint64_t entry;
	int r;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		fprintf(stderr, "vmce-vm: /dev/kvm: %s\n", strerror(errno));
		return -1;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		fprintf(stderr, "vmce-vm: KVM_CREATE_VM: %s\n", strerror(errno));
		return -1;
	}
	/* Needed on VMX hosts only; harmless elsewhere. */
	(void)ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul);
	/* The in-kernel LAPIC carries CMCI. */
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		fprintf(stderr, "vmce-vm: KVM_CREATE_IRQCHIP: %s\n", strerror(errno));
		return -1;
	}
	vm->mem = mmap(NULL, vm->mem_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->mem == MAP_FAILED) {
		fprintf(stderr, "vmce-vm: cannot map %" PRIu64 " bytes of guest memory: %s\n",
			vm->mem_size, strerror(errno));
		vm->mem = NULL;
		return -1;
	}
	memset(&region, 0, sizeof(region));
	region.memory_size = vm->mem_size;
	region.userspace_addr = (uintptr_t)vm->mem;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		fprintf(stderr, "vmce-vm: KVM_SET_USER_MEMORY_REGION: %s\n", strerror(errno));
		return -1;
	}
	vm->nr_slots = 1;

	vmce_vm_config_default(&cfg);
	cfg.profile = vm->profile;
	cfg.nr_vcpus = vm->nr_vcpus;
	cfg.fatal = vm->fatal;
	if (vmce_vm_create(&cfg, &vm->vmce, &err)) {
		fprintf(stderr, "vmce-vm: vmce: %s\n", err.msg);
		return -1;
	}
	if ((vm->hold_max || vm->hold_timeout_ms) &&
	    vmce_hold_configure(vm->vmce, vm->hold_max, vm->hold_timeout_ms, &err)) {
		fprintf(stderr, "vmce-vm: vmce: %s\n", err.msg);
		return -1;
	}
	if (vmce_memmap_add(vm->vmce, 0, vm->mem_size, (uintptr_t)vm->mem, VMCE_NO_HPA, &err)) {
		fprintf(stderr, "vmce-vm: vmce memory map: %s\n", err.msg);
		return -1;
	}
	vmce_kvm_config_default(&kcfg);
	kcfg.vm_fd = vm->vm_fd;
	kcfg.mode = vm->hybrid ? VMCE_KVM_MODE_HYBRID : VMCE_KVM_MODE_USERSPACE;
	r = vmce_kvm_create(vm->vmce, &kcfg, &vm->kvm, &err);
	if (r) {
		fprintf(stderr, "vmce-vm: vmce KVM backend: %s\n", err.msg);
		return -1;
	}
	if (vmce_kvm_sigbus_install(&err))
		fprintf(stderr, "vmce-vm: warning: SIGBUS handler: %s\n", err.msg);
	if (build_cpuid(vm))
		return -1;
	if (load_image(vm, &entry))
		return -1;
	vm->tsc_khz = 0;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		struct vmm_vcpu *c = &vm->vcpu[i];
		struct kvm_sregs sregs;
		struct kvm_regs regs;
		struct kvm_mp_state mp = {.mp_state = KVM_MP_STATE_RUNNABLE};
		struct kvm_segment code = {.base = 0,
					   .limit = 0xffffffff,
					   .selector = 0x08,
					   .type = 11,
					   .present = 1,
					   .dpl = 0,
					   .db = 0,
					   .s = 1,
					   .l = 1,
					   .g = 1};
		struct kvm_segment data = code;
		int mmap_size;

		c->vm = vm;
		c->index = i;
		c->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
		if (c->fd < 0) {
			fprintf(stderr, "vmce-vm: KVM_CREATE_VCPU %u: %s\n", i, strerror(errno));
			return -1;
		}
		mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
		if (mmap_size <= 0) {
			fprintf(stderr, "vmce-vm: KVM_GET_VCPU_MMAP_SIZE: %s\n", strerror(errno));
			return -1;
		}
		c->run_size = (size_t)mmap_size;
		c->run = mmap(NULL, c->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
		if (c->run == MAP_FAILED) {
			c->run = NULL;
			fprintf(stderr, "vmce-vm: mmap of kvm_run: %s\n", strerror(errno));
			return -1;
		}
		for (unsigned j = 0; j < vm->cpuid->nent; j++) {
			struct kvm_cpuid_entry2 *e = &vm->cpuid->entries[j];

			if (e->function == 1)
				e->ebx = (e->ebx & 0x00ffffffu) | (i << 24);
			if (e->function == 0xb || e->function == 0x1f)
				e->edx = i;
		}
		if (ioctl(c->fd, KVM_SET_CPUID2, vm->cpuid) < 0) {
			fprintf(stderr, "vmce-vm: KVM_SET_CPUID2: %s\n", strerror(errno));
			return -1;
		}
		if (i == 0) {
			r = ioctl(c->fd, KVM_GET_TSC_KHZ, 0);
			vm->tsc_khz = r > 0 ? (uint64_t)r : 1000000;
		}
		if (ioctl(c->fd, KVM_GET_SREGS, &sregs) < 0) {
			fprintf(stderr, "vmce-vm: KVM_GET_SREGS: %s\n", strerror(errno));
			return -1;
		}
		data.type = 3;
		data.selector = 0x10;
		data.l = 0;
		data.db = 1;
		sregs.cs = code;
		sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
		sregs.gdt.base = BOOT_GDT;
		sregs.gdt.limit = 3 * 8 - 1;
		sregs.idt.base = 0;
		sregs.idt.limit = 0;
		sregs.cr3 = BOOT_PML4;
		sregs.cr4 = 1u << 5;	 /* PAE; MCE clear: the guest sets it */
		sregs.cr0 = 0x80050033u; /* PG|WP|NE|ET|MP|PE */
		sregs.efer = 0x501;	 /* LMA|LME|SCE */
		if (ioctl(c->fd, KVM_SET_SREGS, &sregs) < 0) {
			fprintf(stderr, "vmce-vm: KVM_SET_SREGS: %s\n", strerror(errno));
			return -1;
		}
		memset(&regs, 0, sizeof(regs));
		regs.rip = entry;
		regs.rdi = i;
		regs.rsi = BOOT_INFO;
		regs.rflags = 0x2;
		if (ioctl(c->fd, KVM_SET_REGS, &regs) < 0) {
			fprintf(stderr, "vmce-vm: KVM_SET_REGS: %s\n", strerror(errno));
			return -1;
		}
		if (ioctl(c->fd, KVM_SET_MP_STATE, &mp) < 0) {
			fprintf(stderr, "vmce-vm: KVM_SET_MP_STATE: %s\n", strerror(errno));
			return -1;
		}
	}
	build_boot_memory(vm);
	return 0;
}

static void console_flush(struct vmm_vcpu *c)
{
	struct vmm *vm = c->vm;
	const char *pfx = vm->console_prefix ? vm->console_prefix : "";

	pthread_mutex_lock(&vm->out_lock);
	fprintf(stdout, "%s%.*s\n", pfx, (int)c->line_len, c->line);
	fflush(stdout);
	if (vm->console_file) {
		fprintf(vm->console_file, "%.*s\n", (int)c->line_len, c->line);
		fflush(vm->console_file);
	}
	pthread_mutex_unlock(&vm->out_lock);
	c->line_len = 0;
}

static void console_byte(struct vmm_vcpu *c, uint8_t b)
{
	if (b == '\n') {
		console_flush(c);
		return;
	}
	if (b == '\r')
		return;
	/* A line that fills the buffer is printed in pieces; the buffer always keeps room for
	 * one escaped byte (4 characters) and the terminating NUL. */
	if (c->line_len + 5 > sizeof(c->line))
		console_flush(c);
	/* Non-printable bytes are shown escaped so the console stays one line per line. */
	if (b < 0x20 || b >= 0x7f) {
		c->line_len += (size_t)snprintf(c->line + c->line_len, 5, "\\x%02x", b);
		return;
	}
	c->line[c->line_len++] = (char)b;
}

/* Port I/O: console THR and LSR, the exit port; everything else reads as all-ones. */
static void handle_io(struct vmm_vcpu *c)
{
	struct kvm_run *run = c->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	size_t n = (size_t)run->io.size * run->io.count;

	if (run->io.data_offset > c->run_size || n > c->run_size - run->io.data_offset)
		return;
	if (run->io.direction == KVM_EXIT_IO_OUT) {
		if (run->io.port == PORT_CONSOLE) {
			for (size_t i = 0; i < n; i += run->io.size)
				console_byte(c, data[i]);
		} else if (run->io.port == PORT_EXIT) {
			unsigned v = data[0];

			if (c->line_len)
				console_flush(c);
			if (v == 0)
				vmm_stop(c->vm, VMM_EXIT_OK, "the guest exited with status 0");
			else if (v == 3)
				vmm_stop(c->vm, VMM_EXIT_GUEST_PANIC,
					 "the guest panicked (wrote 3 to port 0x501)");
			else
				vmm_stop(c->vm, VMM_EXIT_GUEST_OTHER,
					 "the guest exited with status %u (port 0x501)", v);
		}
		return;
	}
	if (run->io.port == PORT_CONSOLE + 5)
		memset(data, 0x60, n); /* LSR: THR empty, transmitter idle */
	else
		memset(data, 0xff, n);
}

/*
 * The guest touched poison inside its #MC handler (control "in_handler"): the armed error is
 * injected from this vCPU's thread at an MCA MSR exit that finds MCIP set, as a SIGBUS AR
 * would arrive while the handler runs.
 */
static void armed_inject(struct vmm_vcpu *c)
{
	struct vmce_vcpu_state st;
	struct vmce_err err;

	if (!atomic_load(&c->armed))
		return;
	if (c->run->exit_reason != KVM_EXIT_X86_RDMSR && c->run->exit_reason != KVM_EXIT_X86_WRMSR)
		return;
	vmce_vcpu_get_state(vmce_vm_vcpu(c->vm->vmce, c->index), &st);
	if (!(st.mcg_status & VMCE_MCG_STATUS_MCIP))
		return;
	atomic_store(&c->armed, 0);
	if (vmce_kvm_inject(c->vm->kvm, &c->armed_error, NULL, &err) < 0)
		fprintf(stderr, "vmce-vm: vCPU %u: in-handler injection: %s\n", c->index, err.msg);
}

/*
 * An MMIO exit inside guest RAM: the page is not in any memory slot because it is poisoned (a
 * migrated guest, see migrate.c).  The guest consumed poison: an action-required error for this
 * vCPU through the policy, like a host SIGBUS BUS_MCEERR_AR.  Returns true when handled that way.
 */
static bool poisoned_access(struct vmm_vcpu *c)
{
	struct vmm *vm = c->vm;
	struct vmce_host_error he;
	struct vmce_err err;
	uint64_t gpa = c->run->mmio.phys_addr;

	if (gpa >= vm->mem_size || !vmce_poison_contains(vm->vmce, gpa))
		return false;
	if (!c->run->mmio.is_write)
		memset(c->run->mmio.data, 0xff, sizeof(c->run->mmio.data));
	vmce_host_error_init(&he);
	he.origin = VMCE_ORIGIN_SIGBUS_AR;
	he.cls = VMCE_CLASS_SRAR;
	he.addr_kind = VMCE_ADDR_GPA;
	he.addr = gpa & ~(uint64_t)0xfff;
	he.vcpu = (int)c->index;
	he.local = true; /* a data load on this vCPU: local when the guest enabled LMCE */
	if (vmce_kvm_inject(vm->kvm, &he, NULL, &err) < 0)
		fprintf(stderr, "vmce-vm: vCPU %u: access to poisoned page 0x%" PRIx64 ": %s\n",
			c->index, gpa, err.msg);
	return true;
}

static void *vcpu_thread(void *arg)
{
	struct vmm_vcpu *c = arg;
	struct vmm *vm = c->vm;
	struct vmce_err err;
	sigset_t set;

	/* The kick signal must be deliverable here; everything else goes to the main thread. */
	sigfillset(&set);
	sigdelset(&set, SIGUSR2);
	sigdelset(&set, SIGBUS);
	sigdelset(&set, SIGSEGV);
	pthread_sigmask(SIG_SETMASK, &set, NULL);

	if (vmce_kvm_vcpu_init(vm->kvm, c->index, c->fd, c->run, &c->kv, &err)) {
		vmm_stop(vm, VMM_EXIT_ERROR, "vCPU %u: vmce KVM backend: %s", c->index, err.msg);
		c->kv = NULL;
	}
	pthread_mutex_lock(&vm->lock);
	vm->vcpus_ready++;
	pthread_cond_broadcast(&vm->cond);
	while (vm->vcpus_ready < vm->nr_vcpus && !atomic_load(&vm->stopped))
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);

	while (c->kv && !atomic_load(&vm->stopped)) {
		struct vmce_kvm_status st;
		int r = vmce_kvm_pre_run(c->kv, &st, &err);

		if (r < 0) {
			vmm_stop(vm, VMM_EXIT_ERROR, "vCPU %u: %s", c->index, err.msg);
			break;
		}
		if (r == VMCE_KVM_SHUTDOWN) {
			vmm_stop(vm, VMM_EXIT_VMCE_SHUTDOWN,
				 "vmce shut the guest down on vCPU %u: %s (event %" PRIu64 ")",
				 c->index, st.reason, st.event_seq);
			break;
		}
		if (atomic_load(&vm->stopped))
			break;
		if (atomic_load(&vm->pause_req)) {
			vmm_vcpu_park(vm);
			continue;
		}
		if (ioctl(c->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			vmm_stop(vm, VMM_EXIT_ERROR, "vCPU %u: KVM_RUN: %s", c->index,
				 strerror(errno));
			break;
		}
		if (vmce_kvm_handle_exit(c->kv) == VMCE_KVM_EXIT_HANDLED) {
			armed_inject(c);
			continue;
		}
		switch (c->run->exit_reason) {
		case KVM_EXIT_IO:
			handle_io(c);
			break;
		case KVM_EXIT_MMIO:
			if (poisoned_access(c))
				break;
			if (!c->run->mmio.is_write)
				memset(c->run->mmio.data, 0xff, sizeof(c->run->mmio.data));
			break;
		case KVM_EXIT_HLT:
			/* Only without an in-kernel LAPIC; nothing can wake the vCPU but an #MC. */
			usleep(1000);
			break;
		case KVM_EXIT_INTR:
			break;
		case KVM_EXIT_X86_RDMSR:
			c->run->msr.error = 1; /* an MSR vmce does not own and KVM refused */
			break;
		case KVM_EXIT_X86_WRMSR:
			c->run->msr.error = 1;
			break;
		case KVM_EXIT_SHUTDOWN:
			vmm_stop(vm, VMM_EXIT_TRIPLE_FAULT,
				 "the guest triple-faulted on vCPU %u (KVM_EXIT_SHUTDOWN)",
				 c->index);
			break;
		case KVM_EXIT_FAIL_ENTRY:
			vmm_stop(vm, VMM_EXIT_ERROR,
				 "vCPU %u: KVM_EXIT_FAIL_ENTRY, hardware reason 0x%llx", c->index,
				 (unsigned long long)
					 c->run->fail_entry.hardware_entry_failure_reason);
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			vmm_stop(vm, VMM_EXIT_ERROR, "vCPU %u: KVM internal error, suberror %u",
				 c->index, c->run->internal.suberror);
			break;
		default:
			vmm_stop(vm, VMM_EXIT_ERROR, "vCPU %u: unexpected KVM exit reason %u",
				 c->index, c->run->exit_reason);
			break;
		}
	}
	if (c->line_len)
		console_flush(c);
	if (c->kv)
		vmce_kvm_vcpu_fini(c->kv);
	c->kv = NULL;
	return NULL;
}

int vmm_start_vcpus(struct vmm *vm)
{
	vm->start_ns = vmm_now_ns();
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		int r = pthread_create(&vm->vcpu[i].thread, NULL, vcpu_thread, &vm->vcpu[i]);

		if (r) {
			vmm_stop(vm, VMM_EXIT_ERROR, "cannot create vCPU thread %u: %s", i,
				 strerror(r));
			return -1;
		}
		vm->vcpu[i].thread_started = true;
	}
	return 0;
}

void vmm_join_vcpus(struct vmm *vm)
{
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		if (!vm->vcpu[i].thread_started)
			continue;
		pthread_join(vm->vcpu[i].thread, NULL);
		vm->vcpu[i].thread_started = false;
	}
}

void vmm_teardown(struct vmm *vm)
{
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpu[i].run)
			munmap(vm->vcpu[i].run, vm->vcpu[i].run_size);
		if (vm->vcpu[i].fd > 0)
			close(vm->vcpu[i].fd);
	}
	if (vm->kvm)
		vmce_kvm_destroy(vm->kvm);
	if (vm->vmce)
		vmce_vm_destroy(vm->vmce);
	if (vm->mem)
		munmap(vm->mem, vm->mem_size);
	if (vm->vm_fd > 0)
		close(vm->vm_fd);
	if (vm->kvm_fd > 0)
		close(vm->kvm_fd);
	free(vm->cpuid);
}
