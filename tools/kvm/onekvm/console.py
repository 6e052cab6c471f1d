"""The host side of the guest console: stdin to the UART, UART to stdout.

With a terminal on stdin it goes raw for the guest's whole life (restored
on every way out, including signals and crashes) and Ctrl-A x quits, as in
QEMU. Without a terminal, or without stdin at all (CI), input is forwarded
if there is any and output still flows.
"""

from __future__ import annotations

import atexit
import errno
import os
import sys
import termios
import threading
import tty

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost in the rig
if TYPE_CHECKING:
    from typing import Callable


ESCAPE = 0x01  # Ctrl-A
FLUSH_AT = 4096


class Console:
    def __init__(self, in_fd: int | None = None, out_fd: int | None = None, interactive: bool | None = None) -> None:
        self.in_fd = _usable_fd(0 if in_fd is None else in_fd)
        self.out_fd = _usable_fd(1 if out_fd is None else out_fd)
        if interactive is None:
            interactive = self.in_fd is not None and os.isatty(self.in_fd)
        self.interactive = interactive
        self._saved: list | None = None
        self._escape = False
        self._buf = bytearray()
        self._lock = threading.Lock()
        self.eof = self.in_fd is None
        self.quit_requested = False

    # -- terminal mode -----------------------------------------------------
    def enter_raw(self) -> None:
        if not self.interactive or self.in_fd is None or self._saved is not None:
            return
        try:
            self._saved = termios.tcgetattr(self.in_fd)
        except termios.error:
            self.interactive = False
            return
        atexit.register(self.restore)
        tty.setraw(self.in_fd, termios.TCSANOW)
        # Keep output post-processing so host-side messages stay readable.
        attrs = termios.tcgetattr(self.in_fd)
        attrs[1] |= termios.OPOST | termios.ONLCR
        termios.tcsetattr(self.in_fd, termios.TCSANOW, attrs)

    def restore(self) -> None:
        saved, self._saved = self._saved, None
        if saved is not None and self.in_fd is not None:
            try:
                termios.tcsetattr(self.in_fd, termios.TCSAFLUSH, saved)
            except termios.error:
                pass

    # -- output --------------------------------------------------------------
    def putc(self, byte: int) -> None:
        """Called by the UART for each byte; written out per line or when full."""
        with self._lock:
            self._buf.append(byte)
            if byte == 10 or len(self._buf) >= FLUSH_AT:
                self._flush_locked()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._buf += data
            if b"\n" in data or len(self._buf) >= FLUSH_AT:
                self._flush_locked()

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._buf:
            return
        data, self._buf = bytes(self._buf), bytearray()
        if self.out_fd is None:
            return
        while data:
            try:
                n = os.write(self.out_fd, data)
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno in (errno.EPIPE, errno.EIO, errno.EBADF):
                    self.out_fd = None  # reader went away: drop output, keep the guest
                    return
                raise
            data = data[n:]

    def message(self, text: str) -> None:
        """A host-side line (on stderr), not mixed into a half-written guest line."""
        self.flush()
        sys.stderr.write(("\r\n" if self._saved is not None else "\n") + text.rstrip("\n") + "\n")
        sys.stderr.flush()

    # -- input ---------------------------------------------------------------
    def read_input(self, deliver: Callable[[bytes], None]) -> None:
        """Read what stdin has (call when readable) and hand it to deliver."""
        if self.in_fd is None or self.eof:
            return
        try:
            data = os.read(self.in_fd, 1024)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.eof = True  # no more input: the guest keeps running
            return
        if self.interactive:
            data = self._filter_escape(data)
        if data:
            deliver(data)

    def _filter_escape(self, data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            if self._escape:
                self._escape = False
                if b in (ord("x"), ord("X")):
                    self.quit_requested = True
                    break
                if b == ESCAPE:
                    out.append(ESCAPE)  # Ctrl-A Ctrl-A sends one Ctrl-A
                    continue
                if b in (ord("h"), ord("?")):
                    self.message("onekvm console: Ctrl-A x quit, Ctrl-A Ctrl-A send Ctrl-A")
                    continue
                out += bytes([ESCAPE, b])
            elif b == ESCAPE:
                self._escape = True
            else:
                out.append(b)
        return bytes(out)


def _usable_fd(fd: int) -> int | None:
    """None when fd is closed (a CI runner may start us with no stdin)."""
    try:
        os.fstat(fd)
    except OSError:
        return None
    return fd
