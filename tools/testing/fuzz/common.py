# SPDX-License-Identifier: GPL-2.0-only
"""Shared pieces of the onekvm robustness tools (ioctlfuzz, churn, hostile).

Nothing here hard-codes an ioctl number or a structure offset: ioctls come
from the generated bindings (onekvm.abi.lib) and their argument types from
the ABI source include/uapi/onekvm/kvm.abi.h, which the bindings were
generated from.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
for _p in (REPO / "tools/testing/selftests/kvm", REPO / "build/meson/tools/kvm", REPO / "tools/kvm"):
    if str(_p) not in sys.path:
        sys.path.append(str(_p))

from onekvm.abi import ioctl, lib  # noqa: E402

ABI_SOURCE = REPO / "include/uapi/onekvm/kvm.abi.h"


@dataclass(frozen=True)
class IoctlDef:
    """One ioctl of the ABI: its name, request number (from the bindings),
    the fd kinds it is documented for and its argument type."""

    name: str
    request: int
    kinds: frozenset[str]          # "system", "vm", "vcpu"
    direction: str                 # "IO", "IOR", "IOW", "IOWR"
    argtype: Optional[str]         # e.g. "struct kvm_regs", "__u64"; None for _IO


_DEFINE = re.compile(r"#define\s+((?:KVM|ONEKVM)_\w+)\s+_(IO|IOR|IOW|IOWR)\(KVMIO,\s*\w+(?:,\s*([^)]+))?\)")


def ioctl_table() -> list[IoctlDef]:
    """Every ioctl of the ABI source with its documented fd kinds."""
    text = ABI_SOURCE.read_text().replace("\\\n", " ")
    out: list[IoctlDef] = []
    kinds: set[str] = set()
    for line in text.splitlines():
        m = re.search(r"\*\s*Type:\s*(.*)", line)
        if m:
            kinds = {k for k in ("system", "vm", "vcpu") if re.search(rf"\b{k} ioctl", m.group(1))}
            continue
        m = _DEFINE.search(line)
        if m and hasattr(lib, m.group(1)):
            out.append(IoctlDef(m.group(1), getattr(lib, m.group(1)), frozenset(kinds),
                                m.group(2), m.group(3).strip() if m.group(3) else None))
            kinds = set()
    return out


def errname(code: int) -> str:
    return "ok" if code == 0 else errno.errorcode.get(code, str(code))


# --- host state: leaks ----------------------------------------------------

def vmstat() -> dict[str, int]:
    out: dict[str, int] = {}
    with open("/proc/vmstat") as f:
        for line in f:
            k, v = line.split()
            out[k] = int(v)
    return out


def meminfo() -> dict[str, int]:
    """/proc/meminfo in KiB."""
    out: dict[str, int] = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0])
    return out


def slabinfo(prefixes: tuple[str, ...] = ("okvm",)) -> dict[str, int]:
    """Active objects of the slab caches whose name starts with a prefix
    (empty when /proc/slabinfo is unreadable)."""
    out: dict[str, int] = {}
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                parts = line.split()
                if parts and parts[0].startswith(prefixes):
                    out[parts[0]] = int(parts[1])
    except OSError:
        pass
    return out


def own_rss() -> int:
    """VmRSS of this process in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def drop_caches() -> None:
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    except OSError:
        pass


class Snapshot:
    """Pinned pages, slab, memory and fds at one moment."""

    def __init__(self) -> None:
        drop_caches()
        vs = vmstat()
        self.pin_acq = vs.get("nr_foll_pin_acquired", 0)
        self.pin_rel = vs.get("nr_foll_pin_released", 0)
        mi = meminfo()
        self.avail = mi.get("MemAvailable", 0)
        self.sunreclaim = mi.get("SUnreclaim", 0)
        self.slab = slabinfo()
        self.fds = fd_count()
        self.rss = own_rss()

    def leaks(self, base: Snapshot, mem_slack_kib: int = 32768) -> list[str]:
        """What did not come back to `base`, as messages (empty: nothing)."""
        msgs = []
        acq, rel = self.pin_acq - base.pin_acq, self.pin_rel - base.pin_rel
        if acq != rel:
            msgs.append(f"pinned pages: {acq} acquired, {rel} released since the baseline")
        for name, n in self.slab.items():
            if n > base.slab.get(name, 0):
                msgs.append(f"slab {name}: {n} active objects, baseline {base.slab.get(name, 0)}")
        # This process's own heap growth is not the module's.
        own = self.rss - base.rss
        if self.avail + own < base.avail - mem_slack_kib:
            msgs.append(f"MemAvailable {self.avail} KiB (+{own} KiB of this process's RSS), "
                        f"baseline {base.avail} KiB")
        if self.sunreclaim > base.sunreclaim + mem_slack_kib:
            msgs.append(f"SUnreclaim {self.sunreclaim} KiB, baseline {base.sunreclaim} KiB")
        if self.fds > base.fds:
            msgs.append(f"open fds {self.fds}, baseline {base.fds}")
        return msgs

    def describe(self, base: Snapshot) -> str:
        return (f"pins +{self.pin_acq - base.pin_acq}/-{self.pin_rel - base.pin_rel}, "
                f"MemAvailable {self.avail - base.avail:+d} KiB (own RSS {self.rss - base.rss:+d} KiB), "
                f"SUnreclaim {self.sunreclaim - base.sunreclaim:+d} KiB, fds {self.fds - base.fds:+d}, "
                f"slab {self.slab}")


# --- signals: bounded KVM_RUN ---------------------------------------------

def _noop(signum: int, frame: object) -> None:
    pass


def install_kick_handlers() -> None:
    """SIGALRM and SIGUSR1 interrupt a blocking KVM_RUN (EINTR) and do
    nothing else.  Main thread only."""
    signal.signal(signal.SIGALRM, _noop)
    signal.signal(signal.SIGUSR1, _noop)


def block_alarm() -> None:
    """In a thread other than the main one: never take the process-wide
    SIGALRM, which is meant to interrupt the main thread's KVM_RUN."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})


def is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def kernel_modules() -> set[str]:
    try:
        with open("/proc/modules") as f:
            return {line.split()[0] for line in f}
    except OSError:
        return set()


def tainted() -> int:
    try:
        fd = os.open("/proc/sys/kernel/tainted", os.O_RDONLY)
    except OSError:
        return 0
    try:
        return int(os.read(fd, 64))
    except (OSError, ValueError):
        return 0
    finally:
        os.close(fd)


def run_forever(vcpu_fd: int) -> None:
    """KVM_RUN in a loop, errors and signals ignored: a child VMM's vCPU, there to be killed."""
    while True:
        try:
            ioctl(vcpu_fd, lib.KVM_RUN, 0)
        except OSError:
            pass


_SPLAT = re.compile(r"WARNING: CPU: \d+ PID: \d+ at |\bBUG: |kernel BUG at |\bOops\b|"
                    r"\b(soft|hard) lockup\b|general protection fault|Bad page state|"
                    # page_poison=1 and slub_debug= reports (make fuzz turns them on)
                    r"pagealloc: memory corruption|\bBUG [^\s]+ \((Not tainted|Tainted: [^)]*)\): ")


def _kmsg_records(fd: int) -> Iterator[str]:
    """The records readable now from a non-blocking /dev/kmsg fd."""
    while True:
        try:
            rec = os.read(fd, 8192)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno == errno.EPIPE:      # overwritten records: go on
                continue
            return
        if not rec:
            return
        yield rec.decode(errors="replace")


def kmsg_splats(since_seq: int = 0) -> tuple[list[str], int]:
    """Kernel log lines that look like a splat, read non-blocking from
    /dev/kmsg (records after sequence number `since_seq`); returns them and
    the last sequence number seen."""
    found: list[str] = []
    last = since_seq
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return found, last
    try:
        for rec in _kmsg_records(fd):
            head, _, msg = rec.partition(";")
            try:
                seq = int(head.split(",")[1])
            except (IndexError, ValueError):
                continue
            last = max(last, seq)
            if seq > since_seq and _SPLAT.search(msg):
                found.append(msg.strip())
    finally:
        os.close(fd)
    return found, last


class KmsgWatch:
    """The kernel log records written after this object was made, read
    from one /dev/kmsg fd kept open: each check() reads only the new
    records.  (kmsg_splats() reads the whole buffer every time, which costs
    tens of milliseconds per call in the rig.)"""

    def __init__(self) -> None:
        try:
            self.fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            self.fd = -1
            return
        try:
            os.lseek(self.fd, 0, os.SEEK_END)
        except OSError:                         # read (and skip) the old records
            self.check()

    def check(self) -> list[str]:
        """Splat lines among the records written since the last check."""
        found: list[str] = []
        if self.fd < 0:
            return found
        for rec in _kmsg_records(self.fd):
            msg = rec.partition(";")[2]
            if _SPLAT.search(msg):
                found.append(msg.strip())
        return found

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
