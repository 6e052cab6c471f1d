"""virtio-net over a tap device (`-n mode=tap,tapif=NAME`), virtio 1.x section 5.1.

The tap is opened with IFF_VNET_HDR and a 12-byte header, which is exactly
the guest's struct virtio_net_hdr_v1: frames move between the tap and guest
memory with readv/writev on views of guest RAM, header included, no copy.
No offloads are offered, so the header is all zeros but num_buffers.
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import struct
from dataclasses import dataclass

from onekvm.errors import UserError
from onekvm.virtio.device import ID_NET, VirtioDevice, log, register
from onekvm.virtio.queue import Chain, QueueError, SplitQueue

F_MAC = 1 << 5
HDR_LEN = 12  # struct virtio_net_hdr_v1 (num_buffers included with VERSION_1)
RX, TX = 0, 1

# <linux/if_tun.h>: not KVM ioctls, so not in the generated ABI.
TUNSETIFF = 0x400454CA
TUNSETVNETHDRSZ = 0x400454D8
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFNAMSIZ = 16


@dataclass
class NetSpec:
    tapif: str = ""
    mac: bytes = b""
    fd: int | None = None  # an already open tap-like fd (tests)


def parse_mac(text: str) -> bytes:
    parts = text.split(":")
    try:
        mac = bytes(int(p, 16) for p in parts)
    except ValueError:
        mac = b""
    if len(parts) != 6 or len(mac) != 6 or any(len(p) != 2 for p in parts):
        raise UserError(f"bad MAC address {text!r} (xx:xx:xx:xx:xx:xx)")
    if mac[0] & 1:
        raise UserError(f"MAC address {text} is a multicast address")
    return mac


def open_tap(name: str) -> tuple[int, str]:
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise UserError(f"-n: cannot open /dev/net/tun: {e.strerror}") from None
    try:
        ifr = struct.pack(f"{IFNAMSIZ}sH22x", name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
        ifr = fcntl.ioctl(fd, TUNSETIFF, ifr)
        fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", HDR_LEN))
    except OSError as e:
        os.close(fd)
        hint = " (needs CAP_NET_ADMIN, or a tap owned by this user)" if e.errno == errno.EPERM else ""
        raise UserError(f"-n: cannot attach to tap {name or '(new)'}: {e.strerror}{hint}") from None
    return fd, ifr[:IFNAMSIZ].rstrip(b"\0").decode()


@register("net")
class Net(VirtioDevice):
    device_id = ID_NET
    pci_class = 0x020000  # ethernet controller
    queue_sizes = (256, 256)
    inline_ok = False  # receive work follows the tap's readiness, in the worker

    @classmethod
    def parse(cls, text: str) -> NetSpec:
        spec = NetSpec()
        mode = "tap"
        for item in text.split(","):
            key, sep, value = item.partition("=")
            if not sep:
                raise UserError(f"-n {text}: expected key=value, got {item!r}")
            if key == "mode":
                mode = value
            elif key == "tapif":
                if len(value.encode()) >= IFNAMSIZ or "/" in value:
                    raise UserError(f"-n: bad interface name {value!r}")
                spec.tapif = value
            elif key in ("guest_mac", "mac"):
                spec.mac = parse_mac(value)
            else:
                raise UserError(f"-n {text}: unknown option {key!r} (mode=tap,tapif=NAME[,guest_mac=MAC])")
        if mode != "tap":
            raise UserError(f"-n: mode {mode!r} is not supported (mode=tap)")
        return spec

    def __init__(self, spec: NetSpec, name: str = "net") -> None:
        super().__init__(spec, name)
        if spec.fd is not None:
            self.fd, self.ifname = spec.fd, spec.tapif
        else:
            self.fd, self.ifname = open_tap(spec.tapif)
        # Locally administered, unicast: 52:54:00 as QEMU, the rest random.
        mac = spec.mac or bytes([0x52, 0x54, 0x00]) + random.randbytes(3)
        self.mac = mac
        self.features = F_MAC
        self.config = bytearray(mac + b"\0\0")
        self._active = False
        self._polling = False
        self._held: Chain | None = None  # popped, then the tap had nothing after all
        self.dropped_tx = 0

    def describe(self) -> str:
        held = "none" if self._held is None else str(self._held.head)
        return f"tap {self.ifname} polled {self._polling} held {held} dropped_tx {self.dropped_tx}"

    # -- receive: tap -> guest -----------------------------------------------------------------------
    def _poll(self, on: bool) -> None:
        """Watch the tap only while the guest has receive buffers (else it is a busy loop)."""
        assert self.transport is not None
        if on and not self._polling:
            t = self.transport
            t.worker.add(self.fd, lambda: t.run(self._receive))
        elif not on and self._polling:
            self.transport.worker.remove(self.fd)
        self._polling = on

    def activate(self, features: int) -> None:
        self._active = True
        self._poll(True)

    def reset(self) -> None:
        self._active = False
        self._held = None
        self._poll(False)

    def stop(self) -> None:
        self.reset()

    def _receive(self) -> None:
        q = self.queues[RX]
        if not self._active or not q.ready:
            self._poll(False)
            return
        for _ in range(q.size):  # one batch, then let other events in
            chain = self._held or q.pop()
            self._held = None
            if chain is None:
                if q.arm_notify():
                    continue
                self._poll(False)  # resumed by the driver's kick on the receive queue
                return
            if chain.writable_len < HDR_LEN:
                raise QueueError(f"receive buffer of {chain.writable_len} bytes cannot hold the header")
            try:
                n = os.readv(self.fd, chain.writable_views())
            except BlockingIOError:
                self._held = chain
                return
            except OSError as e:
                # Not EAGAIN: the tap is unusable for now; wait for the driver's next kick.
                log.debug("%s: tap read: %s", self.name, e)
                self._held = chain
                self._poll(False)
                return
            if n < HDR_LEN:  # nothing but a header: not a frame
                self._held = chain
                continue
            chain.write(struct.pack("<H", 1), 10)  # num_buffers: the tap leaves it alone
            self.used(q, chain.head, n)

    # -- transmit: guest -> tap ----------------------------------------------------------------------
    def process(self, queue: SplitQueue) -> None:
        if queue.index == RX:
            if self._active:
                self._poll(True)  # new receive buffers
            return
        super().process(queue)

    def handle(self, queue: SplitQueue, chain: Chain) -> int | None:
        if chain.readable_len < HDR_LEN:
            raise QueueError(f"transmit buffer of {chain.readable_len} bytes has no header")
        try:
            os.writev(self.fd, chain.readable_views())
        except OSError as e:
            # A full or downed tap drops the frame, as a cable would.
            self.dropped_tx += 1
            log.debug("%s: tap write: %s", self.name, e)
        return 0

    def close(self) -> None:
        if self.fd >= 0:
            if self.transport is not None:
                self.transport.worker.remove(self.fd)
            os.close(self.fd)
            self.fd = -1
