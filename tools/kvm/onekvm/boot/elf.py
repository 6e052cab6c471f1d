"""Uncompressed ELF vmlinux: PT_LOAD segments at their physical addresses."""

from __future__ import annotations

import struct

from onekvm.errors import UserError
from onekvm.record import record

ELF_MAGIC = b"\x7fELF"
ELFCLASS64 = 2
ELFDATA2LSB = 1
EM_X86_64 = 62
PT_LOAD = 1

# The kernel's virtual base; e_entry may be given in either form.
KERNEL_VIRT_BASE = 0xFFFFFFFF80000000


@record
class Segment:
    paddr: int
    data: bytes | memoryview  # a view into the file's bytes: a vmlinux is tens of MiB, copied once, into the guest
    memsz: int


@record
class ElfKernel:
    entry: int
    segments: list[Segment]

    @property
    def end(self) -> int:
        return max(s.paddr + s.memsz for s in self.segments)

    @property
    def start(self) -> int:
        return min(s.paddr for s in self.segments)


def is_elf(data: bytes | memoryview) -> bool:
    return bytes(data[:4]) == ELF_MAGIC


def parse(data: bytes | memoryview, name: str = "kernel") -> ElfKernel:
    if len(data) < 64 or data[:4] != ELF_MAGIC:
        raise UserError(f"{name}: not an ELF file")
    if data[4] != ELFCLASS64 or data[5] != ELFDATA2LSB:
        raise UserError(f"{name}: not a 64-bit little-endian ELF")
    (e_machine,) = struct.unpack_from("<H", data, 18)
    if e_machine != EM_X86_64:
        raise UserError(f"{name}: ELF is not for x86_64 (machine {e_machine})")
    (e_entry,) = struct.unpack_from("<Q", data, 24)
    (e_phoff,) = struct.unpack_from("<Q", data, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    segments = []
    view = memoryview(data)
    for i in range(e_phnum):
        off = e_phoff + i * e_phentsize
        if off + 56 > len(data):
            raise UserError(f"{name}: truncated ELF program headers")
        p_type, _flags, p_offset, _vaddr, p_paddr, p_filesz, p_memsz, _align = struct.unpack_from(
            "<IIQQQQQQ", data, off
        )
        if p_type != PT_LOAD or p_memsz == 0:
            continue
        if p_offset + p_filesz > len(data):
            raise UserError(f"{name}: truncated ELF segment")
        segments.append(Segment(p_paddr, view[p_offset : p_offset + p_filesz], p_memsz))
    if not segments:
        raise UserError(f"{name}: ELF has no loadable segments")
    entry = e_entry - KERNEL_VIRT_BASE if e_entry >= KERNEL_VIRT_BASE else e_entry
    return ElfKernel(entry, segments)
