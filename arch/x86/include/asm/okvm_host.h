/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * onekvm: x86 architecture state embedded in the generic VM and vCPU
 * objects (struct okvm_arch, struct okvm_vcpu_arch).
 *
 * Only x86-common state lives here; the vendor backend (SVM today, VMX
 * later) keeps its own state behind the @vendor pointers, reached through
 * struct okvm_x86_ops (arch/x86/kvm/x86.h).
 */
#ifndef _ASM_X86_OKVM_HOST_H
#define _ASM_X86_OKVM_HOST_H

#include <linux/types.h>
#include <asm/fpu/types.h>
#include <onekvm/kvm.h>

/* Index of each general purpose register in okvm_vcpu_arch.regs. */
enum okvm_reg {
	OKVM_RAX, OKVM_RCX, OKVM_RDX, OKVM_RBX,
	OKVM_RSP, OKVM_RBP, OKVM_RSI, OKVM_RDI,
	OKVM_R8, OKVM_R9, OKVM_R10, OKVM_R11,
	OKVM_R12, OKVM_R13, OKVM_R14, OKVM_R15,
	OKVM_NR_REGS
};

/* Segment register indices for the vendor segment accessors. */
enum okvm_seg {
	OKVM_SEG_ES, OKVM_SEG_CS, OKVM_SEG_SS, OKVM_SEG_DS,
	OKVM_SEG_FS, OKVM_SEG_GS, OKVM_SEG_TR, OKVM_SEG_LDTR,
	OKVM_NR_SEGS
};

/* Number of variable-range MTRR pairs offered to the guest. */
struct okvm_vcpu;

#define OKVM_NR_VAR_MTRR	8
#define OKVM_NR_FIXED_MTRR	11
#define OKVM_MAX_CPUID_ENTRIES	256

/**
 * struct okvm_pio_state - an IO exit waiting for userspace
 * @port: first port
 * @size: bytes per element (1, 2 or 4)
 * @count: elements transferred by this exit
 * @in: true for IN/INS
 * @string: INS/OUTS
 * @rep: REP prefix: RCX counts elements
 * @addr_mask: mask of the string address size (0xffff, 0xffffffff, ~0)
 * @next_rip: RIP after the instruction
 * @rip: RIP of the instruction (the exit is abandoned if it changes)
 */
struct okvm_pio_state {
	u16 port;
	u8 size;
	u32 count;
	bool in;
	bool string;
	bool rep;
	u64 addr_mask;
	u64 next_rip;
	u64 rip;
};

/**
 * struct okvm_event - an exception, interrupt or NMI in flight
 * @pending: raised but not yet delivered
 * @injected: handed to the hardware (or cut short by an exit) and must
 *	be delivered again on the next entry
 * @nr: vector
 * @has_error_code: an error code is pushed
 * @error_code: that error code
 */
struct okvm_event {
	bool pending;
	bool injected;
	u8 nr;
	bool has_error_code;
	u32 error_code;
};

/**
 * struct okvm_vcpu_arch - x86 state of one vCPU
 * @regs: general purpose registers, indexed by enum okvm_reg
 * @rip: instruction pointer
 * @rflags: flags
 * @guest_fpu: guest FPU/XSAVE state, swapped with the host's around KVM_RUN
 * @xcr0: the guest's XCR0 (XSETBV, KVM_SET_XCRS), loaded around VMRUN
 *	while the guest has CR4.OSXSAVE
 * @cpuid: the table set by KVM_SET_CPUID2
 * @cpuid_nent: its number of entries
 * @apic_base: IA32_APIC_BASE as seen by the guest
 * @misc_enable: IA32_MISC_ENABLE
 * @tsc_aux: TSC_AUX (kept in software: RDTSCP/RDPID are not offered)
 * @hwcr: AMD HWCR
 * @de_cfg: AMD DE_CFG
 * @mtrr_def_type: MTRRdefType
 * @mtrr_fixed: the fixed-range MTRRs
 * @mtrr_var: variable-range base/mask pairs
 * @db: DR0..DR3 (emulated; guest breakpoints are not armed)
 * @dr6: DR6 as last written by the guest
 * @dr7: DR7 as last written by the guest
 * @exception: pending or injected exception
 * @interrupt: external interrupt from KVM_INTERRUPT
 * @nmi: NMI from KVM_NMI
 * @nmi_masked: the guest runs an NMI handler (until its IRET)
 * @mp_state: KVM_MP_STATE_*
 * @kvmclock_msr: MSR_KVM_SYSTEM_TIME(_NEW) as written by the guest
 * @kvmclock_version: version field of the last pvclock structure written
 * @pio: IO exit in progress, valid while @complete_userspace is set
 * @complete_userspace: run on the next KVM_RUN to finish an exit
 * @emul: state of the MMIO emulator between exit and completion
 * @vendor: backend state (struct okvm_svm_vcpu for SVM)
 */
struct okvm_vcpu_arch {
	unsigned long regs[OKVM_NR_REGS];
	unsigned long rip;
	unsigned long rflags;
	struct fpu_guest guest_fpu;
	u64 xcr0;
	struct kvm_cpuid_entry2 *cpuid;
	int cpuid_nent;
	u64 apic_base;
	u64 misc_enable;
	u64 tsc_aux;
	u64 hwcr;
	u64 de_cfg;
	u64 mtrr_def_type;
	u64 mtrr_fixed[OKVM_NR_FIXED_MTRR];
	u64 mtrr_var[2 * OKVM_NR_VAR_MTRR];
	u64 db[4];
	u64 dr6;
	u64 dr7;
	struct okvm_event exception;
	struct okvm_event interrupt;
	struct okvm_event nmi;
	bool nmi_masked;
	u32 mp_state;
	u64 kvmclock_msr;
	u32 kvmclock_version;
	struct okvm_pio_state pio;
	int (*complete_userspace)(struct okvm_vcpu *vcpu);
	void *emul;
	void *vendor;
};

/**
 * struct okvm_arch - x86 state of one VM
 * @tss_addr: KVM_SET_TSS_ADDR value (recorded, unused with SVM)
 * @identity_map_addr: KVM_SET_IDENTITY_MAP_ADDR value (recorded, unused)
 * @tsc_offset: guest TSC minus host TSC at vCPU reset (guest TSC 0 at VM
 *	creation, the same on every vCPU)
 * @wall_clock_ns: real time at VM creation (kvmclock time 0)
 * @wall_clock_msr: MSR_KVM_WALL_CLOCK(_NEW) as last written
 * @kvmclock_mul: guest TSC to nanoseconds multiplier (pvclock format)
 * @kvmclock_shift: and shift
 * @vendor: backend state (struct okvm_svm_vm for SVM)
 */
struct okvm_arch {
	u64 tss_addr;
	u64 identity_map_addr;
	u64 tsc_offset;
	u64 wall_clock_ns;
	u64 wall_clock_msr;
	u32 kvmclock_mul;
	s8 kvmclock_shift;
	void *vendor;
};

#endif /* _ASM_X86_OKVM_HOST_H */
