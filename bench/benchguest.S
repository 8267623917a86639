/* SPDX-License-Identifier: MIT */
/*
 * benchguest.S - the benchmarks' tiny 64-bit guest.  It keeps the protocol of the KVM tests'
 * harness (tests/kvm/tinyvm.h: the offsets header, ports CMD/ARG/RES/MARK/MCREP), so that
 * tinyvm.c loads and drives it, and adds what the benchmarks measure:
 *  - timed loops whose only difference is one MCA MSR access per iteration;
 *  - Linux 6.1's MCA MSR access pattern (design §5) for the #MC handler, boot-time MCA init and
 *    one poll, over N banks.
 * It runs on any number of vCPUs: the host gives each its own stack (RSP) and data area (R14):
 *   0(%r14) bank count N (set by the host)   8(%r14) MCA MSR reads    16(%r14) writes
 *  24(%r14) #GP taken                        32(%r14) #MC handled
 * Every MSR instruction is followed by a counter update (this host's KVM mis-executes
 * back-to-back RDMSRs, see docs/kvm-backend.md; real guests store each result too).
 */
	.set P_CMD, 0xe0
	.set P_ARG, 0xe1
	.set P_RES, 0xe2
	.set P_MARK, 0xe3
	.set P_BENCH, 0xe8	/* not a harness port: the benchmark's exit hook sees it */

	.set MCG_CAP, 0x179
	.set MCG_STATUS, 0x17a

	.code64
	.text
	.globl _start
_start:
	.quad entry - _start
	.quad gp_handler - _start
	.quad mc_handler - _start
	.quad bad_handler - _start
	.quad bad_handler - _start

getarg:
	mov $P_ARG, %dx
	in %dx, %eax
	ret

put:
	mov $P_RES, %dx
	out %eax, %dx
	ret

	/* rd: ecx = index; counts the read (eax/edx = value) */
rd:
	rdmsr
	incq 8(%r14)
	ret

	/* wr: ecx = index, edx:eax = value; counts the write */
wr:
	wrmsr
	incq 16(%r14)
	ret

entry:				/* RSP and R14 come from the host */
cmd_loop:
	mov $P_CMD, %dx
	in %dx, %eax
	cmp $3, %eax
	je do_hlt
	cmp $0x20, %eax
	je do_loop
	cmp $0x23, %eax
	je do_boot
	cmp $0x24, %eax
	je do_poll
	cmp $0x25, %eax
	je do_loop_out
	mov $0xff, %eax
	mov $P_MARK, %dx
	out %eax, %dx
1:	hlt
	jmp 1b

do_hlt:
	hlt
	jmp cmd_loop

	/*
	 * args: kind (0 none, 1 RDMSR, 2 WRMSR of 0), index, n -> res: 0.  The three loops execute
	 * the same instructions except the MSR access.
	 */
do_loop:
	call getarg
	mov %eax, %ebx
	call getarg
	mov %eax, %r10d
	call getarg
	mov %eax, %r13d
	cmp $1, %ebx
	je 3f
	cmp $2, %ebx
	je 4f
2:	mov %r10d, %ecx
	xor %eax, %eax
	xor %edx, %edx
	add %eax, %r12d
	dec %r13d
	jnz 2b
	jmp 5f
3:	mov %r10d, %ecx
	xor %eax, %eax
	xor %edx, %edx
	rdmsr
	add %eax, %r12d
	dec %r13d
	jnz 3b
	jmp 5f
4:	mov %r10d, %ecx
	xor %eax, %eax
	xor %edx, %edx
	wrmsr
	add %eax, %r12d
	dec %r13d
	jnz 4b
5:	xor %eax, %eax
	call put
	jmp cmd_loop

	/* args: n -> res: 0.  n OUTs to the benchmark port: n plain exits and re-entries. */
do_loop_out:
	call getarg
	mov %eax, %r13d
	mov $P_BENCH, %dx
6:	out %eax, %dx
	dec %r13d
	jnz 6b
	xor %eax, %eax
	call put
	jmp cmd_loop

	/*
	 * Linux's boot-time MCA init on one CPU (design §5), args: cmci (0/1) -> res: 0.
	 * Reads: MCG_CAP x8, MCG_STATUS x2, MCi_CTL xN, MCi_STATUS x2N (the init-time poll and the
	 * first timer poll), and with CMCI MCi_CTL2 x2N (discover, read back) = 5N+10 (3N+10).
	 * Writes: MCG_STATUS=0, MCi_CTL=~0 xN, MCi_STATUS=0 xN, and with CMCI MCi_CTL2 x2N
	 * (enable, threshold) = 4N+1 (2N+1).
	 */
do_boot:
	call getarg
	mov %eax, %r9d
	mov $8, %r8d
7:	mov $MCG_CAP, %ecx
	call rd
	dec %r8d
	jnz 7b
	mov $MCG_STATUS, %ecx
	call rd
	mov $MCG_STATUS, %ecx
	call rd
	xor %eax, %eax
	xor %edx, %edx
	mov $MCG_STATUS, %ecx
	call wr
	xor %r8d, %r8d			/* bank */
8:	lea 0x400(,%r8,4), %ecx		/* MCi_CTL */
	mov $-1, %eax
	mov $-1, %edx
	call wr
	lea 0x400(,%r8,4), %ecx
	call rd
	lea 0x401(,%r8,4), %ecx		/* MCi_STATUS */
	call rd
	lea 0x401(,%r8,4), %ecx
	xor %eax, %eax
	xor %edx, %edx
	call wr
	lea 0x401(,%r8,4), %ecx
	call rd
	test %r9d, %r9d
	jz 9f
	lea 0x280(%r8), %ecx		/* MCi_CTL2 */
	call rd
	lea 0x280(%r8), %ecx
	mov $0x40000001, %eax
	xor %edx, %edx
	call wr
	lea 0x280(%r8), %ecx
	call rd
	lea 0x280(%r8), %ecx
	mov $0x40000001, %eax
	xor %edx, %edx
	call wr
9:	inc %r8d
	cmp 0(%r14), %r8d
	jb 8b
	xor %eax, %eax
	call put
	jmp cmd_loop

	/* One poll of one CPU: MCG_STATUS x2, MCi_STATUS xN = N+2 reads -> res: 0. */
do_poll:
	mov $MCG_STATUS, %ecx
	call rd
	mov $MCG_STATUS, %ecx
	call rd
	xor %r8d, %r8d
10:	lea 0x401(,%r8,4), %ecx
	call rd
	inc %r8d
	cmp 0(%r14), %r8d
	jb 10b
	xor %eax, %eax
	call put
	jmp cmd_loop

	/* #GP from an MSR access: count it and skip the 2-byte instruction. */
gp_handler:
	incq 24(%r14)
	add $8, %rsp
	addq $2, (%rsp)
	iretq

	/*
	 * Linux's #MC handler, MSR part: MCG_STATUS x2, every bank's STATUS; for each valid bank
	 * STATUS again, ADDR if ADDRV, MISC if MISCV, then STATUS=0; finally MCG_STATUS=0.
	 * Affected CPU: N+7 accesses; bystander without a valid bank: N+3 (design §5).
	 * Its first instruction reports to the host (port P_BENCH, value 0x18).
	 */
mc_handler:
	push %rax
	push %rdx
	mov $0x18, %eax
	mov $P_BENCH, %dx
	out %eax, %dx
	push %rcx
	push %rbx
	push %r8
	push %r11
	mov $MCG_STATUS, %ecx
	call rd
	mov $MCG_STATUS, %ecx
	call rd
	xor %r8d, %r8d
	xor %r11d, %r11d		/* valid banks (bit i) */
11:	lea 0x401(,%r8,4), %ecx
	call rd
	bt $31, %edx			/* VAL */
	jnc 12f
	bts %r8d, %r11d
12:	inc %r8d
	cmp 0(%r14), %r8d
	jb 11b
	xor %r8d, %r8d
13:	bt %r8d, %r11d
	jnc 16f
	lea 0x401(,%r8,4), %ecx
	call rd
	mov %edx, %ebx
	bt $26, %ebx			/* ADDRV (bit 58) */
	jnc 14f
	lea 0x402(,%r8,4), %ecx
	call rd
14:	bt $27, %ebx			/* MISCV (bit 59) */
	jnc 15f
	lea 0x403(,%r8,4), %ecx
	call rd
15:	lea 0x401(,%r8,4), %ecx
	xor %eax, %eax
	xor %edx, %edx
	call wr
16:	inc %r8d
	cmp 0(%r14), %r8d
	jb 13b
	mov $MCG_STATUS, %ecx
	xor %eax, %eax
	xor %edx, %edx
	call wr
	incq 32(%r14)
	pop %r11
	pop %r8
	pop %rbx
	pop %rcx
	pop %rdx
	pop %rax
	iretq

bad_handler:
	mov $0xee, %eax
	mov $P_MARK, %dx
	out %eax, %dx
	mov (%rsp), %rax
	out %eax, %dx
17:	hlt
	jmp 17b
