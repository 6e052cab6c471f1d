# SPDX-License-Identifier: GPL-2.0-only
"""Guest code as GNU as snippets, assembled on demand and cached by content.

A snippet is AT&T-syntax assembly for one CPU mode (16, 32 or 64 bits)
loaded at one guest-physical address::

    HLT_GUEST = Asm('''
        mov $0x42, %al
        out %al, $0x10
        hlt
    after_hlt:
    ''', bits=64)
    code = HLT_GUEST.build()          # Code(bytes, symbols, base)
    code["after_hlt"]                 # the label's guest address

Every label defined in the snippet is in `Code.symbols` with its absolute
address, and absolute references to labels are relocated here, so a snippet
needs no linker.  Constants of the guest layout (CODE, DATA, MMIO, ...) are
predefined with `.set` (see layout.ASM_DEFS) and more can be passed in
`defs`.

Snippets are registered when created, so `build_all()` can assemble every
snippet of every imported module in parallel up front (the rig's Python is
slow to start, `as` is not).  Results are cached on disk by a hash of the
source: under $ONEKVM_ASM_CACHE, else build/selftests-asm/ in the repository
(prebuilt on the host by tools/testing/selftests/kvm/prebuild, read-only in
the rig), else a per-user temporary directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional

# Bump when the wrapping, the relocation code or the cache format changes.
_FORMAT = 3

_REPO = Path(__file__).resolve().parents[5]


class AsmError(Exception):
    """The assembler rejected a snippet (message has as's errors and the source)."""


@dataclass(frozen=True)
class Code:
    """An assembled snippet: its bytes, its labels (guest addresses), its base."""

    data: bytes
    symbols: Mapping[str, int]
    base: int
    bits: int
    name: str = ""

    def __getitem__(self, label: str) -> int:
        try:
            return self.symbols[label]
        except KeyError:
            raise KeyError(f"{self.name or 'snippet'} has no label {label!r}") from None

    def __len__(self) -> int:
        return len(self.data)

    @property
    def end(self) -> int:
        return self.base + len(self.data)

    def entry(self) -> int:
        """The label `start` if the snippet defines one, else its first byte."""
        return self.symbols.get("start", self.base)


_REGISTRY: list[Asm] = []


@dataclass(eq=False)
class Asm:
    """A guest code snippet; `build()` assembles it (once per process)."""

    source: str
    bits: int = 64
    base: int = -1                  # -1: layout.CODE
    defs: Mapping[str, int] = field(default_factory=dict)
    name: str = ""
    _code: Optional[Code] = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.bits not in (16, 32, 64):
            raise ValueError(f"bits must be 16, 32 or 64, not {self.bits}")
        if self.base < 0:
            from kvmtest.layout import CODE
            self.base = CODE
        _REGISTRY.append(self)

    def text(self) -> str:
        """The complete assembler input."""
        from kvmtest.layout import ASM_DEFS
        lines = [f".code{self.bits}", ".text"]
        for k, v in {**ASM_DEFS, **self.defs}.items():
            lines.append(f".set {k}, {v:#x}")
        lines.append(f"# ---- {self.name or 'snippet'} ----")
        lines.append(textwrap.dedent(self.source).strip("\n"))
        return "\n".join(lines) + "\n"

    def key(self) -> str:
        h = hashlib.sha256(f"{_FORMAT}\n{self.bits}\n{self.base}\n{self.text()}".encode())
        return h.hexdigest()[:32]

    def build(self) -> Code:
        if self._code is None:
            self._code = _load_cached(self) or _assemble(self)
        return self._code


def registered() -> list[Asm]:
    """Every snippet created so far (module-level snippets of imported modules)."""
    return list(_REGISTRY)


# --- cache ----------------------------------------------------------------

def _cache_dirs() -> list[Path]:
    dirs = []
    env = os.environ.get("ONEKVM_ASM_CACHE")
    if env:
        dirs.append(Path(env))
    dirs.append(_REPO / "build" / "selftests-asm")
    dirs.append(Path(tempfile.gettempdir()) / f"onekvm-asm-{os.getuid()}")
    return dirs


def _load_cached(a: Asm) -> Optional[Code]:
    for d in _cache_dirs():
        try:
            blob = json.loads((d / f"{a.key()}.json").read_text())
        except (OSError, ValueError):
            continue
        return Code(bytes.fromhex(blob["code"]), blob["symbols"], a.base, a.bits, a.name)
    return None


def _store(a: Asm, code: Code) -> None:
    blob = json.dumps({"code": code.data.hex(), "symbols": dict(code.symbols), "name": a.name})
    for d in _cache_dirs():
        try:
            d.mkdir(parents=True, exist_ok=True)
            tmp = d / f".{a.key()}.{os.getpid()}"
            tmp.write_text(blob)
            tmp.rename(d / f"{a.key()}.json")
            return
        except OSError:
            continue


# --- assembling -------------------------------------------------------------

def _assembler() -> str:
    path = shutil.which("as")
    if not path:
        raise AsmError("GNU as (binutils) is not on PATH: cannot assemble guest code")
    return path


def _numbered(text: str) -> str:
    return "\n".join(f"{i:4}: {line}" for i, line in enumerate(text.splitlines(), 1))


def _assemble(a: Asm) -> Code:
    text = a.text()
    with tempfile.TemporaryDirectory(prefix="onekvm-as-") as tmp:
        src, obj = Path(tmp, "g.s"), Path(tmp, "g.o")
        src.write_text(text)
        proc = subprocess.run([_assembler(), "--64", "-o", str(obj), str(src)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise AsmError(f"as failed for {a.name or 'snippet'}:\n{proc.stderr}\n{_numbered(text)}")
        elf = obj.read_bytes()
    code = _link(a, elf)
    _store(a, code)
    return code


def build_all(snippets: Optional[Iterable[Asm]] = None, jobs: int = 0) -> int:
    """Assemble every snippet not already cached, in parallel.

    Returns the number assembled (0 when everything came from the cache).
    """
    todo = []
    for a in snippets if snippets is not None else registered():
        if a._code is None:
            a._code = _load_cached(a)
            if a._code is None:
                todo.append(a)
    if not todo:
        return 0
    with ThreadPoolExecutor(max_workers=jobs or max(2, (os.cpu_count() or 1) * 2)) as pool:
        for a, code in zip(todo, pool.map(_assemble, todo)):
            a._code = code
    return len(todo)


# --- the ELF64 relocatable object `as` wrote --------------------------------

_SHN_ABS = 0xFFF1
_SHT_SYMTAB, _SHT_RELA, _SHT_PROGBITS = 2, 4, 1
_SHF_ALLOC = 2
# type: (size, pc-relative, signed)
_RELOCS = {
    1: (8, False, False),    # R_X86_64_64
    2: (4, True, True),      # R_X86_64_PC32
    10: (4, False, False),   # R_X86_64_32
    11: (4, False, True),    # R_X86_64_32S
    12: (2, False, False),   # R_X86_64_16
    13: (2, True, True),     # R_X86_64_PC16
    14: (1, False, False),   # R_X86_64_8
    15: (1, True, True),     # R_X86_64_PC8
}


def _cstr(blob: bytes, off: int) -> str:
    return blob[off:blob.index(b"\0", off)].decode()


def _link(a: Asm, elf: bytes) -> Code:
    name = a.name or "snippet"
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    secs = [struct.unpack_from("<IIQQQQIIQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    strtab_off = secs[shstrndx][4]
    names = [_cstr(elf, strtab_off + s[0]) for s in secs]
    text_idx = names.index(".text")
    for i, s in enumerate(secs):
        if s[1] == _SHT_PROGBITS and s[2] & _SHF_ALLOC and s[5] and i != text_idx:
            raise AsmError(f"{name}: section {names[i]} is not supported: keep code and data in .text")
    t = secs[text_idx]
    text = bytearray(elf[t[4]:t[4] + t[5]])

    syms: list[tuple[str, int, int]] = []      # (name, shndx, value)
    symbols: dict[str, int] = {}
    for s in secs:
        if s[1] != _SHT_SYMTAB:
            continue
        link_off = secs[s[6]][4]
        for off in range(s[4], s[4] + s[5], 24):
            st_name, _info, _other, shndx, value, _size = struct.unpack_from("<IBBHQQ", elf, off)
            sname = _cstr(elf, link_off + st_name) if st_name else ""
            syms.append((sname, shndx, value))
            if sname and shndx == text_idx:
                symbols[sname] = a.base + value

    for s in secs:
        if s[1] != _SHT_RELA or s[7] != text_idx:
            continue
        for off in range(s[4], s[4] + s[5], 24):
            r_offset, r_info, addend = struct.unpack_from("<QQq", elf, off)
            sym, rtype = r_info >> 32, r_info & 0xFFFFFFFF
            sname, shndx, value = syms[sym]
            if shndx == text_idx:
                target = a.base + value
            elif shndx == _SHN_ABS:
                target = value
            else:
                raise AsmError(f"{name}: reference to undefined or foreign symbol {sname or sym!r}")
            if rtype not in _RELOCS:
                raise AsmError(f"{name}: unsupported relocation type {rtype} at {r_offset:#x}")
            size, pcrel, signed = _RELOCS[rtype]
            val = target + addend - (a.base + r_offset if pcrel else 0)
            bits = size * 8
            lo = -(1 << (bits - 1)) if signed else -(1 << (bits - 1)) if bits < 64 else 0
            hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
            if not lo <= val <= hi:
                raise AsmError(f"{name}: relocation at {r_offset:#x} overflows {bits} bits ({val:#x})")
            text[r_offset:r_offset + size] = (val & ((1 << bits) - 1)).to_bytes(size, "little")
    return Code(bytes(text), symbols, a.base, a.bits, a.name)
