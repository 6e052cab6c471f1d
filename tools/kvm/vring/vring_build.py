# SPDX-License-Identifier: GPL-2.0-only
"""cffi API-mode builder for onekvm._vring, the virtio-blk fast path.

`python3 vring_build.py vring_blk.h OUT.c` writes the extension's glue C
source; meson compiles it with vring_blk.c (see tools/kvm/onekvm/meson.build).
The declarations cffi sees are vring_blk.h itself, so the two cannot drift.
"""

import sys

import cffi

MODULE_NAME = "onekvm._vring"


def make_ffibuilder(header: str, module_name: str = MODULE_NAME) -> cffi.FFI:
    with open(header) as f:
        decls = f.read()
    ffibuilder = cffi.FFI()
    ffibuilder.cdef(decls)
    ffibuilder.set_source(module_name, '#include <stdint.h>\n#include "vring_blk.h"\n')
    return ffibuilder


if __name__ == "__main__":
    make_ffibuilder(sys.argv[1]).emit_c_code(sys.argv[2])
