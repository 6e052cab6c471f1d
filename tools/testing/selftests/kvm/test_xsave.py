# SPDX-License-Identifier: GPL-2.0-only
"""XSAVE and AVX for the guest: what CPUID offers and computes from the
guest's state (OSXSAVE, the XSAVE area size for its XCR0), XSETBV/XGETBV in
the guest (XCR0 switched with the host's), KVM_GET/SET_XCRS with their
errors, and the AVX upper halves carried by KVM_GET/SET_XSAVE both ways
(into and out of the guest's registers through XRSTOR/XSAVE)."""

from __future__ import annotations

import errno
import struct
from typing import Any, Callable

import pytest
from kvmtest import Asm, Device, Guest, layout, raises_errno
from onekvm.abi import ffi, lib

D = layout.DATA
XCR0_FP, XCR0_SSE, XCR0_YMM = 1, 2, 4
CPUID1_ECX_XSAVE, CPUID1_ECX_OSXSAVE, CPUID1_ECX_AVX = 1 << 26, 1 << 27, 1 << 28

# DATA: CPUID.1:ECX, XCR0 at start, XCR0 after XSETBV 7, CPUID.0xD.0:EBX
# before and after; then XRSTOR of x87/SSE/AVX from DATA+0x1000 (the test
# wrote it).  At `store`: XSAVE of them to DATA+0x2000.  The CPUID exits in
# between take the guest's XCR0 out to the host and back in.
AVX = Asm("""
start:
    mov %cr4, %rax
    or $CR4_OSXSAVE, %rax
    mov %rax, %cr4
    mov $1, %eax
    xor %ecx, %ecx
    cpuid
    mov %ecx, DATA
    xor %ecx, %ecx
    xgetbv
    mov %eax, DATA + 4
    mov $0xd, %eax
    xor %ecx, %ecx
    cpuid
    mov %ebx, DATA + 12
    mov $7, %eax
    xor %edx, %edx
    xor %ecx, %ecx
    xsetbv
    xor %ecx, %ecx
    xgetbv
    mov %eax, DATA + 8
    mov $0xd, %eax
    xor %ecx, %ecx
    cpuid
    mov %ebx, DATA + 16
    mov $7, %eax
    xor %edx, %edx
    mov $DATA + 0x1000, %ebx
    xrstor (%rbx)
    hlt
store:
    mov $7, %eax
    xor %edx, %edx
    mov $DATA + 0x2000, %ebx
    xsave (%rbx)
    hlt
""".replace("CR4_OSXSAVE", str(layout.CR4_OSXSAVE)), bits=64, name="xsave-avx")

HLT = Asm("start:\n hlt\n", bits=64, name="xsave-hlt")

# XSETBV of DATA (edx:eax) with CR4.OSXSAVE set: #GP for a bad value.
XSETBV = Asm("""
start:
    mov %cr4, %rax
    or $CR4_OSXSAVE, %rax
    mov %rax, %cr4
    mov DATA, %eax
    mov DATA + 4, %edx
    mov DATA + 8, %ecx
fault:
    xsetbv
    hlt
""".replace("CR4_OSXSAVE", str(layout.CR4_OSXSAVE)), bits=64, name="xsave-xsetbv")

XGETBV = Asm("start:\n xor %ecx, %ecx\n xgetbv\n mov %eax, DATA\n hlt\n", bits=64, name="xsave-xgetbv")


def _host_has_avx() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx" in flags and "xsave" in flags


def _leaf(ents: list, fn: int, idx: int = 0) -> dict | None:
    return next((e for e in ents if e["function"] == fn and e["index"] == idx), None)


def _avx_layout(dev: Device, known_issue: Callable[..., None]) -> tuple[int, int]:
    """(offset, size) of the AVX state in the XSAVE area; skips where the
    host CPU has no AVX (then no hypervisor can offer it)."""
    known_issue(("kvm_pvm",), "PVM offers no XSAVE/AVX to its guests")
    ents = dev.supported_cpuid(256)
    one, d0, d2 = _leaf(ents, 1), _leaf(ents, 0xD, 0), _leaf(ents, 0xD, 2)
    offered = (one is not None and one["ecx"] & CPUID1_ECX_XSAVE and one["ecx"] & CPUID1_ECX_AVX
               and d0 is not None and d0["eax"] & 7 == 7 and d2 is not None)
    if not _host_has_avx():
        pytest.skip("the host CPU has no AVX")
    assert offered, "the host has XSAVE and AVX but KVM_GET_SUPPORTED_CPUID does not offer them"
    assert d2 is not None
    assert not one["ecx"] & CPUID1_ECX_OSXSAVE, "OSXSAVE is guest state, not a supported feature"
    return d2["ebx"], d2["eax"]


def _pattern(seed: int) -> list[bytes]:
    return [bytes((seed + 32 * n + i) & 0xFF for i in range(32)) for n in range(16)]


def _xcrs(g: Guest) -> Any:
    x = ffi.new("struct kvm_xcrs *")
    g.vcpu.ioctl(lib.KVM_GET_XCRS, x)
    return x


def _area(pat: list[bytes], off: int) -> bytes:
    """A standard-format XSAVE image: xmm (legacy area) and ymm upper halves
    from `pat`, default FCW/MXCSR, XSTATE_BV = x87 | SSE | AVX."""
    a = bytearray(off + 256)
    struct.pack_into("<H", a, 0, 0x37F)
    struct.pack_into("<I", a, 24, 0x1F80)
    a[160:160 + 256] = b"".join(p[:16] for p in pat)
    struct.pack_into("<Q", a, 512, 7)
    a[off:off + 256] = b"".join(p[16:] for p in pat)
    return bytes(a)


def test_avx_in_guest_and_xsave_both_ways(dev: Device, make_guest: Callable[..., Guest],
                                          known_issue: Callable[..., None]) -> None:
    off, size = _avx_layout(dev, known_issue)
    assert (off, size) == (576, 256)
    g = make_guest(64)
    code = g.load(AVX)
    pat = _pattern(0x21)
    g.write(D + 0x1000, _area(pat, off))
    g.vcpu.expect(lib.KVM_EXIT_HLT)
    ecx, xcr0_before, xcr0_after, size_before, size_after = struct.unpack("<5I", g.read(D, 20))
    assert ecx & CPUID1_ECX_OSXSAVE, "CPUID.1:ECX.OSXSAVE must follow the guest's CR4"
    assert xcr0_before == XCR0_FP, f"XCR0 after reset is {xcr0_before:#x}, expected 1"
    assert xcr0_after == 7
    assert size_before == 576 and size_after == 832, (size_before, size_after)
    x = _xcrs(g)
    assert x.nr_xcrs == 1 and x.xcrs[0].xcr == 0 and x.xcrs[0].value == 7

    # What the guest loaded with XRSTOR comes out in KVM_GET_XSAVE ...
    xs = g.vcpu.get_xsave()
    buf = ffi.buffer(xs.region)
    xstate_bv = struct.unpack_from("<Q", buf, 512)[0]
    assert xstate_bv & XCR0_YMM, f"XSTATE_BV {xstate_bv:#x} lacks AVX after the guest loaded it"
    assert bytes(buf[off:off + 256]) == b"".join(p[16:] for p in pat), "KVM_GET_XSAVE != guest ymm upper halves"
    assert bytes(buf[160:160 + 256]) == b"".join(p[:16] for p in pat), "KVM_GET_XSAVE != guest xmm"

    # ... and KVM_SET_XSAVE's is what the guest's XSAVE stores.
    new = _pattern(0x90)
    buf[160:160 + 256] = b"".join(p[:16] for p in new)
    buf[off:off + 256] = b"".join(p[16:] for p in new)
    buf[512:520] = struct.pack("<Q", xstate_bv | 7)
    g.vcpu.set_xsave(xs)
    g.write(D + 0x2000, bytes(off + 256))
    g.vcpu.set_regs(rip=code["store"])
    g.vcpu.expect(lib.KVM_EXIT_HLT)
    saved = g.read(D + 0x2000, off + 256)
    assert saved[160:160 + 256] == b"".join(p[:16] for p in new), "guest xmm != KVM_SET_XSAVE"
    assert saved[off:off + 256] == b"".join(p[16:] for p in new), "guest ymm upper halves != KVM_SET_XSAVE"


def test_avx_state_kept_across_runs(dev: Device, make_guest: Callable[..., Guest],
                                    known_issue: Callable[..., None]) -> None:
    """AVX state set with KVM_SET_XSAVE survives runs (into the registers
    and out) and the host's own FPU use between them."""
    off, _size = _avx_layout(dev, known_issue)
    g = make_guest(64)
    g.load(HLT)
    x = ffi.new("struct kvm_xcrs *")
    x.nr_xcrs, x.xcrs[0].xcr, x.xcrs[0].value = 1, 0, 7
    g.vcpu.ioctl(lib.KVM_SET_XCRS, x)
    xs = g.vcpu.get_xsave()
    buf = ffi.buffer(xs.region)
    pat = _pattern(0x90)
    buf[160:160 + 256] = b"".join(p[:16] for p in pat)
    buf[off:off + 256] = b"".join(p[16:] for p in pat)
    buf[512:520] = struct.pack("<Q", struct.unpack_from("<Q", buf, 512)[0] | 7)
    g.vcpu.set_xsave(xs)
    back_xs = g.vcpu.get_xsave()  # the buffer below views its memory
    back = ffi.buffer(back_xs.region)
    assert bytes(back[off:off + 256]) == b"".join(p[16:] for p in pat), "KVM_SET/GET_XSAVE lost the AVX state"
    for _ in range(3):
        y = 1.0
        for _ in range(2000):                                 # the host uses its FPU meanwhile
            y = y * 1.000001 + 0.5
        g.vcpu.set_regs(rip=layout.CODE)
        g.vcpu.expect(lib.KVM_EXIT_HLT)
    after_xs = g.vcpu.get_xsave()  # the buffer below views its memory
    after = ffi.buffer(after_xs.region)
    assert struct.unpack_from("<Q", after, 512)[0] & XCR0_YMM, "XSTATE_BV lost AVX across KVM_RUN"
    assert bytes(after[off:off + 256]) == b"".join(p[16:] for p in pat), "AVX state changed across KVM_RUN"
    assert bytes(after[160:160 + 256]) == b"".join(p[:16] for p in pat), "SSE state changed across KVM_RUN"
    assert _xcrs(g).xcrs[0].value == 7


def test_set_xsave_refuses_unsupported_state(dev: Device, make_guest: Callable[..., Guest],
                                             known_issue: Callable[..., None]) -> None:
    _avx_layout(dev, known_issue)
    g = make_guest(64)
    xs = g.vcpu.get_xsave()
    buf = ffi.buffer(xs.region)
    buf[512:520] = struct.pack("<Q", 7 | 1 << 62)             # a component nobody offers
    with raises_errno(errno.EINVAL):
        g.vcpu.set_xsave(xs)


def test_xcrs_set_get_and_errors(dev: Device, make_guest: Callable[..., Guest],
                                 known_issue: Callable[..., None]) -> None:
    _avx_layout(dev, known_issue)
    assert dev.check_extension(lib.KVM_CAP_XCRS) > 0
    g = make_guest(64)
    x = _xcrs(g)
    assert x.nr_xcrs >= 1 and x.xcrs[0].xcr == 0 and x.xcrs[0].value == XCR0_FP, "XCR0 after reset"
    for value in (XCR0_FP | XCR0_SSE, 7, XCR0_FP):
        x = ffi.new("struct kvm_xcrs *")
        x.nr_xcrs, x.xcrs[0].xcr, x.xcrs[0].value = 1, 0, value
        g.vcpu.ioctl(lib.KVM_SET_XCRS, x)
        assert _xcrs(g).xcrs[0].value == value
    bad = {
        "no x87": (1, 0, XCR0_SSE, 0),
        "AVX without SSE": (1, 0, XCR0_FP | XCR0_YMM, 0),
        "unsupported bit 62": (1, 0, 7 | 1 << 62, 0),
        "flags": (1, 0, 7, 1),
        "nr_xcrs too big": (lib.KVM_MAX_XCRS + 1, 0, 7, 0),
    }
    for what, (nr, xcr, value, flags) in bad.items():
        x = ffi.new("struct kvm_xcrs *")
        x.nr_xcrs, x.flags, x.xcrs[0].xcr, x.xcrs[0].value = nr, flags, xcr, value
        with raises_errno(errno.EINVAL, what=what):
            g.vcpu.ioctl(lib.KVM_SET_XCRS, x)
    assert _xcrs(g).xcrs[0].value == XCR0_FP, "a refused KVM_SET_XCRS changed XCR0"
    # The guest sees what KVM_SET_XCRS set (loaded around VMRUN).
    x = ffi.new("struct kvm_xcrs *")
    x.nr_xcrs, x.xcrs[0].xcr, x.xcrs[0].value = 1, 0, XCR0_FP | XCR0_SSE
    g.vcpu.ioctl(lib.KVM_SET_XCRS, x)
    g.load(XGETBV)          # CR4.OSXSAVE (set by the test) makes XGETBV legal
    s = g.vcpu.get_sregs()
    s.cr4 |= layout.CR4_OSXSAVE
    g.vcpu.set_sregs(s)
    g.write(D, bytes(4))
    g.vcpu.expect(lib.KVM_EXIT_HLT)
    assert g.read_u(D, 4) == XCR0_FP | XCR0_SSE


@pytest.mark.parametrize("what,eax,edx,ecx", [
    ("no x87", XCR0_SSE, 0, 0),
    ("AVX without SSE", XCR0_FP | XCR0_YMM, 0, 0),
    ("unsupported bit 62", 7, 1 << 30, 0),
    ("XCR 1", 7, 0, 1),
])
def test_xsetbv_bad_value_is_gp(dev: Device, make_guest: Callable[..., Guest], known_issue: Callable[..., None],
                                what: str, eax: int, edx: int, ecx: int) -> None:
    _avx_layout(dev, known_issue)
    g = make_guest(64)
    code = g.load(XSETBV)
    g.write(D, struct.pack("<3I", eax, edx, ecx))
    e = g.vcpu.run_once()
    assert e.is_guest_exception(), f"{what}: expected #GP, got {e.describe()}"
    vec, err, rip = g.vcpu.guest_exception()
    assert (vec, err, rip) == (13, 0, code["fault"]), f"{what}: {e.describe()}"
    assert _xcrs(g).xcrs[0].value == XCR0_FP, f"{what}: a faulting XSETBV changed XCR0"
