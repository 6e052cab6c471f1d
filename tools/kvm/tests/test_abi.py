# SPDX-License-Identifier: GPL-2.0-only
"""The ABI promise: one source, generated into C and Python, checked.

Host-only and fast (a few seconds: two small cffi builds, a few gcc runs).
  (a) a field added to the source reaches the C header, the C asserts and
      the cffi extension;
  (b) a stale or hand-edited generated file is caught;
  (c) every upstream-named item matches /usr/include/linux/kvm.h;
  (d) the fingerprint ignores comments/whitespace, follows every change;
  (e) abi-diff reports a synthetic change;
  plus the dialect's error reporting and onekvm.abi's helpers.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest

ROOT = Path(__file__).resolve().parents[3]
SRC = ROOT / "include/uapi/onekvm/kvm.abi.h"
ABIGEN = ROOT / "scripts/abigen.py"
ABI_DIFF = ROOT / "scripts/abi-diff"
RST = ROOT / "Documentation/virt/onekvm/abi.rst"
ABI_PY = ROOT / "tools/kvm/onekvm/abi.py"
CC = shutil.which("gcc") or shutil.which("cc")

needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler")


def load_abigen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("abigen_under_test", ABIGEN)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


abigen = load_abigen()


def run(*args: Any, check: bool = True, **kw: Any) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)
    if check and proc.returncode:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def cli(*args: Any) -> tuple[int, str]:
    """abigen's command line, in-process (no interpreter start-up per call)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = abigen.main([str(a) for a in args])
    return rc, err.getvalue()


def gen(mode: str, src: Path, out: Path) -> None:
    rc, err = cli(mode, "--out", out, src)
    assert rc == 0, err


@functools.lru_cache(maxsize=None)
def source_model() -> dict[str, Any]:
    return abigen.abi_json(abigen.load(str(SRC)))


def source_fingerprint() -> int:
    return int(source_model()["fingerprint"], 16)


def edited(tmp: Path, edit: Callable[[str], str], name: str = "kvm.abi.h") -> Path:
    """A copy of the ABI source with edit() applied (which must change it)."""
    text = SRC.read_text()
    new = edit(text)
    assert new != text, "the edit did not apply"
    path = tmp / name
    path.write_text(new)
    return path


def add_regs_field(text: str) -> str:
    return text.replace("\t__u64 rip, rflags;\n};", "\t__u64 rip, rflags;\n\t__u64 promise;\t/* test */\n};")


def generate_tree(src: Path, root: Path) -> Path:
    """header + asserts + cffi builder under root/include/onekvm."""
    inc = root / "include"
    gen("header", src, inc / "onekvm/kvm.h")
    gen("asserts", src, inc / "onekvm/abi_asserts.h")
    gen("cffi", src, root / "_abi_build.py")
    return inc


def compile_and_run(c_text: str, tmp: Path, *flags: str) -> str:
    c_file, exe = tmp / "probe.c", tmp / "probe"
    c_file.write_text(c_text)
    run(CC, "-std=gnu11", "-Wall", "-Wextra", "-Werror", *flags, "-o", exe, c_file)
    return run(exe).stdout


def build_cffi(root: Path, inc: Path, module: str) -> ModuleType:
    """Build the API-mode extension from root/_abi_build.py, import it."""
    spec = importlib.util.spec_from_file_location(f"builder_{module}", root / "_abi_build.py")
    assert spec and spec.loader
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    so = builder.make_ffibuilder([str(inc)], module_name=module).compile(tmpdir=str(root / "cffi"))
    ext = importlib.util.spec_from_file_location(module, so)
    assert ext and ext.loader
    mod = importlib.util.module_from_spec(ext)
    ext.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------- (a) promise


@needs_cc
def test_new_field_reaches_c_and_python(tmp_path: Path) -> None:
    src = edited(tmp_path, add_regs_field)
    inc = generate_tree(src, tmp_path)
    want = abigen.abi_json(abigen.load(str(src)))["records"]["struct kvm_regs"]
    assert want["size"] == 152 and want["fields"][-1] == {
        "path": "promise", "offset": 144, "size": 8, "type": "__u64"}

    c_out = compile_and_run("\n".join([
        "#include <stdio.h>",
        "#include <onekvm/kvm.h>",
        "#include <onekvm/abi_asserts.h>",
        "int main(void)",
        "{",
        '\tprintf("%zu %zu\\n", __builtin_offsetof(struct kvm_regs, promise), sizeof(struct kvm_regs));',
        "\treturn 0;",
        "}", ""]), tmp_path, f"-I{inc}")
    assert c_out.split() == ["144", "152"]

    mod = build_cffi(tmp_path, inc, "_abi_promise")
    assert mod.ffi.offsetof("struct kvm_regs", "promise") == 144
    assert mod.ffi.sizeof("struct kvm_regs") == 152
    regs = mod.ffi.new("struct kvm_regs *", {"promise": 7})
    assert regs.promise == 7
    assert mod.lib.KVM_GET_REGS == 0x8098AE81      # the ioctl size grew with it
    assert mod.lib.ONEKVM_ABI_FINGERPRINT == abigen.load(str(src)).fingerprint


@needs_cc
def test_asserts_fire_on_a_mismatched_header(tmp_path: Path) -> None:
    """The generated asserts catch a header from another ABI source."""
    inc = generate_tree(SRC, tmp_path)
    gen("header", edited(tmp_path, add_regs_field), inc / "onekvm/kvm.h")
    c_file = tmp_path / "a.c"
    c_file.write_text("#include <onekvm/abi_asserts.h>\nint x;\n")
    proc = run(CC, "-std=gnu11", "-fsyntax-only", f"-I{inc}", c_file, check=False)
    assert proc.returncode != 0
    assert "not from the same ABI source" in proc.stderr
    assert "size/alignment of struct kvm_regs" in proc.stderr


@needs_cc
def test_cffi_rejects_a_cdef_that_disagrees_with_the_compiler(tmp_path: Path) -> None:
    inc = generate_tree(SRC, tmp_path)
    builder = tmp_path / "_abi_build.py"
    text = builder.read_text()
    builder.write_text(text.replace("__u16 port;", "__u32 port;", 1))
    mod = build_cffi(tmp_path, inc, "_abi_bad")
    with pytest.raises(mod.ffi.error, match="wrong size for field 'port'"):
        mod.ffi.sizeof("struct kvm_run")


# --------------------------------------------------------------- (b) stale


def test_committed_rst_is_fresh() -> None:
    """What `make check` runs: the real command line."""
    proc = run(sys.executable, ABIGEN, "check", SRC, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("mode,name", [("rst", "abi.rst"), ("header", "kvm.h"),
                                       ("asserts", "abi_asserts.h"), ("cffi", "_abi_build.py")])
def test_hand_edit_is_caught(tmp_path: Path, mode: str, name: str) -> None:
    out = tmp_path / name
    gen(mode, SRC, out)
    assert cli("check", SRC, out) == (0, "")
    assert cli(mode, "--check", "--out", out, SRC) == (0, "")
    lines = out.read_text().splitlines()
    lines[len(lines) // 2] += " hand edit"
    out.write_text("\n".join(lines) + "\n")
    rc, err = cli("check", SRC, out)
    assert rc == 1
    assert "stale or hand-edited" in err and "hand edit" in err
    assert cli(mode, "--check", "--out", out, SRC)[0] == 1


def test_stale_file_is_caught(tmp_path: Path) -> None:
    out = tmp_path / "abi.rst"
    gen("rst", SRC, out)
    src = edited(tmp_path, add_regs_field)
    rc, err = cli("check", src, out)
    assert rc == 1
    assert "0x4090ae82" in err                # the diff shows what changed


def test_out_rewrites_only_on_change(tmp_path: Path) -> None:
    out = tmp_path / "kvm.h"
    gen("header", SRC, out)
    os.utime(out, (1, 1))
    gen("header", SRC, out)
    assert out.stat().st_mtime == 1           # unchanged: no rebuild triggered
    out.write_text("garbage")
    gen("header", SRC, out)
    assert out.read_text() == abigen.render_header(abigen.load(str(SRC)))
    assert cli("check", SRC, out) == (0, "")


# ------------------------------------------------------------ (c) upstream

UPSTREAM_H = Path("/usr/include/linux/kvm.h")
needs_upstream = pytest.mark.skipif(not UPSTREAM_H.exists() or CC is None,
                                    reason="needs linux-libc-dev's <linux/kvm.h> and gcc")


def upstream_asserts(model: dict[str, Any]) -> list[str]:
    up = {n for n, o in model["origin"].items() if o == "upstream"}
    out = ["#include <linux/kvm.h>", "#define A(e) _Static_assert(e, #e)"]
    for name, c in model["constants"].items():
        if name in up:
            out.append(f"A({name} == {c['value']}LL);")
    for name, ioc in model["ioctls"].items():
        if name in up:
            out.append(f"A({name} == {ioc['number']}U);")
    for tag, rec in model["records"].items():
        if tag not in up:
            continue
        out.append(f"A(sizeof({tag}) == {rec['size']}); A(__alignof__({tag}) == {rec['align']});")
        for f in rec["fields"]:
            if "bits" in f:
                continue
            out.append(f"A(__builtin_offsetof({tag}, {f['path']}) == {f['offset']});")
            if not f.get("flex"):
                out.append(f"A(sizeof((({tag} *)0)->{f['path']}) == {f['size']});")
    return out


@needs_upstream
def test_upstream_items_match_linux_kvm_h(tmp_path: Path) -> None:
    model = source_model()
    up = [n for n, o in model["origin"].items() if o == "upstream"]
    assert len(up) > 300 and "struct kvm_run" in up and "KVM_RUN" in up
    c_file = tmp_path / "upstream.c"
    c_file.write_text("\n".join(upstream_asserts(model)) + "\n")
    proc = run(CC, "-std=gnu11", "-fsyntax-only", c_file, check=False)
    assert proc.returncode == 0, proc.stderr[:3000]


def bitfield_probe(include: str, model: dict[str, Any]) -> tuple[str, dict[str, tuple[int, int]]]:
    """C that sets each bitfield to all ones and prints the bits it covers."""
    want: dict[str, tuple[int, int]] = {}
    body = []
    for tag, rec in model["records"].items():
        for f in rec["fields"]:
            if "bits" not in f:
                continue
            key = f"{tag.split()[-1]}.{f['path']}"
            want[key] = (f["bit_offset"], f["bits"])
            body.append(f"\t{{ {tag} s; memset(&s, 0, sizeof(s)); s.{f['path']} = (1u << {f['bits']}) - 1;"
                        f" show(\"{key}\", &s, sizeof(s)); }}")
    c_text = "\n".join([
        "#include <stdio.h>", "#include <string.h>", include,
        "static void show(const char *k, const void *p, size_t n)",
        "{", "\tconst unsigned char *b = p;", "\tint first = -1, count = 0;",
        "\tfor (size_t i = 0; i < n * 8; i++)",
        "\t\tif (b[i / 8] >> (i % 8) & 1) {", "\t\t\tif (first < 0)", "\t\t\t\tfirst = (int)i;",
        "\t\t\tcount++;", "\t\t}", "\tprintf(\"%s %d %d\\n\", k, first, count);", "}",
        "int main(void)", "{", *body, "\treturn 0;", "}", ""])
    return c_text, want


def probe_bitfields(include: str, tmp: Path, *flags: str) -> None:
    model = source_model()
    c_text, want = bitfield_probe(include, model)
    assert want, "the ABI has bitfields (kvm_ioapic_state); the probe must see them"
    got = {}
    for line in compile_and_run(c_text, tmp, *flags).splitlines():
        key, first, count = line.split()
        got[key] = (int(first), int(count))
    assert got == want


@needs_upstream
def test_upstream_bitfields_match(tmp_path: Path) -> None:
    probe_bitfields("#include <linux/kvm.h>", tmp_path)


@needs_cc
def test_generated_bitfields_match(tmp_path: Path) -> None:
    inc = generate_tree(SRC, tmp_path)
    probe_bitfields("#include <onekvm/kvm.h>", tmp_path, f"-I{inc}")


# --------------------------------------------------------- (d) fingerprint


def fp(tmp: Path, edit: Callable[[str], str]) -> int:
    return abigen.load(str(edited(tmp, edit))).fingerprint


def test_fingerprint_ignores_comments_and_whitespace(tmp_path: Path) -> None:
    base = source_fingerprint()
    cosmetic = [
        lambda t: t.replace("struct kvm_regs {", "struct kvm_regs {\t/* a new comment */"),
        lambda t: t.replace("#define KVM_EXIT_HLT 5", "/* halt */\n#define KVM_EXIT_HLT   5"),
        lambda t: t.replace("\t__u64 rax, rbx, rcx, rdx;", "    __u64   rax,rbx ,  rcx, rdx ;"),
        lambda t: t.replace(" * KVM_RUN - run the vcpu until", " * KVM_RUN - run the vCPU, until"),
        lambda t: t.replace("struct kvm_sregs {", "\n\nstruct kvm_sregs\n{"),
        lambda t: t.replace("(1ULL << 0)", "1ULL"),   # same value, other spelling
        lambda t: t.replace("#define KVM_EXIT_IO_IN 0\n#define KVM_EXIT_IO_OUT 1",
                            "#define KVM_EXIT_IO_OUT 1\n#define KVM_EXIT_IO_IN 0"),   # item order
    ]
    for k, edit in enumerate(cosmetic):
        assert fp(tmp_path, edit) == base, f"cosmetic edit {k} changed the fingerprint"


def test_fingerprint_follows_every_change(tmp_path: Path) -> None:
    base = source_fingerprint()
    changes = {
        "constant": lambda t: t.replace("#define KVM_EXIT_HLT 5", "#define KVM_EXIT_HLT 55"),
        "new constant": lambda t: t.replace("#define KVM_CAP_ONEKVM_ABI_FINGERPRINT 0x10000",
                                            "#define KVM_CAP_ONEKVM_ABI_FINGERPRINT 0x10000\n"
                                            "#define KVM_CAP_ONEKVM_X 0x10001"),
        "field": add_regs_field,
        "field type": lambda t: t.replace("\t__u32 limit;\n\t__u16 selector;", "\t__s32 limit;\n\t__u16 selector;"),
        "field name": lambda t: t.replace("__u8 if_flag;", "__u8 if_flag2;"),
        "array": lambda t: t.replace("__u8 pad[36];", "__u8 pad[40];"),
        "ioctl nr": lambda t: t.replace("#define KVM_NMI _IO(KVMIO, 0x9a)", "#define KVM_NMI _IO(KVMIO, 0x9b)"),
        "ioctl dir": lambda t: t.replace("_IOR(KVMIO, 0x8e,", "_IOWR(KVMIO, 0x8e,"),
        "bitfield": lambda t: t.replace("__u8 mask:1;\n\t\t\t__u8 reserve:7;", "__u8 mask:2;\n\t\t\t__u8 reserve:6;"),
        "union member": lambda t: t.replace("\t\tchar padding[256];", "\t\tchar padding[264];"),
    }
    seen = {base: "base"}
    for what, edit in changes.items():
        value = fp(tmp_path, edit)
        assert value not in seen, f"{what} gives the same fingerprint as {seen.get(value)}"
        seen[value] = what


def test_fingerprint_cli_and_header_agree(tmp_path: Path) -> None:
    printed = run(sys.executable, ABIGEN, "fingerprint", SRC).stdout.strip()
    gen("header", SRC, tmp_path / "kvm.h")
    m = re.search(r"#define ONEKVM_ABI_FINGERPRINT (0x[0-9a-f]{16})ULL", (tmp_path / "kvm.h").read_text())
    assert m and m.group(1) == printed


# ------------------------------------------------------------ (e) abi-diff


def synthetic_change(text: str) -> str:
    text = add_regs_field(text)
    text = text.replace("#define KVM_CAP_HLT 1\n", "")
    return text.replace("#define KVM_CAP_ONEKVM_ABI_FINGERPRINT 0x10000",
                        "#define KVM_CAP_ONEKVM_ABI_FINGERPRINT 0x10000\n#define KVM_CAP_ONEKVM_X 0x10001")


def check_diff_output(out: str) -> None:
    assert "+ KVM_CAP_ONEKVM_X = 0x10001" in out
    assert re.search(r"- KVM_CAP_HLT \(was 0x1\)\s+\[UPSTREAM KVM ABI\]", out)
    assert "~ KVM_GET_REGS: 0x8090ae81 -> 0x8098ae81" in out
    assert "~ struct kvm_regs: size 144 -> 152" in out
    assert re.search(r"\+ promise\s+@0x90\s+8\s+__u64", out)
    assert "s.regs: struct kvm_sync_regs resized 520 -> 528" in out
    assert len(out.splitlines()) < 25          # one screen


def test_abi_diff_files(tmp_path: Path) -> None:
    new = edited(tmp_path, synthetic_change)
    check_diff_output(run(sys.executable, ABI_DIFF, SRC, new).stdout)
    same = run(sys.executable, ABI_DIFF, "--exit-code", SRC, SRC)
    assert "no ABI change" in same.stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_abi_diff_revisions(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    dest = repo / "include/uapi/onekvm/kvm.abi.h"
    dest.parent.mkdir(parents=True)
    git = ["git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.org"]
    run("git", "init", "-q", repo)
    shutil.copy(SRC, dest)
    run(*git, "add", "-A")
    run(*git, "commit", "-qm", "one")
    dest.write_text(synthetic_change(SRC.read_text()))
    run(*git, "commit", "-qam", "two")
    proc = run(sys.executable, ABI_DIFF, "--repo", repo, "--exit-code", check=False)
    assert proc.returncode == 1
    assert proc.stdout.startswith("onekvm ABI: HEAD~1 -> HEAD")
    check_diff_output(proc.stdout)


# ------------------------------------------------------------ the dialect

BAD_SOURCES = {
    "#ifdef": ("#ifdef FOO\n#define X 1\n#endif", "not part of the ABI dialect"),
    "unsigned long": ("struct s {\n\tunsigned long x;\n};", "use __u8..__u64"),
    "flex not last": ("struct s {\n\t__u32 n;\n\t__u32 a[];\n\t__u32 b;\n};", "flexible array must be the last"),
    "unknown name": ("#define X (FOO + 1)", "unknown constant 'FOO'"),
    "use before def": ("struct s {\n\tstruct t x;\n};", "struct t used before its definition"),
    "onekvm range": ("/**\n * KVM_X - x\n *\n * Type: system ioctl\n */\n#define KVM_X _IO(KVMIO, 0xf3)",
                     "is for ONEKVM_* ioctls only"),
    "onekvm cap": ("#define KVM_CAP_FOO 0x10005", "for KVM_CAP_ONEKVM_* only"),
    "no Type": ("#define KVM_Y _IO(KVMIO, 0x33)", "needs a doc comment with 'Type:"),
    "dup ioctl": ("/**\n * KVM_Z - z\n *\n * Type: vm ioctl\n */\n#define KVM_Z _IO(KVMIO, 0x80)",
                  "same number 0xae80 as KVM_RUN"),
    "define in struct": ("struct s {\n#define Q 1\n\t__u32 x;\n};", "inside a struct body"),
    "c++ comment": ("// hi", "C++ comments"),
    "redefined": ("#define KVM_EXIT_HLT 5", "KVM_EXIT_HLT redefined"),
    "wrong doc": ("/**\n * struct foo - x\n */\nstruct bar {\n\t__u32 x;\n};", "must start with 'struct bar - '"),
}


@pytest.mark.parametrize("case", sorted(BAD_SOURCES))
def test_dialect_errors_name_file_and_line(tmp_path: Path, case: str) -> None:
    snippet, message = BAD_SOURCES[case]
    text = SRC.read_text()
    end = text.rindex("#endif")
    src = tmp_path / "kvm.abi.h"
    src.write_text(text[:end] + snippet + "\n\n" + text[end:])
    first_line = text[:end].count("\n") + 1
    rc, err = cli("fingerprint", src)
    assert rc == 1
    m = re.match(rf"{re.escape(str(src))}:(\d+): error: (.*)", err)
    assert m, err
    assert message in m.group(2)
    assert first_line <= int(m.group(1)) <= first_line + snippet.count("\n")


def test_layout_of_tricky_records() -> None:
    recs = source_model()["records"]
    fields = {f["path"]: f for f in recs["struct kvm_run"]["fields"]}
    assert recs["struct kvm_run"]["size"] == 2352 and fields["s"]["offset"] == 304
    assert fields["hypercall.flags"]["offset"] == 32 + 64
    assert fields["emulation_failure.insn_bytes"]["offset"] == 32 + 17
    io = {f["path"]: f for f in recs["struct kvm_ioapic_state"]["fields"]}
    assert io["redirtbl[0].fields.mask"]["bit_offset"] == 24 * 8 + 16
    assert io["redirtbl[0].fields.dest_id"]["offset"] == 24 + 7
    assert recs["struct kvm_cpuid2"]["size"] == 8
    assert recs["struct kvm_irq_routing_entry"]["align"] == 8


# ------------------------------------------------------------- onekvm.abi


@pytest.fixture(scope="module")
def abi_pkg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway onekvm package: abi.py + _abi built from the ABI source."""
    if CC is None:
        pytest.skip("no C compiler")
    root = tmp_path_factory.mktemp("abipkg")
    inc = generate_tree(SRC, root)
    pkg = root / "site/onekvm"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    shutil.copy(ABI_PY, pkg / "abi.py")
    build_cffi(root, inc, "onekvm._abi")
    for so in (root / "cffi/onekvm").glob("_abi*.so"):
        shutil.copy(so, pkg)
    return root / "site"


def run_in_pkg(site: Path, code: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(site))
    return run(sys.executable, "-c", textwrap.dedent(code), env=env).stdout


def test_abi_py_helpers(abi_pkg: Path) -> None:
    fingerprint = source_fingerprint()
    out = run_in_pkg(abi_pkg, """\
        import errno
        from onekvm import abi
        print(hex(abi.FINGERPRINT))
        try:
            abi.ioctl(-1, abi.lib.KVM_GET_API_VERSION)
        except OSError as e:
            assert e.errno == errno.EBADF and str(e).endswith("KVM_GET_API_VERSION: Bad file descriptor"), e
        p = abi.new_flex("struct kvm_msrs", 5)
        p.entries[4].data = 1
        print(abi.ffi.sizeof(p[0]), abi.ioctl_name(abi.lib.ONEKVM_GET_ABI_FINGERPRINT))
        abi.module_fingerprint = lambda fd: 0x1234
        try:
            abi.check_fingerprint(3)
        except abi.AbiMismatchError as e:
            print(e.exit_code, e)
        abi.module_fingerprint = lambda fd: None
        abi.check_fingerprint(3)
        """)
    lines = out.splitlines()
    assert lines[0] == hex(fingerprint)
    assert lines[1] == f"{8 + 5 * 16} ONEKVM_GET_ABI_FINGERPRINT"
    assert lines[2] == ("2 the loaded onekvm.ko was built from another ABI (module 0x0000000000001234, "
                        f"tools/kvm {fingerprint:#018x}): rebuild and reload it")


@pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK), reason="no usable /dev/kvm")
def test_abi_py_on_stock_kvm(abi_pkg: Path) -> None:
    out = run_in_pkg(abi_pkg, """\
        import os
        from onekvm import abi
        fd = os.open("/dev/kvm", os.O_RDWR)
        abi.check_fingerprint(fd)          # stock KVM: nothing to check
        print(abi.ioctl(fd, abi.lib.KVM_GET_API_VERSION), abi.module_fingerprint(fd))
        vm = abi.ioctl(fd, abi.lib.KVM_CREATE_VM, 0)
        vcpu = abi.ioctl(vm, abi.lib.KVM_CREATE_VCPU, 0)
        mapping, run = abi.map_kvm_run(vcpu, abi.ioctl(fd, abi.lib.KVM_GET_VCPU_MMAP_SIZE))
        regs = abi.ffi.new("struct kvm_regs *")
        abi.ioctl(vcpu, abi.lib.KVM_GET_REGS, regs)
        print(hex(regs.rip), run.exit_reason)
        """)
    assert out.split() == ["12", "None", "0xfff0", "0"]
