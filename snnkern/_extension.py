"""The optional compiled backend ``snnkern._C`` (CUDA C++ kernels + their CPU twins, see csrc/).

Loading it only registers ops (``torch.ops.snnkern.*_native``); it never initializes CUDA.  When it
is missing (no toolkit at install time) or fails to load, the Triton and PyTorch backends serve and
``extension_status()`` says why.
"""
from __future__ import annotations

import importlib
import logging
import os

logger = logging.getLogger("snnkern")
_status: dict = {"loaded": None, "reason": None, "stale": False}


def _load() -> bool:
    if _status["loaded"] is None:
        try:
            from .ops import schemas  # noqa: F401  the op schemas the kernels register against
            importlib.import_module("snnkern._C").register_kernels()
            _status["loaded"] = True
        except ImportError as exc:  # not built, or built against another torch
            _status["loaded"], _status["reason"] = False, str(exc)
            logger.info("snnkern: CUDA extension not loaded (%s); Triton and PyTorch backends only", exc)
        except (RuntimeError, AttributeError) as exc:  # built from other csrc/ sources than this package's
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _status["loaded"], _status["stale"] = False, True
            _status["reason"] = (f"snnkern._C was built from other sources than this package ({first}); rebuild "
                                 f"it: SNNKERN_FORCE_CUDA_BUILD=1 pip install --use-pep517 --no-build-isolation "
                                 f"--no-deps -e .")
            logger.warning("snnkern: %s", _status["reason"])
    return _status["loaded"]


def cuda_extension_available() -> bool:
    """True when the compiled C++/CUDA backend (``backend="cuda"``) is importable."""
    return _load()


BUILD_NOTE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_build_note.txt")


def _build_note() -> str | None:
    """Why setup.py skipped the build, if it did (it leaves this note in the package)."""
    if not os.path.exists(BUILD_NOTE):
        return None
    with open(BUILD_NOTE) as f:
        return f.read().strip()


def extension_status() -> str:
    if _load():
        return "loaded"
    note = _build_note()
    if note and not _status.get("stale"):  # the cause, and the cure: pip's build isolation hides torch from the build
        return (f"not available ({note}; rebuild with `SNNKERN_FORCE_CUDA_BUILD=1 pip install "
                f"--no-build-isolation --no-deps .` in an environment with a CUDA torch and nvcc)")
    return f"not available ({_status['reason']})"
