"""Host-side tests of the VMM. Rig tests (tests/rig) carry the `rig` marker;
the host run deselects them explicitly: `pytest -m "not rig" tools/kvm/tests`."""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tools/kvm, for running pytest without PYTHONPATH


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "rig: boots Linux inside the vmtest rig (make vmtest); the host run deselects these with -m 'not rig'",
    )
    config.addinivalue_line("markers", "soak: long rig run, only with `make soak` (-m soak)")


def abi_available() -> bool:
    try:
        import onekvm.abi  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture
def kvm_dev() -> str:
    """The host's /dev/kvm for tiny guests. Missing bindings fail; a missing device skips with a reason."""
    if not abi_available():
        pytest.fail("onekvm._abi is not built: meson setup build/meson && meson compile -C build/meson")
    dev = os.environ.get("ONEKVM_HOST_DEV", "/dev/kvm")
    if not os.path.exists(dev):
        pytest.skip(f"{dev} not present on this host")
    return dev
