"""Values derived from a tensor, computed once and kept until the tensor changes.

A layer's weight or decay rarely changes between calls, but what the kernels need from it (W.T, the
bf16 parts of an fp32 weight, a clamped or sigmoid-derived decay, the non-finite poison) costs device
work, host time and, for a value check, a sync when derived per call.  The store is a weak dictionary
keyed on the tensor object: the derived value goes when the tensor goes, and a pickled module does not
carry it.
"""
from __future__ import annotations

import torch
from torch.utils.weak import WeakIdKeyDictionary

__all__ = ["WeakIdKeyDictionary", "per_version", "version_key"]


def version_key(tensor: torch.Tensor) -> tuple:
    """What a value derived from ``tensor`` was made from: storage, in-place version, shape, dtype and device
    (a detached view shares data and version, so it has its base's key). A tensor made under
    ``torch.inference_mode`` has no version counter: its key is its storage alone (``per_version`` does not
    keep values derived from one)."""
    version = None if tensor.is_inference() else tensor._version
    return (tensor.data_ptr(), version, tuple(tensor.shape), tensor.dtype, tensor.device)


def per_version(store: WeakIdKeyDictionary, tensor: torch.Tensor, make, *, parameters_only: bool = True):
    """``make(tensor.detach())``, kept in ``store`` beside the tensor that owns ``tensor`` (itself, or the base
    of a view made per call such as SpikeConv2d's reshape) until it changes (its version, storage or layout).
    ``parameters_only``: only an ``nn.Parameter``'s is kept (a plain tensor may be a per-call temporary).
    The result is never part of an autograd graph: callers that need a gradient derive per call. Nothing is
    kept for an inference tensor (no version counter tells when it changes)."""
    holder = tensor if tensor._base is None else tensor._base
    if ((parameters_only and not isinstance(holder, torch.nn.Parameter)) or torch.compiler.is_compiling()
            or tensor.is_inference()):
        with torch.no_grad():
            return make(tensor.detach())
    key = (*version_key(tensor), tensor.stride())
    cached = store.get(holder)
    if cached is None or cached[0] != key:
        # a normal tensor even when first made inside torch.inference_mode: the kept value may meet autograd
        # later (saved for backward by a training step), which an inference tensor cannot
        with torch.no_grad(), torch.inference_mode(False):
            cached = (key, make(tensor.detach()))
        store[holder] = cached
    return cached[1]
