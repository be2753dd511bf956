"""Values derived from a tensor, computed once and kept until the tensor changes.

What the spike kernels need from a layer's weight (W.T, the bf16 parts of an fp32 weight, the
non-finite poison) costs a pass over the weight when derived per call. It is kept beside the weight in a
weak dictionary keyed on the tensor object (it goes when the tensor goes, and a pickled module does not
carry it), until the weight changes. "Changes" is read from three things, because no one of them sees
every write: the tensor's in-place version counter (in-place ops, ``torch.no_grad()`` updates,
``load_state_dict``); its storage (``p.data = other``); and a count of ``torch.optim`` optimizer steps
(fused optimizers write parameters without counting versions). A write through ``p.data`` in place
(``p.data.add_(...)``) or through memory shared with NumPy is seen by none of them: such a weight must be
passed as a new tensor, or what was kept for it dropped with ``forget(p)`` (``snnkern.forget_derived``).
"""
from __future__ import annotations

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.utils.weak import WeakIdKeyDictionary

__all__ = ["forget", "new_store", "per_version", "version_key"]

_STORES: list[WeakIdKeyDictionary] = []
_optimizer_steps = 0


def _count_optimizer_step(optimizer, args, kwargs) -> None:
    global _optimizer_steps
    _optimizer_steps += 1


# every torch.optim optimizer's step() runs the global post hooks, fused ones included
register_optimizer_step_post_hook(_count_optimizer_step)


def new_store() -> WeakIdKeyDictionary:
    """A store for ``per_version`` (``forget`` clears a tensor from all of them)."""
    store = WeakIdKeyDictionary()
    _STORES.append(store)
    return store


def forget(tensor: torch.Tensor) -> None:
    """Drop every value kept for ``tensor`` (after writing it in a way no version counter sees)."""
    holder = tensor if tensor._base is None else tensor._base
    for store in _STORES:
        store.pop(holder, None)


def version_key(tensor: torch.Tensor) -> tuple:
    """What a value derived from ``tensor`` was made from: storage, in-place version, optimizer steps so far,
    shape, dtype and device (a detached view shares data and version, so it has its base's key). A tensor
    made under ``torch.inference_mode`` has no version counter: its key is its storage alone
    (``per_version`` does not keep values derived from one)."""
    version = None if tensor.is_inference() else tensor._version
    return (tensor.data_ptr(), version, _optimizer_steps, tuple(tensor.shape), tensor.dtype, tensor.device)


def per_version(store: WeakIdKeyDictionary, tensor: torch.Tensor, make, *, parameters_only: bool = True):
    """``make(tensor.detach())``, kept in ``store`` (from ``new_store``) beside the tensor that owns
    ``tensor`` (itself, or the base of a view made per call such as SpikeConv2d's reshape) until it changes
    (see the module docstring). ``parameters_only``: only an ``nn.Parameter``'s is kept (a plain tensor may
    be a per-call temporary). The result is never part of an autograd graph: callers that need a gradient
    derive per call. Nothing is kept for an inference tensor (no version counter tells when it changes)."""
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
            # the source's storage is held too: while it is, no new storage can take its address (after
            # `p.data = other`, a reused address with an unchanged version would look like the same weight)
            cached = (key, make(tensor.detach()), tensor.untyped_storage())
        store[holder] = cached
    return cached[1]
