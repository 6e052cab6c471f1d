# SPDX-License-Identifier: GPL-2.0-only
"""KVM_EXIT_MMIO: guest accesses to addresses no memslot backs, decoded by
the hypervisor (TCG has no decode assists): the mov family in all its
encodings, movzx/movsx, stos and movs, in real, protected and long mode.

Each case is one instruction (or rep string instruction) run against MMIO;
the exits must carry the right address, length, direction and data, and
after completion the guest's registers and memory must hold what the
instruction defines (partial-register merges, zero and sign extension)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import pytest
from kvmtest import MODE_IDS, MODES, Asm, Guest, layout
from onekvm.abi import lib

M, D = layout.MMIO, layout.DATA
BIG = 0x1122334455667788


@dataclass
class Case:
    """One MMIO instruction.

    insn: assembly; {M} is the memory operand through (e/r)bx, {ABS} the
    absolute address of MMIO (real mode: offset 0 of DS = MMIO >> 4), {P}
    the address-size register prefix ("", "e", "r").
    exits: (write?, offset from the MMIO pointer, length, value) in order.
    regs: GPRs before; expect: GPRs after (low 32 bits compared outside long mode).
    ptrs: pointer registers -> (segment, linear address).
    """

    id: str
    insn: str
    exits: list[tuple[bool, int, int, int]]
    regs: dict[str, int] = field(default_factory=dict)
    expect: dict[str, int] = field(default_factory=dict)
    modes: tuple[int, ...] = MODES
    ptrs: Optional[dict[str, tuple[str, int]]] = None
    ram: Optional[tuple[int, bytes]] = None            # RAM written before
    ram_after: Optional[tuple[int, bytes]] = None      # RAM expected after

    def pointers(self) -> dict[str, tuple[str, int]]:
        return self.ptrs if self.ptrs is not None else {"rbx": ("ds", M)}


W, R = True, False
RCX = 0x0BADF00D_D4C3B2A1

CASES = [
    # --- writes: immediates, registers, addressing forms ---
    Case("mov-imm8", "movb $0x5a, {M}", [(W, 0, 1, 0x5A)]),
    Case("mov-imm16", "movw $0x1234, {M}", [(W, 0, 2, 0x1234)]),
    Case("mov-imm32", "movl $0x89abcdef, {M}", [(W, 0, 4, 0x89ABCDEF)]),
    Case("mov-imm32-sx64", "movq $-2, {M}", [(W, 0, 8, (1 << 64) - 2)], modes=(64,)),
    Case("mov-r8", "mov %cl, {M}", [(W, 0, 1, 0xA1)], regs={"rcx": RCX}),
    Case("mov-r8-high", "mov %ch, {M}", [(W, 0, 1, 0xB2)], regs={"rcx": RCX}),
    Case("mov-r16", "mov %cx, {M}", [(W, 0, 2, 0xB2A1)], regs={"rcx": RCX}),
    Case("mov-r32", "mov %ecx, {M}", [(W, 0, 4, 0xD4C3B2A1)], regs={"rcx": RCX}),
    Case("mov-r64", "mov %rcx, {M}", [(W, 0, 8, RCX)], regs={"rcx": RCX}, modes=(64,)),
    Case("mov-r9", "mov %r9, {M}", [(W, 0, 8, BIG)], regs={"r9": BIG}, modes=(64,)),
    Case("mov-r9b", "mov %r9b, {M}", [(W, 0, 1, 0x88)], regs={"r9": BIG}, modes=(64,)),
    Case("mov-disp8", "mov %ecx, 0x10{M}", [(W, 0x10, 4, 0xD4C3B2A1)], regs={"rcx": RCX}),
    Case("mov-disp32", "mov %ecx, 0x1234{M}", [(W, 0x1234, 4, 0xD4C3B2A1)], regs={"rcx": RCX}),
    Case("mov-sib", "mov %ecx, 8(%{P}bx,%{P}si,4)", [(W, 16, 4, 0xD4C3B2A1)], regs={"rcx": RCX, "rsi": 2},
         modes=(32, 64)),
    Case("mov-addr32-sib", "mov %ecx, 8(%ebx,%esi,4)", [(W, 16, 4, 0xD4C3B2A1)], regs={"rcx": RCX, "rsi": 2},
         modes=(16,)),
    Case("mov-moffs-al", "mov %al, {ABS}", [(W, 0, 1, 0x88)], regs={"rax": BIG}, modes=(16, 32)),
    Case("mov-moffs-eax", "mov %eax, {ABS}", [(W, 0, 4, 0x55667788)], regs={"rax": BIG}, modes=(16, 32)),
    Case("movabs-al", "movabs %al, MMIO", [(W, 0, 1, 0x88)], regs={"rax": BIG}, modes=(64,)),
    Case("movabs-rax", "movabs %rax, MMIO", [(W, 0, 8, BIG)], regs={"rax": BIG}, modes=(64,)),
    Case("mov-abs-disp32", "mov %ecx, MMIO", [(W, 0, 4, 0xD4C3B2A1)], regs={"rcx": RCX}, modes=(64,)),
    Case("mov-high-mmio", "mov %ecx, {M}", [(W, 0, 4, 0xD4C3B2A1)], regs={"rcx": RCX},
         ptrs={"rbx": ("ds", layout.MMIO_HIGH)}, modes=(32, 64)),
    # --- reads: widths, partial-register merges, zero/sign extension ---
    Case("read-r8", "mov {M}, %al", [(R, 0, 1, 0xAB)], regs={"rax": BIG}, expect={"rax": 0x11223344556677AB}),
    Case("read-r8-high", "mov {M}, %ah", [(R, 0, 1, 0xAB)], regs={"rax": BIG}, expect={"rax": 0x112233445566AB88}),
    Case("read-r16", "mov {M}, %ax", [(R, 0, 2, 0xABCD)], regs={"rax": BIG}, expect={"rax": 0x112233445566ABCD}),
    Case("read-r32", "mov {M}, %eax", [(R, 0, 4, 0x89ABCDEF)], regs={"rax": BIG}, expect={"rax": 0x89ABCDEF}),
    Case("read-r64", "mov {M}, %rax", [(R, 0, 8, 0x0123456789ABCDEF)], regs={"rax": BIG},
         expect={"rax": 0x0123456789ABCDEF}, modes=(64,)),
    Case("read-r10d", "mov {M}, %r10d", [(R, 0, 4, 0x89ABCDEF)], regs={"r10": BIG}, expect={"r10": 0x89ABCDEF},
         modes=(64,)),
    Case("read-sil", "mov {M}, %sil", [(R, 0, 1, 0xAB)], regs={"rsi": BIG}, expect={"rsi": 0x11223344556677AB},
         modes=(64,)),
    Case("read-moffs-eax", "mov {ABS}, %eax", [(R, 0, 4, 0x89ABCDEF)], regs={"rax": BIG},
         expect={"rax": 0x89ABCDEF}, modes=(16, 32)),
    Case("movabs-read-rax", "movabs MMIO, %rax", [(R, 0, 8, 0x0123456789ABCDEF)],
         expect={"rax": 0x0123456789ABCDEF}, modes=(64,)),
    Case("movzbl", "movzbl {M}, %ecx", [(R, 0, 1, 0x80)], regs={"rcx": BIG}, expect={"rcx": 0x80}),
    Case("movzwl", "movzwl {M}, %ecx", [(R, 0, 2, 0x8001)], regs={"rcx": BIG}, expect={"rcx": 0x8001}),
    Case("movzbw", "movzbw {M}, %cx", [(R, 0, 1, 0x80)], regs={"rcx": BIG}, expect={"rcx": 0x1122334455660080}),
    Case("movsbl", "movsbl {M}, %ecx", [(R, 0, 1, 0x80)], regs={"rcx": BIG}, expect={"rcx": 0xFFFFFF80}),
    Case("movswl", "movswl {M}, %ecx", [(R, 0, 2, 0x8001)], regs={"rcx": BIG}, expect={"rcx": 0xFFFF8001}),
    Case("movsbw", "movsbw {M}, %cx", [(R, 0, 1, 0x80)], regs={"rcx": BIG}, expect={"rcx": 0x112233445566FF80}),
    Case("movsbq", "movsbq {M}, %rcx", [(R, 0, 1, 0x80)], expect={"rcx": 0xFFFFFFFFFFFFFF80}, modes=(64,)),
    Case("movswq", "movswq {M}, %rcx", [(R, 0, 2, 0x8001)], expect={"rcx": 0xFFFFFFFFFFFF8001}, modes=(64,)),
    Case("movslq", "movslq {M}, %rcx", [(R, 0, 4, 0x80000001)], expect={"rcx": 0xFFFFFFFF80000001}, modes=(64,)),
    # --- string instructions ---
    Case("stosb", "stosb", [(W, 0, 1, 0x88)], regs={"rax": BIG}, ptrs={"rdi": ("es", M)}),
    Case("stosw", "stosw", [(W, 0, 2, 0x7788)], regs={"rax": BIG}, ptrs={"rdi": ("es", M)}),
    Case("stosl", "stosl", [(W, 0, 4, 0x55667788)], regs={"rax": BIG}, ptrs={"rdi": ("es", M)}),
    Case("stosq", "stosq", [(W, 0, 8, BIG)], regs={"rax": BIG}, ptrs={"rdi": ("es", M)}, modes=(64,)),
    Case("rep-stosl", "rep stosl", [(W, 0, 4, 0x55667788), (W, 4, 4, 0x55667788), (W, 8, 4, 0x55667788)],
         regs={"rax": BIG, "rcx": 3}, expect={"rcx": 0, "rdi": 12}, ptrs={"rdi": ("es", M)}),
    Case("movsl-to-mmio", "movsl", [(W, 0, 4, 0xCAFEBABE)], ptrs={"rsi": ("ds", D), "rdi": ("es", M)},
         ram=(D, bytes.fromhex("bebafeca")), expect={"rsi": 4, "rdi": 4}),
    Case("movsl-from-mmio", "movsl", [(R, 0, 4, 0xCAFEBABE)], ptrs={"rsi": ("ds", M), "rdi": ("es", D)},
         ram=(D, bytes(4)), ram_after=(D, bytes.fromhex("bebafeca")), expect={"rsi": 4, "rdi": 4}),
    Case("movsb-from-mmio", "movsb", [(R, 0, 1, 0x7E)], ptrs={"rsi": ("ds", M), "rdi": ("es", D)},
         ram=(D, bytes(2)), ram_after=(D, b"\x7e\x00")),
]

OPERAND = {16: "(%bx)", 32: "(%ebx)", 64: "(%rbx)"}
ABS = {16: "0x0", 32: "MMIO", 64: "MMIO"}
PREFIX = {16: "", 32: "e", 64: "r"}


def _asm(case: Case, bits: int) -> Asm:
    insn = case.insn.format(M=OPERAND[bits], ABS=ABS[bits], P=PREFIX[bits])
    return Asm(f"start:\n    cld\n    {insn}\n    hlt\n", bits=bits, name=f"mmio-{case.id}-{bits}")


PARAMS = [pytest.param(c, b, _asm(c, b), id=f"{MODE_IDS[b]}-{c.id}") for c in CASES for b in c.modes]


@pytest.mark.parametrize("case,bits,code", PARAMS)
def test_mmio(tiny: Callable[[int], Guest], case: Case, bits: int, code: Asm) -> None:
    g = tiny(bits)
    g.load(code)
    mask = (1 << 64) - 1 if bits == 64 else 0xFFFFFFFF
    regs = {k: v & mask for k, v in case.regs.items()}
    if regs:
        g.vcpu.set_regs(**regs)
    ptrs = case.pointers()
    g.point(**ptrs)
    start = g.vcpu.get_regs()
    base_val = {reg: getattr(start, reg) for reg in ptrs}
    if case.ram:
        g.write(*case.ram)
    ptr_linear = next(lin for _seg, lin in ptrs.values() if lin >= M)
    for n, (write, off, length, value) in enumerate(case.exits):
        what = f"{case.insn} exit {n + 1}"
        if write:
            got = g.vcpu.expect_mmio_write(ptr_linear + off, length, what)
            assert got == value, f"{what}: wrote {got:#x}, expected {value:#x}"
        else:
            g.vcpu.expect_mmio_read(ptr_linear + off, length, value, what)
    g.vcpu.expect(lib.KVM_EXIT_HLT, f"{case.insn} then hlt")
    after = g.vcpu.get_regs()
    for reg, want in case.expect.items():
        got = getattr(after, reg)
        if reg in ptrs:                                       # relative to where it started
            got -= base_val[reg]
        want &= mask
        got &= mask
        assert got == want, f"{case.insn}: {reg} = {got:#x}, expected {want:#x}"
    if case.ram_after:
        gpa, data = case.ram_after
        assert g.read(gpa, len(data)) == data
