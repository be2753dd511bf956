"""The static options of one LIF/IF call, declared once.

``LifSpec`` is resolved once per distinct option set (``snnkern.functional`` caches it) and then
travels whole: launchers read its fields by name, and the registered ops' schemas are generated
from its fields (``SPEC_SCHEMA``), so the option list is written here and nowhere else.
"""
import typing
from typing import NamedTuple

import torch

from ..spike_pack import packed_words

RESET_CODES = {"none": 0, "subtract": 1, "hard": 2}
# Backward: CHUNK membranes per neuron live in registers (see kernels.py); longer sequences are
# recomputed from one fp32 checkpoint of the state per CHUNK steps.
MAX_CHUNK = 16


class LifSpec(NamedTuple):
    """Everything of a LIF call that is not a tensor: the neuron model and the output format."""

    delayed: bool  # True: snnTorch (reset from the previous membrane, '>' spikes, pre-reset state out)
    reset: int  # RESET_CODES
    v_reset: float  # hard-reset target, also the resting potential the leak decays to
    v_init: float  # state used when v0 is None
    decay_input: bool  # scale the input by (1 - beta) (SpikingJelly decay_input=True)
    detach_reset: bool  # no gradient through the reset term
    surrogate: int  # surrogate code, see ops/surrogate.py
    alpha: float  # surrogate parameter
    beta_value: float  # decay when no beta tensor is given
    threshold_value: float  # threshold when no threshold tensor is given
    spike_dtype: torch.dtype  # int32: bit-packed along the last dim (the pack_spikes layout)
    return_membrane: bool  # also output the state after every step


_SCHEMA_TYPES = {bool: "bool", int: "int", float: "float", torch.dtype: "ScalarType"}
# "bool delayed, int reset, ..." for torch.library schemas, in LifSpec's field order
SPEC_SCHEMA = ", ".join(f"{_SCHEMA_TYPES[t]} {name}" for name, t in typing.get_type_hints(LifSpec).items())
SPEC_LEN = len(LifSpec._fields)

# chunk length per T (a table: triton.next_power_of_2 costs microseconds on the call path)
_CHUNKS = [min(MAX_CHUNK, 1 << max(t - 1, 0).bit_length()) for t in range(MAX_CHUNK + 1)]


def chunk_size(T: int) -> int:
    """Steps recomputed together in the backward: the power of two >= T, at most MAX_CHUNK."""
    return _CHUNKS[T] if T <= MAX_CHUNK else MAX_CHUNK


def checkpoint_rows(T):
    """Rows of the checkpoint buffer: chunks after the first (works on SymInts too)."""
    return (T - 1) // MAX_CHUNK


def packed_shape(shape) -> tuple:
    """Shape of spikes of ``shape`` bit-packed along the last dim (spike_dtype=torch.int32)."""
    return (*shape[:-1], packed_words(shape[-1]))
