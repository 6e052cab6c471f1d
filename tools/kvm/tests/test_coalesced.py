"""The coalesced PIO ring drain: order, wrap-around, DLAB writes, a corrupt ring."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

import pytest

abi = pytest.importorskip("onekvm.abi", reason="onekvm._abi is not built")

from onekvm.bus import IoBus, MmioBus  # noqa: E402
from onekvm.devices import uart  # noqa: E402
from onekvm.irq import NullIrqLine  # noqa: E402
from onekvm.machine import Machine  # noqa: E402

ffi = abi.ffi


def fake_machine():
    page = ffi.new("char[4096]")
    ring = ffi.cast("struct kvm_coalesced_mmio_ring *", page)
    lock = threading.RLock()
    out: list[int] = []
    io = IoBus(None, False, lock)
    u = uart.Uart(NullIrqLine(4), out.append)
    io.register(uart.COM1_BASE, uart.Uart.length, u)
    m = SimpleNamespace(
        _ring=ring,
        _ring_max=(4096 - ffi.sizeof("struct kvm_coalesced_mmio_ring")) // ffi.sizeof("struct kvm_coalesced_mmio"),
        lock=lock,
        io=io,
        mmio=MmioBus(None, False, lock),
        _page=page,
    )
    return m, ring, u, out


def push(m, ring, port: int, value: int, size: int = 1) -> None:
    """What the kernel does for a write into the zone."""
    e = ring.coalesced_mmio[ring.last]
    e.phys_addr = port
    e.len = size
    e.pio = 1
    ffi.buffer(e.data, 8)[0:8] = value.to_bytes(8, "little")
    ring.last = (ring.last + 1) % m._ring_max


def test_drain_delivers_in_order_and_empties_the_ring():
    m, ring, _, out = fake_machine()
    for ch in b"hello":
        push(m, ring, uart.COM1_BASE, ch)
    Machine.drain_coalesced(m)
    assert bytes(out) == b"hello"
    assert ring.first == ring.last == 5
    Machine.drain_coalesced(m)  # nothing new: nothing happens
    assert bytes(out) == b"hello"


def test_drain_wraps_around_the_end_of_the_page():
    m, ring, _, out = fake_machine()
    ring.first = ring.last = m._ring_max - 2
    for ch in b"wrap":
        push(m, ring, uart.COM1_BASE, ch)
    assert ring.last == 2
    Machine.drain_coalesced(m)
    assert bytes(out) == b"wrap"
    assert ring.first == 2


def test_divisor_latch_write_lands_before_dlab_is_cleared():
    """LCR writes exit (and drain first), so a coalesced DLL write sees DLAB as the guest set it."""
    m, ring, u, out = fake_machine()
    u.write(uart.LCR, 1, uart.LCR_DLAB | 0x03)
    push(m, ring, uart.COM1_BASE, 0x01)  # DLL = 1 (115200 baud)
    Machine.drain_coalesced(m)  # the exit for the next LCR write drains first
    u.write(uart.LCR, 1, 0x03)
    assert u.dll == 0x01 and out == []


def test_a_ring_index_outside_the_page_is_ignored():
    m, ring, _, out = fake_machine()
    ring.first = 0
    ring.last = 10_000
    Machine.drain_coalesced(m)
    assert out == [] and ring.first == 0


class LoopStub:
    """What Machine._loop touches, with a guest that does not take input yet."""

    def __init__(self, console) -> None:
        self.console = console
        self._wake_r, self._wake_w = os.pipe()
        self.control = None
        self.stopping = False
        self._pending_input = b""
        self._ring = None
        self.offers = 0
        self.accept = False

    def _deliver_input(self, data: bytes) -> None:
        self.offers += 1
        data = self._pending_input + data
        self._pending_input = b"" if self.accept else data

    def drain_coalesced(self) -> None:
        pass


def test_event_loop_waits_instead_of_spinning_on_pending_input():
    """Typed input the guest does not take yet, stdin at EOF (CI's `input=`): retried per tick, no busy loop."""
    from onekvm.console import Console

    r, w = os.pipe()
    os.write(w, b"echo RX\n")
    os.close(w)
    stub = LoopStub(Console(in_fd=r, out_fd=None))
    t = threading.Thread(target=Machine._loop, args=(stub,))
    t.start()
    time.sleep(0.6)
    held = stub._pending_input
    offers_while_waiting = stub.offers
    stub.accept = True  # the guest's driver opens the port
    time.sleep(0.3)
    stub.stopping = True
    t.join(5)
    os.close(r)
    assert held == b"echo RX\n"
    # One offer per FLUSH_INTERVAL tick (~12 in 0.6 s); a loop polling the
    # readable EOF pipe would offer it thousands of times.
    assert offers_while_waiting < 40
    assert stub._pending_input == b"" and stub.console.eof
