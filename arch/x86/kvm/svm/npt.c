// SPDX-License-Identifier: GPL-2.0-only
/*
 * onekvm: nested page tables built lazily from memslots.
 *
 * The table has as many levels as the host's paging mode (4, or 5 with
 * CR4.LA57): the nested walk uses the host's mode. Every entry carries
 * the U/S bit (QEMU's model checks it at every level, as a user access).
 * Leaves map 4 KiB pages pinned by the generic memslot code; a fault maps
 * the whole 2 MiB-aligned window of the slot around it at once. Writes to
 * read-only slots and accesses outside any slot go to the MMIO path.
 * Table pages are only freed with the VM, so a zap never frees a page the
 * hardware may be walking.
 */
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/io.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <asm/special_insns.h>
#include <asm/processor-flags.h>
#include "svm.h"

#define NPT_P		BIT_ULL(0)
#define NPT_RW		BIT_ULL(1)
#define NPT_US		BIT_ULL(2)
#define NPT_A		BIT_ULL(5)
#define NPT_D		BIT_ULL(6)
#define NPT_ADDR	GENMASK_ULL(51, 12)
#define NPT_TABLE	(NPT_P | NPT_RW | NPT_US | NPT_A)
#define NPT_ENTRIES	512

static u64 *npt_table(u64 pte)
{
	return __va(pte & NPT_ADDR);
}

static unsigned int npt_index(u64 gfn, int level)
{
	return (gfn >> (9 * (level - 1))) & (NPT_ENTRIES - 1);
}

/**
 * okvm_npt_vm_init - allocate the nested page table root of a VM
 * @kvm: the VM (its arch.vendor is set by the caller)
 *
 * Return: 0 or -ENOMEM.
 */
int okvm_npt_vm_init(struct okvm *kvm)
{
	struct okvm_svm_vm *vm = to_svm_vm(kvm);

	vm->npt_levels = (__read_cr4() & X86_CR4_LA57) ? 5 : 4;
	vm->npt_root = alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);
	return vm->npt_root ? 0 : -ENOMEM;
}

static void npt_free_table(u64 *table, int level)
{
	int i;

	if (level > 1) {
		for (i = 0; i < NPT_ENTRIES; i++)
			if (table[i] & NPT_P)
				npt_free_table(npt_table(table[i]), level - 1);
	}
	free_page((unsigned long)table);
}

/**
 * okvm_npt_vm_destroy - free every nested page table page of a VM
 * @kvm: the VM, with no vCPU left
 */
void okvm_npt_vm_destroy(struct okvm *kvm)
{
	struct okvm_svm_vm *vm = to_svm_vm(kvm);

	if (vm->npt_root)
		npt_free_table(page_address(vm->npt_root), vm->npt_levels);
	vm->npt_root = NULL;
}

static void npt_zap(u64 *table, int level, u64 base, u64 start, u64 end)
{
	u64 span = 1ULL << (9 * (level - 1));
	unsigned int i;

	for (i = 0; i < NPT_ENTRIES; i++) {
		u64 lo = base + i * span, hi = lo + span;

		if (hi <= start || lo >= end || !(table[i] & NPT_P))
			continue;
		if (level == 1)
			WRITE_ONCE(table[i], 0);
		else
			npt_zap(npt_table(table[i]), level - 1, lo, start, end);
	}
}

/**
 * okvm_npt_memslot_remove - unmap every frame of a slot
 * @kvm: the VM, mmu_lock held
 * @slot: the slot being removed
 *
 * Only leaves are cleared; the caller flushes the TLBs of all vCPUs.
 */
void okvm_npt_memslot_remove(struct okvm *kvm, struct okvm_memslot *slot)
{
	struct okvm_svm_vm *vm = to_svm_vm(kvm);

	lockdep_assert_held(&kvm->mmu_lock);
	if (!vm || !vm->npt_root)
		return;
	npt_zap(page_address(vm->npt_root), vm->npt_levels, 0,
		slot->base_gfn, slot->base_gfn + slot->npages);
}

/**
 * okvm_npt_topup - refill the vCPU's cache of page-table pages
 * @vcpu: the vCPU
 *
 * Called before taking mmu_lock so that a fault can build a whole path
 * without allocating.
 *
 * Return: 0 or -ENOMEM.
 */
int okvm_npt_topup(struct okvm_vcpu *vcpu)
{
	struct okvm_svm_vcpu *svm = to_svm(vcpu);

	while (svm->npt_cache_nr < OKVM_NPT_CACHE) {
		struct page *p = alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO);

		if (!p)
			return -ENOMEM;
		svm->npt_cache[svm->npt_cache_nr++] = p;
	}
	return 0;
}

/**
 * okvm_npt_free_cache - release the vCPU's unused page-table pages
 * @vcpu: the vCPU
 */
void okvm_npt_free_cache(struct okvm_vcpu *vcpu)
{
	struct okvm_svm_vcpu *svm = to_svm(vcpu);

	while (svm->npt_cache_nr > 0)
		__free_page(svm->npt_cache[--svm->npt_cache_nr]);
}

/* Walk to the leaf table of @gfn, creating tables from the cache. */
static u64 *npt_leaf_table(struct okvm_vcpu *vcpu, u64 gfn)
{
	struct okvm_svm_vm *vm = to_svm_vm(vcpu->kvm);
	struct okvm_svm_vcpu *svm = to_svm(vcpu);
	u64 *table = page_address(vm->npt_root);
	int level;

	for (level = vm->npt_levels; level > 1; level--) {
		u64 *pte = &table[npt_index(gfn, level)];

		if (!(*pte & NPT_P)) {
			struct page *p;

			if (WARN_ON_ONCE(!svm->npt_cache_nr))
				return NULL;
			p = svm->npt_cache[--svm->npt_cache_nr];
			WRITE_ONCE(*pte, page_to_phys(p) | NPT_TABLE);
		}
		table = npt_table(*pte);
	}
	return table;
}

/**
 * okvm_npt_fault - handle a nested page fault
 * @vcpu: the faulting vCPU
 * @gpa: guest physical address
 * @error_code: exit_info_1 of the #VMEXIT
 *
 * Return: OKVM_EXIT_HANDLED when the guest may retry, else what the MMIO
 * path returns (an exit to userspace, or an error).
 */
int okvm_npt_fault(struct okvm_vcpu *vcpu, u64 gpa, u64 error_code)
{
	struct okvm *kvm = vcpu->kvm;
	struct okvm_svm_vm *vm = to_svm_vm(kvm);
	bool write = error_code & OKVM_NPF_WRITE;
	u64 gfn = gpa >> PAGE_SHIFT, first, last, g;
	struct okvm_memslot *slot;
	bool writable;
	u64 *table;
	int r;

	if (gfn >= (1ULL << (9 * vm->npt_levels)))
		return okvm_handle_mmio(vcpu, gpa, write);
	r = okvm_npt_topup(vcpu);
	if (r)
		return r;

	spin_lock(&kvm->mmu_lock);
	slot = okvm_gfn_to_memslot(kvm, gfn);
	writable = slot && !(slot->flags & KVM_MEM_READONLY);
	if (!slot || (write && !writable)) {
		spin_unlock(&kvm->mmu_lock);
		return okvm_handle_mmio(vcpu, gpa, write);
	}
	table = npt_leaf_table(vcpu, gfn);
	if (!table) {
		spin_unlock(&kvm->mmu_lock);
		return -ENOMEM;
	}
	/* Map the part of the slot that shares this leaf table. */
	first = max(gfn & ~(u64)(NPT_ENTRIES - 1), slot->base_gfn);
	last = min(gfn | (NPT_ENTRIES - 1), slot->base_gfn + slot->npages - 1);
	for (g = first; g <= last; g++) {
		struct page *page = slot->pages[g - slot->base_gfn];
		u64 pte = page_to_phys(page) | NPT_P | NPT_US | NPT_A;

		if (writable)
			pte |= NPT_RW | NPT_D;
		WRITE_ONCE(table[npt_index(g, 1)], pte);
	}
	spin_unlock(&kvm->mmu_lock);
	return OKVM_EXIT_HANDLED;
}
