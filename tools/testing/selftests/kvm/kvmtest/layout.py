# SPDX-License-Identifier: GPL-2.0-only
"""Guest-physical layout of the test guests (all identity mapped).

Everything a real-mode guest needs sits below 64 KiB so that CS = DS = SS = 0
work; long mode maps the first 4 GiB with 2 MiB pages.

    0x00000  IVT (real mode)
    0x00500  MAILBOX: the exception stubs store vector, error code, RIP, CR2
    0x01000  GDT            (selectors below)
    0x02000  IDT            (256 gates)
    0x03000  TSS
    0x04000  exception stubs (vectors 0-31 -> report on PORT_EXC)
    0x05000  stack ...      STACK_TOP = 0x8000
    0x08000  CODE           (default load address of a snippet, 32 KiB)
    0x10000  DATA           (64 KiB scratch, less its last 16 bytes:)
    0x1fff0  GUARD          hlt x 14, jmp . (32/64-bit guests)
    0x20000  page tables    (PML4, PDPT, 4 PDs)
    0x26000  free RAM ...   up to RAM_SIZE
    0xd0000  MMIO           (never backed by a slot in the default guest)
"""

from __future__ import annotations

PAGE = 0x1000

IVT = 0x0
MAILBOX = 0x500
GDT = 0x1000
IDT = 0x2000
TSS = 0x3000
EXC_STUBS = 0x4000
STACK_TOP = 0x8000
CODE = 0x8000
DATA = 0x10000
# Code that runs off its end through DATA's zeroes stops here instead of
# executing the page tables: QEMU 10 (the rig's CPU) spins forever
# translating an instruction that crosses from a page-table page into the
# next page (vmtest.rst, "QEMU version").  One-byte hlts first, so any
# alignment lands on them; the jmp keeps a resumed guest from going on.
GUARD = 0x1FFF0
GUARD_CODE = b"\xf4" * 14 + b"\xeb\xfe"
PML4 = 0x20000
PDPT = 0x21000
PD = 0x22000            # 4 page directories: 0-4 GiB
FREE = 0x26000
RAM_SIZE = 0x80000
MMIO = 0xD0000
MMIO_HIGH = 0xFEB00000  # an address above RAM reachable from 32/64-bit mode

# Ports with a fixed meaning for every guest.
PORT_EXC = 0xEE         # the exception stubs report here (see MAILBOX)
PORT_DONE = 0xEF        # conventional "test finished" port

# GDT selectors
SEL_CODE64 = 0x08
SEL_CODE32 = 0x10
SEL_DATA = 0x18
SEL_CODE16 = 0x20
SEL_DATA16 = 0x28
SEL_TSS = 0x30          # 16 bytes in long mode

# Control register / EFER bits the library uses.
CR0_PE, CR0_MP, CR0_ET, CR0_NE, CR0_WP, CR0_NW, CR0_CD, CR0_PG = (
    1, 1 << 1, 1 << 4, 1 << 5, 1 << 16, 1 << 29, 1 << 30, 1 << 31)
CR4_PAE, CR4_OSFXSR, CR4_OSXMMEXCPT, CR4_OSXSAVE = 1 << 5, 1 << 9, 1 << 10, 1 << 18
EFER_SCE, EFER_LME, EFER_LMA, EFER_NXE, EFER_SVME = 1, 1 << 8, 1 << 10, 1 << 11, 1 << 12
RFLAGS_FIXED, RFLAGS_IF, RFLAGS_DF = 0x2, 1 << 9, 1 << 10

# Defined for every snippet with `.set NAME, value`.
ASM_DEFS: dict[str, int] = {
    "MAILBOX": MAILBOX, "GDT": GDT, "IDT": IDT, "STACK_TOP": STACK_TOP,
    "CODE": CODE, "DATA": DATA, "FREE": FREE, "RAM_SIZE": RAM_SIZE,
    "MMIO": MMIO, "MMIO_HIGH": MMIO_HIGH, "PORT_EXC": PORT_EXC, "PORT_DONE": PORT_DONE,
    "SEL_CODE64": SEL_CODE64, "SEL_CODE32": SEL_CODE32, "SEL_DATA": SEL_DATA,
    "SEL_CODE16": SEL_CODE16, "SEL_DATA16": SEL_DATA16,
}
