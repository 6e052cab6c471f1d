"""The bzImage payload cache: extraction, lookup, and a boot of the unpacked ELF."""

from __future__ import annotations

import lzma
import os
import struct

import pytest
import tinyguest
from onekvm.boot import bzimage, kcache
from test_boot import fake_bzimage
from test_tiny_guests import run


def bzimage_with_payload(elf_bytes: bytes) -> bytes:
    payload = lzma.compress(elf_bytes, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    img = bytearray(fake_bzimage(kernel=b"\xf4" * 512 + payload))
    # payload_offset is relative to the protected-mode part, which starts after the setup sectors.
    struct.pack_into("<II", img, 0x248, 512, len(payload))
    return bytes(img)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "kcache"
    monkeypatch.setenv("ONEKVM_KERNEL_CACHE", str(d))
    return d


def test_extract_store_lookup(tmp_path, cache_dir):
    guest = open(tinyguest.build(tmp_path, tinyguest.HELLO), "rb").read()
    data = bzimage_with_payload(guest)
    assert bzimage.parse(data).payload.startswith(kcache.XZ_MAGIC)
    assert kcache.lookup(data) is None
    assert kcache.vmlinux_for(data, create=False) is None
    assert kcache.vmlinux_for(data) == guest
    path = kcache.lookup(data)
    assert path is not None and path.startswith(str(cache_dir))
    assert bytes(kcache.vmlinux_for(data, create=False)) == guest  # the cached file, mapped


def test_unknown_compression_falls_back(tmp_path):
    data = bytearray(bzimage_with_payload(b"\x7fELF" + bytes(100)))
    data[5 * 512 + 512] ^= 0xFF  # break the xz magic
    assert kcache.extract(bytes(data)) is None
    assert kcache.decompress(b"\x28\xb5\x2f\xfd" + bytes(10)) in (None, b"")  # zstd: optional module


def test_read_only_dirs_are_searched(tmp_path, monkeypatch):
    guest = open(tinyguest.build(tmp_path, tinyguest.HELLO), "rb").read()
    data = bzimage_with_payload(guest)
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / kcache.entry_name(data)).write_bytes(guest)
    monkeypatch.setenv("ONEKVM_KERNEL_CACHE", f"{ro}:{tmp_path / 'rw'}")
    assert kcache.lookup(data) == str(ro / kcache.entry_name(data))


def test_boot_the_cached_payload(tmp_path, kvm_dev):
    """A bzImage whose (never run) decompressor stub is HLT: only the unpacked ELF can print and power off."""
    guest = open(tinyguest.build(tmp_path, tinyguest.HELLO), "rb").read()
    k = tmp_path / "bzImage"
    k.write_bytes(bzimage_with_payload(guest))
    status, reason, out = run(str(k), kvm_dev, kernel_cache="auto")
    assert (status, out) == (0, b"hello from a tiny guest\n"), reason
    assert os.listdir(os.environ["ONEKVM_KERNEL_CACHE"])


@pytest.mark.skipif(not kcache.shutil_which("zstd"), reason="no zstd tool on this host")
def test_zstd_payload_with_kbuild_size_trailer(tmp_path):
    """Debian's 6.12 bzImage: a zstd frame then the le32 unpacked size, decoded with the zstd tool."""
    import subprocess

    guest = open(tinyguest.build(tmp_path, tinyguest.HELLO), "rb").read()
    frame = subprocess.run(["zstd", "-cq"], input=guest, stdout=subprocess.PIPE, check=True).stdout
    payload = frame + struct.pack("<I", len(guest))
    assert kcache.zstd_tool(payload) == guest
    assert kcache.zstd_tool(frame + struct.pack("<I", len(guest) + 1)) is None  # size mismatch: not trusted
    assert kcache.zstd_tool(b"\x28\xb5\x2f\xfd" + bytes(10)) is None


def test_key_reads_size_head_and_tail_only():
    big = bytes(range(256)) * 1024  # 256 KiB
    k = kcache.key(big)
    assert kcache.key(big[:-1] + b"\x00") != k  # the trailer (CRC32, size) differs
    assert kcache.key(b"\x01" + big[1:]) != k  # the setup header differs
    assert kcache.key(big + b"\x00") != k  # the size differs
    middle = bytearray(big)
    middle[len(big) // 2] ^= 1
    assert kcache.key(bytes(middle)) == k  # not hashed: a lookup stays cheap
