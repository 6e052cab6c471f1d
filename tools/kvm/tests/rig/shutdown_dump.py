"""Read onekvm.ko's dump_shutdown lines: did the L0 emulator fault on a mapping the guest has?

With dump_shutdown=1 (the rig sets it) a triple fault logs, for RIP and the
IDT base, the guest page-table entries read from the pinned guest pages,
which are what the nested page table maps:

    onekvm: vcpu0 walk rip 0xffffffffb6a37e14: 3 of 4 levels read: 0xc215067 0xc216063 0xa8001e1 0x0 0x0

When both addresses are mapped there, a triple fault that began with a
not-present fault on them came from the CPU's view of memory, not from the
guest's page tables: in the rig that CPU is QEMU's TCG (see robustness.rst,
"Rig workaround for multi-threaded runs").
"""

from __future__ import annotations

import re

WALK = re.compile(r"onekvm: vcpu(\d+) walk (\w+) (0x[0-9a-f]+): (\d) of (\d) levels read: ((?:0x[0-9a-f]+ ?)+)")
PRESENT, LARGE = 1 << 0, 1 << 7


def mapped(read: int, levels: int, entries: list[int]) -> bool:
    """Do the entries read (top level first) end in a present leaf?"""
    if read == 0:
        return False
    last = entries[read - 1]
    if not last & PRESENT:
        return False
    # A leaf: the last level, or a 1 GiB / 2 MiB page below the top.
    return read == levels or (read > 1 and bool(last & LARGE))


def emulator_fault(log: str) -> str | None:
    """The reason, if the last dump in `log` shows RIP and the IDT both mapped; else None."""
    walks: dict[str, tuple[str, bool]] = {}
    for m in WALK.finditer(log):
        entries = [int(x, 16) for x in m.group(6).split()]
        walks[m.group(2)] = (m.group(3), mapped(int(m.group(4)), int(m.group(5)), entries))
    rip, idt = walks.get("rip"), walks.get("idt")
    if rip and idt and rip[1] and idt[1]:
        return f"the guest's page tables map RIP {rip[0]} and the IDT {idt[0]}, yet the CPU faulted on them"
    return None
