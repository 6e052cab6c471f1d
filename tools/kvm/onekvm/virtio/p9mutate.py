"""The 9P2000.L requests that change the shared directory.

Each one resolves the parent directory through ShareFs (beneath the root,
no symlinks) and then acts on one checked name with an *at() call that does
not follow a symlink at that name; on a read-only share they are EROFS.
Mixed into p9server.Server, whose fid table and helpers they use.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from typing import TYPE_CHECKING, Callable

from onekvm.virtio import p9msg as m
from onekvm.virtio.p9fs import PASS_FLAGS, join, split
from onekvm.virtio.p9msg import P9Error, Reader, Writer

if TYPE_CHECKING:
    from onekvm.virtio.p9fs import ShareFs
    from onekvm.virtio.p9server import Fid

UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
AT_SYMLINK_NOFOLLOW = 0x100
AT_FDCWD = -100


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc = ctypes.CDLL(None, use_errno=True)


def utimensat(dirfd: int, path: bytes, atime: tuple[int, int], mtime: tuple[int, int], flags: int) -> None:
    ts = (_Timespec * 2)(_Timespec(*atime), _Timespec(*mtime))
    if _libc.utimensat(dirfd, ctypes.c_char_p(path), ts, flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class Mutations:
    fs: ShareFs
    fids: dict[int, Fid]

    # Provided by Server.
    def _fid(self, r: Reader) -> Fid: ...
    def _drop(self, n: int) -> None: ...
    def _name(self, r: Reader) -> bytes: ...
    def _writable(self) -> None: ...
    def qid(self, st: os.stat_result) -> bytes: ...
    def _rename_fids(self, old: bytes, new: bytes) -> None: ...

    def remove(self, r: Reader) -> bytes:
        n = r.u32()
        fid = self.fids.get(n)
        if fid is None:
            raise P9Error(errno.EBADF)
        try:
            self._writable()
            if not fid.path:
                raise P9Error(errno.EBUSY)
            parent, name = split(fid.path)
            dfd = self.fs.dir_fd(parent)
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    os.rmdir(name, dir_fd=dfd)
                else:
                    os.unlink(name, dir_fd=dfd)
            finally:
                os.close(dfd)
        finally:
            self._drop(n)  # Tremove clunks even when it fails
        return b""

    def lcreate(self, r: Reader) -> bytes:
        fid = self._fid(r)
        name = self._name(r)
        flags = r.u32()
        mode = r.u32()
        r.u32()  # gid: files belong to whoever runs the VMM
        self._writable()
        if fid.fd >= 0:
            raise P9Error(errno.EBUSY)
        path = join(fid.path, name)
        oflags = (flags & PASS_FLAGS & ~os.O_DIRECTORY) | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        dfd = self.fs.dir_fd(fid.path)
        try:
            # O_EXCL|O_NOFOLLOW: a planted symlink or device node at `name` is EEXIST, never followed or opened.
            fd = os.open(name, oflags, _safe_mode(mode), dir_fd=dfd)
        except FileExistsError:
            if flags & os.O_EXCL:
                raise
            fd, _ = self.fs.open(path, flags & PASS_FLAGS)
        finally:
            os.close(dfd)
        st = os.fstat(fd)
        fid.path, fid.fd, fid.is_dir, fid.entries = path, fd, False, None
        return self.qid(st) + Writer().u32(0).bytes()

    def setattr(self, r: Reader) -> bytes:
        fid = self._fid(r)
        valid, mode, uid, gid = r.u32(), r.u32(), r.u32(), r.u32()
        size, asec, ansec, msec, mnsec = r.u64(), r.u64(), r.u64(), r.u64(), r.u64()
        if valid & ~m.SETATTR_CTIME:
            self._writable()
        path = fid.path
        pfd = self.fs.resolve(path)
        try:
            st = os.fstat(pfd)
            link = stat.S_ISLNK(st.st_mode)
            if valid & m.SETATTR_MODE:
                if link:
                    raise P9Error(errno.EOPNOTSUPP)
                mode = _safe_mode(mode, st.st_mode)
                if self.fs.have_proc:
                    # Through the O_PATH fd: the inode just checked, whatever the path is now.
                    os.chmod(self.fs.proc_path(pfd), mode)
                else:
                    self._at(path, pfd, lambda d, n, nofollow: os.chmod(n, mode, dir_fd=d))
            if valid & (m.SETATTR_UID | m.SETATTR_GID):
                u = uid if valid & m.SETATTR_UID else -1
                g = gid if valid & m.SETATTR_GID else -1
                self._at(path, pfd, lambda d, n, nofollow: os.chown(n, u, g, dir_fd=d, follow_symlinks=not nofollow))
            if valid & m.SETATTR_SIZE:
                if not stat.S_ISREG(st.st_mode):
                    raise P9Error(errno.EINVAL)
                fd, _ = self.fs.open(path, os.O_WRONLY)
                try:
                    os.ftruncate(fd, size)
                finally:
                    os.close(fd)
            if valid & (m.SETATTR_ATIME | m.SETATTR_MTIME):
                at = _time(valid, m.SETATTR_ATIME, m.SETATTR_ATIME_SET, asec, ansec)
                mt = _time(valid, m.SETATTR_MTIME, m.SETATTR_MTIME_SET, msec, mnsec)
                self._at(
                    path, pfd, lambda d, n, nofollow: utimensat(d, n, at, mt, AT_SYMLINK_NOFOLLOW if nofollow else 0)
                )
        finally:
            os.close(pfd)
        return b""

    def _at(self, path: bytes, pfd: int, op: Callable[[int, bytes, bool], None]) -> None:
        """Run op(dirfd, name, nofollow) on path: an *at() call with AT_SYMLINK_NOFOLLOW on
        (parent, name); the root, which has no parent, through its /proc/self/fd link."""
        if not path:
            op(AT_FDCWD, self.fs.proc_path(pfd).encode(), False)  # the magic link leads to the root dir
            return
        parent, name = split(path)
        dfd = self.fs.dir_fd(parent)
        try:
            op(dfd, name, True)
        finally:
            os.close(dfd)

    def _in_dir(self, fid: Fid, op: Callable[[int], None]) -> None:
        self._writable()
        dfd = self.fs.dir_fd(fid.path)
        try:
            op(dfd)
        finally:
            os.close(dfd)

    def _created(self, fid: Fid, name: bytes) -> bytes:
        return self.qid(self.fs.lstat(join(fid.path, name)))

    def mkdir(self, r: Reader) -> bytes:
        fid = self._fid(r)
        name = self._name(r)
        mode = r.u32()
        r.u32()  # gid
        self._in_dir(fid, lambda d: os.mkdir(name, mode & 0o7777, dir_fd=d))
        return self._created(fid, name)

    def symlink(self, r: Reader) -> bytes:
        fid = self._fid(r)
        name = self._name(r)
        target = r.str()
        r.u32()  # gid
        if not target or b"\0" in target:
            raise P9Error(errno.EINVAL)
        # Any target text is fine: the host never follows a link in the share.
        self._in_dir(fid, lambda d: os.symlink(target, name, dir_fd=d))
        return self._created(fid, name)

    def mknod(self, r: Reader) -> bytes:
        fid = self._fid(r)
        name = self._name(r)
        mode = r.u32()
        r.u32()  # major
        r.u32()  # minor: no device nodes, see below
        r.u32()  # gid
        kind = stat.S_IFMT(mode)
        if kind not in (stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFREG, 0):
            # A device node in the share would let a host user (or a later
            # share of the same directory) reach a host device.
            raise P9Error(errno.EPERM)
        self._in_dir(fid, lambda d: os.mknod(name, kind | _safe_mode(mode), 0, dir_fd=d))
        return self._created(fid, name)

    def link(self, r: Reader) -> bytes:
        dfid = self._fid(r)
        fid = self._fid(r)
        name = self._name(r)
        self._writable()
        if not fid.path:
            raise P9Error(errno.EPERM)
        sparent, sname = split(fid.path)
        sfd = self.fs.dir_fd(sparent)
        try:
            # follow_symlinks=False: linking a symlink links the symlink, as link(2) does.
            self._in_dir(dfid, lambda d: os.link(sname, name, src_dir_fd=sfd, dst_dir_fd=d, follow_symlinks=False))
        finally:
            os.close(sfd)
        return b""

    def rename(self, r: Reader) -> bytes:
        fid = self._fid(r)
        dfid = self._fid(r)
        name = self._name(r)
        if not fid.path:
            raise P9Error(errno.EBUSY)
        parent, old = split(fid.path)
        self._move(parent, old, dfid.path, name)
        return b""

    def renameat(self, r: Reader) -> bytes:
        odir = self._fid(r)
        oname = self._name(r)
        ndir = self._fid(r)
        nname = self._name(r)
        self._move(odir.path, oname, ndir.path, nname)
        return b""

    def _move(self, oparent: bytes, oname: bytes, nparent: bytes, nname: bytes) -> None:
        self._writable()
        ofd = self.fs.dir_fd(oparent)
        try:
            nfd = self.fs.dir_fd(nparent)
            try:
                os.rename(oname, nname, src_dir_fd=ofd, dst_dir_fd=nfd)
            finally:
                os.close(nfd)
        finally:
            os.close(ofd)
        self._rename_fids(join(oparent, oname), join(nparent, nname))

    def unlinkat(self, r: Reader) -> bytes:
        fid = self._fid(r)
        name = self._name(r)
        flags = r.u32()
        if flags & m.AT_REMOVEDIR:
            self._in_dir(fid, lambda d: os.rmdir(name, dir_fd=d))
        else:
            self._in_dir(fid, lambda d: os.unlink(name, dir_fd=d))
        return b""


def _safe_mode(mode: int, current: int = 0) -> int:
    """Permission bits only; no set-uid/set-gid files for host users to run."""
    mode &= 0o7777
    if not stat.S_ISDIR(current):
        mode &= ~(stat.S_ISUID | stat.S_ISGID)
    return mode


def _time(valid: int, bit: int, set_bit: int, sec: int, nsec: int) -> tuple[int, int]:
    if not valid & bit:
        return (0, UTIME_OMIT)
    if valid & set_bit:
        return (sec, nsec)
    return (0, UTIME_NOW)
