// SPDX-License-Identifier: GPL-2.0-only
/*
 * onekvm: SVM vCPU and VMCB lifecycle, guest state accessors, one entry.
 */
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/io.h>
#include <linux/slab.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/irqflags.h>
#include <asm/msr.h>
#include <asm/msr-index.h>
#include <asm/processor-flags.h>
#include <asm/fpu/api.h>
#include <asm/fpu/xcr.h>
#include <asm/debugreg.h>
#include "svm.h"
#include "vmenter_regs.h"

static_assert(OKVM_OFF_RCX == OKVM_RCX * 8 && OKVM_OFF_RDX == OKVM_RDX * 8);
static_assert(OKVM_OFF_RBX == OKVM_RBX * 8 && OKVM_OFF_RBP == OKVM_RBP * 8);
static_assert(OKVM_OFF_RSI == OKVM_RSI * 8 && OKVM_OFF_RDI == OKVM_RDI * 8);
static_assert(OKVM_OFF_R8 == OKVM_R8 * 8 && OKVM_OFF_R15 == OKVM_R15 * 8);

#define OKVM_DEFAULT_PAT	0x0007040600070406ULL
#define OKVM_SAVE_BACKUP	offsetof(struct okvm_vmcb_save, rsvd5)

static inline void okvm_clgi(void)
{
	asm volatile("clgi" ::: "memory");
}

static inline void okvm_stgi(void)
{
	asm volatile("stgi" ::: "memory");
}

static int svm_vm_init(struct okvm *kvm)
{
	struct okvm_svm_vm *vm;
	int r;

	vm = kzalloc(sizeof(*vm), GFP_KERNEL_ACCOUNT);
	if (!vm)
		return -ENOMEM;
	kvm->arch.vendor = vm;
	r = okvm_npt_vm_init(kvm);
	if (r) {
		kfree(vm);
		kvm->arch.vendor = NULL;
	}
	return r;
}

static void svm_vm_destroy(struct okvm *kvm)
{
	if (!kvm->arch.vendor)
		return;
	okvm_npt_vm_destroy(kvm);
	kfree(kvm->arch.vendor);
	kvm->arch.vendor = NULL;
}

static void svm_init_seg(struct okvm_vmcb_seg *seg, u16 attrib)
{
	seg->selector = 0;
	seg->attrib = attrib;
	seg->limit = 0xffff;
	seg->base = 0;
}

/* The VMCB of a vCPU after power-on or INIT; GPRs are reset by x86.c. */
static void svm_vcpu_reset(struct okvm_vcpu *vcpu)
{
	struct okvm_svm_vcpu *svm = to_svm(vcpu);
	struct okvm_vmcb *vmcb = svm->vmcb;
	struct okvm_vmcb_control *c = &vmcb->control;
	struct okvm_vmcb_save *s = &vmcb->save;
	struct okvm_svm_vm *vm = to_svm_vm(vcpu->kvm);

	memset(vmcb, 0, sizeof(*vmcb));
	c->intercepts[1] = 0xffffffff;	/* all DR reads and writes */
	c->intercepts[3] = OKVM_ICPT_INTR | OKVM_ICPT_NMI | OKVM_ICPT_SMI |
			   OKVM_ICPT_CPUID | OKVM_ICPT_RSM | OKVM_ICPT_INVD |
			   OKVM_ICPT_HLT | OKVM_ICPT_INVLPGA | OKVM_ICPT_IOIO |
			   OKVM_ICPT_MSR | OKVM_ICPT_FERR_FREEZE |
			   OKVM_ICPT_SHUTDOWN | OKVM_ICPT_RDPMC;
	c->intercepts[4] = OKVM_ICPT_VMRUN | OKVM_ICPT_VMMCALL |
			   OKVM_ICPT_VMLOAD | OKVM_ICPT_VMSAVE |
			   OKVM_ICPT_STGI | OKVM_ICPT_CLGI | OKVM_ICPT_SKINIT |
			   OKVM_ICPT_MONITOR | OKVM_ICPT_MWAIT |
			   OKVM_ICPT_MWAIT_COND | OKVM_ICPT_XSETBV |
			   OKVM_ICPT_RDPRU;
	c->intercepts[5] = OKVM_ICPT_INVLPGB | OKVM_ICPT_INVLPGB_ILL |
			   OKVM_ICPT_MCOMMIT | OKVM_ICPT_TLBSYNC;
	c->iopm_base_pa = page_to_phys(okvm_iopm_pages);
	c->msrpm_base_pa = page_to_phys(okvm_msrpm_pages);
	c->tsc_offset = vcpu->kvm->arch.tsc_offset;
	c->int_ctl = OKVM_V_INTR_MASKING;
	c->nested_ctl = OKVM_NESTED_NP_ENABLE;
	c->nested_cr3 = page_to_phys(vm->npt_root);
	c->tlb_ctl = OKVM_TLB_FLUSH_ALL;

	svm_init_seg(&s->es, 0x93);
	svm_init_seg(&s->ss, 0x93);
	svm_init_seg(&s->ds, 0x93);
	svm_init_seg(&s->fs, 0x93);
	svm_init_seg(&s->gs, 0x93);
	svm_init_seg(&s->cs, 0x9b);
	s->cs.selector = 0xf000;
	s->cs.base = 0xffff0000;
	s->gdtr.limit = 0xffff;
	s->idtr.limit = 0xffff;
	svm_init_seg(&s->ldtr, 0x82);
	svm_init_seg(&s->tr, 0x8b);
	s->cr0 = X86_CR0_ET | X86_CR0_CD | X86_CR0_NW;
	s->efer = EFER_SVME;
	s->dr6 = 0xffff0ff0;
	s->dr7 = 0x400;
	s->rflags = X86_EFLAGS_FIXED;
	s->rip = 0xfff0;
	s->g_pat = OKVM_DEFAULT_PAT;

	svm->guest_efer = 0;
	svm->asid_cpu = -1;
	svm->awaiting_iret = false;
	vcpu->arch.rip = 0xfff0;
	vcpu->arch.rflags = X86_EFLAGS_FIXED;
}

static int svm_vcpu_create(struct okvm_vcpu *vcpu)
{
	struct okvm_svm_vcpu *svm;
	struct page *page;

	svm = kzalloc(sizeof(*svm), GFP_KERNEL_ACCOUNT);
	if (!svm)
		return -ENOMEM;
	page = alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
	if (!page) {
		kfree(svm);
		return -ENOMEM;
	}
	svm->vmcb = page_address(page);
	svm->vmcb_pa = page_to_phys(page);
	svm->save_backup = kmalloc(OKVM_SAVE_BACKUP, GFP_KERNEL_ACCOUNT);
	if (!svm->save_backup) {
		__free_page(page);
		kfree(svm);
		return -ENOMEM;
	}
	vcpu->arch.vendor = svm;
	svm_vcpu_reset(vcpu);
	return 0;
}

static void svm_vcpu_free(struct okvm_vcpu *vcpu)
{
	struct okvm_svm_vcpu *svm = to_svm(vcpu);
	int cpu;

	if (!svm)
		return;
	/* Forget this VMCB on every CPU it may be cached as last_vcpu. */
	for_each_possible_cpu(cpu) {
		struct okvm_svm_cpu *sd = per_cpu_ptr(&okvm_svm_cpu_data, cpu);

		cmpxchg(&sd->last_vcpu, svm, NULL);
	}
	okvm_npt_free_cache(vcpu);
	kfree(svm->save_backup);
	free_page((unsigned long)svm->vmcb);
	kfree(svm);
	vcpu->arch.vendor = NULL;
}

static struct okvm_vmcb_seg *svm_seg(struct okvm_vcpu *vcpu, int seg)
{
	struct okvm_vmcb_save *s = &to_svm(vcpu)->vmcb->save;

	switch (seg) {
	case OKVM_SEG_ES: return &s->es;
	case OKVM_SEG_CS: return &s->cs;
	case OKVM_SEG_SS: return &s->ss;
	case OKVM_SEG_DS: return &s->ds;
	case OKVM_SEG_FS: return &s->fs;
	case OKVM_SEG_GS: return &s->gs;
	case OKVM_SEG_TR: return &s->tr;
	default: return &s->ldtr;
	}
}

static void svm_get_segment(struct okvm_vcpu *vcpu, struct kvm_segment *var,
			    int seg)
{
	struct okvm_vmcb_seg *s = svm_seg(vcpu, seg);
	u16 a = s->attrib;

	memset(var, 0, sizeof(*var));
	var->base = s->base;
	var->limit = s->limit;
	var->selector = s->selector;
	var->type = a & 0xf;
	var->s = (a >> 4) & 1;
	var->dpl = (a >> 5) & 3;
	var->present = (a >> 7) & 1;
	var->avl = (a >> 8) & 1;
	var->l = (a >> 9) & 1;
	var->db = (a >> 10) & 1;
	var->g = (a >> 11) & 1;
	var->unusable = !var->present;
	/* A usable TR must look busy; report what KVM reports. */
	if (seg == OKVM_SEG_TR && var->present && !(var->type & 2))
		var->type |= 2;
}

static void svm_update_cpl(struct okvm_vcpu *vcpu)
{
	struct okvm_vmcb_save *s = &to_svm(vcpu)->vmcb->save;

	if (!(s->cr0 & X86_CR0_PE))
		s->cpl = 0;
	else if (vcpu->arch.rflags & X86_EFLAGS_VM)
		s->cpl = 3;
	else
		s->cpl = (s->ss.attrib >> 5) & 3;
}

static void svm_set_segment(struct okvm_vcpu *vcpu,
			    const struct kvm_segment *var, int seg)
{
	struct okvm_vmcb_seg *s = svm_seg(vcpu, seg);

	s->base = var->base;
	s->limit = var->limit;
	s->selector = var->selector;
	if (var->unusable || !var->present)
		s->attrib = 0;
	else
		s->attrib = (var->type & 0xf) | (var->s & 1) << 4 |
			    (var->dpl & 3) << 5 | 1 << 7 |
			    (var->avl & 1) << 8 | (var->l & 1) << 9 |
			    (var->db & 1) << 10 | (var->g & 1) << 11;
	if (seg == OKVM_SEG_SS)
		svm_update_cpl(vcpu);
}

static void svm_get_dt(struct okvm_vcpu *vcpu, struct kvm_dtable *dt,
		       bool idt)
{
	struct okvm_vmcb_save *s = &to_svm(vcpu)->vmcb->save;
	struct okvm_vmcb_seg *seg = idt ? &s->idtr : &s->gdtr;

	memset(dt, 0, sizeof(*dt));
	dt->base = seg->base;
	dt->limit = seg->limit;
}

static void svm_set_dt(struct okvm_vcpu *vcpu, const struct kvm_dtable *dt,
		       bool idt)
{
	struct okvm_vmcb_save *s = &to_svm(vcpu)->vmcb->save;
	struct okvm_vmcb_seg *seg = idt ? &s->idtr : &s->gdtr;

	seg->base = dt->base;
	seg->limit = dt->limit;
}

/* Hardware EFER: what the guest wrote, plus SVME, with LMA = LME && PG. */
static void svm_sync_efer(struct okvm_vcpu *vcpu)
{
	struct okvm_svm_vcpu *svm = to_svm(vcpu);
	u64 efer = svm->guest_efer & ~EFER_LMA;

	if ((efer & EFER_LME) && (svm->vmcb->save.cr0 & X86_CR0_PG))
		efer |= EFER_LMA;
	svm->vmcb->save.efer = efer | EFER_SVME;
}

static u64 svm_get_cr(struct okvm_vcpu *vcpu, int cr)
{
	struct okvm_vmcb *vmcb = to_svm(vcpu)->vmcb;

	switch (cr) {
	case 0: return vmcb->save.cr0;
	case 2: return vmcb->save.cr2;
	case 3: return vmcb->save.cr3;
	case 4: return vmcb->save.cr4;
	case 8: return vmcb->control.int_ctl & OKVM_V_TPR_MASK;
	default: return 0;
	}
}

static void svm_set_cr(struct okvm_vcpu *vcpu, int cr, u64 val)
{
	struct okvm_vmcb *vmcb = to_svm(vcpu)->vmcb;

	switch (cr) {
	case 0:
		vmcb->save.cr0 = val;
		svm_sync_efer(vcpu);
		svm_update_cpl(vcpu);
		break;
	case 2:
		vmcb->save.cr2 = val;
		break;
	case 3:
		vmcb->save.cr3 = val;
		break;
	case 4:
		vmcb->save.cr4 = val;
		break;
	case 8:
		vmcb->control.int_ctl &= ~OKVM_V_TPR_MASK;
		vmcb->control.int_ctl |= val & OKVM_V_TPR_MASK;
		break;
	}
}

static u64 svm_get_efer(struct okvm_vcpu *vcpu)
{
	/* The hardware may have set LMA itself (CR0.PG is not intercepted). */
	return to_svm(vcpu)->vmcb->save.efer & ~EFER_SVME;
}

static void svm_set_efer(struct okvm_vcpu *vcpu, u64 efer)
{
	to_svm(vcpu)->guest_efer = efer & ~EFER_SVME;
	svm_sync_efer(vcpu);
}

static int svm_get_cpl(struct okvm_vcpu *vcpu)
{
	return to_svm(vcpu)->vmcb->save.cpl;
}

/* The VMCB field holding an MSR kept in the save area, or NULL. */
static u64 *svm_msr_field(struct okvm_vmcb_save *s, u32 index)
{
	switch (index) {
	case MSR_FS_BASE:
		return &s->fs.base;
	case MSR_GS_BASE:
		return &s->gs.base;
	case MSR_KERNEL_GS_BASE:
		return &s->kernel_gs_base;
	case MSR_STAR:
		return &s->star;
	case MSR_LSTAR:
		return &s->lstar;
	case MSR_CSTAR:
		return &s->cstar;
	case MSR_SYSCALL_MASK:
		return &s->sfmask;
	case MSR_IA32_SYSENTER_CS:
		return &s->sysenter_cs;
	case MSR_IA32_SYSENTER_ESP:
		return &s->sysenter_esp;
	case MSR_IA32_SYSENTER_EIP:
		return &s->sysenter_eip;
	case MSR_IA32_CR_PAT:
		return &s->g_pat;
	default:
		return NULL;
	}
}

static int svm_get_msr(struct okvm_vcpu *vcpu, u32 index, u64 *data)
{
	struct okvm_vmcb *vmcb = to_svm(vcpu)->vmcb;
	u64 *field = svm_msr_field(&vmcb->save, index);

	if (field) {
		*data = *field;
		return 0;
	}
	if (index == MSR_IA32_TSC) {
		*data = rdtsc() + vmcb->control.tsc_offset;
		return 0;
	}
	return -ENOENT;
}

static bool okvm_pat_valid(u64 pat)
{
	int i;

	for (i = 0; i < 8; i++) {
		u8 t = (pat >> (8 * i)) & 0xff;

		if (t > 7 || t == 2 || t == 3)
			return false;
	}
	return true;
}

static bool okvm_canonical(u64 v)
{
	return (s64)(v << 16) >> 16 == (s64)v;
}

static int svm_set_msr(struct okvm_vcpu *vcpu, u32 index, u64 data)
{
	struct okvm_vmcb *vmcb = to_svm(vcpu)->vmcb;
	u64 *field = svm_msr_field(&vmcb->save, index);

	if (index == MSR_IA32_TSC) {
		vmcb->control.tsc_offset = data - rdtsc();
		return 0;
	}
	if (!field)
		return -ENOENT;
	switch (index) {
	case MSR_IA32_CR_PAT:
		if (!okvm_pat_valid(data))
			return 1;
		break;
	case MSR_SYSCALL_MASK:
	case MSR_STAR:
		break;
	case MSR_IA32_SYSENTER_CS:
		data = (u16)data;
		break;
	default:
		/* Addresses: VMLOAD would #GP on a non-canonical value. */
		if (!okvm_canonical(data))
			return 1;
		break;
	}
	*field = data;
	return 0;
}

static u32 svm_get_int_shadow(struct okvm_vcpu *vcpu)
{
	if (to_svm(vcpu)->vmcb->control.int_state & OKVM_INT_SHADOW)
		return KVM_X86_SHADOW_INT_MOV_SS | KVM_X86_SHADOW_INT_STI;
	return 0;
}

static void svm_set_int_shadow(struct okvm_vcpu *vcpu, u32 mask)
{
	struct okvm_vmcb *vmcb = to_svm(vcpu)->vmcb;

	if (mask)
		vmcb->control.int_state |= OKVM_INT_SHADOW;
	else
		vmcb->control.int_state &= ~OKVM_INT_SHADOW;
}

static bool svm_interrupt_allowed(struct okvm_vcpu *vcpu)
{
	struct okvm_vmcb *vmcb = to_svm(vcpu)->vmcb;

	return (vcpu->arch.rflags & X86_EFLAGS_IF) &&
	       !(vmcb->control.int_state & OKVM_INT_SHADOW) &&
	       !(vmcb->control.event_inj & OKVM_EVT_VALID);
}

static bool svm_nmi_allowed(struct okvm_vcpu *vcpu)
{
	struct okvm_vmcb *vmcb = to_svm(vcpu)->vmcb;

	return !vcpu->arch.nmi_masked &&
	       !(vmcb->control.int_state & OKVM_INT_SHADOW) &&
	       !(vmcb->control.event_inj & OKVM_EVT_VALID);
}

static void svm_inject_event(struct okvm_vcpu *vcpu,
			     const struct okvm_event *ev, int type)
{
	struct okvm_svm_vcpu *svm = to_svm(vcpu);
	struct okvm_vmcb_control *c = &svm->vmcb->control;
	u32 inj = ev->nr | OKVM_EVT_VALID;

	switch (type) {
	case OKVM_EVENT_EXCEPTION:
		inj |= OKVM_EVT_TYPE_EXCEPT;
		if (ev->has_error_code)
			inj |= OKVM_EVT_VALID_ERR;
		break;
	case OKVM_EVENT_NMI:
		inj = OKVM_NMI_VECTOR | OKVM_EVT_VALID | OKVM_EVT_TYPE_NMI;
		/* Unmask at the handler's IRET. */
		c->intercepts[3] |= OKVM_ICPT_IRET;
		svm->awaiting_iret = false;
		break;
	default:
		inj |= OKVM_EVT_TYPE_INTR;
		break;
	}
	c->event_inj = inj;
	c->event_inj_err = ev->has_error_code ? ev->error_code : 0;
}

static void svm_enable_irq_window(struct okvm_vcpu *vcpu)
{
	struct okvm_vmcb_control *c = &to_svm(vcpu)->vmcb->control;

	/* A virtual interrupt the guest takes as soon as it can: VINTR exit. */
	c->int_ctl |= OKVM_V_IRQ | OKVM_V_IGN_TPR |
		      (0xf << OKVM_V_INTR_PRIO_SHIFT);
	c->int_vector = 0;
	c->intercepts[3] |= OKVM_ICPT_VINTR;
}

static void svm_enable_nmi_window(struct okvm_vcpu *vcpu)
{
	struct okvm_vmcb_control *c = &to_svm(vcpu)->vmcb->control;

	if (vcpu->arch.nmi_masked && !to_svm(vcpu)->awaiting_iret)
		c->intercepts[3] |= OKVM_ICPT_IRET;
}

static void svm_tlb_flush(struct okvm_vcpu *vcpu)
{
	to_svm(vcpu)->flush_pending = true;
}

static void svm_memslot_remove(struct okvm *kvm, struct okvm_memslot *slot)
{
	okvm_npt_memslot_remove(kvm, slot);
}

/*
 * A VMRUN that fails its consistency checks may leave host values in the
 * save area (QEMU does); the state at KVM_RUN entry is put back then.
 */
static void svm_run_begin(struct okvm_vcpu *vcpu)
{
	struct okvm_svm_vcpu *svm = to_svm(vcpu);

	memcpy(svm->save_backup, &svm->vmcb->save, OKVM_SAVE_BACKUP);
}

static void svm_restore_state(struct okvm_vcpu *vcpu)
{
	struct okvm_svm_vcpu *svm = to_svm(vcpu);

	memcpy(&svm->vmcb->save, svm->save_backup, OKVM_SAVE_BACKUP);
}

static int svm_vcpu_run(struct okvm_vcpu *vcpu)
{
	struct okvm_svm_vcpu *svm = to_svm(vcpu);
	struct okvm_vmcb *vmcb = svm->vmcb;
	struct okvm_svm_cpu *sd;
	u32 int_ctl, int_state;
	bool guest_xcr0;
	int cpu;

	vmcb->save.rax = vcpu->arch.regs[OKVM_RAX];
	vmcb->save.rsp = vcpu->arch.regs[OKVM_RSP];
	vmcb->save.rip = vcpu->arch.rip;
	vmcb->save.rflags = vcpu->arch.rflags | X86_EFLAGS_FIXED;
	svm->entry_if = vcpu->arch.rflags & X86_EFLAGS_IF;
	/*
	 * Without V_INTR_MASKING the guest's RFLAGS.IF would mask the host's
	 * interrupts: a guest spinning with IF clear would keep this CPU for
	 * good. Never enter without it.
	 */
	vmcb->control.int_ctl |= OKVM_V_INTR_MASKING;
	int_ctl = vmcb->control.int_ctl;
	int_state = vmcb->control.int_state;

	local_irq_disable();
	if (!okvm_svm_cpu_ready()) {
		local_irq_enable();
		vcpu->run->exit_reason = KVM_EXIT_FAIL_ENTRY;
		vcpu->run->fail_entry.hardware_entry_failure_reason = 0;
		vcpu->run->fail_entry.cpu = raw_smp_processor_id();
		return OKVM_EXIT_TO_USER;
	}
	cpu = smp_processor_id();
	sd = this_cpu_ptr(&okvm_svm_cpu_data);
	vcpu->cpu = cpu;

	WRITE_ONCE(vcpu->mode, OKVM_IN_GUEST_MODE);
	/* Pairs with the barrier in okvm_make_request() + kick. */
	smp_mb();
	if (READ_ONCE(vcpu->requests) || need_resched() ||
	    signal_pending(current)) {
		WRITE_ONCE(vcpu->mode, OKVM_OUTSIDE_GUEST_MODE);
		local_irq_enable();
		return OKVM_EXIT_HANDLED;
	}

	if (svm->flush_pending) {
		vmcb->control.tlb_ctl =
			(okvm_svm_features & OKVM_SVM_FLUSHBYASID) ?
			OKVM_TLB_FLUSH_ASID : OKVM_TLB_FLUSH_ALL;
		svm->flush_pending = false;
	}
	okvm_svm_assign_asid(svm, cpu);
	sd->last_vcpu = svm;

	if (test_thread_flag(TIF_NEED_FPU_LOAD))
		switch_fpu_return();

	/*
	 * The guest's XCR0 whenever it differs from the host's, whatever the
	 * guest's CR4.OSXSAVE (CR4 writes do not exit, so a guest may set it
	 * and XGETBV without an exit in between). VMRUN and #VMEXIT leave XCR0
	 * alone, so after the exit the register holds the guest's: read it
	 * back, since a CPU model that lets XSETBV through without its
	 * intercept (QEMU TCG does) changed it behind our back. Interrupts
	 * stay off until the host's is back: no kernel FPU use ever sees the
	 * guest's.
	 */
	guest_xcr0 = okvm_supported_xcr0 &&
		     vcpu->arch.xcr0 != okvm_host_xcr0;
	if (guest_xcr0)
		xsetbv(XCR_XFEATURE_ENABLED_MASK, vcpu->arch.xcr0);

	okvm_clgi();
	__okvm_svm_vmrun(svm->vmcb_pa, vcpu->arch.regs,
			 page_to_phys(sd->host_vmcb));
	/*
	 * #VMEXIT disables the host's breakpoints (DR7): put them back when
	 * the host has any (a debugger's or perf's watchpoints).
	 */
	if (hw_breakpoint_active())
		hw_breakpoint_restore();
	if (okvm_supported_xcr0) {
		u64 xcr0 = xgetbv(XCR_XFEATURE_ENABLED_MASK);

		vcpu->arch.xcr0 = xcr0;
		if (xcr0 != okvm_host_xcr0)
			xsetbv(XCR_XFEATURE_ENABLED_MASK, okvm_host_xcr0);
	}
	/* Pending host NMIs are taken here. */
	okvm_stgi();

	vmcb->control.tlb_ctl = OKVM_TLB_NOTHING;
	WRITE_ONCE(vcpu->mode, OKVM_OUTSIDE_GUEST_MODE);
	/* ... and pending host interrupts here (the INTR #VMEXIT). */
	local_irq_enable();

	/* VMEXIT_INVALID is -1; QEMU writes only the low 32 bits. */
	if ((u32)vmcb->control.exit_code == (u32)OKVM_EXIT_INVALID) {
		/*
		 * A CPU leaves the VMCB alone when VMRUN fails its checks;
		 * QEMU writes back its own int_ctl (zero: V_INTR_MASKING and
		 * the guest's TPR gone) and interrupt shadow, and host values
		 * in the save area. Put all of it back.
		 */
		svm_restore_state(vcpu);
		vmcb->control.int_ctl = int_ctl;
		vmcb->control.int_state = int_state;
		vcpu->run->exit_reason = KVM_EXIT_FAIL_ENTRY;
		vcpu->run->fail_entry.hardware_entry_failure_reason =
			vmcb->control.exit_code;
		vcpu->run->fail_entry.cpu = cpu;
		vmcb->control.event_inj = 0;
		return OKVM_EXIT_TO_USER;
	}

	vcpu->arch.regs[OKVM_RAX] = vmcb->save.rax;
	vcpu->arch.regs[OKVM_RSP] = vmcb->save.rsp;
	vcpu->arch.rip = vmcb->save.rip;
	vcpu->arch.rflags = vmcb->save.rflags;

	okvm_svm_complete_interrupts(vcpu);
	return okvm_svm_handle_exit(vcpu);
}

struct okvm_x86_ops okvm_svm_ops = {
	.name = "svm",
	.hardware_setup = okvm_svm_hardware_setup,
	.hardware_unsetup = okvm_svm_hardware_unsetup,
	.hardware_enable = okvm_svm_hardware_enable,
	.hardware_disable = okvm_svm_hardware_disable,
	.vm_init = svm_vm_init,
	.vm_destroy = svm_vm_destroy,
	.memslot_remove = svm_memslot_remove,
	.vcpu_create = svm_vcpu_create,
	.vcpu_free = svm_vcpu_free,
	.vcpu_reset = svm_vcpu_reset,
	.get_segment = svm_get_segment,
	.set_segment = svm_set_segment,
	.get_dt = svm_get_dt,
	.set_dt = svm_set_dt,
	.get_cr = svm_get_cr,
	.set_cr = svm_set_cr,
	.get_efer = svm_get_efer,
	.set_efer = svm_set_efer,
	.get_cpl = svm_get_cpl,
	.get_msr = svm_get_msr,
	.set_msr = svm_set_msr,
	.get_int_shadow = svm_get_int_shadow,
	.set_int_shadow = svm_set_int_shadow,
	.interrupt_allowed = svm_interrupt_allowed,
	.nmi_allowed = svm_nmi_allowed,
	.inject_event = svm_inject_event,
	.enable_irq_window = svm_enable_irq_window,
	.enable_nmi_window = svm_enable_nmi_window,
	.tlb_flush = svm_tlb_flush,
	.run_begin = svm_run_begin,
	.run = svm_vcpu_run,
};
