"""The optional compiled backend ``snnkern._C`` (CUDA C++ kernels + their CPU twins, see csrc/).

Loading it only registers ops (``torch.ops.snnkern.*_native``); it never initializes CUDA.  When it
is missing (no toolkit at install time) or fails to load, the Triton and PyTorch backends serve and
``extension_status()`` says why.
"""
from __future__ import annotations

import importlib
import logging

logger = logging.getLogger("snnkern")
_status: dict = {"loaded": None, "reason": None}


def _load() -> bool:
    if _status["loaded"] is None:
        try:
            importlib.import_module("snnkern._C")
            _status["loaded"] = True
        except ImportError as exc:  # not built, or built against another torch
            _status["loaded"], _status["reason"] = False, str(exc)
            logger.info("snnkern: CUDA extension not loaded (%s); Triton and PyTorch backends only", exc)
    return _status["loaded"]


def cuda_extension_available() -> bool:
    """True when the compiled C++/CUDA backend (``backend="cuda"``) is importable."""
    return _load()


def extension_status() -> str:
    return "loaded" if _load() else f"not available ({_status['reason']})"
