# SPDX-License-Identifier: GPL-2.0
"""Start Python in the vmtest guest without paying for the site module.

Usage (in the guest)::

    python3 -S vmtest_site.py -m MODULE [ARGS...]
    python3 -S vmtest_site.py SCRIPT [ARGS...]

These behave like ``python3 -m MODULE`` and ``python3 SCRIPT``.  ``-S``
skips the site module, whose .pth hooks cost over a second of TCG time at
every interpreter start in the L1 guest; this bootstrap appends the
site-packages directories named in VMTEST_SITEDIRS (':'-separated, set by
vmtest) to the end of sys.path, where site would have put them, without
running any .pth file.
"""

import os
import runpy
import sys


def main() -> None:
    for d in os.environ.get("VMTEST_SITEDIRS", "").split(":"):
        if d and d not in sys.path:
            sys.path.append(d)
    args = sys.argv[1:]
    if args[:1] == ["-m"] and len(args) >= 2:
        sys.path[0] = os.getcwd()  # as -m does
        sys.argv = [args[1], *args[2:]]
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    elif args and not args[0].startswith("-"):
        sys.path[0] = os.path.dirname(os.path.abspath(args[0]))
        sys.argv = args
        runpy.run_path(args[0], run_name="__main__")
    else:
        sys.exit("usage: python3 -S vmtest_site.py {-m MODULE | SCRIPT} [ARGS...]")


if __name__ == "__main__":
    main()
