"""virtio-rng and virtio-console."""

from __future__ import annotations

from onekvm.virtio.console import INPUT_BUFFER, RX, TX, VirtioConsole
from onekvm.virtio.rng import MAX_PER_REQUEST, Rng
from onekvm.virtio.testing import Harness


def test_rng():
    with Harness(Rng()) as h:
        h.init()
        n, a = h.request(0, [], [64])
        assert n == 64 and a != b"\xaa" * 64
        n, b = h.request(0, [], [16, 16])
        assert n == 32 and b != a[:32]
        n, _ = h.request(0, [], [MAX_PER_REQUEST * 2])
        assert n == MAX_PER_REQUEST


def test_console_output():
    with Harness(VirtioConsole()) as h:
        h.init()
        assert h.request(TX, [b"hello ", b"world\n"], []) == (0, b"")
        assert bytes(h.console_out) == b"hello world\n"


def test_console_input():
    dev = VirtioConsole()
    with Harness(dev) as h:
        # Typed before the driver is up: kept.
        assert dev.receive(b"early ") == 6
        h.init()
        rx = h.queues[RX]
        head = rx.add([], [64])
        h.kick(RX)
        used = dict(rx.get_used())
        assert rx.reply(head, used[head]) == b"early "
        # No buffer posted: input waits, then fills buffers as they come (split over two).
        assert dev.receive(b"0123456789") == 10
        h.pump()
        assert rx.get_used() == []
        h1 = rx.add([], [4])
        h2 = rx.add([], [64])
        h.kick(RX)
        used = dict(rx.get_used())
        assert rx.reply(h1, used[h1]) == b"0123" and rx.reply(h2, used[h2]) == b"456789"


def test_console_input_is_bounded():
    dev = VirtioConsole()
    with Harness(dev):
        assert dev.receive(b"x" * (INPUT_BUFFER + 100)) == INPUT_BUFFER
        assert dev.receive(b"y") == 0
