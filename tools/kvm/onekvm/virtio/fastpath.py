"""virtio-blk requests served in C: onekvm._vring (tools/kvm/vring/vring_blk.c).

In the device worker, walking a chain and building views is most of what a
request costs in Python. The C side serves IN, OUT and FLUSH on well-formed
chains in one call and hands anything else back unconsumed, for blk.py and
queue.py (the reference) to serve or reject with their own message.
ONEKVM_VIRTIO_FAST=0 turns it off (benchmarks, debugging); without the
built extension everything stays in Python.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from onekvm.memory import GuestMemory
    from onekvm.virtio.queue import SplitQueue

try:
    from onekvm._vring import ffi, lib
except ImportError:  # a tree without the meson build: Python serves everything
    ffi = lib = None


STOP_EMPTY = lib.OKVM_STOP_EMPTY if lib is not None else 0
STOP_PYTHON = lib.OKVM_STOP_PYTHON if lib is not None else 1
STOP_BUDGET = lib.OKVM_STOP_BUDGET if lib is not None else 2


def available() -> bool:
    return lib is not None and os.environ.get("ONEKVM_VIRTIO_FAST", "1") != "0"


class BlkFastPath:
    """One virtio-blk image's C server; guest RAM and rings by host address.

    Addresses, not buffer exports: an exported mapping could not be unmapped
    at exit. The VMM unmaps guest RAM only after the device workers stopped.
    """

    def __init__(self, mem: GuestMemory, fd: int, readonly: bool, size: int) -> None:
        self._mem = mem
        self._blk = ffi.new("struct okvm_blk *", {"fd": fd, "readonly": int(readonly), "bytes": size})
        regions = mem.regions
        self._regions = ffi.new("struct okvm_region[]", len(regions))
        for i, r in enumerate(regions):
            self._regions[i].gpa = r.gpa
            self._regions[i].size = r.size
            self._regions[i].hva = ffi.cast("uint8_t *", r.host_addr)
        self._nregions = len(regions)
        self._stop = ffi.new("int *")
        self._irq = ffi.new("int *")
        self._vqs: dict[int, tuple[tuple[int, int, int, int], Any]] = {}

    def _host(self, gpa: int) -> Any:
        found = self._mem.locate(gpa, 1)
        assert found is not None  # SplitQueue.enable() checked the rings
        r, off = found
        return ffi.cast("uint8_t *", r.host_addr + off)

    def _vq(self, q: SplitQueue) -> Any:
        key = (q.desc_addr, q.avail_addr, q.used_addr, q.size)
        cached = self._vqs.get(q.index)
        if cached is not None and cached[0] == key:
            vq = cached[1]
        else:
            vq = ffi.new("struct okvm_vq *")
            vq.desc, vq.avail, vq.used = (self._host(a) for a in key[:3])
            vq.size = q.size
            self._vqs[q.index] = (key, vq)
        vq.indirect = q.indirect
        return vq

    def serve(self, q: SplitQueue, budget: int) -> tuple[int, bool]:
        """Serve up to budget chains of an enabled queue: (how many, is the next one Python's)."""
        vq = self._vq(q)
        vq.last_avail = q.last_avail
        vq.used_idx = q.used_idx
        n = lib.okvm_blk_serve(vq, self._regions, self._nregions, self._blk, budget, self._stop)
        q.last_avail = vq.last_avail
        q.used_idx = vq.used_idx
        return n, self._stop[0] == lib.OKVM_STOP_PYTHON

    def kick(self, q: SplitQueue, kick_fd: int) -> tuple[int, int, bool]:
        """A whole kick (drain, serve, re-arm, interrupt decision): (served, why it stopped, interrupt wanted).

        The queue's interrupt bookkeeping moves with it: the caller raises
        the interrupt and must not ask q.need_interrupt() for these chains.
        """
        vq = self._vq(q)
        vq.last_avail = q.last_avail
        vq.used_idx = q.used_idx
        vq.event_idx = q.event_idx
        signalled = q.signalled
        vq.has_signalled = signalled is not None
        vq.signalled = signalled or 0
        n = lib.okvm_blk_kick(vq, self._regions, self._nregions, self._blk, kick_fd, q.size, self._stop, self._irq)
        q.last_avail = vq.last_avail
        q.used_idx = vq.used_idx
        q.signalled = vq.signalled if vq.has_signalled else None
        return n, self._stop[0], bool(self._irq[0])
