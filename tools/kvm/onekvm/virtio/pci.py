"""Virtio 1.x over PCI, modern interface only (virtio 1.x section 4.1).

One 32-bit memory BAR holds every register window:

    0x0000 common configuration    0x3000 notify (4 bytes per queue)
    0x1000 ISR status              0x4000 MSI-X table
    0x2000 device configuration    0x5000 MSI-X pending bits

Locks: register accesses arrive from vCPU threads holding the machine's bus
lock (host.lock); the device's worker holds `dev_lock` while it touches the
rings, and takes host.lock only after dropping dev_lock (to raise an
interrupt), so the order is always host.lock -> dev_lock.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from onekvm.devices.pci import COMMAND, COMMAND_INTX_DISABLE, COMMAND_MASTER, COMMAND_MEMORY, PciDevice
from onekvm.errors import GuestError
from onekvm.virtio import fastpath
from onekvm.virtio.common import (  # noqa: F401 - the status bits and field table are re-exported
    COMMON_FIELDS,
    S_ACKNOWLEDGE,
    S_DRIVER,
    S_DRIVER_OK,
    S_FAILED,
    S_FEATURES_OK,
    S_NEEDS_RESET,
    CommonCfg,
)
from onekvm.virtio.device import TRANSPORT_FEATURES, VirtioDevice
from onekvm.virtio.intx import IntxLine
from onekvm.virtio.msix import Msix
from onekvm.virtio.queue import NO_VECTOR, QueueError, SplitQueue
from onekvm.virtio.worker import Worker, drain_eventfd, new_eventfd

if TYPE_CHECKING:
    from onekvm.virtio.host import Host

log = logging.getLogger("onekvm.virtio")

VENDOR_VIRTIO = 0x1AF4
MODERN_DEVICE_BASE = 0x1040
SUBSYSTEM_ID = 0x1100  # what QEMU uses; modern drivers ignore it

BAR_INDEX = 0
BAR_SIZE = 0x8000
COMMON_OFF = 0x0000
COMMON_LEN = 0x38
ISR_OFF = 0x1000
ISR_LEN = 4
DEVICE_OFF = 0x2000
DEVICE_MAX = 0x1000
NOTIFY_OFF = 0x3000
NOTIFY_MULT = 4
MSIX_TABLE_OFF = 0x4000
MSIX_PBA_OFF = 0x5000

CAP_VENDOR = 0x09
CAP_MSIX = 0x11
CFG_COMMON = 1
CFG_NOTIFY = 2
CFG_ISR = 3
CFG_DEVICE = 4
CFG_PCI = 5


# Batches _poll serves in a row before it lets the worker's event loop run.
POLL_ROUNDS = 64

ISR_QUEUE = 1
ISR_CONFIG = 2

class _Bar:
    """The BAR as the MMIO bus sees it."""

    def __init__(self, t: VirtioPciDevice) -> None:
        self.name = t.name
        self.read = t.bar_read
        self.write = t.bar_write


class VirtioPciDevice(CommonCfg, PciDevice):
    def __init__(self, dev: VirtioDevice, host: Host, gsi: int | None = None) -> None:
        super().__init__(
            VENDOR_VIRTIO, MODERN_DEVICE_BASE + dev.device_id, dev.pci_class, revision=1, name=f"virtio-{dev.name}"
        )
        struct.pack_into("<HH", self.config, 0x2C, VENDOR_VIRTIO, SUBSYSTEM_ID)
        self.pcicfg_cap = -1  # set by _add_caps; config_read looks at it
        self.dev = dev
        dev.transport = self
        self.host = host
        self.lock = host.lock
        self.dev_lock = threading.Lock()
        self.queues = [SplitQueue(host.mem, i, size) for i, size in enumerate(dev.queue_sizes)]
        self.kick_fds = [new_eventfd() for _ in self.queues]
        self.offered = dev.features | TRANSPORT_FEATURES
        # Inline kicks: the vCPU thread serves a queue in its notify exit (no ioeventfd, no hop to
        # the worker); see host.Host.inline_kicks.
        self.inline = host.inline_kicks and dev.inline_ok
        self.msix = Msix(len(self.queues) + 1, host.signal_msi) if host.signal_msi is not None else None
        self.intx: IntxLine | None = None
        if gsi is not None and host.set_level is not None:
            self.intx = IntxLine(gsi, host.set_level, host.intx_pins)
            self.config[0x3C] = gsi  # Interrupt Line: what firmware would have routed
            self.config[0x3D] = 1  # Interrupt Pin: INTA#
        self._reset_state()
        self.config_generation = 0
        self.broken_reason = ""
        self._touched: set[SplitQueue] = set()
        self._config_irq = False
        self._ioeventfds: dict[int, int] = {}  # queue -> notify address registered with the hypervisor
        self.add_bar(BAR_INDEX, BAR_SIZE, _Bar(self))
        self._add_caps()
        # Polling after a batch (worker thread only): see _poll.
        self.poll_max = host.poll_us / 1e6 if not self.inline and dev.poll_ok else 0.0
        self.poll_window = self.poll_max
        for q in self.queues:
            q.polled = self.poll_max > 0
        self.worker = Worker(dev.name)
        for q, fd in zip(self.queues, self.kick_fds):
            self.worker.add(fd, self._kick_handler(q, fd))

    def _reset_state(self) -> None:
        self.device_feature_select = 0
        self.driver_feature_select = 0
        self.driver_features = 0
        self.status = 0
        self.queue_select = 0
        self.msix_config = NO_VECTOR
        self.isr = 0
        self.broken = False

    # -- capabilities -------------------------------------------------------------------
    def _vendor_cap(self, cfg_type: int, offset: int, length: int, extra: bytes = b"") -> int:
        body = struct.pack("<BBBB2xII", 14 + len(extra) + 2, cfg_type, BAR_INDEX, 0, offset, length) + extra
        return self.add_capability(CAP_VENDOR, body)

    def _add_caps(self) -> None:
        if self.msix is not None:
            n = self.msix.nvec
            body = struct.pack("<HII", n - 1, MSIX_TABLE_OFF | BAR_INDEX, MSIX_PBA_OFF | BAR_INDEX)
            self.msix_cap = self.add_capability(CAP_MSIX, body, writable=b"\x00\xc0")
        self._vendor_cap(CFG_COMMON, COMMON_OFF, COMMON_LEN)
        self._vendor_cap(CFG_ISR, ISR_OFF, ISR_LEN)
        if self.dev.config:
            self._vendor_cap(CFG_DEVICE, DEVICE_OFF, min(len(self.dev.config), DEVICE_MAX))
        self._vendor_cap(CFG_NOTIFY, NOTIFY_OFF, NOTIFY_MULT * len(self.queues), struct.pack("<I", NOTIFY_MULT))
        # VIRTIO_PCI_CAP_PCI_CFG: a window into the BAR through config space (firmware uses it).
        off = self._vendor_cap(CFG_PCI, 0, 0, b"\0" * 4)
        self.pcicfg_cap = off
        self.wmask[off + 4] = 0xFF  # bar
        self.wmask[off + 8 : off + 20] = b"\xff" * 12  # offset, length, data

    # -- firmware's part ------------------------------------------------------------------
    def place(self, addr: int) -> None:
        """Assign the BAR and turn decoding on, as firmware does before the OS boots."""
        self.set_bar_address(BAR_INDEX, addr)
        self.config_write(COMMAND, 2, COMMAND_MEMORY | COMMAND_MASTER)
        self._sync_ioeventfds()

    # -- PCI configuration hooks (vCPU thread, host.lock held) --------------------------------
    def config_read(self, reg: int, size: int) -> int:
        data = self.pcicfg_cap + 16
        if self.pcicfg_cap > 0 and data <= reg < data + 4:
            return self._pcicfg_access(None) >> (8 * (reg - data)) & ((1 << (8 * size)) - 1)
        return super().config_read(reg, size)

    def config_written(self, reg: int, size: int, value: int) -> None:
        if self.msix is not None:
            ctrl_reg = self.msix_cap + 2
            if reg < ctrl_reg + 2 and reg + size > ctrl_reg:
                ctrl = super().config_read(ctrl_reg, 2)
                self.msix.control_written(ctrl)
        if reg < 0x28 and reg + size > COMMAND:
            self._sync_ioeventfds()  # BAR moved or decoding toggled
            self._update_intx()
        data = self.pcicfg_cap + 16
        if self.pcicfg_cap > 0 and reg < data + 4 and reg + size > data:
            self._pcicfg_access(super().config_read(data, 4))

    def _pcicfg_access(self, write: int | None) -> int:
        off = self.pcicfg_cap
        bar = self.config[off + 4]
        offset, length = struct.unpack_from("<II", self.config, off + 8)
        if bar != BAR_INDEX or length not in (1, 2, 4) or offset + length > BAR_SIZE:
            return 0
        if write is None:
            return self.bar_read(offset, length)
        self.bar_write(offset, length, write & ((1 << (8 * length)) - 1))
        return 0

    def _sync_ioeventfds(self) -> None:
        """Queue notify addresses follow the BAR; the hypervisor's ioeventfds must too."""
        if self.host.ioeventfd is None or self.inline:
            return
        bar = self.bars[BAR_INDEX]
        want = {}
        if bar.mapped:
            want = {i: bar.addr + NOTIFY_OFF + NOTIFY_MULT * i for i in range(len(self.queues))}
        for i, addr in list(self._ioeventfds.items()):
            if want.get(i) != addr:
                self._ioeventfd(i, addr, False)
        for i, addr in want.items():
            if i not in self._ioeventfds:
                self._ioeventfd(i, addr, True)

    def _ioeventfd(self, i: int, addr: int, assign: bool) -> None:
        assert self.host.ioeventfd is not None
        try:
            # Linux writes the queue index as 16 bits; any other width still exits to bar_write.
            self.host.ioeventfd(self.kick_fds[i], addr, 2, assign)
        except OSError as e:
            log.debug("%s: ioeventfd for queue %d at %#x: %s", self.name, i, addr, e)
            return
        if assign:
            self._ioeventfds[i] = addr
        else:
            self._ioeventfds.pop(i, None)

    # -- the BAR (vCPU thread, host.lock held) ---------------------------------------------
    def bar_read(self, offset: int, size: int) -> int:
        if offset < COMMON_LEN:
            return self._common_read(offset, size)
        if ISR_OFF <= offset < ISR_OFF + ISR_LEN:
            if offset != ISR_OFF:
                return 0
            v = self.isr
            self.isr = 0  # reading acknowledges (section 4.1.4.5)
            self._update_intx()
            return v
        if DEVICE_OFF <= offset < DEVICE_OFF + DEVICE_MAX:
            return self.dev.config_read(offset - DEVICE_OFF, size)
        if self.msix is not None:
            if MSIX_TABLE_OFF <= offset < MSIX_TABLE_OFF + self.msix.table_size:
                return self.msix.table_read(offset - MSIX_TABLE_OFF, size)
            if MSIX_PBA_OFF <= offset < MSIX_PBA_OFF + self.msix.pba_size:
                return self.msix.pba_read(offset - MSIX_PBA_OFF, size)
        return 0

    def bar_write(self, offset: int, size: int, value: int) -> None:
        if offset < COMMON_LEN:
            self._common_write(offset, size, value)
        elif NOTIFY_OFF <= offset < NOTIFY_OFF + NOTIFY_MULT * len(self.queues):
            i = (offset - NOTIFY_OFF) // NOTIFY_MULT
            if self.inline:
                q = self.queues[i]
                self.run(self._process, q)  # lock order host.lock -> dev_lock, as everywhere
            else:
                os.eventfd_write(self.kick_fds[i], 1)
        elif DEVICE_OFF <= offset < DEVICE_OFF + DEVICE_MAX:
            self.dev.config_write(offset - DEVICE_OFF, size, value)
        elif self.msix is not None and MSIX_TABLE_OFF <= offset < MSIX_TABLE_OFF + self.msix.table_size:
            self.msix.table_write(offset - MSIX_TABLE_OFF, size, value)

    # -- status and reset ---------------------------------------------------------------------
    def reset(self) -> None:
        with self.dev_lock:
            for q in self.queues:
                q.release()
                q.reset()
            self._touched.clear()
            self._config_irq = False
            self.dev.reset()
            self._reset_state()
            for fd in self.kick_fds:
                drain_eventfd(fd)
        self._update_intx()

    def _enable_queue(self, q: SplitQueue) -> None:
        with self.dev_lock:
            try:
                q.enable()
            except QueueError as e:
                self._fail(str(e))
        if self._config_irq:
            self._config_irq = False
            self._signal_config()

    def _fail(self, why: str) -> None:
        """Guest error: DEVICE_NEEDS_RESET, one log line, no more work until reset (dev_lock held)."""
        if self.broken:
            return
        self.broken = True
        self.broken_reason = why
        log.warning("%s: %s; device needs reset", self.name, why)
        self.dev.stop()
        self.status |= S_NEEDS_RESET
        self.config_generation += 1
        self._config_irq = True

    # -- work (worker thread) --------------------------------------------------------------------
    def _kick_handler(self, q: SplitQueue, fd: int) -> Callable[[], None]:
        kick_in_c = self.dev.kick_in_c
        if kick_in_c is not None and not q.polled:

            def kicked_in_c() -> None:
                self._kicked_in_c(q, fd, kick_in_c)

            return kicked_in_c

        def kicked() -> None:
            drain_eventfd(fd)
            if not q.polled:
                self.run(self._process, q)
                return
            before = q.last_avail
            self.run(self._process, q)
            self._poll(q, q.last_avail != before)

        return kicked

    def _kicked_in_c(
        self, q: SplitQueue, fd: int, kick_in_c: Callable[[SplitQueue, int], tuple[int, int, bool]]
    ) -> None:
        """A kick the device serves in C (blk, virtio/fastpath.py): one call for the batch and the interrupt decision.

        The least Python per request: in the nested rig every line of it costs
        tens of microseconds. What C leaves goes the usual way: a chain it
        hands back to the Python device, a full budget to a later round.
        """
        with self.dev_lock:
            if self.broken or not (q.ready and self.status & S_DRIVER_OK):
                drain_eventfd(fd)
                return
            try:
                served, stop, interrupt = kick_in_c(q, fd)
            except Exception as e:  # noqa: BLE001 - a device bug: stop the device, keep the VMM
                log.debug("%s: internal error", self.name, exc_info=True)
                self._fail(f"internal error: {e!r}")
                served, stop, interrupt = 0, fastpath.STOP_EMPTY, False
            if served and stop == fastpath.STOP_PYTHON:
                self._touched.add(q)  # the batch goes on in Python, which signals once for all of it
            config = self._config_irq
            self._config_irq = False
        if interrupt:
            self._signal_queue(q)
        if config:
            self._signal_config()
        if stop == fastpath.STOP_PYTHON:
            self.run(self._process, q)
        elif stop == fastpath.STOP_BUDGET:
            self.rekick(q)

    def _poll(self, q: SplitQueue, served: bool) -> None:
        """After a batch, watch the ring instead of sleeping while the driver keeps up (worker thread).

        On a polled ring process() leaves notifications off, so the driver's
        next request costs no kick and no wake-up of this thread; the
        interrupt for the batch already went out. The window adapts: it grows
        (up to poll_max) to twice the wait when a request came within it, and
        halves when none did. Giving up re-arms notifications and re-checks
        the ring, as the end of a batch does without polling. A kick that
        found nothing to serve re-arms at once.
        """
        mono = time.monotonic
        yield_cpu = os.sched_yield
        for _ in range(POLL_ROUNDS):
            if served:
                t0 = mono()
                deadline = t0 + self.poll_window
                while not q.peek():
                    if mono() >= deadline:
                        self.poll_window = max(self.poll_window / 2, self.poll_max / 64)
                        break
                    yield_cpu()  # lets the GIL and this CPU go to anyone who wants them
                else:
                    self.poll_window = min(self.poll_max, max(self.poll_window, 2 * (mono() - t0)))
                    if self.broken:
                        return
                    self.run(self._process, q)
                    continue
            with self.dev_lock:
                more = q.ready and not self.broken and q.rearm()
            if not more:
                return
            self.run(self._process, q)
            served = True
        # Served POLL_ROUNDS batches in a row: back to the event loop (other queues, stop) with a
        # kick pending, so this ring is served again right after.
        with self.dev_lock:
            q.rearm()
        self.rekick(q)

    def _process(self, q: SplitQueue) -> None:
        if q.ready and self.status & S_DRIVER_OK:
            self.dev.process(q)

    def run(self, fn: Callable[..., None], *args: Any) -> None:
        """Run fn(*args), device work, under dev_lock; raise the interrupts it earned after dropping it."""
        with self.dev_lock:
            if self.broken:
                return
            try:
                fn(*args)
            except (QueueError, GuestError) as e:
                self._fail(str(e))
            except Exception as e:  # noqa: BLE001 - a device bug: stop the device, keep the VMM
                log.debug("%s: internal error", self.name, exc_info=True)
                self._fail(f"internal error: {e!r}")
            signal = [q for q in self._touched if q.need_interrupt()]
            self._touched.clear()
            config = self._config_irq
            self._config_irq = False
        for q in signal:
            self._signal_queue(q)
        if config:
            self._signal_config()

    def queue_used(self, q: SplitQueue) -> None:
        self._touched.add(q)

    def rekick(self, q: SplitQueue) -> None:
        """More work than one batch: come back to it after other events."""
        os.eventfd_write(self.kick_fds[q.index], 1)

    def config_changed(self) -> None:
        """The device changed its configuration space (worker thread, dev_lock held)."""
        self.config_generation += 1
        self._config_irq = True

    # -- interrupts -------------------------------------------------------------------------------
    def _msix_on(self) -> bool:
        return self.msix is not None and self.msix.enabled

    def _signal_queue(self, q: SplitQueue) -> None:
        with self.lock:
            if self._msix_on():
                assert self.msix is not None
                if q.msix_vector != NO_VECTOR:
                    self.msix.notify(q.msix_vector)
                return
            self.isr |= ISR_QUEUE
            self._update_intx()

    def _signal_config(self) -> None:
        with self.lock:
            if self._msix_on():
                assert self.msix is not None
                if self.msix_config != NO_VECTOR:
                    self.msix.notify(self.msix_config)
                return
            self.isr |= ISR_CONFIG
            self._update_intx()

    def _update_intx(self) -> None:
        if self.intx is None:
            return
        cmd = super().config_read(COMMAND, 2)
        self.intx.set(bool(self.isr) and not cmd & COMMAND_INTX_DISABLE and not self._msix_on())

    def describe(self) -> list[str]:
        """The transport's, the device's and each queue's state, one line each (--stats)."""
        intx = "none" if self.intx is None else str(self.intx.level)
        head = f"{self.name}: status {self.status:#x} isr {self.isr} intx {intx} msix {self._msix_on()}"
        if self.broken:
            head += f" broken ({self.broken_reason})"
        extra = self.dev.describe()
        return [head + (f" | {extra}" if extra else ""), *("  " + q.describe() for q in self.queues)]

    # -- life cycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.worker.start()

    def close(self) -> None:
        self.worker.stop()
        with self.dev_lock:
            self.dev.close()
            for q in self.queues:
                q.release()
        if self.host.ioeventfd is not None:
            for i, addr in list(self._ioeventfds.items()):
                self._ioeventfd(i, addr, False)
        for fd in self.kick_fds:
            os.close(fd)
        self.kick_fds = []
