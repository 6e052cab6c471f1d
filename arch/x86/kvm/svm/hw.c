// SPDX-License-Identifier: GPL-2.0-only
/*
 * onekvm: SVM enable/disable on the host CPUs, permission maps, ASIDs.
 *
 * EFER.SVME already set when the first VM is created means another
 * hypervisor (kvm_amd) owns SVM on that CPU: onekvm then refuses with
 * -EBUSY. When the last VM goes away, EFER.SVME and MSR_VM_HSAVE_PA are
 * put back exactly as found.
 *
 * Ownership is per CPU (okvm_svm_cpu.enabled) and is only ever changed on
 * that CPU with interrupts off: by the IPIs of hardware_enable/disable
 * (under cpus_read_lock, so no CPU comes or goes meanwhile), lazily before
 * VMRUN on a CPU that came online while VMs exist, and by the CPU hotplug
 * callbacks. A CPU going offline gives SVM back; one coming online starts
 * from what its hardware says (INIT cleared EFER.SVME), never from a stale
 * flag, or a later rollback could clear another hypervisor's SVME there.
 */
#include <linux/module.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/smp.h>
#include <linux/cpumask.h>
#include <linux/cpu.h>
#include <linux/io.h>
#include <asm/msr.h>
#include <asm/msr-index.h>
#include <asm/cpufeature.h>
#include <asm/processor.h>
#include "svm.h"

DEFINE_PER_CPU(struct okvm_svm_cpu, okvm_svm_cpu_data);

u32 okvm_svm_features;
struct page *okvm_iopm_pages;
struct page *okvm_msrpm_pages;
static u32 okvm_nr_asids;
static int okvm_cpuhp_state;

/* MSRs the guest reads and writes without exits: VMLOAD/VMSAVE state. */
static const u32 okvm_passthrough_msrs[] = {
	MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE,
	MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SYSCALL_MASK,
	MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP,
};

static void okvm_msrpm_allow(u8 *msrpm, u32 msr)
{
	u32 off;

	if (msr <= 0x1fff)
		off = 0;
	else if (msr >= 0xc0000000 && msr <= 0xc0001fff)
		off = 0x800;
	else if (msr >= 0xc0010000 && msr <= 0xc0011fff)
		off = 0x1000;
	else
		return;
	/* Two bits per MSR: read intercept, write intercept. */
	off = off * 8 + (msr & 0x1fff) * 2;
	msrpm[off / 8] &= ~(3 << (off % 8));
}

static void okvm_svm_free_cpu_pages(void)
{
	int cpu;

	for_each_possible_cpu(cpu) {
		struct okvm_svm_cpu *sd = per_cpu_ptr(&okvm_svm_cpu_data, cpu);

		if (sd->hsave)
			__free_page(sd->hsave);
		if (sd->host_vmcb)
			__free_page(sd->host_vmcb);
		sd->hsave = NULL;
		sd->host_vmcb = NULL;
	}
}

static void okvm_svm_enable_cpu(void *busy)
{
	struct okvm_svm_cpu *sd = this_cpu_ptr(&okvm_svm_cpu_data);
	u64 efer;

	if (sd->enabled)
		return;
	rdmsrl(MSR_EFER, efer);
	if (efer & EFER_SVME) {
		/* Someone else (kvm_amd) owns SVM on this CPU. */
		atomic_inc(busy);
		return;
	}
	sd->saved_efer = efer;
	rdmsrl(MSR_VM_HSAVE_PA, sd->saved_hsave);
	wrmsrl(MSR_EFER, efer | EFER_SVME);
	wrmsrl(MSR_VM_HSAVE_PA, page_to_phys(sd->hsave));
	sd->max_asid = okvm_nr_asids - 1;
	/* Force a new generation, hence a full flush, on the first entry. */
	sd->next_asid = sd->max_asid + 1;
	sd->asid_generation++;
	sd->last_vcpu = NULL;
	sd->enabled = true;
}

static void okvm_svm_disable_cpu(void *unused)
{
	struct okvm_svm_cpu *sd = this_cpu_ptr(&okvm_svm_cpu_data);
	u64 efer;

	if (!sd->enabled)
		return;
	wrmsrl(MSR_VM_HSAVE_PA, sd->saved_hsave);
	rdmsrl(MSR_EFER, efer);
	wrmsrl(MSR_EFER, (efer & ~EFER_SVME) | (sd->saved_efer & EFER_SVME));
	sd->enabled = false;
	sd->last_vcpu = NULL;
}

static int okvm_svm_cpu_online(unsigned int cpu)
{
	struct okvm_svm_cpu *sd = per_cpu_ptr(&okvm_svm_cpu_data, cpu);
	unsigned long flags;
	u64 efer;

	local_irq_save(flags);
	rdmsrl(MSR_EFER, efer);
	/*
	 * A flag left set when the CPU died with SVM on (a vCPU that ran there
	 * after the offline callback) is stale: the CPU was reset since.
	 */
	if (sd->enabled && !(efer & EFER_SVME)) {
		sd->enabled = false;
		sd->last_vcpu = NULL;
	}
	local_irq_restore(flags);
	return 0;
}

static int okvm_svm_cpu_offline(unsigned int cpu)
{
	unsigned long flags;

	local_irq_save(flags);
	okvm_svm_disable_cpu(NULL);
	local_irq_restore(flags);
	return 0;
}

/**
 * okvm_svm_hardware_setup - probe SVM and allocate global state
 *
 * Return: 0, -ENODEV when the CPU lacks SVM or nested paging (or the
 * firmware disabled SVM), -ENOMEM.
 */
int okvm_svm_hardware_setup(void)
{
	u32 eax, ebx, ecx, edx;
	u64 vm_cr;
	u8 *msrpm;
	int cpu, i, r;

	if (!boot_cpu_has(X86_FEATURE_SVM)) {
		pr_err("onekvm: CPU has no AMD SVM\n");
		return -ENODEV;
	}
	if (!rdmsrl_safe(MSR_VM_CR, &vm_cr) && (vm_cr & BIT_ULL(4))) {
		pr_err("onekvm: SVM disabled by firmware (VM_CR.SVMDIS)\n");
		return -ENODEV;
	}
	cpuid(0x8000000a, &eax, &ebx, &ecx, &edx);
	if (!(edx & BIT(0))) {
		pr_err("onekvm: CPU has no nested paging\n");
		return -ENODEV;
	}
	okvm_svm_features = edx;
	okvm_nr_asids = ebx;
	if (okvm_nr_asids < 2) {
		pr_err("onekvm: CPU offers no guest ASID\n");
		return -ENODEV;
	}

	okvm_iopm_pages = alloc_pages(GFP_KERNEL, OKVM_IOPM_ORDER);
	okvm_msrpm_pages = alloc_pages(GFP_KERNEL, OKVM_MSRPM_ORDER);
	if (!okvm_iopm_pages || !okvm_msrpm_pages)
		goto nomem;
	memset(page_address(okvm_iopm_pages), 0xff,
	       PAGE_SIZE << OKVM_IOPM_ORDER);
	msrpm = page_address(okvm_msrpm_pages);
	memset(msrpm, 0xff, PAGE_SIZE << OKVM_MSRPM_ORDER);
	for (i = 0; i < ARRAY_SIZE(okvm_passthrough_msrs); i++)
		okvm_msrpm_allow(msrpm, okvm_passthrough_msrs[i]);

	for_each_possible_cpu(cpu) {
		struct okvm_svm_cpu *sd = per_cpu_ptr(&okvm_svm_cpu_data, cpu);

		sd->hsave = alloc_pages_node(cpu_to_node(cpu),
					     GFP_KERNEL | __GFP_ZERO, 0);
		sd->host_vmcb = alloc_pages_node(cpu_to_node(cpu),
						 GFP_KERNEL | __GFP_ZERO, 0);
		if (!sd->hsave || !sd->host_vmcb)
			goto nomem;
	}
	r = cpuhp_setup_state_nocalls(CPUHP_AP_ONLINE_DYN, "x86/onekvm:online",
				      okvm_svm_cpu_online, okvm_svm_cpu_offline);
	if (r < 0)
		goto fail;
	okvm_cpuhp_state = r;
	pr_info("onekvm: AMD SVM, %u ASIDs, features %#x%s%s\n",
		okvm_nr_asids, edx,
		(edx & OKVM_SVM_NRIPS) ? ", nrips" : "",
		(edx & OKVM_SVM_FLUSHBYASID) ? ", flushbyasid" : "");
	return 0;

nomem:
	r = -ENOMEM;
fail:
	okvm_svm_hardware_unsetup();
	return r;
}

/**
 * okvm_svm_hardware_unsetup - free what okvm_svm_hardware_setup() allocated
 */
void okvm_svm_hardware_unsetup(void)
{
	if (okvm_cpuhp_state > 0)
		cpuhp_remove_state_nocalls(okvm_cpuhp_state);
	okvm_cpuhp_state = 0;
	/*
	 * No VM exists at unload, so no CPU should be enabled; make sure no
	 * MSR_VM_HSAVE_PA is left pointing at the pages freed below.
	 */
	okvm_svm_hardware_disable();
	okvm_svm_free_cpu_pages();
	if (okvm_iopm_pages)
		__free_pages(okvm_iopm_pages, OKVM_IOPM_ORDER);
	if (okvm_msrpm_pages)
		__free_pages(okvm_msrpm_pages, OKVM_MSRPM_ORDER);
	okvm_iopm_pages = NULL;
	okvm_msrpm_pages = NULL;
}

/**
 * okvm_svm_hardware_enable - set EFER.SVME and the host save area everywhere
 *
 * Return: 0, or -EBUSY when another hypervisor already enabled SVM on
 * some CPU (nothing is left changed then).
 */
int okvm_svm_hardware_enable(void)
{
	atomic_t busy = ATOMIC_INIT(0);

	cpus_read_lock();
	on_each_cpu(okvm_svm_enable_cpu, &busy, 1);
	if (atomic_read(&busy)) {
		on_each_cpu(okvm_svm_disable_cpu, NULL, 1);
		cpus_read_unlock();
		return -EBUSY;
	}
	cpus_read_unlock();
	return 0;
}

/**
 * okvm_svm_hardware_disable - restore EFER.SVME and MSR_VM_HSAVE_PA
 */
void okvm_svm_hardware_disable(void)
{
	cpus_read_lock();
	on_each_cpu(okvm_svm_disable_cpu, NULL, 1);
	cpus_read_unlock();
}

/**
 * okvm_svm_cpu_ready - make sure SVM is on for this CPU
 *
 * A CPU brought online after the first VM was created still has SVM
 * disabled, so it is enabled here on first use. Interrupts must be off.
 *
 * Return: true when VMRUN may be executed on this CPU.
 */
bool okvm_svm_cpu_ready(void)
{
	struct okvm_svm_cpu *sd = this_cpu_ptr(&okvm_svm_cpu_data);
	atomic_t busy = ATOMIC_INIT(0);

	if (likely(sd->enabled))
		return true;
	okvm_svm_enable_cpu(&busy);
	return sd->enabled;
}

/**
 * okvm_svm_assign_asid - give the vCPU an ASID valid on this CPU
 * @svm: the vCPU's SVM state
 * @cpu: the current CPU (preemption disabled)
 *
 * A vCPU gets a fresh ASID whenever it moves to another CPU or the CPU's
 * ASID space wrapped, so stale translations of another vCPU (or of this
 * one from earlier) are never used. A wrap flushes all ASIDs.
 */
void okvm_svm_assign_asid(struct okvm_svm_vcpu *svm, int cpu)
{
	struct okvm_svm_cpu *sd = per_cpu_ptr(&okvm_svm_cpu_data, cpu);

	if (svm->asid_cpu == cpu &&
	    svm->asid_generation == sd->asid_generation)
		return;
	if (sd->next_asid > sd->max_asid) {
		sd->asid_generation++;
		sd->next_asid = 1;
		svm->vmcb->control.tlb_ctl = OKVM_TLB_FLUSH_ALL;
	}
	svm->vmcb->control.asid = sd->next_asid++;
	svm->asid_generation = sd->asid_generation;
	svm->asid_cpu = cpu;
}
