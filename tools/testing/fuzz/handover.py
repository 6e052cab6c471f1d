#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""SVM hand-over between onekvm and stock kvm_amd, in rounds:

  1. on /dev/onekvm: a VM whose vCPU runs a guest (--guest) --runs times;
     the VM is closed, so onekvm gives SVM back;
  2. on /dev/kvm: --kvm-vms VMs created and closed (each one makes
     kvm_amd enable and disable SVM and toggle kvm's static keys, which
     live-patches kernel text such as __schedule).

The kernel log is checked after every round.  This reproduces the
"Oops: int3" in __schedule/finish_task_switch that ioctlfuzz.py --compare
met (robustness.rst, "Open problems").

    handover.py --rounds 50 --runs 20 --kvm-vms 5 --guest spin
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import install_kick_handlers, kmsg_splats  # noqa: E402
from kvmtest import Asm, Device, Guest  # noqa: E402
from onekvm.abi import ioctl, lib  # noqa: E402

GUESTS = {
    "spin": Asm("start:\n1:  jmp 1b\n", bits=64, name="handover-spin"),
    "hlt": Asm("start:\n    hlt\n", bits=64, name="handover-hlt"),
    "io": Asm("start:\n1:  out %al, $PORT_DONE\n    jmp 1b\n", bits=64, name="handover-io"),
}


def onekvm_phase(dev: Device, guest: str, runs: int) -> None:
    if guest == "none":
        dev.create_vm().close()
        return
    with Guest(dev, bits=64, code=GUESTS[guest]) as g:
        for _ in range(runs):
            signal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)
            try:
                ioctl(g.vcpu.fd, lib.KVM_RUN, 0)
            except OSError:
                pass
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description="SVM hand-over between onekvm and kvm_amd")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--runs", type=int, default=20, help="KVM_RUNs on onekvm per round")
    p.add_argument("--kvm-vms", type=int, default=5, help="kvm_amd VMs created and closed per round")
    p.add_argument("--guest", choices=[*GUESTS, "none"], default="spin")
    p.add_argument("--once", action="store_true", help="onekvm's phase in the first round only")
    p.add_argument("--prebuild", action="store_true")
    a = p.parse_args(argv)
    if a.prebuild:
        for c in GUESTS.values():
            c.build()
        return 0
    install_kick_handlers()
    ok, kvm = Device("/dev/onekvm"), Device("/dev/kvm")
    _, kseq = kmsg_splats()
    t0 = time.monotonic()
    for r in range(a.rounds):
        if r == 0 or not a.once:
            onekvm_phase(ok, a.guest, a.runs)
        for _ in range(a.kvm_vms):
            kvm.create_vm().close()
        splats, kseq = kmsg_splats(kseq)
        if splats:
            print(f"handover: FAIL in round {r + 1} (guest {a.guest}): {splats[:2]}", flush=True)
            return 1
    print(f"handover: PASS: {a.rounds} rounds (guest {a.guest}, {a.runs} runs, {a.kvm_vms} kvm_amd VMs "
          f"each{', onekvm in round 1 only' if a.once else ''}) in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
