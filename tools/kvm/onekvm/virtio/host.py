"""What virtio needs from the VMM, gathered in one place so tests can fake it.

Built from a Machine by `from_machine`; the hypervisor calls go through
the generated bindings (onekvm.abi), never hand-coded numbers.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from onekvm.errors import UserError
from onekvm.irq import SetLevel

if TYPE_CHECKING:
    from onekvm.memory import GuestMemory

log = logging.getLogger("onekvm.virtio")

DEFAULT_POLL_US = 0
MAX_POLL_US = 100_000

# fd, guest physical address, access length, assign (False: deassign)
Ioeventfd = Callable[[int, int, int, bool], None]
SignalMsi = Callable[[int, int], None]


@dataclass
class Host:
    mem: GuestMemory
    # The machine's bus lock: interrupt state changes take it so they
    # serialize with vCPU register accesses and the userspace PIC.
    lock: threading.RLock = field(default_factory=threading.RLock)
    set_level: SetLevel | None = None  # INTx: (gsi, level)
    signal_msi: SignalMsi | None = None  # None: no MSI-X capability offered
    ioeventfd: Ioeventfd | None = None  # None: notifications arrive as MMIO exits
    console_write: Callable[[bytes], None] | None = None
    mmio_alloc: Callable[[int], int] | None = None  # size -> BAR address
    intx_pins: dict[int, set[int]] = field(default_factory=dict)  # shared INTx lines (virtio/intx.py)
    # Serve queue kicks on the vCPU thread, in the notify register's MMIO exit, instead of
    # handing them to the device's worker. One thread does the whole request: no wake-up of
    # another thread, no interrupt raised from another CPU. ONEKVM_VIRTIO_KICKS chooses:
    # thread, inline, or auto (default: inline where the hypervisor has no ioeventfd, so the
    # kick is an exit to this thread anyway; thread where it has, so kicks bypass the vCPU).
    inline_kicks: bool = False
    # With kicks on the worker: how long (microseconds, at most) it keeps watching a ring after a
    # batch before it goes back to sleep; 0: never. ONEKVM_VIRTIO_POLL_US sets it.
    poll_us: int = 0
    on_close: list[Callable[[], None]] = field(default_factory=list)  # after the devices closed

    def close(self) -> None:
        while self.on_close:
            self.on_close.pop()()


def _vm_ioeventfd(vm_fd: int) -> Ioeventfd:
    from onekvm.abi import ffi, ioctl, lib

    def ioeventfd(fd: int, addr: int, length: int, assign: bool) -> None:
        req = ffi.new("struct kvm_ioeventfd *")
        req.fd = fd
        req.addr = addr
        req.len = length
        req.flags = 0 if assign else lib.KVM_IOEVENTFD_FLAG_DEASSIGN
        ioctl(vm_fd, lib.KVM_IOEVENTFD, req)

    return ioeventfd


def _vm_signal_msi(vm_fd: int) -> SignalMsi:
    from onekvm.abi import ffi, ioctl, lib

    msi = ffi.new("struct kvm_msi *")
    msi_lock = threading.Lock()

    def signal_msi(address: int, data: int) -> None:
        with msi_lock:  # one preallocated struct for every thread
            msi.address_lo = address & 0xFFFFFFFF
            msi.address_hi = address >> 32
            msi.data = data
            try:
                ioctl(vm_fd, lib.KVM_SIGNAL_MSI, msi)
            except OSError as e:
                log.debug("KVM_SIGNAL_MSI %#x/%#x: %s", address, data, e)

    return signal_msi


def from_machine(machine: Any, set_level: SetLevel | None) -> Host:
    """The Host view of a onekvm.machine.Machine (after its _add_devices ran)."""
    system = machine.system
    vm_fd = machine.vm.fd
    kernel_irqchip = bool(getattr(machine, "kernel_irqchip", False))
    signal_msi = None
    on_close: list[Callable[[], None]] = []
    # MSI needs a local APIC in the guest, which only the in-kernel irqchip gives.
    if kernel_irqchip and system.has("SIGNAL_MSI"):
        signal_msi = _vm_signal_msi(vm_fd)
        # An irqfd per message where routes can be set: an eventfd write instead of an ioctl.
        # ONEKVM_VIRTIO_IRQFD=0 keeps KVM_SIGNAL_MSI (comparisons, debugging).
        if system.has("IRQFD") and system.has("IRQ_ROUTING") and os.environ.get("ONEKVM_VIRTIO_IRQFD") != "0":
            from onekvm.virtio.irqfd import MsiIrqfds

            irqfds = MsiIrqfds(vm_fd, signal_msi)
            signal_msi = irqfds.signal
            on_close.append(irqfds.close)
    ioeventfd = _vm_ioeventfd(vm_fd) if system.has("IOEVENTFD") else None
    kicks = os.environ.get("ONEKVM_VIRTIO_KICKS") or "auto"
    if kicks not in ("auto", "thread", "inline"):
        raise UserError(f"ONEKVM_VIRTIO_KICKS={kicks}: auto, thread or inline")
    if kicks == "auto":
        kicks = "thread" if ioeventfd is not None else "inline"
    poll = os.environ.get("ONEKVM_VIRTIO_POLL_US") or str(DEFAULT_POLL_US)
    if not poll.isdigit() or int(poll) > MAX_POLL_US:
        raise UserError(f"ONEKVM_VIRTIO_POLL_US={poll}: microseconds, 0 to {MAX_POLL_US}")
    console = getattr(machine, "console", None)
    pci = getattr(machine, "pci", None)
    return Host(
        mem=machine.mem,
        lock=machine.lock,
        set_level=set_level,
        signal_msi=signal_msi,
        ioeventfd=ioeventfd,
        console_write=console.write if console is not None else None,
        mmio_alloc=getattr(pci, "alloc_mmio", None),
        inline_kicks=kicks == "inline",
        poll_us=int(poll),
        on_close=on_close,
    )
