from onekvm import cpuid


class Entry:
    def __init__(self, function, index=0, eax=0, ebx=0, ecx=0, edx=0):
        self.function, self.index, self.eax, self.ebx, self.ecx, self.edx = function, index, eax, ebx, ecx, edx


def test_leaf1_apic_id_and_hypervisor_bit():
    e = Entry(1, ebx=0xAB0000FF, edx=cpuid.EDX_APIC)
    cpuid.fixup_entry(e, index=3, cpus=4, apic=True)
    assert e.ebx >> 24 == 3 and (e.ebx >> 16) & 0xFF == 4 and e.ebx & 0xFFFF == 0x00FF
    assert e.ecx & cpuid.ECX_HYPERVISOR and e.edx & cpuid.EDX_HTT and e.edx & cpuid.EDX_APIC


def test_no_apic_for_the_userspace_pic():
    e = Entry(1, ecx=cpuid.ECX_X2APIC | cpuid.ECX_TSC_DEADLINE, edx=cpuid.EDX_APIC)
    cpuid.fixup_entry(e, index=0, cpus=1, apic=False)
    assert not e.edx & cpuid.EDX_APIC and not e.ecx & (cpuid.ECX_X2APIC | cpuid.ECX_TSC_DEADLINE)
    pv = Entry(cpuid.LEAF_KVM_FEATURES, eax=0xFFFFFFFF)
    cpuid.fixup_entry(pv, index=0, cpus=1, apic=False)
    assert not pv.eax & (1 << cpuid.KVM_FEATURE_PV_EOI) and pv.eax & 1  # clocksource bit stays


def test_x2apic_topology_ids():
    e = Entry(cpuid.LEAF_TOPOLOGY, edx=0)
    cpuid.fixup_entry(e, index=1, cpus=2, apic=True)
    assert e.edx == 1
