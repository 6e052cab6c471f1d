"""9P2000.L wire format: message types and little-endian field codecs.

A message is size[4] type[1] tag[2] then fields: integers, strings as
len[2]+bytes, qids as type[1] version[4] path[8]. Names stay bytes end to
end: the host file system does not promise UTF-8 and neither does 9P.
"""

from __future__ import annotations

import errno
import struct

HEADER = struct.Struct("<IBH")
NOTAG = 0xFFFF
NOFID = 0xFFFFFFFF
VERSION_L = b"9P2000.L"
MAXWELEM = 16

# Message types (T = request, R = T + 1).
RLERROR = 7
TSTATFS = 8
TLOPEN = 12
TLCREATE = 14
TSYMLINK = 16
TMKNOD = 18
TRENAME = 20
TREADLINK = 22
TGETATTR = 24
TSETATTR = 26
TXATTRWALK = 30
TXATTRCREATE = 32
TREADDIR = 40
TFSYNC = 50
TLOCK = 52
TGETLOCK = 54
TLINK = 70
TMKDIR = 72
TRENAMEAT = 74
TUNLINKAT = 76
TVERSION = 100
TAUTH = 102
TATTACH = 104
TFLUSH = 108
TWALK = 110
TREAD = 116
TWRITE = 118
TCLUNK = 120
TREMOVE = 122

QTDIR = 0x80
QTSYMLINK = 0x02
QTFILE = 0x00

# Tsetattr valid bits.
SETATTR_MODE = 1 << 0
SETATTR_UID = 1 << 1
SETATTR_GID = 1 << 2
SETATTR_SIZE = 1 << 3
SETATTR_ATIME = 1 << 4
SETATTR_MTIME = 1 << 5
SETATTR_CTIME = 1 << 6
SETATTR_ATIME_SET = 1 << 7
SETATTR_MTIME_SET = 1 << 8

GETATTR_BASIC = 0x7FF  # mode .. blocks: what Rgetattr fills in
AT_REMOVEDIR = 0x200
LOCK_SUCCESS = 0
F_UNLCK = 2

READ_HDR = 11  # Rread: size type tag count
WRITE_HDR = 23  # Twrite: size type tag fid offset count


class P9Error(Exception):
    """An error to answer with Rlerror(errno)."""

    def __init__(self, err: int) -> None:
        super().__init__(errno.errorcode.get(err, str(err)))
        self.errno = err


class Reader:
    """Fields out of a message body; running off the end is EINVAL, never an exception escaping."""

    def __init__(self, data: bytes | memoryview, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def _take(self, fmt: struct.Struct) -> tuple[int, ...]:
        try:
            v = fmt.unpack_from(self.data, self.pos)
        except struct.error:
            raise P9Error(errno.EINVAL) from None
        self.pos += fmt.size
        return v

    def u8(self) -> int:
        return self._take(_U8)[0]

    def u16(self) -> int:
        return self._take(_U16)[0]

    def u32(self) -> int:
        return self._take(_U32)[0]

    def u64(self) -> int:
        return self._take(_U64)[0]

    def str(self) -> bytes:
        n = self.u16()
        if self.pos + n > len(self.data):
            raise P9Error(errno.EINVAL)
        s = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return s


class Writer:
    def __init__(self) -> None:
        self.buf = bytearray()

    def u8(self, v: int) -> Writer:
        self.buf += _U8.pack(v)
        return self

    def u16(self, v: int) -> Writer:
        self.buf += _U16.pack(v)
        return self

    def u32(self, v: int) -> Writer:
        self.buf += _U32.pack(v & 0xFFFFFFFF)
        return self

    def u64(self, v: int) -> Writer:
        self.buf += _U64.pack(v & 0xFFFFFFFFFFFFFFFF)
        return self

    def str(self, s: bytes) -> Writer:
        self.buf += _U16.pack(len(s)) + s
        return self

    def raw(self, b: bytes) -> Writer:
        self.buf += b
        return self

    def bytes(self) -> bytes:
        return bytes(self.buf)


_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
QID = struct.Struct("<BIQ")


def message(mtype: int, tag: int, body: bytes) -> bytes:
    return HEADER.pack(HEADER.size + len(body), mtype, tag) + body


def error(tag: int, err: int) -> bytes:
    return message(RLERROR, tag, _U32.pack(err))
