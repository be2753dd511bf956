"""snnkern: fused GPU kernels for spiking neural networks in PyTorch.

Importing snnkern registers its ops (namespace ``torch.ops.snnkern``) and never initializes CUDA.
"""
from . import convert, energy, functional, nn, ops
from ._dispatch import BACKENDS, last_backend
from ._extension import cuda_extension_available, extension_status
from ._per_version import forget as forget_derived
from .convert import SwapReport, swap
from .functional_spikes import pack_spikes, spike_linear, unpack_spikes
from .ops._triton import HAS_TRITON

__version__ = "0.1.0"

__all__ = ["pack_spikes", "unpack_spikes", "spike_linear", "cuda_extension_available", "extension_status", "functional", "nn", "energy", "ops", "convert", "swap", "SwapReport", "last_backend", "BACKENDS", "HAS_TRITON", "forget_derived",
           "__version__"]
