"""MSI through irqfds (virtio/irqfd.py) on the host's /dev/kvm: routes, fallback, and the irqchip's own routes kept."""

from __future__ import annotations

import os

import pytest
import tinyguest
from onekvm.console import Console
from onekvm.kvm import System
from onekvm.machine import Config, ExitStatus, Machine
from onekvm.virtio import irqfd
from onekvm.virtio.irqfd import MsiIrqfds


@pytest.fixture
def vm(kvm_dev):
    system = System(kvm_dev)
    if not (system.has("IRQFD") and system.has("IRQ_ROUTING") and system.has("IRQCHIP")):
        pytest.fail(f"{kvm_dev} has no irqfds, GSI routing or in-kernel irqchip (every x86 KVM has)")
    vm = system.create_vm()
    vm.create_irqchip()
    yield vm
    vm.close()
    system.close()


def test_one_route_and_irqfd_per_message(vm):
    fallback = []
    irqfds = MsiIrqfds(vm.fd, lambda a, d: fallback.append((a, d)))
    try:
        irqfds.signal(0xFEE00000, 0x41)
        irqfds.signal(0xFEE00000, 0x41)
        irqfds.signal(0xFEE01000, 0x42)  # the driver moved the vector to another CPU: a new route
        assert [(a, d) for _, a, d in irqfds._routes] == [(0xFEE00000, 0x41), (0xFEE01000, 0x42)]
        assert [g for g, _, _ in irqfds._routes] == [irqfd.FIRST_MSI_GSI, irqfd.FIRST_MSI_GSI + 1]
        assert fallback == []
    finally:
        irqfds.close()
    assert irqfds._fds == {}


def test_past_the_route_limit_messages_use_the_fallback(vm, monkeypatch):
    monkeypatch.setattr(irqfd, "MAX_ROUTES", 2)
    fallback = []
    irqfds = MsiIrqfds(vm.fd, lambda a, d: fallback.append((a, d)))
    try:
        for data in (0x41, 0x42, 0x43, 0x41):
            irqfds.signal(0xFEE00000, data)
        assert fallback == [(0xFEE00000, 0x43)]
    finally:
        irqfds.close()


def test_a_refused_route_falls_back_for_good(vm):
    fallback = []
    irqfds = MsiIrqfds(-1, lambda a, d: fallback.append((a, d)))  # every ioctl fails: EBADF
    irqfds.signal(0xFEE00000, 0x41)
    irqfds.signal(0xFEE00000, 0x42)
    assert fallback == [(0xFEE00000, 0x41), (0xFEE00000, 0x42)]
    assert irqfds._routes == [] and irqfds._fds == {}


def test_the_irqchip_routes_survive_a_routing_update(tmp_path, kvm_dev):
    """KVM_SET_GSI_ROUTING replaces the table: the PIT's interrupt (GSI 0) must still reach the guest."""
    r, w = os.pipe()
    cfg = Config(
        kernel=tinyguest.build(tmp_path, tinyguest.TIMER), cmdline="console=ttyS0", mem_mib=64, device=kvm_dev,
        irqchip="kernel", control=False,
    )
    m = Machine(cfg, Console(in_fd=None, out_fd=w))
    try:
        irqfds = MsiIrqfds(m.vm.fd, lambda a, d: pytest.fail("fell back to KVM_SIGNAL_MSI"))
        irqfds.signal(0xFEE00000, 0x41)  # routes the table; the guest has no MSI user, so nothing arrives
        try:
            status = m.run()
        finally:
            irqfds.close()
    finally:
        m.close()
        os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    assert status == ExitStatus.POWEROFF, m.exit_reason
    assert out == b".....\n"
