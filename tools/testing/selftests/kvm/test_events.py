# SPDX-License-Identifier: GPL-2.0-only
"""Events into and out of the guest without an in-kernel irqchip: interrupt
windows and KVM_INTERRUPT, NMIs and their masking, injection through
KVM_SET_VCPU_EVENTS, and KVM_RUN returning -EINTR for a signal or
immediate_exit (completing a pending IN/MMIO read first)."""

from __future__ import annotations

import errno
import signal
import threading
from types import FrameType
from typing import Callable, Iterator, Optional

import pytest
from kvmtest import MODE_IDS, MODES, Asm, Guest, layout, raises_errno
from onekvm.abi import ffi, lib, new_flex

IRET = {16: "iret", 32: "iretl", 64: "iretq"}
PORT_MARK, PORT_IRQ, PORT_NMI, PORT_NMI_LATE = 0x10, 0x11, 0x12, 0x13

# Interrupts masked, a mark, interrupts enabled, then spin.  Handlers for
# vector 0x40 and 0x41 and for NMI report on their ports, then return.
EVENTS_SRC = """
start:
    cli
    out %al, $0x10
    sti
    nop
spin:
    jmp spin
hlt_here:
    sti
    hlt
after_hlt:
    jmp after_hlt
cli_spin:
    cli
1:  jmp 1b
irq40:
    mov $0x40, %al
    out %al, $0x11
    {iret}
irq41:
    mov $0x41, %al
    out %al, $0x11
    {iret}
nmi:
    out %al, $0x12
    out %al, $0x13
    {iret}
"""
EVENTS = {b: Asm(EVENTS_SRC.format(iret=IRET[b]), bits=b, name=f"events-{b}") for b in MODES}

IN_THEN_OUT = Asm("""
start:
    mov $0x11223344, %eax
    inb $0x20, %al
after_in:
    outl %eax, $0x21
    mov $MMIO, %rbx
    mov (%rbx), %ecx
after_mmio:
    mov %ecx, %eax
    outl %eax, $0x21
    hlt
""", bits=64, name="in-then-out")


def _events_guest(tiny: Callable[[int], Guest], bits: int) -> Guest:
    g = tiny(bits)
    code = g.load(EVENTS[bits])
    g.set_gate(0x40, code["irq40"])
    g.set_gate(0x41, code["irq41"])
    g.set_gate(2, code["nmi"])
    return g


def _return_rip(g: Guest) -> int:
    """The RIP the interrupted code resumes at (from the handler's frame)."""
    r, s = g.vcpu.get_regs(), g.vcpu.get_sregs()
    width = {16: 2, 32: 4, 64: 8}[g.bits]
    return g.read_u(s.ss.base + (r.rsp & (0xFFFF if g.bits == 16 else (1 << 64) - 1)), width)


@pytest.mark.parametrize("bits", MODES, ids=MODE_IDS.get)
def test_irq_window_and_interrupt(tiny: Callable[[int], Guest], bits: int) -> None:
    g = _events_guest(tiny, bits)
    v, code = g.vcpu, g.code
    v.run.request_interrupt_window = 1
    e = v.expect_io(PORT_MARK, out=True, what="the window cannot open while IF=0")
    assert e.if_flag == 0 and e.ready_for_interrupt_injection == 0
    e = v.expect(lib.KVM_EXIT_IRQ_WINDOW_OPEN, "after sti")
    assert e.if_flag == 1 and e.ready_for_interrupt_injection == 1
    # After `sti; nop` - or at the nop: stock kvm_amd under QEMU's SVM
    # sometimes reports the window inside the STI shadow, so both are accepted.
    nop = code["spin"] - 1
    assert nop <= v.get_regs().rip <= code["spin"] + 2
    v.run.request_interrupt_window = 0
    v.interrupt(0x40)
    assert v.expect_out(PORT_IRQ) == 0x40, "the vector's own IDT handler runs"
    assert nop <= _return_rip(g) <= code["spin"] + 2


@pytest.mark.parametrize("bits", MODES, ids=MODE_IDS.get)
def test_interrupt_wakes_hlt(tiny: Callable[[int], Guest], bits: int) -> None:
    g = _events_guest(tiny, bits)
    v, code = g.vcpu, g.code
    v.set_regs(rip=code["hlt_here"])
    e = v.expect(lib.KVM_EXIT_HLT)
    assert e.if_flag == 1 and e.ready_for_interrupt_injection == 1
    v.interrupt(0x41)
    assert v.expect_out(PORT_IRQ) == 0x41
    assert _return_rip(g) == code["after_hlt"]


@pytest.mark.parametrize("bits", MODES, ids=MODE_IDS.get)
def test_nmi(tiny: Callable[[int], Guest], bits: int, known_issue: Callable[..., None]) -> None:
    """KVM_NMI is taken with IF=0; a second NMI waits for the handler's IRET."""
    if bits == 32:
        known_issue(("kvm_pvm",), "PVM cannot emulate a 32-bit IRET")
    g = _events_guest(tiny, bits)
    v, code = g.vcpu, g.code
    v.set_regs(rip=code["cli_spin"])
    v.nmi()
    v.expect_out(PORT_NMI, what="NMI handler entry")
    v.nmi()                                                # blocked until IRET
    v.expect_out(PORT_NMI_LATE, what="the handler continues: NMIs are blocked")
    v.expect_out(PORT_NMI, what="after IRET the second NMI is taken")
    v.expect_out(PORT_NMI_LATE)


@pytest.mark.parametrize("kind", ["interrupt", "nmi", "exception"])
def test_inject_through_vcpu_events(tiny: Callable[[int], Guest], kind: str) -> None:
    g = _events_guest(tiny, 64)
    v, code = g.vcpu, g.code
    v.set_regs(rip=code["spin"], rflags=layout.RFLAGS_FIXED | layout.RFLAGS_IF)
    ev = v.get_events()
    if kind == "interrupt":
        ev.interrupt.injected, ev.interrupt.nr = 1, 0x41
    elif kind == "nmi":
        ev.flags |= lib.KVM_VCPUEVENT_VALID_NMI_PENDING
        ev.nmi.pending = 1
    else:
        ev.exception.injected, ev.exception.nr = 1, 13
        ev.exception.has_error_code, ev.exception.error_code = 1, 0x18
    v.set_events(ev)
    if kind == "interrupt":
        assert v.expect_out(PORT_IRQ) == 0x41
    elif kind == "nmi":
        v.expect_out(PORT_NMI)
    else:
        e = v.run_once()
        assert e.is_guest_exception(), e.describe()
        assert v.guest_exception() == (13, 0x18, code["spin"])


# --- KVM_RUN returning -EINTR -----------------------------------------------------------

@pytest.fixture
def alarm() -> Iterator[Callable[[float], None]]:
    """alarm(seconds): SIGALRM after `seconds`, then every 50 ms until the test ends."""
    hits: list[int] = []

    def handler(signum: int, frame: Optional[FrameType]) -> None:
        hits.append(signum)

    old = signal.signal(signal.SIGALRM, handler)

    def arm(seconds: float) -> None:
        signal.setitimer(signal.ITIMER_REAL, seconds, 0.05)

    yield arm
    signal.setitimer(signal.ITIMER_REAL, 0, 0)
    signal.signal(signal.SIGALRM, old)


@pytest.mark.parametrize("bits", MODES, ids=MODE_IDS.get)
def test_signal_interrupts_run(tiny: Callable[[int], Guest], alarm: Callable[[float], None], bits: int) -> None:
    g = _events_guest(tiny, bits)
    v, code = g.vcpu, g.code
    v.set_regs(rip=code["cli_spin"])
    for _ in range(2):                       # and the vCPU runs on afterwards
        alarm(0.05)
        with raises_errno(errno.EINTR):
            v.run_raw()
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        assert v.run.exit_reason == lib.KVM_EXIT_INTR
        assert code["cli_spin"] <= v.get_regs().rip <= code["cli_spin"] + 3


def _sigmask(v: object, sigset: Optional[bytes]) -> None:
    """KVM_SET_SIGNAL_MASK with a kernel sigset (8 bytes), or none (arg 0)."""
    if sigset is None:
        v.ioctl(lib.KVM_SET_SIGNAL_MASK, 0)  # type: ignore[attr-defined]
        return
    m = new_flex("struct kvm_signal_mask", len(sigset))
    m.len = len(sigset)
    ffi.memmove(m.sigset, sigset, len(sigset))
    v.ioctl(lib.KVM_SET_SIGNAL_MASK, m)  # type: ignore[attr-defined]


def test_signal_mask_kick(tiny: Callable[[int], Guest]) -> None:
    """The VMM kick: SIGUSR1 blocked in the thread, unblocked during KVM_RUN by
    KVM_SET_SIGNAL_MASK; a pending SIGUSR1 makes KVM_RUN return -EINTR."""
    g = _events_guest(tiny, 64)
    v, code = g.vcpu, g.code
    v.set_regs(rip=code["cli_spin"])
    hits: list[int] = []
    old = signal.signal(signal.SIGUSR1, lambda signum, frame: hits.append(signum))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        _sigmask(v, bytes(8))                              # nothing blocked while in the guest
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
        with raises_errno(errno.EINTR):
            v.run_raw()
        assert v.run.exit_reason == lib.KVM_EXIT_INTR
        assert not hits, "the signal stays pending outside KVM_RUN (still blocked there)"
    finally:
        _sigmask(v, None)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
        signal.signal(signal.SIGUSR1, old)
    assert hits == [signal.SIGUSR1]


def test_signal_mask_bad_len(tiny: Callable[[int], Guest]) -> None:
    g = tiny(64)
    with raises_errno(errno.EINVAL):
        _sigmask(g.vcpu, bytes(16))


def test_immediate_exit(tiny: Callable[[int], Guest]) -> None:
    g = _events_guest(tiny, 64)
    v, code = g.vcpu, g.code
    v.run.immediate_exit = 1
    with raises_errno(errno.EINTR):
        v.run_raw()
    assert v.get_regs().rip == code["start"], "the guest did not run"
    v.run.immediate_exit = 0
    v.expect_io(PORT_MARK, out=True)


def test_immediate_exit_completes_pending_io(tiny: Callable[[int], Guest]) -> None:
    """KVM_RUN with immediate_exit finishes a pending IN / MMIO read into the
    guest's registers without running it (what a VMM does before saving state)."""
    g = tiny(64)
    code = g.load(IN_THEN_OUT)
    v = g.vcpu
    v.expect_in(0x20, 0xAB, 1)
    v.run.immediate_exit = 1
    with raises_errno(errno.EINTR):
        v.run_raw()
    r = v.get_regs()
    assert (r.rip, r.rax & 0xFFFFFFFF) == (code["after_in"], 0x112233AB)
    v.run.immediate_exit = 0
    assert v.expect_out(0x21, 4) == 0x112233AB
    v.expect_mmio_read(layout.MMIO, 4, 0xFEEDFACE)
    v.run.immediate_exit = 1
    with raises_errno(errno.EINTR):
        v.run_raw()
    r = v.get_regs()
    assert (r.rip, r.rcx) == (code["after_mmio"], 0xFEEDFACE)
    v.run.immediate_exit = 0
    assert v.expect_out(0x21, 4) == 0xFEEDFACE
