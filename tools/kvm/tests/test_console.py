import os
import pty
import termios

from onekvm.console import Console


def test_escape_ctrl_a_x_quits():
    c = Console(in_fd=None, out_fd=None, interactive=True)
    assert c._filter_escape(b"ab\x01xcd") == b"ab"
    assert c.quit_requested


def test_escape_ctrl_a_ctrl_a_sends_one():
    c = Console(in_fd=None, out_fd=None, interactive=True)
    assert c._filter_escape(b"\x01\x01z") == b"\x01z"
    assert c._filter_escape(b"\x01") == b""
    assert c._filter_escape(b"q") == b"\x01q"  # unknown escapes pass through
    assert not c.quit_requested


def test_no_stdin_at_all():
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    c = Console(in_fd=r, out_fd=None)  # a closed descriptor, as CI may give us
    assert c.in_fd is None and c.eof and not c.interactive
    c.enter_raw()
    c.read_input(lambda d: None)
    c.restore()


def test_pipe_input_forwarded_until_eof():
    r, w = os.pipe()
    os.write(w, b"echo hi\n")
    os.close(w)
    got = []
    c = Console(in_fd=r, out_fd=None)
    assert not c.interactive
    c.read_input(got.append)
    c.read_input(got.append)
    assert got == [b"echo hi\n"] and c.eof
    os.close(r)


def test_output_buffered_per_line():
    r, w = os.pipe()
    c = Console(in_fd=None, out_fd=w)
    c.write(b"abc")
    os.set_blocking(r, False)
    try:
        os.read(r, 100)
        raise AssertionError("flushed too early")
    except BlockingIOError:
        pass
    c.write(b"\n")
    assert os.read(r, 100) == b"abc\n"
    c.write(b"prompt# ")
    c.flush()
    assert os.read(r, 100) == b"prompt# "
    os.close(r)
    os.close(w)


def test_output_to_closed_reader_is_dropped():
    r, w = os.pipe()
    os.close(r)
    c = Console(in_fd=None, out_fd=w)
    c.write(b"x\n")  # EPIPE: dropped, no exception
    assert c.out_fd is None
    os.close(w)


def test_raw_mode_restored_on_a_terminal():
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    c = Console(in_fd=slave, out_fd=slave)
    assert c.interactive
    c.enter_raw()
    raw = termios.tcgetattr(slave)
    assert not raw[3] & termios.ICANON and not raw[3] & termios.ECHO
    c.restore()
    assert termios.tcgetattr(slave) == before
    os.close(master)
    os.close(slave)
