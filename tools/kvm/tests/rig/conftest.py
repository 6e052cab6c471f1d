"""Rig tests: Linux boots under `onekvm run` inside the vmtest L1 guest.

Run them through the rig, never on the host (whose /dev/kvm is PVM):

    tools/testing/vmtest/vmtest --kver 6.1.0-56-amd64 --hv kvm_amd -- \\
        $VMTEST_PY -m pytest -q -p no:cacheprovider -m rig tools/kvm/tests/rig

Every test here carries the `rig` marker; the host test run deselects them
with -m "not rig". Outside the rig they fail (ONEKVM_TEST_DEVS unset) rather
than skip, so a wrong selection is seen.
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.rig)


def rig_devices() -> list[str]:
    devs = [d for d in os.environ.get("ONEKVM_TEST_DEVS", "").split(",") if d]
    return devs or ["<not in the rig>"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "dev" in metafunc.fixturenames:
        metafunc.parametrize("dev", rig_devices())


@pytest.fixture
def dev(request: pytest.FixtureRequest) -> str:
    d = request.param
    if d.startswith("<"):
        pytest.fail("rig test outside the rig: run it through tools/testing/vmtest (ONEKVM_TEST_DEVS is unset)")
    if not os.path.exists(d):
        pytest.fail(f"{d} is missing in the rig")
    return d


@pytest.fixture(scope="session")
def initrd(tmp_path_factory: pytest.TempPathFactory) -> str:
    from guest import write_initramfs

    return write_initramfs(str(tmp_path_factory.mktemp("l2")))
