// SPDX-License-Identifier: GPL-2.0-only
/*
 * onekvm: vCPU objects, the vCPU file descriptor and its mmap, KVM_RUN, and
 * the kick/request machinery that makes a running vCPU leave guest mode.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/anon_inodes.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/sched/signal.h>
#include <linux/signal.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/uaccess.h>
#include <onekvm/kvm_host.h>

#include "okvm.h"

static struct kmem_cache *okvm_vcpu_cache;

static void okvm_kick_ipi(void *info)
{
	/* The interrupt itself forces the #VMEXIT; nothing else to do. */
}

/**
 * okvm_vcpu_kick - make a vCPU leave guest mode soon
 * @vcpu: the vCPU
 *
 * Does not wait. The vCPU thread checks its requests before every entry.
 */
void okvm_vcpu_kick(struct okvm_vcpu *vcpu)
{
	int cpu = READ_ONCE(vcpu->cpu);

	if (cmpxchg(&vcpu->mode, OKVM_IN_GUEST_MODE,
		    OKVM_EXITING_GUEST_MODE) == OKVM_IN_GUEST_MODE && cpu >= 0)
		smp_call_function_single(cpu, okvm_kick_ipi, NULL, 0);
}

/**
 * okvm_make_all_vcpus_request - raise a request on every vCPU and wait
 * @kvm: the VM
 * @req: OKVM_REQ_* bit
 *
 * Returns once no vCPU is still in guest mode on state older than the
 * request: a vCPU in guest mode is interrupted and the call waits for the
 * interrupt to be taken, which happens only after its #VMEXIT.
 * Context: process context, interrupts enabled, no spinlock held.
 */
void okvm_make_all_vcpus_request(struct okvm *kvm, unsigned int req)
{
	struct okvm_vcpu *vcpu;
	int i, n, cpu;

	/* Pairs with the release in okvm_create_vcpu_fd(). */
	n = smp_load_acquire(&kvm->nr_vcpus);

	for (i = 0; i < n; i++) {
		vcpu = kvm->vcpus[i];
		okvm_make_request(vcpu, req);
		/* Pairs with the barrier after the vCPU sets IN_GUEST_MODE. */
		smp_mb();
		if (READ_ONCE(vcpu->mode) == OKVM_OUTSIDE_GUEST_MODE)
			continue;
		cpu = READ_ONCE(vcpu->cpu);
		if (cpu >= 0)
			smp_call_function_single(cpu, okvm_kick_ipi, NULL, 1);
	}
}

static vm_fault_t okvm_vcpu_fault(struct vm_fault *vmf)
{
	struct okvm_vcpu *vcpu = vmf->vma->vm_file->private_data;
	struct page *page;

	if (vmf->pgoff == 0)
		page = virt_to_page(vcpu->run);
	else if (vmf->pgoff == KVM_PIO_PAGE_OFFSET)
		page = virt_to_page(vcpu->pio_data);
	else
		return VM_FAULT_SIGBUS;
	get_page(page);
	vmf->page = page;
	return 0;
}

static const struct vm_operations_struct okvm_vcpu_vm_ops = {
	.fault = okvm_vcpu_fault,
};

static int okvm_vcpu_mmap(struct file *file, struct vm_area_struct *vma)
{
	vma->vm_ops = &okvm_vcpu_vm_ops;
	return 0;
}

static int okvm_vcpu_set_sigmask(struct okvm_vcpu *vcpu,
				 struct kvm_signal_mask __user *argp)
{
	struct kvm_signal_mask mask;
	sigset_t set;

	if (!argp) {
		vcpu->sigset_active = false;
		return 0;
	}
	if (copy_from_user(&mask, argp, sizeof(mask)))
		return -EFAULT;
	/* The kernel's sigset, as upstream: 8 bytes on x86-64. */
	if (mask.len != sizeof(set))
		return -EINVAL;
	if (copy_from_user(&set, argp->sigset, sizeof(set)))
		return -EFAULT;
	sigdelsetmask(&set, sigmask(SIGKILL) | sigmask(SIGSTOP));
	vcpu->sigset = set;
	vcpu->sigset_active = true;
	return 0;
}

static int okvm_vcpu_run(struct okvm_vcpu *vcpu)
{
	int r;

	/* Deliverable signals are the ones KVM_SET_SIGNAL_MASK allowed. */
	if (vcpu->sigset_active)
		sigprocmask(SIG_SETMASK, &vcpu->sigset, &current->real_blocked);
	r = okvm_arch_vcpu_run(vcpu);
	if (vcpu->sigset_active) {
		sigprocmask(SIG_SETMASK, &current->real_blocked, NULL);
		sigemptyset(&current->real_blocked);
	}
	return r;
}

static long okvm_vcpu_ioctl(struct file *filp, unsigned int ioctl,
			    unsigned long arg)
{
	struct okvm_vcpu *vcpu = filp->private_data;
	long r;

	if (vcpu->kvm->mm != current->mm)
		return -EIO;
	if (mutex_lock_killable(&vcpu->mutex))
		return -EINTR;

	switch (ioctl) {
	case KVM_RUN:
		r = arg ? -EINVAL : okvm_vcpu_run(vcpu);
		break;
	case KVM_SET_SIGNAL_MASK:
		r = okvm_vcpu_set_sigmask(vcpu, (void __user *)arg);
		break;
	default:
		r = okvm_arch_vcpu_ioctl(vcpu, ioctl, arg);
		break;
	}
	mutex_unlock(&vcpu->mutex);
	return r;
}

static int okvm_vcpu_release(struct inode *inode, struct file *filp)
{
	struct okvm_vcpu *vcpu = filp->private_data;

	/* vCPUs die with their VM; the fd only held a VM reference. */
	okvm_put_vm(vcpu->kvm);
	return 0;
}

static const struct file_operations okvm_vcpu_fops = {
	.owner		= THIS_MODULE,
	.release	= okvm_vcpu_release,
	.unlocked_ioctl	= okvm_vcpu_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.mmap		= okvm_vcpu_mmap,
	.llseek		= noop_llseek,
};

static struct okvm_vcpu *okvm_alloc_vcpu(struct okvm *kvm, u32 id)
{
	struct okvm_vcpu *vcpu;
	int r = -ENOMEM;

	vcpu = kmem_cache_zalloc(okvm_vcpu_cache, GFP_KERNEL_ACCOUNT);
	if (!vcpu)
		return ERR_PTR(-ENOMEM);
	vcpu->kvm = kvm;
	vcpu->vcpu_id = id;
	vcpu->cpu = -1;
	vcpu->mode = OKVM_OUTSIDE_GUEST_MODE;
	mutex_init(&vcpu->mutex);

	vcpu->run = (void *)get_zeroed_page(GFP_KERNEL_ACCOUNT);
	if (!vcpu->run)
		goto out_free;
	vcpu->pio_data = (void *)get_zeroed_page(GFP_KERNEL_ACCOUNT);
	if (!vcpu->pio_data)
		goto out_free_run;

	r = okvm_arch_vcpu_create(vcpu);
	if (r)
		goto out_free_pio;
	return vcpu;

out_free_pio:
	free_page((unsigned long)vcpu->pio_data);
out_free_run:
	free_page((unsigned long)vcpu->run);
out_free:
	kmem_cache_free(okvm_vcpu_cache, vcpu);
	return ERR_PTR(r);
}

/**
 * okvm_destroy_vcpu - free a vCPU of a dying VM
 * @vcpu: the vCPU; no fd refers to it any more
 */
void okvm_destroy_vcpu(struct okvm_vcpu *vcpu)
{
	okvm_arch_vcpu_destroy(vcpu);
	free_page((unsigned long)vcpu->pio_data);
	free_page((unsigned long)vcpu->run);
	kmem_cache_free(okvm_vcpu_cache, vcpu);
}

static bool okvm_vcpu_id_taken(struct okvm *kvm, u32 id)
{
	int i;

	for (i = 0; i < kvm->nr_vcpus; i++)
		if (kvm->vcpus[i]->vcpu_id == id)
			return true;
	return false;
}

/**
 * okvm_create_vcpu_fd - KVM_CREATE_VCPU
 * @kvm: the VM
 * @id: vCPU id (APIC id), below KVM_CAP_MAX_VCPU_ID
 *
 * Return: a new file descriptor, -EINVAL for a bad id, -EEXIST for a
 * duplicate id, -ENOMEM, or the arch's error.
 */
int okvm_create_vcpu_fd(struct okvm *kvm, unsigned long id)
{
	struct okvm_vcpu *vcpu;
	char name[24];
	int fd;

	if (id >= OKVM_MAX_VCPUS)
		return -EINVAL;

	mutex_lock(&kvm->lock);
	if (okvm_vcpu_id_taken(kvm, id)) {
		fd = -EEXIST;
		goto out_unlock;
	}
	if (kvm->nr_vcpus >= OKVM_MAX_VCPUS) {
		fd = -EINVAL;
		goto out_unlock;
	}
	vcpu = okvm_alloc_vcpu(kvm, id);
	if (IS_ERR(vcpu)) {
		fd = PTR_ERR(vcpu);
		goto out_unlock;
	}

	refcount_inc(&kvm->users);
	snprintf(name, sizeof(name), "onekvm-vcpu:%lu", id);
	fd = anon_inode_getfd(name, &okvm_vcpu_fops, vcpu, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		goto out_destroy;

	kvm->vcpus[kvm->nr_vcpus] = vcpu;
	/* Publish the vCPU before the count that makes it visible. */
	smp_store_release(&kvm->nr_vcpus, kvm->nr_vcpus + 1);
	mutex_unlock(&kvm->lock);
	return fd;

out_destroy:
	/* Not the last reference: the caller's VM fd is still open. */
	refcount_dec(&kvm->users);
	okvm_destroy_vcpu(vcpu);
out_unlock:
	mutex_unlock(&kvm->lock);
	return fd;
}

/**
 * okvm_vcpu_cache_init - create the slab cache for vCPUs
 *
 * Return: 0 or -ENOMEM.
 */
int okvm_vcpu_cache_init(void)
{
	okvm_vcpu_cache = kmem_cache_create("okvm_vcpu",
					    sizeof(struct okvm_vcpu),
					    __alignof__(struct okvm_vcpu),
					    SLAB_ACCOUNT, NULL);
	return okvm_vcpu_cache ? 0 : -ENOMEM;
}

/**
 * okvm_vcpu_cache_exit - destroy the slab cache for vCPUs
 */
void okvm_vcpu_cache_exit(void)
{
	kmem_cache_destroy(okvm_vcpu_cache);
}
