from onekvm.devices import uart
from onekvm.irq import NullIrqLine


def make():
    out = []
    irq = NullIrqLine(4)
    u = uart.Uart(irq, out.append)
    return u, irq, out


def test_transmit_goes_out():
    u, _, out = make()
    for ch in b"hi\n":
        u.write(uart.RBR_THR_DLL, 1, ch)
    assert bytes(out) == b"hi\n"
    assert u.read(uart.LSR, 1) & (uart.LSR_THRE | uart.LSR_TEMT) == uart.LSR_THRE | uart.LSR_TEMT


def test_thri_raised_on_enable_and_acked_by_iir_read():
    u, irq, _ = make()
    assert irq.level == 0
    u.write(uart.IER_DLM, 1, uart.IER_THRI)
    assert irq.level == 1
    assert u.read(uart.IIR_FCR, 1) & 0x0F == uart.IIR_THRI
    assert irq.level == 0
    assert u.read(uart.IIR_FCR, 1) & 0x0F == uart.IIR_NO_INT


def test_each_byte_gives_a_fresh_edge():
    u, irq, _ = make()
    u.write(uart.IER_DLM, 1, uart.IER_THRI)
    irq.history.clear()
    u.write(uart.RBR_THR_DLL, 1, ord("a"))
    # low then high again: an edge-triggered controller latches a new request
    assert irq.history == [0, 1]


def open_port(u):
    """What Linux's serial8250 startup leaves: OUT2 (interrupts on the bus), then RLSI|RDI."""
    u.write(uart.MCR, 1, uart.MCR_OUT2 | uart.MCR_DTR | uart.MCR_RTS)
    u.write(uart.IER_DLM, 1, uart.IER_RLSI | uart.IER_RDI)


def test_receive_raises_rdi_until_drained():
    u, irq, _ = make()
    open_port(u)
    assert u.receive(b"ab") == 2
    assert irq.level == 1
    assert u.read(uart.LSR, 1) & uart.LSR_DR
    assert u.read(uart.IIR_FCR, 1) & 0x0F == uart.IIR_RDI
    assert u.read(uart.RBR_THR_DLL, 1) == ord("a")
    assert u.read(uart.RBR_THR_DLL, 1) == ord("b")
    assert irq.level == 0
    assert not u.read(uart.LSR, 1) & uart.LSR_DR


def test_input_waits_until_the_driver_listens():
    u, _, _ = make()
    assert u.receive(b"early") == 0
    open_port(u)
    assert u.receive(b"late") == 4


def test_input_waits_through_the_autoconfig_probe():
    """Linux's probe sets IER to 0x0F for a moment (OUT2 clear) and then resets the FIFO: no input then."""
    u, _, _ = make()
    u.write(uart.IER_DLM, 1, 0x0F)
    assert u.receive(b"early") == 0
    u.write(uart.IER_DLM, 1, 0)
    open_port(u)
    assert u.receive(b"x") == 1


def test_receive_limit_applies_backpressure():
    u, _, _ = make()
    open_port(u)
    assert u.receive(b"x" * (uart.RX_LIMIT + 10)) == uart.RX_LIMIT
    assert u.receive(b"y") == 0
    u.read(uart.RBR_THR_DLL, 1)
    assert u.rx_room() == 1


def test_dlab_selects_divisor_latch():
    u, _, out = make()
    u.write(uart.LCR, 1, 0x83)
    u.write(uart.RBR_THR_DLL, 1, 0x01)
    u.write(uart.IER_DLM, 1, 0x00)
    assert out == []
    assert u.read(uart.RBR_THR_DLL, 1) == 0x01
    u.write(uart.LCR, 1, 0x03)
    assert u.read(uart.IER_DLM, 1) == 0


def test_fifo_bits_and_16550a_detection_sequence():
    u, _, _ = make()
    u.write(uart.IIR_FCR, 1, uart.FCR_ENABLE)
    assert u.read(uart.IIR_FCR, 1) >> 6 == 3  # what Linux's autoconfig calls a 16550A
    u.write(uart.IER_DLM, 1, 0xFF)
    assert u.read(uart.IER_DLM, 1) == 0x0F  # upper IER bits do not stick (not an XScale)


def test_loopback_echoes_and_mirrors_modem_lines():
    u, _, out = make()
    u.write(uart.MCR, 1, uart.MCR_LOOP | uart.MCR_RTS | uart.MCR_OUT2)
    u.write(uart.RBR_THR_DLL, 1, 0x5A)
    assert out == []
    assert u.read(uart.RBR_THR_DLL, 1) == 0x5A
    msr = u.read(uart.MSR, 1)
    assert msr & uart.MSR_CTS and msr & uart.MSR_DCD and not msr & uart.MSR_DSR
    assert u.receive(b"q") == 0  # the line is disconnected in loopback


def test_scratch_register():
    u, _, _ = make()
    u.write(uart.SCR, 1, 0xA5)
    assert u.read(uart.SCR, 1) == 0xA5
