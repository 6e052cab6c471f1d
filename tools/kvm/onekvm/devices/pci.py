"""PCI: configuration mechanism #1 at 0xCF8/0xCFC, a host bridge, and a base for devices."""

from __future__ import annotations

import struct

from onekvm.record import record

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost in the rig

if TYPE_CHECKING:
    from onekvm.bus import BusDevice, IoBus, MmioBus


CONFIG_ADDRESS = 0xCF8
CONFIG_DATA = 0xCFC

VENDOR_ID = 0x00
DEVICE_ID = 0x02
COMMAND = 0x04
STATUS = 0x06
REVISION = 0x08
CLASS_PROG = 0x09
HEADER_TYPE = 0x0E
BAR0 = 0x10
SUBSYS_VENDOR = 0x2C
SUBSYS_ID = 0x2E
CAP_PTR = 0x34
INTERRUPT_LINE = 0x3C
INTERRUPT_PIN = 0x3D

COMMAND_IO = 0x1
COMMAND_MEMORY = 0x2
COMMAND_MASTER = 0x4
COMMAND_INTX_DISABLE = 0x400
STATUS_CAP_LIST = 0x10

BAR_IO = 0x1
BAR_MEM64 = 0x4

# Red Hat's vendor ID is the one virtual hardware uses (virtio devices too).
VENDOR_REDHAT = 0x1B36
DEVICE_HOST_BRIDGE = 0x0008
CLASS_HOST_BRIDGE = 0x060000


@record
class Bar:
    size: int  # a power of two
    io: bool
    dev: BusDevice
    mem64: bool = False
    addr: int = 0
    mapped: bool = False


class PciDevice:
    """Type-0 configuration header with BAR sizing and decode enables."""

    def __init__(self, vendor: int, device: int, class_code: int, revision: int = 0, name: str = "pci") -> None:
        self.name = name
        self.config = bytearray(256)
        self.wmask = bytearray(256)
        self.bars: dict[int, Bar] = {}
        self.io_bus: IoBus | None = None
        self.mmio_bus: MmioBus | None = None
        struct.pack_into("<HH", self.config, VENDOR_ID, vendor, device)
        self.config[REVISION] = revision
        self.config[CLASS_PROG : CLASS_PROG + 3] = class_code.to_bytes(3, "little")
        struct.pack_into("<H", self.wmask, COMMAND, COMMAND_IO | COMMAND_MEMORY | COMMAND_MASTER | COMMAND_INTX_DISABLE)
        self.wmask[INTERRUPT_LINE] = 0xFF
        self._next_cap = 0x40

    # -- configuration space --------------------------------------------
    def config_read(self, reg: int, size: int) -> int:
        return int.from_bytes(self.config[reg : reg + size], "little")

    def config_write(self, reg: int, size: int, value: int) -> None:
        old_cmd = self.config_read(COMMAND, 2)
        for i in range(size):
            r = reg + i
            byte = (value >> (8 * i)) & 0xFF
            m = self.wmask[r]
            self.config[r] = (self.config[r] & ~m) | (byte & m)
        if reg < BAR0 + 24 and reg + size > BAR0:
            self._bars_written()
        if reg <= COMMAND < reg + size or reg <= COMMAND + 1 < reg + size:
            if self.config_read(COMMAND, 2) != old_cmd:
                self._remap()
        self.config_written(reg, size, value)

    def config_written(self, reg: int, size: int, value: int) -> None:
        """Hook for capability registers (MSI-X etc.)."""

    def add_capability(self, cap_id: int, body: bytes, writable: bytes | None = None) -> int:
        """Append a capability; returns its offset in config space."""
        off = self._next_cap
        length = 2 + len(body)
        if off + length > 256:
            raise ValueError("config space full")
        self.config[off] = cap_id
        self.config[off + 1] = self.config[CAP_PTR]
        self.config[off + 2 : off + length] = body
        if writable:
            self.wmask[off + 2 : off + 2 + len(writable)] = writable
        self.config[CAP_PTR] = off
        struct.pack_into("<H", self.config, STATUS, self.config_read(STATUS, 2) | STATUS_CAP_LIST)
        self._next_cap = (off + length + 3) & ~3
        return off

    # -- BARs -------------------------------------------------------------
    def add_bar(self, index: int, size: int, dev: BusDevice, io: bool = False, mem64: bool = False) -> Bar:
        if size & (size - 1) or size < (4 if io else 16):
            raise ValueError("BAR size must be a power of two")
        bar = Bar(size, io, dev, mem64)
        self.bars[index] = bar
        reg = BAR0 + 4 * index
        flags = BAR_IO if io else (BAR_MEM64 if mem64 else 0)
        struct.pack_into("<I", self.config, reg, flags)
        mask = ~(size - 1) & (0xFFFFFFFC if io else 0xFFFFFFF0)
        struct.pack_into("<I", self.wmask, reg, mask & 0xFFFFFFFF)
        if mem64:
            struct.pack_into("<I", self.wmask, reg + 4, (~(size - 1) >> 32) & 0xFFFFFFFF)
        return bar

    def bar_address(self, index: int) -> int:
        bar = self.bars[index]
        reg = BAR0 + 4 * index
        lo = self.config_read(reg, 4)
        addr = lo & (0xFFFFFFFC if bar.io else 0xFFFFFFF0)
        if bar.mem64:
            addr |= self.config_read(reg + 4, 4) << 32
        return addr

    def set_bar_address(self, index: int, addr: int) -> None:
        """What firmware does: place a BAR before the guest runs."""
        reg = BAR0 + 4 * index
        bar = self.bars[index]
        flags = self.config_read(reg, 4) & (0x3 if bar.io else 0xF)
        struct.pack_into("<I", self.config, reg, (addr & 0xFFFFFFFF) | flags)
        if bar.mem64:
            struct.pack_into("<I", self.config, reg + 4, addr >> 32)
        self._remap()

    def _bars_written(self) -> None:
        self._remap()

    def _remap(self) -> None:
        cmd = self.config_read(COMMAND, 2)
        for index, bar in self.bars.items():
            enabled = bool(cmd & (COMMAND_IO if bar.io else COMMAND_MEMORY))
            addr = self.bar_address(index)
            # An all-ones sizing probe or address 0 is not a decode target.
            want = enabled and addr != 0 and addr + bar.size <= (0x10000 if bar.io else 1 << 48)
            bus = self.io_bus if bar.io else self.mmio_bus
            if bus is None:
                continue
            if bar.mapped and (not want or addr != bar.addr):
                bus.unregister(bar.addr)
                bar.mapped = False
            if want and not bar.mapped:
                try:
                    bus.register(addr, bar.size, bar.dev)
                except ValueError:
                    continue  # overlaps: the guest is mid-reprogramming
                bar.addr = addr
                bar.mapped = True


class HostBridge(PciDevice):
    def __init__(self) -> None:
        super().__init__(VENDOR_REDHAT, DEVICE_HOST_BRIDGE, CLASS_HOST_BRIDGE, name="pci-host")


class PciBus:
    """Bus 0 behind configuration mechanism #1 (the 0xCF8/0xCFC pair)."""

    length = 8

    def __init__(self, io_bus: IoBus | None = None, mmio_bus: MmioBus | None = None) -> None:
        self.name = "pci-config"
        self.address = 0
        self.slots: dict[int, PciDevice] = {}
        self.io_bus = io_bus
        self.mmio_bus = mmio_bus
        self.add(HostBridge(), slot=0)

    def add(self, dev: PciDevice, slot: int | None = None) -> int:
        if slot is None:
            slot = next(s for s in range(1, 32) if s not in self.slots)
        if slot in self.slots:
            raise ValueError(f"PCI slot {slot} taken")
        dev.io_bus = self.io_bus
        dev.mmio_bus = self.mmio_bus
        self.slots[slot] = dev
        return slot

    def _target(self) -> tuple[PciDevice | None, int]:
        a = self.address
        if not a & 0x80000000:
            return None, 0
        bus = (a >> 16) & 0xFF
        slot = (a >> 11) & 0x1F
        func = (a >> 8) & 0x7
        if bus != 0 or func != 0:
            return None, 0
        return self.slots.get(slot), a & 0xFC

    def read(self, offset: int, size: int) -> int:
        if offset < 4:
            if offset == 0 and size == 4:
                return self.address
            return (0xFFFFFFFF >> (32 - 8 * size)) if size < 4 else 0xFFFFFFFF
        dev, reg = self._target()
        if dev is None:
            return (1 << (8 * size)) - 1
        return dev.config_read(reg + (offset - 4), size)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset < 4:
            # Only a dword write at 0xCF8 is an address; byte writes there
            # are the chipset's other registers (0xCF9 reset control etc.).
            if offset == 0 and size == 4:
                self.address = value & 0x80FFFFFC
            return
        dev, reg = self._target()
        if dev is not None:
            dev.config_write(reg + (offset - 4), size, value)
