"""Boot-to-poweroff wall time: `onekvm run` against QEMU on the same hypervisor, same kernel and initramfs.

Run in the rig (make bench, or by hand):

    tools/testing/vmtest/vmtest --kver 6.1.0-56-amd64 --hv kvm_amd -- \\
        $VMTEST_PY tools/kvm/tests/rig/bench_boot.py [--runs 3] [--dev /dev/kvm]

Prints each run and the medians, then onekvm's time as a ratio of QEMU's
(the goal of issue #5: at most 0.7x QEMU -M pc). Not a test: it fails only
when a guest does not reach init and power off.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from guest import MARK, l2_kernel, run_onekvm, run_qemu, write_initramfs  # noqa: E402  (puts tools/kvm on sys.path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dev", default=(os.environ.get("ONEKVM_TEST_DEVS") or "/dev/kvm").split(",")[0])
    ap.add_argument("--params", default="quiet")
    ap.add_argument("--no-microvm", action="store_true")
    ap.add_argument("--no-kcache", action="store_true", help="skip the run with the VMM-unpacked vmlinux")
    ap.add_argument("--onekvm-args", default="", help="extra `onekvm run` arguments, e.g. '--irqchip user'")
    args = ap.parse_args()

    initrd = write_initramfs(tempfile.mkdtemp(prefix="onekvm-bench-"))
    print(f"kernel {l2_kernel()}, device {args.dev}, params {args.params!r}, {args.runs} runs", flush=True)
    print("load average (L1) at start: %.2f %.2f %.2f" % os.getloadavg(), flush=True)
    extra = args.onekvm_args.split()
    contenders = {
        # The bzImage's own decompressor in the guest (guest.run_onekvm passes --kernel-cache off).
        "onekvm": lambda: run_onekvm(args.dev, initrd, *extra, params=args.params),
        "qemu-pc": lambda: run_qemu(initrd, "pc", params=args.params),
    }
    if not args.no_kcache:
        # The bzImage's vmlinux unpacked once by the VMM (boot/kcache.py): the
        # guest skips its decompressor. The one-time unpacking is timed apart.
        from onekvm.boot import kcache

        os.environ.setdefault("ONEKVM_KERNEL_CACHE", tempfile.mkdtemp(prefix="onekvm-kcache-"))
        with open(l2_kernel(), "rb") as f:
            data = f.read()
        t0 = time.monotonic()
        found = kcache.lookup(data)
        ok = kcache.vmlinux_for(data) is not None
        if found:
            print(f"kernel cache: entry found ({found}), unpacked ahead of this run")
        else:
            print(f"kernel cache: {'unpacked' if ok else 'cannot unpack'} in {time.monotonic() - t0:.2f} s (once)")
        if ok:
            contenders["onekvm+kcache"] = lambda: run_onekvm(
                args.dev, initrd, "--kernel-cache", "use", *extra, params=args.params
            )
    if not args.no_microvm:
        contenders["qemu-microvm"] = lambda: run_qemu(initrd, "microvm", params=args.params)
    times: dict[str, list[float]] = {name: [] for name in contenders}
    failed = False
    for i in range(args.runs):
        for name, fn in contenders.items():  # interleaved: load drifts hit all alike
            r = fn()
            ok = r.status == 0 and MARK in r.output
            failed |= not ok
            times[name].append(r.seconds)
            print(
                f"run {i + 1} {name:<13} {r.seconds:7.2f} s {'ok' if ok else f'FAILED (status {r.status})'}", flush=True
            )
            if not ok:
                print(r.output[-2000:])
    print("load average (L1) at end: %.2f %.2f %.2f" % os.getloadavg(), flush=True)
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, m in med.items():
        print(f"median {name:<13} {m:7.2f} s")
    for mine in ("onekvm", "onekvm+kcache"):
        for other in ("qemu-pc", "qemu-microvm"):
            if mine in med and other in med:
                print(f"ratio {mine}/{other}: {med[mine] / med[other]:.2f}x")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
