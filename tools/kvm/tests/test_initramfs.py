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
    monkeypatch.setattr(initramfs, "module_files", lambda r, names: real(r, names, root=str(tmp_path)))
    files = parse_newc(initramfs.build_hostroot("9.9.9-test"))
    assert files["lib/modules/9p.ko"][1] == b"\x7fELFmodule"
    assert files["lib/onekvm-modules"][1] == b"9p\n"
    assert b"mount -t 9p" in files["init"][1] and b"hostroot" in files["init"][1]
    assert files["init.busybox"][1].startswith(b"#!/bin/busybox sh")


def _fake_release(tmp_path, modules: dict[str, bytes], dep: str) -> str:
    rel = tmp_path / "9.9.9-test"
    (rel / "kernel").mkdir(parents=True)
    for name, data in modules.items():
        (rel / "kernel" / name).write_bytes(data)
    (rel / "modules.dep").write_text(dep)
    return "9.9.9-test"


def test_compressed_modules_are_unpacked_on_the_host(monkeypatch, tmp_path):
    import gzip
    import lzma

    elf = b"\x7fELF" + bytes(range(256)) * 4
    mods = {"virtio_pci.ko.xz": lzma.compress(elf), "9pnet.ko.gz": gzip.compress(elf + b"gz"), "9p.ko": elf + b"plain"}
    rel = _fake_release(
        tmp_path, mods, "kernel/9p.ko: kernel/9pnet.ko.gz\nkernel/9pnet.ko.gz:\nkernel/virtio_pci.ko.xz:\n"
    )
    real = initramfs.module_files
    monkeypatch.setattr(initramfs, "module_files", lambda r, names: real(r, names, root=str(tmp_path)))
    files = parse_newc(initramfs.build_hostroot(rel))
    assert files["lib/modules/virtio_pci.ko"][1] == elf
    assert files["lib/modules/9pnet.ko"][1] == elf + b"gz"
    assert files["lib/modules/9p.ko"][1] == elf + b"plain"
    assert files["lib/onekvm-modules"][1] == b"virtio_pci\n9pnet\n9p\n"


@pytest.mark.skipif(not initramfs.shutil.which("zstd"), reason="no zstd tool on this host")
def test_zstd_modules_are_unpacked_with_the_zstd_tool(tmp_path):
    import subprocess

    elf = b"\x7fELF" + b"z" * 1000
    path = tmp_path / "m.ko.zst"
    path.write_bytes(subprocess.run(["zstd", "-cq"], input=elf, stdout=subprocess.PIPE, check=True).stdout)
    assert initramfs.read_module(str(path)) == elf


def test_unreadable_compressed_module_is_left_out(monkeypatch, tmp_path):
    bad = tmp_path / "bad.ko.xz"
    bad.write_bytes(b"not xz at all")
    assert initramfs.read_module(str(bad)) is None
    zst = tmp_path / "m.ko.zst"
    zst.write_bytes(b"whatever")
    monkeypatch.setattr(initramfs.shutil, "which", lambda _name: None)
    assert initramfs.read_module(str(zst)) is None


def test_hostroot_carries_the_other_virtio_drivers_when_the_kernel_has_them(monkeypatch, tmp_path):
    names = ("virtio_pci", "9pnet", "9pnet_virtio", "9p", "virtio_blk", "virtio-rng", "virtio_net")
    rel = _fake_release(tmp_path, {f"{n}.ko": b"\x7fELF" for n in names}, "".join(f"kernel/{n}.ko:\n" for n in names))
    real = initramfs.module_files
    monkeypatch.setattr(initramfs, "module_files", lambda r, wanted: real(r, wanted, root=str(tmp_path)))
    files = parse_newc(initramfs.build_hostroot(rel))
    listed = files["lib/onekvm-modules"][1].decode().split()
    # virtio_console is built in here (not in modules.dep): nothing to carry.
    assert listed == ["virtio_pci", "9pnet", "9pnet_virtio", "9p", "virtio_blk", "virtio_rng", "virtio_net"]


def test_init_scripts_parse_as_busybox_sh(tmp_path):
    import subprocess

    bb = initramfs.find_busybox()
    for name, text in (("hostroot", initramfs.HOSTROOT_INIT), ("default", initramfs.DEFAULT_INIT)):
        script = tmp_path / name
        script.write_text(text)
        p = subprocess.run([bb, "sh", "-n", str(script)], capture_output=True, text=True)
        assert p.returncode == 0, (name, p.stderr)


def test_chroot_poweroff_helpers_force_the_busybox_applet(tmp_path):
    """The host's poweroff asks systemd, which ignores a chroot: the helper the init writes must not."""
    import subprocess

    bb = initramfs.find_busybox()
    text = initramfs.HOSTROOT_INIT
    start = text.index("    tools=/run/onekvm")
    snippet = text[start : text.index("    fi\n", start) + 7].replace("/mnt$tools", str(tmp_path) + "$tools")
    (tmp_path / "run").mkdir()
    p = subprocess.run([bb, "sh", "-c", snippet], capture_output=True, text=True, env={"PATH": "/bin:/usr/bin"})
    assert p.returncode == 0, p.stderr
    helper = (tmp_path / "run/onekvm/poweroff").read_text()
    assert helper == "#!/run/onekvm/busybox sh\nsync\nexec /run/onekvm/busybox poweroff -f\n"
    assert (tmp_path / "run/onekvm/busybox").stat().st_size > 0
    assert (tmp_path / "run/onekvm/reboot").stat().st_mode & 0o111
    assert b"PATH=$tools:" in text.encode()
