import struct

from onekvm.devices import acpi_pm
from onekvm.platform import acpi, layout

BASE = layout.BIOS_START


def table_at(blob: bytes, addr: int) -> bytes:
    off = addr - BASE
    (length,) = struct.unpack_from("<I", blob, off + 4)
    return blob[off : off + length]


def test_rsdp_and_roots():
    t = acpi.build(BASE, cpus=2, apic=True)
    rsdp = t.blob[:36]
    assert rsdp[:8] == b"RSD PTR "
    assert sum(rsdp[:20]) & 0xFF == 0
    assert sum(rsdp) & 0xFF == 0
    rsdt_addr, length, xsdt_addr = struct.unpack_from("<IIQ", rsdp, 16)
    assert length == 36
    xsdt = table_at(t.blob, xsdt_addr)
    assert xsdt[:4] == b"XSDT"
    entries = struct.unpack_from(f"<{(len(xsdt) - 36) // 8}Q", xsdt, 36)
    sigs = {table_at(t.blob, a)[:4] for a in entries}
    assert sigs == {b"FACP", b"APIC"}
    rsdt = table_at(t.blob, rsdt_addr)
    assert struct.unpack_from("<2I", rsdt, 36) == tuple(entries)


def test_every_table_checksums():
    t = acpi.build(BASE, cpus=4, apic=True)
    for name, addr in t.tables.items():
        if name in ("RSDP", "FACS"):
            continue
        tbl = table_at(t.blob, addr)
        assert sum(tbl) & 0xFF == 0, name


def test_fadt_points_at_pm_block_and_dsdt():
    t = acpi.build(BASE, cpus=1, apic=True)
    fadt = table_at(t.blob, t.tables["FACP"])
    assert len(fadt) == acpi.FADT_LENGTH
    (sci,) = struct.unpack_from("<H", fadt, 46)
    assert sci == acpi_pm.SCI_IRQ
    pm1a_evt, _, pm1a_cnt = struct.unpack_from("<III", fadt, 56)
    assert pm1a_evt == acpi_pm.PM_BASE
    assert pm1a_cnt == acpi_pm.PM_BASE + acpi_pm.PM1_CNT_OFF
    (x_dsdt,) = struct.unpack_from("<Q", fadt, 140)
    assert x_dsdt == t.tables["DSDT"]
    (facs32,) = struct.unpack_from("<I", fadt, 36)
    (x_facs,) = struct.unpack_from("<Q", fadt, 132)
    assert facs32 == 0 and x_facs == t.tables["FACS"] and x_facs % 64 == 0


def test_dsdt_declares_s5_with_our_sleep_type():
    t = acpi.build(BASE, cpus=1, apic=True)
    dsdt = table_at(t.blob, t.tables["DSDT"])
    aml = dsdt[36:]
    s5 = acpi_pm.SLP_TYP_S5
    assert aml == bytes([0x08]) + b"_S5_" + bytes([0x12, 0x08, 0x04, 0x0A, s5, 0x0A, s5, 0x00, 0x00])


def test_madt_lists_each_cpu_and_the_ioapic():
    t = acpi.build(BASE, cpus=3, apic=True)
    madt = table_at(t.blob, t.tables["APIC"])
    off, cpus, ioapics = 44, [], 0
    while off < len(madt):
        kind, length = madt[off], madt[off + 1]
        if kind == acpi.MADT_LAPIC:
            cpus.append(madt[off + 3])
        elif kind == acpi.MADT_IOAPIC:
            ioapics += 1
        off += length
    assert off == len(madt)
    assert cpus == [0, 1, 2]
    assert ioapics == 1


def test_no_madt_for_the_userspace_pic():
    t = acpi.build(BASE, cpus=1, apic=False)
    assert "APIC" not in t.tables


def test_pkglength_encodings():
    assert acpi.aml_pkglength(10) == bytes([11])
    two = acpi.aml_pkglength(100)
    assert two[0] & 0xC0 == 0x40 and ((two[0] & 0xF) | two[1] << 4) == 102
