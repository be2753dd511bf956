"""Registered torch ops (namespace ``snnkern``), their Triton kernels, launchers and references.

Importing this package declares every op (``schemas.py``) and loads the optional compiled extension
(``snnkern._C``) right away, so that no later call, compiled or not, has to import anything.
"""
from .. import _extension
from . import lif, schemas, spike_linear, spike_pack, surrogate  # noqa: F401  (importing registers the ops)
from ._triton import HAS_TRITON

_extension.cuda_extension_available()  # registers the *_native kernels when the extension is built

__all__ = ["lif", "spike_linear", "spike_pack", "surrogate", "HAS_TRITON"]
