"""snnkern: fused GPU kernels for spiking neural networks in PyTorch.

Importing snnkern registers its ops (namespace ``torch.ops.snnkern``) and never initializes CUDA.
"""
from . import functional, ops
from ._dispatch import BACKENDS, last_backend
from .ops._triton import HAS_TRITON

__version__ = "0.1.0"

__all__ = ["functional", "ops", "last_backend", "BACKENDS", "HAS_TRITON", "__version__"]
