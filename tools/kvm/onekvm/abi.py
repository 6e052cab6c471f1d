# SPDX-License-Identifier: GPL-2.0-only
"""The onekvm ABI from Python: generated cffi bindings plus ioctl helpers.

Everything here comes from the compiled extension onekvm._abi, which meson
builds from include/uapi/onekvm/kvm.abi.h; never hand-code a number or an
offset.  Typical use::

    from onekvm.abi import ffi, lib, ioctl, check_fingerprint
    check_fingerprint(sys_fd)
    version = ioctl(sys_fd, lib.KVM_GET_API_VERSION)
    regs = ffi.new("struct kvm_regs *")
    ioctl(vcpu_fd, lib.KVM_GET_REGS, regs)
    cpuid = new_flex("struct kvm_cpuid2", 100)   # 100 entries
    cpuid.nent = 100
"""

from __future__ import annotations

import mmap
import os

from onekvm._abi import ffi, lib

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost in the rig
if TYPE_CHECKING:
    from typing import Optional, Union

__all__ = [
    "FINGERPRINT", "AbiMismatchError", "check_fingerprint", "ffi", "ioctl",
    "ioctl_name", "lib", "map_kvm_run", "module_fingerprint", "new_flex",
]

#: Fingerprint of the ABI these bindings were generated from.
FINGERPRINT: int = lib.ONEKVM_ABI_FINGERPRINT

CData = object  # a cffi pointer (ffi.new(...), ffi.cast(...)); typing.Any for checkers
_KVMIO: int = lib.KVMIO


class AbiMismatchError(RuntimeError):
    """The loaded onekvm.ko was built from another ABI source than this VMM.

    str(err) is the one-line message to print; exit with `exit_code` (2).
    """

    exit_code = 2

    def __init__(self, module_fp: int, our_fp: int = FINGERPRINT) -> None:
        self.module_fingerprint, self.our_fingerprint = module_fp, our_fp
        super().__init__(
            f"the loaded onekvm.ko was built from another ABI "
            f"(module {module_fp:#018x}, tools/kvm {our_fp:#018x}): rebuild and reload it")


def _ioctl_names() -> dict[int, str]:
    names: dict[int, str] = {}
    for name in dir(lib):
        if not name.startswith(("KVM_", "ONEKVM_")) or name.startswith("KVM_CAP_"):
            continue
        value = getattr(lib, name)
        if isinstance(value, int) and value >= 0x100 and (value >> 8) & 0xFF == _KVMIO:
            names.setdefault(value, name)
    return names


_NAMES: Optional[dict[int, str]] = None


def ioctl_name(request: int) -> str:
    """The ioctl's name for messages, e.g. 'KVM_RUN' (hex if unknown)."""
    global _NAMES
    if _NAMES is None:
        _NAMES = _ioctl_names()
    return _NAMES.get(request, f"ioctl {request:#x}")


def ioctl(fd: int, request: int, arg: Union[CData, int] = 0) -> int:
    """ioctl(2) with a cffi pointer or an integer argument.

    Returns the ioctl's non-negative result; raises OSError (errno set, the
    ioctl named in the message) on failure.  The GIL is released during the
    call, so a blocking KVM_RUN does not stall other threads.
    """
    if isinstance(arg, int):
        ret = lib.onekvm_ioctl_int(fd, request, arg)
    else:
        ret = lib.onekvm_ioctl_ptr(fd, request, arg)
    if ret < 0:
        err = ffi.errno
        raise OSError(err, f"{ioctl_name(request)}: {os.strerror(err)}")
    return ret


def new_flex(ctype: str, count: int) -> CData:
    """Allocate a zeroed struct ending in a flexible array of `count` items.

    e.g. new_flex("struct kvm_msrs", 4).entries[3].index = ...  (the count
    field, nmsrs/nent/nr, is the caller's to set).
    """
    return ffi.new(f"{ctype} *", {_flex_member(ctype): count})


def _flex_member(ctype: str) -> str:
    fields = ffi.typeof(ctype).fields
    name, field = fields[-1]
    if field.type.kind != "array" or field.type.length is not None:
        raise TypeError(f"{ctype} does not end in a flexible array")
    return name


def map_kvm_run(vcpu_fd: int, size: int) -> tuple[mmap.mmap, CData]:
    """mmap the vcpu's shared area; return (mapping, struct kvm_run *).

    `size` is KVM_GET_VCPU_MMAP_SIZE; keep the mapping alive while the
    pointer is used.  Port I/O data sits at run + run.io.data_offset.
    """
    mapping = mmap.mmap(vcpu_fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    run = ffi.cast("struct kvm_run *", ffi.from_buffer(mapping))
    return mapping, run


def module_fingerprint(sys_fd: int) -> Optional[int]:
    """The module's ABI fingerprint, or None on a device without one (stock KVM)."""
    if ioctl(sys_fd, lib.KVM_CHECK_EXTENSION, lib.KVM_CAP_ONEKVM_ABI_FINGERPRINT) <= 0:
        return None
    out = ffi.new("__u64 *")
    ioctl(sys_fd, lib.ONEKVM_GET_ABI_FINGERPRINT, out)
    return int(out[0])


def check_fingerprint(sys_fd: int) -> None:
    """Raise AbiMismatchError when the module's ABI is not ours.

    Stock /dev/kvm reports no fingerprint: nothing to check there.
    """
    theirs = module_fingerprint(sys_fd)
    if theirs is not None and theirs != FINGERPRINT:
        raise AbiMismatchError(theirs)
