"""One event-loop thread per device: queue kicks and backend fds, off the vCPU threads.

With KVM_IOEVENTFD the hypervisor itself signals a queue's kick eventfd
and the vCPU never leaves the guest; without it, the notify register's
MMIO handler writes the same eventfd. Either way the work happens here.
"""

from __future__ import annotations

import logging
import os
import select
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
    """epoll on the device's fds, callbacks on one thread.

    select.epoll directly rather than selectors: the loop runs once per
    queue kick, and in the nested rig every Python call on it costs tens of
    microseconds.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._ep = select.epoll()
        self._stop = new_eventfd()
        self._callbacks: dict[int, Callable[[], None]] = {}
        self._ep.register(self._stop, select.EPOLLIN)
        self._thread: threading.Thread | None = None

    def add(self, fd: int, callback: Callable[[], None]) -> None:
        if fd in self._callbacks or fd == self._stop:
            raise KeyError(f"{self.name}: fd {fd} is already watched")
        self._ep.register(fd, select.EPOLLIN)
        self._callbacks[fd] = callback

    def remove(self, fd: int) -> None:
        if self._callbacks.pop(fd, None) is None:
            return
        try:
            self._ep.unregister(fd)
        except (ValueError, OSError):
            pass  # the loop already stopped (epoll closed), or the fd was closed first

    def watching(self, fd: int) -> bool:
        return fd in self._callbacks

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=f"virtio-{self.name}", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        poll = self._ep.poll
        callbacks = self._callbacks
        stop = self._stop
        while True:
            for fd, _ in poll():
                cb = callbacks.get(fd)
                if cb is None:
                    if fd == stop:
                        return
                    continue  # removed by an earlier callback of this round
                try:
                    cb()
                except Exception:  # noqa: BLE001 - a device bug must not kill the loop silently
                    log.exception("%s: device error", self.name)

    def stop(self) -> None:
        if self._thread is not None:
            os.eventfd_write(self._stop, 1)
            self._thread.join(5)
            self._thread = None
        self._callbacks.clear()
        self._ep.close()
        os.close(self._stop)

    def run_once(self, timeout: float = 0) -> int:
        """Tests: dispatch ready events on the caller's thread; returns how many."""
        n = 0
        for fd, _ in self._ep.poll(timeout):
            cb = self._callbacks.get(fd)
            if cb is not None:
                cb()
                n += 1
        return n
