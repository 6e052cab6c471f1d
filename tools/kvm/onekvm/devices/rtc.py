"""MC146818 CMOS real-time clock at ports 0x70/0x71, showing host time (UTC)."""

from __future__ import annotations

import time

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost in the rig
if TYPE_CHECKING:
    from typing import Callable


INDEX_PORT = 0x70

REG_SECONDS = 0x00
REG_MINUTES = 0x02
REG_HOURS = 0x04
REG_WEEKDAY = 0x06
REG_DAY = 0x07
REG_MONTH = 0x08
REG_YEAR = 0x09
REG_A = 0x0A
REG_B = 0x0B
REG_C = 0x0C
REG_D = 0x0D
REG_CENTURY = 0x32  # the FADT's CENTURY field names this index

B_SET = 0x80
B_DM_BINARY = 0x04
B_24H = 0x02

D_VRT = 0x80  # battery good

_TIME_REGS = (REG_SECONDS, REG_MINUTES, REG_HOURS, REG_WEEKDAY, REG_DAY, REG_MONTH, REG_YEAR, REG_CENTURY)


def _timegm(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    """calendar.timegm without importing calendar (and datetime, locale): startup time counts in the rig."""
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return ((days * 24 + hour) * 60 + minute) * 60 + second


def _bcd(v: int) -> int:
    return ((v // 10) << 4) | (v % 10)


def _from_bcd(v: int) -> int:
    return (v >> 4) * 10 + (v & 0x0F)


class Rtc:
    length = 2

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.name = "rtc"
        self.clock = clock
        self.index = 0
        self.cmos = bytearray(128)
        self.cmos[REG_A] = 0x26  # 32.768 kHz time base, 1024 Hz rate
        self.cmos[REG_B] = B_24H
        self.cmos[REG_D] = D_VRT
        self.offset = 0.0  # guest-set time minus host time, seconds

    def _now(self) -> time.struct_time:
        return time.gmtime(self.clock() + self.offset)

    def _encode(self, v: int) -> int:
        return v if self.cmos[REG_B] & B_DM_BINARY else _bcd(v)

    def _decode(self, v: int) -> int:
        return v if self.cmos[REG_B] & B_DM_BINARY else _from_bcd(v)

    def _time_reg(self, reg: int) -> int:
        t = self._now()
        if reg == REG_SECONDS:
            return self._encode(t.tm_sec % 60)
        if reg == REG_MINUTES:
            return self._encode(t.tm_min)
        if reg == REG_HOURS:
            if self.cmos[REG_B] & B_24H:
                return self._encode(t.tm_hour)
            h = t.tm_hour % 12 or 12
            return self._encode(h) | (0x80 if t.tm_hour >= 12 else 0)
        if reg == REG_WEEKDAY:
            return self._encode((t.tm_wday + 1) % 7 + 1)  # Sunday = 1
        if reg == REG_DAY:
            return self._encode(t.tm_mday)
        if reg == REG_MONTH:
            return self._encode(t.tm_mon)
        if reg == REG_YEAR:
            return self._encode(t.tm_year % 100)
        return self._encode(t.tm_year // 100)

    def read_reg(self, reg: int) -> int:
        if reg in _TIME_REGS:
            return self._time_reg(reg)
        if reg == REG_A:
            # Update-in-progress is never set: reads are atomic here.
            return self.cmos[REG_A] & 0x7F
        if reg == REG_C:
            value = self.cmos[REG_C]
            self.cmos[REG_C] = 0  # reading clears the flags
            return value
        return self.cmos[reg]

    def write_reg(self, reg: int, value: int) -> None:
        if reg in _TIME_REGS:
            self._set_time_field(reg, value)
        elif reg in (REG_C, REG_D):
            return  # read-only
        else:
            self.cmos[reg] = value

    def _set_time_field(self, reg: int, value: int) -> None:
        t = self._now()
        fields = [t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec]
        if reg == REG_HOURS:
            pm = value & 0x80
            h = self._decode(value & 0x7F)
            if not self.cmos[REG_B] & B_24H:
                h = (h % 12) + (12 if pm else 0)
            fields[3] = h
        elif reg == REG_WEEKDAY:
            return
        else:
            v = self._decode(value)
            if reg == REG_SECONDS:
                fields[5] = v
            elif reg == REG_MINUTES:
                fields[4] = v
            elif reg == REG_DAY:
                fields[2] = v
            elif reg == REG_MONTH:
                fields[1] = v
            elif reg == REG_YEAR:
                fields[0] = fields[0] // 100 * 100 + v
            elif reg == REG_CENTURY:
                fields[0] = v * 100 + fields[0] % 100
        if not (1 <= fields[1] <= 12 and 1 <= fields[2] <= 31 and fields[3] < 24 and fields[4] < 60 and fields[5] < 60):
            return  # mid-update garbage: keep the old time
        self.offset = _timegm(*fields) - self.clock()

    def read(self, offset: int, size: int) -> int:
        if offset == 0:
            return self.index
        return self.read_reg(self.index)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == 0:
            self.index = value & 0x7F  # bit 7 masks NMI
        else:
            self.write_reg(self.index, value & 0xFF)
