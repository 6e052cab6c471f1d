// SPDX-License-Identifier: GPL-2.0-only
/*
 * onekvm: model-specific registers a Linux guest uses.
 *
 * MSRs held in the vendor's guest state (syscall/sysenter MSRs, FS/GS
 * bases, PAT, TSC via its offset) are asked of the vendor first; the rest
 * live in struct okvm_vcpu_arch. Unknown MSRs raise #GP in the guest and
 * fail KVM_GET_MSRS/KVM_SET_MSRS at that entry.
 */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <asm/msr-index.h>
#include "x86.h"

#define OKVM_APIC_BASE_BSP	BIT_ULL(8)
#define OKVM_APIC_BASE_EXTD	BIT_ULL(10)
#define OKVM_APIC_BASE_ENABLE	BIT_ULL(11)
#define OKVM_APIC_DEFAULT	0xfee00000ULL
#define OKVM_MAX_IO_MSRS	256
#define OKVM_MTRR_VAR_BASE	0x200
#define OKVM_MSR_MTRR_CAP	0xfe
#define OKVM_MSR_MTRR_DEF_TYPE	0x2ff

#define OKVM_MTRR_CAP	(OKVM_NR_VAR_MTRR | BIT(8) | BIT(10))
#define OKVM_MTRR_DEF	(BIT(11) | 6)	/* enabled, default write-back */

static const u32 okvm_fixed_mtrrs[OKVM_NR_FIXED_MTRR] = {
	0x250, 0x258, 0x259, 0x268, 0x269, 0x26a, 0x26b, 0x26c, 0x26d,
	0x26e, 0x26f,
};

/* What KVM_GET_MSR_INDEX_LIST reports: MSRs worth saving and restoring. */
static const u32 okvm_msr_list[] = {
	MSR_EFER, MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SYSCALL_MASK,
	MSR_KERNEL_GS_BASE, MSR_FS_BASE, MSR_GS_BASE,
	MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP,
	MSR_IA32_TSC, MSR_TSC_AUX, MSR_IA32_CR_PAT, MSR_IA32_APICBASE,
	MSR_IA32_MISC_ENABLE, OKVM_MSR_MTRR_DEF_TYPE, MSR_K7_HWCR,
	0x4b564d00, 0x4b564d01,	/* kvmclock wall clock, system time */
};

static int okvm_fixed_mtrr_index(u32 msr)
{
	int i;

	for (i = 0; i < OKVM_NR_FIXED_MTRR; i++)
		if (okvm_fixed_mtrrs[i] == msr)
			return i;
	return -1;
}

/**
 * okvm_msr_reset - power-on values of the software MSRs
 * @vcpu: the vCPU
 */
void okvm_msr_reset(struct okvm_vcpu *vcpu)
{
	struct okvm_vcpu_arch *a = &vcpu->arch;

	a->apic_base = OKVM_APIC_DEFAULT | OKVM_APIC_BASE_ENABLE;
	if (vcpu->vcpu_id == 0)
		a->apic_base |= OKVM_APIC_BASE_BSP;
	a->misc_enable = MSR_IA32_MISC_ENABLE_FAST_STRING;
	a->tsc_aux = 0;
	a->hwcr = 0;
	a->de_cfg = 0;
	a->mtrr_def_type = OKVM_MTRR_DEF;
	memset(a->mtrr_fixed, 0, sizeof(a->mtrr_fixed));
	memset(a->mtrr_var, 0, sizeof(a->mtrr_var));
}

/**
 * okvm_get_msr - read an MSR for the guest or for userspace
 * @vcpu: the vCPU
 * @index: MSR number
 * @data: the value
 * @host: the access comes from KVM_GET_MSRS
 *
 * Return: 0, or 1 when the MSR is not emulated (#GP for the guest).
 */
int okvm_get_msr(struct okvm_vcpu *vcpu, u32 index, u64 *data, bool host)
{
	struct okvm_vcpu_arch *a = &vcpu->arch;
	int i, r;

	r = okvm_x86_ops->get_msr(vcpu, index, data);
	if (r == -ENOENT)
		r = okvm_kvmclock_get_msr(vcpu, index, data);
	if (r != -ENOENT)
		return r ? 1 : 0;

	switch (index) {
	case MSR_EFER:
		*data = okvm_x86_ops->get_efer(vcpu);
		return 0;
	case MSR_TSC_AUX:
		*data = a->tsc_aux;
		return 0;
	case MSR_IA32_APICBASE:
		*data = a->apic_base;
		return 0;
	case MSR_IA32_MISC_ENABLE:
		*data = a->misc_enable;
		return 0;
	case OKVM_MSR_MTRR_CAP:
		*data = OKVM_MTRR_CAP;
		return 0;
	case OKVM_MSR_MTRR_DEF_TYPE:
		*data = a->mtrr_def_type;
		return 0;
	case MSR_K7_HWCR:
		*data = a->hwcr;
		return 0;
	case MSR_AMD64_DE_CFG:
		*data = a->de_cfg;
		return 0;
	case MSR_AMD64_PATCH_LEVEL:
	case MSR_IA32_DEBUGCTLMSR:
	case MSR_AMD64_SYSCFG:
	case MSR_AMD64_NB_CFG:
		*data = 0;
		return 0;
	}
	if (index >= OKVM_MTRR_VAR_BASE &&
	    index < OKVM_MTRR_VAR_BASE + 2 * OKVM_NR_VAR_MTRR) {
		*data = a->mtrr_var[index - OKVM_MTRR_VAR_BASE];
		return 0;
	}
	i = okvm_fixed_mtrr_index(index);
	if (i >= 0) {
		*data = a->mtrr_fixed[i];
		return 0;
	}
	return 1;
}

static bool okvm_mtrr_type_ok(u8 t)
{
	return t == 0 || t == 1 || t == 4 || t == 5 || t == 6;
}

static bool okvm_set_efer_ok(struct okvm_vcpu *vcpu, u64 efer, bool host)
{
	u64 allowed = EFER_SCE | EFER_LME | EFER_LMA | EFER_NX;
	u64 old = okvm_x86_ops->get_efer(vcpu);

	if (efer & ~allowed)
		return false;
	if (host)
		return true;
	/* LMA is read-only; LME cannot change while paging is on. */
	if ((efer ^ old) & EFER_LMA)
		return false;
	if (((efer ^ old) & EFER_LME) &&
	    (okvm_x86_ops->get_cr(vcpu, 0) & X86_CR0_PG))
		return false;
	return true;
}

/**
 * okvm_set_msr - write an MSR for the guest or for userspace
 * @vcpu: the vCPU
 * @index: MSR number
 * @data: the value
 * @host: the access comes from KVM_SET_MSRS
 *
 * Return: 0, or 1 when the MSR or the value is refused (#GP for the guest).
 */
int okvm_set_msr(struct okvm_vcpu *vcpu, u32 index, u64 data, bool host)
{
	struct okvm_vcpu_arch *a = &vcpu->arch;
	int i, r;

	r = okvm_x86_ops->set_msr(vcpu, index, data);
	if (r == -ENOENT)
		r = okvm_kvmclock_set_msr(vcpu, index, data);
	if (r != -ENOENT)
		return r ? 1 : 0;

	switch (index) {
	case MSR_EFER:
		if (!okvm_set_efer_ok(vcpu, data, host))
			return 1;
		okvm_x86_ops->set_efer(vcpu, data);
		return 0;
	case MSR_TSC_AUX:
		if (data >> 32)
			return 1;
		a->tsc_aux = data;
		return 0;
	case MSR_IA32_APICBASE:
		/* No x2APIC; the BSP bit is set by userspace only. */
		if (data & (OKVM_APIC_BASE_EXTD | 0xfff00000000006ffULL))
			return 1;
		if (!host && ((data ^ a->apic_base) & OKVM_APIC_BASE_BSP))
			return 1;
		a->apic_base = data;
		return 0;
	case MSR_IA32_MISC_ENABLE:
		a->misc_enable = data;
		return 0;
	case OKVM_MSR_MTRR_DEF_TYPE:
		if ((data & ~0xcffULL) || !okvm_mtrr_type_ok(data & 0xff))
			return 1;
		a->mtrr_def_type = data;
		return 0;
	case MSR_K7_HWCR:
		a->hwcr = data;
		return 0;
	case MSR_AMD64_DE_CFG:
		a->de_cfg = data;
		return 0;
	case MSR_AMD64_PATCH_LEVEL:
	case MSR_IA32_DEBUGCTLMSR:
	case MSR_AMD64_SYSCFG:
	case MSR_AMD64_NB_CFG:
		return 0;
	case OKVM_MSR_MTRR_CAP:
		return host ? 0 : 1;
	}
	if (index >= OKVM_MTRR_VAR_BASE &&
	    index < OKVM_MTRR_VAR_BASE + 2 * OKVM_NR_VAR_MTRR) {
		int n = index - OKVM_MTRR_VAR_BASE;

		if (!(n & 1) && !okvm_mtrr_type_ok(data & 0xff))
			return 1;
		a->mtrr_var[n] = data;
		return 0;
	}
	i = okvm_fixed_mtrr_index(index);
	if (i >= 0) {
		int b;

		for (b = 0; b < 8; b++)
			if (!okvm_mtrr_type_ok(data >> (8 * b)))
				return 1;
		a->mtrr_fixed[i] = data;
		return 0;
	}
	return 1;
}

/**
 * okvm_emulate_rdmsr - RDMSR intercepted: ECX selects, EDX:EAX gets it
 * @vcpu: the vCPU
 *
 * Return: OKVM_EXIT_HANDLED, with #GP queued for an unknown MSR.
 */
int okvm_emulate_rdmsr(struct okvm_vcpu *vcpu)
{
	u32 index = okvm_reg_read(vcpu, OKVM_RCX);
	u64 data;

	if (okvm_get_msr(vcpu, index, &data, false)) {
		okvm_queue_exception_e(vcpu, OKVM_GP_VECTOR, 0);
		return OKVM_EXIT_HANDLED;
	}
	okvm_reg_write(vcpu, OKVM_RAX, (u32)data);
	okvm_reg_write(vcpu, OKVM_RDX, data >> 32);
	return OKVM_EXIT_HANDLED;
}

/**
 * okvm_emulate_wrmsr - WRMSR intercepted: ECX selects, EDX:EAX is written
 * @vcpu: the vCPU
 *
 * Return: OKVM_EXIT_HANDLED, with #GP queued when refused.
 */
int okvm_emulate_wrmsr(struct okvm_vcpu *vcpu)
{
	u32 index = okvm_reg_read(vcpu, OKVM_RCX);
	u64 data = (u32)okvm_reg_read(vcpu, OKVM_RAX) |
		   ((u64)(u32)okvm_reg_read(vcpu, OKVM_RDX) << 32);

	if (okvm_set_msr(vcpu, index, data, false))
		okvm_queue_exception_e(vcpu, OKVM_GP_VECTOR, 0);
	return OKVM_EXIT_HANDLED;
}

/**
 * okvm_dev_get_msr_index_list - KVM_GET_MSR_INDEX_LIST
 * @ulist: userspace struct kvm_msr_list; nmsrs is the room it has
 *
 * Return: 0, -E2BIG (nmsrs set to the size needed), -EFAULT.
 */
int okvm_dev_get_msr_index_list(struct kvm_msr_list __user *ulist)
{
	u32 n = ARRAY_SIZE(okvm_msr_list), room;

	if (get_user(room, &ulist->nmsrs))
		return -EFAULT;
	if (put_user(n, &ulist->nmsrs))
		return -EFAULT;
	if (room < n)
		return -E2BIG;
	if (copy_to_user(ulist->indices, okvm_msr_list, sizeof(okvm_msr_list)))
		return -EFAULT;
	return 0;
}

static int okvm_msrs_io(struct okvm_vcpu *vcpu, struct kvm_msrs __user *umsrs,
			bool set)
{
	struct kvm_msr_entry *e;
	struct kvm_msrs hdr;
	u32 i;
	int r;

	if (copy_from_user(&hdr, umsrs, sizeof(hdr)))
		return -EFAULT;
	if (hdr.nmsrs > OKVM_MAX_IO_MSRS)
		return -E2BIG;
	if (!hdr.nmsrs)
		return 0;
	e = memdup_user(umsrs->entries, hdr.nmsrs * sizeof(*e));
	if (IS_ERR(e))
		return PTR_ERR(e);
	for (i = 0; i < hdr.nmsrs; i++) {
		if (set)
			r = okvm_set_msr(vcpu, e[i].index, e[i].data, true);
		else
			r = okvm_get_msr(vcpu, e[i].index, &e[i].data, true);
		if (r)
			break;
	}
	r = i;
	if (!set && copy_to_user(umsrs->entries, e, i * sizeof(*e)))
		r = -EFAULT;
	kfree(e);
	return r;
}

/**
 * okvm_vcpu_get_msrs - KVM_GET_MSRS
 * @vcpu: the vCPU
 * @umsrs: userspace struct kvm_msrs
 *
 * Return: the number of MSRs read (stops at the first unknown one),
 * -E2BIG, -EFAULT, -ENOMEM.
 */
int okvm_vcpu_get_msrs(struct okvm_vcpu *vcpu, struct kvm_msrs __user *umsrs)
{
	return okvm_msrs_io(vcpu, umsrs, false);
}

/**
 * okvm_vcpu_set_msrs - KVM_SET_MSRS
 * @vcpu: the vCPU
 * @umsrs: userspace struct kvm_msrs
 *
 * Return: the number of MSRs written (stops at the first refused one),
 * -E2BIG, -EFAULT, -ENOMEM.
 */
int okvm_vcpu_set_msrs(struct okvm_vcpu *vcpu, struct kvm_msrs __user *umsrs)
{
	return okvm_msrs_io(vcpu, umsrs, true);
}
