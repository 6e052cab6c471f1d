"""What every virtio device implements, and the registry the device files fill.

A device owns its state, its backend and its errors; the transport
(virtio/pci.py) owns the queues, feature negotiation and interrupts and
calls the device only from the device's own worker thread (process,
handle_fd) or with the transport lock held (config, activate, reset).
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any, Callable, ClassVar

if TYPE_CHECKING:
    from onekvm.virtio.pci import VirtioPciDevice
    from onekvm.virtio.queue import Chain, SplitQueue

log = logging.getLogger("onekvm.virtio")

# Feature bits of the transport (section 6).
F_INDIRECT_DESC = 1 << 28
F_EVENT_IDX = 1 << 29
F_VERSION_1 = 1 << 32
TRANSPORT_FEATURES = F_INDIRECT_DESC | F_EVENT_IDX | F_VERSION_1

# Device types (section 5).
ID_NET = 1
ID_BLOCK = 2
ID_CONSOLE = 3
ID_RNG = 4
ID_9P = 9


class VirtioDevice:
    """Base class: override what the device type needs."""

    device_id: ClassVar[int] = 0
    pci_class: ClassVar[int] = 0xFF0000  # "unassigned class"; drivers match on the device ID
    queue_sizes: ClassVar[tuple[int, ...]] = (256,)
    # May a queue kick be served on the vCPU thread (Host.inline_kicks)? Not for devices whose
    # queue work waits on a backend that the worker polls.
    inline_ok: ClassVar[bool] = True
    # May the worker poll the device's rings after a batch (Host.poll_us)? Only where process()
    # serves everything the ring holds, so that the poller's "more work" is always real work.
    poll_ok: ClassVar[bool] = False

    @classmethod
    def parse(cls, text: str) -> Any:
        """The command-line spec (e.g. "disk.img,ro") as this device's options; UserError if bad."""
        return text

    def __init__(self, spec: Any, name: str) -> None:
        self.spec = spec
        self.name = name
        self.features = 0  # device-specific bits offered (the transport adds its own)
        self.config = bytearray()  # the device-specific configuration space
        self.transport: VirtioPciDevice | None = None
        # A whole queue kick served in one call, (queue, kick fd) -> (chains served, fastpath.STOP_*,
        # interrupt wanted), for the worker's kicks on unpolled queues (pci.py); None: process() as usual.
        self.kick_in_c: Callable[[SplitQueue, int], tuple[int, int, bool]] | None = None

    # -- configuration space (vCPU thread, transport lock held) -----------------------
    def config_read(self, offset: int, size: int) -> int:
        if offset + size > len(self.config):
            return 0
        return int.from_bytes(self.config[offset : offset + size], "little")

    def config_write(self, offset: int, size: int, value: int) -> None:
        """Most device configuration is read-only."""

    # -- life cycle ------------------------------------------------------------------
    def activate(self, features: int) -> None:
        """DRIVER_OK: the driver accepted `features` and its queues are set up."""

    def reset(self) -> None:
        """The driver reset the device: forget everything guest-visible."""

    def stop(self) -> None:
        """The device broke (NEEDS_RESET) and serves nothing until reset: stop polling backends."""

    def close(self) -> None:
        """The VMM is ending: release the backend."""

    def describe(self) -> str:
        """Backend state worth seeing when the device seems stuck; "" for none."""
        return ""

    # -- work (the device's worker thread) ---------------------------------------------
    def process(self, queue: SplitQueue) -> None:
        """The driver kicked `queue`: serve its chains, one queue-size batch at a time.

        A batch bound keeps a guest that refills forever from starving the
        device's other queues and the reset path (which waits for dev_lock).
        """
        budget = queue.size
        while True:
            budget -= self.serve(queue, budget)
            if not budget:
                assert self.transport is not None
                self.transport.rekick(queue)
                return
            if not queue.arm_notify():
                return

    def serve(self, queue: SplitQueue, budget: int) -> int:
        """Take up to budget chains off the ring and handle them; returns how many (fewer: ring empty)."""
        n = 0
        while n < budget:
            chain = queue.pop()
            if chain is None:
                break
            written = self.handle(queue, chain)
            if written is not None:
                self.used(queue, chain.head, written)
            n += 1
        return n

    def handle(self, queue: SplitQueue, chain: Chain) -> int | None:
        """One request: returns the bytes written into the chain, or None to return it later."""
        return 0

    # -- helpers -----------------------------------------------------------------------
    @property
    def queues(self) -> list[SplitQueue]:
        assert self.transport is not None
        return self.transport.queues

    def used(self, queue: SplitQueue, head: int, written: int) -> None:
        """Return a chain and raise the queue's interrupt if the driver wants one."""
        queue.push(head, written)
        assert self.transport is not None
        self.transport.queue_used(queue)


# kind ("blk", "9p", ...) -> device class; filled by each device module as it is imported.
REGISTRY: dict[str, type[VirtioDevice]] = {}
# Where each kind lives, so that only the kinds in use are imported.
MODULES = {"blk": "blk", "9p": "ninep", "rng": "rng", "console": "console", "net": "net"}


def device_class(kind: str) -> type[VirtioDevice]:
    if kind not in REGISTRY and kind in MODULES:
        importlib.import_module(f"onekvm.virtio.{MODULES[kind]}")
    try:
        return REGISTRY[kind]
    except KeyError:
        raise ValueError(f"no virtio device kind {kind!r}") from None


def register(kind: str) -> Callable[[type[VirtioDevice]], type[VirtioDevice]]:
    """Class decorator: the device file announces itself under `kind`."""

    def deco(cls: type[VirtioDevice]) -> type[VirtioDevice]:
        if kind in REGISTRY:
            raise ValueError(f"virtio device kind {kind!r} registered twice")
        REGISTRY[kind] = cls
        return cls

    return deco
