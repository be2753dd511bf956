"""Schemas of snnkern's LIF ops and of the C++ extension's ops, declared once, here.

The compiled extension (``csrc/``) only registers implementations (``TORCH_LIBRARY_IMPL``) for the
``*_native`` ops declared below, so its signatures cannot drift from Python's: a mismatch fails at
load time.  Every op also gets a fake (meta) implementation here, so ``torch.compile`` and
``torch.export`` trace them without running a kernel.  The LIF option list comes from
``LifSpec`` (``SPEC_SCHEMA``); the Python-implemented ops ``pack_spikes`` / ``unpack_spikes`` /
``spike_linear`` / ``spike_grad_weight`` are ``torch.library.custom_op`` functions whose schema is
their typed signature, in their own files.
"""
from __future__ import annotations

import torch

from .lif.spec import SPEC_LEN, SPEC_SCHEMA, LifSpec, checkpoint_rows, packed_shape
from .spike_pack import packed_words

LIB = torch.library.Library("snnkern", "FRAGMENT")

_FWD_INPUTS = f"Tensor x, Tensor? v0, Tensor? beta, Tensor? threshold, {SPEC_SCHEMA}, bool save_for_backward"
_BWD_INPUTS = (f"Tensor? grad_spikes, Tensor? grad_v_last, Tensor? grad_v_seq, Tensor x, Tensor? v0, Tensor? beta, "
               f"Tensor? threshold, Tensor checkpoints, {SPEC_SCHEMA}, bool need_v0_grad, bool need_beta_grad, "
               f"bool need_threshold_grad")
_FOUR = "(Tensor, Tensor, Tensor, Tensor)"

# Outputs: fwd (spikes, v_last, v_seq, checkpoints); bwd (grad_x, grad_v0, grad_beta, grad_threshold).
LIB.define(f"lif_fwd({_FWD_INPUTS}, str backend) -> {_FOUR}")
LIB.define(f"lif_bwd({_BWD_INPUTS}, str backend) -> {_FOUR}")
# param_layout (the C++ ops): beta's (div, period), then threshold's. period 0: the tensor holds 1 value or 1 per
# neuron; period > 0: it holds `period` values and neuron n reads (n // div) % period (launch.broadcast_layout),
# so a per-feature / per-channel parameter is read in place instead of expanded to every neuron
_LAYOUT = "int[] param_layout=[1, 0, 1, 0]"
LIB.define(f"lif_fwd_native({_FWD_INPUTS}, {_LAYOUT}) -> {_FOUR}")
LIB.define(f"lif_bwd_native({_BWD_INPUTS}, {_LAYOUT}) -> {_FOUR}")
LIB.define("pack_spikes_native(Tensor s) -> Tensor")
LIB.define("unpack_spikes_native(Tensor p, int k, ScalarType dtype) -> Tensor")


def lif_fwd_fake(x, v0, beta, threshold, *args):
    """Outputs of snnkern::lif_fwd / lif_fwd_native; args: the LifSpec fields, save_for_backward[, backend]."""
    spec, save = LifSpec(*args[:SPEC_LEN]), args[SPEC_LEN]
    rows = checkpoint_rows(x.shape[0]) if save else 0
    spike_shape = packed_shape(x.shape) if spec.spike_dtype == torch.int32 else x.shape
    return (x.new_empty(spike_shape, dtype=spec.spike_dtype), x.new_empty(x.shape[1:], dtype=torch.float32),
            x.new_empty(x.shape if spec.return_membrane else (0,), dtype=torch.float32),
            x.new_empty((rows, *x.shape[1:]), dtype=torch.float32))


def lif_fwd_native_fake(x, v0, beta, threshold, *args):
    """As lif_fwd_fake; the C++ op packs spikes only where every word holds neurons of one row."""
    if LifSpec(*args[:SPEC_LEN]).spike_dtype == torch.int32 and (x.dim() < 2 or x.shape[-1] % 32):
        raise RuntimeError(f"snnkern: lif_fwd_native packs spikes only when the last dim is a multiple of 32, "
                           f"got {tuple(x.shape)}")
    return lif_fwd_fake(x, v0, beta, threshold, *args)


def lif_bwd_fake(grad_spikes, grad_v_last, grad_v_seq, x, v0, beta, threshold, checkpoints, *args):
    need_v0, need_beta, need_thr = args[SPEC_LEN:SPEC_LEN + 3]
    per_neuron = lambda need: x.new_empty(x.shape[1:] if need else (0,), dtype=torch.float32)  # noqa: E731
    return x.new_empty(x.shape), per_neuron(need_v0), per_neuron(need_beta), per_neuron(need_thr)


for _name, _fake in (("lif_fwd", lif_fwd_fake), ("lif_bwd", lif_bwd_fake), ("lif_fwd_native", lif_fwd_native_fake),
                     ("lif_bwd_native", lif_bwd_fake)):
    torch.library.register_fake(f"snnkern::{_name}", _fake, lib=LIB)


@torch.library.register_fake("snnkern::pack_spikes_native", lib=LIB)
def _pack_native_fake(s):
    return s.new_empty((*s.shape[:-1], packed_words(s.shape[-1])), dtype=torch.int32)


@torch.library.register_fake("snnkern::unpack_spikes_native", lib=LIB)
def _unpack_native_fake(p, k, dtype):
    return p.new_empty((*p.shape[:-1], k), dtype=dtype)
