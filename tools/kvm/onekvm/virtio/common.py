"""The common configuration window of virtio-pci (struct virtio_pci_common_cfg, section 4.1.4.3).

Registers are decoded field by field, so any access width or alignment the
guest tries lands on the right bits; ring addresses and sizes only change
while their queue is disabled, features only before FEATURES_OK.
Mixed into VirtioPciDevice (vCPU thread, host.lock held).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from onekvm.virtio.device import F_EVENT_IDX, F_INDIRECT_DESC, F_VERSION_1, VirtioDevice
from onekvm.virtio.queue import NO_VECTOR, SplitQueue

if TYPE_CHECKING:
    from onekvm.virtio.msix import Msix

# Device status bits (section 2.1).
S_ACKNOWLEDGE = 1
S_DRIVER = 2
S_DRIVER_OK = 4
S_FEATURES_OK = 8
S_NEEDS_RESET = 64
S_FAILED = 128

# struct virtio_pci_common_cfg: (offset, size, field)
COMMON_FIELDS = (
    (0x00, 4, "device_feature_select"),
    (0x04, 4, "device_feature"),
    (0x08, 4, "driver_feature_select"),
    (0x0C, 4, "driver_feature"),
    (0x10, 2, "msix_config"),
    (0x12, 2, "num_queues"),
    (0x14, 1, "device_status"),
    (0x15, 1, "config_generation"),
    (0x16, 2, "queue_select"),
    (0x18, 2, "queue_size"),
    (0x1A, 2, "queue_msix_vector"),
    (0x1C, 2, "queue_enable"),
    (0x1E, 2, "queue_notify_off"),
    (0x20, 8, "queue_desc"),
    (0x28, 8, "queue_driver"),
    (0x30, 8, "queue_device"),
)


class CommonCfg:
    # State the transport (VirtioPciDevice) owns.
    queues: list[SplitQueue]
    kick_fds: list[int]
    offered: int
    msix: Msix | None
    dev: VirtioDevice
    dev_lock: threading.Lock
    device_feature_select: int
    driver_feature_select: int
    driver_features: int
    status: int
    queue_select: int
    msix_config: int
    config_generation: int

    def reset(self) -> None: ...  # the transport's
    def _enable_queue(self, q: SplitQueue) -> None: ...  # the transport's

    def _queue(self) -> SplitQueue | None:
        return self.queues[self.queue_select] if self.queue_select < len(self.queues) else None

    def _get(self, name: str) -> int:
        q = self._queue()
        if name == "device_feature":
            sel = self.device_feature_select
            return (self.offered >> (32 * sel)) & 0xFFFFFFFF if sel < 2 else 0
        if name == "driver_feature":
            sel = self.driver_feature_select
            return (self.driver_features >> (32 * sel)) & 0xFFFFFFFF if sel < 2 else 0
        if name == "num_queues":
            return len(self.queues)
        if name == "device_status":
            return self.status
        if name == "config_generation":
            return self.config_generation & 0xFF
        if name.startswith("queue_") and name != "queue_select":
            if q is None:
                return 0
            return {
                "queue_size": q.size,
                "queue_msix_vector": q.msix_vector,
                "queue_enable": int(q.enabled),
                "queue_notify_off": q.index,
                "queue_desc": q.desc_addr,
                "queue_driver": q.avail_addr,
                "queue_device": q.used_addr,
            }[name]
        return int(getattr(self, name))

    def _set(self, name: str, v: int) -> None:
        q = self._queue()
        if name in ("device_feature_select", "driver_feature_select", "queue_select"):
            setattr(self, name, v)
        elif name == "driver_feature":
            sel = self.driver_feature_select
            if sel < 2 and not self.status & S_FEATURES_OK:
                mask = 0xFFFFFFFF << (32 * sel)
                self.driver_features = (self.driver_features & ~mask) | (v << (32 * sel))
        elif name == "msix_config":
            self.msix_config = self._vector(v)
        elif name == "device_status":
            self._set_status(v)
        elif q is not None and name == "queue_enable":
            if v == 1 and not q.enabled:
                self._enable_queue(q)
        elif q is not None and not q.enabled:
            # Ring addresses and size are only writable while the queue is off.
            if name == "queue_size":
                q.size = v
            elif name == "queue_desc":
                q.desc_addr = v
            elif name == "queue_driver":
                q.avail_addr = v
            elif name == "queue_device":
                q.used_addr = v
        if q is not None and name == "queue_msix_vector":
            q.msix_vector = self._vector(v)

    def _vector(self, v: int) -> int:
        # An unsupported vector reads back as NO_VECTOR: that is how the driver learns.
        return v if self.msix is not None and v < self.msix.nvec else NO_VECTOR

    def _common_read(self, offset: int, size: int) -> int:
        out = 0
        for off, fsize, name in COMMON_FIELDS:
            lo, hi = max(offset, off), min(offset + size, off + fsize)
            if lo < hi:
                part = (self._get(name) >> (8 * (lo - off))) & ((1 << (8 * (hi - lo))) - 1)
                out |= part << (8 * (lo - offset))
        return out

    def _common_write(self, offset: int, size: int, value: int) -> None:
        for off, fsize, name in COMMON_FIELDS:
            lo, hi = max(offset, off), min(offset + size, off + fsize)
            if lo < hi:
                mask = ((1 << (8 * (hi - lo))) - 1) << (8 * (lo - off))
                part = ((value >> (8 * (lo - offset))) << (8 * (lo - off))) & mask
                self._set(name, (self._get(name) & ~mask) | part)

    def _set_status(self, v: int) -> None:
        if v == 0:
            self.reset()
            return
        old = self.status
        if v & S_FEATURES_OK and not old & S_FEATURES_OK and not self._accept_features():
            v &= ~S_FEATURES_OK  # the driver reads it back and gives up
        self.status = (v & ~S_NEEDS_RESET) | (old & S_NEEDS_RESET)
        if v & S_DRIVER_OK and not old & S_DRIVER_OK:
            with self.dev_lock:
                self.dev.activate(self.driver_features)
            for fd in self.kick_fds:  # kicks that came before DRIVER_OK
                os.eventfd_write(fd, 1)

    def _accept_features(self) -> bool:
        f = self.driver_features
        if f & ~self.offered or not f & F_VERSION_1:
            return False
        for q in self.queues:
            q.event_idx = bool(f & F_EVENT_IDX)
            q.indirect = bool(f & F_INDIRECT_DESC)
        return True
