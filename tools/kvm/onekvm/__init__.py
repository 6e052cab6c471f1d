"""onekvm: a Python VMM for /dev/kvm and /dev/onekvm."""

import os as _os
import sys as _sys

# The cffi extension onekvm._abi is built by meson into build/meson/tools/kvm/onekvm:
# every onekvm/ directory on sys.path joins this package (pkgutil.extend_path's
# rule, without importing pkgutil and typing: start-up time counts in the rig).
for _entry in _sys.path:
    if isinstance(_entry, str):
        _dir = _os.path.join(_entry or _os.curdir, __name__)
        if _dir not in __path__ and _os.path.isdir(_dir):
            __path__.append(_dir)
del _entry, _dir

__version__ = "0.1.0"
