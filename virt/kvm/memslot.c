// SPDX-License-Identifier: GPL-2.0-only
/*
 * onekvm: guest memory slots.
 *
 * Every page of a slot is pinned when the slot is created and unpinned when
 * it is deleted, so the nested page tables can point at host pages without
 * MMU notifiers. Readers in the fault path hold kvm->mmu_lock; updates are
 * serialized by kvm->lock and published under kvm->mmu_lock.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mm.h>
#include <linux/highmem.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <onekvm/kvm_host.h>

#include "okvm.h"

#define OKVM_VALID_MEM_FLAGS	KVM_MEM_READONLY

/**
 * okvm_gfn_to_memslot - find the slot backing a guest frame
 * @kvm: the VM
 * @gfn: guest frame number
 *
 * Context: kvm->mmu_lock or kvm->lock held.
 * Return: the slot, or NULL if @gfn is not backed by memory (MMIO).
 */
struct okvm_memslot *okvm_gfn_to_memslot(struct okvm *kvm, u64 gfn)
{
	struct okvm_memslot *slot;
	int i;

	for (i = 0; i < OKVM_USER_MEM_SLOTS; i++) {
		slot = kvm->memslots[i];
		if (slot && gfn >= slot->base_gfn &&
		    gfn - slot->base_gfn < slot->npages)
			return slot;
	}
	return NULL;
}

/**
 * okvm_gfn_to_page - the pinned host page behind a guest frame
 * @kvm: the VM
 * @gfn: guest frame number
 * @writable: set to whether the guest may write the page
 *
 * Context: kvm->mmu_lock held; the page stays pinned while it is held.
 * Return: the page, or NULL if @gfn is MMIO.
 */
struct page *okvm_gfn_to_page(struct okvm *kvm, u64 gfn, bool *writable)
{
	struct okvm_memslot *slot = okvm_gfn_to_memslot(kvm, gfn);

	if (!slot)
		return NULL;
	*writable = !(slot->flags & KVM_MEM_READONLY);
	return slot->pages[gfn - slot->base_gfn];
}

static int okvm_access_guest(struct okvm *kvm, u64 gpa, void *data,
			     unsigned long len, bool write)
{
	unsigned long off, chunk;
	struct page *page;
	bool writable;
	void *va;
	int r = 0;

	spin_lock(&kvm->mmu_lock);
	while (len) {
		off = offset_in_page(gpa);
		chunk = min(len, PAGE_SIZE - off);
		page = okvm_gfn_to_page(kvm, gpa >> PAGE_SHIFT, &writable);
		if (!page) {
			r = -EFAULT;
			break;
		}
		/* Pinned pages are marked dirty when they are unpinned. */
		va = kmap_local_page(page);
		if (write)
			memcpy(va + off, data, chunk);
		else
			memcpy(data, va + off, chunk);
		kunmap_local(va);
		gpa += chunk;
		data += chunk;
		len -= chunk;
	}
	spin_unlock(&kvm->mmu_lock);
	return r;
}

/**
 * okvm_read_guest - copy from guest-physical memory
 * @kvm: the VM
 * @gpa: guest-physical address
 * @data: destination
 * @len: bytes to copy
 *
 * Context: must not hold kvm->mmu_lock.
 * Return: 0, or -EFAULT if part of the range is not backed by a memslot.
 */
int okvm_read_guest(struct okvm *kvm, u64 gpa, void *data, unsigned long len)
{
	return okvm_access_guest(kvm, gpa, data, len, false);
}

/**
 * okvm_write_guest - copy to guest-physical memory
 * @kvm: the VM
 * @gpa: guest-physical address
 * @data: source
 * @len: bytes to copy
 *
 * Writes ignore KVM_MEM_READONLY: they are the hypervisor's, not the
 * guest's.
 * Context: must not hold kvm->mmu_lock.
 * Return: 0, or -EFAULT if part of the range is not backed by a memslot.
 */
int okvm_write_guest(struct okvm *kvm, u64 gpa, const void *data,
		     unsigned long len)
{
	return okvm_access_guest(kvm, gpa, (void *)data, len, true);
}

static void okvm_unpin_slot(struct okvm_memslot *slot, unsigned long npinned)
{
	unpin_user_pages_dirty_lock(slot->pages, npinned,
				    !(slot->flags & KVM_MEM_READONLY));
}

static void okvm_free_slot(struct okvm_memslot *slot)
{
	okvm_unpin_slot(slot, slot->npages);
	kvfree(slot->pages);
	kfree(slot);
}

static int okvm_pin_slot(struct okvm_memslot *slot)
{
	unsigned int gup = FOLL_LONGTERM | FOLL_WRITE;
	bool readonly = slot->flags & KVM_MEM_READONLY;
	unsigned long done = 0, addr;
	int n, chunk;

	while (done < slot->npages) {
		chunk = min_t(unsigned long, slot->npages - done, 512);
		addr = slot->userspace_addr + done * PAGE_SIZE;
		n = pin_user_pages_fast(addr, chunk, gup, slot->pages + done);
		/*
		 * A read-only slot is pinned for write when the VMM's mapping
		 * allows it: a read pin of never-written anonymous memory
		 * would pin the shared zero page, and the guest would never
		 * see what the VMM writes there later. The guest's own
		 * access stays read-only in the nested page tables.
		 */
		if (n <= 0 && readonly && (gup & FOLL_WRITE)) {
			gup &= ~FOLL_WRITE;
			continue;
		}
		if (n <= 0) {
			okvm_unpin_slot(slot, done);
			return n ? n : -EFAULT;
		}
		done += n;
		if (fatal_signal_pending(current)) {
			okvm_unpin_slot(slot, done);
			return -EINTR;
		}
		cond_resched();
	}
	return 0;
}

static struct okvm_memslot *
okvm_new_slot(const struct kvm_userspace_memory_region *mem)
{
	struct okvm_memslot *slot;
	int r;

	slot = kzalloc(sizeof(*slot), GFP_KERNEL_ACCOUNT);
	if (!slot)
		return ERR_PTR(-ENOMEM);
	slot->id = mem->slot;
	slot->flags = mem->flags;
	slot->base_gfn = mem->guest_phys_addr >> PAGE_SHIFT;
	slot->npages = mem->memory_size >> PAGE_SHIFT;
	slot->userspace_addr = mem->userspace_addr;

	slot->pages = kvmalloc_array(slot->npages, sizeof(*slot->pages),
				     GFP_KERNEL_ACCOUNT);
	if (!slot->pages) {
		r = -ENOMEM;
		goto out_free;
	}
	r = okvm_pin_slot(slot);
	if (r)
		goto out_free_pages;
	return slot;

out_free_pages:
	kvfree(slot->pages);
out_free:
	kfree(slot);
	return ERR_PTR(r);
}

static bool okvm_overlaps(struct okvm *kvm, u32 id, u64 gfn, u64 npages)
{
	struct okvm_memslot *s;
	int i;

	for (i = 0; i < OKVM_USER_MEM_SLOTS; i++) {
		s = kvm->memslots[i];
		if (i == id || !s)
			continue;
		if (gfn < s->base_gfn + s->npages && s->base_gfn < gfn + npages)
			return true;
	}
	return false;
}

static void okvm_detach_slot(struct okvm *kvm, struct okvm_memslot *slot)
{
	spin_lock(&kvm->mmu_lock);
	kvm->memslots[slot->id] = NULL;
	okvm_arch_memslot_remove(kvm, slot);
	spin_unlock(&kvm->mmu_lock);
}

/*
 * Unlink a slot and make sure no vCPU can reach its pages any more: after
 * this the caller owns the slot and may unpin it.
 */
static void okvm_unlink_slot(struct okvm *kvm, struct okvm_memslot *slot)
{
	okvm_detach_slot(kvm, slot);
	okvm_make_all_vcpus_request(kvm, OKVM_REQ_TLB_FLUSH);
}

static int okvm_check_region(const struct kvm_userspace_memory_region *mem)
{
	u16 as_id = mem->slot >> 16, id = mem->slot & 0xffff;

	if (as_id || id >= OKVM_USER_MEM_SLOTS)
		return -EINVAL;
	if (mem->flags & ~OKVM_VALID_MEM_FLAGS)
		return -EINVAL;
	if (!PAGE_ALIGNED(mem->memory_size) ||
	    !PAGE_ALIGNED(mem->guest_phys_addr) ||
	    !PAGE_ALIGNED(mem->userspace_addr))
		return -EINVAL;
	if (mem->memory_size >> PAGE_SHIFT > OKVM_MAX_SLOT_PAGES)
		return -EINVAL;
	if (mem->guest_phys_addr + mem->memory_size < mem->guest_phys_addr)
		return -EINVAL;
	/* The NPT maps at most 52 physical address bits. */
	if ((mem->guest_phys_addr + mem->memory_size) >> 52)
		return -EINVAL;
	if (mem->memory_size &&
	    !access_ok((void __user *)(unsigned long)mem->userspace_addr,
		       mem->memory_size))
		return -EINVAL;
	return 0;
}

static int okvm_move_slot(struct okvm *kvm, struct okvm_memslot *old,
			  const struct kvm_userspace_memory_region *mem)
{
	u64 gfn = mem->guest_phys_addr >> PAGE_SHIFT;

	if (old->flags != mem->flags ||
	    old->userspace_addr != mem->userspace_addr ||
	    old->npages != mem->memory_size >> PAGE_SHIFT)
		return -EINVAL;
	if (old->base_gfn == gfn)
		return 0;
	if (okvm_overlaps(kvm, old->id, gfn, old->npages))
		return -EEXIST;

	/* The pages stay pinned; only their guest-physical address moves. */
	okvm_unlink_slot(kvm, old);
	spin_lock(&kvm->mmu_lock);
	old->base_gfn = gfn;
	kvm->memslots[old->id] = old;
	spin_unlock(&kvm->mmu_lock);
	return 0;
}

static int __okvm_set_memory_region(struct okvm *kvm,
				    const struct kvm_userspace_memory_region *mem)
{
	struct okvm_memslot *old, *slot;
	u32 id = mem->slot;

	old = kvm->memslots[id];
	if (!mem->memory_size) {
		if (!old)
			return -EINVAL;
		okvm_unlink_slot(kvm, old);
		okvm_free_slot(old);
		return 0;
	}
	if (old)
		return okvm_move_slot(kvm, old, mem);

	if (okvm_overlaps(kvm, id, mem->guest_phys_addr >> PAGE_SHIFT,
			  mem->memory_size >> PAGE_SHIFT))
		return -EEXIST;

	slot = okvm_new_slot(mem);
	if (IS_ERR(slot))
		return PTR_ERR(slot);
	spin_lock(&kvm->mmu_lock);
	kvm->memslots[id] = slot;
	spin_unlock(&kvm->mmu_lock);
	return 0;
}

/**
 * okvm_set_memory_region - KVM_SET_USER_MEMORY_REGION
 * @kvm: the VM
 * @mem: the request, already copied from userspace
 *
 * Creates (size != 0, slot unused), deletes (size == 0), or moves a slot to
 * another guest-physical address (same size, flags and host address).
 * Resizing, changing flags or the host address of a live slot is refused,
 * as upstream does.
 *
 * Return: 0, -EINVAL for a malformed request, -EEXIST for an overlap,
 * -EFAULT/-ENOMEM when the memory cannot be pinned.
 */
int okvm_set_memory_region(struct okvm *kvm,
			   const struct kvm_userspace_memory_region *mem)
{
	int r;

	r = okvm_check_region(mem);
	if (r)
		return r;

	mutex_lock(&kvm->lock);
	r = __okvm_set_memory_region(kvm, mem);
	mutex_unlock(&kvm->lock);
	return r;
}

/**
 * okvm_free_memslots - delete every slot of a dying VM
 * @kvm: the VM, with no vCPU left
 */
void okvm_free_memslots(struct okvm *kvm)
{
	struct okvm_memslot *slot;
	int i;

	for (i = 0; i < OKVM_USER_MEM_SLOTS; i++) {
		slot = kvm->memslots[i];
		if (!slot)
			continue;
		okvm_detach_slot(kvm, slot);
		okvm_free_slot(slot);
	}
}
