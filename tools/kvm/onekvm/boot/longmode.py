"""What a 64-bit entry needs before the first instruction: identity page
tables, a GDT with the boot protocol's selectors, and long-mode control bits."""

from __future__ import annotations

import struct

from onekvm.memory import GuestMemory
from onekvm.platform import layout
from onekvm.record import record

# Selectors the boot protocol names: __BOOT_CS = 0x10, __BOOT_DS = 0x18.
BOOT_CS = 0x10
BOOT_DS = 0x18
BOOT_TSS = 0x20

GDT = [
    0x0000000000000000,
    0x0000000000000000,
    0x00AF9B000000FFFF,  # 0x10: 64-bit code, DPL0, accessed
    0x00CF93000000FFFF,  # 0x18: flat data, DPL0, accessed
    0x00008B0000000067,  # 0x20: 64-bit TSS (busy), base 0, limit 0x67
    0x0000000000000000,  #       its upper half
]

CR0_PE = 1 << 0
CR0_ET = 1 << 4
CR0_PG = 1 << 31
CR4_PAE = 1 << 5
EFER_LME = 1 << 8
EFER_LMA = 1 << 10

PTE_PRESENT = 1 << 0
PTE_RW = 1 << 1
PTE_PS = 1 << 7


@record
class Segment:
    """Mirrors the fields of struct kvm_segment (applied through the bindings)."""

    base: int
    limit: int
    selector: int
    type: int
    present: int = 1
    dpl: int = 0
    db: int = 0
    s: int = 1
    l: int = 0  # noqa: E741 (the hardware's name for the long-mode bit)
    g: int = 1
    avl: int = 0


@record
class LongModeState:
    cs: Segment
    ds: Segment
    tr: Segment
    gdt_base: int
    gdt_limit: int
    cr0: int
    cr3: int
    cr4: int
    efer: int


def write_page_tables(mem: GuestMemory) -> int:
    """Identity-map the first 4 GiB with 2 MiB pages; returns CR3."""
    pml4 = struct.pack("<Q", layout.PDPT_ADDR | PTE_PRESENT | PTE_RW) + bytes(4088)
    mem.write(layout.PML4_ADDR, pml4)
    npd = layout.IDENTITY_MAP_SIZE >> 30
    pdpt = b"".join(struct.pack("<Q", (layout.PD_ADDR + i * 4096) | PTE_PRESENT | PTE_RW) for i in range(npd))
    mem.write(layout.PDPT_ADDR, pdpt + bytes(4096 - len(pdpt)))
    pd = b"".join(struct.pack("<Q", (i << 21) | PTE_PRESENT | PTE_RW | PTE_PS) for i in range(npd * 512))
    mem.write(layout.PD_ADDR, pd)
    return layout.PML4_ADDR


def write_gdt(mem: GuestMemory) -> tuple[int, int]:
    mem.write(layout.GDT_ADDR, b"".join(struct.pack("<Q", d) for d in GDT))
    return layout.GDT_ADDR, len(GDT) * 8 - 1


def setup(mem: GuestMemory) -> LongModeState:
    cr3 = write_page_tables(mem)
    gdt_base, gdt_limit = write_gdt(mem)
    return LongModeState(
        cs=Segment(0, 0xFFFFFFFF, BOOT_CS, type=0xB, l=1),
        ds=Segment(0, 0xFFFFFFFF, BOOT_DS, type=0x3, db=1),
        tr=Segment(0, 0x67, BOOT_TSS, type=0xB, s=0, g=0),
        gdt_base=gdt_base,
        gdt_limit=gdt_limit,
        cr0=CR0_PE | CR0_ET | CR0_PG,
        cr3=cr3,
        cr4=CR4_PAE,
        efer=EFER_LME | EFER_LMA,
    )
