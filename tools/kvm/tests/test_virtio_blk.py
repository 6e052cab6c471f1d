"""virtio-blk on a raw image: read, write, flush, read-only, discard, bad requests."""

from __future__ import annotations

import os
import struct
import threading

import pytest
from onekvm.errors import UserError
from onekvm.virtio import fastpath
from onekvm.virtio.blk import (
    F_DISCARD,
    F_FLUSH,
    F_RO,
    S_IOERR,
    S_OK,
    S_UNSUPP,
    T_DISCARD,
    T_FLUSH,
    T_GET_ID,
    T_IN,
    T_OUT,
    Block,
    DiskSpec,
)
from onekvm.virtio.pci import S_NEEDS_RESET
from onekvm.virtio.testing import Harness

SECTORS = 64


@pytest.fixture(autouse=True, params=["fast", "python"])
def served_by(request, monkeypatch):
    """Every test twice: through the C fast path (the default) and with Python serving everything."""
    if request.param == "fast" and fastpath.lib is None:
        pytest.fail("onekvm._vring is not built: meson compile -C build/meson")
    monkeypatch.setenv("ONEKVM_VIRTIO_FAST", "1" if request.param == "fast" else "0")
    return request.param


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(i % 251 for i in range(SECTORS * 512)))
    return path


def _disk(image, ro=False):
    h = Harness(Block(DiskSpec(str(image), ro)))
    h.init()
    return h


def hdr(rtype, sector=0):
    return struct.pack("<IIQ", rtype, 0, sector)


def status(h, out, in_sizes):
    """The status byte: the last writable byte, whatever the used length says."""
    dq = h.queues[0]
    head = dq.add(out, in_sizes)
    h.kick(0)
    assert head in dict(dq.get_used())
    return dq.reply(head)[-1]


def test_config_and_features(image):
    with _disk(image) as h:
        assert h.config(0, 4) | h.config(4, 4) << 32 == SECTORS
        assert h.config(20, 4) == 512
        f = h.device_features()
        assert f & F_FLUSH and not f & F_RO


def test_read(image):
    with _disk(image) as h:
        n, data = h.request(0, [hdr(T_IN, 2)], [512, 512, 1])
        assert n == 1025
        assert data[:1024] == image.read_bytes()[1024:2048]
        assert data[1024] == S_OK
        # Indirect, and a status byte sharing the last data buffer.
        n, data = h.request(0, [hdr(T_IN, 0)], [513], indirect=True)
        assert data[:512] == image.read_bytes()[:512] and data[512] == S_OK


def test_write_and_flush(image):
    with _disk(image) as h:
        payload = os.urandom(1536)
        n, data = h.request(0, [hdr(T_OUT, 10), payload[:1000], payload[1000:]], [1])
        assert (n, data) == (1, bytes([S_OK]))
        assert image.read_bytes()[5120 : 5120 + 1536] == payload
        assert h.request(0, [hdr(T_FLUSH)], [1])[1] == bytes([S_OK])


def test_out_of_range_and_odd_lengths(image):
    with _disk(image) as h:
        assert status(h, [hdr(T_IN, SECTORS)], [512, 1]) == S_IOERR
        assert status(h, [hdr(T_IN, SECTORS - 1)], [1024, 1]) == S_IOERR
        assert h.request(0, [hdr(T_OUT, 2**60), b"x" * 512], [1])[1] == bytes([S_IOERR])
        assert h.request(0, [hdr(T_OUT, 0), b"x" * 100], [1])[1] == bytes([S_IOERR])
        assert h.request(0, [hdr(99)], [1])[1] == bytes([S_UNSUPP])
        assert not h.status & S_NEEDS_RESET


def test_readonly(image):
    before = image.read_bytes()
    with _disk(image, ro=True) as h:
        assert h.device_features() & F_RO
        assert not h.device_features() & F_DISCARD
        assert h.request(0, [hdr(T_OUT, 0), b"x" * 512], [1])[1] == bytes([S_IOERR])
        assert h.request(0, [hdr(T_DISCARD), struct.pack("<QII", 0, 8, 0)], [1])[1] == bytes([S_UNSUPP])
        assert h.request(0, [hdr(T_IN, 0)], [512, 1])[1][-1] == S_OK
    assert image.read_bytes() == before


def test_discard(image):
    with _disk(image) as h:
        if not h.device_features() & F_DISCARD:
            pytest.skip("the test file system cannot punch holes")
        seg = struct.pack("<QII", 8, 16, 0)
        assert h.request(0, [hdr(T_DISCARD), seg], [1])[1] == bytes([S_OK])
        data = image.read_bytes()
        assert data[4096 : 4096 + 8192] == bytes(8192)
        assert data[4095] != 0 or data[4094] != 0
        assert len(data) == SECTORS * 512
        assert h.request(0, [hdr(T_DISCARD), struct.pack("<QII", SECTORS, 8, 0)], [1])[1] == bytes([S_IOERR])
        assert h.request(0, [hdr(T_DISCARD), seg[:10]], [1])[1] == bytes([S_UNSUPP])
        assert h.request(0, [hdr(T_DISCARD), struct.pack("<QII", 0, 8, 1)], [1])[1] == bytes([S_UNSUPP])


def test_get_id(image):
    with _disk(image) as h:
        n, data = h.request(0, [hdr(T_GET_ID)], [20, 1])
        assert n == 21 and data[-1] == S_OK and len(data[:20].rstrip(b"\0")) == 20


def test_request_without_status_byte_needs_reset(image):
    with _disk(image) as h:
        h.queues[0].add([hdr(T_IN)], [])
        h.kick(0)
        assert h.status & S_NEEDS_RESET


def test_short_header_needs_reset(image):
    with _disk(image) as h:
        h.queues[0].add([b"\0" * 8], [1])
        h.kick(0)
        assert h.status & S_NEEDS_RESET


def test_parse(image, tmp_path):
    assert Block.parse(f"{image},ro") == DiskSpec(str(image), True)
    assert Block.parse(str(image)) == DiskSpec(str(image), False)
    for bad in (f"{image},rx", str(tmp_path / "nope"), str(tmp_path), ""):
        with pytest.raises(UserError):
            Block.parse(bad)


def test_image_locked(image):
    a = Block(DiskSpec(str(image)))
    try:
        with pytest.raises(UserError, match="in use"):
            Block(DiskSpec(str(image)))
    finally:
        a.close()


def test_header_split_across_buffers(image):
    with _disk(image) as h:
        head = hdr(T_IN, 1)
        n, data = h.request(0, [head[:5], head[5:]], [512, 1])
        assert n == 513 and data[:512] == image.read_bytes()[512:1024] and data[512] == S_OK


def test_worker_polls_the_ring_after_a_batch(image):
    """ONEKVM_VIRTIO_POLL_US: a request published while the worker polls is served without a kick."""
    h = Harness(Block(DiskSpec(str(image))), poll_us=200_000)
    try:
        h.init()
        assert h.t.poll_max == 0.2
        dq = h.queues[0]
        seen: dict[str, int] = {}

        def second_request() -> None:
            # The first batch is done and the worker polls: notifications are still off (a Linux
            # driver would not kick for this one: avail_event is behind the index it publishes).
            seen["used"] = dq.used_idx()
            seen["avail_event"] = dq.avail_event()
            dq.add([hdr(T_IN, 3)], [512, 1])

        timer = threading.Timer(0.02, second_request)
        dq.add([hdr(T_IN, 2)], [512, 1])
        timer.start()
        h.kick(0)  # the worker's callback runs here: the batch, then the poll window
        timer.join()
        assert seen == {"used": 1, "avail_event": 0}
        used = dq.get_used()
        assert [n for _, n in used] == [513, 513]
        assert dq.reply(used[1][0])[:512] == image.read_bytes()[1536:2048]
        # The window ran out with nothing new: notifications are armed again, the window halved.
        assert dq.avail_event() == 2
        assert h.t.poll_window == 0.1
        assert not h.status & S_NEEDS_RESET
    finally:
        h.close()


def test_no_polling_with_inline_kicks(image):
    h = Harness(Block(DiskSpec(str(image))), poll_us=200_000, inline_kicks=True)
    try:
        h.init()
        assert h.t.poll_max == 0 and not h.t.queues[0].polled
        assert h.request(0, [hdr(T_IN, 0)], [512, 1])[0] == 513
        assert h.queues[0].avail_event() == 1
    finally:
        h.close()
