# SPDX-License-Identifier: GPL-2.0-only
"""Tiny guests: one VM, RAM in slot 0, vCPUs set up in real mode, 32-bit
protected mode or 64-bit long mode (flat segments, identity paging).

    with Guest(dev, bits=64) as g:
        code = g.load(SNIPPET)            # an Asm for the same mode
        assert g.vcpu.expect_done() == 0x42

The GDT, the IDT (IVT in real mode) and the page tables in guest memory
agree with the cached segment state set through KVM_SET_SREGS, so the guest
can take interrupts and exceptions, iret and reload segments.  Vectors 0-31
go to exception stubs that store vector, error code, RIP and CR2 at MAILBOX
and `out` to PORT_EXC; Vcpu.expect*() turns that into a GuestException
naming the exception.  See layout.py for the address map.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Optional, Union

from onekvm.abi import ffi, lib

from kvmtest import layout as L
from kvmtest.asm import Asm, Code
from kvmtest.kvm import Device, Vcpu, Vm

MODES = (16, 32, 64)
MODE_IDS = {16: "real", 32: "prot32", 64: "long64"}


@dataclass(frozen=True)
class Seg:
    """A segment: its GDT descriptor and its struct kvm_segment agree."""

    selector: int
    base: int = 0
    limit: int = 0xFFFFFFFF      # byte granular, as in kvm_segment
    type: int = 0x3
    s: int = 1
    dpl: int = 0
    present: int = 1
    avl: int = 0
    l: int = 0                   # noqa: E741 - the descriptor's name
    db: int = 1
    g: int = 1

    def descriptor(self) -> bytes:
        raw = self.limit >> 12 if self.g else self.limit
        lo = (raw & 0xFFFF) | ((self.base & 0xFFFFFF) << 16)
        access = self.type | (self.s << 4) | (self.dpl << 5) | (self.present << 7)
        flags = self.avl | (self.l << 1) | (self.db << 2) | (self.g << 3)
        hi = access | (((raw >> 16) & 0xF) << 8) | (flags << 12) | (((self.base >> 24) & 0xFF) << 16)
        desc = struct.pack("<Q", lo | (hi << 40))
        if not self.s:                        # system descriptor: 16 bytes in long mode
            desc += struct.pack("<Q", self.base >> 32)
        return desc

    def to_kvm(self, k: Any) -> None:
        k.selector, k.base, k.limit, k.type = self.selector, self.base, self.limit, self.type
        k.present, k.dpl, k.db, k.s, k.l, k.g, k.avl = (
            self.present, self.dpl, self.db, self.s, self.l, self.g, self.avl)
        k.unusable = 0


CODE64 = Seg(L.SEL_CODE64, type=0xB, l=1, db=0)
CODE32 = Seg(L.SEL_CODE32, type=0xB)
DATA = Seg(L.SEL_DATA, type=0x3)
CODE16 = Seg(L.SEL_CODE16, limit=0xFFFF, type=0xB, db=0, g=0)
DATA16 = Seg(L.SEL_DATA16, limit=0xFFFF, type=0x3, db=0, g=0)
TSS = Seg(L.SEL_TSS, base=L.TSS, limit=0x67, type=0xB, s=0, db=0, g=0)
REAL_CODE = Seg(0, limit=0xFFFF, type=0xB, db=0, g=0)
REAL_DATA = Seg(0, limit=0xFFFF, type=0x3, db=0, g=0)


def _exc_stub_source(bits: int) -> str:
    sp, ax, bx, cx, dx = {16: ("sp", "ax", "bx", "cx", "dx"), 32: ("esp", "eax", "ebx", "ecx", "edx"),
                          64: ("rsp", "rax", "rbx", "rcx", "rdx")}[bits]
    push = {16: "pushw", 32: "pushl", 64: "pushq"}[bits]
    vecs = ",".join(str(v) for v in range(32))
    if bits == 16:
        # No error codes in real mode; the IVT entry is 0:exc_N.
        common = """
            exc_common:
                pop %ax
                xor %bx, %bx
                mov %bx, %ds
                movl $0, MAILBOX
                mov %ax, MAILBOX
                movl $0, MAILBOX+4
                pop %cx
                movl $0, MAILBOX+8
                movl $0, MAILBOX+12
                mov %cx, MAILBOX+8
                movl $0, MAILBOX+16
            """
        has_err = "1"         # i.e. push no dummy error code
    else:
        common = f"""
            exc_common:
                pop %{ax}
                movl %eax, MAILBOX
                pop %{bx}
                movl %ebx, MAILBOX+4
                mov (%{sp}), %{cx}
                movl $0, MAILBOX+12
                mov %{cx}, MAILBOX+8
                mov %cr2, %{dx}
                movl $0, MAILBOX+20
                mov %{dx}, MAILBOX+16
            """
        has_err = ("((\\v == 8) || ((\\v >= 10) && (\\v <= 14)) || (\\v == 17) "
                   "|| (\\v == 21) || (\\v == 29) || (\\v == 30))")
    return f"""
        .macro stub v
        exc_\\v:
            .if {has_err}
            .else
            {push} $0
            .endif
            {push} $\\v
            jmp exc_common
        .endm
        .irp v, {vecs}
            stub \\v
        .endr
        {common}
            out %al, $PORT_EXC
        1:  hlt
            jmp 1b
        """


EXC_STUBS = {bits: Asm(_exc_stub_source(bits), bits=bits, base=L.EXC_STUBS, name=f"exc-stubs-{bits}")
             for bits in MODES}


def gate(bits: int, handler: int) -> bytes:
    """An IDT entry (IVT entry in real mode) for an interrupt gate to `handler`."""
    if bits == 16:
        if handler >= 0x10000:
            raise ValueError(f"real-mode handler {handler:#x} not below 64 KiB")
        return struct.pack("<HH", handler, 0)
    sel = L.SEL_CODE64 if bits == 64 else L.SEL_CODE32
    g = struct.pack("<HHBBH", handler & 0xFFFF, sel, 0, 0x8E, (handler >> 16) & 0xFFFF)
    if bits == 64:
        g += struct.pack("<II", handler >> 32, 0)
    return g


@lru_cache(maxsize=None)
def _gdt() -> bytes:
    return bytes(8) + b"".join(s.descriptor() for s in (CODE64, CODE32, DATA, CODE16, DATA16, TSS))


@lru_cache(maxsize=None)
def _page_tables() -> bytes:
    """PML4, PDPT and 4 PDs mapping 0-4 GiB with 2 MiB pages (P|RW|PS)."""
    pml4 = struct.pack("<Q", L.PDPT | 3).ljust(L.PAGE, b"\0")
    pdpt = b"".join(struct.pack("<Q", (L.PD + i * L.PAGE) | 3) for i in range(4)).ljust(L.PAGE, b"\0")
    pds = struct.pack("<2048Q", *((i << 21) | 0x83 for i in range(2048)))
    return pml4 + pdpt + pds


@lru_cache(maxsize=None)
def _idt(bits: int) -> bytes:
    stubs = EXC_STUBS[bits].build()
    return b"".join(gate(bits, stubs[f"exc_{v}"]) for v in range(32))


def setup_sregs(vcpu: Vcpu, bits: int) -> None:
    """Put a vCPU in `bits` mode with the library's GDT/IDT/page tables."""
    s = vcpu.get_sregs()
    if bits == 16:
        REAL_CODE.to_kvm(s.cs)
        for k in (s.ds, s.es, s.fs, s.gs, s.ss):
            REAL_DATA.to_kvm(k)
        s.idt.base, s.idt.limit = L.IVT, 0x3FF
        s.cr0 = (s.cr0 & ~(L.CR0_PE | L.CR0_PG)) & 0xFFFFFFFF
    else:
        (CODE64 if bits == 64 else CODE32).to_kvm(s.cs)
        for k in (s.ds, s.es, s.fs, s.gs, s.ss):
            DATA.to_kvm(k)
        TSS.to_kvm(s.tr)
        s.gdt.base, s.gdt.limit = L.GDT, len(_gdt()) - 1
        s.idt.base, s.idt.limit = L.IDT, 256 * (16 if bits == 64 else 8) - 1
        s.cr0 = L.CR0_PE | L.CR0_MP | L.CR0_ET | L.CR0_NE
        s.cr4 = L.CR4_OSFXSR | L.CR4_OSXMMEXCPT
        s.efer = 0
        if bits == 64:
            s.cr0 |= L.CR0_PG | L.CR0_WP
            s.cr3 = L.PML4
            s.cr4 |= L.CR4_PAE
            s.efer = L.EFER_LME | L.EFER_LMA
    vcpu.set_sregs(s)


class Guest:
    """A VM with RAM in slot 0 (GPA 0) and vCPUs in one mode.

    Like a real VMM, it gives every vCPU the device's supported CPUID
    (cpuid=False leaves the table empty, for tests that set their own).
    """

    def __init__(self, dev: Device, bits: int = 64, code: Union[Asm, Code, None] = None, *,
                 ram: int = L.RAM_SIZE, vcpus: int = 1, cpuid: bool = True) -> None:
        if bits not in MODES:
            raise ValueError(f"bits must be one of {MODES}")
        self.dev, self.bits = dev, bits
        # The vCPU state reset() restores, captured when the first vCPU is set up.
        self._sregs: Optional[bytes] = None
        self._xsave = self._debugregs = b""
        self.vm: Vm = dev.create_vm()
        try:
            self.vm.add_memory(0, 0, ram)
            self._write_tables()
            self.vcpus = [self.vm.create_vcpu() for _ in range(vcpus)]
            for v in self.vcpus:
                if cpuid:
                    v.set_cpuid(dev.default_cpuid)
                self.reset_vcpu(v)
            self.vcpu = self.vcpus[0]
            self.code: Optional[Code] = self.load(code) if code is not None else None
        except BaseException:
            self.vm.close()
            raise

    def close(self) -> None:
        self.vm.close()

    def __enter__(self) -> Guest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write_tables(self, page_tables: bool = True) -> None:
        stubs = EXC_STUBS[self.bits].build()
        self.vm.write(stubs.base, stubs.data)
        if self.bits == 16:
            self.vm.write(L.IVT, _idt(16).ljust(0x400, b"\0"))
            return
        self.vm.write(L.GDT, _gdt())
        self.vm.write(L.IDT, _idt(self.bits).ljust(256 * 16, b"\0"))
        self.vm.write(L.GUARD, L.GUARD_CODE)
        if self.bits == 64 and page_tables:
            self.vm.write(L.PML4, _page_tables())

    def reset_vcpu(self, vcpu: Vcpu, full: bool = False) -> None:
        """Mode, registers; with full=True also FPU and debug registers as
        they were when the guest was created."""
        if self._sregs is None:
            setup_sregs(vcpu, self.bits)
            self._sregs = bytes(ffi.buffer(vcpu.get_sregs()))
            self._xsave = bytes(ffi.buffer(vcpu.get_xsave()))
            d = ffi.new("struct kvm_debugregs *")
            vcpu.ioctl(lib.KVM_GET_DEBUGREGS, d)
            self._debugregs = bytes(ffi.buffer(d))
        else:
            vcpu.set_sregs(ffi.from_buffer("struct kvm_sregs *", bytearray(self._sregs)))
        if full:
            vcpu.set_xsave(ffi.from_buffer("struct kvm_xsave *", bytearray(self._xsave)))
            vcpu.ioctl(lib.KVM_SET_DEBUGREGS, ffi.from_buffer("struct kvm_debugregs *",
                                                              bytearray(self._debugregs)))
        vcpu.set_regs(vcpu.blank_regs(rflags=L.RFLAGS_FIXED, rsp=L.STACK_TOP, rip=L.CODE))

    def reset(self) -> None:
        """Make a used guest like new for the next test: tables and stubs
        rewritten; vCPU registers, FPU and debug registers as created;
        pending events and kvm_run inputs cleared.  Memslots, CPUID and
        MSRs other than EFER are kept."""
        self._write_tables(page_tables=False)        # tests do not change those
        self.vm.write(L.MAILBOX, bytes(32))
        for v in self.vcpus:
            v.clear_events()
            v.run.request_interrupt_window = 0
            v.run.immediate_exit = 0
            self.reset_vcpu(v, full=True)
        self.code = None

    def load(self, code: Union[Asm, Code], vcpu: Optional[Vcpu] = None, *, entry: Optional[str] = None) -> Code:
        """Copy code into guest memory and point the vCPU(s) at its entry.

        The entry is label `entry`, else `start`, else the first byte.
        With vcpu=None every vCPU starts there.
        """
        c = code.build() if isinstance(code, Asm) else code
        if c.bits != self.bits:
            raise ValueError(f"{c.name or 'snippet'} is {c.bits}-bit code, the guest is {self.bits}-bit")
        self.vm.write(c.base, c.data)
        rip = c[entry] if entry else c.entry()
        for v in [vcpu] if vcpu else self.vcpus:
            v.set_regs(rip=rip)
        self.code = c
        return c

    def load_bytes(self, data: bytes, at: int = L.CODE, vcpu: Optional[Vcpu] = None) -> None:
        """Raw guest code (e.g. a fuzzer's random bytes) at `at`, RIP there."""
        self.vm.write(at, data)
        for v in [vcpu] if vcpu else self.vcpus:
            v.set_regs(rip=at)
        self.code = None

    def point(self, vcpu: Optional[Vcpu] = None, **ptrs: tuple[str, int]) -> None:
        """Aim pointer registers at linear addresses, e.g.
        point(rsi=("ds", DATA), rdi=("es", MMIO)).  In real mode the segment
        register gets the 64 KiB-aligned base and the register the offset;
        elsewhere segments are flat and the register holds the address."""
        v = vcpu or self.vcpu
        regs = v.get_regs()
        if self.bits == 16:
            s = v.get_sregs()
            for reg, (seg, linear) in ptrs.items():
                base = linear & ~0xFFFF
                Seg(base >> 4, base=base, limit=0xFFFF, type=0x3, db=0, g=0).to_kvm(getattr(s, seg))
                setattr(regs, reg, linear - base)
            v.set_sregs(s)
        else:
            for reg, (_seg, linear) in ptrs.items():
                setattr(regs, reg, linear)
        v.set_regs(regs)

    def set_gate(self, vector: int, handler: int) -> None:
        """Point `vector` of the IDT (IVT) at `handler`."""
        size = {16: 4, 32: 8, 64: 16}[self.bits]
        base = L.IVT if self.bits == 16 else L.IDT
        self.vm.write(base + vector * size, gate(self.bits, handler))

    # Guest memory shortcuts.
    def read(self, gpa: int, n: int) -> bytes:
        return self.vm.read(gpa, n)

    def write(self, gpa: int, data: bytes) -> None:
        self.vm.write(gpa, data)

    def read_u(self, gpa: int, size: int) -> int:
        return self.vm.read_u(gpa, size)

    def write_u(self, gpa: int, size: int, value: int) -> None:
        self.vm.write_u(gpa, size, value)
