// SPDX-License-Identifier: GPL-2.0-only
/*
 * x86 instruction decoder and MMIO emulator, see emulate.h.
 *
 * The decoder is table driven from the opcode maps of the AMD64
 * Architecture Programmer's Manual vol. 3 (appendix A) and the Intel SDM
 * vol. 2 (appendix A): every opcode gets "has ModRM" and "immediate kind"
 * attributes, which is all that is needed for the length of any valid
 * instruction.  Only the small MMIO class is executed.
 *
 * Where AMD and Intel differ on a length, AMD wins: in 64-bit mode a 66
 * prefix on a near branch (E8, E9, 0F 80-8F) selects a 16-bit displacement.
 */
#include <linux/types.h>
#include <linux/bits.h>
#include <linux/errno.h>
#include <linux/string.h>
#include <linux/kernel.h>

#include "emulate.h"

/* Opcode attributes */
#define A_M	BIT(0)	/* ModRM follows */
#define A_I8	BIT(1)	/* imm8 */
#define A_IZ	BIT(2)	/* imm16 or imm32 by operand size */
#define A_I16	BIT(3)	/* imm16 */
#define A_IV	BIT(4)	/* imm16, imm32 or imm64 by operand size */
#define A_MO	BIT(5)	/* moffs: offset of address size */
#define A_I64	BIT(6)	/* invalid in 64-bit mode */
#define A_UD	BIT(7)	/* undefined */
#define A_I32	BIT(8)	/* imm32 (XOP map 0A); not in the tables */

/* One-byte map; prefixes and 0F are handled before the lookup */
static const u8 map_1b[256] = {
	[0x00 ... 0x03] = A_M, [0x04] = A_I8, [0x05] = A_IZ,
	[0x06 ... 0x07] = A_I64,
	[0x08 ... 0x0b] = A_M, [0x0c] = A_I8, [0x0d] = A_IZ, [0x0e] = A_I64,
	[0x10 ... 0x13] = A_M, [0x14] = A_I8, [0x15] = A_IZ,
	[0x16 ... 0x17] = A_I64,
	[0x18 ... 0x1b] = A_M, [0x1c] = A_I8, [0x1d] = A_IZ,
	[0x1e ... 0x1f] = A_I64,
	[0x20 ... 0x23] = A_M, [0x24] = A_I8, [0x25] = A_IZ, [0x27] = A_I64,
	[0x28 ... 0x2b] = A_M, [0x2c] = A_I8, [0x2d] = A_IZ, [0x2f] = A_I64,
	[0x30 ... 0x33] = A_M, [0x34] = A_I8, [0x35] = A_IZ, [0x37] = A_I64,
	[0x38 ... 0x3b] = A_M, [0x3c] = A_I8, [0x3d] = A_IZ, [0x3f] = A_I64,
	[0x60 ... 0x61] = A_I64, [0x62] = A_M | A_I64, [0x63] = A_M,
	[0x68] = A_IZ, [0x69] = A_M | A_IZ, [0x6a] = A_I8,
	[0x6b] = A_M | A_I8,
	[0x70 ... 0x7f] = A_I8,
	[0x80] = A_M | A_I8, [0x81] = A_M | A_IZ,
	[0x82] = A_M | A_I8 | A_I64, [0x83] = A_M | A_I8,
	[0x84 ... 0x8f] = A_M,
	[0x9a] = A_IZ | A_I16 | A_I64,
	[0xa0 ... 0xa3] = A_MO, [0xa8] = A_I8, [0xa9] = A_IZ,
	[0xb0 ... 0xb7] = A_I8, [0xb8 ... 0xbf] = A_IV,
	[0xc0 ... 0xc1] = A_M | A_I8, [0xc2] = A_I16,
	[0xc4 ... 0xc5] = A_M | A_I64, [0xc6] = A_M | A_I8,
	[0xc7] = A_M | A_IZ, [0xc8] = A_I16 | A_I8, [0xca] = A_I16,
	[0xcd] = A_I8, [0xce] = A_I64,
	[0xd0 ... 0xd3] = A_M, [0xd4 ... 0xd5] = A_I8 | A_I64, [0xd6] = A_UD,
	[0xd8 ... 0xdf] = A_M,
	[0xe0 ... 0xe7] = A_I8, [0xe8 ... 0xe9] = A_IZ,
	[0xea] = A_IZ | A_I16 | A_I64, [0xeb] = A_I8,
	[0xf6 ... 0xf7] = A_M, [0xfe ... 0xff] = A_M,
};

/* Two-byte map (0F xx); 0F 38 and 0F 3A are handled before the lookup */
static const u8 map_0f[256] = {
	[0x00 ... 0x03] = A_M, [0x04] = A_UD, [0x0a] = A_UD, [0x0c] = A_UD,
	[0x0d] = A_M, [0x0f] = A_M | A_I8,
	[0x10 ... 0x1f] = A_M,
	[0x20 ... 0x23] = A_M, [0x24 ... 0x27] = A_UD, [0x28 ... 0x2f] = A_M,
	[0x36] = A_UD, [0x39] = A_UD, [0x3b ... 0x3f] = A_UD,
	[0x40 ... 0x6f] = A_M,
	[0x70 ... 0x73] = A_M | A_I8, [0x74 ... 0x76] = A_M,
	[0x78 ... 0x79] = A_M, [0x7a ... 0x7b] = A_UD, [0x7c ... 0x7f] = A_M,
	[0x80 ... 0x8f] = A_IZ,
	[0x90 ... 0x9f] = A_M,
	[0xa3] = A_M, [0xa4] = A_M | A_I8, [0xa5] = A_M,
	[0xa6 ... 0xa7] = A_UD,
	[0xab] = A_M, [0xac] = A_M | A_I8, [0xad ... 0xaf] = A_M,
	[0xb0 ... 0xb9] = A_M, [0xba] = A_M | A_I8, [0xbb ... 0xbf] = A_M,
	[0xc0 ... 0xc1] = A_M, [0xc2] = A_M | A_I8, [0xc3] = A_M,
	[0xc4 ... 0xc6] = A_M | A_I8, [0xc7] = A_M,
	[0xd0 ... 0xff] = A_M,
};

/* RFLAGS bits */
#define FL_CF		BIT_ULL(0)
#define FL_PF		BIT_ULL(2)
#define FL_AF		BIT_ULL(4)
#define FL_ZF		BIT_ULL(6)
#define FL_SF		BIT_ULL(7)
#define FL_DF		BIT_ULL(10)
#define FL_OF		BIT_ULL(11)
#define FL_VM		BIT_ULL(17)
#define FL_AC		BIT_ULL(18)
#define FL_ARITH	(FL_CF | FL_PF | FL_AF | FL_ZF | FL_SF | FL_OF)

/* ALU operations, in the order of the opcode's bits 5:3 */
enum {
	ALU_ADD, ALU_OR, ALU_ADC, ALU_SBB, ALU_AND, ALU_SUB, ALU_XOR, ALU_CMP,
	ALU_TEST
};

/* Private okvm_emul_ctxt.state values */
enum { ST_IDLE, ST_READ, ST_WRITE };

/**
 * okvm_cpu_mode() - the decoding mode of a vCPU
 * @cr0: guest CR0
 * @efer: guest EFER
 * @rflags: guest RFLAGS
 * @cs_l: CS descriptor L bit
 * @cs_db: CS descriptor D/B bit
 *
 * Return: the mode that gives default operand and address sizes.
 */
enum okvm_cpu_mode okvm_cpu_mode(u64 cr0, u64 efer, u64 rflags,
				 bool cs_l, bool cs_db)
{
	if (!(cr0 & OKVM_CR0_PE))
		return OKVM_MODE_REAL;
	if (efer & OKVM_EFER_LMA) {
		if (cs_l)
			return OKVM_MODE_LONG64;
		return cs_db ? OKVM_MODE_COMPAT32 : OKVM_MODE_COMPAT16;
	}
	if (rflags & FL_VM)
		return OKVM_MODE_VM86;
	return cs_db ? OKVM_MODE_PROT32 : OKVM_MODE_PROT16;
}

static bool mode_is_16(enum okvm_cpu_mode mode)
{
	return mode == OKVM_MODE_REAL || mode == OKVM_MODE_VM86 ||
	       mode == OKVM_MODE_PROT16 || mode == OKVM_MODE_COMPAT16;
}

static bool mode_has_vex(enum okvm_cpu_mode mode)
{
	return mode != OKVM_MODE_REAL && mode != OKVM_MODE_VM86;
}

struct decoder {
	const u8 *bytes;
	unsigned int avail;
	unsigned int pos;
};

static int get_byte(struct decoder *d, u8 *b)
{
	if (d->pos >= OKVM_MAX_INSN_LEN)
		return -E2BIG;
	if (d->pos >= d->avail)
		return -ENODATA;
	*b = d->bytes[d->pos++];
	return 0;
}

static int peek_byte(struct decoder *d, u8 *b)
{
	int r = get_byte(d, b);

	if (!r)
		d->pos--;
	return r;
}

/* Read an @n-byte little-endian value (n <= 8), zero-extended */
static int get_le(struct decoder *d, unsigned int n, u64 *val)
{
	unsigned int i;
	u8 b;
	int r;

	*val = 0;
	for (i = 0; i < n; i++) {
		r = get_byte(d, &b);
		if (r)
			return r;
		*val |= (u64)b << (8 * i);
	}
	return 0;
}

static u64 sign_extend(u64 v, unsigned int bytes)
{
	unsigned int sh;

	if (bytes >= 8)
		return v;
	sh = 64 - 8 * bytes;
	return (u64)((s64)(v << sh) >> sh);
}

static u64 trunc_bytes(u64 v, unsigned int bytes)
{
	return bytes >= 8 ? v : v & ((1ULL << (8 * bytes)) - 1);
}

/* Is the opcode in a VEX/EVEX map followed by an imm8? */
static bool vex_has_imm8(unsigned int map, u8 opcode)
{
	if (map == 3)
		return true;
	if (map != 1)
		return false;
	return (opcode >= 0x70 && opcode <= 0x73) || opcode == 0xc2 ||
	       (opcode >= 0xc4 && opcode <= 0xc6);
}

/*
 * VEX (C4/C5), EVEX (62) and XOP (8F) encodings: the escape byte has been
 * consumed.  Sets the map, opcode and attributes.
 */
static int decode_vex(struct decoder *d, u8 esc, bool m64,
		      struct okvm_insn *insn, u16 *attr)
{
	u8 p0, p1 = 0, opcode;
	unsigned int map;
	u64 v;
	int r;

	r = get_byte(d, &p0);
	if (r)
		return r;

	switch (esc) {
	case 0xc5:
		map = 1;
		p1 = p0;
		break;
	case 0xc4:
	case 0x8f:
		map = p0 & 0x1f;
		r = get_byte(d, &p1);
		if (r)
			return r;
		break;
	default:	/* 0x62, EVEX */
		map = p0 & 0x7;
		r = get_le(d, 2, &v);	/* P1, P2 */
		if (r)
			return r;
		p1 = v & 0xff;
		break;
	}

	if (m64) {
		/* R, X, B are stored inverted; C5 has only R */
		insn->rex = 0x40 | ((~p0 >> 5) & (esc == 0xc5 ? 4 : 7));
		if (esc != 0xc5 && (p1 & 0x80))
			insn->rex |= 0x48;	/* W */
	}
	insn->vex_map = map;
	insn->flags |= OKVM_INSN_VEX;

	r = get_byte(d, &opcode);
	if (r)
		return r;
	insn->opcode = opcode;

	*attr = A_M;
	if (esc == 0x8f) {
		if (map == 8)
			*attr |= A_I8;
		else if (map == 0xa)
			*attr |= A_I32;
		else if (map != 9)
			return -EINVAL;
		insn->map = OKVM_MAP_OTHER;
		return 0;
	}

	if (esc == 0x62) {
		if (map != 1 && map != 2 && map != 3 && map != 5 && map != 6)
			return -EINVAL;
	} else if (map < 1 || map > 3) {
		return -EINVAL;
	}
	if (map == 1 && opcode == 0x77 && esc != 0x62)
		*attr = 0;	/* vzeroupper/vzeroall */
	if (vex_has_imm8(map, opcode))
		*attr |= A_I8;
	insn->map = map <= 3 ? map : OKVM_MAP_OTHER;
	return 0;
}

/*
 * ModRM, SIB and displacement.  @reg_only: the mod field is ignored and
 * both operands are registers (mov to/from CR and DR).
 */
static int decode_modrm(struct decoder *d, bool m64, bool reg_only,
			struct okvm_insn *insn)
{
	unsigned int disp = 0;
	u8 rm, base;
	u64 v;
	int r;

	r = get_byte(d, &insn->modrm);
	if (r)
		return r;
	insn->flags |= OKVM_INSN_MODRM;
	insn->mod = reg_only ? 3 : insn->modrm >> 6;
	rm = insn->modrm & 7;
	insn->reg = ((insn->modrm >> 3) & 7) | ((insn->rex & 4) << 1);
	insn->rm = rm | ((insn->rex & 1) << 3);
	if (insn->mod == 3)
		return 0;

	insn->flags |= OKVM_INSN_MEM;
	if (insn->ad_bytes == 2) {
		if (insn->mod == 1)
			disp = 1;
		else if (insn->mod == 2 || rm == 6)
			disp = 2;
	} else {
		if (rm == 4) {
			r = get_byte(d, &insn->sib);
			if (r)
				return r;
			insn->flags |= OKVM_INSN_SIB;
			base = insn->sib & 7;
			if (insn->mod == 0 && base == 5)
				disp = 4;
		} else if (insn->mod == 0 && rm == 5) {
			disp = 4;
			if (m64)
				insn->flags |= OKVM_INSN_RIPREL;
		}
		if (insn->mod == 1)
			disp = 1;
		else if (insn->mod == 2)
			disp = 4;
	}
	if (disp) {
		r = get_le(d, disp, &v);
		if (r)
			return r;
		insn->disp = (s64)sign_extend(v, disp);
		insn->disp_bytes = disp;
	}
	return 0;
}

/* Set insn->op, mem_bytes and alu for the instructions the MMIO code runs */
static void classify(struct okvm_insn *insn, bool m64)
{
	bool mem = (insn->flags & OKVM_INSN_MODRM) && insn->mod != 3;
	u8 grp = (insn->modrm >> 3) & 7;
	u8 opc = insn->opcode;
	u8 size = (opc & 1) ? insn->op_bytes : 1;

	if (insn->flags & OKVM_INSN_VEX)
		return;

	if (insn->map == OKVM_MAP_0F) {
		if (!mem)
			return;
		switch (opc) {
		case 0xb6:
		case 0xb7:
			insn->op = OKVM_OP_MOVZX;
			insn->mem_bytes = opc == 0xb6 ? 1 : 2;
			break;
		case 0xbe:
		case 0xbf:
			insn->op = OKVM_OP_MOVSX;
			insn->mem_bytes = opc == 0xbe ? 1 : 2;
			break;
		case 0xc3:	/* movnti */
			if (insn->op_bytes >= 4 && !insn->rep &&
			    !(insn->flags & OKVM_INSN_OPSIZE)) {
				insn->op = OKVM_OP_STORE;
				insn->mem_bytes = insn->op_bytes;
			}
			break;
		}
		goto lock;
	}
	if (insn->map != OKVM_MAP_1B)
		return;

	switch (opc) {
	case 0x00 ... 0x3f:
		if ((opc & 7) < 4 && mem) {
			insn->op = (opc & 2) ? OKVM_OP_ALU_RM : OKVM_OP_ALU_MR;
			insn->alu = opc >> 3;
			insn->mem_bytes = size;
		}
		break;
	case 0x63:
		if (m64 && mem) {	/* movsxd */
			insn->op = OKVM_OP_MOVSX;
			insn->mem_bytes = min_t(u8, insn->op_bytes, 4);
		}
		break;
	case 0x80 ... 0x83:
		if (mem) {
			insn->op = OKVM_OP_ALU_MI;
			insn->alu = grp;
			insn->mem_bytes = (opc == 0x81 || opc == 0x83) ?
					  insn->op_bytes : 1;
		}
		break;
	case 0x84 ... 0x85:
		if (mem) {
			insn->op = OKVM_OP_TEST_MR;
			insn->alu = ALU_TEST;
			insn->mem_bytes = size;
		}
		break;
	case 0x88 ... 0x8b:
		if (mem) {
			insn->op = (opc & 2) ? OKVM_OP_LOAD : OKVM_OP_STORE;
			insn->mem_bytes = size;
		}
		break;
	case 0xa0 ... 0xa3:
		insn->op = (opc & 2) ? OKVM_OP_STORE_MOFFS : OKVM_OP_LOAD_MOFFS;
		insn->mem_bytes = size;
		break;
	case 0xa4 ... 0xa5:
		insn->op = OKVM_OP_MOVS;
		insn->mem_bytes = size;
		break;
	case 0xaa ... 0xab:
		insn->op = OKVM_OP_STOS;
		insn->mem_bytes = size;
		break;
	case 0xc6 ... 0xc7:
		if (mem && grp == 0) {
			insn->op = OKVM_OP_STORE_IMM;
			insn->mem_bytes = size;
		}
		break;
	case 0xf6 ... 0xf7:
		if (mem && grp <= 1) {
			insn->op = OKVM_OP_TEST_MI;
			insn->alu = ALU_TEST;
			insn->mem_bytes = size;
		}
		break;
	}
lock:
	/* LOCK is valid only on read-modify-write forms */
	if ((insn->flags & OKVM_INSN_LOCK) &&
	    !((insn->op == OKVM_OP_ALU_MR || insn->op == OKVM_OP_ALU_MI) &&
	      insn->alu != ALU_CMP))
		insn->op = OKVM_OP_NONE;
}

static bool is_legacy_prefix(u8 b)
{
	switch (b) {
	case 0x26: case 0x2e: case 0x36: case 0x3e: case 0x64: case 0x65:
	case 0x66: case 0x67: case 0xf0: case 0xf2: case 0xf3:
		return true;
	}
	return false;
}

static void apply_prefix(struct okvm_insn *insn, u8 b)
{
	switch (b) {
	case 0x66:
		insn->flags |= OKVM_INSN_OPSIZE;
		break;
	case 0x67:
		insn->flags |= OKVM_INSN_ADSIZE;
		break;
	case 0xf0:
		insn->flags |= OKVM_INSN_LOCK;
		break;
	case 0xf2:
	case 0xf3:
		insn->rep = b;
		break;
	case 0x64:
		insn->seg = OKVM_SREG_FS;
		break;
	case 0x65:
		insn->seg = OKVM_SREG_GS;
		break;
	default:	/* 26 2E 36 3E: ES CS SS DS */
		insn->seg = (b >> 3) & 3;
		break;
	}
}

/*
 * Immediate bytes after ModRM/displacement, from the attributes; *@first
 * is the size of the first immediate (the one stored in insn->imm).
 */
static unsigned int imm_size(const struct okvm_insn *insn, u16 attr,
			     unsigned int *first)
{
	unsigned int z = insn->op_bytes == 2 ? 2 : 4;

	if ((attr & (A_IZ | A_I16)) == (A_IZ | A_I16)) {
		*first = z;		/* far pointer: offset, selector */
		return z + 2;
	}
	if ((attr & (A_I16 | A_I8)) == (A_I16 | A_I8)) {
		*first = 2;		/* ENTER: imm16, imm8 */
		return 3;
	}
	if (attr & A_IZ)
		*first = z;
	else if (attr & A_I32)
		*first = 4;
	else if (attr & A_IV)
		*first = insn->op_bytes;
	else if (attr & A_I16)
		*first = 2;
	else if (attr & A_I8)
		*first = 1;
	else
		*first = 0;
	return *first;
}

/**
 * okvm_insn_decode() - decode one x86 instruction
 * @bytes: instruction bytes
 * @avail: number of valid bytes at @bytes
 * @mode: CPU mode giving the default operand/address sizes
 * @insn: out: the decoded instruction
 *
 * Decodes legacy prefixes, REX, VEX/EVEX/XOP, the one-, two- and
 * three-byte opcode maps, ModRM, SIB, displacement and immediates of any
 * instruction, so that @insn->len is right for every valid instruction.
 * For the MMIO class @insn->op, @insn->mem_bytes and @insn->alu tell the
 * emulator what to do.  Nothing is allocated; @bytes is not modified.
 *
 * Return: 0; -ENODATA if @avail bytes are not enough; -E2BIG if the
 * instruction would be longer than 15 bytes; -EINVAL for an opcode that is
 * undefined in @mode.
 */
int okvm_insn_decode(const u8 *bytes, unsigned int avail,
		     enum okvm_cpu_mode mode, struct okvm_insn *insn)
{
	bool m64 = mode == OKVM_MODE_LONG64;
	bool d16 = mode_is_16(mode);
	struct decoder d = { .bytes = bytes, .avail = avail };
	unsigned int nimm, first;
	u8 b, next;
	u16 attr;
	u64 v;
	int r;

	memset(insn, 0, sizeof(*insn));
	insn->seg = OKVM_SREG_NONE;

	for (;;) {
		r = get_byte(&d, &b);
		if (r)
			return r;
		if (is_legacy_prefix(b)) {
			apply_prefix(insn, b);
			insn->rex = 0;	/* REX must come last */
			continue;
		}
		if (m64 && (b & 0xf0) == 0x40) {
			insn->rex = b;
			continue;
		}
		break;
	}

	if (m64) {
		insn->ad_bytes = (insn->flags & OKVM_INSN_ADSIZE) ? 4 : 8;
		if (insn->rex & 8)
			insn->op_bytes = 8;
		else
			insn->op_bytes = (insn->flags & OKVM_INSN_OPSIZE) ? 2 : 4;
	} else {
		bool o16 = d16 ^ !!(insn->flags & OKVM_INSN_OPSIZE);
		bool a16 = d16 ^ !!(insn->flags & OKVM_INSN_ADSIZE);

		insn->op_bytes = o16 ? 2 : 4;
		insn->ad_bytes = a16 ? 2 : 4;
	}

	insn->opcode = b;
	insn->map = OKVM_MAP_1B;
	if (b == 0x0f) {
		r = get_byte(&d, &b);
		if (r)
			return r;
		if (b == 0x38 || b == 0x3a) {
			insn->map = b == 0x38 ? OKVM_MAP_0F38 : OKVM_MAP_0F3A;
			attr = b == 0x38 ? A_M : A_M | A_I8;
			r = get_byte(&d, &b);
			if (r)
				return r;
		} else {
			insn->map = OKVM_MAP_0F;
			attr = map_0f[b];
			/* SSE4a extrq/insertq: two imm8 */
			if (b == 0x78 && (insn->rep == 0xf2 ||
					  (insn->flags & OKVM_INSN_OPSIZE)))
				attr |= A_I16;
		}
		insn->opcode = b;
	} else if ((b == 0xc4 || b == 0xc5 || b == 0x62 || b == 0x8f) &&
		   mode_has_vex(mode)) {
		r = peek_byte(&d, &next);
		if (r)
			return r;
		if (b == 0x8f ? (next & 0x1f) >= 8 :
		    (m64 || (next & 0xc0) == 0xc0)) {
			r = decode_vex(&d, b, m64, insn, &attr);
			if (r)
				return r;
			if (insn->rex & 8)
				insn->op_bytes = 8;
		} else {
			attr = map_1b[b];
		}
	} else {
		attr = map_1b[b];
	}

	if ((attr & A_UD) || (m64 && (attr & A_I64)))
		return -EINVAL;

	if (attr & A_M) {
		r = decode_modrm(&d, m64, insn->map == OKVM_MAP_0F &&
				 !(insn->flags & OKVM_INSN_VEX) &&
				 insn->opcode >= 0x20 && insn->opcode <= 0x23,
				 insn);
		if (r)
			return r;
	}

	if (attr & A_MO) {
		r = get_le(&d, insn->ad_bytes, &v);
		if (r)
			return r;
		insn->disp = (s64)v;
		insn->disp_bytes = insn->ad_bytes;
		insn->flags |= OKVM_INSN_MEM;
	}

	/* group 3 test has an immediate, the other members none */
	if (insn->map == OKVM_MAP_1B && !(insn->flags & OKVM_INSN_VEX) &&
	    (insn->opcode == 0xf6 || insn->opcode == 0xf7) &&
	    ((insn->modrm >> 3) & 7) <= 1)
		attr |= insn->opcode == 0xf6 ? A_I8 : A_IZ;

	nimm = imm_size(insn, attr, &first);
	if (nimm) {
		r = get_le(&d, first, &insn->imm);
		if (!r && nimm > first)
			r = get_le(&d, nimm - first, &v);
		if (r)
			return r;
		insn->imm_bytes = nimm;
	}

	if (insn->map == OKVM_MAP_1B && !(insn->flags & OKVM_INSN_VEX) &&
	    ((insn->opcode >= 0xa4 && insn->opcode <= 0xa7) ||
	     (insn->opcode >= 0xaa && insn->opcode <= 0xaf) ||
	     (insn->opcode >= 0x6c && insn->opcode <= 0x6f)))
		insn->flags |= OKVM_INSN_MEM;

	insn->len = d.pos;
	memcpy(insn->bytes, bytes, insn->len);
	classify(insn, m64);
	return 0;
}

/* ---- register and address helpers ---- */

static bool ctxt_64(const struct okvm_emul_ctxt *ctxt)
{
	return ctxt->mode == OKVM_MODE_LONG64;
}

/* Read register @reg as @bytes wide; byte registers 4-7 are AH-BH w/o REX */
static u64 reg_read(const struct okvm_emul_ctxt *ctxt, unsigned int reg,
		    unsigned int bytes)
{
	if (bytes == 1 && !ctxt->insn.rex && reg >= 4 && reg < 8)
		return (ctxt->gprs[reg - 4] >> 8) & 0xff;
	return trunc_bytes(ctxt->gprs[reg], bytes);
}

/* Write @bytes of register @reg: 32-bit writes zero-extend, 8/16 merge */
static void reg_write(struct okvm_emul_ctxt *ctxt, unsigned int reg,
		      unsigned int bytes, u64 val)
{
	u64 *p = &ctxt->gprs[reg];

	switch (bytes) {
	case 1:
		if (!ctxt->insn.rex && reg >= 4 && reg < 8) {
			p = &ctxt->gprs[reg - 4];
			*p = (*p & ~0xff00ULL) | ((val & 0xff) << 8);
		} else {
			*p = (*p & ~0xffULL) | (val & 0xff);
		}
		break;
	case 2:
		*p = (*p & ~0xffffULL) | (val & 0xffff);
		break;
	case 4:
		*p = val & 0xffffffffULL;
		break;
	default:
		*p = val;
		break;
	}
}

/* Address-size view of RSI/RDI/RCX */
static u64 areg_read(const struct okvm_emul_ctxt *ctxt, unsigned int reg)
{
	return trunc_bytes(ctxt->gprs[reg], ctxt->insn.ad_bytes);
}

static void areg_write(struct okvm_emul_ctxt *ctxt, unsigned int reg,
		       u64 val)
{
	reg_write(ctxt, reg, ctxt->insn.ad_bytes, val);
}

static u64 linear(const struct okvm_emul_ctxt *ctxt, unsigned int seg,
		  u64 off)
{
	if (ctxt_64(ctxt)) {
		if (seg == OKVM_SREG_FS || seg == OKVM_SREG_GS)
			return ctxt->seg_base[seg] + off;
		return off;
	}
	return (ctxt->seg_base[seg] + off) & 0xffffffffULL;
}

static void advance_rip(struct okvm_emul_ctxt *ctxt)
{
	ctxt->rip += ctxt->insn.len;
	if (!ctxt_64(ctxt))
		ctxt->rip &= 0xffffffffULL;
}

static u32 data_access(const struct okvm_emul_ctxt *ctxt)
{
	u32 acc = 0;

	if (ctxt->cpl == 3)
		acc |= OKVM_ACC_USER;
	else if (ctxt->rflags & FL_AC)
		acc |= OKVM_ACC_AC;
	return acc;
}

static u64 le_to_val(const u8 *p, unsigned int len)
{
	u64 v = 0;
	unsigned int i;

	for (i = 0; i < len && i < 8; i++)
		v |= (u64)p[i] << (8 * i);
	return v;
}

static void val_to_le(u64 v, u8 *p, unsigned int len)
{
	unsigned int i;

	for (i = 0; i < len && i < 8; i++)
		p[i] = v >> (8 * i);
}

static enum okvm_emul_result mmio_req(struct okvm_emul_ctxt *ctxt, u64 gpa,
				      bool write, u64 val)
{
	struct okvm_mmio_req *m = &ctxt->mmio;

	memset(m, 0, sizeof(*m));
	m->gpa = gpa;
	m->len = ctxt->insn.mem_bytes;
	m->is_write = write;
	if (write)
		val_to_le(val, m->data, m->len);
	ctxt->split = false;
	ctxt->state = write ? ST_WRITE : ST_READ;
	return OKVM_EMUL_MMIO;
}

static enum okvm_emul_result unhandled(struct okvm_emul_ctxt *ctxt,
				       enum okvm_emul_fail why)
{
	ctxt->fail = why;
	ctxt->state = ST_IDLE;
	return OKVM_EMUL_UNHANDLED;
}

/* Turn a walker status into an exception or an emulation failure */
static enum okvm_emul_result walk_fail(struct okvm_emul_ctxt *ctxt, int r,
				       const struct okvm_walk_result *res,
				       u64 la, enum okvm_emul_fail why)
{
	struct okvm_emul_exception *e = &ctxt->exception;

	memset(e, 0, sizeof(*e));
	if (r == OKVM_WALK_PF) {
		e->vector = 14;
		e->has_error_code = true;
		e->error_code = res->error_code;
		e->cr2 = la;
	} else if (r == OKVM_WALK_GP) {
		e->vector = 13;
		e->has_error_code = true;
	} else {
		return unhandled(ctxt, why);
	}
	ctxt->state = ST_IDLE;
	return OKVM_EMUL_EXCEPTION;
}

/* ---- ALU ---- */

static bool parity_even(u8 v)
{
	v ^= v >> 4;
	v ^= v >> 2;
	v ^= v >> 1;
	return !(v & 1);
}

/* Compute @a op @b on @bytes-wide operands; updates the arithmetic flags */
static u64 alu_exec(unsigned int op, u64 a, u64 b, unsigned int bytes,
		    u64 *rflags)
{
	u64 top = 1ULL << (8 * bytes - 1);
	u64 cin = (*rflags & FL_CF) ? 1 : 0;
	u64 r, carries = 0, ovf = 0, fl;
	bool arith = true;

	a = trunc_bytes(a, bytes);
	b = trunc_bytes(b, bytes);
	switch (op) {
	case ALU_ADD:
		cin = 0;
		fallthrough;
	case ALU_ADC:
		r = a + b + cin;
		carries = (a & b) | ((a | b) & ~r);
		ovf = (a ^ r) & (b ^ r);
		break;
	case ALU_SUB:
	case ALU_CMP:
		cin = 0;
		fallthrough;
	case ALU_SBB:
		r = a - b - cin;
		carries = (~a & b) | ((~a | b) & r);
		ovf = (a ^ b) & (a ^ r);
		break;
	case ALU_OR:
		r = a | b;
		arith = false;
		break;
	case ALU_XOR:
		r = a ^ b;
		arith = false;
		break;
	default:	/* AND, TEST */
		r = a & b;
		arith = false;
		break;
	}
	r = trunc_bytes(r, bytes);

	fl = *rflags & ~FL_ARITH;
	if (arith) {
		if (carries & top)
			fl |= FL_CF;
		if (ovf & top)
			fl |= FL_OF;
		if ((a ^ b ^ r) & 0x10)
			fl |= FL_AF;
	}
	if (!r)
		fl |= FL_ZF;
	if (r & top)
		fl |= FL_SF;
	if (parity_even(r))
		fl |= FL_PF;
	*rflags = fl;
	return r;
}

/* ---- fetch and decode ---- */

/**
 * okvm_fetch_insn() - fetch instruction bytes at CS:RIP
 * @ctxt: emulator context (mode, cpl, rip, seg_base, paging are used)
 *
 * Reads up to 15 bytes at the linear address of CS:RIP into
 * @ctxt->insn_bytes (@ctxt->insn_avail), stopping early at a page that does
 * not translate or is not RAM.  The access is an instruction fetch, a user
 * access at CPL 3.
 *
 * Return: %OKVM_EMUL_DONE if at least one byte was read (a fault on a later
 * page is kept, and reported by the decoding callers if those bytes turn
 * out to be needed); %OKVM_EMUL_EXCEPTION if the first byte faults
 * (@ctxt->exception); %OKVM_EMUL_UNHANDLED (%OKVM_FAIL_FETCH) if nothing
 * could be read for a host-side reason or because it is not RAM.
 */
enum okvm_emul_result okvm_fetch_insn(struct okvm_emul_ctxt *ctxt)
{
	u64 la = linear(ctxt, OKVM_SREG_CS, ctxt->rip);
	struct okvm_walk_result res;
	unsigned int done;
	u32 acc = OKVM_ACC_FETCH;
	int r;

	if (ctxt->cpl == 3)
		acc |= OKVM_ACC_USER;

	ctxt->fetch_fault = false;
	r = okvm_read_gva(&ctxt->paging, la, ctxt->insn_bytes,
			  OKVM_MAX_INSN_LEN, acc, &done, &res);
	ctxt->insn_avail = done;
	if (r == OKVM_WALK_OK)
		return OKVM_EMUL_DONE;
	if (r == OKVM_WALK_PF || r == OKVM_WALK_GP) {
		u64 fault_la = la + done;

		if (!ctxt_64(ctxt))
			fault_la &= 0xffffffffULL;
		walk_fail(ctxt, r, &res, fault_la, OKVM_FAIL_FETCH);
		if (!done)
			return OKVM_EMUL_EXCEPTION;
		ctxt->fetch_fault = true;
		return OKVM_EMUL_DONE;
	}
	if (done)
		return OKVM_EMUL_DONE;
	return unhandled(ctxt, OKVM_FAIL_FETCH);
}

static enum okvm_emul_result decode_current(struct okvm_emul_ctxt *ctxt)
{
	enum okvm_emul_result er;
	int r;

	ctxt->fail = OKVM_FAIL_NONE;
	if (ctxt->insn_given) {
		ctxt->insn_avail = min_t(u8, ctxt->insn_given,
					 OKVM_MAX_INSN_LEN);
		ctxt->insn_given = 0;
		ctxt->fetch_fault = false;
		r = okvm_insn_decode(ctxt->insn_bytes, ctxt->insn_avail,
				     ctxt->mode, &ctxt->insn);
		if (r != -ENODATA)
			goto out;
		/* too few bytes given: fetch them from guest memory */
	}

	er = okvm_fetch_insn(ctxt);
	if (er != OKVM_EMUL_DONE)
		return er;
	r = okvm_insn_decode(ctxt->insn_bytes, ctxt->insn_avail, ctxt->mode,
			     &ctxt->insn);
out:
	if (!r)
		return OKVM_EMUL_DONE;
	if (r == -ENODATA && ctxt->fetch_fault)
		return OKVM_EMUL_EXCEPTION;
	return unhandled(ctxt, r == -ENODATA ? OKVM_FAIL_FETCH :
					       OKVM_FAIL_DECODE);
}

/**
 * okvm_emulate_skip() - step over the instruction at CS:RIP
 * @ctxt: emulator context
 *
 * For intercepted instructions handled by the hypervisor (HLT, CPUID,
 * RDMSR, WRMSR, VMMCALL, INVD, ...) when the CPU does not report the next
 * RIP.  Uses @ctxt->insn_given bytes if set, else fetches; decodes; adds
 * the length to @ctxt->rip (truncated to 32 bits outside 64-bit mode).
 * @ctxt->insn describes the instruction afterwards.
 *
 * Return: %OKVM_EMUL_DONE, %OKVM_EMUL_EXCEPTION (fetch fault) or
 * %OKVM_EMUL_UNHANDLED.
 */
enum okvm_emul_result okvm_emulate_skip(struct okvm_emul_ctxt *ctxt)
{
	enum okvm_emul_result er = decode_current(ctxt);

	if (er == OKVM_EMUL_DONE)
		advance_rip(ctxt);
	return er;
}

/* ---- string instructions ---- */

static bool rep_done(struct okvm_emul_ctxt *ctxt)
{
	return ctxt->insn.rep && !areg_read(ctxt, OKVM_GPR_RCX);
}

/* One element done: move RSI/RDI, count down RCX, retire when finished */
static void string_step(struct okvm_emul_ctxt *ctxt, bool src)
{
	u64 delta = ctxt->insn.mem_bytes;
	u64 cnt;

	if (ctxt->rflags & FL_DF)
		delta = -delta;
	areg_write(ctxt, OKVM_GPR_RDI, areg_read(ctxt, OKVM_GPR_RDI) + delta);
	if (src)
		areg_write(ctxt, OKVM_GPR_RSI,
			   areg_read(ctxt, OKVM_GPR_RSI) + delta);
	if (!ctxt->insn.rep) {
		advance_rip(ctxt);
		return;
	}
	cnt = areg_read(ctxt, OKVM_GPR_RCX) - 1;
	areg_write(ctxt, OKVM_GPR_RCX, cnt);
	if (!trunc_bytes(cnt, ctxt->insn.ad_bytes))
		advance_rip(ctxt);
}

static enum okvm_emul_result movs_write(struct okvm_emul_ctxt *ctxt, u64 val)
{
	unsigned int size = ctxt->insn.mem_bytes, done;
	struct okvm_walk_result res;
	u8 buf[8];
	int r;

	val_to_le(val, buf, size);
	r = okvm_write_gva(&ctxt->paging, ctxt->dst_la, buf, size,
			   data_access(ctxt) | OKVM_ACC_SET_AD, &done, &res);
	if (r == OKVM_WALK_OK) {
		string_step(ctxt, true);
		ctxt->state = ST_IDLE;
		return OKVM_EMUL_DONE;
	}
	if (r == -ENOENT && !done &&
	    (res.gpa & 0xfff) + size <= 0x1000) {
		string_step(ctxt, true);
		return mmio_req(ctxt, res.gpa, true, val);
	}
	return walk_fail(ctxt, r, &res, ctxt->dst_la + done, OKVM_FAIL_MEM);
}

/*
 * movs: translate the destination first, so that a fault on it comes
 * before any MMIO read side effect; then read the source (RAM or MMIO),
 * then write the destination (RAM or MMIO).
 */
static enum okvm_emul_result movs_start(struct okvm_emul_ctxt *ctxt)
{
	unsigned int size = ctxt->insn.mem_bytes, done;
	unsigned int seg = ctxt->insn.seg;
	struct okvm_walk_result res;
	u64 src_la;
	u8 buf[8];
	int r;

	if (seg == OKVM_SREG_NONE)
		seg = OKVM_SREG_DS;
	src_la = linear(ctxt, seg, areg_read(ctxt, OKVM_GPR_RSI));
	ctxt->dst_la = linear(ctxt, OKVM_SREG_ES,
			      areg_read(ctxt, OKVM_GPR_RDI));

	r = okvm_walk_gva(&ctxt->paging, ctxt->dst_la,
			  data_access(ctxt) | OKVM_ACC_WRITE, &res);
	if (r)
		return walk_fail(ctxt, r, &res, ctxt->dst_la, OKVM_FAIL_MEM);
	if ((ctxt->dst_la & 0xfff) + size > 0x1000) {
		u64 next = (ctxt->dst_la | 0xfff) + 1;

		if (!ctxt_64(ctxt))
			next &= 0xffffffffULL;
		r = okvm_walk_gva(&ctxt->paging, next,
				  data_access(ctxt) | OKVM_ACC_WRITE, &res);
		if (r)
			return walk_fail(ctxt, r, &res, next, OKVM_FAIL_MEM);
	}

	r = okvm_read_gva(&ctxt->paging, src_la, buf, size,
			  data_access(ctxt) | OKVM_ACC_SET_AD, &done, &res);
	if (r == OKVM_WALK_OK)
		return movs_write(ctxt, le_to_val(buf, size));
	if (r == -ENOENT && !done && (res.gpa & 0xfff) + size <= 0x1000)
		return mmio_req(ctxt, res.gpa, false, 0);
	return walk_fail(ctxt, r, &res, src_la + done, OKVM_FAIL_MEM);
}

/* ---- Accesses that cross a page boundary ---- */

/* Base register of a 16-bit ModRM memory operand, -1 if none */
static const s8 ea16_base[8] = { 3, 3, 5, 5, -1, -1, 5, 3 };
static const s8 ea16_index[8] = { 6, 7, 6, 7, 6, 7, -1, -1 };

/*
 * Linear address of the memory operand of a ModRM or moffs instruction.
 * Only used to find where an access that crosses a page starts: the NPF
 * address names the faulting page, not the first byte.
 */
static u64 operand_la(const struct okvm_emul_ctxt *ctxt)
{
	const struct okvm_insn *insn = &ctxt->insn;
	unsigned int rm = insn->modrm & 7, seg = OKVM_SREG_DS;
	u64 ea = insn->disp;
	int base = -1, index = -1, scale = 0;

	if (insn->op == OKVM_OP_STORE_MOFFS || insn->op == OKVM_OP_LOAD_MOFFS) {
		ea = insn->disp;
	} else if (insn->ad_bytes == 2) {
		if (insn->mod == 0 && rm == 6) {
			base = -1;
		} else {
			base = ea16_base[rm];
			index = ea16_index[rm];
			if (base == OKVM_GPR_RBP)
				seg = OKVM_SREG_SS;
		}
	} else if (rm == 4) {
		unsigned int b = insn->sib & 7;
		unsigned int x = ((insn->sib >> 3) & 7) | (insn->rex & 2 ? 8 : 0);

		scale = insn->sib >> 6;
		if (x != 4)
			index = x;
		if (!(b == 5 && insn->mod == 0)) {
			base = b | (insn->rex & 1 ? 8 : 0);
			if (b == 4 || b == 5)
				seg = OKVM_SREG_SS;
		}
	} else if (rm == 5 && insn->mod == 0) {
		if (ctxt_64(ctxt))
			ea += ctxt->rip + insn->len;
	} else {
		base = insn->rm;
		if (rm == 5)
			seg = OKVM_SREG_SS;
	}
	if (base >= 0)
		ea += ctxt->gprs[base];
	if (index >= 0)
		ea += ctxt->gprs[index] << scale;
	if (insn->seg != OKVM_SREG_NONE)
		seg = insn->seg;
	return linear(ctxt, seg, trunc_bytes(ea, insn->ad_bytes));
}

static u64 la_add(const struct okvm_emul_ctxt *ctxt, u64 la, u64 n)
{
	return ctxt_64(ctxt) ? la + n : (la + n) & 0xffffffffULL;
}

/*
 * An access of the operand at @gpa (the NPF address) that crosses a page
 * boundary, one side RAM and the other MMIO: the RAM side is read or
 * written here, the MMIO side becomes the exit, as hardware splits it.
 * Returns %OKVM_EMUL_DONE when the access does not cross a page (the
 * caller then uses @gpa as is) or cannot be matched to the NPF address.
 */
static enum okvm_emul_result split_access(struct okvm_emul_ctxt *ctxt,
					  u64 gpa, bool write, u64 val)
{
	unsigned int n = ctxt->insn.mem_bytes, first, ram_off, ram_len;
	u32 acc = data_access(ctxt) | (write ? OKVM_ACC_WRITE : 0);
	struct okvm_walk_result r1, r2, res;
	struct okvm_mmio_req *m = &ctxt->mmio;
	u64 la = operand_la(ctxt), mmio_gpa;
	unsigned int done;
	u8 buf[8];
	int r;

	first = 0x1000 - (la & 0xfff);
	if (first >= n)
		return OKVM_EMUL_DONE;
	r = okvm_walk_gva(&ctxt->paging, la, acc, &r1);
	if (r)
		return walk_fail(ctxt, r, &r1, la, OKVM_FAIL_MEM);
	r = okvm_walk_gva(&ctxt->paging, la_add(ctxt, la, first), acc, &r2);
	if (r)
		return walk_fail(ctxt, r, &r2, la_add(ctxt, la, first),
				 OKVM_FAIL_MEM);
	if ((gpa >> 12) == (r2.gpa >> 12)) {
		ram_off = 0;			/* RAM, then MMIO */
		ram_len = first;
		mmio_gpa = r2.gpa;
	} else if ((gpa >> 12) == (r1.gpa >> 12)) {
		ram_off = first;		/* MMIO, then RAM */
		ram_len = n - first;
		mmio_gpa = r1.gpa;
	} else {
		return OKVM_EMUL_DONE;
	}

	val_to_le(val, buf, n);
	if (write)
		r = okvm_write_gva(&ctxt->paging, la_add(ctxt, la, ram_off),
				   buf + ram_off, ram_len,
				   acc | OKVM_ACC_SET_AD, &done, &res);
	else
		r = okvm_read_gva(&ctxt->paging, la_add(ctxt, la, ram_off),
				  ctxt->split_buf + ram_off, ram_len,
				  acc | OKVM_ACC_SET_AD, &done, &res);
	if (r == -ENOENT)			/* both sides MMIO */
		return unhandled(ctxt, OKVM_FAIL_MEM);
	if (r)
		return walk_fail(ctxt, r, &res, la_add(ctxt, la, ram_off + done),
				 OKVM_FAIL_MEM);

	memset(m, 0, sizeof(*m));
	m->gpa = mmio_gpa;
	m->len = n - ram_len;
	m->is_write = write;
	ctxt->split_off = ram_off ? 0 : ram_len;
	if (write)
		memcpy(m->data, buf + ctxt->split_off, m->len);
	ctxt->split = !write;
	ctxt->state = write ? ST_WRITE : ST_READ;
	return OKVM_EMUL_MMIO;
}

/* ---- MMIO entry points ---- */

/* Immediate operand of mov/group 1/test, extended to the operand size */
static u64 insn_imm(const struct okvm_insn *insn)
{
	unsigned int n = insn->imm_bytes;

	return trunc_bytes(sign_extend(insn->imm, n), insn->mem_bytes);
}

/**
 * okvm_emulate_mmio_start() - begin emulating an instruction that hit MMIO
 * @ctxt: emulator context with the guest registers loaded
 * @gpa: guest physical address of the access (nested page fault address
 *	of the final translation, not of a guest page-table access)
 *
 * Fetches (unless @ctxt->insn_given) and decodes the instruction at CS:RIP.
 * A store computes the data, updates the registers (RIP; RDI/RCX for stos)
 * and returns the write.  A load or read-modify-write returns the read and
 * leaves the registers alone until okvm_emulate_mmio_complete().  movs
 * also accesses its RAM side through @ctxt->paging.  Any pending step of
 * an earlier instruction is dropped.
 *
 * Return: %OKVM_EMUL_MMIO (@ctxt->mmio), %OKVM_EMUL_DONE (nothing left to
 * do, e.g. rep with a zero count or movs whose both sides were RAM),
 * %OKVM_EMUL_EXCEPTION (@ctxt->exception) or %OKVM_EMUL_UNHANDLED
 * (@ctxt->fail; @ctxt->insn_bytes/insn_avail hold the bytes).
 */
enum okvm_emul_result okvm_emulate_mmio_start(struct okvm_emul_ctxt *ctxt,
					      u64 gpa)
{
	struct okvm_insn *insn = &ctxt->insn;
	enum okvm_emul_result er;
	u64 val;

	ctxt->state = ST_IDLE;
	ctxt->split = false;
	er = decode_current(ctxt);
	if (er != OKVM_EMUL_DONE)
		return er;

	switch (insn->op) {
	case OKVM_OP_STORE:
	case OKVM_OP_STORE_MOFFS:
	case OKVM_OP_STORE_IMM:
		if (insn->op == OKVM_OP_STORE)
			val = reg_read(ctxt, insn->reg, insn->mem_bytes);
		else if (insn->op == OKVM_OP_STORE_MOFFS)
			val = reg_read(ctxt, OKVM_GPR_RAX, insn->mem_bytes);
		else
			val = insn_imm(insn);
		er = split_access(ctxt, gpa, true, val);
		if (er == OKVM_EMUL_DONE)
			er = mmio_req(ctxt, gpa, true, val);
		if (er == OKVM_EMUL_MMIO)
			advance_rip(ctxt);
		return er;
	case OKVM_OP_LOAD:
	case OKVM_OP_LOAD_MOFFS:
	case OKVM_OP_MOVZX:
	case OKVM_OP_MOVSX:
	case OKVM_OP_ALU_RM:
	case OKVM_OP_TEST_MR:
	case OKVM_OP_TEST_MI:
		er = split_access(ctxt, gpa, false, 0);
		return er == OKVM_EMUL_DONE ? mmio_req(ctxt, gpa, false, 0) : er;
	case OKVM_OP_ALU_MR:
	case OKVM_OP_ALU_MI:
		/* read-modify-write across RAM and MMIO: not emulated */
		if (0x1000 - (operand_la(ctxt) & 0xfff) < insn->mem_bytes)
			return unhandled(ctxt, OKVM_FAIL_MEM);
		return mmio_req(ctxt, gpa, false, 0);
	case OKVM_OP_STOS:
		if (rep_done(ctxt)) {
			advance_rip(ctxt);
			return OKVM_EMUL_DONE;
		}
		val = reg_read(ctxt, OKVM_GPR_RAX, insn->mem_bytes);
		string_step(ctxt, false);
		return mmio_req(ctxt, gpa, true, val);
	case OKVM_OP_MOVS:
		if (rep_done(ctxt)) {
			advance_rip(ctxt);
			return OKVM_EMUL_DONE;
		}
		return movs_start(ctxt);
	default:
		return unhandled(ctxt, OKVM_FAIL_UNSUPPORTED);
	}
}

/**
 * okvm_emulate_mmio_complete() - finish an instruction after an MMIO exit
 * @ctxt: the context okvm_emulate_mmio_start() (or an earlier complete)
 *	returned %OKVM_EMUL_MMIO with
 * @data: @ctxt->mmio.len bytes userspace read (kvm_run->mmio.data);
 *	ignored after a write
 *
 * After a read: writes the destination register (8/16-bit writes merge,
 * 32-bit writes zero-extend to 64 bits, movzx/movsx/movsxd extend),
 * updates the arithmetic flags of ALU forms, and advances RIP.  A
 * read-modify-write then returns its write; movs writes its destination.
 *
 * Return: %OKVM_EMUL_DONE, %OKVM_EMUL_MMIO (a further write in
 * @ctxt->mmio), %OKVM_EMUL_EXCEPTION or %OKVM_EMUL_UNHANDLED
 * (%OKVM_FAIL_STATE if nothing was pending).
 */
enum okvm_emul_result okvm_emulate_mmio_complete(struct okvm_emul_ctxt *ctxt,
						 const void *data)
{
	struct okvm_insn *insn = &ctxt->insn;
	unsigned int size = insn->mem_bytes;
	u64 val, res;

	if (ctxt->state == ST_WRITE) {
		ctxt->state = ST_IDLE;
		return OKVM_EMUL_DONE;
	}
	if (ctxt->state != ST_READ)
		return unhandled(ctxt, OKVM_FAIL_STATE);

	ctxt->state = ST_IDLE;
	if (ctxt->split) {
		ctxt->split = false;
		memcpy(ctxt->split_buf + ctxt->split_off, data, ctxt->mmio.len);
		val = le_to_val(ctxt->split_buf, size);
	} else {
		val = le_to_val(data, ctxt->mmio.len);
	}

	switch (insn->op) {
	case OKVM_OP_LOAD:
		reg_write(ctxt, insn->reg, size, val);
		break;
	case OKVM_OP_LOAD_MOFFS:
		reg_write(ctxt, OKVM_GPR_RAX, size, val);
		break;
	case OKVM_OP_MOVZX:
		reg_write(ctxt, insn->reg, insn->op_bytes, val);
		break;
	case OKVM_OP_MOVSX:
		reg_write(ctxt, insn->reg, insn->op_bytes,
			  sign_extend(val, size));
		break;
	case OKVM_OP_ALU_RM:
		res = alu_exec(insn->alu, reg_read(ctxt, insn->reg, size), val,
			       size, &ctxt->rflags);
		if (insn->alu != ALU_CMP)
			reg_write(ctxt, insn->reg, size, res);
		break;
	case OKVM_OP_ALU_MR:
	case OKVM_OP_ALU_MI:
		res = alu_exec(insn->alu, val,
			       insn->op == OKVM_OP_ALU_MR ?
			       reg_read(ctxt, insn->reg, size) : insn_imm(insn),
			       size, &ctxt->rflags);
		advance_rip(ctxt);
		if (insn->alu == ALU_CMP)
			return OKVM_EMUL_DONE;
		return mmio_req(ctxt, ctxt->mmio.gpa, true, res);
	case OKVM_OP_TEST_MR:
	case OKVM_OP_TEST_MI:
		alu_exec(ALU_TEST, val,
			 insn->op == OKVM_OP_TEST_MR ?
			 reg_read(ctxt, insn->reg, size) : insn_imm(insn),
			 size, &ctxt->rflags);
		break;
	case OKVM_OP_MOVS:
		return movs_write(ctxt, val);
	default:
		return unhandled(ctxt, OKVM_FAIL_STATE);
	}
	advance_rip(ctxt);
	return OKVM_EMUL_DONE;
}

/**
 * okvm_emulate_reset() - forget any pending emulation step
 * @ctxt: emulator context
 *
 * For vCPU reset, or when the VMM changes registers while an MMIO read is
 * pending and the instruction should be re-executed instead.
 */
void okvm_emulate_reset(struct okvm_emul_ctxt *ctxt)
{
	ctxt->state = ST_IDLE;
	ctxt->split = false;
	ctxt->fail = OKVM_FAIL_NONE;
	ctxt->fetch_fault = false;
	ctxt->insn_given = 0;
}
