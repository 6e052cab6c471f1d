"""The x86 bzImage setup header (Documentation/arch/x86/boot.rst)."""

from __future__ import annotations

import struct

from onekvm.errors import UserError
from onekvm.record import record

HDR_MAGIC = b"HdrS"
BOOT_FLAG = 0xAA55
SETUP_HEADER_OFFSET = 0x1F1
MIN_VERSION = 0x020C  # 2.12: xloadflags, hence the 64-bit entry point

XLF_KERNEL_64 = 1 << 0
XLF_CAN_BE_LOADED_ABOVE_4G = 1 << 1

LOADFLAG_LOADED_HIGH = 1 << 0
LOADFLAG_CAN_USE_HEAP = 1 << 7

ENTRY_64_OFFSET = 0x200
DEFAULT_LOAD_ADDR = 0x100000
DEFAULT_INITRD_ADDR_MAX = 0x37FFFFFF

# (field, offset in the image, struct format)
FIELDS = {
    "setup_sects": (0x1F1, "B"),
    "syssize": (0x1F4, "I"),
    "boot_flag": (0x1FE, "H"),
    "jump": (0x200, "H"),
    "header": (0x202, "4s"),
    "version": (0x206, "H"),
    "type_of_loader": (0x210, "B"),
    "loadflags": (0x211, "B"),
    "code32_start": (0x214, "I"),
    "ramdisk_image": (0x218, "I"),
    "ramdisk_size": (0x21C, "I"),
    "heap_end_ptr": (0x224, "H"),
    "cmd_line_ptr": (0x228, "I"),
    "initrd_addr_max": (0x22C, "I"),
    "kernel_alignment": (0x230, "I"),
    "relocatable_kernel": (0x234, "B"),
    "xloadflags": (0x236, "H"),
    "cmdline_size": (0x238, "I"),
    "payload_offset": (0x248, "I"),
    "payload_length": (0x24C, "I"),
    "pref_address": (0x258, "Q"),
    "init_size": (0x260, "I"),
}


def get_field(buf: bytes | bytearray, name: str) -> int | bytes:
    off, fmt = FIELDS[name]
    return struct.unpack_from("<" + fmt, buf, off)[0]


def set_field(buf: bytearray, name: str, value: int) -> None:
    off, fmt = FIELDS[name]
    struct.pack_into("<" + fmt, buf, off, value)


@record
class BzImage:
    data: bytes
    setup_sects: int
    version: int
    xloadflags: int
    loadflags: int
    initrd_addr_max: int
    cmdline_size: int
    kernel_alignment: int
    relocatable: bool
    pref_address: int
    init_size: int
    payload_offset: int
    payload_length: int

    @property
    def setup_size(self) -> int:
        return (self.setup_sects + 1) * 512

    @property
    def kernel(self) -> bytes:
        """The protected-mode part: what gets loaded at the load address."""
        return self.data[self.setup_size :]

    @property
    def load_addr(self) -> int:
        return self.pref_address if self.relocatable and self.pref_address else DEFAULT_LOAD_ADDR

    @property
    def setup_header(self) -> bytes:
        """Bytes 0x1f1.. up to the end the header's own jump says, for boot_params."""
        end = 0x202 + self.data[0x201]
        return self.data[SETUP_HEADER_OFFSET:end]

    @property
    def payload(self) -> bytes:
        """The compressed vmlinux inside (offset is relative to the protected-mode part)."""
        start = self.setup_size + self.payload_offset
        return self.data[start : start + self.payload_length]


def is_bzimage(data: bytes) -> bool:
    return len(data) >= 0x264 and data[0x202:0x206] == HDR_MAGIC


def parse(data: bytes, name: str = "kernel") -> BzImage:
    if len(data) < 0x264 or data[0x202:0x206] != HDR_MAGIC:
        raise UserError(f"{name}: not a bzImage (no HdrS header)")
    version = int(get_field(data, "version"))
    if version < MIN_VERSION:
        raise UserError(f"{name}: boot protocol {version >> 8}.{version & 0xFF} is too old (need 2.12+)")
    xlf = int(get_field(data, "xloadflags"))
    if not xlf & XLF_KERNEL_64:
        raise UserError(f"{name}: bzImage has no 64-bit entry point (not an x86_64 kernel?)")
    setup_sects = int(get_field(data, "setup_sects")) or 4
    img = BzImage(
        data=data,
        setup_sects=setup_sects,
        version=version,
        xloadflags=xlf,
        loadflags=int(get_field(data, "loadflags")),
        initrd_addr_max=int(get_field(data, "initrd_addr_max")) or DEFAULT_INITRD_ADDR_MAX,
        cmdline_size=int(get_field(data, "cmdline_size")) or 255,
        kernel_alignment=int(get_field(data, "kernel_alignment")),
        relocatable=bool(get_field(data, "relocatable_kernel")),
        pref_address=int(get_field(data, "pref_address")),
        init_size=int(get_field(data, "init_size")),
        payload_offset=int(get_field(data, "payload_offset")),
        payload_length=int(get_field(data, "payload_length")),
    )
    if img.setup_size >= len(data):
        raise UserError(f"{name}: truncated bzImage")
    return img


def kernel_release(data: bytes) -> str | None:
    """The release string (uname -r) a bzImage names in its header, e.g. 6.1.0-56-amd64."""
    if not is_bzimage(data):
        return None
    (ptr,) = struct.unpack_from("<H", data, 0x20E)
    if not ptr:
        return None
    start = 0x200 + ptr
    end = data.find(b"\0", start, start + 256)
    if end < 0:
        return None
    text = data[start:end].decode("ascii", "replace")
    return text.split()[0] if text else None
