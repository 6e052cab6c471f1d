/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * onekvm: x86-common declarations shared by x86.c, cpuid.c, msr.c, irq.c
 * and the vendor backends, and the vendor ops table.
 */
#ifndef _ONEKVM_X86_H
#define _ONEKVM_X86_H

#include <onekvm/kvm_host.h>

/* Arch requests (struct okvm_vcpu.requests) */
#define OKVM_REQ_EVENT		(OKVM_REQ_ARCH_BASE + 0)

/* Exception vectors */
#define OKVM_DE_VECTOR	0
#define OKVM_DB_VECTOR	1
#define OKVM_NMI_VECTOR	2
#define OKVM_BP_VECTOR	3
#define OKVM_OF_VECTOR	4
#define OKVM_UD_VECTOR	6
#define OKVM_DF_VECTOR	8
#define OKVM_TS_VECTOR	10
#define OKVM_NP_VECTOR	11
#define OKVM_SS_VECTOR	12
#define OKVM_GP_VECTOR	13
#define OKVM_PF_VECTOR	14
#define OKVM_AC_VECTOR	17

/* Vendor exit handlers return one of these, or a negative errno. */
#define OKVM_EXIT_TO_USER	0
#define OKVM_EXIT_HANDLED	1

/**
 * struct okvm_x86_ops - what a virtualization backend (SVM, VMX) provides
 * @name: "svm", "vmx"
 * @hardware_setup: module load: probe the CPU, allocate global state
 * @hardware_unsetup: module unload
 * @hardware_enable: turn the extension on, on every online CPU (-EBUSY if
 *	someone else holds it)
 * @hardware_disable: turn it off everywhere, restoring what was found
 * @vm_init: allocate per-VM state (nested page tables)
 * @vm_destroy: free it
 * @memslot_remove: unmap a slot's frames (kvm->mmu_lock held)
 * @vcpu_create: allocate per-vCPU state
 * @vcpu_free: free it
 * @vcpu_reset: put the vCPU in its power-on state
 * @get_segment: read a segment register (enum okvm_seg)
 * @set_segment: write one
 * @get_dt: read GDTR (@idt false) or IDTR
 * @set_dt: write GDTR or IDTR
 * @get_cr: read CR0, CR2, CR3, CR4 or CR8
 * @set_cr: write one (userspace or emulation; no checks)
 * @get_efer: EFER as the guest sees it
 * @set_efer: write EFER as the guest sees it
 * @get_cpl: current privilege level
 * @get_msr: MSRs held in vendor state; -ENOENT if not one of those
 * @set_msr: same for writes; -ENOENT if not one of those
 * @get_int_shadow: KVM_X86_SHADOW_INT_* of the current instruction
 * @set_int_shadow: set it
 * @interrupt_allowed: an external interrupt could be delivered now
 * @nmi_allowed: an NMI could be delivered now
 * @inject_event: program the delivery of @ev of type @type on next entry
 * @enable_irq_window: exit as soon as an interrupt could be delivered
 * @enable_nmi_window: exit as soon as the guest's NMI handler returns
 * @tlb_flush: flush the guest's TLB entries on next entry
 * @run_begin: KVM_RUN starts (before the first entry)
 * @run: enter the guest once and handle the exit
 */
struct okvm_x86_ops {
	const char *name;
	int (*hardware_setup)(void);
	void (*hardware_unsetup)(void);
	int (*hardware_enable)(void);
	void (*hardware_disable)(void);
	int (*vm_init)(struct okvm *kvm);
	void (*vm_destroy)(struct okvm *kvm);
	void (*memslot_remove)(struct okvm *kvm, struct okvm_memslot *slot);
	int (*vcpu_create)(struct okvm_vcpu *vcpu);
	void (*vcpu_free)(struct okvm_vcpu *vcpu);
	void (*vcpu_reset)(struct okvm_vcpu *vcpu);
	void (*get_segment)(struct okvm_vcpu *vcpu, struct kvm_segment *var,
			    int seg);
	void (*set_segment)(struct okvm_vcpu *vcpu,
			    const struct kvm_segment *var, int seg);
	void (*get_dt)(struct okvm_vcpu *vcpu, struct kvm_dtable *dt, bool idt);
	void (*set_dt)(struct okvm_vcpu *vcpu, const struct kvm_dtable *dt,
		       bool idt);
	u64 (*get_cr)(struct okvm_vcpu *vcpu, int cr);
	void (*set_cr)(struct okvm_vcpu *vcpu, int cr, u64 val);
	u64 (*get_efer)(struct okvm_vcpu *vcpu);
	void (*set_efer)(struct okvm_vcpu *vcpu, u64 efer);
	int (*get_cpl)(struct okvm_vcpu *vcpu);
	int (*get_msr)(struct okvm_vcpu *vcpu, u32 index, u64 *data);
	int (*set_msr)(struct okvm_vcpu *vcpu, u32 index, u64 data);
	u32 (*get_int_shadow)(struct okvm_vcpu *vcpu);
	void (*set_int_shadow)(struct okvm_vcpu *vcpu, u32 mask);
	bool (*interrupt_allowed)(struct okvm_vcpu *vcpu);
	bool (*nmi_allowed)(struct okvm_vcpu *vcpu);
	void (*inject_event)(struct okvm_vcpu *vcpu,
			     const struct okvm_event *ev, int type);
	void (*enable_irq_window)(struct okvm_vcpu *vcpu);
	void (*enable_nmi_window)(struct okvm_vcpu *vcpu);
	void (*tlb_flush)(struct okvm_vcpu *vcpu);
	void (*run_begin)(struct okvm_vcpu *vcpu);
	int (*run)(struct okvm_vcpu *vcpu);
};

/* Event types for okvm_x86_ops.inject_event */
enum okvm_event_type {
	OKVM_EVENT_EXCEPTION,
	OKVM_EVENT_NMI,
	OKVM_EVENT_INTR,
};

extern const struct okvm_x86_ops *okvm_x86_ops;
extern u64 okvm_host_xcr0;
extern u64 okvm_supported_xcr0;
u64 okvm_guest_supported_xcr0(struct okvm_vcpu *vcpu);
int okvm_set_xcr0(struct okvm_vcpu *vcpu, u64 xcr0);
u32 okvm_xstate_size(u64 xcr0);
extern struct okvm_x86_ops okvm_svm_ops;

struct okvm_insn;

/* x86.c */
int okvm_internal_error(struct okvm_vcpu *vcpu, u32 suberror, int ndata,
			const u64 *data);

/* io.c */
int okvm_emul_alloc(struct okvm_vcpu *vcpu);
void okvm_emul_free(struct okvm_vcpu *vcpu);
void okvm_emul_reset(struct okvm_vcpu *vcpu);
bool okvm_in_64bit_mode(struct okvm_vcpu *vcpu);
void okvm_dump_walk(struct okvm_vcpu *vcpu, const char *what, u64 la);
int okvm_read_linear(struct okvm_vcpu *vcpu, u64 la, void *buf,
		     unsigned int len);
int okvm_skip_instruction(struct okvm_vcpu *vcpu, u64 next_rip);
bool okvm_decode_insn(struct okvm_vcpu *vcpu, struct okvm_insn *insn,
		      int *ret);
int okvm_handle_pio(struct okvm_vcpu *vcpu, u16 port, u8 size, bool in,
		    bool string, bool rep, u64 addr_mask, u64 next_rip);
int okvm_handle_mmio(struct okvm_vcpu *vcpu, u64 gpa, bool write);

/* cpuid.c */
int okvm_dev_get_supported_cpuid(struct kvm_cpuid2 __user *ucpuid);
int okvm_vcpu_set_cpuid2(struct okvm_vcpu *vcpu,
			 struct kvm_cpuid2 __user *ucpuid);
int okvm_vcpu_get_cpuid2(struct okvm_vcpu *vcpu,
			 struct kvm_cpuid2 __user *ucpuid);
int okvm_emulate_cpuid(struct okvm_vcpu *vcpu);
const struct kvm_cpuid_entry2 *okvm_find_cpuid(struct okvm_vcpu *vcpu,
					       u32 func, u32 idx);

/* msr.c */
int okvm_get_msr(struct okvm_vcpu *vcpu, u32 index, u64 *data, bool host);
int okvm_set_msr(struct okvm_vcpu *vcpu, u32 index, u64 data, bool host);
int okvm_emulate_rdmsr(struct okvm_vcpu *vcpu);
int okvm_emulate_wrmsr(struct okvm_vcpu *vcpu);
int okvm_dev_get_msr_index_list(struct kvm_msr_list __user *ulist);
int okvm_vcpu_get_msrs(struct okvm_vcpu *vcpu, struct kvm_msrs __user *umsrs);
int okvm_vcpu_set_msrs(struct okvm_vcpu *vcpu, struct kvm_msrs __user *umsrs);
void okvm_msr_reset(struct okvm_vcpu *vcpu);

/* pvclock.c */
void okvm_kvmclock_vm_init(struct okvm *kvm);
int okvm_kvmclock_get_msr(struct okvm_vcpu *vcpu, u32 index, u64 *data);
int okvm_kvmclock_set_msr(struct okvm_vcpu *vcpu, u32 index, u64 data);

/* irq.c */
void okvm_queue_exception(struct okvm_vcpu *vcpu, u8 nr);
void okvm_queue_exception_e(struct okvm_vcpu *vcpu, u8 nr, u32 error_code);
int okvm_vcpu_interrupt(struct okvm_vcpu *vcpu, u32 irq);
void okvm_vcpu_nmi(struct okvm_vcpu *vcpu);
void okvm_inject_pending_events(struct okvm_vcpu *vcpu);
bool okvm_ready_for_interrupt(struct okvm_vcpu *vcpu);
void okvm_get_vcpu_events(struct okvm_vcpu *vcpu,
			  struct kvm_vcpu_events *events);
int okvm_set_vcpu_events(struct okvm_vcpu *vcpu,
			 const struct kvm_vcpu_events *events);

/**
 * okvm_reg_read - read a general purpose register
 * @vcpu: the vCPU
 * @reg: enum okvm_reg index
 *
 * Return: the full 64-bit value.
 */
static inline unsigned long okvm_reg_read(struct okvm_vcpu *vcpu, int reg)
{
	return vcpu->arch.regs[reg];
}

/**
 * okvm_reg_write - write a general purpose register
 * @vcpu: the vCPU
 * @reg: enum okvm_reg index
 * @val: the full 64-bit value
 */
static inline void okvm_reg_write(struct okvm_vcpu *vcpu, int reg,
				  unsigned long val)
{
	vcpu->arch.regs[reg] = val;
}

#endif /* _ONEKVM_X86_H */
