// SPDX-License-Identifier: GPL-2.0
/*
 * vmtest_warn - a test-only module that WARNs when it is loaded.
 *
 * The vmtest rig checks the guest kernel log after every run; loading this
 * module must make the run fail with the WARN splat shown.  Never load it
 * anywhere else.
 */
#include <linux/bug.h>
#include <linux/init.h>
#include <linux/module.h>

static bool warn = true;
module_param(warn, bool, 0444);
MODULE_PARM_DESC(warn, "WARN on load (default: true)");

static int __init vmtest_warn_init(void)
{
	WARN(warn, "vmtest_warn: deliberate warning for the rig's log check\n");
	return 0;
}

static void __exit vmtest_warn_exit(void)
{
}

module_init(vmtest_warn_init);
module_exit(vmtest_warn_exit);

MODULE_DESCRIPTION("Test-only: WARN on load to exercise the vmtest log check");
MODULE_LICENSE("GPL");
