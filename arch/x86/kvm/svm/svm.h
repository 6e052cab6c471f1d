/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * onekvm: AMD SVM backend, internal declarations.
 */
#ifndef _ONEKVM_SVM_H
#define _ONEKVM_SVM_H

#include <linux/percpu.h>
#include "../x86.h"
#include "vmcb.h"

/* Permission map sizes (APM 15.10, 15.11) */
#define OKVM_IOPM_ORDER		2	/* 12 KiB used */
#define OKVM_MSRPM_ORDER	1	/* 8 KiB */

/**
 * struct okvm_svm_cpu - per host CPU state
 * @enabled: this module set EFER.SVME here
 * @saved_efer: EFER found before enabling
 * @saved_hsave: MSR_VM_HSAVE_PA found before enabling
 * @hsave: host state save area given to MSR_VM_HSAVE_PA
 * @host_vmcb: VMSAVE/VMLOAD area for the host's FS/GS/TR/LDTR/syscall MSRs
 * @asid_generation: bumped when this CPU's ASIDs wrap (needs a full flush)
 * @next_asid: next ASID to hand out
 * @max_asid: highest usable ASID
 * @last_vcpu: vCPU that last ran here (VMCB state is per CPU)
 */
struct okvm_svm_cpu {
	bool enabled;
	u64 saved_efer;
	u64 saved_hsave;
	struct page *hsave;
	struct page *host_vmcb;
	u64 asid_generation;
	u32 next_asid;
	u32 max_asid;
	void *last_vcpu;
};

DECLARE_PER_CPU(struct okvm_svm_cpu, okvm_svm_cpu_data);

/**
 * struct okvm_svm_vm - per VM SVM state
 * @npt_root: top-level nested page table page
 * @npt_levels: 4 or 5, the host's paging depth
 */
struct okvm_svm_vm {
	struct page *npt_root;
	int npt_levels;
};

/* Pages kept ready so the NPT fault path never allocates under mmu_lock. */
#define OKVM_NPT_CACHE	6

/**
 * struct okvm_svm_vcpu - per vCPU SVM state
 * @vmcb: the VMCB
 * @vmcb_pa: its physical address
 * @asid_generation: generation of @vmcb's ASID on @asid_cpu
 * @asid_cpu: host CPU the ASID belongs to
 * @flush_pending: flush the guest TLB on the next entry
 * @vmrun_pa: physical address passed to VMRUN (== @vmcb_pa)
 * @npt_cache: preallocated page-table pages
 * @npt_cache_nr: how many of @npt_cache are valid
 * @guest_efer: EFER as the guest sees it (SVME clear)
 * @iret_rip: RIP of the intercepted IRET ending an NMI handler
 * @awaiting_iret: NMIs unmask once RIP moved past @iret_rip
 * @save_backup: save area at KVM_RUN entry, restored after a failed VMRUN
 * @entry_if: RFLAGS.IF at the last VMRUN
 */
struct okvm_svm_vcpu {
	struct okvm_vmcb *vmcb;
	u64 vmcb_pa;
	u64 asid_generation;
	int asid_cpu;
	bool flush_pending;
	u64 vmrun_pa;
	struct page *npt_cache[OKVM_NPT_CACHE];
	int npt_cache_nr;
	u64 guest_efer;
	u64 iret_rip;
	bool awaiting_iret;
	void *save_backup;
	bool entry_if;
};

/**
 * to_svm - the SVM state of a vCPU
 * @vcpu: the vCPU
 *
 * Return: its struct okvm_svm_vcpu.
 */
static inline struct okvm_svm_vcpu *to_svm(struct okvm_vcpu *vcpu)
{
	return vcpu->arch.vendor;
}

/**
 * to_svm_vm - the SVM state of a VM
 * @kvm: the VM
 *
 * Return: its struct okvm_svm_vm.
 */
static inline struct okvm_svm_vm *to_svm_vm(struct okvm *kvm)
{
	return kvm->arch.vendor;
}

/* hw.c */
extern u32 okvm_svm_features;	/* CPUID 0x8000000a EDX */
#define OKVM_SVM_NRIPS		BIT(3)
#define OKVM_SVM_FLUSHBYASID	BIT(6)
extern struct page *okvm_iopm_pages;
extern struct page *okvm_msrpm_pages;
int okvm_svm_hardware_setup(void);
void okvm_svm_hardware_unsetup(void);
int okvm_svm_hardware_enable(void);
void okvm_svm_hardware_disable(void);
void okvm_svm_assign_asid(struct okvm_svm_vcpu *svm, int cpu);
bool okvm_svm_cpu_ready(void);

/* npt.c */
int okvm_npt_vm_init(struct okvm *kvm);
void okvm_npt_vm_destroy(struct okvm *kvm);
void okvm_npt_memslot_remove(struct okvm *kvm, struct okvm_memslot *slot);
int okvm_npt_topup(struct okvm_vcpu *vcpu);
void okvm_npt_free_cache(struct okvm_vcpu *vcpu);
int okvm_npt_fault(struct okvm_vcpu *vcpu, u64 gpa, u64 error_code);

/* exits.c */
int okvm_svm_handle_exit(struct okvm_vcpu *vcpu);
void okvm_svm_complete_interrupts(struct okvm_vcpu *vcpu);

/* vmenter.S */
void __okvm_svm_vmrun(unsigned long vmcb_pa, unsigned long *regs,
		      unsigned long host_save_pa);

#endif /* _ONEKVM_SVM_H */
