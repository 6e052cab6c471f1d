"""Host test for the rig's reading of onekvm's dump_shutdown page walks."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "rig"))

from shutdown_dump import emulator_fault, mapped  # noqa: E402

# The dump of CI's onekvm test_net_tap triple fault (session 4).
SEEN = (
    "[  250.557524] onekvm: vcpu0 walk rip 0xffffffffb6a37e14: 3 of 4 levels read:"
    " 0xc215067 0xc216063 0xa8001e1 0x0 0x0\n"
    "[  250.557594] onekvm: vcpu0 walk idt 0xfffffe0000000000: 4 of 4 levels read:"
    " 0xfc90067 0xfc2e067 0xfc2d067 0x800000000cb13161 0x0\n"
)


def test_mapped_leaf_levels():
    assert mapped(4, 4, [0x67, 0x67, 0x67, 0x8000000000000161])
    assert mapped(3, 4, [0x67, 0x63, 0xA8001E1])  # 2 MiB page
    assert mapped(2, 4, [0x67, 0x1E3])  # 1 GiB page
    assert not mapped(3, 4, [0x67, 0x63, 0x63])  # a table, walk cut short
    assert not mapped(2, 4, [0x67, 0x0])  # not present
    assert not mapped(1, 4, [0xE3])  # PS is reserved in a PML4E: not a leaf
    assert not mapped(0, 4, [])


def test_emulator_fault_needs_both_mapped():
    assert "RIP 0xffffffffb6a37e14" in emulator_fault(SEEN)
    rip_only = SEEN.splitlines()[0]
    assert emulator_fault(rip_only) is None
    unmapped = SEEN.replace("0x800000000cb13161", "0x0")
    assert emulator_fault(unmapped) is None
    assert emulator_fault("") is None


def test_last_dump_wins():
    older = SEEN.replace("0xfc2d067 0x800000000cb13161", "0xfc2d067 0x0")
    assert emulator_fault(SEEN + older) is None
    assert emulator_fault(older + SEEN) is not None
