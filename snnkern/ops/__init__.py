"""Registered torch ops (namespace ``snnkern``), their Triton kernels, launchers and references."""
from . import lif, spike_linear, spike_pack, surrogate  # noqa: F401  (importing registers the ops)
from ._triton import HAS_TRITON

__all__ = ["lif", "spike_linear", "spike_pack", "surrogate", "HAS_TRITON"]
