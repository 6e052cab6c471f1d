"""virtio-console as the guest's hvc0 (`--console virtio`), virtio 1.x section 5.3.

One port, no multiport: queue 0 carries host input to the guest, queue 1
guest output to the host console. Input arrives on the VMM's main thread
(receive), waits in a bounded buffer, and the worker hands it to the
guest whenever the driver has posted receive buffers.
"""

from __future__ import annotations

import os
import threading
from typing import Callable

from onekvm.virtio.device import ID_CONSOLE, VirtioDevice, register
from onekvm.virtio.queue import Chain, QueueError, SplitQueue
from onekvm.virtio.worker import drain_eventfd, new_eventfd

RX, TX = 0, 1
INPUT_BUFFER = 64 * 1024


@register("console")
class VirtioConsole(VirtioDevice):
    device_id = ID_CONSOLE
    pci_class = 0x078000  # simple communication controller, other
    queue_sizes = (64, 64)

    @classmethod
    def parse(cls, text: str) -> None:
        return None

    def __init__(self, spec: None = None, name: str = "console", output: Callable[[bytes], None] | None = None) -> None:
        super().__init__(spec, name)
        self.config = bytearray(12)  # cols, rows, max_nr_ports, emerg_wr: no features use them
        self.output = output
        self._in = bytearray()
        self._in_lock = threading.Lock()
        self._input_fd = new_eventfd()
        self._watched = False

    def _watch(self) -> None:
        if not self._watched and self.transport is not None:
            t = self.transport
            t.worker.add(self._input_fd, lambda: (drain_eventfd(self._input_fd), t.run(self._deliver)))
            self._watched = True

    def activate(self, features: int) -> None:
        self._watch()
        os.eventfd_write(self._input_fd, 1)  # input typed before the driver was up

    # -- host side (VMM main thread) ----------------------------------------------------------------
    def receive(self, data: bytes) -> int:
        """Take keyboard input; returns how much fit (the rest is offered again later)."""
        with self._in_lock:
            n = min(len(data), INPUT_BUFFER - len(self._in))
            self._in += data[:n]
        if n:
            os.eventfd_write(self._input_fd, 1)
        return n

    # -- guest side (worker) ---------------------------------------------------------------------------
    def process(self, queue: SplitQueue) -> None:
        if queue.index == RX:
            self._deliver()
        else:
            super().process(queue)

    def _deliver(self) -> None:
        q = self.queues[RX]
        while q.ready:
            with self._in_lock:
                if not self._in:
                    return
            chain = q.pop()
            if chain is None:
                if q.arm_notify():
                    continue  # a buffer arrived while arming
                return  # the driver kicks when it posts receive buffers
            if chain.readable or not chain.writable:
                raise QueueError(f"receive buffer of {chain.readable_len}+{chain.writable_len} bytes is not write-only")
            with self._in_lock:
                n = chain.write(self._in)
                del self._in[:n]
            self.used(q, chain.head, n)

    def handle(self, queue: SplitQueue, chain: Chain) -> int | None:
        if chain.writable:
            raise QueueError(f"transmit buffer has {chain.writable_len} device-writable bytes")
        data = chain.read()
        out = self.output
        if out is None and self.transport is not None:
            out = self.transport.host.console_write
        if data and out is not None:
            out(data)
        return 0

    def reset(self) -> None:
        pass  # pending input stays for the next driver

    def close(self) -> None:
        if self._input_fd >= 0:
            if self.transport is not None:
                self.transport.worker.remove(self._input_fd)
            os.close(self._input_fd)
            self._input_fd = -1
