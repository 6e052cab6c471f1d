"""Whole-VMM runs of tiny guests on the host's /dev/kvm: boot path, exits, poweroff, reset, interrupts."""

from __future__ import annotations

import os

import pytest
import tinyguest
from onekvm.console import Console
from onekvm.machine import Config, ExitStatus, Machine


def run(kernel: str, dev: str, **kw) -> tuple[int, str, bytes]:
    r, w = os.pipe()
    kw.setdefault("control", False)
    cfg = Config(kernel=kernel, cmdline="console=ttyS0", mem_mib=64, device=dev, **kw)
    m = Machine(cfg, Console(in_fd=None, out_fd=w))
    try:
        status = m.run()
    finally:
        m.close()
        os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    return status, m.exit_reason, out


def test_hello_and_poweroff(tmp_path, kvm_dev):
    status, reason, out = run(tinyguest.build(tmp_path, tinyguest.HELLO), kvm_dev)
    assert out == b"hello from a tiny guest\n"
    assert status == ExitStatus.POWEROFF, reason


def test_triple_fault_has_its_own_status(tmp_path, kvm_dev):
    status, reason, _ = run(tinyguest.build(tmp_path, tinyguest.TRIPLE_FAULT), kvm_dev)
    assert status == ExitStatus.TRIPLE_FAULT, reason
    assert "triple" in reason


def test_reset_has_its_own_status(tmp_path, kvm_dev):
    status, reason, _ = run(tinyguest.build(tmp_path, tinyguest.RESET), kvm_dev)
    assert status == ExitStatus.RESET, reason
    assert "reset" in reason


@pytest.mark.parametrize("irqchip", ["user", "kernel"])
def test_timer_interrupts(tmp_path, kvm_dev, irqchip):
    status, reason, out = run(tinyguest.build(tmp_path, tinyguest.TIMER), kvm_dev, irqchip=irqchip)
    assert status == ExitStatus.POWEROFF, reason
    assert out == b".....\n"


@pytest.mark.parametrize("ns", [0, 2_000_000])
def test_halt_poll_ns_is_set_on_the_vm(tmp_path, kvm_dev, ns, monkeypatch):
    """--halt-poll-ns reaches KVM_ENABLE_CAP(KVM_CAP_HALT_POLL) and the guest still takes its timer interrupts."""
    from onekvm.kvm import Vm, lib

    calls = []
    real = Vm.enable_cap
    monkeypatch.setattr(Vm, "enable_cap", lambda vm, cap, *a: (calls.append((cap, *a)), real(vm, cap, *a))[1])
    status, reason, out = run(tinyguest.build(tmp_path, tinyguest.TIMER), kvm_dev, irqchip="kernel", halt_poll_ns=ns)
    assert status == ExitStatus.POWEROFF, reason
    assert out == b".....\n"
    assert calls == [(lib.KVM_CAP_HALT_POLL, ns)]


def test_halt_poll_ns_without_the_capability_is_a_user_error(tmp_path, kvm_dev, monkeypatch):
    from onekvm.errors import UserError
    from onekvm.kvm import System

    real = System.has
    monkeypatch.setattr(System, "has", lambda s, name: 0 if name == "HALT_POLL" else real(s, name))
    with pytest.raises(UserError, match="no KVM_CAP_HALT_POLL"):
        run(tinyguest.build(tmp_path, tinyguest.HELLO), kvm_dev, halt_poll_ns=1000)


def test_stats_count_exits(tmp_path, kvm_dev):
    r, w = os.pipe()
    cfg = Config(
        kernel=tinyguest.build(tmp_path, tinyguest.HELLO),
        cmdline="",
        mem_mib=64,
        device=kvm_dev,
        control=False,
        stats=True,
        coalesce=False,
    )
    m = Machine(cfg, Console(in_fd=None, out_fd=w))
    try:
        m.run()
    finally:
        m.close()
        os.close(w)
        os.close(r)
    assert m.stats.exits["io"] >= 25
    assert m.stats.dev_calls["uart0"] == 24


def test_coalesced_console_output_needs_no_exit_per_byte(tmp_path, kvm_dev):
    """With KVM_CAP_COALESCED_PIO the THR writes wait in the ring; the poweroff exit drains them first."""
    from onekvm.kvm import System

    sysm = System(kvm_dev)
    try:
        offered = sysm.has("COALESCED_PIO")
    finally:
        sysm.close()
    if not offered:
        pytest.skip(f"{kvm_dev} does not offer KVM_CAP_COALESCED_PIO")
    r, w = os.pipe()
    cfg = Config(
        kernel=tinyguest.build(tmp_path, tinyguest.HELLO),
        cmdline="",
        mem_mib=64,
        device=kvm_dev,
        control=False,
        stats=True,
    )
    m = Machine(cfg, Console(in_fd=None, out_fd=w))
    try:
        status = m.run()
    finally:
        m.close()
        os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    assert status == ExitStatus.POWEROFF, m.exit_reason
    assert out == b"hello from a tiny guest\n"
    assert m.stats.dev_calls["uart0"] == 24
    assert m.stats.exits["io"] < 24


def test_string_io_many_bytes_per_exit(tmp_path, kvm_dev):
    status, reason, out = run(tinyguest.build(tmp_path, tinyguest.REP_IO), kvm_dev)
    assert status == 0, reason
    assert out == b"rep outsb works\n"


def test_halt_with_interrupts_off_ends_the_run(tmp_path, kvm_dev):
    status, reason, _ = run(tinyguest.build(tmp_path, tinyguest.HALT), kvm_dev, irqchip="user")
    assert status == ExitStatus.POWEROFF and "halted" in reason
