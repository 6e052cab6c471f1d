/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * onekvm: generic VM and vCPU objects, and the interface between the generic
 * code in virt/kvm and the architecture code (arch/<arch>/kvm).
 *
 * virt/kvm owns the file descriptors, memslots, vCPU objects and the
 * KVM_RUN entry; everything that knows about a CPU architecture sits behind
 * the okvm_arch_*() hooks declared here.
 */
#ifndef _ONEKVM_KVM_HOST_H
#define _ONEKVM_KVM_HOST_H

#include <linux/types.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/refcount.h>
#include <linux/bitops.h>
#include <linux/mm_types.h>
#include <linux/signal_types.h>
#include <onekvm/kvm.h>
#include <asm/okvm_host.h>

#define OKVM_MAX_VCPUS		16
#define OKVM_USER_MEM_SLOTS	32
/* One slot maps at most 64 GiB: bounds the pinned-page array we allocate. */
#define OKVM_MAX_SLOT_PAGES	(1UL << (36 - PAGE_SHIFT))

/**
 * struct okvm_memslot - a guest-physical range backed by VMM memory
 * @id: slot number as given by userspace (address space 0 only)
 * @flags: KVM_MEM_* flags
 * @base_gfn: first guest frame number
 * @npages: number of pages
 * @userspace_addr: VMM virtual address of the first page
 * @pages: the pinned pages, @npages entries, pinned at creation and
 *	unpinned at deletion
 */
struct okvm_memslot {
	u32 id;
	u32 flags;
	u64 base_gfn;
	unsigned long npages;
	unsigned long userspace_addr;
	struct page **pages;
};

/* vCPU execution mode, read by okvm_vcpu_kick() on other CPUs. */
enum okvm_vcpu_mode {
	OKVM_OUTSIDE_GUEST_MODE,
	OKVM_IN_GUEST_MODE,
	OKVM_EXITING_GUEST_MODE,
};

/* Bits of okvm_vcpu.requests; arch code may define more from 8 up. */
#define OKVM_REQ_TLB_FLUSH	0	/* NPT changed: flush before next entry */
#define OKVM_REQ_EXIT		1	/* leave KVM_RUN at the next check */
#define OKVM_REQ_ARCH_BASE	8

struct okvm;

/**
 * struct okvm_vcpu - one virtual CPU
 * @kvm: the VM it belongs to
 * @vcpu_id: id given to KVM_CREATE_VCPU
 * @cpu: host CPU it last entered the guest on, -1 before the first run
 * @mode: an enum okvm_vcpu_mode, written by the vCPU thread only
 * @requests: OKVM_REQ_* bits, set by anyone, consumed by the vCPU thread
 * @mutex: serializes the vCPU ioctls
 * @run: the shared struct kvm_run, page 0 of the vCPU mmap
 * @pio_data: page KVM_PIO_PAGE_OFFSET of the vCPU mmap, PIO data buffer
 * @sigset: signal mask while in KVM_RUN (KVM_SET_SIGNAL_MASK)
 * @sigset_active: whether @sigset applies
 * @arch: architecture state
 */
struct okvm_vcpu {
	struct okvm *kvm;
	u32 vcpu_id;
	int cpu;
	int mode;
	unsigned long requests;
	struct mutex mutex;	/* serializes this vCPU's ioctls */
	struct kvm_run *run;
	void *pio_data;
	sigset_t sigset;
	bool sigset_active;
	struct okvm_vcpu_arch arch;
};

/**
 * struct okvm - one virtual machine
 * @mm: the mm of the process that created the VM; guest memory lives there
 * @lock: serializes memslot updates and vCPU creation
 * @mmu_lock: protects @memslots for readers in the fault path and the arch
 *	nested page tables; never held across anything that sleeps
 * @users: references from the VM fd and each vCPU fd
 * @memslots: slots indexed by slot id, NULL when unused
 * @vcpus: created vCPUs, indices below @nr_vcpus are valid
 * @nr_vcpus: number of created vCPUs (read locklessly with smp_load_acquire)
 * @arch: architecture state
 */
struct okvm {
	struct mm_struct *mm;
	struct mutex lock;	/* memslot updates, vCPU creation */
	spinlock_t mmu_lock;	/* memslots for the fault path, NPT */
	refcount_t users;
	struct okvm_memslot *memslots[OKVM_USER_MEM_SLOTS];
	struct okvm_vcpu *vcpus[OKVM_MAX_VCPUS];
	int nr_vcpus;
	struct okvm_arch arch;
};

/* Generic services for arch code (virt/kvm). */
struct okvm_memslot *okvm_gfn_to_memslot(struct okvm *kvm, u64 gfn);
struct page *okvm_gfn_to_page(struct okvm *kvm, u64 gfn, bool *writable);
int okvm_read_guest(struct okvm *kvm, u64 gpa, void *data, unsigned long len);
int okvm_write_guest(struct okvm *kvm, u64 gpa, const void *data,
		     unsigned long len);
void okvm_vcpu_kick(struct okvm_vcpu *vcpu);
void okvm_make_all_vcpus_request(struct okvm *kvm, unsigned int req);

/**
 * okvm_make_request - ask the vCPU thread to act before its next entry
 * @vcpu: the vCPU
 * @req: OKVM_REQ_* bit
 *
 * The caller kicks the vCPU if it may be in guest mode.
 */
static inline void okvm_make_request(struct okvm_vcpu *vcpu, unsigned int req)
{
	/* Order the caller's writes before the request becomes visible. */
	smp_mb__before_atomic();
	set_bit(req, &vcpu->requests);
}

/**
 * okvm_check_request - consume a request
 * @vcpu: the vCPU (called from its own thread)
 * @req: OKVM_REQ_* bit
 *
 * Return: true if @req was pending; it is cleared.
 */
static inline bool okvm_check_request(struct okvm_vcpu *vcpu, unsigned int req)
{
	if (!test_bit(req, &vcpu->requests))
		return false;
	clear_bit(req, &vcpu->requests);
	/* Pairs with okvm_make_request(): see the requester's writes. */
	smp_mb__after_atomic();
	return true;
}

/*
 * Architecture hooks, implemented in arch/<arch>/kvm. Unless stated, they
 * run in process context of the ioctl caller and may sleep.
 */

/* Module load: fail with a pr_err when the CPU cannot run guests. */
int okvm_arch_init(void);
/* Module unload, after the last VM is gone. */
void okvm_arch_exit(void);
/*
 * Take the virtualization extension on every online CPU when the first VM
 * is created; -EBUSY if another hypervisor holds it. Paired with
 * okvm_arch_hardware_put() when the last VM is destroyed, which must leave
 * every CPU as it was found.
 */
int okvm_arch_hardware_get(void);
void okvm_arch_hardware_put(void);

/*
 * KVM_CHECK_EXTENSION for capabilities the generic code does not answer;
 * @kvm is NULL on the system fd. Returns 0 for anything not implemented.
 */
int okvm_arch_check_extension(struct okvm *kvm, long ext);
/* System fd ioctls not handled generically; -ENOTTY when unknown. */
long okvm_arch_dev_ioctl(unsigned int ioctl, unsigned long arg);

int okvm_arch_vm_init(struct okvm *kvm);
/* Called once all vCPUs are destroyed and all memslots are gone. */
void okvm_arch_vm_destroy(struct okvm *kvm);
/* VM fd ioctls not handled generically; -ENOTTY when unknown. */
long okvm_arch_vm_ioctl(struct okvm *kvm, unsigned int ioctl,
			unsigned long arg);
/*
 * Called with kvm->mmu_lock held, after @slot was unlinked from
 * kvm->memslots: unmap every GFN of @slot from the nested page tables. Must
 * not free page-table pages the hardware may be walking; the generic code
 * then raises OKVM_REQ_TLB_FLUSH on all vCPUs, waits for them to leave
 * guest mode, and only then unpins the slot's pages.
 */
void okvm_arch_memslot_remove(struct okvm *kvm, struct okvm_memslot *slot);

int okvm_arch_vcpu_create(struct okvm_vcpu *vcpu);
void okvm_arch_vcpu_destroy(struct okvm_vcpu *vcpu);
/* vCPU fd ioctls other than KVM_RUN, with vcpu->mutex held. */
long okvm_arch_vcpu_ioctl(struct okvm_vcpu *vcpu, unsigned int ioctl,
			  unsigned long arg);
/*
 * KVM_RUN, with vcpu->mutex held and the current task's mm == kvm->mm.
 * Completes a pending PIO/MMIO read from userspace, then honours
 * run->immediate_exit, then runs the guest until an exit userspace must
 * see. Returns 0 with run->exit_reason set, or a negative errno; a pending
 * signal yields -EINTR with run->exit_reason = KVM_EXIT_INTR.
 *
 * Entry protocol, so that kicks and requests are never lost: with
 * interrupts disabled, set vcpu->cpu, then smp_store_mb(vcpu->mode,
 * OKVM_IN_GUEST_MODE), then re-check vcpu->requests, need_resched() and
 * signals (back out to OKVM_OUTSIDE_GUEST_MODE if any), then enter. After
 * the #VMEXIT, WRITE_ONCE(vcpu->mode, OKVM_OUTSIDE_GUEST_MODE) before
 * interrupts are enabled again.
 */
int okvm_arch_vcpu_run(struct okvm_vcpu *vcpu);

#endif /* _ONEKVM_KVM_HOST_H */
