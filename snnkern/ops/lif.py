"""Multi-step LIF / IF neuron: fused Triton kernels, launchers, registered ops, and the reference.

One neuron model covers both conventions users arrive with (see ``snnkern.functional.lif`` for
the equations).  Data layout: ``x`` is ``[T, N]`` after flattening the trailing dims; every
program owns ``BLOCK`` neurons and walks all ``T`` steps, so the membrane never leaves registers.

Bytes (fp32, autograd path):
  forward  reads x, writes spikes (+ the final state, + one fp32 state per CHUNK steps);
  backward reads x, grad_spikes, writes grad_x.
Nothing per element is written for backward: the backward kernel recomputes the membrane from
``x`` one chunk of ``CHUNK`` steps at a time, holding the chunk's membranes in registers, then
walks the chunk in reverse.  What autograd keeps alive is therefore ``x`` itself (4 B/element in
fp32, 2 B in bf16/fp16) plus ``ceil(T/CHUNK) - 1`` fp32 checkpoints of the state per neuron,
instead of a pre-reset membrane sequence.  The no-grad path writes only spikes and the final state.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from ._triton import tl, triton
from .spike_pack import packed_words

from .surrogate import SpikeFn, _surrogate_grad

RESET_CODES = {"none": 0, "subtract": 1, "hard": 2}
# Backward: CHUNK membranes per neuron live in registers. 16 steps x 1 neuron per thread compiles to
# ~90 registers on sm_90 with no spills (python_tests/kernel_compile_check.py guards this); 32 steps
# or 2 neurons per thread spill. Launch sizes are first guesses until a GPU run tunes them.
MAX_CHUNK = 16
FWD_BLOCK, FWD_WARPS = 512, 4  # 4 neurons per thread: 16-byte fp32 accesses
BWD_BLOCK, BWD_WARPS = 128, 4


class LifSpec(NamedTuple):
    """Static options of one LIF call (everything but tensors and beta/threshold values)."""

    delayed: bool  # True: snnTorch (reset from the previous membrane, '>' spikes, pre-reset state out)
    reset: int  # RESET_CODES
    v_reset: float  # hard-reset target, also the resting potential the leak decays to
    v_init: float  # state used when v0 is None
    decay_input: bool  # scale the input by (1 - beta) (SpikingJelly decay_input=True)
    detach_reset: bool  # no gradient through the reset term
    surrogate: int  # surrogate code, see ops/surrogate.py
    alpha: float  # surrogate parameter


def chunk_size(T: int) -> int:
    return min(MAX_CHUNK, triton.next_power_of_2(T))


# ----------------------------------------------------------------------------------------------
# Triton kernels
# ----------------------------------------------------------------------------------------------


@triton.jit
def _charge(v, x, beta, one_minus_beta, leak, DECAY_INPUT: tl.constexpr, RESET: tl.constexpr):
    """h = beta*v + k*x (+ (1-beta)*v_reset for hard reset); k = 1-beta if decay_input else 1."""
    if DECAY_INPUT:
        h = beta * v + one_minus_beta * x
    else:
        h = beta * v + x
    if RESET == 2:
        h = h + leak
    return h


@triton.jit
def _state_after(h, thr, v_reset, DELAYED: tl.constexpr, RESET: tl.constexpr):
    """The state carried to the next step, from this step's pre-reset membrane h."""
    if DELAYED:
        state = h  # snnTorch carries the pre-reset membrane; the reset happens next step
    else:
        s = tl.where(h - thr >= 0, 1.0, 0.0)
        if RESET == 1:
            state = h - s * thr
        elif RESET == 2:
            state = (1.0 - s) * h + s * v_reset
        else:
            state = h
    return state


@triton.jit
def _step(state, x, beta, one_minus_beta, leak, thr, v_reset,
          DELAYED: tl.constexpr, RESET: tl.constexpr, DECAY_INPUT: tl.constexpr):
    """One time step. Returns (h, spike as fp32 0/1, new state).

    DELAYED (snnTorch): state is the pre-reset membrane U[t-1]; r = U[t-1] > thr resets now.
    otherwise (SpikingJelly): state is the post-reset membrane V[t-1]; the spike resets at once.
    """
    if DELAYED:
        r = tl.where(state - thr > 0, 1.0, 0.0)
        if RESET == 1:
            h = _charge(state, x, beta, one_minus_beta, leak, DECAY_INPUT, RESET) - r * thr
        elif RESET == 2:
            h = _charge((1.0 - r) * state + r * v_reset, x, beta, one_minus_beta, leak, DECAY_INPUT, RESET)
        else:
            h = _charge(state, x, beta, one_minus_beta, leak, DECAY_INPUT, RESET)
        s = tl.where(h - thr > 0, 1.0, 0.0)
    else:
        h = _charge(state, x, beta, one_minus_beta, leak, DECAY_INPUT, RESET)
        s = tl.where(h - thr >= 0, 1.0, 0.0)
    return h, s, _state_after(h, thr, v_reset, DELAYED, RESET)


@triton.jit
def _load_param(offs, mask, ptr, value, MODE: tl.constexpr, BLOCK: tl.constexpr):
    """MODE 0: the float ``value``; 1: one fp32 at ``ptr``; 2: fp32 per neuron at ``ptr``."""
    if MODE == 2:
        p = tl.load(ptr + offs, mask=mask, other=1.0)
    elif MODE == 1:
        p = tl.full([BLOCK], tl.load(ptr), tl.float32)
    else:
        p = tl.full([BLOCK], value, tl.float32)
    return p


@triton.jit
def _load_params(offs, mask, beta_ptr, beta_val, thr_ptr, thr_val, v_reset,
                 BETA_MODE: tl.constexpr, THR_MODE: tl.constexpr, BLOCK: tl.constexpr):
    beta = _load_param(offs, mask, beta_ptr, beta_val, BETA_MODE, BLOCK)
    thr = _load_param(offs, mask, thr_ptr, thr_val, THR_MODE, BLOCK)
    one_minus_beta = 1.0 - beta
    leak = one_minus_beta * v_reset
    return beta, one_minus_beta, leak, thr


@triton.jit
def _lif_fwd_kernel(
    x_ptr,  # [T, N] input current, fp32/bf16/fp16, contiguous
    v0_ptr,  # [N] fp32 initial state (read only if HAS_V0)
    beta_ptr, beta_val,  # decay: fp32 [N] or [1] at beta_ptr, or the float beta_val (see _load_param)
    thr_ptr, thr_val,  # threshold, likewise
    s_ptr,  # [T, N] spikes out, spike dtype; PACK: [T, N/32] int32 words (bit j of word w: neuron 32w+j)
    v_last_ptr,  # [N] fp32 final state out
    vs_ptr,  # [T, N] fp32 state after every step (written if STORE_V)
    ckpt_ptr,  # [ceil(T/CHUNK)-1, N] fp32 state at the start of chunks 1.. (written if SAVE_CKPT)
    T, N,  # time steps, neurons
    v_init, v_reset,  # initial state when no v0; hard-reset target / resting potential
    CHUNK: tl.constexpr, DELAYED: tl.constexpr, RESET: tl.constexpr, DECAY_INPUT: tl.constexpr,
    HAS_V0: tl.constexpr, BETA_MODE: tl.constexpr, THR_MODE: tl.constexpr,
    SAVE_CKPT: tl.constexpr, STORE_V: tl.constexpr, PACK: tl.constexpr, BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    beta, one_minus_beta, leak, thr = _load_params(offs, mask, beta_ptr, beta_val, thr_ptr, thr_val, v_reset,
                                                   BETA_MODE, THR_MODE, BLOCK)
    if HAS_V0:
        state = tl.load(v0_ptr + offs, mask=mask, other=0.0)
    else:
        state = tl.full([BLOCK], v_init, tl.float32)
    x_ptrs = x_ptr + offs  # pointers advance by N per step: 64-bit arithmetic, no t*N overflow
    if PACK:  # 32 neurons a word; N (a multiple of 32) neurons make N/32 words a step
        words_per_step = N // 32
        w_offs = tl.program_id(0).to(tl.int64) * (BLOCK // 32) + tl.arange(0, BLOCK // 32)
        s_ptrs = s_ptr + w_offs
    else:
        s_ptrs = s_ptr + offs
    vs_ptrs = vs_ptr + offs
    ckpt_ptrs = ckpt_ptr + offs
    for t in range(T):
        if SAVE_CKPT:
            if (t % CHUNK == 0) & (t > 0):
                tl.store(ckpt_ptrs, state, mask=mask)
                ckpt_ptrs += N
        x = tl.load(x_ptrs, mask=mask, other=0.0).to(tl.float32)
        h, s, state = _step(state, x, beta, one_minus_beta, leak, thr, v_reset, DELAYED, RESET, DECAY_INPUT)
        if PACK:  # distinct powers of two: their sum is the word (bit 31 lands on the sign bit)
            bits = tl.reshape(tl.where(mask, s, 0.0).to(tl.int32), [BLOCK // 32, 32])
            words = tl.sum(bits << tl.arange(0, 32)[None, :], axis=1)
            tl.store(s_ptrs, words, mask=w_offs < words_per_step)
            s_ptrs += words_per_step
        else:
            tl.store(s_ptrs, s.to(s_ptr.dtype.element_ty), mask=mask)
            s_ptrs += N
        if STORE_V:
            tl.store(vs_ptrs, state, mask=mask)
            vs_ptrs += N
        x_ptrs += N
    tl.store(v_last_ptr + offs, state, mask=mask)


@triton.jit
def _lif_bwd_kernel(
    x_ptr,  # [T, N] forward input (recomputation source)
    v0_ptr,  # [N] fp32 initial state (if HAS_V0)
    beta_ptr, beta_val, thr_ptr, thr_val,  # as in the forward kernel
    ckpt_ptr,  # [ceil(T/CHUNK)-1, N] fp32 checkpoints from the forward
    gs_ptr,  # [T, N] grad of spikes (read if HAS_GS)
    gv_last_ptr,  # [N] fp32 grad of the final state (read if HAS_GV)
    gvs_ptr,  # [T, N] fp32 grad of the state sequence (read if HAS_GVS)
    gx_ptr,  # [T, N] grad of x out, x dtype
    gv0_ptr,  # [N] fp32 grad of v0 out (if STORE_GV0)
    gbeta_ptr,  # [N] fp32 per-neuron grad of beta out (if BETA_GRAD)
    gthr_ptr,  # [N] fp32 per-neuron grad of threshold out (if THR_GRAD)
    T, N, v_init, v_reset, alpha,
    CHUNK: tl.constexpr, DELAYED: tl.constexpr, RESET: tl.constexpr, DECAY_INPUT: tl.constexpr,
    DETACH: tl.constexpr, SURROGATE: tl.constexpr,
    HAS_V0: tl.constexpr, BETA_MODE: tl.constexpr, THR_MODE: tl.constexpr,
    HAS_GS: tl.constexpr, HAS_GV: tl.constexpr, HAS_GVS: tl.constexpr, STORE_GV0: tl.constexpr,
    BETA_GRAD: tl.constexpr, THR_GRAD: tl.constexpr, BLOCK: tl.constexpr,
):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    beta, one_minus_beta, leak, thr = _load_params(offs, mask, beta_ptr, beta_val, thr_ptr, thr_val, v_reset,
                                                   BETA_MODE, THR_MODE, BLOCK)
    if HAS_GV:
        g_state = tl.load(gv_last_ptr + offs, mask=mask, other=0.0)
    else:
        g_state = tl.zeros([BLOCK], tl.float32)
    g_beta = tl.zeros([BLOCK], tl.float32)
    g_thr = tl.zeros([BLOCK], tl.float32)
    n_chunks = tl.cdiv(T, CHUNK)
    for cc in range(n_chunks):
        c = n_chunks - 1 - cc
        t0 = c * CHUNK
        if c > 0:
            state0 = tl.load(ckpt_ptr + (c - 1).to(tl.int64) * N + offs, mask=mask, other=0.0)
        elif HAS_V0:
            state0 = tl.load(v0_ptr + offs, mask=mask, other=0.0)
        else:
            state0 = tl.full([BLOCK], v_init, tl.float32)
        chunk_base = t0.to(tl.int64) * N + offs

        # Recompute the chunk forward; its membranes (and inputs) stay in registers.
        hs = ()
        xs = ()
        state = state0
        for i in tl.static_range(CHUNK):
            valid = t0 + i < T
            x = tl.load(x_ptr + chunk_base + i * N, mask=mask & valid, other=0.0).to(tl.float32)
            h, s, state = _step(state, x, beta, one_minus_beta, leak, thr, v_reset, DELAYED, RESET, DECAY_INPUT)
            hs = hs + (h,)
            if DECAY_INPUT and BETA_GRAD:  # only the beta gradient of decay_input needs x again
                xs = xs + (x,)

        # Walk the chunk backwards. g_state is dL/d(state after step t).
        for i in tl.static_range(CHUNK - 1, -1, -1):
            valid = t0 + i < T
            h = hs[i]
            if i == 0:
                prev = state0
            else:
                prev = _state_after(hs[i - 1], thr, v_reset, DELAYED, RESET)
            if HAS_GVS:  # the state after step t was also an output
                g_state += tl.load(gvs_ptr + chunk_base + i * N, mask=mask & valid, other=0.0)
            if HAS_GS:
                gs = tl.load(gs_ptr + chunk_base + i * N, mask=mask & valid, other=0.0).to(tl.float32)
            else:
                gs = tl.zeros([BLOCK], tl.float32)
            d = h - thr
            sg = _surrogate_grad(d, alpha, SURROGATE)
            if DELAYED:
                r = tl.where(prev - thr > 0, 1.0, 0.0)  # detached: no gradient through r
                gh = g_state + gs * sg
                dthr = -gs * sg
                if RESET == 1:
                    dthr = dthr - r * gh
                if RESET == 2:
                    dh_dprev = beta * (1.0 - r)
                    dh_dbeta = (1.0 - r) * prev + r * v_reset - v_reset
                else:
                    dh_dprev = beta
                    dh_dbeta = prev
            else:
                s = tl.where(d >= 0, 1.0, 0.0)
                if RESET == 1:
                    dv_ds = -thr
                    dv_dh = 1.0
                elif RESET == 2:
                    dv_ds = v_reset - h
                    dv_dh = 1.0 - s
                else:
                    dv_ds = 0.0
                    dv_dh = 1.0
                if DETACH:
                    g_spike = gs
                else:
                    g_spike = gs + g_state * dv_ds
                gh = g_spike * sg + g_state * dv_dh
                dthr = -g_spike * sg
                if RESET == 1:
                    dthr = dthr - g_state * s
                dh_dprev = beta
                if RESET == 2:
                    dh_dbeta = prev - v_reset
                else:
                    dh_dbeta = prev
            if DECAY_INPUT:
                if BETA_GRAD:
                    dh_dbeta = dh_dbeta - xs[i]
                gx = gh * one_minus_beta
            else:
                gx = gh
            tl.store(gx_ptr + chunk_base + i * N, gx.to(gx_ptr.dtype.element_ty), mask=mask & valid)
            if BETA_GRAD:
                g_beta += tl.where(valid, gh * dh_dbeta, 0.0)
            if THR_GRAD:
                g_thr += tl.where(valid, dthr, 0.0)
            g_state = tl.where(valid, gh * dh_dprev, g_state)
    if STORE_GV0:
        tl.store(gv0_ptr + offs, g_state, mask=mask)
    if BETA_GRAD:
        tl.store(gbeta_ptr + offs, g_beta, mask=mask)
    if THR_GRAD:
        tl.store(gthr_ptr + offs, g_thr, mask=mask)


# ----------------------------------------------------------------------------------------------
# Launchers: Triton (CUDA tensors, or CPU tensors under TRITON_INTERPRET=1), or the C++/CUDA extension
# ----------------------------------------------------------------------------------------------


def checkpoint_rows(T):
    """Rows of the checkpoint buffer: chunks after the first (works on SymInts too)."""
    return (T - 1) // MAX_CHUNK


def _native_param(p: Optional[torch.Tensor], shape, N: int) -> Optional[torch.Tensor]:
    """A beta/threshold tensor as the kernels read it: one fp32 value, or a contiguous fp32 [N] vector
    (broadcast over the neurons); None stays None."""
    if p is None:
        return None
    return p.to(torch.float32).reshape(1) if p.numel() == 1 else p.to(torch.float32).expand(shape).reshape(N).contiguous()


def _param_arg(p: Optional[torch.Tensor], value: float, shape, N: int, dummy: torch.Tensor):
    """(pointer tensor, float, mode) for the Triton kernels' _load_param: mode 0 reads ``value``."""
    t = _native_param(p, shape, N)
    if t is None:
        return dummy, float(value), 0
    return t, 0.0, 1 if t.numel() == 1 else 2


def packed_shape(shape) -> tuple:
    """Shape of spikes of ``shape`` bit-packed along the last dim (spike_dtype=torch.int32)."""
    return (*shape[:-1], packed_words(shape[-1]))


def lif_forward(x, v0, beta, threshold, beta_value, threshold_value, spec: LifSpec, spike_dtype, save_ckpt,
                return_membrane=False, backend="triton"):
    """Launch the fused forward (Triton, or the C++/CUDA extension for backend "cuda"). Returns (spikes [T,*],
    v_last [*] fp32, v_seq [T,*] fp32 (empty unless return_membrane), checkpoints [rows,*] fp32)."""
    packed = spike_dtype == torch.int32  # bit-packed along the last dim (ops/spike_pack.py layout)
    if packed and (backend == "cuda" or x.shape[-1] % 32):
        # the C++ kernels write bytes, and words straddling rows cannot be written per neuron: pack after
        spikes, v_last, v_seq, ckpt = lif_forward(x, v0, beta, threshold, beta_value, threshold_value, spec,
                                                  torch.uint8, save_ckpt, return_membrane, backend)
        pack = torch.ops.snnkern.pack_spikes_native if backend == "cuda" else torch.ops.snnkern.pack_spikes
        return pack(spikes), v_last, v_seq, ckpt
    if backend == "cuda":
        shape, N = x.shape[1:], x.shape[1:].numel()
        return torch.ops.snnkern.lif_fwd_native(
            x, v0, _native_param(beta, shape, N), float(beta_value), _native_param(threshold, shape, N),
            float(threshold_value), *spec, spike_dtype, save_ckpt, return_membrane)
    T, shape = x.shape[0], x.shape[1:]
    N = shape.numel()
    spikes = torch.empty(packed_shape(x.shape) if packed else x.shape, dtype=spike_dtype, device=x.device)
    v_last = torch.empty(shape, dtype=torch.float32, device=x.device)
    v_seq = torch.empty(x.shape if return_membrane else (0,), dtype=torch.float32, device=x.device)
    ckpt = torch.empty((checkpoint_rows(T) if save_ckpt else 0, *shape), dtype=torch.float32, device=x.device)
    if N == 0:
        return spikes, v_last, v_seq, ckpt
    x2 = x.contiguous()
    dummy = v_last
    beta_p, beta_f, beta_mode = _param_arg(beta, beta_value, shape, N, dummy)
    thr_p, thr_f, thr_mode = _param_arg(threshold, threshold_value, shape, N, dummy)
    v0_n = v0.to(torch.float32).contiguous() if v0 is not None else None
    grid = (triton.cdiv(N, FWD_BLOCK),)
    _lif_fwd_kernel[grid](
        x2, dummy if v0_n is None else v0_n, beta_p, beta_f, thr_p, thr_f, spikes, v_last, v_seq, ckpt,
        T, N, float(spec.v_init), float(spec.v_reset),
        CHUNK=chunk_size(T), DELAYED=spec.delayed, RESET=spec.reset, DECAY_INPUT=spec.decay_input,
        HAS_V0=v0_n is not None, BETA_MODE=beta_mode, THR_MODE=thr_mode, SAVE_CKPT=save_ckpt and ckpt.shape[0] > 0,
        STORE_V=return_membrane, PACK=packed, BLOCK=FWD_BLOCK,
        num_warps=FWD_WARPS, enable_fp_fusion=False,  # no FMA contraction: bitwise equal to the reference
    )
    return spikes, v_last, v_seq, ckpt


def lif_backward(grad_spikes, grad_v_last, grad_v_seq, x, v0, beta, threshold, ckpt, beta_value, threshold_value,
                 spec: LifSpec, need_v0_grad, need_beta_grad, need_thr_grad, backend="triton"):
    """Launch the fused backward. Returns (grad_x, grad_v0, grad_beta, grad_threshold); the last three are
    fp32 per neuron (shape x.shape[1:]) or empty when not asked for."""
    if backend == "cuda":
        shape, N = x.shape[1:], x.shape[1:].numel()
        return torch.ops.snnkern.lif_bwd_native(
            grad_spikes, grad_v_last, grad_v_seq, x, v0, _native_param(beta, shape, N), float(beta_value),
            _native_param(threshold, shape, N), float(threshold_value), ckpt, *spec, need_v0_grad, need_beta_grad,
            need_thr_grad)
    T, shape = x.shape[0], x.shape[1:]
    N = shape.numel()
    if T > chunk_size(T) and ckpt.shape[0] != checkpoint_rows(T):
        raise RuntimeError("snnkern::lif_bwd: the forward was run with save_for_backward=False")
    grad_x = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    # distinct tensors even when empty: a custom op's outputs may not alias each other
    per_neuron = lambda need: x.new_empty(shape if need else (0,), dtype=torch.float32)  # noqa: E731
    grad_v0, grad_beta, grad_thr = per_neuron(need_v0_grad), per_neuron(need_beta_grad), per_neuron(need_thr_grad)
    if N == 0:
        return grad_x, grad_v0, grad_beta, grad_thr
    dummy = grad_x
    beta_p, beta_f, beta_mode = _param_arg(beta, beta_value, shape, N, dummy)
    thr_p, thr_f, thr_mode = _param_arg(threshold, threshold_value, shape, N, dummy)
    v0_n = v0.to(torch.float32).contiguous() if v0 is not None else None
    gs = grad_spikes.contiguous() if grad_spikes is not None else None
    gv = grad_v_last.to(torch.float32).contiguous() if grad_v_last is not None else None
    gvs = grad_v_seq.to(torch.float32).contiguous() if grad_v_seq is not None else None
    grid = (triton.cdiv(N, BWD_BLOCK),)
    _lif_bwd_kernel[grid](
        x.contiguous(), dummy if v0_n is None else v0_n, beta_p, beta_f, thr_p, thr_f, ckpt, dummy if gs is None else gs, dummy if gv is None else gv,
        dummy if gvs is None else gvs,
        grad_x, grad_v0, grad_beta, grad_thr,
        T, N, float(spec.v_init), float(spec.v_reset), float(spec.alpha),
        CHUNK=chunk_size(T), DELAYED=spec.delayed, RESET=spec.reset, DECAY_INPUT=spec.decay_input,
        DETACH=spec.detach_reset, SURROGATE=spec.surrogate,
        HAS_V0=v0_n is not None, BETA_MODE=beta_mode, THR_MODE=thr_mode, HAS_GS=gs is not None, HAS_GV=gv is not None, HAS_GVS=gvs is not None, STORE_GV0=need_v0_grad,
        BETA_GRAD=need_beta_grad, THR_GRAD=need_thr_grad, BLOCK=BWD_BLOCK,
        num_warps=BWD_WARPS, enable_fp_fusion=False,
    )
    return grad_x, grad_v0, grad_beta, grad_thr


# ----------------------------------------------------------------------------------------------
# Registered ops: snnkern::lif_fwd / snnkern::lif_bwd
# ----------------------------------------------------------------------------------------------
# Spec fields travel as plain scalars so the schema stays a torch.library schema.


@torch.library.custom_op("snnkern::lif_fwd", mutates_args=())
def lif_fwd(
    x: torch.Tensor, v0: Optional[torch.Tensor], beta: Optional[torch.Tensor], threshold: Optional[torch.Tensor],
    beta_value: float, threshold_value: float,
    delayed: bool, reset: int, v_reset: float, v_init: float, decay_input: bool, detach_reset: bool,
    surrogate: int, alpha: float, spike_dtype: torch.dtype, save_for_backward: bool, return_membrane: bool,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    spec = LifSpec(delayed, reset, v_reset, v_init, decay_input, detach_reset, surrogate, alpha)
    return lif_forward(x, v0, beta, threshold, beta_value, threshold_value, spec, spike_dtype, save_for_backward,
                       return_membrane, backend)


@lif_fwd.register_fake
def _lif_fwd_fake(x, v0, beta, threshold, beta_value, threshold_value, delayed, reset, v_reset, v_init,
                  decay_input, detach_reset, surrogate, alpha, spike_dtype, save_for_backward, return_membrane, backend):
    rows = checkpoint_rows(x.shape[0]) if save_for_backward else 0
    spike_shape = packed_shape(x.shape) if spike_dtype == torch.int32 else x.shape
    return (x.new_empty(spike_shape, dtype=spike_dtype), x.new_empty(x.shape[1:], dtype=torch.float32),
            x.new_empty(x.shape if return_membrane else (0,), dtype=torch.float32),
            x.new_empty((rows, *x.shape[1:]), dtype=torch.float32))


@torch.library.custom_op("snnkern::lif_bwd", mutates_args=())
def lif_bwd(
    grad_spikes: Optional[torch.Tensor], grad_v_last: Optional[torch.Tensor], grad_v_seq: Optional[torch.Tensor],
    x: torch.Tensor, v0: Optional[torch.Tensor], beta: Optional[torch.Tensor], threshold: Optional[torch.Tensor],
    checkpoints: torch.Tensor, beta_value: float, threshold_value: float,
    delayed: bool, reset: int, v_reset: float, v_init: float, decay_input: bool, detach_reset: bool,
    surrogate: int, alpha: float, need_v0_grad: bool, need_beta_grad: bool, need_threshold_grad: bool, backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    spec = LifSpec(delayed, reset, v_reset, v_init, decay_input, detach_reset, surrogate, alpha)
    return lif_backward(grad_spikes, grad_v_last, grad_v_seq, x, v0, beta, threshold, checkpoints, beta_value,
                        threshold_value, spec, need_v0_grad, need_beta_grad, need_threshold_grad, backend)


@lif_bwd.register_fake
def _lif_bwd_fake(grad_spikes, grad_v_last, grad_v_seq, x, v0, beta, threshold, checkpoints, beta_value, threshold_value,
                  delayed, reset, v_reset, v_init, decay_input, detach_reset, surrogate, alpha,
                  need_v0_grad, need_beta_grad, need_threshold_grad, backend):
    per_neuron = lambda need: x.new_empty(x.shape[1:] if need else (0,), dtype=torch.float32)  # noqa: E731
    return x.new_empty(x.shape), per_neuron(need_v0_grad), per_neuron(need_beta_grad), per_neuron(need_threshold_grad)


def _lif_setup_context(ctx, inputs, output):
    x, v0, beta, threshold = inputs[:4]
    ctx.scalars = inputs[4:14]  # beta_value .. alpha (everything the backward op needs)
    ctx.backend = inputs[-1]
    ctx.save_for_backward(x, v0, beta, threshold, output[3])
    ctx.mark_non_differentiable(output[3])
    ctx.set_materialize_grads(False)  # unused outputs give None: the kernel then skips reading them


def _lif_backward(ctx, grad_spikes, grad_v_last, grad_v_seq, _grad_ckpt):
    x, v0, beta, threshold, ckpt = ctx.saved_tensors
    need = ctx.needs_input_grad
    grad_x, grad_v0, grad_beta, grad_thr = lif_bwd(
        grad_spikes, grad_v_last, None if grad_v_seq is None or grad_v_seq.numel() == 0 else grad_v_seq, x, v0, beta, threshold, ckpt,
        *ctx.scalars,
        bool(need[1]), bool(need[2]), bool(need[3]), ctx.backend,
    )
    grad_v0 = grad_v0.to(v0.dtype) if need[1] else None
    grad_beta = grad_beta.sum_to_size(beta.shape).to(beta.dtype) if need[2] else None
    grad_thr = grad_thr.sum_to_size(threshold.shape).to(threshold.dtype) if need[3] else None
    return (grad_x if need[0] else None, grad_v0, grad_beta, grad_thr) + (None,) * 14


lif_fwd.register_autograd(_lif_backward, setup_context=_lif_setup_context)


# ----------------------------------------------------------------------------------------------
# Reference: plain PyTorch, autograd-derived gradients. The oracle for the kernels, the CPU path.
# ----------------------------------------------------------------------------------------------


def lif_reference(x, v0, beta, threshold, beta_value, threshold_value, spec: LifSpec, spike_dtype=None,
                  return_membrane=False):
    """Step-by-step LIF in PyTorch with the kernels' arithmetic, in the kernels' order.

    Computes in fp32 (fp64 for fp64 input); returns (spikes [T,*] in ``spike_dtype`` or x's dtype,
    final state [*] in the compute dtype), plus the state after every step [T,*] if return_membrane."""
    cdtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    as_c = lambda p, value: torch.as_tensor(p if p is not None else value, dtype=cdtype, device=x.device)  # noqa: E731
    beta_t, thr = as_c(beta, beta_value), as_c(threshold, threshold_value)
    v_reset = torch.tensor(spec.v_reset, dtype=cdtype, device=x.device)
    one_minus_beta = 1.0 - beta_t
    leak = one_minus_beta * v_reset
    state = v0.to(cdtype) if v0 is not None else torch.full(x.shape[1:], spec.v_init, dtype=cdtype, device=x.device)

    def charge(v, xt):
        h = beta_t * v + (one_minus_beta * xt if spec.decay_input else xt)
        return h + leak if spec.reset == 2 else h

    spikes, states = [], []
    for xt in x.to(cdtype).unbind(0):
        if spec.delayed:  # snnTorch: detached reset signal from the previous membrane, strict '>'
            r = (state.detach() - thr.detach() > 0).to(cdtype)
            if spec.reset == 1:
                h = charge(state, xt) - r * thr
            elif spec.reset == 2:
                h = charge((1.0 - r) * state + r * v_reset, xt)
            else:
                h = charge(state, xt)
            s = SpikeFn.apply(h - thr, spec.alpha, spec.surrogate, True)
            state = h
        else:  # SpikingJelly: '>=' spikes, reset in the same step
            h = charge(state, xt)
            s = SpikeFn.apply(h - thr, spec.alpha, spec.surrogate, False)
            s_r = s.detach() if spec.detach_reset else s
            if spec.reset == 1:
                state = h - s_r * thr
            elif spec.reset == 2:
                state = (1.0 - s_r) * h + s_r * v_reset
            else:
                state = h
        spikes.append(s)
        states.append(state)
    out = torch.stack(spikes).to(spike_dtype or x.dtype)
    return (out, state, torch.stack(states)) if return_membrane else (out, state)
