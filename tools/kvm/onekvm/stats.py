"""Counters behind `onekvm run --stats`: exits by reason, time in Python per device."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost in the rig
if TYPE_CHECKING:
    from typing import TextIO


def process_age() -> float | None:
    """Seconds since this process started (interpreter start-up included), from /proc."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class Stats:
    def __init__(self) -> None:
        self.exits: Counter[str] = Counter()
        self.dev_time: Counter[str] = Counter()
        self.dev_calls: Counter[str] = Counter()
        self.run_time = 0.0  # seconds vCPUs spent inside KVM_RUN
        self.start = time.monotonic()
        self._lock = threading.Lock()
        age = process_age()
        self.process_start = self.start - age if age is not None else None
        self.phases: dict[str, float] = {}
        self.state: list[str] = []  # device state at the end of the run (Machine.run)

    def phase(self, name: str) -> None:
        """Remember when a milestone was first reached (monotonic seconds)."""
        self.phases.setdefault(name, time.monotonic())

    def exit(self, reason: str) -> None:
        # Counter += is not atomic across vCPU threads.
        with self._lock:
            self.exits[reason] += 1

    def device_time(self, name: str, seconds: float) -> None:
        with self._lock:
            self.dev_time[name] += seconds
            self.dev_calls[name] += 1

    def in_guest(self, seconds: float) -> None:
        with self._lock:
            self.run_time += seconds

    def report(self, out: TextIO) -> None:
        wall = time.monotonic() - self.start
        total = sum(self.exits.values())
        out.write(f"onekvm stats: {wall:.3f} s wall, {total} exits, {self.run_time:.3f} s in KVM_RUN\n")
        origin = self.process_start if self.process_start is not None else self.start
        for name, t in sorted(self.phases.items(), key=lambda kv: kv[1]):
            if name == "first exit":
                continue
            out.write(f"  at {t - origin:8.3f} s {name}\n")
        for reason, n in self.exits.most_common():
            out.write(f"  exit {reason:<20} {n:>10}\n")
        for name, t in self.dev_time.most_common():
            calls = self.dev_calls[name]
            out.write(f"  device {name:<18} {calls:>10} calls {t * 1e3:>10.1f} ms {t / calls * 1e6:>8.1f} us/call\n")
        for line in self.state:
            out.write(f"  state {line}\n")
