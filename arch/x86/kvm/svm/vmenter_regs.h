/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * onekvm: byte offsets of the guest GPRs in okvm_vcpu_arch.regs, for
 * vmenter.S. They follow enum okvm_reg; svm.c asserts that they match.
 */
#ifndef _ONEKVM_SVM_VMENTER_REGS_H
#define _ONEKVM_SVM_VMENTER_REGS_H

#define OKVM_OFF_RCX	(1 * 8)
#define OKVM_OFF_RDX	(2 * 8)
#define OKVM_OFF_RBX	(3 * 8)
#define OKVM_OFF_RBP	(5 * 8)
#define OKVM_OFF_RSI	(6 * 8)
#define OKVM_OFF_RDI	(7 * 8)
#define OKVM_OFF_R8	(8 * 8)
#define OKVM_OFF_R9	(9 * 8)
#define OKVM_OFF_R10	(10 * 8)
#define OKVM_OFF_R11	(11 * 8)
#define OKVM_OFF_R12	(12 * 8)
#define OKVM_OFF_R13	(13 * 8)
#define OKVM_OFF_R14	(14 * 8)
#define OKVM_OFF_R15	(15 * 8)

#endif /* _ONEKVM_SVM_VMENTER_REGS_H */
