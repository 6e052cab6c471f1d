"""The shared directory, reachable only from beneath its root.

Every guest path is a list of single components that the 9P server has
already checked (no "/", no "..", no "."), and every lookup goes through
`resolve`, which never follows a symlink and never leaves the root:

- openat2(root, path, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
  when the kernel has it (5.6+): one syscall, the kernel enforces both;
- otherwise one openat(O_PATH | O_NOFOLLOW) per component from the root fd.

A trailing symlink is returned as itself (O_PATH | O_NOFOLLOW), so the
guest can read it but the host never follows it. Files are opened for I/O
by re-opening that O_PATH fd through /proc/self/fd after checking its
type: what was checked is what gets opened, and device nodes, FIFOs and
sockets in the share are never opened on the host.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import stat

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
SYS_OPENAT2 = 437  # x86_64, like the rest of this VMM

_O_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
# Open flags a guest may pass through (9P2000.L uses the Linux x86 values);
# O_NOFOLLOW and O_CLOEXEC are always added, O_CREAT only by Tlcreate.
PASS_FLAGS = os.O_ACCMODE | os.O_TRUNC | os.O_APPEND | os.O_DSYNC | os.O_SYNC | os.O_DIRECTORY

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: bytes, flags: int, mode: int = 0, resolve: int = 0) -> int:
    how = _OpenHow(flags, mode, resolve)
    fd = _libc.syscall(SYS_OPENAT2, ctypes.c_int(dirfd), ctypes.c_char_p(path), ctypes.byref(how), ctypes.sizeof(how))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return int(fd)


def have_openat2() -> bool:
    try:
        os.close(openat2(-100, b"/", os.O_PATH | os.O_CLOEXEC))  # AT_FDCWD
    except OSError as e:
        return e.errno not in (errno.ENOSYS, errno.EPERM)  # EPERM: a seccomp filter
    return True


def join(parent: bytes, name: bytes) -> bytes:
    return name if not parent else parent + b"/" + name


def split(path: bytes) -> tuple[bytes, bytes]:
    """(parent, name); the root has no name."""
    head, _, tail = path.rpartition(b"/")
    return head, tail


def valid_name(name: bytes) -> bool:
    return bool(name) and name not in (b".", b"..") and b"/" not in name and b"\0" not in name


class ShareFs:
    def __init__(self, root: str, readonly: bool, use_openat2: bool | None = None) -> None:
        self.root = root
        self.readonly = readonly
        self.root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.use_openat2 = have_openat2() if use_openat2 is None else use_openat2
        self.have_proc = os.path.isdir("/proc/self/fd")

    def close(self) -> None:
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    # -- lookups -----------------------------------------------------------------------------------------
    def resolve(self, path: bytes, flags: int = _O_PATH, mode: int = 0) -> int:
        """An fd for path below the root; symlinks anywhere but the end are ELOOP."""
        flags |= os.O_NOFOLLOW | os.O_CLOEXEC
        if not path:
            return os.open(".", flags & ~os.O_NOFOLLOW, mode, dir_fd=self.root_fd)
        if self.use_openat2:
            res = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
            for _ in range(8):
                try:
                    return openat2(self.root_fd, path, flags, mode, res)
                except OSError as e:
                    if e.errno != errno.EAGAIN:  # a concurrent rename somewhere: try again
                        raise
            raise OSError(errno.EAGAIN, "share is being renamed too fast", path)
        return self._walk(path, flags, mode)

    def _walk(self, path: bytes, flags: int, mode: int) -> int:
        parts = path.split(b"/")
        if not all(valid_name(p) for p in parts):
            raise OSError(errno.EINVAL, "bad path", path)
        fd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.root_fd)
        try:
            for p in parts[:-1]:
                # O_DIRECTORY with O_NOFOLLOW: a symlink here is ENOTDIR, never followed.
                nfd = os.open(p, os.O_PATH | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=fd)
                os.close(fd)
                fd = nfd
            return os.open(parts[-1], flags, mode, dir_fd=fd)
        finally:
            os.close(fd)

    def lstat(self, path: bytes) -> os.stat_result:
        fd = self.resolve(path)
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def dir_fd(self, path: bytes) -> int:
        """An O_PATH fd of a directory (the parent of a create, rename, link, ...)."""
        return self.resolve(path, os.O_PATH | os.O_DIRECTORY)

    # -- opening for I/O -------------------------------------------------------------------------------------
    def open(self, path: bytes, flags: int) -> tuple[int, os.stat_result]:
        """Open a regular file or directory for I/O; other types are refused (EPERM/ELOOP)."""
        pfd = self.resolve(path)
        try:
            st = os.fstat(pfd)
            if stat.S_ISLNK(st.st_mode):
                raise OSError(errno.ELOOP, "is a symlink", path)
            if stat.S_ISDIR(st.st_mode):
                flags = (flags & ~(os.O_ACCMODE | os.O_TRUNC | os.O_APPEND)) | os.O_RDONLY | os.O_DIRECTORY
            elif not stat.S_ISREG(st.st_mode):
                # Devices, FIFOs, sockets: the guest kernel serves them itself, the host never opens them.
                raise OSError(errno.EPERM, "not a regular file or directory", path)
            elif flags & os.O_DIRECTORY:
                raise OSError(errno.ENOTDIR, "not a directory", path)
            flags |= os.O_CLOEXEC
            if self.have_proc:
                fd = os.open(f"/proc/self/fd/{pfd}", flags & ~os.O_NOFOLLOW)
            else:
                fd = self.resolve(path, flags | os.O_NONBLOCK)
                os.set_blocking(fd, True)
            st2 = os.fstat(fd)
            if (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino):  # swapped under us (host side)
                os.close(fd)
                raise OSError(errno.EAGAIN, "file changed while opening", path)
            return fd, st2
        finally:
            os.close(pfd)

    def proc_path(self, fd: int) -> str:
        return f"/proc/self/fd/{fd}"
