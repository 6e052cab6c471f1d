// SPDX-License-Identifier: GPL-2.0-only
/*
 * onekvm: VM objects and the VM file descriptor.
 *
 * A VM lives while its fd or any of its vCPU fds is open. The first VM takes
 * the CPU's virtualization extension and the last one gives it back, so
 * onekvm coexists with another hypervisor module that is loaded but idle.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <onekvm/kvm_host.h>

#include "okvm.h"

static DEFINE_MUTEX(okvm_hw_lock);
static unsigned int okvm_nr_vms;

static int okvm_hardware_get(void)
{
	int r = 0;

	mutex_lock(&okvm_hw_lock);
	if (!okvm_nr_vms) {
		r = okvm_arch_hardware_get();
		if (r == -EBUSY)
			pr_warn_ratelimited("virtualization is in use by another hypervisor, cannot create a VM\n");
	}
	if (!r)
		okvm_nr_vms++;
	mutex_unlock(&okvm_hw_lock);
	return r;
}

static void okvm_hardware_put(void)
{
	mutex_lock(&okvm_hw_lock);
	if (!--okvm_nr_vms)
		okvm_arch_hardware_put();
	mutex_unlock(&okvm_hw_lock);
}

static void okvm_destroy_vm(struct okvm *kvm)
{
	int i;

	for (i = 0; i < kvm->nr_vcpus; i++)
		okvm_destroy_vcpu(kvm->vcpus[i]);
	okvm_free_memslots(kvm);
	okvm_arch_vm_destroy(kvm);
	mmdrop(kvm->mm);
	kfree(kvm);
	okvm_hardware_put();
}

/**
 * okvm_put_vm - drop a reference to a VM, destroying it on the last one
 * @kvm: the VM
 */
void okvm_put_vm(struct okvm *kvm)
{
	if (refcount_dec_and_test(&kvm->users))
		okvm_destroy_vm(kvm);
}

static long okvm_vm_ioctl(struct file *filp, unsigned int ioctl,
			  unsigned long arg)
{
	struct okvm *kvm = filp->private_data;
	void __user *argp = (void __user *)arg;
	struct kvm_userspace_memory_region mem;

	/* Guest memory and pinning belong to the creator's address space. */
	if (kvm->mm != current->mm)
		return -EIO;

	switch (ioctl) {
	case KVM_CREATE_VCPU:
		return okvm_create_vcpu_fd(kvm, arg);
	case KVM_SET_USER_MEMORY_REGION:
		if (copy_from_user(&mem, argp, sizeof(mem)))
			return -EFAULT;
		return okvm_set_memory_region(kvm, &mem);
	case KVM_CHECK_EXTENSION:
		return okvm_check_extension_generic(kvm, (long)arg);
	default:
		return okvm_arch_vm_ioctl(kvm, ioctl, arg);
	}
}

static int okvm_vm_release(struct inode *inode, struct file *filp)
{
	okvm_put_vm(filp->private_data);
	return 0;
}

static const struct file_operations okvm_vm_fops = {
	.owner		= THIS_MODULE,
	.release	= okvm_vm_release,
	.unlocked_ioctl	= okvm_vm_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= noop_llseek,
};

static struct okvm *okvm_create_vm(void)
{
	struct okvm *kvm;
	int r;

	kvm = kzalloc(sizeof(*kvm), GFP_KERNEL_ACCOUNT);
	if (!kvm)
		return ERR_PTR(-ENOMEM);

	mutex_init(&kvm->lock);
	spin_lock_init(&kvm->mmu_lock);
	refcount_set(&kvm->users, 1);
	kvm->mm = current->mm;
	mmgrab(kvm->mm);

	r = okvm_hardware_get();
	if (r)
		goto out_free;

	r = okvm_arch_vm_init(kvm);
	if (r)
		goto out_hw;
	return kvm;

out_hw:
	okvm_hardware_put();
out_free:
	mmdrop(kvm->mm);
	kfree(kvm);
	return ERR_PTR(r);
}

/**
 * okvm_create_vm_fd - KVM_CREATE_VM: create a VM and return its fd
 *
 * Return: a new file descriptor or a negative errno.
 */
int okvm_create_vm_fd(void)
{
	struct okvm *kvm;
	struct file *file;
	int fd;

	kvm = okvm_create_vm();
	if (IS_ERR(kvm))
		return PTR_ERR(kvm);

	fd = get_unused_fd_flags(O_CLOEXEC);
	if (fd < 0)
		goto out_put;

	file = anon_inode_getfile("onekvm-vm", &okvm_vm_fops, kvm, O_RDWR);
	if (IS_ERR(file)) {
		put_unused_fd(fd);
		fd = PTR_ERR(file);
		goto out_put;
	}
	fd_install(fd, file);
	return fd;

out_put:
	okvm_put_vm(kvm);
	return fd;
}
