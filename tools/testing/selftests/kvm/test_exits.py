# SPDX-License-Identifier: GPL-2.0-only
"""Exits other than I/O: HLT, SHUTDOWN (triple fault), FAIL_ENTRY (state the
CPU refuses), INTERNAL_ERROR (an MMIO instruction nobody decodes), and
exceptions the guest raises itself, delivered through its own IDT."""

from __future__ import annotations

from typing import Callable

import pytest
from kvmtest import MODE_IDS, MODES, Asm, Device, Guest, layout
from onekvm.abi import lib

HLT_SRC = """
start:
    hlt
after_hlt:
    mov $0x42, %al
    out %al, $PORT_DONE
"""
HLT = {b: Asm(HLT_SRC, bits=b, name=f"hlt-{b}") for b in MODES}

UD2_SRC = """
start:
    ud2
"""
UD2 = {b: Asm(UD2_SRC, bits=b, name=f"ud2-{b}") for b in MODES}

NOP64 = Asm("""
start:
    nop
    hlt
""", bits=64, name="nop-64")

POPCNT = Asm("""
start:
    mov $MMIO, %rbx
insn:
    popcnt (%rbx), %eax
insn_end:
    hlt
""", bits=64, name="popcnt-mmio")

# Exceptions the guest causes (setup, faulting instruction, vector, error code);
# the library's stubs report vector, error code and RIP.
EXCEPTIONS = {
    "ud": ("", "ud2", 6, 0),
    "de": ("xor %ecx, %ecx", "div %ecx", 0, 0),
    "bp": ("", "int3", 3, 0),
    "gp-noncanonical": ("movabs $0x8000000000000000, %rbx", "mov (%rbx), %eax", 13, 0),
    "pf-unmapped": ("movabs $0x100000000, %rbx", "mov (%rbx), %eax", 14, 0),
}
EXC_CODE = {k: Asm(f"start:\n    {setup}\nfault:\n    {insn}\nafter:\n    hlt\n", bits=64, name=f"exc-{k}")
            for k, (setup, insn, _v, _e) in EXCEPTIONS.items()}


@pytest.mark.parametrize("bits", MODES, ids=MODE_IDS.get)
def test_hlt(tiny: Callable[[int], Guest], bits: int) -> None:
    g = tiny(bits)
    code = g.load(HLT[bits])
    g.vcpu.expect(lib.KVM_EXIT_HLT)
    assert g.vcpu.get_regs().rip == code["after_hlt"], "RIP after HLT points past it"
    assert g.vcpu.expect_done() == 0x42, "the next KVM_RUN continues after HLT"


# Off the end of its code into zeroes (`add %al, (%rax)`, harmless with
# RAX = DATA): the library's guard stops it before the page tables.
RUNAWAY = Asm(f"""
start:
    mov $DATA, %eax
    mov ${layout.GUARD - 16:#x}, %ebx
    jmp *%rbx
""", bits=64, name="runaway-64")


def test_runaway_code_stops_at_the_guard(tiny: Callable[[int], Guest]) -> None:
    g = tiny(64)
    g.write(layout.GUARD - 16, bytes(16))
    g.load(RUNAWAY)
    g.vcpu.expect(lib.KVM_EXIT_HLT)
    assert g.vcpu.get_regs().rip == layout.GUARD + 1, "the first HLT of the guard"


@pytest.mark.parametrize("bits", MODES, ids=MODE_IDS.get)
def test_shutdown_on_triple_fault(make_guest: Callable[..., Guest], bits: int,
                                  known_issue: Callable[..., None]) -> None:
    if bits == 16:
        known_issue(("kvm_pvm",), "PVM ignores the real-mode IDT limit")
    g = make_guest(bits, UD2[bits])
    s = g.vcpu.get_sregs()
    s.idt.limit = 0                      # #UD -> #GP -> #DF -> triple fault
    g.vcpu.set_sregs(s)
    g.vcpu.expect(lib.KVM_EXIT_SHUTDOWN)


def test_fail_entry(dev: Device, make_guest: Callable[..., Guest], known_issue: Callable[..., None]) -> None:
    """Long mode with CS.L and CS.D both set: VMRUN refuses the state."""
    known_issue(("kvm_pvm",), "software virtualization has no VM entry to fail")
    g = make_guest(64, NOP64)
    s = g.vcpu.get_sregs()
    s.cs.db = 1
    g.vcpu.set_sregs(s)
    e = g.vcpu.expect(lib.KVM_EXIT_FAIL_ENTRY)
    if dev.kind in ("onekvm", "kvm_amd"):
        # VMEXIT_INVALID (-1) as kvm_amd reports it: the 32-bit exit code.
        assert e.hardware_entry_failure_reason & 0xFFFFFFFF == 0xFFFFFFFF, \
            f"SVM reports VMEXIT_INVALID (-1), got {e.hardware_entry_failure_reason:#x}"


def test_internal_error_undecodable_mmio(make_guest: Callable[..., Guest]) -> None:
    """An instruction the MMIO emulator does not handle: INTERNAL_ERROR/EMULATION with its bytes."""
    g = make_guest(64, POPCNT)
    code = g.code
    e = g.vcpu.expect(lib.KVM_EXIT_INTERNAL_ERROR)
    assert e.suberror == lib.KVM_INTERNAL_ERROR_EMULATION, f"suberror {e.suberror}"
    ef = g.vcpu.run.emulation_failure
    assert ef.flags & lib.KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES, "the instruction bytes are reported"
    want = code.data[code["insn"] - code.base:code["insn_end"] - code.base]
    assert 1 <= ef.insn_size <= 15
    got = bytes(ef.insn_bytes[0:ef.insn_size])
    assert got[:len(want)] == want[:ef.insn_size], f"bytes {got.hex()}, instruction {want.hex()}"
    assert g.vcpu.get_regs().rip == code["insn"], "RIP stays at the failing instruction"


@pytest.mark.parametrize("name", list(EXCEPTIONS))
def test_guest_exception(tiny: Callable[[int], Guest], name: str, known_issue: Callable[..., None]) -> None:
    """Exceptions the guest raises reach its own IDT handler with the right frame."""
    if name == "bp":
        known_issue(("kvm_pvm",), "PVM cannot emulate int3")
    g = tiny(64)
    code = g.load(EXC_CODE[name])
    _setup, _insn, vector, err = EXCEPTIONS[name]
    e = g.vcpu.run_once()
    assert e.is_guest_exception(), f"expected {name} in the guest, got {e.describe()}"
    got_vec, got_err, rip = g.vcpu.guest_exception()
    assert (got_vec, got_err) == (vector, err), e.describe()
    # #BP is a trap (RIP after int3), the others are faults (RIP of the instruction).
    assert rip == code["after" if name == "bp" else "fault"], e.describe()
    if name == "pf-unmapped":
        cr2 = int.from_bytes(g.read(layout.MAILBOX + 16, 8), "little")
        assert cr2 == 0x100000000
