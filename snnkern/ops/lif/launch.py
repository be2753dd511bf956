"""Launchers of the LIF/IF kernels: Triton (``kernels.py``) and the C++/CUDA extension (``csrc/``).

Both backends take the same arguments and return the same outputs; ``FORWARD`` / ``BACKWARD`` map a
resolved backend name (``snnkern._dispatch.select_backend`` decides it, nowhere else) to its launcher.
Launchers run on every call of a layer: they allocate the outputs and launch, nothing else costly.
Outputs a caller did not ask for are None (the registered ops turn them into empty tensors).
"""
from __future__ import annotations

from typing import Optional

import torch

from . import kernels as K
from .._triton import on_device
from .spec import LifSpec, checkpoint_rows, chunk_size, packed_shape


def _native_param(p: Optional[torch.Tensor], shape, N: int) -> Optional[torch.Tensor]:
    """A beta/threshold tensor as the kernels read it: one fp32 value, or a contiguous fp32 [N] vector
    (broadcast over the neurons); None stays None."""
    if p is None:
        return None
    if p.numel() == 1:
        return p.reshape(1) if p.dtype == torch.float32 else p.to(torch.float32).reshape(1)
    return p.to(torch.float32).expand(shape).reshape(N).contiguous()


def broadcast_layout(p_shape, shape) -> Optional[tuple]:
    """(div, period) such that neuron n of the flattened ``shape`` takes element ``(n // div) % period`` of a
    tensor of ``p_shape`` (broadcastable to ``shape``) flattened, when its non-broadcast dims are one run of
    the neuron dims (per feature ``[C]`` of ``[B, C]``, per channel ``[C, 1, 1]`` of ``[B, C, H, W]``, ...);
    None otherwise. Dims of size 1 in ``shape`` are ignored: they change no index."""
    p_shape = (1,) * (len(shape) - len(p_shape)) + tuple(p_shape)
    kept = [i for i, (a, b) in enumerate(zip(p_shape, shape)) if b != 1]
    own = [i for i in kept if p_shape[i] != 1]  # where p has the neuron dim's own size
    if not own or own != kept[kept.index(own[0]):kept.index(own[0]) + len(own)]:
        return None
    div = period = 1
    for i in kept:
        if i > own[-1]:
            div *= shape[i]
        elif i in own:
            period *= shape[i]
    return div, period


def _param_arg(p: Optional[torch.Tensor], value: float, shape, N: int, dummy: torch.Tensor):
    """(pointer tensor, float, div, period, mode) for the Triton kernels' _load_param: mode 0 reads ``value``,
    1 one value, 2 one per neuron, 3 a per-feature/per-channel tensor in place (``broadcast_layout``)."""
    if p is None:
        return dummy, value, 1, 1, 0
    if p.numel() == 1:
        return _native_param(p, shape, N), 0.0, 1, 1, 1
    layout = broadcast_layout(p.shape, shape) if p.numel() < N else None
    if layout is None:  # per neuron already, or a broadcast the kernel cannot index: expanded to every neuron
        return _native_param(p, shape, N), 0.0, 1, 1, 2
    return p.to(torch.float32).reshape(-1).contiguous(), 0.0, *layout, 3


def _f32(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    if t is None:
        return None
    return t.contiguous() if t.dtype == torch.float32 else t.to(torch.float32).contiguous()


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def forward_schedule(element_size: int, writes_state: bool, N: int) -> tuple[int, int]:
    """(VEC, num_warps) of the Triton forward for N neurons of ``element_size``-byte inputs: 8 neurons a thread
    for 16-bit inference (``writes_state``: checkpoints or a membrane sequence are written) when 8 | N, else
    4 (see kernels.FWD_VEC_16BIT_INFERENCE); VEC is the widest power of two dividing N up to that."""
    widest, warps = K.FWD_VEC, K.FWD_WARPS
    if element_size == 2 and not writes_state and N % K.FWD_VEC_16BIT_INFERENCE == 0:
        widest, warps = K.FWD_VEC_16BIT_INFERENCE, K.FWD_WARPS_16BIT_INFERENCE
    return (widest if N % widest == 0 else N & -N), warps


def triton_forward(x, v0, beta, threshold, spec: LifSpec, save_ckpt: bool):
    """The fused forward in one Triton launch. Returns (spikes [T,*] (packed [T,...,W] for int32),
    v_last [*] fp32, v_seq [T,*] fp32 or None unless spec.return_membrane, checkpoints [rows,*] fp32 or
    None when there are none). Allocations are the costliest host work of a call: only what is returned."""
    packed = spec.spike_dtype == torch.int32
    if packed and x.shape[-1] % 32:  # words straddling rows cannot be written per neuron: pack after
        spikes, v_last, v_seq, ckpt = triton_forward(x, v0, beta, threshold, spec._replace(spike_dtype=torch.uint8),
                                                     save_ckpt)
        return torch.ops.snnkern.pack_spikes(spikes), v_last, v_seq, ckpt
    x = x.contiguous()
    T, shape = x.shape[0], x.shape[1:]
    N = shape.numel()
    dev = x.device
    if packed:
        spikes = torch.empty(*packed_shape(x.shape), dtype=torch.int32, device=dev)
    else:  # empty_like: the cheapest allocation call
        spikes = torch.empty_like(x) if spec.spike_dtype == x.dtype else torch.empty_like(x, dtype=spec.spike_dtype)
    # sizes unpacked: torch.empty parses ints about twice as fast as one torch.Size
    v_last = torch.empty(*shape, dtype=torch.float32, device=dev)
    v_seq = torch.empty_like(x, dtype=torch.float32) if spec.return_membrane else None
    rows = checkpoint_rows(T) if save_ckpt else 0
    ckpt = torch.empty(rows, *shape, dtype=torch.float32, device=dev) if rows else None
    if N == 0:
        return spikes, v_last, v_seq, ckpt
    beta_p, beta_f, beta_div, beta_period, beta_mode = _param_arg(beta, spec.beta_value, shape, N, v_last)
    thr_p, thr_f, thr_div, thr_period, thr_mode = _param_arg(threshold, spec.threshold_value, shape, N, v_last)
    v0_n = _f32(v0)
    vec, warps = forward_schedule(x.element_size(), rows > 0 or v_seq is not None, N)
    with on_device(x):
        K.lif_fwd_kernel[(_cdiv(N, K.FWD_BLOCK),)](
            x, v_last if v0_n is None else v0_n, beta_p, beta_f, beta_div, beta_period, thr_p, thr_f, thr_div,
            thr_period, spikes, v_last,
            v_last if v_seq is None else v_seq, v_last if ckpt is None else ckpt,
            T, N // vec, spec.v_init, spec.v_reset,
            CHUNK=chunk_size(T), DELAYED=spec.delayed, RESET=spec.reset, DECAY_INPUT=spec.decay_input,
            HAS_V0=v0_n is not None, BETA_MODE=beta_mode, THR_MODE=thr_mode, SAVE_CKPT=rows > 0,
            STORE_V=spec.return_membrane, PACK=packed, BLOCK=K.FWD_BLOCK, VEC=vec,
            num_warps=warps, enable_fp_fusion=False,  # no FMA contraction: bitwise equal to the reference
        )
    return spikes, v_last, v_seq, ckpt


def triton_backward(grad_spikes, grad_v_last, grad_v_seq, x, v0, beta, threshold, ckpt, spec: LifSpec,
                    need_v0_grad: bool, need_beta_grad: bool, need_thr_grad: bool):
    """The fused backward in one Triton launch. Returns (grad_x, grad_v0, grad_beta, grad_threshold); the
    last three are fp32 per neuron (shape x.shape[1:]), or None when not asked for."""
    x = x.contiguous()
    T, shape = x.shape[0], x.shape[1:]
    N = shape.numel()
    rows = checkpoint_rows(T)
    if rows and (ckpt is None or ckpt.shape[0] != rows):
        raise RuntimeError("snnkern::lif_bwd: the forward was run with save_for_backward=False")
    grad_x = torch.empty_like(x)
    per_neuron = lambda need: torch.empty(*shape, dtype=torch.float32, device=x.device) if need else None  # noqa: E731
    grad_v0, grad_beta, grad_thr = per_neuron(need_v0_grad), per_neuron(need_beta_grad), per_neuron(need_thr_grad)
    if N == 0:
        return grad_x, grad_v0, grad_beta, grad_thr
    dummy = grad_x
    beta_p, beta_f, beta_div, beta_period, beta_mode = _param_arg(beta, spec.beta_value, shape, N, dummy)
    thr_p, thr_f, thr_div, thr_period, thr_mode = _param_arg(threshold, spec.threshold_value, shape, N, dummy)
    v0_n, gv, gvs = _f32(v0), _f32(grad_v_last), _f32(grad_v_seq)
    gs = grad_spikes.contiguous() if grad_spikes is not None else None
    or_dummy = lambda t: dummy if t is None else t  # noqa: E731  (the kernel never reads an absent input)
    with on_device(x):
        K.lif_bwd_kernel[(_cdiv(N, K.BWD_BLOCK),)](
            x, or_dummy(v0_n), beta_p, beta_f, beta_div, beta_period, thr_p, thr_f, thr_div, thr_period,
            or_dummy(ckpt), or_dummy(gs), or_dummy(gv), or_dummy(gvs),
            grad_x, or_dummy(grad_v0), or_dummy(grad_beta), or_dummy(grad_thr),
            T, N, spec.v_init, spec.v_reset, spec.alpha,
            CHUNK=chunk_size(T), DELAYED=spec.delayed, RESET=spec.reset, DECAY_INPUT=spec.decay_input,
            DETACH=spec.detach_reset, SURROGATE=spec.surrogate,
            HAS_V0=v0_n is not None, BETA_MODE=beta_mode, THR_MODE=thr_mode, HAS_GS=gs is not None,
            HAS_GV=gv is not None, HAS_GVS=gvs is not None, STORE_GV0=need_v0_grad,
            BETA_GRAD=need_beta_grad, THR_GRAD=need_thr_grad, BLOCK=K.BWD_BLOCK,
            num_warps=K.BWD_WARPS, enable_fp_fusion=False,
        )
    return grad_x, grad_v0, grad_beta, grad_thr


def native_forward(x, v0, beta, threshold, spec: LifSpec, save_ckpt: bool):
    """The C++/CUDA extension's forward (its CPU build on CPU tensors); same outputs as triton_forward.
    Its kernels write packed spikes' words themselves where each word holds neurons of one row (32 | the last
    dim); elsewhere they write one byte a spike, packed after."""
    if spec.spike_dtype == torch.int32 and x.shape[-1] % 32:
        spikes, v_last, v_seq, ckpt = native_forward(x, v0, beta, threshold, spec._replace(spike_dtype=torch.uint8),
                                                     save_ckpt)
        return torch.ops.snnkern.pack_spikes_native(spikes), v_last, v_seq, ckpt
    if spec.spike_dtype not in (x.dtype, torch.bool, torch.uint8, torch.int32):
        # the C++ kernels write spikes in x's dtype, as bytes or packed; 0/1 convert exactly to any other float
        spikes, v_last, v_seq, ckpt = native_forward(x, v0, beta, threshold, spec._replace(spike_dtype=x.dtype),
                                                     save_ckpt)
        return spikes.to(spec.spike_dtype), v_last, v_seq, ckpt
    beta, threshold, layout = _native_params(beta, threshold, x.shape[1:])
    return torch.ops.snnkern.lif_fwd_native(x, v0, beta, threshold, *spec, save_ckpt, layout)


def _native_params(beta, threshold, shape):
    """beta and threshold as the C++ ops read them, and their param_layout (schemas.py): a per-feature /
    per-channel tensor in place with its (div, period), as the Triton kernels' mode 3; otherwise one value or
    one per neuron (period 0)."""
    N, out, layout = shape.numel(), [], []
    for p in (beta, threshold):
        t, _, div, period, mode = _param_arg(p, 0.0, shape, N, None)
        out.append(t)
        layout += [div, period] if mode == 3 else [1, 0]
    return out[0], out[1], layout


def native_backward(grad_spikes, grad_v_last, grad_v_seq, x, v0, beta, threshold, ckpt, spec: LifSpec,
                    need_v0_grad: bool, need_beta_grad: bool, need_thr_grad: bool):
    shape = x.shape[1:]
    if ckpt is None:  # the forward saved no checkpoints (T <= one chunk)
        ckpt = x.new_empty((0, *shape), dtype=torch.float32)
    beta, threshold, layout = _native_params(beta, threshold, shape)
    return torch.ops.snnkern.lif_bwd_native(grad_spikes, grad_v_last, grad_v_seq, x, v0, beta, threshold, ckpt, *spec,
                                            need_v0_grad, need_beta_grad, need_thr_grad, layout)


FORWARD = {"triton": triton_forward, "cuda": native_forward}
BACKWARD = {"triton": triton_backward, "cuda": native_backward}
