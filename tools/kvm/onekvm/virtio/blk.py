"""virtio-blk over a raw image file (`-d FILE[,ro]`), virtio 1.x section 5.2.

Writes go to the host page cache with pwritev, and a guest FLUSH is an
fsync: a crash of this process loses nothing (the kernel has the pages),
a crash of the host loses only what the guest had not flushed. Reads and
writes move data straight between the file and guest memory (preadv /
pwritev on views of guest RAM), without a copy in Python.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from dataclasses import dataclass
from typing import Callable

from onekvm.errors import UserError
from onekvm.virtio import fastpath
from onekvm.virtio.device import ID_BLOCK, VirtioDevice, log, register
from onekvm.virtio.queue import Chain, QueueError, SplitQueue

SECTOR = 512

F_SEG_MAX = 1 << 2
F_RO = 1 << 5
F_BLK_SIZE = 1 << 6
F_FLUSH = 1 << 9
F_DISCARD = 1 << 13

T_IN = 0
T_OUT = 1
T_FLUSH = 4
T_GET_ID = 8
T_DISCARD = 11

S_OK = 0
S_IOERR = 1
S_UNSUPP = 2

ID_BYTES = 20
QUEUE_SIZE = 256
MAX_DISCARD_SECTORS = 1 << 22  # 2 GiB per segment
MAX_DISCARD_SEG = 32
DISCARD_ALIGN_SECTORS = 8  # 4 KiB: what punch-hole can actually free

_HDR = struct.Struct("<IIQ")
_DISCARD_SEG = struct.Struct("<QII")

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02

_fallocate = None


def punch_hole(fd: int, offset: int, length: int) -> None:
    """fallocate(PUNCH_HOLE | KEEP_SIZE): the range reads back as zeros, its blocks are freed."""
    global _fallocate
    import ctypes  # os has no fallocate with a mode; imported late, ctypes is slow to load in the rig

    if _fallocate is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
        _fallocate = libc.fallocate
    if _fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@dataclass
class DiskSpec:
    path: str
    readonly: bool = False


@register("blk")
class Block(VirtioDevice):
    device_id = ID_BLOCK
    pci_class = 0x018000  # mass storage, other
    queue_sizes = (QUEUE_SIZE,)
    poll_ok = True  # every request completes in process()

    @classmethod
    def parse(cls, text: str) -> DiskSpec:
        path, *opts = text.split(",")
        spec = DiskSpec(path)
        for o in opts:
            if o == "ro":
                spec.readonly = True
            elif o == "rw":
                spec.readonly = False
            else:
                raise UserError(f"-d {text}: unknown option {o!r} (FILE[,ro])")
        if not path:
            raise UserError(f"-d {text}: no image file")
        if not os.path.isfile(path):
            what = "not a regular file" if os.path.exists(path) else "no such file"
            raise UserError(f"-d {path}: {what} (raw disk images only)")
        return spec

    def __init__(self, spec: DiskSpec, name: str = "blk", *, fast: bool | None = None) -> None:
        """fast: serve requests through the C fast path (default: when built and not turned off)."""
        super().__init__(spec, name)
        self.readonly = spec.readonly
        flags = os.O_RDONLY if spec.readonly else os.O_RDWR
        try:
            self.fd = os.open(spec.path, flags | os.O_CLOEXEC)
        except OSError as e:
            raise UserError(f"-d {spec.path}: {e.strerror}") from None
        try:
            # Two writers on one image corrupt it; readers may share.
            fcntl.flock(self.fd, (fcntl.LOCK_SH if spec.readonly else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise UserError(f"-d {spec.path}: image is in use by another process") from None
        self.size = os.fstat(self.fd).st_size
        self.sectors = self.size // SECTOR
        st = os.fstat(self.fd)
        # A serial that stays with the image (same file, same ID), for /dev/disk/by-id.
        self.serial = b"okvm%08x%08x" % (st.st_dev & 0xFFFFFFFF, st.st_ino & 0xFFFFFFFF)
        self.can_discard = not spec.readonly and self._probe_discard()
        self._fast: fastpath.BlkFastPath | None = None  # made at the first request: guest RAM is complete
        self._fast_ok = fastpath.available() if fast is None else fast
        if self._fast_ok:
            self.kick_in_c = self._kick_in_c
        self.features = F_SEG_MAX | F_BLK_SIZE | F_FLUSH
        if spec.readonly:
            self.features |= F_RO
        if self.can_discard:
            self.features |= F_DISCARD
        self.config = bytearray(60)
        struct.pack_into("<Q", self.config, 0, self.sectors)
        struct.pack_into("<I", self.config, 12, QUEUE_SIZE - 2)  # seg_max: header and status take two
        struct.pack_into("<I", self.config, 20, SECTOR)  # blk_size
        struct.pack_into("<III", self.config, 36, MAX_DISCARD_SECTORS, MAX_DISCARD_SEG, DISCARD_ALIGN_SECTORS)

    def _probe_discard(self) -> bool:
        """Punch an empty range past the end: fails with EOPNOTSUPP where holes are unsupported."""
        try:
            punch_hole(self.fd, self.size + (1 << 20), SECTOR)
        except OSError as e:
            if e.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                log.debug("%s: discard probe: %s", self.name, e)
            return False
        return True

    def close(self) -> None:
        self._fast = None
        self._fast_ok = False
        self.kick_in_c = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # -- requests ---------------------------------------------------------------------------
    def _fast_path(self, queue: SplitQueue) -> fastpath.BlkFastPath:
        if self._fast is None:
            self._fast = fastpath.BlkFastPath(queue.mem, self.fd, self.readonly, self.sectors * SECTOR)
        return self._fast

    def _kick_in_c(self, queue: SplitQueue, kick_fd: int) -> tuple[int, int, bool]:
        return self._fast_path(queue).kick(queue, kick_fd)

    def serve(self, queue: SplitQueue, budget: int) -> int:
        """The C fast path first; a chain it hands back is Python's, one at a time."""
        if not self._fast_ok:
            return super().serve(queue, budget)
        fast = self._fast_path(queue)
        n = 0
        while n < budget:
            done, handed_back = fast.serve(queue, budget - n)
            if done:
                assert self.transport is not None
                self.transport.queue_used(queue)
                n += done
            if not handed_back:
                break
            served = super().serve(queue, 1)
            if not served:
                break
            n += served
        return n

    def handle(self, queue: SplitQueue, chain: Chain) -> int | None:
        readable_len = chain.readable_len
        writable_len = chain.writable_len
        if readable_len < _HDR.size or writable_len < 1:
            # No header or no room for the status byte: nothing sane to answer with.
            raise QueueError(f"request of {readable_len}+{writable_len} bytes has no header or status")
        first = chain.readable[0]
        if first.length >= _HDR.size:  # the usual case: the header is one buffer
            rtype, _, sector = _HDR.unpack_from(first.buf, first.off)
        else:
            rtype, _, sector = _HDR.unpack(chain.read(0, _HDR.size))
        data_out = readable_len - _HDR.size
        data_in = writable_len - 1  # the last writable byte is the status
        written = 0
        try:
            if rtype == T_IN:
                status, written = self._read(chain, sector, data_in)
            elif rtype == T_OUT:
                status = self._write(chain, sector, data_out)
            elif rtype == T_FLUSH:
                status = self._flush()
            elif rtype == T_GET_ID:
                n = min(ID_BYTES, data_in)
                written = chain.write(self.serial.ljust(ID_BYTES, b"\0")[:n])
                status = S_OK
            elif rtype == T_DISCARD and self.can_discard:
                status = self._discard(chain, data_out)
            else:
                status = S_UNSUPP
        except OSError as e:
            log.debug("%s: request type %d sector %d: %s", self.name, rtype, sector, e)
            status = S_IOERR
        chain.write_last(status)
        return written + 1

    def _range_ok(self, sector: int, length: int) -> bool:
        return length % SECTOR == 0 and sector * SECTOR + length <= self.sectors * SECTOR

    def _read(self, chain: Chain, sector: int, length: int) -> tuple[int, int]:
        if not self._range_ok(sector, length):
            return S_IOERR, 0
        done = _transfer(os.preadv, self.fd, chain.writable_views(0, length), sector * SECTOR)
        return (S_OK if done == length else S_IOERR), done

    def _write(self, chain: Chain, sector: int, length: int) -> int:
        if self.readonly or not self._range_ok(sector, length):
            return S_IOERR
        done = _transfer(os.pwritev, self.fd, chain.readable_views(_HDR.size, length), sector * SECTOR)
        return S_OK if done == length else S_IOERR

    def _flush(self) -> int:
        if not self.readonly:
            os.fsync(self.fd)
        return S_OK

    def _discard(self, chain: Chain, length: int) -> int:
        if length % _DISCARD_SEG.size or length // _DISCARD_SEG.size > MAX_DISCARD_SEG:
            return S_UNSUPP
        data = chain.read(_HDR.size, length)
        for i in range(0, length, _DISCARD_SEG.size):
            sector, count, flags = _DISCARD_SEG.unpack_from(data, i)
            if flags or count > MAX_DISCARD_SECTORS:
                # Bit 0 (unmap) is only meaningful for WRITE_ZEROES; the rest is reserved.
                return S_UNSUPP
            if not self._range_ok(sector, count * SECTOR):
                return S_IOERR
            if count:
                punch_hole(self.fd, sector * SECTOR, count * SECTOR)
        return S_OK


IOV_MAX = 1024


def _transfer(op: Callable[[int, list[memoryview], int], int], fd: int, views: list[memoryview], off: int) -> int:
    """preadv/pwritev until done, IOV_MAX views at a time; returns bytes moved (short at EOF)."""
    done = 0
    while views:
        batch = views if len(views) <= IOV_MAX else views[:IOV_MAX]
        n = op(fd, batch, off)
        if n <= 0:
            break
        done += n
        if batch is views and n == sum(map(len, views)):
            break  # the usual case: one call moved it all
        off += n
        views = _advance(views, n)
    return done


def _advance(views: list[memoryview], n: int) -> list[memoryview]:
    """The views left after n bytes were consumed (a short pwritev)."""
    out = []
    for v in views:
        if n >= len(v):
            n -= len(v)
            continue
        out.append(v[n:])
        n = 0
    return out
