"""LIF/IF as autograd-aware calls: a plain ``torch.autograd.Function`` for eager mode, and the
registered ops ``snnkern::lif_fwd`` / ``lif_bwd`` (schemas in ``ops/schemas.py``) for
``torch.compile`` and export.  Both run the same launchers and the same gradient code.

Why two paths: a registered custom op pays for schema parsing and argument normalisation on every
call (hundreds of microseconds with ~20 arguments on a busy CPU), more than the kernels of most SNN
layers take on a GPU.  An ``autograd.Function`` holding one ``LifSpec`` costs a few microseconds.
"""
from __future__ import annotations

import torch

from .. import schemas
from .launch import BACKWARD, FORWARD
from .spec import SPEC_LEN, LifSpec


def _forward_impl(x, v0, beta, threshold, *args):
    spec, save, backend = LifSpec(*args[:SPEC_LEN]), args[SPEC_LEN], args[SPEC_LEN + 1]
    spikes, v_last, v_seq, ckpt = FORWARD[backend](x, v0, beta, threshold, spec, save)
    # an op returns tensors, never None, and no two outputs alias: fresh empty ones
    if v_seq is None:
        v_seq = x.new_empty((0,), dtype=torch.float32)
    if ckpt is None:
        ckpt = x.new_empty((0, *x.shape[1:]), dtype=torch.float32)
    return spikes, v_last, v_seq, ckpt


def _backward_impl(grad_spikes, grad_v_last, grad_v_seq, x, v0, beta, threshold, checkpoints, *args):
    spec, need, backend = LifSpec(*args[:SPEC_LEN]), args[SPEC_LEN:SPEC_LEN + 3], args[SPEC_LEN + 3]
    grads = BACKWARD[backend](grad_spikes, grad_v_last, grad_v_seq, x, v0, beta, threshold,
                              checkpoints if checkpoints.numel() else None, spec, *need)
    return tuple(x.new_empty((0,), dtype=torch.float32) if g is None else g for g in grads)


torch.library.impl("snnkern::lif_fwd", "default", _forward_impl, lib=schemas.LIB)
torch.library.impl("snnkern::lif_bwd", "default", _backward_impl, lib=schemas.LIB)


def input_grads(saved, needs_input_grad, grad_spikes, grad_v_last, grad_v_seq, run_backward):
    """(grad_x, grad_v0, grad_beta, grad_threshold) from the saved (x, v0, beta, threshold, checkpoints);
    ``run_backward(grad_spikes, grad_v_last, grad_v_seq, *saved, need_v0, need_beta, need_thr)``
    launches the backward kernel."""
    x, v0, beta, threshold, _ckpt = saved
    need_x, need_v0, need_beta, need_thr = (bool(n) for n in needs_input_grad[:4])
    if grad_v_seq is not None and grad_v_seq.numel() == 0:
        grad_v_seq = None  # return_membrane=False: the empty placeholder of the op carries no gradient
    grad_x, grad_v0, grad_beta, grad_thr = run_backward(grad_spikes, grad_v_last, grad_v_seq, *saved,
                                                        need_v0, need_beta, need_thr)
    return (grad_x if need_x else None,
            grad_v0.to(v0.dtype) if need_v0 else None,
            grad_beta.sum_to_size(beta.shape).to(beta.dtype) if need_beta else None,
            grad_thr.sum_to_size(threshold.shape).to(threshold.dtype) if need_thr else None)


class LifFunction(torch.autograd.Function):
    """Eager autograd path: forward and backward straight to the launchers of ``backend``.

    A ctx-style forward on purpose: with a separate ``setup_context``, ``Function.apply`` binds the
    arguments through ``inspect.signature`` on every call. torch.func transforms are refused before
    this is reached (``lif_apply``)."""

    @staticmethod
    def forward(ctx, x, v0, beta, threshold, spec: LifSpec, backend: str):
        # the kernels read x contiguous: copy a strided x once and keep that copy for the backward
        x = x.contiguous()
        out = FORWARD[backend](x, v0, beta, threshold, spec, True)
        ctx.spec, ctx.backend = spec, backend
        ctx.save_for_backward(x, v0, beta, threshold, out[3])
        if out[3] is not None:
            ctx.mark_non_differentiable(out[3])
        ctx.set_materialize_grads(False)  # unused outputs give None: the kernel then skips reading them
        return out

    @staticmethod
    def backward(ctx, grad_spikes, grad_v_last, grad_v_seq, _grad_ckpt):
        spec, launch = ctx.spec, BACKWARD[ctx.backend]

        def run(gs, gv, gvs, x, v0, beta, thr, ckpt, *need):
            return launch(gs, gv, gvs, x, v0, beta, thr, ckpt, spec, *need)

        return input_grads(ctx.saved_tensors, ctx.needs_input_grad, grad_spikes, grad_v_last, grad_v_seq,
                           run) + (None, None)


def _op_setup_context(ctx, inputs, output):
    ctx.spec, ctx.backend = LifSpec(*inputs[4:4 + SPEC_LEN]), inputs[-1]
    ctx.save_for_backward(*inputs[:4], output[3])
    ctx.mark_non_differentiable(output[3])
    ctx.set_materialize_grads(False)


def _op_backward(ctx, grad_spikes, grad_v_last, grad_v_seq, _grad_ckpt):
    spec, backend = ctx.spec, ctx.backend

    def run(gs, gv, gvs, x, v0, beta, thr, ckpt, *need):
        # through the registered op, so that compiled backward graphs see an op, not a launch
        return torch.ops.snnkern.lif_bwd(gs, gv, gvs, x, v0, beta, thr, ckpt, *spec, *need, backend)

    grads = input_grads(ctx.saved_tensors, ctx.needs_input_grad, grad_spikes, grad_v_last, grad_v_seq, run)
    return grads + (None,) * (SPEC_LEN + 2)


torch.library.register_autograd("snnkern::lif_fwd", _op_backward, setup_context=_op_setup_context, lib=schemas.LIB)


def lif_apply(x, v0, beta, threshold, spec: LifSpec, backend: str, needs_grad: bool):
    """Run the fused LIF of a resolved kernel ``backend`` ("triton" or "cuda"): through the registered
    op while torch.compile traces, else the autograd Function (or the bare launcher when no gradient
    is needed). Returns (spikes, v_last, v_seq, checkpoints)."""
    if torch.compiler.is_compiling():
        return torch.ops.snnkern.lif_fwd(x, v0, beta, threshold, *spec, needs_grad, backend)
    if needs_grad:
        return LifFunction.apply(x, v0, beta, threshold, spec, backend)
    return FORWARD[backend](x, v0, beta, threshold, spec, False)
