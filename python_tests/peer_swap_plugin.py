"""pytest plugin: the snnTorch / SpikingJelly neuron layers a test suite builds become ``snnkern.swap``'s layers.

    PYTHONPATH=python_tests pytest -p peer_swap_plugin <the peers' own tests>

Every foreign class in ``snnkern.swap``'s table (snnTorch ``Leaky``; SpikingJelly ``LIFNode``, ``IFNode``,
``ParametricLIFNode``) gets its ``__init__`` wrapped: when the outermost constructor returns (not a
subclass's ``super().__init__``; swap leaves subclasses alone), the new instance goes through
``snnkern.swap(instance)``. It then changes class in place to snnkern's subclass of the original, so the
peers' own ``isinstance`` checks, option attributes and reset utilities keep working; a layer whose
options swap does not reproduce stays the original, as swap leaves it. swap's warning for such a layer
is recorded rather than emitted, so a test that inspects its warnings sees what the original gives it.

Environment:

- ``SNNKERN_PEER_SWAP``: ``1`` (default) swaps; ``0`` only records outcomes (the run on the originals).
- ``SNNKERN_PEER_BACKEND``: the backend the swapped layers run: ``torch`` (default: the plain-PyTorch
  reference, on CPU), ``auto``, ``triton`` (CPU tensors need ``TRITON_INTERPRET=1``), ``cuda`` (the
  compiled extension, which also runs CPU tensors).
- ``SNNKERN_PEER_REPORT``: path of a JSON file written at the end of the session: every test's outcome
  (and failure text / skip reason), the layers swapped and left per test, and each peer's version and
  the file it was imported from.
- ``SNNKERN_PEER_SEED``: before each test, ``random``, NumPy and torch are seeded from the test's id
  (the default, so a test that draws unseeded inputs draws the same ones in the original and the swapped
  run); ``off`` leaves them alone.
- ``SNNKERN_PEER_PACKAGE_DIRS``: ``name=DIR[:name=DIR...]``: directories appended to an imported
  package's ``__path__``. SpikingJelly's tests import their helpers as ``test.activation_based....``,
  which Python's own ``test`` package shadows when it is installed; ``test=<their test dir>`` adds them.
"""
from __future__ import annotations

import functools
import importlib
import json
import os
import random
import sys
import warnings
import zlib

import pytest

COLLECTION = "<collection>"  # constructions outside any test (module level, collection)
_MESSAGE_CHARS = 3000


class _State:
    def __init__(self, swap: bool, backend: str):
        self.swap_enabled = swap
        self.backend = backend
        self.current = COLLECTION
        self.outcomes: dict[str, dict] = {}
        self.swapped: dict[str, list] = {}
        self.left: dict[str, list] = {}
        self.wrapped: list = []  # (class, original __init__)

    # -- swapping ------------------------------------------------------------------------------

    def swap(self, module) -> None:
        import snnkern

        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            report = snnkern.swap(module, backend=self.backend)
        for _, foreign, fast in report.swapped:
            self.swapped.setdefault(self.current, []).append([foreign, fast])
        for _, foreign, reasons in report.left:
            self.left.setdefault(self.current, []).append([foreign, list(reasons)])

    def install(self) -> None:
        """Wrap the constructors of every foreign class in swap's table whose library is installed."""
        swap_module = importlib.import_module("snnkern.convert.swap")  # the module (the package exports the function)
        for rule in swap_module.SWAP_TABLE:
            try:
                importlib.import_module(rule.library)
            except ImportError:
                continue
        for foreign in swap_module._fast_classes():
            self._wrap(foreign)

    def _wrap(self, cls) -> None:
        original = cls.__dict__.get("__init__")
        if original is None or getattr(original, "_snnkern_peer_swap", False):
            return
        state = self

        @functools.wraps(original)
        def __init__(self, *args, **kwargs):
            original(self, *args, **kwargs)
            if type(self) is cls:  # the outermost constructor: the instance is complete
                state.swap(self)

        __init__._snnkern_peer_swap = True
        cls.__init__ = __init__
        self.wrapped.append((cls, original))

    def uninstall(self) -> None:
        for cls, original in reversed(self.wrapped):
            cls.__init__ = original
        self.wrapped.clear()

    # -- recording -----------------------------------------------------------------------------

    def record(self, report) -> None:
        entry = self.outcomes.setdefault(report.nodeid, {"outcome": None})
        xfail = hasattr(report, "wasxfail")
        if report.when == "call":
            if report.passed:
                entry["outcome"] = "xpassed" if xfail else "passed"
            elif report.skipped:
                entry["outcome"] = "xfailed" if xfail else "skipped"
            else:
                entry["outcome"] = "failed"
        elif report.failed:  # setup or teardown
            entry["outcome"] = "error"
        elif report.skipped and report.when == "setup":
            entry["outcome"] = "xfailed" if xfail else "skipped"
        if report.failed:
            entry["message"] = f"[{report.when}] " + report.longreprtext[-_MESSAGE_CHARS:]
        elif report.skipped and "message" not in entry:
            longrepr = report.longrepr
            entry["message"] = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)

    def dump(self, path: str, exitstatus) -> None:
        from importlib import metadata

        peers = {}
        for name in ("snntorch", "spikingjelly"):
            module = sys.modules.get(name)
            if module is not None:
                try:
                    version = metadata.version(name)
                except metadata.PackageNotFoundError:
                    version = getattr(module, "__version__", None)
                peers[name] = {"version": version, "file": getattr(module, "__file__", None)}
        data = {"swap": self.swap_enabled, "backend": self.backend, "exitstatus": int(exitstatus), "peers": peers,
                "outcomes": self.outcomes, "swapped": self.swapped, "left": self.left}
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)


_state: _State | None = None


def _extend_packages(spec: str) -> None:
    for item in filter(None, spec.split(os.pathsep)):
        name, _, directory = item.partition("=")
        try:
            package = importlib.import_module(name)
        except ImportError:
            continue  # not shadowed: the directory is found on sys.path as it is
        path = getattr(package, "__path__", None)
        if path is not None and directory not in list(path):
            path.append(directory)


def _seed(nodeid: str) -> None:
    seed = zlib.crc32(nodeid.encode())
    random.seed(seed)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(seed)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def pytest_configure(config):
    global _state
    _extend_packages(os.environ.get("SNNKERN_PEER_PACKAGE_DIRS", ""))
    swap = os.environ.get("SNNKERN_PEER_SWAP", "1").strip()
    if swap not in ("0", "1"):
        raise pytest.UsageError(f"SNNKERN_PEER_SWAP must be 0 or 1, got {swap!r}")
    backend = os.environ.get("SNNKERN_PEER_BACKEND", "torch").strip()
    if swap == "1":
        from snnkern._dispatch import BACKENDS

        if backend not in BACKENDS:
            raise pytest.UsageError(f"SNNKERN_PEER_BACKEND must be one of {BACKENDS}, got {backend!r}")
    _state = _State(swap == "1", backend)
    if _state.swap_enabled:
        _state.install()
        if not _state.wrapped:
            raise pytest.UsageError("peer_swap_plugin: neither snnTorch nor SpikingJelly is installed: nothing to swap")


def pytest_unconfigure(config):
    global _state
    if _state is not None:
        _state.uninstall()
        _state = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _state.current = item.nodeid
    if os.environ.get("SNNKERN_PEER_SEED", "on") != "off":
        _seed(item.nodeid)
    try:
        yield
    finally:
        _state.current = COLLECTION


def pytest_runtest_logreport(report):
    _state.record(report)


def pytest_collectreport(report):
    if report.failed:
        _state.outcomes[report.nodeid or COLLECTION] = {"outcome": "collect-error",
                                                        "message": report.longreprtext[-_MESSAGE_CHARS:]}


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("SNNKERN_PEER_REPORT")
    if path:
        _state.dump(path, exitstatus)


def pytest_terminal_summary(terminalreporter):
    if not _state.swap_enabled:
        return
    swapped = sum(len(v) for v in _state.swapped.values())
    left = sum(len(v) for v in _state.left.values())
    terminalreporter.write_sep("=", "snnkern peer swap")
    terminalreporter.write_line(f"backend {_state.backend!r}: {swapped} layer(s) swapped in "
                                f"{len(_state.swapped)} test(s); {left} left as the originals")
    reasons = sorted({f"{foreign}: {'; '.join(why)}" for entries in _state.left.values() for foreign, why in entries})
    for reason in reasons:
        terminalreporter.write_line(f"  left  {reason}")
