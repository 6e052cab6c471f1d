"""`onekvm` command line: git-style subcommands with kvmtool's flag names."""

from __future__ import annotations

import argparse
import os
import re
import sys

from onekvm import __version__
from onekvm.errors import UserError

TYPE_CHECKING = False  # typing is not imported at run time: start-up cost in the rig
if TYPE_CHECKING:
    from typing import NoReturn, Sequence


EXIT_USAGE = 2

DEFAULT_MEM_MIB = 256
DEFAULT_PARAMS = "console=ttyS0 panic=-1 reboot=k"


class _Formatter(argparse.HelpFormatter):
    """HelpFormatter that asks the terminal for its width itself: argparse's
    default imports shutil (and with it zlib, bz2 and lzma) every time an
    argument is added, a visible share of `onekvm run`'s start-up in the rig."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        if width is None:
            try:
                width = os.get_terminal_size(sys.stdout.fileno()).columns
            except (OSError, ValueError, AttributeError):
                width = int(os.environ.get("COLUMNS", "0") or 0) or 80
            width -= 2
        super().__init__(prog, indent_increment, max_help_position, width)


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line and exit 2 (argparse prints usage too)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: {message} (see {self.prog} --help)\n")
        sys.exit(EXIT_USAGE)


def _mem(text: str) -> int:
    """MiB, optionally with a unit: 512, 512M, 2G."""
    m = re.fullmatch(r"(\d+)\s*([mMgG]?)(?:i?[bB])?", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"bad memory size {text!r} (MiB, or with M/G)")
    n = int(m.group(1))
    return n * 1024 if m.group(2).lower() == "g" else n


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {n}")
    return n


def _halt_poll_ns(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= n <= 0xFFFFFFFF:  # the kernel keeps it in an unsigned int
        raise argparse.ArgumentTypeError(f"out of range 0..4294967295: {n}")
    return n


def build_parser() -> Parser:
    p = Parser(prog="onekvm", description="A Python VMM for /dev/kvm and /dev/onekvm.")
    p.add_argument("-v", "--verbose", action="store_true", help="log more (also ONEKVM_DEBUG=1 for tracebacks)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True

    r = sub.add_parser("run", help="boot a Linux guest")
    r.add_argument(
        "-k", "--kernel", help="bzImage or ELF vmlinux (default: the running kernel's, else the newest /boot/vmlinuz-*)"
    )
    r.add_argument(
        "-i",
        "--initrd",
        help="initramfs (default with no --kernel: a generated busybox one that mounts the host root over 9p)",
    )
    r.add_argument("-p", "--params", default="", help="kernel parameters, appended to the defaults")
    r.add_argument(
        "-m", "--mem", type=_mem, default=DEFAULT_MEM_MIB, help=f"guest memory in MiB (default {DEFAULT_MEM_MIB})"
    )
    r.add_argument("-c", "--cpus", type=_positive, default=1, help="number of vCPUs (default 1)")
    r.add_argument("-d", "--disk", action="append", default=[], help="disk image FILE[,ro] (virtio-blk)")
    r.add_argument(
        "--9p",
        dest="ninep",
        action="append",
        default=[],
        metavar="DIR,TAG",
        help="share a host directory over virtio-9p",
    )
    r.add_argument(
        "-n",
        "--network",
        action="append",
        default=[],
        metavar="mode=tap,tapif=NAME",
        help="virtio-net with a tap backend",
    )
    r.add_argument("--rng", action="store_true", help="virtio-rng from the host's random source")
    r.add_argument("--console", choices=("serial", "virtio"), default="serial", help="guest console device")
    r.add_argument("--dev", help="hypervisor device (default /dev/onekvm if present, else /dev/kvm)")
    r.add_argument("--name", help="VM name for list/stop/pause/resume/debug (default guest-PID)")
    r.add_argument(
        "--irqchip",
        choices=("auto", "kernel", "user"),
        default="auto",
        help="interrupt controllers: in the hypervisor (kernel), in this process (user), or kernel when offered (auto)",
    )
    r.add_argument(
        "--halt-poll-ns",
        type=_halt_poll_ns,
        metavar="NS",
        help="longest time a halted vCPU polls for a wake-up before it sleeps, in ns (KVM_CAP_HALT_POLL; "
        "default: the host's kvm.halt_poll_ns). Longer polls answer device interrupts sooner and burn CPU",
    )
    r.add_argument("--debug-ioport", action="store_true", help="log accesses to unhandled I/O ports and MMIO")
    r.add_argument("--stats", action="store_true", help="print exits by reason and time per device at the end")
    r.add_argument("--no-control", action="store_true", help="do not create a control socket")
    r.add_argument(
        "--kernel-cache",
        choices=("auto", "use", "off"),
        default="use",
        help="boot a bzImage's vmlinux unpacked by the VMM (cached, see onekvm/boot/kcache.py; no KASLR then) "
        "instead of running its decompressor in the guest: use (default: when the cache has an entry for "
        "this bzImage), auto (also create the entry), off (always run the decompressor). Fill the cache "
        "ahead with `python3 -m onekvm.boot.kcache BZIMAGE`: unpacking in the rig's L1 is slower than the "
        "guest's own decompressor",
    )
    r.set_defaults(func=cmd_run)

    ls = sub.add_parser("list", help="list running VMs")
    ls.set_defaults(func=cmd_list)
    for name, helptext in (("stop", "stop a VM"), ("pause", "pause a VM's vCPUs"), ("resume", "resume a paused VM")):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("name")
        c.set_defaults(func=cmd_simple, control_cmd=name)
    d = sub.add_parser("debug", help="inspect a running VM")
    d.add_argument("name")
    d.add_argument("--dump", action="store_true", help="print the registers of each vCPU")
    d.set_defaults(func=cmd_debug)

    v = sub.add_parser("version", help="print tool, API and ABI versions")
    v.add_argument("--dev", help="hypervisor device")
    v.set_defaults(func=cmd_version)
    c = sub.add_parser("caps", help="print the hypervisor's capabilities")
    c.add_argument("--dev", help="hypervisor device")
    c.add_argument("--all", action="store_true", help="also list capabilities the hypervisor lacks")
    c.set_defaults(func=cmd_caps)
    return p


def default_kernel() -> str:
    """The running kernel's image, else the newest /boot/vmlinuz-*."""
    running = f"/boot/vmlinuz-{os.uname().release}"
    if os.path.exists(running):
        return running
    import glob

    images = glob.glob("/boot/vmlinuz-*")
    if not images:
        raise UserError("no kernel given and none in /boot (use -k)")

    def key(path: str) -> list[object]:
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path)]

    return max(images, key=key)


def _zero_argument_root(kernel: str, virtio_opts: object) -> tuple[bytes, object]:
    """What `onekvm run` alone boots: the host root over 9p when virtio is there, else a busybox shell."""
    from onekvm import initramfs
    from onekvm.boot import bzimage
    from onekvm.boot.loader import read_file

    try:
        from onekvm import virtio
    except ImportError:
        return initramfs.build(), virtio_opts
    release = bzimage.kernel_release(read_file(kernel, "kernel"))
    shares = [f"/,{initramfs.ROOT_TAG},ro"]
    existing = virtio_opts
    opts = virtio.parse_options(shares=shares)
    if existing is not None:
        opts.devices = list(existing.devices) + opts.devices  # type: ignore[attr-defined]
    return initramfs.build_hostroot(release), opts


def cmd_run(args: argparse.Namespace) -> int:
    from onekvm.console import Console
    from onekvm.machine import Config, Machine

    virtio_opts = None
    if args.disk or args.ninep or args.network or args.rng or args.console == "virtio":
        try:
            from onekvm import virtio
        except ImportError:
            raise UserError("virtio devices are not available in this build (issue #6)") from None
        virtio_opts = virtio.parse_options(
            disks=args.disk, shares=args.ninep, nets=args.network, console=args.console, rng=args.rng
        )
    initrd_data = None
    kernel = args.kernel
    if kernel is None:
        kernel = default_kernel()
    if args.initrd is None and args.kernel is None:
        initrd_data, virtio_opts = _zero_argument_root(kernel, virtio_opts)
    params = DEFAULT_PARAMS
    if virtio_opts is not None and virtio_opts.kernel_params():
        params += " " + virtio_opts.kernel_params()
    if args.params:
        params += " " + args.params
    name = args.name or f"guest-{os.getpid()}"
    cfg = Config(
        kernel=kernel,
        cmdline=params,
        initrd=args.initrd,
        initrd_data=initrd_data,
        mem_mib=args.mem,
        cpus=args.cpus,
        device=args.dev,
        name=name,
        irqchip=args.irqchip,
        debug_ioport=args.debug_ioport,
        stats=args.stats,
        control=not args.no_control,
        virtio=virtio_opts,
        kernel_cache=args.kernel_cache,
        halt_poll_ns=args.halt_poll_ns,
    )
    console = Console()
    machine = Machine(cfg, console)
    try:
        status = machine.run()
    finally:
        machine.close()
    if status != 0 or machine.exit_reason not in ("guest powered off",):
        console.message(f"onekvm: {machine.exit_reason} (exit status {status})")
    if machine.stats is not None:
        machine.stats.report(sys.stderr)
    return status


def cmd_list(args: argparse.Namespace) -> int:
    from onekvm import control

    vms = control.list_vms()
    if not vms:
        return 0
    print(f"{'NAME':<20} {'PID':>7} {'STATE':<8} {'CPUS':>4} {'MEM':>7}  DEVICE")
    for vm in vms:
        mem = f"{vm['mem_mib']}M"
        print(f"{vm['name']:<20} {vm['pid']:>7} {vm['state']:<8} {vm['cpus']:>4} {mem:>7}  {vm['device']}")
    return 0


def cmd_simple(args: argparse.Namespace) -> int:
    from onekvm import control

    control.request(args.name, args.control_cmd)
    return 0


def cmd_debug(args: argparse.Namespace) -> int:
    from onekvm import control

    if not args.dump:
        raise UserError("debug: nothing to do (use --dump)")
    reply = control.request(args.name, "dump")
    for v in reply["vcpus"]:
        print(f"vcpu{v['vcpu']}:")
        regs = [k for k in v if k not in ("vcpu", "mp_state")]
        for i in range(0, len(regs), 4):
            print("  " + "  ".join(f"{k:>6}={v[k]:016x}" for k in regs[i : i + 4]))
        if v.get("mp_state") is not None:
            print(f"  mp_state={v['mp_state']}")
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    from onekvm import kvm

    print(f"onekvm {__version__}")
    kvm.require_abi()
    print(f"ABI fingerprint (tools): {kvm.lib.ONEKVM_ABI_FINGERPRINT:#018x}")
    system = kvm.System(args.dev)
    try:
        print(f"device: {system.path}")
        print(f"KVM API version: {system.api_version}")
        fp = system.abi_fingerprint()
        if fp is not None:
            print(f"ABI fingerprint (module): {fp:#018x}")
    finally:
        system.close()
    return 0


def cmd_caps(args: argparse.Namespace) -> int:
    from onekvm import kvm

    system = kvm.System(args.dev)
    try:
        caps = system.caps()
        print(f"# {system.path}: KVM API version {system.api_version}")
    finally:
        system.close()
    width = max(len(n) for n in caps)
    for name, value in caps.items():
        if value or args.all:
            print(f"{name:<{width}} {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from onekvm import log

    log.verbose = args.verbose
    try:
        return args.func(args)
    except UserError as e:
        sys.stderr.write(f"onekvm: {e}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
