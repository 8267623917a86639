/* SPDX-License-Identifier: MIT */
/*
 * tinyguest.S - a tiny 64-bit guest driven by the host through port I/O (see tinyvm.h).
 *
 * The host loads this flat binary, builds page tables, GDT and IDT, and starts it in long mode
 * at `entry`.  The guest reads commands from port CMD, arguments from port ARG, and writes
 * results to port RES; its #MC handler reports MCG_STATUS, bank 1 and the interrupted RFLAGS
 * to port MCREP; markers (handler entry/exit, unexpected exceptions) go to port MARK.
 * The offsets at the start tell the host where the entry point and the handlers are.
 */
	.set P_CMD, 0xe0
	.set P_ARG, 0xe1
	.set P_RES, 0xe2
	.set P_MARK, 0xe3
	.set P_MCREP, 0xe4

	.code64
	.text
	.globl _start
_start:
	.quad entry - _start
	.quad gp_handler - _start
	.quad mc_handler - _start
	.quad bad_handler - _start
	.quad irq_handler - _start

getarg:
	mov $P_ARG, %dx
	in %dx, %eax
	ret

put:
	mov $P_RES, %dx
	out %eax, %dx
	ret

entry:
	mov $0x80000, %rsp
cmd_loop:
	mov $P_CMD, %dx
	in %dx, %eax
	cmp $1, %eax
	je do_rdmsr
	cmp $2, %eax
	je do_wrmsr
	cmp $3, %eax
	je do_hlt
	cmp $4, %eax
	je do_loop_rdmsr
	cmp $5, %eax
	je do_cli
	cmp $6, %eax
	je do_sti
	cmp $7, %eax
	je do_cr4
	cmp $8, %eax
	je do_spin
	cmp $9, %eax
	je do_rflags
	cmp $10, %eax
	je do_loop_nop
	cmp $11, %eax
	je do_load
	cmp $12, %eax
	je do_rdmsr_pair
	cmp $13, %eax
	je do_store
	mov $0xff, %eax
	mov $P_MARK, %dx
	out %eax, %dx
1:	hlt
	jmp 1b

do_rdmsr:			/* arg: index -> res: gp, lo, hi */
	call getarg
	mov %eax, %ecx
	xor %r15d, %r15d
	rdmsr
	mov %eax, %r8d
	mov %edx, %r9d
	mov %r15d, %eax
	call put
	mov %r8d, %eax
	call put
	mov %r9d, %eax
	call put
	jmp cmd_loop

do_wrmsr:			/* args: index, lo, hi -> res: gp */
	call getarg
	mov %eax, %r10d
	call getarg
	mov %eax, %r11d
	call getarg
	mov %eax, %edx
	mov %r11d, %eax
	mov %r10d, %ecx
	xor %r15d, %r15d
	wrmsr
	mov %r15d, %eax
	call put
	jmp cmd_loop

do_hlt:
	hlt
	jmp cmd_loop

do_loop_rdmsr:			/* args: index, n -> res: low half of the last read (4n RDMSRs) */
	call getarg			/* RDMSRs are not back to back: this host's KVM mis-executes */
	mov %eax, %r10d			/* consecutive RDMSRs (docs/kvm-backend.md) */
	call getarg
	mov %eax, %r13d
2:	mov %r10d, %ecx
	rdmsr
	mov %r10d, %ecx
	rdmsr
	mov %r10d, %ecx
	rdmsr
	mov %r10d, %ecx
	rdmsr
	dec %r13d
	jnz 2b
	call put
	jmp cmd_loop

do_loop_nop:			/* args: index, n -> res: 0 (the same loop without the RDMSRs) */
	call getarg
	mov %eax, %r10d
	call getarg
	mov %eax, %r13d
3:	mov %r10d, %ecx
	mov %r10d, %ecx
	mov %r10d, %ecx
	mov %r10d, %ecx
	dec %r13d
	jnz 3b
	xor %eax, %eax
	call put
	jmp cmd_loop

do_cli:
	cli
	jmp cmd_loop

do_sti:
	sti
	jmp cmd_loop

do_cr4:				/* arg: CR4.MCE 0/1 */
	call getarg
	mov %cr4, %rbx
	and $~0x40, %rbx
	test %eax, %eax
	jz 4f
	or $0x40, %rbx
4:	mov %rbx, %cr4
	jmp cmd_loop

do_spin:			/* arg: n iterations, then res: 0 */
	call getarg
5:	dec %eax
	jnz 5b
	call put
	jmp cmd_loop

do_rflags:			/* res: RFLAGS */
	pushfq
	pop %rax
	call put
	jmp cmd_loop

do_rdmsr_pair:			/* arg: index -> res: gp, lo1, hi1, lo2, hi2 (back-to-back reads) */
	call getarg
	mov %eax, %ecx
	xor %r15d, %r15d
	rdmsr
	mov %eax, %r8d
	mov %edx, %r9d
	rdmsr
	mov %eax, %r10d
	mov %edx, %r11d
	mov %r15d, %eax
	call put
	mov %r8d, %eax
	call put
	mov %r9d, %eax
	call put
	mov %r10d, %eax
	call put
	mov %r11d, %eax
	call put
	jmp cmd_loop

do_store:			/* args: address (below 4 GiB), value -> res: 0 */
	call getarg
	mov %eax, %r10d
	call getarg
	mov %eax, (%r10)
	xor %eax, %eax
	call put
	jmp cmd_loop

do_load:			/* arg: guest-physical address -> res: the 32-bit value there */
	call getarg
	mov %eax, %eax
	mov (%rax), %eax
	call put
	jmp cmd_loop

	/* #GP from RDMSR/WRMSR: flag it in r15 and skip the 2-byte instruction. */
gp_handler:
	mov $1, %r15d
	add $8, %rsp
	addq $2, (%rsp)
	iretq

	.macro report_msr idx
	mov $\idx, %ecx
	rdmsr
	mov %edx, %r8d
	mov $P_MCREP, %dx
	out %eax, %dx
	mov %r8d, %eax
	out %eax, %dx
	.endm

mc_handler:
	push %rax
	push %rcx
	push %rdx
	push %r8
	push %r15
	mov $0x18, %eax
	mov $P_MARK, %dx
	out %eax, %dx
	report_msr 0x17a
	report_msr 0x405
	report_msr 0x406
	report_msr 0x407
	mov 56(%rsp), %rax	/* interrupted RFLAGS: 5 pushes, then RIP, CS, RFLAGS */
	mov $P_MCREP, %dx
	out %eax, %dx
	xor %eax, %eax
	xor %edx, %edx
	mov $0x405, %ecx
	wrmsr
	mov $0x17a, %ecx
	wrmsr
	mov $0x19, %eax
	mov $P_MARK, %dx
	out %eax, %dx
	pop %r15
	pop %r8
	pop %rdx
	pop %rcx
	pop %rax
	iretq

	/* An interrupt (the CMCI vector): marker 0x40, no EOI (the tests raise one). */
irq_handler:
	push %rax
	push %rdx
	mov $0x40, %eax
	mov $P_MARK, %dx
	out %eax, %dx
	pop %rdx
	pop %rax
	iretq

bad_handler:
	mov $0xee, %eax
	mov $P_MARK, %dx
	out %eax, %dx
	mov (%rsp), %rax
	out %eax, %dx
	mov 8(%rsp), %rax
	out %eax, %dx
6:	hlt
	jmp 6b
