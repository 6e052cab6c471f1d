# SPDX-License-Identifier: GPL-2.0-only
"""Bench rows: virtio-blk and virtio-9p read throughput of an L2 guest, per device.

run.py calls rows(args). One guest boot per VMM and device measures all
four cases of tools/kvm/tests/rig/bench_virtio.py (blk and 9p, sequential
1 MiB and random 4 KiB reads, MB/s in the guest): `onekvm run` on every
device, QEMU -M pc (virtio-blk-pci, virtio-9p-pci) on stock KVM only.
That script, run by itself, gives more runs, medians and the
onekvm/QEMU ratios; these rows are the one-shot view in `make bench`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

from kvmtest import Device
from run import Row

RIG = Path(__file__).resolve().parents[2] / "kvm" / "tests" / "rig"
SECONDS = 3.0  # per case, at most
SIZE_MIB = 32

_mod: Any = None
_setup: Optional[tuple[str, str, str]] = None  # initrd, image, share
_got: dict[tuple[str, str], dict[str, float]] = {}


def _bench() -> Any:
    """tools/kvm/tests/rig/bench_virtio.py, loaded under another name (this file's stem differs)."""
    global _mod
    if _mod is None:
        spec = importlib.util.spec_from_file_location("rig_bench_virtio", RIG / "bench_virtio.py")
        assert spec is not None and spec.loader is not None
        _mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_mod)
    return _mod


def _prepare() -> tuple[str, str, str]:
    global _setup
    if _setup is None:
        b = _bench()
        work = tempfile.mkdtemp(prefix="onekvm-bench-virtio-")
        share = os.path.join(work, "share")
        os.mkdir(share)
        image = os.path.join(share, "disk.img")
        with open(image, "wb") as f:
            for _ in range(SIZE_MIB):
                f.write(os.urandom(1 << 20))
        _setup = (b.write_initramfs(work, SIZE_MIB << 20, SECONDS), image, share)
    return _setup


def _figure(vmm: str, dev: Device, case: str) -> Optional[float]:
    if vmm == "qemu" and dev.is_onekvm:
        return None  # QEMU drives stock KVM only
    key = (vmm, dev.path)
    if key not in _got:
        b = _bench()
        initrd, image, share = _prepare()
        cmd = b.qemu_cmd(initrd, image, share) if vmm == "qemu" else b.onekvm_cmd(dev.path, initrd, image, share, [])
        figures, out = b.run_guest(cmd, timeout=600)
        if not figures:
            tail = " | ".join(out.strip().splitlines()[-3:])
            raise RuntimeError(f"no figures from the guest: {tail[-300:]}")
        _got[key] = figures
    return _got[key].get(case)


def rows(args: argparse.Namespace) -> list[Row]:
    if getattr(args, "no_boot", False):
        return []
    if str(RIG) not in sys.path:
        sys.path.insert(0, str(RIG))
    cases = [c[0] for c in _bench().CASES]
    out = []
    for vmm, label in (("onekvm", "onekvm run"), ("qemu", "QEMU -M pc")):
        for case in cases:
            out.append(Row(f"virtio {case} read ({label})", "MB/s", lambda d, v=vmm, c=case: _figure(v, d, c)))
    return out
