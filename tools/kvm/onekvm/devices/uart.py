"""16550A UART (the 8250 family), as Linux's 8250 driver and its console use it."""

from __future__ import annotations

from collections import deque

from onekvm.irq import IrqLine

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost in the rig
if TYPE_CHECKING:
    from typing import Callable

COM1_BASE = 0x3F8
COM1_IRQ = 4

# Register offsets (DLAB=0 unless noted).
RBR_THR_DLL = 0
IER_DLM = 1
IIR_FCR = 2
LCR = 3
MCR = 4
LSR = 5
MSR = 6
SCR = 7

IER_RDI = 0x01  # received data available
IER_THRI = 0x02  # transmitter holding register empty
IER_RLSI = 0x04  # receiver line status
IER_MSI = 0x08  # modem status

IIR_NO_INT = 0x01
IIR_MSI = 0x00
IIR_THRI = 0x02
IIR_RDI = 0x04
IIR_RLSI = 0x06
IIR_FIFO_BITS = 0xC0

FCR_ENABLE = 0x01
FCR_CLEAR_RX = 0x02

LCR_DLAB = 0x80

MCR_DTR = 0x01
MCR_RTS = 0x02
MCR_OUT1 = 0x04
MCR_OUT2 = 0x08
MCR_LOOP = 0x10

LSR_DR = 0x01
LSR_OE = 0x02
LSR_BI = 0x10
LSR_THRE = 0x20
LSR_TEMT = 0x40
LSR_ERRORS = 0x1E

MSR_DELTAS = 0x0F
MSR_CTS = 0x10
MSR_DSR = 0x20
MSR_RI = 0x40
MSR_DCD = 0x80

# Input buffered host-side beyond the 16-byte hardware FIFO, so a paste is
# not lost; beyond this the console reader is told to wait.
RX_LIMIT = 4096


class Uart:
    """A 16550A whose transmitter is always empty: output leaves at once."""

    length = 8

    def __init__(self, irq: IrqLine, out: Callable[[int], None], name: str = "uart0") -> None:
        self.name = name
        self.irq = irq
        self.out = out
        self.rx: deque[int] = deque()
        self.ier = 0
        self.lcr = 0x03
        self.mcr = 0  # as after reset: OUT2 clear until a driver opens the port
        self.lsr = LSR_THRE | LSR_TEMT
        self.msr = MSR_DCD | MSR_DSR | MSR_CTS
        self.scr = 0
        self.dll = 0x0C
        self.dlm = 0
        self.fcr = 0
        self.thr_ipending = False
        self.tx_count = 0

    # -- interrupt state -------------------------------------------------
    def _iir(self) -> int:
        if self.ier & IER_RLSI and self.lsr & LSR_ERRORS:
            return IIR_RLSI
        if self.ier & IER_RDI and self.rx:
            return IIR_RDI
        if self.ier & IER_THRI and self.thr_ipending:
            return IIR_THRI
        if self.ier & IER_MSI and self.msr & MSR_DELTAS:
            return IIR_MSI
        return IIR_NO_INT

    def _update(self) -> None:
        self.irq.set(self._iir() != IIR_NO_INT)

    # -- host side -------------------------------------------------------
    def receive(self, data: bytes) -> int:
        """Queue input for the guest; returns how many bytes were taken."""
        if self.mcr & MCR_LOOP or not self.ier & IER_RDI or not self.mcr & MCR_OUT2:
            # Loopback disconnects the line, and until a driver has the port
            # open nobody reads: the input waits host-side instead of being
            # flushed by the driver's FIFO reset at open. "Open" is the
            # receive interrupt enabled with OUT2 set (on a PC, OUT2 connects
            # the UART's interrupt to the bus): Linux's autoconfig probe sets
            # IER to 0x0F for a moment with OUT2 clear, and its startup sets
            # OUT2 first and IER_RDI last, after its final RX reads.
            return 0
        room = max(0, RX_LIMIT - len(self.rx))
        take = data[:room]
        self.rx.extend(take)
        if take:
            self._update()
        return len(take)

    def rx_room(self) -> int:
        return max(0, RX_LIMIT - len(self.rx))

    def _transmit(self, value: int) -> None:
        if self.mcr & MCR_LOOP:
            if len(self.rx) < RX_LIMIT:
                self.rx.append(value)
            self._update()
        else:
            self.out(value)
            self.tx_count += 1
        # The holding register empties at once. With THRI enabled, dropping
        # and raising the line gives an edge-triggered PIC/IOAPIC a fresh
        # edge per byte; without it (the polled console path) nothing changes.
        self.thr_ipending = True
        if self.ier & IER_THRI:
            if self.irq.level:
                self.irq.set(0)
            self._update()

    # -- guest side ------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if size != 1:
            # Wider accesses read consecutive registers, as on an ISA bus.
            return sum(self.read(offset + i, 1) << (8 * i) for i in range(size) if offset + i < self.length)
        dlab = self.lcr & LCR_DLAB
        if offset == RBR_THR_DLL:
            if dlab:
                return self.dll
            value = self.rx.popleft() if self.rx else 0
            self._update()
            return value
        if offset == IER_DLM:
            return self.dlm if dlab else self.ier
        if offset == IIR_FCR:
            iir = self._iir()
            if iir == IIR_THRI:
                # Reading IIR acknowledges a THRE interrupt.
                self.thr_ipending = False
                self._update()
            return iir | (IIR_FIFO_BITS if self.fcr & FCR_ENABLE else 0)
        if offset == LCR:
            return self.lcr
        if offset == MCR:
            return self.mcr
        if offset == LSR:
            value = self.lsr | (LSR_DR if self.rx else 0)
            if self.lsr & LSR_ERRORS:
                self.lsr &= ~LSR_ERRORS
                self._update()
            return value
        if offset == MSR:
            if self.mcr & MCR_LOOP:
                m = self.mcr
                return (
                    (MSR_CTS if m & MCR_RTS else 0)
                    | (MSR_DSR if m & MCR_DTR else 0)
                    | (MSR_RI if m & MCR_OUT1 else 0)
                    | (MSR_DCD if m & MCR_OUT2 else 0)
                )
            value = self.msr
            if self.msr & MSR_DELTAS:
                self.msr &= ~MSR_DELTAS
                self._update()
            return value
        if offset == SCR:
            return self.scr
        return 0xFF

    def write(self, offset: int, size: int, value: int) -> None:
        if size != 1:
            for i in range(size):
                if offset + i < self.length:
                    self.write(offset + i, 1, (value >> (8 * i)) & 0xFF)
            return
        value &= 0xFF
        dlab = self.lcr & LCR_DLAB
        if offset == RBR_THR_DLL:
            if dlab:
                self.dll = value
            else:
                self._transmit(value)
        elif offset == IER_DLM:
            if dlab:
                self.dlm = value
                return
            old = self.ier
            self.ier = value & 0x0F
            if self.ier & IER_THRI and not old & IER_THRI:
                # Enabling THRI with an empty transmitter raises it at once:
                # Linux's start_tx waits for exactly this interrupt.
                self.thr_ipending = True
            self._update()
        elif offset == IIR_FCR:
            self.fcr = value & 0xC9
            if value & FCR_CLEAR_RX:
                self.rx.clear()
            self._update()
        elif offset == LCR:
            self.lcr = value
        elif offset == MCR:
            self.mcr = value & 0x1F
            self._update()
        elif offset == SCR:
            self.scr = value
        # LSR and MSR are read-only.
