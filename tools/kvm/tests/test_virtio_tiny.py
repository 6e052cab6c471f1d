"""virtio with a real hypervisor: a tiny guest on the host's /dev/kvm kicks a queue and polls the used ring.

The test plays the driver's set-up through the BAR (as firmware would) and
posts a virtio-rng request in guest memory; the guest only writes the
queue's notify register and waits for the used index to move. With
KVM_IOEVENTFD that write never leaves the kernel (no MMIO exit); without it,
it is an MMIO exit the VMM's bus hands to the transport. Either way the
device's worker thread serves the request.
"""

from __future__ import annotations

import os
import threading

import pytest
import tinyguest
from onekvm import virtio
from onekvm.console import Console
from onekvm.machine import Config, Machine
from onekvm.virtio.pci import NOTIFY_OFF, S_ACKNOWLEDGE, S_DRIVER, S_DRIVER_OK, S_FEATURES_OK
from onekvm.virtio.testing import Allocator, DriverQueue

RING_BASE = 0x200000  # free guest RAM: boot data sits below 1 MiB, the guest at 16 MiB
BAR = 0xC0000000  # where virtio.attach places the first device

KICK_AND_WAIT = r"""
_start:
    mov $%(notify)d, %%eax
    movw $0, (%%rax)            # notify queue 0 (a zero-extended address: the BAR is above 2 GiB)
1:  cmpw $1, %(used_idx)d       # the device returned the chain?
    jne 1b
    mov $0x604, %%dx
    mov $0x3400, %%ax           # S5: power off
    outw %%ax, %%dx
2:  hlt
    jmp 2b
"""


def _run(tmp_path, dev: str, ioeventfd: bool) -> tuple[Machine, int, bytes, DriverQueue]:
    # Ring addresses first (the guest code needs the used index's); memory comes with the machine.
    alloc = Allocator(None, RING_BASE)  # type: ignore[arg-type]
    dq = DriverQueue(None, alloc, 0, 8)  # type: ignore[arg-type]
    src = KICK_AND_WAIT % {"notify": BAR + NOTIFY_OFF, "used_idx": dq.used + 2}
    kernel = tinyguest.build(tmp_path, src)
    r, w = os.pipe()
    cfg = Config(
        kernel=kernel, cmdline="console=ttyS0", mem_mib=64, device=dev, control=False, stats=True,
        virtio=virtio.parse_options(rng=True),
    )
    m = Machine(cfg, Console(in_fd=None, out_fd=w))
    try:
        t = m.virtio.devices[0]
        if not ioeventfd:  # the MMIO-exit path: drop the hypervisor's shortcut
            t._sync_ioeventfds()
            for i, addr in list(t._ioeventfds.items()):
                t._ioeventfd(i, addr, False)
            t.host.ioeventfd = None
        assert bool(t._ioeventfds) == ioeventfd
        # The driver's set-up, through the BAR.
        t.bar_write(0x14, 1, S_ACKNOWLEDGE | S_DRIVER)
        t.bar_write(0x0C, 4, 0)
        t.bar_write(0x08, 4, 1)
        t.bar_write(0x0C, 4, 1)  # VIRTIO_F_VERSION_1 only
        t.bar_write(0x14, 1, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK)
        dq.mem = alloc.mem = m.mem
        t.bar_write(0x16, 2, 0)
        t.bar_write(0x18, 2, 8)
        for off, addr in ((0x20, dq.desc), (0x28, dq.avail), (0x30, dq.used)):
            t.bar_write(off, 4, addr)
            t.bar_write(off + 4, 4, 0)
        t.bar_write(0x1C, 2, 1)
        t.bar_write(0x14, 1, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK)
        head = dq.add([], [32])
        dq.set_avail_flags(1)  # polling: no interrupt wanted
        watchdog = threading.Timer(30, m.request_exit, args=(1, "watchdog: the guest never saw its buffer"))
        watchdog.start()
        try:
            status = m.run()
        finally:
            watchdog.cancel()
        data = dq.reply(head)
        return m, status, data, dq
    finally:
        m.close()
        os.close(w)
        os.close(r)


@pytest.mark.parametrize("ioeventfd", [True, False], ids=["ioeventfd", "mmio-exit"])
def test_guest_kick_reaches_the_worker(tmp_path, kvm_dev, ioeventfd):
    m, status, data, dq = _run(tmp_path, kvm_dev, ioeventfd)
    assert status == 0, m.exit_reason
    assert data != b"\xaa" * 32  # filled from os.urandom
    mmio_exits = m.stats.exits.get("mmio", 0)
    assert (mmio_exits == 0) if ioeventfd else (mmio_exits >= 1)
