# SPDX-License-Identifier: GPL-2.0-only
"""The system fd (/dev/kvm, /dev/onekvm): versions, capabilities, CPUID and
MSR lists, and the errors upstream KVM returns for bad arguments."""

from __future__ import annotations

import errno
import mmap

from kvmtest import Device, raises_errno
from onekvm.abi import FINGERPRINT, ffi, lib, new_flex

PAGE = mmap.PAGESIZE

# Capabilities every device must report (their features are tested here).
REQUIRED_CAPS = (
    "USER_MEMORY", "DESTROY_MEMORY_REGION_WORKS", "JOIN_MEMORY_REGIONS_WORKS", "IMMEDIATE_EXIT",
    "SET_TSS_ADDR", "SET_IDENTITY_MAP_ADDR", "EXT_CPUID", "MP_STATE", "USER_NMI", "VCPU_EVENTS",
    "XSAVE", "READONLY_MEM", "INTERNAL_ERROR_DATA",
)
# What onekvm may report at all: "only what works".  A new capability goes
# here together with the tests of its feature.
ONEKVM_ALLOWED_CAPS = REQUIRED_CAPS + (
    "NR_VCPUS", "MAX_VCPUS", "MAX_VCPU_ID", "NR_MEMSLOTS", "ONEKVM_ABI_FINGERPRINT",
    "INTR_SHADOW", "DEBUGREGS", "XCRS",
)
# Upstream x86 reports these unconditionally; onekvm has none of them.
STOCK_ONLY_CAPS = ("IRQCHIP", "PIT2", "IOEVENTFD", "IRQFD", "COALESCED_MMIO", "SYNC_REGS",
                   "SET_GUEST_DEBUG", "X86_USER_SPACE_MSR", "ENABLE_CAP")

MSR_SYSENTER_CS, MSR_SYSENTER_ESP, MSR_SYSENTER_EIP = 0x174, 0x175, 0x176
MSR_TSC, MSR_PAT, MSR_MISC_ENABLE = 0x10, 0x277, 0x1A0
MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SFMASK, MSR_KERNEL_GS_BASE = (
    0xC0000081, 0xC0000082, 0xC0000083, 0xC0000084, 0xC0000102)
LISTED_MSRS = (MSR_SYSENTER_CS, MSR_SYSENTER_ESP, MSR_SYSENTER_EIP, MSR_STAR, MSR_LSTAR, MSR_CSTAR,
               MSR_SFMASK, MSR_KERNEL_GS_BASE, MSR_TSC, MSR_PAT)

BAD_ADDR = 8          # in the never-mapped first page: copy_*_user faults


def cap(name: str) -> int:
    return getattr(lib, f"KVM_CAP_{name}")


def _io(nr: int) -> int:
    """_IO(KVMIO, nr): a deliberately unknown request (nothing defines nr)."""
    return (lib.KVMIO << 8) | nr


def test_api_version(dev: Device) -> None:
    assert lib.KVM_API_VERSION == 12
    assert dev.ioctl(lib.KVM_GET_API_VERSION) == 12


def test_api_version_with_arg(dev: Device) -> None:
    with raises_errno(errno.EINVAL):
        dev.ioctl(lib.KVM_GET_API_VERSION, 1)


def test_vcpu_mmap_size(dev: Device) -> None:
    size = dev.ioctl(lib.KVM_GET_VCPU_MMAP_SIZE)
    assert size % PAGE == 0
    assert size >= (lib.KVM_PIO_PAGE_OFFSET + 1) * PAGE, "kvm_run page + PIO data page"
    assert size >= ffi.sizeof("struct kvm_run")
    with raises_errno(errno.EINVAL):
        dev.ioctl(lib.KVM_GET_VCPU_MMAP_SIZE, 1)


def test_unknown_ioctl(dev: Device) -> None:
    # x86 kvm_arch_dev_ioctl(): anything unknown is -EINVAL.
    for nr in (0x30, 0x7F):
        with raises_errno(errno.EINVAL, what=f"_IO(KVMIO, {nr:#x})"):
            dev.ioctl(_io(nr))


def test_create_vm_bad_type(dev: Device) -> None:
    for vm_type in (0x80, 0xFFFF, 1 << 31):
        with raises_errno(errno.EINVAL, what=f"type {vm_type:#x}"):
            dev.ioctl(lib.KVM_CREATE_VM, vm_type)


def test_create_several_vms(dev: Device) -> None:
    vms = [dev.create_vm() for _ in range(4)]
    assert len({v.fd for v in vms}) == 4
    for v in vms:
        assert v.check_extension(lib.KVM_CAP_USER_MEMORY) == 1
        v.close()


# --- KVM_CHECK_EXTENSION ----------------------------------------------------

def test_caps_required(dev: Device) -> None:
    missing = [c for c in REQUIRED_CAPS if dev.check_extension(cap(c)) <= 0]
    assert not missing, f"{dev.kind} does not report KVM_CAP_{', KVM_CAP_'.join(missing)}"
    assert dev.check_extension(lib.KVM_CAP_IMMEDIATE_EXIT) == 1


def test_caps_counts(dev: Device) -> None:
    nr = dev.check_extension(lib.KVM_CAP_NR_VCPUS)
    mx = dev.check_extension(lib.KVM_CAP_MAX_VCPUS)
    mx_id = dev.check_extension(lib.KVM_CAP_MAX_VCPU_ID)
    slots = dev.check_extension(lib.KVM_CAP_NR_MEMSLOTS)
    assert 1 <= nr <= mx, (nr, mx)
    assert mx_id >= mx, (mx_id, mx)
    assert slots >= 8, slots
    if dev.is_onekvm:
        assert mx >= 4, "enough vCPUs for an SMP guest"


def test_caps_unknown_is_zero(dev: Device) -> None:
    for ext in (0x7FFFFFFF, 0xFFFF, (1 << 64) - 1, 0x10001):
        assert dev.check_extension(ext) == 0, f"KVM_CHECK_EXTENSION({ext:#x})"


def test_caps_only_what_works(dev: Device) -> None:
    """onekvm reports only implemented capabilities; stock reports its own."""
    reported = sorted(n[len("KVM_CAP_"):] for n in dir(lib)
                      if n.startswith("KVM_CAP_") and dev.check_extension(getattr(lib, n)) > 0)
    if dev.is_onekvm:
        extra = [c for c in reported if c not in ONEKVM_ALLOWED_CAPS]
        assert not extra, f"onekvm reports capabilities nothing tests: {extra}"
        for c in STOCK_ONLY_CAPS:
            assert c not in reported
    else:
        for c in STOCK_ONLY_CAPS:
            assert c in reported, f"stock KVM always reports KVM_CAP_{c}"


def test_caps_fingerprint(dev: Device) -> None:
    has = dev.check_extension(lib.KVM_CAP_ONEKVM_ABI_FINGERPRINT)
    if dev.is_onekvm:
        assert has == 1
        out = ffi.new("__u64 *")
        dev.ioctl(lib.ONEKVM_GET_ABI_FINGERPRINT, out)
        assert out[0] == FINGERPRINT, "module and bindings were built from different ABI sources"
    else:
        assert has == 0


def test_caps_vm_fd_agrees(dev: Device) -> None:
    vm = dev.create_vm()
    try:
        for c in REQUIRED_CAPS + ("NR_MEMSLOTS", "IRQCHIP"):
            assert vm.check_extension(cap(c)) == dev.check_extension(cap(c)), c
    finally:
        vm.close()


def test_irqchip_per_device(dev: Device) -> None:
    """onekvm has no in-kernel irqchip: KVM_CREATE_IRQCHIP must fail there."""
    vm = dev.create_vm()
    try:
        if dev.is_onekvm:
            assert dev.check_extension(lib.KVM_CAP_IRQCHIP) == 0
            with raises_errno(errno.ENOTTY, errno.EINVAL):
                vm.ioctl(lib.KVM_CREATE_IRQCHIP)
        else:
            assert dev.check_extension(lib.KVM_CAP_IRQCHIP) == 1
            vm.ioctl(lib.KVM_CREATE_IRQCHIP)
    finally:
        vm.close()


# --- KVM_GET_SUPPORTED_CPUID --------------------------------------------------

def test_supported_cpuid_too_small(dev: Device) -> None:
    for nent in (0, 1):
        cpuid = new_flex("struct kvm_cpuid2", max(nent, 1))
        cpuid.nent = nent
        with raises_errno(errno.E2BIG, what=f"nent {nent}"):
            dev.ioctl(lib.KVM_GET_SUPPORTED_CPUID, cpuid)


def test_supported_cpuid_bad_pointer(dev: Device) -> None:
    with raises_errno(errno.EFAULT):
        dev.ioctl(lib.KVM_GET_SUPPORTED_CPUID, BAD_ADDR)


def test_supported_cpuid_sane(dev: Device) -> None:
    ents = dev.supported_cpuid(256)
    assert 2 <= len(ents) <= 256
    by_fn: dict[int, list] = {}
    keys = set()
    for e in ents:
        key = (e["function"], e["index"] if e["flags"] & lib.KVM_CPUID_FLAG_SIGNIFCANT_INDEX else 0)
        assert key not in keys, f"duplicate CPUID entry {key[0]:#x}.{key[1]}"
        keys.add(key)
        by_fn.setdefault(e["function"], []).append(e)
    assert 0 in by_fn and 1 in by_fn and 0x80000000 in by_fn
    max_basic, max_ext = by_fn[0][0]["eax"], by_fn[0x80000000][0]["eax"]
    assert max_basic >= 1 and max_ext >= 0x80000001
    for fn in by_fn:
        if fn < 0x40000000:
            assert fn <= max_basic, f"leaf {fn:#x} above the max basic leaf {max_basic:#x}"
        elif 0x80000000 <= fn < 0x90000000:
            assert fn <= max_ext, f"leaf {fn:#x} above the max extended leaf {max_ext:#x}"
    for fn in (7, 0xD):
        for e in by_fn.get(fn, []):
            assert e["flags"] & lib.KVM_CPUID_FLAG_SIGNIFCANT_INDEX, f"leaf {fn:#x} needs SIGNIFCANT_INDEX"
    if dev.is_onekvm:
        svm = any(e["ecx"] & (1 << 2) for e in by_fn.get(0x80000001, []))
        assert not svm, "onekvm runs no nested guests: CPUID must not offer SVM"


def test_supported_cpuid_large_buffer(dev: Device) -> None:
    """A buffer larger than needed is fine (upstream clamps nent)."""
    ents = dev.supported_cpuid(1000)
    assert 2 <= len(ents) <= 1000


# --- KVM_GET_MSR_INDEX_LIST ---------------------------------------------------

def test_msr_index_list_e2big_reports_count(dev: Device) -> None:
    lst = new_flex("struct kvm_msr_list", 1)
    lst.nmsrs = 0
    with raises_errno(errno.E2BIG):
        dev.ioctl(lib.KVM_GET_MSR_INDEX_LIST, lst)
    assert lst.nmsrs > 0, "E2BIG must tell how many entries are needed"


def test_msr_index_list_contents(dev: Device) -> None:
    idx = dev.msr_index_list()
    assert len(idx) == len(set(idx)), "duplicate MSR indices"
    missing = [hex(m) for m in LISTED_MSRS if m not in idx]
    assert not missing, f"MSRs a Linux guest needs saved are not listed: {missing}"


def test_msr_index_list_readable(dev: Device) -> None:
    """Every listed MSR can be read through KVM_GET_MSRS on a new vCPU."""
    idx = dev.msr_index_list()
    vm = dev.create_vm()
    try:
        vcpu = vm.create_vcpu()
        vcpu.get_msrs(idx)
    finally:
        vm.close()


def test_msr_index_list_bad_pointer(dev: Device) -> None:
    with raises_errno(errno.EFAULT):
        dev.ioctl(lib.KVM_GET_MSR_INDEX_LIST, BAD_ADDR)
