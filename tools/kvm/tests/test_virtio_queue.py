"""Split virtqueue: crafted rings in fake guest memory, good and malicious."""

from __future__ import annotations

import logging
import struct

import pytest
from onekvm.memory import GuestMemory
from onekvm.virtio.device import F_EVENT_IDX, F_INDIRECT_DESC, VirtioDevice
from onekvm.virtio.pci import S_DRIVER_OK, S_NEEDS_RESET
from onekvm.virtio.queue import DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, QueueError, SplitQueue
from onekvm.virtio.testing import Allocator, DriverQueue, Harness

MEM = 1 << 20
SIZE = 8


@pytest.fixture
def ring():
    mem = GuestMemory()
    mem.add(0, MEM)
    alloc = Allocator(mem, 0x1000)
    dq = DriverQueue(mem, alloc, 0, SIZE)
    q = SplitQueue(mem, 0, SIZE)
    q.desc_addr, q.avail_addr, q.used_addr = dq.desc, dq.avail, dq.used
    q.enable()
    yield mem, dq, q
    q.release()
    mem.close()


def test_simple_chain(ring):
    mem, dq, q = ring
    head = dq.add([b"hello", b"world"], [4, 3])
    chain = q.pop()
    assert chain.head == head
    assert chain.read() == b"helloworld"
    assert chain.readable_len == 10 and chain.writable_len == 7
    assert chain.read(3, 4) == b"lowo"
    assert chain.write(b"ABCDEFGHIJ") == 7
    assert q.pop() is None
    q.push(chain.head, 7)
    assert dq.get_used() == [(head, 7)]
    assert dq.reply(head) == b"ABCDEFG"


def test_views_split_across_segments(ring):
    mem, dq, q = ring
    dq.add([b"ab", b"cdef"], [2, 2])
    chain = q.pop()
    assert [bytes(v) for v in chain.readable_views(1, 3)] == [b"b", b"cd"]
    assert [len(v) for v in chain.writable_views(1)] == [1, 2]


def test_indirect_chain(ring):
    mem, dq, q = ring
    q.indirect = True
    head = dq.add([b"req"], [16], indirect=True)
    chain = q.pop()
    assert chain.head == head and chain.read() == b"req" and chain.writable_len == 16


def _one(dq, addr, length, flags=0, nxt=0, i=0):
    dq.write_desc(i, addr, length, flags, nxt)
    dq.publish(i)


@pytest.mark.parametrize(
    "setup, match",
    [
        (lambda dq: (dq.write_desc(0, 0x100, 1, DESC_F_NEXT, 1), _one(dq, 0x100, 1, DESC_F_NEXT, 0, i=1)), "loops"),
        (lambda dq: _one(dq, 0x100, 1, DESC_F_NEXT, 0), "loops"),  # self loop
        (lambda dq: _one(dq, MEM - 4, 8), "outside guest RAM"),
        (lambda dq: _one(dq, 1 << 40, 16), "outside guest RAM"),
        (lambda dq: _one(dq, 0xFFFFFFFFFFFFFFF0, 0x20), "outside guest RAM"),  # wraps
        (lambda dq: _one(dq, 0x100, 1, DESC_F_NEXT, SIZE), "beyond queue size"),
        (lambda dq: (dq.write_desc(1, 0x200, 1), _one(dq, 0x100, 1, DESC_F_WRITE | DESC_F_NEXT, 1)),
         "readable buffer after a writable"),
        (lambda dq: dq.publish(SIZE + 3), "beyond queue size"),
        (lambda dq: dq.set_avail_idx(SIZE + 1), "jumped"),
        (lambda dq: _one(dq, 0x8000, 32, DESC_F_INDIRECT), "without VIRTIO_F_INDIRECT_DESC"),
    ],
)
def test_bad_chains(ring, setup, match):
    mem, dq, q = ring
    setup(dq)
    with pytest.raises(QueueError, match=match):
        q.pop()


def _indirect(dq, mem, entries, flags=DESC_F_INDIRECT, length=None):
    table = dq.alloc(16 * max(len(entries), 1))
    for i, (addr, n, fl, nxt) in enumerate(entries):
        dq.write_desc(i, addr, n, fl, nxt, table=table)
    _one(dq, table, 16 * len(entries) if length is None else length, flags)


@pytest.mark.parametrize(
    "entries, flags, length, match",
    [
        ([(0x100, 4, DESC_F_NEXT, 0)], DESC_F_INDIRECT, None, "loops"),
        ([(0x100, 4, DESC_F_NEXT, 1), (0x100, 4, DESC_F_NEXT, 0)], DESC_F_INDIRECT, None, "loops"),
        ([(0x100, 4, DESC_F_NEXT, 5)], DESC_F_INDIRECT, None, "links to 5"),
        ([(0x100, 4, DESC_F_INDIRECT, 0)], DESC_F_INDIRECT, None, "nested"),
        ([(0x100, 4, 0, 0)], DESC_F_INDIRECT, 12, "multiple of 16"),
        ([(0x100, 4, 0, 0)], DESC_F_INDIRECT, 0, "multiple of 16"),
        ([(0x100, 4, 0, 0)], DESC_F_INDIRECT | DESC_F_NEXT, None, "also has NEXT"),
        ([(MEM, 4, 0, 0)], DESC_F_INDIRECT, None, "outside guest RAM"),
    ],
)
def test_bad_indirect(ring, entries, flags, length, match):
    mem, dq, q = ring
    q.indirect = True
    _indirect(dq, mem, entries, flags, length)
    with pytest.raises(QueueError, match=match):
        q.pop()


def test_indirect_table_outside_ram(ring):
    mem, dq, q = ring
    q.indirect = True
    _one(dq, MEM - 16, 32, DESC_F_INDIRECT)
    with pytest.raises(QueueError, match="indirect table"):
        q.pop()


@pytest.mark.parametrize(
    "size, desc, avail, used, match",
    [
        (6, 0x1000, 0x2000, 0x3000, "bad size"),
        (0, 0x1000, 0x2000, 0x3000, "bad size"),
        (16, 0x1000, 0x2000, 0x3000, "bad size"),  # above the maximum
        (8, 0x1008, 0x2000, 0x3000, "misaligned"),
        (8, 0x1000, 0x2001, 0x3000, "misaligned"),
        (8, 0x1000, 0x2000, 0x3002, "misaligned"),
        (8, MEM - 64, 0x2000, 0x3000, "outside guest RAM"),
        (8, 0x1000, MEM - 8, 0x3000, "outside guest RAM"),
        (8, 0x1000, 0x2000, MEM - 16, "outside guest RAM"),
    ],
)
def test_bad_rings(size, desc, avail, used, match):
    mem = GuestMemory()
    mem.add(0, MEM)
    q = SplitQueue(mem, 0, 8)
    q.size, q.desc_addr, q.avail_addr, q.used_addr = size, desc, avail, used
    with pytest.raises(QueueError, match=match):
        q.enable()
    mem.close()


def test_index_wraparound(ring):
    mem, dq, q = ring
    # Start both sides just below 2^16.
    dq.avail_idx = q.last_avail = 0xFFFE
    q.used_idx = dq.last_used = 0xFFFE
    mem.write(dq.used + 2, struct.pack("<H", 0xFFFE))
    heads = [dq.add([bytes([i])], [1]) for i in range(4)]
    got = []
    while (c := q.pop()) is not None:
        got.append(c.read())
        q.push(c.head, 1)
    assert got == [b"\0", b"\1", b"\2", b"\3"]
    assert q.last_avail == 2 and q.used_idx == 2
    assert [h for h, _ in dq.get_used()] == heads


def test_no_interrupt_flag(ring):
    mem, dq, q = ring
    dq.add([b"x"], [])
    q.push(q.pop().head, 0)
    assert q.need_interrupt()
    dq.set_avail_flags(1)
    assert not q.need_interrupt()


def test_event_idx(ring):
    mem, dq, q = ring
    q.event_idx = True
    for _ in range(3):
        dq.add([b"x"], [])
    dq.set_used_event(1)  # "interrupt me when the used idx passes 1"
    q.push(q.pop().head, 0)
    assert q.need_interrupt()  # first interrupt after reset is always sent
    q.push(q.pop().head, 0)  # used idx 2: crosses used_event 1
    assert q.need_interrupt()
    q.push(q.pop().head, 0)  # used idx 3: driver did not ask
    assert not q.need_interrupt()
    assert not q.arm_notify()
    assert dq.avail_event() == 3


def test_event_idx_wrap(ring):
    mem, dq, q = ring
    q.event_idx = True
    dq.avail_idx = q.last_avail = 0xFFFF
    q.used_idx = 0xFFFF
    q.signalled = 0xFFFF
    dq.set_used_event(0xFFFF)  # wants an interrupt once idx moves past 0xFFFF
    dq.add([b"x"], [])
    q.push(q.pop().head, 0)
    assert q.used_idx == 0
    assert q.need_interrupt()
    dq.add([b"y"], [])
    assert q.arm_notify()  # a buffer arrived meanwhile: process again
    assert dq.avail_event() == 0


def test_reset_drops_views(ring):
    mem, dq, q = ring
    q.release()
    q.reset()
    assert q.pop() is None
    q.push(0, 0)  # after a reset a late completion goes nowhere
    assert not q.ready


# -- through the transport: the device goes to NEEDS_RESET --------------------------------------


class Echo(VirtioDevice):
    device_id = 0x3F
    queue_sizes = (8,)

    def __init__(self) -> None:
        super().__init__(None, "echo")
        self.handled = 0

    def handle(self, queue, chain):
        self.handled += 1
        return chain.write(chain.read()[::-1])


def test_echo_device():
    with Harness(Echo()) as h:
        assert h.init() & S_DRIVER_OK
        assert h.request(0, [b"abc"], [3]) == (3, b"cba")
        assert h.request(0, [b"indirect"], [8], indirect=True) == (8, b"tceridni")
        assert h.isr() == 1
        assert h.levels[-1] == (5, 0)


def test_bad_chain_needs_reset(caplog):
    with Harness(Echo()) as h:
        h.init()
        dq = h.queues[0]
        dq.write_desc(0, 0x100, 4, DESC_F_NEXT, 0)  # loops on itself
        dq.publish(0)
        with caplog.at_level(logging.WARNING, logger="onekvm.virtio"):
            h.kick(0)
            assert h.status & S_NEEDS_RESET
            assert h.isr() & 2  # configuration-change interrupt
            # More kicks, more bad chains: still one line, nothing processed.
            dq.publish(0)
            h.kick(0)
            h.kick(0)
        lines = [r for r in caplog.records if "needs reset" in r.getMessage()]
        assert len(lines) == 1
        assert "loops" in lines[0].getMessage()
        assert h.dev.handled == 0
        # A reset brings it back.
        h.write("device_status", 0)
        assert h.status == 0
        h.queues.clear()
        h.init()
        assert h.request(0, [b"ok"], [2]) == (2, b"ko")


def test_runaway_avail_index_needs_reset():
    with Harness(Echo()) as h:
        h.init()
        h.queues[0].set_avail_idx(500)
        h.kick(0)
        assert h.status & S_NEEDS_RESET


def test_bad_ring_on_enable_needs_reset():
    with Harness(Echo(), mem_mib=1) as h:
        h.write("device_status", 3)
        h.write("driver_feature_select", 1)
        h.write("driver_feature", 1)
        h.write("device_status", 11)
        h.write("queue_select", 0)
        h.write("queue_desc", 1 << 33)
        h.write("queue_enable", 1)
        assert h.status & S_NEEDS_RESET
        assert not h.read("queue_enable")


def test_batches_are_bounded():
    """A full ring is served in queue-size batches, re-kicking itself in between."""
    with Harness(Echo()) as h:
        h.init(features=F_EVENT_IDX | F_INDIRECT_DESC)
        dq = h.queues[0]
        for _ in range(8):
            dq.add([b"a"], [1])
        h.kick(0)
        assert len(dq.get_used()) == 8
        assert h.dev.handled == 8
