# SPDX-License-Identifier: GPL-2.0
"""Host-side tests of the vmtest rig (they boot it).

    python3 -m pytest -q tools/testing/vmtest

The boots run concurrently (one module-scoped fixture starts them all), so
the whole file costs about one rig run.  VMTEST_KVER selects the kernel
(default: the rig's default, the newest installed pair).
"""

from __future__ import annotations

import filecmp
import importlib.machinery
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
VMTEST = HERE / "vmtest"
REPO = HERE.parents[2]
WARNMOD_SRC = HERE / "warnmod"


def _load_vmtest():
    loader = importlib.machinery.SourceFileLoader("vmtest_rig", str(VMTEST))
    spec = importlib.util.spec_from_loader("vmtest_rig", loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["vmtest_rig"] = mod
    loader.exec_module(mod)
    return mod


vm = _load_vmtest()


def rig_available() -> str | None:
    if not shutil.which(vm.QEMU):
        return f"{vm.QEMU} not installed"
    if not vm.installed_kvers():
        return "no kernel image + headers pair installed"
    if not (Path("/bin/busybox").is_file() or Path("/usr/bin/busybox").is_file()):
        return "busybox not installed"
    return None


needs_rig = pytest.mark.skipif(rig_available() is not None,
                               reason=str(rig_available()))


@pytest.fixture(scope="module")
def kver() -> str:
    return os.environ.get("VMTEST_KVER") or vm.default_kver()


def vmtest(*args: str, env: dict[str, str] | None = None,
           **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(VMTEST), *args], cwd=REPO,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **kw)


@dataclass
class Result:
    rc: int
    out: str
    err: str
    wall: float
    state: str = ""  # qemu-state.txt, written when vmtest killed a hung guest


def finish(p: subprocess.Popen, t0: float, timeout: float = 300) -> Result:
    out, err = p.communicate(timeout=timeout)
    return Result(p.returncode, out, err, time.monotonic() - t0)


# ---------------------------------------------------------------- log check

SRSO = ("[    0.123456] Speculative Return Stack Overflow: WARNING: See "
        "https://kernel.org/doc/html/latest/admin-guide/hw-vuln/srso.html "
        "for mitigation options.")


def test_log_check_ignores_benign_lines() -> None:
    lines = [SRSO, "[    1.0] kvm_amd: Nested Virtualization enabled",
             "[    2.0] random: crng init done",
             "[    3.0] systemd[1]: warning: nothing"]
    assert vm.check_log(lines) == []


@pytest.mark.parametrize("line,what", [
    ("[ 5.1] WARNING: CPU: 1 PID: 155 at drivers/x.c:19 f+0x25/0xff0 [m]", "WARN splat"),
    ("[ 5.1] BUG: kernel NULL pointer dereference, address: 0000000000000008", "BUG"),
    ("[ 5.1] kernel BUG at mm/slub.c:435!", "BUG"),
    ("[ 5.1] Oops: 0002 [#1] PREEMPT SMP NOPTI", "Oops"),
    ("[ 5.1] general protection fault, probably for non-canonical address", "general protection fault"),
    ("[ 5.1] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [a:1]", "BUG"),
    ("[ 5.1] Watchdog detected hard LOCKUP on cpu 1", "lockup"),
    ("[ 5.1] rcu: INFO: rcu_preempt self-detected stall on CPU", "RCU stall"),
    ("[ 5.1] UBSAN: array-index-out-of-bounds in arch/x86/kvm/x.c:12:3", "KASAN/UBSAN/KFENCE"),
    ("[ 5.1] list_del corruption, ffff888004b0b0c0->next is LIST_POISON1", "list corruption"),
    ("[ 5.1] INFO: task insmod:155 blocked for more than 120 seconds.", "hung task"),
    ("[ 5.1] WARNING: possible circular locking dependency detected", "lockdep/RCU warning"),
    ("[ 5.1] pagealloc: memory corruption", "freed memory written"),
    ("[ 5.1] BUG kmalloc-96 (Tainted: G           OE     ): Poison overwritten", "freed memory written"),
    ("[ 5.1] BUG vmap_area (Not tainted): Object already free", "freed memory written"),
])
def test_log_check_finds(line: str, what: str) -> None:
    lines = [SRSO, "[ 5.0] ------------[ cut here ]------------", line,
             "[ 5.2] Call Trace:", "[ 5.3] ---[ end trace 0000000000000000 ]---",
             "[ 6.0] after"]
    findings = vm.check_log(lines)
    assert [f.what for f in findings] == [what]
    f = findings[0]
    assert lines[f.start:f.end][0].endswith("[ cut here ]------------")
    assert lines[f.end - 1].endswith("---[ end trace 0000000000000000 ]---")


def test_log_check_one_finding_per_splat() -> None:
    lines = ["------------[ cut here ]------------",
             "WARNING: CPU: 0 PID: 1 at a.c:1 f+0x1/0x2",
             "BUG: this line is inside the same splat",
             "---[ end trace 0000000000000000 ]---",
             "Oops: 0000 [#2] SMP"]
    assert [f.what for f in vm.check_log(lines)] == ["WARN splat", "Oops"]


def test_kmsg_records_become_dmesg_lines() -> None:
    text = ("6,1,0,-;Linux version 6.1.0\n"
            "4,339,20898806,-;WARNING: CPU: 1 PID: 155 at a.c:19 f+0x25/0xff0\n"
            " SUBSYSTEM=foo\n"
            "6,340,21000001,c;tab\\x09here\n"
            "torn record")
    assert vm.kmsg_to_dmesg(text) == [
        "[    0.000000] Linux version 6.1.0",
        "[   20.898806] WARNING: CPU: 1 PID: 155 at a.c:19 f+0x25/0xff0",
        "[   21.000001] tab\there"]


# ---------------------------------------------------------------- host side

@pytest.mark.skipif(not shutil.which("cpio"), reason="no cpio tool")
def test_cpio_archive_lists(tmp_path: Path) -> None:
    c = vm.Cpio()
    c.dir("bin")
    c.file("bin/busybox", b"x" * 5, 0o755)
    c.symlink("bin/sh", "busybox")
    c.chardev("dev/console", 5, 1)
    (tmp_path / "a.cpio").write_bytes(c.finish())
    out = subprocess.run(["cpio", "-itv", "--quiet"], stdin=(tmp_path / "a.cpio").open("rb"),
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    assert "bin/sh -> busybox" in out
    assert out.splitlines()[3].startswith("crw-------")


@needs_rig
@pytest.mark.parametrize("k", vm.installed_kvers())
def test_module_load_order(k: str) -> None:
    info = vm.read_modinfo(k)
    order = vm.load_order(info, vm.NINEP_MODULES + vm.KVM_MODULES)
    assert order[-1] == "kvm_amd" and "9p" in order
    for i, m in enumerate(order):
        assert m not in info.builtin
        assert all(d in order[:i] or d in info.builtin for d in info.deps[m])


def test_error_unknown_kernel() -> None:
    r = finish(vmtest("--kver", "0.0-none", "--hv", "none"), time.monotonic())
    assert r.rc == 2
    assert r.err.strip().count("\n") == 0 and r.err.startswith("vmtest: error:")


@needs_rig
def test_error_missing_module(kver: str, tmp_path: Path) -> None:
    r = finish(vmtest("--kver", kver, "--module", str(tmp_path / "no.ko")), time.monotonic())
    assert r.rc == 2 and "not found" in r.err and r.err.count("\n") == 1


@needs_rig
def test_error_no_qemu(kver: str, tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path))
    r = finish(vmtest("--kver", kver, "--hv", "none", env=env), time.monotonic())
    assert r.rc == 2 and "qemu-system-x86_64 not found" in r.err


@needs_rig
def test_foreign_results_dir_is_kept(kver: str, tmp_path: Path) -> None:
    (tmp_path / "precious").write_text("x")
    r = finish(vmtest("--kver", kver, "--hv", "none", "--results", str(tmp_path)),
               time.monotonic())
    assert r.rc == 2 and "refusing" in r.err
    assert (tmp_path / "precious").exists()


# ---------------------------------------------------------------- monitor

def fake_monitor(path: Path, replies: dict[str, bytes]) -> tuple[threading.Thread, list[str]]:
    """A monitor socket that talks like QEMU's: a banner, then for each command the
    reply given (readline echo and output, verbatim) and a prompt. One connection."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(1)
    got: list[str] = []

    def serve() -> None:
        c, _ = srv.accept()
        with c, srv:
            c.sendall(b"QEMU 7.2.0 monitor - type 'help' for more information\r\n(qemu) ")
            buf = b""
            while data := c.recv(100):
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    got.append(line.decode())
                    c.sendall(replies.get(line.decode(), line + b"\r\n") + b"(qemu) ")

    t = threading.Thread(target=serve)
    t.start()
    return t, got


def test_hmp_strips_echo_and_escapes(tmp_path: Path) -> None:
    """hmp() against a fake monitor that talks like QEMU's (banner, readline echo)."""
    t, got = fake_monitor(tmp_path / "mon", {
        "info cpus": b"i\x1b[K\x1b[Dinfo cpus\r\n* CPU #0: thread_id=7\r\n  CPU #1: thread_id=8\r\n"})
    try:
        out = vm.hmp(tmp_path / "mon", "info cpus", timeout=10)
    finally:
        t.join(10)
    assert got == ["info cpus"]
    assert out == "* CPU #0: thread_id=7\n  CPU #1: thread_id=8"


KALLSYMS = """\
ffffffffc02dfd20 b okvm_gifdbg\t[onekvm]
ffffffff81000000 T _stext
ffffffff811d5830 t smp_call_function_many_cond
ffffffff811d5c40 T smp_call_function_many
ffffffff81cd1e80 T default_idle
ffffffff82c00000 D some_data
ffffffffc0499b40 t svm_vcpu_run\t[onekvm]
0000000000000000 t hidden_by_kptr_restrict
"""


def test_kernel_symbols_name_code_and_nothing_else() -> None:
    syms = vm.KernelSymbols(KALLSYMS)
    assert syms.name(0xFFFFFFFF811D5957) == "smp_call_function_many_cond+0x127"
    assert syms.name(0xFFFFFFFF81CD1E9F) == "default_idle+0x1f"
    assert syms.name(0xFFFFFFFFC0499B40) == "svm_vcpu_run [onekvm]+0x0"
    assert syms.name(0xFFFF88807D63D160) is None  # a data pointer below the text
    assert syms.name(0xFFFFFFFF82C00008) is None  # data, far past the last function before it
    assert syms.name(0x1234) is None


def test_dump_symbols_reads_module_data(tmp_path: Path) -> None:
    sock = tmp_path / "mon"
    cmd = "x /2gx 0xffffffffc02dfd20"
    t, got = fake_monitor(sock, {cmd: cmd.encode() + b"\r\nffffffffc02dfd20: 0x0000000000000007 0x0\r\n"})
    try:
        out = vm.dump_symbols(sock, vm.KernelSymbols(KALLSYMS), "okvm_gifdbg:2,nosuch", cpu=1)
    finally:
        t.join(10)
    assert got == ["cpu 1", cmd]
    assert out == ["# okvm_gifdbg (0xffffffffc02dfd20)", "ffffffffc02dfd20: 0x0000000000000007 0x0",
                   "# nosuch: not in kallsyms.txt"]


def test_kernel_symbols_unreadable_or_restricted(tmp_path: Path) -> None:
    assert vm.KernelSymbols.load(tmp_path / "missing") is None
    (tmp_path / "k").write_text("0000000000000000 T _stext\n0000000000000000 t f\n")
    assert vm.KernelSymbols.load(tmp_path / "k") is None


def test_l1_stack_names_the_code_addresses_on_the_stack(tmp_path: Path) -> None:
    sock = tmp_path / "mon"
    cmd = "x /4gx 0xffffc90000433a70"
    dump = (b"ffffc90000433a70: 0xffff88807d63d160 0xffffffff811d5c55\r\n"
            b"ffffc90000433a80: 0x0000000000000246 0xffffffffc0499b52\r\n")
    t, got = fake_monitor(sock, {cmd: cmd.encode() + b"\r\n" + dump})
    try:
        stack = vm.l1_stack(sock, 1, 0xFFFFC90000433A70, vm.KernelSymbols(KALLSYMS), words=4)
    finally:
        t.join(10)
    assert got == ["cpu 1", "x /4gx 0xffffc90000433a70"]
    assert stack == "smp_call_function_many+0x15 < svm_vcpu_run [onekvm]+0x12"


@pytest.mark.parametrize("line, wedged", [
    ("[  586.4] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", True),
    ("[  620.8] watchdog: BUG: soft lockup - CPU#1 stuck for 23s! [python3:166]", True),
    ("[    9.1] NMI watchdog: Watchdog detected hard LOCKUP on cpu 1", True),
    ("[    0.2] rcu: Preemptible hierarchical RCU implementation.", False),
    ("[    0.9] rcu: \tRCU CPU stall warnings timeout set to 21 (rcu_cpu_stall_timeout).", False),
])
def test_wedge_line(line: str, wedged: bool) -> None:
    assert bool(vm.WEDGE_LINE.search(line)) == wedged


def test_qemu_end_names_a_crash() -> None:
    assert vm.qemu_end(-11) == "QEMU killed by SIGSEGV"
    assert vm.qemu_end(0) == "QEMU exit status 0"


def test_register_blocks_in_any_mode() -> None:
    """info registers -a with CPU 0 in a real-mode L2 (EIP=, ESP=) and CPU 1 in L1."""
    text = ("CPU#0\nEAX=0000ffff EBX=000080ff ECX=000000ff EDX=c740a9db\n"
            "ESI=00000080 EDI=ffffffff EBP=00000fff ESP=0000e6de\n"
            "EIP=0000284f EFL=00000097 [--S-APC] CPL=0 II=0 A20=1 SMM=0 HLT=0\n\n"
            "CPU#1\nRAX=0000000000000000 RBX=0000000000000202\n"
            "RSI=ffff88807d63d160 RDI=ffff8880042afee8 RBP=ffff88807d735300 RSP=ffffc9000044bc90\n"
            "RIP=ffffffff811d5957 RFL=00000202 [-------] CPL=0 II=0 A20=1 SMM=0 HLT=0\n"
            "CS =0010 0000000000000000 ffffffff 00af9b00 DPL=0 CS64 [-RA]\n")
    rows = []
    for b in vm.CPU_BLOCK.finditer(text):
        rows.append((b.group(1), vm.REGS.search(b.group(2)).groups(), vm.RSP.search(b.group(2)).group(1)))
    assert rows == [("0", ("0000284f", "00000097", "0", "0"), "0000e6de"),
                    ("1", ("ffffffff811d5957", "00000202", "0", "0"), "ffffc9000044bc90")]


def test_register_summary_regex() -> None:
    text = ("RIP=0000000000020fff RFL=00000046 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=0\n"
            "ES =0018 ...\nRIP=ffffffff81cd1e9f RFL=00000216 [----AP-] CPL=0 II=0 A20=1 SMM=0 HLT=1\n")
    assert [m.groups() for m in vm.REGS.finditer(text)] == [
        ("0000000000020fff", "00000046", "0", "0"), ("ffffffff81cd1e9f", "00000216", "0", "1")]


# ---------------------------------------------------------------- boots

def build_warnmod(kver: str) -> Path:
    """vmtest_warn.ko for kver, built once per source change.

    Built under build/ (not /tmp): the guest sees the host root, but its /tmp
    is a tmpfs of its own.
    """
    out = REPO / "build/vmtest-cache" / kver / "warnmod"
    out.mkdir(parents=True, exist_ok=True)
    srcs = ["Kbuild", "vmtest_warn.c"]
    ko = out / "vmtest_warn.ko"
    same = all((out / s).exists() and filecmp.cmp(WARNMOD_SRC / s, out / s, shallow=False)
               for s in srcs)
    if not (same and ko.exists()):
        for s in srcs:
            shutil.copy(WARNMOD_SRC / s, out / s)
        subprocess.run(["make", "-s", "-C", f"/lib/modules/{kver}/build", f"M={out}",
                        "modules"], check=True, stdout=subprocess.DEVNULL)
    return ko


@pytest.fixture(scope="module")
def boots(kver: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """Start every boot at once; the module build overlaps the first boots."""
    base = tmp_path_factory.mktemp("vmtest")
    common = ["--kver", kver, "--hv", "none", "--smp", "1", "--mem", "512"]
    t0 = time.monotonic()
    procs = {
        "clean": vmtest(*common, "--results", str(base / "clean"), "--",
                        "sh", "-c", 'echo "guest says hi from $(uname -r)"'),
        "status": vmtest(*common, "--results", str(base / "status"), "--",
                         "sh", "-c", "exit 3"),
        "timeout": vmtest(*common, "--results", str(base / "timeout"), "--timeout", "2",
                          "--", "sleep", "100"),
        "stall": vmtest(*common, "--results", str(base / "stall"), "--stall", "3",
                        "--timeout", "200", "--", "sleep", "100"),
        "wedge": vmtest(*common, "--results", str(base / "wedge"), "--wedge-grace", "2",
                        "--timeout", "200", "--", "sh", "-c",
                        # Once L1's symbols are written, so that the dump names functions.
                        'while [ ! -e "$VMTEST_RESULTS/kallsyms.txt" ]; do sleep 0.2; done; '
                        "echo 'watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [sh:1]'; "
                        "while sleep 1; do echo still talking; done"),
        # reboot=t: the kernel restarts by a triple fault (an empty IDT and int3).
        "reset": vmtest(*common, "--results", str(base / "reset"), "--timeout", "200", "--",
                        "sh", "-c", f"echo resetting; {vm.busybox_path()} reboot -f; sleep 100",
                        env=dict(os.environ, VMTEST_APPEND="reboot=t")),
    }
    try:
        ko = build_warnmod(kver)
        procs["warn"] = vmtest(*common, "--results", str(base / "warn"), "--",
                               "/sbin/insmod", str(ko))
        done = {name: finish(p, t0) for name, p in procs.items()}
        for name, r in done.items():
            state = base / name / "qemu-state.txt"
            r.state = state.read_text() if state.is_file() else ""
        return done
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()


@needs_rig
def test_clean_run_passes(boots: dict[str, Result], kver: str) -> None:
    r = boots["clean"]
    assert r.rc == 0, r.err
    assert f"guest says hi from {kver}" in r.out
    assert "PASS" in r.err


@needs_rig
def test_exit_status_is_the_commands(boots: dict[str, Result]) -> None:
    r = boots["status"]
    assert r.rc == 3, r.err
    assert "FAIL (exit 3)" in r.err


@needs_rig
def test_warn_on_load_fails_the_run(boots: dict[str, Result]) -> None:
    r = boots["warn"]
    assert r.rc == 1, r.out + r.err
    assert "WARN splat" in r.err
    assert "vmtest_warn: deliberate warning" in r.err
    assert "WARNING: CPU:" in r.err and "---[ end trace" in r.err


@needs_rig
def test_hung_guest_is_killed_at_timeout(boots: dict[str, Result]) -> None:
    r = boots["timeout"]
    assert r.rc == 124, r.err
    assert "timeout: guest killed after 2 s" in r.err
    assert r.wall < 60
    assert "CPU#0" in r.state and "RIP=" in r.state, r.state
    # The VM is stopped before its CPU state is read: GIF is always found.
    assert "L1 CPU 0: RIP " in r.err and " GIF 1" in r.err, r.err


@needs_rig
@pytest.mark.parametrize("boot, why", [
    ("stall", "no console output for 3 s: guest killed"),
    # A console that keeps talking but reports a lockup (a wedged L1's watchdogs).
    ("wedge", "reported a lockup or RCU stall 2 s ago: guest killed"),
])
def test_hung_guest_is_dumped_and_killed(boots: dict[str, Result], boot: str, why: str) -> None:
    r = boots[boot]
    assert r.rc == 124, r.err
    assert why in r.err
    assert "'CPU 0/TCG'" in r.state and "RIP=" in r.state, r.state
    assert r.wall < 120
    if boot == "wedge":
        # An L1 CPU in the kernel (idle, or in an interrupt it took there):
        # its RIP named from kallsyms.txt, and named code addresses on its stack.
        assert re.search(r"L1 CPU 0: RIP [0-9a-f]+ \(\w+\+0x[0-9a-f]+\)", r.err), r.err
        assert re.search(r"\n  \|     stack: \w+\+0x[0-9a-f]+", r.err), r.err


@needs_rig
def test_l1_triple_fault_is_reported_with_its_state(boots: dict[str, Result]) -> None:
    # QEMU pauses at the reset (-action shutdown=pause); vmtest reads the
    # CPUs' state as they stopped, then quits it.
    r = boots["reset"]
    assert r.rc == 1, r.err
    assert "L1 triple-faulted before its command reported a status" in r.err, r.err
    assert "resetting" in r.out
    assert "RIP=" in r.state and "L1 CPU 0: RIP " in r.err, r.err
    assert r.wall < 120


def test_cpu_hflags_finds_gif_in_a_process_memory():
    """The hung-guest dump reads QEMU's CPUX86State (regs[16], eip, eflags, cc_*, cc_op, df,
    hflags, hflags2) out of QEMU's memory: here a process holding two such states."""
    rip, flags2 = 0xFFFFFFFF81CD1E9F, (0, 1)
    script = (
        "import struct, sys, time\n"
        "blobs = []\n"
        f"for rsp, h2 in ((0xffffffff82c03e88, {flags2[0]}), (0xffffc900000c3ed8, {flags2[1]})):\n"
        "    regs = [0] * 16; regs[4] = rsp\n"
        f"    blobs.append(bytearray(struct.pack('<16QQQQQQIiII', *regs, {rip}, 0x202, 0, 0, 0, 1, 1,"
        " 0x10d0c2b0, h2)))\n"
        "print('ready', flush=True); time.sleep(60)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        assert vm.cpu_hflags(p.pid, rip, 0xFFFFFFFF82C03E88) == (0x10D0C2B0, 0)
        assert vm.cpu_hflags(p.pid, rip, 0xFFFFC900000C3ED8) == (0x10D0C2B0, 1)
        assert vm.cpu_hflags(p.pid, rip, 0x1234) is None
    finally:
        p.kill()
        p.wait()
