"""virtio-rng (entropy device, virtio 1.x section 5.4): the host's os.urandom."""

from __future__ import annotations

import os

from onekvm.virtio.device import ID_RNG, VirtioDevice, register
from onekvm.virtio.queue import Chain, QueueError, SplitQueue

# Linux asks for up to a page or so at a time; a bound keeps one request cheap.
MAX_PER_REQUEST = 64 * 1024


@register("rng")
class Rng(VirtioDevice):
    device_id = ID_RNG
    queue_sizes = (64,)

    @classmethod
    def parse(cls, text: str) -> None:
        return None

    def __init__(self, spec: None = None, name: str = "rng") -> None:
        super().__init__(spec, name)

    def handle(self, queue: SplitQueue, chain: Chain) -> int | None:
        if chain.readable or not chain.writable:
            # Section 5.4.6.1: requests are device-writable buffers and nothing else.
            raise QueueError(f"entropy request of {chain.readable_len}+{chain.writable_len} bytes is not write-only")
        return chain.write(os.urandom(min(chain.writable_len, MAX_PER_REQUEST)))
