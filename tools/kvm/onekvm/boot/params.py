"""boot_params, the "zero page" the 64-bit boot protocol hands the kernel in RSI."""

from __future__ import annotations

import struct

from onekvm.boot import bzimage
from onekvm.record import Factory, record

BOOT_PARAMS_SIZE = 4096

# Offsets within struct boot_params (arch/x86/include/uapi/asm/bootparam.h).
ACPI_RSDP_ADDR = 0x070
EXT_RAMDISK_IMAGE = 0x0C0
EXT_RAMDISK_SIZE = 0x0C4
EXT_CMD_LINE_PTR = 0x0C8
E820_ENTRIES = 0x1E8
SENTINEL = 0x1EF
HDR = 0x1F1
E820_TABLE = 0x2D0
E820_MAX = 128
E820_ENTRY_SIZE = 20

LOADER_TYPE_UNDEFINED = 0xFF


@record
class BootParams:
    """The inputs, kept for tests and `debug --dump`."""

    setup_header: bytes
    cmdline_addr: int
    cmdline_size: int
    e820: list[tuple[int, int, int]]
    initrd_addr: int = 0
    initrd_size: int = 0
    rsdp_addr: int = 0
    extra: dict[str, int] = Factory(dict)

    def pack(self) -> bytes:
        bp = bytearray(BOOT_PARAMS_SIZE)
        hdr = self.setup_header
        bp[HDR : HDR + len(hdr)] = hdr
        bzimage.set_field(bp, "type_of_loader", LOADER_TYPE_UNDEFINED)
        loadflags = int(bzimage.get_field(bp, "loadflags"))
        bzimage.set_field(bp, "loadflags", loadflags | bzimage.LOADFLAG_LOADED_HIGH | bzimage.LOADFLAG_CAN_USE_HEAP)
        # Heap end relative to the real-mode setup segment; unused on the
        # 64-bit entry but documented as required with CAN_USE_HEAP.
        bzimage.set_field(bp, "heap_end_ptr", 0xFE00)
        bzimage.set_field(bp, "cmd_line_ptr", self.cmdline_addr & 0xFFFFFFFF)
        struct.pack_into("<I", bp, EXT_CMD_LINE_PTR, self.cmdline_addr >> 32)
        if self.initrd_size:
            bzimage.set_field(bp, "ramdisk_image", self.initrd_addr & 0xFFFFFFFF)
            bzimage.set_field(bp, "ramdisk_size", self.initrd_size & 0xFFFFFFFF)
            struct.pack_into("<I", bp, EXT_RAMDISK_IMAGE, self.initrd_addr >> 32)
            struct.pack_into("<I", bp, EXT_RAMDISK_SIZE, self.initrd_size >> 32)
        if self.rsdp_addr:
            struct.pack_into("<Q", bp, ACPI_RSDP_ADDR, self.rsdp_addr)
        if len(self.e820) > E820_MAX:
            raise ValueError("too many e820 entries")
        bp[E820_ENTRIES] = len(self.e820)
        for i, (addr, size, kind) in enumerate(self.e820):
            struct.pack_into("<QQI", bp, E820_TABLE + i * E820_ENTRY_SIZE, addr, size, kind)
        for name, value in self.extra.items():
            bzimage.set_field(bp, name, value)
        return bytes(bp)


def synthetic_header(cmdline_size: int = 4095) -> bytes:
    """A setup header for kernels that bring none (ELF vmlinux)."""
    hdr = bytearray(0x280)
    bzimage.set_field(hdr, "boot_flag", bzimage.BOOT_FLAG)
    hdr[0x202:0x206] = bzimage.HDR_MAGIC
    bzimage.set_field(hdr, "version", 0x020F)
    bzimage.set_field(hdr, "kernel_alignment", 0x1000000)
    bzimage.set_field(hdr, "initrd_addr_max", bzimage.DEFAULT_INITRD_ADDR_MAX)
    bzimage.set_field(hdr, "cmdline_size", cmdline_size)
    hdr[0x201] = 0x6A  # header length as a bzImage's jump would encode it
    return bytes(hdr[bzimage.SETUP_HEADER_OFFSET : 0x202 + hdr[0x201]])


def unpack_e820(bp: bytes) -> list[tuple[int, int, int]]:
    n = bp[E820_ENTRIES]
    return [struct.unpack_from("<QQI", bp, E820_TABLE + i * E820_ENTRY_SIZE) for i in range(n)]
