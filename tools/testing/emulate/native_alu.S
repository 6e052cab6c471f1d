/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Reference for the emulator's flag computation: run an ALU instruction
 * on the host CPU (x86-64 only).
 *
 * u64 h_native_alu(int op, u64 a, u64 b, int size, u64 *flags)
 *   op: 0 add, 1 or, 2 adc, 3 sbb, 4 and, 5 sub, 6 xor, 7 cmp, 8 test
 *   size: 1, 2, 4 or 8
 *   *flags: in: CF is the carry-in; out: the arithmetic flags (0x8d5)
 *   returns the destination operand afterwards
 */
	.text
	.globl	h_native_alu
	.type	h_native_alu, @function
h_native_alu:
	mov	%rsi, %r9		/* a */
	bsf	%ecx, %ecx		/* size 1/2/4/8 -> 0..3 */
	lea	(%rcx, %rdi, 4), %rdi	/* op * 4 + size index */
	lea	.Ltable(%rip), %r10
	movslq	(%r10, %rdi, 4), %r11
	add	%r10, %r11
	mov	(%r8), %rax
	and	$0x8d5, %rax
	or	$0x202, %rax
	push	%rax
	popfq
	jmp	*%r11

	.irp	mn, add, or, adc, sbb, and, sub, xor, cmp, test
.L\mn\()_1:
	\mn\()b	%dl, %r9b
	jmp	.Ldone
.L\mn\()_2:
	\mn\()w	%dx, %r9w
	jmp	.Ldone
.L\mn\()_4:
	\mn\()l	%edx, %r9d
	jmp	.Ldone
.L\mn\()_8:
	\mn\()q	%rdx, %r9
	jmp	.Ldone
	.endr

.Ldone:
	pushfq
	pop	%rax
	and	$0x8d5, %rax
	mov	%rax, (%r8)
	mov	%r9, %rax
	ret
	.size	h_native_alu, . - h_native_alu

	.section .rodata
	.balign	4
.Ltable:
	.irp	mn, add, or, adc, sbb, and, sub, xor, cmp, test
	.long	.L\mn\()_1 - .Ltable
	.long	.L\mn\()_2 - .Ltable
	.long	.L\mn\()_4 - .Ltable
	.long	.L\mn\()_8 - .Ltable
	.endr

	.section .note.GNU-stack, "", @progbits
