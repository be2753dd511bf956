"""The one place that decides which backend runs an op.

Rule (``backend="auto"``): CUDA tensors of a kernel dtype run the Triton kernels; everything else
(CPU tensors, float64) runs the plain-PyTorch reference.  ``backend="triton"`` on CPU tensors is
allowed only under ``TRITON_INTERPRET=1`` (Triton's CPU interpreter: how CI proves the kernels).
"""
from __future__ import annotations

import os

import torch

from .ops._triton import HAS_TRITON

BACKENDS = ("auto", "triton", "torch")
KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_last_backend: dict[str, str] = {}


def triton_interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def select_backend(op: str, backend, x: torch.Tensor, dtypes=KERNEL_DTYPES, name: str = "x_seq") -> str:
    """Resolve ``backend`` for op ``op`` on input ``x`` (named ``name`` in errors) whose kernels take ``dtypes``."""
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    if backend == "auto":
        kernel_ok = HAS_TRITON and x.is_cuda and x.dtype in dtypes
        backend = "triton" if kernel_ok else "torch"
    elif backend == "triton":
        if not HAS_TRITON:
            raise ValueError("backend='triton' needs the triton package, which is not installed")
        if not (x.is_cuda or (x.device.type == "cpu" and triton_interpret())):
            raise ValueError(
                f"backend='triton' needs CUDA tensors (or CPU tensors with TRITON_INTERPRET=1); {name} is on {x.device}"
            )
        if x.dtype not in dtypes:
            raise ValueError(f"backend='triton' supports {name} of dtype {', '.join(map(str, dtypes))}, got "
                             f"{x.dtype}; use backend='torch'")
    _last_backend[op] = backend
    return backend


def last_backend(op: str = "lif") -> str | None:
    """Name of the backend that ran the latest call of ``op`` ("triton" or "torch"), None before any call."""
    return _last_backend.get(op)
