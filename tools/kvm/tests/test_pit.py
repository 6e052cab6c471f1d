from onekvm.devices import pit

NS = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.t = 1_000 * NS

    def __call__(self) -> int:
        return self.t

    def advance_ticks(self, ticks: int) -> None:
        self.t += ticks * NS // pit.PIT_HZ + 1


def test_mode2_periodic_deadlines():
    clk = Clock()
    irqs = []
    p = pit.Pit(irq0=lambda: irqs.append(clk.t), clock=clk)
    p.write(3, 1, 0x34)  # channel 0, lobyte/hibyte, mode 2
    p.write(0, 1, 0x9C)
    p.write(0, 1, 0x2E)  # 11932: ~100 Hz
    first = p.next_irq()
    assert first is not None
    assert abs(first - clk.t - 10_000_000) < 10_000
    assert not p.expire(first - 1)
    assert p.expire(first)
    assert len(irqs) == 1
    second = p.next_irq()
    assert abs(second - first - 10_000_000) < 10_000
    # Late by five periods: one interrupt, next deadline in the future.
    assert p.expire(second + 5 * 10_000_000)
    assert len(irqs) == 2
    assert p.next_irq() > second + 5 * 10_000_000


def test_counter_counts_down_and_latch():
    clk = Clock()
    p = pit.Pit(clock=clk)
    p.write(3, 1, 0x34)
    p.write(0, 1, 0x00)
    p.write(0, 1, 0x10)  # 0x1000
    clk.advance_ticks(0x100)
    p.write(3, 1, 0x00)  # latch channel 0
    clk.advance_ticks(0x100)
    lo = p.read(0, 1)
    hi = p.read(0, 1)
    value = lo | hi << 8
    assert 0x0EF0 <= value <= 0x0F00


def test_mode0_oneshot_and_out2_on_port_b():
    clk = Clock()
    p = pit.Pit(clock=clk)
    p.write_port_b(0x01)  # gate 2 on, speaker off
    p.write(3, 1, 0xB0)  # channel 2, lobyte/hibyte, mode 0
    p.write(2, 1, 0x00)
    p.write(2, 1, 0x01)  # 256 ticks
    assert not p.read_port_b() & 0x20
    clk.advance_ticks(300)
    assert p.read_port_b() & 0x20


def test_mode4_oneshot_fires_once():
    clk = Clock()
    irqs = []
    p = pit.Pit(irq0=lambda: irqs.append(1), clock=clk)
    p.write(3, 1, 0x38)  # channel 0, lo/hi, mode 4 (Linux's oneshot)
    p.write(0, 1, 100)
    p.write(0, 1, 0)
    d = p.next_irq()
    assert d is not None
    assert p.expire(d)
    assert p.next_irq() is None
    assert irqs == [1]


def test_readback_status():
    clk = Clock()
    p = pit.Pit(clock=clk)
    p.write(3, 1, 0x34)
    p.write(0, 1, 0x10)
    p.write(0, 1, 0x00)
    p.write(3, 1, 0xE2)  # read-back: latch status only, channel 0
    status = p.read(0, 1)
    assert status & 0x3F == (3 << 4) | (2 << 1)


def test_reprogram_callback():
    calls = []
    p = pit.Pit(clock=Clock(), reprogrammed=lambda: calls.append(1))
    p.write(3, 1, 0x34)
    p.write(0, 1, 1)
    p.write(0, 1, 0)
    assert calls
