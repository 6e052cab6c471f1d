"""MSI-X: the capability's state, the vector table and the pending-bit array.

Delivery goes straight to the hypervisor (an irqfd or KVM_SIGNAL_MSI, see
host.py) from whichever thread raises the vector; a masked vector only sets its pending bit and
fires when the guest unmasks it (PCI 3.0 section 6.8.2).
"""

from __future__ import annotations

import struct
from typing import Callable

ENTRY_SIZE = 16
CTRL_ENABLE = 1 << 15
CTRL_FUNCTION_MASK = 1 << 14
VECTOR_MASKED = 1

SignalMsi = Callable[[int, int], None]


class Msix:
    def __init__(self, nvec: int, signal: SignalMsi) -> None:
        self.nvec = nvec
        self.signal = signal
        self.table = bytearray(ENTRY_SIZE * nvec)
        for i in range(nvec):
            # Vectors come out of reset masked.
            struct.pack_into("<I", self.table, ENTRY_SIZE * i + 12, VECTOR_MASKED)
        self.pending = 0
        self.enabled = False
        self.function_mask = False

    @property
    def table_size(self) -> int:
        return ENTRY_SIZE * self.nvec

    @property
    def pba_size(self) -> int:
        return 8 * ((self.nvec + 63) // 64)

    def _masked(self, vec: int) -> bool:
        ctrl = struct.unpack_from("<I", self.table, ENTRY_SIZE * vec + 12)[0]
        return self.function_mask or bool(ctrl & VECTOR_MASKED)

    def control_written(self, ctrl: int) -> None:
        """The capability's Message Control word changed."""
        self.enabled = bool(ctrl & CTRL_ENABLE)
        self.function_mask = bool(ctrl & CTRL_FUNCTION_MASK)
        self._flush_pending()

    def notify(self, vec: int) -> None:
        if vec >= self.nvec:
            return
        if not self.enabled or self._masked(vec):
            self.pending |= 1 << vec
            return
        self._fire(vec)

    def _fire(self, vec: int) -> None:
        lo, hi, data = struct.unpack_from("<III", self.table, ENTRY_SIZE * vec)
        self.signal(hi << 32 | lo, data)

    def _flush_pending(self) -> None:
        if not self.enabled or self.function_mask:
            return
        vec = 0
        pend = self.pending
        while pend:
            if pend & 1 and not self._masked(vec):
                self.pending &= ~(1 << vec)
                self._fire(vec)
            pend >>= 1
            vec += 1

    # -- the BAR windows ---------------------------------------------------------
    def table_read(self, offset: int, size: int) -> int:
        if offset + size > len(self.table):
            return 0
        return int.from_bytes(self.table[offset : offset + size], "little")

    def table_write(self, offset: int, size: int, value: int) -> None:
        if offset + size > len(self.table):
            return
        self.table[offset : offset + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        if offset % ENTRY_SIZE + size > 12:  # touched a vector control word
            self._flush_pending()

    def pba_read(self, offset: int, size: int) -> int:
        return (self.pending >> (8 * offset)) & ((1 << (8 * size)) - 1)
