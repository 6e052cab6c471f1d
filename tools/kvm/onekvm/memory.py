"""Guest physical memory: anonymous host mappings and bounds-checked access."""

from __future__ import annotations

import mmap

from onekvm.errors import GuestError
from onekvm.record import record


@record
class Region:
    """One contiguous range of guest RAM backed by one host mapping."""

    gpa: int
    size: int
    mm: mmap.mmap
    view: memoryview

    @property
    def end(self) -> int:
        return self.gpa + self.size

    @property
    def host_addr(self) -> int:
        # The hypervisor needs the userspace address of the mapping (cffi, not
        # ctypes: the bindings are loaded anyway, ctypes would cost start-up).
        from onekvm.abi import ffi

        return int(ffi.cast("uintptr_t", ffi.from_buffer(self.mm)))


class GuestMemory:
    """Guest RAM as a list of regions, addressed by guest physical address."""

    def __init__(self) -> None:
        self.regions: list[Region] = []

    def add(self, gpa: int, size: int) -> Region:
        # MAP_NORESERVE: a 4 GiB guest that touches 100 MiB costs 100 MiB.
        mm = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_NORESERVE", 0))
        region = Region(gpa, size, mm, memoryview(mm))
        self.regions.append(region)
        self.regions.sort(key=lambda r: r.gpa)
        return region

    @property
    def total(self) -> int:
        return sum(r.size for r in self.regions)

    def locate(self, gpa: int, length: int) -> tuple[Region, int] | None:
        """The region holding all of gpa+length and gpa's offset in it; None when no one region does."""
        for r in self.regions:
            off = gpa - r.gpa
            if off >= 0 and off + length <= r.size:
                return r, off
        return None

    def _find(self, gpa: int, length: int) -> tuple[Region, int]:
        found = self.locate(gpa, length)
        if found is None:
            raise GuestError(f"guest physical range {gpa:#x}+{length:#x} is not RAM")
        return found

    def contains(self, gpa: int, length: int = 1) -> bool:
        return self.locate(gpa, length) is not None

    def view(self, gpa: int, length: int) -> memoryview:
        """A writable view of guest memory; raises GuestError outside RAM."""
        if gpa < 0 or length < 0:
            raise GuestError(f"bad guest range {gpa:#x}+{length:#x}")
        r, off = self._find(gpa, length)
        return r.view[off : off + length]

    def read(self, gpa: int, length: int) -> bytes:
        return bytes(self.view(gpa, length))

    def write(self, gpa: int, data: bytes | bytearray | memoryview) -> None:
        self.view(gpa, len(data))[:] = data

    def fill(self, gpa: int, length: int, byte: int = 0) -> None:
        self.view(gpa, length)[:] = bytes([byte]) * length

    def close(self) -> None:
        for r in self.regions:
            r.view.release()
            r.mm.close()
        self.regions.clear()
