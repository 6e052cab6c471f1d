"""Crafted rings against every device type: each ends in NEEDS_RESET with one log line.

The matrix is device x bad ring x interrupt path. A broken ring must put the
device into DEVICE_NEEDS_RESET, log exactly one warning, raise the
configuration interrupt (ISR bit 1 on the INTx line without MSI-X, the
config vector with it), stop serving the queue, and come back after a reset.
"""

from __future__ import annotations

import logging
import os
import socket
import struct

import pytest
from onekvm.virtio.blk import Block, DiskSpec
from onekvm.virtio.console import VirtioConsole
from onekvm.virtio.msix import CTRL_ENABLE
from onekvm.virtio.net import HDR_LEN, Net, NetSpec
from onekvm.virtio.ninep import NineP, ShareSpec
from onekvm.virtio.pci import MSIX_TABLE_OFF, S_DRIVER_OK, S_NEEDS_RESET
from onekvm.virtio.queue import DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE
from onekvm.virtio.rng import Rng
from onekvm.virtio.testing import Harness

GSI = 11
CONFIG_VECTOR_DATA = 0x40


def _blk(tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(64 * 512))
    return Block(DiskSpec(str(image))), 0


def _blk_python(tmp_path):
    """blk without the C fast path: Python's own checks (the fast path hands bad chains to them)."""
    image = tmp_path / "disk.img"
    image.write_bytes(bytes(64 * 512))
    return Block(DiskSpec(str(image)), fast=False), 0


def _9p(tmp_path):
    return NineP(ShareSpec(str(tmp_path), "t")), 0


def _rng(tmp_path):
    return Rng(), 0


def _console(tmp_path):
    return VirtioConsole(output=lambda data: None), 1  # the transmit queue: popped on every kick


def _net(tmp_path):
    host, guest_side = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    guest_side.setblocking(False)
    tmp_path.joinpath("peer").write_text(str(host.detach()))  # closed by the test
    return Net(NetSpec(tapif="fake0", mac=b"\x52\x54\x00\x00\x00\x01", fd=guest_side.detach())), 1


DEVICES = {"blk": _blk, "blk-python": _blk_python, "9p": _9p, "rng": _rng, "console": _console, "net": _net}


def _one(dq, addr, length, flags=0, nxt=0, i=0):
    dq.write_desc(i, addr, length, flags, nxt)
    dq.publish(i)


# name -> (crafts the bad ring on DriverQueue dq, what the log line says)
BAD_RINGS = {
    "self-loop": (lambda dq: _one(dq, 0x100, 16, DESC_F_NEXT | DESC_F_WRITE, 0), "loops"),
    "two-loop": (
        lambda dq: (dq.write_desc(1, 0x200, 16, DESC_F_NEXT | DESC_F_WRITE, 0),
                    _one(dq, 0x100, 16, DESC_F_NEXT | DESC_F_WRITE, 1)),
        "loops",
    ),
    "buffer-outside-ram": (lambda dq: _one(dq, 1 << 40, 64, DESC_F_WRITE), "outside guest RAM"),
    "buffer-wraps": (lambda dq: _one(dq, 0xFFFFFFFFFFFFFF00, 0x200, DESC_F_WRITE), "outside guest RAM"),
    "head-beyond-size": (lambda dq: dq.publish(dq.size + 1), "beyond queue size"),
    "next-beyond-size": (lambda dq: _one(dq, 0x100, 16, DESC_F_NEXT | DESC_F_WRITE, dq.size), "beyond queue size"),
    "avail-jump": (lambda dq: dq.set_avail_idx(dq.size + 5), "jumped"),
    "indirect-loop": (
        lambda dq: (dq.write_desc(0, 0x100, 16, DESC_F_NEXT | DESC_F_WRITE, 0, table=0x8000),
                    _one(dq, 0x8000, 16, DESC_F_INDIRECT)),
        "loops",
    ),
    "indirect-odd-length": (lambda dq: _one(dq, 0x8000, 24, DESC_F_INDIRECT), "multiple of 16"),
    "indirect-outside-ram": (lambda dq: _one(dq, 1 << 40, 32, DESC_F_INDIRECT), "outside guest RAM"),
    "indirect-oversize": (lambda dq: _one(dq, 0x8000, 16 * 40000, DESC_F_INDIRECT), "indirect table of"),
}


@pytest.fixture(params=["intx", "msix", "intx-inline", "msix-poll"])
def irq(request):
    return request.param


def _harness(kind: str, tmp_path, irq: str) -> tuple[Harness, int]:
    dev, q = DEVICES[kind](tmp_path)
    msix = irq.startswith("msix")
    poll_us = 2000 if irq.endswith("-poll") else 0  # the worker polls the ring after each batch
    h = Harness(dev, msix=msix, gsi=GSI, inline_kicks=irq.endswith("-inline"), poll_us=poll_us)
    if msix:
        t = h.t
        for v in range(t.msix.nvec):
            t.bar_write(MSIX_TABLE_OFF + 16 * v, 4, 0xFEE00000)
            t.bar_write(MSIX_TABLE_OFF + 16 * v + 8, 4, CONFIG_VECTOR_DATA + v)
            t.bar_write(MSIX_TABLE_OFF + 16 * v + 12, 4, 0)  # unmasked
        t.config_write(h.t.msix_cap + 2, 2, CTRL_ENABLE)
    assert h.init(vectors=msix) & S_DRIVER_OK
    return h, q


def _close(h: Harness, tmp_path) -> None:
    h.close()
    peer = tmp_path / "peer"
    if peer.exists():
        os.close(int(peer.read_text()))


def _check_broken(h: Harness, irq: str, caplog, match: str) -> None:
    assert h.status & S_NEEDS_RESET
    lines = [r.getMessage() for r in caplog.records if "needs reset" in r.getMessage()]
    assert len(lines) == 1, lines
    assert match in lines[0], lines[0]
    if irq.startswith("intx"):
        assert h.levels and h.levels[-1] == (GSI, 1)  # the line is up...
        assert h.isr() & 2  # ...for a configuration change; reading the ISR lowers it
        assert h.levels[-1] == (GSI, 0)
    else:
        assert (0xFEE00000, CONFIG_VECTOR_DATA) in h.msis  # msix_config is vector 0
        assert not [lv for lv in h.levels if lv[1]]


def _recovers(h: Harness, kind: str) -> None:
    """After a reset the device serves a good request again (where one is easy to make)."""
    h.write("device_status", 0)
    assert h.status == 0
    h.queues.clear()
    assert h.init() & S_DRIVER_OK and not h.status & S_NEEDS_RESET
    if kind == "rng":
        written, data = h.request(0, [], [32])
        assert written == 32 and len(data) == 32
    elif kind.startswith("blk"):
        written, data = h.request(0, [struct.pack("<IIQ", 0, 0, 0)], [512, 1])
        assert written == 513 and data[-1] == 0


@pytest.mark.parametrize("bad", sorted(BAD_RINGS))
@pytest.mark.parametrize("kind", sorted(DEVICES))
def test_bad_ring(kind, bad, irq, tmp_path, caplog):
    h, q = _harness(kind, tmp_path, irq)
    try:
        craft, match = BAD_RINGS[bad]
        dq = h.queues[q]
        dq.alloc.next = max(dq.alloc.next, 0x10000)
        with caplog.at_level(logging.WARNING, logger="onekvm.virtio"):
            craft(dq)
            h.kick(q)
            # More kicks on every queue: no second line, no work done.
            for i in range(len(h.queues)):
                h.kick(i)
            _check_broken(h, irq, caplog, match)
        _recovers(h, kind)
    finally:
        _close(h, tmp_path)


# Well-formed rings whose buffers have the wrong shape or size for the device.
def _blk_no_status(h):
    h.queues[0].add([struct.pack("<IIQ", 0, 0, 0)], [])
    h.kick(0)


def _blk_short_header(h):
    h.queues[0].add([b"\0" * 8], [1])
    h.kick(0)


def _9p_no_reply_room(h):
    h.queues[0].add([struct.pack("<IBH", 19, 100, 0) + b"\0" * 12], [4])
    h.kick(0)


def _rng_readable(h):
    h.queues[0].add([b"\0" * 16], [])
    h.kick(0)


def _rng_empty(h):
    _one(h.queues[0], 0x100, 0, DESC_F_WRITE)  # one zero-length buffer: nothing to fill
    h.kick(0)


def _console_tx_writable(h):
    h.queues[1].add([b"hi"], [8])
    h.kick(1)


def _console_rx_readable(h):
    h.queues[0].add([b"x" * 8], [])
    h.kick(0)
    h.dev.receive(b"input")
    h.pump(0.2)


def _net_tx_headerless(h):
    h.queues[1].add([b"abc"], [])
    h.kick(1)


def _net_rx_tiny(h, tmp_path):
    h.queues[0].add([], [4])
    h.kick(0)
    with socket.socket(fileno=os.dup(int((tmp_path / "peer").read_text()))) as peer:
        peer.send(bytes(HDR_LEN) + b"\xff" * 60)
    h.pump(0.5)


WRONG_LENGTHS = [
    ("blk", _blk_no_status, "no header or status"),
    ("blk", _blk_short_header, "no header or status"),
    ("blk-python", _blk_no_status, "no header or status"),
    ("blk-python", _blk_short_header, "no header or status"),
    ("9p", _9p_no_reply_room, ""),
    ("rng", _rng_readable, "not write-only"),
    ("rng", _rng_empty, "not write-only"),
    ("console", _console_tx_writable, "device-writable"),
    ("console", _console_rx_readable, "not write-only"),
    ("net", _net_tx_headerless, "no header"),
    ("net", _net_rx_tiny, "cannot hold the header"),
]


@pytest.mark.parametrize("kind, craft, match", WRONG_LENGTHS, ids=[f"{k}:{c.__name__}" for k, c, _ in WRONG_LENGTHS])
def test_wrong_lengths(kind, craft, match, irq, tmp_path, caplog):
    h, _ = _harness(kind, tmp_path, irq)
    try:
        with caplog.at_level(logging.WARNING, logger="onekvm.virtio"):
            if craft is _net_rx_tiny:
                craft(h, tmp_path)
            else:
                craft(h)
            _check_broken(h, irq, caplog, match)
        _recovers(h, kind)
    finally:
        _close(h, tmp_path)
