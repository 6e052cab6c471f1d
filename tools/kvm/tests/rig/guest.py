"""What the rig tests and the boot benchmark share: the L2 kernel, its initramfs, running `onekvm run`."""

from __future__ import annotations

import glob
import os
import re
import shlex
import signal
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
    status, out = run_vmm_process(cmd, env, timeout)
    return Result(status, out, time.monotonic() - t0)


class VmmHung(AssertionError):
    """The VMM outlived its timeout; the message holds its output and where its threads were."""


def run_vmm_process(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run a VMM to its end: (exit status, output); VmmHung if it outlives `timeout`."""
    p = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, errors="replace", env=env,
    )
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out
    except subprocess.TimeoutExpired:
        pass
    why = stop_hung_vmm(p, timeout)
    out, _ = p.communicate()
    raise VmmHung(f"{out[-6000:]}\n{why}")


def stop_hung_vmm(p: subprocess.Popen, timeout: float) -> str:
    """Describe, kill and reap a VMM that outlived `timeout`; returns the description.

    Each thread's kernel state first, then its Python stacks (SIGUSR2), then
    SIGKILL. A process that SIGKILL does not end within KILL_GRACE seconds has
    a thread stuck in the kernel: VmmHung says so instead of waiting for good.
    """
    report = thread_report(p.pid)
    print(f"rig: VMM {p.pid} still running after {timeout:.0f} s; its threads:\n{report}", file=sys.stderr, flush=True)
    p.send_signal(signal.SIGUSR2)  # the VMM's threads' Python stacks (faulthandler)
    time.sleep(2)
    p.kill()
    try:
        p.wait(KILL_GRACE)
    except subprocess.TimeoutExpired:
        raise VmmHung(
            f"VMM still running after {timeout:.0f} s, and still there {KILL_GRACE} s after SIGKILL:\n"
            f"{thread_report(p.pid)}\nits threads before:\n{report}"
        ) from None
    return f"VMM still running after {timeout:.0f} s (killed); its threads then:\n{report}"


KILL_GRACE = 60


def thread_report(pid: int) -> str:
    """State, wait channel and kernel stack of each thread of a process (the rig runs as root)."""
    lines = []
    try:
        tids = sorted(os.listdir(f"/proc/{pid}/task"), key=int)
    except OSError as e:
        return f"  (/proc/{pid}/task: {e.strerror})"
    for tid in tids:
        base = f"/proc/{pid}/task/{tid}"
        parts = []
        for name in ("comm", "wchan", "stack"):
            try:
                with open(f"{base}/{name}") as f:
                    parts.append(f.read().strip())
            except OSError as e:
                parts.append(f"({name}: {e.strerror})")
        try:
            with open(f"{base}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            state = "?"
        comm, wchan, stack = parts
        lines.append(f"  tid {tid} {comm} state {state} wchan {wchan}\n    " + stack.replace("\n", "\n    "))
    return "\n".join(lines)


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
