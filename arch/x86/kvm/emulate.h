/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * x86 instruction decoder and MMIO emulator.
 *
 * Two services, both vendor neutral and free of vCPU structures:
 *
 * 1. okvm_insn_decode(): the length (and prefixes, ModRM, SIB,
 *    displacement, immediate) of any valid instruction in any CPU mode,
 *    for skipping intercepted instructions when the CPU does not report
 *    the next RIP (SVM without NRIP save, e.g. QEMU TCG).
 *
 * 2. okvm_emulate_mmio_start()/okvm_emulate_mmio_complete(): emulation of
 *    the instructions a guest uses on MMIO (mov family, movzx/movsx/movsxd,
 *    movnti, stos/movs with or without rep, and/or/xor/add/adc/sub/sbb/cmp/
 *    test on memory), split so that the vCPU can exit to userspace for each
 *    access.
 *
 * The caller owns a struct okvm_emul_ctxt (normally one per vCPU), loads the
 * guest registers into it, calls the emulator and stores the registers
 * back.  Typical use on a nested page fault on a GPA with no memslot:
 *
 *	load_regs(ctxt);			// gprs, rip, rflags, seg_base,
 *						// mode, cpl, paging
 *	ctxt->insn_given = 0;			// or pre-filled bytes
 *	r = okvm_emulate_mmio_start(ctxt, gpa);
 *	store_regs(ctxt);
 *	switch (r) {
 *	case OKVM_EMUL_DONE:      re-enter the guest
 *	case OKVM_EMUL_MMIO:      fill kvm_run->mmio from ctxt->mmio, exit
 *				  KVM_EXIT_MMIO; on the next KVM_RUN:
 *				  load_regs(ctxt);
 *				  r = okvm_emulate_mmio_complete(ctxt,
 *						kvm_run->mmio.data);
 *				  store_regs(ctxt); handle r the same way
 *	case OKVM_EMUL_EXCEPTION: inject ctxt->exception, re-enter
 *	case OKVM_EMUL_UNHANDLED: KVM_EXIT_INTERNAL_ERROR, suberror
 *				  KVM_INTERNAL_ERROR_EMULATION, data =
 *				  ctxt->insn_bytes[0..insn_avail)
 *	}
 *
 * Register state is final whenever a call returns anything but an MMIO
 * read: for an MMIO write, RIP and the other registers are already updated
 * when the exit happens (as in KVM); for an MMIO read nothing changes until
 * okvm_emulate_mmio_complete() receives the data.
 */
#ifndef _OKVM_X86_EMULATE_H
#define _OKVM_X86_EMULATE_H

#include <linux/types.h>
#include "walk.h"

#define OKVM_MAX_INSN_LEN	15

/**
 * enum okvm_gpr - general purpose registers in x86 encoding order
 * @OKVM_GPR_RAX: RAX
 * @OKVM_GPR_RCX: RCX
 * @OKVM_GPR_RDX: RDX
 * @OKVM_GPR_RBX: RBX
 * @OKVM_GPR_RSP: RSP
 * @OKVM_GPR_RBP: RBP
 * @OKVM_GPR_RSI: RSI
 * @OKVM_GPR_RDI: RDI
 * @OKVM_GPR_R8: R8
 * @OKVM_GPR_R9: R9
 * @OKVM_GPR_R10: R10
 * @OKVM_GPR_R11: R11
 * @OKVM_GPR_R12: R12
 * @OKVM_GPR_R13: R13
 * @OKVM_GPR_R14: R14
 * @OKVM_GPR_R15: R15
 * @OKVM_NR_GPRS: number of registers
 */
enum okvm_gpr {
	OKVM_GPR_RAX, OKVM_GPR_RCX, OKVM_GPR_RDX, OKVM_GPR_RBX,
	OKVM_GPR_RSP, OKVM_GPR_RBP, OKVM_GPR_RSI, OKVM_GPR_RDI,
	OKVM_GPR_R8, OKVM_GPR_R9, OKVM_GPR_R10, OKVM_GPR_R11,
	OKVM_GPR_R12, OKVM_GPR_R13, OKVM_GPR_R14, OKVM_GPR_R15,
	OKVM_NR_GPRS
};

/**
 * enum okvm_sreg - segment registers in x86 encoding order
 * @OKVM_SREG_ES: ES
 * @OKVM_SREG_CS: CS
 * @OKVM_SREG_SS: SS
 * @OKVM_SREG_DS: DS
 * @OKVM_SREG_FS: FS
 * @OKVM_SREG_GS: GS
 * @OKVM_NR_SREGS: number of segment registers
 * @OKVM_SREG_NONE: no segment override prefix (in &okvm_insn.seg)
 */
enum okvm_sreg {
	OKVM_SREG_ES, OKVM_SREG_CS, OKVM_SREG_SS,
	OKVM_SREG_DS, OKVM_SREG_FS, OKVM_SREG_GS,
	OKVM_NR_SREGS,
	OKVM_SREG_NONE = 0xff,
};

/**
 * enum okvm_cpu_mode - execution mode, as it matters for decoding
 * @OKVM_MODE_REAL: real mode (CR0.PE=0), 16-bit defaults
 * @OKVM_MODE_VM86: virtual-8086 mode, 16-bit defaults
 * @OKVM_MODE_PROT16: protected mode, CS.D=0
 * @OKVM_MODE_PROT32: protected mode, CS.D=1
 * @OKVM_MODE_COMPAT16: long mode, CS.L=0, CS.D=0
 * @OKVM_MODE_COMPAT32: long mode, CS.L=0, CS.D=1
 * @OKVM_MODE_LONG64: 64-bit mode (EFER.LMA=1, CS.L=1)
 */
enum okvm_cpu_mode {
	OKVM_MODE_REAL,
	OKVM_MODE_VM86,
	OKVM_MODE_PROT16,
	OKVM_MODE_PROT32,
	OKVM_MODE_COMPAT16,
	OKVM_MODE_COMPAT32,
	OKVM_MODE_LONG64,
};

/* Mode from CR0.PE, EFER.LMA, RFLAGS.VM and the CS descriptor's L and D/B */
enum okvm_cpu_mode okvm_cpu_mode(u64 cr0, u64 efer, u64 rflags,
				 bool cs_l, bool cs_db);

/**
 * enum okvm_opcode_map - opcode map of a decoded instruction
 * @OKVM_MAP_1B: one-byte map
 * @OKVM_MAP_0F: 0F xx
 * @OKVM_MAP_0F38: 0F 38 xx (or VEX/EVEX map 2)
 * @OKVM_MAP_0F3A: 0F 3A xx (or VEX/EVEX map 3)
 * @OKVM_MAP_OTHER: other VEX/EVEX/XOP maps (see &okvm_insn.vex_map)
 */
enum okvm_opcode_map {
	OKVM_MAP_1B,
	OKVM_MAP_0F,
	OKVM_MAP_0F38,
	OKVM_MAP_0F3A,
	OKVM_MAP_OTHER,
};

/**
 * enum okvm_insn_op - what the MMIO emulator knows to do with the insn
 * @OKVM_OP_NONE: not emulatable (any instruction outside the list below)
 * @OKVM_OP_STORE: mov m, r (88/89), movnti (0F C3)
 * @OKVM_OP_STORE_IMM: mov m, imm (C6 /0, C7 /0)
 * @OKVM_OP_LOAD: mov r, m (8A/8B)
 * @OKVM_OP_LOAD_MOFFS: mov al/ax/eax/rax, moffs (A0/A1)
 * @OKVM_OP_STORE_MOFFS: mov moffs, al/ax/eax/rax (A2/A3)
 * @OKVM_OP_MOVZX: movzx r, m8/m16 (0F B6/B7)
 * @OKVM_OP_MOVSX: movsx r, m8/m16 (0F BE/BF), movsxd r, m32 (63 in 64-bit)
 * @OKVM_OP_STOS: stos (AA/AB), optionally rep
 * @OKVM_OP_MOVS: movs (A4/A5), optionally rep
 * @OKVM_OP_ALU_MR: add/or/adc/sbb/and/sub/xor/cmp m, r (00-39 even forms)
 * @OKVM_OP_ALU_RM: add/.../cmp r, m (02-3B)
 * @OKVM_OP_ALU_MI: group 1 m, imm (80/81/83)
 * @OKVM_OP_TEST_MR: test m, r (84/85)
 * @OKVM_OP_TEST_MI: test m, imm (F6/F7 /0 and /1)
 */
enum okvm_insn_op {
	OKVM_OP_NONE,
	OKVM_OP_STORE,
	OKVM_OP_STORE_IMM,
	OKVM_OP_LOAD,
	OKVM_OP_LOAD_MOFFS,
	OKVM_OP_STORE_MOFFS,
	OKVM_OP_MOVZX,
	OKVM_OP_MOVSX,
	OKVM_OP_STOS,
	OKVM_OP_MOVS,
	OKVM_OP_ALU_MR,
	OKVM_OP_ALU_RM,
	OKVM_OP_ALU_MI,
	OKVM_OP_TEST_MR,
	OKVM_OP_TEST_MI,
};

/* okvm_insn.flags */
#define OKVM_INSN_MODRM		BIT(0)	/* has a ModRM byte */
#define OKVM_INSN_SIB		BIT(1)	/* has a SIB byte */
#define OKVM_INSN_RIPREL	BIT(2)	/* RIP-relative memory operand */
#define OKVM_INSN_LOCK		BIT(3)	/* F0 prefix */
#define OKVM_INSN_OPSIZE	BIT(4)	/* 66 prefix */
#define OKVM_INSN_ADSIZE	BIT(5)	/* 67 prefix */
#define OKVM_INSN_VEX		BIT(6)	/* VEX, EVEX or XOP encoded */
#define OKVM_INSN_MEM		BIT(7)	/* has a memory operand (ModRM
					 * mod != 3, moffs, or string op)
					 */

/**
 * struct okvm_insn - a decoded instruction
 * @bytes: the instruction bytes (first @len valid)
 * @len: instruction length, 1..15
 * @map: opcode map, enum okvm_opcode_map
 * @vex_map: map number from a VEX/EVEX/XOP prefix (0 if none)
 * @opcode: opcode byte within @map
 * @op_bytes: effective operand size in bytes (2, 4 or 8)
 * @ad_bytes: effective address size in bytes (2, 4 or 8)
 * @rex: REX prefix byte, 0 if none (64-bit mode only)
 * @rep: last F2/F3 prefix byte, 0 if none
 * @seg: segment override, enum okvm_sreg (%OKVM_SREG_NONE if none)
 * @flags: OKVM_INSN_* flags
 * @modrm: ModRM byte
 * @mod: ModRM.mod
 * @reg: ModRM.reg extended by REX.R (0..15)
 * @rm: ModRM.rm extended by REX.B (0..15; base register for mod=3)
 * @sib: SIB byte
 * @disp_bytes: displacement size in bytes (moffs: the offset size)
 * @imm_bytes: total immediate bytes (ENTER: 3; far pointers: 4 or 6)
 * @disp: displacement, sign-extended (moffs: zero-extended offset)
 * @imm: first immediate, zero-extended raw value
 * @op: MMIO emulation class, enum okvm_insn_op
 * @mem_bytes: size of the memory access of @op (1, 2, 4 or 8)
 * @alu: ALU operation for the ALU classes (0 add, 1 or, 2 adc, 3 sbb,
 *	4 and, 5 sub, 6 xor, 7 cmp; 8 = test)
 */
struct okvm_insn {
	u8 bytes[OKVM_MAX_INSN_LEN];
	u8 len;
	u8 map;
	u8 vex_map;
	u8 opcode;
	u8 op_bytes;
	u8 ad_bytes;
	u8 rex;
	u8 rep;
	u8 seg;
	u8 flags;
	u8 modrm;
	u8 mod;
	u8 reg;
	u8 rm;
	u8 sib;
	u8 disp_bytes;
	u8 imm_bytes;
	s64 disp;
	u64 imm;
	u8 op;
	u8 mem_bytes;
	u8 alu;
};

/*
 * Decode one instruction from @bytes (@avail valid).  Returns 0 and fills
 * @insn (insn->len is the length); -ENODATA if @avail is too short (fetch
 * more and retry); -E2BIG if it would exceed 15 bytes; -EINVAL if the
 * opcode is undefined (#UD) in @mode.
 */
int okvm_insn_decode(const u8 *bytes, unsigned int avail,
		     enum okvm_cpu_mode mode, struct okvm_insn *insn);

/**
 * enum okvm_emul_result - outcome of an emulator call
 * @OKVM_EMUL_DONE: finished; registers in the context are final; resume
 *	the guest
 * @OKVM_EMUL_MMIO: an access for userspace is described in
 *	&okvm_emul_ctxt.mmio; exit with KVM_EXIT_MMIO and call
 *	okvm_emulate_mmio_complete() on the next KVM_RUN
 * @OKVM_EMUL_EXCEPTION: inject &okvm_emul_ctxt.exception and resume
 * @OKVM_EMUL_UNHANDLED: cannot emulate: exit with KVM_EXIT_INTERNAL_ERROR /
 *	KVM_INTERNAL_ERROR_EMULATION with &okvm_emul_ctxt.insn_bytes
 *	(&okvm_emul_ctxt.fail holds a reason for debugging)
 */
enum okvm_emul_result {
	OKVM_EMUL_DONE,
	OKVM_EMUL_MMIO,
	OKVM_EMUL_EXCEPTION,
	OKVM_EMUL_UNHANDLED,
};

/**
 * enum okvm_emul_fail - why emulation returned %OKVM_EMUL_UNHANDLED
 * @OKVM_FAIL_NONE: no failure
 * @OKVM_FAIL_FETCH: instruction bytes could not be read from guest RAM
 * @OKVM_FAIL_DECODE: the bytes are not a valid instruction
 * @OKVM_FAIL_UNSUPPORTED: valid, but not an instruction the emulator does
 * @OKVM_FAIL_MEM: a paging structure or RAM operand could not be accessed
 * @OKVM_FAIL_STATE: okvm_emulate_mmio_complete() without a pending access
 */
enum okvm_emul_fail {
	OKVM_FAIL_NONE,
	OKVM_FAIL_FETCH,
	OKVM_FAIL_DECODE,
	OKVM_FAIL_UNSUPPORTED,
	OKVM_FAIL_MEM,
	OKVM_FAIL_STATE,
};

/**
 * struct okvm_mmio_req - one MMIO access for userspace (kvm_run->mmio)
 * @gpa: guest physical address
 * @data: for writes, the bytes to write (little endian); unused for reads
 * @len: access size in bytes: 1, 2, 4 or 8
 * @is_write: true for a write
 */
struct okvm_mmio_req {
	u64 gpa;
	u8 data[8];
	u32 len;
	bool is_write;
};

/**
 * struct okvm_emul_exception - exception to inject
 * @vector: exception vector (13 = #GP, 14 = #PF, 6 = #UD)
 * @has_error_code: whether @error_code is pushed
 * @error_code: error code
 * @cr2: faulting linear address, for #PF
 */
struct okvm_emul_exception {
	u8 vector;
	bool has_error_code;
	u32 error_code;
	u64 cr2;
};

/**
 * struct okvm_emul_ctxt - emulator context, normally one per vCPU
 * @gprs: general purpose registers, indexed by enum okvm_gpr (in/out)
 * @rip: RIP (in/out)
 * @rflags: RFLAGS (in/out: arithmetic flags, and RIP/RSI/RDI/RCX via DF)
 * @seg_base: segment bases, indexed by enum okvm_sreg (in); in 64-bit
 *	mode only FS and GS are used
 * @mode: CPU mode, see okvm_cpu_mode() (in)
 * @cpl: current privilege level (in), CPL 3 makes accesses user accesses
 * @paging: guest paging state and memory callbacks (in)
 * @insn_given: in: number of instruction bytes the caller pre-filled in
 *	@insn_bytes (e.g. from decode assists); 0 means fetch them from guest
 *	memory at seg_base[CS] + rip.  okvm_emulate_mmio_start() and
 *	okvm_emulate_skip() consume it (reset it to 0).
 * @insn_bytes: out: the instruction bytes used (for internal-error exits)
 * @insn_avail: out: number of valid bytes in @insn_bytes
 * @insn: the decoded instruction (out)
 * @mmio: the access to perform when %OKVM_EMUL_MMIO is returned (out)
 * @exception: the exception when %OKVM_EMUL_EXCEPTION is returned (out)
 * @fail: reason when %OKVM_EMUL_UNHANDLED is returned (out)
 * @state: private: pending step between start and complete
 * @dst_la: private: movs destination linear address
 * @split: private: the pending read covers only part of the operand
 *	(it crossed from RAM into MMIO or back); @split_buf holds the RAM
 *	bytes and @split_off is where the MMIO bytes go
 * @split_off: private: see @split
 * @split_buf: private: see @split
 * @fetch_fault: private: the last fetch stopped at a faulting page whose
 *	fault is in @exception
 */
struct okvm_emul_ctxt {
	u64 gprs[OKVM_NR_GPRS];
	u64 rip;
	u64 rflags;
	u64 seg_base[OKVM_NR_SREGS];
	enum okvm_cpu_mode mode;
	u8 cpl;
	struct okvm_paging paging;

	u8 insn_given;
	u8 insn_bytes[OKVM_MAX_INSN_LEN];
	u8 insn_avail;

	struct okvm_insn insn;
	struct okvm_mmio_req mmio;
	struct okvm_emul_exception exception;
	enum okvm_emul_fail fail;

	u8 state;
	u64 dst_la;
	bool split;
	u8 split_off;
	u8 split_buf[8];
	bool fetch_fault;
};

/*
 * Fetch up to 15 instruction bytes at seg_base[CS] + rip (rip alone in
 * 64-bit mode) into ctxt->insn_bytes/insn_avail, crossing a page boundary
 * if needed and stopping early at a page that does not translate.  Returns
 * OKVM_EMUL_DONE when at least one byte was read, OKVM_EMUL_EXCEPTION
 * (#PF/#GP in ctxt->exception) when the first byte faults,
 * OKVM_EMUL_UNHANDLED (fail = OKVM_FAIL_FETCH) on host errors or non-RAM.
 * okvm_emulate_skip() and okvm_emulate_mmio_start() call it as needed.
 */
enum okvm_emul_result okvm_fetch_insn(struct okvm_emul_ctxt *ctxt);

/*
 * Skip the instruction at RIP (HLT, CPUID, RDMSR, WRMSR, VMMCALL, INVD, ...
 * when the CPU gives no next RIP): fetch unless ctxt->insn_given, decode,
 * advance rip (truncated to 32 bits outside 64-bit mode).  Returns
 * OKVM_EMUL_DONE, OKVM_EMUL_EXCEPTION or OKVM_EMUL_UNHANDLED.
 */
enum okvm_emul_result okvm_emulate_skip(struct okvm_emul_ctxt *ctxt);

/*
 * Start emulating the instruction at RIP, which touched MMIO at @gpa (the
 * nested page fault address of the final translation, not of a guest
 * page-table access).  See the top of this file for the protocol.
 */
enum okvm_emul_result okvm_emulate_mmio_start(struct okvm_emul_ctxt *ctxt,
					      u64 gpa);

/*
 * Continue after userspace handled ctxt->mmio: @data holds ctxt->mmio.len
 * bytes read (ignored for writes).  May return OKVM_EMUL_MMIO again (the
 * write half of a read-modify-write or of an MMIO-to-MMIO movs).
 */
enum okvm_emul_result okvm_emulate_mmio_complete(struct okvm_emul_ctxt *ctxt,
						 const void *data);

/* Drop any pending step (vCPU reset, or userspace abandoned the exit) */
void okvm_emulate_reset(struct okvm_emul_ctxt *ctxt);

#endif /* _OKVM_X86_EMULATE_H */
