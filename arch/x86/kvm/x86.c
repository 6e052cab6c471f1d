// SPDX-License-Identifier: GPL-2.0-only
/*
 * onekvm: the x86 architecture hooks called by virt/kvm: module and VM
 * lifecycle, the vCPU ioctls, and the KVM_RUN loop around the vendor's
 * single entry (okvm_x86_ops.run).
 */
#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/uaccess.h>
#include <asm/processor.h>
#include <asm/processor-flags.h>
#include <asm/msr-index.h>
#include <asm/fpu/api.h>
#include <asm/fpu/types.h>
#include <asm/fpu/xstate.h>
#include <asm/fpu/xcr.h>
#include <onekvm/compat.h>
#include "x86.h"

const struct okvm_x86_ops *okvm_x86_ops;
/* The host's XCR0 (constant) and the part of it guests may enable. */
u64 okvm_host_xcr0;
u64 okvm_supported_xcr0;

/* Guest state components onekvm switches: x87, SSE and AVX. */
#define OKVM_XCR0_SWITCHED	(XFEATURE_MASK_FP | XFEATURE_MASK_SSE | \
				 XFEATURE_MASK_YMM)

/**
 * okvm_arch_init - module load: pick and probe the vendor backend
 *
 * Return: 0, or -ENODEV when the CPU cannot run guests.
 */
int okvm_arch_init(void)
{
	if (boot_cpu_data.x86_vendor != X86_VENDOR_AMD &&
	    boot_cpu_data.x86_vendor != X86_VENDOR_HYGON) {
		pr_err("onekvm: only AMD SVM is supported\n");
		return -ENODEV;
	}
	if (boot_cpu_has(X86_FEATURE_XSAVE) && boot_cpu_has(X86_FEATURE_OSXSAVE)) {
		okvm_host_xcr0 = xgetbv(XCR_XFEATURE_ENABLED_MASK);
		okvm_supported_xcr0 = okvm_host_xcr0 & OKVM_XCR0_SWITCHED;
		/* AVX needs SSE; without x87+SSE offer no XSAVE at all. */
		if ((okvm_supported_xcr0 & XFEATURE_MASK_FPSSE) !=
		    XFEATURE_MASK_FPSSE)
			okvm_supported_xcr0 = 0;
	}
	okvm_x86_ops = &okvm_svm_ops;
	return okvm_x86_ops->hardware_setup();
}

/**
 * okvm_arch_exit - module unload
 */
void okvm_arch_exit(void)
{
	okvm_x86_ops->hardware_unsetup();
}

/**
 * okvm_arch_hardware_get - enable virtualization on every CPU
 *
 * Return: 0, or -EBUSY when another hypervisor holds it.
 */
int okvm_arch_hardware_get(void)
{
	return okvm_x86_ops->hardware_enable();
}

/**
 * okvm_arch_hardware_put - disable it again, restoring what was found
 */
void okvm_arch_hardware_put(void)
{
	okvm_x86_ops->hardware_disable();
}

/**
 * okvm_arch_check_extension - KVM_CHECK_EXTENSION for x86 capabilities
 * @kvm: the VM, or NULL on the system fd
 * @ext: KVM_CAP_*
 *
 * Return: a positive value when supported, else 0.
 */
int okvm_arch_check_extension(struct okvm *kvm, long ext)
{
	switch (ext) {
	case KVM_CAP_SET_TSS_ADDR:
	case KVM_CAP_SET_IDENTITY_MAP_ADDR:
	case KVM_CAP_EXT_CPUID:
	case KVM_CAP_MP_STATE:
	case KVM_CAP_USER_NMI:
	case KVM_CAP_VCPU_EVENTS:
	case KVM_CAP_INTR_SHADOW:
	case KVM_CAP_DEBUGREGS:
	case KVM_CAP_XSAVE:
	case KVM_CAP_READONLY_MEM:
	case KVM_CAP_INTERNAL_ERROR_DATA:
		return 1;
	case KVM_CAP_XCRS:
		return !!okvm_supported_xcr0;
	default:
		return 0;
	}
}

/**
 * okvm_arch_dev_ioctl - x86 system fd ioctls
 * @ioctl: the request
 * @arg: its argument
 *
 * Return: the ioctl's result, -EINVAL when unknown (as upstream x86).
 */
long okvm_arch_dev_ioctl(unsigned int ioctl, unsigned long arg)
{
	void __user *argp = (void __user *)arg;

	switch (ioctl) {
	case KVM_GET_SUPPORTED_CPUID:
		return okvm_dev_get_supported_cpuid(argp);
	case KVM_GET_MSR_INDEX_LIST:
		return okvm_dev_get_msr_index_list(argp);
	default:
		return -EINVAL;
	}
}

/**
 * okvm_arch_vm_init - x86 state of a new VM
 * @kvm: the VM
 *
 * Return: 0 or -ENOMEM.
 */
int okvm_arch_vm_init(struct okvm *kvm)
{
	okvm_kvmclock_vm_init(kvm);
	return okvm_x86_ops->vm_init(kvm);
}

/**
 * okvm_arch_vm_destroy - free it, after all vCPUs and memslots are gone
 * @kvm: the VM
 */
void okvm_arch_vm_destroy(struct okvm *kvm)
{
	okvm_x86_ops->vm_destroy(kvm);
}

/**
 * okvm_arch_vm_ioctl - x86 VM fd ioctls
 * @kvm: the VM
 * @ioctl: the request
 * @arg: its argument
 *
 * Return: the ioctl's result, -ENOTTY when unknown.
 */
long okvm_arch_vm_ioctl(struct okvm *kvm, unsigned int ioctl,
			unsigned long arg)
{
	long r;
	u64 addr;

	switch (ioctl) {
	case KVM_SET_TSS_ADDR:
		/* Only used by VMX without unrestricted guest: recorded. */
		if (arg > (unsigned int)(-3 * PAGE_SIZE))
			return -EINVAL;
		kvm->arch.tss_addr = arg;
		return 0;
	case KVM_SET_IDENTITY_MAP_ADDR:
		mutex_lock(&kvm->lock);
		/*
		 * As KVM: only before the first vCPU exists, and that is
		 * checked before the argument is read (EINVAL, not EFAULT).
		 */
		r = -EINVAL;
		if (kvm->nr_vcpus)
			goto out_unlock;
		r = -EFAULT;
		if (copy_from_user(&addr, (void __user *)arg, sizeof(addr)))
			goto out_unlock;
		kvm->arch.identity_map_addr = addr;
		r = 0;
out_unlock:
		mutex_unlock(&kvm->lock);
		return r;
	default:
		return -ENOTTY;
	}
}

/**
 * okvm_arch_memslot_remove - unmap a slot from the nested page tables
 * @kvm: the VM, mmu_lock held
 * @slot: the slot, already unlinked
 */
void okvm_arch_memslot_remove(struct okvm *kvm, struct okvm_memslot *slot)
{
	okvm_x86_ops->memslot_remove(kvm, slot);
}

static void okvm_vcpu_reset(struct okvm_vcpu *vcpu)
{
	struct okvm_vcpu_arch *a = &vcpu->arch;

	memset(a->regs, 0, sizeof(a->regs));
	/* EDX holds the processor signature after reset. */
	a->regs[OKVM_RDX] = 0x600;
	memset(&a->exception, 0, sizeof(a->exception));
	memset(&a->interrupt, 0, sizeof(a->interrupt));
	memset(&a->nmi, 0, sizeof(a->nmi));
	a->nmi_masked = false;
	memset(a->db, 0, sizeof(a->db));
	a->dr6 = 0xffff0ff0;
	a->dr7 = 0x400;
	a->mp_state = KVM_MP_STATE_RUNNABLE;
	a->kvmclock_msr = 0;
	a->xcr0 = XFEATURE_MASK_FP;
	okvm_msr_reset(vcpu);
	okvm_emul_reset(vcpu);
	okvm_x86_ops->vcpu_reset(vcpu);
}

/**
 * okvm_arch_vcpu_create - x86 state of a new vCPU
 * @vcpu: the vCPU (vcpu_id and kvm set)
 *
 * Return: 0 or -ENOMEM.
 */
int okvm_arch_vcpu_create(struct okvm_vcpu *vcpu)
{
	int r;

	if (!fpu_alloc_guest_fpstate(&vcpu->arch.guest_fpu))
		return -ENOMEM;
	r = okvm_emul_alloc(vcpu);
	if (r)
		goto free_fpu;
	r = okvm_x86_ops->vcpu_create(vcpu);
	if (r)
		goto free_emul;
	okvm_vcpu_reset(vcpu);
	return 0;

free_emul:
	okvm_emul_free(vcpu);
free_fpu:
	fpu_free_guest_fpstate(&vcpu->arch.guest_fpu);
	return r;
}

/**
 * okvm_arch_vcpu_destroy - free the x86 state of a vCPU
 * @vcpu: the vCPU
 */
void okvm_arch_vcpu_destroy(struct okvm_vcpu *vcpu)
{
	okvm_x86_ops->vcpu_free(vcpu);
	okvm_emul_free(vcpu);
	kfree(vcpu->arch.cpuid);
	vcpu->arch.cpuid = NULL;
	fpu_free_guest_fpstate(&vcpu->arch.guest_fpu);
}

/**
 * okvm_internal_error - report KVM_EXIT_INTERNAL_ERROR
 * @vcpu: the vCPU
 * @suberror: KVM_INTERNAL_ERROR_*
 * @ndata: number of @data words (at most 16)
 * @data: details
 *
 * Return: OKVM_EXIT_TO_USER.
 */
int okvm_internal_error(struct okvm_vcpu *vcpu, u32 suberror, int ndata,
			const u64 *data)
{
	struct kvm_run *run = vcpu->run;
	int i;

	run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
	run->internal.suberror = suberror;
	ndata = min_t(int, ndata, ARRAY_SIZE(run->internal.data));
	run->internal.ndata = ndata;
	for (i = 0; i < ndata; i++)
		run->internal.data[i] = data[i];
	return OKVM_EXIT_TO_USER;
}

static void okvm_get_regs(struct okvm_vcpu *vcpu, struct kvm_regs *r)
{
	unsigned long *g = vcpu->arch.regs;

	memset(r, 0, sizeof(*r));
	r->rax = g[OKVM_RAX];
	r->rbx = g[OKVM_RBX];
	r->rcx = g[OKVM_RCX];
	r->rdx = g[OKVM_RDX];
	r->rsi = g[OKVM_RSI];
	r->rdi = g[OKVM_RDI];
	r->rsp = g[OKVM_RSP];
	r->rbp = g[OKVM_RBP];
	r->r8 = g[OKVM_R8];
	r->r9 = g[OKVM_R9];
	r->r10 = g[OKVM_R10];
	r->r11 = g[OKVM_R11];
	r->r12 = g[OKVM_R12];
	r->r13 = g[OKVM_R13];
	r->r14 = g[OKVM_R14];
	r->r15 = g[OKVM_R15];
	r->rip = vcpu->arch.rip;
	r->rflags = vcpu->arch.rflags;
}

static void okvm_set_regs(struct okvm_vcpu *vcpu, const struct kvm_regs *r)
{
	unsigned long *g = vcpu->arch.regs;

	g[OKVM_RAX] = r->rax;
	g[OKVM_RBX] = r->rbx;
	g[OKVM_RCX] = r->rcx;
	g[OKVM_RDX] = r->rdx;
	g[OKVM_RSI] = r->rsi;
	g[OKVM_RDI] = r->rdi;
	g[OKVM_RSP] = r->rsp;
	g[OKVM_RBP] = r->rbp;
	g[OKVM_R8] = r->r8;
	g[OKVM_R9] = r->r9;
	g[OKVM_R10] = r->r10;
	g[OKVM_R11] = r->r11;
	g[OKVM_R12] = r->r12;
	g[OKVM_R13] = r->r13;
	g[OKVM_R14] = r->r14;
	g[OKVM_R15] = r->r15;
	vcpu->arch.rip = r->rip;
	/* Reserved bits: 1 is fixed, 3/5/15 and 22+ read as zero. */
	vcpu->arch.rflags = (r->rflags & 0x3f7fd5ULL) | X86_EFLAGS_FIXED;
	okvm_make_request(vcpu, OKVM_REQ_EVENT);
}

static const int okvm_sregs_seg[] = {
	OKVM_SEG_CS, OKVM_SEG_DS, OKVM_SEG_ES, OKVM_SEG_FS,
	OKVM_SEG_GS, OKVM_SEG_SS, OKVM_SEG_TR, OKVM_SEG_LDTR,
};

static struct kvm_segment *okvm_sregs_field(struct kvm_sregs *s, int i)
{
	struct kvm_segment *f[] = {
		&s->cs, &s->ds, &s->es, &s->fs, &s->gs, &s->ss, &s->tr,
		&s->ldt,
	};

	return f[i];
}

static void okvm_get_sregs(struct okvm_vcpu *vcpu, struct kvm_sregs *s)
{
	const struct okvm_x86_ops *ops = okvm_x86_ops;
	struct okvm_event *irq = &vcpu->arch.interrupt;
	int i;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < ARRAY_SIZE(okvm_sregs_seg); i++)
		ops->get_segment(vcpu, okvm_sregs_field(s, i),
				 okvm_sregs_seg[i]);
	ops->get_dt(vcpu, &s->gdt, false);
	ops->get_dt(vcpu, &s->idt, true);
	s->cr0 = ops->get_cr(vcpu, 0);
	s->cr2 = ops->get_cr(vcpu, 2);
	s->cr3 = ops->get_cr(vcpu, 3);
	s->cr4 = ops->get_cr(vcpu, 4);
	s->cr8 = ops->get_cr(vcpu, 8);
	s->efer = ops->get_efer(vcpu);
	s->apic_base = vcpu->arch.apic_base;
	if (irq->injected)
		s->interrupt_bitmap[irq->nr / 64] |= 1ULL << (irq->nr % 64);
}

/* CR4 bits a guest may have (the CPU still refuses what it lacks). */
#define OKVM_CR4_VALID	(X86_CR4_VME | X86_CR4_PVI | X86_CR4_TSD | \
			 X86_CR4_DE | X86_CR4_PSE | X86_CR4_PAE | \
			 X86_CR4_MCE | X86_CR4_PGE | X86_CR4_PCE | \
			 X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT | \
			 X86_CR4_UMIP | X86_CR4_LA57 | X86_CR4_FSGSBASE | \
			 X86_CR4_PCIDE | X86_CR4_OSXSAVE | X86_CR4_SMEP | \
			 X86_CR4_SMAP | X86_CR4_PKE)

static int okvm_set_sregs(struct okvm_vcpu *vcpu, struct kvm_sregs *s)
{
	const struct okvm_x86_ops *ops = okvm_x86_ops;
	int i, b;

	bool lm = (s->efer & EFER_LME) && (s->cr0 & X86_CR0_PG);

	/* The checks KVM makes (kvm_is_valid_sregs), before touching state. */
	if ((s->cr0 & X86_CR0_PG) && !(s->cr0 & X86_CR0_PE))
		return -EINVAL;
	if ((s->cr0 & X86_CR0_NW) && !(s->cr0 & X86_CR0_CD))
		return -EINVAL;
	if ((s->cr0 >> 32) || (s->cr4 & ~OKVM_CR4_VALID) ||
	    (s->cr8 & ~0xfULL))
		return -EINVAL;
	if (s->efer & ~(EFER_SCE | EFER_LME | EFER_LMA | EFER_NX))
		return -EINVAL;
	if (lm && (!(s->cr4 & X86_CR4_PAE) || !(s->efer & EFER_LMA)))
		return -EINVAL;
	if (!lm && ((s->efer & EFER_LMA) || s->cs.l))
		return -EINVAL;
	if (okvm_set_msr(vcpu, MSR_IA32_APICBASE, s->apic_base, true))
		return -EINVAL;

	ops->set_cr(vcpu, 0, s->cr0);
	ops->set_cr(vcpu, 2, s->cr2);
	ops->set_cr(vcpu, 3, s->cr3);
	ops->set_cr(vcpu, 4, s->cr4);
	ops->set_cr(vcpu, 8, s->cr8);
	ops->set_efer(vcpu, s->efer);
	for (i = 0; i < ARRAY_SIZE(okvm_sregs_seg); i++)
		ops->set_segment(vcpu, okvm_sregs_field(s, i),
				 okvm_sregs_seg[i]);
	ops->set_dt(vcpu, &s->gdt, false);
	ops->set_dt(vcpu, &s->idt, true);

	for (i = 0; i < ARRAY_SIZE(s->interrupt_bitmap); i++) {
		if (!s->interrupt_bitmap[i])
			continue;
		b = __ffs64(s->interrupt_bitmap[i]);
		vcpu->arch.interrupt.injected = true;
		vcpu->arch.interrupt.pending = false;
		vcpu->arch.interrupt.nr = i * 64 + b;
		break;
	}
	okvm_make_request(vcpu, OKVM_REQ_EVENT);
	return 0;
}

/* The state components KVM_GET/SET_XSAVE carry: x87, SSE (+ AVX). */
static u64 okvm_uabi_xfeatures(void)
{
	return okvm_supported_xcr0 | XFEATURE_MASK_FPSSE;
}

/* Guest FPU state as a standard-format XSAVE image. */
static int okvm_get_xsave(struct okvm_vcpu *vcpu, struct kvm_xsave *x)
{
	memset(x, 0, sizeof(*x));
	fpu_copy_guest_fpstate_to_uabi(&vcpu->arch.guest_fpu, x->region,
				       sizeof(x->region), okvm_uabi_xfeatures(),
				       0);
	return 0;
}

static int okvm_set_xsave(struct okvm_vcpu *vcpu, const struct kvm_xsave *x)
{
	u32 pkru = 0;

	return fpu_copy_uabi_to_guest_fpstate(&vcpu->arch.guest_fpu,
					      x->region, okvm_uabi_xfeatures(),
					      &pkru);
}

/**
 * okvm_xstate_size - size of the standard-format XSAVE area for @xcr0
 * @xcr0: enabled state components (x87, SSE, AVX at most)
 *
 * Return: bytes, as CPUID.0xD.0:EBX reports them for that XCR0.
 */
u32 okvm_xstate_size(u64 xcr0)
{
	u32 size = 512 + 64, eax, ebx, ecx, edx;

	if (xcr0 & XFEATURE_MASK_YMM) {
		cpuid_count(0xd, XFEATURE_YMM, &eax, &ebx, &ecx, &edx);
		size = max(size, ebx + eax);
	}
	return size;
}

/**
 * okvm_guest_supported_xcr0 - XCR0 bits the guest may set
 * @vcpu: the vCPU
 *
 * Return: what its CPUID leaf 0xD.0 (KVM_SET_CPUID2) lists and onekvm
 * switches, plus x87, which is always valid.
 */
u64 okvm_guest_supported_xcr0(struct okvm_vcpu *vcpu)
{
	const struct kvm_cpuid_entry2 *e = okvm_find_cpuid(vcpu, 0xd, 0);
	u64 mask = 0;

	if (e)
		mask = ((u64)e->edx << 32 | e->eax) & okvm_supported_xcr0;
	return mask | XFEATURE_MASK_FP;
}

/**
 * okvm_set_xcr0 - XSETBV and KVM_SET_XCRS: validate and set the guest XCR0
 * @vcpu: the vCPU
 * @xcr0: the new value
 *
 * Return: 0, or -EINVAL for a value the CPU would refuse with #GP.
 */
int okvm_set_xcr0(struct okvm_vcpu *vcpu, u64 xcr0)
{
	if (!(xcr0 & XFEATURE_MASK_FP))
		return -EINVAL;
	if ((xcr0 & XFEATURE_MASK_YMM) && !(xcr0 & XFEATURE_MASK_SSE))
		return -EINVAL;
	if (xcr0 & ~okvm_guest_supported_xcr0(vcpu))
		return -EINVAL;
	vcpu->arch.xcr0 = xcr0;
	return 0;
}

static long okvm_ioctl_get_xcrs(struct okvm_vcpu *vcpu, void __user *argp)
{
	struct kvm_xcrs *x;
	long r = 0;

	x = kzalloc(sizeof(*x), GFP_KERNEL);
	if (!x)
		return -ENOMEM;
	if (okvm_supported_xcr0) {
		x->nr_xcrs = 1;
		x->xcrs[0].xcr = XCR_XFEATURE_ENABLED_MASK;
		x->xcrs[0].value = vcpu->arch.xcr0;
	}
	if (copy_to_user(argp, x, sizeof(*x)))
		r = -EFAULT;
	kfree(x);
	return r;
}

/* As upstream: unknown XCR indices are ignored, a bad XCR0 is -EINVAL. */
static long okvm_ioctl_set_xcrs(struct okvm_vcpu *vcpu, void __user *argp)
{
	struct kvm_xcrs *x;
	long r = 0;
	u32 i;

	if (!okvm_supported_xcr0)
		return -EINVAL;
	x = memdup_user(argp, sizeof(*x));
	if (IS_ERR(x))
		return PTR_ERR(x);
	if (x->nr_xcrs > KVM_MAX_XCRS || x->flags) {
		r = -EINVAL;
		goto out;
	}
	for (i = 0; i < x->nr_xcrs; i++) {
		if (x->xcrs[i].xcr == XCR_XFEATURE_ENABLED_MASK) {
			r = okvm_set_xcr0(vcpu, x->xcrs[i].value);
			break;
		}
	}
out:
	kfree(x);
	return r;
}

static long okvm_ioctl_get_fpu(struct okvm_vcpu *vcpu, void __user *argp)
{
	struct kvm_xsave *x;
	struct fxregs_state *fx;
	struct kvm_fpu *f;
	long r = 0;

	x = kmalloc(sizeof(*x), GFP_KERNEL);
	f = kzalloc(sizeof(*f), GFP_KERNEL);
	if (!x || !f) {
		r = -ENOMEM;
		goto out;
	}
	okvm_get_xsave(vcpu, x);
	fx = (struct fxregs_state *)x->region;
	memcpy(f->fpr, fx->st_space, sizeof(f->fpr));
	f->fcw = fx->cwd;
	f->fsw = fx->swd;
	f->ftwx = fx->twd;
	f->last_opcode = fx->fop;
	f->last_ip = fx->rip;
	f->last_dp = fx->rdp;
	memcpy(f->xmm, fx->xmm_space, sizeof(f->xmm));
	f->mxcsr = fx->mxcsr;
	if (copy_to_user(argp, f, sizeof(*f)))
		r = -EFAULT;
out:
	kfree(x);
	kfree(f);
	return r;
}

static long okvm_ioctl_set_fpu(struct okvm_vcpu *vcpu, void __user *argp)
{
	struct xregs_state *xs;
	struct fxregs_state *fx;
	struct kvm_xsave *x;
	struct kvm_fpu *f;
	long r;

	f = memdup_user(argp, sizeof(*f));
	if (IS_ERR(f))
		return PTR_ERR(f);
	x = kmalloc(sizeof(*x), GFP_KERNEL);
	if (!x) {
		r = -ENOMEM;
		goto out;
	}
	okvm_get_xsave(vcpu, x);
	fx = (struct fxregs_state *)x->region;
	memcpy(fx->st_space, f->fpr, sizeof(f->fpr));
	fx->cwd = f->fcw;
	fx->swd = f->fsw;
	fx->twd = f->ftwx;
	fx->fop = f->last_opcode;
	fx->rip = f->last_ip;
	fx->rdp = f->last_dp;
	memcpy(fx->xmm_space, f->xmm, sizeof(f->xmm));
	fx->mxcsr = f->mxcsr;
	xs = (struct xregs_state *)x->region;
	xs->header.xfeatures |= XFEATURE_MASK_FPSSE;
	r = okvm_set_xsave(vcpu, x);
out:
	kfree(x);
	kfree(f);
	return r;
}

static long okvm_ioctl_xsave(struct okvm_vcpu *vcpu, void __user *argp,
			     bool set)
{
	struct kvm_xsave *x;
	long r = 0;

	if (set) {
		x = memdup_user(argp, sizeof(*x));
		if (IS_ERR(x))
			return PTR_ERR(x);
		r = okvm_set_xsave(vcpu, x);
	} else {
		x = kmalloc(sizeof(*x), GFP_KERNEL);
		if (!x)
			return -ENOMEM;
		okvm_get_xsave(vcpu, x);
		if (copy_to_user(argp, x, sizeof(*x)))
			r = -EFAULT;
	}
	kfree(x);
	return r;
}

static long okvm_ioctl_debugregs(struct okvm_vcpu *vcpu, void __user *argp,
				 bool set)
{
	struct kvm_debugregs d;

	if (!set) {
		memset(&d, 0, sizeof(d));
		memcpy(d.db, vcpu->arch.db, sizeof(d.db));
		d.dr6 = vcpu->arch.dr6;
		d.dr7 = vcpu->arch.dr7;
		return copy_to_user(argp, &d, sizeof(d)) ? -EFAULT : 0;
	}
	if (copy_from_user(&d, argp, sizeof(d)))
		return -EFAULT;
	if (d.flags || (d.dr6 >> 32) || (d.dr7 >> 32))
		return -EINVAL;
	memcpy(vcpu->arch.db, d.db, sizeof(d.db));
	vcpu->arch.dr6 = d.dr6 | 0xffff0ff0;
	vcpu->arch.dr7 = d.dr7 | 0x400;
	return 0;
}

static long okvm_ioctl_mp_state(struct okvm_vcpu *vcpu, void __user *argp,
				bool set)
{
	struct kvm_mp_state mp;

	if (!set) {
		mp.mp_state = vcpu->arch.mp_state;
		return copy_to_user(argp, &mp, sizeof(mp)) ? -EFAULT : 0;
	}
	if (copy_from_user(&mp, argp, sizeof(mp)))
		return -EFAULT;
	/* Without an in-kernel local APIC only RUNNABLE exists (as KVM). */
	if (mp.mp_state != KVM_MP_STATE_RUNNABLE)
		return -EINVAL;
	vcpu->arch.mp_state = mp.mp_state;
	return 0;
}

static long okvm_ioctl_events(struct okvm_vcpu *vcpu, void __user *argp,
			      bool set)
{
	struct kvm_vcpu_events ev;

	if (!set) {
		okvm_get_vcpu_events(vcpu, &ev);
		return copy_to_user(argp, &ev, sizeof(ev)) ? -EFAULT : 0;
	}
	if (copy_from_user(&ev, argp, sizeof(ev)))
		return -EFAULT;
	return okvm_set_vcpu_events(vcpu, &ev);
}

/**
 * okvm_arch_vcpu_ioctl - x86 vCPU fd ioctls other than KVM_RUN
 * @vcpu: the vCPU, its mutex held
 * @ioctl: the request
 * @arg: its argument
 *
 * Return: the ioctl's result, -EINVAL when unknown (as KVM).
 */
long okvm_arch_vcpu_ioctl(struct okvm_vcpu *vcpu, unsigned int ioctl,
			  unsigned long arg)
{
	void __user *argp = (void __user *)arg;
	union {
		struct kvm_regs regs;
		struct kvm_sregs sregs;
		struct kvm_interrupt irq;
	} u;

	switch (ioctl) {
	case KVM_GET_REGS:
		okvm_get_regs(vcpu, &u.regs);
		return copy_to_user(argp, &u.regs, sizeof(u.regs)) ?
		       -EFAULT : 0;
	case KVM_SET_REGS:
		if (copy_from_user(&u.regs, argp, sizeof(u.regs)))
			return -EFAULT;
		okvm_set_regs(vcpu, &u.regs);
		return 0;
	case KVM_GET_SREGS:
		okvm_get_sregs(vcpu, &u.sregs);
		return copy_to_user(argp, &u.sregs, sizeof(u.sregs)) ?
		       -EFAULT : 0;
	case KVM_SET_SREGS:
		if (copy_from_user(&u.sregs, argp, sizeof(u.sregs)))
			return -EFAULT;
		return okvm_set_sregs(vcpu, &u.sregs);
	case KVM_GET_FPU:
		return okvm_ioctl_get_fpu(vcpu, argp);
	case KVM_SET_FPU:
		return okvm_ioctl_set_fpu(vcpu, argp);
	case KVM_GET_XSAVE:
		return okvm_ioctl_xsave(vcpu, argp, false);
	case KVM_SET_XSAVE:
		return okvm_ioctl_xsave(vcpu, argp, true);
	case KVM_GET_XCRS:
		return okvm_ioctl_get_xcrs(vcpu, argp);
	case KVM_SET_XCRS:
		return okvm_ioctl_set_xcrs(vcpu, argp);
	case KVM_GET_MSRS:
		return okvm_vcpu_get_msrs(vcpu, argp);
	case KVM_SET_MSRS:
		return okvm_vcpu_set_msrs(vcpu, argp);
	case KVM_SET_CPUID2:
		return okvm_vcpu_set_cpuid2(vcpu, argp);
	case KVM_GET_CPUID2:
		return okvm_vcpu_get_cpuid2(vcpu, argp);
	case KVM_INTERRUPT:
		if (copy_from_user(&u.irq, argp, sizeof(u.irq)))
			return -EFAULT;
		return okvm_vcpu_interrupt(vcpu, u.irq.irq);
	case KVM_NMI:
		okvm_vcpu_nmi(vcpu);
		return 0;
	case KVM_GET_MP_STATE:
		return okvm_ioctl_mp_state(vcpu, argp, false);
	case KVM_SET_MP_STATE:
		return okvm_ioctl_mp_state(vcpu, argp, true);
	case KVM_GET_VCPU_EVENTS:
		return okvm_ioctl_events(vcpu, argp, false);
	case KVM_SET_VCPU_EVENTS:
		return okvm_ioctl_events(vcpu, argp, true);
	case KVM_GET_DEBUGREGS:
		return okvm_ioctl_debugregs(vcpu, argp, false);
	case KVM_SET_DEBUGREGS:
		return okvm_ioctl_debugregs(vcpu, argp, true);
	default:
		return -EINVAL;
	}
}

/* kvm_run fields userspace reads after every exit. */
static void okvm_post_run(struct okvm_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;

	run->if_flag = !!(vcpu->arch.rflags & X86_EFLAGS_IF);
	run->cr8 = okvm_x86_ops->get_cr(vcpu, 8);
	run->apic_base = vcpu->arch.apic_base;
	run->ready_for_interrupt_injection = okvm_ready_for_interrupt(vcpu);
	run->flags = 0;
}

/**
 * okvm_arch_vcpu_run - KVM_RUN
 * @vcpu: the vCPU, its mutex held, in the VM's mm
 *
 * Finishes the exit userspace just handled, then enters the guest until an
 * exit userspace must see, a signal, or an error. The guest FPU state is
 * loaded for the whole call; the host's comes back on return.
 *
 * Return: 0 with run->exit_reason set, -EINTR with KVM_EXIT_INTR, or
 * another negative errno.
 */
int okvm_arch_vcpu_run(struct okvm_vcpu *vcpu)
{
	const struct okvm_x86_ops *ops = okvm_x86_ops;
	struct kvm_run *run = vcpu->run;
	int r;

	if (vcpu->arch.complete_userspace) {
		int (*done)(struct okvm_vcpu *v) = vcpu->arch.complete_userspace;

		vcpu->arch.complete_userspace = NULL;
		r = done(vcpu);
		if (r <= 0)
			goto out;
	}

	/* As upstream: the exit userspace answered is completed first. */
	if (run->immediate_exit) {
		run->exit_reason = KVM_EXIT_INTR;
		r = -EINTR;
		goto out;
	}

	if (ops->run_begin)
		ops->run_begin(vcpu);
	fpu_swap_kvm_fpstate(&vcpu->arch.guest_fpu, true);
	for (;;) {
		if (okvm_check_request(vcpu, OKVM_REQ_EXIT) ||
		    signal_pending(current)) {
			run->exit_reason = KVM_EXIT_INTR;
			r = -EINTR;
			break;
		}
		if (need_resched())
			cond_resched();
		if (okvm_check_request(vcpu, OKVM_REQ_TLB_FLUSH))
			ops->tlb_flush(vcpu);
		okvm_check_request(vcpu, OKVM_REQ_EVENT);
		okvm_inject_pending_events(vcpu);

		r = ops->run(vcpu);
		if (r <= 0)
			break;
		if (run->request_interrupt_window &&
		    okvm_ready_for_interrupt(vcpu)) {
			run->exit_reason = KVM_EXIT_IRQ_WINDOW_OPEN;
			r = 0;
			break;
		}
	}
	fpu_swap_kvm_fpstate(&vcpu->arch.guest_fpu, false);
out:
	okvm_post_run(vcpu);
	return r;
}
