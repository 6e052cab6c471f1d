"""The guest's CPUID: what the hypervisor supports, with per-vCPU topology fixed up.

Bit positions here are the guest-visible CPUID architecture (and KVM's
paravirt CPUID leaf), not part of the ioctl ABI.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost in the rig
if TYPE_CHECKING:
    from typing import Any


LEAF_FEATURES = 0x1
LEAF_TOPOLOGY = 0xB
LEAF_TOPOLOGY_V2 = 0x1F
LEAF_KVM_FEATURES = 0x40000001
LEAF_AMD_TOPOLOGY = 0x8000001E

EDX_APIC = 1 << 9
EDX_HTT = 1 << 28
ECX_X2APIC = 1 << 21
ECX_TSC_DEADLINE = 1 << 24
ECX_HYPERVISOR = 1 << 31

# KVM paravirt features that presume an in-kernel local APIC.
KVM_FEATURE_ASYNC_PF = 4
KVM_FEATURE_PV_EOI = 6
KVM_FEATURE_PV_UNHALT = 7
KVM_FEATURE_PV_TLB_FLUSH = 9
KVM_FEATURE_ASYNC_PF_VMEXIT = 10
KVM_FEATURE_PV_SEND_IPI = 11
KVM_FEATURE_POLL_CONTROL = 12
KVM_FEATURE_PV_SCHED_YIELD = 13
KVM_FEATURE_ASYNC_PF_INT = 14
KVM_FEATURE_MSI_EXT_DEST_ID = 15
APIC_PV_FEATURES = sum(
    1 << b
    for b in (
        KVM_FEATURE_ASYNC_PF,
        KVM_FEATURE_PV_EOI,
        KVM_FEATURE_PV_UNHALT,
        KVM_FEATURE_PV_TLB_FLUSH,
        KVM_FEATURE_ASYNC_PF_VMEXIT,
        KVM_FEATURE_PV_SEND_IPI,
        KVM_FEATURE_POLL_CONTROL,
        KVM_FEATURE_PV_SCHED_YIELD,
        KVM_FEATURE_ASYNC_PF_INT,
        KVM_FEATURE_MSI_EXT_DEST_ID,
    )
)


def fixup_entry(e: Any, index: int, cpus: int, apic: bool) -> None:
    """Adjust one struct kvm_cpuid_entry2 for vCPU `index` of `cpus`."""
    fn = e.function
    if fn == LEAF_FEATURES:
        ebx = e.ebx & 0x0000FFFF
        ebx |= (index & 0xFF) << 24
        if cpus > 1:
            ebx |= (min(cpus, 255) & 0xFF) << 16
            e.edx |= EDX_HTT
        e.ebx = ebx
        e.ecx |= ECX_HYPERVISOR
        if not apic:
            e.edx &= ~EDX_APIC & 0xFFFFFFFF
            e.ecx &= ~(ECX_X2APIC | ECX_TSC_DEADLINE) & 0xFFFFFFFF
    elif fn in (LEAF_TOPOLOGY, LEAF_TOPOLOGY_V2):
        e.edx = index
    elif fn == LEAF_AMD_TOPOLOGY:
        e.eax = index
    elif fn == LEAF_KVM_FEATURES and not apic:
        e.eax &= ~APIC_PV_FEATURES & 0xFFFFFFFF


def apply(entries: Any, index: int, cpus: int, apic: bool) -> None:
    for i in range(entries.nent):
        fixup_entry(entries.entries[i], index, cpus, apic)
