"""Split virtqueues, device side (virtio 1.x section 2.7).

Everything here reads rings the guest wrote, so every index, length and
address is checked before it is used: a ring that breaks the rules raises
QueueError (the transport turns that into DEVICE_NEEDS_RESET), and no
access ever leaves guest RAM.
"""

from __future__ import annotations

import struct
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from onekvm.memory import GuestMemory

DESC_F_NEXT = 1
DESC_F_WRITE = 2
DESC_F_INDIRECT = 4
AVAIL_F_NO_INTERRUPT = 1

DESC_SIZE = 16
MAX_QUEUE_SIZE = 32768  # the split-ring limit
NO_VECTOR = 0xFFFF

_DESC = struct.Struct("<QIHH")
_U16 = struct.Struct("<H")
_USED_ELEM = struct.Struct("<II")

# A locked read-modify-write is a full barrier on x86; Python has no fence,
# but acquiring an uncontended lock executes one (pthread mutex: lock cmpxchg).
# The event-idx handshake needs store->load ordering (section 2.7.10).
_fence_lock = threading.Lock()


def fence() -> None:
    with _fence_lock:
        pass


class QueueError(Exception):
    """The guest broke the ring protocol; the device must be reset."""


class Segment:
    """One guest buffer: its guest address and length, and where it lies in the host mapping."""

    __slots__ = ("addr", "length", "buf", "off")

    def __init__(self, addr: int, length: int, buf: memoryview, off: int) -> None:
        self.addr = addr
        self.length = length
        self.buf = buf  # the whole region's view (checked once, when the chain was walked)
        self.off = off  # addr's offset in buf

    def __repr__(self) -> str:
        return f"Segment({self.addr:#x}, {self.length:#x})"


class Chain:
    """One descriptor chain: the readable segments, then the writable ones."""

    __slots__ = ("head", "readable", "writable", "readable_len", "writable_len")

    def __init__(self, head: int) -> None:
        self.head = head
        self.readable: list[Segment] = []
        self.writable: list[Segment] = []
        self.readable_len = 0
        self.writable_len = 0

    @staticmethod
    def _views(segs: list[Segment], offset: int, length: int | None) -> list[memoryview]:
        out: list[memoryview] = []
        left = -1 if length is None else length
        for s in segs:
            if left == 0:
                break
            if offset >= s.length:
                offset -= s.length
                continue
            n = s.length - offset
            if left >= 0:
                n = min(n, left)
                left -= n
            start = s.off + offset
            out.append(s.buf[start : start + n])
            offset = 0
        return out

    def readable_views(self, offset: int = 0, length: int | None = None) -> list[memoryview]:
        """Guest memory the device may read, from offset into the readable part."""
        return self._views(self.readable, offset, length)

    def writable_views(self, offset: int = 0, length: int | None = None) -> list[memoryview]:
        """Guest memory the device may write, from offset into the writable part."""
        return self._views(self.writable, offset, length)

    def read(self, offset: int = 0, length: int | None = None) -> bytes:
        views = self._views(self.readable, offset, length)
        if len(views) == 1:
            return bytes(views[0])
        return b"".join(views)

    def write(self, data: bytes | bytearray | memoryview, offset: int = 0) -> int:
        """Scatter data into the writable part; returns how much fit."""
        mv = memoryview(data)
        done = 0
        for v in self._views(self.writable, offset, len(mv)):
            n = len(v)
            v[:] = mv[done : done + n]
            done += n
        return done

    def write_last(self, byte: int) -> None:
        """Store one byte at the very end of the writable part (a status byte); there must be one."""
        s = self.writable[-1]
        s.buf[s.off + s.length - 1] = byte


class SplitQueue:
    """Ring addresses and indices of one queue, as the transport configured them."""

    def __init__(self, mem: GuestMemory, index: int, max_size: int) -> None:
        if max_size & (max_size - 1) or not 0 < max_size <= MAX_QUEUE_SIZE:
            raise ValueError("queue size must be a power of two")
        self.mem = mem
        self.index = index
        self.max_size = max_size
        self.event_idx = False
        self.indirect = False
        # The device's worker polls this ring after each batch (pci.py): process() leaves
        # notifications off and the poll loop re-arms them when it gives up.
        self.polled = False
        self.reset()

    def reset(self) -> None:
        self.size = self.max_size
        self.desc_addr = 0
        self.avail_addr = 0
        self.used_addr = 0
        self.msix_vector = NO_VECTOR
        self.enabled = False
        self.last_avail = 0
        self.used_idx = 0
        self.signalled: int | None = None  # used idx at the last interrupt
        self._desc: memoryview | None = None
        self._avail: memoryview | None = None
        self._used: memoryview | None = None

    # -- set-up ----------------------------------------------------------------
    def enable(self) -> None:
        """queue_enable=1: check the rings once, then keep views of them."""
        n = self.size
        if n == 0 or n & (n - 1) or n > self.max_size:
            raise QueueError(f"queue {self.index}: bad size {n}")
        # Alignments from section 2.7 (Virtqueue Part Alignment).
        if self.desc_addr % 16 or self.avail_addr % 2 or self.used_addr % 4:
            raise QueueError(f"queue {self.index}: misaligned ring")
        desc_len = DESC_SIZE * n
        avail_len = 6 + 2 * n  # flags, idx, ring[n], used_event
        used_len = 6 + 8 * n  # flags, idx, ring[n], avail_event
        for what, addr, length in (
            ("descriptor table", self.desc_addr, desc_len),
            ("available ring", self.avail_addr, avail_len),
            ("used ring", self.used_addr, used_len),
        ):
            if not self.mem.contains(addr, length):
                raise QueueError(f"queue {self.index}: {what} at {addr:#x}+{length:#x} is outside guest RAM")
        self._desc = self.mem.view(self.desc_addr, desc_len)
        self._avail = self.mem.view(self.avail_addr, avail_len)
        self._used = self.mem.view(self.used_addr, used_len)
        self.enabled = True

    def release(self) -> None:
        """Drop the views: guest memory cannot be unmapped while they live."""
        self._desc = self._avail = self._used = None

    @property
    def ready(self) -> bool:
        return self.enabled and self._avail is not None

    def describe(self) -> str:
        """One line of ring state, for a device that seems stuck (the VMM's --stats report)."""
        text = f"q{self.index} size {self.size} taken {self.last_avail} used {self.used_idx} signalled {self.signalled}"
        avail, used = self._avail, self._used
        if avail is None or used is None:
            return text + " (not enabled)"
        flags, idx = struct.unpack_from("<HH", avail, 0)
        used_flags = _U16.unpack_from(used, 0)[0]
        text += f" | avail idx {idx} flags {flags:#x} used_flags {used_flags:#x}"
        if self.event_idx:
            used_event = _U16.unpack_from(avail, 4 + 2 * self.size)[0]
            avail_event = _U16.unpack_from(used, 4 + 8 * self.size)[0]
            text += f" used_event {used_event} avail_event {avail_event}"
        return text

    # -- the available side ----------------------------------------------------
    def avail_idx(self) -> int:
        assert self._avail is not None
        return _U16.unpack_from(self._avail, 2)[0]

    def has_work(self) -> bool:
        return self.ready and self.avail_idx() != self.last_avail

    def pop(self) -> Chain | None:
        """The next available chain, or None; QueueError if the guest broke the ring."""
        if not self.ready:
            return None
        avail = self._avail
        assert avail is not None
        idx = _U16.unpack_from(avail, 2)[0]
        pending = (idx - self.last_avail) & 0xFFFF
        if pending == 0:
            return None
        if pending > self.size:
            raise QueueError(f"queue {self.index}: available index jumped by {pending} (queue size {self.size})")
        slot = self.last_avail % self.size
        head = _U16.unpack_from(avail, 4 + 2 * slot)[0]
        chain = self._walk(head)
        self.last_avail = (self.last_avail + 1) & 0xFFFF
        return chain

    def _walk(self, head: int) -> Chain:
        n = self.size
        if head >= n:
            raise QueueError(f"queue {self.index}: head descriptor {head} beyond queue size {n}")
        desc = self._desc
        assert desc is not None
        chain = Chain(head)
        i = head
        seen = 0
        while True:
            seen += 1
            if seen > n:
                raise QueueError(f"queue {self.index}: descriptor chain from {head} loops or is longer than {n}")
            addr, length, flags, nxt = _DESC.unpack_from(desc, DESC_SIZE * i)
            if flags & DESC_F_INDIRECT:
                if flags & DESC_F_NEXT:
                    raise QueueError(f"queue {self.index}: indirect descriptor {i} also has NEXT")
                self._walk_indirect(chain, addr, length)
                return chain
            self._add(chain, addr, length, flags)
            if not flags & DESC_F_NEXT:
                return chain
            if nxt >= n:
                raise QueueError(f"queue {self.index}: descriptor {i} links to {nxt}, beyond queue size {n}")
            i = nxt

    def _walk_indirect(self, chain: Chain, table: int, length: int) -> None:
        if not self.indirect:
            raise QueueError(f"queue {self.index}: indirect descriptor without VIRTIO_F_INDIRECT_DESC")
        if length == 0 or length % DESC_SIZE:
            raise QueueError(f"queue {self.index}: indirect table length {length} is not a multiple of 16")
        count = length // DESC_SIZE
        if count > MAX_QUEUE_SIZE:
            raise QueueError(f"queue {self.index}: indirect table of {count} descriptors")
        found = self.mem.locate(table, length)
        if found is None:
            raise QueueError(f"queue {self.index}: indirect table at {table:#x}+{length:#x} is outside guest RAM")
        r, off = found
        # One C call unpacks the whole table; the walk below follows the links.
        descs = list(_DESC.iter_unpack(r.view[off : off + length]))
        i = 0
        seen = 0
        while True:
            seen += 1
            if seen > count:
                raise QueueError(f"queue {self.index}: indirect chain loops or is longer than its table ({count})")
            addr, seg_len, flags, nxt = descs[i]
            if flags & DESC_F_INDIRECT:
                raise QueueError(f"queue {self.index}: nested indirect descriptor")
            self._add(chain, addr, seg_len, flags)
            if not flags & DESC_F_NEXT:
                return
            if nxt >= count:
                raise QueueError(f"queue {self.index}: indirect descriptor {i} links to {nxt}, table has {count}")
            i = nxt

    def _add(self, chain: Chain, addr: int, length: int, flags: int) -> None:
        if length == 0:
            return
        # The region of guest RAM that holds the whole buffer (a buffer across two regions is
        # outside RAM as far as a view is concerned).
        found = self.mem.locate(addr, length)
        if found is None:
            raise QueueError(f"queue {self.index}: buffer {addr:#x}+{length:#x} is outside guest RAM")
        r, off = found
        if flags & DESC_F_WRITE:
            segs = chain.writable
            chain.writable_len += length
        elif chain.writable:
            raise QueueError(f"queue {self.index}: device-readable buffer after a writable one")
        else:
            segs = chain.readable
            chain.readable_len += length
        if segs:
            # Physically adjacent buffers (a driver's page-by-page scatter list often is) become one
            # segment: fewer views and iovecs per request. Only within one region of guest RAM.
            last = segs[-1]
            if last.buf is r.view and last.off + last.length == off:
                last.length += length
                return
        segs.append(Segment(addr, length, r.view, off))

    # -- the used side -----------------------------------------------------------
    def push(self, head: int, written: int) -> None:
        """Return a chain to the driver with the number of bytes written into it."""
        used = self._used
        if used is None:
            return  # reset while the request was in flight: nothing to return it to
        slot = self.used_idx % self.size
        _USED_ELEM.pack_into(used, 4 + 8 * slot, head, written)
        # x86 keeps stores in order, so the element is visible before the index.
        self.used_idx = (self.used_idx + 1) & 0xFFFF
        _U16.pack_into(used, 2, self.used_idx)

    def need_interrupt(self) -> bool:
        """After pushes: does the driver want an interrupt (section 2.7.7 / 2.7.10)?"""
        avail = self._avail
        if avail is None:
            return False
        if not self.event_idx:
            return not _U16.unpack_from(avail, 0)[0] & AVAIL_F_NO_INTERRUPT
        fence()  # used.idx store before the used_event load
        new = self.used_idx
        old = self.signalled
        self.signalled = new
        if old is None:
            return True
        used_event = _U16.unpack_from(avail, 4 + 2 * self.size)[0]
        return ((new - used_event - 1) & 0xFFFF) < ((new - old) & 0xFFFF)

    def peek(self) -> bool:
        """Are there chains the driver published and the device has not taken? Safe without dev_lock."""
        avail = self._avail
        return avail is not None and _U16.unpack_from(avail, 2)[0] != self.last_avail

    def arm_notify(self) -> bool:
        """Ask for a kick at the next buffer; True if more arrived meanwhile (process again).

        On a polled ring this leaves notifications off and returns False: the poller
        watches the ring and calls rearm() when it stops.
        """
        if self.polled and self.event_idx:
            return False
        return self.rearm()

    def rearm(self) -> bool:
        """arm_notify() for whoever stops watching the ring."""
        used = self._used
        if used is None:
            return False
        if self.event_idx:
            _U16.pack_into(used, 4 + 8 * self.size, self.last_avail)
            fence()  # avail_event store before the avail.idx load
        return self.avail_idx() != self.last_avail
