"""What the rig tests and the boot benchmark share: the L2 kernel, its initramfs, running `onekvm run`."""

from __future__ import annotations

import glob
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass

TOOLS_KVM = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if TOOLS_KVM not in sys.path:
    sys.path.insert(0, TOOLS_KVM)

from onekvm import initramfs  # noqa: E402

MARK = "ONEKVM-RIG-OK"

# Prints one line the tests parse, the kernel's warnings, and powers off
# (or reboots when the kernel command line asks for it).
INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "%(mark)s cpus=$(grep -c ^processor /proc/cpuinfo) uptime=$(cut -d' ' -f1 /proc/uptime)"
dmesg | grep -E 'WARNING: CPU|BUG:|Oops:|Kernel panic' | sed 's/^/L2-SPLAT: /'
if grep -q onekvm.reboot /proc/cmdline; then reboot -f; fi
poweroff -f
""" % {"mark": MARK}


def l2_kernel() -> str:
    """Debian's 6.1 bzImage (the issue's reference kernel), else the newest installed."""
    k = os.environ.get("ONEKVM_L2_KERNEL")
    if k:
        return k
    images = sorted(glob.glob("/boot/vmlinuz-6.1.*")) or sorted(glob.glob("/boot/vmlinuz-*"))
    if not images:
        raise RuntimeError("no /boot/vmlinuz-* for the L2 guest")
    return images[-1]


def write_initramfs(directory: str) -> str:
    path = os.path.join(directory, "onekvm-rig-initramfs.cpio")
    with open(path, "wb") as f:
        f.write(initramfs.build(init=INIT))
    return path


def python_cmd() -> list[str]:
    """The interpreter as the rig starts it (no site module: seconds of TCG time)."""
    py = os.environ.get("VMTEST_PY")
    return shlex.split(py) if py else [sys.executable]


@dataclass
class Result:
    status: int
    output: str
    seconds: float

    @property
    def cpus(self) -> int | None:
        m = re.search(MARK + r" cpus=(\d+)", self.output)
        return int(m.group(1)) if m else None

    @property
    def splats(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.startswith("L2-SPLAT: ")]


def run_onekvm(dev: str, initrd: str, *args: str, params: str = "quiet", timeout: float = 400) -> Result:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([TOOLS_KVM, *filter(None, [env.get("PYTHONPATH")])])
    cmd = [
        *python_cmd(),
        "-m",
        "onekvm",
        "run",
        "-k",
        l2_kernel(),
        "-i",
        initrd,
        "--dev",
        dev,
        "-p",
        params,
        "--no-control",
        *([] if "--kernel-cache" in args else ["--kernel-cache", "off"]),  # the bzImage path unless asked
        *args,
    ]
    t0 = time.monotonic()
    p = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=timeout,
        env=env,
    )
    return Result(p.returncode, p.stdout, time.monotonic() - t0)


def run_qemu(initrd: str, machine: str = "pc", params: str = "quiet", timeout: float = 400) -> Result:
    cmd = [
        "qemu-system-x86_64",
        "-enable-kvm",
        "-M",
        machine,
        "-m",
        "256",
        "-nographic",
        "-no-reboot",
        "-kernel",
        l2_kernel(),
        "-initrd",
        initrd,
        "-append",
        f"console=ttyS0 panic=-1 {params}",
    ]
    t0 = time.monotonic()
    p = subprocess.run(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        timeout=timeout,
    )
    return Result(p.returncode, p.stdout, time.monotonic() - t0)
