# SPDX-License-Identifier: GPL-2.0-only
"""pytest glue for the onekvm selftests.

Every test that takes the `dev` fixture runs once per device node listed in
ONEKVM_TEST_DEVS (comma separated, e.g. "/dev/onekvm,/dev/kvm"); the rig
(make vmtest) sets it to the hypervisors it loaded.  Without it the suite
refuses to run: these tests belong in the rig (or, for development, on a
machine with a usable /dev/kvm: ONEKVM_TEST_DEVS=/dev/kvm).
"""

from __future__ import annotations

import faulthandler
import os
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[3]
DEVS_ENV = "ONEKVM_TEST_DEVS"
_PREBUILD = bool(os.environ.get("ONEKVM_PREBUILD"))
TIMEOUT_ENV = "ONEKVM_TEST_TIMEOUT"

# The library beside the tests, and the in-tree bindings when PYTHONPATH
# does not name them already (the rig sets PYTHONPATH; a developer may not).
sys.path.insert(0, str(HERE))
try:
    import onekvm.abi  # noqa: F401
except ImportError:
    sys.path[1:1] = [str(REPO / "tools" / "kvm"), str(REPO / "build" / "meson" / "tools" / "kvm")]
try:
    from kvmtest import Device, Guest, build_all
    _IMPORT_ERROR = ""
except ImportError as e:
    _IMPORT_ERROR = (f"the onekvm ABI bindings do not import ({e}): run `meson setup build/meson && "
                     "meson compile -C build/meson` and set PYTHONPATH=tools/kvm:build/meson/tools/kvm")


def _device_paths() -> list[str]:
    return [p.strip() for p in os.environ.get(DEVS_ENV, "").split(",") if p.strip()]


_DEVICES: dict[str, "Device"] = {}
_REFUSAL = ""


# Third-party plugins that cost seconds under TCG and serve no test here:
# hypothesis imports its whole package (~90 modules, assertion-rewritten)
# at the end of every session.
_BLOCKED_PLUGINS = ("hypothesispytest",)


def pytest_configure(config: pytest.Config) -> None:
    # A UsageError raised here would come wrapped in a plugin traceback:
    # the reason is kept and the run stops in one line after collection.
    global _REFUSAL
    for name in _BLOCKED_PLUGINS:
        config.pluginmanager.set_blocked(name)
    paths = _device_paths()
    if _PREBUILD:
        return          # ./prebuild: collection and assembly only, no device
    if not paths:
        _REFUSAL = (f"{DEVS_ENV} is not set: the onekvm selftests run in the rig (make vmtest); "
                    f"against a local device: {DEVS_ENV}=/dev/kvm python3 -m pytest {HERE.relative_to(REPO)}")
    elif _IMPORT_ERROR:
        _REFUSAL = _IMPORT_ERROR
    else:
        for p in paths:
            try:
                _DEVICES[p] = Device(p)
            except OSError as e:
                _REFUSAL = f"{DEVS_ENV}: cannot open {p}: {e.strerror}"
                break


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    for d in _DEVICES.values():
        fp = f", ABI fingerprint {d.fingerprint:#018x}" if d.fingerprint is not None else ""
        lines.append(f"onekvm selftests: {d.path} is {d.kind}{fp}")
    return lines


def pytest_collection_finish(session: pytest.Session) -> None:
    if _REFUSAL:
        pytest.exit(_REFUSAL, returncode=pytest.ExitCode.USAGE_ERROR)
    if _PREBUILD and _IMPORT_ERROR:
        pytest.exit(_IMPORT_ERROR, returncode=pytest.ExitCode.USAGE_ERROR)
    # Every guest snippet of every collected module, assembled in parallel
    # now rather than one `as` at a time inside the tests.
    build_all()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "dev" in metafunc.fixturenames:
        paths = _device_paths()
        metafunc.parametrize("dev", paths, ids=[os.path.basename(p) for p in paths],
                             indirect=True, scope="session")


@pytest.fixture(scope="session")
def dev(request: pytest.FixtureRequest) -> Device:
    """The device under test (session scoped: one system fd per device)."""
    return _DEVICES[request.param]


@pytest.fixture(autouse=True)
def _watchdog() -> Iterator[None]:
    """A test stuck in KVM_RUN dumps its traceback and ends the run."""
    faulthandler.dump_traceback_later(float(os.environ.get(TIMEOUT_ENV, "120")), exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def make_guest(dev: Device) -> Iterator[Callable[..., Guest]]:
    """make_guest(bits=64, code=None, **kw) -> Guest, closed after the test."""
    made: list[Guest] = []

    def make(bits: int = 64, code: object = None, **kw: object) -> Guest:
        g = Guest(dev, bits, code, **kw)  # type: ignore[arg-type]
        made.append(g)
        return g

    yield make
    for g in made:
        g.close()


_POOL: dict[tuple[str, int], "Guest"] = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        item._onekvm_failed = True  # type: ignore[attr-defined]


@pytest.fixture
def tiny(request: pytest.FixtureRequest, dev: Device) -> Iterator[Callable[[int], Guest]]:
    """tiny(bits) -> a Guest shared between tests (one per device and mode),
    reset for this test: VM creation is slow under TCG.  Only for tests that
    change no VM-wide state (memslots, vCPU count, CPUID); a test that fails
    poisons its guest, which is then replaced."""
    used: list[tuple[str, int]] = []

    def get(bits: int) -> Guest:
        key = (dev.path, bits)
        g = _POOL.get(key)
        if g is not None and any(v.needs_completion() for v in g.vcpus):
            g.close()           # a pending IN/MMIO read would land in the next test
            g = None
        if g is None:
            g = _POOL[key] = Guest(dev, bits)
        else:
            g.reset()
        used.append(key)
        return g

    yield get
    if getattr(request.node, "_onekvm_failed", False):
        for key in used:
            g = _POOL.pop(key, None)
            if g is not None:
                g.close()


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Two hypervisors cannot both hold SVM: all VMs of one device must be
    # gone before another device can create one (EBUSY otherwise).  Tests
    # run grouped by device (session-scoped parameter), so this is rare.
    callspec = getattr(item, "callspec", None)
    path = callspec.params.get("dev") if callspec else None
    for key in [k for k in _POOL if k[0] != path]:
        _POOL.pop(key).close()


def pytest_sessionfinish(session: pytest.Session) -> None:
    for g in _POOL.values():
        g.close()
    _POOL.clear()


@pytest.fixture
def known_issue(request: pytest.FixtureRequest, dev: Device) -> Callable[..., None]:
    """known_issue(kinds, reason): the test still runs; on a device of one of
    `kinds` a failure is reported as xfail with `reason` (documented
    differences of a development backend such as kvm_pvm, never onekvm)."""

    def mark(kinds: tuple[str, ...], reason: str) -> None:
        if "onekvm" in kinds:
            raise ValueError("onekvm failures are failures: fix the module or the test")
        if dev.kind in kinds:
            request.node.add_marker(pytest.mark.xfail(reason=f"{dev.kind}: {reason}", strict=False))

    return mark

