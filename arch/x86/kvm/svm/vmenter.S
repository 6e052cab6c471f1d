/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * onekvm: one world switch into an SVM guest and back.
 *
 * Called with interrupts disabled and GIF clear (CLGI). RFLAGS.IF is set
 * around VMRUN only: with GIF clear no interrupt is taken in the host, but
 * a physical interrupt arriving while the guest runs causes an INTR
 * #VMEXIT (QEMU's SVM model needs host IF=1 for that, real CPUs do the
 * same with V_INTR_MASKING). Returns with IF clear and GIF still clear;
 * the caller executes STGI.
 *
 * VMRUN/#VMEXIT switch only RAX, RSP, RIP, RFLAGS, CS/DS/ES/SS, the
 * descriptor tables, CR0/3/4 and EFER. The other GPRs are loaded and saved
 * here, and the state VMLOAD/VMSAVE covers (FS, GS, TR, LDTR with hidden
 * parts, KERNEL_GS_BASE, STAR/LSTAR/CSTAR/SFMASK, SYSENTER_*) is saved for
 * the host in a per-CPU area and exchanged with the guest's VMCB. Between
 * the guest VMLOAD and the host VMLOAD, GS points at guest memory: nothing
 * here touches per-CPU data, and NMIs stay blocked by GIF.
 */
#include <linux/linkage.h>
#include <asm/asm.h>
#include <asm/nospec-branch.h>
#include "vmenter_regs.h"

	.section .text, "ax"

/*
 * void __okvm_svm_vmrun(unsigned long vmcb_pa, unsigned long *regs,
 *			 unsigned long host_save_pa)
 */
SYM_FUNC_START(__okvm_svm_vmrun)
	push	%rbp
	push	%r15
	push	%r14
	push	%r13
	push	%r12
	push	%rbx
	/* Kept on the stack across VMRUN: regs, host save area, VMCB. */
	push	%rsi
	push	%rdx
	push	%rdi

	/* Save the host's VMLOAD/VMSAVE state. */
	mov	%rdx, %rax
	vmsave	%rax

	/* Guest GPRs other than RAX/RSP (those live in the VMCB). */
	mov	%rsi, %rax
	mov	OKVM_OFF_RCX(%rax), %rcx
	mov	OKVM_OFF_RDX(%rax), %rdx
	mov	OKVM_OFF_RBX(%rax), %rbx
	mov	OKVM_OFF_RBP(%rax), %rbp
	mov	OKVM_OFF_RSI(%rax), %rsi
	mov	OKVM_OFF_RDI(%rax), %rdi
	mov	OKVM_OFF_R8(%rax), %r8
	mov	OKVM_OFF_R9(%rax), %r9
	mov	OKVM_OFF_R10(%rax), %r10
	mov	OKVM_OFF_R11(%rax), %r11
	mov	OKVM_OFF_R12(%rax), %r12
	mov	OKVM_OFF_R13(%rax), %r13
	mov	OKVM_OFF_R14(%rax), %r14
	mov	OKVM_OFF_R15(%rax), %r15

	/* RAX = VMCB physical address; the stack now holds host save, regs. */
	pop	%rax
	vmload	%rax
	sti
	vmrun	%rax
	cli
	vmsave	%rax

	/* Store the guest GPRs; RAX and RSP are the host's again. */
	mov	8(%rsp), %rax
	mov	%rcx, OKVM_OFF_RCX(%rax)
	mov	%rdx, OKVM_OFF_RDX(%rax)
	mov	%rbx, OKVM_OFF_RBX(%rax)
	mov	%rbp, OKVM_OFF_RBP(%rax)
	mov	%rsi, OKVM_OFF_RSI(%rax)
	mov	%rdi, OKVM_OFF_RDI(%rax)
	mov	%r8, OKVM_OFF_R8(%rax)
	mov	%r9, OKVM_OFF_R9(%rax)
	mov	%r10, OKVM_OFF_R10(%rax)
	mov	%r11, OKVM_OFF_R11(%rax)
	mov	%r12, OKVM_OFF_R12(%rax)
	mov	%r13, OKVM_OFF_R13(%rax)
	mov	%r14, OKVM_OFF_R14(%rax)
	mov	%r15, OKVM_OFF_R15(%rax)

	/* Host FS/GS/TR/LDTR and syscall MSRs back. */
	pop	%rax
	vmload	%rax

	/*
	 * The guest may have trained the return stack and return predictors:
	 * refill the RSB and untrain returns as the host's mitigations ask.
	 */
	FILL_RETURN_BUFFER %rax, RSB_CLEAR_LOOPS, X86_FEATURE_RSB_VMEXIT
	UNTRAIN_RET

	/* Do not leave guest values in caller-saved registers. */
	xor	%ecx, %ecx
	xor	%edx, %edx
	xor	%esi, %esi
	xor	%edi, %edi
	xor	%r8d, %r8d
	xor	%r9d, %r9d
	xor	%r10d, %r10d
	xor	%r11d, %r11d
	xor	%eax, %eax

	pop	%rsi
	pop	%rbx
	pop	%r12
	pop	%r13
	pop	%r14
	pop	%r15
	pop	%rbp
	RET
SYM_FUNC_END(__okvm_svm_vmrun)
