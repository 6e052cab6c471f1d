"""The vmlinux inside a bzImage, extracted once and cached.

A bzImage carries the kernel as a compressed ELF (its "payload"); booting it
means the guest first runs the decompressor. Where guest time is dear (the
nested rig: XZ-unpacking the Debian kernel costs L2 tens of seconds) the VMM
can unpack the payload itself, once, and boot the ELF directly through the
same 64-bit entry the decompressor would have jumped to. The guest then runs
at its link address: no KASLR, as with any ELF vmlinux boot.

Cache entries are keyed by a hash of the bzImage; read from every directory
in the search path, written to the first writable one.
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import mmap
import os
import tempfile

from onekvm.boot import bzimage, elf

XZ_MAGIC = b"\xfd7zXZ\x00"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def search_path() -> list[str]:
    """$ONEKVM_KERNEL_CACHE (':'-separated) first, then $XDG_CACHE_HOME/onekvm (~/.cache/onekvm)."""
    dirs = [d for d in os.environ.get("ONEKVM_KERNEL_CACHE", "").split(":") if d]
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    dirs.append(os.path.join(xdg, "onekvm"))
    return dirs


KEY_SPAN = 64 * 1024


def key(data: bytes) -> str:
    """Identifies a bzImage without hashing all of it (a lookup happens on every default run, and
    hashing 8-12 MiB costs about a second in the rig's L1): its size, its first 64 KiB (boot
    sector, setup code with the version string, the payload's start) and its last 64 KiB (the
    end of the compressed payload, its CRC32 and unpacked-size trailer)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(len(data).to_bytes(8, "little"))
    h.update(data[:KEY_SPAN])
    h.update(data[-KEY_SPAN:])
    return h.hexdigest()


def entry_name(data: bytes) -> str:
    return f"vmlinux-{key(data)}.elf"


def lookup(data: bytes) -> str | None:
    """Path of the cached vmlinux for this bzImage, if any directory has one."""
    name = entry_name(data)
    for d in search_path():
        path = os.path.join(d, name)
        if os.path.isfile(path):
            return path
    return None


def decompress(payload: bytes) -> bytes | None:
    """The payload's ELF, or None for a compression the standard library lacks (zstd, lz4, ...)."""
    try:
        if payload.startswith(XZ_MAGIC):
            # The kernel's xz stream has no index trailer checks to skip: plain decode.
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
        if payload.startswith(GZIP_MAGIC):
            return gzip.decompress(payload)
        if payload.startswith(ZSTD_MAGIC):
            try:
                import zstandard  # optional: pip install zstandard
            except ImportError:
                return zstd_tool(payload)
            return zstandard.ZstdDecompressor().decompressobj().decompress(payload)
    except (lzma.LZMAError, OSError, EOFError, ValueError):
        return None
    return None


def shutil_which(name: str) -> str | None:
    import shutil

    return shutil.which(name)


def zstd_tool(payload: bytes) -> bytes | None:
    """Decode with the zstd command (no zstd in the standard library before 3.14); None without it."""
    import subprocess

    zstd = shutil_which("zstd")
    if zstd is None:
        return None
    # Kbuild appends the unpacked size (le32) after the frame; the zstd tool
    # would call that trailer an unsupported format.
    size = int.from_bytes(payload[-4:], "little")
    try:
        p = subprocess.run([zstd, "-dcq"], input=payload[:-4], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    except OSError:
        return None
    return p.stdout if p.returncode == 0 and len(p.stdout) == size else None


def extract(data: bytes) -> bytes | None:
    """The vmlinux ELF inside a bzImage (trailing relocation data included), or None."""
    if not bzimage.is_bzimage(data):
        return None
    img = bzimage.parse(data)
    if not img.payload_length:
        return None
    out = decompress(img.payload)
    if out is None or not elf.is_elf(out):
        return None
    return out


def store(data: bytes, vmlinux: bytes) -> str | None:
    """Write the entry atomically into the first writable cache directory; None if there is none."""
    name = entry_name(data)
    for d in search_path():
        try:
            os.makedirs(d, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=d, prefix=".vmlinux-")
        except OSError:
            continue
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(vmlinux)
            os.replace(tmp, os.path.join(d, name))
            return os.path.join(d, name)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return None


def _map(path: str) -> bytes | mmap.mmap:
    """The file's bytes, mapped when the filesystem allows it (no 66 MiB read and copy), else read."""
    with open(path, "rb") as f:
        try:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            return f.read()


def vmlinux_for(data: bytes, create: bool = True) -> bytes | mmap.mmap | None:
    """The cached (or, with create, freshly extracted and cached) vmlinux of a bzImage."""
    path = lookup(data)
    if path is not None:
        try:
            cached = _map(path)
            if elf.is_elf(cached):
                return cached
        except OSError:
            pass
    if not create:
        return None
    vmlinux = extract(data)
    if vmlinux is not None:
        store(data, vmlinux)
    return vmlinux


def main(argv: list[str] | None = None) -> int:
    """`python -m onekvm.boot.kcache BZIMAGE...`: fill the cache ahead of time (e.g. before a rig run)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    rc = 0
    for path in args:
        with open(path, "rb") as f:
            data = f.read()
        vmlinux = vmlinux_for(data)
        where = lookup(data)
        if vmlinux is None:
            print(f"{path}: cannot extract (not a bzImage, or a compression without a Python decoder)")
            rc = 1
        else:
            print(f"{path}: {where or 'not stored: no writable cache directory'}")
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
