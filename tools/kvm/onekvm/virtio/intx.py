"""INTx lines that several virtio devices may share (a wired OR).

The hypervisor keeps one level per GSI for all of userspace, so two devices
on one line must not lower it while the other still asserts it. Callers
hold the machine lock (the transport always does), which orders the calls.
"""

from __future__ import annotations

from onekvm.irq import SetLevel

# gsi -> the lines asserting it; one dict per machine (Host.intx_pins).
Pins = dict[int, set[int]]


class IntxLine:
    """A device's INTA# wired to `gsi`."""

    def __init__(self, gsi: int, set_level: SetLevel, pins: Pins) -> None:
        self.gsi = gsi
        self._set_level = set_level
        self._pin = pins.setdefault(gsi, set())
        self.level = 0

    def set(self, level: bool | int) -> None:
        level = 1 if level else 0
        if level == self.level:
            return
        self.level = level
        before = bool(self._pin)
        if level:
            self._pin.add(id(self))
        else:
            self._pin.discard(id(self))
        after = bool(self._pin)
        if before != after:
            self._set_level(self.gsi, int(after))
