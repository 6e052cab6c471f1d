"""The virtio-pci transport: capabilities, negotiation, interrupts, ioeventfd, PCI plumbing."""

from __future__ import annotations

import struct
import threading
import time

import pytest
from onekvm.bus import IoBus, MmioBus
from onekvm.devices import pci
from onekvm.memory import GuestMemory
from onekvm.virtio.device import F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1, VirtioDevice
from onekvm.virtio.host import Host
from onekvm.virtio.msix import CTRL_ENABLE, CTRL_FUNCTION_MASK
from onekvm.virtio.pci import (
    BAR_SIZE,
    CFG_COMMON,
    CFG_DEVICE,
    CFG_ISR,
    CFG_NOTIFY,
    CFG_PCI,
    MSIX_PBA_OFF,
    MSIX_TABLE_OFF,
    NOTIFY_OFF,
    S_ACKNOWLEDGE,
    S_DRIVER,
    S_DRIVER_OK,
    S_FEATURES_OK,
    S_NEEDS_RESET,
    VirtioPciDevice,
)
from onekvm.virtio.queue import NO_VECTOR
from onekvm.virtio.testing import Harness


class Dev(VirtioDevice):
    device_id = 0x3F
    queue_sizes = (8, 16)

    def __init__(self) -> None:
        super().__init__(None, "test")
        self.features = 1 << 3
        self.config = bytearray(b"\x11\x22\x33\x44")
        self.seen: list[int] = []

    def handle(self, queue, chain):
        self.seen.append(queue.index)
        return chain.write(b"ok")


def caps(t: VirtioPciDevice) -> dict[int, tuple]:
    out = {}
    off = t.config_read(pci.CAP_PTR, 1)
    while off:
        cap_id = t.config_read(off, 1)
        if cap_id == 0x09:
            cfg_type, bar = t.config_read(off + 3, 1), t.config_read(off + 4, 1)
            offset, length = t.config_read(off + 8, 4), t.config_read(off + 12, 4)
            extra = t.config_read(off + 16, 4) if cfg_type == CFG_NOTIFY else None
            out[cfg_type] = (bar, offset, length, extra)
        else:
            out[cap_id] = (off,)
        off = t.config_read(off + 1, 1)
    return out


def test_pci_identity_and_caps():
    with Harness(Dev()) as h:
        t = h.t
        assert t.config_read(0, 2) == 0x1AF4
        assert t.config_read(2, 2) == 0x1040 + 0x3F
        assert t.config_read(pci.REVISION, 1) == 1
        assert t.config_read(0x2C, 2) == 0x1AF4
        assert t.config_read(pci.INTERRUPT_PIN, 1) == 1 and t.config_read(pci.INTERRUPT_LINE, 1) == 5
        c = caps(t)
        assert c[CFG_COMMON][:3] == (0, 0, 0x38)
        assert c[CFG_ISR][:2] == (0, 0x1000)
        assert c[CFG_DEVICE][:3] == (0, 0x2000, 4)
        assert c[CFG_NOTIFY] == (0, NOTIFY_OFF, 8, 4)
        assert CFG_PCI in c
        assert 0x11 not in c  # no MSI-X without a way to signal it


def test_feature_negotiation():
    with Harness(Dev()) as h:
        f = h.device_features()
        assert f == F_VERSION_1 | F_EVENT_IDX | F_INDIRECT_DESC | 1 << 3
        # Without VERSION_1, or with a bit the device did not offer: FEATURES_OK does not stick.
        for bad in (1 << 3, F_VERSION_1 | 1 << 4):
            h.write("device_status", 0)
            h.write("device_status", S_ACKNOWLEDGE | S_DRIVER)
            for sel in (0, 1):
                h.write("driver_feature_select", sel)
                h.write("driver_feature", (bad >> (32 * sel)) & 0xFFFFFFFF)
            h.write("device_status", S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK)
            assert not h.status & S_FEATURES_OK
        h.write("device_status", 0)
        assert h.init(features=1 << 3) & S_DRIVER_OK
        assert not h.t.queues[0].event_idx
        # Features are frozen after FEATURES_OK.
        h.write("driver_feature_select", 0)
        h.write("driver_feature", 0)
        assert h.read("driver_feature") == 1 << 3


def test_queue_registers():
    with Harness(Dev()) as h:
        assert h.read("num_queues") == 2
        h.write("queue_select", 1)
        assert h.read("queue_size") == 16
        h.write("queue_desc", 0x1234_5678_9ABC_DEF0)
        assert h.read("queue_desc") == 0x1234_5678_9ABC_DEF0
        assert h.read("queue_notify_off") == 1
        h.write("queue_msix_vector", 1)
        assert h.read("queue_msix_vector") == NO_VECTOR  # no MSI-X here
        h.write("queue_select", 7)
        assert h.read("queue_size") == 0
        h.write("queue_size", 4)  # ignored, no crash
        assert h.t.bar_read(0x2000, 4) == 0x44332211  # device config
        assert h.t.bar_read(0x2000 + 100, 4) == 0
        assert h.t.bar_read(0x7000, 4) == 0


def test_ring_registers_frozen_while_enabled():
    with Harness(Dev()) as h:
        h.init()
        h.write("queue_select", 0)
        desc = h.read("queue_desc")
        h.write("queue_desc", 0x5000)
        h.write("queue_size", 2)
        assert h.read("queue_desc") == desc and h.read("queue_size") == 8


def test_reset():
    with Harness(Dev()) as h:
        h.init()
        h.request(0, [b"x"], [2])
        assert h.t.isr
        h.write("device_status", 0)
        assert h.status == 0 and h.t.isr == 0
        assert h.levels[-1] == (5, 0)
        h.write("queue_select", 0)
        assert h.read("queue_enable") == 0 and h.read("queue_desc") == 0
        assert h.read("driver_feature") == 0


def test_kick_before_driver_ok():
    with Harness(Dev()) as h:
        h.init(driver_ok=False)
        dq = h.queues[1]
        head = dq.add([b"early"], [2])
        h.kick(1)
        assert dq.get_used() == []  # not before DRIVER_OK...
        h.write("device_status", S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK)
        h.pump()
        assert head in dict(dq.get_used())  # ...but not lost either


def test_intx_and_shared_line():
    mem = GuestMemory()
    mem.add(0, 1 << 20)
    levels = []
    host = Host(mem, set_level=lambda g, lvl: levels.append((g, lvl)))
    a, b = VirtioPciDevice(Dev(), host, 10), VirtioPciDevice(Dev(), host, 10)
    a._signal_queue(a.queues[0])
    b._signal_queue(b.queues[0])
    assert levels == [(10, 1)]
    assert a.bar_read(0x1000, 1) == 1  # ISR read acknowledges a's interrupt...
    assert levels == [(10, 1)]  # ...but b still holds the shared line
    assert b.bar_read(0x1000, 1) == 1
    assert levels == [(10, 1), (10, 0)]
    # INTx disable in the command register masks the line.
    a.config_write(pci.COMMAND, 2, pci.COMMAND_INTX_DISABLE | pci.COMMAND_MEMORY)
    a._signal_queue(a.queues[0])
    assert levels[-1] == (10, 0)
    a.config_write(pci.COMMAND, 2, pci.COMMAND_MEMORY)
    assert levels[-1] == (10, 1)
    a.close()
    b.close()
    mem.close()


def test_msix():
    with Harness(Dev(), msix=True) as h:
        t = h.t
        cap = caps(t)[0x11][0]
        assert t.config_read(cap + 2, 2) & 0x7FF == 2  # three vectors: config + two queues
        assert t.config_read(cap + 4, 4) == MSIX_TABLE_OFF and t.config_read(cap + 8, 4) == MSIX_PBA_OFF
        for v in range(3):
            base = MSIX_TABLE_OFF + 16 * v
            t.bar_write(base, 4, 0xFEE00000)
            t.bar_write(base + 4, 4, 0)
            t.bar_write(base + 8, 4, 0x30 + v)
        t.config_write(cap + 2, 2, CTRL_ENABLE)
        h.init(vectors=True)
        assert h.read("queue_msix_vector") == 2
        h.write("queue_select", 0)
        h.write("queue_msix_vector", 9)
        assert h.read("queue_msix_vector") == NO_VECTOR
        h.write("queue_msix_vector", 1)
        # Vectors come out of reset masked: pending, then delivered on unmask.
        h.request(0, [b"a"], [2])
        assert h.msis == [] and t.bar_read(MSIX_PBA_OFF, 8) == 0b10
        t.bar_write(MSIX_TABLE_OFF + 16 + 12, 4, 0)
        assert h.msis == [(0xFEE00000, 0x31)] and t.bar_read(MSIX_PBA_OFF, 8) == 0
        h.request(0, [b"a"], [2])
        assert h.msis[-1] == (0xFEE00000, 0x31)
        assert h.t.isr == 0 and not [lv for lv in h.levels if lv[1]]  # no INTx while MSI-X is on
        # Function mask holds every vector back.
        t.config_write(cap + 2, 2, CTRL_ENABLE | CTRL_FUNCTION_MASK)
        h.request(0, [b"a"], [2])
        assert len(h.msis) == 2
        t.config_write(cap + 2, 2, CTRL_ENABLE)
        assert len(h.msis) == 3


class FakeIoeventfd:
    def __init__(self) -> None:
        self.live: dict[int, int] = {}  # addr -> fd
        self.calls = 0

    def __call__(self, fd: int, addr: int, length: int, assign: bool) -> None:
        self.calls += 1
        assert length == 2
        if assign:
            assert addr not in self.live
            self.live[addr] = fd
        else:
            assert self.live.pop(addr) == fd


def test_ioeventfd_follows_the_bar():
    io, mmio = IoBus(), MmioBus()
    bus = pci.PciBus(io, mmio)
    fake = FakeIoeventfd()
    with Harness(Dev(), ioeventfd=fake) as h:
        t = h.t
        slot = bus.add(t)
        assert slot == 1
        t.place(0xC0000000)
        assert fake.live == {0xC0003000: t.kick_fds[0], 0xC0003004: t.kick_fds[1]}
        assert mmio.read(0xC0000012, 2) == 2  # num_queues through the MMIO bus
        # The guest moves the BAR (decode off while sizing, as Linux does).
        t.config_write(pci.COMMAND, 2, 0)
        assert fake.live == {}
        t.config_write(pci.BAR0, 4, 0xFFFFFFFF)
        assert t.config_read(pci.BAR0, 4) == (~(BAR_SIZE - 1)) & 0xFFFFFFFF
        t.config_write(pci.BAR0, 4, 0xD0000000)
        t.config_write(pci.COMMAND, 2, pci.COMMAND_MEMORY)
        assert sorted(fake.live) == [0xD0003000, 0xD0003004]
        assert mmio.lookup(0xC0000000) is None and mmio.lookup(0xD0000000) is not None
    assert fake.live == {}  # close deassigns


def test_pci_cfg_window():
    with Harness(Dev()) as h:
        t = h.t
        off = [o for o in _cap_offsets(t) if t.config_read(o + 3, 1) == CFG_PCI][0]
        t.config_write(off + 4, 1, 0)  # bar
        t.config_write(off + 8, 4, 0x12)  # num_queues
        t.config_write(off + 12, 4, 2)
        assert t.config_read(off + 16, 4) == 2
        t.config_write(off + 8, 4, 0x14)  # device_status
        t.config_write(off + 12, 4, 1)
        t.config_write(off + 16, 4, S_ACKNOWLEDGE)
        assert h.status == S_ACKNOWLEDGE
        t.config_write(off + 12, 4, 3)  # bad length: ignored
        assert t.config_read(off + 16, 4) == 0


def _cap_offsets(t):
    off = t.config_read(pci.CAP_PTR, 1)
    while off:
        yield off
        off = t.config_read(off + 1, 1)


def test_needs_reset_bumps_generation():
    with Harness(Dev()) as h:
        h.init()
        gen = h.read("config_generation")
        h.queues[0].set_avail_idx(100)
        h.kick(0)
        assert h.status & S_NEEDS_RESET
        assert h.read("config_generation") != gen
        # The driver writing status keeps NEEDS_RESET until it resets.
        h.write("device_status", h.status & ~S_NEEDS_RESET)
        assert h.status & S_NEEDS_RESET


def test_worker_thread():
    """The real thread: a kick from a "vCPU" thread is served and interrupts, asynchronously."""
    with Harness(Dev()) as h:
        h.init()
        h.t.start()
        dq = h.queues[0]
        head = dq.add([b"x"], [2])
        threading.Thread(target=h.t.bar_write, args=(NOTIFY_OFF, 2, 0)).start()
        deadline = time.monotonic() + 5
        while not dq.get_used() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert dq.reply(head, 2) == b"ok"
        assert (5, 1) in h.levels


def test_device_bug_needs_reset(caplog):
    class Buggy(Dev):
        def handle(self, queue, chain):
            raise ZeroDivisionError("oops")

    with Harness(Buggy()) as h:
        h.init()
        h.queues[0].add([b"x"], [1])
        h.kick(0)
        assert h.status & S_NEEDS_RESET
        assert "internal error" in h.t.broken_reason


@pytest.mark.parametrize("offset", [0x1001, 0x3000 + 8, 0x4000, 0x5000, 0x7FFC])
def test_odd_bar_accesses(offset):
    with Harness(Dev()) as h:
        assert h.t.bar_read(offset, 4) == 0
        h.t.bar_write(offset, 4, 0xFFFFFFFF)
        assert struct.pack("<I", h.t.bar_read(0, 4))


def test_inline_kicks_run_on_the_caller_and_skip_ioeventfd():
    """Host.inline_kicks: the notify write itself serves the queue; no ioeventfd is registered."""
    io, mmio = IoBus(), MmioBus()
    bus = pci.PciBus(io, mmio)
    fake = FakeIoeventfd()
    with Harness(Dev(), ioeventfd=fake, inline_kicks=True) as h:
        bus.add(h.t)
        h.t.place(0xC0000000)
        assert fake.live == {} and fake.calls == 0
        h.init()
        dq = h.queues[0]
        head = dq.add([b"x"], [4])
        h.t.bar_write(NOTIFY_OFF, 2, 0)  # no pump: served before the write returns
        assert head in dict(dq.get_used())
        assert h.levels[-1] == (5, 1)
        assert h.t.worker.run_once(0) == 0  # nothing was handed to the worker
