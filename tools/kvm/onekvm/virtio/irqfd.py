"""MSI through irqfds: each message the devices send gets a GSI route and an eventfd bound to it.

With KVM_CAP_IRQFD and KVM_CAP_IRQ_ROUTING, raising a vector is one
eventfd write from whichever thread raises it (a device's worker, usually):
the hypervisor delivers the interrupt itself, without an ioctl and without
the vCPU thread. Routes are made on first use of an (address, data) pair,
the message the guest programmed into an MSI-X table entry, so a table
rewrite (the driver moving an interrupt to another CPU) simply makes a new
route. Past MAX_ROUTES, or if the hypervisor refuses a route, messages go
through the fallback (KVM_SIGNAL_MSI).

KVM_SET_GSI_ROUTING replaces the whole table, so each update carries the
in-kernel irqchip's own routes too, as KVM_CREATE_IRQCHIP set them: GSI
0-15 to a PIC pin and the IOAPIC pin of the same number, 16-23 to the IOAPIC.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable

from onekvm.abi import ioctl, lib, new_flex

log = logging.getLogger("onekvm.virtio")

SignalMsi = Callable[[int, int], None]

IRQCHIP_GSIS = 24  # the IOAPIC's pins; the PICs' 16 are GSI 0-15
FIRST_MSI_GSI = IRQCHIP_GSIS
MAX_ROUTES = 256  # MSI messages; a guest that keeps reprogramming vectors falls back past it


class MsiIrqfds:
    """The VM's MSI routes and their irqfds; signal() has the SignalMsi shape."""

    def __init__(self, vm_fd: int, fallback: SignalMsi) -> None:
        self.vm_fd = vm_fd
        self.fallback = fallback
        self._lock = threading.Lock()
        self._routes: list[tuple[int, int, int]] = []  # (gsi, address, data)
        self._fds: dict[tuple[int, int], int] = {}  # (address, data) -> eventfd
        self._full = False  # no more routes: everything new goes to the fallback

    def signal(self, address: int, data: int) -> None:
        fd = self._fds.get((address, data))
        if fd is None:
            fd = self._add(address, data)
            if fd is None:
                self.fallback(address, data)
                return
        os.eventfd_write(fd, 1)

    def _add(self, address: int, data: int) -> int | None:
        with self._lock:
            fd = self._fds.get((address, data))
            if fd is not None or self._full:
                return fd
            if len(self._routes) >= MAX_ROUTES:
                log.debug("MSI routes: %d in use, later messages use KVM_SIGNAL_MSI", MAX_ROUTES)
                self._full = True
                return None
            gsi = FIRST_MSI_GSI + len(self._routes)
            self._routes.append((gsi, address, data))
            fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            try:
                self._commit()
                self._irqfd(fd, gsi, assign=True)
            except OSError as e:
                log.debug("MSI route %#x/%#x on GSI %d: %s; using KVM_SIGNAL_MSI", address, data, gsi, e)
                self._routes.pop()
                os.close(fd)
                self._full = True
                return None
            self._fds[(address, data)] = fd
            return fd

    def _commit(self) -> None:
        """KVM_SET_GSI_ROUTING: the irqchip's routes and every MSI route."""
        entries: list[tuple[int, int, int, int, int]] = []  # gsi, type, irqchip or address, pin or data
        for gsi in range(IRQCHIP_GSIS):
            entries.append((gsi, lib.KVM_IRQ_ROUTING_IRQCHIP, lib.KVM_IRQCHIP_IOAPIC, gsi, 0))
            if gsi < 16:
                pic = lib.KVM_IRQCHIP_PIC_MASTER if gsi < 8 else lib.KVM_IRQCHIP_PIC_SLAVE
                entries.append((gsi, lib.KVM_IRQ_ROUTING_IRQCHIP, pic, gsi % 8, 0))
        for gsi, address, data in self._routes:
            entries.append((gsi, lib.KVM_IRQ_ROUTING_MSI, address, data, 0))
        table = new_flex("struct kvm_irq_routing", len(entries))
        table.nr = len(entries)
        for e, (gsi, kind, a, b, _) in zip(table.entries, entries):
            e.gsi = gsi
            e.type = kind
            if kind == lib.KVM_IRQ_ROUTING_MSI:
                e.u.msi.address_lo = a & 0xFFFFFFFF
                e.u.msi.address_hi = a >> 32
                e.u.msi.data = b
            else:
                e.u.irqchip.irqchip = a
                e.u.irqchip.pin = b
        ioctl(self.vm_fd, lib.KVM_SET_GSI_ROUTING, table)

    def _irqfd(self, fd: int, gsi: int, assign: bool) -> None:
        from onekvm.abi import ffi

        req = ffi.new("struct kvm_irqfd *")
        req.fd = fd
        req.gsi = gsi
        req.flags = 0 if assign else lib.KVM_IRQFD_FLAG_DEASSIGN
        ioctl(self.vm_fd, lib.KVM_IRQFD, req)

    def close(self) -> None:
        """Unbind and close the eventfds (the VM itself may live on, as in tests)."""
        with self._lock:
            for (address, data), fd in self._fds.items():
                gsi = next(g for g, a, d in self._routes if (a, d) == (address, data))
                try:
                    self._irqfd(fd, gsi, assign=False)
                except OSError:
                    pass  # the VM is gone already: its irqfds went with it
                os.close(fd)
            self._fds.clear()
            self._full = True
