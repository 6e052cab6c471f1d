import stat

import pytest
from onekvm import initramfs
from onekvm.errors import UserError


def parse_newc(data: bytes) -> dict[str, tuple[int, bytes, tuple[int, int]]]:
    out, off = {}, 0
    while True:
        assert data[off : off + 6] == b"070701"
        f = [int(data[off + 6 + 8 * i : off + 14 + 8 * i], 16) for i in range(13)]
        mode, filesize, rmaj, rmin, namesize = f[1], f[6], f[9], f[10], f[11]
        off += 110
        name = data[off : off + namesize - 1].decode()
        off += namesize
        off += -off % 4
        body = data[off : off + filesize]
        off += filesize
        off += -off % 4
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, body, (rmaj, rmin))


def test_newc_round_trip():
    data = initramfs.newc(
        [initramfs.Entry("a", stat.S_IFDIR | 0o755), initramfs.Entry("a/b", stat.S_IFREG | 0o644, b"xyz")]
    )
    assert len(data) % 4 == 0
    files = parse_newc(data)
    assert files["a/b"][1] == b"xyz"
    assert stat.S_ISDIR(files["a"][0])


def test_build_has_init_busybox_and_console():
    files = parse_newc(initramfs.build(files={"etc/motd": b"hi"}))
    assert files["init"][1].startswith(b"#!/bin/busybox sh")
    assert files["init"][0] & 0o111
    assert files["bin/busybox"][1][:4] == b"\x7fELF"
    mode, _, rdev = files["dev/console"]
    assert stat.S_ISCHR(mode) and rdev == (5, 1)
    assert stat.S_ISLNK(files["bin/sh"][0])
    assert files["etc/motd"][1] == b"hi"
    assert b"poweroff -f" in files["init"][1]


def test_busybox_is_static():
    assert initramfs.is_static_elf(initramfs.find_busybox())


def test_missing_static_busybox_is_a_user_error(monkeypatch, tmp_path):
    dynamic = tmp_path / "busybox"
    dynamic.write_bytes(b"#!/bin/sh\n")
    monkeypatch.setattr(initramfs, "BUSYBOX_CANDIDATES", (str(dynamic),))
    monkeypatch.setattr(initramfs.shutil, "which", lambda _name: None)
    with pytest.raises(UserError, match="static busybox"):
        initramfs.find_busybox()


def test_module_dependencies_come_first(tmp_path):
    rel = tmp_path / "9.9.9-test"
    (rel / "kernel").mkdir(parents=True)
    (rel / "modules.dep").write_text(
        "kernel/a.ko: kernel/b.ko kernel/c.ko\nkernel/b.ko: kernel/c.ko\nkernel/c.ko:\nkernel/9p.ko: kernel/a.ko\n"
    )
    files = initramfs.module_files("9.9.9-test", ("9p", "builtin_one"), root=str(tmp_path))
    assert [f.rsplit("/", 1)[1] for f in files] == ["c.ko", "b.ko", "a.ko", "9p.ko"]


def test_hostroot_initramfs_carries_its_modules(monkeypatch, tmp_path):
    rel = tmp_path / "9.9.9-test"
    (rel / "kernel").mkdir(parents=True)
    (rel / "kernel" / "9p.ko").write_bytes(b"\x7fELFmodule")
    (rel / "modules.dep").write_text("kernel/9p.ko:\n")
    real = initramfs.module_files
    monkeypatch.setattr(initramfs, "module_files", lambda r: real(r, root=str(tmp_path)))
    files = parse_newc(initramfs.build_hostroot("9.9.9-test"))
    assert files["lib/modules/9p.ko"][1] == b"\x7fELFmodule"
    assert files["lib/onekvm-modules"][1] == b"9p\n"
    assert b"mount -t 9p" in files["init"][1] and b"hostroot" in files["init"][1]
    assert files["init.busybox"][1].startswith(b"#!/bin/busybox sh")
