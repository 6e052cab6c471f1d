"""8254 PIT (ports 0x40-0x43) and port 0x61, for `--irqchip user`.

Counters are computed from a monotonic clock rather than ticked, so the
model costs nothing between guest accesses. Channel 0 drives IRQ0: the
machine's timer thread asks `next_irq()` for the deadline and calls
`expire()` when it passes.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost in the rig
if TYPE_CHECKING:
    from typing import Callable


PIT_BASE = 0x40
PORT_B = 0x61
PIT_HZ = 1193182
NS = 1_000_000_000

RW_LATCH = 0
RW_LSB = 1
RW_MSB = 2
RW_WORD = 3


def _ticks(ns: int) -> int:
    return ns * PIT_HZ // NS


def _ns(ticks: int) -> int:
    return -(-ticks * NS // PIT_HZ)  # round up: never fire early


class Channel:
    def __init__(self, gate: bool) -> None:
        self.count = 0x10000
        self.mode = 0
        self.rw = RW_WORD
        self.bcd = False
        self.gate = gate
        self.load_ns = 0
        self.armed = False  # a count has been written since the mode was set
        self.write_msb_next = False
        self.write_lsb = 0
        self.read_msb_next = False
        self.latched: list[int] = []
        self.status_latched: int | None = None
        self.null_count = True

    def elapsed(self, now: int) -> int:
        return _ticks(now - self.load_ns)

    def counter(self, now: int) -> int:
        if not self.armed:
            return self.count & 0xFFFF
        d = self.elapsed(now)
        if self.mode in (2, 6):
            value = self.count - d % self.count
        elif self.mode in (3, 7):
            value = self.count - (2 * d) % self.count
        else:
            value = (self.count - d) & 0xFFFF
        return value & 0xFFFF

    def out(self, now: int) -> bool:
        if not self.armed:
            return self.mode != 0
        d = self.elapsed(now)
        mode = self.mode & 3 if self.mode >= 6 else self.mode
        if mode == 0:
            return d >= self.count
        if mode == 1:
            return d >= self.count
        if mode == 2:
            return d % self.count != self.count - 1
        if mode == 3:
            return d % self.count < (self.count + 1) // 2
        # modes 4 and 5: high except one clock at terminal count
        return d != self.count

    def next_edge_ns(self, now: int) -> int | None:
        """Time of the next rising edge of OUT (what IRQ0 latches), or None."""
        if not self.armed:
            return None
        d = self.elapsed(now)
        mode = self.mode & 3 if self.mode >= 6 else self.mode
        if mode in (0, 1):
            return self.load_ns + _ns(self.count) if d < self.count else None
        if mode in (4, 5):
            return self.load_ns + _ns(self.count + 1) if d < self.count + 1 else None
        # Periodic: OUT rises at every multiple of count (mode 2 after the
        # one-clock low pulse, mode 3 at the start of each high half).
        period = self.count
        n = d // period + 1
        return self.load_ns + _ns(n * period)

    def load(self, value: int, now: int) -> None:
        self.count = value if value else 0x10000
        self.load_ns = now
        self.armed = True
        self.null_count = False


class Pit:
    length = 4

    def __init__(
        self,
        irq0: Callable[[], None] | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
        reprogrammed: Callable[[], None] | None = None,
    ) -> None:
        self.name = "pit"
        self.clock = clock
        self.irq0 = irq0 or (lambda: None)
        self.reprogrammed = reprogrammed or (lambda: None)
        self.channels = [Channel(gate=True), Channel(gate=True), Channel(gate=False)]
        self.port_b = 0
        self.refresh = False
        self._deadline: int | None = None
        self.irqs = 0

    # -- timer for channel 0 -------------------------------------------
    def next_irq(self) -> int | None:
        """Monotonic ns deadline of the next IRQ0 edge."""
        return self._deadline

    def _rearm(self, now: int) -> None:
        self._deadline = self.channels[0].next_edge_ns(now)
        self.reprogrammed()

    def expire(self, now: int | None = None) -> bool:
        """Deliver IRQ0 if its deadline passed; at most one edge however late."""
        now = self.clock() if now is None else now
        if self._deadline is None or now < self._deadline:
            return False
        self.irqs += 1
        self.irq0()
        self._deadline = self.channels[0].next_edge_ns(now)
        return True

    # -- ports -------------------------------------------------------------
    def _control(self, value: int, now: int) -> None:
        sel = value >> 6
        if sel == 3:  # read-back
            for i in range(3):
                if not value & (2 << i):
                    continue
                ch = self.channels[i]
                if not value & 0x20 and not ch.latched:
                    self._latch(ch, now)
                if not value & 0x10 and ch.status_latched is None:
                    ch.status_latched = (
                        (0x80 if ch.out(now) else 0)
                        | (0x40 if ch.null_count else 0)
                        | (ch.rw << 4)
                        | (ch.mode << 1)
                        | int(ch.bcd)
                    )
            return
        ch = self.channels[sel]
        rw = (value >> 4) & 3
        if rw == RW_LATCH:
            if not ch.latched:
                self._latch(ch, now)
            return
        ch.rw = rw
        ch.mode = (value >> 1) & 7
        ch.bcd = bool(value & 1)
        ch.armed = False
        ch.null_count = True
        ch.write_msb_next = False
        ch.read_msb_next = False
        if sel == 0:
            self._rearm(now)

    def _latch(self, ch: Channel, now: int) -> None:
        c = ch.counter(now)
        if ch.rw == RW_LSB:
            ch.latched = [c & 0xFF]
        elif ch.rw == RW_MSB:
            ch.latched = [c >> 8]
        else:
            ch.latched = [c & 0xFF, c >> 8]

    def _read_counter(self, ch: Channel, now: int) -> int:
        if ch.status_latched is not None:
            value, ch.status_latched = ch.status_latched, None
            return value
        if ch.latched:
            return ch.latched.pop(0)
        c = ch.counter(now)
        if ch.rw == RW_LSB:
            return c & 0xFF
        if ch.rw == RW_MSB:
            return c >> 8
        msb = ch.read_msb_next
        ch.read_msb_next = not msb
        return c >> 8 if msb else c & 0xFF

    def _write_counter(self, index: int, value: int, now: int) -> None:
        ch = self.channels[index]
        if ch.rw == RW_LSB:
            ch.load(value, now)
        elif ch.rw == RW_MSB:
            ch.load(value << 8, now)
        elif not ch.write_msb_next:
            ch.write_lsb = value
            ch.write_msb_next = True
            return
        else:
            ch.write_msb_next = False
            ch.load(ch.write_lsb | (value << 8), now)
        if index == 0:
            self._rearm(now)

    def read(self, offset: int, size: int) -> int:
        if offset == 3:
            return 0xFF
        ch = self.channels[offset]
        if ch.status_latched is not None or ch.latched:
            return self._read_counter(ch, 0)  # latched values need no clock
        return self._read_counter(ch, self.clock())

    def write(self, offset: int, size: int, value: int) -> None:
        # Reading the clock is a system call on some hosts (an emulated HPET
        # in the rig's L1): only the accesses that start or sample a count pay.
        value &= 0xFF
        if offset == 3:
            self._control(value, self.clock() if value >> 6 == 3 or not (value >> 4) & 3 else 0)
            return
        ch = self.channels[offset]
        if ch.rw == RW_WORD and not ch.write_msb_next:
            ch.write_lsb = value  # first half of a 16-bit count: nothing starts yet
            ch.write_msb_next = True
            return
        self._write_counter(offset, value, self.clock())

    # -- port 0x61: channel 2 gate and output, speaker ---------------------
    def read_port_b(self) -> int:
        now = self.clock()
        # The refresh bit toggles on every read; some delay loops watch it.
        self.refresh = not self.refresh
        ch2 = self.channels[2]
        return (self.port_b & 0x0F) | (0x10 if self.refresh else 0) | (0x20 if ch2.out(now) else 0)

    def write_port_b(self, value: int) -> None:
        now = self.clock()
        ch2 = self.channels[2]
        gate = bool(value & 1)
        if gate and not ch2.gate and ch2.armed:
            ch2.load_ns = now  # a rising gate restarts the count
        ch2.gate = gate
        self.port_b = value & 0x0F

    def port_b_device(self) -> "PortB":
        return PortB(self)


class PortB:
    length = 1

    def __init__(self, pit: Pit) -> None:
        self.pit = pit
        self.name = pit.name

    def read(self, offset: int, size: int) -> int:
        return self.pit.read_port_b()

    def write(self, offset: int, size: int, value: int) -> None:
        self.pit.write_port_b(value)
