"""virtio-9p: the 9P2000.L server message by message, escape attempts, and the device."""

from __future__ import annotations

import errno
import os
import stat
import struct

import pytest
from onekvm.virtio import p9msg as m
from onekvm.virtio.ninep import NineP, ShareSpec
from onekvm.virtio.p9fs import ShareFs, have_openat2
from onekvm.virtio.p9msg import Reader, Writer
from onekvm.virtio.p9server import Server
from onekvm.virtio.pci import S_NEEDS_RESET
from onekvm.virtio.testing import Harness

ROOT = 0


class Client:
    """Builds T-messages, checks R-messages; `err` holds the errno of the last Rlerror."""

    def __init__(self, send) -> None:
        self.send = send
        self.tag = 0
        self.err = 0

    def rpc(self, mtype: int, body: bytes) -> Reader:
        self.tag = (self.tag + 1) % 0xFFFF
        resp = self.send(m.message(mtype, self.tag, body))
        size, rtype, tag = m.HEADER.unpack_from(resp)
        assert size == len(resp) and tag == self.tag
        if rtype == m.RLERROR:
            self.err = struct.unpack_from("<I", resp, 7)[0]
            raise OSError(self.err, os.strerror(self.err))
        assert rtype == mtype + 1
        return Reader(resp, 7)

    def version(self, msize: int = 65536, ver: bytes = m.VERSION_L) -> tuple[int, bytes]:
        r = self.rpc(m.TVERSION, Writer().u32(msize).str(ver).bytes())
        return r.u32(), r.str()

    def attach(self, fid: int = ROOT) -> bytes:
        body = Writer().u32(fid).u32(m.NOFID).str(b"root").str(b"").u32(0).bytes()
        return bytes(self.rpc(m.TATTACH, body).data[7:20])

    def walk(self, fid: int, newfid: int, *names: bytes) -> list[bytes]:
        w = Writer().u32(fid).u32(newfid).u16(len(names))
        for n in names:
            w.str(n)
        r = self.rpc(m.TWALK, w.bytes())
        count = r.u16()
        return [bytes(r.data[r.pos + 13 * i : r.pos + 13 * (i + 1)]) for i in range(count)]

    def lopen(self, fid: int, flags: int = os.O_RDONLY) -> bytes:
        return bytes(self.rpc(m.TLOPEN, Writer().u32(fid).u32(flags).bytes()).data[7:20])

    def lcreate(self, fid: int, name: bytes, flags: int = os.O_RDWR, mode: int = 0o644) -> bytes:
        body = Writer().u32(fid).str(name).u32(flags).u32(mode).u32(0).bytes()
        return bytes(self.rpc(m.TLCREATE, body).data[7:20])

    def read(self, fid: int, offset: int = 0, count: int = 4096) -> bytes:
        r = self.rpc(m.TREAD, Writer().u32(fid).u64(offset).u32(count).bytes())
        n = r.u32()
        return bytes(r.data[r.pos : r.pos + n])

    def write(self, fid: int, data: bytes, offset: int = 0) -> int:
        return self.rpc(m.TWRITE, Writer().u32(fid).u64(offset).u32(len(data)).raw(data).bytes()).u32()

    def clunk(self, fid: int) -> None:
        self.rpc(m.TCLUNK, Writer().u32(fid).bytes())

    def getattr(self, fid: int) -> dict[str, int]:
        r = self.rpc(m.TGETATTR, Writer().u32(fid).u64(m.GETATTR_BASIC).bytes())
        r.u64()
        qtype = r.u8()
        r.u32()
        qpath = r.u64()
        mode, uid = r.u32(), r.u32()
        r.u32()  # gid
        nlink = r.u64()
        r.u64()  # rdev
        size = r.u64()
        r.u64()  # blksize
        r.u64()  # blocks
        atime, _, mtime, _ = r.u64(), r.u64(), r.u64(), r.u64()
        return dict(qtype=qtype, ino=qpath, mode=mode, uid=uid, nlink=nlink, size=size, atime=atime, mtime=mtime)

    def setattr(self, fid: int, valid: int, mode=0, uid=0, gid=0, size=0, atime=0, mtime=0) -> None:
        w = Writer().u32(fid).u32(valid).u32(mode).u32(uid).u32(gid).u64(size)
        self.rpc(m.TSETATTR, w.u64(atime).u64(0).u64(mtime).u64(0).bytes())

    def readdir(self, fid: int, offset: int = 0, count: int = 8192) -> list[tuple[bytes, int, int]]:
        r = self.rpc(m.TREADDIR, Writer().u32(fid).u64(offset).u32(count).bytes())
        end = r.pos + 4 + r.u32()
        out = []
        while r.pos < end:
            r.pos += 13
            off, dtype, name = r.u64(), r.u8(), r.str()
            out.append((name, off, dtype))
        return out

    def mkdir(self, fid: int, name: bytes, mode: int = 0o755) -> None:
        self.rpc(m.TMKDIR, Writer().u32(fid).str(name).u32(mode).u32(0).bytes())

    def symlink(self, fid: int, name: bytes, target: bytes) -> None:
        self.rpc(m.TSYMLINK, Writer().u32(fid).str(name).str(target).u32(0).bytes())

    def readlink(self, fid: int) -> bytes:
        return self.rpc(m.TREADLINK, Writer().u32(fid).bytes()).str()

    def link(self, dfid: int, fid: int, name: bytes) -> None:
        self.rpc(m.TLINK, Writer().u32(dfid).u32(fid).str(name).bytes())

    def mknod(self, fid: int, name: bytes, mode: int, major: int = 0, minor: int = 0) -> None:
        self.rpc(m.TMKNOD, Writer().u32(fid).str(name).u32(mode).u32(major).u32(minor).u32(0).bytes())

    def rename(self, fid: int, dfid: int, name: bytes) -> None:
        self.rpc(m.TRENAME, Writer().u32(fid).u32(dfid).str(name).bytes())

    def renameat(self, ofid: int, oname: bytes, nfid: int, nname: bytes) -> None:
        self.rpc(m.TRENAMEAT, Writer().u32(ofid).str(oname).u32(nfid).str(nname).bytes())

    def unlinkat(self, fid: int, name: bytes, flags: int = 0) -> None:
        self.rpc(m.TUNLINKAT, Writer().u32(fid).str(name).u32(flags).bytes())

    def remove(self, fid: int) -> None:
        self.rpc(m.TREMOVE, Writer().u32(fid).bytes())

    def fsync(self, fid: int) -> None:
        self.rpc(m.TFSYNC, Writer().u32(fid).u32(0).bytes())

    def statfs(self, fid: int) -> int:
        return self.rpc(m.TSTATFS, Writer().u32(fid).bytes()).u32()

    def fails(self, err: int, fn, *args) -> None:
        with pytest.raises(OSError) as e:
            fn(*args)
        assert e.value.errno == err, f"{fn.__name__}{args}: {os.strerror(e.value.errno)}, want {os.strerror(err)}"


@pytest.fixture(params=["openat2", "walk"])
def tree(tmp_path, request):
    """share/ (the export) next to outside/ (what the guest must never reach)."""
    if request.param == "openat2" and not have_openat2():
        pytest.skip("no openat2 on this kernel")
    share = tmp_path / "share"
    outside = tmp_path / "outside"
    share.mkdir()
    outside.mkdir()
    (outside / "secret").write_bytes(b"host secret")
    (share / "hello.txt").write_bytes(b"hello, world\n")
    (share / "dir").mkdir()
    (share / "dir" / "inner").write_bytes(b"inner")
    return share, outside, request.param == "openat2"


def _client(tree, readonly=False):
    share, _, use_openat2 = tree
    server = Server(ShareFs(str(share), readonly, use_openat2=use_openat2))
    c = Client(server.handle)
    assert c.version() == (65536, m.VERSION_L)
    c.attach()
    return c, server


@pytest.fixture
def c(tree):
    client, server = _client(tree)
    yield client
    server.close()
    server.fs.close()


# -- plain operation --------------------------------------------------------------------------------


def test_read_file(c):
    assert len(c.walk(ROOT, 1, b"hello.txt")) == 1
    c.lopen(1)
    assert c.read(1) == b"hello, world\n"
    assert c.read(1, offset=7, count=5) == b"world"
    assert c.getattr(1)["size"] == 13
    c.clunk(1)
    c.fails(errno.EBADF, c.read, 1)


def test_walk_partial_and_clone(c):
    assert len(c.walk(ROOT, 1, b"dir", b"inner")) == 2
    qids = c.walk(ROOT, 2, b"dir", b"nope")
    assert len(qids) == 1  # partial: newfid not created
    c.fails(errno.EBADF, c.getattr, 2)
    c.fails(errno.ENOENT, c.walk, ROOT, 2, b"nope")
    assert c.walk(1, 3) == []  # clone
    assert c.getattr(3)["size"] == 5
    c.walk(3, 3, b"..")  # in place
    assert stat.S_ISDIR(c.getattr(3)["mode"])
    c.fails(errno.EBADF, c.walk, ROOT, 1)  # newfid in use


def test_create_write_rename_remove(c, tree):
    share = tree[0]
    c.walk(ROOT, 1)
    c.lcreate(1, b"new.txt")
    assert c.write(1, b"abcdef") == 6
    c.fsync(1)
    assert (share / "new.txt").read_bytes() == b"abcdef"
    c.setattr(1, m.SETATTR_SIZE, size=3)
    c.setattr(1, m.SETATTR_MODE, mode=0o4755)
    c.setattr(1, m.SETATTR_MTIME | m.SETATTR_MTIME_SET, mtime=1_000_000)
    st = os.stat(share / "new.txt")
    assert st.st_size == 3 and stat.S_IMODE(st.st_mode) == 0o755 and st.st_mtime == 1_000_000  # no set-uid
    c.walk(ROOT, 2, b"dir")
    c.rename(1, 2, b"moved.txt")
    assert (share / "dir" / "moved.txt").exists()
    assert c.getattr(1)["size"] == 3  # the fid followed the rename
    c.renameat(2, b"moved.txt", ROOT, b"back.txt")
    c.mkdir(ROOT, b"sub")
    c.symlink(ROOT, b"lnk", b"back.txt")
    c.walk(ROOT, 3, b"lnk")
    assert c.readlink(3) == b"back.txt"
    c.walk(ROOT, 4, b"back.txt")
    c.link(ROOT, 4, b"hard")
    assert os.stat(share / "hard").st_nlink == 2
    c.unlinkat(ROOT, b"hard")
    c.unlinkat(ROOT, b"sub", m.AT_REMOVEDIR)
    c.remove(4)
    assert not (share / "back.txt").exists()
    c.fails(errno.EBADF, c.getattr, 4)  # remove clunks
    assert c.statfs(ROOT) == 0x01021997


def test_readdir(c):
    c.walk(ROOT, 1, b"dir")
    c.lopen(1, os.O_DIRECTORY)
    ents = c.readdir(1)
    assert sorted(n for n, _, _ in ents) == [b".", b"..", b"inner"]
    assert c.readdir(1, offset=ents[-1][1]) == []
    first = c.readdir(1, count=30)  # room for one entry only
    assert len(first) == 1
    assert c.readdir(1, offset=first[0][1])[0][0] == ents[1][0]


def test_special_files(c, tree):
    share = tree[0]
    c.fails(errno.EPERM, c.mknod, ROOT, b"sda", stat.S_IFBLK | 0o600, 8, 0)
    c.fails(errno.EPERM, c.mknod, ROOT, b"null", stat.S_IFCHR | 0o666, 1, 3)
    assert not (share / "sda").exists()
    c.mknod(ROOT, b"fifo", stat.S_IFIFO | 0o600)
    c.walk(ROOT, 1, b"fifo")
    c.fails(errno.EPERM, c.lopen, 1)  # never opened on the host (it would block)
    if os.geteuid() == 0:  # a device node planted on the host side is not opened either
        os.mknod(share / "dev", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        c.walk(ROOT, 2, b"dev")
        c.fails(errno.EPERM, c.lopen, 2, os.O_RDWR)


def test_readonly(tree):
    c, server = _client(tree, readonly=True)
    share = tree[0]
    c.walk(ROOT, 1, b"hello.txt")
    c.fails(errno.EROFS, c.lopen, 1, os.O_RDWR)
    c.fails(errno.EROFS, c.lopen, 1, os.O_RDONLY | os.O_TRUNC)
    c.lopen(1)
    c.fails(errno.EROFS, c.write, 1, b"x")
    c.walk(ROOT, 2)
    for fn, args in (
        (c.lcreate, (2, b"n")),
        (c.mkdir, (ROOT, b"n")),
        (c.symlink, (ROOT, b"n", b"t")),
        (c.mknod, (ROOT, b"n", stat.S_IFIFO)),
        (c.renameat, (ROOT, b"hello.txt", ROOT, b"n")),
        (c.unlinkat, (ROOT, b"hello.txt")),
        (c.setattr, (1, m.SETATTR_MODE, 0o777)),
        (c.link, (ROOT, 1, b"n")),
    ):
        c.fails(errno.EROFS, fn, *args)
    c.walk(ROOT, 3, b"hello.txt")
    c.fails(errno.EROFS, c.remove, 3)
    assert sorted(os.listdir(share)) == ["dir", "hello.txt"]
    assert (share / "hello.txt").read_bytes() == b"hello, world\n"
    server.close()


def test_bad_messages(c):
    assert m.HEADER.unpack_from(c.send(b"\x05\0\0\0"))[1] == m.RLERROR
    resp = c.send(m.message(m.TWALK, 9, b"\1\0"))  # truncated
    assert resp[4] == m.RLERROR and struct.unpack_from("<I", resp, 7)[0] == errno.EINVAL
    resp = c.send(m.message(m.TXATTRWALK, 9, b""))
    assert struct.unpack_from("<I", resp, 7)[0] == errno.EOPNOTSUPP
    c.fails(errno.EBADF, c.getattr, 77)
    c.fails(errno.EINVAL, c.walk, ROOT, 1, *[b"a"] * 17)
    assert c.version(ver=b"9P2000")[1] == b"unknown"


# -- escape attempts: each must fail and leave outside/ alone ------------------------------------------------------


def test_dotdot_stays_at_root(c, tree):
    root_qid = c.walk(ROOT, 1, b"..")[0]
    assert c.walk(ROOT, 2, b"..", b"..", b"..")[-1] == root_qid
    assert len(c.walk(ROOT, 3, b"..", b"outside")) == 1  # stops at the root: ../outside is not there
    c.fails(errno.EBADF, c.getattr, 3)
    c.walk(ROOT, 4, b"dir", b"..", b"..", b"hello.txt")  # dir/../.. is still the root


@pytest.mark.parametrize("name", [b"../outside", b"a/b", b"/etc", b"..", b".", b"", b"x\0y"])
def test_bad_names(c, name):
    c.walk(ROOT, 1)
    for fn, args in (
        (c.lcreate, (1, name)),
        (c.mkdir, (ROOT, name)),
        (c.symlink, (ROOT, name, b"t")),
        (c.renameat, (ROOT, b"hello.txt", ROOT, name)),
        (c.unlinkat, (ROOT, name)),
    ):
        c.fails(errno.EINVAL, fn, *args)
    if name not in (b"..", b"."):
        c.fails(errno.EINVAL, c.walk, ROOT, 2, name)


@pytest.mark.parametrize("target", ["abs", "rel"])
def test_planted_symlink(c, tree, target):
    share, outside, _ = tree
    dest = str(outside) if target == "abs" else "../outside"
    os.symlink(dest, share / "link")
    os.symlink(str(outside / "secret"), share / "flink")
    assert len(c.walk(ROOT, 1, b"link")) == 1  # the link itself is visible
    assert c.getattr(1)["qtype"] == m.QTSYMLINK
    assert c.readlink(1) == dest.encode()
    qids = c.walk(ROOT, 2, b"link", b"secret")  # through it: no
    assert len(qids) == 1
    c.fails(errno.EBADF, c.getattr, 2)
    c.fails(errno.ELOOP, c.lopen, 1)
    c.walk(ROOT, 3, b"flink")
    c.fails(errno.ELOOP, c.lopen, 3)
    c.fails(errno.ELOOP, c.lopen, 3, os.O_WRONLY | os.O_TRUNC)
    c.fails(errno.EOPNOTSUPP, c.setattr, 3, m.SETATTR_MODE, 0o777)
    with pytest.raises(OSError):
        c.setattr(3, m.SETATTR_SIZE, size=0)
    c.setattr(3, m.SETATTR_MTIME | m.SETATTR_MTIME_SET, mtime=5)  # the link's own time, not the target's
    # Creating inside the symlinked "directory".
    with pytest.raises(OSError) as e:
        c.lcreate(1, b"planted")
    assert e.value.errno in (errno.ELOOP, errno.ENOTDIR)
    with pytest.raises(OSError):
        c.mkdir(1, b"planted")
    with pytest.raises(OSError):
        c.renameat(ROOT, b"hello.txt", 1, b"planted")
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_bytes() == b"host secret"
    assert os.stat(outside / "secret").st_mtime != 5


def test_create_over_planted_symlink(c, tree):
    share, outside, _ = tree
    os.symlink(str(outside / "new"), share / "dangling")
    os.symlink(str(outside / "secret"), share / "existing")
    c.walk(ROOT, 1)
    c.fails(errno.EEXIST, c.lcreate, 1, b"dangling", os.O_RDWR | os.O_EXCL)
    c.fails(errno.ELOOP, c.lcreate, 1, b"dangling")  # O_CREAT without O_EXCL: still not followed
    c.fails(errno.ELOOP, c.lcreate, 1, b"existing", os.O_WRONLY | os.O_TRUNC)
    assert not (outside / "new").exists()
    assert (outside / "secret").read_bytes() == b"host secret"


def test_guest_symlink_to_root(c, tree):
    share, outside, _ = tree
    c.symlink(ROOT, b"up", b"../outside")
    c.symlink(ROOT, b"abs", str(outside).encode())
    for link in (b"up", b"abs"):
        assert len(c.walk(ROOT, 1, link, b"secret")) == 1
        c.fails(errno.EBADF, c.getattr, 1)


def test_stale_fid_after_dir_swapped_for_symlink(c, tree):
    """Walk into dir/, then dir is replaced by a symlink out: the old fid must not follow it."""
    share, outside, _ = tree
    c.walk(ROOT, 1, b"dir")
    c.walk(ROOT, 2, b"dir", b"inner")
    os.rename(share / "dir", share / "olddir")
    os.symlink(str(outside), share / "dir")
    assert c.getattr(1)["qtype"] == m.QTSYMLINK  # the link itself, not outside/
    with pytest.raises(OSError) as e:
        c.walk(1, 3, b"secret")
    assert e.value.errno in (errno.ELOOP, errno.ENOTDIR)
    with pytest.raises(OSError) as e:
        c.lopen(2)  # dir/inner now means outside/inner
    assert e.value.errno in (errno.ELOOP, errno.ENOTDIR)
    with pytest.raises(OSError):
        c.lcreate(1, b"x")
    with pytest.raises(OSError):
        c.unlinkat(1, b"secret")
    assert sorted(os.listdir(outside)) == ["secret"]


def test_rename_symlink_over_dir(c, tree):
    """The guest makes a symlink out and renames it over a directory it holds a fid for."""
    share, outside, _ = tree
    c.walk(ROOT, 1, b"dir")
    c.unlinkat(1, b"inner")
    c.symlink(ROOT, b"evil", str(outside).encode())
    c.renameat(ROOT, b"dir", ROOT, b"gone")
    c.renameat(ROOT, b"evil", ROOT, b"dir")
    # fid 1 followed the rename to "gone"; a fresh walk to "dir" finds the symlink, and stops there.
    c.walk(ROOT, 2, b"dir")
    with pytest.raises(OSError):
        c.lcreate(2, b"pwned")
    with pytest.raises(OSError):
        c.walk(2, 3, b"secret")
    assert sorted(os.listdir(outside)) == ["secret"]


def test_hardlink_of_symlink(c, tree):
    share, outside, _ = tree
    c.symlink(ROOT, b"s", str(outside / "secret").encode())
    c.walk(ROOT, 1, b"s")
    c.link(ROOT, 1, b"h")  # links the symlink itself
    assert os.path.islink(share / "h")
    c.walk(ROOT, 2, b"h")
    c.fails(errno.ELOOP, c.lopen, 2)


# -- the device -------------------------------------------------------------------------------------------------


@pytest.fixture
def dev9p(tmp_path):
    (tmp_path / "f").write_bytes(bytes(range(256)) * 64)
    h = Harness(NineP(ShareSpec(str(tmp_path), "hostshare")))
    h.init()
    yield h, tmp_path
    h.close()


def test_mount_tag(dev9p):
    h, _ = dev9p
    assert h.device_features() & 1
    assert h.config(0, 2) == 9
    assert bytes(h.config(2 + i, 1) for i in range(9)) == b"hostshare"


def _over_virtio(h, msg: bytes, in_sizes=(8192,), split_at=None) -> bytes:
    out = [msg] if split_at is None else [msg[:split_at], msg[split_at:]]
    n, reply = h.request(0, out, list(in_sizes))
    return reply


def test_device_read_write_zero_copy(dev9p):
    h, root = dev9p
    c = Client(lambda msg: _over_virtio(h, msg))
    c.version()
    c.attach()
    c.walk(ROOT, 1, b"f")
    c.lopen(1, os.O_RDWR)
    # Tread: header and data land in separate writable buffers, as Linux's zero-copy path does.
    c.send = lambda msg: _over_virtio(h, msg, in_sizes=(11, 100, 4096))
    assert c.read(1, offset=10, count=300) == (bytes(range(256)) * 64)[10:310]
    # Twrite: payload in a separate readable buffer.
    c.send = lambda msg: _over_virtio(h, msg, split_at=23)
    assert c.write(1, b"Z" * 1000, offset=5) == 1000
    assert (root / "f").read_bytes()[5:1005] == b"Z" * 1000
    # A Twrite claiming more data than the chain carries.
    bad = m.message(m.TWRITE, 3, struct.pack("<IQI", 1, 0, 5000) + b"x" * 10)
    reply = _over_virtio(h, bad)
    assert reply[4] == m.RLERROR and struct.unpack_from("<I", reply, 7)[0] == errno.EINVAL
    assert not h.status & S_NEEDS_RESET


def test_device_reply_too_big_for_buffer(dev9p):
    h, _ = dev9p
    c = Client(lambda msg: _over_virtio(h, msg))
    c.version()
    c.attach()
    c.walk(ROOT, 1, b"f")
    c.send = lambda msg: _over_virtio(h, msg, in_sizes=(16,))
    c.fails(errno.EMSGSIZE, c.getattr, 1)


def test_device_chain_without_reply_room(dev9p):
    h, _ = dev9p
    dq = h.queues[0]
    dq.add([m.message(m.TVERSION, 0, Writer().u32(8192).str(m.VERSION_L).bytes())], [4])
    h.kick(0)
    assert h.status & S_NEEDS_RESET
