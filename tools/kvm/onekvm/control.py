"""Per-VM control socket: `onekvm list|stop|pause|resume|debug` talk to a running VMM.

One Unix socket per VM, NAME.sock in a runtime directory. The protocol is
one JSON object per line each way: {"cmd": "..."} then {"ok": ..., ...}.
A socket nobody answers on is stale (its VMM died) and is removed.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket

from onekvm.errors import UserError

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost in the rig
if TYPE_CHECKING:
    from typing import Any

SUFFIX = ".sock"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TIMEOUT = 5.0

Handler = "Callable[[dict[str, Any]], dict[str, Any]]"  # an annotation only


class ControlUnavailable(UserError):
    """No place for the socket: the VM can still run, just without list/stop/pause/debug."""


def runtime_dir(create: bool = False) -> str:
    """$ONEKVM_RUNTIME_DIR, else $XDG_RUNTIME_DIR/onekvm, /run/onekvm (root), /tmp/onekvm-UID."""
    env = os.environ.get("ONEKVM_RUNTIME_DIR")
    candidates = [env] if env else []
    if os.environ.get("XDG_RUNTIME_DIR"):
        candidates.append(os.path.join(os.environ["XDG_RUNTIME_DIR"], "onekvm"))
    if os.geteuid() == 0:
        candidates.append("/run/onekvm")
    candidates.append(f"/tmp/onekvm-{os.geteuid()}")
    for path in candidates:
        if os.path.isdir(path) and os.access(path, os.W_OK):
            return path
        if create:
            try:
                os.makedirs(path, mode=0o700, exist_ok=True)
                return path
            except OSError:
                continue
    if create:
        raise ControlUnavailable("no writable runtime directory for control sockets (set ONEKVM_RUNTIME_DIR)")
    # Listing: the first existing candidate, else the preferred one.
    return next((p for p in candidates if os.path.isdir(p)), candidates[0])


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise UserError(f"bad VM name {name!r}: use letters, digits, '.', '_' or '-' (max 64)")
    return name


def socket_path(name: str, create_dir: bool = False) -> str:
    return os.path.join(runtime_dir(create=create_dir), check_name(name) + SUFFIX)


def _connect(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    try:
        s.connect(path)
    except OSError:
        s.close()
        raise
    return s


def _request(path: str, msg: dict[str, Any]) -> dict[str, Any]:
    with _connect(path) as s:
        s.sendall(json.dumps(msg).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    if not buf:
        raise ConnectionError("empty reply")
    return json.loads(buf)


def request(name: str, cmd: str, **args: Any) -> dict[str, Any]:
    """Send one command to the VM called name; a missing or dead VM is a UserError."""
    path = socket_path(name)
    try:
        reply = _request(path, {"cmd": cmd, **args})
    except FileNotFoundError:
        raise UserError(f"no VM named {name} (no {path})") from None
    except ConnectionRefusedError:
        _remove_stale(path)
        raise UserError(f"no VM named {name} (removed its stale socket)") from None
    except PermissionError:
        raise UserError(f"{path}: permission denied") from None
    except (OSError, ValueError, ConnectionError) as e:
        raise UserError(f"VM {name} did not answer: {e}") from None
    if not reply.get("ok"):
        raise UserError(f"VM {name}: {reply.get('error', 'command failed')}")
    return reply


def _remove_stale(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def list_vms() -> list[dict[str, Any]]:
    """Every live VM's info; stale sockets found on the way are removed."""
    d = runtime_dir()
    try:
        names = sorted(f for f in os.listdir(d) if f.endswith(SUFFIX))
    except FileNotFoundError:
        return []
    out = []
    for f in names:
        path = os.path.join(d, f)
        try:
            reply = _request(path, {"cmd": "info"})
        except (ConnectionRefusedError, FileNotFoundError):
            _remove_stale(path)
            continue
        except (OSError, ValueError, ConnectionError):
            continue
        if reply.get("ok"):
            out.append(reply)
    return out


class ControlServer:
    """Listening socket owned by a running VMM; its main loop calls handle_ready."""

    def __init__(self, name: str, handler: Handler) -> None:
        self.name = check_name(name)
        self.handler = handler
        self.path = socket_path(name, create_dir=True)
        if os.path.exists(self.path):
            try:
                _connect(self.path).close()
            except (ConnectionRefusedError, FileNotFoundError):
                _remove_stale(self.path)
            except OSError as e:
                if e.errno != errno.ECONNREFUSED:
                    _remove_stale(self.path)
            else:
                raise UserError(f"a VM named {name} is already running ({self.path})")
        # Bound and listening under a private name first, then linked into place: a
        # `list` running meanwhile never finds the name refusing connections (it
        # would remove it as stale), and link() fails if another VMM took the name.
        tmp = f"{self.path}.{os.getpid()}.new"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _remove_stale(tmp)
            self.sock.bind(tmp)
            os.chmod(tmp, 0o600)
            self.sock.listen(8)
            os.link(tmp, self.path)
        except FileExistsError:
            self.sock.close()
            raise UserError(f"a VM named {name} is already running ({self.path})") from None
        except OSError as e:
            self.sock.close()
            raise ControlUnavailable(f"{self.path}: cannot create control socket: {e.strerror}") from None
        finally:
            _remove_stale(tmp)
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def handle_ready(self) -> None:
        """Accept one client and serve its single request (short and local)."""
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return
        with conn:
            conn.settimeout(TIMEOUT)
            try:
                buf = b""
                while not buf.endswith(b"\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                if not buf:
                    return  # a liveness probe (connect and close)
                msg = json.loads(buf)
                if not isinstance(msg, dict) or not isinstance(msg.get("cmd"), str):
                    raise ValueError("request is not a command")
                try:
                    reply = self.handler(msg)
                except UserError as e:
                    reply = {"ok": False, "error": str(e)}
                except Exception as e:  # noqa: BLE001 - a bad request must not end the VM
                    reply = {"ok": False, "error": f"internal error: {e!r}"}
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except (OSError, ValueError):
                pass  # a broken client must not disturb the VM

    def close(self) -> None:
        try:
            self.sock.close()
        finally:
            _remove_stale(self.path)
