"""i8042 keyboard controller: only what a guest needs to reset the machine.

Linux's reboot path writes 0xFE (pulse the reset line) to port 0x64; the
output-port write (0xD1) with bit 0 clear is the older way to the same line.
The FADT says there is no 8042, so the guest's input driver never probes it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost in the rig
if TYPE_CHECKING:
    from typing import Callable


DATA_PORT = 0x60
CMD_PORT = 0x64

STATUS_OBF = 0x01
STATUS_SYS = 0x04
STATUS_CMD = 0x08

CMD_READ_CTR = 0x20
CMD_WRITE_CTR = 0x60
CMD_SELF_TEST = 0xAA
CMD_KBD_TEST = 0xAB
CMD_AUX_TEST = 0xA9
CMD_WRITE_OUTPUT = 0xD1
CMD_PULSE_RESET = 0xFE


class I8042:
    def __init__(self, reset: Callable[[], None]) -> None:
        self.name = "i8042"
        self.reset = reset
        self.ctr = 0x61  # keyboard interrupt on, translation on
        self.status = STATUS_SYS
        self.out: list[int] = []
        self.pending_cmd = 0

    def _push(self, value: int) -> None:
        self.out.append(value & 0xFF)

    def read_data(self) -> int:
        return self.out.pop(0) if self.out else 0

    def read_status(self) -> int:
        return self.status | (STATUS_OBF if self.out else 0)

    def write_data(self, value: int) -> None:
        cmd, self.pending_cmd = self.pending_cmd, 0
        if cmd == CMD_WRITE_CTR:
            self.ctr = value
        elif cmd == CMD_WRITE_OUTPUT:
            if not value & 0x01:
                self.reset()
        # Commands to a keyboard that is not there get no answer.

    def write_command(self, value: int) -> None:
        self.status |= STATUS_CMD
        if value == CMD_READ_CTR:
            self._push(self.ctr)
        elif value in (CMD_WRITE_CTR, CMD_WRITE_OUTPUT):
            self.pending_cmd = value
        elif value == CMD_SELF_TEST:
            self._push(0x55)
        elif value in (CMD_KBD_TEST, CMD_AUX_TEST):
            self._push(0x00)
        elif value == CMD_PULSE_RESET:
            self.reset()

    def port(self, base: int) -> "I8042Port":
        return I8042Port(self, base)


class I8042Port:
    """Bus view of one of the two ports (they are not adjacent)."""

    length = 1

    def __init__(self, ctl: I8042, base: int) -> None:
        self.ctl = ctl
        self.base = base
        self.name = ctl.name

    def read(self, offset: int, size: int) -> int:
        return self.ctl.read_data() if self.base == DATA_PORT else self.ctl.read_status()

    def write(self, offset: int, size: int, value: int) -> None:
        if self.base == DATA_PORT:
            self.ctl.write_data(value & 0xFF)
        else:
            self.ctl.write_command(value & 0xFF)
