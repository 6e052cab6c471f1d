"""System / Vm / Vcpu: thin wrappers over the KVM ioctls through the generated bindings.

The same code drives /dev/kvm and /dev/onekvm: what a hypervisor offers is
found with KVM_CHECK_EXTENSION, never assumed from the device's name.
"""

from __future__ import annotations

import errno
import os
import threading

from onekvm.errors import GuestError, UserError

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost in the rig
if TYPE_CHECKING:
    from typing import Any, Iterator

try:
    from onekvm import abi
    from onekvm.abi import ffi, lib
except ImportError as e:  # pragma: no cover - depends on the build
    abi = ffi = lib = None  # type: ignore[assignment]
    _ABI_IMPORT_ERROR: ImportError | None = e
else:
    _ABI_IMPORT_ERROR = None

DEFAULT_DEVICES = ("/dev/onekvm", "/dev/kvm")
PAGE_SIZE = 4096


def require_abi() -> None:
    if ffi is None:
        raise UserError(
            f"the onekvm ABI bindings are not built ({_ABI_IMPORT_ERROR}); "
            "run `meson setup build/meson && meson compile -C build/meson` and add build/meson/tools/kvm to PYTHONPATH"
        )


def _ioctl(fd: int, request: int, arg: Any = 0) -> int:
    """ioctl with an int or a cffi pointer (updated in place); the GIL is released."""
    return abi.ioctl(fd, request, arg)


def default_device() -> str:
    for path in DEFAULT_DEVICES:
        if os.path.exists(path):
            return path
    return DEFAULT_DEVICES[-1]


def cap_names() -> list[str]:
    require_abi()
    return sorted(n for n in dir(lib) if n.startswith("KVM_CAP_"))


class System:
    """The device node: /dev/kvm or /dev/onekvm."""

    def __init__(self, path: str | None = None, check_abi: bool = True) -> None:
        require_abi()
        self.path = path or default_device()
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise UserError(f"{self.path}: no such device node (is the hypervisor module loaded?)") from None
        except PermissionError:
            raise UserError(f"{self.path}: permission denied (need rw access, e.g. the kvm group)") from None
        except OSError as e:
            raise UserError(f"{self.path}: {e.strerror}") from None
        try:
            self.api_version = _ioctl(self.fd, lib.KVM_GET_API_VERSION)
        except OSError as e:
            os.close(self.fd)
            raise UserError(f"{self.path}: not a KVM device ({e.strerror})") from None
        if self.api_version != lib.KVM_API_VERSION:
            os.close(self.fd)
            raise UserError(f"{self.path}: KVM API version {self.api_version}, this VMM needs {lib.KVM_API_VERSION}")
        self._caps: dict[int, int] = {}
        if check_abi:
            self.check_abi()

    def check_abi(self) -> None:
        """A module built from another ABI source is refused in one line (exit 2)."""
        try:
            abi.check_fingerprint(self.fd)
        except abi.AbiMismatchError as e:
            path = self.path
            self.close()
            raise UserError(f"{path}: {e}") from None
        except OSError:
            pass  # no fingerprint to compare: abi_fingerprint() reports None

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def check_extension(self, cap: int) -> int:
        if cap not in self._caps:
            try:
                self._caps[cap] = _ioctl(self.fd, lib.KVM_CHECK_EXTENSION, cap)
            except OSError:
                self._caps[cap] = 0
        return self._caps[cap]

    def has(self, name: str) -> int:
        """Capability by name (KVM_CAP_ prefix optional); 0 when the bindings lack it."""
        full = name if name.startswith("KVM_CAP_") else "KVM_CAP_" + name
        cap = getattr(lib, full, None)
        return 0 if cap is None else self.check_extension(cap)

    def caps(self) -> dict[str, int]:
        return {name: self.check_extension(getattr(lib, name)) for name in cap_names()}

    @property
    def is_onekvm(self) -> bool:
        return self.has("KVM_CAP_ONEKVM_ABI_FINGERPRINT") != 0

    def abi_fingerprint(self) -> int | None:
        """The fingerprint the loaded module was built with (onekvm only)."""
        try:
            return abi.module_fingerprint(self.fd)
        except OSError:
            return None

    def vcpu_mmap_size(self) -> int:
        return _ioctl(self.fd, lib.KVM_GET_VCPU_MMAP_SIZE)

    def supported_cpuid(self) -> Any:
        n = 128
        while True:
            cpuid = abi.new_flex("struct kvm_cpuid2", n)
            cpuid.nent = n
            try:
                _ioctl(self.fd, lib.KVM_GET_SUPPORTED_CPUID, cpuid)
                return cpuid
            except OSError as e:
                if e.errno != errno.E2BIG or n >= 4096:
                    raise
                n *= 2

    def create_vm(self) -> Vm:
        try:
            fd = _ioctl(self.fd, lib.KVM_CREATE_VM, 0)
        except OSError as e:
            if e.errno == errno.EBUSY:
                raise UserError(f"{self.path}: busy (another hypervisor owns the virtualization extensions)") from None
            raise UserError(f"{self.path}: cannot create a VM: {e.strerror}") from None
        return Vm(self, fd)


class Vm:
    def __init__(self, system: System, fd: int) -> None:
        self.system = system
        self.fd = fd
        self.vcpus: list[Vcpu] = []
        self.irqchip = False
        self._slots = 0
        self._irq_lock = threading.Lock()
        self._irq_level = ffi.new("struct kvm_irq_level *")
        self._KVM_IRQ_LINE = lib.KVM_IRQ_LINE

    def close(self) -> None:
        for v in self.vcpus:
            v.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def add_memory(self, gpa: int, size: int, host_addr: int, flags: int = 0) -> int:
        region = ffi.new("struct kvm_userspace_memory_region *")
        region.slot = self._slots
        region.flags = flags
        region.guest_phys_addr = gpa
        region.memory_size = size
        region.userspace_addr = host_addr
        _ioctl(self.fd, lib.KVM_SET_USER_MEMORY_REGION, region)
        self._slots += 1
        return region.slot

    def enable_cap(self, cap: int, *args: int) -> None:
        """KVM_ENABLE_CAP on the VM (KVM_CAP_ENABLE_CAP_VM) with up to four arguments."""
        arg = ffi.new("struct kvm_enable_cap *")
        arg.cap = cap
        for i, a in enumerate(args):
            arg.args[i] = a
        _ioctl(self.fd, lib.KVM_ENABLE_CAP, arg)

    def set_tss_addr(self, addr: int) -> None:
        _ioctl(self.fd, lib.KVM_SET_TSS_ADDR, addr)

    def create_irqchip(self) -> None:
        _ioctl(self.fd, lib.KVM_CREATE_IRQCHIP, 0)
        self.irqchip = True

    def create_pit2(self) -> None:
        cfg = ffi.new("struct kvm_pit_config *")
        # Speaker port 0x61 handled in the kernel too (QEMU does the same).
        cfg.flags = getattr(lib, "KVM_PIT_SPEAKER_DUMMY", 0)
        _ioctl(self.fd, lib.KVM_CREATE_PIT2, cfg)

    def irq_line(self, irq: int, level: int) -> None:
        # One preallocated argument: device models raise lines on every other exit.
        with self._irq_lock:
            lvl = self._irq_level
            lvl.irq = irq
            lvl.level = level
            _ioctl(self.fd, self._KVM_IRQ_LINE, lvl)

    def signal_msi(self, address: int, data: int) -> int:
        msi = ffi.new("struct kvm_msi *")
        msi.address_lo = address & 0xFFFFFFFF
        msi.address_hi = address >> 32
        msi.data = data
        return _ioctl(self.fd, lib.KVM_SIGNAL_MSI, msi)

    def irqfd(self, fd: int, gsi: int, deassign: bool = False) -> None:
        req = ffi.new("struct kvm_irqfd *")
        req.fd = fd
        req.gsi = gsi
        req.flags = lib.KVM_IRQFD_FLAG_DEASSIGN if deassign else 0
        _ioctl(self.fd, lib.KVM_IRQFD, req)

    def ioeventfd(self, fd: int, addr: int, length: int, pio: bool, datamatch: int | None = None) -> None:
        req = ffi.new("struct kvm_ioeventfd *")
        req.fd = fd
        req.addr = addr
        req.len = length
        flags = lib.KVM_IOEVENTFD_FLAG_PIO if pio else 0
        if datamatch is not None:
            flags |= lib.KVM_IOEVENTFD_FLAG_DATAMATCH
            req.datamatch = datamatch
        req.flags = flags
        _ioctl(self.fd, lib.KVM_IOEVENTFD, req)

    def register_coalesced(self, addr: int, size: int, pio: bool) -> None:
        """KVM_REGISTER_COALESCED_MMIO: writes to the zone go to the ring instead of exiting."""
        zone = ffi.new("struct kvm_coalesced_mmio_zone *")
        zone.addr = addr
        zone.size = size
        zone.pio = 1 if pio else 0
        _ioctl(self.fd, lib.KVM_REGISTER_COALESCED_MMIO, zone)

    def create_vcpu(self, index: int) -> Vcpu:
        fd = _ioctl(self.fd, lib.KVM_CREATE_VCPU, index)
        vcpu = Vcpu(self, index, fd)
        self.vcpus.append(vcpu)
        return vcpu


class Vcpu:
    def __init__(self, vm: Vm, index: int, fd: int) -> None:
        self.vm = vm
        self.index = index
        self.fd = fd
        Vcpu._kvm_run = lib.KVM_RUN
        self._interrupt_arg = ffi.new("struct kvm_interrupt *")
        self._KVM_INTERRUPT = lib.KVM_INTERRUPT
        self.mm, self.run = abi.map_kvm_run(fd, vm.system.vcpu_mmap_size())
        self.run_view = memoryview(self.mm)
        self._ring_buf: Any = None

    _kvm_run = 0  # KVM_RUN, looked up once: the hot path

    def close(self) -> None:
        if self.fd >= 0:
            self.run = None
            if self._ring_buf is not None:
                ffi.release(self._ring_buf)
                self._ring_buf = None
            self.run_view.release()
            self.mm.close()
            os.close(self.fd)
            self.fd = -1

    def run_once(self) -> int:
        """KVM_RUN; returns the exit reason (KVM_EXIT_INTR when a signal cut it short)."""
        if lib.onekvm_ioctl_int(self.fd, self._kvm_run, 0) < 0:
            err = ffi.errno
            if err in (errno.EINTR, errno.EAGAIN):
                return lib.KVM_EXIT_INTR
            raise GuestError(f"vcpu{self.index}: KVM_RUN failed: {os.strerror(err)}")
        return self.run.exit_reason

    def coalesced_ring(self) -> Any:
        """The coalesced MMIO/PIO ring (page KVM_COALESCED_MMIO_PAGE_OFFSET of this mapping), or None."""
        off = lib.KVM_COALESCED_MMIO_PAGE_OFFSET * PAGE_SIZE
        if len(self.mm) < off + PAGE_SIZE:
            return None
        self._ring_buf = ffi.from_buffer(self.mm)  # kept: the pointer below borrows it
        return ffi.cast("struct kvm_coalesced_mmio_ring *", ffi.cast("char *", self._ring_buf) + off)

    def get_regs(self) -> Any:
        regs = ffi.new("struct kvm_regs *")
        _ioctl(self.fd, lib.KVM_GET_REGS, regs)
        return regs

    def set_regs(self, regs: Any) -> None:
        _ioctl(self.fd, lib.KVM_SET_REGS, regs)

    def get_sregs(self) -> Any:
        sregs = ffi.new("struct kvm_sregs *")
        _ioctl(self.fd, lib.KVM_GET_SREGS, sregs)
        return sregs

    def set_sregs(self, sregs: Any) -> None:
        _ioctl(self.fd, lib.KVM_SET_SREGS, sregs)

    def get_fpu(self) -> Any:
        fpu = ffi.new("struct kvm_fpu *")
        _ioctl(self.fd, lib.KVM_GET_FPU, fpu)
        return fpu

    def set_fpu(self, fpu: Any) -> None:
        _ioctl(self.fd, lib.KVM_SET_FPU, fpu)

    def set_cpuid(self, cpuid: Any) -> None:
        _ioctl(self.fd, lib.KVM_SET_CPUID2, cpuid)

    def set_msrs(self, msrs: dict[int, int]) -> int:
        req = abi.new_flex("struct kvm_msrs", len(msrs))
        req.nmsrs = len(msrs)
        for i, (index, value) in enumerate(msrs.items()):
            req.entries[i].index = index
            req.entries[i].data = value
        return _ioctl(self.fd, lib.KVM_SET_MSRS, req)

    def get_msrs(self, indices: list[int]) -> dict[int, int]:
        req = abi.new_flex("struct kvm_msrs", len(indices))
        req.nmsrs = len(indices)
        for i, index in enumerate(indices):
            req.entries[i].index = index
        n = _ioctl(self.fd, lib.KVM_GET_MSRS, req)
        return {int(req.entries[i].index): int(req.entries[i].data) for i in range(n)}

    def interrupt(self, vector: int) -> None:
        """KVM_INTERRUPT: only the vCPU's own thread calls it, so one argument struct serves."""
        irq = self._interrupt_arg
        irq.irq = vector
        _ioctl(self.fd, self._KVM_INTERRUPT, irq)

    def set_signal_mask(self, sigset: bytes) -> None:
        """Signals unblocked while inside KVM_RUN (kernel sigset_t bytes)."""
        req = abi.new_flex("struct kvm_signal_mask", len(sigset))
        req.len = len(sigset)
        ffi.memmove(req.sigset, sigset, len(sigset))
        _ioctl(self.fd, lib.KVM_SET_SIGNAL_MASK, req)

    def get_mp_state(self) -> int:
        st = ffi.new("struct kvm_mp_state *")
        _ioctl(self.fd, lib.KVM_GET_MP_STATE, st)
        return int(st.mp_state)

    def io_data(self) -> memoryview:
        io = self.run.io
        off = io.data_offset
        return self.run_view[off : off + io.size * io.count]


def cpuid_entries(cpuid: Any) -> Iterator[Any]:
    for i in range(cpuid.nent):
        yield cpuid.entries[i]
