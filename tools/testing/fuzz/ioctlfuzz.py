#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Structure-aware, seeded ioctl fuzzer for /dev/onekvm (and stock /dev/kvm).

A run is a list of sequences; sequence i of a run with seed S has its own
seed (printed on failure) from which its whole op list is drawn *before*
anything executes, so a sequence replays identically on any device and in
any run:

    ioctlfuzz.py --dev /dev/onekvm --seqs 1000 --seed 7
    ioctlfuzz.py --dev /dev/onekvm --replay 0x1234abcd -v      # one sequence

With --compare /dev/kvm every sequence runs on both devices in turn (two
hypervisors cannot hold SVM at once: each sequence closes its VMs) and the
outcomes of the ioctls are compared; differences are tallied as
(ioctl, errno on --dev, errno on --compare) and printed at the end.

Documentation/virt/onekvm/robustness.rst describes the ops and the output.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import json
import mmap
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    IoctlDef,
    KmsgWatch,
    block_alarm,
    errname,
    install_kick_handlers,
    ioctl_table,
    run_forever,
    tainted,
)
from kvmtest import Device, Memory, Vcpu, Vm, layout  # noqa: E402
from kvmtest.guest import EXC_STUBS, _gdt, _idt, _page_tables, setup_sregs  # noqa: E402
from kvmtest.kvm import Slot  # noqa: E402
from onekvm.abi import ffi, ioctl, lib  # noqa: E402

PAGE = mmap.PAGESIZE
HANG_SECONDS = float(os.environ.get("ONEKVM_FUZZ_HANG", "30"))
ARENA_SIZE = 1 << 20

# Boundary values for integer fields and integer arguments.
BOUNDARY = [0, 1, 2, 3, 7, 8, 0xF, 0x10, 0x7F, 0x80, 0xFF, 0x100, 0xFFF, 0x1000, 0x7FFF, 0x8000,
            0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x100000000, 0x7FFFFFFFFFFFFFFF,
            0x8000000000000000, 0xFFFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFF000, 0xD0000, 0xFEE00000]

# --- the ABI, from the bindings ------------------------------------------

TABLE: list[IoctlDef] = ioctl_table()
BY_NAME: dict[str, IoctlDef] = {d.name: d for d in TABLE}
KNOWN_REQUESTS = {d.request for d in TABLE}
POOLS: dict[str, list[IoctlDef]] = {k: [d for d in TABLE if k in d.kinds] for k in ("system", "vm", "vcpu")}
CAPS = sorted({getattr(lib, n) for n in dir(lib) if n.startswith("KVM_CAP_")})
MEM_FLAGS = [getattr(lib, n) for n in ("KVM_MEM_LOG_DIRTY_PAGES", "KVM_MEM_READONLY") if hasattr(lib, n)]


def _unknown_request(rng: random.Random) -> int:
    """A request number no ioctl of the ABI has: a known request with
    another command number (the low 8 bits of the Linux encoding)."""
    base = rng.choice(TABLE).request
    for _ in range(64):
        req = (base & ~0xFF) | rng.randrange(256)
        if req not in KNOWN_REQUESTS:
            return req
    return base ^ 0xFF


# --- memory the kernel may write: an arena with a guard page -------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


class Arena:
    """User memory for ioctl arguments: ARENA_SIZE bytes read-write, a
    PROT_NONE guard page after it, and a read-only page.  Every pointer
    argument lives here, so an over-long copy_to_user by the module hits
    the guard (EFAULT) instead of the fuzzer's heap."""

    def __init__(self) -> None:
        self.map = mmap.mmap(-1, ARENA_SIZE + 2 * PAGE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.buf = ffi.from_buffer(self.map)
        self.addr = int(ffi.cast("uintptr_t", self.buf))
        self.guard = self.addr + ARENA_SIZE
        self.ro = self.guard + PAGE
        if _libc.mprotect(self.guard, PAGE, 0) or _libc.mprotect(self.ro, PAGE, mmap.PROT_READ):
            raise OSError(ctypes.get_errno(), "mprotect")

    def put(self, data: bytes, at_end: bool) -> int:
        """Copy `data` into the arena (at the start, or ending at the guard
        page) and return its user address."""
        off = 0 if not at_end else max(0, ARENA_SIZE - len(data))
        n = min(len(data), ARENA_SIZE)
        ffi.memmove(self.buf + off, data[:n], n)
        return self.addr + off

    def get(self, addr: int, n: int) -> bytes:
        off = addr - self.addr
        return bytes(ffi.buffer(self.buf + off, n))


# --- argument generation --------------------------------------------------

def _leaves(ctype: Any, base: int = 0, depth: int = 0) -> list[tuple[int, int]]:
    """(offset, size) of the scalar fields of a cffi type (arrays: the
    first elements and the last)."""
    out: list[tuple[int, int]] = []
    kind = ctype.kind
    if kind == "primitive" or kind == "enum" or kind == "pointer":
        return [(base, ffi.sizeof(ctype))]
    if kind == "array":
        if ctype.length is None or depth > 4:
            return out
        n = ctype.length
        idx = list(range(min(n, 4))) + ([n - 1] if n > 4 else [])
        esz = ffi.sizeof(ctype.item)
        for i in idx:
            out += _leaves(ctype.item, base + i * esz, depth + 1)
        return out
    if kind in ("struct", "union") and ctype.fields and depth <= 4:
        for _name, f in ctype.fields:
            if f.bitsize not in (-1, None) and f.bitsize > 0:
                continue
            out += _leaves(f.type, base + f.offset, depth + 1)
    return out


_LEAF_CACHE: dict[str, list[tuple[int, int]]] = {}


def leaves(argtype: str) -> list[tuple[int, int]]:
    if argtype not in _LEAF_CACHE:
        _LEAF_CACHE[argtype] = _leaves(ffi.typeof(argtype))
    return _LEAF_CACHE[argtype]


_FLEX_CACHE: dict[str, Optional[tuple[int, int, int]]] = {}
_SIZE_CACHE: dict[str, int] = {}


def flex_info(argtype: str) -> Optional[tuple[int, int, int]]:
    """For a struct ending in a flexible array: (offset of the count field,
    its size, the size of one array element); else None."""
    if argtype not in _FLEX_CACHE:
        _FLEX_CACHE[argtype] = _flex_info(argtype)
    return _FLEX_CACHE[argtype]


def type_size(argtype: str) -> int:
    if argtype not in _SIZE_CACHE:
        _SIZE_CACHE[argtype] = ffi.sizeof(argtype)
    return _SIZE_CACHE[argtype]


def _flex_info(argtype: str) -> Optional[tuple[int, int, int]]:
    t = ffi.typeof(argtype)
    if t.kind != "struct" or not t.fields:
        return None
    name, last = t.fields[-1]
    if last.type.kind != "array" or last.type.length is not None:
        return None
    count = t.fields[0][1]                 # nent / nmsrs / nr come first
    return count.offset, ffi.sizeof(count.type), ffi.sizeof(last.type.item)


def rand_bytes(rng: random.Random, n: int) -> bytes:
    """bytes(rng.getrandbits(8) for _ in range(n)), the same bytes and the
    same state of `rng` afterwards, in one call: getrandbits(8) is the top
    byte of one 32-bit Mersenne Twister word, and getrandbits(32 * n) is n
    such words, the first the least significant."""
    return rng.getrandbits(32 * n).to_bytes(4 * n, "little")[3::4] if n > 0 else b""


class ByteChoices:
    """choices(rng, n) == bytes(rng.choice(table) for _ in range(n)), the
    same bytes and the same state of `rng` afterwards, for a table of at
    most 256 entries.  choice() takes getrandbits(k), k = len.bit_length(),
    until it is below len: the top k bits of one 32-bit word per try.  So n
    words drawn at once and filtered (a reject byte in the translation),
    then as many more as were rejected, consume exactly the same words."""

    def __init__(self, table: bytes) -> None:
        self.n = len(table)
        self.k = self.n.bit_length()
        assert 0 < self.n <= 256 and self.k <= 8
        # The top byte of a word to the chosen byte; rejected values map to
        # a byte the table does not hold, removed afterwards.
        self.reject = next(b for b in range(256) if b not in table)
        self.trans = bytes(table[v >> (8 - self.k)] if v >> (8 - self.k) < self.n else self.reject
                           for v in range(256))
        self.rej = bytes([self.reject])

    def choices(self, rng: random.Random, n: int) -> bytes:
        out = b""
        while len(out) < n:
            need = n - len(out)
            top = rng.getrandbits(32 * need).to_bytes(4 * need, "little")[3::4]
            out += top.translate(self.trans).replace(self.rej, b"")
        return out


# Opcodes that exit (or fault) more often than random bytes do.
EXITING_OPCODES = bytes([0xF4, 0xE4, 0xE6, 0xEC, 0xEE, 0x0F, 0x01, 0xD8, 0xD9, 0xDA, 0xDB, 0xDC, 0xDD, 0xDE,
                         0xDF, 0xC1, 0xFA, 0xFB, 0xCC, 0xCD, 0x31, 0xA2, 0x30, 0x32, 0x89, 0x88, 0x8B, 0xA3,
                         0x05])
EXITING_CODE = ByteChoices(EXITING_OPCODES)


def rand_value(rng: random.Random, size: int, ptrs: list[int]) -> int:
    r = rng.random()
    if r < 0.55:
        v = rng.choice(BOUNDARY)
    elif r < 0.7 and size == 8 and ptrs:
        v = rng.choice(ptrs)
    else:
        v = rng.getrandbits(size * 8)
    return v & ((1 << (size * 8)) - 1)


EFER_LME, CR0_PG, CR4_PAE = 1 << 8, 1 << 31, 1 << 5


def rig_safe_sregs(data: Any) -> None:
    """Keep out two guest states that break QEMU, the rig's CPU, rather than
    test the module (robustness.rst, "Rig limits"):

    - TR must be a present, usable, *available* 16/32-bit TSS (type 1 or
      9): QEMU aborts ("invalid tss type", or "invalid tss" when not
      present) when a guest whose cached TR is anything else, KVM's usual
      busy type 11 included, takes an interrupt that changes privilege.
    - EFER.LME with CR0.PG and CR4.PAE both clear: at the guest's next
      #VMEXIT QEMU restores the host's CR0 before its CR4 and EFER, takes
      the guest's LME for a switch into long mode, finds no PAE and skips
      the CR0 load; that L1 CPU goes on in long mode with paging off and is
      lost (both hypervisors; QEMU 7.2 and 10.0).
    """
    s = ffi.from_buffer("struct kvm_sregs *", data)
    if not s.tr.present or (s.tr.type & 7) != 1 or s.tr.unusable:
        # unusable too: KVM (and onekvm) store an unusable segment as
        # attributes 0, which QEMU takes for a TSS that is not present.
        s.tr.present, s.tr.type, s.tr.unusable = 1, 9, 0
    if s.efer & EFER_LME and not s.cr0 & CR0_PG and not s.cr4 & CR4_PAE:
        s.efer &= ~EFER_LME
    ffi.release(s)


def rig_safe_vcpu(v: Vcpu) -> None:
    """rig_safe_sregs() on the vCPU's state itself, right before a KVM_RUN:
    KVM_SET_MSRS (EFER), KVM_SET_SREGS from leftover arena bytes and the
    guest's own earlier runs reach those states too."""
    try:
        sregs = v.get_sregs()
        before = bytes(ffi.buffer(sregs))
        rig_safe_sregs(ffi.buffer(sregs))
        if bytes(ffi.buffer(sregs)) != before:
            v.set_sregs(sregs)
    except OSError:
        pass  # a closed or refusing vCPU: the run reports it


def mutate(rng: random.Random, data: bytearray, argtype: Optional[str], ptrs: list[int], n: int) -> None:
    fields = leaves(argtype) if argtype else []
    for _ in range(n):
        if fields and rng.random() < 0.8:
            off, size = rng.choice(fields)
            if off + size <= len(data):
                data[off:off + size] = rand_value(rng, size, ptrs).to_bytes(size, "little")
        elif data:
            i = rng.randrange(len(data))
            data[i] = rng.randrange(256)


_TABLES: dict[int, list[tuple[int, bytes]]] = {}


def guest_tables(bits: int) -> list[tuple[int, bytes]]:
    """(guest address, bytes) of the library's exception stubs, IVT or
    GDT, IDT and page tables for a mode; built once."""
    if bits not in _TABLES:
        stubs = EXC_STUBS[bits].build()
        t = [(stubs.base, bytes(stubs.data))]
        if bits == 16:
            t.append((0, _idt(16).ljust(0x400, b"\0")))
        else:
            t += [(layout.GDT, _gdt()), (layout.IDT, _idt(bits).ljust(256 * 16, b"\0")),
                  (layout.GUARD, layout.GUARD_CODE), (layout.PML4, _page_tables())]
        _TABLES[bits] = t
    return _TABLES[bits]


# --- the ops --------------------------------------------------------------

@dataclass
class Op:
    kind: str
    args: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        a = " ".join(f"{k}={v:#x}" if isinstance(v, int) and not isinstance(v, bool) and abs(v) > 9
                     else f"{k}={v}" for k, v in self.args.items())
        return f"{self.kind} {a}"


OP_WEIGHTS = {
    "create_vm": 4, "create_vcpu": 5, "memslot": 10, "sys_ioctl": 6, "vm_ioctl": 12,
    "vcpu_ioctl": 22, "setup_guest": 6, "run": 10, "threads": 2, "close": 2,
    "close_during_run": 1, "fork_kill": 1, "mmap": 2, "unmap_backing": 1,
}


def gen_sequence(seed: int, nops: int, only: frozenset[str] = frozenset()) -> list[Op]:
    """The op list of one sequence: a function of the seed (and `only`,
    the op kinds allowed; empty: all)."""
    rng = random.Random(seed)
    ops: list[Op] = []
    if rng.random() < 0.9 and not only:      # most sequences start from a runnable VM
        ops += [Op("create_vm", {"type": 0}),
                Op("memslot", {"vm": 0, "sub": rng.getrandbits(32), "sane": True}),
                Op("create_vcpu", {"vm": 0, "id": 0}),
                Op("setup_guest", {"vcpu": 0, "sub": rng.getrandbits(32)})]
    kinds = [k for k in OP_WEIGHTS if not only or k in only]
    weights = [OP_WEIGHTS[k] for k in kinds]
    for _ in range(nops):
        k = rng.choices(kinds, weights)[0]
        a: dict[str, Any] = {"sub": rng.getrandbits(32)}
        if k == "create_vm":
            a = {"type": 0 if rng.random() < 0.9 else rand_value(rng, 8, [])}
        elif k == "create_vcpu":
            a = {"vm": rng.randrange(4), "id": rng.choice([0, 1, 2, 3, 0, 1, 255, 1023, 1024, 4095, 4096,
                                                           0xFFFFFFFF, 1 << 63, rng.getrandbits(16)])}
        elif k in ("memslot", "vm_ioctl", "threads", "unmap_backing"):
            a["vm"] = rng.randrange(4)
        elif k in ("vcpu_ioctl", "setup_guest", "run", "mmap", "close_during_run"):
            a["vcpu"] = rng.randrange(6)
        elif k == "close":
            a = {"what": rng.choice(["vm", "vcpu"]), "idx": rng.randrange(6)}
        ops.append(Op(k, a))
    return ops


# --- executing a sequence on one device -------------------------------------

class Watchdog:
    """Fails the run (exit 3) when one op takes longer than HANG_SECONDS."""

    def __init__(self) -> None:
        self.stamp = time.monotonic()
        self.what: tuple[int, int, Optional[Op]] = (0, 0, None)
        t = threading.Thread(target=self._loop, daemon=True, name="watchdog")
        t.start()

    def beat(self, seed: int, i: int, op: Op) -> None:
        """Progress: op i of sequence seed starts (formatted only on a hang)."""
        self.stamp, self.what = time.monotonic(), (seed, i, op)

    def _loop(self) -> None:
        block_alarm()
        while True:
            time.sleep(1)
            if time.monotonic() - self.stamp > HANG_SECONDS:
                seed, i, op = self.what
                print(f"ioctlfuzz: HANG: no progress for {HANG_SECONDS:g} s in seed {seed:#x} op {i} {op}",
                      flush=True)
                dump_hang_state()
                os._exit(3)


SYSRQ = "/proc/sysrq-trigger"


def dump_hang_state(sysrq: str = SYSRQ) -> None:
    """What a hang leaves to look at: this process's Python stacks, and the kernel's
    blocked tasks (SysRq w, into the kernel log) where we may ask for them (root, the rig).

    A thread stuck in an ioctl can keep the process from exiting at all;
    then these lines are all the run has to say about where it stuck.
    """
    import faulthandler

    print(f"ioctlfuzz: HANG: Python stacks of pid {os.getpid()}:", flush=True)
    faulthandler.dump_traceback(file=sys.stdout, all_threads=True)
    try:
        with open(sysrq, "w") as f:
            f.write("w")
        print(f"ioctlfuzz: HANG: blocked tasks' kernel stacks are in the kernel log ({sysrq} w)", flush=True)
    except OSError as e:
        print(f"ioctlfuzz: HANG: no kernel stacks ({sysrq}: {e.strerror})", flush=True)


WATCHDOG: Optional[Watchdog] = None


class Executor:
    """Runs op lists on one device and records every outcome."""

    def __init__(self, dev: Device, arena: Arena, verbose: bool = False) -> None:
        self.dev, self.arena, self.verbose = dev, arena, verbose
        self.pairs: Counter[tuple[str, str]] = Counter()
        self.exits: Counter[str] = Counter()
        # Wall seconds inside KVM_RUN, by how it ended (threads overlap).
        self.run_time: Counter[str] = Counter()
        self.ops = 0
        self.ptrs = [0, 1, arena.addr, arena.addr + ARENA_SIZE - 8, arena.guard, arena.ro,
                     0xDEAD000, 0xFFFF888000000000, 0xFFFFFFFFFF600000, 0xFFFFFFFFFFFFFFFF]
        self.lock = threading.Lock()

    # bookkeeping
    def record(self, name: str, err: int) -> str:
        with self.lock:
            self.pairs[(name, errname(err))] += 1
        return errname(err)

    def call(self, fd: int, d: IoctlDef | int, arg: Any, name: Optional[str] = None) -> tuple[str, int]:
        req = d.request if isinstance(d, IoctlDef) else d
        nm = name or (d.name if isinstance(d, IoctlDef) else "unknown")
        try:
            r = ioctl(fd, req, arg)
        except OSError as e:
            return self.record(nm, e.errno or 0), -1
        return self.record(nm, 0), r

    # argument building
    def build_arg(self, rng: random.Random, d: IoctlDef, fd: int) -> Any:
        if d.argtype is None:
            if d.name == "KVM_CHECK_EXTENSION":
                return rng.choice(CAPS) if rng.random() < 0.8 else rand_value(rng, 8, [])
            if d.name == "KVM_RUN":
                return 0
            if d.name in ("KVM_CREATE_VM",):
                return 0 if rng.random() < 0.5 else rand_value(rng, 8, [])
            return rand_value(rng, 8, self.ptrs)
        r = rng.random()
        if r < 0.12:                               # bad or odd pointer
            # Never unchecked bytes (an arena address holds an earlier
            # argument): see rig_safe_sregs and the signal mask below.
            if d.argtype == "struct kvm_sregs" or d.name == "KVM_SET_SIGNAL_MASK":
                return rng.choice([p for p in self.ptrs if not self.arena.addr <= p < self.arena.guard
                                   and p != self.arena.ro])
            return rng.choice(self.ptrs)
        size = type_size(d.argtype)
        fl = flex_info(d.argtype)
        if r < 0.5:                                # mutate what GET returns
            data = self.get_template(d, fd, size, fl)
            mutate(rng, data, d.argtype, self.ptrs, rng.randint(0, 3))
        elif r < 0.6:
            data = bytearray(size)
        elif r < 0.7:
            data = bytearray(rand_bytes(rng, size))
        else:
            data = bytearray(size)
            mutate(rng, data, d.argtype, self.ptrs, rng.randint(1, 8))
        if fl is not None:
            coff, csize, esz = fl
            count = rng.choice([0, 1, 2, 3, 8, 64, 255, 256, 257, 1024, 0x10000, 0x7FFFFFFF,
                                0xFFFFFFFF, rng.randrange(300)]) & ((1 << (csize * 8)) - 1)
            items = min(count, rng.choice([0, 1, 4, count]), (ARENA_SIZE - size) // esz)
            if len(data) < size + items * esz:
                data += bytearray(size + items * esz - len(data))
            data[coff:coff + csize] = count.to_bytes(csize, "little")
            for _ in range(rng.randint(0, 6)):
                if items:
                    i = rng.randrange(items)
                    off = size + i * esz + rng.randrange(esz) // 4 * 4
                    data[off:off + 4] = rand_value(rng, 4, []).to_bytes(4, "little")
        if d.argtype == "struct kvm_sregs":
            rig_safe_sregs(data)
        if d.name == "KVM_SET_SIGNAL_MASK":
            # Never block the signals that bound KVM_RUN here: a guest that
            # spins would then (rightly) never return.  The 8 mask bytes
            # are always ours: with fewer items the kernel read whatever an
            # earlier argument left in the arena after them (a hang, seed
            # 0xdd611adcfc1d: SIGALRM and SIGUSR1 blocked, then a spinning
            # guest in the threads op).
            if len(data) < size + 8:
                data += bytearray(size + 8 - len(data))
            keep = ~((1 << (signal.SIGALRM - 1)) | (1 << (signal.SIGUSR1 - 1)))
            m = int.from_bytes(data[size:size + 8], "little") & keep & ((1 << 64) - 1)
            data[size:size + 8] = m.to_bytes(8, "little")
        return self.arena.put(bytes(data), at_end=rng.random() < 0.3)

    def get_template(self, d: IoctlDef, fd: int, size: int, fl: Optional[tuple[int, int, int]]) -> bytearray:
        """The bytes the matching GET ioctl returns (zeros if none/failing)."""
        gname = d.name.replace("_SET_", "_GET_")
        g = BY_NAME.get(gname)
        if g is None or g.argtype != d.argtype or g.direction == "IOW" and d.name == gname:
            return bytearray(size)
        n = 0
        if fl is not None:
            n = 8
            coff, csize, esz = fl
            tmp = bytearray(size + n * esz)
            tmp[coff:coff + csize] = n.to_bytes(csize, "little")
        else:
            tmp = bytearray(size)
        addr = self.arena.put(bytes(tmp), at_end=False)
        try:
            ioctl(fd, g.request, addr)
        except OSError:
            return bytearray(size)
        return bytearray(self.arena.get(addr, len(tmp)))

    # --- state ---
    def reset(self) -> None:
        self.vms: list[Vm] = []
        self.vcpus: list[Vcpu] = []
        self.threads: list[threading.Thread] = []

    def teardown(self) -> None:
        for v in self.vcpus:
            try:
                v.close()
            except OSError:
                pass
        for vm in self.vms:
            try:
                vm.close()
            except OSError:
                pass
        self.vms, self.vcpus = [], []

    def vm(self, i: int) -> Optional[Vm]:
        live = [v for v in self.vms if v.fd >= 0]
        return live[i % len(live)] if live else None

    def vcpu(self, i: int) -> Optional[Vcpu]:
        live = [v for v in self.vcpus if v.fd >= 0]
        return live[i % len(live)] if live else None

    # --- running ---
    def run_sequence(self, seed: int, ops: list[Op]) -> list[str]:
        self.reset()
        outcomes: list[str] = []
        try:
            for i, op in enumerate(ops):
                if WATCHDOG:
                    WATCHDOG.beat(seed, i, op)
                if self.verbose:
                    print(f"  [{i}] {op}", flush=True)
                out = getattr(self, "op_" + op.kind)(random.Random(op.args.get("sub", i)), **{
                    k: v for k, v in op.args.items() if k != "sub"})
                self.ops += 1
                if self.verbose:
                    print(f"      -> {out}", flush=True)
                outcomes.append(f"{op.kind}:{out}")
        finally:
            self.teardown()
        return outcomes

    def op_create_vm(self, rng: random.Random, type: int) -> str:
        try:
            fd = ioctl(self.dev.fd, lib.KVM_CREATE_VM, type)
        except OSError as e:
            return self.record("KVM_CREATE_VM", e.errno or 0)
        self.vms.append(Vm(self.dev, fd))
        return self.record("KVM_CREATE_VM", 0)

    def op_create_vcpu(self, rng: random.Random, vm: int, id: int) -> str:
        v = self.vm(vm)
        if v is None:
            return "skip"
        try:
            self.vcpus.append(v.create_vcpu(id))
        except OSError as e:
            return self.record("KVM_CREATE_VCPU", e.errno or 0)
        except ValueError:                      # mmap of the run area refused
            return "mmap-failed"
        return self.record("KVM_CREATE_VCPU", 0)

    def _slot_args(self, rng: random.Random, v: Vm, sane: bool) -> tuple[int, int, int, int, int]:
        if sane:
            size = rng.choice([1, 2, 8, 16]) << 20
            mem = Memory(size)
            v._owned.append(mem)
            return 0, 0, size, mem.addr, 0
        slot = rng.choice([0, 1, 2, 3, 4, 31, 32, 508, 509, 510, 511, 512, 0x7FFF, 0x10000, 0x10001,
                           0xFFFF, 0xFFFFFFFF, rng.getrandbits(16)])
        size = rng.choice([0, 0, PAGE, 2 * PAGE, 1 << 20, 1 << 21, 4 << 20, PAGE + 1, PAGE - 1,
                           1 << 30, 1 << 40, 0xFFFFFFFFFFFFF000, rng.randrange(1, 64) * PAGE])
        gpa = rng.choice([0, 0, PAGE, 0xD0000, 0x100000, 0x200000, 0xFEE00000, 0xFFFFF000,
                          0x100000000, 1 << 40, (1 << 52) - PAGE, 0xFFFFFFFFFFFFF000, 0x1001,
                          rng.randrange(0, 1 << 20) * PAGE])
        existing = list(v.slots.values())
        r = rng.random()
        if existing and r < 0.35:               # change / move / alias an existing slot
            s = rng.choice(existing)
            if rng.random() < 0.5:
                slot = s.slot
            if rng.random() < 0.5:
                size = s.size
            uaddr = s.mem.addr + rng.choice([0, 0, PAGE, 1])
        elif r < 0.8 and size and size <= (16 << 20):
            mem = Memory((size + PAGE - 1) // PAGE * PAGE)
            v._owned.append(mem)
            uaddr = mem.addr + rng.choice([0, 0, 0, 1, 0x800])
        else:
            uaddr = rng.choice(self.ptrs + [self.arena.addr + PAGE])
        flags = 0 if rng.random() < 0.5 else rng.choice(MEM_FLAGS + [0x3, 0x4, 0x80000000,
                                                                     rng.getrandbits(32)])
        return slot, gpa, size, uaddr, flags

    def op_memslot(self, rng: random.Random, vm: int, sane: bool = False) -> str:
        v = self.vm(vm)
        if v is None:
            return "skip"
        slot, gpa, size, uaddr, flags = self._slot_args(rng, v, sane)
        try:
            v.set_region(slot, gpa, size, uaddr, flags)
        except OSError as e:
            return self.record("KVM_SET_USER_MEMORY_REGION", e.errno or 0)
        for m in v._owned:
            if m.addr <= uaddr < m.addr + m.size:
                if size:
                    v.slots[slot] = Slot(slot, gpa, m, flags)
                else:
                    v.slots.pop(slot, None)
                break
        else:
            if size == 0:
                v.slots.pop(slot, None)
        return self.record("KVM_SET_USER_MEMORY_REGION", 0)

    def op_unmap_backing(self, rng: random.Random, vm: int) -> str:
        """Unmap the host memory behind a live memslot (the slot stays)."""
        v = self.vm(vm)
        if v is None or not v.slots:
            return "skip"
        s = v.slots.pop(rng.choice(sorted(v.slots)))
        for other in list(v.slots.values()):
            if other.mem is s.mem:
                return "aliased"
        s.mem.close()
        return "unmapped"

    def _ioctl_op(self, rng: random.Random, fd: int, kind: str) -> str:
        r = rng.random()
        if r < 0.08:
            req = _unknown_request(rng)
            return self.call(fd, req, rand_value(rng, 8, self.ptrs), "unknown")[0]
        pool = POOLS[kind] if r < 0.85 else TABLE
        d = rng.choice(pool)
        if d.name in ("KVM_RUN", "KVM_CREATE_VM", "KVM_CREATE_VCPU"):
            d = rng.choice(pool)                  # those have their own ops
            if d.name in ("KVM_RUN", "KVM_CREATE_VM", "KVM_CREATE_VCPU"):
                return "skip"
        arg = self.build_arg(rng, d, fd)
        err, _ = self.call(fd, d, arg)
        return f"{d.name}:{err}"

    def op_sys_ioctl(self, rng: random.Random) -> str:
        return self._ioctl_op(rng, self.dev.fd, "system")

    def op_vm_ioctl(self, rng: random.Random, vm: int) -> str:
        v = self.vm(vm)
        return "skip" if v is None else self._ioctl_op(rng, v.fd, "vm")

    def op_vcpu_ioctl(self, rng: random.Random, vcpu: int) -> str:
        v = self.vcpu(vcpu)
        return "skip" if v is None else self._ioctl_op(rng, v.fd, "vcpu")

    def op_setup_guest(self, rng: random.Random, vcpu: int) -> str:
        """Tables, random code and a random mode and register state."""
        v = self.vcpu(vcpu)
        if v is None:
            return "skip"
        vm = v.vm
        bits = rng.choice((16, 32, 64))
        low = [s for s in vm.slots.values() if s.gpa == 0 and s.mem.size >= 0x40000 and s.mem._buf is not None]
        if low:
            mem = low[0].mem.map
            for at, data in guest_tables(bits):
                mem[at:at + len(data)] = data
            n = rng.choice([16, 64, 256, 4096])
            code = rand_bytes(rng, n)
            if rng.random() < 0.3:       # favour instructions that exit
                code = EXITING_CODE.choices(rng, n)
            mem[layout.CODE:layout.CODE + n] = code
        try:
            setup_sregs(v, bits)
            s = v.get_sregs()
            buf = bytearray(ffi.buffer(s))
            if rng.random() < 0.3:
                mutate(rng, buf, "struct kvm_sregs", self.ptrs, rng.randint(1, 3))
            # Random code may well reach CPL 3 (iret, sysret, far return).
            rig_safe_sregs(buf)
            ffi.memmove(s, bytes(buf), len(buf))
            v.set_sregs(s)
            regs = v.blank_regs(rflags=0x2 | (rng.getrandbits(32) & 0x3CFFD5 if rng.random() < 0.4 else 0),
                                rip=layout.CODE if rng.random() < 0.9 else rand_value(rng, 8, []),
                                rsp=layout.STACK_TOP)
            for r in ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11"):
                setattr(regs, r, rand_value(rng, 8, []))
            v.set_regs(regs)
        except OSError as e:
            return self.record("setup_guest", e.errno or 0)
        return self.record("setup_guest", 0)

    # --- KVM_RUN, bounded by SIGALRM (main thread) or SIGUSR1 (others) ---
    def bounded_run(self, v: Vcpu, rng: random.Random, nruns: int, main: bool) -> str:
        last = "none"
        for _ in range(nruns):
            if v.fd < 0:
                return "closed"
            imm = rng.random() < 0.05
            if imm:
                v.run.immediate_exit = 1
            if main:
                # Repeating: one that fires before the ioctl is entered
                # would otherwise leave a spinning guest running forever.
                # Short, since a run the timer ends is mostly a guest
                # spinning; three values, as before, so seeds keep their ops.
                t = rng.choice([0.01, 0.03, 0.1])
                signal.setitimer(signal.ITIMER_REAL, t, t)
            rig_safe_vcpu(v)
            t0 = time.monotonic()
            try:
                ioctl(v.fd, lib.KVM_RUN, 0)
                dt = time.monotonic() - t0
                reason = v.run.exit_reason
                last = EXIT_NAMES.get(reason, f"exit{reason}")
                if reason == lib.KVM_EXIT_INTR and main:
                    # Upstream reports KVM_EXIT_INTR only with -EINTR.  (In
                    # the threads op another thread's KVM_RUN on the same
                    # vCPU may have rewritten exit_reason meanwhile.)
                    last = "ok-but-INTR"
                with self.lock:
                    self.exits[last] += 1
                    self.run_time["exit"] += dt
                self.record("KVM_RUN", 0)
            except OSError as e:
                # EINTR: the guest ran until the timer or a kick.
                dt = time.monotonic() - t0
                with self.lock:
                    self.run_time["signal" if e.errno == errno.EINTR else "error"] += dt
                last = self.record("KVM_RUN", e.errno or 0)
            finally:
                if main:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                if imm and v.fd >= 0:
                    v.run.immediate_exit = 0
            if last in ("SHUTDOWN", "FAIL_ENTRY", "INTERNAL_ERROR", "EFAULT", "EINVAL", "ENOEXEC"):
                break
            if last == "MMIO" and rng.random() < 0.5 and v.fd >= 0:
                ffi.memmove(v.run.mmio.data, rand_bytes(rng, 8), 8)
        return last

    def op_run(self, rng: random.Random, vcpu: int) -> str:
        v = self.vcpu(vcpu)
        if v is None:
            return "skip"
        return self.bounded_run(v, rng, rng.randint(1, 12), True)

    def _in_threads(self, fns: list[Callable[[], None]], kick_after: float) -> None:
        ts = [threading.Thread(target=f, daemon=True) for f in fns]
        for t in ts:
            t.start()
        # Wait for them (no polling: join returns when a thread ends), and
        # from kick_after on signal the ones left every 20 ms.
        deadline = time.monotonic() + kick_after
        for t in ts:
            t.join(max(0.0, deadline - time.monotonic()))
        _kick_until_done(ts, 0.02)

    def op_threads(self, rng: random.Random, vm: int) -> str:
        """Several threads on one VM: KVM_RUN, register ioctls and memslot
        changes at the same time."""
        v = self.vm(vm)
        if v is None:
            return "skip"
        vcpus = [c for c in self.vcpus if c.vm is v and c.fd >= 0]
        nthreads = rng.randint(2, 4)
        seeds = [rng.getrandbits(32) for _ in range(nthreads)]

        def worker(s: int) -> None:
            block_alarm()
            r = random.Random(s)
            for _ in range(r.randint(2, 8)):
                what = r.random()
                try:
                    if what < 0.4 and vcpus:
                        self.bounded_run(r.choice(vcpus), r, 1, False)
                    elif what < 0.6:
                        self.op_memslot(r, vm)
                    elif vcpus:
                        c = r.choice(vcpus)
                        if c.fd >= 0:
                            self._ioctl_op(r, c.fd, "vcpu")
                except OSError:
                    pass

        self._in_threads([lambda s=s: worker(s) for s in seeds], 0.3)
        return f"threads:{nthreads}"

    def op_close(self, rng: random.Random, what: str, idx: int) -> str:
        obj = self.vm(idx) if what == "vm" else self.vcpu(idx)
        if obj is None:
            return "skip"
        if isinstance(obj, Vm):
            # Only the fd: its vCPUs and memory stay as they are.
            os.close(obj.fd)
            obj.fd = -1
        else:
            obj.close()
        return "closed"

    def op_close_during_run(self, rng: random.Random, vcpu: int) -> str:
        """Close the vCPU's and the VM's fds while KVM_RUN is in progress on
        them (a thread), then signal it."""
        v = self.vcpu(vcpu)
        if v is None:
            return "skip"
        res: list[str] = []
        started = threading.Event()

        rig_safe_vcpu(v)

        def runner() -> None:
            block_alarm()
            started.set()
            try:
                ioctl(v.fd, lib.KVM_RUN, 0)
                res.append(EXIT_NAMES.get(v.run.exit_reason, "?"))
            except OSError as e:
                res.append(errname(e.errno or 0))

        # A spinning guest: `jmp .` at RIP (where memory backs it).
        t = threading.Thread(target=runner, daemon=True)
        t.start()
        started.wait()
        time.sleep(rng.choice([0, 0.001, 0.01, 0.05]))
        fd = v.fd
        vmfd = v.vm.fd if rng.random() < 0.5 else -1
        v.fd = -1                      # nobody uses the numbers again
        os.close(fd)
        if vmfd >= 0:
            os.close(vmfd)
            v.vm.fd = -1
        t.join(0.05)
        _kick_until_done([t], 0.01)
        # The mapping still holds the file: release it now.
        v.run = None
        ffi.release(v._buf)
        v.mapping.close()
        return f"closed:{res[0] if res else '?'}"

    def op_fork_kill(self, rng: random.Random) -> str:
        """A child VMM with its own VM, SIGKILLed while in KVM_RUN."""
        rfd, wfd = os.pipe()
        bits = rng.choice((16, 32, 64))
        cli = rng.random() < 0.5
        pid = os.fork()
        if pid == 0:                                # child
            try:
                os.close(rfd)
                from kvmtest import Guest
                # The parent's fds are the parent's: its VM fds say EIO here.
                for vm in self.vms:
                    try:
                        ioctl(vm.fd, lib.KVM_CHECK_EXTENSION, 0)
                    except OSError:
                        pass
                g = Guest(self.dev, bits=bits)
                g.load_bytes((b"\xfa" if cli else b"") + b"\xeb\xfe")
                os.write(wfd, b"r")
                run_forever(g.vcpu.fd)
            except BaseException:
                pass
            os._exit(0)
        os.close(wfd)
        ready = False
        import select
        r, _, _ = select.select([rfd], [], [], 10)
        if r:
            ready = os.read(rfd, 1) == b"r"
        time.sleep(rng.choice([0, 0.001, 0.01, 0.05, 0.1]))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(rfd)
        return "killed-in-run" if ready else "killed-before-run"

    def op_mmap(self, rng: random.Random, vcpu: int) -> str:
        """mmap the vCPU fd at odd offsets and sizes (never touched)."""
        v = self.vcpu(vcpu)
        if v is None:
            return "skip"
        size = rng.choice([PAGE, 2 * PAGE, 3 * PAGE, 16 * PAGE])
        off = rng.choice([0, PAGE, 2 * PAGE, 64 * PAGE])
        try:
            m = mmap.mmap(v.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=off)
        except OSError as e:
            return self.record("mmap", e.errno or 0)
        m.close()
        return self.record("mmap", 0)


def _kick_until_done(ts: list[threading.Thread], every: float) -> None:
    """SIGUSR1 (which ends a KVM_RUN with EINTR) to each thread still
    alive, every `every` seconds, until all have ended."""
    while True:
        alive = [t for t in ts if t.is_alive()]
        if not alive:
            return
        for t in alive:
            if t.ident:
                try:
                    signal.pthread_kill(t.ident, signal.SIGUSR1)
                except ProcessLookupError:
                    pass
        alive[0].join(every)


EXIT_NAMES: dict[int, str] = {getattr(lib, n): n[len("KVM_EXIT_"):] for n in dir(lib)
                              if n.startswith("KVM_EXIT_") and n not in ("KVM_EXIT_IO_IN", "KVM_EXIT_IO_OUT")}


def seq_seed(run_seed: int, i: int) -> int:
    return random.Random(run_seed * 1000003 + i).getrandbits(48)


def worker_seeds(run_seed: int, seqs: int, wid: int, jobs: int, first: int = 0) -> Iterator[int]:
    """The sequence seeds worker `wid` of `jobs` runs: indices first + wid,
    first + wid + jobs, ... below seqs (disjoint; together, the seeds one
    worker runs)."""
    return (seq_seed(run_seed, i) for i in range(first + wid, seqs, jobs))


# --- main -----------------------------------------------------------------

def compare_outcomes(a: list[str], b: list[str], diffs: Counter[tuple[str, str, str]]) -> None:
    """Tally differing ioctl outcomes (op kinds whose result is an errno)."""
    for x, y in zip(a, b):
        if x == y or x.startswith(("run:", "threads:", "fork_kill:", "close_during_run:")):
            continue
        kx, _, rx = x.partition(":")
        _, _, ry = y.partition(":")
        if kx in ("sys_ioctl", "vm_ioctl", "vcpu_ioctl"):
            nx, _, ex = rx.partition(":")
            ny, _, ey = ry.partition(":")
            if nx == ny and nx:
                diffs[(nx, ex, ey)] += 1
        elif kx in ("memslot", "create_vm", "create_vcpu", "mmap", "setup_guest"):
            diffs[(kx, rx, ry)] += 1


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dev", default="/dev/onekvm")
    p.add_argument("--compare", default="", help="also run every sequence on this device (stock /dev/kvm)")
    p.add_argument("--seed", type=lambda s: int(s, 0), default=None, help="run seed (default: random)")
    p.add_argument("--seqs", type=int, default=100, help="number of sequences")
    p.add_argument("--time", type=float, default=0, help="stop after this many seconds")
    p.add_argument("--ops", type=int, default=24, help="ops per sequence (after the prologue)")
    p.add_argument("--first", type=int, default=0,
                   help="start at this sequence index of the run (resume a run seed; --seqs is the end)")
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes; worker w runs sequences w, w+N, w+2N, ... of the run")
    p.add_argument("--replay", type=lambda s: int(s, 0), default=None, help="run one sequence seed, verbosely")
    p.add_argument("--json", default="", help="write the statistics here")
    p.add_argument("--save", default="", help="write every sequence's outcomes (JSON) here")
    p.add_argument("--against", default="",
                   help="run the sequences a --save file holds and compare with its outcomes")
    p.add_argument("--only", default="", help="comma-separated op kinds (default: all): "
                   + ",".join(OP_WEIGHTS))
    p.add_argument("--interleave", action="store_true",
                   help="with --compare: each sequence on both devices in turn (default: in two phases)")
    p.add_argument("--trace", action="store_true",
                   help="print each sequence's seed as it starts (finds the one that wedges the kernel, "
                   "after which nothing else can print)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


ME = "tools/testing/fuzz/ioctlfuzz.py"


def device_stats(ex: Executor) -> dict[str, Any]:
    return {"kind": ex.dev.kind, "ops": ex.ops,
            "pairs": {f"{k[0]} {k[1]}": v for k, v in sorted(ex.pairs.items())},
            "exits": dict(ex.exits), "kvm_run_seconds": {k: round(v, 1) for k, v in ex.run_time.items()}}


def cpu_times() -> dict[str, float]:
    """CPU seconds of this process (user: mostly the fuzzer's Python;
    system: the ioctls, guest execution included) and of its waited-for
    children (the fork_kill VMMs)."""
    t = os.times()
    return {"user": round(t.user, 1), "system": round(t.system, 1),
            "children_user": round(t.children_user, 1), "children_system": round(t.children_system, 1)}


def merge_stats(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The statistics of several workers' runs as one run's."""
    out: dict[str, Any] = {"sequences": 0, "devices": {}, "cpu": Counter()}
    for part in parts:
        out["sequences"] += part["sequences"]
        out["cpu"].update(part.get("cpu", {}))
        for path, d in part["devices"].items():
            m = out["devices"].setdefault(path, {"kind": d["kind"], "ops": 0, "pairs": Counter(),
                                                 "exits": Counter(), "kvm_run_seconds": Counter()})
            m["ops"] += d["ops"]
            m["kvm_run_seconds"].update(d.get("kvm_run_seconds", {}))
            m["pairs"].update(d["pairs"])
            m["exits"].update(d["exits"])
    out["cpu"] = {k: round(v, 1) for k, v in out["cpu"].items()}
    for m in out["devices"].values():
        m["pairs"] = dict(sorted(m["pairs"].items()))
        m["exits"] = dict(m["exits"])
        m["kvm_run_seconds"] = {k: round(v, 1) for k, v in m["kvm_run_seconds"].items()}
    return out


def summarize(stats: dict[str, Any], seconds: float) -> None:
    """Print the per-device summary lines and complete `stats` (distinct
    ioctls and pairs) for the JSON file."""
    done = stats["sequences"]
    for path, d in stats["devices"].items():
        ioctls = {k.split(" ")[0] for k in d["pairs"]}
        d["distinct_ioctls"], d["distinct_ioctl_errno"] = len(ioctls), len(d["pairs"])
        top = dict(Counter(d["exits"]).most_common(8))
        print(f"ioctlfuzz: {path} ({d['kind']}): {done} sequences, {d['ops']} ops in {seconds:.0f} s"
              f" ({done / seconds if seconds else 0:.1f} sequences/s); {len(ioctls)} distinct ioctls, "
              f"{len(d['pairs'])} distinct (ioctl, errno) pairs; exits {top}")
        rt = d.get("kvm_run_seconds", {})
        print(f"ioctlfuzz: {path}: wall seconds inside KVM_RUN (summed over threads and workers): "
              f"{rt.get('signal', 0):.1f} until a timer or kick (EINTR), {rt.get('exit', 0):.1f} to an exit, "
              f"{rt.get('error', 0):.1f} to another error")
    if "cpu" in stats:
        c = stats["cpu"]
        print(f"ioctlfuzz: CPU seconds: fuzzer user {c['user']:.1f}, system {c['system']:.1f}; "
              f"forked VMMs user {c['children_user']:.1f}, system {c['children_system']:.1f}")


class Slots:
    """The sequence each worker is running (shared memory, one word per
    worker, 0 when idle): a kernel log splat is seen by whichever worker
    checks first, so a failure names the others' sequences too."""

    def __init__(self, jobs: int) -> None:
        self.map = mmap.mmap(-1, 8 * jobs)          # MAP_SHARED: survives fork
        self.jobs = jobs

    def set(self, w: int, seed: Optional[int]) -> None:
        self.map[8 * w:8 * w + 8] = (0 if seed is None else seed + 1).to_bytes(8, "little")

    def others(self, w: int) -> list[tuple[int, int]]:
        out = []
        for i in range(self.jobs):
            v = int.from_bytes(self.map[8 * i:8 * i + 8], "little")
            if i != w and v:
                out.append((i, v - 1))
        return out


def run_fuzz(a: argparse.Namespace, run_seed: int, only: frozenset[str], saved: dict[str, Any],
             wid: int = 0, jobs: int = 1, report: int = -1, slots: Optional[Slots] = None) -> int:
    """Run the sequences of worker `wid` of `jobs` (all of them when jobs
    is 1).  A worker (report >= 0) writes its statistics there as JSON and
    prints no summary."""
    install_kick_handlers()
    global WATCHDOG
    WATCHDOG = Watchdog()
    try:
        devs = [Device(a.dev)] + ([Device(a.compare)] if a.compare else [])
    except OSError as e:
        print(f"ioctlfuzz: cannot open a device: {e}", file=sys.stderr)
        return 2
    arena = Arena()
    exes = [Executor(d, arena, a.verbose or a.replay is not None) for d in devs]
    who = f"ioctlfuzz[{wid}]" if jobs > 1 else "ioctlfuzz"
    if jobs == 1:
        print(f"ioctlfuzz: run seed {run_seed:#x} on {', '.join(f'{d.path} ({d.kind})' for d in devs)}; "
              f"{len(TABLE)} ioctls in the ABI", flush=True)
    kmsg = KmsgWatch()
    taint0 = tainted()
    diffs: Counter[tuple[str, str, str]] = Counter()
    only_arg = f" --only {a.only}" if a.only else ""
    start = time.monotonic()
    done = 0
    if a.replay is not None:
        seeds: list[int] = [a.replay]
    elif saved:
        seeds = [int(x, 0) for x in saved["seeds"]]
    else:
        seeds = []                    # drawn as they are needed (slow in the rig)
    # Interleaved: every sequence on each device in turn.  Phased (default
    # with --compare): all sequences on --dev, then the same ones on
    # --compare; fewer hand-overs of SVM between the two modules.
    phases = [exes] if a.interleave or len(exes) == 1 else [[ex] for ex in exes]
    results: dict[int, list[list[str]]] = {}
    ran: list[int] = []

    def replay_hint(s: int, ex: Executor) -> str:
        hint = f"  replay: {ME} --dev {ex.dev.path} --replay {s:#x} --ops {a.ops}{only_arg}"
        if slots is not None:
            for w, other in slots.others(wid):
                hint += (f"\n  worker {w} was running sequence {other:#x} at the same time: "
                         f"{ME} --dev {ex.dev.path} --replay {other:#x} --ops {a.ops}{only_arg}")
        return hint

    for pi, phase in enumerate(phases):
        limit = a.time / len(phases) if a.time else 0
        t_phase = time.monotonic()
        todo: Any
        if pi:
            todo = ran[:done]
        else:
            todo = seeds or worker_seeds(run_seed, a.seqs, wid, jobs, a.first)
        for i, s in enumerate(todo):
            if pi == 0:
                ran.append(s)
            if pi == 0 and limit and time.monotonic() - t_phase > limit:
                break
            ops = gen_sequence(s, a.ops, only)
            for ex in phase:
                if ex.verbose or a.trace:
                    print(f"--- {who}: sequence {s:#x} on {ex.dev.path}", flush=True)
                if slots is not None:
                    slots.set(wid, s)
                try:
                    out = ex.run_sequence(s, ops)
                except Exception as e:         # a fuzzer bug or an unexpected result
                    print(f"ioctlfuzz: FAIL: sequence {s:#x} on {ex.dev.path}: {type(e).__name__}: {e}\n"
                          + replay_hint(s, ex), flush=True)
                    raise
                if len(exes) == 2 or a.save or saved:
                    results.setdefault(s, []).append(out)
                splats = kmsg.check()
                if splats or tainted() != taint0:
                    print(f"ioctlfuzz: FAIL: kernel log after sequence {s:#x} on {ex.dev.path}: {splats[:3]} "
                          f"(taint {tainted():#x})\n" + replay_hint(s, ex), flush=True)
                    return 1
                if slots is not None:
                    slots.set(wid, None)
            if pi == 0:
                done = i + 1
                if not a.verbose and done % 500 == 0:
                    print(f"{who}: {done} sequences, {time.monotonic() - start:.0f} s", flush=True)
    kmsg.close()
    el = time.monotonic() - start
    stats: dict[str, Any] = {"run_seed": run_seed, "sequences": done, "seconds": round(el, 1),
                             "devices": {ex.dev.path: device_stats(ex) for ex in exes},
                             "cpu": cpu_times()}
    if report >= 0:
        data = json.dumps(stats).encode()
        while data:
            data = data[os.write(report, data):]
        return 0
    if saved:
        for s, outs in results.items():
            theirs = saved["outcomes"].get(f"{s:#x}")
            if theirs:
                outs.append(theirs)
    for s, outs in results.items():
        if len(outs) == 2:
            compare_outcomes(outs[0], outs[1], diffs)
    if a.save:
        Path(a.save).write_text(json.dumps({
            "run_seed": run_seed, "ops": a.ops, "only": a.only, "kind": exes[0].dev.kind,
            "seeds": [f"{s:#x}" for s in ran[:done]],
            "outcomes": {f"{s:#x}": outs[0] for s, outs in results.items()}}))
    other = a.compare or (f"{saved.get('kind')} ({a.against})" if saved else "")
    stats["jobs"] = 1
    summarize(stats, el)
    if diffs:
        print(f"ioctlfuzz: outcome differences {a.dev} vs {other} (op, {exes[0].dev.kind}, "
              f"{saved.get('kind') if saved else exes[1].dev.kind}): count")
        for (nm, x, y), c in sorted(diffs.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {nm:34} {x:>8} {y:>8}  {c}")
        stats["differences"] = {f"{k[0]} {k[1]} {k[2]}": v for k, v in diffs.items()}
    if a.json:
        Path(a.json).write_text(json.dumps(stats, indent=1, sort_keys=True))
    print(f"ioctlfuzz: PASS: no oops, WARN, hang or taint in {done} sequences (run seed {run_seed:#x})")
    return 0


def run_parallel(a: argparse.Namespace, run_seed: int, only: frozenset[str]) -> int:
    """--jobs N: N forked workers, worker w running sequence indices w,
    w+N, w+2N, ... (the same seeds as one worker would run, so every seed
    replays alone); their statistics are merged.  The first worker that
    fails stops the others, and its exit status is the run's."""
    print(f"ioctlfuzz: run seed {run_seed:#x} on {a.dev}; {len(TABLE)} ioctls in the ABI; "
          f"{a.jobs} workers", flush=True)
    slots = Slots(a.jobs)
    start = time.monotonic()
    pipes: dict[int, int] = {}           # read fd -> worker
    pids: dict[int, int] = {}            # pid -> worker
    for w in range(a.jobs):
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:                     # worker
            rc = 1
            try:
                os.close(rfd)
                for fd in pipes:
                    os.close(fd)
                rc = run_fuzz(a, run_seed, only, {}, w, a.jobs, wfd, slots)
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(rc)
        os.close(wfd)
        pipes[rfd], pids[pid] = w, w
    import select
    data: dict[int, bytes] = {w: b"" for w in range(a.jobs)}
    rcs: dict[int, int] = {}
    failed = 0
    while pipes or len(rcs) < a.jobs:
        if pipes:
            ready, _, _ = select.select(list(pipes), [], [], 0.5)
            for fd in ready:
                chunk = os.read(fd, 65536)
                if chunk:
                    data[pipes[fd]] += chunk
                else:
                    os.close(fd)
                    del pipes[fd]
        else:
            time.sleep(0.1)
        while len(rcs) < a.jobs:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            w = pids.pop(pid)
            rcs[w] = os.waitstatus_to_exitcode(status)
            if rcs[w] != 0 and not failed:
                failed = rcs[w] if rcs[w] > 0 else 1
                print(f"ioctlfuzz: worker {w} failed (status {rcs[w]}); stopping the others", flush=True)
                for p in pids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
    if failed:
        return failed
    el = time.monotonic() - start
    try:
        parts = [json.loads(data[w]) for w in range(a.jobs)]
    except ValueError as e:
        print(f"ioctlfuzz: FAIL: a worker's statistics are unreadable: {e}", flush=True)
        return 1
    stats = merge_stats(parts)
    stats.update(run_seed=run_seed, seconds=round(el, 1), jobs=a.jobs,
                 workers=[{"sequences": p["sequences"], "seconds": p["seconds"]} for p in parts])
    summarize(stats, el)
    if a.json:
        Path(a.json).write_text(json.dumps(stats, indent=1, sort_keys=True))
    done = stats["sequences"]
    print(f"ioctlfuzz: PASS: no oops, WARN, hang or taint in {done} sequences (run seed {run_seed:#x}, "
          f"{a.jobs} workers)")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    a = parse_args(argv)
    saved: dict[str, Any] = {}
    if a.against:
        try:
            saved = json.loads(Path(a.against).read_text())
        except (OSError, ValueError) as e:
            print(f"ioctlfuzz: cannot read {a.against}: {e}", file=sys.stderr)
            return 2
        a.ops, a.only, a.seed = saved["ops"], saved["only"], saved["run_seed"]
    only = frozenset(k for k in a.only.split(",") if k)
    if only - set(OP_WEIGHTS):
        print(f"ioctlfuzz: unknown op kinds: {', '.join(sorted(only - set(OP_WEIGHTS)))}", file=sys.stderr)
        return 2
    if a.jobs < 1:
        print("ioctlfuzz: --jobs must be at least 1", file=sys.stderr)
        return 2
    if a.jobs > 1 and (a.compare or a.save or a.against or a.replay is not None):
        print("ioctlfuzz: --compare, --save, --against and --replay run one worker; --jobs ignored",
              flush=True)
        a.jobs = 1
    run_seed = a.seed if a.seed is not None else random.SystemRandom().getrandbits(32)
    if a.jobs > 1:
        if not os.access(a.dev, os.R_OK | os.W_OK):
            print(f"ioctlfuzz: cannot open a device: {a.dev}", file=sys.stderr)
            return 2
        return run_parallel(a, run_seed, only)
    return run_fuzz(a, run_seed, only, saved)


if __name__ == "__main__":
    sys.exit(main())
