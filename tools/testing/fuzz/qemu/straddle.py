#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Does this CPU store a page-straddling FNSTENV where it was addressed?

A reproducer for the QEMU bug of 0003-access-straddling-stores.patch, run
as root in a Linux guest of the QEMU under test (the rig's L1), no KVM
needed: a 32-bit FNSTENV image (28 bytes) stored at the last byte of a
page must put its other 27 bytes at the start of the next virtual page.
QEMU 9.0 to 10.0 (TCG) put them into the page that *physically* follows
the first one.  The script lays out three pages it owns: A, then B
virtually after A, and V physically after A (PFNs from
/proc/self/pagemap), and looks where the bytes went.

Exit status: 0 stored right, 1 stored into V (the bug), 2 could not set
up (not root, or no physically adjacent pair of pages found).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import sys

PAGE = mmap.PAGESIZE
POOL_PAGES = 1024
MREMAP_MAYMOVE = 1
MREMAP_FIXED = 2
MADV_NOHUGEPAGE = 15
FNSTENV_SIZE = 28
# fnstenv [rdi]; ret  (64-bit mode: the 28-byte image)
CODE = bytes((0xD9, 0x37, 0xC3))

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                      ctypes.c_int, ctypes.c_int, ctypes.c_long)
libc.mremap.restype = ctypes.c_void_p
libc.mremap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t,
                        ctypes.c_int, ctypes.c_void_p)
libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
MAP_FAILED = ctypes.c_void_p(-1).value


class SetupError(Exception):
    """The layout could not be built here (exit status 2)."""


def _check(ret: int | None, what: str) -> int:
    if ret is None or ret == MAP_FAILED:
        raise SetupError(f"{what}: {os.strerror(ctypes.get_errno())}")
    return ret


def anon(pages: int, prot: int) -> int:
    """Map *pages* private anonymous pages."""
    return _check(libc.mmap(None, pages * PAGE, prot,
                            mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0),
                  "mmap")


def pfn(pagemap: int, vaddr: int) -> int:
    """The page frame behind *vaddr*, 0 if unknown (not root)."""
    entry = int.from_bytes(os.pread(pagemap, 8, vaddr // PAGE * 8), "little")
    return entry & ((1 << 55) - 1) if entry >> 63 else 0


def move(src: int, dst: int) -> None:
    """Move one page's mapping (and its frame) from *src* to *dst*."""
    _check(libc.mremap(src, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, dst),
           "mremap")


def layout(pagemap: int) -> tuple[int, int, int]:
    """Return (R, V, PFN(B)): A at R, B at R + PAGE, V at PFN(A) + 1."""
    rw = mmap.PROT_READ | mmap.PROT_WRITE
    pool = anon(POOL_PAGES, rw)
    libc.madvise(pool, POOL_PAGES * PAGE, MADV_NOHUGEPAGE)
    ctypes.memset(pool, 0x5A, POOL_PAGES * PAGE)
    frames = {pfn(pagemap, pool + i * PAGE): pool + i * PAGE
              for i in range(POOL_PAGES)}
    if 0 in frames:
        raise SetupError("no PFNs in /proc/self/pagemap (run as root)")
    for frame, a in frames.items():
        v = frames.get(frame + 1)
        if v is None:
            continue
        b = next((p for p in frames.values() if p not in (a, v)), None)
        if b is None:
            break
        r = anon(2, 0)  # PROT_NONE: a hole to move A and B into
        move(a, r)
        move(b, r + PAGE)
        if pfn(pagemap, r) != frame or pfn(pagemap, v) != frame + 1:
            raise SetupError("the frames moved under mremap")
        return r, v, pfn(pagemap, r + PAGE)
    raise SetupError(f"no physically adjacent pair among {POOL_PAGES} pages")


def fnstenv(addr: int) -> None:
    """Execute FNSTENV [addr] in this process."""
    code = anon(1, mmap.PROT_READ | mmap.PROT_WRITE)
    ctypes.memmove(code, CODE, len(CODE))
    if libc.mprotect(code, PAGE, mmap.PROT_READ | mmap.PROT_EXEC):
        raise SetupError(f"mprotect: {os.strerror(ctypes.get_errno())}")
    ctypes.CFUNCTYPE(None, ctypes.c_void_p)(code)(addr)


def main() -> int:
    try:
        pagemap = os.open("/proc/self/pagemap", os.O_RDONLY)
        r, v, b_frame = layout(pagemap)
    except (OSError, SetupError) as err:
        print(f"straddle: cannot set up: {err}")
        return 2
    tail = FNSTENV_SIZE - 1
    ctypes.memset(r, 0x11, PAGE)
    ctypes.memset(r + PAGE, 0x22, PAGE)
    ctypes.memset(v, 0x33, PAGE)
    fnstenv(r + PAGE - 1)
    b_head = ctypes.string_at(r + PAGE, tail)
    v_head = ctypes.string_at(v, tail)
    where = f"A pfn {pfn(pagemap, r):#x}, B pfn {b_frame:#x}, V pfn {pfn(pagemap, v):#x}"
    if v_head != b"\x33" * tail:
        print(f"straddle: FAIL: {tail} bytes of FNSTENV at A's last byte went to "
              f"V, the page physically after A ({where}): {v_head.hex(' ')}")
        return 1
    if b_head == b"\x22" * tail:
        print(f"straddle: FAIL: FNSTENV at A's last byte left B unwritten ({where})")
        return 1
    print(f"straddle: PASS: FNSTENV at A's last byte went on into B ({where}): "
          f"{b_head.hex(' ')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
