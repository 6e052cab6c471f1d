// SPDX-License-Identifier: GPL-2.0-only
/*
 * onekvm: CPUID. KVM_GET_SUPPORTED_CPUID offers the host's leaves masked
 * to what onekvm virtualizes; the guest's CPUID instruction answers from
 * the table userspace set with KVM_SET_CPUID2 (zeros for absent leaves,
 * as AMD CPUs do).
 *
 * XSAVE with x87, SSE and AVX state (the guest's XCR0 is loaded around
 * VMRUN, its AVX registers live in the guest fpstate) when the host has it;
 * OSXSAVE follows the guest's CR4 and leaf 0xD.0:EBX its XCR0. PCID/INVPCID
 * are kept (nested paging makes them native). Not offered: SVM/VMX (no
 * nested virtualization), AVX-512, MPX, PKU, XSAVES/XSAVEC (no compacted
 * format, no IA32_XSS), x2APIC and the TSC deadline timer (no in-kernel
 * APIC), MONITOR/MWAIT, RDTSCP/RDPID (TSC_AUX is not switched), machine
 * check architecture, perf counters, speculation-control MSRs, topology
 * extensions.
 */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <asm/processor.h>
#include <asm/fpu/types.h>
#include "x86.h"

#define F(bit)	BIT(bit)

/* CPUID.1:EDX */
static const u32 okvm_1_edx =
	F(0) | F(1) | F(2) | F(3) | F(4) | F(5) | F(6) | F(8) | F(9) |
	F(11) | F(12) | F(13) | F(15) | F(16) | F(17) | F(19) | F(23) |
	F(24) | F(25) | F(26);
/* CPUID.1:ECX (bit 31 "hypervisor" is forced on) */
static const u32 okvm_1_ecx =
	F(0) | F(1) | F(9) | F(13) | F(17) | F(19) | F(20) | F(22) | F(23) |
	F(25) | F(30);
/* CPUID.1:ECX with AVX state: FMA, AVX, F16C (XSAVE is bit 26) */
static const u32 okvm_1_ecx_avx = F(12) | F(28) | F(29);
/* CPUID.7.0:EBX with AVX state: AVX2 */
static const u32 okvm_7_ebx_avx = F(5);
/* CPUID.7.0:EBX */
static const u32 okvm_7_ebx =
	F(0) | F(3) | F(7) | F(8) | F(9) | F(10) | F(18) | F(19) | F(20) |
	F(23) | F(24) | F(29);
/* CPUID.80000001:EDX */
static const u32 okvm_e1_edx =
	F(0) | F(1) | F(2) | F(3) | F(4) | F(5) | F(6) | F(8) | F(9) |
	F(11) | F(12) | F(13) | F(15) | F(16) | F(17) | F(20) | F(22) |
	F(23) | F(24) | F(26) | F(29);
/* CPUID.80000001:ECX */
static const u32 okvm_e1_ecx =
	F(0) | F(4) | F(5) | F(6) | F(7) | F(8);

static void okvm_cpuid_fill(struct kvm_cpuid_entry2 *e, u32 func, u32 idx)
{
	u32 ecx_ok;

	memset(e, 0, sizeof(*e));
	e->function = func;
	e->index = idx;
	cpuid_count(func, idx, &e->eax, &e->ebx, &e->ecx, &e->edx);

	switch (func) {
	case 0:
		e->eax = min(e->eax, okvm_supported_xcr0 ? 0xdU : 7U);
		break;
	case 1:
		e->ebx &= 0x0000ffff;	/* no APIC id, no HT count */
		ecx_ok = okvm_1_ecx;
		if (okvm_supported_xcr0)
			ecx_ok |= F(26);
		if (okvm_supported_xcr0 & XFEATURE_MASK_YMM)
			ecx_ok |= okvm_1_ecx_avx;
		e->ecx = (e->ecx & ecx_ok) | F(31);
		e->edx &= okvm_1_edx;
		break;
	case 6:
		e->eax &= F(2);		/* ARAT */
		e->ebx = 0;
		e->ecx = 0;
		e->edx = 0;
		break;
	case 7:
		e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
		e->eax = 0;
		e->ebx &= okvm_7_ebx |
			  ((okvm_supported_xcr0 & XFEATURE_MASK_YMM) ?
			   okvm_7_ebx_avx : 0);
		e->ecx = 0;
		e->edx = 0;
		break;
	case 0xd:
		e->flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
		if (idx == 0) {
			e->eax = (u32)okvm_supported_xcr0;
			e->edx = okvm_supported_xcr0 >> 32;
			e->ebx = okvm_xstate_size(XFEATURE_MASK_FPSSE);
			e->ecx = okvm_xstate_size(okvm_supported_xcr0);
		} else if (idx == 1) {
			e->eax &= F(0);	/* XSAVEOPT only */
			e->ebx = 0;
			e->ecx = 0;
			e->edx = 0;
		}
		/* idx 2 (AVX): size and offset as the host reports them. */
		break;
	case 0x80000000:
		e->eax = min(e->eax, 0x80000008U);
		break;
	case 0x80000001:
		e->ebx = 0;
		e->ecx &= okvm_e1_ecx;
		e->edx &= okvm_e1_edx;
		break;
	case 0x80000007:
		e->eax = 0;
		e->ebx = 0;
		e->ecx = 0;
		e->edx &= F(8);		/* invariant TSC */
		break;
	case 0x80000008:
		e->eax &= 0xffff;	/* physical and linear address bits */
		e->ebx = 0;
		e->ecx = 0;
		e->edx = 0;
		break;
	default:
		break;
	}
}

/* Builds the supported table into @out (room for @max). Returns its size. */
static int okvm_supported_cpuid(struct kvm_cpuid_entry2 *out, int max)
{
	static const u32 basic[] = { 0, 1, 6, 7 };
	static const u32 ext[] = {
		0x80000000, 0x80000001, 0x80000002, 0x80000003, 0x80000004,
		0x80000005, 0x80000006, 0x80000007, 0x80000008,
	};
	u32 max_basic = cpuid_eax(0), max_ext = cpuid_eax(0x80000000);
	int i, n = 0;

	/* KVM paravirtual leaves: kvmclock and no-op port 0x80 delays. */
	if (n + 2 <= max) {
		memset(&out[n], 0, 2 * sizeof(*out));
		out[n].function = 0x40000000;
		out[n].eax = 0x40000001;
		out[n].ebx = 0x4b4d564b;	/* "KVMKVMKVM\0\0\0" */
		out[n].ecx = 0x564b4d56;
		out[n].edx = 0x4d;
		out[n + 1].function = 0x40000001;
		out[n + 1].eax = F(0) | F(1) | F(3) | F(24);
		n += 2;
	}

	for (i = 0; i < ARRAY_SIZE(basic) && n < max; i++)
		if (basic[i] <= max_basic)
			okvm_cpuid_fill(&out[n++], basic[i], 0);
	if (okvm_supported_xcr0 && max_basic >= 0xd) {
		for (i = 0; i < 3 && n < max; i++)
			if (i < 2 || (okvm_supported_xcr0 & BIT_ULL(i)))
				okvm_cpuid_fill(&out[n++], 0xd, i);
	}
	for (i = 0; i < ARRAY_SIZE(ext) && n < max; i++)
		if (ext[i] <= max_ext)
			okvm_cpuid_fill(&out[n++], ext[i], 0);
	return n;
}

#define OKVM_SUPPORTED_MAX	20

/**
 * okvm_dev_get_supported_cpuid - KVM_GET_SUPPORTED_CPUID
 * @ucpuid: userspace struct kvm_cpuid2; nent is the room it has
 *
 * Return: 0, -E2BIG when nent is too small, -EFAULT.
 */
int okvm_dev_get_supported_cpuid(struct kvm_cpuid2 __user *ucpuid)
{
	struct kvm_cpuid_entry2 table[OKVM_SUPPORTED_MAX];
	struct kvm_cpuid2 hdr;
	int n;

	if (copy_from_user(&hdr, ucpuid, sizeof(hdr)))
		return -EFAULT;
	n = okvm_supported_cpuid(table, ARRAY_SIZE(table));
	if (hdr.nent < n)
		return -E2BIG;
	if (put_user(n, &ucpuid->nent) ||
	    copy_to_user(ucpuid->entries, table, n * sizeof(table[0])))
		return -EFAULT;
	return 0;
}

/**
 * okvm_vcpu_set_cpuid2 - KVM_SET_CPUID2
 * @vcpu: the vCPU
 * @ucpuid: userspace struct kvm_cpuid2
 *
 * Return: 0, -E2BIG above OKVM_MAX_CPUID_ENTRIES entries, -EFAULT, -ENOMEM.
 */
int okvm_vcpu_set_cpuid2(struct okvm_vcpu *vcpu,
			 struct kvm_cpuid2 __user *ucpuid)
{
	struct kvm_cpuid_entry2 *e = NULL;
	struct kvm_cpuid2 hdr;

	if (copy_from_user(&hdr, ucpuid, sizeof(hdr)))
		return -EFAULT;
	if (hdr.nent > OKVM_MAX_CPUID_ENTRIES)
		return -E2BIG;
	if (hdr.nent) {
		e = memdup_user(ucpuid->entries, hdr.nent * sizeof(*e));
		if (IS_ERR(e))
			return PTR_ERR(e);
	}
	kfree(vcpu->arch.cpuid);
	vcpu->arch.cpuid = e;
	vcpu->arch.cpuid_nent = hdr.nent;
	return 0;
}

/**
 * okvm_vcpu_get_cpuid2 - KVM_GET_CPUID2
 * @vcpu: the vCPU
 * @ucpuid: userspace struct kvm_cpuid2; nent is the room it has
 *
 * Return: 0, -E2BIG (nent set to the size needed), -EFAULT.
 */
int okvm_vcpu_get_cpuid2(struct okvm_vcpu *vcpu,
			 struct kvm_cpuid2 __user *ucpuid)
{
	struct kvm_cpuid2 hdr;
	int n = vcpu->arch.cpuid_nent;

	if (copy_from_user(&hdr, ucpuid, sizeof(hdr)))
		return -EFAULT;
	if (hdr.nent < n) {
		if (put_user(n, &ucpuid->nent))
			return -EFAULT;
		return -E2BIG;
	}
	if (put_user(n, &ucpuid->nent) ||
	    copy_to_user(ucpuid->entries, vcpu->arch.cpuid,
			 n * sizeof(*vcpu->arch.cpuid)))
		return -EFAULT;
	return 0;
}

/**
 * okvm_emulate_cpuid - execute CPUID for the guest
 * @vcpu: the vCPU (EAX = leaf, ECX = subleaf)
 *
 * Return: OKVM_EXIT_HANDLED; the caller skips the instruction.
 */
int okvm_emulate_cpuid(struct okvm_vcpu *vcpu)
{
	u32 func = okvm_reg_read(vcpu, OKVM_RAX);
	u32 idx = okvm_reg_read(vcpu, OKVM_RCX);
	const struct kvm_cpuid_entry2 *found = okvm_find_cpuid(vcpu, func, idx);
	u32 eax = 0, ebx = 0, ecx = 0, edx = 0;

	if (found) {
		eax = found->eax;
		ebx = found->ebx;
		ecx = found->ecx;
		edx = found->edx;
	}
	/* What the CPU computes from the current state. */
	if (func == 1) {
		ecx &= ~F(27);
		if (okvm_x86_ops->get_cr(vcpu, 4) & X86_CR4_OSXSAVE)
			ecx |= F(27);
	} else if (func == 0xd && idx == 0 && found) {
		ebx = okvm_xstate_size(vcpu->arch.xcr0);
	}
	okvm_reg_write(vcpu, OKVM_RAX, eax);
	okvm_reg_write(vcpu, OKVM_RBX, ebx);
	okvm_reg_write(vcpu, OKVM_RCX, ecx);
	okvm_reg_write(vcpu, OKVM_RDX, edx);
	return OKVM_EXIT_HANDLED;
}

/**
 * okvm_find_cpuid - the KVM_SET_CPUID2 entry for a leaf
 * @vcpu: the vCPU
 * @func: leaf (EAX)
 * @idx: subleaf (ECX), for entries with KVM_CPUID_FLAG_SIGNIFCANT_INDEX
 *
 * Return: the entry, or NULL.
 */
const struct kvm_cpuid_entry2 *okvm_find_cpuid(struct okvm_vcpu *vcpu,
					       u32 func, u32 idx)
{
	const struct kvm_cpuid_entry2 *e;
	int i;

	for (i = 0; i < vcpu->arch.cpuid_nent; i++) {
		e = &vcpu->arch.cpuid[i];
		if (e->function != func)
			continue;
		if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) &&
		    e->index != idx)
			continue;
		return e;
	}
	return NULL;
}
