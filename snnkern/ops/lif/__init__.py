"""Multi-step LIF / IF neuron, one file per concern:

- ``spec.py``: ``LifSpec``, the static options of a call, declared once (schemas derive from it);
- ``kernels.py``: the fused Triton forward and backward kernels;
- ``launch.py``: their launchers and the C++/CUDA extension's, one table per direction;
- ``op.py``: the eager autograd Function and the registered ops ``snnkern::lif_fwd`` / ``lif_bwd``;
- ``reference.py``: the plain-PyTorch reference (the oracle, and the CPU path).

See ``snnkern.functional.lif`` for the equations.
"""
from .launch import BACKWARD, FORWARD, native_backward, native_forward, triton_backward, triton_forward
from .op import LifFunction, lif_apply
from .reference import lif_reference
from .spec import MAX_CHUNK, RESET_CODES, SPEC_LEN, LifSpec, checkpoint_rows, chunk_size, packed_shape

__all__ = ["BACKWARD", "FORWARD", "LifFunction", "LifSpec", "MAX_CHUNK", "RESET_CODES", "SPEC_LEN", "checkpoint_rows",
           "chunk_size", "lif_apply", "lif_reference", "native_backward", "native_forward", "packed_shape",
           "triton_backward", "triton_forward"]
