"""Minimal ACPI tables: RSDP, RSDT/XSDT, FADT, FACS, a DSDT and a MADT.

Enough for Linux to find its CPUs and interrupt controllers (MADT), to
power off through PM1a_CNT (FADT + \\_S5) and to scan PCI bus 0 (the DSDT's
\\_SB.PCI0 host bridge, whose _PRT routes each device's INTx to a GSI). The FADT is a full (not
hardware-reduced) one: hardware-reduced mode makes Linux drop the legacy
PIC, which `--irqchip user` depends on.
"""

from __future__ import annotations

import struct

from onekvm.devices import acpi_pm
from onekvm.devices.rtc import REG_CENTURY
from onekvm.platform.layout import IOAPIC_ADDR, LAPIC_ADDR, PCI_MMIO_END, PCI_MMIO_START
from onekvm.record import record

OEM_ID = b"ONEKVM"
OEM_TABLE_ID = b"ONEKVM  "
CREATOR_ID = b"OKVM"

FADT_REVISION = 6
FADT_LENGTH = 276

FADT_F_WBINVD = 1 << 0
FADT_F_PROC_C1 = 1 << 2
FADT_F_PWR_BUTTON = 1 << 4  # no fixed power button
FADT_F_SLP_BUTTON = 1 << 5  # no fixed sleep button
BOOT_ARCH_NO_VGA = 1 << 2

GAS_SYSTEM_IO = 1

MADT_PCAT_COMPAT = 1
MADT_LAPIC = 0
MADT_IOAPIC = 1
MADT_ISO = 2
MADT_LAPIC_NMI = 4
ISO_ACTIVE_HIGH_LEVEL = 0x000D


def checksum(data: bytes | bytearray) -> int:
    return (-sum(data)) & 0xFF


def sdt(signature: bytes, revision: int, body: bytes) -> bytes:
    """A System Description Table: the 36-byte header, body, fixed checksum."""
    length = 36 + len(body)
    hdr = struct.pack("<4sIBB6s8sI4sI", signature, length, revision, 0, OEM_ID, OEM_TABLE_ID, 1, CREATOR_ID, 1)
    table = bytearray(hdr + body)
    table[9] = checksum(table)
    return bytes(table)


def gas(address: int, bit_width: int, access_size: int) -> bytes:
    """Generic Address Structure for a port I/O register."""
    return struct.pack("<BBBBQ", GAS_SYSTEM_IO, bit_width, 0, access_size, address)


def aml_pkglength(n: int) -> bytes:
    """AML PkgLength for a body of n bytes (the encoding counts itself)."""
    if n + 1 < 0x40:
        return bytes([n + 1])
    if n + 2 < 0x1000:
        total = n + 2
        return bytes([0x40 | (total & 0xF), total >> 4])
    total = n + 3
    return bytes([0x80 | (total & 0xF), (total >> 4) & 0xFF, total >> 12])


def aml_int(v: int) -> bytes:
    """An AML integer constant in its shortest encoding."""
    if v == 0:
        return b"\x00"  # ZeroOp
    if v == 1:
        return b"\x01"  # OneOp
    if v < 0x100:
        return b"\x0a" + bytes([v])  # BytePrefix
    if v < 0x10000:
        return b"\x0b" + struct.pack("<H", v)  # WordPrefix
    if v < 0x100000000:
        return b"\x0c" + struct.pack("<I", v)  # DWordPrefix
    return b"\x0e" + struct.pack("<Q", v)  # QWordPrefix


def aml_package(values: list[bytes]) -> bytes:
    """Package(){...} of already-encoded elements."""
    body = bytes([len(values)]) + b"".join(values)
    return b"\x12" + aml_pkglength(len(body)) + body


def aml_name(name: bytes, value: bytes) -> bytes:
    """Name(NAME, value) with value already encoded."""
    return b"\x08" + name + value


def aml_name_package(name: bytes, values: list[int]) -> bytes:
    """Name(NAME, Package(){values...})."""
    return aml_name(name, aml_package([aml_int(v) for v in values]))


def aml_buffer(data: bytes) -> bytes:
    """Buffer(){data}."""
    body = aml_int(len(data)) + data
    return b"\x11" + aml_pkglength(len(body)) + body


def aml_scope(name: bytes, terms: bytes) -> bytes:
    body = name + terms
    return b"\x10" + aml_pkglength(len(body)) + body


def aml_device(name: bytes, terms: bytes) -> bytes:
    body = name + terms
    return b"\x5b\x82" + aml_pkglength(len(body)) + body  # ExtOpPrefix DeviceOp


def eisa_id(s: str) -> int:
    """EisaId("PNP0A03"): three compressed letters and four hex digits, as a DWord."""
    a, b, c = (ord(ch) - 0x40 for ch in s[:3])
    vendor = (a << 10) | (b << 5) | c
    return int.from_bytes(struct.pack(">HH", vendor, int(s[3:], 16)), "little")


# Resource descriptors (ACPI 6.2).
RES_SMALL_IO = 0x47
RES_END_TAG = 0x79
RES_DWORD_ADDR = 0x87
RES_WORD_ADDR = 0x88
RES_TYPE_MEM = 0
RES_TYPE_IO = 1
RES_TYPE_BUS = 2
RES_MIN_MAX_FIXED = 0x0C  # _MIF | _MAF, positive decode, producer
RES_IO_ENTIRE_RANGE = 0x03
RES_MEM_READ_WRITE = 0x01  # non-cacheable


def res_io16(base: int, length: int) -> bytes:
    """IO(Decode16, base, base, 1, length)."""
    return struct.pack("<BBHHBB", RES_SMALL_IO, 1, base, base, 1, length)


def res_word(kind: int, type_flags: int, lo: int, hi: int) -> bytes:
    """WordIO / WordBusNumber producer window lo..hi."""
    return struct.pack("<BHBBBHHHHH", RES_WORD_ADDR, 13, kind, RES_MIN_MAX_FIXED, type_flags, 0, lo, hi, 0, hi - lo + 1)


def res_dword_memory(lo: int, hi: int) -> bytes:
    """DWordMemory producer window lo..hi."""
    flags = (RES_TYPE_MEM, RES_MIN_MAX_FIXED, RES_MEM_READ_WRITE)
    return struct.pack("<BHBBBIIIII", RES_DWORD_ADDR, 23, *flags, 0, lo, hi, 0, hi - lo + 1)


def resource_template(*descriptors: bytes) -> bytes:
    """ResourceTemplate(){...}: a Buffer ending in an End Tag (checksum 0: none)."""
    return aml_buffer(b"".join(descriptors) + bytes([RES_END_TAG, 0]))


PCI_CONFIG_PORT = 0xCF8


def pci_host_bridge(irqs: list[tuple[int, int, int]]) -> bytes:
    """Scope(\\_SB){Device(PCI0){...}}: the PNP0A03 root of bus 0.

    irqs holds (slot, pin, gsi), pin 0 = INTA#; each becomes a _PRT entry
    {slot << 16 | 0xFFFF, pin, 0, gsi} (Source 0: the last field is a GSI).
    """
    crs = resource_template(
        res_word(RES_TYPE_BUS, 0, 0, 0),
        res_io16(PCI_CONFIG_PORT, 8),
        res_word(RES_TYPE_IO, RES_IO_ENTIRE_RANGE, 0x0000, PCI_CONFIG_PORT - 1),
        res_word(RES_TYPE_IO, RES_IO_ENTIRE_RANGE, PCI_CONFIG_PORT + 8, 0xFFFF),
        res_dword_memory(PCI_MMIO_START, PCI_MMIO_END - 1),
    )
    prt = aml_package(
        [
            aml_package([aml_int(slot << 16 | 0xFFFF), aml_int(pin), aml_int(0), aml_int(gsi)])
            for slot, pin, gsi in sorted(irqs)
        ]
    )
    dev = b"".join(
        (
            aml_name(b"_HID", aml_int(eisa_id("PNP0A03"))),
            aml_name(b"_UID", aml_int(0)),
            aml_name(b"_SEG", aml_int(0)),
            aml_name(b"_BBN", aml_int(0)),
            aml_name(b"_CRS", crs),
            aml_name(b"_PRT", prt),
        )
    )
    return aml_scope(b"\\_SB_", aml_device(b"PCI0", dev))


def dsdt(pci_irqs: list[tuple[int, int, int]] | None = None) -> bytes:
    """\\_S5 and the PCI host bridge; pci_irqs: (slot, pin, gsi) of the devices using INTx."""
    s5 = acpi_pm.SLP_TYP_S5
    aml = aml_name_package(b"_S5_", [s5, s5, 0, 0]) + pci_host_bridge(list(pci_irqs or []))
    return sdt(b"DSDT", 2, aml)


def facs() -> bytes:
    return struct.pack("<4sIIIIIQB3sI24s", b"FACS", 64, 0, 0, 0, 0, 0, 2, b"", 0, b"")


def fadt(facs_addr: int, dsdt_addr: int) -> bytes:
    pm = acpi_pm.PM_BASE
    evt, cnt, tmr = pm, pm + acpi_pm.PM1_CNT_OFF, pm + acpi_pm.PM_TMR_OFF
    body = bytearray(FADT_LENGTH - 36)

    def put(offset: int, fmt: str, *values: int | bytes) -> None:
        struct.pack_into("<" + fmt, body, offset - 36, *values)

    # FACS only through X_FIRMWARE_CTRL: ACPI 6 wants FIRMWARE_CTRL zero when it is set.
    put(40, "I", dsdt_addr)
    put(46, "H", acpi_pm.SCI_IRQ)
    put(48, "I", 0)  # no SMI_CMD: always in ACPI mode
    put(56, "I", evt)
    put(64, "I", cnt)
    put(76, "I", tmr)
    put(88, "BBBB", acpi_pm.PM1_EVT_LEN, acpi_pm.PM1_CNT_LEN, 0, acpi_pm.PM_TMR_LEN)
    put(96, "HH", 101, 1001)  # C2/C3 latencies above the limits: no C2/C3
    put(108, "B", REG_CENTURY)
    put(109, "H", BOOT_ARCH_NO_VGA)
    put(112, "I", FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON)
    put(131, "B", 0)  # FADT minor version
    put(132, "Q", facs_addr)
    put(140, "Q", dsdt_addr)
    body[148 - 36 : 160 - 36] = gas(evt, 8 * acpi_pm.PM1_EVT_LEN, 2)
    body[172 - 36 : 184 - 36] = gas(cnt, 8 * acpi_pm.PM1_CNT_LEN, 2)
    body[208 - 36 : 220 - 36] = gas(tmr, 8 * acpi_pm.PM_TMR_LEN, 3)
    put(268, "8s", b"ONEKVM\0\0")  # hypervisor vendor identity
    return sdt(b"FACP", FADT_REVISION, bytes(body))


def madt(cpus: int, with_ioapic: bool = True) -> bytes:
    body = bytearray(struct.pack("<II", LAPIC_ADDR, MADT_PCAT_COMPAT))
    for i in range(cpus):
        body += struct.pack("<BBBBI", MADT_LAPIC, 8, i, i, 1)
    if with_ioapic:
        body += struct.pack("<BBBBII", MADT_IOAPIC, 12, 0, 0, IOAPIC_ADDR, 0)
        # The SCI is level-triggered; ISA IRQs keep the default
        # (edge, active high, identity-mapped: the in-kernel PIT raises GSI 0).
        body += struct.pack("<BBBBIH", MADT_ISO, 10, 0, acpi_pm.SCI_IRQ, acpi_pm.SCI_IRQ, ISO_ACTIVE_HIGH_LEVEL)
    body += struct.pack("<BBBHB", MADT_LAPIC_NMI, 6, 0xFF, 0, 1)
    return sdt(b"APIC", 4, bytes(body))


def rsdp(rsdt_addr: int, xsdt_addr: int) -> bytes:
    r = bytearray(struct.pack("<8sB6sBIIQB3s", b"RSD PTR ", 0, OEM_ID, 2, rsdt_addr, 36, xsdt_addr, 0, b""))
    r[8] = checksum(r[:20])
    r[32] = checksum(r)
    return bytes(r)


@record
class AcpiTables:
    base: int
    blob: bytes
    rsdp_addr: int
    tables: dict[str, int]


def build(base: int, cpus: int, apic: bool, pci_irqs: list[tuple[int, int, int]] | None = None) -> AcpiTables:
    """Lay the tables out from guest physical address base (16-byte aligned).

    apic=False (the userspace PIC) leaves out the MADT: with no MADT and no
    APIC in CPUID the guest runs in PIC mode on one CPU. pci_irqs: the
    (slot, pin, gsi) routing of PCI bus 0 for the DSDT's _PRT.
    """
    blob = bytearray()
    where: dict[str, int] = {}

    def place(name: str, data: bytes, align: int = 16) -> int:
        while len(blob) % align:
            blob.append(0)
        addr = base + len(blob)
        where[name] = addr
        blob.extend(data)
        return addr

    place("RSDP", bytes(36))  # filled once the roots' addresses are known
    facs_addr = place("FACS", facs(), align=64)
    dsdt_addr = place("DSDT", dsdt(pci_irqs))
    entries = [place("FACP", fadt(facs_addr, dsdt_addr))]
    if apic:
        entries.append(place("APIC", madt(cpus)))
    rsdt_addr = place("RSDT", sdt(b"RSDT", 1, b"".join(struct.pack("<I", a) for a in entries)))
    xsdt_addr = place("XSDT", sdt(b"XSDT", 1, b"".join(struct.pack("<Q", a) for a in entries)))
    blob[0:36] = rsdp(rsdt_addr, xsdt_addr)
    return AcpiTables(base, bytes(blob), base, where)
