// SPDX-License-Identifier: GPL-2.0-only
/*
 * onekvm: exception, interrupt and NMI injection (no in-kernel irqchip).
 *
 * Userspace owns the PIC: it calls KVM_INTERRUPT when kvm_run says
 * ready_for_interrupt_injection, or sets request_interrupt_window and
 * waits for KVM_EXIT_IRQ_WINDOW_OPEN. An event whose delivery a #VMEXIT
 * cut short is delivered again before anything new.
 */
#include <linux/kernel.h>
#include <asm/processor-flags.h>
#include "x86.h"

/**
 * okvm_queue_exception - raise an exception without error code
 * @vcpu: the vCPU
 * @nr: vector
 */
void okvm_queue_exception(struct okvm_vcpu *vcpu, u8 nr)
{
	struct okvm_event *e = &vcpu->arch.exception;

	e->pending = true;
	e->nr = nr;
	e->has_error_code = false;
	e->error_code = 0;
	okvm_make_request(vcpu, OKVM_REQ_EVENT);
}

/**
 * okvm_queue_exception_e - raise an exception with an error code
 * @vcpu: the vCPU
 * @nr: vector
 * @error_code: pushed error code
 */
void okvm_queue_exception_e(struct okvm_vcpu *vcpu, u8 nr, u32 error_code)
{
	okvm_queue_exception(vcpu, nr);
	vcpu->arch.exception.has_error_code = true;
	vcpu->arch.exception.error_code = error_code;
}

/**
 * okvm_vcpu_interrupt - KVM_INTERRUPT
 * @vcpu: the vCPU
 * @irq: vector
 *
 * Return: 0, -EINVAL for a vector above 255, -EEXIST when one is still
 * waiting for delivery.
 */
int okvm_vcpu_interrupt(struct okvm_vcpu *vcpu, u32 irq)
{
	if (irq >= KVM_NR_INTERRUPTS)
		return -EINVAL;
	if (vcpu->arch.interrupt.pending)
		return -EEXIST;
	vcpu->arch.interrupt.pending = true;
	vcpu->arch.interrupt.nr = irq;
	okvm_make_request(vcpu, OKVM_REQ_EVENT);
	return 0;
}

/**
 * okvm_vcpu_nmi - KVM_NMI
 * @vcpu: the vCPU
 */
void okvm_vcpu_nmi(struct okvm_vcpu *vcpu)
{
	vcpu->arch.nmi.pending = true;
	okvm_make_request(vcpu, OKVM_REQ_EVENT);
}

/**
 * okvm_ready_for_interrupt - could KVM_INTERRUPT be delivered right away
 * @vcpu: the vCPU
 *
 * Return: true when RFLAGS.IF is set, there is no interrupt shadow and no
 * event is waiting for (re)delivery.
 */
bool okvm_ready_for_interrupt(struct okvm_vcpu *vcpu)
{
	struct okvm_vcpu_arch *a = &vcpu->arch;

	return okvm_x86_ops->interrupt_allowed(vcpu) &&
	       !a->interrupt.pending && !a->interrupt.injected &&
	       !a->exception.pending && !a->exception.injected &&
	       !a->nmi.injected;
}

/**
 * okvm_inject_pending_events - program the next event before an entry
 * @vcpu: the vCPU
 *
 * Called before every entry. Re-delivers an interrupted event first, then
 * a new exception, NMI or interrupt, and asks for an exit as soon as a
 * blocked NMI or interrupt (or the window userspace asked for) could go in.
 */
void okvm_inject_pending_events(struct okvm_vcpu *vcpu)
{
	const struct okvm_x86_ops *ops = okvm_x86_ops;
	struct okvm_vcpu_arch *a = &vcpu->arch;

	if (a->exception.injected) {
		ops->inject_event(vcpu, &a->exception, OKVM_EVENT_EXCEPTION);
	} else if (a->nmi.injected) {
		ops->inject_event(vcpu, &a->nmi, OKVM_EVENT_NMI);
		a->nmi_masked = true;
	} else if (a->interrupt.injected) {
		ops->inject_event(vcpu, &a->interrupt, OKVM_EVENT_INTR);
	} else if (a->exception.pending) {
		a->exception.pending = false;
		a->exception.injected = true;
		ops->inject_event(vcpu, &a->exception, OKVM_EVENT_EXCEPTION);
	} else if (a->nmi.pending && ops->nmi_allowed(vcpu)) {
		a->nmi.pending = false;
		a->nmi.injected = true;
		a->nmi_masked = true;
		ops->inject_event(vcpu, &a->nmi, OKVM_EVENT_NMI);
	} else if (a->interrupt.pending && ops->interrupt_allowed(vcpu)) {
		a->interrupt.pending = false;
		a->interrupt.injected = true;
		ops->inject_event(vcpu, &a->interrupt, OKVM_EVENT_INTR);
	}

	if (a->nmi.pending)
		ops->enable_nmi_window(vcpu);
	if (a->interrupt.pending || vcpu->run->request_interrupt_window)
		ops->enable_irq_window(vcpu);
}

/**
 * okvm_get_vcpu_events - KVM_GET_VCPU_EVENTS
 * @vcpu: the vCPU
 * @ev: filled in
 */
void okvm_get_vcpu_events(struct okvm_vcpu *vcpu, struct kvm_vcpu_events *ev)
{
	struct okvm_vcpu_arch *a = &vcpu->arch;

	memset(ev, 0, sizeof(*ev));
	ev->exception.injected = a->exception.injected || a->exception.pending;
	ev->exception.nr = a->exception.nr;
	ev->exception.has_error_code = a->exception.has_error_code;
	ev->exception.error_code = a->exception.error_code;
	ev->interrupt.injected = a->interrupt.injected || a->interrupt.pending;
	ev->interrupt.nr = a->interrupt.nr;
	ev->interrupt.shadow = okvm_x86_ops->get_int_shadow(vcpu);
	ev->nmi.injected = a->nmi.injected;
	ev->nmi.pending = a->nmi.pending;
	ev->nmi.masked = a->nmi_masked;
	ev->flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW;
}

/**
 * okvm_set_vcpu_events - KVM_SET_VCPU_EVENTS
 * @vcpu: the vCPU
 * @ev: the new state
 *
 * Return: 0, or -EINVAL for unknown flags or an impossible state.
 */
int okvm_set_vcpu_events(struct okvm_vcpu *vcpu,
			 const struct kvm_vcpu_events *ev)
{
	struct okvm_vcpu_arch *a = &vcpu->arch;

	if (ev->flags & ~(KVM_VCPUEVENT_VALID_NMI_PENDING |
			  KVM_VCPUEVENT_VALID_SHADOW |
			  KVM_VCPUEVENT_VALID_SIPI_VECTOR))
		return -EINVAL;
	if (ev->exception.injected &&
	    (ev->exception.nr >= 32 || ev->exception.nr == OKVM_NMI_VECTOR))
		return -EINVAL;
	if (ev->exception.pending || ev->exception.injected > 1 ||
	    ev->interrupt.injected > 1 || ev->nmi.injected > 1 ||
	    ev->nmi.masked > 1)
		return -EINVAL;

	a->exception.pending = false;
	a->exception.injected = ev->exception.injected;
	a->exception.nr = ev->exception.nr;
	a->exception.has_error_code = ev->exception.has_error_code;
	a->exception.error_code = ev->exception.error_code;

	a->interrupt.pending = false;
	a->interrupt.injected = ev->interrupt.injected && !ev->interrupt.soft;
	a->interrupt.nr = ev->interrupt.nr;
	if (ev->flags & KVM_VCPUEVENT_VALID_SHADOW)
		okvm_x86_ops->set_int_shadow(vcpu, ev->interrupt.shadow);

	a->nmi.injected = ev->nmi.injected;
	if (ev->flags & KVM_VCPUEVENT_VALID_NMI_PENDING)
		a->nmi.pending = ev->nmi.pending;
	a->nmi_masked = ev->nmi.masked;
	okvm_make_request(vcpu, OKVM_REQ_EVENT);
	return 0;
}
