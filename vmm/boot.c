// SPDX-License-Identifier: MIT
/*
 * Setting a VM up: KVM (VM, in-kernel IRQ chip, guest memory), vmce (its VM and the KVM
 * backend), CPUID, the guest image (flat or ELF64, or the built-in guest), the boot memory and
 * the vCPUs' boot state of docs/guest-boot.md.  Called by main.c, and by the incoming migration
 * which then overwrites the guest's state with the source's.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#define MAX_CPUID_ENTS 256

#ifdef VMCE_HAVE_GUEST
extern const unsigned char vmce_guest_image[];
extern const unsigned long vmce_guest_image_size;
#endif

/* ---- the image ------------------------------------------------------------------------------ */

static int load_elf(struct vmm *vm, const uint8_t *img, size_t size, uint64_t *entry,
		    struct vmm_err *err)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;

	if (size < sizeof(*eh) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_ident[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_X86_64)
		return vmm_fail(err, "%s: not a little-endian x86-64 ELF64 file", vm->image_path);
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum > 64 || eh->e_phoff > size ||
	    (size - eh->e_phoff) / sizeof(Elf64_Phdr) < eh->e_phnum)
		return vmm_fail(err, "%s: program headers out of the file", vm->image_path);
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = (const Elf64_Phdr *)(img + eh->e_phoff) + i;

		if (ph->p_type != PT_LOAD)
			continue;
		if (ph->p_filesz > ph->p_memsz || ph->p_offset > size ||
		    size - ph->p_offset < ph->p_filesz || ph->p_paddr < IMAGE_BASE ||
		    ph->p_paddr > vm->mem_size || vm->mem_size - ph->p_paddr < ph->p_memsz)
			return vmm_fail(err,
					"%s: segment %u (paddr 0x%" PRIx64 ", %" PRIu64
					" bytes) is not inside guest memory 0x%" PRIx64
					"-0x%" PRIx64,
					vm->image_path, i, (uint64_t)ph->p_paddr,
					(uint64_t)ph->p_memsz, IMAGE_BASE, vm->mem_size);
		memcpy(vm->mem + ph->p_paddr, img + ph->p_offset, ph->p_filesz);
		memset(vm->mem + ph->p_paddr + ph->p_filesz, 0, ph->p_memsz - ph->p_filesz);
	}
	*entry = eh->e_entry;
	return 0;
}

/* Read --image PATH into a malloc'd buffer. */
static int read_image(struct vmm *vm, uint8_t **buf, size_t *size, struct vmm_err *err)
{
	int fd = open(vm->image_path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0) {
		vmm_fail(err, "%s: %s", vm->image_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > vm->mem_size - IMAGE_BASE) {
		close(fd);
		return vmm_fail(err, "%s: not a regular file of 1 to %" PRIu64 " bytes",
				vm->image_path, vm->mem_size - IMAGE_BASE);
	}
	*size = (size_t)st.st_size;
	*buf = malloc(*size);
	if (!*buf || read(fd, *buf, *size) != (ssize_t)*size) {
		close(fd);
		free(*buf);
		*buf = NULL;
		return vmm_fail(err, "%s: cannot read it", vm->image_path);
	}
	close(fd);
	return 0;
}

static int load_image(struct vmm *vm, uint64_t *entry, struct vmm_err *err)
{
	const uint8_t *img;
	size_t size = 0;
	uint8_t *buf = NULL;
	int ret = 0;

	*entry = IMAGE_BASE;
	if (!vm->image_path) {
#ifdef VMCE_HAVE_GUEST
		img = vmce_guest_image;
		size = vmce_guest_image_size;
#else
		return vmm_fail(err, "this build has no built-in guest: use --image PATH");
#endif
	} else {
		if (read_image(vm, &buf, &size, err))
			return -1;
		img = buf;
	}
	if (size >= 4 && !memcmp(img, ELFMAG, SELFMAG))
		ret = load_elf(vm, img, size, entry, err);
	else if (size > vm->mem_size - IMAGE_BASE)
		ret = vmm_fail(err, "the image (%zu bytes) does not fit in guest memory", size);
	else
		memcpy(vm->mem + IMAGE_BASE, img, size);
	free(buf);
	return ret;
}

/* ---- boot memory and CPUID ------------------------------------------------------------------ */

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
static int build_cpuid(struct vmm *vm, struct vmm_err *err)
{
	bool amd = vm->profile.vendor == VMCE_VENDOR_AMD;
	const char *vendor = amd ? "AuthenticAMD" : "GenuineIntel";
	struct vmce_err verr;

	vm->cpuid = calloc(1, sizeof(*vm->cpuid) + MAX_CPUID_ENTS * sizeof(vm->cpuid->entries[0]));
	if (!vm->cpuid)
		return vmm_fail(err, "CPUID: out of memory");
	vm->cpuid->nent = MAX_CPUID_ENTS;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, vm->cpuid) < 0)
		return vmm_fail(err, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
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
	if (vmce_kvm_cpuid_apply(&vm->profile, vm->cpuid, &verr))
		return vmm_fail(err, "CPUID: %s", verr.msg);
	return 0;
}

/* ---- KVM and vmce --------------------------------------------------------------------------- */

/* The KVM VM with its in-kernel LAPIC (it carries CMCI) and guest memory in one slot. */
static int create_kvm_vm(struct vmm *vm, struct vmm_err *err)
{
	struct kvm_userspace_memory_region region;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		return vmm_fail(err, "/dev/kvm: %s", strerror(errno));
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return vmm_fail(err, "KVM_CREATE_VM: %s", strerror(errno));
	/* Needed on VMX hosts only; harmless elsewhere. */
	(void)ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, 0xfffbd000ul);
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return vmm_fail(err, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
	vm->mem = mmap(NULL, vm->mem_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->mem == MAP_FAILED) {
		vm->mem = NULL;
		return vmm_fail(err, "cannot map %" PRIu64 " bytes of guest memory: %s",
				vm->mem_size, strerror(errno));
	}
	memset(&region, 0, sizeof(region));
	region.memory_size = vm->mem_size;
	region.userspace_addr = (uintptr_t)vm->mem;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		return vmm_fail(err, "KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
	vm->nr_slots = 1;
	return 0;
}

/* vmce's VM (profile, vCPUs, fatal policy, held records, memory map) and its KVM backend. */
static int create_vmce(struct vmm *vm, struct vmm_err *err)
{
	struct vmce_kvm_config kcfg;
	struct vmce_vm_config cfg;
	struct vmce_err verr;

	vmce_vm_config_default(&cfg);
	cfg.profile = vm->profile;
	cfg.nr_vcpus = vm->nr_vcpus;
	cfg.fatal = vm->fatal;
	if (vmce_vm_create(&cfg, &vm->vmce, &verr))
		return vmm_fail(err, "vmce: %s", verr.msg);
	if ((vm->hold_max || vm->hold_timeout_ms) &&
	    vmce_hold_configure(vm->vmce, vm->hold_max, vm->hold_timeout_ms, &verr))
		return vmm_fail(err, "vmce: %s", verr.msg);
	if (vmce_memmap_add(vm->vmce, 0, vm->mem_size, (uintptr_t)vm->mem, VMCE_NO_HPA, &verr))
		return vmm_fail(err, "vmce memory map: %s", verr.msg);
	vmce_kvm_config_default(&kcfg);
	kcfg.vm_fd = vm->vm_fd;
	kcfg.mode = vm->hybrid ? VMCE_KVM_MODE_HYBRID : VMCE_KVM_MODE_USERSPACE;
	if (vmce_kvm_create(vm->vmce, &kcfg, &vm->kvm, &verr))
		return vmm_fail(err, "vmce KVM backend: %s", verr.msg);
	if (vmce_kvm_sigbus_install(&verr))
		fprintf(stderr, "vmce-vm: warning: SIGBUS handler: %s\n", verr.msg);
	return 0;
}

/* ---- vCPUs ---------------------------------------------------------------------------------- */

/* Create vCPU i, map its kvm_run, give it the CPUID table with its APIC ID. */
static int create_vcpu(struct vmm *vm, unsigned i, struct vmm_err *err)
{
	struct vmm_vcpu *c = &vm->vcpu[i];
	int mmap_size;

	c->vm = vm;
	c->index = i;
	c->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)i);
	if (c->fd < 0)
		return vmm_fail(err, "KVM_CREATE_VCPU %u: %s", i, strerror(errno));
	mmap_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size <= 0)
		return vmm_fail(err, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
	c->run_size = (size_t)mmap_size;
	c->run = mmap(NULL, c->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
	if (c->run == MAP_FAILED) {
		c->run = NULL;
		return vmm_fail(err, "mmap of kvm_run: %s", strerror(errno));
	}
	for (unsigned j = 0; j < vm->cpuid->nent; j++) {
		struct kvm_cpuid_entry2 *e = &vm->cpuid->entries[j];

		if (e->function == 1)
			e->ebx = (e->ebx & 0x00ffffffu) | (i << 24);
		if (e->function == 0xb || e->function == 0x1f)
			e->edx = i;
	}
	if (ioctl(c->fd, KVM_SET_CPUID2, vm->cpuid) < 0)
		return vmm_fail(err, "KVM_SET_CPUID2: %s", strerror(errno));
	if (i == 0) {
		int r = ioctl(c->fd, KVM_GET_TSC_KHZ, 0);

		vm->tsc_khz = r > 0 ? (uint64_t)r : 1000000;
	}
	return 0;
}

/* 64-bit mode at the image's entry: RDI = vCPU index, RSI = the boot info. */
static int set_boot_state(struct vmm_vcpu *c, uint64_t entry, struct vmm_err *err)
{
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

	if (ioctl(c->fd, KVM_GET_SREGS, &sregs) < 0)
		return vmm_fail(err, "KVM_GET_SREGS: %s", strerror(errno));
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
	if (ioctl(c->fd, KVM_SET_SREGS, &sregs) < 0)
		return vmm_fail(err, "KVM_SET_SREGS: %s", strerror(errno));
	memset(&regs, 0, sizeof(regs));
	regs.rip = entry;
	regs.rdi = c->index;
	regs.rsi = BOOT_INFO;
	regs.rflags = 0x2;
	if (ioctl(c->fd, KVM_SET_REGS, &regs) < 0)
		return vmm_fail(err, "KVM_SET_REGS: %s", strerror(errno));
	if (ioctl(c->fd, KVM_SET_MP_STATE, &mp) < 0)
		return vmm_fail(err, "KVM_SET_MP_STATE: %s", strerror(errno));
	return 0;
}

int vmm_setup(struct vmm *vm, struct vmm_err *err)
{
	uint64_t entry;

	if (create_kvm_vm(vm, err) || create_vmce(vm, err) || build_cpuid(vm, err) ||
	    load_image(vm, &entry, err))
		return -1;
	vm->tsc_khz = 0;
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		if (create_vcpu(vm, i, err) || set_boot_state(&vm->vcpu[i], entry, err))
			return -1;
	build_boot_memory(vm);
	return 0;
}
