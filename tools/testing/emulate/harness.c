// SPDX-License-Identifier: GPL-2.0-only
/*
 * Host-side harness for arch/x86/kvm/emulate.c and walk.c: built as a
 * shared object with the shim headers and driven from test_emulate.py
 * through ctypes.  Flat functions only, so that Python never mirrors a
 * kernel structure layout.
 *
 * Guest physical memory is a caller-provided RAM buffer starting at GPA 0;
 * GPAs in the registered MMIO ranges, or beyond RAM, are not RAM (-ENOENT).
 */
#include <linux/types.h>
#include <linux/errno.h>
#include <linux/string.h>

#include "emulate.h"
#include "walk.h"

#define MAX_MMIO	8

static struct {
	u8 *ram;
	u64 ram_size;
	u64 mmio_start[MAX_MMIO];
	u64 mmio_len[MAX_MMIO];
	int nr_mmio;
	unsigned int reads, writes;	/* callback calls */
} mem;

static struct okvm_emul_ctxt ctxt;

static bool is_mmio(u64 gpa, unsigned int len)
{
	int i;

	if (gpa + len > mem.ram_size)
		return true;
	for (i = 0; i < mem.nr_mmio; i++)
		if (gpa < mem.mmio_start[i] + mem.mmio_len[i] &&
		    gpa + len > mem.mmio_start[i])
			return true;
	return false;
}

static int h_read_gpa(void *opaque, u64 gpa, void *buf, unsigned int len)
{
	mem.reads++;
	if (opaque != &mem)
		return -EFAULT;
	if ((gpa & 0xfff) + len > 0x1000)
		return -E2BIG;	/* contract: never crosses a page */
	if (is_mmio(gpa, len))
		return -ENOENT;
	memcpy(buf, mem.ram + gpa, len);
	return 0;
}

static int h_write_gpa(void *opaque, u64 gpa, const void *buf,
		       unsigned int len)
{
	mem.writes++;
	if (opaque != &mem)
		return -EFAULT;
	if ((gpa & 0xfff) + len > 0x1000)
		return -E2BIG;
	if (is_mmio(gpa, len))
		return -ENOENT;
	memcpy(mem.ram + gpa, buf, len);
	return 0;
}

int h_decode(const u8 *bytes, unsigned int avail, int mode, s64 *out);
int h_decode(const u8 *bytes, unsigned int avail, int mode, s64 *out)
{
	struct okvm_insn insn;
	int r = okvm_insn_decode(bytes, avail, mode, &insn);

	out[0] = insn.len;
	out[1] = insn.map;
	out[2] = insn.vex_map;
	out[3] = insn.opcode;
	out[4] = insn.op_bytes;
	out[5] = insn.ad_bytes;
	out[6] = insn.rex;
	out[7] = insn.rep;
	out[8] = insn.seg;
	out[9] = insn.flags;
	out[10] = insn.modrm;
	out[11] = insn.mod;
	out[12] = insn.reg;
	out[13] = insn.rm;
	out[14] = insn.sib;
	out[15] = insn.disp_bytes;
	out[16] = insn.imm_bytes;
	out[17] = insn.disp;
	out[18] = (s64)insn.imm;
	out[19] = insn.op;
	out[20] = insn.mem_bytes;
	out[21] = insn.alu;
	return r;
}

/* Length of every instruction in a buffer, -1 where decoding fails */
int h_lengths(const u8 *bytes, unsigned int size, int mode, int *lens,
	      int max);
int h_lengths(const u8 *bytes, unsigned int size, int mode, int *lens,
	      int max)
{
	struct okvm_insn insn;
	unsigned int pos = 0;
	int n = 0, r;

	while (pos < size && n < max) {
		r = okvm_insn_decode(bytes + pos, size - pos, mode, &insn);
		if (r) {
			lens[n++] = r;
			break;
		}
		lens[n++] = insn.len;
		pos += insn.len;
	}
	return n;
}

int h_cpu_mode(u64 cr0, u64 efer, u64 rflags, int l, int db);
int h_cpu_mode(u64 cr0, u64 efer, u64 rflags, int l, int db)
{
	return okvm_cpu_mode(cr0, efer, rflags, l, db);
}

void h_mem(u8 *ram, u64 size);
void h_mem(u8 *ram, u64 size)
{
	memset(&mem, 0, sizeof(mem));
	mem.ram = ram;
	mem.ram_size = size;
}

int h_add_mmio(u64 start, u64 len);
int h_add_mmio(u64 start, u64 len)
{
	if (mem.nr_mmio >= MAX_MMIO)
		return -1;
	mem.mmio_start[mem.nr_mmio] = start;
	mem.mmio_len[mem.nr_mmio] = len;
	return mem.nr_mmio++;
}

void h_counts(unsigned int *reads, unsigned int *writes);
void h_counts(unsigned int *reads, unsigned int *writes)
{
	*reads = mem.reads;
	*writes = mem.writes;
}

/* ctrl: cr0, cr3, cr4, efer; seg: 6 bases */
void h_setup(int mode, int cpl, const u64 *ctrl, const u64 *seg,
	     int maxphyaddr, int no_write);
void h_setup(int mode, int cpl, const u64 *ctrl, const u64 *seg,
	     int maxphyaddr, int no_write)
{
	memset(&ctxt, 0, sizeof(ctxt));
	ctxt.mode = mode;
	ctxt.cpl = cpl;
	ctxt.paging.cr0 = ctrl[0];
	ctxt.paging.cr3 = ctrl[1];
	ctxt.paging.cr4 = ctrl[2];
	ctxt.paging.efer = ctrl[3];
	ctxt.paging.maxphyaddr = maxphyaddr;
	ctxt.paging.read_gpa = h_read_gpa;
	ctxt.paging.write_gpa = no_write ? NULL : h_write_gpa;
	ctxt.paging.opaque = &mem;
	memcpy(ctxt.seg_base, seg, sizeof(ctxt.seg_base));
}

void h_regs(int set, u64 *gprs, u64 *rip_rflags);
void h_regs(int set, u64 *gprs, u64 *rip_rflags)
{
	if (set) {
		memcpy(ctxt.gprs, gprs, sizeof(ctxt.gprs));
		ctxt.rip = rip_rflags[0];
		ctxt.rflags = rip_rflags[1];
	} else {
		memcpy(gprs, ctxt.gprs, sizeof(ctxt.gprs));
		rip_rflags[0] = ctxt.rip;
		rip_rflags[1] = ctxt.rflags;
	}
}

void h_give_insn(const u8 *bytes, unsigned int n);
void h_give_insn(const u8 *bytes, unsigned int n)
{
	memcpy(ctxt.insn_bytes, bytes, n);
	ctxt.insn_given = n;
}

int h_start(u64 gpa);
int h_start(u64 gpa)
{
	return okvm_emulate_mmio_start(&ctxt, gpa);
}

int h_complete(const u8 *data);
int h_complete(const u8 *data)
{
	return okvm_emulate_mmio_complete(&ctxt, data);
}

int h_skip(void);
int h_skip(void)
{
	return okvm_emulate_skip(&ctxt);
}

void h_reset(void);
void h_reset(void)
{
	okvm_emulate_reset(&ctxt);
}

/* out: gpa, len, is_write, data (8 bytes in out[3]) */
void h_mmio(u64 *out);
void h_mmio(u64 *out)
{
	u64 v = 0;
	int i;

	out[0] = ctxt.mmio.gpa;
	out[1] = ctxt.mmio.len;
	out[2] = ctxt.mmio.is_write;
	for (i = 0; i < 8; i++)
		v |= (u64)ctxt.mmio.data[i] << (8 * i);
	out[3] = v;
}

/* out: vector, has_error_code, error_code, cr2, fail, insn_avail, len */
void h_status(u64 *out, u8 *bytes);
void h_status(u64 *out, u8 *bytes)
{
	out[0] = ctxt.exception.vector;
	out[1] = ctxt.exception.has_error_code;
	out[2] = ctxt.exception.error_code;
	out[3] = ctxt.exception.cr2;
	out[4] = ctxt.fail;
	out[5] = ctxt.insn_avail;
	out[6] = ctxt.insn.len;
	memcpy(bytes, ctxt.insn_bytes, sizeof(ctxt.insn_bytes));
}

/* Walker, using the paging state of h_setup() */
int h_walk(u64 gva, u32 access, u64 *out);
int h_walk(u64 gva, u32 access, u64 *out)
{
	struct okvm_walk_result res;
	int r = okvm_walk_gva(&ctxt.paging, gva, access, &res);

	out[0] = res.gpa;
	out[1] = res.error_code;
	out[2] = res.level;
	out[3] = res.pte;
	return r;
}

int h_read_gva(u64 gva, u8 *buf, unsigned int len, u32 access, u64 *out);
int h_read_gva(u64 gva, u8 *buf, unsigned int len, u32 access, u64 *out)
{
	struct okvm_walk_result res;
	unsigned int done;
	int r = okvm_read_gva(&ctxt.paging, gva, buf, len, access, &done,
			      &res);

	out[0] = done;
	out[1] = res.gpa;
	out[2] = res.error_code;
	return r;
}

int h_write_gva(u64 gva, const u8 *buf, unsigned int len, u32 access,
		u64 *out);
int h_write_gva(u64 gva, const u8 *buf, unsigned int len, u32 access,
		u64 *out)
{
	struct okvm_walk_result res;
	unsigned int done;
	int r = okvm_write_gva(&ctxt.paging, gva, buf, len, access, &done,
			       &res);

	out[0] = done;
	out[1] = res.gpa;
	out[2] = res.error_code;
	return r;
}

