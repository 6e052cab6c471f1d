from onekvm.devices.pic import Pic


def init(pic: Pic, master_base=0x20, slave_base=0x28, auto_eoi=False) -> None:
    icw4 = 0x01 | (0x02 if auto_eoi else 0)
    for chip, base, icw3 in ((pic.master, master_base, 0x04), (pic.slave, slave_base, 0x02)):
        pic.write_port(chip, 0, 0x11)  # ICW1: edge, cascade, ICW4 follows
        pic.write_port(chip, 1, base)
        pic.write_port(chip, 1, icw3)
        pic.write_port(chip, 1, icw4)
        pic.write_port(chip, 1, 0x00)  # unmask all


def eoi(pic: Pic, chip) -> None:
    pic.write_port(chip, 0, 0x20)


def test_edge_irq_gives_vector_once():
    notified = []
    pic = Pic(notify=lambda: notified.append(1))
    init(pic)
    pic.set_irq(0, 1)
    assert pic.pending() and notified
    assert pic.acknowledge() == 0x20
    assert not pic.pending()
    pic.set_irq(0, 1)  # still high: no new edge
    assert not pic.pending()
    pic.set_irq(0, 0)
    pic.set_irq(0, 1)
    assert not pic.pending()  # in service blocks equal priority
    eoi(pic, pic.master)
    assert pic.pending()
    assert pic.acknowledge() == 0x20


def test_priority_and_in_service_nesting():
    pic = Pic()
    init(pic)
    pic.set_irq(4, 1)
    assert pic.acknowledge() == 0x24
    pic.set_irq(1, 1)  # higher priority than 4 interrupts it
    assert pic.pending()
    assert pic.acknowledge() == 0x21
    pic.set_irq(6, 1)  # lower than 4 waits
    assert not pic.pending()
    eoi(pic, pic.master)  # ends IRQ1
    assert not pic.pending()
    eoi(pic, pic.master)  # ends IRQ4
    assert pic.acknowledge() == 0x26


def test_mask():
    pic = Pic()
    init(pic)
    pic.write_port(pic.master, 1, 0x10)
    pic.set_irq(4, 1)
    assert not pic.pending()
    assert pic.read_port(pic.master, 1) == 0x10
    pic.write_port(pic.master, 1, 0x00)
    assert pic.pending()


def test_cascade_slave_vector():
    pic = Pic()
    init(pic)
    pic.set_irq(12, 1)
    assert pic.pending()
    assert pic.acknowledge() == 0x2C
    assert pic.master.isr & 0x04 and pic.slave.isr & 0x10


def test_level_triggered_via_elcr():
    pic = Pic()
    init(pic)
    pic.write_elcr(1, 0x02)  # IRQ9 level
    assert pic.read_elcr(1) == 0x02
    pic.set_irq(9, 1)
    assert pic.acknowledge() == 0x29
    eoi(pic, pic.slave)
    eoi(pic, pic.master)
    assert pic.pending()  # still asserted: asks again
    assert pic.acknowledge() == 0x29
    eoi(pic, pic.slave)
    pic.set_irq(9, 0)  # dropped before the next INTA
    eoi(pic, pic.master)
    # The master latched the cascade edge; the slave has nothing: spurious IRQ15.
    assert pic.acknowledge() == 0x2F


def test_irr_isr_read_and_poll():
    pic = Pic()
    init(pic)
    pic.set_irq(3, 1)
    pic.write_port(pic.master, 0, 0x0A)  # OCW3: read IRR
    assert pic.read_port(pic.master, 0) & 0x08
    pic.write_port(pic.master, 0, 0x0C)  # OCW3: poll
    assert pic.read_port(pic.master, 0) == 0x83
    pic.write_port(pic.master, 0, 0x0B)  # OCW3: read ISR
    assert pic.read_port(pic.master, 0) & 0x08


def test_auto_eoi():
    pic = Pic()
    init(pic, auto_eoi=True)
    pic.set_irq(5, 1)
    assert pic.acknowledge() == 0x25
    assert pic.master.isr == 0


def test_spurious_without_request():
    pic = Pic()
    init(pic)
    assert pic.acknowledge() == 0x27
    assert pic.spurious == 1


def test_describe_names_requests_in_service_and_masks():
    pic = Pic()
    init(pic)
    pic.write_elcr(1, 0x04)  # IRQ 10 level-triggered
    pic.set_irq(10, 1)
    assert pic.acknowledge() == 0x2A
    pic.write_port(pic.master, 1, 0x01)  # mask the timer
    pic.set_irq(0, 1)
    assert pic.describe() == (
        "pic: master irr 0x01 isr 0x04 imr 0x01 elcr 0x00 base 0x20 "
        "slave irr 0x04 isr 0x04 imr 0x00 elcr 0x04 base 0x28 output False spurious 0"
    )
