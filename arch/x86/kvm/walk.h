/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Guest page-table walker: guest linear -> guest physical translation for
 * the instruction emulator and for instruction fetch.
 *
 * Vendor neutral (SVM today, VMX later) and free of vCPU structures: the
 * caller describes the guest paging state in a struct okvm_paging and
 * provides callbacks that read (and, to set accessed/dirty bits, write)
 * guest physical memory.  The same code builds in the kernel and in the
 * host-side test harness (tools/testing/emulate).
 *
 * Supported: paging off, 32-bit paging (4K and, with CR4.PSE, 4M pages
 * including PSE-36 high address bits), PAE (4K, 2M), 4-level and 5-level
 * (CR4.LA57) long-mode paging (4K, 2M, 1G), U/S, R/W with CR0.WP, NX with
 * EFER.NXE, SMEP, SMAP (with RFLAGS.AC), reserved-bit checks against
 * MAXPHYADDR, canonical checks.
 * Not modelled: protection keys (CR4.PKE/PKS), the PAE PDPTE registers
 * (PDPTEs are read from memory at walk time, not at CR3 load), atomicity of
 * accessed/dirty updates against other vCPUs, TLB/paging-structure caches.
 */
#ifndef _OKVM_X86_WALK_H
#define _OKVM_X86_WALK_H

#include <linux/types.h>
#include <linux/bits.h>

/* #PF error code bits (AMD APM vol. 2, 8.4.2; Intel SDM vol. 3, 4.7) */
#define OKVM_PFERR_PRESENT	BIT(0)
#define OKVM_PFERR_WRITE	BIT(1)
#define OKVM_PFERR_USER		BIT(2)
#define OKVM_PFERR_RSVD		BIT(3)
#define OKVM_PFERR_FETCH	BIT(4)

/*
 * Access flags for okvm_walk_gva(): the low bits share the #PF error code
 * encoding; the high bits are walker options.
 */
#define OKVM_ACC_WRITE		OKVM_PFERR_WRITE  /* data write */
#define OKVM_ACC_USER		OKVM_PFERR_USER   /* CPL 3 access */
#define OKVM_ACC_FETCH		OKVM_PFERR_FETCH  /* instruction fetch */
#define OKVM_ACC_AC		BIT(16)	/* RFLAGS.AC=1: SMAP does not apply */
#define OKVM_ACC_SET_AD		BIT(17)	/* set accessed/dirty bits (write_gpa) */
#define OKVM_ACC_NOCHECK	BIT(18)	/* translate only, no U/W/NX checks */

/* Control register bits the walker looks at */
#define OKVM_CR0_PE		BIT_ULL(0)
#define OKVM_CR0_WP		BIT_ULL(16)
#define OKVM_CR0_PG		BIT_ULL(31)
#define OKVM_CR4_PSE		BIT_ULL(4)
#define OKVM_CR4_PAE		BIT_ULL(5)
#define OKVM_CR4_LA57		BIT_ULL(12)
#define OKVM_CR4_SMEP		BIT_ULL(20)
#define OKVM_CR4_SMAP		BIT_ULL(21)
#define OKVM_EFER_LME		BIT_ULL(8)
#define OKVM_EFER_LMA		BIT_ULL(10)
#define OKVM_EFER_NXE		BIT_ULL(11)

/**
 * struct okvm_paging - guest paging state and guest-physical accessors
 * @cr0: guest CR0 (PG, WP are used)
 * @cr3: guest CR3
 * @cr4: guest CR4 (PSE, PAE, LA57, SMEP, SMAP are used)
 * @efer: guest EFER (LMA, NXE are used)
 * @maxphyaddr: guest physical address width for reserved-bit checks;
 *	0 means 52
 * @read_gpa: read @len bytes of guest physical memory at @gpa into @buf.
 *	Returns 0, -ENOENT if @gpa is not backed by guest RAM (MMIO), or
 *	another negative errno on a host-side failure.  Never called with a
 *	range crossing a 4 KiB boundary.  Called synchronously from the
 *	walker/emulator entry points, in the caller's context (the walker and
 *	emulator themselves never sleep or allocate).
 * @write_gpa: same contract for writes; -ENOENT also for a read-only
 *	memslot (the write then becomes an MMIO exit).  May be NULL: then
 *	accessed/dirty bits are not updated and movs cannot store to RAM.
 * @opaque: passed unchanged to the callbacks
 */
struct okvm_paging {
	u64 cr0;
	u64 cr3;
	u64 cr4;
	u64 efer;
	u8 maxphyaddr;
	int (*read_gpa)(void *opaque, u64 gpa, void *buf, unsigned int len);
	int (*write_gpa)(void *opaque, u64 gpa, const void *buf,
			 unsigned int len);
	void *opaque;
};

/**
 * enum okvm_walk_status - positive outcomes of a translation
 * @OKVM_WALK_OK: translated
 * @OKVM_WALK_PF: guest page fault; inject #PF with
 *	&okvm_walk_result.error_code and CR2 = the linear address
 * @OKVM_WALK_GP: non-canonical linear address in long mode; inject #GP(0)
 *	(#SS(0) if the access used SS, which the caller knows)
 *
 * Walk functions return one of these, or a negative errno when guest
 * memory holding a paging structure could not be read (-ENOENT: it is not
 * RAM).  A negative value is a host-side emulation failure, not a guest
 * fault.
 */
enum okvm_walk_status {
	OKVM_WALK_OK = 0,
	OKVM_WALK_PF = 1,
	OKVM_WALK_GP = 2,
};

/**
 * struct okvm_walk_result - result of okvm_walk_gva()
 * @gpa: guest physical address (valid for %OKVM_WALK_OK)
 * @error_code: #PF error code (valid for %OKVM_WALK_PF)
 * @pte: the leaf entry (0 when paging is off or the walk faulted early)
 * @level: level of the leaf: 1 = 4K page, 2 = 2M/4M page, 3 = 1G page;
 *	0 when paging is off
 */
struct okvm_walk_result {
	u64 gpa;
	u32 error_code;
	u64 pte;
	u8 level;
};

/*
 * Translate @gva for an access described by OKVM_ACC_* @access.  Returns an
 * enum okvm_walk_status or a negative errno (paging structure unreadable).
 * Outside long mode @gva is truncated to 32 bits.
 */
int okvm_walk_gva(const struct okvm_paging *pg, u64 gva, u32 access,
		  struct okvm_walk_result *res);

/*
 * Copy @len bytes from/to guest linear @gva, page by page.  *@done gets the
 * number of bytes copied before the first failure.  Returns like
 * okvm_walk_gva(); a callback failure (-ENOENT for MMIO) is returned as is.
 */
int okvm_read_gva(const struct okvm_paging *pg, u64 gva, void *buf,
		  unsigned int len, u32 access, unsigned int *done,
		  struct okvm_walk_result *res);

int okvm_write_gva(const struct okvm_paging *pg, u64 gva, const void *buf,
		   unsigned int len, u32 access, unsigned int *done,
		   struct okvm_walk_result *res);

#endif /* _OKVM_X86_WALK_H */
