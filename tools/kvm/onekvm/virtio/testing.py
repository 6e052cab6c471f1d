"""A fake guest driver for host-side tests: rings in plain memory, no VM.

DriverQueue plays the driver half of a split ring (it can also write any
malformed descriptor a test wants); Harness wires a device to a transport
with recording interrupt sinks and runs the worker's events on the test's
thread, so a test is deterministic and needs no hypervisor.
"""

from __future__ import annotations

import struct
from typing import Any

from onekvm.memory import GuestMemory
from onekvm.virtio.device import F_VERSION_1, VirtioDevice
from onekvm.virtio.host import Host
from onekvm.virtio.pci import (
    COMMON_FIELDS,
    DEVICE_OFF,
    ISR_OFF,
    NOTIFY_MULT,
    NOTIFY_OFF,
    S_ACKNOWLEDGE,
    S_DRIVER,
    S_DRIVER_OK,
    S_FEATURES_OK,
    VirtioPciDevice,
)
from onekvm.virtio.queue import DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE

_FIELDS = {name: (off, size) for off, size, name in COMMON_FIELDS}


class Allocator:
    def __init__(self, mem: GuestMemory, start: int) -> None:
        self.mem = mem
        self.next = start

    def __call__(self, size: int, align: int = 16) -> int:
        addr = (self.next + align - 1) & ~(align - 1)
        self.next = addr + max(size, 1)
        return addr


class DriverQueue:
    """The driver's side of one split ring."""

    def __init__(self, mem: GuestMemory, alloc: Allocator, index: int, size: int) -> None:
        self.mem = mem
        self.alloc = alloc
        self.index = index
        self.size = size
        self.desc = alloc(16 * size, 16)
        self.avail = alloc(6 + 2 * size, 2)
        self.used = alloc(6 + 8 * size, 4)
        self.avail_idx = 0
        self.last_used = 0
        self.next_desc = 0
        self.buffers: dict[int, list[tuple[int, int]]] = {}  # head -> writable (addr, len)

    # -- raw access, for crafted rings ---------------------------------------------------
    def write_desc(
        self, i: int, addr: int, length: int, flags: int = 0, nxt: int = 0, table: int | None = None
    ) -> None:
        base = self.desc if table is None else table
        self.mem.write(base + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def publish(self, head: int) -> None:
        slot = self.avail_idx % self.size
        self.mem.write(self.avail + 4 + 2 * slot, struct.pack("<H", head))
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.mem.write(self.avail + 2, struct.pack("<H", self.avail_idx))

    def set_avail_idx(self, idx: int) -> None:
        self.avail_idx = idx & 0xFFFF
        self.mem.write(self.avail + 2, struct.pack("<H", self.avail_idx))

    def set_avail_flags(self, flags: int) -> None:
        self.mem.write(self.avail, struct.pack("<H", flags))

    def set_used_event(self, idx: int) -> None:
        self.mem.write(self.avail + 4 + 2 * self.size, struct.pack("<H", idx & 0xFFFF))

    def avail_event(self) -> int:
        return struct.unpack("<H", self.mem.read(self.used + 4 + 8 * self.size, 2))[0]

    def used_idx(self) -> int:
        return struct.unpack("<H", self.mem.read(self.used + 2, 2))[0]

    # -- the normal driver path ---------------------------------------------------------------
    def _take(self) -> int:
        i = self.next_desc
        self.next_desc = (self.next_desc + 1) % self.size
        return i

    def add(self, out: list[bytes], in_sizes: list[int], indirect: bool = False) -> int:
        """Post a chain of driver-written buffers then device-writable ones; returns its head."""
        segs: list[tuple[int, int, int]] = []
        for data in out:
            addr = self.alloc(len(data))
            self.mem.write(addr, data)
            segs.append((addr, len(data), 0))
        writable = []
        for n in in_sizes:
            addr = self.alloc(n)
            self.mem.fill(addr, n, 0xAA)
            segs.append((addr, n, DESC_F_WRITE))
            writable.append((addr, n))
        if indirect:
            table = self.alloc(16 * len(segs))
            for i, (addr, n, fl) in enumerate(segs):
                more = DESC_F_NEXT if i + 1 < len(segs) else 0
                self.write_desc(i, addr, n, fl | more, i + 1, table=table)
            head = self._take()
            self.write_desc(head, table, 16 * len(segs), DESC_F_INDIRECT)
        else:
            idx = [self._take() for _ in segs]
            for k, (addr, n, fl) in enumerate(segs):
                more = DESC_F_NEXT if k + 1 < len(segs) else 0
                self.write_desc(idx[k], addr, n, fl | more, idx[k + 1] if more else 0)
            head = idx[0]
        self.buffers[head] = writable
        self.publish(head)
        return head

    def get_used(self) -> list[tuple[int, int]]:
        """(head, written) of every chain the device returned since the last call."""
        out = []
        while self.last_used != self.used_idx():
            slot = self.last_used % self.size
            out.append(struct.unpack("<II", self.mem.read(self.used + 4 + 8 * slot, 8)))
            self.last_used = (self.last_used + 1) & 0xFFFF
        self.set_used_event(self.last_used)  # as Linux: interrupt me for the next one
        return out

    def reply(self, head: int, written: int | None = None) -> bytes:
        """What the device wrote into the chain's writable buffers."""
        data = b"".join(self.mem.read(a, n) for a, n in self.buffers[head])
        return data if written is None else data[:written]


class Harness:
    """A device on a transport, driven from the test's thread."""

    def __init__(self, dev: VirtioDevice, mem_mib: int = 16, msix: bool = False, gsi: int = 5, **host: Any) -> None:
        self.mem = GuestMemory()
        self.mem.add(0, mem_mib << 20)
        self.alloc = Allocator(self.mem, 0x10000)
        self.levels: list[tuple[int, int]] = []
        self.msis: list[tuple[int, int]] = []
        self.console_out = bytearray()
        self.host = Host(
            mem=self.mem,
            set_level=lambda g, lvl: self.levels.append((g, lvl)),
            signal_msi=(lambda a, d: self.msis.append((a, d))) if msix else None,
            console_write=self.console_out.extend,
            **host,
        )
        self.dev = dev
        self.t = VirtioPciDevice(dev, self.host, gsi)
        self.queues: list[DriverQueue] = []

    def close(self) -> None:
        self.t.close()
        self.mem.close()

    def __enter__(self) -> Harness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- registers -------------------------------------------------------------------------------
    def read(self, name: str) -> int:
        off, size = _FIELDS[name]
        if size == 8:
            return self.t.bar_read(off, 4) | self.t.bar_read(off + 4, 4) << 32
        return self.t.bar_read(off, size)

    def write(self, name: str, value: int) -> None:
        off, size = _FIELDS[name]
        if size == 8:  # as Linux does it: two 32-bit halves
            self.t.bar_write(off, 4, value & 0xFFFFFFFF)
            self.t.bar_write(off + 4, 4, value >> 32)
        else:
            self.t.bar_write(off, size, value)

    def device_features(self) -> int:
        self.write("device_feature_select", 0)
        lo = self.read("device_feature")
        self.write("device_feature_select", 1)
        return lo | self.read("device_feature") << 32

    def config(self, offset: int, size: int) -> int:
        return self.t.bar_read(DEVICE_OFF + offset, size)

    def isr(self) -> int:
        return self.t.bar_read(ISR_OFF, 1)

    @property
    def status(self) -> int:
        return self.read("device_status")

    # -- driver initialisation (section 3.1.1) -------------------------------------------------------
    def init(
        self, features: int | None = None, sizes: list[int] | None = None, vectors: bool = False, driver_ok: bool = True
    ) -> int:
        self.write("device_status", S_ACKNOWLEDGE)
        self.write("device_status", S_ACKNOWLEDGE | S_DRIVER)
        offered = self.device_features()
        want = offered if features is None else features | F_VERSION_1
        for sel in (0, 1):
            self.write("driver_feature_select", sel)
            self.write("driver_feature", (want >> (32 * sel)) & 0xFFFFFFFF)
        self.write("device_status", S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK)
        if not self.status & S_FEATURES_OK:
            return self.status
        n = self.read("num_queues")
        for i in range(n):
            self.write("queue_select", i)
            size = self.read("queue_size")
            if sizes is not None:
                size = sizes[i]
                self.write("queue_size", size)
            q = DriverQueue(self.mem, self.alloc, i, size)
            self.write("queue_desc", q.desc)
            self.write("queue_driver", q.avail)
            self.write("queue_device", q.used)
            if vectors:
                self.write("queue_msix_vector", i + 1)
            self.write("queue_enable", 1)
            self.queues.append(q)
        if vectors:
            self.write("msix_config", 0)
        if driver_ok:
            self.write("device_status", S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK)
        self.pump()
        return self.status

    def kick(self, q: int) -> None:
        self.t.bar_write(NOTIFY_OFF + NOTIFY_MULT * q, 2, q)
        self.pump()

    def pump(self, timeout: float = 0) -> int:
        """Run the worker's pending events here; returns how many ran."""
        total = 0
        while True:
            n = self.t.worker.run_once(timeout)
            total += n
            if not n:
                return total
            timeout = 0

    def request(self, q: int, out: list[bytes], in_sizes: list[int], indirect: bool = False) -> tuple[int, bytes]:
        """Post one chain, kick, and return (written, reply bytes)."""
        dq = self.queues[q]
        head = dq.add(out, in_sizes, indirect)
        self.kick(q)
        used = dict(dq.get_used())
        if head not in used:
            raise AssertionError(f"chain {head} not returned (status {self.status:#x})")
        return used[head], dq.reply(head, used[head])
