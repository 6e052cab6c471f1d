"""virtio-net against a fake tap (a SOCK_SEQPACKET pair keeps frame boundaries, as a tap does)."""

from __future__ import annotations

import os
import socket
import struct

import pytest
from onekvm.errors import UserError
from onekvm.virtio.net import F_MAC, HDR_LEN, RX, TX, Net, NetSpec, open_tap
from onekvm.virtio.pci import S_NEEDS_RESET
from onekvm.virtio.testing import Harness

FRAME = bytes(range(6)) * 2 + b"\x08\x00" + b"payload" * 10


@pytest.fixture
def net():
    host, guest_side = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    guest_side.setblocking(False)
    dev = Net(NetSpec(tapif="fake0", mac=b"\x52\x54\x00\x12\x34\x56", fd=guest_side.detach()))
    h = Harness(dev)
    h.init()
    yield h, host
    h.close()
    host.close()


def test_mac(net):
    h, _ = net
    assert h.device_features() & F_MAC
    assert bytes(h.config(i, 1) for i in range(6)) == b"\x52\x54\x00\x12\x34\x56"


def test_transmit(net):
    h, host = net
    hdr = bytes(HDR_LEN)
    assert h.request(TX, [hdr, FRAME[:20], FRAME[20:]], []) == (0, b"")
    assert host.recv(4096) == hdr + FRAME


def test_receive(net):
    h, host = net
    rx = h.queues[RX]
    heads = [rx.add([], [HDR_LEN + 1514]) for _ in range(2)]
    h.kick(RX)
    host.send(bytes(HDR_LEN) + FRAME)
    host.send(bytes(HDR_LEN) + FRAME[::-1])
    h.pump(0.5)
    used = dict(rx.get_used())
    assert [used[x] for x in heads] == [HDR_LEN + len(FRAME)] * 2
    got = rx.reply(heads[0], used[heads[0]])
    assert struct.unpack_from("<H", got, 10)[0] == 1  # num_buffers
    assert got[HDR_LEN:] == FRAME
    assert rx.reply(heads[1], used[heads[1]])[HDR_LEN:] == FRAME[::-1]


def test_receive_waits_for_buffers(net):
    h, host = net
    rx = h.queues[RX]
    host.send(bytes(HDR_LEN) + FRAME)
    h.pump(0.2)  # no buffers: the tap is not drained (nor busy-polled)
    assert not h.t.dev._polling
    head = rx.add([], [2048])
    h.kick(RX)
    h.pump(0.2)
    assert head in dict(rx.get_used())


def test_describe_shows_ring_and_backend_state(net):
    """The --stats report's state lines: what to read when a guest's network stalls."""
    h, host = net
    rx = h.queues[RX]
    rx.add([], [2048])
    h.kick(RX)
    host.send(bytes(HDR_LEN) + FRAME)
    h.pump(0.2)
    lines = h.t.describe()
    # The one buffer is used: the tap is not watched until the driver adds more.
    assert lines[0] == "virtio-net: status 0xf isr 1 intx 1 msix False | tap fake0 polled False held none dropped_tx 0"
    assert lines[1].startswith("  q0 size 256 taken 1 used 1 signalled 1 | avail idx 1 flags 0x0")
    assert lines[2].startswith("  q1 size 256 taken 0 used 0 signalled None | avail idx 0")
    assert "used_event" in lines[1] and "avail_event 1" in lines[1]


def test_tiny_receive_buffer_needs_reset(net):
    h, host = net
    h.queues[RX].add([], [4])
    h.kick(RX)
    host.send(bytes(HDR_LEN) + FRAME)
    h.pump(0.5)
    assert h.status & S_NEEDS_RESET


def test_headerless_transmit_needs_reset(net):
    h, _ = net
    h.queues[TX].add([b"abc"], [])
    h.kick(TX)
    assert h.status & S_NEEDS_RESET


def test_parse():
    spec = Net.parse("mode=tap,tapif=tap7,guest_mac=52:54:00:aa:bb:cc")
    assert spec.tapif == "tap7" and spec.mac == bytes.fromhex("525400aabbcc")
    assert Net.parse("tapif=t").tapif == "t"
    for bad in ("mode=user", "tapif", "mac=01:00:00:00:00:00", "mac=zz", "tapif=" + "x" * 16, "foo=1"):
        with pytest.raises(UserError):
            Net.parse(bad)


@pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="no /dev/net/tun")
def test_real_tap():
    try:
        fd, name = open_tap("okvmtest%d")
    except UserError as e:
        pytest.skip(str(e))
    os.close(fd)
    assert name.startswith("okvmtest")
