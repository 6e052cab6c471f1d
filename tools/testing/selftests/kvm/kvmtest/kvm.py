# SPDX-License-Identifier: GPL-2.0-only
"""Device, VM and vCPU file descriptors, guest memory, and exits.

Thin on purpose: each method is one ioctl through the generated bindings
(lib.KVM_*, ffi structs), raising OSError with the errno on failure, so a
test states exactly which ioctl it expects to do what.
"""

from __future__ import annotations

import errno
import mmap
import os
import signal
import struct
import threading
from contextlib import contextmanager
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional, Sequence

from onekvm.abi import ffi, ioctl, lib, module_fingerprint, new_flex

from kvmtest import layout

CData = Any

EXIT_NAMES: dict[int, str] = {
    getattr(lib, n): n[len("KVM_"):] for n in dir(lib)
    if n.startswith("KVM_EXIT_") and n not in ("KVM_EXIT_IO_IN", "KVM_EXIT_IO_OUT")
}

VECTOR_NAMES = {0: "#DE", 1: "#DB", 2: "NMI", 3: "#BP", 4: "#OF", 5: "#BR", 6: "#UD", 7: "#NM",
                8: "#DF", 10: "#TS", 11: "#NP", 12: "#SS", 13: "#GP", 14: "#PF", 16: "#MF",
                17: "#AC", 18: "#MC", 19: "#XM"}

PAGE_SIZE = mmap.PAGESIZE


def exit_name(reason: int) -> str:
    return EXIT_NAMES.get(reason, f"exit {reason}")


def errno_name(code: int) -> str:
    return errno.errorcode.get(code, str(code))


@contextmanager
def raises_errno(*codes: int, what: str = "") -> Iterator[None]:
    """Assert that the block raises OSError with one of these errnos."""
    want = "/".join(errno_name(c) for c in codes)
    pre = f"{what}: " if what else ""
    try:
        yield
    except OSError as e:
        if e.errno not in codes:
            raise AssertionError(f"{pre}expected {want}, got {errno_name(e.errno or 0)}: {e}") from e
        return
    raise AssertionError(f"{pre}expected {want}, but the call succeeded")


CpuidEntry = Dict[str, int]
_CPUID_FIELDS = ("function", "index", "flags", "eax", "ebx", "ecx", "edx")


def cpuid_entry(e: CData) -> CpuidEntry:
    """A struct kvm_cpuid_entry2 as a dict (a plain copy: cffi items of an
    array do not keep the array alive)."""
    return {f: getattr(e, f) for f in _CPUID_FIELDS}


RUN_TIMEOUT = float(os.environ.get("ONEKVM_RUN_TIMEOUT", "30"))


def _ignore(signum: int, frame: object) -> None:
    pass


def _arm_alarm(seconds: float) -> bool:
    if threading.current_thread() is not threading.main_thread():
        return False
    handler = signal.getsignal(signal.SIGALRM)
    if handler in (signal.SIG_DFL, None):
        signal.signal(signal.SIGALRM, _ignore)
    elif handler is not _ignore:
        return False                # the caller uses SIGALRM itself
    signal.setitimer(signal.ITIMER_REAL, seconds)
    return True


class Failures:
    """Check several variants in one test and report every failing one:

        f = Failures()
        for name, value in CASES:
            with f.check(name):
                ...assertions...
        f.done()          # one AssertionError listing all failures
    """

    def __init__(self) -> None:
        self.msgs: list[str] = []

    @contextmanager
    def check(self, what: str) -> Iterator[None]:
        try:
            yield
        except AssertionError as e:
            self.msgs.append(f"{what}: {e}")

    def done(self) -> None:
        if self.msgs:
            raise AssertionError(f"{len(self.msgs)} failed:\n  " + "\n  ".join(self.msgs))


def _stock_kind() -> str:
    for mod in ("kvm_amd", "kvm_intel", "kvm_pvm"):
        if os.path.isdir(f"/sys/module/{mod}"):
            return mod
    return "kvm"


class Device:
    """/dev/kvm or /dev/onekvm (the system fd).

    kind: "onekvm" when the device answers KVM_CAP_ONEKVM_ABI_FINGERPRINT,
    else the stock module behind /dev/kvm ("kvm_amd", "kvm_intel",
    "kvm_pvm", or "kvm" when /sys is not there to tell).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = os.path.basename(path)
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        self.fingerprint = module_fingerprint(self.fd)
        self.is_onekvm = self.fingerprint is not None
        self.kind = "onekvm" if self.is_onekvm else _stock_kind()
        self._mmap_size: Optional[int] = None
        self._cpuid: Optional[list[CpuidEntry]] = None

    def __repr__(self) -> str:
        return f"Device({self.path!r}, kind={self.kind})"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def ioctl(self, request: int, arg: Any = 0) -> int:
        return ioctl(self.fd, request, arg)

    def check_extension(self, cap: int) -> int:
        return ioctl(self.fd, lib.KVM_CHECK_EXTENSION, cap)

    @property
    def vcpu_mmap_size(self) -> int:
        if self._mmap_size is None:
            self._mmap_size = ioctl(self.fd, lib.KVM_GET_VCPU_MMAP_SIZE)
        return self._mmap_size

    def supported_cpuid(self, nent: int = 256) -> list[CpuidEntry]:
        cpuid = new_flex("struct kvm_cpuid2", nent)
        cpuid.nent = nent
        ioctl(self.fd, lib.KVM_GET_SUPPORTED_CPUID, cpuid)
        return [cpuid_entry(cpuid.entries[i]) for i in range(cpuid.nent)]

    @property
    def default_cpuid(self) -> list[CpuidEntry]:
        """KVM_GET_SUPPORTED_CPUID, fetched once: what Guest gives its vCPUs."""
        if self._cpuid is None:
            self._cpuid = self.supported_cpuid()
        return self._cpuid

    def msr_index_list(self) -> list[int]:
        probe = new_flex("struct kvm_msr_list", 0)
        try:
            ioctl(self.fd, lib.KVM_GET_MSR_INDEX_LIST, probe)
        except OSError as e:
            if e.errno != errno.E2BIG:
                raise
        n = probe.nmsrs
        lst = new_flex("struct kvm_msr_list", n)
        lst.nmsrs = n
        ioctl(self.fd, lib.KVM_GET_MSR_INDEX_LIST, lst)
        return [lst.indices[i] for i in range(lst.nmsrs)]

    def create_vm(self) -> Vm:
        return Vm(self, ioctl(self.fd, lib.KVM_CREATE_VM, 0))


class Memory:
    """Anonymous host memory to back a memslot."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.map = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._buf = ffi.from_buffer(self.map)
        self.addr = int(ffi.cast("uintptr_t", self._buf))

    def close(self) -> None:
        if self._buf is not None:
            ffi.release(self._buf)
            self._buf = None
            self.map.close()


class Slot:
    def __init__(self, slot: int, gpa: int, mem: Memory, flags: int) -> None:
        self.slot, self.gpa, self.mem, self.flags = slot, gpa, mem, flags

    @property
    def size(self) -> int:
        return self.mem.size


class Vm:
    """A VM fd with its memslots (host memory owned here) and vCPUs."""

    def __init__(self, dev: Device, fd: int) -> None:
        self.dev, self.fd = dev, fd
        self.slots: dict[int, Slot] = {}
        self.vcpus: list[Vcpu] = []
        self._owned: list[Memory] = []

    def ioctl(self, request: int, arg: Any = 0) -> int:
        return ioctl(self.fd, request, arg)

    def close(self) -> None:
        for v in self.vcpus:
            v.close()
        self.vcpus.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        for m in self._owned:
            m.close()
        self._owned.clear()
        self.slots.clear()

    def __enter__(self) -> Vm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_extension(self, cap: int) -> int:
        return ioctl(self.fd, lib.KVM_CHECK_EXTENSION, cap)

    @staticmethod
    def region(slot: int, gpa: int, size: int, uaddr: int, flags: int = 0) -> CData:
        r = ffi.new("struct kvm_userspace_memory_region *")
        r.slot, r.flags, r.guest_phys_addr, r.memory_size, r.userspace_addr = slot, flags, gpa, size, uaddr
        return r

    def set_region(self, slot: int, gpa: int, size: int, uaddr: int, flags: int = 0) -> int:
        """The raw ioctl: no bookkeeping (for error-path tests)."""
        return ioctl(self.fd, lib.KVM_SET_USER_MEMORY_REGION, self.region(slot, gpa, size, uaddr, flags))

    def add_memory(self, slot: int, gpa: int, size: int, flags: int = 0,
                   mem: Optional[Memory] = None) -> Slot:
        """Create (or replace) a slot backed by new anonymous memory (or `mem`)."""
        if mem is None:
            mem = Memory(size)
            self._owned.append(mem)
        self.set_region(slot, gpa, size, mem.addr, flags)
        s = self.slots[slot] = Slot(slot, gpa, mem, flags)
        return s

    def move_memory(self, slot: int, gpa: int) -> None:
        s = self.slots[slot]
        self.set_region(slot, gpa, s.size, s.mem.addr, s.flags)
        s.gpa = gpa

    def delete_memory(self, slot: int) -> None:
        s = self.slots.pop(slot)
        self.set_region(slot, s.gpa, 0, s.mem.addr, s.flags)

    def _find(self, gpa: int, n: int) -> tuple[Memory, int]:
        for s in self.slots.values():
            if s.gpa <= gpa and gpa + n <= s.gpa + s.size:
                return s.mem, gpa - s.gpa
        raise ValueError(f"guest range {gpa:#x}+{n:#x} is not inside one memslot")

    def read(self, gpa: int, n: int) -> bytes:
        mem, off = self._find(gpa, n)
        return mem.map[off:off + n]

    def write(self, gpa: int, data: bytes) -> None:
        mem, off = self._find(gpa, len(data))
        mem.map[off:off + len(data)] = data

    def read_u(self, gpa: int, size: int) -> int:
        return int.from_bytes(self.read(gpa, size), "little")

    def write_u(self, gpa: int, size: int, value: int) -> None:
        self.write(gpa, (value & ((1 << (size * 8)) - 1)).to_bytes(size, "little"))

    def create_vcpu(self, vcpu_id: Optional[int] = None) -> Vcpu:
        if vcpu_id is None:
            vcpu_id = len(self.vcpus)
        v = Vcpu(self, ioctl(self.fd, lib.KVM_CREATE_VCPU, vcpu_id), vcpu_id)
        self.vcpus.append(v)
        return v


class Exit:
    """A snapshot of kvm_run after KVM_RUN returned (fields of the exit type)."""

    def __init__(self, vcpu: Vcpu) -> None:
        run = vcpu.run
        self.vcpu = vcpu
        self.reason: int = run.exit_reason
        self.name = exit_name(self.reason)
        self.ready_for_interrupt_injection: int = run.ready_for_interrupt_injection
        self.if_flag: int = run.if_flag
        self.data = b""
        if self.reason == lib.KVM_EXIT_IO:
            io = run.io
            self.direction, self.size, self.port, self.count = io.direction, io.size, io.port, io.count
            self.data_offset = io.data_offset
            n = self.size * self.count
            if 0 < n and self.data_offset + n <= vcpu.mmap_size:
                self.data = vcpu.mapping[self.data_offset:self.data_offset + n]
        elif self.reason == lib.KVM_EXIT_MMIO:
            m = run.mmio
            self.addr, self.len, self.is_write = m.phys_addr, m.len, bool(m.is_write)
            self.data = bytes(m.data[0:min(self.len, 8)])
        elif self.reason == lib.KVM_EXIT_INTERNAL_ERROR:
            ie = run.internal
            self.suberror, self.ndata = ie.suberror, ie.ndata
            self.internal_data = [ie.data[i] for i in range(min(ie.ndata, 16))]
        elif self.reason == lib.KVM_EXIT_FAIL_ENTRY:
            self.hardware_entry_failure_reason = run.fail_entry.hardware_entry_failure_reason
        elif self.reason == lib.KVM_EXIT_UNKNOWN:
            self.hardware_exit_reason = run.hw.hardware_exit_reason

    @property
    def value(self) -> int:
        """IO/MMIO data as a little-endian integer."""
        return int.from_bytes(self.data, "little")

    def is_guest_exception(self) -> bool:
        return (self.reason == lib.KVM_EXIT_IO and self.direction == lib.KVM_EXIT_IO_OUT
                and self.port == layout.PORT_EXC)

    def describe(self) -> str:
        if self.is_guest_exception():
            return self.vcpu.describe_guest_exception()
        s = self.name
        if self.reason == lib.KVM_EXIT_IO:
            d = "out" if self.direction == lib.KVM_EXIT_IO_OUT else "in"
            s += f" {d} port {self.port:#x} size {self.size} count {self.count}"
            if d == "out":
                s += f" data {self.data.hex()}"
        elif self.reason == lib.KVM_EXIT_MMIO:
            s += f" {'write' if self.is_write else 'read'} {self.addr:#x} len {self.len}"
            if self.is_write:
                s += f" data {self.data.hex()}"
        elif self.reason == lib.KVM_EXIT_INTERNAL_ERROR:
            s += f" suberror {self.suberror} data {[hex(d) for d in self.internal_data]}"
        elif self.reason == lib.KVM_EXIT_FAIL_ENTRY:
            s += f" hardware reason {self.hardware_entry_failure_reason:#x}"
        elif self.reason == lib.KVM_EXIT_UNKNOWN:
            s += f" hardware exit reason {self.hardware_exit_reason:#x}"
        try:
            s += f" (rip {self.vcpu.get_regs().rip:#x})"
        except OSError:
            pass
        return s

    def __repr__(self) -> str:
        return f"<Exit {self.describe()}>"


class GuestException(AssertionError):
    pass


class Vcpu:
    """A vCPU fd with its mmap'ed kvm_run."""

    def __init__(self, vm: Vm, fd: int, vcpu_id: int) -> None:
        self.vm, self.fd, self.id = vm, fd, vcpu_id
        self.mmap_size = vm.dev.vcpu_mmap_size
        # The mapping keeps the vCPU (and so the VM) alive: close() unmaps it
        # for certain, so that the VM really goes away with its fds.
        self.mapping = mmap.mmap(fd, self.mmap_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._buf = ffi.from_buffer(self.mapping)
        self.run = ffi.cast("struct kvm_run *", self._buf)
        self.last: Optional[Exit] = None

    def close(self) -> None:
        if self.fd >= 0:
            self.run = None
            self.last = None
            ffi.release(self._buf)
            self.mapping.close()
            os.close(self.fd)
            self.fd = -1

    def ioctl(self, request: int, arg: Any = 0) -> int:
        return ioctl(self.fd, request, arg)

    # --- registers ---------------------------------------------------------

    def get_regs(self) -> CData:
        regs = ffi.new("struct kvm_regs *")
        ioctl(self.fd, lib.KVM_GET_REGS, regs)
        return regs

    def set_regs(self, regs: Optional[CData] = None, **fields: int) -> None:
        """SET_REGS with `regs`, or GET_REGS, change `fields`, SET_REGS."""
        if regs is None:
            regs = self.get_regs()
        for k, v in fields.items():
            setattr(regs, k, v)
        ioctl(self.fd, lib.KVM_SET_REGS, regs)

    @staticmethod
    def blank_regs(**fields: int) -> CData:
        """A zeroed struct kvm_regs with `fields` set."""
        regs = ffi.new("struct kvm_regs *")
        for k, v in fields.items():
            setattr(regs, k, v)
        return regs

    def get_sregs(self) -> CData:
        sregs = ffi.new("struct kvm_sregs *")
        ioctl(self.fd, lib.KVM_GET_SREGS, sregs)
        return sregs

    def set_sregs(self, sregs: CData) -> None:
        ioctl(self.fd, lib.KVM_SET_SREGS, sregs)

    def get_fpu(self) -> CData:
        fpu = ffi.new("struct kvm_fpu *")
        ioctl(self.fd, lib.KVM_GET_FPU, fpu)
        return fpu

    def set_fpu(self, fpu: CData) -> None:
        ioctl(self.fd, lib.KVM_SET_FPU, fpu)

    def get_xsave(self) -> CData:
        xs = ffi.new("struct kvm_xsave *")
        ioctl(self.fd, lib.KVM_GET_XSAVE, xs)
        return xs

    def set_xsave(self, xs: CData) -> None:
        ioctl(self.fd, lib.KVM_SET_XSAVE, xs)

    def get_msrs(self, indices: Sequence[int]) -> dict[int, int]:
        """GET_MSRS; raises AssertionError unless every MSR was read."""
        msrs = self.msrs_struct({i: 0 for i in indices})
        n = ioctl(self.fd, lib.KVM_GET_MSRS, msrs)
        if n != len(indices):
            raise AssertionError(f"KVM_GET_MSRS read {n} of {len(indices)}: "
                                 f"MSR {indices[n]:#x} refused")
        return {msrs.entries[i].index: msrs.entries[i].data for i in range(n)}

    def get_msr(self, index: int) -> int:
        return self.get_msrs([index])[index]

    def set_msrs(self, values: Mapping[int, int]) -> int:
        """SET_MSRS; returns how many were set (the ioctl's result)."""
        return ioctl(self.fd, lib.KVM_SET_MSRS, self.msrs_struct(values))

    @staticmethod
    def msrs_struct(values: Mapping[int, int]) -> CData:
        msrs = new_flex("struct kvm_msrs", len(values))
        msrs.nmsrs = len(values)
        for i, (k, v) in enumerate(values.items()):
            msrs.entries[i].index, msrs.entries[i].data = k, v
        return msrs

    def set_cpuid(self, entries: Iterable[Mapping[str, int]]) -> None:
        """SET_CPUID2 from dicts with function/index/flags/eax/ebx/ecx/edx."""
        ents = list(entries)
        cpuid = new_flex("struct kvm_cpuid2", len(ents))
        cpuid.nent = len(ents)
        for i, e in enumerate(ents):
            for k, v in e.items():
                setattr(cpuid.entries[i], k, v)
        ioctl(self.fd, lib.KVM_SET_CPUID2, cpuid)

    def get_cpuid(self, nent: int = 256) -> list[CpuidEntry]:
        cpuid = new_flex("struct kvm_cpuid2", nent)
        cpuid.nent = nent
        ioctl(self.fd, lib.KVM_GET_CPUID2, cpuid)
        return [cpuid_entry(cpuid.entries[i]) for i in range(cpuid.nent)]

    def get_mp_state(self) -> int:
        mp = ffi.new("struct kvm_mp_state *")
        ioctl(self.fd, lib.KVM_GET_MP_STATE, mp)
        return mp.mp_state

    def set_mp_state(self, state: int) -> None:
        mp = ffi.new("struct kvm_mp_state *")
        mp.mp_state = state
        ioctl(self.fd, lib.KVM_SET_MP_STATE, mp)

    def get_events(self) -> CData:
        ev = ffi.new("struct kvm_vcpu_events *")
        ioctl(self.fd, lib.KVM_GET_VCPU_EVENTS, ev)
        return ev

    def set_events(self, ev: CData) -> None:
        ioctl(self.fd, lib.KVM_SET_VCPU_EVENTS, ev)

    def clear_events(self) -> None:
        """No exception, interrupt or NMI pending or injected, NMIs unmasked,
        no interrupt shadow."""
        ev = ffi.new("struct kvm_vcpu_events *")
        ev.flags = lib.KVM_VCPUEVENT_VALID_NMI_PENDING | lib.KVM_VCPUEVENT_VALID_SHADOW
        ioctl(self.fd, lib.KVM_SET_VCPU_EVENTS, ev)

    def interrupt(self, vector: int) -> None:
        irq = ffi.new("struct kvm_interrupt *")
        irq.irq = vector
        ioctl(self.fd, lib.KVM_INTERRUPT, irq)

    def nmi(self) -> None:
        ioctl(self.fd, lib.KVM_NMI, 0)

    # --- running -----------------------------------------------------------

    def run_raw(self) -> int:
        """KVM_RUN; returns the exit reason without a snapshot (fast paths)."""
        ioctl(self.fd, lib.KVM_RUN, 0)
        return self.run.exit_reason

    def run_once(self, timeout: Optional[float] = None) -> Exit:
        """KVM_RUN and a snapshot of the exit.

        A guest that never exits (a hypervisor bug, or a test's) fails the
        call after `timeout` seconds (default RUN_TIMEOUT, $ONEKVM_RUN_TIMEOUT)
        instead of hanging the run: SIGALRM interrupts KVM_RUN.  Only in the
        main thread, and only if SIGALRM is not handled already.
        """
        t = RUN_TIMEOUT if timeout is None else timeout
        armed = t > 0 and _arm_alarm(t)
        try:
            ioctl(self.fd, lib.KVM_RUN, 0)
        except OSError as e:
            if armed and e.errno == errno.EINTR and signal.getitimer(signal.ITIMER_REAL)[0] == 0:
                raise AssertionError(f"KVM_RUN did not return within {t:g} s "
                                     f"(guest RIP {self.get_regs().rip:#x})") from None
            raise
        finally:
            if armed:
                signal.setitimer(signal.ITIMER_REAL, 0)
        self.last = Exit(self)
        return self.last

    def needs_completion(self) -> bool:
        """The last exit was an IN or an MMIO read: the next KVM_RUN will
        complete it into the guest's registers (even after SET_REGS)."""
        r = self.run
        return bool((r.exit_reason == lib.KVM_EXIT_IO and r.io.direction == lib.KVM_EXIT_IO_IN)
                    or (r.exit_reason == lib.KVM_EXIT_MMIO and not r.mmio.is_write))

    def pio_write(self, data: bytes) -> None:
        """Fill the data of the pending IN exit (before the next KVM_RUN)."""
        off = self.run.io.data_offset
        self.mapping[off:off + len(data)] = data

    def mmio_complete(self, data: bytes) -> None:
        """Fill the data of the pending MMIO read exit."""
        ffi.memmove(self.run.mmio.data, data, len(data))

    def describe_guest_exception(self) -> str:
        vec, err, rip, cr2 = struct.unpack("<IIQQ", self.vm.read(layout.MAILBOX, 24))
        name = VECTOR_NAMES.get(vec, f"vector {vec}")
        s = f"guest exception {name}({err:#x}) at rip {rip:#x}"
        if vec == 14:
            s += f" cr2 {cr2:#x}"
        return s

    def guest_exception(self) -> tuple[int, int, int]:
        """(vector, error code, rip) stored by the exception stubs."""
        vec, err, rip = struct.unpack("<IIQ", self.vm.read(layout.MAILBOX, 16))
        return vec, err, rip

    def expect(self, reason: int, what: str = "") -> Exit:
        """KVM_RUN and assert the exit reason."""
        e = self.run_once()
        if e.reason != reason:
            cls = GuestException if e.is_guest_exception() else AssertionError
            raise cls(f"{what + ': ' if what else ''}expected {exit_name(reason)}, got {e.describe()}")
        return e

    def expect_io(self, port: int, out: bool, size: int = 1, count: int = 1, what: str = "") -> Exit:
        e = self.expect(lib.KVM_EXIT_IO, what)
        want = (lib.KVM_EXIT_IO_OUT if out else lib.KVM_EXIT_IO_IN, port, size, count)
        got = (e.direction, e.port, e.size, e.count)
        if got != want:
            cls = GuestException if e.is_guest_exception() else AssertionError
            raise cls(f"{what + ': ' if what else ''}expected IO {'out' if out else 'in'} port {port:#x} "
                      f"size {size} count {count}, got {e.describe()}")
        return e

    def expect_out(self, port: int, size: int = 1, what: str = "") -> int:
        """Run to an OUT of `size` bytes on `port`; return the value written."""
        return self.expect_io(port, True, size, 1, what).value

    def expect_in(self, port: int, value: int, size: int = 1, what: str = "") -> None:
        """Run to an IN of `size` bytes from `port`; answer `value`."""
        self.expect_io(port, False, size, 1, what)
        self.pio_write(value.to_bytes(size, "little"))

    def expect_done(self, what: str = "") -> int:
        """Run to the conventional `out %al, $PORT_DONE`; return AL."""
        return self.expect_out(layout.PORT_DONE, 1, what)

    def expect_mmio(self, addr: int, length: int, write: bool, what: str = "") -> Exit:
        e = self.expect(lib.KVM_EXIT_MMIO, what)
        if (e.addr, e.len, e.is_write) != (addr, length, write):
            raise AssertionError(f"{what + ': ' if what else ''}expected MMIO "
                                 f"{'write' if write else 'read'} {addr:#x} len {length}, got {e.describe()}")
        return e

    def expect_mmio_write(self, addr: int, length: int, what: str = "") -> int:
        return self.expect_mmio(addr, length, True, what).value

    def expect_mmio_read(self, addr: int, length: int, value: int, what: str = "") -> None:
        self.expect_mmio(addr, length, False, what)
        self.mmio_complete(value.to_bytes(length, "little"))
