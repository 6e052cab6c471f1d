"""Diagnostics on stderr. Not the logging module: its import costs half a second in the rig's L1."""

from __future__ import annotations

import sys

verbose = False


def warning(msg: str, *args: object) -> None:
    sys.stderr.write("onekvm: " + (msg % args if args else msg) + "\n")


def debug(msg: str, *args: object) -> None:
    if verbose:
        warning(msg, *args)
