import pytest
from onekvm.bus import IoBus, MmioBus
from onekvm.devices import pci


class Regs:
    name = "regs"

    def __init__(self):
        self.writes = []

    def read(self, offset, size):
        return 0x11223344 & ((1 << (8 * size)) - 1)

    def write(self, offset, size, value):
        self.writes.append((offset, size, value))


def cfg_addr(slot, reg):
    return 0x80000000 | (slot << 11) | reg


def cfg_read(bus, slot, reg, size=4):
    bus.write(0, 4, cfg_addr(slot, reg & ~3))
    return bus.read(4 + (reg & 3), size)


def cfg_write(bus, slot, reg, value, size=4):
    bus.write(0, 4, cfg_addr(slot, reg & ~3))
    bus.write(4 + (reg & 3), size, value)


def test_config_address_reads_back():
    b = pci.PciBus()
    b.write(0, 4, 0x80000000)
    assert b.read(0, 4) == 0x80000000


def test_host_bridge_identity():
    b = pci.PciBus()
    assert cfg_read(b, 0, pci.VENDOR_ID) == pci.DEVICE_HOST_BRIDGE << 16 | pci.VENDOR_REDHAT
    assert cfg_read(b, 0, 0x0A, 2) == 0x0600  # class: host bridge
    assert cfg_read(b, 5, 0) == 0xFFFFFFFF  # empty slot
    assert cfg_read(b, 0, 0, 2) == pci.VENDOR_REDHAT


def test_bar_sizing_and_mapping():
    io, mmio = IoBus(), MmioBus()
    b = pci.PciBus(io, mmio)
    dev = pci.PciDevice(0x1AF4, 0x1000, 0x020000)
    regs = Regs()
    dev.add_bar(0, 0x1000, regs)
    dev.add_bar(1, 0x40, regs, io=True)
    slot = b.add(dev)
    cfg_write(b, slot, pci.BAR0, 0xFFFFFFFF)
    assert cfg_read(b, slot, pci.BAR0) == 0xFFFFF000
    cfg_write(b, slot, pci.BAR0 + 4, 0xFFFFFFFF)
    assert cfg_read(b, slot, pci.BAR0 + 4) == 0xFFFFFFC1
    cfg_write(b, slot, pci.BAR0, 0xC0001000)
    cfg_write(b, slot, pci.BAR0 + 4, 0xC040)
    assert mmio.lookup(0xC0001000) is None  # decode still off
    cfg_write(b, slot, pci.COMMAND, pci.COMMAND_MEMORY | pci.COMMAND_IO, size=2)
    assert mmio.read(0xC0001004, 4) == 0x11223344
    io.write(0xC042, 1, 7)
    assert regs.writes == [(2, 1, 7)]
    cfg_write(b, slot, pci.BAR0, 0xC0002000)
    assert mmio.lookup(0xC0001000) is None and mmio.lookup(0xC0002000) is not None
    cfg_write(b, slot, pci.COMMAND, 0, size=2)
    assert mmio.lookup(0xC0002000) is None


def test_read_only_fields_stay():
    b = pci.PciBus()
    cfg_write(b, 0, pci.VENDOR_ID, 0)
    assert cfg_read(b, 0, 0, 2) == pci.VENDOR_REDHAT


def test_capability_chain():
    dev = pci.PciDevice(1, 2, 3)
    off = dev.add_capability(0x09, b"\x00\x00")
    off2 = dev.add_capability(0x11, b"\x00" * 10)
    assert dev.config[pci.CAP_PTR] == off2
    assert dev.config[off2 + 1] == off
    assert dev.config_read(pci.STATUS, 2) & pci.STATUS_CAP_LIST


def test_bad_bar_size():
    with pytest.raises(ValueError):
        pci.PciDevice(1, 2, 3).add_bar(0, 0x1800, Regs())
