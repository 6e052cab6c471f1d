"""Guest physical memory map. Everything the VMM places before the guest runs."""

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

GDT_ADDR = 0x500
BOOT_PARAMS_ADDR = 0x7000
PML4_ADDR = 0x9000
PDPT_ADDR = 0xA000
PD_ADDR = 0xB000  # four page directories: 0xB000..0xEFFF map 4 GiB
IDENTITY_MAP_SIZE = 4 * GiB
CMDLINE_ADDR = 0x20000
CMDLINE_MAX = 0x10000

EBDA_START = 0x9FC00
LOW_RAM_END = 0xA0000
BIOS_START = 0xE0000  # ACPI tables live here, where Linux also scans for the RSDP
BIOS_END = 0x100000
HIGH_RAM_START = 0x100000

# 32-bit PCI hole: RAM above 3 GiB is remapped above 4 GiB.
MMIO_HOLE_START = 0xC0000000
MMIO_HOLE_END = 0x100000000
PCI_MMIO_START = 0xC0000000
PCI_MMIO_END = 0xFEC00000
IOAPIC_ADDR = 0xFEC00000
LAPIC_ADDR = 0xFEE00000
TSS_ADDR = 0xFFFBD000  # KVM_SET_TSS_ADDR: three pages below the BIOS ROM alias

PCI_IO_START = 0xC000
PCI_IO_END = 0x10000

# Smallest guest this layout serves: page tables and boot data sit below 1 MiB
# and the kernel needs room above 16 MiB to decompress.
MIN_MEM = 32 * MiB


def ram_ranges(mem_size: int) -> list[tuple[int, int]]:
    """(gpa, size) of the RAM slots for a guest of mem_size bytes."""
    low = min(mem_size, MMIO_HOLE_START)
    ranges = [(0, low)]
    if mem_size > low:
        ranges.append((MMIO_HOLE_END, mem_size - low))
    return ranges


def e820_map(mem_size: int) -> list[tuple[int, int, int]]:
    """(addr, size, type) entries; type 1 = RAM, 2 = reserved."""
    entries = [
        (0, EBDA_START, 1),
        (EBDA_START, LOW_RAM_END - EBDA_START, 2),
        (BIOS_START, BIOS_END - BIOS_START, 2),
    ]
    low = min(mem_size, MMIO_HOLE_START)
    entries.append((HIGH_RAM_START, low - HIGH_RAM_START, 1))
    if mem_size > low:
        entries.append((MMIO_HOLE_END, mem_size - low, 1))
    return entries
