"""A 9P2000.L file server for one shared directory (what Linux's v9fs speaks).

A fid is a path below the share root (components checked one at a time,
".." handled here, never by the host) plus, once opened, a host fd. All
lookups go through ShareFs.resolve, which cannot leave the root or follow
a symlink; creations use *at() calls on a resolved parent and one checked
name. Requests are served one at a time, so the guest cannot race itself.
The requests that change the share are in p9mutate.py.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from typing import Callable

from onekvm.virtio import p9msg as m
from onekvm.virtio.p9fs import PASS_FLAGS, ShareFs, join, split, valid_name
from onekvm.virtio.p9msg import P9Error, Reader, Writer
from onekvm.virtio.p9mutate import Mutations

DEFAULT_MSIZE = 8192
MAX_MSIZE = 1 << 20
V9FS_MAGIC = 0x01021997

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND


@dataclass
class Fid:
    path: bytes
    fd: int = -1
    is_dir: bool = False
    entries: list[tuple[bytes, bytes, int]] | None = field(default=None, repr=False)  # readdir snapshot


class Server(Mutations):
    def __init__(self, fs: ShareFs, max_msize: int = MAX_MSIZE) -> None:
        self.fs = fs
        self.max_msize = max_msize
        self.msize = DEFAULT_MSIZE
        self.fids: dict[int, Fid] = {}
        self._devs: dict[int, int] = {}  # st_dev -> index, for qid paths unique across mounts
        self._handlers: dict[int, Callable[[Reader], bytes]] = {
            m.TVERSION: self.version,
            m.TATTACH: self.attach,
            m.TFLUSH: lambda r: b"",
            m.TWALK: self.walk,
            m.TCLUNK: self.clunk,
            m.TREMOVE: self.remove,
            m.TSTATFS: self.statfs,
            m.TLOPEN: self.lopen,
            m.TLCREATE: self.lcreate,
            m.TSYMLINK: self.symlink,
            m.TMKNOD: self.mknod,
            m.TRENAME: self.rename,
            m.TREADLINK: self.readlink,
            m.TGETATTR: self.getattr,
            m.TSETATTR: self.setattr,
            m.TREADDIR: self.readdir,
            m.TFSYNC: self.fsync,
            m.TLOCK: self.lock,
            m.TGETLOCK: self.getlock,
            m.TLINK: self.link,
            m.TMKDIR: self.mkdir,
            m.TRENAMEAT: self.renameat,
            m.TUNLINKAT: self.unlinkat,
            m.TREAD: self.read,
            m.TWRITE: self.write,
        }

    def close(self) -> None:
        for fid in list(self.fids):
            self._drop(fid)

    # -- framing -----------------------------------------------------------------------------------
    def handle(self, msg: bytes | memoryview) -> bytes:
        """One T-message in, its R-message (or Rlerror) out."""
        try:
            _, mtype, tag = m.HEADER.unpack_from(msg, 0)
        except Exception:
            return m.error(m.NOTAG, errno.EINVAL)
        handler = self._handlers.get(mtype)
        try:
            if handler is None:
                raise P9Error(errno.EOPNOTSUPP)
            body = handler(Reader(msg, m.HEADER.size))
        except P9Error as e:
            return m.error(tag, e.errno)
        except OSError as e:
            return m.error(tag, e.errno or errno.EIO)
        return m.message(mtype + 1, tag, body)

    # -- helpers -----------------------------------------------------------------------------------
    def _fid(self, r: Reader) -> Fid:
        fid = self.fids.get(r.u32())
        if fid is None:
            raise P9Error(errno.EBADF)
        return fid

    def _drop(self, n: int) -> None:
        fid = self.fids.pop(n, None)
        if fid is not None and fid.fd >= 0:
            os.close(fid.fd)

    def _name(self, r: Reader) -> bytes:
        name = r.str()
        if not valid_name(name):
            raise P9Error(errno.EINVAL)
        return name

    def _writable(self) -> None:
        if self.fs.readonly:
            raise P9Error(errno.EROFS)

    def qid(self, st: os.stat_result) -> bytes:
        if stat.S_ISDIR(st.st_mode):
            qtype = m.QTDIR
        elif stat.S_ISLNK(st.st_mode):
            qtype = m.QTSYMLINK
        else:
            qtype = m.QTFILE
        # Inode numbers repeat across mounts below the root: fold the device in.
        dev = self._devs.setdefault(st.st_dev, len(self._devs))
        path = st.st_ino if dev == 0 else (dev << 48) ^ st.st_ino
        version = (int(st.st_mtime) ^ (st.st_size << 8)) & 0xFFFFFFFF
        return m.QID.pack(qtype, version, path & 0xFFFFFFFFFFFFFFFF)

    def _stat(self, fid: Fid) -> os.stat_result:
        return os.fstat(fid.fd) if fid.fd >= 0 else self.fs.lstat(fid.path)

    def _rename_fids(self, old: bytes, new: bytes) -> None:
        """Fids below a renamed path follow it (the guest's open files keep working)."""
        prefix = old + b"/"
        for fid in self.fids.values():
            if fid.path == old:
                fid.path = new
            elif fid.path.startswith(prefix):
                fid.path = new + fid.path[len(old) :]

    # -- session -----------------------------------------------------------------------------------
    def version(self, r: Reader) -> bytes:
        msize = r.u32()
        ver = r.str()
        self.close()  # a new session forgets every fid
        self.msize = max(min(msize, self.max_msize), 4096)
        if ver != m.VERSION_L:
            return Writer().u32(self.msize).str(b"unknown").bytes()
        return Writer().u32(self.msize).str(m.VERSION_L).bytes()

    def attach(self, r: Reader) -> bytes:
        n = r.u32()
        r.u32()  # afid: no authentication
        r.str()  # uname
        r.str()  # aname: there is one tree
        if n in self.fids:
            raise P9Error(errno.EBADF)
        st = self.fs.lstat(b"")
        self.fids[n] = Fid(b"", is_dir=True)
        return self.qid(st)

    # -- walking -----------------------------------------------------------------------------------
    def walk(self, r: Reader) -> bytes:
        n = r.u32()
        src = self.fids.get(n)
        if src is None:
            raise P9Error(errno.EBADF)
        newfid = r.u32()
        count = r.u16()
        if count > m.MAXWELEM:
            raise P9Error(errno.EINVAL)
        names = [r.str() for _ in range(count)]
        if newfid != n and newfid in self.fids:
            raise P9Error(errno.EBADF)
        path = src.path
        is_dir = src.is_dir
        qids = []
        for i, name in enumerate(names):
            if name == b"..":
                path = split(path)[0]  # the root's parent is the root
            elif name != b".":
                if not valid_name(name):
                    if i == 0:
                        raise P9Error(errno.EINVAL)
                    break
                path = join(path, name)
            try:
                st = self.fs.lstat(path)
            except OSError:
                if i == 0:
                    raise
                break  # a partial walk answers with the qids it got; newfid stays unused
            qids.append(self.qid(st))
            is_dir = stat.S_ISDIR(st.st_mode)
        if len(qids) == count:
            if newfid == n:
                src.path, src.is_dir = path, is_dir
            else:
                self.fids[newfid] = Fid(path, is_dir=is_dir)
        w = Writer().u16(len(qids))
        for q in qids:
            w.raw(q)
        return w.bytes()

    def clunk(self, r: Reader) -> bytes:
        n = r.u32()
        if n not in self.fids:
            raise P9Error(errno.EBADF)
        self._drop(n)
        return b""

    # -- opening and I/O ---------------------------------------------------------------------------------------------
    def lopen(self, r: Reader) -> bytes:
        fid = self._fid(r)
        flags = r.u32() & PASS_FLAGS
        if flags & _WRITE_FLAGS:
            self._writable()
        if fid.fd >= 0:
            raise P9Error(errno.EBUSY)
        fd, st = self.fs.open(fid.path, flags)
        fid.fd, fid.is_dir, fid.entries = fd, stat.S_ISDIR(st.st_mode), None
        return self.qid(st) + m.Writer().u32(0).bytes()

    def _open_fd(self, fid: Fid) -> int:
        if fid.fd < 0:
            raise P9Error(errno.EBADF)
        return fid.fd

    def read(self, r: Reader) -> bytes:
        fid = self._fid(r)
        offset = r.u64()
        count = min(r.u32(), self.msize - m.READ_HDR)
        data = os.pread(self._open_fd(fid), count, offset)
        return Writer().u32(len(data)).raw(data).bytes()

    def write(self, r: Reader) -> bytes:
        fid = self._fid(r)
        offset = r.u64()
        count = r.u32()
        data = r.data[r.pos : r.pos + count]
        if len(data) != count:
            raise P9Error(errno.EINVAL)
        self._writable()
        return Writer().u32(os.pwrite(self._open_fd(fid), data, offset)).bytes()

    def fid_for_io(self, n: int, write: bool) -> int:
        """The open fd behind a fid, for the zero-copy read/write path; raises P9Error."""
        fid = self.fids.get(n)
        if fid is None:
            raise P9Error(errno.EBADF)
        if write:
            self._writable()
        return self._open_fd(fid)

    def fsync(self, r: Reader) -> bytes:
        fid = self._fid(r)
        datasync = r.u32() if r.pos < len(r.data) else 0  # older clients send no flag
        fd = self._open_fd(fid)
        if datasync:
            os.fdatasync(fd)
        else:
            os.fsync(fd)
        return b""

    def readdir(self, r: Reader) -> bytes:
        fid = self._fid(r)
        offset = r.u64()
        count = min(r.u32(), self.msize - m.READ_HDR)
        fd = self._open_fd(fid)
        if not fid.is_dir:
            raise P9Error(errno.ENOTDIR)
        if offset == 0 or fid.entries is None:
            fid.entries = self._list(fid, fd)
        out = bytearray()
        for i in range(offset, len(fid.entries)):
            name, qid, dtype = fid.entries[i]
            ent = qid + Writer().u64(i + 1).u8(dtype).str(name).bytes()
            if len(out) + len(ent) > count:
                break
            out += ent
        return Writer().u32(len(out)).raw(bytes(out)).bytes()

    def _list(self, fid: Fid, fd: int) -> list[tuple[bytes, bytes, int]]:
        """A snapshot of the directory; offsets index into it (a rewind re-reads)."""
        dst = os.fstat(fd)
        parent = dst if not fid.path else self.fs.lstat(split(fid.path)[0])
        out = [(b".", self.qid(dst), 4), (b"..", self.qid(parent), 4)]
        os.lseek(fd, 0, os.SEEK_SET)
        with os.scandir(fd) as it:
            for e in it:
                name = os.fsencode(e.name)
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue  # gone meanwhile
                out.append((name, self.qid(st), _dtype(st.st_mode)))
        return out

    # -- attributes --------------------------------------------------------------------------------
    def getattr(self, r: Reader) -> bytes:
        fid = self._fid(r)
        r.u64()  # request mask: the basic set is always returned
        st = self._stat(fid)
        w = Writer().u64(m.GETATTR_BASIC).raw(self.qid(st))
        w.u32(st.st_mode).u32(st.st_uid).u32(st.st_gid).u64(st.st_nlink).u64(st.st_rdev)
        w.u64(st.st_size).u64(st.st_blksize).u64(st.st_blocks)
        for ns in (st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns):
            w.u64(ns // 1_000_000_000).u64(ns % 1_000_000_000)
        w.u64(0).u64(0).u64(0).u64(0)  # btime, gen, data_version: not reported
        return w.bytes()

    def statfs(self, r: Reader) -> bytes:
        fid = self._fid(r)
        fd = self.fs.resolve(fid.path)
        try:
            s = os.fstatvfs(fd)
        finally:
            os.close(fd)
        w = Writer().u32(V9FS_MAGIC).u32(s.f_bsize).u64(s.f_blocks).u64(s.f_bfree).u64(s.f_bavail)
        return w.u64(s.f_files).u64(s.f_ffree).u64(s.f_fsid).u32(s.f_namemax).bytes()

    def readlink(self, r: Reader) -> bytes:
        fid = self._fid(r)
        if not fid.path:
            raise P9Error(errno.EINVAL)
        parent, name = split(fid.path)
        dfd = self.fs.dir_fd(parent)
        try:
            target = os.readlink(name, dir_fd=dfd)
        finally:
            os.close(dfd)
        return Writer().str(target).bytes()

    # -- locks: advisory locks live in the guest kernel ----------------------------------------------
    def lock(self, r: Reader) -> bytes:
        self._fid(r)
        return Writer().u8(m.LOCK_SUCCESS).bytes()

    def getlock(self, r: Reader) -> bytes:
        self._fid(r)
        r.u8()
        start, length, proc_id, client = r.u64(), r.u64(), r.u32(), r.str()
        return Writer().u8(m.F_UNLCK).u64(start).u64(length).u32(proc_id).str(client).bytes()


def _dtype(mode: int) -> int:
    """DT_* of a mode, for readdir."""
    for test, dt in (
        (stat.S_ISDIR, 4),
        (stat.S_ISREG, 8),
        (stat.S_ISLNK, 10),
        (stat.S_ISCHR, 2),
        (stat.S_ISBLK, 6),
        (stat.S_ISFIFO, 1),
        (stat.S_ISSOCK, 12),
    ):
        if test(mode):
            return dt
    return 0
