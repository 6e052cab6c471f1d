/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * onekvm: the AMD Virtual Machine Control Block, as laid out in the AMD64
 * Architecture Programmer's Manual vol. 2, appendix B.
 *
 * The kernel's <asm/svm.h> is not used: it pulls in the kernel's own KVM
 * uapi header (clashing with <onekvm/kvm.h>) and its field names moved
 * between 6.1 and 6.12. Only the fields onekvm touches are named.
 */
#ifndef _ONEKVM_SVM_VMCB_H
#define _ONEKVM_SVM_VMCB_H

#include <linux/types.h>
#include <linux/build_bug.h>
#include <linux/stddef.h>

/* Intercept vector 3 (control area offset 0x0c) */
#define OKVM_ICPT_INTR		BIT(0)
#define OKVM_ICPT_NMI		BIT(1)
#define OKVM_ICPT_SMI		BIT(2)
#define OKVM_ICPT_INIT		BIT(3)
#define OKVM_ICPT_VINTR		BIT(4)
#define OKVM_ICPT_RDPMC		BIT(15)
#define OKVM_ICPT_CPUID		BIT(18)
#define OKVM_ICPT_RSM		BIT(19)
#define OKVM_ICPT_IRET		BIT(20)
#define OKVM_ICPT_INVD		BIT(22)
#define OKVM_ICPT_HLT		BIT(24)
#define OKVM_ICPT_INVLPGA	BIT(26)
#define OKVM_ICPT_IOIO		BIT(27)
#define OKVM_ICPT_MSR		BIT(28)
#define OKVM_ICPT_TASK_SWITCH	BIT(29)
#define OKVM_ICPT_FERR_FREEZE	BIT(30)
#define OKVM_ICPT_SHUTDOWN	BIT(31)

/* Intercept vector 4 (control area offset 0x10) */
#define OKVM_ICPT_VMRUN		BIT(0)
#define OKVM_ICPT_VMMCALL	BIT(1)
#define OKVM_ICPT_VMLOAD	BIT(2)
#define OKVM_ICPT_VMSAVE	BIT(3)
#define OKVM_ICPT_STGI		BIT(4)
#define OKVM_ICPT_CLGI		BIT(5)
#define OKVM_ICPT_SKINIT	BIT(6)
#define OKVM_ICPT_ICEBP		BIT(8)
#define OKVM_ICPT_MONITOR	BIT(10)
#define OKVM_ICPT_MWAIT		BIT(11)
#define OKVM_ICPT_MWAIT_COND	BIT(12)
#define OKVM_ICPT_XSETBV	BIT(13)
#define OKVM_ICPT_RDPRU		BIT(14)

/* Intercept vector 5 (control area offset 0x14) */
#define OKVM_ICPT_INVLPGB	BIT(0)
#define OKVM_ICPT_INVLPGB_ILL	BIT(1)
#define OKVM_ICPT_INVPCID	BIT(2)
#define OKVM_ICPT_MCOMMIT	BIT(3)
#define OKVM_ICPT_TLBSYNC	BIT(4)

/* tlb_ctl */
#define OKVM_TLB_NOTHING	0
#define OKVM_TLB_FLUSH_ALL	1
#define OKVM_TLB_FLUSH_ASID	3

/* int_ctl */
#define OKVM_V_TPR_MASK		0xfU
#define OKVM_V_IRQ		BIT(8)
#define OKVM_V_INTR_PRIO_SHIFT	16
#define OKVM_V_IGN_TPR		BIT(20)
#define OKVM_V_INTR_MASKING	BIT(24)

/* int_state */
#define OKVM_INT_SHADOW		BIT(0)

/* nested_ctl */
#define OKVM_NESTED_NP_ENABLE	BIT(0)

/* event_inj / exit_int_info */
#define OKVM_EVT_VEC_MASK	0xffU
#define OKVM_EVT_TYPE_MASK	(7U << 8)
#define OKVM_EVT_TYPE_INTR	(0U << 8)
#define OKVM_EVT_TYPE_NMI	(2U << 8)
#define OKVM_EVT_TYPE_EXCEPT	(3U << 8)
#define OKVM_EVT_TYPE_SOFT	(4U << 8)
#define OKVM_EVT_VALID_ERR	BIT(11)
#define OKVM_EVT_VALID		BIT(31)

/* IOIO exit_info_1 */
#define OKVM_IOIO_IN		BIT(0)
#define OKVM_IOIO_STR		BIT(2)
#define OKVM_IOIO_REP		BIT(3)
#define OKVM_IOIO_SIZE_SHIFT	4
#define OKVM_IOIO_SIZE_MASK	(7U << 4)
#define OKVM_IOIO_ASIZE_SHIFT	7
#define OKVM_IOIO_ASIZE_MASK	(7U << 7)

/* NPF exit_info_1 */
#define OKVM_NPF_PRESENT	BIT_ULL(0)
#define OKVM_NPF_WRITE		BIT_ULL(1)
#define OKVM_NPF_USER		BIT_ULL(2)
#define OKVM_NPF_RSVD		BIT_ULL(3)
#define OKVM_NPF_FETCH		BIT_ULL(4)
#define OKVM_NPF_GUEST_PAGE	BIT_ULL(32)
#define OKVM_NPF_GUEST_TABLE	BIT_ULL(33)

/* Exit codes */
#define OKVM_EXIT_READ_DR0	0x020
#define OKVM_EXIT_READ_DR7	0x027
#define OKVM_EXIT_WRITE_DR0	0x030
#define OKVM_EXIT_WRITE_DR7	0x037
#define OKVM_EXIT_EXCP_BASE	0x040
#define OKVM_EXIT_INTR		0x060
#define OKVM_EXIT_NMI		0x061
#define OKVM_EXIT_SMI		0x062
#define OKVM_EXIT_INIT		0x063
#define OKVM_EXIT_VINTR		0x064
#define OKVM_EXIT_RDPMC		0x06f
#define OKVM_EXIT_CPUID		0x072
#define OKVM_EXIT_RSM		0x073
#define OKVM_EXIT_IRET		0x074
#define OKVM_EXIT_INVD		0x076
#define OKVM_EXIT_PAUSE		0x077
#define OKVM_EXIT_HLT		0x078
#define OKVM_EXIT_INVLPGA	0x07a
#define OKVM_EXIT_IOIO		0x07b
#define OKVM_EXIT_MSR		0x07c
#define OKVM_EXIT_TASK_SWITCH	0x07d
#define OKVM_EXIT_FERR_FREEZE	0x07e
#define OKVM_EXIT_SHUTDOWN	0x07f
#define OKVM_EXIT_VMRUN		0x080
#define OKVM_EXIT_VMMCALL	0x081
#define OKVM_EXIT_VMLOAD	0x082
#define OKVM_EXIT_VMSAVE	0x083
#define OKVM_EXIT_STGI		0x084
#define OKVM_EXIT_CLGI		0x085
#define OKVM_EXIT_SKINIT	0x086
#define OKVM_EXIT_ICEBP		0x088
#define OKVM_EXIT_MONITOR	0x08a
#define OKVM_EXIT_MWAIT		0x08b
#define OKVM_EXIT_MWAIT_COND	0x08c
#define OKVM_EXIT_XSETBV	0x08d
#define OKVM_EXIT_RDPRU		0x08e
#define OKVM_EXIT_INVLPGB	0x0a0
#define OKVM_EXIT_INVLPGB_ILL	0x0a1
#define OKVM_EXIT_INVPCID	0x0a2
#define OKVM_EXIT_MCOMMIT	0x0a3
#define OKVM_EXIT_TLBSYNC	0x0a4
#define OKVM_EXIT_NPF		0x400
#define OKVM_EXIT_INVALID	((u64)-1)

/**
 * struct okvm_vmcb_seg - a segment register in the VMCB save area
 * @selector: visible selector
 * @attrib: type(3:0) S(4) DPL(6:5) P(7) AVL(8) L(9) D/B(10) G(11)
 * @limit: byte-granular limit
 * @base: base address
 */
struct okvm_vmcb_seg {
	u16 selector;
	u16 attrib;
	u32 limit;
	u64 base;
} __packed;

/**
 * struct okvm_vmcb_control - VMCB control area (offset 0x000)
 * @intercepts: intercept vectors 0..5 (CR, DR, exceptions, misc 3..5)
 * @rsvd0: reserved
 * @pause_thresh: pause filter threshold
 * @pause_count: pause filter count
 * @iopm_base_pa: physical address of the IO permission map
 * @msrpm_base_pa: physical address of the MSR permission map
 * @tsc_offset: added to the host TSC for guest reads
 * @asid: guest address space id, never 0
 * @tlb_ctl: OKVM_TLB_*
 * @rsvd1: reserved
 * @int_ctl: virtual interrupt control
 * @int_vector: vector of the virtual interrupt
 * @int_state: interrupt shadow
 * @rsvd2: reserved
 * @exit_code: #VMEXIT code
 * @exit_info_1: exit information 1
 * @exit_info_2: exit information 2
 * @exit_int_info: event being delivered when the exit happened
 * @exit_int_info_err: its error code
 * @nested_ctl: nested paging enable
 * @avic_bar: AVIC APIC BAR
 * @ghcb_gpa: GHCB (SEV-ES)
 * @event_inj: event to inject on VMRUN
 * @event_inj_err: its error code
 * @nested_cr3: root of the nested page table
 * @virt_ext: LBR and virtual VMSAVE/VMLOAD enables
 * @clean: VMCB clean bits
 * @rsvd3: reserved
 * @next_rip: next sequential RIP (NRIP save; 0 when unsupported)
 * @insn_len: bytes fetched (decode assists)
 * @insn_bytes: the bytes fetched
 * @rsvd4: up to the save area
 */
struct okvm_vmcb_control {
	u32 intercepts[6];
	u32 rsvd0[9];
	u16 pause_thresh;
	u16 pause_count;
	u64 iopm_base_pa;
	u64 msrpm_base_pa;
	u64 tsc_offset;
	u32 asid;
	u8 tlb_ctl;
	u8 rsvd1[3];
	u32 int_ctl;
	u32 int_vector;
	u32 int_state;
	u32 rsvd2;
	u64 exit_code;
	u64 exit_info_1;
	u64 exit_info_2;
	u32 exit_int_info;
	u32 exit_int_info_err;
	u64 nested_ctl;
	u64 avic_bar;
	u64 ghcb_gpa;
	u32 event_inj;
	u32 event_inj_err;
	u64 nested_cr3;
	u64 virt_ext;
	u32 clean;
	u32 rsvd3;
	u64 next_rip;
	u8 insn_len;
	u8 insn_bytes[15];
	u8 rsvd4[0x400 - 0xe0];
} __packed;

/**
 * struct okvm_vmcb_save - VMCB state save area (offset 0x400)
 * @es: ES
 * @cs: CS
 * @ss: SS
 * @ds: DS
 * @fs: FS (VMLOAD/VMSAVE)
 * @gs: GS (VMLOAD/VMSAVE)
 * @gdtr: GDTR (base and limit only)
 * @ldtr: LDTR (VMLOAD/VMSAVE)
 * @idtr: IDTR (base and limit only)
 * @tr: TR (VMLOAD/VMSAVE)
 * @rsvd0: reserved
 * @cpl: current privilege level
 * @rsvd1: reserved
 * @efer: EFER
 * @rsvd2: reserved
 * @cr4: CR4
 * @cr3: CR3
 * @cr0: CR0
 * @dr7: DR7
 * @dr6: DR6
 * @rflags: RFLAGS
 * @rip: RIP
 * @rsvd3: reserved
 * @rsp: RSP
 * @s_cet: S_CET
 * @ssp: SSP
 * @isst_addr: ISST_ADDR
 * @rax: RAX
 * @star: STAR (VMLOAD/VMSAVE)
 * @lstar: LSTAR (VMLOAD/VMSAVE)
 * @cstar: CSTAR (VMLOAD/VMSAVE)
 * @sfmask: SFMASK (VMLOAD/VMSAVE)
 * @kernel_gs_base: KernelGSbase (VMLOAD/VMSAVE)
 * @sysenter_cs: SYSENTER_CS (VMLOAD/VMSAVE)
 * @sysenter_esp: SYSENTER_ESP (VMLOAD/VMSAVE)
 * @sysenter_eip: SYSENTER_EIP (VMLOAD/VMSAVE)
 * @cr2: CR2
 * @rsvd4: reserved
 * @g_pat: guest PAT (nested paging)
 * @dbgctl: DebugCtl (LBR virtualization)
 * @rsvd5: up to the end of the page
 */
struct okvm_vmcb_save {
	struct okvm_vmcb_seg es, cs, ss, ds, fs, gs;
	struct okvm_vmcb_seg gdtr, ldtr, idtr, tr;
	u8 rsvd0[43];
	u8 cpl;
	u32 rsvd1;
	u64 efer;
	u8 rsvd2[112];
	u64 cr4;
	u64 cr3;
	u64 cr0;
	u64 dr7;
	u64 dr6;
	u64 rflags;
	u64 rip;
	u8 rsvd3[88];
	u64 rsp;
	u64 s_cet;
	u64 ssp;
	u64 isst_addr;
	u64 rax;
	u64 star;
	u64 lstar;
	u64 cstar;
	u64 sfmask;
	u64 kernel_gs_base;
	u64 sysenter_cs;
	u64 sysenter_esp;
	u64 sysenter_eip;
	u64 cr2;
	u8 rsvd4[32];
	u64 g_pat;
	u64 dbgctl;
	u8 rsvd5[0xc00 - 0x278];
} __packed;

/**
 * struct okvm_vmcb - one 4 KiB VMCB
 * @control: control area
 * @save: state save area
 */
struct okvm_vmcb {
	struct okvm_vmcb_control control;
	struct okvm_vmcb_save save;
} __packed;

static_assert(offsetof(struct okvm_vmcb_control, iopm_base_pa) == 0x40);
static_assert(offsetof(struct okvm_vmcb_control, int_ctl) == 0x60);
static_assert(offsetof(struct okvm_vmcb_control, exit_code) == 0x70);
static_assert(offsetof(struct okvm_vmcb_control, nested_ctl) == 0x90);
static_assert(offsetof(struct okvm_vmcb_control, event_inj) == 0xa8);
static_assert(offsetof(struct okvm_vmcb_control, next_rip) == 0xc8);
static_assert(offsetof(struct okvm_vmcb_save, cpl) == 0xcb);
static_assert(offsetof(struct okvm_vmcb_save, efer) == 0xd0);
static_assert(offsetof(struct okvm_vmcb_save, cr4) == 0x148);
static_assert(offsetof(struct okvm_vmcb_save, rsp) == 0x1d8);
static_assert(offsetof(struct okvm_vmcb_save, rax) == 0x1f8);
static_assert(offsetof(struct okvm_vmcb_save, cr2) == 0x240);
static_assert(offsetof(struct okvm_vmcb_save, g_pat) == 0x268);
static_assert(sizeof(struct okvm_vmcb) == 4096);

#endif /* _ONEKVM_SVM_VMCB_H */
