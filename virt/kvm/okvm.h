/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * onekvm: declarations private to virt/kvm.
 */
#ifndef _VIRT_KVM_OKVM_H
#define _VIRT_KVM_OKVM_H

#include <onekvm/kvm_host.h>

/* vCPU mmap: struct kvm_run, then the PIO data page. */
#define OKVM_VCPU_MMAP_PAGES	(KVM_PIO_PAGE_OFFSET + 1)

long okvm_check_extension_generic(struct okvm *kvm, long ext);
int okvm_create_vm_fd(void);
void okvm_put_vm(struct okvm *kvm);

int okvm_set_memory_region(struct okvm *kvm,
			   const struct kvm_userspace_memory_region *mem);
void okvm_free_memslots(struct okvm *kvm);

int okvm_create_vcpu_fd(struct okvm *kvm, unsigned long id);
void okvm_destroy_vcpu(struct okvm_vcpu *vcpu);
int okvm_vcpu_cache_init(void);
void okvm_vcpu_cache_exit(void);

#endif /* _VIRT_KVM_OKVM_H */
