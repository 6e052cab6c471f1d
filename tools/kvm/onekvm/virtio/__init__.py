"""Virtio 1.x devices over PCI for the onekvm VMM (issue 6).

The VMM needs three calls, all here:

    opts = virtio.parse_options(disks=args.disk, shares=args.ninep, nets=args.network,
                                console=args.console, rng=args.rng)   # UserError on bad specs
    vset = virtio.attach(machine, opts, set_level)    # after the PCI bus exists
    ...
    vset.receive(data) -> taken                       # console input with --console virtio
    vset.close()                                      # before guest memory is unmapped

Each device type lives in its own file and registers itself (device.REGISTRY)
when imported; only the kinds a command line asks for are imported, since
every module costs seconds to compile and import in the rig's L1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from onekvm.errors import UserError
from onekvm.irq import SetLevel
from onekvm.virtio.device import VirtioDevice, device_class
from onekvm.virtio.host import Host, from_machine
from onekvm.virtio.pci import BAR_SIZE, VirtioPciDevice

# ISA IRQs Linux accepts for a PCI INTx line it finds no ACPI routing for
# (acpi_isa_register_gsi): free on this platform, level-triggered once claimed.
INTX_GSIS = (5, 10, 11, 14, 15)
PCI_MMIO_BASE = 0xC0000000  # platform/layout.PCI_MMIO_START: the 32-bit PCI hole


@dataclass
class VirtioOptions:
    devices: list[tuple[str, Any]] = field(default_factory=list)  # (kind, parsed spec), PCI slot order

    @property
    def console(self) -> bool:
        return any(kind == "console" for kind, _ in self.devices)

    def kernel_params(self) -> str:
        """Parameters the guest needs for these devices (appended by the VMM)."""
        return "console=hvc0" if self.console else ""


def parse_options(
    disks: Sequence[str] = (),
    shares: Sequence[str] = (),
    nets: Sequence[str] = (),
    console: str = "serial",
    rng: bool = False,
) -> VirtioOptions:
    """Command-line specs to device options; raises UserError with a one-line message."""
    opts = VirtioOptions()
    for kind, specs in (("blk", disks), ("9p", shares)):
        opts.devices += [(kind, device_class(kind).parse(s)) for s in specs]
    if rng:
        opts.devices.append(("rng", None))
    if console == "virtio":
        opts.devices.append(("console", None))
    elif console != "serial":
        raise UserError(f"--console {console}: serial or virtio")
    opts.devices += [("net", device_class("net").parse(s)) for s in nets]
    return opts


class VirtioSet:
    """The virtio devices of one machine."""

    def __init__(self, host: Host | None = None) -> None:
        self.host = host
        self.devices: list[VirtioPciDevice] = []
        self.console: Any = None  # the VirtioConsole, if any

    def receive(self, data: bytes) -> int:
        """Console input for hvc0; returns how many bytes were taken."""
        return self.console.receive(data) if self.console is not None else len(data)

    def describe(self) -> list[str]:
        return [line for t in self.devices for line in t.describe()]

    def close(self) -> None:
        for t in reversed(self.devices):
            t.close()
        self.devices.clear()
        if self.host is not None:
            self.host.close()  # the devices' workers are gone: nothing raises an interrupt now


class _BarAllocator:
    def __init__(self, base: int) -> None:
        self.next = base

    def __call__(self, size: int) -> int:
        addr = (self.next + size - 1) & ~(size - 1)
        self.next = addr + size
        return addr


def attach_host(host: Host, pci: Any, opts: VirtioOptions) -> VirtioSet:
    """Create each device, plug it into the PCI bus `pci` and start its worker."""
    vset = VirtioSet(host)
    alloc = host.mmio_alloc or _BarAllocator(PCI_MMIO_BASE)
    counts: dict[str, int] = {}
    try:
        for i, (kind, spec) in enumerate(opts.devices):
            n = counts.get(kind, 0)
            counts[kind] = n + 1
            dev: VirtioDevice = device_class(kind)(spec, f"{kind}{n}")
            try:
                t = VirtioPciDevice(dev, host, INTX_GSIS[i % len(INTX_GSIS)])
            except BaseException:
                dev.close()
                raise
            vset.devices.append(t)
            pci.add(t)
            t.place(alloc(BAR_SIZE))
            if kind == "console":
                vset.console = dev
            t.start()
    except BaseException:
        vset.close()
        raise
    return vset


def attach(machine: Any, opts: VirtioOptions | None, set_level: SetLevel | None) -> VirtioSet:
    """The Machine hook: call once its PCI bus exists (end of Machine._add_devices)."""
    if opts is None or not opts.devices:
        return VirtioSet()
    return attach_host(from_machine(machine, set_level), machine.pci, opts)
