// SPDX-License-Identifier: GPL-2.0-only
/*
 * onekvm: SVM #VMEXIT handlers.
 *
 * Without NRIP save (QEMU TCG, older CPUs) next_rip is 0; the handlers
 * pass it anyway and okvm_skip_instruction() computes the length when it
 * is missing. IOIO carries the next RIP in exit_info_2 on every CPU.
 */
#include <linux/kernel.h>
#include <linux/moduleparam.h>
#include <asm/processor-flags.h>
#include <asm/fpu/xcr.h>
#include "svm.h"
#include "../emulate.h"

/* Next RIP from NRIP save, or 0 when the CPU does not provide it. */
static u64 svm_next_rip(struct okvm_svm_vcpu *svm)
{
	if (!(okvm_svm_features & OKVM_SVM_NRIPS))
		return 0;
	return svm->vmcb->control.next_rip;
}

/**
 * okvm_svm_complete_interrupts - account for an event cut short by the exit
 * @vcpu: the vCPU, right after #VMEXIT
 *
 * An interrupt, NMI or exception whose delivery was interrupted (a nested
 * page fault on the IDT or stack, a host interrupt) is recorded as
 * injected again so that the next entry delivers it. Software interrupts
 * and #BP/#OF are not: RIP still points at the instruction, which raises
 * them again.
 */
void okvm_svm_complete_interrupts(struct okvm_vcpu *vcpu)
{
	struct okvm_svm_vcpu *svm = to_svm(vcpu);
	struct okvm_vmcb_control *c = &svm->vmcb->control;
	u32 info = c->exit_int_info;
	u8 vec = info & OKVM_EVT_VEC_MASK;

	vcpu->arch.exception.injected = false;
	vcpu->arch.interrupt.injected = false;
	vcpu->arch.nmi.injected = false;
	c->event_inj = 0;

	if (svm->awaiting_iret && vcpu->arch.rip != svm->iret_rip) {
		vcpu->arch.nmi_masked = false;
		svm->awaiting_iret = false;
		okvm_make_request(vcpu, OKVM_REQ_EVENT);
	}
	if (!(info & OKVM_EVT_VALID))
		return;
	okvm_make_request(vcpu, OKVM_REQ_EVENT);
	switch (info & OKVM_EVT_TYPE_MASK) {
	case OKVM_EVT_TYPE_NMI:
		vcpu->arch.nmi.injected = true;
		vcpu->arch.nmi_masked = false;
		break;
	case OKVM_EVT_TYPE_EXCEPT:
		if (vec == OKVM_BP_VECTOR || vec == OKVM_OF_VECTOR)
			break;
		vcpu->arch.exception.injected = true;
		vcpu->arch.exception.nr = vec;
		vcpu->arch.exception.has_error_code =
			!!(info & OKVM_EVT_VALID_ERR);
		vcpu->arch.exception.error_code = c->exit_int_info_err;
		break;
	case OKVM_EVT_TYPE_INTR:
		vcpu->arch.interrupt.injected = true;
		vcpu->arch.interrupt.nr = vec;
		break;
	default:
		break;
	}
}

static int svm_ud(struct okvm_vcpu *vcpu)
{
	okvm_queue_exception(vcpu, OKVM_UD_VECTOR);
	return OKVM_EXIT_HANDLED;
}

static int svm_gp(struct okvm_vcpu *vcpu)
{
	okvm_queue_exception_e(vcpu, OKVM_GP_VECTOR, 0);
	return OKVM_EXIT_HANDLED;
}

static int svm_ioio(struct okvm_vcpu *vcpu)
{
	struct okvm_vmcb_control *c = &to_svm(vcpu)->vmcb->control;
	u64 info = c->exit_info_1;
	u8 size = (info & OKVM_IOIO_SIZE_MASK) >> OKVM_IOIO_SIZE_SHIFT;
	u8 asize = (info & OKVM_IOIO_ASIZE_MASK) >> OKVM_IOIO_ASIZE_SHIFT;
	u64 amask;

	/* SZ8/SZ16/SZ32 and A16/A32/A64 are one-hot bits. */
	if (size == 4)
		size = 4;
	else if (size == 2)
		size = 2;
	else
		size = 1;
	if (asize & 4)
		amask = ~0ULL;
	else if (asize & 2)
		amask = 0xffffffffULL;
	else if (asize & 1)
		amask = 0xffffULL;
	else
		amask = 0;	/* not reported (QEMU): decoded from the insn */
	return okvm_handle_pio(vcpu, info >> 16, size, info & OKVM_IOIO_IN,
			       info & OKVM_IOIO_STR, info & OKVM_IOIO_REP,
			       amask, c->exit_info_2);
}

/*
 * QEMU's SVM model takes the virtual interrupt right after an STI that set
 * IF, inside the STI shadow, and reports no shadow. Recognise that case
 * (IF was clear at entry, is set now, and the byte before RIP is STI) and
 * put the shadow back, so the window opens one instruction later, as on
 * hardware. On CPUs that report the shadow this never matches.
 */
static void svm_fix_sti_shadow(struct okvm_vcpu *vcpu)
{
	struct okvm_svm_vcpu *svm = to_svm(vcpu);
	struct kvm_segment cs;
	u8 prev;

	if (svm->entry_if || !(vcpu->arch.rflags & X86_EFLAGS_IF) ||
	    (svm->vmcb->control.int_state & OKVM_INT_SHADOW))
		return;
	okvm_x86_ops->get_segment(vcpu, &cs, OKVM_SEG_CS);
	if (okvm_read_linear(vcpu, cs.base + vcpu->arch.rip - 1, &prev, 1))
		return;
	if (prev == 0xfb)
		svm->vmcb->control.int_state |= OKVM_INT_SHADOW;
}

static int svm_vintr(struct okvm_vcpu *vcpu)
{
	struct okvm_vmcb_control *c = &to_svm(vcpu)->vmcb->control;

	svm_fix_sti_shadow(vcpu);
	c->int_ctl &= ~(OKVM_V_IRQ | OKVM_V_IGN_TPR |
			(0xf << OKVM_V_INTR_PRIO_SHIFT));
	c->intercepts[3] &= ~OKVM_ICPT_VINTR;
	okvm_make_request(vcpu, OKVM_REQ_EVENT);
	return OKVM_EXIT_HANDLED;
}

static int svm_iret(struct okvm_vcpu *vcpu)
{
	struct okvm_svm_vcpu *svm = to_svm(vcpu);

	/* The IRET has not run yet: unmask once RIP moved on. */
	svm->vmcb->control.intercepts[3] &= ~OKVM_ICPT_IRET;
	svm->awaiting_iret = true;
	svm->iret_rip = vcpu->arch.rip;
	return OKVM_EXIT_HANDLED;
}

static int svm_hlt(struct okvm_vcpu *vcpu)
{
	int r = okvm_skip_instruction(vcpu, svm_next_rip(to_svm(vcpu)));

	if (r != OKVM_EXIT_HANDLED)
		return r;
	vcpu->run->exit_reason = KVM_EXIT_HLT;
	return OKVM_EXIT_TO_USER;
}

static int svm_cpuid(struct okvm_vcpu *vcpu)
{
	int r = okvm_emulate_cpuid(vcpu);

	if (r != OKVM_EXIT_HANDLED)
		return r;
	return okvm_skip_instruction(vcpu, svm_next_rip(to_svm(vcpu)));
}

static int svm_msr(struct okvm_vcpu *vcpu)
{
	struct okvm_svm_vcpu *svm = to_svm(vcpu);
	int r;

	if (svm->vmcb->control.exit_info_1)
		r = okvm_emulate_wrmsr(vcpu);
	else
		r = okvm_emulate_rdmsr(vcpu);
	/* On #GP the instruction is not skipped. */
	if (r != OKVM_EXIT_HANDLED || vcpu->arch.exception.pending)
		return r;
	return okvm_skip_instruction(vcpu, svm_next_rip(svm));
}

static int svm_skip(struct okvm_vcpu *vcpu)
{
	return okvm_skip_instruction(vcpu, svm_next_rip(to_svm(vcpu)));
}

/*
 * MOV to/from DRn. Debug registers are emulated: the guest sees what it
 * wrote, but no guest breakpoint is armed and host DR0-3 are untouched.
 * The GPR is ModRM.rm (decode assists would give it directly).
 */
static int svm_dr(struct okvm_vcpu *vcpu, int dr, bool write)
{
	struct okvm_insn insn;
	bool lm64;
	int ret;
	u64 val;

	if (okvm_x86_ops->get_cpl(vcpu)) {
		okvm_queue_exception_e(vcpu, OKVM_GP_VECTOR, 0);
		return OKVM_EXIT_HANDLED;
	}
	if (!okvm_decode_insn(vcpu, &insn, &ret))
		return ret;
	lm64 = okvm_in_64bit_mode(vcpu);
	if (dr == 4 || dr == 5)
		dr += 2;	/* aliases of DR6/DR7 (CR4.DE clear) */

	if (write) {
		val = okvm_reg_read(vcpu, insn.rm);
		if (dr < 4)
			vcpu->arch.db[dr] = lm64 ? val : (u32)val;
		else if (dr == 6)
			vcpu->arch.dr6 = (u32)val | 0xffff0ff0;
		else
			vcpu->arch.dr7 = (u32)val | 0x400;
	} else {
		if (dr < 4)
			val = vcpu->arch.db[dr];
		else if (dr == 6)
			val = vcpu->arch.dr6;
		else
			val = vcpu->arch.dr7;
		okvm_reg_write(vcpu, insn.rm, lm64 ? val : (u32)val);
	}
	return okvm_skip_instruction(vcpu, svm_next_rip(to_svm(vcpu)));
}

/*
 * VMMCALL: the KVM hypercall ABI with no hypercall implemented, as KVM
 * answers unknown ones: -KVM_ENOSYS (-1000), -KVM_EPERM (-1) above CPL 0,
 * truncated to 32 bits outside 64-bit mode.
 */
static int svm_vmmcall(struct okvm_vcpu *vcpu)
{
	u64 ret = okvm_x86_ops->get_cpl(vcpu) ? (u64)-1 : (u64)-1000;

	if (!okvm_in_64bit_mode(vcpu))
		ret = (u32)ret;
	okvm_reg_write(vcpu, OKVM_RAX, ret);
	return okvm_skip_instruction(vcpu, svm_next_rip(to_svm(vcpu)));
}

/* XSETBV: #UD without CR4.OSXSAVE; #GP at CPL > 0, for ECX != 0 or a bad XCR0. */
static int svm_xsetbv(struct okvm_vcpu *vcpu)
{
	u32 idx = okvm_reg_read(vcpu, OKVM_RCX);
	u64 val = (u64)(u32)okvm_reg_read(vcpu, OKVM_RDX) << 32 |
		  (u32)okvm_reg_read(vcpu, OKVM_RAX);

	if (!(okvm_x86_ops->get_cr(vcpu, 4) & X86_CR4_OSXSAVE))
		return svm_ud(vcpu);
	if (okvm_x86_ops->get_cpl(vcpu) || idx != XCR_XFEATURE_ENABLED_MASK ||
	    !okvm_supported_xcr0 || okvm_set_xcr0(vcpu, val))
		return svm_gp(vcpu);
	return svm_skip(vcpu);
}

static bool dump_shutdown;
module_param(dump_shutdown, bool, 0644);
MODULE_PARM_DESC(dump_shutdown,
		 "Log the guest state at a triple fault (KVM_EXIT_SHUTDOWN)");

/* Before the reset below wipes it: what the guest was doing when it died. */
static void svm_dump_shutdown(struct okvm_vcpu *vcpu)
{
	const struct okvm_vmcb *v = to_svm(vcpu)->vmcb;
	const struct okvm_vmcb_save *s = &v->save;
	const struct okvm_vmcb_control *c = &v->control;

	pr_info_ratelimited("onekvm: vcpu%u shutdown: rip %#llx rsp %#llx rflags %#llx cs %#x cpl %u ss %#x\n",
			    vcpu->vcpu_id, s->rip, s->rsp, s->rflags,
			    s->cs.selector, s->cpl, s->ss.selector);
	pr_info_ratelimited("onekvm: vcpu%u shutdown: cr0 %#llx cr2 %#llx cr3 %#llx cr4 %#llx efer %#llx\n",
			    vcpu->vcpu_id, s->cr0, s->cr2, s->cr3, s->cr4,
			    s->efer);
	pr_info_ratelimited("onekvm: vcpu%u shutdown: idtr %#llx+%#x gdtr %#llx+%#x tr %#x exit_int_info %#x/%#x event_inj %#x int_state %#x int_ctl %#x last irq %#x\n",
			    vcpu->vcpu_id, s->idtr.base, s->idtr.limit,
			    s->gdtr.base, s->gdtr.limit, s->tr.selector,
			    c->exit_int_info, c->exit_int_info_err,
			    c->event_inj, c->int_state, c->int_ctl,
			    vcpu->arch.interrupt.nr);
	okvm_dump_walk(vcpu, "rip", s->rip);
	okvm_dump_walk(vcpu, "idt", s->idtr.base);
}

static int svm_unexpected(struct okvm_vcpu *vcpu, u64 code)
{
	u64 data[2] = { code, raw_smp_processor_id() };

	return okvm_internal_error(vcpu,
				   KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON,
				   2, data);
}

/**
 * okvm_svm_handle_exit - dispatch a #VMEXIT
 * @vcpu: the vCPU, its registers copied back from the VMCB
 *
 * Return: OKVM_EXIT_HANDLED to enter again, OKVM_EXIT_TO_USER with
 * run->exit_reason set, or a negative errno.
 */
int okvm_svm_handle_exit(struct okvm_vcpu *vcpu)
{
	struct okvm_svm_vcpu *svm = to_svm(vcpu);
	struct okvm_vmcb_control *c = &svm->vmcb->control;
	u64 code = c->exit_code;

	if (code >= OKVM_EXIT_READ_DR0 && code <= OKVM_EXIT_READ_DR7)
		return svm_dr(vcpu, code - OKVM_EXIT_READ_DR0, false);
	if (code >= OKVM_EXIT_WRITE_DR0 && code <= OKVM_EXIT_WRITE_DR7)
		return svm_dr(vcpu, code - OKVM_EXIT_WRITE_DR0, true);

	switch (code) {
	case OKVM_EXIT_INTR:
	case OKVM_EXIT_NMI:
	case OKVM_EXIT_SMI:
	case OKVM_EXIT_INIT:
	case OKVM_EXIT_FERR_FREEZE:
	case OKVM_EXIT_PAUSE:
		return OKVM_EXIT_HANDLED;
	case OKVM_EXIT_VINTR:
		return svm_vintr(vcpu);
	case OKVM_EXIT_IRET:
		return svm_iret(vcpu);
	case OKVM_EXIT_CPUID:
		return svm_cpuid(vcpu);
	case OKVM_EXIT_HLT:
		return svm_hlt(vcpu);
	case OKVM_EXIT_IOIO:
		return svm_ioio(vcpu);
	case OKVM_EXIT_MSR:
		return svm_msr(vcpu);
	case OKVM_EXIT_NPF:
		return okvm_npt_fault(vcpu, c->exit_info_2, c->exit_info_1);
	case OKVM_EXIT_SHUTDOWN:
		/* The VMCB is undefined after a shutdown: start over. */
		if (dump_shutdown)
			svm_dump_shutdown(vcpu);
		okvm_emul_reset(vcpu);
		okvm_x86_ops->vcpu_reset(vcpu);
		vcpu->run->exit_reason = KVM_EXIT_SHUTDOWN;
		return OKVM_EXIT_TO_USER;
	case OKVM_EXIT_INVD:
		return svm_skip(vcpu);
	case OKVM_EXIT_RDPMC:
		return svm_gp(vcpu);
	case OKVM_EXIT_XSETBV:
		return svm_xsetbv(vcpu);
	case OKVM_EXIT_VMMCALL:
		return svm_vmmcall(vcpu);
	case OKVM_EXIT_VMRUN:
	case OKVM_EXIT_VMLOAD:
	case OKVM_EXIT_VMSAVE:
	case OKVM_EXIT_STGI:
	case OKVM_EXIT_CLGI:
	case OKVM_EXIT_SKINIT:
	case OKVM_EXIT_INVLPGA:
	case OKVM_EXIT_MONITOR:
	case OKVM_EXIT_MWAIT:
	case OKVM_EXIT_MWAIT_COND:
	case OKVM_EXIT_RDPRU:
	case OKVM_EXIT_RSM:
	case OKVM_EXIT_INVLPGB:
	case OKVM_EXIT_INVLPGB_ILL:
	case OKVM_EXIT_MCOMMIT:
	case OKVM_EXIT_TLBSYNC:
		return svm_ud(vcpu);
	default:
		return svm_unexpected(vcpu, code);
	}
}
