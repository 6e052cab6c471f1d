import calendar

from onekvm.devices import rtc

T = calendar.timegm((2024, 2, 29, 13, 45, 56, 0, 0, 0))  # a Thursday


def reg(r: rtc.Rtc, index: int) -> int:
    r.write(0, 1, index)
    return r.read(1, 1)


def test_bcd_time_and_date():
    r = rtc.Rtc(clock=lambda: T)
    assert reg(r, rtc.REG_SECONDS) == 0x56
    assert reg(r, rtc.REG_MINUTES) == 0x45
    assert reg(r, rtc.REG_HOURS) == 0x13
    assert reg(r, rtc.REG_DAY) == 0x29
    assert reg(r, rtc.REG_MONTH) == 0x02
    assert reg(r, rtc.REG_YEAR) == 0x24
    assert reg(r, rtc.REG_CENTURY) == 0x20
    assert reg(r, rtc.REG_WEEKDAY) == 5  # Sunday = 1


def test_binary_and_12_hour_modes():
    r = rtc.Rtc(clock=lambda: T)
    r.write(0, 1, rtc.REG_B)
    r.write(1, 1, rtc.B_DM_BINARY)  # binary, 12-hour
    assert reg(r, rtc.REG_SECONDS) == 56
    assert reg(r, rtc.REG_HOURS) == 0x80 | 1


def test_status_registers():
    r = rtc.Rtc(clock=lambda: T)
    assert not reg(r, rtc.REG_A) & 0x80  # never update-in-progress
    assert reg(r, rtc.REG_D) & rtc.D_VRT
    assert reg(r, rtc.REG_C) == 0


def test_guest_sets_time():
    now = [T]
    r = rtc.Rtc(clock=lambda: now[0])
    r.write(0, 1, rtc.REG_YEAR)
    r.write(1, 1, 0x30)
    assert reg(r, rtc.REG_YEAR) == 0x30
    now[0] += 10
    assert reg(r, rtc.REG_SECONDS) == 0x06  # 56 + 10 rolls over, the offset persists


def test_nvram_bytes_and_nmi_bit():
    r = rtc.Rtc(clock=lambda: T)
    r.write(0, 1, 0x80 | 0x40)  # bit 7 masks NMI, index 0x40
    r.write(1, 1, 0x5A)
    assert reg(r, 0x40) == 0x5A
