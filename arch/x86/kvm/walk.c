// SPDX-License-Identifier: GPL-2.0-only
/*
 * Guest page-table walker, see walk.h.
 *
 * Written from the paging chapters of the AMD64 Architecture Programmer's
 * Manual vol. 2 and the Intel SDM vol. 3A.  Paging-structure entries are
 * little endian, as is the host (x86).
 */
#include <linux/types.h>
#include <linux/bits.h>
#include <linux/errno.h>
#include <linux/string.h>
#include <linux/kernel.h>

#include "walk.h"

#define PTE_P		BIT_ULL(0)
#define PTE_W		BIT_ULL(1)
#define PTE_U		BIT_ULL(2)
#define PTE_A		BIT_ULL(5)
#define PTE_D		BIT_ULL(6)
#define PTE_PS		BIT_ULL(7)
#define PTE_NX		BIT_ULL(63)

#define PAGE_4K		0x1000ULL

/* Walk state shared by the 32-bit, PAE and long-mode walkers */
struct walk {
	const struct okvm_paging *pg;
	u32 access;
	u64 rsvd_phys;		/* bits 51:MAXPHYADDR */
	u64 nx_rsvd;		/* PTE_NX if EFER.NXE=0, else 0 */
	bool nx_enabled;
	bool user;		/* AND of U/S */
	bool write;		/* AND of R/W */
	bool nx;		/* OR of NX */
	unsigned int nr;	/* entries visited, for A/D updates */
	u64 entry_gpa[5];
	u64 entry[5];
	u8 entry_size;		/* 4 or 8 bytes */
};

static int read_entry(struct walk *w, u64 gpa, u64 *val)
{
	u32 v32;
	int r;

	if (w->entry_size == 4) {
		r = w->pg->read_gpa(w->pg->opaque, gpa, &v32, 4);
		*val = v32;
	} else {
		r = w->pg->read_gpa(w->pg->opaque, gpa, val, 8);
	}
	if (r)
		return r;
	if (w->nr < ARRAY_SIZE(w->entry)) {
		w->entry_gpa[w->nr] = gpa;
		w->entry[w->nr] = *val;
		w->nr++;
	}
	return 0;
}

static bool fetch_reports_id(const struct okvm_paging *pg)
{
	bool pae = pg->cr4 & OKVM_CR4_PAE;

	return (pae && (pg->efer & OKVM_EFER_NXE)) ||
	       (pg->cr4 & OKVM_CR4_SMEP);
}

static u32 error_code(const struct walk *w, u32 extra)
{
	u32 ec = extra;

	ec |= w->access & (OKVM_PFERR_WRITE | OKVM_PFERR_USER);
	if ((w->access & OKVM_ACC_FETCH) && fetch_reports_id(w->pg))
		ec |= OKVM_PFERR_FETCH;
	return ec;
}

/* Accumulate the permissions of one present entry */
static void accumulate(struct walk *w, u64 e)
{
	if (!(e & PTE_U))
		w->user = false;
	if (!(e & PTE_W))
		w->write = false;
	if (w->nx_enabled && (e & PTE_NX))
		w->nx = true;
}

/* Permission check at the leaf: 0 or the #PF error code (P=1) */
static u32 check_access(const struct walk *w)
{
	const struct okvm_paging *pg = w->pg;
	u32 acc = w->access;
	bool fault = false;

	if (acc & OKVM_ACC_NOCHECK)
		return 0;

	if (acc & OKVM_ACC_USER) {
		if (!w->user)
			fault = true;
		else if ((acc & OKVM_ACC_WRITE) && !w->write)
			fault = true;
	} else {
		if ((acc & OKVM_ACC_WRITE) && !w->write &&
		    (pg->cr0 & OKVM_CR0_WP))
			fault = true;
		if (w->user && (acc & OKVM_ACC_FETCH) &&
		    (pg->cr4 & OKVM_CR4_SMEP))
			fault = true;
		if (w->user && !(acc & OKVM_ACC_FETCH) &&
		    !(acc & OKVM_ACC_AC) && (pg->cr4 & OKVM_CR4_SMAP))
			fault = true;
	}
	if ((acc & OKVM_ACC_FETCH) && w->nx)
		fault = true;

	return fault ? error_code(w, OKVM_PFERR_PRESENT) : 0;
}

/* Set accessed bits on every entry and the dirty bit on the leaf */
static int set_ad(struct walk *w)
{
	const struct okvm_paging *pg = w->pg;
	unsigned int i;
	int r;

	if (!(w->access & OKVM_ACC_SET_AD) || !pg->write_gpa)
		return 0;

	for (i = 0; i < w->nr; i++) {
		u64 e = w->entry[i] | PTE_A;
		u32 e32;

		if (i == w->nr - 1 && (w->access & OKVM_ACC_WRITE))
			e |= PTE_D;
		if (e == w->entry[i])
			continue;
		if (w->entry_size == 4) {
			e32 = e;
			r = pg->write_gpa(pg->opaque, w->entry_gpa[i], &e32, 4);
		} else {
			r = pg->write_gpa(pg->opaque, w->entry_gpa[i], &e, 8);
		}
		if (r)
			return r;
	}
	return 0;
}

static int rsvd_fault(const struct walk *w, struct okvm_walk_result *res)
{
	res->error_code = error_code(w, OKVM_PFERR_PRESENT | OKVM_PFERR_RSVD);
	return OKVM_WALK_PF;
}

/*
 * One level of a PAE or long-mode walk.  Returns 0 with *@e read and
 * checked, OKVM_WALK_PF with res->error_code set, or a negative errno.
 */
static int walk_level(struct walk *w, u64 table, unsigned int shift,
		      u64 gva, u64 rsvd, u64 *e,
		      struct okvm_walk_result *res)
{
	u64 idx = (gva >> shift) & 511;
	int r;

	r = read_entry(w, table + idx * 8, e);
	if (r)
		return r;
	if (!(*e & PTE_P)) {
		res->error_code = error_code(w, 0);
		return OKVM_WALK_PF;
	}
	if (*e & rsvd)
		return rsvd_fault(w, res);
	accumulate(w, *e);
	return 0;
}

static int walk_64(struct walk *w, u64 gva, u64 table, int levels,
		   struct okvm_walk_result *res)
{
	u64 addr_mask = GENMASK_ULL(51, 12);
	u64 base_rsvd = w->rsvd_phys | w->nx_rsvd;
	u64 e, rsvd, offset_mask;
	int level, r;

	for (level = levels; level >= 1; level--) {
		unsigned int shift = 12 + 9 * (level - 1);

		rsvd = base_rsvd;
		if (level >= 4)
			rsvd |= PTE_PS;

		r = walk_level(w, table, shift, gva, rsvd, &e, res);
		if (r)
			return r;

		if (level == 3 || level == 2) {
			if (e & PTE_PS) {
				/* 1G: bits 29:13 MBZ; 2M: bits 20:13 MBZ */
				if (e & GENMASK_ULL(shift - 1, 13))
					return rsvd_fault(w, res);
				offset_mask = (1ULL << shift) - 1;
				res->gpa = (e & addr_mask & ~offset_mask) |
					   (gva & offset_mask);
				res->level = level;
				res->pte = e;
				return 0;
			}
		}
		if (level == 1) {
			res->gpa = (e & addr_mask) | (gva & 0xfff);
			res->level = 1;
			res->pte = e;
			return 0;
		}
		table = e & addr_mask;
	}
	return -EINVAL;	/* not reached */
}

static int walk_pae(struct walk *w, u64 gva, struct okvm_walk_result *res)
{
	u64 pdpte_rsvd = GENMASK_ULL(63, w->pg->maxphyaddr ?: 52) |
			 GENMASK_ULL(2, 1) | GENMASK_ULL(8, 5);
	u64 table = w->pg->cr3 & GENMASK_ULL(31, 5);
	u64 e;
	int r;

	/* PDPTEs have no accessed bit: not recorded for set_ad() */
	r = w->pg->read_gpa(w->pg->opaque, table + ((gva >> 30) & 3) * 8,
			    &e, 8);
	if (r)
		return r;
	if (!(e & PTE_P)) {
		res->error_code = error_code(w, 0);
		return OKVM_WALK_PF;
	}
	if (e & pdpte_rsvd)
		return rsvd_fault(w, res);
	/* PDPTEs carry no U/W/NX: the directory below decides */
	return walk_64(w, gva, e & GENMASK_ULL(51, 12), 2, res);
}

static int walk_32(struct walk *w, u64 gva, struct okvm_walk_result *res)
{
	const struct okvm_paging *pg = w->pg;
	unsigned int maxphy = min_t(unsigned int, pg->maxphyaddr ?: 52, 40);
	u64 e, pa_hi;
	int r;

	r = read_entry(w, (pg->cr3 & GENMASK_ULL(31, 12)) +
		       ((gva >> 22) & 1023) * 4, &e);
	if (r)
		return r;
	if (!(e & PTE_P)) {
		res->error_code = error_code(w, 0);
		return OKVM_WALK_PF;
	}
	accumulate(w, e);

	if ((e & PTE_PS) && (pg->cr4 & OKVM_CR4_PSE)) {
		/* 4M page: bits 20:13 hold PA 39:32 (PSE-36/40), bit 21 MBZ */
		u64 rsvd = BIT_ULL(21);

		if (maxphy < 40)
			rsvd |= GENMASK_ULL(20, 13 + maxphy - 32);
		if (e & rsvd)
			return rsvd_fault(w, res);
		pa_hi = ((e >> 13) & 0xff) << 32;
		res->gpa = pa_hi | (e & GENMASK_ULL(31, 22)) |
			   (gva & GENMASK_ULL(21, 0));
		res->level = 2;
		res->pte = e;
		return 0;
	}

	r = read_entry(w, (e & GENMASK_ULL(31, 12)) +
		       ((gva >> 12) & 1023) * 4, &e);
	if (r)
		return r;
	if (!(e & PTE_P)) {
		res->error_code = error_code(w, 0);
		return OKVM_WALK_PF;
	}
	accumulate(w, e);
	res->gpa = (e & GENMASK_ULL(31, 12)) | (gva & 0xfff);
	res->level = 1;
	res->pte = e;
	return 0;
}

static bool is_canonical(u64 gva, unsigned int bits)
{
	s64 s = (s64)(gva << (64 - bits)) >> (64 - bits);

	return (u64)s == gva;
}

/**
 * okvm_walk_gva() - translate a guest linear address
 * @pg: guest paging state and memory callbacks
 * @gva: guest linear address (truncated to 32 bits outside long mode)
 * @access: OKVM_ACC_* flags describing the access
 * @res: result: guest physical address, or #PF error code
 *
 * Walks the guest page tables the way the processor would for an access of
 * kind @access, including reserved-bit, U/S, R/W (CR0.WP), NX (EFER.NXE),
 * SMEP and SMAP (unless %OKVM_ACC_AC) checks, and with %OKVM_ACC_SET_AD sets
 * accessed and dirty bits through @pg->write_gpa once the walk succeeded.
 *
 * Return: %OKVM_WALK_OK, %OKVM_WALK_PF (@res->error_code holds the #PF
 * error code), %OKVM_WALK_GP (non-canonical address in long mode), or a
 * negative errno from @pg->read_gpa/@pg->write_gpa.
 */
int okvm_walk_gva(const struct okvm_paging *pg, u64 gva, u32 access,
		  struct okvm_walk_result *res)
{
	unsigned int maxphy = pg->maxphyaddr ?: 52;
	bool lma = pg->efer & OKVM_EFER_LMA;
	struct walk w;
	u32 ec;
	int r;

	memset(res, 0, sizeof(*res));

	if (lma && !is_canonical(gva, (pg->cr4 & OKVM_CR4_LA57) ? 57 : 48))
		return OKVM_WALK_GP;
	if (!lma)
		gva &= 0xffffffffULL;

	if (!(pg->cr0 & OKVM_CR0_PG)) {
		res->gpa = gva;
		return OKVM_WALK_OK;
	}

	memset(&w, 0, sizeof(w));
	w.pg = pg;
	w.access = access;
	w.user = true;
	w.write = true;
	w.rsvd_phys = maxphy < 52 ? GENMASK_ULL(51, maxphy) : 0;

	if (lma) {
		w.entry_size = 8;
		w.nx_enabled = pg->efer & OKVM_EFER_NXE;
		w.nx_rsvd = w.nx_enabled ? 0 : PTE_NX;
		r = walk_64(&w, gva, pg->cr3 & GENMASK_ULL(51, 12),
			    (pg->cr4 & OKVM_CR4_LA57) ? 5 : 4, res);
	} else if (pg->cr4 & OKVM_CR4_PAE) {
		w.entry_size = 8;
		w.nx_enabled = pg->efer & OKVM_EFER_NXE;
		w.nx_rsvd = w.nx_enabled ? 0 : PTE_NX;
		r = walk_pae(&w, gva, res);
	} else {
		w.entry_size = 4;
		r = walk_32(&w, gva, res);
	}
	if (r)
		return r;

	ec = check_access(&w);
	if (ec) {
		res->gpa = 0;
		res->error_code = ec;
		return OKVM_WALK_PF;
	}
	r = set_ad(&w);
	if (r)
		return r;
	return OKVM_WALK_OK;
}

static int copy_gva(const struct okvm_paging *pg, u64 gva, void *buf,
		    const void *src, unsigned int len, u32 access,
		    unsigned int *done, struct okvm_walk_result *res)
{
	bool lma = pg->efer & OKVM_EFER_LMA;
	unsigned int n;
	int r;

	*done = 0;
	while (*done < len) {
		u64 la = gva + *done;

		if (!lma)
			la &= 0xffffffffULL;
		r = okvm_walk_gva(pg, la, access, res);
		if (r)
			return r;
		n = min_t(u64, len - *done, PAGE_4K - (res->gpa & (PAGE_4K - 1)));
		if (src) {
			if (!pg->write_gpa)
				return -EOPNOTSUPP;
			r = pg->write_gpa(pg->opaque, res->gpa,
					  (const u8 *)src + *done, n);
		} else {
			r = pg->read_gpa(pg->opaque, res->gpa,
					 (u8 *)buf + *done, n);
		}
		if (r)
			return r;
		*done += n;
	}
	return OKVM_WALK_OK;
}

/**
 * okvm_read_gva() - read guest memory by linear address
 * @pg: guest paging state and memory callbacks
 * @gva: guest linear address
 * @buf: destination
 * @len: bytes to read; may cross page boundaries
 * @access: OKVM_ACC_* flags (%OKVM_ACC_WRITE must not be set)
 * @done: out: bytes copied before the first failure (or @len)
 * @res: out: translation of the last page tried (the fault on failure)
 *
 * Return: as okvm_walk_gva(); a failing @pg->read_gpa (e.g. -ENOENT for a
 * page that is not RAM) is returned as is, with @res->gpa naming the page.
 */
int okvm_read_gva(const struct okvm_paging *pg, u64 gva, void *buf,
		  unsigned int len, u32 access, unsigned int *done,
		  struct okvm_walk_result *res)
{
	return copy_gva(pg, gva, buf, NULL, len, access, done, res);
}

/**
 * okvm_write_gva() - write guest memory by linear address
 * @pg: guest paging state and memory callbacks
 * @gva: guest linear address
 * @buf: source
 * @len: bytes to write; may cross page boundaries
 * @access: OKVM_ACC_* flags; %OKVM_ACC_WRITE is implied
 * @done: out: bytes copied before the first failure (or @len)
 * @res: out: translation of the last page tried (the fault on failure)
 *
 * Return: as okvm_read_gva(); -EOPNOTSUPP without @pg->write_gpa.
 */
int okvm_write_gva(const struct okvm_paging *pg, u64 gva, const void *buf,
		   unsigned int len, u32 access, unsigned int *done,
		   struct okvm_walk_result *res)
{
	return copy_gva(pg, gva, NULL, buf, len, access | OKVM_ACC_WRITE,
			done, res);
}
