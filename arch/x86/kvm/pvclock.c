// SPDX-License-Identifier: GPL-2.0-only
/*
 * onekvm: kvmclock, the KVM paravirtual clock (CPUID 0x40000001 bits
 * CLOCKSOURCE, CLOCKSOURCE2 and CLOCKSOURCE_STABLE_BIT).
 *
 * Offered because a guest behind a userspace PIT cannot calibrate its TSC
 * when every PIT or PM-timer read is a slow exit. The clock is a fixed
 * linear function of the guest TSC, identical on every vCPU: the guest
 * TSC is 0 at VM creation on all vCPUs, kvmclock time is 0 there, and
 * nanoseconds follow from the host's tsc_khz. So the structure is written
 * once when the guest enables it and never moves backwards. A guest that
 * writes its TSC MSR loses that property (not done by Linux).
 */
#include <linux/kernel.h>
#include <linux/math64.h>
#include <linux/ktime.h>
#include <linux/timekeeping.h>
#include <asm/tsc.h>
#include <asm/pvclock-abi.h>
#include "x86.h"

#define OKVM_MSR_WALL_CLOCK	0x11
#define OKVM_MSR_SYSTEM_TIME	0x12
#define OKVM_MSR_WALL_CLOCK_NEW	0x4b564d00
#define OKVM_MSR_SYSTEM_TIME_NEW 0x4b564d01

/**
 * okvm_kvmclock_vm_init - fix the TSC origin and the clock scale of a VM
 * @kvm: the new VM
 */
void okvm_kvmclock_vm_init(struct okvm *kvm)
{
	u64 hz = (u64)tsc_khz * 1000;
	u64 ratio;
	int shift = 0;

	kvm->arch.tsc_offset = -rdtsc();
	kvm->arch.wall_clock_ns = ktime_get_real_ns();
	if (!hz)
		hz = 1000000000ULL;
	/* ns = ((tsc << shift) * mul) >> 32 (shift < 0: tsc >> -shift) */
	while (hz > 2000000000ULL * 2) {
		hz >>= 1;
		shift--;
	}
	while (hz <= 1000000000ULL / 2) {
		hz <<= 1;
		shift++;
	}
	ratio = div64_u64(1000000000ULL << 32, hz);
	while (ratio > U32_MAX) {
		ratio >>= 1;
		shift++;
	}
	kvm->arch.kvmclock_mul = ratio;
	kvm->arch.kvmclock_shift = shift;
}

static void okvm_kvmclock_write(struct okvm_vcpu *vcpu)
{
	struct pvclock_vcpu_time_info pv = { 0 };
	u64 gpa = vcpu->arch.kvmclock_msr & ~1ULL;

	if (!(vcpu->arch.kvmclock_msr & 1))
		return;
	vcpu->arch.kvmclock_version = (vcpu->arch.kvmclock_version + 2) & ~1U;
	pv.version = vcpu->arch.kvmclock_version;
	pv.tsc_timestamp = 0;
	pv.system_time = 0;
	pv.tsc_to_system_mul = vcpu->kvm->arch.kvmclock_mul;
	pv.tsc_shift = vcpu->kvm->arch.kvmclock_shift;
	pv.flags = PVCLOCK_TSC_STABLE_BIT;
	/* Not RAM: the guest reads zeros and falls back to another clock. */
	okvm_write_guest(vcpu->kvm, gpa, &pv, sizeof(pv));
}

static void okvm_wall_clock_write(struct okvm_vcpu *vcpu, u64 gpa)
{
	struct pvclock_wall_clock wc = { 0 };
	u32 rem;

	wc.version = 2;
	wc.sec = div_u64_rem(vcpu->kvm->arch.wall_clock_ns, NSEC_PER_SEC, &rem);
	wc.nsec = rem;
	okvm_write_guest(vcpu->kvm, gpa, &wc, sizeof(wc));
}

/**
 * okvm_kvmclock_get_msr - read a kvmclock MSR
 * @vcpu: the vCPU
 * @index: MSR number
 * @data: the value
 *
 * Return: 0, or -ENOENT when @index is not a kvmclock MSR.
 */
int okvm_kvmclock_get_msr(struct okvm_vcpu *vcpu, u32 index, u64 *data)
{
	switch (index) {
	case OKVM_MSR_WALL_CLOCK:
	case OKVM_MSR_WALL_CLOCK_NEW:
		*data = vcpu->kvm->arch.wall_clock_msr;
		return 0;
	case OKVM_MSR_SYSTEM_TIME:
	case OKVM_MSR_SYSTEM_TIME_NEW:
		*data = vcpu->arch.kvmclock_msr;
		return 0;
	default:
		return -ENOENT;
	}
}

/**
 * okvm_kvmclock_set_msr - write a kvmclock MSR
 * @vcpu: the vCPU
 * @index: MSR number
 * @data: guest physical address of the structure (bit 0: enable, for
 *	the system time MSRs)
 *
 * Return: 0, or -ENOENT when @index is not a kvmclock MSR.
 */
int okvm_kvmclock_set_msr(struct okvm_vcpu *vcpu, u32 index, u64 data)
{
	switch (index) {
	case OKVM_MSR_WALL_CLOCK:
	case OKVM_MSR_WALL_CLOCK_NEW:
		vcpu->kvm->arch.wall_clock_msr = data;
		okvm_wall_clock_write(vcpu, data);
		return 0;
	case OKVM_MSR_SYSTEM_TIME:
	case OKVM_MSR_SYSTEM_TIME_NEW:
		vcpu->arch.kvmclock_msr = data;
		okvm_kvmclock_write(vcpu);
		return 0;
	default:
		return -ENOENT;
	}
}
