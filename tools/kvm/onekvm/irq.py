"""Interrupt lines from device models to whichever interrupt controller the VM has."""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost in the rig
if TYPE_CHECKING:
    from typing import Callable

    SetLevel = Callable[[int, int], None]


else:
    SetLevel = "Callable[[int, int], None]"  # importable by annotation-only users (virtio)


class IrqLine:
    """One ISA/GSI line. Devices drive a level; edges come from level changes.

    The last level is remembered so a device that recomputes its state on
    every register access does not cost an ioctl per access.
    """

    def __init__(self, irq: int, set_level: SetLevel) -> None:
        self.irq = irq
        self._set_level = set_level
        self.level = 0

    def set(self, level: int) -> None:
        level = 1 if level else 0
        if level != self.level:
            self.level = level
            self._set_level(self.irq, level)

    def pulse(self) -> None:
        """An edge for edge-triggered inputs: low, high, low."""
        if self.level:
            self._set_level(self.irq, 0)
        self._set_level(self.irq, 1)
        self._set_level(self.irq, 0)
        self.level = 0


class NullIrqLine(IrqLine):
    """For device models under test without an interrupt controller."""

    def __init__(self, irq: int = 0) -> None:
        self.history: list[int] = []
        super().__init__(irq, lambda _irq, level: self.history.append(level))
