"""Linux drivers against our virtio devices: an L2 guest under `onekvm run` in the vmtest rig.

Run through the rig (Linux boots only there):

    tools/testing/vmtest/vmtest --kver 6.1.0-56-amd64 --hv kvm_amd -- \\
        python3 -S -m pytest -q -p no:cacheprovider -m rig tools/kvm/tests/rig/test_virtio_rig.py

The L2 initramfs loads the virtio modules of the L2 kernel, mounts the test's
9p share and runs the share's test.sh; the guest reports `VT: key value`
lines, and the checks (checksums of what crossed each device) happen here
in L1.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from guest import TOOLS_KVM, VmmHung, l2_kernel, python_cmd, run_vmm_process, stop_hung_vmm  # noqa: E402
from onekvm import initramfs  # noqa: E402
from shutdown_dump import emulator_fault  # noqa: E402

MODULES = (
    "virtio_pci", "virtio_blk", "9pnet_virtio", "9p", "virtio_rng", "virtio_console", "virtio_net",
)

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in %(mods)s; do insmod /mod/$m.ko || echo "VT: insmod-failed $m"; done
# A guest that wedges (a broken ring, a stuck transfer) ends in minutes with its log, not at
# the test's 15-minute timeout (vt_watchdog=SECS on the kernel command line reaches init's
# environment: a soak run sets it longer).
(sleep ${vt_watchdog:-300}; echo "VT: watchdog fired"; dmesg | tail -30 | sed 's/^/L2-LOG: /'
 grep -v ' 0 *$' /proc/interrupts | sed 's/^/L2-IRQ: /'; poweroff -f) &
mkdir -p /mnt
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 rigshare /mnt; then
    sh /mnt/test.sh 2>&1 | sed 's/^/VT: /'
else
    echo "VT: mount-failed rigshare"
fi
dmesg | grep -iE 'virtio|9p|pci|irq|WARNING: CPU|BUG:|Oops' | sed 's/^/L2-LOG: /'
for d in /sys/bus/pci/devices/*; do
    echo "L2-PCI: $d $(cat $d/vendor $d/device $d/irq | tr '\n' ' ') $(readlink $d/driver)"
done
echo "VT: done"
poweroff -f
"""


# -- L2 initramfs: busybox + the kernel's virtio modules --------------------------------------------


def _modname(path: str) -> str:
    return re.sub(r"\.ko(\.(xz|gz|zst))?$", "", os.path.basename(path)).replace("-", "_")


def module_files(kver: str, wanted: tuple[str, ...]) -> list[tuple[str, str]]:
    """(name, path) of the loadable modules `wanted` needs, dependencies first."""
    root = f"/lib/modules/{kver}"
    deps: dict[str, list[str]] = {}
    paths: dict[str, str] = {}
    with open(f"{root}/modules.dep") as f:
        for line in f:
            mod, _, rest = line.partition(":")
            paths[_modname(mod)] = f"{root}/{mod}"
            deps[_modname(mod)] = [_modname(d) for d in rest.split()]
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order or name not in paths:
            return  # built in (or absent: insmod reports it)
        for d in reversed(deps[name]):
            visit(d)
        order.append(name)

    for name in wanted:
        visit(name)
    return [(n, paths[n]) for n in order]


def write_initramfs(directory: str) -> str:
    kver = os.path.basename(l2_kernel()).removeprefix("vmlinuz-")
    files = {}
    names = []
    for name, path in module_files(kver, MODULES):
        with open(path, "rb") as f:
            data = f.read()
        files[f"mod/{name}.ko"] = lzma.decompress(data) if path.endswith(".xz") else data
        names.append(name)
    out = os.path.join(directory, "virtio-initramfs.cpio")
    with open(out, "wb") as f:
        f.write(initramfs.build(init=INIT % {"mods": " ".join(names)}, files=files))
    return out


# -- running the VMM ----------------------------------------------------------------------------------------


def guest_params() -> str:
    """Linux finds bus 0 through the DSDT's PNP0A03 host bridge (\\_SB.PCI0, with a _PRT): no pci= needed."""
    return os.environ.get("ONEKVM_RIG_PARAMS", "quiet")


def run_vmm(dev: str, initrd: str, *args: str, timeout: float = 600) -> tuple[int, str]:
    """Boot the L2 guest; its exit status and console output.

    One exception to "a failure fails": a triple fault on onekvm whose
    dump_shutdown walk shows RIP and the IDT mapped in guest memory is QEMU's
    TCG faulting on a present mapping (robustness.rst), so the guest runs once
    more, loudly; a second such fault fails the test like any other.
    """
    log_before = kernel_log() if dev == "/dev/onekvm" else ""
    rc, out = _run_vmm_once(dev, initrd, *args, timeout=timeout)
    why = emulator_fault(kernel_log()[len(log_before) :]) if rc == 4 and dev == "/dev/onekvm" else None
    if why:
        note = f"rig: discarded a run that triple-faulted in the L0 emulator ({why}); running it again"
        print(note, file=sys.stderr)
        _save_log("first", out)
        rc, out = _run_vmm_once(dev, initrd, *args, timeout=timeout)
        out += f"\n({note})\n"
    return rc, out


def kernel_log() -> str:
    """L1's kernel log (the rig runs as root); empty if it cannot be read."""
    p = subprocess.run(["dmesg"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, errors="replace")
    return p.stdout if p.returncode == 0 else ""


def _save_log(tag: str, text: str) -> None:
    log_dir = os.environ.get("VMTEST_RESULTS")
    if log_dir:  # the whole L2 console, for when a check fails
        name = os.environ.get("PYTEST_CURRENT_TEST", "run").split()[0].replace("/", "_").replace("::", "-")
        try:
            with open(os.path.join(log_dir, f"virtio-{name}{tag}.log"), "w") as f:
                f.write(text)
        except OSError:
            pass  # a log is a convenience, never the failure


def _run_vmm_once(dev: str, initrd: str, *args: str, timeout: float) -> tuple[int, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([TOOLS_KVM, *filter(None, [env.get("PYTHONPATH")])])
    cmd = [*python_cmd(), "-m", "onekvm", "run", "--no-control", "-k", l2_kernel(), "-i", initrd, "--dev", dev]
    cmd += ["-p", guest_params(), "--stats", *args]
    try:
        rc, out = run_vmm_process(cmd, env, timeout)
    except VmmHung as e:
        _save_log("", " ".join(cmd) + "\n" + str(e))
        raise
    _save_log("", " ".join(cmd) + "\n" + out)
    return rc, out


# -- checks -----------------------------------------------------------------------------------------------------


def results(output: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in output.splitlines():
        m = re.match(r"VT: (\S+) ?(.*)", line.strip())
        if m:
            out.setdefault(m.group(1), []).append(m.group(2).strip())
    return out


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_share(tmp_path) -> tuple[str, bytes]:
    share = tmp_path / "share"
    share.mkdir()
    payload = os.urandom(1 << 20)
    (share / "in.bin").write_bytes(payload)
    return str(share), payload


BLK_AND_9P = r"""
echo "9p-in $(sha256sum /mnt/in.bin | cut -d' ' -f1)"
cp /mnt/in.bin /mnt/out.bin && sync && echo "9p-out $(sha256sum /mnt/out.bin | cut -d' ' -f1)"
mkdir /mnt/d && echo hello > /mnt/d/f && mv /mnt/d/f /mnt/d/g && ln -s g /mnt/d/l &&
  echo "9p-ls $(ls /mnt/d | tr '\n' ' ')"
echo "blk-size $(cat /sys/block/vda/size)"
echo "blk-read $(dd if=/dev/vda bs=1M count=2 2>/dev/null | sha256sum | cut -d' ' -f1)"
dd if=/mnt/in.bin of=/dev/vda bs=1M seek=2 conv=fsync 2>/dev/null && echo "blk-write ok"
echo 3 > /proc/sys/vm/drop_caches
echo "blk-reread $(dd if=/dev/vda bs=1M skip=2 count=1 2>/dev/null | sha256sum | cut -d' ' -f1)"
echo "irqs $(grep -c virtio /proc/interrupts) $(grep virtio /proc/interrupts | grep -c MSI)"
"""


def check_blk_and_9p(r: dict[str, list[str]], share: str, payload: bytes, image: str, disk: bytes) -> None:
    assert r.get("9p-in") == [sha(payload)], r
    assert r.get("9p-out") == [sha(payload)], r
    with open(os.path.join(share, "out.bin"), "rb") as f:
        assert f.read() == payload
    assert r.get("9p-ls") == ["g l"], r
    assert os.readlink(os.path.join(share, "d", "l")) == "g"
    assert r.get("blk-size") == [str(len(disk) // 512)], r
    assert r.get("blk-read") == [sha(disk[: 2 << 20])], r
    assert r.get("blk-write") == ["ok"], r
    assert r.get("blk-reread") == [sha(payload)], r
    with open(image, "rb") as f:
        on_disk = f.read()
    assert on_disk[2 << 20 : 3 << 20] == payload  # checked from L1, after the VMM exited
    assert on_disk[: 2 << 20] == disk[: 2 << 20] and on_disk[3 << 20 :] == disk[3 << 20 :]


def _disk(tmp_path) -> tuple[str, bytes]:
    disk = os.urandom(8 << 20)
    image = str(tmp_path / "disk.img")
    with open(image, "wb") as f:
        f.write(disk)
    return image, disk


def test_blk_9p_rng_console(dev, tmp_path):
    """Default irqchip (in-kernel where offered: MSI-X, ioeventfd): blk, 9p (also as a root), rng, hvc0."""
    share, payload = make_share(tmp_path)
    image, disk = _disk(tmp_path)
    with open(os.path.join(share, "test.sh"), "w") as f:
        f.write(BLK_AND_9P + r"""
echo "rng $(cat /sys/class/misc/hw_random/rng_current) $(head -c 64 /dev/hwrng | od -An -tx1 | tr -d ' \n')"
echo "HVC-HELLO-FROM-L2" > /dev/hvc0
mkdir -p /root9p && mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 hostroot /root9p &&
  echo "root $(chroot /root9p /bin/sh -c 'echo $((6*7)) $(cat /etc/debian_version)')"
""")
    initrd = write_initramfs(str(tmp_path))
    rc, out = run_vmm(
        dev, initrd, "-d", image, "--9p", f"{share},rigshare", "--9p", "/,hostroot,ro",
        "--rng", "--console", "virtio",
    )
    r = results(out)
    assert rc == 0 and "done" in r, out[-4000:]
    check_blk_and_9p(r, share, payload, image, disk)
    name, hexdata = r["rng"][0].split()
    assert name.startswith("virtio_rng") and len(hexdata) == 128 and hexdata != "0" * 128, r
    assert "HVC-HELLO-FROM-L2" in out
    with open("/etc/debian_version") as f:
        assert r.get("root") == [f"42 {f.read().strip()}"], r


def test_blk_9p_userspace_irqchip_and_readonly_disk(dev, tmp_path):
    """No in-kernel irqchip: INTx through the VMM's PIC, notifications as MMIO exits; plus a read-only disk."""
    share, payload = make_share(tmp_path)
    image, disk = _disk(tmp_path)
    ro_image = str(tmp_path / "ro.img")
    ro_disk = os.urandom(1 << 20)
    with open(ro_image, "wb") as f:
        f.write(ro_disk)
    with open(os.path.join(share, "test.sh"), "w") as f:
        f.write(BLK_AND_9P + r"""
echo "ro $(cat /sys/block/vdb/ro)"
dd if=/dev/zero of=/dev/vdb bs=4096 count=1 conv=fsync 2>/dev/null; echo "ro-write-rc $?"
echo "ro-read $(dd if=/dev/vdb bs=1M 2>/dev/null | sha256sum | cut -d' ' -f1)"
""")
    rc, out = run_vmm(
        dev, write_initramfs(str(tmp_path)), "--irqchip", "user", "-d", image, "-d", f"{ro_image},ro",
        "--9p", f"{share},rigshare",
    )
    r = results(out)
    assert rc == 0 and "done" in r, out[-4000:]
    check_blk_and_9p(r, share, payload, image, disk)
    assert r["irqs"][0].split()[1] == "0", r  # no MSI without a local APIC
    assert r.get("ro") == ["1"] and r.get("ro-write-rc") != ["0"], r
    assert r.get("ro-read") == [sha(ro_disk)], r
    with open(ro_image, "rb") as f:
        assert f.read() == ro_disk


# -- virtio-net with a tap in L1 ------------------------------------------------------------------------------------

TAP = "okvmtap0"
HOST_IP, GUEST_IP = "10.99.0.1", "10.99.0.2"
UP_PORT, DOWN_PORT = 5555, 5556


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, stdout=subprocess.DEVNULL)


def _serve(port: int, handler, ready: threading.Event, done: threading.Event, result: dict) -> None:
    """Serve connections on `port` until `done`: for as long as the VMM runs, a retried run included."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST_IP, port))
        s.listen(1)
        s.settimeout(1)
        ready.set()
        while not done.is_set():
            try:
                conn, _ = s.accept()
            except TimeoutError:
                continue
            try:
                with conn:
                    handler(conn, result)
            except OSError as e:
                result["error"] = repr(e)


def _receive(size: int):
    """Read exactly `size` bytes, then close: busybox nc may not half-close on EOF of its stdin."""

    def handler(conn: socket.socket, result: dict) -> None:
        data = bytearray()
        while len(data) < size and (chunk := conn.recv(65536)):
            data += chunk
        result["up"] = bytes(data)

    return handler


def _have_tun() -> bool:
    if not os.path.exists("/dev/net/tun"):
        subprocess.run(["modprobe", "tun"], check=False)  # a module in Debian's kernels; the rig loads none
    return os.path.exists("/dev/net/tun")


def test_net_tap(dev, tmp_path):
    share, payload = make_share(tmp_path)
    down = os.urandom(1 << 20)
    assert _have_tun(), "no /dev/net/tun in L1 (modprobe tun failed)"
    _ip("tuntap", "add", "dev", TAP, "mode", "tap")
    done = threading.Event()
    try:
        _ip("addr", "add", f"{HOST_IP}/24", "dev", TAP)
        _ip("link", "set", TAP, "up")
        result: dict = {}
        events = [threading.Event(), threading.Event()]

        def send_all(conn: socket.socket, res: dict) -> None:
            conn.sendall(down)
            res["down-sent"] = True

        serving = [(UP_PORT, _receive(len(payload)), events[0]), (DOWN_PORT, send_all, events[1])]
        threads = [
            threading.Thread(target=_serve, args=(port, handler, ready, done, result), daemon=True)
            for port, handler, ready in serving
        ]
        for t in threads:
            t.start()
        for e in events:
            e.wait(10)
        with open(os.path.join(share, "test.sh"), "w") as f:
            f.write(rf"""
ip link set eth0 up && ip addr add {GUEST_IP}/24 dev eth0
echo "mac $(cat /sys/class/net/eth0/address)"
ping -c 3 -W 5 {HOST_IP} >/dev/null && echo "ping ok"
nc {HOST_IP} {UP_PORT} < /mnt/in.bin && echo "up sent"
nc {HOST_IP} {DOWN_PORT} > /tmp/down < /dev/null
echo "down $(sha256sum /tmp/down | cut -d' ' -f1)"
""")
        rc, out = run_vmm(
            dev, write_initramfs(str(tmp_path)), "-n", f"mode=tap,tapif={TAP},guest_mac=52:54:00:12:34:56",
            "--9p", f"{share},rigshare",
        )
        done.set()
        for t in threads:
            t.join(5)
        r = results(out)
        assert rc == 0 and "done" in r, out[-4000:]
        assert r.get("mac") == ["52:54:00:12:34:56"], r
        assert r.get("ping") == ["ok"], out[-4000:]
        assert result.get("up") == payload, (len(result.get("up", b"")), result.get("error"))
        assert r.get("down") == [sha(down)], r
    finally:
        done.set()
        subprocess.run(["ip", "link", "del", TAP], check=False)
        time.sleep(0.1)



# -- hvc0 as the console: typed input reaches a shell through virtio-console ------------------------------------

CONSOLE_INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in %(mods)s; do insmod /mod/$m.ko || echo "VT: insmod-failed $m"; done
echo "VT: cmdline $(cat /proc/cmdline)"
echo "VT: active $(cat /sys/class/tty/console/active)"
setsid cttyhack sh -i
echo "VT: shell-exited"
poweroff -f
"""


def test_console_virtio_interactive(dev, tmp_path):
    """`--console virtio`: the guest's console is hvc0; a line typed on the VMM's stdin runs in its shell."""
    kver = os.path.basename(l2_kernel()).removeprefix("vmlinuz-")
    files = {}
    names = []
    for name, path in module_files(kver, ("virtio_pci", "virtio_console")):
        with open(path, "rb") as f:
            data = f.read()
        files[f"mod/{name}.ko"] = lzma.decompress(data) if path.endswith(".xz") else data
        names.append(name)
    initrd = str(tmp_path / "console-initramfs.cpio")
    with open(initrd, "wb") as f:
        f.write(initramfs.build(init=CONSOLE_INIT % {"mods": " ".join(names)}, files=files))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([TOOLS_KVM, *filter(None, [env.get("PYTHONPATH")])])
    cmd = [*python_cmd(), "-m", "onekvm", "run", "--no-control", "-k", l2_kernel(), "-i", initrd, "--dev", dev]
    cmd += ["-p", guest_params(), "--console", "virtio"]
    p = subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, bufsize=0,
    )
    out = bytearray()
    sent = threading.Event()

    def reader() -> None:
        assert p.stdout is not None and p.stdin is not None
        while chunk := os.read(p.stdout.fileno(), 4096):
            out.extend(chunk)
            tail = out[out.find(b"VT: active") :] if b"VT: active" in out else b""
            if not sent.is_set() and b"# " in tail:  # the shell's prompt, after init reported the console
                p.stdin.write(b"echo RX-$((40+2)) $(tty); poweroff -f\n")
                p.stdin.flush()
                sent.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        rc = p.wait(timeout=600)
    except subprocess.TimeoutExpired:
        why = stop_hung_vmm(p, 600)
        t.join(10)
        raise VmmHung(f"{bytes(out[-3000:]).decode(errors='replace')}\n{why}") from None
    t.join(10)
    text = out.decode(errors="replace")
    log_dir = os.environ.get("VMTEST_RESULTS")
    if log_dir:
        with open(os.path.join(log_dir, f"virtio-console-interactive-{os.path.basename(dev)}.log"), "w") as f:
            f.write(" ".join(cmd) + "\n" + text)
    r = results(text)
    assert "console=hvc0" in r.get("cmdline", [""])[0], text[-3000:]
    assert r.get("active", [""])[0].split()[-1] == "hvc0", text[-3000:]  # /dev/console is hvc0
    assert sent.is_set(), text[-3000:]
    assert "RX-42 /dev/hvc0" in text, text[-3000:]
    assert rc == 0, text[-3000:]
