/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _SHIM_LINUX_ERRNO_H
#define _SHIM_LINUX_ERRNO_H

/* the real <errno.h> would include <linux/errno.h>, i.e. this file */
#include <asm/errno.h>

#endif
