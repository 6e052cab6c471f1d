"""virtio-9p (`--9p DIR,TAG[,ro]`): a 9P2000.L server for a host directory.

The transport part is small: each chain carries one T-message (readable)
and room for its R-message (writable). Tread and Twrite move file data
straight between the file and guest memory; everything else goes through
p9server.Server as bytes.
"""

from __future__ import annotations

import errno
import os
import resource
import struct
from dataclasses import dataclass

from onekvm.errors import UserError
from onekvm.virtio import p9msg as m
from onekvm.virtio.device import ID_9P, VirtioDevice, register
from onekvm.virtio.p9fs import ShareFs
from onekvm.virtio.p9msg import P9Error
from onekvm.virtio.p9server import Server
from onekvm.virtio.queue import Chain, QueueError, SplitQueue

F_MOUNT_TAG = 1 << 0
MAX_TAG = 64  # QEMU's limit; Linux takes any u16 length
_TREAD = struct.Struct("<IQI")  # fid offset count
_TWRITE = struct.Struct("<IQI")


@dataclass
class ShareSpec:
    path: str
    tag: str
    readonly: bool = False


def raise_fd_limit() -> None:
    """A guest with a busy 9p root keeps many files open: use the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass


@register("9p")
class NineP(VirtioDevice):
    device_id = ID_9P
    pci_class = 0x018000  # mass storage, other (as QEMU)
    queue_sizes = (128,)
    poll_ok = True  # every request completes in process()

    @classmethod
    def parse(cls, text: str) -> ShareSpec:
        parts = text.split(",")
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise UserError(f"--9p {text}: expected DIR,TAG[,ro]")
        spec = ShareSpec(parts[0], parts[1])
        for o in parts[2:]:
            if o == "ro":
                spec.readonly = True
            elif o != "rw":
                raise UserError(f"--9p {text}: unknown option {o!r} (DIR,TAG[,ro])")
        if len(spec.tag.encode()) > MAX_TAG:
            raise UserError(f"--9p {text}: tag longer than {MAX_TAG} bytes")
        if not os.path.isdir(spec.path):
            raise UserError(f"--9p {spec.path}: not a directory")
        return spec

    def __init__(self, spec: ShareSpec, name: str = "9p") -> None:
        super().__init__(spec, name)
        try:
            self.fs = ShareFs(spec.path, spec.readonly)
        except OSError as e:
            raise UserError(f"--9p {spec.path}: {e.strerror}") from None
        raise_fd_limit()
        self.server = Server(self.fs)
        tag = spec.tag.encode()
        self.features = F_MOUNT_TAG
        self.config = bytearray(struct.pack("<H", len(tag)) + tag)

    def reset(self) -> None:
        self.server.close()  # the next driver starts a new session

    def close(self) -> None:
        self.server.close()
        self.fs.close()

    def handle(self, queue: SplitQueue, chain: Chain) -> int | None:
        if chain.readable_len < m.HEADER.size or chain.writable_len < m.HEADER.size + 4:
            raise QueueError(
                f"9P chain of {chain.readable_len}+{chain.writable_len} bytes cannot hold a request and an Rlerror"
            )
        size, mtype, tag = m.HEADER.unpack(chain.read(0, m.HEADER.size))
        if size < m.HEADER.size or size > chain.readable_len:
            return self._reply(chain, m.error(tag, errno.EINVAL))
        if mtype in (m.TREAD, m.TWRITE) and size < m.WRITE_HDR:
            return self._reply(chain, m.error(tag, errno.EINVAL))
        try:
            if mtype == m.TREAD:
                return self._read(chain, tag)
            if mtype == m.TWRITE:
                return self._write(chain, size, tag)
        except P9Error as e:
            return self._reply(chain, m.error(tag, e.errno))
        except OSError as e:
            return self._reply(chain, m.error(tag, e.errno or errno.EIO))
        return self._reply(chain, self.server.handle(chain.read(0, size)))

    def _reply(self, chain: Chain, resp: bytes) -> int:
        if len(resp) > chain.writable_len:
            # The driver's buffer is smaller than its own count asked for.
            tag = struct.unpack_from("<H", resp, 5)[0]
            resp = m.error(tag, errno.EMSGSIZE)
        return chain.write(resp)

    def _read(self, chain: Chain, tag: int) -> int:
        fid, offset, count = _TREAD.unpack(chain.read(m.HEADER.size, _TREAD.size))
        fd = self.server.fid_for_io(fid, write=False)
        count = min(count, self.server.msize - m.READ_HDR, chain.writable_len - m.READ_HDR)
        views = chain.writable_views(m.READ_HDR, count)
        n = os.preadv(fd, views, offset) if views else 0
        chain.write(m.HEADER.pack(m.READ_HDR + n, m.TREAD + 1, tag) + struct.pack("<I", n))
        return m.READ_HDR + n

    def _write(self, chain: Chain, size: int, tag: int) -> int:
        fid, offset, count = _TWRITE.unpack(chain.read(m.HEADER.size, _TWRITE.size))
        if count > size - m.WRITE_HDR:
            raise P9Error(errno.EINVAL)
        fd = self.server.fid_for_io(fid, write=True)
        views = chain.readable_views(m.WRITE_HDR, count)
        n = os.pwritev(fd, views, offset) if views else 0
        return self._reply(chain, m.message(m.TWRITE + 1, tag, struct.pack("<I", n)))

