import glob
import struct

import pytest
from onekvm.boot import bzimage, elf, loader, longmode, params
from onekvm.errors import UserError
from onekvm.memory import GuestMemory
from onekvm.platform import layout

MiB = layout.MiB


def fake_bzimage(init_size=8 * MiB, version=0x020F, xlf=bzimage.XLF_KERNEL_64, kernel=b"\x90" * 4096) -> bytes:
    setup_sects = 4
    img = bytearray((setup_sects + 1) * 512)
    img[0x1F1] = setup_sects
    struct.pack_into("<H", img, 0x1FE, bzimage.BOOT_FLAG)
    img[0x200] = 0xEB
    img[0x201] = 0x6A  # jump over the header to 0x26c
    img[0x202:0x206] = bzimage.HDR_MAGIC
    struct.pack_into("<H", img, 0x206, version)
    img[0x211] = bzimage.LOADFLAG_LOADED_HIGH
    struct.pack_into("<I", img, 0x22C, 0x37FFFFFF)
    struct.pack_into("<I", img, 0x230, 0x200000)
    img[0x234] = 1
    struct.pack_into("<H", img, 0x236, xlf)
    struct.pack_into("<I", img, 0x238, 2047)
    struct.pack_into("<Q", img, 0x258, 0x1000000)
    struct.pack_into("<I", img, 0x260, init_size)
    return bytes(img) + kernel


def mem_of(size):
    m = GuestMemory()
    for gpa, sz in layout.ram_ranges(size):
        m.add(gpa, sz)
    return m


def test_parse_fake_bzimage():
    img = bzimage.parse(fake_bzimage())
    assert img.load_addr == 0x1000000
    assert img.setup_size == 5 * 512
    assert img.cmdline_size == 2047
    assert len(img.setup_header) == 0x202 + 0x6A - 0x1F1


@pytest.mark.parametrize(
    "data,msg",
    [
        (b"\0" * 4096, "not a bzImage"),
        (fake_bzimage(version=0x0200), "too old"),
        (fake_bzimage(xlf=0), "no 64-bit entry"),
    ],
)
def test_bad_bzimages(data, msg):
    with pytest.raises(UserError, match=msg):
        bzimage.parse(data)


def test_load_bzimage_writes_boot_params():
    size = 128 * MiB
    mem = mem_of(size)
    initrd = b"I" * 10000
    info = loader.load_image(mem, size, fake_bzimage(), "console=ttyS0 quiet", initrd, rsdp_addr=0xE0000)
    assert info.entry == 0x1000000 + 0x200
    assert mem.read(0x1000000, 4) == b"\x90" * 4
    bp = mem.read(layout.BOOT_PARAMS_ADDR, 4096)
    assert bp[0x202:0x206] == b"HdrS"
    assert bp[0x210] == params.LOADER_TYPE_UNDEFINED
    assert bp[0x211] & bzimage.LOADFLAG_CAN_USE_HEAP
    (cmd_ptr,) = struct.unpack_from("<I", bp, 0x228)
    assert mem.read(cmd_ptr, 20) == b"console=ttyS0 quiet\0"
    (rd_addr, rd_size) = struct.unpack_from("<II", bp, 0x218)
    assert rd_size == len(initrd) and mem.read(rd_addr, len(initrd)) == initrd
    assert rd_addr % 4096 == 0 and rd_addr + rd_size <= size
    assert rd_addr >= info.kernel_end
    (rsdp,) = struct.unpack_from("<Q", bp, params.ACPI_RSDP_ADDR)
    assert rsdp == 0xE0000
    assert bp[params.SENTINEL] == 0
    e820 = params.unpack_e820(bp)
    assert e820 == layout.e820_map(size)
    assert (0x100000, size - 0x100000, 1) in e820


def test_initrd_honours_initrd_addr_max():
    size = 2048 * MiB
    mem = mem_of(size)
    info = loader.load_image(mem, size, fake_bzimage(), "", b"x" * 8192)
    assert info.initrd_addr + info.initrd_size <= 0x37FFFFFF + 1


def test_memory_too_small_for_kernel_and_initrd():
    size = 32 * MiB
    mem = mem_of(size)
    with pytest.raises(UserError, match="memory too small"):
        loader.load_image(mem, size, fake_bzimage(init_size=12 * MiB), "", b"x" * (8 * MiB))
    with pytest.raises(UserError, match="memory too small"):
        loader.load_image(mem, size, fake_bzimage(init_size=40 * MiB), "")


def test_command_line_too_long():
    size = 64 * MiB
    with pytest.raises(UserError, match="command line"):
        loader.load_image(mem_of(size), size, fake_bzimage(), "x" * 3000)


def test_e820_splits_above_the_pci_hole():
    e = layout.e820_map(4096 * MiB)
    ram = [(a, s) for a, s, t in e if t == 1]
    assert (0x100000, layout.MMIO_HOLE_START - 0x100000) in ram
    assert (1 << 32, 4096 * MiB - layout.MMIO_HOLE_START) in ram
    assert layout.ram_ranges(4096 * MiB) == [(0, layout.MMIO_HOLE_START), (1 << 32, 1024 * MiB)]


def make_elf(entry: int, segs: list[tuple[int, bytes, int]]) -> bytes:
    ehdr_size, phdr_size = 64, 56
    data_off = ehdr_size + phdr_size * len(segs)
    out = bytearray(b"\x7fELF" + bytes([2, 1, 1]) + bytes(9))
    out += struct.pack(
        "<HHIQQQIHHHHHH", 2, elf.EM_X86_64, 1, entry, ehdr_size, 0, 0, ehdr_size, phdr_size, len(segs), 0, 0, 0
    )
    blobs = b""
    for paddr, blob, memsz in segs:
        out += struct.pack(
            "<IIQQQQQQ",
            elf.PT_LOAD,
            5,
            data_off + len(blobs),
            paddr | elf.KERNEL_VIRT_BASE,
            paddr,
            len(blob),
            memsz,
            0x1000,
        )
        blobs += blob
    return bytes(out) + blobs


def test_elf_vmlinux_loads_segments_and_zeroes_bss():
    size = 64 * MiB
    mem = mem_of(size)
    mem.write(0x1000000 + 4, b"\xff" * 12)
    data = make_elf(0x1000000, [(0x1000000, b"ABCD", 16)])
    info = loader.load_image(mem, size, data, "quiet")
    assert info.kind == "elf" and info.entry == 0x1000000
    assert mem.read(0x1000000, 16) == b"ABCD" + bytes(12)
    bp = mem.read(layout.BOOT_PARAMS_ADDR, 4096)
    assert bp[0x202:0x206] == b"HdrS"


def test_elf_virtual_entry_is_translated():
    k = elf.parse(make_elf(elf.KERNEL_VIRT_BASE | 0x1000000, [(0x1000000, b"x", 1)]))
    assert k.entry == 0x1000000


def test_not_a_kernel():
    with pytest.raises(UserError, match="not a bzImage or ELF"):
        loader.load_image(mem_of(64 * MiB), 64 * MiB, b"hello world" * 100, "")


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        loader.read_file(str(tmp_path / "nope"), "kernel")
    with pytest.raises(UserError, match="is a directory"):
        loader.read_file(str(tmp_path), "kernel")


def test_long_mode_page_tables_identity_map_4g():
    mem = mem_of(64 * MiB)
    st = longmode.setup(mem)
    assert st.cr3 == layout.PML4_ADDR
    (pml4e,) = struct.unpack_from("<Q", mem.read(layout.PML4_ADDR, 8))
    assert pml4e & ~0xFFF == layout.PDPT_ADDR and pml4e & 3 == 3
    (pde,) = struct.unpack_from("<Q", mem.read(layout.PD_ADDR + 8 * 2047, 8))
    assert pde & ~0xFFF == 2047 << 21 and pde & longmode.PTE_PS
    gdt = mem.read(layout.GDT_ADDR, 8 * len(longmode.GDT))
    (cs,) = struct.unpack_from("<Q", gdt, longmode.BOOT_CS)
    assert cs & (1 << 53)  # L bit: 64-bit code
    assert st.efer & longmode.EFER_LMA


KERNELS = sorted(glob.glob("/boot/vmlinuz-*"))


@pytest.mark.skipif(not KERNELS, reason="no /boot/vmlinuz-* installed")
@pytest.mark.parametrize("path", KERNELS)
def test_parse_installed_kernels(path):
    with open(path, "rb") as f:
        img = bzimage.parse(f.read())
    assert img.xloadflags & bzimage.XLF_KERNEL_64
    assert img.relocatable and img.load_addr == 0x1000000
    assert img.init_size > len(img.kernel)


def test_kernel_release_from_header():
    data = bytearray(fake_bzimage())
    struct.pack_into("<H", data, 0x20E, 0x300)
    data[0x500 : 0x500 + 30] = b"6.1.0-56-amd64 (debian) #1\0".ljust(30, b"\0")
    assert bzimage.kernel_release(bytes(data)) == "6.1.0-56-amd64"
    assert bzimage.kernel_release(b"nope") is None
