"""The one place that decides which backend runs an op.

Rule (``backend="auto"``): CUDA tensors of a kernel dtype run the Triton kernels; everything else
(CPU tensors, float64, calls inside ``torch.func`` transforms) runs the plain-PyTorch reference.
(Auto keeps Triton over the CUDA C++ backend until a GPU benchmark shows the C++ kernels faster
somewhere; see bench/results.)
``backend="triton"`` on CPU tensors is allowed only under ``TRITON_INTERPRET=1`` (Triton's CPU
interpreter: how CI proves the kernels).  ``backend="cuda"`` runs the compiled extension
(``snnkern._C``): its CUDA kernels on CUDA tensors, and on CPU tensors the host build of the very
same per-neuron code (how CI checks it without a GPU).
"""
from __future__ import annotations

import os

import torch

from ._extension import cuda_extension_available, extension_status
from .ops._triton import HAS_TRITON

BACKENDS = ("auto", "triton", "cuda", "torch")
_functorch_level = torch._C._functorch.peek_interpreter_stack
KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_last_backend: dict[str, str] = {}


# Triton picks compiled or interpreted kernels when they are defined (at import), so read it once too
_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def triton_interpret() -> bool:
    """True when Triton runs its CPU interpreter (TRITON_INTERPRET=1 at import)."""
    return _INTERPRET


def select_backend(op: str, backend, x: torch.Tensor, dtypes=KERNEL_DTYPES, name: str = "x_seq",
                   allowed=BACKENDS) -> str:
    """Resolve ``backend`` for op ``op`` on input ``x`` (named ``name`` in errors) whose kernels take ``dtypes``;
    ``allowed``: the backends this op has."""
    if not isinstance(backend, str) or backend not in allowed:
        raise ValueError(f"backend must be one of {allowed} for {op}; got {backend!r}")
    # inside torch.func.grad / vmap / jacrev ... (torch.compile's own tracing uses functorch too: not that)
    transformed = not torch.compiler.is_compiling() and _functorch_level() is not None
    if transformed and backend not in ("auto", "torch"):
        raise ValueError(f"backend={backend!r} cannot run inside torch.func transforms (grad, vmap, ...): the "
                         f"kernels read raw memory; use backend='torch' (or 'auto', which picks it there)")
    if backend == "auto":
        kernel_ok = HAS_TRITON and x.is_cuda and x.dtype in dtypes and not transformed
        backend = "triton" if kernel_ok else "torch"
    elif backend == "triton":
        if not HAS_TRITON:
            raise ValueError("backend='triton' needs the triton package, which is not installed")
        if not (x.is_cuda or (x.device.type == "cpu" and triton_interpret())):
            raise ValueError(
                f"backend='triton' needs CUDA tensors (or CPU tensors with TRITON_INTERPRET=1); {name} is on {x.device}"
            )
    elif backend == "cuda":
        if not cuda_extension_available():
            raise ValueError(f"backend='cuda' needs the compiled extension snnkern._C: {extension_status()}")
        if x.device.type not in ("cuda", "cpu"):
            raise ValueError(f"backend='cuda' runs CUDA (or CPU) tensors; {name} is on {x.device}")
    if backend in ("triton", "cuda") and x.dtype not in dtypes:  # what the kernels of both backends take
        raise ValueError(f"backend={backend!r} supports {name} of dtype {', '.join(map(str, dtypes))}, got "
                         f"{x.dtype}; use backend='torch'")
    _last_backend[op] = backend
    return backend


def last_backend(op: str = "lif") -> str | None:
    """Name of the backend that ran the latest call of ``op`` ("triton" or "torch"), None before any call."""
    return _last_backend.get(op)
