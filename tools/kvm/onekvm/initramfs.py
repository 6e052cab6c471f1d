"""A small busybox initramfs, written as a newc cpio archive without the cpio tool.

Its /init mounts the usual pseudo filesystems, then runs the command the
kernel passed after `--` on its command line (or an interactive shell),
and powers the machine off when that ends.
"""

from __future__ import annotations

import lzma
import os
import shutil
import stat
import struct

from onekvm.errors import UserError
from onekvm.record import record

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

# The zero-argument `onekvm run` shares the host root as 9p tag "hostroot";
# this /init loads the modules it carries (those of the booted kernel that
# are not built in), mounts that root read-only with tmpfs on /tmp, /run and
# /var/tmp, and gives a shell chrooted into it. Without the share (or the
# modules) it falls back to the busybox shell of DEFAULT_INIT.
ROOT_TAG = "hostroot"
NINEP_MODULES = ("virtio_pci", "9pnet", "9pnet_virtio", "9p")
# Loaded too when the kernel has them: the other virtio devices `onekvm run` offers.
EXTRA_MODULES = ("virtio_console", "virtio_blk", "virtio_rng", "virtio_net")

# Inside the chroot the host's poweroff/reboot/halt would ask a service
# manager that is not running ("Running in chroot, ignoring request"), so
# forcing ones from the initramfs's busybox come first on PATH (under the
# /run tmpfs). The shell is not a login shell: Debian's /etc/profile would
# put the host's PATH back in front.
HOSTROOT_INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
for m in $(cat /lib/onekvm-modules 2>/dev/null); do insmod /lib/modules/$m.ko 2>/dev/null; done
if mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 %(tag)s /mnt 2>/dev/null && [ -x /mnt/bin/sh ]; then
    mount -t proc proc /mnt/proc
    mount -t sysfs sysfs /mnt/sys
    mount -t devtmpfs devtmpfs /mnt/dev
    mount -t devpts devpts /mnt/dev/pts 2>/dev/null
    for d in /tmp /run /var/tmp; do [ -d /mnt$d ] && mount -t tmpfs tmpfs /mnt$d; done
    tools=/run/onekvm
    if mkdir -p /mnt$tools && cp /bin/busybox /mnt$tools/busybox; then
        for c in poweroff reboot halt; do
            printf '#!%%s/busybox sh\\nsync\\nexec %%s/busybox %%s -f\\n' $tools $tools $c >/mnt$tools/$c
            chmod 755 /mnt$tools/$c
        done
    fi
    export PATH=$tools:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
    echo "onekvm: host root (read-only) over 9p; 'poweroff' or exit to power off"
    if [ $# -gt 0 ]; then
        chroot /mnt "$@"
        echo "onekvm-init: command exited with status $?"
    else
        setsid cttyhack chroot /mnt /bin/sh -i
    fi
    poweroff -f
fi
umount /mnt 2>/dev/null
echo "onekvm: no 9p host root; busybox shell"
exec /init.busybox "$@"
""" % {"tag": ROOT_TAG}

DEFAULT_INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts 2>/dev/null
hostname onekvm
if [ $# -gt 0 ]; then
    "$@"
    echo "onekvm-init: command exited with status $?"
else
    echo "onekvm: busybox shell; 'poweroff -f' or exit to power off"
    setsid cttyhack sh -l
fi
poweroff -f
"""


@record
class Entry:
    name: str
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def newc(entries: list[Entry]) -> bytes:
    """Serialize entries as a "070701" (newc) cpio archive."""
    out = bytearray()
    for ino, e in enumerate([*entries, Entry("TRAILER!!!", 0)], start=1):
        name = e.name.lstrip("/").encode() + b"\0"
        fields = (
            ino,
            e.mode,
            0,
            0,
            2 if stat.S_ISDIR(e.mode) else 1,
            0,
            len(e.data),
            0,
            0,
            e.rdev[0],
            e.rdev[1],
            len(name),
            0,
        )
        out += b"070701" + b"".join(b"%08X" % f for f in fields)
        out += name
        out += b"\0" * (-len(out) % 4)
        out += e.data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def find_busybox() -> str:
    for path in BUSYBOX_CANDIDATES:
        if os.path.exists(path) and is_static_elf(path):
            return path
    found = shutil.which("busybox")
    if found and is_static_elf(found):
        return found
    raise UserError("no static busybox found (apt-get install busybox-static)")


def is_static_elf(path: str) -> bool:
    """True for an ELF64 without a PT_INTERP program header."""
    try:
        with open(path, "rb") as f:
            hdr = f.read(64)
            if hdr[:4] != b"\x7fELF" or hdr[4] != 2:
                return False
            (phoff,) = struct.unpack_from("<Q", hdr, 32)
            phentsize, phnum = struct.unpack_from("<HH", hdr, 54)
            f.seek(phoff)
            ph = f.read(phentsize * phnum)
    except OSError:
        return False
    return all(struct.unpack_from("<I", ph, i * phentsize)[0] != 3 for i in range(phnum))


def module_files(release: str, names: tuple[str, ...] = NINEP_MODULES, root: str = "/lib/modules") -> list[str]:
    """Paths of the modules `names` need, dependencies first (from modules.dep); built-ins are left out."""
    base = os.path.join(root, release)
    try:
        with open(os.path.join(base, "modules.dep")) as f:
            deps_text = f.read()
    except OSError:
        return []
    deps: dict[str, tuple[str, list[str]]] = {}
    for line in deps_text.splitlines():
        if ":" not in line:
            continue
        path, rest = line.split(":", 1)
        deps[_modname(path)] = (path, [_modname(d) for d in rest.split()])
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order or name not in deps:
            return  # done, or built in
        for d in reversed(deps[name][1]):
            visit(d)
        order.append(name)

    for n in names:
        visit(n.replace("-", "_"))
    return [os.path.join(base, deps[n][0]) for n in order]


def _modname(path: str) -> str:
    name = os.path.basename(path)
    for ext in (".ko", ".ko.xz", ".ko.zst", ".ko.gz"):
        if name.endswith(ext):
            name = name[: -len(ext)]
    return name.replace("-", "_")


def read_module(path: str) -> bytes | None:
    """A module file as the plain ELF object busybox insmod loads; None when it cannot be unpacked here."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".ko"):
        return data
    try:
        if path.endswith(".xz"):
            return lzma.decompress(data)
        if path.endswith(".gz"):
            import gzip

            return gzip.decompress(data)
        if path.endswith(".zst"):
            # No zstd in the standard library (before 3.14): the zstd tool, when installed.
            import subprocess

            zstd = shutil.which("zstd")
            if zstd is None:
                return None
            p = subprocess.run([zstd, "-dcq"], input=data, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            return p.stdout if p.returncode == 0 else None
    except (lzma.LZMAError, OSError, EOFError):
        return None
    return None


def build_hostroot(release: str | None, busybox: str | None = None) -> bytes:
    """The zero-argument run's initramfs: 9p host root when it can, busybox shell otherwise.

    Carries the booted kernel's (release's) modules for 9p over virtio-pci and
    the other virtio devices, dependencies first, unpacked on the host.
    """
    files: dict[str, bytes] = {"init.busybox": DEFAULT_INIT.encode()}
    names = []
    for path in module_files(release, NINEP_MODULES + EXTRA_MODULES) if release else []:
        try:
            data = read_module(path)
        except OSError:
            data = None
        if data is None:
            continue  # the guest's insmod of what depends on it fails: the busybox-shell fallback
        files[f"lib/modules/{_modname(path)}.ko"] = data
        names.append(_modname(path))
    files["lib/onekvm-modules"] = "\n".join(names).encode() + b"\n"
    return build(init=HOSTROOT_INIT, files=files, busybox=busybox)


def build(init: str = DEFAULT_INIT, files: dict[str, bytes] | None = None, busybox: str | None = None) -> bytes:
    """The archive: directories, busybox, /init, /dev/console, and extra files (path -> bytes, mode 0755)."""
    bb = busybox or find_busybox()
    with open(bb, "rb") as f:
        bb_data = f.read()
    entries = [
        Entry(d, stat.S_IFDIR | 0o755)
        for d in (
            "bin",
            "sbin",
            "dev",
            "proc",
            "sys",
            "tmp",
            "etc",
            "mnt",
            "root",
            "usr",
            "usr/bin",
            "usr/sbin",
            "var",
            "run",
        )
    ]
    # The kernel opens /dev/console before init runs; devtmpfs is not up yet.
    entries.append(Entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)))
    entries.append(Entry("bin/busybox", stat.S_IFREG | 0o755, bb_data))
    entries.append(Entry("bin/sh", stat.S_IFLNK | 0o777, b"busybox"))
    entries.append(Entry("init", stat.S_IFREG | 0o755, init.encode()))
    for path, data in (files or {}).items():
        parts = path.strip("/").split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if not any(e.name == d for e in entries):
                entries.append(Entry(d, stat.S_IFDIR | 0o755))
        entries.append(Entry(path.strip("/"), stat.S_IFREG | 0o755, data))
    return newc(entries)
