/* SPDX-License-Identifier: MIT */
/*
 * entry.S - entry point, exception stubs and the jump to ring 3 of the built-in test guest.
 *
 * Boot protocol: every vCPU starts here in 64-bit mode with RDI = vCPU index, RSI = boot-info
 * address, RSP = 0 and interrupts disabled.
 */
#define GUEST_MAX_CPUS 64
#define KSTACK_SHIFT 13
#define MCSTACK_SHIFT 13

	.section .text.entry, "ax"
	.code64
	.globl _start
_start:
	cli
	cld
	cmp	$GUEST_MAX_CPUS, %rdi
	jae	1f
	mov	%rdi, %rcx
	inc	%rcx
	shl	$KSTACK_SHIFT, %rcx
	lea	kstacks(%rip), %rsp
	add	%rcx, %rsp
	xor	%ebp, %ebp
	call	guest_main
1:	/* more vCPUs than the guest supports, or guest_main returned: panic exit */
	mov	$0x501, %dx
	mov	$3, %al
	out	%al, %dx
2:	hlt
	jmp	2b

/* Exception/interrupt stubs: push a dummy error code where the CPU pushes none. */
	.text
	.macro ISR_NOERR n
isr\n:
	pushq	$0
	pushq	$\n
	jmp	isr_common
	.endm
	.macro ISR_ERR n
isr\n:
	pushq	$\n
	jmp	isr_common
	.endm

	ISR_NOERR 0
	ISR_NOERR 1
	ISR_NOERR 2
	ISR_NOERR 3
	ISR_NOERR 4
	ISR_NOERR 5
	ISR_NOERR 6
	ISR_NOERR 7
	ISR_ERR   8
	ISR_NOERR 9
	ISR_ERR   10
	ISR_ERR   11
	ISR_ERR   12
	ISR_ERR   13
	ISR_ERR   14
	ISR_NOERR 15
	ISR_NOERR 16
	ISR_ERR   17
	ISR_NOERR 18
	ISR_NOERR 19
	ISR_NOERR 20
	ISR_ERR   21
	ISR_NOERR 22
	ISR_NOERR 23
	ISR_NOERR 24
	ISR_NOERR 25
	ISR_NOERR 26
	ISR_NOERR 27
	ISR_NOERR 28
	ISR_ERR   29
	ISR_ERR   30
	ISR_NOERR 31
	ISR_NOERR 128

/* Saves the general registers in struct regs order (r15 at the lowest address). */
isr_common:
	push	%rax
	push	%rbx
	push	%rcx
	push	%rdx
	push	%rsi
	push	%rdi
	push	%rbp
	push	%r8
	push	%r9
	push	%r10
	push	%r11
	push	%r12
	push	%r13
	push	%r14
	push	%r15
	mov	%rsp, %rdi
	call	trap_dispatch
	pop	%r15
	pop	%r14
	pop	%r13
	pop	%r12
	pop	%r11
	pop	%r10
	pop	%r9
	pop	%r8
	pop	%rbp
	pop	%rdi
	pop	%rsi
	pop	%rdx
	pop	%rcx
	pop	%rbx
	pop	%rax
	add	$16, %rsp
	iretq

/* enter_user(rip, rsp, arg): IRETQ to ring 3 with RDI = arg, RFLAGS = 0x2. */
	.globl enter_user
enter_user:
	pushq	$0x1b
	push	%rsi
	pushq	$0x2
	pushq	$0x23
	push	%rdi
	mov	%rdx, %rdi
	xor	%eax, %eax
	xor	%ebx, %ebx
	xor	%ecx, %ecx
	xor	%edx, %edx
	xor	%esi, %esi
	xor	%ebp, %ebp
	iretq

	.section .rodata
	.balign 8
	.globl isr_table
isr_table:
	.irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,128
	.quad isr\n
	.endr

/* Stacks: not part of the image (the linker script puts .noinit last). */
	.section .noinit, "aw", @nobits
	.balign 4096
	.globl kstacks, mcstacks, user_stack_top
kstacks:
	.skip GUEST_MAX_CPUS << KSTACK_SHIFT
mcstacks:
	.skip GUEST_MAX_CPUS << MCSTACK_SHIFT
	.skip 8192
user_stack_top:
