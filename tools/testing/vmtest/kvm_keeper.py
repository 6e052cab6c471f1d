"""Hold kvm.ko's static keys on for the whole rig run (L1 side, --hv kvm_amd).

Why: under multi-threaded TCG, QEMU 7.2 can run a stale translation of
kernel text that another L1 CPU just patched.  kvm.ko patches text whenever
a static key goes 0 <-> 1: the scheduler's preempt-notifier key at the first
VM's creation and the last VM's destruction, kvm_has_noapic_vcpu with the
first/last vCPU without an in-kernel local APIC, apic_sw_disabled with the
first/last software-disabled local APIC.  An L1 CPU that then executes the
transient int3 of text_poke_bp() dies with "Oops: int3" (seen in
finish_task_switch and in kvm.ko's vcpu_run).  While this process keeps one
VM of each kind open, those keys never drop to 0 and kvm.ko never patches
text after the keeper is up.  Not with --hv both: while kvm_amd has a VM,
SVM is in use and onekvm.ko refuses KVM_CREATE_VM with EBUSY.

QEMU 10 (scripts/setup installs it) does not run the stale code: 4,900
kvm_amd VM cycles passed where 7.2 oopsed in seconds (vmtest.rst, "QEMU
version").  The keeper stays for older QEMUs and until CI has a record.

Usage: kvm_keeper.py READY_FILE; it writes READY_FILE once the VMs exist and
then sleeps until killed (the rig reboots at the end of the run).
"""

from __future__ import annotations

import os
import signal
import sys


def main(argv: list[str]) -> int:
    from onekvm.kvm import System

    system = System("/dev/kvm", check_abi=False)
    plain = system.create_vm()  # preempt notifiers
    plain.create_vcpu(0)  # kvm_has_noapic_vcpu: no in-kernel irqchip in this VM
    chip = system.create_vm()
    chip.create_irqchip()
    chip.create_vcpu(0)  # its local APIC stays software-disabled: apic_sw_disabled
    with open(argv[1], "w") as f:
        f.write(f"{os.getpid()}\n")
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
