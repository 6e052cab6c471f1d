// SPDX-License-Identifier: GPL-2.0-only
/*
 * onekvm: module entry and the system file descriptor (/dev/onekvm).
 *
 * The system fd answers the capability questions and creates VMs; VM and
 * vCPU file descriptors live in vm.c and vcpu.c.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/uaccess.h>
#include <onekvm/kvm_host.h>
#include <onekvm/kvm_asserts.h>

#include "okvm.h"

/**
 * okvm_check_extension_generic - capabilities answered by virt/kvm
 * @kvm: the VM, or NULL for the system fd
 * @ext: KVM_CAP_* number
 *
 * Return: the capability's value; anything not known here is asked of the
 * architecture, which returns 0 for what is not implemented.
 */
long okvm_check_extension_generic(struct okvm *kvm, long ext)
{
	switch (ext) {
	case KVM_CAP_USER_MEMORY:
	case KVM_CAP_DESTROY_MEMORY_REGION_WORKS:
	case KVM_CAP_JOIN_MEMORY_REGIONS_WORKS:
	case KVM_CAP_IMMEDIATE_EXIT:
	case KVM_CAP_ONEKVM_ABI_FINGERPRINT:
		return 1;
	case KVM_CAP_NR_VCPUS:
	case KVM_CAP_MAX_VCPUS:
	case KVM_CAP_MAX_VCPU_ID:
		return OKVM_MAX_VCPUS;
	case KVM_CAP_NR_MEMSLOTS:
		return OKVM_USER_MEM_SLOTS;
	default:
		return okvm_arch_check_extension(kvm, ext);
	}
}

static long okvm_dev_ioctl(struct file *filp, unsigned int ioctl,
			   unsigned long arg)
{
	u64 fingerprint = ONEKVM_ABI_FINGERPRINT;

	switch (ioctl) {
	case KVM_GET_API_VERSION:
		return arg ? -EINVAL : KVM_API_VERSION;
	case KVM_CREATE_VM:
		/* Only the default machine type exists. */
		return arg ? -EINVAL : okvm_create_vm_fd();
	case KVM_CHECK_EXTENSION:
		return okvm_check_extension_generic(NULL, (long)arg);
	case KVM_GET_VCPU_MMAP_SIZE:
		return arg ? -EINVAL : OKVM_VCPU_MMAP_PAGES * PAGE_SIZE;
	case ONEKVM_GET_ABI_FINGERPRINT:
		if (copy_to_user((void __user *)arg, &fingerprint,
				 sizeof(fingerprint)))
			return -EFAULT;
		return 0;
	default:
		return okvm_arch_dev_ioctl(ioctl, arg);
	}
}

static const struct file_operations okvm_dev_fops = {
	.owner		= THIS_MODULE,
	.unlocked_ioctl	= okvm_dev_ioctl,
	.compat_ioctl	= compat_ptr_ioctl,
	.llseek		= noop_llseek,
};

static struct miscdevice okvm_dev = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "onekvm",
	.fops	= &okvm_dev_fops,
};

static int __init okvm_init(void)
{
	int r;

	r = okvm_arch_init();
	if (r)
		return r;

	r = okvm_vcpu_cache_init();
	if (r)
		goto out_arch;

	r = misc_register(&okvm_dev);
	if (r) {
		pr_err("cannot register /dev/onekvm: %d\n", r);
		goto out_cache;
	}
	pr_info("ready, ABI fingerprint %016llx\n",
		(unsigned long long)ONEKVM_ABI_FINGERPRINT);
	return 0;

out_cache:
	okvm_vcpu_cache_exit();
out_arch:
	okvm_arch_exit();
	return r;
}

static void __exit okvm_exit(void)
{
	/* Every fd holds a module reference: no VM can be alive here. */
	misc_deregister(&okvm_dev);
	okvm_vcpu_cache_exit();
	okvm_arch_exit();
}

module_init(okvm_init);
module_exit(okvm_exit);

MODULE_DESCRIPTION("onekvm: KVM-compatible hypervisor with AMD SVM");
MODULE_LICENSE("GPL");
