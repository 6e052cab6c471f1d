/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * onekvm: kernel API differences between the supported kernels (Debian
 * 6.1 and 6.12). Every version-dependent construct of the module lives
 * here, each entry naming the version that changed the API; the rest of
 * the code is written against the names defined below.
 *
 * Checked and identical on 6.1 and 6.12, hence not wrapped: the KVM FPU
 * helpers (fpu_alloc_guest_fpstate, fpu_swap_kvm_fpstate,
 * fpu_copy_guest_fpstate_to_uabi with an xfeatures argument,
 * fpu_copy_uabi_to_guest_fpstate), switch_fpu_return, rdmsrl/wrmsrl,
 * cpus_read_lock, on_each_cpu.
 */
#ifndef _ONEKVM_COMPAT_H
#define _ONEKVM_COMPAT_H

#include <linux/version.h>

#endif /* _ONEKVM_COMPAT_H */
