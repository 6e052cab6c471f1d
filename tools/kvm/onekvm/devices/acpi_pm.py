"""ACPI fixed-hardware PM registers: PM1a event/control blocks and the PM timer.

A write of SLP_EN with the S5 sleep type (the value the DSDT's \\_S5 package
names) into PM1a_CNT is how Linux's `poweroff` reaches the VMM.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost in the rig
if TYPE_CHECKING:
    from typing import Callable


PM_BASE = 0x600
PM1_EVT_LEN = 4  # status (2) + enable (2)
PM1_CNT_OFF = 4
PM1_CNT_LEN = 2
PM_TMR_OFF = 8
PM_TMR_LEN = 4
PM_LENGTH = 12
SCI_IRQ = 9

SLP_TYP_S5 = 5  # must match the \_S5 package in the DSDT
SLP_TYP_SHIFT = 10
SLP_EN = 1 << 13
SCI_EN = 1

PM_TIMER_HZ = 3579545


class AcpiPm:
    length = PM_LENGTH

    def __init__(self, poweroff: Callable[[], None], clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.name = "acpi-pm"
        self.poweroff = poweroff
        self.clock = clock
        self.sts = 0
        self.en = 0
        self.cnt = SCI_EN  # no SMI_CMD: the platform is always in ACPI mode

    def read(self, offset: int, size: int) -> int:
        regs = self.sts | (self.en << 16) | (self.cnt << 32)
        if offset >= PM_TMR_OFF:
            ticks = self.clock() * PM_TIMER_HZ // 1_000_000_000
            return ((ticks & 0xFFFFFF) >> (8 * (offset - PM_TMR_OFF))) & ((1 << (8 * size)) - 1)
        return (regs >> (8 * offset)) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        for i in range(size):
            self._write_byte(offset + i, (value >> (8 * i)) & 0xFF)
        if offset <= PM1_CNT_OFF + 1 and offset + size > PM1_CNT_OFF:
            if self.cnt & SLP_EN:
                typ = (self.cnt >> SLP_TYP_SHIFT) & 7
                self.cnt &= ~SLP_EN
                if typ == SLP_TYP_S5:
                    self.poweroff()

    def _write_byte(self, off: int, byte: int) -> None:
        if off < 2:  # status bits are write-one-to-clear
            self.sts &= ~(byte << (8 * off))
        elif off < 4:
            shift = 8 * (off - 2)
            self.en = (self.en & ~(0xFF << shift)) | (byte << shift)
        elif off < 6:
            shift = 8 * (off - 4)
            self.cnt = (self.cnt & ~(0xFF << shift)) | (byte << shift)
            self.cnt |= SCI_EN
