# SPDX-License-Identifier: GPL-2.0-only
"""What the hypervisor handles without exiting to userspace: CPUID, the MSRs
a Linux guest uses, RDTSC; and unknown MSRs or SVME, which are #GP in the
guest rather than exits."""

from __future__ import annotations

import struct
from typing import Callable

import pytest
from kvmtest import MODE_IDS, MODES, Asm, Device, Guest, layout
from onekvm.abi import lib

D = layout.DATA

CPUID_LOOP_SRC = """
start:
    mov $1000, %esi
1:  mov $1, %eax
    xor %ecx, %ecx
    cpuid
    dec %esi
    jnz 1b
    mov $0x42, %al
    out %al, $PORT_DONE
"""
CPUID_LOOP = {b: Asm(CPUID_LOOP_SRC, bits=b, name=f"cpuid-loop-{b}") for b in MODES}

# DATA: u32 MSR indices, 0 ends; bit 31 of the next u32 says "read only".
# Each is read and, unless read only, written back unchanged.
RDWR_MSRS = Asm("""
start:
    xor %esi, %esi
1:  mov DATA(,%rsi,8), %ecx
    test %ecx, %ecx
    jz 2f
    rdmsr
    testl $0x80000000, DATA+4(,%rsi,8)
    jnz 3f
    wrmsr
3:  inc %esi
    jmp 1b
2:  out %al, $PORT_DONE
""", bits=64, name="rdwr-msrs")

UNKNOWN_MSR = Asm("""
rd:
    mov $0x12345678, %ecx
rd_insn:
    rdmsr
    out %al, $PORT_DONE
wr:
    mov $0x12345678, %ecx
    xor %eax, %eax
    xor %edx, %edx
wr_insn:
    wrmsr
    out %al, $PORT_DONE
svme:
    mov $0xc0000080, %ecx
    rdmsr
    or $0x1000, %eax
svme_insn:
    wrmsr
    out %al, $PORT_DONE
""", bits=64, name="unknown-msr")

RDTSC = Asm("""
start:
    rdtsc
    mov %eax, DATA
    mov %edx, DATA+4
    rdtsc
    mov %eax, DATA+8
    mov %edx, DATA+12
    out %al, $PORT_DONE
""", bits=64, name="rdtsc")

# The MSRs a Linux guest touches at boot (issue #4): reading them and
# writing back what was read must not fault.
LINUX_MSRS = (
    0xC0000080,                                   # EFER
    0xC0000081, 0xC0000082, 0xC0000083, 0xC0000084,   # STAR LSTAR CSTAR SFMASK
    0xC0000100, 0xC0000101, 0xC0000102,           # FS/GS/KERNEL_GS base
    0x174, 0x175, 0x176,                          # SYSENTER
    0x277, 0x10, 0xC0000103,                      # PAT TSC TSC_AUX
    0x1B, 0x1A0,                                  # APIC_BASE MISC_ENABLE
    0x2FF, 0x250, 0x258, 0x259, 0x268,            # MTRR def type, fixed
    *range(0x200, 0x210),                         # variable MTRRs
)
LINUX_MSRS_RO = (0xFE,)                           # MTRRcap


@pytest.mark.parametrize("bits", MODES, ids=MODE_IDS.get)
def test_cpuid_no_exit(tiny: Callable[[int], Guest], bits: int) -> None:
    """1000 CPUIDs, one exit: the OUT at the end."""
    g = tiny(bits)
    g.load(CPUID_LOOP[bits])
    assert g.vcpu.expect_done() == 0x42
    assert g.vcpu.get_regs().rsi & 0xFFFFFFFF == 0


def test_linux_msrs_in_kernel(tiny: Callable[[int], Guest], known_issue: Callable[..., None]) -> None:
    known_issue(("kvm_pvm",), "PVM refuses guest WRMSR of TSC_AUX")
    g = tiny(64)
    g.load(RDWR_MSRS)
    msrs = [(m, 0) for m in LINUX_MSRS] + [(m, 1 << 31) for m in LINUX_MSRS_RO]
    g.write(D, b"".join(struct.pack("<II", m, ro) for m, ro in msrs) + bytes(8))
    e = g.vcpu.run_once()
    if e.is_guest_exception():
        i = g.vcpu.get_regs().rsi
        raise AssertionError(f"MSR {msrs[i][0]:#x}: {e.describe()}")
    assert e.reason == lib.KVM_EXIT_IO and e.port == layout.PORT_DONE, e.describe()


@pytest.mark.parametrize("op", ["rd", "wr"])
def test_unknown_msr_gp(tiny: Callable[[int], Guest], op: str) -> None:
    g = tiny(64)
    code = g.load(UNKNOWN_MSR, entry=op)
    e = g.vcpu.run_once()
    assert e.is_guest_exception(), f"{op}msr of an unknown MSR: expected #GP in the guest, got {e.describe()}"
    assert g.vcpu.guest_exception() == (13, 0, code[f"{op}_insn"]), e.describe()


def test_efer_svme_gp(dev: Device, make_guest: Callable[..., Guest]) -> None:
    """Without SVM in the guest's CPUID, setting EFER.SVME is #GP."""
    g = make_guest(64, cpuid=False)
    table = [dict(e) for e in dev.default_cpuid]
    for e in table:
        if e["function"] == 0x80000001:
            e["ecx"] &= ~(1 << 2)
    g.vcpu.set_cpuid(table)
    code = g.load(UNKNOWN_MSR, entry="svme")
    e = g.vcpu.run_once()
    assert e.is_guest_exception(), f"expected #GP, got {e.describe()}"
    assert g.vcpu.guest_exception() == (13, 0, code["svme_insn"])
    assert not g.vcpu.get_sregs().efer & layout.EFER_SVME


def test_rdtsc(tiny: Callable[[int], Guest], known_issue: Callable[..., None]) -> None:
    """RDTSC follows the TSC set through KVM_SET_MSRS (the TSC offset)."""
    known_issue(("kvm_pvm",), "PVM does not offset the guest TSC")
    g = tiny(64)
    g.load(RDTSC)
    g.vcpu.set_msrs({0x10: 1 << 40})
    g.vcpu.expect_done()
    t0, t1 = struct.unpack("<QQ", g.read(D, 16))
    assert (1 << 40) <= t0 <= t1 < (1 << 40) + (1 << 38), f"rdtsc {t0:#x} {t1:#x} after setting 2^40"
