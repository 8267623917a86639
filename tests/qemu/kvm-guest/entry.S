/* SPDX-License-Identifier: MIT */
/*
 * entry.S - the multiboot entry, GDT, IDT and exception stubs of the tiny
 * guest that tests vmce inside QEMU under KVM (see guest.c).
 */
	.set MB_MAGIC, 0x1badb002
	.set MB_FLAGS, 0

	.section .multiboot, "a"
	.align 4
	.long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

	.text
	.code32
	.globl _start
_start:
	cli
	lgdt gdt_desc
	ljmp $0x08, $1f
1:	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movl $stack_top, %esp
	call idt_init
	lidt idt_desc
	call guest_main
2:	cli
	hlt
	jmp 2b

/*
 * Return from an exception taken at CPL 0 without IRET (the instruction
 * emulator of some KVM hosts cannot emulate a protected-mode IRET): the
 * frame EIP, CS, EFLAGS becomes EFLAGS, EIP for POPF and RET.
 */
	.macro exc_return
	pushl %eax
	movl 4(%esp), %eax	/* EIP */
	xchgl %eax, 12(%esp)	/* EIP into the EFLAGS slot, EFLAGS in EAX */
	movl %eax, 8(%esp)	/* EFLAGS into the CS slot */
	popl %eax
	addl $4, %esp
	popfl
	ret
	.endm

/* #GP from RDMSR/WRMSR (2 bytes): count it, skip the instruction. */
	.globl isr_gp
isr_gp:
	addl $4, %esp
	addl $2, (%esp)
	incl gp_count
	exc_return

/* #MC: the C handler reads and clears the banks. */
	.globl isr_mc
isr_mc:
	pusha
	cld
	call mc_handler
	popa
	exc_return

/* The local APIC's LVT CMCI (vector 0x30). */
	.globl isr_cmci
isr_cmci:
	pusha
	cld
	call cmci_handler
	popa
	exc_return

/* Any other exception or vector: report it and stop. */
	.macro other vec
	.globl isr_\vec
isr_\vec:
	pushl $\vec
	call bad_exception
	.endm
	.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,14,15,16,17,19,20,21,22,23,24,25,26,27,28,29,30,31
	other \v
	.endr
	other 63

	.data
	.align 8
gdt:
	.quad 0
	.quad 0x00cf9a000000ffff	/* 0x08: flat 32-bit code */
	.quad 0x00cf92000000ffff	/* 0x10: flat data */
gdt_desc:
	.word gdt_desc - gdt - 1
	.long gdt
	.align 8
	.globl idt
idt:
	.fill 64, 8, 0
idt_desc:
	.word 64 * 8 - 1
	.long idt
	.globl isr_table
isr_table:
	.long isr_0, isr_1, isr_2, isr_3, isr_4, isr_5, isr_6, isr_7
	.long isr_8, isr_9, isr_10, isr_11, isr_12, isr_gp, isr_14, isr_15
	.long isr_16, isr_17, isr_mc, isr_19, isr_20, isr_21, isr_22, isr_23
	.long isr_24, isr_25, isr_26, isr_27, isr_28, isr_29, isr_30, isr_31
	.globl isr_cmci_addr, isr_63_addr
isr_cmci_addr:
	.long isr_cmci
isr_63_addr:
	.long isr_63

	.bss
	.align 16
	.space 16384
stack_top:

	.section .note.GNU-stack, "", @progbits
