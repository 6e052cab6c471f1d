"""Tiny 64-bit guests, assembled at test time, packaged as ELF "kernels" at 16 MiB.

They enter through the same 64-bit boot path as Linux (GDT, page tables,
boot_params in RSI), so the host's /dev/kvm can run them where a real
kernel would be too much for it.
"""

from __future__ import annotations

import os
import subprocess

HELLO = r"""
_start:
    mov $0x3f8, %dx
    lea msg(%rip), %rsi
    mov $msg_len, %ecx
1:  lodsb
    outb %al, %dx
    loop 1b
    mov $0x604, %dx
    mov $0x3400, %ax          # SLP_TYP=5 (S5) | SLP_EN into PM1a_CNT
    outw %ax, %dx
2:  hlt
    jmp 2b
msg: .ascii "hello from a tiny guest\n"
msg_len = . - msg
"""

TRIPLE_FAULT = r"""
_start:
    ud2                         # no IDT: #UD -> #DF -> shutdown
"""

RESET = r"""
_start:
    mov $0xfe, %al
    outb %al, $0x64             # i8042: pulse the reset line
1:  hlt
    jmp 1b
"""

# Programs the 8259s and the 8254 (100 Hz), waits in HLT for five timer
# interrupts, then reports and powers off. Runs unchanged on the in-kernel
# PIC/PIT and on the userspace models.
TIMER = r"""
_start:
    lea stack_top(%rip), %rsp
    lea handler(%rip), %rax
    lea idt+0x20*16(%rip), %rdi
    mov %ax, (%rdi)
    movw $0x10, 2(%rdi)
    movw $0x8e00, 4(%rdi)
    shr $16, %rax
    mov %ax, 6(%rdi)
    shr $16, %rax
    mov %eax, 8(%rdi)
    movl $0, 12(%rdi)
    lidt idtr(%rip)
    mov $0x11, %al
    outb %al, $0x20
    outb %al, $0xa0
    mov $0x20, %al
    outb %al, $0x21
    mov $0x28, %al
    outb %al, $0xa1
    mov $0x04, %al
    outb %al, $0x21
    mov $0x02, %al
    outb %al, $0xa1
    mov $0x01, %al
    outb %al, $0x21
    outb %al, $0xa1
    mov $0xfe, %al              # only IRQ0
    outb %al, $0x21
    mov $0xff, %al
    outb %al, $0xa1
    mov $0x34, %al              # channel 0, lo/hi, mode 2
    outb %al, $0x43
    mov $0x9c, %al
    outb %al, $0x40
    mov $0x2e, %al              # 11932: 100 Hz
    outb %al, $0x40
    xor %r15, %r15
    sti
1:  hlt
    jmp 1b

handler:
    inc %r15
    mov $0x20, %al
    outb %al, $0x20             # EOI
    mov $0x3f8, %dx
    mov $0x2e, %al              # '.' per tick
    outb %al, %dx
    cmp $5, %r15
    jb 2f
    mov $0x0a, %al
    outb %al, %dx
    mov $0x604, %dx
    mov $0x3400, %ax
    outw %ax, %dx
2:  iretq

    .balign 16
idt: .fill 256*16, 1, 0
idtr: .word 256*16-1
      .quad idt
    .balign 16
stack: .fill 4096, 1, 0
stack_top:
"""


def build(tmp_path: os.PathLike, source: str, name: str = "guest") -> str:
    """Assemble and link source at 0x1000000; returns the ELF path."""
    d = os.fspath(tmp_path)
    src = os.path.join(d, f"{name}.S")
    obj = os.path.join(d, f"{name}.o")
    out = os.path.join(d, f"{name}.elf")
    with open(src, "w") as f:
        f.write(".code64\n.text\n.globl _start\n" + source)
    subprocess.run(["as", "--64", "-o", obj, src], check=True)
    subprocess.run(
        [
            "ld",
            "-m",
            "elf_x86_64",
            "-nostdlib",
            "-static",
            "-z",
            "max-page-size=0x1000",
            "-Ttext=0x1000000",
            "-e",
            "_start",
            "-o",
            out,
            obj,
        ],
        check=True,
    )
    return out


# Echoes what arrives on the UART (polling LSR with the receive interrupt
# enabled but interrupts off) until it sees 'q', then powers off.
ECHO = r"""
_start:
    mov $0x3fc, %dx
    mov $0x0b, %al              # MCR: DTR | RTS | OUT2, as a driver opening the port sets it
    outb %al, %dx
    mov $0x3f9, %dx
    mov $0x01, %al              # IER: receive interrupt on (the VMM feeds input once a driver listens)
    outb %al, %dx
1:  mov $0x3fd, %dx
    inb %dx, %al
    test $0x01, %al
    jz 1b
    mov $0x3f8, %dx
    inb %dx, %al
    outb %al, %dx
    cmp $0x71, %al
    jne 1b
    mov $0x604, %dx
    mov $0x3400, %ax
    outw %ax, %dx
2:  hlt
    jmp 2b
"""

# The same greeting through one `rep outsb` (a single exit carrying many bytes)
# and a `rep insb` from the RTC's index port, then poweroff.
REP_IO = r"""
_start:
    mov $0x3f8, %dx
    lea msg(%rip), %rsi
    mov $msg_len, %ecx
    rep outsb
    lea buf(%rip), %rdi
    mov $0x71, %dx
    mov $4, %ecx
    rep insb
    mov $0x604, %dx
    mov $0x3400, %ax
    outw %ax, %dx
2:  hlt
    jmp 2b
msg: .ascii "rep outsb works\n"
msg_len = . - msg
buf: .fill 16, 1, 0
"""

# `cli; hlt`: a machine that halted for good (what Linux's `halt -f` does).
HALT = r"""
_start:
    cli
1:  hlt
    jmp 1b
"""
