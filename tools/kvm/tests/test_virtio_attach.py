"""The VMM-facing entry points: option parsing, attach to a machine, console input, close."""

from __future__ import annotations

import errno
import threading
from types import SimpleNamespace

import pytest
from onekvm import virtio
from onekvm.bus import IoBus, MmioBus
from onekvm.devices import pci
from onekvm.errors import UserError
from onekvm.memory import GuestMemory
from onekvm.virtio import host as vhost
from onekvm.virtio.pci import BAR_SIZE, VirtioPciDevice


def test_parse_options(tmp_path):
    img = tmp_path / "a.img"
    img.write_bytes(bytes(4096))
    opts = virtio.parse_options(
        disks=[str(img), f"{img},ro"], shares=[f"{tmp_path},root"], console="virtio", rng=True,
        nets=["mode=tap,tapif=t0"],
    )
    assert [k for k, _ in opts.devices] == ["blk", "blk", "9p", "rng", "console", "net"]
    assert opts.devices[1][1].readonly
    assert opts.kernel_params() == "console=hvc0"
    assert virtio.parse_options().devices == []
    assert virtio.parse_options().kernel_params() == ""
    for kw in (
        {"disks": [str(tmp_path / "missing.img")]},
        {"shares": [str(tmp_path)]},
        {"shares": [f"{tmp_path / 'nodir'},t"]},
        {"shares": [f"{tmp_path},t,bogus"]},
        {"console": "vga"},
        {"nets": ["mode=user"]},
    ):
        with pytest.raises(UserError):
            virtio.parse_options(**kw)


def fake_machine(caps=()):
    mem = GuestMemory()
    mem.add(0, 16 << 20)
    io, mmio = IoBus(), MmioBus()
    out = bytearray()
    return SimpleNamespace(
        system=SimpleNamespace(has=lambda name: name in caps),
        vm=SimpleNamespace(fd=-1),
        kernel_irqchip="SIGNAL_MSI" in caps,
        mem=mem,
        lock=threading.RLock(),
        console=SimpleNamespace(write=out.extend),
        pci=pci.PciBus(io, mmio),
        mmio=mmio,
        out=out,
    )


def test_attach(tmp_path):
    img = tmp_path / "a.img"
    img.write_bytes(bytes(8192))
    m = fake_machine()
    levels = []
    opts = virtio.parse_options(disks=[str(img)], shares=[f"{tmp_path},t"], console="virtio", rng=True)
    vset = virtio.attach(m, opts, lambda g, lvl: levels.append((g, lvl)))
    try:
        assert len(vset.devices) == 4
        slots = {s: d for s, d in m.pci.slots.items() if isinstance(d, VirtioPciDevice)}
        assert [d.dev.name for d in slots.values()] == ["blk0", "9p0", "rng0", "console0"]
        addrs = [d.bar_address(0) for d in slots.values()]
        assert addrs == [0xC0000000 + i * BAR_SIZE for i in range(4)]
        assert m.mmio.read(0xC0000000 + 0x12, 2) == 1  # blk: one queue, through the bus
        assert [d.config_read(pci.INTERRUPT_LINE, 1) for d in slots.values()] == [5, 10, 11, 14]
        assert vset.receive(b"hi") == 2
        assert vset.console is not None
    finally:
        vset.close()
        m.mem.close()


def test_attach_nothing():
    m = fake_machine()
    assert virtio.attach(m, None, None).devices == []
    assert virtio.attach(m, virtio.VirtioOptions(), None).receive(b"abc") == 3


def test_attach_failure_cleans_up(tmp_path):
    img = tmp_path / "a.img"
    img.write_bytes(bytes(4096))
    m = fake_machine()
    opts = virtio.parse_options(disks=[str(img)])
    opts.devices.append(("blk", opts.devices[0][1]))  # the same image twice: locked
    with pytest.raises(UserError, match="in use"):
        virtio.attach(m, opts, None)
    virtio.attach(m, virtio.parse_options(disks=[str(img)]), None).close()  # the lock was released
    m.mem.close()


def test_host_from_machine_uses_the_abi():
    pytest.importorskip("onekvm._abi")
    m = fake_machine(caps=("SIGNAL_MSI", "IOEVENTFD"))
    h = vhost.from_machine(m, None)
    assert h.signal_msi is not None and h.ioeventfd is not None
    with pytest.raises(OSError) as e:
        h.ioeventfd(0, 0xC0003000, 2, True)  # vm fd -1: the struct is built, the ioctl refused
    assert e.value.errno == errno.EBADF
    h.signal_msi(0xFEE00000, 0x30)  # logged, not raised: an interrupt is never worth a crash
    assert vhost.from_machine(fake_machine(), None).signal_msi is None
    m.mem.close()


@pytest.mark.parametrize(
    "caps, env, inline",
    [
        ((), None, True),  # no ioeventfd (/dev/onekvm): the kick is an exit to the vCPU thread anyway
        (("IOEVENTFD",), None, False),  # stock KVM: kicks bypass the vCPU
        (("IOEVENTFD",), "inline", True),
        ((), "thread", False),
        (("IOEVENTFD",), "auto", False),
    ],
)
def test_kicks_policy(monkeypatch, caps, env, inline):
    pytest.importorskip("onekvm._abi")
    if env is None:
        monkeypatch.delenv("ONEKVM_VIRTIO_KICKS", raising=False)
    else:
        monkeypatch.setenv("ONEKVM_VIRTIO_KICKS", env)
    m = fake_machine(caps=caps)
    assert vhost.from_machine(m, None).inline_kicks is inline
    m.mem.close()


def test_kicks_policy_typo_is_a_user_error(monkeypatch):
    monkeypatch.setenv("ONEKVM_VIRTIO_KICKS", "inlne")
    m = fake_machine()
    with pytest.raises(UserError, match="ONEKVM_VIRTIO_KICKS=inlne: auto, thread or inline"):
        vhost.from_machine(m, None)
    m.mem.close()


@pytest.mark.parametrize("env, want", [(None, vhost.DEFAULT_POLL_US), ("0", 0), ("2500", 2500)])
def test_poll_setting(monkeypatch, env, want):
    pytest.importorskip("onekvm._abi")
    if env is None:
        monkeypatch.delenv("ONEKVM_VIRTIO_POLL_US", raising=False)
    else:
        monkeypatch.setenv("ONEKVM_VIRTIO_POLL_US", env)
    m = fake_machine(caps=("IOEVENTFD",))
    assert vhost.from_machine(m, None).poll_us == want
    m.mem.close()


@pytest.mark.parametrize("env", ["-1", "4ms", "100001"])
def test_poll_setting_bad_is_a_user_error(monkeypatch, env):
    monkeypatch.setenv("ONEKVM_VIRTIO_POLL_US", env)
    m = fake_machine()
    with pytest.raises(UserError, match=f"ONEKVM_VIRTIO_POLL_US={env}: microseconds, 0 to 100000"):
        vhost.from_machine(m, None)
    m.mem.close()
