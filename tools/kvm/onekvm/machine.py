"""A virtual machine: memory, devices, firmware tables, kernel, and the vCPU threads.

Threads: one per vCPU (KVM_RUN and exit handling), the caller's thread
runs the event loop (console input, control socket), and with the
userspace irqchip one timer thread delivers PIT interrupts. All device
models are called with `self.lock` held.
"""

from __future__ import annotations

import faulthandler
import os
import selectors
import signal
import struct
import threading
import time
from enum import IntEnum

from onekvm import cpuid, log
from onekvm.boot import loader, longmode
from onekvm.bus import IoBus, MmioBus
from onekvm.console import Console
from onekvm.devices import acpi_pm, i8042, pit, rtc, uart
from onekvm.devices.pci import CONFIG_ADDRESS, INTERRUPT_LINE, INTERRUPT_PIN, PciBus
from onekvm.devices.pic import Pic
from onekvm.errors import GuestError, UserError
from onekvm.irq import IrqLine
from onekvm.kvm import System, Vcpu, abi, ffi, lib
from onekvm.memory import GuestMemory
from onekvm.platform import acpi, layout
from onekvm.record import record
from onekvm.stats import Stats

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost in the rig
if TYPE_CHECKING:
    from typing import Any

KICK_SIGNAL = signal.SIGUSR1
DUMP_SIGNAL = signal.SIGUSR2

def _io_exit_struct() -> tuple[struct.Struct, int]:
    """kvm_run.io as one struct.Struct and its offset, from the generated layout.

    The most frequent exit reads five fields: one unpack is cheaper than
    five cffi attribute reads.
    """
    io = dict(ffi.typeof("struct kvm_run").fields)["io"]
    fmt, end = "<", 0
    for _name, f in io.type.fields:
        fmt += "x" * (f.offset - end) + {1: "B", 2: "H", 4: "I", 8: "Q"}[ffi.sizeof(f.type)]
        end = f.offset + ffi.sizeof(f.type)
    return struct.Struct(fmt), io.offset


APIC_BASE_BSP = 1 << 8  # IA32_APIC_BASE: this is the boot processor (EN, bit 11, left clear)
FLUSH_INTERVAL = 0.05


class ExitStatus(IntEnum):
    """The VMM's exit status for each way a guest ends."""

    POWEROFF = 0  # guest powered off, or stopped on request (Ctrl-A x, `onekvm stop`)
    ERROR = 1  # the hypervisor or the VMM failed
    USAGE = 2  # a user error (bad flag, missing file, ...)
    RESET = 3  # the guest asked for a reboot
    TRIPLE_FAULT = 4  # KVM_EXIT_SHUTDOWN


@record
class Config:
    kernel: str
    cmdline: str
    initrd: str | None = None
    initrd_data: bytes | None = None  # a generated initramfs, instead of a file
    mem_mib: int = 256
    cpus: int = 1
    device: str | None = None
    name: str | None = None
    irqchip: str = "auto"  # auto | kernel | user
    debug_ioport: bool = False
    stats: bool = False
    control: bool = True
    virtio: Any = None  # onekvm.virtio.VirtioOptions (issue #6), None for none
    kernel_cache: str = "off"  # bzImage: off | auto | use (boot/kcache.py); the CLI's default is use
    coalesce: bool = True  # UART THR writes through the coalesced PIO ring when offered
    halt_poll_ns: int | None = None  # KVM_CAP_HALT_POLL for this VM; None: the host's kvm.halt_poll_ns


class Sink:
    """Ports a PC has that the guest may poke and nothing needs to see (POST codes)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def read(self, offset: int, size: int) -> int:
        return (1 << (8 * size)) - 1

    def write(self, offset: int, size: int, value: int) -> None:
        pass


class VcpuState:
    def __init__(self, vcpu: Vcpu) -> None:
        self.vcpu = vcpu
        self.thread: threading.Thread | None = None
        self.in_guest = False
        self.parked = False


def _exit_names() -> dict[int, str]:
    return {
        getattr(lib, n): n[len("KVM_EXIT_") :].lower()
        for n in dir(lib)
        if n.startswith("KVM_EXIT_") and "_IO_" not in n
    }


class Machine:
    def __init__(self, cfg: Config, console: Console | None = None) -> None:
        self.cfg = cfg
        self.console = console or Console()
        self.stats = Stats() if cfg.stats else None
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.io = IoBus(self.stats, cfg.debug_ioport, self.lock)
        self.mmio = MmioBus(self.stats, cfg.debug_ioport, self.lock)
        self.mem = GuestMemory()
        self.exit_status: int | None = None
        self.exit_reason = ""
        self.stopping = False
        self.paused = False
        self.vcpus: list[VcpuState] = []
        self.pic: Pic | None = None
        self.pit: pit.Pit | None = None
        self.control: Any = None  # onekvm.control.ControlServer
        self.virtio: Any = None
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._pending_input = b""
        self._ring: Any = None  # coalesced PIO ring (struct kvm_coalesced_mmio_ring *), when in use
        self._ring_max = 0
        self._exit_names = {}
        self.system: System | None = None
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    # -- construction --------------------------------------------------------
    def _phase(self, name: str) -> None:
        if self.stats is not None:
            self.stats.phase(name)

    def _build(self) -> None:
        cfg = self.cfg
        self._phase("VMM imports done")
        mem_size = cfg.mem_mib * layout.MiB
        if mem_size < layout.MIN_MEM:
            raise UserError(f"memory too small: {cfg.mem_mib} MiB, need at least {layout.MIN_MEM // layout.MiB} MiB")
        if cfg.cpus < 1 or cfg.cpus > 255:
            raise UserError(f"bad vCPU count {cfg.cpus}: 1..255")
        # The user's files first: a typo should not need a working /dev/kvm to be reported.
        kernel_data = loader.read_file(cfg.kernel, "kernel")
        initrd_data = loader.read_file(cfg.initrd, "initrd") if cfg.initrd else cfg.initrd_data
        self._phase("kernel and initrd read")
        self.system = sysm = System(cfg.device)
        self._exit_names = _exit_names()
        self._IO_OUT = lib.KVM_EXIT_IO_OUT
        self._io_exit, self._io_offset = _io_exit_struct()

        if cfg.irqchip == "auto":
            self.kernel_irqchip = bool(sysm.has("IRQCHIP"))
        elif cfg.irqchip == "kernel":
            if not sysm.has("IRQCHIP"):
                raise UserError(f"{sysm.path} has no in-kernel irqchip (KVM_CAP_IRQCHIP); use --irqchip user")
            self.kernel_irqchip = True
        else:
            self.kernel_irqchip = False
        if cfg.cpus > 1 and not self.kernel_irqchip:
            raise UserError("more than one vCPU needs the in-kernel irqchip (no userspace APIC model)")
        self.immediate_exit = bool(sysm.has("IMMEDIATE_EXIT"))

        self.vm = vm = sysm.create_vm()
        self._phase("VM created")
        if cfg.halt_poll_ns is not None:
            if not sysm.has("HALT_POLL"):
                raise UserError(f"--halt-poll-ns: {sysm.path} cannot set a VM's halt polling (no KVM_CAP_HALT_POLL)")
            vm.enable_cap(lib.KVM_CAP_HALT_POLL, cfg.halt_poll_ns)
        if sysm.has("SET_TSS_ADDR"):
            vm.set_tss_addr(layout.TSS_ADDR)
        if self.kernel_irqchip:
            vm.create_irqchip()
            if sysm.has("PIT2"):
                vm.create_pit2()
            set_level = self._kernel_irq
        else:
            set_level = self._user_irq

        for gpa, size in layout.ram_ranges(mem_size):
            region = self.mem.add(gpa, size)
            vm.add_memory(gpa, size, region.host_addr)

        self._add_devices(set_level)
        self._phase("memory and devices")

        # The _PRT routes each device's INTx pin to the GSI it drives, as written in its Interrupt Line.
        pci_irqs = [
            (slot, dev.config_read(INTERRUPT_PIN, 1) - 1, dev.config_read(INTERRUPT_LINE, 1))
            for slot, dev in self.pci.slots.items()
            if dev.config_read(INTERRUPT_PIN, 1)
        ]
        tables = acpi.build(layout.BIOS_START, cfg.cpus, apic=self.kernel_irqchip, pci_irqs=pci_irqs)
        self.mem.write(layout.BIOS_START, tables.blob)
        self.boot = loader.load_image(
            self.mem,
            mem_size,
            kernel_data,
            cfg.cmdline,
            initrd_data or b"",
            tables.rsdp_addr,
            name=cfg.kernel,
            kernel_cache=cfg.kernel_cache,
        )
        if self.stats is not None:
            self.stats.phase(f"kernel loaded ({self.boot.kind})")
        lm = longmode.setup(self.mem)

        supported = sysm.supported_cpuid()
        for i in range(cfg.cpus):
            vcpu = vm.create_vcpu(i)
            entries = abi.new_flex("struct kvm_cpuid2", supported.nent)
            ffi.memmove(entries, supported, ffi.sizeof(entries[0]))
            cpuid.apply(entries, i, cfg.cpus, apic=self.kernel_irqchip)
            vcpu.set_cpuid(entries)
            if i == 0:
                self._setup_bsp(vcpu, lm)
            self.vcpus.append(VcpuState(vcpu))
        if cfg.coalesce and sysm.has("COALESCED_PIO") and sysm.has("COALESCED_MMIO"):
            self._setup_coalescing(self.vcpus[0].vcpu)

    def _setup_coalescing(self, vcpu: Vcpu) -> None:
        """Console output without an exit per byte: THR writes go to the ring.

        Only port COM1_BASE is coalesced, i.e. THR (and DLL while DLAB is set).
        The ring is drained, in order, before any exit is handled (so every
        register access the guest makes afterwards sees those writes) and by
        the event loop, so output leaves even while the guest does not exit.
        The UART's reaction to a THR write (a THRE interrupt) comes at the next
        drain; Linux's 8250 driver reads IIR/LSR after each burst, an exit.
        """
        ring = vcpu.coalesced_ring()
        if ring is None:
            return
        self.vm.register_coalesced(uart.COM1_BASE, 1, pio=True)
        self._ring_max = (4096 - ffi.sizeof("struct kvm_coalesced_mmio_ring")) // ffi.sizeof(
            "struct kvm_coalesced_mmio"
        )
        self._ring = ring

    def drain_coalesced(self) -> None:
        """Apply the writes the hypervisor buffered in the coalesced ring, oldest first."""
        ring = self._ring
        if ring is None:
            return
        with self.lock:
            first = ring.first
            last = ring.last
            if first >= self._ring_max or last >= self._ring_max:
                return  # not a ring state the kernel writes: ignore rather than index out of the page
            entries = ring.coalesced_mmio
            while first != last:
                e = entries[first]
                n = min(int(e.len), 8)
                value = int.from_bytes(ffi.buffer(e.data, n), "little")
                if e.pio:
                    self.io.write(int(e.phys_addr), n, value)
                else:
                    self.mmio.write(int(e.phys_addr), n, value)
                first = (first + 1) % self._ring_max
                ring.first = first

    def _add_devices(self, set_level: Any) -> None:
        io = self.io
        self.uart = uart.Uart(IrqLine(uart.COM1_IRQ, set_level), self.console.putc)
        io.register(uart.COM1_BASE, uart.Uart.length, self.uart)
        kbd = i8042.I8042(reset=lambda: self.request_exit(ExitStatus.RESET, "guest requested a reset (reboot)"))
        io.register(i8042.DATA_PORT, 1, kbd.port(i8042.DATA_PORT))
        io.register(i8042.CMD_PORT, 1, kbd.port(i8042.CMD_PORT))
        io.register(rtc.INDEX_PORT, rtc.Rtc.length, rtc.Rtc())
        self.pci = PciBus(io, self.mmio)
        io.register(CONFIG_ADDRESS, PciBus.length, self.pci)
        io.register(acpi_pm.PM_BASE, acpi_pm.PM_LENGTH, acpi_pm.AcpiPm(self._poweroff))
        io.register(0x80, 1, Sink("post"))
        if not self.kernel_irqchip:
            self.pic = Pic(notify=self._irq_raised)
            for base, length, dev in self.pic.ports():
                io.register(base, length, dev)
            self.pit = pit.Pit(irq0=self._pit_irq0, reprogrammed=self.cond.notify_all)
            io.register(pit.PIT_BASE, pit.Pit.length, self.pit)
            io.register(pit.PORT_B, 1, self.pit.port_b_device())
        if self.cfg.virtio is not None and self.cfg.virtio.devices:
            # Imported only when asked for: every import costs seconds in the rig's L1.
            from onekvm import virtio

            self.virtio = virtio.attach(self, self.cfg.virtio, set_level)

    def _setup_bsp(self, vcpu: Vcpu, lm: longmode.LongModeState) -> None:
        sregs = vcpu.get_sregs()
        for seg, name in (
            (lm.cs, "cs"),
            (lm.ds, "ds"),
            (lm.ds, "es"),
            (lm.ds, "fs"),
            (lm.ds, "gs"),
            (lm.ds, "ss"),
            (lm.tr, "tr"),
        ):
            dst = getattr(sregs, name)
            for field in ("base", "limit", "selector", "type", "present", "dpl", "db", "s", "l", "g", "avl"):
                setattr(dst, field, getattr(seg, field))
            dst.unusable = 0
        sregs.gdt.base = lm.gdt_base
        sregs.gdt.limit = lm.gdt_limit
        sregs.idt.base = 0
        sregs.idt.limit = 0
        sregs.cr0 = lm.cr0
        sregs.cr3 = lm.cr3
        sregs.cr4 = lm.cr4
        sregs.efer = lm.efer
        if not self.kernel_irqchip:
            # KVM derives CPUID's APIC bit from IA32_APIC_BASE.EN: with no local
            # APIC model anywhere, the guest must see it disabled.
            sregs.apic_base = layout.LAPIC_ADDR | APIC_BASE_BSP
        vcpu.set_sregs(sregs)
        regs = ffi.new("struct kvm_regs *")
        regs.rflags = 0x2
        regs.rip = self.boot.entry
        regs.rsi = self.boot.boot_params_addr
        vcpu.set_regs(regs)
        fpu = ffi.new("struct kvm_fpu *")
        fpu.fcw = 0x37F
        fpu.mxcsr = 0x1F80
        vcpu.set_fpu(fpu)

    # -- interrupts -------------------------------------------------------------
    def _kernel_irq(self, irq: int, level: int) -> None:
        self.vm.irq_line(irq, level)

    def _user_irq(self, irq: int, level: int) -> None:
        assert self.pic is not None
        with self.lock:
            self.pic.set_irq(irq, level)

    def _pit_irq0(self) -> None:
        assert self.pic is not None
        self.pic.set_irq(0, 1)
        self.pic.set_irq(0, 0)

    def _irq_raised(self) -> None:
        """The userspace PIC's output went up: wake vCPU 0 wherever it is."""
        self.cond.notify_all()
        if self.vcpus and self.vcpus[0].in_guest:
            self._kick(self.vcpus[0])

    def _kick(self, st: VcpuState) -> None:
        if self.immediate_exit and st.vcpu.run is not None:
            st.vcpu.run.immediate_exit = 1
        t = st.thread
        if t is not None and t.ident is not None and t.is_alive():
            try:
                signal.pthread_kill(t.ident, KICK_SIGNAL)
            except (ProcessLookupError, OSError):
                pass

    # -- ending ---------------------------------------------------------------
    def _poweroff(self) -> None:
        if self.stats is not None:
            self.stats.phase("guest powers off")
        self.request_exit(ExitStatus.POWEROFF, "guest powered off")

    def request_exit(self, status: int, reason: str) -> None:
        """First caller decides the status; every vCPU is kicked out of the guest."""
        with self.lock:
            if self.exit_status is None:
                self.exit_status = status
                self.exit_reason = reason
            self.stopping = True
            self.cond.notify_all()
        for st in self.vcpus:
            self._kick(st)
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    # -- vCPU threads -----------------------------------------------------------
    def _vcpu_main(self, st: VcpuState) -> None:
        try:
            if not self.immediate_exit:
                # Without immediate_exit, the kick signal stays blocked outside
                # KVM_RUN and is unblocked inside it, so none is ever lost.
                signal.pthread_sigmask(signal.SIG_BLOCK, {KICK_SIGNAL})
                st.vcpu.set_signal_mask(b"\0" * 8)
            self._vcpu_loop(st)
        except GuestError as e:
            self.request_exit(ExitStatus.ERROR, str(e))
        except UserError as e:
            self.request_exit(ExitStatus.USAGE, str(e))
        except Exception as e:  # noqa: BLE001 - a VMM bug must still end the run cleanly
            if os.environ.get("ONEKVM_DEBUG"):
                import traceback

                traceback.print_exc()
            self.request_exit(ExitStatus.ERROR, f"vcpu{st.vcpu.index}: internal error: {e!r}")

    def _vcpu_loop(self, st: VcpuState) -> None:
        vcpu = st.vcpu
        run = vcpu.run
        user_irq = self.pic is not None and vcpu.index == 0
        stats = self.stats
        names = self._exit_names
        EXIT_IO = lib.KVM_EXIT_IO
        EXIT_MMIO = lib.KVM_EXIT_MMIO
        EXIT_HLT = lib.KVM_EXIT_HLT
        EXIT_INTR = lib.KVM_EXIT_INTR
        EXIT_WINDOW = lib.KVM_EXIT_IRQ_WINDOW_OPEN
        ring = self._ring
        while True:
            if self.stopping:
                return
            if self.paused:
                self._park(st)
                continue
            st.in_guest = True
            if user_irq:
                self._inject(vcpu)
            if stats is not None:
                t0 = time.perf_counter()
                reason = vcpu.run_once()
                stats.in_guest(time.perf_counter() - t0)
                stats.exit(names.get(reason, str(reason)))
                if not stats.phases.get("first exit") and reason == EXIT_IO:
                    stats.phase(f"first exit: vcpu{vcpu.index} port {vcpu.run.io.port:#x}")
                    stats.phases["first exit"] = 1.0
            else:
                reason = vcpu.run_once()
            st.in_guest = False
            if self.immediate_exit:
                run.immediate_exit = 0
            if ring is not None and ring.first != ring.last:
                self.drain_coalesced()
            if reason == EXIT_IO:
                self._handle_io(vcpu)
            elif reason == EXIT_MMIO:
                self._handle_mmio(vcpu)
            elif reason == EXIT_INTR or reason == EXIT_WINDOW:
                continue
            elif reason == EXIT_HLT:
                self._halt(vcpu)
            else:
                self._other_exit(vcpu, reason)

    def _inject(self, vcpu: Vcpu) -> None:
        """Userspace irqchip: deliver the PIC's vector when the guest can take it."""
        run = vcpu.run
        pic = self.pic
        with self.lock:
            if not pic.pending():
                run.request_interrupt_window = 0
                return
            if run.ready_for_interrupt_injection and run.if_flag:
                vcpu.interrupt(pic.acknowledge())
                # Ask for another window if more is queued behind it.
                run.request_interrupt_window = 1 if pic.pending() else 0
            else:
                run.request_interrupt_window = 1

    def _halt(self, vcpu: Vcpu) -> None:
        """HLT with the userspace irqchip: sleep until an interrupt or a stop/pause."""
        if self.pic is None:
            # No interrupt controller to wait on: a halted guest is done.
            self.request_exit(ExitStatus.ERROR, f"vcpu{vcpu.index}: halted with interrupts off and nothing to wake it")
            return
        if not vcpu.run.if_flag:
            # HLT with interrupts off: only NMI/INIT could wake it (Linux's
            # `halt -f` ends like this). Waiting would spin on pending IRQs.
            self.request_exit(ExitStatus.POWEROFF, "guest halted with interrupts disabled")
            return
        with self.cond:
            while not (self.pic.pending() or self.stopping or self.paused):
                self.cond.wait(1.0)

    def _park(self, st: VcpuState) -> None:
        with self.cond:
            st.parked = True
            self.cond.notify_all()
            while self.paused and not self.stopping:
                self.cond.wait()
            st.parked = False

    def _handle_io(self, vcpu: Vcpu) -> None:
        view = vcpu.run_view
        # One unpack instead of five cffi attribute reads: the most frequent exit.
        direction, size, port, count, off = self._io_exit.unpack_from(view, self._io_offset)
        bus = self.io
        out = direction == self._IO_OUT
        if count == 1:  # everything but rep ins/outs
            if out:
                bus.write(port, size, view[off] if size == 1 else int.from_bytes(view[off : off + size], "little"))
            elif size == 1:
                view[off] = bus.read(port, 1) & 0xFF
            else:
                view[off : off + size] = bus.read(port, size).to_bytes(size, "little")
            return
        for i in range(count):
            p = off + i * size
            if out:
                bus.write(port, size, int.from_bytes(view[p : p + size], "little"))
            else:
                view[p : p + size] = bus.read(port, size).to_bytes(size, "little")

    def _handle_mmio(self, vcpu: Vcpu) -> None:
        m = vcpu.run.mmio
        n = m.len
        buf = ffi.buffer(m.data)
        if m.is_write:
            self.mmio.write(m.phys_addr, n, int.from_bytes(buf[0:n], "little"))
        else:
            buf[0:n] = self.mmio.read(m.phys_addr, n).to_bytes(n, "little")

    def _other_exit(self, vcpu: Vcpu, reason: int) -> None:
        run = vcpu.run
        idx = vcpu.index
        if reason == lib.KVM_EXIT_SHUTDOWN:
            self.request_exit(ExitStatus.TRIPLE_FAULT, f"guest triple-faulted (vcpu{idx} shutdown)")
        elif reason == lib.KVM_EXIT_SYSTEM_EVENT:
            kind = run.system_event.type
            if kind == lib.KVM_SYSTEM_EVENT_SHUTDOWN:
                self._poweroff()
            elif kind == lib.KVM_SYSTEM_EVENT_RESET:
                self.request_exit(ExitStatus.RESET, "guest requested a reset (reboot)")
            else:
                self.request_exit(ExitStatus.ERROR, f"guest system event {kind} (crash)")
        elif reason == lib.KVM_EXIT_FAIL_ENTRY:
            code = run.fail_entry.hardware_entry_failure_reason
            self.request_exit(ExitStatus.ERROR, f"vcpu{idx}: VM entry failed (hardware reason {code:#x})")
        elif reason == lib.KVM_EXIT_INTERNAL_ERROR:
            sub = run.internal.suberror
            self.request_exit(
                ExitStatus.ERROR,
                f"vcpu{idx}: hypervisor internal error (suberror {sub}) at {self._where(vcpu)}{self._insn(run)}",
            )
        else:
            name = self._exit_names.get(reason, str(reason))
            self.request_exit(ExitStatus.ERROR, f"vcpu{idx}: unhandled exit {name} at {self._where(vcpu)}")

    @staticmethod
    def _insn(run: Any) -> str:
        """The instruction an emulation failure names, when the hypervisor gave its bytes."""
        ef = run.emulation_failure
        if run.internal.suberror != lib.KVM_INTERNAL_ERROR_EMULATION or not (
            ef.flags & lib.KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES
        ):
            return ""
        n = min(int(ef.insn_size), 15)
        return ", instruction " + (" ".join(f"{b:02x}" for b in ef.insn_bytes[0:n]) or "(none fetched)")

    def _where(self, vcpu: Vcpu) -> str:
        try:
            return f"rip {vcpu.get_regs().rip:#x}"
        except OSError:
            return "rip ?"

    # -- pause / resume / dump ------------------------------------------------------
    def pause(self, timeout: float = 5.0) -> None:
        with self.cond:
            self.paused = True
        for st in self.vcpus:
            self._kick(st)
        deadline = time.monotonic() + timeout
        with self.cond:
            while not all(st.parked for st in self.vcpus if st.thread is not None):
                left = deadline - time.monotonic()
                if left <= 0 or self.stopping:
                    break
                self.cond.wait(left)

    def resume(self) -> None:
        with self.cond:
            self.paused = False
            self.cond.notify_all()

    def dump(self) -> list[dict[str, Any]]:
        was_paused = self.paused
        if not was_paused:
            self.pause()
        try:
            out = []
            for st in self.vcpus:
                regs = st.vcpu.get_regs()
                sregs = st.vcpu.get_sregs()
                d: dict[str, Any] = {"vcpu": st.vcpu.index}
                for name, _ in ffi.typeof("struct kvm_regs").fields:
                    d[name] = int(getattr(regs, name))
                for name in ("cr0", "cr2", "cr3", "cr4", "efer", "apic_base"):
                    d[name] = int(getattr(sregs, name))
                d["cs"] = int(sregs.cs.selector)
                d["mp_state"] = st.vcpu.get_mp_state() if self.kernel_irqchip else None
                out.append(d)
            return out
        finally:
            if not was_paused:
                self.resume()

    # -- control socket ---------------------------------------------------------------
    def _control(self, msg: dict[str, Any]) -> dict[str, Any]:
        cmd = msg.get("cmd")
        if cmd == "info":
            return {
                "ok": True,
                "name": self.cfg.name,
                "pid": os.getpid(),
                "state": "paused" if self.paused else "running",
                "cpus": self.cfg.cpus,
                "mem_mib": self.cfg.mem_mib,
                "kernel": self.cfg.kernel,
                "device": self.system.path if self.system else None,
                "irqchip": "kernel" if self.kernel_irqchip else "user",
            }
        if cmd == "stop":
            self.request_exit(ExitStatus.POWEROFF, "stopped by `onekvm stop`")
            return {"ok": True}
        if cmd == "pause":
            self.pause()
            return {"ok": True}
        if cmd == "resume":
            self.resume()
            return {"ok": True}
        if cmd == "dump":
            return {"ok": True, "vcpus": self.dump()}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    def describe_devices(self) -> list[str]:
        """Interrupt controller and virtio state, for a guest that stopped making progress."""
        lines = [self.pic.describe()] if self.pic is not None else []
        if self.virtio is not None:
            lines += self.virtio.describe()
        return lines

    # -- the event loop ---------------------------------------------------------------------
    def run(self) -> int:
        """Run the guest to its end; returns the exit status (reason in exit_reason)."""
        old_handlers = self._install_signals()
        try:
            if self.cfg.control and self.cfg.name:
                from onekvm import control  # socket and json only when asked for

                try:
                    self.control = control.ControlServer(self.cfg.name, self._control)
                except control.ControlUnavailable as e:
                    log.warning("%s; running without a control socket", e)
            self.console.enter_raw()
            if self.pit is not None:
                t = threading.Thread(target=self._timer_main, name="pit", daemon=True)
                t.start()
                self._timer_thread = t
            if self.stats is not None:
                self.stats.phase("machine built, vCPUs start")
            for st in self.vcpus:
                st.thread = threading.Thread(
                    target=self._vcpu_main, args=(st,), name=f"vcpu{st.vcpu.index}", daemon=True
                )
                st.thread.start()
            self._loop()
        finally:
            if self.exit_status is None:
                self.request_exit(ExitStatus.ERROR, "interrupted")
            self._join()
            if self.stats is not None:
                self.stats.state = self.describe_devices()
            self.drain_coalesced()
            self.console.flush()
            self.console.restore()
            if self.control is not None:
                self.control.close()
                self.control = None
            for sig, handler in old_handlers.items():
                if sig == DUMP_SIGNAL:
                    faulthandler.unregister(sig)
                signal.signal(sig, handler)
        assert self.exit_status is not None
        return self.exit_status

    def _install_signals(self) -> dict[int, Any]:
        old: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return old
        # The kick signal only has to interrupt KVM_RUN; the handler does nothing.
        old[KICK_SIGNAL] = signal.signal(KICK_SIGNAL, lambda *_: None)
        # A VMM that seems hung: `kill -USR2 PID` prints every thread's Python stack to stderr
        # (faulthandler, from the signal handler itself, so a thread holding the GIL does not
        # stop it), then the interrupt controller's and the virtio rings' state (Python, once
        # the main thread runs: a guest that stalled is described before it powers off).
        old[DUMP_SIGNAL] = signal.signal(DUMP_SIGNAL, self._dump_state)
        try:
            faulthandler.register(DUMP_SIGNAL, all_threads=True, chain=True)
        except (OSError, ValueError, RuntimeError):
            pass  # stderr is no file (embedded, captured): no stacks, the state still comes

        def stop(signum: int, _frame: Any) -> None:
            self.request_exit(128 + signum, f"killed by signal {signal.Signals(signum).name}")

        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            old[sig] = signal.signal(sig, stop)
        return old

    def _dump_state(self, _signum: int, _frame: Any) -> None:
        text = "".join(f"onekvm: state {line}\n" for line in self.describe_devices())
        try:
            os.write(2, text.encode())
        except OSError:
            pass  # stderr gone: nothing to tell

    def _loop(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        console = self.console
        # stdin is watched only while nothing typed is still waiting for the
        # guest: input it has not taken yet is retried each FLUSH_INTERVAL.
        # (Watching a readable stdin meanwhile, e.g. a pipe at EOF, would
        # spin this thread and starve the vCPU threads of the GIL.)
        stdin_watchable = console.in_fd is not None and not console.eof
        stdin_registered = False
        if self.control is not None:
            sel.register(self.control.fileno(), selectors.EVENT_READ, "control")
        regular_stdin = False
        while not self.stopping:
            want_stdin = stdin_watchable and not console.eof and not self._pending_input
            if want_stdin and not stdin_registered and not regular_stdin:
                try:
                    sel.register(console.in_fd, selectors.EVENT_READ, "stdin")
                    stdin_registered = True
                except (ValueError, OSError):
                    regular_stdin = True  # e.g. a regular file: epoll refuses it; read it as the guest takes it
            elif not want_stdin and stdin_registered:
                sel.unregister(console.in_fd)
                stdin_registered = False
            if regular_stdin and want_stdin:
                console.read_input(self._deliver_input)
            events = sel.select(FLUSH_INTERVAL)
            for key, _ in events:
                if key.data == "wake":
                    try:
                        os.read(self._wake_r, 4096)
                    except OSError:
                        pass
                elif key.data == "stdin":
                    console.read_input(self._deliver_input)
                elif key.data == "control" and self.control is not None:
                    self.control.handle_ready()
            if console.quit_requested:
                self.request_exit(ExitStatus.POWEROFF, "quit from the console (Ctrl-A x)")
            if self._pending_input:
                self._deliver_input(b"")
            if self._ring is not None:
                self.drain_coalesced()
            console.flush()
        sel.close()

    def _deliver_input(self, data: bytes) -> None:
        data = self._pending_input + data
        if self.virtio is not None and self.virtio.console is not None:
            taken = self.virtio.receive(data)
        else:
            with self.lock:
                taken = self.uart.receive(data)
        self._pending_input = data[taken:]

    def _timer_main(self) -> None:
        """Userspace PIT: raise IRQ0 at each channel-0 deadline."""
        p = self.pit
        assert p is not None
        with self.cond:
            while not self.stopping:
                deadline = p.next_irq()
                now = time.monotonic_ns()
                if deadline is None:
                    self.cond.wait(1.0)
                elif now >= deadline:
                    p.expire(now)
                else:
                    self.cond.wait((deadline - now) / 1e9)

    def _join(self) -> None:
        for st in self.vcpus:
            t = st.thread
            if t is None:
                continue
            for _ in range(50):
                t.join(0.1)
                if not t.is_alive():
                    break
                self._kick(st)

    def close(self) -> None:
        if self.virtio is not None:
            self.virtio.close()  # device threads stop before guest memory goes
            self.virtio = None
        self._ring = None  # points into a vCPU mapping that goes with the VM
        if getattr(self, "vm", None) is not None:
            self.vm.close()
            self.vm = None
        if self.system is not None:
            self.system.close()
            self.system = None
        self.mem.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1
