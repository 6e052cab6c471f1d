// SPDX-License-Identifier: GPL-2.0-only
/*
 * onekvm: IO and MMIO exits, and the glue to the instruction emulator.
 *
 * PIO: IN/OUT go to userspace through kvm_run->io with the data in the PIO
 * page; INS/OUTS move up to a page of elements per exit between guest
 * memory and that page, and a REP with elements left re-executes. As in
 * KVM, the instruction completes on the next KVM_RUN (RIP still points at
 * it during the exit) unless userspace moved RIP.
 * MMIO: a nested page fault outside any memslot (or a write to a read-only
 * slot) runs the two-phase emulator of emulate.c: start, exit with
 * KVM_EXIT_MMIO, complete on the next KVM_RUN.
 */
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <asm/msr-index.h>
#include <asm/processor-flags.h>
#include "x86.h"
#include "emulate.h"

static struct okvm_emul_ctxt *to_ctxt(struct okvm_vcpu *vcpu)
{
	return vcpu->arch.emul;
}

/* Guest-physical access for the page walker: RAM only, -ENOENT for MMIO. */
static int okvm_gpa_access(struct okvm_vcpu *vcpu, u64 gpa, void *buf,
			   unsigned int len, bool write)
{
	struct okvm *kvm = vcpu->kvm;
	struct okvm_memslot *slot;
	unsigned int off = offset_in_page(gpa);
	void *va;

	if (len > PAGE_SIZE - off)
		return -EINVAL;
	spin_lock(&kvm->mmu_lock);
	slot = okvm_gfn_to_memslot(kvm, gpa >> PAGE_SHIFT);
	if (!slot || (write && (slot->flags & KVM_MEM_READONLY))) {
		spin_unlock(&kvm->mmu_lock);
		return -ENOENT;
	}
	va = page_address(slot->pages[(gpa >> PAGE_SHIFT) - slot->base_gfn]);
	if (write)
		memcpy(va + off, buf, len);
	else
		memcpy(buf, va + off, len);
	spin_unlock(&kvm->mmu_lock);
	return 0;
}

static int okvm_read_gpa_cb(void *opaque, u64 gpa, void *buf,
			    unsigned int len)
{
	return okvm_gpa_access(opaque, gpa, buf, len, false);
}

static int okvm_write_gpa_cb(void *opaque, u64 gpa, const void *buf,
			     unsigned int len)
{
	return okvm_gpa_access(opaque, gpa, (void *)buf, len, true);
}

/**
 * okvm_dump_walk - log the guest page-table entries that map a linear address
 * @vcpu: the vCPU, its control registers still those of the guest
 * @what: what @la is ("rip", "idt"), for the log line
 * @la: the guest linear address
 *
 * A debugging aid for unexplained guest faults (dump_shutdown): it reads
 * the entries from the pinned guest pages, the memory the guest's MMU sees
 * through nested paging, and logs one line with each level's entry up to
 * the first that is not present or maps a large page.  Long mode only.
 */
void okvm_dump_walk(struct okvm_vcpu *vcpu, const char *what, u64 la)
{
	const struct okvm_x86_ops *ops = okvm_x86_ops;
	int levels = ops->get_cr(vcpu, 4) & X86_CR4_LA57 ? 5 : 4;
	u64 table = ops->get_cr(vcpu, 3) & GENMASK_ULL(51, 12);
	u64 ent[5] = {};
	int n = 0, shift;

	if (!(ops->get_efer(vcpu) & EFER_LMA))
		return;
	for (shift = 12 + 9 * (levels - 1); n < levels; shift -= 9) {
		u64 gpa = table + ((la >> shift) & 511) * 8;

		if (okvm_gpa_access(vcpu, gpa, &ent[n], 8, false))
			break;
		n++;
		if (!(ent[n - 1] & _PAGE_PRESENT) ||
		    (n > 1 && n < levels && (ent[n - 1] & _PAGE_PSE)))
			break;
		table = ent[n - 1] & GENMASK_ULL(51, 12);
	}
	pr_info_ratelimited("onekvm: vcpu%u walk %s %#llx: %d of %d levels read: %#llx %#llx %#llx %#llx %#llx\n",
			    vcpu->vcpu_id, what, la, n, levels, ent[0], ent[1],
			    ent[2], ent[3], ent[4]);
}

/**
 * okvm_emul_alloc - allocate the vCPU's emulator context
 * @vcpu: the vCPU
 *
 * Return: 0 or -ENOMEM.
 */
int okvm_emul_alloc(struct okvm_vcpu *vcpu)
{
	struct okvm_emul_ctxt *ctxt;

	ctxt = kzalloc(sizeof(*ctxt), GFP_KERNEL_ACCOUNT);
	vcpu->arch.emul = ctxt;
	return ctxt ? 0 : -ENOMEM;
}

/**
 * okvm_emul_free - free the vCPU's emulator context
 * @vcpu: the vCPU
 */
void okvm_emul_free(struct okvm_vcpu *vcpu)
{
	kfree(vcpu->arch.emul);
	vcpu->arch.emul = NULL;
}

/**
 * okvm_emul_reset - drop an MMIO or IO exit that will not be completed
 * @vcpu: the vCPU (userspace rewrote its state)
 */
void okvm_emul_reset(struct okvm_vcpu *vcpu)
{
	vcpu->arch.complete_userspace = NULL;
	okvm_emulate_reset(to_ctxt(vcpu));
}

/**
 * okvm_in_64bit_mode - the vCPU executes 64-bit code
 * @vcpu: the vCPU
 *
 * Return: true when EFER.LMA and CS.L are set.
 */
bool okvm_in_64bit_mode(struct okvm_vcpu *vcpu)
{
	struct kvm_segment cs;

	if (!(okvm_x86_ops->get_efer(vcpu) & EFER_LMA))
		return false;
	okvm_x86_ops->get_segment(vcpu, &cs, OKVM_SEG_CS);
	return cs.l;
}

/* Load the emulator context from the vCPU. */
static void okvm_ctxt_load(struct okvm_vcpu *vcpu)
{
	const struct okvm_x86_ops *ops = okvm_x86_ops;
	struct okvm_emul_ctxt *ctxt = to_ctxt(vcpu);
	struct kvm_segment seg;
	int i;

	for (i = 0; i < OKVM_NR_GPRS; i++)
		ctxt->gprs[i] = vcpu->arch.regs[i];
	ctxt->rip = vcpu->arch.rip;
	ctxt->rflags = vcpu->arch.rflags;
	for (i = 0; i < OKVM_NR_SREGS; i++) {
		ops->get_segment(vcpu, &seg, i);
		ctxt->seg_base[i] = seg.base;
	}
	ops->get_segment(vcpu, &seg, OKVM_SEG_CS);
	ctxt->paging.cr0 = ops->get_cr(vcpu, 0);
	ctxt->paging.cr3 = ops->get_cr(vcpu, 3);
	ctxt->paging.cr4 = ops->get_cr(vcpu, 4);
	ctxt->paging.efer = ops->get_efer(vcpu);
	ctxt->paging.maxphyaddr = 0;
	ctxt->paging.read_gpa = okvm_read_gpa_cb;
	ctxt->paging.write_gpa = okvm_write_gpa_cb;
	ctxt->paging.opaque = vcpu;
	ctxt->mode = okvm_cpu_mode(ctxt->paging.cr0, ctxt->paging.efer,
				   ctxt->rflags, seg.l, seg.db);
	ctxt->cpl = ops->get_cpl(vcpu);
	ctxt->insn_given = 0;
}

/* Store what the emulator changed back into the vCPU. */
static void okvm_ctxt_store(struct okvm_vcpu *vcpu)
{
	struct okvm_emul_ctxt *ctxt = to_ctxt(vcpu);
	int i;

	for (i = 0; i < OKVM_NR_GPRS; i++)
		vcpu->arch.regs[i] = ctxt->gprs[i];
	vcpu->arch.rip = ctxt->rip;
	vcpu->arch.rflags = ctxt->rflags;
}

static void okvm_ctxt_exception(struct okvm_vcpu *vcpu)
{
	struct okvm_emul_exception *e = &to_ctxt(vcpu)->exception;

	if (e->vector == OKVM_PF_VECTOR)
		okvm_x86_ops->set_cr(vcpu, 2, e->cr2);
	if (e->has_error_code)
		okvm_queue_exception_e(vcpu, e->vector, e->error_code);
	else
		okvm_queue_exception(vcpu, e->vector);
}

static int okvm_emulation_failed(struct okvm_vcpu *vcpu)
{
	struct okvm_emul_ctxt *ctxt = to_ctxt(vcpu);
	struct kvm_run *run = vcpu->run;
	unsigned int n = min_t(unsigned int, ctxt->insn_avail, 15);

	run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
	run->emulation_failure.suberror = KVM_INTERNAL_ERROR_EMULATION;
	run->emulation_failure.ndata = 3;
	run->emulation_failure.flags =
		KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
	run->emulation_failure.insn_size = n;
	memset(run->emulation_failure.insn_bytes, 0,
	       sizeof(run->emulation_failure.insn_bytes));
	memcpy(run->emulation_failure.insn_bytes, ctxt->insn_bytes, n);
	return OKVM_EXIT_TO_USER;
}

/**
 * okvm_skip_instruction - move RIP past the intercepted instruction
 * @vcpu: the vCPU
 * @next_rip: next RIP reported by the CPU, 0 if unknown
 *
 * Without a next RIP the instruction at CS:RIP is fetched and decoded to
 * learn its length. The interrupt shadow ends with the instruction.
 *
 * Return: OKVM_EXIT_HANDLED (possibly with a fetch fault queued), or
 * OKVM_EXIT_TO_USER with an internal error.
 */
int okvm_skip_instruction(struct okvm_vcpu *vcpu, u64 next_rip)
{
	struct okvm_emul_ctxt *ctxt = to_ctxt(vcpu);

	okvm_x86_ops->set_int_shadow(vcpu, 0);
	if (next_rip) {
		vcpu->arch.rip = next_rip;
		return OKVM_EXIT_HANDLED;
	}
	okvm_ctxt_load(vcpu);
	switch (okvm_emulate_skip(ctxt)) {
	case OKVM_EMUL_DONE:
		vcpu->arch.rip = ctxt->rip;
		return OKVM_EXIT_HANDLED;
	case OKVM_EMUL_EXCEPTION:
		okvm_ctxt_exception(vcpu);
		return OKVM_EXIT_HANDLED;
	default:
		return okvm_emulation_failed(vcpu);
	}
}

/**
 * okvm_decode_insn - fetch and decode the instruction at CS:RIP
 * @vcpu: the vCPU
 * @insn: the decoded instruction
 * @ret: when false is returned, what the exit handler returns
 *
 * Return: true when @insn is valid.
 */
bool okvm_decode_insn(struct okvm_vcpu *vcpu, struct okvm_insn *insn,
		      int *ret)
{
	struct okvm_emul_ctxt *ctxt = to_ctxt(vcpu);

	okvm_ctxt_load(vcpu);
	switch (okvm_fetch_insn(ctxt)) {
	case OKVM_EMUL_DONE:
		break;
	case OKVM_EMUL_EXCEPTION:
		okvm_ctxt_exception(vcpu);
		*ret = OKVM_EXIT_HANDLED;
		return false;
	default:
		*ret = okvm_emulation_failed(vcpu);
		return false;
	}
	if (okvm_insn_decode(ctxt->insn_bytes, ctxt->insn_avail, ctxt->mode,
			     insn)) {
		*ret = okvm_emulation_failed(vcpu);
		return false;
	}
	return true;
}

/**
 * okvm_read_linear - read guest memory by linear address (no checks)
 * @vcpu: the vCPU
 * @la: guest linear address
 * @buf: destination
 * @len: bytes
 *
 * Return: 0, or nonzero when the address does not translate to RAM.
 */
int okvm_read_linear(struct okvm_vcpu *vcpu, u64 la, void *buf,
		     unsigned int len)
{
	struct okvm_emul_ctxt *ctxt = to_ctxt(vcpu);
	struct okvm_walk_result res;
	unsigned int done;

	okvm_ctxt_load(vcpu);
	return okvm_read_gva(&ctxt->paging, la, buf, len, OKVM_ACC_NOCHECK,
			     &done, &res);
}

static int okvm_complete_mmio(struct okvm_vcpu *vcpu);

static int okvm_emul_result(struct okvm_vcpu *vcpu, enum okvm_emul_result r)
{
	struct okvm_emul_ctxt *ctxt = to_ctxt(vcpu);
	struct kvm_run *run = vcpu->run;

	switch (r) {
	case OKVM_EMUL_DONE:
		okvm_x86_ops->set_int_shadow(vcpu, 0);
		return OKVM_EXIT_HANDLED;
	case OKVM_EMUL_MMIO:
		run->exit_reason = KVM_EXIT_MMIO;
		run->mmio.phys_addr = ctxt->mmio.gpa;
		run->mmio.len = ctxt->mmio.len;
		run->mmio.is_write = ctxt->mmio.is_write;
		memset(run->mmio.data, 0, sizeof(run->mmio.data));
		if (ctxt->mmio.is_write)
			memcpy(run->mmio.data, ctxt->mmio.data,
			       min_t(u32, ctxt->mmio.len, 8));
		vcpu->arch.complete_userspace = okvm_complete_mmio;
		return OKVM_EXIT_TO_USER;
	case OKVM_EMUL_EXCEPTION:
		okvm_ctxt_exception(vcpu);
		return OKVM_EXIT_HANDLED;
	default:
		return okvm_emulation_failed(vcpu);
	}
}

static int okvm_complete_mmio(struct okvm_vcpu *vcpu)
{
	enum okvm_emul_result r;

	okvm_ctxt_load(vcpu);
	r = okvm_emulate_mmio_complete(to_ctxt(vcpu), vcpu->run->mmio.data);
	okvm_ctxt_store(vcpu);
	return okvm_emul_result(vcpu, r);
}

/**
 * okvm_handle_mmio - emulate an access to a GPA that is not guest RAM
 * @vcpu: the vCPU
 * @gpa: guest physical address of the access
 * @write: the fault was a write
 *
 * Return: OKVM_EXIT_HANDLED, or OKVM_EXIT_TO_USER with KVM_EXIT_MMIO or
 * KVM_EXIT_INTERNAL_ERROR.
 */
int okvm_handle_mmio(struct okvm_vcpu *vcpu, u64 gpa, bool write)
{
	enum okvm_emul_result r;

	okvm_ctxt_load(vcpu);
	r = okvm_emulate_mmio_start(to_ctxt(vcpu), gpa);
	okvm_ctxt_store(vcpu);
	return okvm_emul_result(vcpu, r);
}

/* Linear address of a string operand, after the address-size mask. */
static u64 okvm_str_la(struct okvm_vcpu *vcpu, int seg, int reg)
{
	struct okvm_pio_state *pio = &vcpu->arch.pio;
	u64 base = 0;
	struct kvm_segment s;

	if (!okvm_in_64bit_mode(vcpu) || seg == OKVM_SEG_FS ||
	    seg == OKVM_SEG_GS) {
		okvm_x86_ops->get_segment(vcpu, &s, seg);
		base = s.base;
	}
	return base + (vcpu->arch.regs[reg] & pio->addr_mask);
}

static u32 okvm_str_access(struct okvm_vcpu *vcpu)
{
	return okvm_x86_ops->get_cpl(vcpu) == 3 ? OKVM_ACC_USER : 0;
}

/*
 * Copy string IO elements between guest memory at @la and the PIO page.
 * Returns the number of elements copied; a guest fault on the first one
 * is queued.
 */
static u32 okvm_str_copy(struct okvm_vcpu *vcpu, u64 la, u32 count,
			 bool to_guest)
{
	struct okvm_pio_state *pio = &vcpu->arch.pio;
	struct okvm_emul_ctxt *ctxt = to_ctxt(vcpu);
	bool down = vcpu->arch.rflags & X86_EFLAGS_DF;
	u32 acc = okvm_str_access(vcpu) | OKVM_ACC_SET_AD;
	struct okvm_walk_result res;
	unsigned int done = 0;
	u32 i;
	int r;

	okvm_ctxt_load(vcpu);
	for (i = 0; i < count; i++) {
		u64 a = down ? la - (u64)i * pio->size : la + (u64)i * pio->size;
		u8 *p = vcpu->pio_data + i * pio->size;

		if (!okvm_in_64bit_mode(vcpu))
			a = (u32)a;
		if (to_guest)
			r = okvm_write_gva(&ctxt->paging, a, p, pio->size,
					   acc | OKVM_ACC_WRITE, &done, &res);
		else
			r = okvm_read_gva(&ctxt->paging, a, p, pio->size, acc,
					  &done, &res);
		if (r == OKVM_WALK_OK)
			continue;
		if (i)
			break;
		if (r == OKVM_WALK_PF) {
			okvm_x86_ops->set_cr(vcpu, 2, a);
			okvm_queue_exception_e(vcpu, OKVM_PF_VECTOR,
					       res.error_code);
		} else {
			okvm_queue_exception_e(vcpu, OKVM_GP_VECTOR, 0);
		}
		break;
	}
	return i;
}

static void okvm_str_advance(struct okvm_vcpu *vcpu, int reg, u32 count)
{
	struct okvm_pio_state *pio = &vcpu->arch.pio;
	u64 delta = (u64)count * pio->size;
	u64 v = vcpu->arch.regs[reg];

	if (vcpu->arch.rflags & X86_EFLAGS_DF)
		delta = -delta;
	vcpu->arch.regs[reg] = (v & ~pio->addr_mask) |
			       ((v + delta) & pio->addr_mask);
}

/* After a string transfer of @n elements: pointers, count, RIP. */
static void okvm_str_done(struct okvm_vcpu *vcpu, u32 n)
{
	struct okvm_pio_state *pio = &vcpu->arch.pio;

	okvm_str_advance(vcpu, pio->in ? OKVM_RDI : OKVM_RSI, n);
	if (pio->rep) {
		unsigned long *rcx = &vcpu->arch.regs[OKVM_RCX];
		u64 left = ((*rcx & pio->addr_mask) - n) & pio->addr_mask;

		*rcx = (*rcx & ~pio->addr_mask) | left;
		if (left)
			return;		/* re-execute for the rest */
	}
	vcpu->arch.rip = pio->next_rip;
}

/*
 * Finish an IO exit on the next KVM_RUN, as KVM does: the instruction
 * completes (IN/INS take the data userspace put in the PIO page) unless
 * userspace moved RIP meanwhile, which abandons it.
 */
static int okvm_complete_pio(struct okvm_vcpu *vcpu)
{
	struct okvm_pio_state *pio = &vcpu->arch.pio;
	unsigned long *rax = &vcpu->arch.regs[OKVM_RAX];
	u32 val = 0, n;

	if (vcpu->arch.rip != pio->rip)
		return OKVM_EXIT_HANDLED;
	if (!pio->in) {
		if (pio->string)
			okvm_str_done(vcpu, pio->count);
		else
			vcpu->arch.rip = pio->next_rip;
		return OKVM_EXIT_HANDLED;
	}
	if (!pio->string) {
		memcpy(&val, vcpu->pio_data, pio->size);
		if (pio->size == 1)
			*rax = (*rax & ~0xffUL) | val;
		else if (pio->size == 2)
			*rax = (*rax & ~0xffffUL) | val;
		else
			*rax = val;
		vcpu->arch.rip = pio->next_rip;
		return OKVM_EXIT_HANDLED;
	}
	n = okvm_str_copy(vcpu, okvm_str_la(vcpu, OKVM_SEG_ES, OKVM_RDI),
			  pio->count, true);
	/* Elements not stored are lost, as on a fault on hardware. */
	if (n)
		okvm_str_done(vcpu, n);
	return OKVM_EXIT_HANDLED;
}

/*
 * Decode the string instruction for what the exit may not say: the segment
 * of the OUTS source (DS unless overridden) and, when @pio->addr_mask is 0,
 * the address size. Returns -1 on success, else the handler's return value.
 */
static int okvm_str_decode(struct okvm_vcpu *vcpu, int *seg)
{
	struct okvm_pio_state *pio = &vcpu->arch.pio;
	struct okvm_insn insn;
	int ret;

	*seg = OKVM_SEG_DS;
	if (!okvm_decode_insn(vcpu, &insn, &ret))
		return ret;
	if (insn.seg < OKVM_NR_SREGS)
		*seg = insn.seg;
	if (!pio->addr_mask)
		pio->addr_mask = insn.ad_bytes == 8 ? ~0ULL :
				 insn.ad_bytes == 4 ? 0xffffffffULL : 0xffffULL;
	return -1;
}

/**
 * okvm_handle_pio - an IN, OUT, INS or OUTS intercepted
 * @vcpu: the vCPU
 * @port: IO port
 * @size: element size, 1, 2 or 4
 * @in: IN/INS
 * @string: INS/OUTS
 * @rep: with a REP prefix
 * @addr_mask: string address size mask, 0 when the CPU did not report it
 * @next_rip: RIP after the instruction
 *
 * Return: OKVM_EXIT_TO_USER with KVM_EXIT_IO set up, or OKVM_EXIT_HANDLED
 * (nothing to do, or a guest fault queued), or an internal error exit.
 */
int okvm_handle_pio(struct okvm_vcpu *vcpu, u16 port, u8 size, bool in,
		    bool string, bool rep, u64 addr_mask, u64 next_rip)
{
	struct okvm_pio_state *pio = &vcpu->arch.pio;
	struct kvm_run *run = vcpu->run;
	u32 count = 1;
	int seg = OKVM_SEG_DS;

	pio->port = port;
	pio->size = size;
	pio->in = in;
	pio->string = string;
	pio->rep = rep;
	pio->addr_mask = addr_mask;
	pio->next_rip = next_rip;

	if (string) {
		int r = okvm_str_decode(vcpu, &seg);

		if (r >= 0)
			return r;
	}
	if (string && rep) {
		u64 rcx = vcpu->arch.regs[OKVM_RCX] & pio->addr_mask;

		if (!rcx) {
			vcpu->arch.rip = next_rip;
			return OKVM_EXIT_HANDLED;
		}
		count = min_t(u64, rcx, PAGE_SIZE / size);
	}
	pio->count = count;

	if (string && !in) {
		count = okvm_str_copy(vcpu, okvm_str_la(vcpu, seg, OKVM_RSI),
				      count, false);
		if (!count)
			return OKVM_EXIT_HANDLED;
		pio->count = count;
	} else if (!in) {
		memcpy(vcpu->pio_data, &vcpu->arch.regs[OKVM_RAX], size);
	}
	pio->rip = vcpu->arch.rip;

	run->exit_reason = KVM_EXIT_IO;
	run->io.direction = in ? KVM_EXIT_IO_IN : KVM_EXIT_IO_OUT;
	run->io.size = size;
	run->io.port = port;
	run->io.count = pio->count;
	run->io.data_offset = KVM_PIO_PAGE_OFFSET * PAGE_SIZE;
	vcpu->arch.complete_userspace = okvm_complete_pio;
	return OKVM_EXIT_TO_USER;
}
