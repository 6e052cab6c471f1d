"""Place kernel, initrd, command line and boot_params in guest memory."""

from __future__ import annotations

import os

from onekvm.boot import bzimage, elf
from onekvm.boot.params import BootParams, synthetic_header
from onekvm.errors import UserError
from onekvm.memory import GuestMemory
from onekvm.platform import layout
from onekvm.record import record

PAGE = 4096


@record
class BootInfo:
    entry: int
    boot_params_addr: int
    kind: str  # "bzImage" or "elf"
    kernel_start: int
    kernel_end: int  # highest address the kernel may use while it unpacks
    initrd_addr: int = 0
    initrd_size: int = 0
    params: BootParams | None = None


def read_file(path: str, what: str) -> bytes:
    """Read a user-named file; failures are one-line user errors."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise UserError(f"{what} {path}: no such file") from None
    except PermissionError:
        raise UserError(f"{what} {path}: permission denied") from None
    except IsADirectoryError:
        raise UserError(f"{what} {path}: is a directory") from None
    except OSError as e:
        raise UserError(f"{what} {path}: {e.strerror}") from None


def low_ram_end(mem_size: int) -> int:
    return min(mem_size, layout.MMIO_HOLE_START)


def place_initrd(size: int, kernel_end: int, mem_size: int, addr_max: int) -> int:
    """Highest page-aligned spot below addr_max and the 32-bit hole, above the kernel."""
    top = min(addr_max + 1, low_ram_end(mem_size))
    addr = (top - size) & ~(PAGE - 1)
    if addr < kernel_end:
        need = (kernel_end + size + layout.MiB - 1) // layout.MiB
        raise UserError(
            f"memory too small: kernel and initrd need at least {need} MiB, guest has {mem_size // layout.MiB} MiB"
        )
    return addr


def load(
    mem: GuestMemory,
    mem_size: int,
    kernel_path: str,
    cmdline: str,
    initrd_path: str | None = None,
    rsdp_addr: int = 0,
    initrd_data: bytes | None = None,
) -> BootInfo:
    data = read_file(kernel_path, "kernel")
    initrd = read_file(initrd_path, "initrd") if initrd_path else (initrd_data or b"")
    return load_image(mem, mem_size, data, cmdline, initrd, rsdp_addr, name=kernel_path)


def load_image(
    mem: GuestMemory,
    mem_size: int,
    data: bytes,
    cmdline: str,
    initrd: bytes = b"",
    rsdp_addr: int = 0,
    name: str = "kernel",
    kernel_cache: str = "off",
) -> BootInfo:
    """Place everything; kernel_cache (bzImage only): off, auto (use or create the
    cached vmlinux, see kcache), or use (only an existing entry)."""
    if elf.is_elf(data):
        info = _load_elf(mem, mem_size, data, name)
        header = synthetic_header()
        cmdline_size = 4095
        initrd_max = bzimage.DEFAULT_INITRD_ADDR_MAX
    elif bzimage.is_bzimage(data):
        img = bzimage.parse(data, name)
        vmlinux = None
        if kernel_cache != "off":
            from onekvm.boot import kcache

            vmlinux = kcache.vmlinux_for(data, create=kernel_cache == "auto")
        if vmlinux is not None:
            # The bzImage's own vmlinux, unpacked by us: no decompressor run in the guest.
            info = _load_elf(mem, mem_size, vmlinux, name)
            info.kind = "bzImage payload (cached vmlinux)"
        else:
            info = _load_bzimage(mem, mem_size, img, name)
        header = img.setup_header
        cmdline_size = img.cmdline_size
        initrd_max = img.initrd_addr_max
    else:
        raise UserError(f"{name}: not a bzImage or ELF vmlinux")

    raw = cmdline.encode()
    if len(raw) > min(cmdline_size, layout.CMDLINE_MAX - 1):
        raise UserError(f"kernel command line is {len(raw)} bytes, this kernel takes at most {cmdline_size}")
    mem.write(layout.CMDLINE_ADDR, raw + b"\0")

    if initrd:
        info.initrd_addr = place_initrd(len(initrd), info.kernel_end, mem_size, initrd_max)
        info.initrd_size = len(initrd)
        mem.write(info.initrd_addr, initrd)

    params = BootParams(
        setup_header=header,
        cmdline_addr=layout.CMDLINE_ADDR,
        cmdline_size=len(raw),
        e820=layout.e820_map(mem_size),
        initrd_addr=info.initrd_addr,
        initrd_size=info.initrd_size,
        rsdp_addr=rsdp_addr,
    )
    mem.write(layout.BOOT_PARAMS_ADDR, params.pack())
    info.params = params
    return info


def _check_fits(end: int, mem_size: int, what: str) -> None:
    if end > low_ram_end(mem_size):
        need = (end + layout.MiB - 1) // layout.MiB + 1
        raise UserError(f"memory too small: {what} needs at least {need} MiB, guest has {mem_size // layout.MiB} MiB")


def _load_bzimage(mem: GuestMemory, mem_size: int, img: bzimage.BzImage, name: str) -> BootInfo:
    kernel = img.kernel
    load_addr = img.load_addr
    # init_size is what the decompressor needs from the load address.
    end = load_addr + max(img.init_size, len(kernel))
    _check_fits(end, mem_size, f"kernel {os.path.basename(name)}")
    mem.write(load_addr, kernel)
    return BootInfo(
        entry=load_addr + bzimage.ENTRY_64_OFFSET,
        boot_params_addr=layout.BOOT_PARAMS_ADDR,
        kind="bzImage",
        kernel_start=load_addr,
        kernel_end=(end + PAGE - 1) & ~(PAGE - 1),
    )


def _load_elf(mem: GuestMemory, mem_size: int, data: bytes, name: str) -> BootInfo:
    k = elf.parse(data, name)
    if k.start < layout.HIGH_RAM_START:
        raise UserError(f"{name}: ELF segment at {k.start:#x} overlaps the boot area below 1 MiB")
    _check_fits(k.end, mem_size, f"kernel {os.path.basename(name)}")
    for seg in k.segments:
        mem.write(seg.paddr, seg.data)
        if seg.memsz > len(seg.data):
            mem.fill(seg.paddr + len(seg.data), seg.memsz - len(seg.data))
    return BootInfo(
        entry=k.entry,
        boot_params_addr=layout.BOOT_PARAMS_ADDR,
        kind="elf",
        kernel_start=k.start,
        kernel_end=(k.end + PAGE - 1) & ~(PAGE - 1),
    )
