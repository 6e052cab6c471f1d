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
    assert aml.startswith(bytes([0x08]) + b"_S5_" + bytes([0x12, 0x08, 0x04, 0x0A, s5, 0x0A, s5, 0x00, 0x00]))
    assert decode_aml(aml)["_S5_"] == [s5, s5, 0, 0]


# -- a small AML reader: just the opcodes dsdt() emits ------------------------------------------


def _pkglength(aml: bytes, off: int) -> tuple[int, int]:
    """(end offset of the object, offset after the PkgLength)."""
    lead = aml[off]
    extra = lead >> 6
    if not extra:
        return off + (lead & 0x3F), off + 1
    n = lead & 0xF
    for i in range(extra):
        n |= aml[off + 1 + i] << (4 + 8 * i)
    return off + n, off + 1 + extra


def _name(aml: bytes, off: int) -> tuple[str, int]:
    prefix = ""
    while aml[off] in b"\\^":
        prefix += chr(aml[off])
        off += 1
    return prefix + aml[off : off + 4].decode(), off + 4


def _data(aml: bytes, off: int) -> tuple[object, int]:
    op = aml[off]
    if op in (0x00, 0x01):
        return op, off + 1
    if op in (0x0A, 0x0B, 0x0C, 0x0E):
        size = {0x0A: 1, 0x0B: 2, 0x0C: 4, 0x0E: 8}[op]
        return int.from_bytes(aml[off + 1 : off + 1 + size], "little"), off + 1 + size
    if op == 0x12:  # Package
        end, p = _pkglength(aml, off + 1)
        count, p = aml[p], p + 1
        items = []
        while p < end:
            item, p = _data(aml, p)
            items.append(item)
        assert p == end and len(items) == count
        return items, end
    if op == 0x11:  # Buffer
        end, p = _pkglength(aml, off + 1)
        size, p = _data(aml, p)
        assert end - p == size
        return bytes(aml[p:end]), end
    raise AssertionError(f"unexpected data opcode {op:#x} at {off}")


def decode_aml(aml: bytes, off: int = 0, end: int | None = None) -> dict:
    """Name/Scope/Device terms as a dict keyed by name (Scope and Device: nested dicts)."""
    end = len(aml) if end is None else end
    out: dict = {}
    while off < end:
        op = aml[off]
        if op == 0x08:  # Name
            name, p = _name(aml, off + 1)
            out[name], off = _data(aml, p)
        elif op == 0x10 or aml[off : off + 2] == b"\x5b\x82":  # Scope, Device
            start = off + (1 if op == 0x10 else 2)
            obj_end, p = _pkglength(aml, start)
            name, p = _name(aml, p)
            out[name] = decode_aml(aml, p, obj_end)
            off = obj_end
        else:
            raise AssertionError(f"unexpected opcode {op:#x} at {off}")
    assert off == end
    return out


def _resources(buf: bytes) -> list[tuple[int, bytes]]:
    """(descriptor tag, body) of each resource descriptor up to the End Tag."""
    out, off = [], 0
    while True:
        tag = buf[off]
        if tag & 0x80:
            (length,) = struct.unpack_from("<H", buf, off + 1)
            out.append((tag, buf[off + 3 : off + 3 + length]))
            off += 3 + length
        else:
            length = tag & 7
            if tag >> 3 == 0xF:  # End Tag
                assert off + 2 == len(buf)
                return out
            out.append((tag, buf[off + 1 : off + 1 + length]))
            off += 1 + length


def test_dsdt_describes_the_pci_host_bridge():
    irqs = [(2, 0, 10), (1, 0, 5), (6, 0, 5)]
    t = acpi.build(BASE, cpus=1, apic=True, pci_irqs=irqs)
    dsdt = table_at(t.blob, t.tables["DSDT"])
    assert dsdt[:4] == b"DSDT" and sum(dsdt) & 0xFF == 0
    ns = decode_aml(dsdt[36:])
    pci0 = ns["\\_SB_"]["PCI0"]
    assert pci0["_HID"] == 0x030AD041  # EisaId("PNP0A03")
    assert acpi.eisa_id("PNP0A03") == 0x030AD041
    assert pci0["_UID"] == pci0["_SEG"] == pci0["_BBN"] == 0
    assert pci0["_PRT"] == [[0x0001FFFF, 0, 0, 5], [0x0002FFFF, 0, 0, 10], [0x0006FFFF, 0, 0, 5]]

    res = _resources(pci0["_CRS"])
    words = [struct.unpack("<BBBHHHHH", body) for tag, body in res if tag == acpi.RES_WORD_ADDR]
    assert (acpi.RES_TYPE_BUS, 0, 0) == (words[0][0], words[0][4], words[0][5])
    io_windows = sorted((w[4], w[5]) for w in words if w[0] == acpi.RES_TYPE_IO)
    assert io_windows == [(0, 0xCF7), (0xD00, 0xFFFF)]
    assert (0x47, struct.pack("<BHHBB", 1, 0xCF8, 0xCF8, 1, 8)) in res
    mem = [struct.unpack("<BBBIIIII", body) for tag, body in res if tag == acpi.RES_DWORD_ADDR]
    assert len(mem) == 1
    kind, _, _, _, lo, hi, _, length = mem[0]
    assert kind == acpi.RES_TYPE_MEM
    assert (lo, hi) == (layout.PCI_MMIO_START, layout.PCI_MMIO_END - 1) and length == hi - lo + 1
    assert lo <= 0xC0000000 < hi  # where virtio places its BARs


def test_dsdt_without_pci_irqs_still_has_the_bridge():
    ns = decode_aml(acpi.dsdt()[36:])
    assert ns["\\_SB_"]["PCI0"]["_PRT"] == []


def test_aml_int_encodings():
    assert acpi.aml_int(0) == b"\x00" and acpi.aml_int(1) == b"\x01"
    assert acpi.aml_int(0x80) == b"\x0a\x80"
    assert acpi.aml_int(0x1234) == b"\x0b\x34\x12"
    assert acpi.aml_int(0x0001FFFF) == b"\x0c\xff\xff\x01\x00"
    assert acpi.aml_int(1 << 32) == b"\x0e" + (1 << 32).to_bytes(8, "little")


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
