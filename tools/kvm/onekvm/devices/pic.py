"""Two cascaded 8259A PICs, for `--irqchip user` (and any hypervisor without KVM_CAP_IRQCHIP).

The vCPU loop asks `pending()` before each KVM_RUN and takes a vector with
`acknowledge()` when the guest can accept it (KVM_INTERRUPT).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost in the rig
if TYPE_CHECKING:
    from typing import Callable


MASTER_BASE = 0x20
SLAVE_BASE = 0xA0
ELCR_BASE = 0x4D0
CASCADE_IRQ = 2


class Chip:
    """One 8259A; state names follow the datasheet."""

    def __init__(self, elcr_mask: int) -> None:
        self.elcr = 0
        self.elcr_mask = elcr_mask
        self.irr = 0
        self.reset()

    def reset(self) -> None:
        self.last_irr = 0
        self.irr &= self.elcr  # level-triggered requests survive ICW1
        self.imr = 0
        self.isr = 0
        self.priority_add = 0
        self.irq_base = 0
        self.read_isr = False
        self.poll = False
        self.special_mask = False
        self.init_state = 0
        self.auto_eoi = False
        self.rotate_on_auto_eoi = False
        self.special_fully_nested = False
        self.init4 = False
        self.single = False

    def set_irq(self, irq: int, level: int) -> None:
        mask = 1 << irq
        if self.elcr & mask:
            if level:
                self.irr |= mask
                self.last_irr |= mask
            else:
                self.irr &= ~mask
                self.last_irr &= ~mask
        elif level:
            if not self.last_irr & mask:
                self.irr |= mask  # a rising edge
            self.last_irr |= mask
        else:
            self.last_irr &= ~mask

    def _priority(self, mask: int) -> int:
        """Priority (0 = highest) of the best bit in mask, 8 when none."""
        if not mask & 0xFF:
            return 8
        p = 0
        while not mask & (1 << ((p + self.priority_add) & 7)):
            p += 1
        return p

    def best_irq(self, is_master: bool) -> int:
        """The request that would interrupt now, or -1."""
        p = self._priority(self.irr & ~self.imr)
        if p == 8:
            return -1
        in_service = self.isr
        if self.special_mask:
            in_service &= ~self.imr
        if self.special_fully_nested and is_master:
            in_service &= ~(1 << CASCADE_IRQ)
        if p < self._priority(in_service):
            return (p + self.priority_add) & 7
        return -1

    def intack(self, irq: int) -> None:
        if self.auto_eoi:
            if self.rotate_on_auto_eoi:
                self.priority_add = (irq + 1) & 7
        else:
            self.isr |= 1 << irq
        if not self.elcr & (1 << irq):
            self.irr &= ~(1 << irq)

    def write_command(self, value: int) -> None:
        if value & 0x10:  # ICW1
            self.reset()
            self.init_state = 1
            self.init4 = bool(value & 0x01)
            self.single = bool(value & 0x02)
        elif value & 0x08:  # OCW3
            if value & 0x04:
                self.poll = True
            if value & 0x02:
                self.read_isr = bool(value & 0x01)
            if value & 0x40:
                self.special_mask = bool(value & 0x20)
        else:  # OCW2
            cmd = value >> 5
            if cmd in (0, 4):
                self.rotate_on_auto_eoi = cmd == 4
            elif cmd in (1, 5):  # non-specific EOI (and rotate)
                p = self._priority(self.isr)
                if p != 8:
                    irq = (p + self.priority_add) & 7
                    self.isr &= ~(1 << irq)
                    if cmd == 5:
                        self.priority_add = (irq + 1) & 7
            elif cmd == 3:  # specific EOI
                self.isr &= ~(1 << (value & 7))
            elif cmd == 6:  # set lowest priority
                self.priority_add = (value + 1) & 7
            elif cmd == 7:  # rotate on specific EOI
                irq = value & 7
                self.isr &= ~(1 << irq)
                self.priority_add = (irq + 1) & 7

    def write_data(self, value: int) -> None:
        if self.init_state == 0:  # OCW1
            self.imr = value
        elif self.init_state == 1:  # ICW2
            self.irq_base = value & 0xF8
            self.init_state = (3 if self.init4 else 0) if self.single else 2
        elif self.init_state == 2:  # ICW3
            self.init_state = 3 if self.init4 else 0
        else:  # ICW4
            self.special_fully_nested = bool(value & 0x10)
            self.auto_eoi = bool(value & 0x02)
            self.init_state = 0


class Pic:
    """Master + slave on IRQ2, as on every PC."""

    def __init__(self, notify: Callable[[], None] | None = None) -> None:
        self.name = "pic"
        self.master = Chip(elcr_mask=0xF8)
        self.slave = Chip(elcr_mask=0xDE)
        self.notify = notify or (lambda: None)
        self.output = False
        self.spurious = 0

    def set_irq(self, irq: int, level: int) -> None:
        if irq >= 8:
            self.slave.set_irq(irq - 8, level)
        else:
            self.master.set_irq(irq, level)
        self._update()

    def _update(self) -> None:
        self.master.set_irq(CASCADE_IRQ, 1 if self.slave.best_irq(False) >= 0 else 0)
        out = self.master.best_irq(True) >= 0
        if out and not self.output:
            self.output = out
            self.notify()
        self.output = out

    def describe(self) -> str:
        chips = " ".join(
            f"{name} irr {c.irr:#04x} isr {c.isr:#04x} imr {c.imr:#04x} elcr {c.elcr:#04x} base {c.irq_base:#04x}"
            for name, c in (("master", self.master), ("slave", self.slave))
        )
        return f"pic: {chips} output {self.output} spurious {self.spurious}"

    def pending(self) -> bool:
        return self.output

    def acknowledge(self) -> int:
        """The CPU's INTA cycle: the vector to inject (spurious IRQ7/15 if none)."""
        irq = self.master.best_irq(True)
        if irq < 0:
            self.spurious += 1
            vector = self.master.irq_base + 7
        else:
            self.master.intack(irq)
            if irq == CASCADE_IRQ:
                irq2 = self.slave.best_irq(False)
                if irq2 >= 0:
                    self.slave.intack(irq2)
                else:
                    irq2 = 7
                    self.spurious += 1
                vector = self.slave.irq_base + irq2
            else:
                vector = self.master.irq_base + irq
        self._update()
        return vector

    def _poll(self, chip: Chip, is_master: bool) -> int:
        chip.poll = False
        irq = chip.best_irq(is_master)
        if irq < 0:
            return 0
        chip.intack(irq)
        if is_master and irq == CASCADE_IRQ:
            irq2 = self.slave.best_irq(False)
            if irq2 >= 0:
                self.slave.intack(irq2)
        self._update()
        return 0x80 | irq

    def read_port(self, chip: Chip, offset: int) -> int:
        is_master = chip is self.master
        if chip.poll:
            return self._poll(chip, is_master)
        if offset == 0:
            return chip.isr if chip.read_isr else chip.irr
        return chip.imr

    def write_port(self, chip: Chip, offset: int, value: int) -> None:
        if offset == 0:
            chip.write_command(value)
        else:
            chip.write_data(value)
        self._update()

    def read_elcr(self, offset: int) -> int:
        return (self.master if offset == 0 else self.slave).elcr

    def write_elcr(self, offset: int, value: int) -> None:
        chip = self.master if offset == 0 else self.slave
        chip.elcr = value & chip.elcr_mask
        self._update()

    def ports(self) -> list[tuple[int, int, "PicPort"]]:
        return [
            (MASTER_BASE, 2, PicPort(self, self.master)),
            (SLAVE_BASE, 2, PicPort(self, self.slave)),
            (ELCR_BASE, 2, PicPort(self, None)),
        ]


class PicPort:
    def __init__(self, pic: Pic, chip: Chip | None) -> None:
        self.pic = pic
        self.chip = chip
        self.name = pic.name

    def read(self, offset: int, size: int) -> int:
        if self.chip is None:
            return self.pic.read_elcr(offset)
        return self.pic.read_port(self.chip, offset)

    def write(self, offset: int, size: int, value: int) -> None:
        if self.chip is None:
            self.pic.write_elcr(offset, value & 0xFF)
        else:
            self.pic.write_port(self.chip, offset, value & 0xFF)
