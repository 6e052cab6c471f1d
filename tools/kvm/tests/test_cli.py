"""The command line's error paths: one clear line on stderr, exit status 2, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from onekvm import cli, kvm
from onekvm.errors import UserError

TOOLS_KVM = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def onekvm(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([TOOLS_KVM, *filter(None, [e.get("PYTHONPATH")])])
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "onekvm", *args],
        capture_output=True,
        text=True,
        env=e,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def one_line_error(p: subprocess.CompletedProcess, *needles: str) -> None:
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    assert p.stderr.count("\n") == 1, p.stderr
    for n in needles:
        assert n in p.stderr, p.stderr


def test_no_such_kernel():
    one_line_error(onekvm("run", "-k", "/nonexistent/bzImage", "--dev", "/dev/kvm"), "no such file", "/nonexistent")


def test_kernel_is_not_a_bzimage(tmp_path):
    k = tmp_path / "notakernel"
    k.write_text("hello\n" * 200)
    p = onekvm("run", "-k", str(k), "--dev", "/dev/null")
    assert p.returncode == 2 and "Traceback" not in p.stderr


def test_not_a_bzimage_message(tmp_path):
    k = tmp_path / "notakernel"
    k.write_bytes(b"\0" * 8192)
    from onekvm.boot import loader
    from onekvm.memory import GuestMemory

    with pytest.raises(UserError, match="not a bzImage or ELF"):
        loader.load_image(GuestMemory(), 64 << 20, k.read_bytes(), "")


def test_no_such_initrd(tmp_path):
    k = tmp_path / "k"
    k.write_bytes(b"\0" * 100)
    one_line_error(onekvm("run", "-k", str(k), "-i", str(tmp_path / "missing.cpio")), "initrd", "no such file")


def test_kernel_is_a_directory(tmp_path):
    one_line_error(onekvm("run", "-k", str(tmp_path)), "is a directory")


def test_memory_below_minimum(tmp_path):
    k = tmp_path / "k"
    k.write_bytes(b"\0" * 100)
    one_line_error(onekvm("run", "-k", str(k), "-m", "16", "--dev", "/dev/kvm"), "memory too small")


def test_memory_too_small_for_kernel_and_initrd(tmp_path, kvm_dev):
    kernel = next((p for p in sorted(os.listdir("/boot")) if p.startswith("vmlinuz-")), None)
    if kernel is None:
        pytest.skip("no /boot/vmlinuz-* to size against")
    initrd = tmp_path / "big.cpio"
    initrd.write_bytes(b"\0" * (48 << 20))
    p = onekvm("run", "-k", f"/boot/{kernel}", "-i", str(initrd), "-m", "64", "--dev", kvm_dev, "--no-control")
    one_line_error(p, "memory too small", "MiB")


def test_no_device_node(tmp_path):
    k = tmp_path / "k"
    k.write_bytes(b"\0" * 100)
    one_line_error(onekvm("run", "-k", str(k), "--dev", "/dev/nonexistent-kvm"), "no such device node")
    one_line_error(onekvm("caps", "--dev", "/dev/nonexistent-kvm"), "no such device node")


def test_not_a_kvm_device(tmp_path):
    one_line_error(onekvm("caps", "--dev", "/dev/null"), "not a KVM device")


def test_permission_denied(monkeypatch, capsys):
    def denied(*_a, **_k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(kvm.os, "open", denied)
    if kvm.ffi is None:
        pytest.fail("onekvm._abi is not built")
    assert cli.main(["caps", "--dev", "/dev/kvm"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "permission denied" in err


@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "--bogus"], "unrecognized arguments"),
        (["run", "-m", "lots"], "bad memory size"),
        (["run", "-c", "0"], "at least 1"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
        (["stop"], "required"),
    ],
)
def test_bad_flags(args, needle):
    one_line_error(onekvm(*args), needle)


def test_unknown_vm(tmp_path):
    env = {"ONEKVM_RUNTIME_DIR": str(tmp_path)}
    one_line_error(onekvm("stop", "ghost", env=env), "no VM named ghost")
    one_line_error(onekvm("debug", "ghost", "--dump", env=env), "no VM named ghost")
    p = onekvm("list", env=env)
    assert p.returncode == 0 and p.stdout == ""


def test_bad_virtio_spec_is_one_line(tmp_path):
    one_line_error(onekvm("run", "--9p", str(tmp_path / "missing") + ",tag", "-k", "/nonexistent"))


def test_smp_needs_the_kernel_irqchip(tmp_path, kvm_dev):
    import tinyguest

    one_line_error(
        onekvm(
            "run", "-k", tinyguest.build(tmp_path, tinyguest.HELLO), "-c", "2", "--irqchip", "user", "--dev", kvm_dev
        ),
        "in-kernel irqchip",
    )


@pytest.mark.parametrize("value", ["-1", "4294967296", "lots"])
def test_bad_halt_poll_ns_is_one_line(tmp_path, value):
    one_line_error(onekvm("run", "-k", "/nonexistent", "--halt-poll-ns", value), "--halt-poll-ns")


def test_version_and_caps(kvm_dev):
    p = onekvm("version", "--dev", kvm_dev)
    assert p.returncode == 0, p.stderr
    assert "KVM API version: 12" in p.stdout
    p = onekvm("caps", "--dev", kvm_dev)
    assert p.returncode == 0, p.stderr
    assert "KVM_CAP_USER_MEMORY" in p.stdout


def test_memory_sizes():
    assert cli._mem("512") == 512
    assert cli._mem("2G") == 2048
    assert cli._mem("768M") == 768
    assert cli._mem("1GiB") == 1024


def test_default_kernel_prefers_the_running_one(monkeypatch):
    monkeypatch.setattr(cli.os.path, "exists", lambda p: p == f"/boot/vmlinuz-{os.uname().release}")
    assert cli.default_kernel() == f"/boot/vmlinuz-{os.uname().release}"


def test_default_kernel_newest(monkeypatch):
    monkeypatch.setattr(cli.os.path, "exists", lambda p: False)
    import glob

    monkeypatch.setattr(
        glob,
        "glob",
        lambda _p: ["/boot/vmlinuz-6.1.0-9-amd64", "/boot/vmlinuz-6.12.95", "/boot/vmlinuz-6.1.0-56-amd64"],
    )
    assert cli.default_kernel() == "/boot/vmlinuz-6.12.95"


def test_kernel_cache_default_is_use_an_existing_entry():
    args = cli.build_parser().parse_args(["run", "-k", "/boot/x"])
    assert args.kernel_cache == "use"
