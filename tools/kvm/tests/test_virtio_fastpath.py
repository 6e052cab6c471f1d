"""The virtio-blk C fast path (onekvm._vring) against Python, the reference.

The same random request streams - well-formed reads, writes and flushes of
every shape, the requests the fast path leaves to Python, and broken chains
- go through a device with the fast path and one without; the guest must
not be able to tell them apart: the same used ring, the same bytes in its
buffers, the same image, the same NEEDS_RESET and log line.
"""

from __future__ import annotations

import logging
import random
import struct

import pytest
from onekvm.virtio import fastpath
from onekvm.virtio.blk import T_DISCARD, T_FLUSH, T_GET_ID, T_IN, T_OUT, Block, DiskSpec
from onekvm.virtio.device import F_EVENT_IDX, F_INDIRECT_DESC
from onekvm.virtio.msix import CTRL_ENABLE
from onekvm.virtio.pci import MSIX_TABLE_OFF, S_NEEDS_RESET
from onekvm.virtio.queue import AVAIL_F_NO_INTERRUPT, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE
from onekvm.virtio.testing import Harness

SECTORS = 64
QSIZE = 64


@pytest.fixture(autouse=True)
def _built():
    if fastpath.lib is None:
        pytest.fail("onekvm._vring is not built: meson compile -C build/meson")


def _image(path, seed):
    path.write_bytes(random.Random(seed).randbytes(SECTORS * 512))
    return str(path)


def _harness(image, fast, ro=False, msix=False, indirect=True, event_idx=True):
    dev = Block(DiskSpec(image, ro), fast=fast)
    dev.serial = b"okvm-fastpath"  # not the image's inode: the two runs use two files
    h = Harness(dev, msix=msix)
    if msix:
        for v in range(h.t.msix.nvec):
            h.t.bar_write(MSIX_TABLE_OFF + 16 * v, 4, 0xFEE00000)
            h.t.bar_write(MSIX_TABLE_OFF + 16 * v + 8, 4, 0x40 + v)
            h.t.bar_write(MSIX_TABLE_OFF + 16 * v + 12, 4, 0)  # unmasked
        h.t.config_write(h.t.msix_cap + 2, 2, CTRL_ENABLE)
    features = h.device_features() & ~(0 if indirect else F_INDIRECT_DESC) & ~(0 if event_idx else F_EVENT_IDX)
    h.init(features=features, sizes=[QSIZE], vectors=msix)
    return h


def _split(rng, n):
    """n bytes as 1-4 buffer lengths, some of them zero."""
    cuts = sorted(rng.randrange(n + 1) for _ in range(rng.randrange(4)))
    return [b - a for a, b in zip([0, *cuts], [*cuts, n])]


def _chain(rng, dq, broken_ok):
    """Post one request of a random kind and shape; returns its head."""
    kind = rng.choice([T_IN] * 4 + [T_OUT] * 3 + [T_FLUSH, T_GET_ID, T_DISCARD, 77])
    sector = rng.randrange(SECTORS + 3)
    nbytes = rng.choice([0, 512, 1024, 4096, 700, 512 * rng.randrange(1, 9)])
    header = struct.pack("<IIQ", kind, 0, sector)
    if rng.random() < 0.1:  # the header split over two buffers
        out = [header[:5], header[5:]]
    else:
        out = [header]
    inn = [1]
    if kind == T_IN:
        inn = [n for n in _split(rng, nbytes)] + [1]
        if rng.random() < 0.2:  # the status byte shares the last data buffer
            inn = inn[:-2] + [inn[-2] + 1] if len(inn) > 1 else [1]
    elif kind in (T_OUT, T_DISCARD):
        out += [rng.randbytes(n) for n in _split(rng, nbytes)]
    elif kind == T_GET_ID:
        inn = [20, 1]
    if broken_ok and rng.random() < 0.015:
        inn = []  # no status byte: NEEDS_RESET
    return _post(rng, dq, out, inn, broken_ok)


def _post(rng, dq, out, inn, broken_ok):
    """DriverQueue.add with random zero-length descriptors, indirect tables and, rarely, a broken link."""
    segs = [(dq.alloc(max(len(d), 1)), len(d), 0) for d in out]
    for (addr, _, _), d in zip(segs, out):
        dq.mem.write(addr, d)
    for n in inn:
        addr = dq.alloc(max(n, 1))
        dq.mem.fill(addr, max(n, 1), 0xAA)
        segs.append((addr, n, DESC_F_WRITE))
    if rng.random() < 0.1:
        segs.insert(rng.randrange(len(segs) + 1), (0, 0, rng.choice([0, DESC_F_WRITE])))
    if broken_ok and rng.random() < 0.01 and segs:
        i = rng.randrange(len(segs))
        segs[i] = (1 << 40, segs[i][1] or 8, segs[i][2])  # outside guest RAM
    if broken_ok and rng.random() < 0.01:
        segs.append((dq.alloc(8), 8, 0))  # device-readable after device-writable
    if rng.random() < 0.3:
        table = dq.alloc(16 * (len(segs) + 1))
        if broken_ok and rng.random() < 0.03:
            segs.insert(1, (table, 16, DESC_F_INDIRECT))  # an indirect table inside one
        # Rarely: the last entry links past the table, or the head has NEXT besides INDIRECT.
        past_end = broken_ok and rng.random() < 0.02
        for i, (addr, n, fl) in enumerate(segs):
            more = i + 1 < len(segs) or past_end
            dq.write_desc(i, addr, n, fl | (DESC_F_NEXT if more else 0), i + 1, table=table)
        head = dq._take()
        also_next = DESC_F_NEXT if broken_ok and rng.random() < 0.02 else 0
        dq.write_desc(head, table, 16 * len(segs), DESC_F_INDIRECT | also_next, head)
    else:
        idx = [dq._take() for _ in segs]
        for k, (addr, n, fl) in enumerate(segs):
            more = k + 1 < len(segs)
            dq.write_desc(idx[k], addr, n, fl | (DESC_F_NEXT if more else 0), idx[k + 1] if more else 0)
        head = idx[0]
    dq.buffers[head] = [(a, n) for a, n, fl in segs if fl & DESC_F_WRITE]
    dq.publish(head)
    if broken_ok and rng.random() < 0.005:
        dq.set_avail_idx(dq.avail_idx + QSIZE + 1)  # more chains than the ring holds
    return head


def _needs_kick(dq, old_idx):
    """The driver's side of VIRTIO_F_EVENT_IDX (2.7.10): kick only if avail_event asks for it."""
    new = dq.avail_idx
    return ((new - dq.avail_event() - 1) & 0xFFFF) < ((new - old_idx) & 0xFFFF)


def _stream(image, fast, seed, broken_ok, msix=False, ro=False, indirect=True, event_idx=True):
    """Everything the guest and the host can observe of one request stream.

    The driver kicks only when the device's avail_event asks for it, and
    asks for interrupts unevenly (used_event set a few chains ahead, or
    NO_INTERRUPT without event indices), so that the device's notification
    and interrupt bookkeeping shows in what the guest sees.
    """
    rng = random.Random(seed)
    seen = []
    with _harness(image, fast, ro=ro, msix=msix, indirect=indirect, event_idx=event_idx) as h:
        dq = h.queues[0]
        for _ in range(40):
            old_idx = dq.avail_idx
            heads = [_chain(rng, dq, broken_ok) for _ in range(rng.randrange(1, 6))]
            if not event_idx or _needs_kick(dq, old_idx):
                h.kick(0)
            used = dq.get_used()
            if event_idx:
                dq.set_used_event(dq.last_used + rng.choice([0, 0, 1, 3]))
            else:
                dq.set_avail_flags(rng.choice([0, 0, AVAIL_F_NO_INTERRUPT]))
            seen.append(("used", used))
            # Every interrupt so far: MSI messages, or INTx edges (reading the ISR lowers the line).
            seen.append(("irq", h.isr(), list(h.levels), list(h.msis)))
            seen.append(("replies", [dq.reply(head) for head, _ in used]))
            seen.append(("status", h.status, h.t.broken_reason if h.status & S_NEEDS_RESET else None))
            if h.status & S_NEEDS_RESET:
                break
            assert sorted(head for head, _ in used) == sorted(heads)
            dq.alloc.next = 0x10000 + (dq.alloc.next - 0x10000) % (8 << 20)  # reuse RAM, stay inside it
    with open(image, "rb") as f:
        seen.append(("image", f.read()))
    return seen


@pytest.mark.parametrize("seed", range(24))
def test_same_as_python(tmp_path, seed):
    kw = {"msix": seed % 2 == 1, "event_idx": seed % 3 != 2}
    a = _stream(_image(tmp_path / "a.img", seed), True, seed, broken_ok=False, **kw)
    b = _stream(_image(tmp_path / "b.img", seed), False, seed, broken_ok=False, **kw)
    assert a == b


@pytest.mark.parametrize("seed", range(100, 116))
def test_same_as_python_with_broken_chains(tmp_path, seed, caplog):
    with caplog.at_level(logging.WARNING, logger="onekvm.virtio"):
        a = _stream(_image(tmp_path / "a.img", seed), True, seed, broken_ok=True, msix=seed % 2 == 0)
        log_a = [r.getMessage() for r in caplog.records]
        caplog.clear()
        b = _stream(_image(tmp_path / "b.img", seed), False, seed, broken_ok=True, msix=seed % 2 == 0)
        log_b = [r.getMessage() for r in caplog.records]
    assert a == b
    assert log_a == log_b


def test_indirect_chain_without_the_feature(tmp_path, caplog):
    """An indirect chain the driver did not negotiate: Python's NEEDS_RESET, whichever path saw it first."""
    with caplog.at_level(logging.WARNING, logger="onekvm.virtio"):
        a = _stream(_image(tmp_path / "a.img", 3), True, 3, broken_ok=False, indirect=False)
        b = _stream(_image(tmp_path / "b.img", 3), False, 3, broken_ok=False, indirect=False)
    assert a == b
    last_status = [x for x in a if x[0] == "status"][-1]
    assert "without VIRTIO_F_INDIRECT_DESC" in str(last_status)


def test_read_only_image(tmp_path):
    a = _stream(_image(tmp_path / "a.img", 7), True, 7, broken_ok=False, ro=True)
    b = _stream(_image(tmp_path / "b.img", 7), False, 7, broken_ok=False, ro=True)
    assert a == b


def test_fast_path_serves_reads_writes_and_flushes(tmp_path, monkeypatch):
    """The common requests never reach Python's chain walk; GET_ID does (both the kick's C and serve()'s)."""
    counts = {"c": 0, "handed back": 0}
    serve, kick = fastpath.BlkFastPath.serve, fastpath.BlkFastPath.kick

    def counting_serve(self, q, budget):
        n, back = serve(self, q, budget)
        counts["c"] += n
        counts["handed back"] += back
        return n, back

    def counting_kick(self, q, fd):
        n, stop, interrupt = kick(self, q, fd)
        counts["c"] += n
        counts["handed back"] += stop == fastpath.STOP_PYTHON
        return n, stop, interrupt

    monkeypatch.setattr(fastpath.BlkFastPath, "serve", counting_serve)
    monkeypatch.setattr(fastpath.BlkFastPath, "kick", counting_kick)
    with _harness(_image(tmp_path / "a.img", 1), True) as h:
        for kind, out, inn in (
            (T_IN, [], [4096, 1]),
            (T_OUT, [b"x" * 1024], [1]),
            (T_FLUSH, [], [1]),
            (T_IN, [], [512, 512, 1]),
        ):
            h.request(0, [struct.pack("<IIQ", kind, 0, 3), *out], inn)
        assert counts == {"c": 4, "handed back": 0}
        written, data = h.request(0, [struct.pack("<IIQ", T_GET_ID, 0, 0)], [20, 1])
        assert written == 21 and data.startswith(b"okvm")
        # Handed back by the kick, then once more by the Python batch that serves it.
        assert counts == {"c": 4, "handed back": 2}
