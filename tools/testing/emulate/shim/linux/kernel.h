/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _SHIM_LINUX_KERNEL_H
#define _SHIM_LINUX_KERNEL_H

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define min_t(type, a, b) \
	({ type __a = (a); type __b = (b); __a < __b ? __a : __b; })
#define fallthrough	__attribute__((__fallthrough__))

#endif
