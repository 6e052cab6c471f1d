"""Port I/O and MMIO buses: devices claim address ranges, exits are dispatched here."""

from __future__ import annotations

import bisect
import threading
import time

from onekvm import log

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost in the rig
if TYPE_CHECKING:
    from typing import Protocol

    from onekvm.stats import Stats

    class BusDevice(Protocol):
        """What a device on a bus implements; offsets are relative to its base."""

        name: str

        def read(self, offset: int, size: int) -> int: ...

        def write(self, offset: int, size: int, value: int) -> None: ...


_ALL_ONES = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF, 8: 0xFFFFFFFFFFFFFFFF}


class Bus:
    """Range-to-device map shared by the port I/O and MMIO flavours.

    Lookups are a bisect over sorted range starts. Every access holds the
    bus lock: device models are written single-threaded, and vCPU threads
    plus the event loop call them concurrently.
    """

    kind = "bus"

    def __init__(
        self, stats: Stats | None = None, debug_unhandled: bool = False, lock: threading.RLock | None = None
    ) -> None:
        self._starts: list[int] = []
        self._ranges: list[tuple[int, int, BusDevice]] = []
        self.lock = lock if lock is not None else threading.RLock()
        self.stats = stats
        self.debug_unhandled = debug_unhandled
        self._warned: set[int] = set()

    def register(self, base: int, length: int, dev: BusDevice) -> None:
        if length <= 0:
            raise ValueError("empty range")
        i = bisect.bisect_right(self._starts, base)
        if i > 0 and self._ranges[i - 1][1] > base:
            raise ValueError(f"{self.kind} range {base:#x} of {dev.name} overlaps {self._ranges[i - 1][2].name}")
        if i < len(self._ranges) and base + length > self._ranges[i][0]:
            raise ValueError(f"{self.kind} range {base:#x} of {dev.name} overlaps {self._ranges[i][2].name}")
        self._starts.insert(i, base)
        self._ranges.insert(i, (base, base + length, dev))

    def unregister(self, base: int) -> None:
        i = bisect.bisect_left(self._starts, base)
        if i < len(self._starts) and self._starts[i] == base:
            del self._starts[i]
            del self._ranges[i]

    def lookup(self, addr: int) -> tuple[int, BusDevice] | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0:
            start, end, dev = self._ranges[i]
            if addr < end:
                return start, dev
        return None

    def devices(self) -> list[tuple[int, int, BusDevice]]:
        return list(self._ranges)

    def _unhandled(self, what: str, addr: int, size: int, value: int | None = None) -> None:
        if not self.debug_unhandled:
            return
        if value is None:
            log.warning("unhandled %s read %#x size %d", self.kind, addr, size)
        else:
            log.warning("unhandled %s write %#x size %d value %#x", self.kind, addr, size, value)

    def read(self, addr: int, size: int) -> int:
        hit = self.lookup(addr)
        if hit is None:
            self._unhandled("read", addr, size)
            return _ALL_ONES.get(size, 0)
        base, dev = hit
        with self.lock:
            if self.stats is None:
                return dev.read(addr - base, size)
            t0 = time.perf_counter()
            try:
                return dev.read(addr - base, size)
            finally:
                self.stats.device_time(dev.name, time.perf_counter() - t0)

    def write(self, addr: int, size: int, value: int) -> None:
        hit = self.lookup(addr)
        if hit is None:
            self._unhandled("write", addr, size, value)
            return
        base, dev = hit
        with self.lock:
            if self.stats is None:
                dev.write(addr - base, size, value)
                return
            t0 = time.perf_counter()
            try:
                dev.write(addr - base, size, value)
            finally:
                self.stats.device_time(dev.name, time.perf_counter() - t0)


class IoBus(Bus):
    """Port I/O: at most 64 KiB of ports, so each port maps straight to its device."""

    kind = "ioport"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.ports: dict[int, tuple[int, BusDevice]] = {}

    def register(self, base: int, length: int, dev: BusDevice) -> None:
        super().register(base, length, dev)
        for port in range(base, base + length):
            self.ports[port] = (base, dev)

    def unregister(self, base: int) -> None:
        hit = self.ports.get(base)
        if hit is not None and hit[0] == base:
            end = next(e for s, e, _ in self._ranges if s == base)
            for port in range(base, end):
                self.ports.pop(port, None)
        super().unregister(base)

    def lookup(self, addr: int) -> tuple[int, BusDevice] | None:
        return self.ports.get(addr)


class MmioBus(Bus):
    kind = "mmio"
