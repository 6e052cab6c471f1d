#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""onekvm vs stock KVM: exit round trips per second, printed as one table.

Run in the rig with both hypervisors loaded (`make bench`); it reads the
devices from ONEKVM_TEST_DEVS like the selftests, or from --dev.  For each
device, with a tiny 64-bit guest (the selftest library's):

  cpuid   an exit the hypervisor handles itself: guest CPUID loop iterations/s
  io      an OUT to userspace and back: KVM_RUN round trips/s
  mmio    a write to unbacked memory, to userspace and back: round trips/s

plus the rows of the bench_*.py modules beside this file: bench_boot.py
boots the L1 kernel as an L2 guest with `onekvm run` on each device and with
QEMU on stock KVM (wall seconds; --no-boot skips it).

Trustworthy on a shared, noisy machine: a figure is the median of --repeat
samples (--boot-repeat for the boot rows), the samples of the devices are
interleaved (a, b, a, b, ...) so that a burst of load hits both, every
sample of an exit row builds its guest afresh with the iteration count
calibrated once per device (about --seconds per sample), and each cell shows
the spread (min..max as +-% of the median) next to the median.  The ratio
column is the ratio of the medians, with the range of the per-round ratios.
The L1 load average is printed before and after.  It prints; it asserts
nothing about speed.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import platform
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO / "tools/testing/selftests/kvm"))
try:
    import onekvm.abi  # noqa: F401
except ImportError:
    sys.path[1:1] = [str(REPO / "tools/kvm"), str(REPO / "build/meson/tools/kvm")]

from kvmtest import Asm, Device, Guest  # noqa: E402
from onekvm.abi import ffi, lib  # noqa: E402

CPUID_LOOP = Asm("""
start:                      # rsi: iterations
    xor %eax, %eax
    xor %ecx, %ecx
    cpuid
    dec %rsi
    jnz start
    out %al, $PORT_DONE
""", bits=64, name="bench-cpuid")

IO_LOOP = Asm("""
start:
    out %al, $0x10
    jmp start
""", bits=64, name="bench-io")

MMIO_LOOP = Asm("""
start:
    mov $MMIO, %rbx
1:  mov %eax, (%rbx)
    jmp 1b
""", bits=64, name="bench-mmio")


@dataclass
class Row:
    """One line of the table: measure(device) -> one sample (None: not
    available on that device); `repeat` samples per device, interleaved."""

    name: str
    unit: str
    measure: Callable[[Device], Optional[float]]
    higher_is_better: bool = True
    repeat: int = 5
    calib: dict[str, int] = field(default_factory=dict)


# --- the three exit benchmarks -----------------------------------------------

def _calibrate(calib: dict[str, int], dev: Device, seconds: float, start: int,
               once: Callable[[int], float]) -> int:
    """Iterations for a sample of about `seconds`, found once per device."""
    n = calib.get(dev.path)
    if n is None:
        n = start
        while (t := once(n)) < seconds / 8 and n < 1 << 28:
            n *= 4
        n = max(start, int(n * seconds / max(t, 1e-6)))
        calib[dev.path] = n
    return n


def cpuid_rate(dev: Device, seconds: float, calib: dict[str, int]) -> float:
    """Guest CPUID loop iterations per second (one KVM_RUN per sample)."""
    with Guest(dev, 64, CPUID_LOOP) as g:
        v = g.vcpu

        def loop(n: int) -> float:
            v.set_regs(rip=g.code["start"], rsi=n)
            t = time.perf_counter()
            v.expect_done("cpuid loop")
            return time.perf_counter() - t

        loop(100)                                            # warm-up: NPT faults etc.
        n = _calibrate(calib, dev, seconds, 200, loop)
        return n / loop(n)


def _exit_rate(dev: Device, code: Asm, reason: int, seconds: float, calib: dict[str, int]) -> float:
    with Guest(dev, 64, code) as g:
        v = g.vcpu
        ioctl, fd, req = lib.onekvm_ioctl_int, v.fd, lib.KVM_RUN
        e = v.run_once()
        if e.reason != reason:
            raise RuntimeError(f"{code.name}: first exit is {e.describe()}")

        def batch(n: int) -> float:
            t = time.perf_counter()
            for _ in range(n):
                if ioctl(fd, req, 0) < 0:
                    raise OSError(ffi.errno, f"KVM_RUN: {os.strerror(ffi.errno)}")
            dt = time.perf_counter() - t
            if v.run.exit_reason != reason:
                raise RuntimeError(f"{code.name}: exit {v.run.exit_reason} after {n} runs")
            return dt

        batch(50)                                            # warm-up
        n = _calibrate(calib, dev, seconds, 100, batch)
        return n / batch(n)


def default_rows(seconds: float, runs: int) -> list[Row]:
    rows = [
        Row("exit handled in the kernel (CPUID loop)", "iter/s", lambda d: None, repeat=runs),
        Row("IO exit to userspace and back", "exits/s", lambda d: None, repeat=runs),
        Row("MMIO exit to userspace and back", "exits/s", lambda d: None, repeat=runs),
    ]
    c0, c1, c2 = (r.calib for r in rows)
    rows[0].measure = lambda d: cpuid_rate(d, seconds, c0)
    rows[1].measure = lambda d: _exit_rate(d, IO_LOOP, lib.KVM_EXIT_IO, seconds, c1)
    rows[2].measure = lambda d: _exit_rate(d, MMIO_LOOP, lib.KVM_EXIT_MMIO, seconds, c2)
    return rows


def plugin_rows(args: argparse.Namespace) -> list[Row]:
    """Rows from bench_*.py beside this file: each defines rows(args) -> [Row]."""
    rows: list[Row] = []
    sys.path.insert(0, str(HERE))
    for path in sorted(HERE.glob("bench_*.py")):
        mod = importlib.import_module(path.stem)
        rows.extend(mod.rows(args))
    return rows


# --- the table ------------------------------------------------------------------

def _fmt(x: Optional[float]) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.0f}" if x >= 100 else f"{x:.2f}"


def _label(dev: Device) -> str:
    return dev.kind if dev.kind != "kvm" else os.path.basename(dev.path)


class _Timeout(Exception):
    pass


def _on_alarm(signum: int, frame: object) -> None:
    raise _Timeout()


def measure(row: Row, dev: Device, limit: float) -> Optional[float]:
    """row.measure(dev), given up after `limit` seconds (SIGALRM interrupts
    KVM_RUN, or a boot's wait)."""
    old = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return row.measure(dev)
    except _Timeout:
        raise TimeoutError(f"no result within {limit:g} s") from None
    except OSError as e:
        if e.errno == errno.EINTR and signal.getitimer(signal.ITIMER_REAL)[0] == 0:
            raise TimeoutError(f"no result within {limit:g} s") from None
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _cell(samples: list[float]) -> str:
    if not samples:
        return "n/a"
    med = statistics.median(samples)
    if len(samples) < 2 or not med:
        return _fmt(med)
    spread = (max(samples) - min(samples)) / 2 / med * 100
    return f"{_fmt(med)} +-{spread:.0f}%"


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def table(devs: list[Device], rows: Iterable[Row], limit: float, out: Callable[[str], None] = print) -> None:
    """Print the table, a row as soon as it is measured."""
    labels = [_label(d) for d in devs]
    ref = next((i for i, d in enumerate(devs) if not d.is_onekvm), None)
    one = next((i for i, d in enumerate(devs) if d.is_onekvm), None)
    ratio_head = f"{labels[one]}/{labels[ref]}" if ref is not None and one is not None else ""
    head = ["", "unit", *labels] + ([ratio_head] if ratio_head else [])
    widths = [46, 7] + [max(18, len(x)) for x in head[2:]]

    def line(cells: list[str]) -> None:
        out("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))))

    line(head)
    for row in rows:
        samples: list[list[float]] = [[] for _ in devs]
        rounds: list[list[Optional[float]]] = []
        notes: list[str] = []
        failed = [False] * len(devs)
        for rnd in range(row.repeat):
            got: list[Optional[float]] = []
            for i, d in enumerate(devs):
                if failed[i]:
                    got.append(None)
                    continue
                t = time.monotonic()
                try:
                    x = measure(row, d, limit)
                except Exception as e:  # noqa: BLE001 - a failing row must not hide the others
                    notes.append(f"#   {row.name} on {d.path}: {type(e).__name__}: {e}")
                    failed[i] = True
                    x = None
                got.append(x)
                if x is not None:
                    samples[i].append(x)
                elif not failed[i]:
                    failed[i] = True                  # not applicable: no more samples
                print(f"# {row.name} on {d.path} [{rnd + 1}/{row.repeat}]: {_fmt(x)} "
                      f"in {time.monotonic() - t:.1f} s", file=sys.stderr, flush=True)
            rounds.append(got)
            if all(failed):
                break
        cells = [row.name, row.unit, *(_cell(x) for x in samples)]
        if ratio_head:
            assert one is not None and ref is not None
            a, b = samples[one], samples[ref]
            if a and b:
                per = [r[one] / r[ref] for r in rounds if r[one] is not None and r[ref]]
                rng = f" [{min(per):.2f}..{max(per):.2f}]" if len(per) > 1 else ""
                cells.append(f"{statistics.median(a) / statistics.median(b):.2f}{rng}")
            else:
                cells.append("n/a")
        line(cells)
        for n in notes:
            out(n)
        sys.stdout.flush()


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dev", action="append", help="device node (repeatable; default: $ONEKVM_TEST_DEVS)")
    p.add_argument("--seconds", type=float, default=1.0, help="length of one measurement (default 1)")
    p.add_argument("--repeat", type=int, default=5,
                   help="samples per exit figure and device, median kept (default 5)")
    p.add_argument("--boot-repeat", type=int, default=3,
                   help="samples per boot figure and device (default 3)")
    p.add_argument("--only", choices=["exits", "plugins"], help="only the exit rows or only the bench_*.py rows")
    p.add_argument("--no-boot", action="store_true", help="skip the L2 boot rows (bench_boot.py)")
    p.add_argument("--limit", type=float, default=240.0,
                   help="give up on one figure after this many seconds (default 240)")
    args = p.parse_args(argv)
    paths = args.dev or [x for x in os.environ.get("ONEKVM_TEST_DEVS", "").split(",") if x]
    if not paths:
        p.error("no device: pass --dev /dev/kvm or set ONEKVM_TEST_DEVS")
    devs = [Device(x) for x in paths]
    # Stock first, onekvm second: the ratio column reads onekvm/stock.
    devs.sort(key=lambda d: d.is_onekvm)
    rows = [] if args.only == "plugins" else default_rows(args.seconds, args.repeat)
    if args.only != "exits":
        rows += plugin_rows(args)
    if args.repeat < 1 or args.boot_repeat < 1 or args.seconds <= 0:
        p.error("--repeat, --boot-repeat and --seconds must be positive")
    print(f"# onekvm bench: {platform.release()}, {', '.join(f'{d.path}={d.kind}' for d in devs)}; "
          f"median of {args.repeat} x ~{args.seconds:g} s (boot: {args.boot_repeat}), devices interleaved; "
          f"cells: median +-half the min..max spread")
    print(f"# L1 load average before: {_loadavg()}")
    table(devs, rows, args.limit)
    print(f"# L1 load average after: {_loadavg()}")
    print("# ratio: onekvm / stock, of the medians [range of the per-round ratios]; "
          "above 1 is faster for the /s rows, slower for the s rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
