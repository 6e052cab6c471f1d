import os
import socket
import threading

import pytest
from onekvm import control
from onekvm.errors import UserError


@pytest.fixture(autouse=True)
def runtime(tmp_path, monkeypatch):
    d = tmp_path / "rt"
    monkeypatch.setenv("ONEKVM_RUNTIME_DIR", str(d))
    return d


def serve(server: control.ControlServer, stop: threading.Event) -> None:
    import select

    while not stop.is_set():
        r, _, _ = select.select([server], [], [], 0.05)
        if r:
            server.handle_ready()


def test_roundtrip_list_and_cleanup(runtime):
    calls = []

    def handler(msg):
        calls.append(msg["cmd"])
        if msg["cmd"] == "info":
            return {
                "ok": True,
                "name": "vm1",
                "pid": os.getpid(),
                "state": "running",
                "cpus": 1,
                "mem_mib": 64,
                "device": "/dev/kvm",
            }
        return {"ok": True}

    srv = control.ControlServer("vm1", handler)
    stop = threading.Event()
    t = threading.Thread(target=serve, args=(srv, stop))
    t.start()
    try:
        assert control.request("vm1", "pause") == {"ok": True}
        vms = control.list_vms()
        assert [v["name"] for v in vms] == ["vm1"]
        with pytest.raises(UserError, match="already running"):
            control.ControlServer("vm1", handler)
    finally:
        stop.set()
        t.join()
        srv.close()
    assert calls == ["pause", "info", "info"] or calls[:2] == ["pause", "info"]
    assert not (runtime / "vm1.sock").exists()


def test_stale_socket_removed(runtime):
    runtime.mkdir(parents=True, exist_ok=True)
    path = runtime / "ghost.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # bound but nobody listens: a dead VMM's leftover
    assert control.list_vms() == []
    assert not path.exists()


def test_stale_socket_replaced_by_new_server(runtime):
    runtime.mkdir(parents=True, exist_ok=True)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(runtime / "vm2.sock"))
    s.close()
    srv = control.ControlServer("vm2", lambda m: {"ok": True})
    srv.close()


def test_list_while_a_server_starts_keeps_its_socket(runtime, monkeypatch):
    """A `list` between the server's bind() and listen() must not take the name for stale."""
    real_socket = socket.socket

    class ListsAfterBind(real_socket):
        def bind(self, addr):
            super().bind(addr)
            control.list_vms()  # a concurrent `onekvm list`, at the worst moment

    monkeypatch.setattr(control.socket, "socket", ListsAfterBind)
    srv = control.ControlServer("racing", lambda m: {"ok": True, "name": "racing"})
    monkeypatch.setattr(control.socket, "socket", real_socket)
    stop = threading.Event()
    t = threading.Thread(target=serve, args=(srv, stop))
    t.start()
    try:
        assert [v["name"] for v in control.list_vms()] == ["racing"]
        assert sorted(os.listdir(runtime)) == ["racing.sock"]
    finally:
        stop.set()
        t.join()
        srv.close()


def test_unknown_vm_is_a_user_error():
    with pytest.raises(UserError, match="no VM named nope"):
        control.request("nope", "stop")


def test_bad_names():
    for bad in ("", "../x", "a/b", "-x", "x" * 70):
        with pytest.raises(UserError, match="bad VM name"):
            control.check_name(bad)


def test_error_reply_becomes_user_error(runtime):
    srv = control.ControlServer("vm3", lambda m: {"ok": False, "error": "no such thing"})
    stop = threading.Event()
    t = threading.Thread(target=serve, args=(srv, stop))
    t.start()
    try:
        with pytest.raises(UserError, match="no such thing"):
            control.request("vm3", "frobnicate")
    finally:
        stop.set()
        t.join()
        srv.close()


def test_unwritable_runtime_dir_is_not_fatal(monkeypatch, tmp_path, capsys, kvm_dev):
    """A VM still runs, with a warning, when no control socket can be made."""
    import tinyguest
    from test_tiny_guests import run

    def nowhere(create=False):
        raise control.ControlUnavailable("no writable runtime directory for control sockets")

    monkeypatch.setattr(control, "runtime_dir", nowhere)
    status, reason, out = run(tinyguest.build(tmp_path, tinyguest.HELLO), kvm_dev, control=True, name="vm9")
    assert status == 0, reason
    assert "running without a control socket" in capsys.readouterr().err


def test_list_pause_dump_resume_stop_a_running_vm(tmp_path, kvm_dev):
    """The control commands against a live guest (one that polls its UART forever)."""
    import time

    import tinyguest
    from test_tiny_guests import run

    results = {}

    def operator():
        end = time.monotonic() + 30
        while not control.list_vms() and time.monotonic() < end:
            time.sleep(0.05)
        results["list"] = [v["name"] for v in control.list_vms()]
        control.request("live", "pause")
        results["paused"] = control.list_vms()[0]["state"]
        results["dump"] = control.request("live", "dump")["vcpus"]
        control.request("live", "resume")
        results["resumed"] = control.list_vms()[0]["state"]
        control.request("live", "stop")

    t = threading.Thread(target=operator)
    t.start()
    status, reason, _ = run(tinyguest.build(tmp_path, tinyguest.ECHO), kvm_dev, control=True, name="live")
    t.join()
    assert status == 0 and "onekvm stop" in reason
    assert results["list"] == ["live"]
    assert (results["paused"], results["resumed"]) == ("paused", "running")
    (cpu0,) = results["dump"]
    assert 0x1000000 <= cpu0["rip"] < 0x1001000 and cpu0["efer"] & (1 << 10)  # in the guest, long mode
    assert control.list_vms() == []
