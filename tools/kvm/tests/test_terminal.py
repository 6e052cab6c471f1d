"""The interactive console end to end: a pty as the terminal, raw mode, Ctrl-A x, restoration."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import termios
import time

import tinyguest

TOOLS_KVM = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def read_until(fd: int, needle: bytes, timeout: float = 20) -> bytes:
    buf = b""
    end = time.monotonic() + timeout
    while needle not in buf and time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                buf += os.read(fd, 4096)
            except OSError:
                break
    return buf


def wait_raw(fd: int, timeout: float = 30) -> bool:
    """True once the VMM has put the terminal in raw mode (it runs the guest from then on)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not termios.tcgetattr(fd)[3] & termios.ICANON:
            return True
        time.sleep(0.05)
    return False


def spawn(kernel: str, dev: str) -> tuple[subprocess.Popen, int, int]:
    master, slave = os.openpty()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TOOLS_KVM, *filter(None, [os.environ.get("PYTHONPATH")])]))
    p = subprocess.Popen(
        [sys.executable, "-m", "onekvm", "run", "-k", kernel, "-m", "64", "--dev", dev, "--no-control"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    return p, master, slave


def test_typed_keys_reach_the_guest_and_terminal_is_restored(tmp_path, kvm_dev):
    kernel = tinyguest.build(tmp_path, tinyguest.ECHO)
    p, master, slave = spawn(kernel, kvm_dev)
    before = termios.tcgetattr(slave)
    try:
        assert wait_raw(slave)
        # raw while the guest runs: no echo, no line editing by the host tty
        raw = termios.tcgetattr(slave)
        assert not raw[3] & termios.ICANON and not raw[3] & termios.ECHO
        os.write(master, b"hello")
        assert b"hello" in read_until(master, b"hello")
        os.write(master, b"q")
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()
    assert termios.tcgetattr(slave)[3] == before[3]
    os.close(master)
    os.close(slave)


def test_ctrl_a_x_quits(tmp_path, kvm_dev):
    kernel = tinyguest.build(tmp_path, tinyguest.ECHO)
    p, master, slave = spawn(kernel, kvm_dev)
    try:
        assert wait_raw(slave)
        os.write(master, b"ab")
        assert b"ab" in read_until(master, b"ab")
        os.write(master, b"\x01x")
        assert p.wait(timeout=20) == 0
        assert b"quit from the console" in read_until(master, b"Ctrl-A x", timeout=2)
    finally:
        if p.poll() is None:
            p.kill()
    attrs = termios.tcgetattr(slave)
    assert attrs[3] & termios.ICANON  # cooked again
    os.close(master)
    os.close(slave)


def test_sigterm_restores_the_terminal(tmp_path, kvm_dev):
    kernel = tinyguest.build(tmp_path, tinyguest.ECHO)
    p, master, slave = spawn(kernel, kvm_dev)
    try:
        assert wait_raw(slave)
        p.terminate()
        assert p.wait(timeout=20) == 128 + 15
    finally:
        if p.poll() is None:
            p.kill()
    assert termios.tcgetattr(slave)[3] & termios.ICANON
    os.close(master)
    os.close(slave)


def _noninteractive(tmp_path, kvm_dev, **popen) -> subprocess.CompletedProcess:
    kernel = tinyguest.build(tmp_path, tinyguest.HELLO)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TOOLS_KVM, *filter(None, [os.environ.get("PYTHONPATH")])]))
    return subprocess.run(
        [sys.executable, "-m", "onekvm", "run", "-k", kernel, "-m", "64", "--dev", kvm_dev, "--no-control"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        timeout=60,
        **popen,
    )


def test_stdin_from_dev_null(tmp_path, kvm_dev):
    """CI's `</dev/null`: EOF at once, the guest still runs to its poweroff, no traceback."""
    p = _noninteractive(tmp_path, kvm_dev, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout
    assert p.stdout == b"hello from a tiny guest\n"


def test_no_stdin_descriptor_at_all(tmp_path, kvm_dev):
    """A runner that starts us with fd 0 closed."""
    p = _noninteractive(tmp_path, kvm_dev, stdin=None, preexec_fn=lambda: os.close(0))
    assert p.returncode == 0, p.stdout
    assert p.stdout == b"hello from a tiny guest\n"


def test_typed_input_before_the_guest_listens_then_eof(tmp_path, kvm_dev):
    """Input written and closed before the guest's driver opens the port: delivered once it does, no spin."""
    kernel = tinyguest.build(tmp_path, tinyguest.ECHO)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TOOLS_KVM, *filter(None, [os.environ.get("PYTHONPATH")])]))
    p = subprocess.run(
        [sys.executable, "-m", "onekvm", "run", "-k", kernel, "-m", "64", "--dev", kvm_dev, "--no-control"],
        input=b"typed early q",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        timeout=60,
    )
    assert p.returncode == 0, p.stdout
    assert p.stdout == b"typed early q"


def test_sigusr2_dumps_stacks_and_device_state(tmp_path, kvm_dev):
    """`kill -USR2` on a VMM that seems stuck: every thread's Python stack, then the PIC's state; it runs on."""
    kernel = tinyguest.build(tmp_path, tinyguest.ECHO)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TOOLS_KVM, *filter(None, [os.environ.get("PYTHONPATH")])]))
    p = subprocess.Popen(
        [sys.executable, "-m", "onekvm", "run", "-k", kernel, "-m", "64", "--dev", kvm_dev, "--no-control",
         "--irqchip", "user"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )
    try:
        assert p.stdin is not None and p.stdout is not None and p.stderr is not None
        os.write(p.stdin.fileno(), b"a")
        assert b"a" in read_until(p.stdout.fileno(), b"a")  # the guest runs
        p.send_signal(signal.SIGUSR2)
        err = read_until(p.stderr.fileno(), b"onekvm: state pic:")
        assert b"Thread 0x" in err and b"_vcpu_loop" in err, err
        assert b"onekvm: state pic: master irr" in err, err
        os.write(p.stdin.fileno(), b"q")  # still running: it echoes and powers off
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
