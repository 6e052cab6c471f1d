"""virtio-blk and virtio-9p read throughput: `onekvm run` against QEMU -M pc on the same hypervisor.

Run in the rig (stock kvm_amd is the reference hypervisor):

    tools/testing/vmtest/vmtest --kver 6.12.95+deb12-amd64 --hv kvm_amd -- \\
        $VMTEST_PY tools/kvm/tests/rig/bench_virtio.py [--runs 3] [--dev /dev/kvm]

One L2 guest per VMM and run: the same kernel, the same busybox initramfs
(the virtio modules and vreader, a static reader built here from vreader.c),
the same image file as a read-only virtio-blk disk and, in a read-only 9p
share, as a file.  QEMU gets virtio-blk-pci and virtio-9p-pci. The guest
drops its caches before each measurement and reads

    seq   1 MiB reads from offset 0 (blk with O_DIRECT; 9p mounted cache=none)
    rand  4 KiB reads at pseudo-random aligned offsets (the same in every run)

each for at most --bytes or --seconds, and reports bytes and seconds (guest
clock). The image lives in L1's page cache for both VMMs, so the figures
measure the virtio path, not a disk. onekvm runs twice per round: with
ONEKVM_VIRTIO_KICKS=thread (the device's worker thread, ioeventfd) and
=inline (the vCPU thread serves kicks); --python-too adds worker kicks
without blk's C fast path, --signal-msi-too worker kicks with
KVM_SIGNAL_MSI instead of irqfds, --halt-poll-ns N worker kicks with that
halt-polling window; --pin CPUS adds every contender
again under `taskset -c CPUS`. Prints every run, the medians in MB/s and
the onekvm/QEMU ratios (issue #6's goal for blk: at least 0.8x). Not a
test: it fails only when a guest does not report its figures.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from guest import TOOLS_KVM, l2_kernel, python_cmd  # noqa: E402  (puts tools/kvm on sys.path)
from onekvm import initramfs  # noqa: E402
from test_virtio_rig import module_files  # noqa: E402

MODULES = ("virtio_pci", "virtio_blk", "9pnet_virtio", "9p")
TAG = "benchshare"
CASES = (  # name, path in the guest, mode, block size, extra vreader flag
    ("blk-seq", "/dev/vda", "seq", 1 << 20, "direct"),
    ("blk-rand4k", "/dev/vda", "rand", 4096, "direct"),
    ("9p-seq", "/mnt/disk.img", "seq", 1 << 20, ""),
    ("9p-rand4k", "/mnt/disk.img", "rand", 4096, ""),
)

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in %(mods)s; do insmod /mod/$m.ko || echo "VB: insmod-failed $m"; done
mkdir -p /mnt
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=none %(tag)s /mnt || echo "VB: mount-failed"
%(cases)s
echo "VB: done"
poweroff -f
"""


def build_vreader(directory: str) -> str:
    """vreader.c compiled static into `directory` (the L2 initramfs has no libc)."""
    src = os.path.join(HERE, "vreader.c")
    out = os.path.join(directory, "vreader")
    subprocess.run(["gcc", "-static", "-O2", "-o", out, src], check=True)
    return out


def select_cases(spec: str) -> tuple[tuple[str, str, str, int, str], ...]:
    """The CASES named by a comma-separated list of names or prefixes ("blk", "9p-seq"); all if empty."""
    if not spec:
        return CASES
    want = [w for w in spec.split(",") if w]
    picked = tuple(c for c in CASES if any(c[0] == w or c[0].startswith(w + "-") for w in want))
    if not picked:
        raise SystemExit(f"--cases {spec}: none of {', '.join(c[0] for c in CASES)}")
    return picked


def write_initramfs(
    directory: str, max_bytes: int, seconds: float, cases: tuple[tuple[str, str, str, int, str], ...] = CASES
) -> str:
    kver = os.path.basename(l2_kernel()).removeprefix("vmlinuz-")
    files: dict[str, bytes] = {}
    names = []
    for name, path in module_files(kver, MODULES):
        with open(path, "rb") as f:
            data = f.read()
        if path.endswith(".xz"):
            import lzma

            data = lzma.decompress(data)
        files[f"mod/{name}.ko"] = data
        names.append(name)
    with open(build_vreader(directory), "rb") as f:
        files["bin/vreader"] = f.read()
    script = "\n".join(
        f"echo 3 > /proc/sys/vm/drop_caches; echo \"VB: {name} $(/bin/vreader {mode} {path} {bs} {max_bytes} "
        f"{seconds} {flag} 2>&1)\""
        for name, path, mode, bs, flag in cases
    )
    out = os.path.join(directory, "bench-virtio.cpio")
    with open(out, "wb") as f:
        f.write(initramfs.build(init=INIT % {"mods": " ".join(names), "tag": TAG, "cases": script}, files=files))
    return out


def onekvm_cmd(dev: str, initrd: str, image: str, share: str, extra: list[str]) -> list[str]:
    return [
        *python_cmd(), "-m", "onekvm", "run", "--no-control", "-k", l2_kernel(), "-i", initrd, "--dev", dev,
        "-m", "256", "-d", f"{image},ro", "--9p", f"{share},{TAG},ro", "-p", "quiet", *extra,
    ]


def qemu_cmd(initrd: str, image: str, share: str) -> list[str]:
    return [
        "qemu-system-x86_64", "-enable-kvm", "-M", "pc", "-m", "256", "-nographic", "-no-reboot",
        "-kernel", l2_kernel(), "-initrd", initrd, "-append", "console=ttyS0 panic=-1 quiet",
        "-drive", f"file={image},if=none,id=d0,format=raw,readonly=on", "-device", "virtio-blk-pci,drive=d0",
        "-fsdev", f"local,id=f0,path={share},security_model=none,readonly=on",
        "-device", f"virtio-9p-pci,fsdev=f0,mount_tag={TAG}",
    ]


def run_guest(cmd: list[str], timeout: float) -> tuple[dict[str, float], str]:
    """MB/s per case from one guest run ({} if it reported nothing), and its output.

    A leading NAME=VALUE word of cmd is an environment setting, as in a shell.
    """
    env = dict(os.environ)
    while cmd and "=" in cmd[0] and not cmd[0].startswith("-"):
        name, _, value = cmd[0].partition("=")
        env[name] = value
        cmd = cmd[1:]
    env["PYTHONPATH"] = os.pathsep.join([TOOLS_KVM, *filter(None, [env.get("PYTHONPATH")])])
    p = subprocess.run(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        errors="replace", timeout=timeout, env=env,
    )
    figures: dict[str, float] = {}
    for m in re.finditer(r"VB: (\S+) vreader \S+ (\d+) ([\d.]+)", p.stdout):
        nbytes, secs = int(m.group(2)), float(m.group(3))
        if secs > 0:
            figures[m.group(1)] = nbytes / secs / 1e6
    if p.returncode != 0 or "VB: done" not in p.stdout:
        figures = {}
    return figures, p.stdout


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dev", default=(os.environ.get("ONEKVM_TEST_DEVS") or "/dev/kvm").split(",")[-1])
    ap.add_argument("--size-mib", type=int, default=32, help="image size (default 32 MiB)")
    ap.add_argument("--bytes", type=int, default=32 << 20, help="bytes per measurement at most")
    ap.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement at most")
    ap.add_argument("--onekvm-args", default="", help="extra `onekvm run` arguments, e.g. '--irqchip user'")
    ap.add_argument("--no-inline", action="store_true", help="skip onekvm with ONEKVM_VIRTIO_KICKS=inline")
    ap.add_argument("--no-qemu", action="store_true", help="only onekvm run (QEMU needs stock /dev/kvm)")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument(
        "--pin", metavar="CPUS", help="also run each VMM under `taskset -c CPUS` (all its threads on those L1 CPUs)"
    )
    ap.add_argument(
        "--halt-poll-ns",
        type=int,
        metavar="NS",
        help="also run onekvm (worker kicks) with --halt-poll-ns NS, as onekvm-hp: its halted vCPU polls that long",
    )
    ap.add_argument(
        "--python-too",
        action="store_true",
        help="also run onekvm (worker kicks) with ONEKVM_VIRTIO_FAST=0, as onekvm-py: blk without its C fast path",
    )
    ap.add_argument(
        "--signal-msi-too",
        action="store_true",
        help="also run onekvm (worker kicks) with ONEKVM_VIRTIO_IRQFD=0, as onekvm-msi: KVM_SIGNAL_MSI, no irqfds",
    )
    ap.add_argument("--cases", default="", help="only these cases: names or prefixes, e.g. 'blk' or 'blk-seq,9p'")
    ap.add_argument("--verbose", action="store_true", help="print each guest's whole output")
    args = ap.parse_args()
    cases = select_cases(args.cases)

    work = tempfile.mkdtemp(prefix="onekvm-bench-virtio-")
    share = os.path.join(work, "share")
    os.mkdir(share)
    image = os.path.join(share, "disk.img")
    with open(image, "wb") as f:
        for _ in range(args.size_mib):
            f.write(os.urandom(1 << 20))
    initrd = write_initramfs(work, args.bytes, args.seconds, cases)
    mine = onekvm_cmd(args.dev, initrd, image, share, args.onekvm_args.split())
    contenders = {"onekvm": ["ONEKVM_VIRTIO_KICKS=thread", *mine]}
    if args.python_too:
        contenders["onekvm-py"] = ["ONEKVM_VIRTIO_KICKS=thread", "ONEKVM_VIRTIO_FAST=0", *mine]
    if args.signal_msi_too:
        contenders["onekvm-msi"] = ["ONEKVM_VIRTIO_KICKS=thread", "ONEKVM_VIRTIO_IRQFD=0", *mine]
    if args.halt_poll_ns is not None:
        contenders["onekvm-hp"] = ["ONEKVM_VIRTIO_KICKS=thread", *mine, "--halt-poll-ns", str(args.halt_poll_ns)]
    if not args.no_inline:
        contenders["onekvm-inline"] = ["ONEKVM_VIRTIO_KICKS=inline", *mine]
    if not args.no_qemu:
        contenders["qemu-pc"] = qemu_cmd(initrd, image, share)
    if args.pin:
        for name in list(contenders):
            env, cmd = contenders[name][:1], contenders[name][1:]
            if "=" not in env[0]:
                env, cmd = [], contenders[name]
            contenders[f"{name}@{args.pin}"] = [*env, "taskset", "-c", args.pin, *cmd]
    print(
        f"kernel {l2_kernel()}, device {args.dev}, image {args.size_mib} MiB, at most {args.bytes >> 20} MiB or "
        f"{args.seconds:g} s per case, {args.runs} runs",
        flush=True,
    )
    figures: dict[str, dict[str, list[float]]] = {n: {c[0]: [] for c in cases} for n in contenders}
    failed = False
    for i in range(args.runs):
        for name, cmd in contenders.items():  # interleaved: load drifts hit both alike
            t0 = time.monotonic()
            got, out = run_guest(cmd, args.timeout)
            wall = time.monotonic() - t0
            if not got:
                failed = True
                print(f"run {i + 1} {name}: FAILED after {wall:.1f} s\n{out[-3000:]}", flush=True)
                continue
            if args.verbose:
                print(out)
            for case, mbs in got.items():
                figures[name][case].append(mbs)
            row = " ".join(f"{case} {got.get(case, 0):8.2f}" for case, *_ in cases)
            print(f"run {i + 1} {name:<15} {row} MB/s  ({wall:.1f} s wall, load {loadavg()})", flush=True)
    med = {n: {c: statistics.median(v) for c, v in per.items() if v} for n, per in figures.items()}
    pins = ["", f"@{args.pin}"] if args.pin else [""]
    for case, *_ in cases:
        cells = "  ".join(f"{n} {med[n][case]:.2f}" for n in med if case in med[n])
        line = f"median {case:<11} {cells} MB/s;"
        for pin in pins:
            ref = med.get(f"qemu-pc{pin}", {})
            for who in ("onekvm", "onekvm-py", "onekvm-msi", "onekvm-hp", "onekvm-inline"):
                got = med.get(f"{who}{pin}", {})
                if case in got and case in ref:
                    line += f"  {who}{pin}/qemu-pc{pin} {got[case] / ref[case]:.2f}x"
        print(line)
    print(f"load average at the end: {loadavg()}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
