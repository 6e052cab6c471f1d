# SPDX-License-Identifier: GPL-2.0-only
"""The VM fd: memslots (seen from a running guest), vCPU creation, TSS and
identity-map addresses, and the errors upstream returns for bad requests."""

from __future__ import annotations

import errno
import os
from typing import Callable

import pytest
from kvmtest import Asm, Device, Failures, Guest, Memory, Vm, layout, raises_errno
from onekvm.abi import lib

PAGE = layout.PAGE

# rbx = address: `read` outs the dword there on port 0x10, `write` stores ecx.
PROBE = Asm("""
read:
    mov (%rbx), %eax
    out %eax, $0x10
    hlt
write:
    mov %ecx, (%rbx)
    out %al, $PORT_DONE
    hlt
""", bits=64, name="memslot-probe")

SLOT_GPAS = (0x100000, 0x200000, 0x40000000, 0xC0000000)


def peek(g: Guest, addr: int) -> int:
    """The guest reads `addr` (RAM)."""
    g.vcpu.set_regs(rip=g.code["read"], rbx=addr)
    return g.vcpu.expect_out(0x10, 4, what=f"read of {addr:#x}")


def peek_mmio(g: Guest, addr: int) -> None:
    """The guest reads `addr` and it is not RAM: an MMIO exit."""
    g.vcpu.set_regs(rip=g.code["read"], rbx=addr)
    g.vcpu.expect_mmio_read(addr, 4, 0x600DF00D, what=f"read of {addr:#x}")
    assert g.vcpu.expect_out(0x10, 4) == 0x600DF00D


def poke(g: Guest, addr: int, value: int) -> None:
    g.vcpu.set_regs(rip=g.code["write"], rbx=addr, rcx=value)
    g.vcpu.expect_done(what=f"write to {addr:#x}")


def poke_mmio(g: Guest, addr: int, value: int) -> None:
    g.vcpu.set_regs(rip=g.code["write"], rbx=addr, rcx=value)
    assert g.vcpu.expect_mmio_write(addr, 4, what=f"write to {addr:#x}") == value
    g.vcpu.expect_done()


@pytest.fixture
def probe(make_guest: Callable[..., Guest]) -> Guest:
    return make_guest(64, PROBE)


# --- memslots seen by the guest ------------------------------------------------

def test_memslots_several(probe: Guest) -> None:
    vm = probe.vm
    for i, gpa in enumerate(SLOT_GPAS, 1):
        s = vm.add_memory(i, gpa, 2 * PAGE)
        s.mem.map[0:4] = (0x1000 + i).to_bytes(4, "little")
        s.mem.map[PAGE:PAGE + 4] = (0x2000 + i).to_bytes(4, "little")
    for i, gpa in enumerate(SLOT_GPAS, 1):
        assert peek(probe, gpa) == 0x1000 + i
        assert peek(probe, gpa + PAGE) == 0x2000 + i
        poke(probe, gpa + 8, 0xAB00 + i)
        assert vm.slots[i].mem.map[8:12] == (0xAB00 + i).to_bytes(4, "little")
    peek_mmio(probe, SLOT_GPAS[0] + 2 * PAGE)          # just past slot 1


def test_memslot_delete_and_recreate(probe: Guest) -> None:
    vm = probe.vm
    s = vm.add_memory(1, 0x100000, PAGE)
    s.mem.map[0:4] = b"\x11\x11\x11\x11"
    assert peek(probe, 0x100000) == 0x11111111
    vm.delete_memory(1)
    peek_mmio(probe, 0x100000)
    poke_mmio(probe, 0x100000, 0x5A5A5A5A)
    s = vm.add_memory(1, 0x100000, PAGE)               # new host pages
    s.mem.map[0:4] = b"\x22\x22\x22\x22"
    assert peek(probe, 0x100000) == 0x22222222


def test_memslot_move(probe: Guest) -> None:
    vm = probe.vm
    s = vm.add_memory(1, 0x100000, 2 * PAGE)
    s.mem.map[PAGE:PAGE + 4] = b"\x33\x33\x33\x33"
    assert peek(probe, 0x101000) == 0x33333333
    vm.move_memory(1, 0x300000)
    peek_mmio(probe, 0x101000)
    assert peek(probe, 0x301000) == 0x33333333
    poke(probe, 0x300000, 0x44444444)
    assert s.mem.map[0:4] == b"\x44\x44\x44\x44"


def test_memslot_readonly(probe: Guest) -> None:
    mem = Memory(PAGE)
    try:
        mem.map[0:4] = b"\x55\x55\x55\x55"                  # written before the slot exists
        s = probe.vm.add_memory(1, 0x100000, PAGE, flags=lib.KVM_MEM_READONLY, mem=mem)
        assert peek(probe, 0x100000) == 0x55555555
        poke_mmio(probe, 0x100000, 0x66666666)         # a write is an MMIO exit
        assert s.mem.map[0:4] == b"\x55\x55\x55\x55"
        assert peek(probe, 0x100000) == 0x55555555
    finally:
        probe.vm.close()
        mem.close()


def test_memslot_sees_later_host_writes(probe: Guest) -> None:
    """What the VMM writes into slot memory after creating the slot is what
    the guest reads, for read-only slots too (e.g. firmware loaded after
    the slot is registered): the guest must not keep an old page."""
    s = probe.vm.add_memory(1, 0x100000, PAGE, flags=lib.KVM_MEM_READONLY)
    s.mem.map[0:4] = b"\x55\x55\x55\x55"
    assert peek(probe, 0x100000) == 0x55555555
    r = probe.vm.add_memory(2, 0x200000, PAGE)
    r.mem.map[0:4] = b"\x77\x77\x77\x77"
    assert peek(probe, 0x200000) == 0x77777777
    s.mem.map[0:4] = b"\x56\x56\x56\x56"                 # after the guest has mapped it
    r.mem.map[0:4] = b"\x78\x78\x78\x78"
    assert peek(probe, 0x100000) == 0x56565656
    assert peek(probe, 0x200000) == 0x78787878


def test_memslot_hole_in_ram_is_mmio(make_guest: Callable[..., Guest]) -> None:
    """Addresses past RAM, low and high, are MMIO."""
    g = make_guest(64, PROBE)
    peek_mmio(g, layout.RAM_SIZE)
    peek_mmio(g, layout.MMIO_HIGH)


# --- SET_USER_MEMORY_REGION argument checks --------------------------------------

@pytest.fixture
def vm(dev: Device) -> Vm:
    v = dev.create_vm()
    yield v
    v.close()


@pytest.fixture
def mem() -> Memory:
    m = Memory(16 * PAGE)
    yield m
    m.close()


def test_region_flags_change_refused(vm: Vm, mem: Memory) -> None:
    vm.set_region(0, 0, 4 * PAGE, mem.addr)
    with raises_errno(errno.EINVAL):                     # READONLY may not change
        vm.set_region(0, 0, 4 * PAGE, mem.addr, lib.KVM_MEM_READONLY)
    with raises_errno(errno.EINVAL):                     # nor the size
        vm.set_region(0, 0, 8 * PAGE, mem.addr)
    with raises_errno(errno.EINVAL):                     # nor the host address
        vm.set_region(0, 0, 4 * PAGE, mem.addr + 4 * PAGE)
    vm.set_region(0, 0, 4 * PAGE, mem.addr)              # re-setting the same is fine


def test_region_dirty_log_per_device(dev: Device, vm: Vm, mem: Memory) -> None:
    """onekvm has no dirty logging: it refuses KVM_MEM_LOG_DIRTY_PAGES."""
    if dev.is_onekvm:
        with raises_errno(errno.EINVAL):
            vm.set_region(0, 0, 4 * PAGE, mem.addr, lib.KVM_MEM_LOG_DIRTY_PAGES)
    else:
        vm.set_region(0, 0, 4 * PAGE, mem.addr, lib.KVM_MEM_LOG_DIRTY_PAGES)


OVERLAPS = {"same": (0x10000, 4 * PAGE), "starts-inside": (0x11000, 4 * PAGE), "ends-inside": (0x0F000, 2 * PAGE),
            "contains": (0x0F000, 8 * PAGE), "inside": (0x12000, PAGE)}


def test_region_overlap(vm: Vm, mem: Memory) -> None:
    vm.set_region(0, 0x10000, 4 * PAGE, mem.addr)
    f = Failures()
    for name, (gpa, size) in OVERLAPS.items():
        with f.check(name), raises_errno(errno.EEXIST):
            vm.set_region(1, gpa, size, mem.addr + 8 * PAGE)
    f.done()


def test_region_adjacent_ok(vm: Vm, mem: Memory) -> None:
    vm.set_region(0, 0x10000, 4 * PAGE, mem.addr)
    vm.set_region(1, 0x14000, 4 * PAGE, mem.addr + 4 * PAGE)
    vm.set_region(2, 0x0C000, 4 * PAGE, mem.addr + 8 * PAGE)


def test_region_move_onto_other_slot(vm: Vm, mem: Memory) -> None:
    vm.set_region(0, 0x10000, 4 * PAGE, mem.addr)
    vm.set_region(1, 0x20000, 4 * PAGE, mem.addr + 4 * PAGE)
    with raises_errno(errno.EEXIST):
        vm.set_region(1, 0x12000, 4 * PAGE, mem.addr + 4 * PAGE)


def test_region_misaligned(vm: Vm, mem: Memory) -> None:
    f = Failures()
    for what, (gpa, size, uaddr) in {"gpa": (0x10800, 4 * PAGE, mem.addr), "size": (0x10000, 4 * PAGE + 0x10, mem.addr),
                                     "uaddr": (0x10000, 4 * PAGE, mem.addr + 0x100)}.items():
        with f.check(what), raises_errno(errno.EINVAL):
            vm.set_region(0, gpa, size, uaddr)
    f.done()


def test_region_too_large(vm: Vm, mem: Memory) -> None:
    with raises_errno(errno.EINVAL):
        vm.set_region(0, 0, 1 << 44, mem.addr)


def test_region_wraps(vm: Vm, mem: Memory) -> None:
    with raises_errno(errno.EINVAL):
        vm.set_region(0, (1 << 64) - PAGE, 2 * PAGE, mem.addr)


def test_region_bad_slot(dev: Device, vm: Vm, mem: Memory) -> None:
    nslots = dev.check_extension(lib.KVM_CAP_NR_MEMSLOTS)
    for slot in (nslots, 0xFFFF, 2 << 16, 0xFFFFFFFF):
        with raises_errno(errno.EINVAL, what=f"slot {slot:#x}"):
            vm.set_region(slot, 0, 4 * PAGE, mem.addr)
    vm.set_region(nslots - 1, 0, 4 * PAGE, mem.addr)     # the last valid id


def test_region_bad_flags(vm: Vm, mem: Memory) -> None:
    for flags in (1 << 7, 1 << 31):
        with raises_errno(errno.EINVAL, what=f"flags {flags:#x}"):
            vm.set_region(0, 0, 4 * PAGE, mem.addr, flags)


def test_region_delete_missing(vm: Vm, mem: Memory) -> None:
    with raises_errno(errno.EINVAL):
        vm.set_region(3, 0, 0, mem.addr)


def test_region_bad_pointer(vm: Vm) -> None:
    with raises_errno(errno.EFAULT):
        vm.ioctl(lib.KVM_SET_USER_MEMORY_REGION, 8)


def test_region_all_slots(dev: Device, vm: Vm) -> None:
    """Every slot id the device reports can hold memory at once (up to 64)."""
    n = min(dev.check_extension(lib.KVM_CAP_NR_MEMSLOTS), 64)
    m = Memory(n * PAGE)
    try:
        for i in range(n):
            vm.set_region(i, i * 2 * PAGE, PAGE, m.addr + i * PAGE)
        for i in range(n):
            vm.set_region(i, i * 2 * PAGE, 0, m.addr + i * PAGE)
    finally:
        vm.close()
        m.close()


# --- vCPUs ----------------------------------------------------------------------

def test_create_vcpus(dev: Device, vm: Vm) -> None:
    fds = {vm.create_vcpu(i).fd for i in range(4)}
    assert len(fds) == 4


def test_create_vcpu_duplicate_id(vm: Vm) -> None:
    vm.create_vcpu(1)
    with raises_errno(errno.EEXIST):
        vm.create_vcpu(1)


def test_create_vcpu_id_out_of_range(dev: Device, vm: Vm) -> None:
    max_id = dev.check_extension(lib.KVM_CAP_MAX_VCPU_ID)
    for vid in (max_id, max_id + 1, 1 << 31):
        with raises_errno(errno.EINVAL, what=f"vcpu id {vid}"):
            vm.create_vcpu(vid)
    vm.create_vcpu(max_id - 1)


def test_create_vcpu_limit(dev: Device, vm: Vm) -> None:
    """KVM_CAP_MAX_VCPUS vCPUs can be created, one more is refused (checked
    only where the limit is small enough to reach quickly)."""
    mx = dev.check_extension(lib.KVM_CAP_MAX_VCPUS)
    n = min(mx, 64)
    for i in range(n):
        vm.create_vcpu(i)
    if mx == n:
        with raises_errno(errno.EINVAL):
            vm.create_vcpu(n)


def test_vcpus_run_independently(make_guest: Callable[..., Guest]) -> None:
    g = make_guest(64, PROBE, vcpus=3)
    g.vm.write(layout.DATA, bytes(range(12)))
    for i, v in enumerate(g.vcpus):
        v.set_regs(rip=g.code["read"], rbx=layout.DATA + 4 * i)
    for i, v in reversed(list(enumerate(g.vcpus))):
        assert v.expect_out(0x10, 4) == int.from_bytes(bytes(range(4 * i, 4 * i + 4)), "little")


# --- TSS, identity map, misc ----------------------------------------------------

def test_set_tss_addr(vm: Vm) -> None:
    assert vm.ioctl(lib.KVM_SET_TSS_ADDR, 0xFFFBD000) == 0


def test_set_tss_addr_too_high(vm: Vm) -> None:
    # The TSS takes three pages below 4 GiB.
    with raises_errno(errno.EINVAL):
        vm.ioctl(lib.KVM_SET_TSS_ADDR, 0xFFFFF000)


def test_set_identity_map_addr(vm: Vm) -> None:
    from onekvm.abi import ffi
    addr = ffi.new("__u64 *", 0xFFFBC000)
    assert vm.ioctl(lib.KVM_SET_IDENTITY_MAP_ADDR, addr) == 0
    with raises_errno(errno.EFAULT):
        vm.ioctl(lib.KVM_SET_IDENTITY_MAP_ADDR, 8)


def test_set_identity_map_addr_after_vcpu(vm: Vm) -> None:
    from onekvm.abi import ffi
    vm.create_vcpu(0)
    with raises_errno(errno.EINVAL):
        vm.ioctl(lib.KVM_SET_IDENTITY_MAP_ADDR, ffi.new("__u64 *", 0xFFFBC000))


def test_unknown_vm_ioctl(vm: Vm) -> None:
    with raises_errno(errno.ENOTTY):
        vm.ioctl((lib.KVMIO << 8) | 0x7F)


def test_fds_refuse_other_process(vm: Vm) -> None:
    """A VM belongs to its creator's address space: a forked child gets EIO."""
    vcpu = vm.create_vcpu(0)
    pid = os.fork()
    if pid == 0:
        code = 0
        for fd, req in ((vm.fd, lib.KVM_CHECK_EXTENSION), (vcpu.fd, lib.KVM_RUN)):
            try:
                from onekvm.abi import ioctl
                ioctl(fd, req, 0)
                code |= 1
            except OSError as e:
                code |= 0 if e.errno == errno.EIO else 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, \
        f"child's ioctls on the parent's fds: status {status:#x} (1: succeeded, 2: wrong errno)"
