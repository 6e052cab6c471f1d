# SPDX-License-Identifier: GPL-2.0-only
"""onekvm selftest library: devices, VMs, vCPUs, tiny guests, guest code.

Used by the pytest suites beside it (tools/testing/selftests/kvm), by the
benchmark (tools/testing/bench) and meant for the fuzzer and churn tests:
nothing here depends on pytest.

    from kvmtest import Device, Guest, Asm, layout
"""

from kvmtest import layout
from kvmtest.asm import Asm, AsmError, Code, build_all, registered
from kvmtest.guest import MODE_IDS, MODES, Guest, Seg, setup_sregs
from kvmtest.kvm import (
    Device,
    Exit,
    Failures,
    GuestException,
    Memory,
    Vcpu,
    Vm,
    errno_name,
    exit_name,
    raises_errno,
)

__all__ = [
    "MODES", "MODE_IDS", "Asm", "AsmError", "Code", "Device", "Exit", "Failures", "Guest",
    "GuestException", "Memory", "Seg", "Vcpu", "Vm", "build_all", "errno_name",
    "exit_name", "layout", "raises_errno", "registered", "setup_sregs",
]
