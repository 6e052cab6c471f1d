# SPDX-License-Identifier: GPL-2.0-only
"""Bench rows: L2 boot time, the same Linux guest under each device.

run.py calls rows(args): one row per entry of BOOT, the wall time from
starting the command to its exit, per device ("n/a" where the entry does
not apply).  The guest is the running L1 kernel's bzImage with the VMM's
busybox initramfs, whose /init runs `true` and powers off; a boot counts
only if the command exits 0 after init said so.

Each row is sampled --boot-repeat times per device, interleaved.

BOOT is the hook: an entry's argv is a template; {dev} is the device node,
{kernel} the bzImage, {initrd} the initramfs, {py} the rig's Python
launcher ($VMTEST_PY, else python3).  An entry with argv None prints n/a.
"""

from __future__ import annotations

import argparse
import atexit
import glob
import os
import platform
import shlex
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

from kvmtest import Device
from run import Row

INIT_DONE = "command exited with status 0"
PARAMS = "quiet -- true"

BOOT: list[dict] = [
    # The same VMM on both devices: the hypervisor is the only difference.
    {"name": "L2 boot to init and poweroff (onekvm run)", "devices": ("onekvm", "stock"),
     "argv": "{py} -m onekvm run -k {kernel} -i {initrd} --dev {dev} --no-control -p '" + PARAMS + "'"},
    # QEMU's own KVM path on stock /dev/kvm: the reference VMM.
    {"name": "L2 boot to init and poweroff (QEMU -M pc)", "devices": ("stock",),
     "argv": "qemu-system-x86_64 -accel kvm -M pc -m 256 -nographic -no-reboot -kernel {kernel} "
             "-initrd {initrd} -append 'console=ttyS0 panic=-1 " + PARAMS + "'"},
]
TIMEOUT = 300.0

_initrd: Optional[str] = None


def initrd() -> str:
    """The VMM's busybox initramfs, built once into a temporary file."""
    global _initrd
    if _initrd is None:
        from onekvm import initramfs

        fd, path = tempfile.mkstemp(prefix="onekvm-bench-", suffix=".cpio")
        with os.fdopen(fd, "wb") as f:
            f.write(initramfs.build())
        atexit.register(os.unlink, path)
        _initrd = path
    return _initrd


def kernel() -> str:
    """The running kernel's image (the rig's L1 kernel), else the newest one."""
    own = f"/boot/vmlinuz-{platform.release()}"
    if os.path.exists(own):
        return own
    images = sorted(glob.glob("/boot/vmlinuz-*"))
    return images[-1] if images else own


def _env() -> dict[str, str]:
    """PYTHONPATH for `python3 -m onekvm` even when run.py found the package itself."""
    here = Path(__file__).resolve().parents[3]
    paths = [str(here / "tools/kvm"), str(here / "build/meson/tools/kvm")]
    old = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": ":".join(paths + ([old] if old else []))}


def boot_seconds(template: Optional[str], devices: tuple[str, ...], dev: Device) -> Optional[float]:
    if not template or ("onekvm" if dev.is_onekvm else "stock") not in devices:
        return None
    argv = shlex.split(template.format(
        dev=dev.path, kernel=kernel(), initrd=initrd(),
        py=os.environ.get("VMTEST_PY", "python3")))
    t = time.perf_counter()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=TIMEOUT, text=True, errors="replace", env=_env())
    dt = time.perf_counter() - t
    if proc.returncode != 0 or INIT_DONE not in proc.stdout:
        tail = " | ".join(proc.stdout.strip().splitlines()[-3:])
        raise RuntimeError(f"exit {proc.returncode}, init {'ran' if INIT_DONE in proc.stdout else 'not reached'}: "
                           f"{tail[-300:]}")
    return dt


def rows(args: argparse.Namespace) -> list[Row]:
    if getattr(args, "no_boot", False):
        return []
    n = getattr(args, "boot_repeat", 1)
    return [Row(b["name"], "s", lambda d, b=b: boot_seconds(b["argv"], b["devices"], d), higher_is_better=False,
                repeat=n)
            for b in BOOT]
