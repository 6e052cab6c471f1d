#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Hostile guests: each case runs on every device given and its outcome
(an exit, a guest exception, an error) is checked against what onekvm
documents; stock kvm_amd's outcome is printed beside it, and a difference
from kvm_amd that is not in KNOWN_DIFFERENCES fails the case.

    hostile.py --dev /dev/onekvm --dev /dev/kvm [-k NAME]

Cases: stores to and loads from every 1 MiB (--stride) of guest-physical
space outside the memslot up to 4 GiB (MMIO exits with the right address,
length and data), SVM instructions (VMRUN, VMLOAD, VMSAVE, STGI, CLGI,
SKINIT, INVLPGA: #UD without EFER.SVME; VMMCALL: the hypercall ABI's
-KVM_ENOSYS), privileged and exiting instructions, a triple fault, and
loops with interrupts masked that must still leave KVM_RUN on a signal or
immediate_exit while the host keeps scheduling other threads.
Documentation/virt/onekvm/robustness.rst lists the expectations.
"""

from __future__ import annotations

import argparse
import errno
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402,F401  (sets sys.path)
from common import block_alarm, install_kick_handlers, kmsg_splats  # noqa: E402
from kvmtest import Asm, Device, Guest, exit_name, layout  # noqa: E402
from kvmtest.kvm import VECTOR_NAMES, Vcpu  # noqa: E402
from onekvm.abi import ioctl, lib  # noqa: E402

STRIDE = 0x100000          # default; --stride
WALK_END = 0x100000000

# Stores to every stride (rdx) of GPA space outside slot 0 (RAM_SIZE up to
# rsi) in long mode (identity mapped 0-4 GiB), then a store straddling the
# end of the slot; rdi = address, the value stored is the address.
OOB_STORE = Asm("""
start:
    mov $RAM_SIZE, %rdi
1:  mov %rdi, (%rdi)
    add %rdx, %rdi
    cmp %rsi, %rdi
    jb 1b
    mov $RAM_SIZE - 4, %rdi
    movq $0x1122334455667788, %rax
    mov %rax, (%rdi)
    mov $0x42, %al
    out %al, $PORT_DONE
""", bits=64, name="hostile-oob-store")

# Loads from the same addresses; the sum of what the VMM answered is
# reported in eax.
OOB_LOAD = Asm("""
start:
    mov $RAM_SIZE, %rdi
    xor %ebx, %ebx
1:  mov (%rdi), %eax
    add %eax, %ebx
    add %rdx, %rdi
    cmp %rsi, %rdi
    jb 1b
    mov %ebx, %eax
    out %eax, $PORT_DONE
""", bits=64, name="hostile-oob-load")

# Real mode: stores to every 4 KiB from RAM_SIZE to 1 MiB through ES.
REAL_STORE = Asm("""
start:
    mov $RAM_SIZE >> 4, %ax
1:  mov %ax, %es
    movw %ax, %es:0
    add $0x100, %ax
    cmp $0x10000, %ax
    jne 1b
    mov $0x42, %al
    out %al, $PORT_DONE
""", bits=16, name="hostile-real-store")

# Real mode, interrupts masked, forever.
REAL_SPIN_CLI = Asm("""
start:
    cli
1:  jmp 1b
""", bits=16, name="hostile-real-spin-cli")

# A guest CR3 with bits above the physical address width: QEMU's VMRUN
# checks it against the host's EFER.LMA (set) and fails.
BAD_CR3 = 0xFFFFFFFFFFFFF000

INSNS: dict[str, tuple[str, str]] = {
    # name: (setup, instruction)
    "vmrun": ("mov $0x10000, %rax", "vmrun %rax"),
    "vmload": ("mov $0x10000, %rax", "vmload %rax"),
    "vmsave": ("mov $0x10000, %rax", "vmsave %rax"),
    "stgi": ("", "stgi"),
    "clgi": ("", "clgi"),
    "skinit": ("mov $0x10000, %eax", "skinit %eax"),
    "invlpga": ("mov $0x10000, %rax; xor %ecx, %ecx", "invlpga %rax, %ecx"),
    "vmmcall": ("mov $12345, %rax", "vmmcall"),
    "hlt": ("", "hlt"),
    "cli-hlt": ("", "cli; hlt"),
    "rdmsr-unknown": ("mov $0x12345, %ecx", "rdmsr"),
    "wrmsr-unknown": ("mov $0x12345, %ecx; xor %eax, %eax; xor %edx, %edx", "wrmsr"),
    "wrmsr-efer-svme": ("mov $0xc0000080, %ecx; rdmsr; or $0x1000, %eax", "wrmsr"),
    "invd": ("", "invd"),
    "wbinvd": ("", "wbinvd"),
    "xsetbv": ("xor %ecx, %ecx; mov $1, %eax; xor %edx, %edx", "xsetbv"),
    "invlpg": ("mov $0x10000, %rax", "invlpg (%rax)"),
    "cpuid": ("xor %eax, %eax", "cpuid"),
    "monitor": ("mov $0x10000, %rax; xor %ecx, %ecx; xor %edx, %edx", "monitor"),
    "mwait": ("xor %eax, %eax; xor %ecx, %ecx", "mwait"),
    "rdpmc": ("xor %ecx, %ecx", "rdpmc"),
    "rdtscp": ("", "rdtscp"),
    "ud2": ("", "ud2"),
    "int3": ("", "int3"),
    "mov-cr8": ("mov $0xf, %rax", "mov %rax, %cr8"),
    "lgdt-nonsense": ("mov $0x10000, %rax; movq $0, (%rax); movw $0, 8(%rax)", "lidt (%rax); int3"),
    "in-port": ("mov $0x71, %dx", "in %dx, %al"),
    "icebp": ("", ".byte 0xf1"),
}
INSN_CODE = {k: Asm(f"start:\n    {setup}\n    {insn}\nafter:\n    mov %rax, %rbx\n    mov $0x42, %al\n"
                    "    out %al, $PORT_DONE\n",
                    bits=64, name=f"hostile-{k}") for k, (setup, insn) in INSNS.items()}

# What onekvm documents for each instruction (robustness.rst, svm.rst).
EXPECT_ONEKVM: dict[str, str] = {
    "vmrun": "#UD", "vmload": "#UD", "vmsave": "#UD", "stgi": "#UD", "clgi": "#UD",
    "skinit": "#UD", "invlpga": "#UD", "vmmcall": "done rax=0xfffffffffffffc18",
    "hlt": "HLT", "cli-hlt": "HLT", "rdmsr-unknown": "#GP", "wrmsr-unknown": "#GP",
    "wrmsr-efer-svme": "#GP", "invd": "done", "wbinvd": "done", "xsetbv": "#UD",
    "invlpg": "done", "cpuid": "done", "ud2": "#UD", "int3": "#BP",
    "lgdt-nonsense": "SHUTDOWN", "in-port": "IO in 0x71", "mov-cr8": "done",
}
# Where kvm_amd answers otherwise, and why (robustness.rst).
# Cases that fail on onekvm for a bug not fixed yet: reported as "xfail"
# (and "XPASS" once they pass), never hidden.  robustness.rst lists them.
KNOWN_BUGS: dict[str, str] = {}
KNOWN_DIFFERENCES: dict[str, str] = {
    "wrmsr-efer-svme": "kvm_amd offers nested SVM (EFER.SVME may be set); onekvm does not (#GP)",
    "vmrun": "with nested SVM kvm_amd may run VMRUN after EFER.SVME=1; here SVME=0 on both",
    "monitor": "kvm_amd's default quirk MWAIT_NEVER_UD_FAULTS makes MONITOR a NOP without the "
               "CPUID bit; onekvm raises #UD as the CPU would (the bit is not offered)",
    "mwait": "as monitor",
    "xsetbv": "CR4.OSXSAVE is clear: a CPU raises #UD before checking the intercept, and onekvm "
              "checks OSXSAVE itself; QEMU 10 (the rig's CPU) checks the intercept first and "
              "kvm_amd, relying on the hardware's order, completes the XSETBV",
    "rdpmc": "onekvm has no PMU: #GP, as kvm_amd on 6.12 here (PMU virtualization disabled); "
             "kvm_amd on 6.1 emulates the legacy counters and RDPMC completes",
}

SPIN_CLI = Asm("""
start:
    cli
1:  jmp 1b
""", bits=64, name="hostile-spin-cli")


def outcome(g: Guest, v: Vcpu, err: Optional[int] = None) -> str:
    """One word for what a KVM_RUN did."""
    if err is not None:
        return errno.errorcode.get(err, str(err))
    r = v.run
    reason = r.exit_reason
    if reason == lib.KVM_EXIT_IO and r.io.direction == lib.KVM_EXIT_IO_OUT and r.io.port == layout.PORT_EXC:
        vec, _err, _rip = v.guest_exception()
        return VECTOR_NAMES.get(vec, f"vector {vec}")
    if reason == lib.KVM_EXIT_IO and r.io.port == layout.PORT_DONE:
        return "done"
    if reason == lib.KVM_EXIT_IO:
        return f"IO {'out' if r.io.direction == lib.KVM_EXIT_IO_OUT else 'in'} {r.io.port:#x}"
    return exit_name(reason).removeprefix("EXIT_")


def run1(g: Guest, v: Vcpu, timeout: float = 5.0) -> str:
    signal.setitimer(signal.ITIMER_REAL, timeout, 0.1)
    try:
        ioctl(v.fd, lib.KVM_RUN, 0)
    except OSError as e:
        return outcome(g, v, e.errno)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return outcome(g, v)


# --- cases: each returns (outcome, problems) --------------------------------

def case_oob_store(dev: Device) -> tuple[str, list[str]]:
    probs: list[str] = []
    with Guest(dev, bits=64, code=OOB_STORE) as g:
        g.vcpu.set_regs(rsi=WALK_END, rdx=STRIDE)
        addr, straddle = layout.RAM_SIZE, []
        while True:
            o = run1(g, g.vcpu)
            r = g.vcpu.run
            if o != "MMIO":
                break
            m = r.mmio
            data = int.from_bytes(bytes(m.data[0:m.len]), "little")
            if addr < WALK_END:
                if (m.phys_addr, m.len, m.is_write, data) != (addr, 8, 1, addr):
                    probs.append(f"store {addr:#x}: exit {m.phys_addr:#x} len {m.len} write {m.is_write} "
                                 f"data {data:#x}")
                    break
                addr += STRIDE
            else:
                # The straddling store: RAM gets its first half and MMIO the
                # rest, as on kvm_amd.
                straddle.append(f"{m.phys_addr:#x}/{m.len}/{data:#x}")
        if addr < WALK_END:
            probs.append(f"walk stopped at {addr:#x} ({o})")
        ram = g.read_u(layout.RAM_SIZE - 4, 4)
        want = f"{layout.RAM_SIZE:#x}/4/0x11223344"
        if straddle != [want] or ram != 0x55667788:
            probs.append(f"store straddling the slot's end: MMIO {straddle}, RAM half {ram:#x}; "
                         f"expected MMIO {want} and RAM 0x55667788")
        straddle.append(f"RAM {ram:#x}")
        return (f"{o} after {(addr - layout.RAM_SIZE) // STRIDE} stores, straddling store: "
                f"MMIO {','.join(straddle) or 'none'}"), probs


def case_oob_load(dev: Device) -> tuple[str, list[str]]:
    probs: list[str] = []
    with Guest(dev, bits=64, code=OOB_LOAD) as g:
        g.vcpu.set_regs(rsi=WALK_END, rdx=STRIDE)
        addr, want = layout.RAM_SIZE, 0
        while True:
            o = run1(g, g.vcpu)
            if o != "MMIO":
                break
            m = g.vcpu.run.mmio
            if (m.phys_addr, m.len, m.is_write) != (addr, 4, 0):
                probs.append(f"load {addr:#x}: exit {m.phys_addr:#x} len {m.len} write {m.is_write}")
                break
            val = (addr >> 16) & 0xFFFFFFFF
            g.vcpu.mmio_complete(val.to_bytes(4, "little"))
            want = (want + val) & 0xFFFFFFFF
            addr += STRIDE
        got = g.vcpu.run.io.size and int.from_bytes(bytes(g.vcpu.mapping[g.vcpu.run.io.data_offset:][:4]),
                                                    "little")
        if o != "done" or got != want:
            probs.append(f"ended with {o}, sum {got:#x}, want {want:#x}")
        return f"{o} after {(addr - layout.RAM_SIZE) // STRIDE} loads", probs


def case_real_store(dev: Device) -> tuple[str, list[str]]:
    probs: list[str] = []
    with Guest(dev, bits=16, code=REAL_STORE) as g:
        seg, n = layout.RAM_SIZE >> 4, 0
        while True:
            o = run1(g, g.vcpu)
            if o != "MMIO":
                break
            m = g.vcpu.run.mmio
            if (m.phys_addr, m.len, m.is_write) != (seg << 4, 2, 1):
                probs.append(f"store {seg << 4:#x}: exit {m.phys_addr:#x} len {m.len}")
                break
            seg, n = seg + 0x100, n + 1
        if o != "done":
            probs.append(f"ended with {o}")
        return f"{o} after {n} stores", probs


def insn_case(name: str) -> Callable[[Device], tuple[str, list[str]]]:
    def run(dev: Device) -> tuple[str, list[str]]:
        with Guest(dev, bits=64, code=INSN_CODE[name]) as g:
            o = run1(g, g.vcpu)
            if o == "done" and name == "vmmcall":
                o += f" rax={g.vcpu.get_regs().rbx:#x}"
            want = EXPECT_ONEKVM.get(name)
            probs = [f"expected {want}"] if dev.is_onekvm and want and o != want else []
            return o, probs
    return run


def case_triple_fault(dev: Device) -> tuple[str, list[str]]:
    return insn_case("lgdt-nonsense")(dev)


def _spin_threads(dev: Device, how: str) -> tuple[str, list[str]]:
    """Two vCPUs spin with interrupts masked in two threads; the main
    thread must keep being scheduled, and the vCPUs must leave KVM_RUN on
    a signal (how="signal") or on immediate_exit + signal."""
    probs: list[str] = []
    with Guest(dev, bits=64, code=SPIN_CLI, vcpus=2) as g:
        res: dict[int, str] = {}
        left: dict[int, float] = {}

        def spin(i: int) -> None:
            block_alarm()
            v = g.vcpus[i]
            try:
                ioctl(v.fd, lib.KVM_RUN, 0)
                res[i] = outcome(g, v)
            except OSError as e:
                res[i] = errno.errorcode.get(e.errno or 0, "?")
            left[i] = time.monotonic()

        ts = [threading.Thread(target=spin, args=(i,), daemon=True) for i in range(2)]
        for t in ts:
            t.start()
        worst = 0.0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:         # is the host still ours?
            a = time.monotonic()
            time.sleep(0.01)
            worst = max(worst, time.monotonic() - a)
        kicked = time.monotonic()
        for i, t in enumerate(ts):
            if how == "immediate_exit":
                g.vcpus[i].run.immediate_exit = 1
            if t.ident:
                signal.pthread_kill(t.ident, signal.SIGUSR1)
        for t in ts:
            t.join(10)
        if any(t.is_alive() for t in ts):
            probs.append("KVM_RUN did not return within 10 s of the signal")
        lat = max((left[i] - kicked for i in left), default=-1)
        if worst > 2.0:
            probs.append(f"the host thread waited {worst:.2f} s for a 10 ms sleep")
        for i in range(2):
            if res.get(i) != "EINTR":
                probs.append(f"vCPU {i}: {res.get(i)}, expected EINTR")
            g.vcpus[i].run.immediate_exit = 0
        return (f"{'/'.join(res.get(i, 'stuck') for i in range(2))}; host sleep worst {worst * 1000:.0f} ms, "
                f"RUN left {lat * 1000:.0f} ms after the signal"), probs


def case_spin_after_failed_entry(dev: Device) -> tuple[str, list[str]]:
    """A VMRUN that fails its consistency checks, then a guest spinning
    with IF clear: a signal must still end KVM_RUN.  QEMU writes its own
    (zero) int_ctl into the VMCB on a failed VMRUN; an entry without
    V_INTR_MASKING hands the guest the masking of the host's interrupts
    and the L1 CPU is lost.  Stock kvm_amd loses it (robustness.rst), so
    the case runs on onekvm only."""
    if not dev.is_onekvm:
        return "not run (stock kvm_amd wedges the rig's L1 here)", []
    probs: list[str] = []
    with Guest(dev, bits=16, code=REAL_SPIN_CLI) as g:
        v = g.vcpu
        s = v.get_sregs()
        cr3 = s.cr3
        s.cr3 = BAD_CR3
        v.set_sregs(s)
        # On a CPU that accepts the CR3 in real mode the guest spins: the timer ends it.
        first = run1(g, v, 0.2)
        s = v.get_sregs()
        s.cr3 = cr3
        v.set_sregs(s)
        t0 = time.monotonic()
        second = run1(g, v, 0.2)
        took = time.monotonic() - t0
        if first not in ("FAIL_ENTRY", "EINTR"):
            probs.append(f"first entry: {first}, expected FAIL_ENTRY (or EINTR)")
        if second != "EINTR" or took > 5:
            probs.append(f"the spinning guest ended with {second} after {took:.1f} s; expected EINTR")
    return f"first entry {first}, then the spin: {second}", probs


CASES: dict[str, Callable[[Device], tuple[str, list[str]]]] = {
    "oob-store-64": case_oob_store,
    "oob-load-64": case_oob_load,
    "oob-store-real": case_real_store,
    "triple-fault": case_triple_fault,
    "spin-cli-signal": lambda d: _spin_threads(d, "signal"),
    "spin-cli-immediate-exit": lambda d: _spin_threads(d, "immediate_exit"),
    "spin-after-failed-entry": case_spin_after_failed_entry,
}
CASES.update({f"insn-{k}": insn_case(k) for k in INSNS if k != "lgdt-nonsense"})


def main(argv: Optional[list[str]] = None) -> int:
    global STRIDE
    p = argparse.ArgumentParser(description="hostile guests on onekvm and stock KVM")
    p.add_argument("--dev", action="append", default=[], help="device (repeat; default /dev/onekvm)")
    p.add_argument("-k", default="", help="only cases whose name contains this")
    p.add_argument("--stride", type=lambda x: int(x, 0), default=STRIDE,
                   help=f"GPA stride of the out-of-slot walks (default {STRIDE:#x})")
    p.add_argument("--save", default="", help="write the outcomes (JSON) here")
    p.add_argument("--against", default="", help="compare with outcomes saved from another device")
    p.add_argument("--prebuild", action="store_true", help="assemble the guests (host, no device)")
    a = p.parse_args(argv)
    if a.prebuild:
        for c in (OOB_STORE, OOB_LOAD, REAL_STORE, SPIN_CLI, REAL_SPIN_CLI, *INSN_CODE.values()):
            c.build()
        return 0
    STRIDE = a.stride
    install_kick_handlers()
    devs = [Device(d) for d in (a.dev or ["/dev/onekvm"])]
    _, kseq = kmsg_splats()
    names = [n for n in CASES if a.k in n]
    # Device by device (not case by case): SVM changes hands once.
    outs: dict[str, dict[str, str]] = {}
    probs: dict[str, list[str]] = {n: [] for n in names}
    for d in devs:
        outs[d.kind] = {}
        for name in names:
            try:
                o, pr = CASES[name](d)
            except Exception as e:        # noqa: BLE001 - one case must not stop the others
                o, pr = f"error {type(e).__name__}: {e}", [str(e)]
            outs[d.kind][name] = o
            # Expectations hold for onekvm; the stock module's are printed.
            probs[name] += [f"{d.kind}: {m}" for m in pr] if d.is_onekvm else []
            splats, kseq = kmsg_splats(kseq)
            probs[name] += [f"kernel log ({d.kind}): {x}" for x in splats]
    if a.against:
        outs.update(json.loads(Path(a.against).read_text()))
    if a.save:
        Path(a.save).write_text(json.dumps(outs, indent=1))
    kinds = list(outs)
    ref = next((k for k in kinds if k != "onekvm"), None)
    failed = 0
    for name in names:
        if "onekvm" in outs and ref and name.startswith("insn-"):
            x, y = outs["onekvm"].get(name), outs[ref].get(name)
            if x != y and name[5:] not in KNOWN_DIFFERENCES:
                probs[name].append(f"onekvm differs from {ref} and this is not a known difference")
        status = "FAIL" if probs[name] else "ok"
        if name in KNOWN_BUGS and "onekvm" in outs and not any(
                m.startswith("kernel log") for m in probs[name]):
            status = "xfail" if probs[name] else "XPASS"
            probs[name] = [f"known bug: {KNOWN_BUGS[name]}"] + probs[name]
        failed += status == "FAIL"
        print(f"{status:5} {name:26} " + " | ".join(f"{k}: {outs[k].get(name, '-')}" for k in kinds), flush=True)
        for m in probs[name]:
            print(f"       {m}")
    print(f"hostile: {len(names) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
