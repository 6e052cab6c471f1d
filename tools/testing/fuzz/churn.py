#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Lifecycle churn: create and destroy VMs with memory and vCPUs in a loop,
kill -9 VMM processes in the middle of KVM_RUN, unload and reload the
module, then check that nothing stayed behind:

  - pinned pages: nr_foll_pin_acquired and nr_foll_pin_released in
    /proc/vmstat moved by the same amount;
  - slab: the module's caches (okvm*) have no more active objects than at
    the baseline, SUnreclaim and MemAvailable are back within a slack;
  - fds: this process holds no more than at the baseline;
  - the module unloads (rmmod) at the end, and loads again.

    churn.py --dev /dev/onekvm --cycles 1000 --module build/KVER/onekvm.ko \\
             [--reload-every 100] [--kill-every 10] [--seed S]

Seeded: cycle i's sizes, vCPU counts and kill delays come from the seed.
"""

from __future__ import annotations

import argparse
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Snapshot, install_kick_handlers, kernel_modules, kmsg_splats, run_forever  # noqa: E402
from kvmtest import Asm, Device, Guest  # noqa: E402

# Touch every page from FREE up to rsi (pins them); then TOUCH reports, SPIN spins.
_TOUCH_PAGES = """
start:
    mov $FREE, %rdi
1:  movb $1, (%rdi)
    add $0x1000, %rdi
    cmp %rsi, %rdi
    jb 1b
"""
TOUCH = Asm(_TOUCH_PAGES + """
    mov $0x42, %al
    out %al, $PORT_DONE
""", bits=64, name="churn-touch")
SPIN = Asm(_TOUCH_PAGES + """
2:  jmp 2b
""", bits=64, name="churn-spin")


def cycle(dev: Device, rng: random.Random) -> int:
    """One VM: memory, vCPUs, every vCPU touches its share; returns pages."""
    ram = rng.choice([1, 2, 4, 8, 16]) << 20
    nv = rng.randint(1, 4)
    with Guest(dev, bits=64, code=TOUCH, ram=ram, vcpus=nv) as g:
        extra = rng.randint(0, 3)
        for s in range(1, 1 + extra):          # more slots, never touched
            g.vm.add_memory(s, (1 << 32) + s * (16 << 20), rng.choice([1, 4]) << 20)
        for v in g.vcpus:
            v.set_regs(rsi=ram)
            signal.setitimer(signal.ITIMER_REAL, 30)
            try:
                if v.expect_done() != 0x42:
                    raise AssertionError("guest did not finish")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        return ram // 4096


def kill_in_run(dev: Device, rng: random.Random) -> str:
    """A child VMM, SIGKILLed while its vCPU spins in KVM_RUN."""
    ram = rng.choice([2, 8]) << 20
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            g = Guest(dev, bits=64, code=SPIN, ram=ram)
            g.vcpu.set_regs(rsi=ram)
            os.write(wfd, b"r")
            run_forever(g.vcpu.fd)
        finally:
            os._exit(0)
    os.close(wfd)
    r, _, _ = select.select([rfd], [], [], 30)
    ready = bool(r) and os.read(rfd, 1) == b"r"
    time.sleep(rng.choice([0, 0.005, 0.05, 0.2]))
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(rfd)
    return "in-run" if ready else "before-run"


def reload(module: str, path: str) -> Optional[str]:
    """rmmod onekvm and insmod it again; an error message or None."""
    r = subprocess.run(["rmmod", "onekvm"], capture_output=True, text=True)
    if r.returncode:
        return f"rmmod onekvm failed: {r.stderr.strip()}"
    r = subprocess.run(["insmod", module], capture_output=True, text=True)
    if r.returncode:
        return f"insmod {module} failed: {r.stderr.strip()}"
    for _ in range(100):
        if os.path.exists(path):
            return None
        time.sleep(0.05)
    return f"{path} did not reappear after insmod"


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description="VM lifecycle churn with leak checks")
    p.add_argument("--dev", default="/dev/onekvm")
    p.add_argument("--cycles", type=int, default=100)
    p.add_argument("--seed", type=lambda s: int(s, 0), default=None)
    p.add_argument("--kill-every", type=int, default=10, help="a killed VMM every N cycles (0: never)")
    p.add_argument("--reload-every", type=int, default=0, help="reload the module every N cycles")
    p.add_argument("--module", default="", help="onekvm.ko for --reload-every and the final unload")
    p.add_argument("--prebuild", action="store_true", help="assemble the guests (host, no device)")
    a = p.parse_args(argv)
    if a.prebuild:
        TOUCH.build()
        SPIN.build()
        return 0
    install_kick_handlers()
    seed = a.seed if a.seed is not None else random.SystemRandom().getrandbits(32)
    rng = random.Random(seed)
    onekvm = "onekvm" in kernel_modules()
    if (a.reload_every or a.module) and not onekvm:
        print("churn: --reload-every/--module need onekvm loaded", file=sys.stderr)
        return 2
    print(f"churn: seed {seed:#x}, {a.cycles} cycles on {a.dev}", flush=True)
    _, kseq = kmsg_splats()
    start = Snapshot()
    base = start
    warm_at = min(10, a.cycles // 2)
    dev = Device(a.dev)
    t0 = time.monotonic()
    pages = kills = reloads = 0
    problems: list[str] = []
    for i in range(a.cycles):
        try:
            pages += cycle(dev, rng)
            if a.kill_every and i % a.kill_every == a.kill_every - 1:
                kill_in_run(dev, rng)
                kills += 1
            if a.reload_every and i % a.reload_every == a.reload_every - 1:
                dev.close()
                err = reload(a.module, a.dev)
                if err:
                    problems.append(f"cycle {i}: {err}")
                    break
                reloads += 1
                dev = Device(a.dev)
        except (OSError, AssertionError) as e:
            problems.append(f"cycle {i}: {type(e).__name__}: {e}")
            break
        if i + 1 == warm_at:
            # What the first cycles leave (caches that grew, the module's
            # first-use state, this process's heap) is not a leak: the
            # memory figures are compared with this point.  Pinned pages
            # and the module's slab objects are compared with the start.
            time.sleep(1)
            base = Snapshot()
            base.pin_acq, base.pin_rel, base.slab = start.pin_acq, start.pin_rel, start.slab
        if i % 100 == 99:
            print(f"churn: {i + 1} cycles, {time.monotonic() - t0:.0f} s", flush=True)
    dev.close()
    el = time.monotonic() - t0
    time.sleep(1)                   # RCU-deferred frees
    end = Snapshot()
    leaks = end.leaks(base)
    print(f"churn: {i + 1} cycles ({kills} VMMs killed in KVM_RUN, {reloads} module reloads, "
          f"{pages} guest pages touched) in {el:.0f} s")
    print(f"churn: after vs start: {end.describe(start)}")
    if base is not start:
        print(f"churn: after vs cycle {warm_at}: {end.describe(base)}")
    problems += leaks
    if a.module:
        err = reload(a.module, a.dev)
        if err:
            problems.append(f"final unload: {err}")
        else:
            print("churn: onekvm unloaded and loaded again")
    splats, kseq = kmsg_splats(kseq)
    problems += [f"kernel log: {s}" for s in splats]
    for m in problems:
        print(f"churn: FAIL: {m}")
    if problems:
        print(f"churn: replay: tools/testing/fuzz/churn.py --dev {a.dev} --seed {seed:#x} --cycles {a.cycles}")
        return 1
    print(f"churn: PASS: no leak, oops or WARN after {i + 1} cycles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
