/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * onekvm ABI source: the one description of every constant, struct, union,
 * enum and ioctl shared by onekvm.ko and the Python VMM (tools/kvm).
 *
 * This is a constrained C header (see Documentation/virt/onekvm/abi-source.rst).
 * scripts/abigen.py reads it and generates <onekvm/kvm.h>, the build-time
 * layout asserts, the cffi declarations of onekvm._abi and
 * Documentation/virt/onekvm/abi.rst.  Edit this file, never the outputs.
 *
 * Everything named KVM_* / kvm_* follows the upstream KVM ABI (API version
 * 12, x86-64): same names, numbers and layouts, so existing KVM clients can
 * drive /dev/onekvm.  onekvm-only additions are named ONEKVM_* / onekvm_* /
 * KVM_CAP_ONEKVM_* and live in their own ranges: ioctl numbers
 * _IO*(KVMIO, 0xf0..0xff) on the system fd, capabilities from 0x10000 up.
 *
 * Dialect, in short: #define NAME <integer expression> or
 * _IO/_IOR/_IOW/_IOWR(KVMIO, nr[, type]); struct/union/enum definitions with
 * fixed-size __u8..__s64/char/int members, nested and anonymous
 * structs/unions, arrays, __u8 bitfields and a trailing flexible array;
 * no other preprocessor directives.  A kernel-doc style comment
 * before an item documents it; ioctls need one with a "Type:" line.
 */
#ifndef _UAPI_ONEKVM_KVM_ABI_H
#define _UAPI_ONEKVM_KVM_ABI_H

#include <linux/types.h>
#include <linux/ioctl.h>

/**
 * KVMIO - ioctl type byte of every KVM and onekvm ioctl
 */
#define KVMIO 0xAE

/**
 * KVM_API_VERSION - value returned by KVM_GET_API_VERSION
 *
 * Any other value means an incompatible API; clients must refuse it.
 */
#define KVM_API_VERSION 12

/**
 * KVM_PIO_PAGE_OFFSET - page offset of port I/O data in the vcpu mmap
 *
 * For KVM_EXIT_IO, io.data_offset points into this page of the kvm_run
 * mapping (counted from the start of struct kvm_run).
 */
#define KVM_PIO_PAGE_OFFSET 1
#define KVM_COALESCED_MMIO_PAGE_OFFSET 2

/**
 * KVM_NR_INTERRUPTS - architectural interrupt vector count
 */
#define KVM_NR_INTERRUPTS 256

/**
 * Exception vectors - x86 exception numbers used in kvm_vcpu_events and exits
 */
#define DE_VECTOR 0
#define DB_VECTOR 1
#define BP_VECTOR 3
#define OF_VECTOR 4
#define BR_VECTOR 5
#define UD_VECTOR 6
#define NM_VECTOR 7
#define DF_VECTOR 8
#define TS_VECTOR 10
#define NP_VECTOR 11
#define SS_VECTOR 12
#define GP_VECTOR 13
#define PF_VECTOR 14
#define MF_VECTOR 16
#define AC_VECTOR 17
#define MC_VECTOR 18
#define XM_VECTOR 19
#define VE_VECTOR 20

/**
 * Exit reasons - kvm_run.exit_reason after KVM_RUN returns
 */
#define KVM_EXIT_UNKNOWN 0
#define KVM_EXIT_EXCEPTION 1
#define KVM_EXIT_IO 2
#define KVM_EXIT_HYPERCALL 3
#define KVM_EXIT_DEBUG 4
#define KVM_EXIT_HLT 5
#define KVM_EXIT_MMIO 6
#define KVM_EXIT_IRQ_WINDOW_OPEN 7
#define KVM_EXIT_SHUTDOWN 8
#define KVM_EXIT_FAIL_ENTRY 9
#define KVM_EXIT_INTR 10
#define KVM_EXIT_SET_TPR 11
#define KVM_EXIT_TPR_ACCESS 12
#define KVM_EXIT_S390_SIEIC 13
#define KVM_EXIT_S390_RESET 14
#define KVM_EXIT_DCR 15
#define KVM_EXIT_NMI 16
#define KVM_EXIT_INTERNAL_ERROR 17
#define KVM_EXIT_OSI 18
#define KVM_EXIT_PAPR_HCALL 19
#define KVM_EXIT_S390_UCONTROL 20
#define KVM_EXIT_WATCHDOG 21
#define KVM_EXIT_S390_TSCH 22
#define KVM_EXIT_EPR 23
#define KVM_EXIT_SYSTEM_EVENT 24
#define KVM_EXIT_S390_STSI 25
#define KVM_EXIT_IOAPIC_EOI 26
#define KVM_EXIT_HYPERV 27
#define KVM_EXIT_ARM_NISV 28
#define KVM_EXIT_X86_RDMSR 29
#define KVM_EXIT_X86_WRMSR 30
#define KVM_EXIT_DIRTY_RING_FULL 31
#define KVM_EXIT_AP_RESET_HOLD 32
#define KVM_EXIT_X86_BUS_LOCK 33
#define KVM_EXIT_XEN 34
#define KVM_EXIT_RISCV_SBI 35
#define KVM_EXIT_RISCV_CSR 36
#define KVM_EXIT_NOTIFY 37

/**
 * Port I/O direction - kvm_run.io.direction for KVM_EXIT_IO
 */
#define KVM_EXIT_IO_IN 0
#define KVM_EXIT_IO_OUT 1

/**
 * Internal error suberrors - kvm_run.internal.suberror for KVM_EXIT_INTERNAL_ERROR
 */
#define KVM_INTERNAL_ERROR_EMULATION 1
#define KVM_INTERNAL_ERROR_SIMUL_EX 2
#define KVM_INTERNAL_ERROR_DELIVERY_EV 3
#define KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON 4

/**
 * Emulation failure flags - kvm_run.emulation_failure.flags
 */
#define KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES (1ULL << 0)

/**
 * System event types - kvm_run.system_event.type for KVM_EXIT_SYSTEM_EVENT
 */
#define KVM_SYSTEM_EVENT_SHUTDOWN 1
#define KVM_SYSTEM_EVENT_RESET 2
#define KVM_SYSTEM_EVENT_CRASH 3
#define KVM_SYSTEM_EVENT_WAKEUP 4
#define KVM_SYSTEM_EVENT_SUSPEND 5
#define KVM_SYSTEM_EVENT_SEV_TERM 6

/**
 * kvm_run flags - kvm_run.flags bits on x86
 */
#define KVM_RUN_X86_SMM (1 << 0)
#define KVM_RUN_X86_BUS_LOCK (1 << 1)

/**
 * Sync register classes - kvm_run.kvm_valid_regs / kvm_dirty_regs bits
 */
#define KVM_SYNC_X86_REGS (1UL << 0)
#define KVM_SYNC_X86_SREGS (1UL << 1)
#define KVM_SYNC_X86_EVENTS (1UL << 2)

/**
 * SYNC_REGS_SIZE_BYTES - size of the kvm_run.s union
 */
#define SYNC_REGS_SIZE_BYTES 2048

/**
 * Memory slot flags - kvm_userspace_memory_region.flags
 */
#define KVM_MEM_LOG_DIRTY_PAGES (1UL << 0)
#define KVM_MEM_READONLY (1UL << 1)

/**
 * MP states - kvm_mp_state.mp_state (x86 uses RUNNABLE..SIPI_RECEIVED)
 */
#define KVM_MP_STATE_RUNNABLE 0
#define KVM_MP_STATE_UNINITIALIZED 1
#define KVM_MP_STATE_INIT_RECEIVED 2
#define KVM_MP_STATE_HALTED 3
#define KVM_MP_STATE_SIPI_RECEIVED 4
#define KVM_MP_STATE_STOPPED 5
#define KVM_MP_STATE_CHECK_STOP 6
#define KVM_MP_STATE_OPERATING 7
#define KVM_MP_STATE_LOAD 8
#define KVM_MP_STATE_AP_RESET_HOLD 9
#define KVM_MP_STATE_SUSPENDED 10

/**
 * Interrupt controllers - kvm_irqchip.chip_id and routing irqchip numbers
 */
#define KVM_IRQCHIP_PIC_MASTER 0
#define KVM_IRQCHIP_PIC_SLAVE 1
#define KVM_IRQCHIP_IOAPIC 2
#define KVM_NR_IRQCHIPS 3
#define KVM_IOAPIC_NUM_PINS 24

/**
 * PIT flags - kvm_pit_config.flags and kvm_pit_state2.flags
 */
#define KVM_PIT_SPEAKER_DUMMY 1
#define KVM_PIT_FLAGS_HPET_LEGACY 0x00000001
#define KVM_PIT_FLAGS_SPEAKER_DATA_ON 0x00000002

/**
 * Local APIC - size of the register page in kvm_lapic_state
 */
#define KVM_APIC_REG_SIZE 0x400

/**
 * CPUID entry flags - kvm_cpuid_entry2.flags (the misspelling is upstream ABI)
 */
#define KVM_CPUID_FLAG_SIGNIFCANT_INDEX (1 << 0)
#define KVM_CPUID_FLAG_STATEFUL_FUNC (1 << 1)
#define KVM_CPUID_FLAG_STATE_READ_NEXT (1 << 2)

/**
 * Guest debug control - kvm_guest_debug.control
 */
#define KVM_GUESTDBG_ENABLE 0x00000001
#define KVM_GUESTDBG_SINGLESTEP 0x00000002
#define KVM_GUESTDBG_USE_SW_BP 0x00010000
#define KVM_GUESTDBG_USE_HW_BP 0x00020000
#define KVM_GUESTDBG_INJECT_DB 0x00040000
#define KVM_GUESTDBG_INJECT_BP 0x00080000
#define KVM_GUESTDBG_BLOCKIRQ 0x00100000

/**
 * vcpu event flags - kvm_vcpu_events.flags: which optional fields are valid
 */
#define KVM_VCPUEVENT_VALID_NMI_PENDING 0x00000001
#define KVM_VCPUEVENT_VALID_SIPI_VECTOR 0x00000002
#define KVM_VCPUEVENT_VALID_SHADOW 0x00000004
#define KVM_VCPUEVENT_VALID_SMM 0x00000008
#define KVM_VCPUEVENT_VALID_PAYLOAD 0x00000010
#define KVM_VCPUEVENT_VALID_TRIPLE_FAULT 0x00000020

/**
 * Interrupt shadow - kvm_vcpu_events.interrupt.shadow bits
 */
#define KVM_X86_SHADOW_INT_MOV_SS 0x01
#define KVM_X86_SHADOW_INT_STI 0x02

/**
 * KVM_MAX_XCRS - capacity of kvm_xcrs.xcrs
 */
#define KVM_MAX_XCRS 16

/**
 * ioeventfd flag bit numbers - bit positions of the KVM_IOEVENTFD_FLAG_* flags
 */
enum {
	kvm_ioeventfd_flag_nr_datamatch,
	kvm_ioeventfd_flag_nr_pio,
	kvm_ioeventfd_flag_nr_deassign,
	kvm_ioeventfd_flag_nr_virtio_ccw_notify,
	kvm_ioeventfd_flag_nr_fast_mmio,
	kvm_ioeventfd_flag_nr_max,
};

/**
 * ioeventfd flags - kvm_ioeventfd.flags
 */
#define KVM_IOEVENTFD_FLAG_DATAMATCH (1 << kvm_ioeventfd_flag_nr_datamatch)
#define KVM_IOEVENTFD_FLAG_PIO (1 << kvm_ioeventfd_flag_nr_pio)
#define KVM_IOEVENTFD_FLAG_DEASSIGN (1 << kvm_ioeventfd_flag_nr_deassign)
#define KVM_IOEVENTFD_FLAG_VIRTIO_CCW_NOTIFY \
	(1 << kvm_ioeventfd_flag_nr_virtio_ccw_notify)
#define KVM_IOEVENTFD_VALID_FLAG_MASK ((1 << kvm_ioeventfd_flag_nr_max) - 1)

/**
 * irqfd flags - kvm_irqfd.flags
 */
#define KVM_IRQFD_FLAG_DEASSIGN (1 << 0)
#define KVM_IRQFD_FLAG_RESAMPLE (1 << 1)

/**
 * GSI routing entry types - kvm_irq_routing_entry.type
 */
#define KVM_IRQ_ROUTING_IRQCHIP 1
#define KVM_IRQ_ROUTING_MSI 2
#define KVM_IRQ_ROUTING_S390_ADAPTER 3
#define KVM_IRQ_ROUTING_HV_SINT 4
#define KVM_IRQ_ROUTING_XEN_EVTCHN 5

/**
 * MSI flags - kvm_msi.flags
 */
#define KVM_MSI_VALID_DEVID (1U << 0)

/**
 * Clock flags - kvm_clock_data.flags (1 is never used: it was the old boolean)
 */
#define KVM_CLOCK_TSC_STABLE 2
#define KVM_CLOCK_REALTIME (1 << 2)
#define KVM_CLOCK_HOST_TSC (1 << 3)

/**
 * Capabilities - arguments of KVM_CHECK_EXTENSION and KVM_ENABLE_CAP
 *
 * Upstream numbers below 0x10000; onekvm-only capabilities from 0x10000.
 */
#define KVM_CAP_IRQCHIP 0
#define KVM_CAP_HLT 1
#define KVM_CAP_MMU_SHADOW_CACHE_CONTROL 2
#define KVM_CAP_USER_MEMORY 3
#define KVM_CAP_SET_TSS_ADDR 4
#define KVM_CAP_VAPIC 6
#define KVM_CAP_EXT_CPUID 7
#define KVM_CAP_CLOCKSOURCE 8
#define KVM_CAP_NR_VCPUS 9		/* recommended max vcpus per VM */
#define KVM_CAP_NR_MEMSLOTS 10		/* max memory slots per VM */
#define KVM_CAP_PIT 11
#define KVM_CAP_NOP_IO_DELAY 12
#define KVM_CAP_PV_MMU 13
#define KVM_CAP_MP_STATE 14
#define KVM_CAP_COALESCED_MMIO 15
#define KVM_CAP_SYNC_MMU 16
#define KVM_CAP_IOMMU 18
#define KVM_CAP_DESTROY_MEMORY_REGION_WORKS 21
#define KVM_CAP_USER_NMI 22
#define KVM_CAP_SET_GUEST_DEBUG 23
#define KVM_CAP_REINJECT_CONTROL 24
#define KVM_CAP_IRQ_ROUTING 25
#define KVM_CAP_IRQ_INJECT_STATUS 26
#define KVM_CAP_ASSIGN_DEV_IRQ 29
#define KVM_CAP_JOIN_MEMORY_REGIONS_WORKS 30
#define KVM_CAP_MCE 31
#define KVM_CAP_IRQFD 32
#define KVM_CAP_PIT2 33
#define KVM_CAP_SET_BOOT_CPU_ID 34
#define KVM_CAP_PIT_STATE2 35
#define KVM_CAP_IOEVENTFD 36
#define KVM_CAP_SET_IDENTITY_MAP_ADDR 37
#define KVM_CAP_XEN_HVM 38
#define KVM_CAP_ADJUST_CLOCK 39
#define KVM_CAP_INTERNAL_ERROR_DATA 40
#define KVM_CAP_VCPU_EVENTS 41
#define KVM_CAP_HYPERV 44
#define KVM_CAP_HYPERV_VAPIC 45
#define KVM_CAP_HYPERV_SPIN 46
#define KVM_CAP_PCI_SEGMENT 47
#define KVM_CAP_INTR_SHADOW 49
#define KVM_CAP_DEBUGREGS 50
#define KVM_CAP_X86_ROBUST_SINGLESTEP 51
#define KVM_CAP_ENABLE_CAP 54
#define KVM_CAP_XSAVE 55
#define KVM_CAP_XCRS 56
#define KVM_CAP_ASYNC_PF 59
#define KVM_CAP_TSC_CONTROL 60
#define KVM_CAP_GET_TSC_KHZ 61
#define KVM_CAP_MAX_VCPUS 66		/* max vcpus per VM */
#define KVM_CAP_ONE_REG 70
#define KVM_CAP_TSC_DEADLINE_TIMER 72
#define KVM_CAP_SYNC_REGS 74
#define KVM_CAP_PCI_2_3 75
#define KVM_CAP_KVMCLOCK_CTRL 76
#define KVM_CAP_SIGNAL_MSI 77
#define KVM_CAP_READONLY_MEM 81
#define KVM_CAP_IRQFD_RESAMPLE 82
#define KVM_CAP_DEVICE_CTRL 89
#define KVM_CAP_EXT_EMUL_CPUID 95
#define KVM_CAP_HYPERV_TIME 96
#define KVM_CAP_IOAPIC_POLARITY_IGNORED 97
#define KVM_CAP_ENABLE_CAP_VM 98
#define KVM_CAP_IOEVENTFD_NO_LENGTH 100
#define KVM_CAP_VM_ATTRIBUTES 101
#define KVM_CAP_CHECK_EXTENSION_VM 105
#define KVM_CAP_DISABLE_QUIRKS 116
#define KVM_CAP_X86_SMM 117
#define KVM_CAP_MULTI_ADDRESS_SPACE 118
#define KVM_CAP_GUEST_DEBUG_HW_BPS 119
#define KVM_CAP_GUEST_DEBUG_HW_WPS 120
#define KVM_CAP_SPLIT_IRQCHIP 121
#define KVM_CAP_IOEVENTFD_ANY_LENGTH 122
#define KVM_CAP_HYPERV_SYNIC 123
#define KVM_CAP_VCPU_ATTRIBUTES 127
#define KVM_CAP_MAX_VCPU_ID 128
#define KVM_CAP_X2APIC_API 129
#define KVM_CAP_MSI_DEVID 131
#define KVM_CAP_IMMEDIATE_EXIT 136
#define KVM_CAP_X86_DISABLE_EXITS 143
#define KVM_CAP_GET_MSR_FEATURES 153
#define KVM_CAP_NESTED_STATE 157
#define KVM_CAP_MSR_PLATFORM_INFO 159
#define KVM_CAP_COALESCED_PIO 162
#define KVM_CAP_EXCEPTION_PAYLOAD 164
#define KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 168
#define KVM_CAP_PMU_EVENT_FILTER 173
#define KVM_CAP_HALT_POLL 182
#define KVM_CAP_ASYNC_PF_INT 183
#define KVM_CAP_LAST_CPU 184
#define KVM_CAP_SMALLER_MAXPHYADDR 185
#define KVM_CAP_STEAL_TIME 187
#define KVM_CAP_X86_USER_SPACE_MSR 188
#define KVM_CAP_X86_MSR_FILTER 189
#define KVM_CAP_ENFORCE_PV_FEATURE_CPUID 190
#define KVM_CAP_DIRTY_LOG_RING 192
#define KVM_CAP_X86_BUS_LOCK_EXIT 193
#define KVM_CAP_SET_GUEST_DEBUG2 195
#define KVM_CAP_SREGS2 200
#define KVM_CAP_EXIT_HYPERCALL 201
#define KVM_CAP_BINARY_STATS_FD 203
#define KVM_CAP_EXIT_ON_EMULATION_FAILURE 204
#define KVM_CAP_VM_GPA_BITS 207
#define KVM_CAP_XSAVE2 208
#define KVM_CAP_SYS_ATTRIBUTES 209
#define KVM_CAP_PMU_CAPABILITY 212
#define KVM_CAP_DISABLE_QUIRKS2 213
#define KVM_CAP_VM_TSC_CONTROL 214
#define KVM_CAP_SYSTEM_EVENT_DATA 215
#define KVM_CAP_X86_TRIPLE_FAULT_EVENT 218
#define KVM_CAP_X86_NOTIFY_VMEXIT 219
#define KVM_CAP_VM_DISABLE_NX_HUGE_PAGES 220

/**
 * KVM_CAP_ONEKVM_ABI_FINGERPRINT - onekvm-only: ONEKVM_GET_ABI_FINGERPRINT works
 *
 * KVM_CHECK_EXTENSION returns 1 on /dev/onekvm; stock KVM returns 0.
 */
#define KVM_CAP_ONEKVM_ABI_FINGERPRINT 0x10000

/**
 * struct kvm_userspace_memory_region - a guest physical memory slot
 *
 * Argument of KVM_SET_USER_MEMORY_REGION.  A memory_size of 0 deletes the slot.
 */
struct kvm_userspace_memory_region {
	__u32 slot;
	__u32 flags;			/* KVM_MEM_* */
	__u64 guest_phys_addr;
	__u64 memory_size;		/* bytes */
	__u64 userspace_addr;		/* start of the userspace allocated memory */
};

/**
 * struct kvm_irq_level - an interrupt line level for KVM_IRQ_LINE(_STATUS)
 */
struct kvm_irq_level {
	/*
	 * ACPI GSI: PIC 0-15, IOAPIC 0-23.  KVM_IRQ_LINE_STATUS returns
	 * the injection status in the same place.
	 */
	union {
		__u32 irq;
		__s32 status;
	};
	__u32 level;
};

/**
 * struct kvm_pic_state - state of one 8259 PIC (KVM_GET/SET_IRQCHIP)
 */
struct kvm_pic_state {
	__u8 last_irr;			/* edge detection */
	__u8 irr;			/* interrupt request register */
	__u8 imr;			/* interrupt mask register */
	__u8 isr;			/* interrupt service register */
	__u8 priority_add;		/* highest irq priority */
	__u8 irq_base;
	__u8 read_reg_select;
	__u8 poll;
	__u8 special_mask;
	__u8 init_state;
	__u8 auto_eoi;
	__u8 rotate_on_auto_eoi;
	__u8 special_fully_nested_mode;
	__u8 init4;			/* true if 4 byte init */
	__u8 elcr;			/* PIIX edge/trigger selection */
	__u8 elcr_mask;
};

/**
 * struct kvm_ioapic_state - state of the IOAPIC (KVM_GET/SET_IRQCHIP)
 */
struct kvm_ioapic_state {
	__u64 base_address;
	__u32 ioregsel;
	__u32 id;
	__u32 irr;
	__u32 pad;
	union {
		__u64 bits;
		struct {
			__u8 vector;
			__u8 delivery_mode:3;
			__u8 dest_mode:1;
			__u8 delivery_status:1;
			__u8 polarity:1;
			__u8 remote_irr:1;
			__u8 trig_mode:1;
			__u8 mask:1;
			__u8 reserve:7;
			__u8 reserved[4];
			__u8 dest_id;
		} fields;
	} redirtbl[KVM_IOAPIC_NUM_PINS];
};

/**
 * struct kvm_irqchip - argument of KVM_GET_IRQCHIP and KVM_SET_IRQCHIP
 */
struct kvm_irqchip {
	__u32 chip_id;			/* KVM_IRQCHIP_* */
	__u32 pad;
	union {
		char dummy[512];	/* reserving space */
		struct kvm_pic_state pic;
		struct kvm_ioapic_state ioapic;
	} chip;
};

/**
 * struct kvm_pit_config - argument of KVM_CREATE_PIT2
 */
struct kvm_pit_config {
	__u32 flags;			/* KVM_PIT_SPEAKER_DUMMY */
	__u32 pad[15];
};

/**
 * struct kvm_pit_channel_state - one i8254 channel in kvm_pit_state2
 */
struct kvm_pit_channel_state {
	__u32 count;			/* can be 65536 */
	__u16 latched_count;
	__u8 count_latched;
	__u8 status_latched;
	__u8 status;
	__u8 read_state;
	__u8 write_state;
	__u8 write_latch;
	__u8 rw_mode;
	__u8 mode;
	__u8 bcd;
	__u8 gate;
	__s64 count_load_time;
};

/**
 * struct kvm_pit_state2 - argument of KVM_GET_PIT2 and KVM_SET_PIT2
 */
struct kvm_pit_state2 {
	struct kvm_pit_channel_state channels[3];
	__u32 flags;			/* KVM_PIT_FLAGS_* */
	__u32 reserved[9];
};

/**
 * struct kvm_regs - general purpose registers (KVM_GET/SET_REGS)
 */
struct kvm_regs {
	__u64 rax, rbx, rcx, rdx;
	__u64 rsi, rdi, rsp, rbp;
	__u64 r8, r9, r10, r11;
	__u64 r12, r13, r14, r15;
	__u64 rip, rflags;
};

/**
 * struct kvm_lapic_state - the local APIC register page (KVM_GET/SET_LAPIC)
 */
struct kvm_lapic_state {
	char regs[KVM_APIC_REG_SIZE];
};

/**
 * struct kvm_segment - one segment register, unpacked
 */
struct kvm_segment {
	__u64 base;
	__u32 limit;
	__u16 selector;
	__u8 type;
	__u8 present, dpl, db, s, l, g, avl;
	__u8 unusable;
	__u8 padding;
};

/**
 * struct kvm_dtable - a descriptor table register (GDTR, IDTR)
 */
struct kvm_dtable {
	__u64 base;
	__u16 limit;
	__u16 padding[3];
};

/**
 * struct kvm_sregs - special registers (KVM_GET/SET_SREGS)
 */
struct kvm_sregs {
	struct kvm_segment cs, ds, es, fs, gs, ss;
	struct kvm_segment tr, ldt;
	struct kvm_dtable gdt, idt;
	__u64 cr0, cr2, cr3, cr4, cr8;
	__u64 efer;
	__u64 apic_base;
	/* pending external interrupt, one bit per vector */
	__u64 interrupt_bitmap[(KVM_NR_INTERRUPTS + 63) / 64];
};

/**
 * struct kvm_fpu - x87/SSE state in fxsave terms (KVM_GET/SET_FPU)
 */
struct kvm_fpu {
	__u8 fpr[8][16];
	__u16 fcw;
	__u16 fsw;
	__u8 ftwx;			/* in fxsave format */
	__u8 pad1;
	__u16 last_opcode;
	__u64 last_ip;
	__u64 last_dp;
	__u8 xmm[16][16];
	__u32 mxcsr;
	__u32 pad2;
};

/**
 * struct kvm_msr_entry - one MSR index/value pair
 */
struct kvm_msr_entry {
	__u32 index;
	__u32 reserved;
	__u64 data;
};

/**
 * struct kvm_msrs - argument of KVM_GET_MSRS and KVM_SET_MSRS
 */
struct kvm_msrs {
	__u32 nmsrs;			/* number of msrs in entries */
	__u32 pad;
	struct kvm_msr_entry entries[];
};

/**
 * struct kvm_msr_list - argument of KVM_GET_MSR_INDEX_LIST
 */
struct kvm_msr_list {
	__u32 nmsrs;			/* number of msrs in indices */
	__u32 indices[];
};

/**
 * struct kvm_cpuid_entry2 - one CPUID leaf/subleaf
 */
struct kvm_cpuid_entry2 {
	__u32 function;
	__u32 index;
	__u32 flags;			/* KVM_CPUID_FLAG_* */
	__u32 eax;
	__u32 ebx;
	__u32 ecx;
	__u32 edx;
	__u32 padding[3];
};

/**
 * struct kvm_cpuid2 - argument of KVM_SET_CPUID2 and KVM_GET_SUPPORTED_CPUID
 */
struct kvm_cpuid2 {
	__u32 nent;
	__u32 padding;
	struct kvm_cpuid_entry2 entries[];
};

/**
 * struct kvm_debug_exit_arch - kvm_run.debug.arch for KVM_EXIT_DEBUG
 */
struct kvm_debug_exit_arch {
	__u32 exception;
	__u32 pad;
	__u64 pc;
	__u64 dr6;
	__u64 dr7;
};

/**
 * struct kvm_guest_debug_arch - debug registers for KVM_SET_GUEST_DEBUG
 */
struct kvm_guest_debug_arch {
	__u64 debugreg[8];
};

/**
 * struct kvm_vcpu_events - pending exceptions, interrupts, NMI, SMI
 *
 * Argument of KVM_GET_VCPU_EVENTS and KVM_SET_VCPU_EVENTS.
 */
struct kvm_vcpu_events {
	struct {
		__u8 injected;
		__u8 nr;
		__u8 has_error_code;
		__u8 pending;
		__u32 error_code;
	} exception;
	struct {
		__u8 injected;
		__u8 nr;
		__u8 soft;
		__u8 shadow;
	} interrupt;
	struct {
		__u8 injected;
		__u8 pending;
		__u8 masked;
		__u8 pad;
	} nmi;
	__u32 sipi_vector;
	__u32 flags;			/* KVM_VCPUEVENT_VALID_* */
	struct {
		__u8 smm;
		__u8 pending;
		__u8 smm_inside_nmi;
		__u8 latched_init;
	} smi;
	struct {
		__u8 pending;
	} triple_fault;
	__u8 reserved[26];
	__u8 exception_has_payload;
	__u64 exception_payload;
};

/**
 * struct kvm_debugregs - argument of KVM_GET_DEBUGREGS and KVM_SET_DEBUGREGS
 */
struct kvm_debugregs {
	__u64 db[4];
	__u64 dr6;
	__u64 dr7;
	__u64 flags;
	__u64 reserved[9];
};

/**
 * struct kvm_xsave - XSAVE area (KVM_GET/SET_XSAVE), host CPUID 0xD layout
 */
struct kvm_xsave {
	__u32 region[1024];
	__u32 extra[];
};

/**
 * struct kvm_xcr - one extended control register
 */
struct kvm_xcr {
	__u32 xcr;
	__u32 reserved;
	__u64 value;
};

/**
 * struct kvm_xcrs - argument of KVM_GET_XCRS and KVM_SET_XCRS
 */
struct kvm_xcrs {
	__u32 nr_xcrs;
	__u32 flags;
	struct kvm_xcr xcrs[KVM_MAX_XCRS];
	__u64 padding[16];
};

/**
 * struct kvm_sync_regs - registers shared through kvm_run.s.regs
 */
struct kvm_sync_regs {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_vcpu_events events;
};

/**
 * struct kvm_run - the vcpu's shared page, mmap(vcpu_fd, offset 0)
 *
 * Its mapping is KVM_GET_VCPU_MMAP_SIZE bytes long; the port I/O data of
 * KVM_EXIT_IO lives in page KVM_PIO_PAGE_OFFSET of the same mapping.
 */
struct kvm_run {
	/* in */
	__u8 request_interrupt_window;
	__u8 immediate_exit;
	__u8 padding1[6];

	/* out */
	__u32 exit_reason;		/* KVM_EXIT_* */
	__u8 ready_for_interrupt_injection;
	__u8 if_flag;
	__u16 flags;			/* KVM_RUN_X86_* */

	/* in (pre_kvm_run), out (post_kvm_run) */
	__u64 cr8;
	__u64 apic_base;

	union {
		/* KVM_EXIT_UNKNOWN */
		struct {
			__u64 hardware_exit_reason;
		} hw;
		/* KVM_EXIT_FAIL_ENTRY */
		struct {
			__u64 hardware_entry_failure_reason;
			__u32 cpu;
		} fail_entry;
		/* KVM_EXIT_EXCEPTION */
		struct {
			__u32 exception;
			__u32 error_code;
		} ex;
		/* KVM_EXIT_IO */
		struct {
			__u8 direction;		/* KVM_EXIT_IO_IN/OUT */
			__u8 size;		/* bytes */
			__u16 port;
			__u32 count;
			__u64 data_offset;	/* relative to kvm_run start */
		} io;
		/* KVM_EXIT_DEBUG */
		struct {
			struct kvm_debug_exit_arch arch;
		} debug;
		/* KVM_EXIT_MMIO */
		struct {
			__u64 phys_addr;
			__u8 data[8];
			__u32 len;
			__u8 is_write;
		} mmio;
		/* KVM_EXIT_HYPERCALL */
		struct {
			__u64 nr;
			__u64 args[6];
			__u64 ret;
			union {
				__u32 longmode;
				__u64 flags;
			};
		} hypercall;
		/* KVM_EXIT_TPR_ACCESS */
		struct {
			__u64 rip;
			__u32 is_write;
			__u32 pad;
		} tpr_access;
		/* KVM_EXIT_INTERNAL_ERROR */
		struct {
			__u32 suberror;
			/* Available with KVM_CAP_INTERNAL_ERROR_DATA: */
			__u32 ndata;
			__u64 data[16];
		} internal;
		/* KVM_INTERNAL_ERROR_EMULATION: an ABI overlay of internal */
		struct {
			__u32 suberror;
			__u32 ndata;
			__u64 flags;		/* KVM_INTERNAL_ERROR_EMULATION_FLAG_* */
			union {
				struct {
					__u8 insn_size;
					__u8 insn_bytes[15];
				};
			};
		} emulation_failure;
		/* KVM_EXIT_SYSTEM_EVENT */
		struct {
			__u32 type;		/* KVM_SYSTEM_EVENT_* */
			__u32 ndata;
			union {
				__u64 flags;
				__u64 data[16];
			};
		} system_event;
		/* KVM_EXIT_IOAPIC_EOI */
		struct {
			__u8 vector;
		} eoi;
		/* KVM_EXIT_X86_RDMSR / KVM_EXIT_X86_WRMSR */
		struct {
			__u8 error;		/* user -> kernel */
			__u8 pad[7];
			__u32 reason;		/* kernel -> user */
			__u32 index;		/* kernel -> user */
			__u64 data;		/* kernel <-> user */
		} msr;
		/* KVM_EXIT_NOTIFY */
		struct {
			__u32 flags;
		} notify;
		/* Fix the size of the union. */
		char padding[256];
	};

	/* KVM_SYNC_X86_* classes valid in / dirtied in s.regs */
	__u64 kvm_valid_regs;
	__u64 kvm_dirty_regs;
	union {
		struct kvm_sync_regs regs;
		char padding[SYNC_REGS_SIZE_BYTES];
	} s;
};

/**
 * struct kvm_coalesced_mmio_zone - argument of KVM_(UN)REGISTER_COALESCED_MMIO
 */
struct kvm_coalesced_mmio_zone {
	__u64 addr;
	__u32 size;
	union {
		__u32 pad;
		__u32 pio;
	};
};

/**
 * struct kvm_coalesced_mmio - one buffered write in the coalesced MMIO ring
 */
struct kvm_coalesced_mmio {
	__u64 phys_addr;
	__u32 len;
	union {
		__u32 pad;
		__u32 pio;
	};
	__u8 data[8];
};

/**
 * struct kvm_coalesced_mmio_ring - page KVM_COALESCED_MMIO_PAGE_OFFSET of the vcpu mmap
 */
struct kvm_coalesced_mmio_ring {
	__u32 first, last;
	struct kvm_coalesced_mmio coalesced_mmio[];
};

/**
 * struct kvm_translation - argument of KVM_TRANSLATE
 */
struct kvm_translation {
	/* in */
	__u64 linear_address;

	/* out */
	__u64 physical_address;
	__u8 valid;
	__u8 writeable;
	__u8 usermode;
	__u8 pad[5];
};

/**
 * struct kvm_interrupt - argument of KVM_INTERRUPT
 */
struct kvm_interrupt {
	/* in */
	__u32 irq;
};

/**
 * struct kvm_dirty_log - argument of KVM_GET_DIRTY_LOG
 */
struct kvm_dirty_log {
	__u32 slot;
	__u32 padding1;
	union {
		void *dirty_bitmap;	/* one bit per page */
		__u64 padding2;
	};
};

/**
 * struct kvm_signal_mask - argument of KVM_SET_SIGNAL_MASK
 */
struct kvm_signal_mask {
	__u32 len;
	__u8 sigset[];
};

/**
 * struct kvm_mp_state - argument of KVM_GET_MP_STATE and KVM_SET_MP_STATE
 */
struct kvm_mp_state {
	__u32 mp_state;			/* KVM_MP_STATE_* */
};

/**
 * struct kvm_guest_debug - argument of KVM_SET_GUEST_DEBUG
 */
struct kvm_guest_debug {
	__u32 control;			/* KVM_GUESTDBG_* */
	__u32 pad;
	struct kvm_guest_debug_arch arch;
};

/**
 * struct kvm_ioeventfd - argument of KVM_IOEVENTFD
 */
struct kvm_ioeventfd {
	__u64 datamatch;
	__u64 addr;			/* legal pio/mmio address */
	__u32 len;			/* 1, 2, 4, or 8 bytes; or 0 to ignore length */
	__s32 fd;
	__u32 flags;			/* KVM_IOEVENTFD_FLAG_* */
	__u8 pad[36];
};

/**
 * struct kvm_enable_cap - argument of KVM_ENABLE_CAP
 */
struct kvm_enable_cap {
	/* in */
	__u32 cap;
	__u32 flags;
	__u64 args[4];
	__u8 pad[64];
};

/**
 * struct kvm_irq_routing_irqchip - route a GSI to an irqchip pin
 */
struct kvm_irq_routing_irqchip {
	__u32 irqchip;
	__u32 pin;
};

/**
 * struct kvm_irq_routing_msi - route a GSI to an MSI message
 */
struct kvm_irq_routing_msi {
	__u32 address_lo;
	__u32 address_hi;
	__u32 data;
	union {
		__u32 pad;
		__u32 devid;
	};
};

/**
 * struct kvm_irq_routing_s390_adapter - s390 adapter route (layout only)
 */
struct kvm_irq_routing_s390_adapter {
	__u64 ind_addr;
	__u64 summary_addr;
	__u64 ind_offset;
	__u32 summary_offset;
	__u32 adapter_id;
};

/**
 * struct kvm_irq_routing_hv_sint - Hyper-V SINT route (layout only)
 */
struct kvm_irq_routing_hv_sint {
	__u32 vcpu;
	__u32 sint;
};

/**
 * struct kvm_irq_routing_xen_evtchn - Xen event channel route (layout only)
 */
struct kvm_irq_routing_xen_evtchn {
	__u32 port;
	__u32 vcpu;
	__u32 priority;
};

/**
 * struct kvm_irq_routing_entry - one GSI route
 */
struct kvm_irq_routing_entry {
	__u32 gsi;
	__u32 type;			/* KVM_IRQ_ROUTING_* */
	__u32 flags;
	__u32 pad;
	union {
		struct kvm_irq_routing_irqchip irqchip;
		struct kvm_irq_routing_msi msi;
		struct kvm_irq_routing_s390_adapter adapter;
		struct kvm_irq_routing_hv_sint hv_sint;
		struct kvm_irq_routing_xen_evtchn xen_evtchn;
		__u32 pad[8];
	} u;
};

/**
 * struct kvm_irq_routing - argument of KVM_SET_GSI_ROUTING
 */
struct kvm_irq_routing {
	__u32 nr;
	__u32 flags;
	struct kvm_irq_routing_entry entries[];
};

/**
 * struct kvm_irqfd - argument of KVM_IRQFD
 */
struct kvm_irqfd {
	__u32 fd;
	__u32 gsi;
	__u32 flags;			/* KVM_IRQFD_FLAG_* */
	__u32 resamplefd;
	__u8 pad[16];
};

/**
 * struct kvm_clock_data - argument of KVM_GET_CLOCK and KVM_SET_CLOCK
 */
struct kvm_clock_data {
	__u64 clock;			/* kvmclock ns */
	__u32 flags;			/* KVM_CLOCK_* */
	__u32 pad0;
	__u64 realtime;
	__u64 host_tsc;
	__u32 pad[4];
};

/**
 * struct kvm_msi - argument of KVM_SIGNAL_MSI
 */
struct kvm_msi {
	__u32 address_lo;
	__u32 address_hi;
	__u32 data;
	__u32 flags;			/* KVM_MSI_VALID_DEVID */
	__u32 devid;
	__u8 pad[12];
};

/*
 * ioctls for the system fd (/dev/kvm, /dev/onekvm)
 */

/**
 * KVM_GET_API_VERSION - the API version of the device
 *
 * Capability: basic
 * Architectures: all
 * Type: system ioctl
 * Parameters: none
 * Returns: the constant KVM_API_VERSION (12)
 */
#define KVM_GET_API_VERSION _IO(KVMIO, 0x00)

/**
 * KVM_CREATE_VM - create a virtual machine
 *
 * Capability: basic
 * Architectures: all
 * Type: system ioctl
 * Parameters: machine type identifier (0 on x86)
 * Returns: a VM fd that can be used to control the new virtual machine
 */
#define KVM_CREATE_VM _IO(KVMIO, 0x01)

/**
 * KVM_GET_MSR_INDEX_LIST - list the MSRs KVM_GET/SET_MSRS support
 *
 * Capability: basic
 * Architectures: x86
 * Type: system ioctl
 * Parameters: struct kvm_msr_list (in/out)
 * Returns: 0 on success; -1 on error (E2BIG: nmsrs too small, set to the need)
 */
#define KVM_GET_MSR_INDEX_LIST _IOWR(KVMIO, 0x02, struct kvm_msr_list)

/**
 * KVM_CHECK_EXTENSION - query a capability
 *
 * Capability: basic, KVM_CAP_CHECK_EXTENSION_VM for vm ioctl
 * Architectures: all
 * Type: system ioctl, vm ioctl
 * Parameters: extension identifier (KVM_CAP_*)
 * Returns: 0 if unsupported; 1 (or a positive integer) if supported
 */
#define KVM_CHECK_EXTENSION _IO(KVMIO, 0x03)

/**
 * KVM_GET_VCPU_MMAP_SIZE - size of the vcpu fd's shared mapping
 *
 * Capability: basic
 * Architectures: all
 * Type: system ioctl
 * Parameters: none
 * Returns: size of the vcpu mmap area, in bytes
 */
#define KVM_GET_VCPU_MMAP_SIZE _IO(KVMIO, 0x04)

/**
 * KVM_GET_SUPPORTED_CPUID - CPUID bits the hypervisor can expose
 *
 * Capability: KVM_CAP_EXT_CPUID
 * Architectures: x86
 * Type: system ioctl
 * Parameters: struct kvm_cpuid2 (in/out)
 * Returns: 0 on success; -1 on error (E2BIG: nent too small)
 */
#define KVM_GET_SUPPORTED_CPUID _IOWR(KVMIO, 0x05, struct kvm_cpuid2)

/**
 * KVM_GET_EMULATED_CPUID - CPUID bits the hypervisor emulates
 *
 * Capability: KVM_CAP_EXT_EMUL_CPUID
 * Architectures: x86
 * Type: system ioctl
 * Parameters: struct kvm_cpuid2 (in/out)
 * Returns: 0 on success; -1 on error (E2BIG: nent too small)
 */
#define KVM_GET_EMULATED_CPUID _IOWR(KVMIO, 0x09, struct kvm_cpuid2)

/**
 * KVM_GET_MSR_FEATURE_INDEX_LIST - list the feature MSRs
 *
 * Capability: KVM_CAP_GET_MSR_FEATURES
 * Architectures: x86
 * Type: system ioctl
 * Parameters: struct kvm_msr_list (in/out)
 * Returns: 0 on success; -1 on error (E2BIG: nmsrs too small)
 */
#define KVM_GET_MSR_FEATURE_INDEX_LIST _IOWR(KVMIO, 0x0a, struct kvm_msr_list)

/**
 * ONEKVM_GET_ABI_FINGERPRINT - onekvm-only: the ABI fingerprint of the module
 *
 * Capability: KVM_CAP_ONEKVM_ABI_FINGERPRINT
 * Architectures: x86
 * Type: system ioctl
 * Parameters: __u64 (out)
 * Returns: 0 on success; -1 on error
 *
 * Stores the ONEKVM_ABI_FINGERPRINT the module was built with.  Userspace
 * compares it with its own and refuses to run on a mismatch (the module
 * was built from another ABI source: rebuild and reload it).
 */
#define ONEKVM_GET_ABI_FINGERPRINT _IOR(KVMIO, 0xf0, __u64)

/*
 * ioctls for VM fds
 */

/**
 * KVM_CREATE_VCPU - add a vcpu to the VM
 *
 * Capability: basic
 * Architectures: all
 * Type: vm ioctl
 * Parameters: vcpu id (APIC id on x86)
 * Returns: vcpu fd on success, -1 on error
 */
#define KVM_CREATE_VCPU _IO(KVMIO, 0x41)

/**
 * KVM_GET_DIRTY_LOG - fetch and clear the dirty bitmap of a memory slot
 *
 * Capability: basic
 * Architectures: all
 * Type: vm ioctl
 * Parameters: struct kvm_dirty_log (in/out)
 * Returns: 0 on success, -1 on error
 */
#define KVM_GET_DIRTY_LOG _IOW(KVMIO, 0x42, struct kvm_dirty_log)

/**
 * KVM_SET_USER_MEMORY_REGION - create, move or delete a memory slot
 *
 * Capability: KVM_CAP_USER_MEMORY
 * Architectures: all
 * Type: vm ioctl
 * Parameters: struct kvm_userspace_memory_region (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_SET_USER_MEMORY_REGION \
	_IOW(KVMIO, 0x46, struct kvm_userspace_memory_region)

/**
 * KVM_SET_TSS_ADDR - place the three-page TSS region (VMX real mode)
 *
 * Capability: KVM_CAP_SET_TSS_ADDR
 * Architectures: x86
 * Type: vm ioctl
 * Parameters: unsigned long tss_address (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_SET_TSS_ADDR _IO(KVMIO, 0x47)

/**
 * KVM_SET_IDENTITY_MAP_ADDR - place the identity map page (VMX real mode)
 *
 * Capability: KVM_CAP_SET_IDENTITY_MAP_ADDR
 * Architectures: x86
 * Type: vm ioctl
 * Parameters: __u64 identity map address (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_SET_IDENTITY_MAP_ADDR _IOW(KVMIO, 0x48, __u64)

/**
 * KVM_CREATE_IRQCHIP - create the in-kernel PIC, IOAPIC and local APICs
 *
 * Capability: KVM_CAP_IRQCHIP
 * Architectures: x86
 * Type: vm ioctl
 * Parameters: none
 * Returns: 0 on success, -1 on error
 */
#define KVM_CREATE_IRQCHIP _IO(KVMIO, 0x60)

/**
 * KVM_IRQ_LINE - set the level of an in-kernel irqchip input
 *
 * Capability: KVM_CAP_IRQCHIP
 * Architectures: x86
 * Type: vm ioctl
 * Parameters: struct kvm_irq_level (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_IRQ_LINE _IOW(KVMIO, 0x61, struct kvm_irq_level)

/**
 * KVM_GET_IRQCHIP - read the state of an in-kernel irqchip
 *
 * Capability: KVM_CAP_IRQCHIP
 * Architectures: x86
 * Type: vm ioctl
 * Parameters: struct kvm_irqchip (in/out)
 * Returns: 0 on success, -1 on error
 */
#define KVM_GET_IRQCHIP _IOWR(KVMIO, 0x62, struct kvm_irqchip)

/**
 * KVM_SET_IRQCHIP - write the state of an in-kernel irqchip
 *
 * Capability: KVM_CAP_IRQCHIP
 * Architectures: x86
 * Type: vm ioctl
 * Parameters: struct kvm_irqchip (in)
 * Returns: 0 on success, -1 on error
 *
 * The _IOR direction is an upstream historical mistake kept for ABI.
 */
#define KVM_SET_IRQCHIP _IOR(KVMIO, 0x63, struct kvm_irqchip)

/**
 * KVM_IRQ_LINE_STATUS - KVM_IRQ_LINE that reports the injection status
 *
 * Capability: KVM_CAP_IRQ_INJECT_STATUS
 * Architectures: x86
 * Type: vm ioctl
 * Parameters: struct kvm_irq_level (in/out)
 * Returns: 0 on success, -1 on error; status > 0 delivered, 0 masked, < 0 coalesced
 */
#define KVM_IRQ_LINE_STATUS _IOWR(KVMIO, 0x67, struct kvm_irq_level)

/**
 * KVM_REGISTER_COALESCED_MMIO - buffer writes to an MMIO zone
 *
 * Capability: KVM_CAP_COALESCED_MMIO
 * Architectures: all
 * Type: vm ioctl
 * Parameters: struct kvm_coalesced_mmio_zone (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_REGISTER_COALESCED_MMIO \
	_IOW(KVMIO, 0x67, struct kvm_coalesced_mmio_zone)

/**
 * KVM_UNREGISTER_COALESCED_MMIO - stop buffering writes to an MMIO zone
 *
 * Capability: KVM_CAP_COALESCED_MMIO
 * Architectures: all
 * Type: vm ioctl
 * Parameters: struct kvm_coalesced_mmio_zone (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_UNREGISTER_COALESCED_MMIO \
	_IOW(KVMIO, 0x68, struct kvm_coalesced_mmio_zone)

/**
 * KVM_SET_GSI_ROUTING - replace the GSI routing table
 *
 * Capability: KVM_CAP_IRQ_ROUTING
 * Architectures: x86
 * Type: vm ioctl
 * Parameters: struct kvm_irq_routing (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_SET_GSI_ROUTING _IOW(KVMIO, 0x6a, struct kvm_irq_routing)

/**
 * KVM_IRQFD - let an eventfd trigger a GSI
 *
 * Capability: KVM_CAP_IRQFD
 * Architectures: x86
 * Type: vm ioctl
 * Parameters: struct kvm_irqfd (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_IRQFD _IOW(KVMIO, 0x76, struct kvm_irqfd)

/**
 * KVM_CREATE_PIT2 - create the in-kernel i8254 PIT
 *
 * Capability: KVM_CAP_PIT2
 * Architectures: x86
 * Type: vm ioctl
 * Parameters: struct kvm_pit_config (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_CREATE_PIT2 _IOW(KVMIO, 0x77, struct kvm_pit_config)

/**
 * KVM_IOEVENTFD - signal an eventfd on a guest PIO/MMIO write
 *
 * Capability: KVM_CAP_IOEVENTFD
 * Architectures: all
 * Type: vm ioctl
 * Parameters: struct kvm_ioeventfd (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_IOEVENTFD _IOW(KVMIO, 0x79, struct kvm_ioeventfd)

/**
 * KVM_SET_CLOCK - set the VM's kvmclock
 *
 * Capability: KVM_CAP_ADJUST_CLOCK
 * Architectures: x86
 * Type: vm ioctl
 * Parameters: struct kvm_clock_data (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_SET_CLOCK _IOW(KVMIO, 0x7b, struct kvm_clock_data)

/**
 * KVM_GET_CLOCK - read the VM's kvmclock
 *
 * Capability: KVM_CAP_ADJUST_CLOCK
 * Architectures: x86
 * Type: vm ioctl
 * Parameters: struct kvm_clock_data (out)
 * Returns: 0 on success, -1 on error
 */
#define KVM_GET_CLOCK _IOR(KVMIO, 0x7c, struct kvm_clock_data)

/**
 * KVM_GET_PIT2 - read the in-kernel PIT state
 *
 * Capability: KVM_CAP_PIT_STATE2
 * Architectures: x86
 * Type: vm ioctl
 * Parameters: struct kvm_pit_state2 (out)
 * Returns: 0 on success, -1 on error
 */
#define KVM_GET_PIT2 _IOR(KVMIO, 0x9f, struct kvm_pit_state2)

/**
 * KVM_SET_PIT2 - write the in-kernel PIT state
 *
 * Capability: KVM_CAP_PIT_STATE2
 * Architectures: x86
 * Type: vm ioctl
 * Parameters: struct kvm_pit_state2 (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_SET_PIT2 _IOW(KVMIO, 0xa0, struct kvm_pit_state2)

/**
 * KVM_SIGNAL_MSI - inject an MSI message
 *
 * Capability: KVM_CAP_SIGNAL_MSI
 * Architectures: x86
 * Type: vm ioctl
 * Parameters: struct kvm_msi (in)
 * Returns: > 0 delivered, 0 blocked by the guest, -1 on error
 */
#define KVM_SIGNAL_MSI _IOW(KVMIO, 0xa5, struct kvm_msi)

/*
 * ioctls for vcpu fds
 */

/**
 * KVM_RUN - run the vcpu until an exit userspace must handle
 *
 * Capability: basic
 * Architectures: all
 * Type: vcpu ioctl
 * Parameters: none
 * Returns: 0 on success, -1 on error (EINTR: a signal or immediate_exit)
 *
 * The exit is described in the struct kvm_run mapped from the vcpu fd.
 */
#define KVM_RUN _IO(KVMIO, 0x80)

/**
 * KVM_GET_REGS - read the general purpose registers
 *
 * Capability: basic
 * Architectures: all except arm64
 * Type: vcpu ioctl
 * Parameters: struct kvm_regs (out)
 * Returns: 0 on success, -1 on error
 */
#define KVM_GET_REGS _IOR(KVMIO, 0x81, struct kvm_regs)

/**
 * KVM_SET_REGS - write the general purpose registers
 *
 * Capability: basic
 * Architectures: all except arm64
 * Type: vcpu ioctl
 * Parameters: struct kvm_regs (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_SET_REGS _IOW(KVMIO, 0x82, struct kvm_regs)

/**
 * KVM_GET_SREGS - read the special registers
 *
 * Capability: basic
 * Architectures: x86, ppc
 * Type: vcpu ioctl
 * Parameters: struct kvm_sregs (out)
 * Returns: 0 on success, -1 on error
 */
#define KVM_GET_SREGS _IOR(KVMIO, 0x83, struct kvm_sregs)

/**
 * KVM_SET_SREGS - write the special registers
 *
 * Capability: basic
 * Architectures: x86, ppc
 * Type: vcpu ioctl
 * Parameters: struct kvm_sregs (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_SET_SREGS _IOW(KVMIO, 0x84, struct kvm_sregs)

/**
 * KVM_TRANSLATE - translate a guest linear address
 *
 * Capability: basic
 * Architectures: x86
 * Type: vcpu ioctl
 * Parameters: struct kvm_translation (in/out)
 * Returns: 0 on success, -1 on error
 */
#define KVM_TRANSLATE _IOWR(KVMIO, 0x85, struct kvm_translation)

/**
 * KVM_INTERRUPT - queue an external interrupt (no in-kernel irqchip)
 *
 * Capability: basic
 * Architectures: x86, ppc, mips, riscv, loongarch
 * Type: vcpu ioctl
 * Parameters: struct kvm_interrupt (in)
 * Returns: 0 on success; -EEXIST if an interrupt is already queued; -EINVAL
 * for an invalid vector; -ENXIO with an in-kernel irqchip
 */
#define KVM_INTERRUPT _IOW(KVMIO, 0x86, struct kvm_interrupt)

/**
 * KVM_GET_MSRS - read model-specific registers
 *
 * Capability: basic
 * Architectures: x86
 * Type: system ioctl (feature MSRs), vcpu ioctl
 * Parameters: struct kvm_msrs (in/out)
 * Returns: number of msrs successfully returned; -1 on error
 */
#define KVM_GET_MSRS _IOWR(KVMIO, 0x88, struct kvm_msrs)

/**
 * KVM_SET_MSRS - write model-specific registers
 *
 * Capability: basic
 * Architectures: x86
 * Type: vcpu ioctl
 * Parameters: struct kvm_msrs (in)
 * Returns: number of msrs successfully set; -1 on error
 */
#define KVM_SET_MSRS _IOW(KVMIO, 0x89, struct kvm_msrs)

/**
 * KVM_SET_SIGNAL_MASK - signals blocked while the vcpu runs
 *
 * Capability: basic
 * Architectures: all
 * Type: vcpu ioctl
 * Parameters: struct kvm_signal_mask (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_SET_SIGNAL_MASK _IOW(KVMIO, 0x8b, struct kvm_signal_mask)

/**
 * KVM_GET_FPU - read the floating point state
 *
 * Capability: basic
 * Architectures: x86, loongarch
 * Type: vcpu ioctl
 * Parameters: struct kvm_fpu (out)
 * Returns: 0 on success, -1 on error
 */
#define KVM_GET_FPU _IOR(KVMIO, 0x8c, struct kvm_fpu)

/**
 * KVM_SET_FPU - write the floating point state
 *
 * Capability: basic
 * Architectures: x86, loongarch
 * Type: vcpu ioctl
 * Parameters: struct kvm_fpu (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_SET_FPU _IOW(KVMIO, 0x8d, struct kvm_fpu)

/**
 * KVM_GET_LAPIC - read the local APIC registers
 *
 * Capability: KVM_CAP_IRQCHIP
 * Architectures: x86
 * Type: vcpu ioctl
 * Parameters: struct kvm_lapic_state (out)
 * Returns: 0 on success, -1 on error
 */
#define KVM_GET_LAPIC _IOR(KVMIO, 0x8e, struct kvm_lapic_state)

/**
 * KVM_SET_LAPIC - write the local APIC registers
 *
 * Capability: KVM_CAP_IRQCHIP
 * Architectures: x86
 * Type: vcpu ioctl
 * Parameters: struct kvm_lapic_state (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_SET_LAPIC _IOW(KVMIO, 0x8f, struct kvm_lapic_state)

/**
 * KVM_SET_CPUID2 - define the CPUID the vcpu reports
 *
 * Capability: KVM_CAP_EXT_CPUID
 * Architectures: x86
 * Type: vcpu ioctl
 * Parameters: struct kvm_cpuid2 (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_SET_CPUID2 _IOW(KVMIO, 0x90, struct kvm_cpuid2)

/**
 * KVM_GET_CPUID2 - read back the vcpu's CPUID
 *
 * Capability: KVM_CAP_EXT_CPUID
 * Architectures: x86
 * Type: vcpu ioctl
 * Parameters: struct kvm_cpuid2 (in/out)
 * Returns: 0 on success, -1 on error (E2BIG: nent too small)
 */
#define KVM_GET_CPUID2 _IOWR(KVMIO, 0x91, struct kvm_cpuid2)

/**
 * KVM_GET_MP_STATE - read the vcpu's multiprocessing state
 *
 * Capability: KVM_CAP_MP_STATE
 * Architectures: x86, s390, arm64, riscv, loongarch
 * Type: vcpu ioctl
 * Parameters: struct kvm_mp_state (out)
 * Returns: 0 on success, -1 on error
 */
#define KVM_GET_MP_STATE _IOR(KVMIO, 0x98, struct kvm_mp_state)

/**
 * KVM_SET_MP_STATE - write the vcpu's multiprocessing state
 *
 * Capability: KVM_CAP_MP_STATE
 * Architectures: x86, s390, arm64, riscv, loongarch
 * Type: vcpu ioctl
 * Parameters: struct kvm_mp_state (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_SET_MP_STATE _IOW(KVMIO, 0x99, struct kvm_mp_state)

/**
 * KVM_NMI - queue an NMI on the vcpu
 *
 * Capability: KVM_CAP_USER_NMI
 * Architectures: x86, ppc
 * Type: vcpu ioctl
 * Parameters: none
 * Returns: 0 on success, -1 on error
 */
#define KVM_NMI _IO(KVMIO, 0x9a)

/**
 * KVM_SET_GUEST_DEBUG - enable single-stepping and breakpoints
 *
 * Capability: KVM_CAP_SET_GUEST_DEBUG
 * Architectures: x86, s390, ppc, arm64
 * Type: vcpu ioctl
 * Parameters: struct kvm_guest_debug (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_SET_GUEST_DEBUG _IOW(KVMIO, 0x9b, struct kvm_guest_debug)

/**
 * KVM_GET_VCPU_EVENTS - read pending exceptions, interrupts and NMIs
 *
 * Capability: KVM_CAP_VCPU_EVENTS
 * Architectures: x86, arm64
 * Type: vcpu ioctl
 * Parameters: struct kvm_vcpu_events (out)
 * Returns: 0 on success, -1 on error
 */
#define KVM_GET_VCPU_EVENTS _IOR(KVMIO, 0x9f, struct kvm_vcpu_events)

/**
 * KVM_SET_VCPU_EVENTS - write pending exceptions, interrupts and NMIs
 *
 * Capability: KVM_CAP_VCPU_EVENTS
 * Architectures: x86, arm64
 * Type: vcpu ioctl
 * Parameters: struct kvm_vcpu_events (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_SET_VCPU_EVENTS _IOW(KVMIO, 0xa0, struct kvm_vcpu_events)

/**
 * KVM_GET_DEBUGREGS - read the debug registers
 *
 * Capability: KVM_CAP_DEBUGREGS
 * Architectures: x86
 * Type: vcpu ioctl
 * Parameters: struct kvm_debugregs (out)
 * Returns: 0 on success, -1 on error
 */
#define KVM_GET_DEBUGREGS _IOR(KVMIO, 0xa1, struct kvm_debugregs)

/**
 * KVM_SET_DEBUGREGS - write the debug registers
 *
 * Capability: KVM_CAP_DEBUGREGS
 * Architectures: x86
 * Type: vcpu ioctl
 * Parameters: struct kvm_debugregs (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_SET_DEBUGREGS _IOW(KVMIO, 0xa2, struct kvm_debugregs)

/**
 * KVM_SET_TSC_KHZ - set the guest TSC frequency
 *
 * Capability: KVM_CAP_TSC_CONTROL, KVM_CAP_VM_TSC_CONTROL for vm ioctl
 * Architectures: x86
 * Type: vcpu ioctl, vm ioctl
 * Parameters: virtual tsc_khz
 * Returns: 0 on success, -1 on error
 */
#define KVM_SET_TSC_KHZ _IO(KVMIO, 0xa2)

/**
 * KVM_GET_TSC_KHZ - read the guest TSC frequency
 *
 * Capability: KVM_CAP_GET_TSC_KHZ, KVM_CAP_VM_TSC_CONTROL for vm ioctl
 * Architectures: x86
 * Type: vcpu ioctl, vm ioctl
 * Parameters: none
 * Returns: virtual tsc_khz on success, -1 on error
 */
#define KVM_GET_TSC_KHZ _IO(KVMIO, 0xa3)

/**
 * KVM_ENABLE_CAP - enable an optional capability
 *
 * Capability: KVM_CAP_ENABLE_CAP (vcpu), KVM_CAP_ENABLE_CAP_VM (vm)
 * Architectures: x86 and others, per capability
 * Type: vcpu ioctl, vm ioctl
 * Parameters: struct kvm_enable_cap (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_ENABLE_CAP _IOW(KVMIO, 0xa3, struct kvm_enable_cap)

/**
 * KVM_GET_XSAVE - read the XSAVE area
 *
 * Capability: KVM_CAP_XSAVE
 * Architectures: x86
 * Type: vcpu ioctl
 * Parameters: struct kvm_xsave (out)
 * Returns: 0 on success, -1 on error
 */
#define KVM_GET_XSAVE _IOR(KVMIO, 0xa4, struct kvm_xsave)

/**
 * KVM_SET_XSAVE - write the XSAVE area
 *
 * Capability: KVM_CAP_XSAVE
 * Architectures: x86
 * Type: vcpu ioctl
 * Parameters: struct kvm_xsave (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_SET_XSAVE _IOW(KVMIO, 0xa5, struct kvm_xsave)

/**
 * KVM_GET_XCRS - read the extended control registers
 *
 * Capability: KVM_CAP_XCRS
 * Architectures: x86
 * Type: vcpu ioctl
 * Parameters: struct kvm_xcrs (out)
 * Returns: 0 on success, -1 on error
 */
#define KVM_GET_XCRS _IOR(KVMIO, 0xa6, struct kvm_xcrs)

/**
 * KVM_SET_XCRS - write the extended control registers
 *
 * Capability: KVM_CAP_XCRS
 * Architectures: x86
 * Type: vcpu ioctl
 * Parameters: struct kvm_xcrs (in)
 * Returns: 0 on success, -1 on error
 */
#define KVM_SET_XCRS _IOW(KVMIO, 0xa7, struct kvm_xcrs)

#endif /* _UAPI_ONEKVM_KVM_ABI_H */
