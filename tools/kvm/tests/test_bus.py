import pytest
from onekvm.bus import IoBus
from onekvm.stats import Stats


class Dev:
    def __init__(self, name="d"):
        self.name = name
        self.log = []

    def read(self, offset, size):
        self.log.append(("r", offset, size))
        return 0x42

    def write(self, offset, size, value):
        self.log.append(("w", offset, size, value))


def test_dispatch_with_offsets():
    b = IoBus()
    d = Dev()
    b.register(0x3F8, 8, d)
    assert b.read(0x3FD, 1) == 0x42
    b.write(0x3F8, 1, 0x41)
    assert d.log == [("r", 5, 1), ("w", 0, 1, 0x41)]


def test_unhandled_reads_all_ones():
    b = IoBus()
    assert b.read(0x2F8, 1) == 0xFF
    assert b.read(0x2F8, 2) == 0xFFFF
    assert b.read(0x2F8, 4) == 0xFFFFFFFF
    b.write(0x2F8, 1, 0)  # ignored


def test_overlap_refused():
    b = IoBus()
    b.register(0x60, 1, Dev("a"))
    b.register(0x64, 1, Dev("b"))
    with pytest.raises(ValueError, match="overlaps"):
        b.register(0x5F, 2, Dev("c"))
    with pytest.raises(ValueError, match="overlaps"):
        b.register(0x64, 1, Dev("c"))
    b.register(0x61, 3, Dev("gap"))


def test_unregister():
    b = IoBus()
    b.register(0x100, 4, Dev())
    b.unregister(0x100)
    assert b.lookup(0x100) is None


def test_debug_ioport_logs(capsys):
    b = IoBus(debug_unhandled=True)
    b.read(0x2E8, 1)
    assert "unhandled ioport read 0x2e8" in capsys.readouterr().err


def test_stats_time_per_device():
    s = Stats()
    b = IoBus(stats=s)
    b.register(0x70, 2, Dev("rtc"))
    b.read(0x71, 1)
    b.write(0x70, 1, 0)
    assert s.dev_calls["rtc"] == 2
