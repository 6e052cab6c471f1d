"""One event-loop thread per device: queue kicks and backend fds, off the vCPU threads.

With KVM_IOEVENTFD the hypervisor itself signals a queue's kick eventfd
and the vCPU never leaves the guest; without it, the notify register's
MMIO handler writes the same eventfd. Either way the work happens here.
"""

from __future__ import annotations

import logging
import os
import selectors
import threading
from typing import Callable

log = logging.getLogger("onekvm.virtio")


def new_eventfd() -> int:
    return os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)


def drain_eventfd(fd: int) -> None:
    try:
        os.eventfd_read(fd)
    except BlockingIOError:
        pass


class Worker:
    def __init__(self, name: str) -> None:
        self.name = name
        self._sel = selectors.DefaultSelector()
        self._stop = new_eventfd()
        self._sel.register(self._stop, selectors.EVENT_READ, None)
        self._thread: threading.Thread | None = None

    def add(self, fd: int, callback: Callable[[], None]) -> None:
        self._sel.register(fd, selectors.EVENT_READ, callback)

    def remove(self, fd: int) -> None:
        try:
            self._sel.unregister(fd)
        except (KeyError, ValueError, RuntimeError, OSError):
            pass  # not watched, or the loop already stopped

    def watching(self, fd: int) -> bool:
        try:
            self._sel.get_key(fd)
        except KeyError:
            return False
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=f"virtio-{self.name}", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        while True:
            for key, _ in self._sel.select():
                if key.data is None:
                    return
                try:
                    key.data()
                except Exception:  # noqa: BLE001 - a device bug must not kill the loop silently
                    log.exception("%s: device error", self.name)

    def stop(self) -> None:
        if self._thread is not None:
            os.eventfd_write(self._stop, 1)
            self._thread.join(5)
            self._thread = None
        self._sel.close()
        os.close(self._stop)

    def run_once(self, timeout: float = 0) -> int:
        """Tests: dispatch ready events on the caller's thread; returns how many."""
        n = 0
        for key, _ in self._sel.select(timeout):
            if key.data is not None:
                key.data()
                n += 1
        return n
