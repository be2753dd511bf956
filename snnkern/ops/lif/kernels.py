"""Triton kernels of the multi-step LIF/IF neuron (launched by ``launch.py``).

Data layout: ``x`` is ``[T, N]`` after flattening the trailing dims; every program owns ``BLOCK``
neurons and walks all ``T`` steps, so the membrane never leaves registers.

Bytes (fp32, autograd path):
  forward  reads x, writes spikes (+ the final state, + one fp32 state per CHUNK steps);
  backward reads x, grad_spikes, writes grad_x.
Nothing per element is written for backward: the backward kernel recomputes the membrane from
``x`` one chunk of ``CHUNK`` steps at a time, holding the chunk's membranes in registers, then
walks the chunk in reverse.  What autograd keeps alive is therefore ``x`` itself (4 B/element in
fp32, 2 B in bf16/fp16) plus ``ceil(T/CHUNK) - 1`` fp32 checkpoints of the state per neuron,
instead of a pre-reset membrane sequence.  The no-grad path writes only spikes and the final state.
"""
from .._triton import tl, triton
from ..surrogate import _surrogate_grad

# Backward: 16 steps x 1 neuron per thread compiles to 48-80 registers on sm_90 with no spills, 8 steps
# when parameter gradients accumulate (LEARN_SUB) to 48-71 (python_tests/kernel_compile_check.py guards
# this); 32 steps or 2 neurons per thread spill.
FWD_BLOCK, FWD_WARPS = 512, 4  # 4 neurons per thread: 16-byte fp32 accesses
FWD_VEC = 4  # neurons per thread, the widest VEC the forward is specialized for
# Inference with 16-bit inputs (no checkpoints, no membrane sequence written) and N a multiple of 8: 8 neurons
# a thread, so each step's x load is 16 bytes too (sm_90 SASS: 38-56 registers, 18-25 KB in flight per SM
# against 12-16 KB at 4 a thread). Where checkpoints are written the 8-wide kernel takes 60-76 registers and
# keeps no more in flight (12-16 KB either way), and with N odd it doubles its registers: 4 a thread there.
FWD_VEC_16BIT_INFERENCE, FWD_WARPS_16BIT_INFERENCE = 8, 2
BWD_BLOCK, BWD_WARPS = 128, 4
# Backward with parameter gradients: steps recomputed together at most (see lif_bwd_kernel).
LEARN_SUB = tl.constexpr(8)


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
def _load_param(offs, mask, ptr, value, div, period, MODE: tl.constexpr, BLOCK: tl.constexpr):
    """MODE 0: the float ``value``; 1: one fp32 at ``ptr``; 2: fp32 per neuron at ``ptr``; 3: neuron n reads
    ``ptr[(n // div) % period]`` (a per-feature or per-channel tensor broadcast over the batch and the
    pixels: read in place, where mode 2 needs a copy expanded to every neuron; the division runs once per
    neuron, before the time loop; in 64 bits, which on sm_90 takes fewer registers than the 32-bit form)."""
    if MODE == 3:
        p = tl.load(ptr + (offs // div) % period, mask=mask, other=1.0)
    elif MODE == 2:
        p = tl.load(ptr + offs, mask=mask, other=1.0)
    elif MODE == 1:
        p = tl.full([BLOCK], tl.load(ptr), tl.float32)
    else:
        p = tl.full([BLOCK], value, tl.float32)
    return p


@triton.jit
def _load_params(offs, mask, beta_ptr, beta_val, beta_div, beta_period, thr_ptr, thr_val, thr_div, thr_period,
                 v_reset, BETA_MODE: tl.constexpr, THR_MODE: tl.constexpr, BLOCK: tl.constexpr):
    beta = _load_param(offs, mask, beta_ptr, beta_val, beta_div, beta_period, BETA_MODE, BLOCK)
    thr = _load_param(offs, mask, thr_ptr, thr_val, thr_div, thr_period, THR_MODE, BLOCK)
    one_minus_beta = 1.0 - beta
    leak = one_minus_beta * v_reset
    return beta, one_minus_beta, leak, thr


@triton.jit
def lif_fwd_kernel(
    x_ptr,  # [T, N] input current, fp32/bf16/fp16, contiguous
    v0_ptr,  # [N] fp32 initial state (read only if HAS_V0)
    beta_ptr, beta_val, beta_div, beta_period,  # decay: fp32 at beta_ptr, or the float beta_val (_load_param)
    thr_ptr, thr_val, thr_div, thr_period,  # threshold, likewise
    s_ptr,  # [T, N] spikes out, spike dtype; PACK: [T, N/32] int32 words (bit j of word w: neuron 32w+j)
    v_last_ptr,  # [N] fp32 final state out
    vs_ptr,  # [T, N] fp32 state after every step (written if STORE_V)
    ckpt_ptr,  # [ceil(T/CHUNK)-1, N] fp32 state at the start of chunks 1.. (written if SAVE_CKPT)
    T, N_VECS,  # time steps; neurons / VEC
    v_init, v_reset,  # initial state when no v0; hard-reset target / resting potential
    CHUNK: tl.constexpr, DELAYED: tl.constexpr, RESET: tl.constexpr, DECAY_INPUT: tl.constexpr,
    HAS_V0: tl.constexpr, BETA_MODE: tl.constexpr, THR_MODE: tl.constexpr,
    SAVE_CKPT: tl.constexpr, STORE_V: tl.constexpr, PACK: tl.constexpr, BLOCK: tl.constexpr,
    VEC: tl.constexpr,  # a power of two dividing N: rows then start VEC-aligned, so accesses are VEC wide
):
    N = N_VECS * VEC  # the compiler now knows VEC | N (a plain N is only known aligned when 16 | N)
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    beta, one_minus_beta, leak, thr = _load_params(offs, mask, beta_ptr, beta_val, beta_div, beta_period, thr_ptr,
                                                   thr_val, thr_div, thr_period, v_reset, BETA_MODE, THR_MODE, BLOCK)
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
    # Software pipelining: step t+1's input is requested before step t's stores, so a load is in flight
    # while the step computes and writes (the compiler cannot move a load above a store it may alias).
    x_next = tl.load(x_ptrs, mask=mask, other=0.0)
    for t in range(T):
        if SAVE_CKPT:
            if (t % CHUNK == 0) & (t > 0):
                tl.store(ckpt_ptrs, state, mask=mask)
                ckpt_ptrs += N
        x = x_next.to(tl.float32)
        x_ptrs += N
        x_next = tl.load(x_ptrs, mask=mask & (t + 1 < T), other=0.0)
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
    tl.store(v_last_ptr + offs, state, mask=mask)


@triton.jit
def lif_bwd_kernel(
    x_ptr,  # [T, N] forward input (recomputation source)
    v0_ptr,  # [N] fp32 initial state (if HAS_V0)
    beta_ptr, beta_val, beta_div, beta_period, thr_ptr, thr_val, thr_div, thr_period,  # as in the forward kernel
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
    beta, one_minus_beta, leak, thr = _load_params(offs, mask, beta_ptr, beta_val, beta_div, beta_period, thr_ptr,
                                                   thr_val, thr_div, thr_period, v_reset, BETA_MODE, THR_MODE, BLOCK)
    if HAS_GV:
        g_state = tl.load(gv_last_ptr + offs, mask=mask, other=0.0)
    else:
        g_state = tl.zeros([BLOCK], tl.float32)
    g_beta = tl.zeros([BLOCK], tl.float32)
    g_thr = tl.zeros([BLOCK], tl.float32)
    # Steps recomputed together (SUB): the checkpoint interval CHUNK, or its lower and upper half when
    # parameter gradients accumulate (16 steps of those take 70-130 registers on sm_90, 8 steps 48-71).
    # An upper half first recomputes its lower half from the checkpoint: SUB rows of x that the next
    # iteration of this program reads again (most likely from L1/L2 rather than DRAM).
    if (BETA_GRAD or THR_GRAD) and CHUNK > LEARN_SUB:
        SUB: tl.constexpr = CHUNK // 2
    else:
        SUB: tl.constexpr = CHUNK
    n_subs = tl.cdiv(T, SUB)
    for cc in range(n_subs):
        if SUB < CHUNK:
            t0 = (n_subs - 1 - cc) * SUB
            c = t0 // CHUNK  # checkpoint interval
        else:
            c = n_subs - 1 - cc
            t0 = c * CHUNK
        if c > 0:
            state0 = tl.load(ckpt_ptr + (c - 1).to(tl.int64) * N + offs, mask=mask, other=0.0)
        elif HAS_V0:
            state0 = tl.load(v0_ptr + offs, mask=mask, other=0.0)
        else:
            state0 = tl.full([BLOCK], v_init, tl.float32)
        if SUB < CHUNK:
            if t0 % CHUNK != 0:  # upper half: its lower half precedes it entirely (all steps < T)
                low_base = (t0 - SUB).to(tl.int64) * N + offs
                xl = ()
                for i in tl.static_range(SUB):
                    xl = xl + (tl.load(x_ptr + low_base + i * N, mask=mask, other=0.0),)
                for i in tl.static_range(SUB):
                    _h, _s, state0 = _step(state0, xl[i].to(tl.float32), beta, one_minus_beta, leak, thr, v_reset,
                                           DELAYED, RESET, DECAY_INPUT)
        chunk_base = t0.to(tl.int64) * N + offs

        # Recompute the chunk forward; its membranes (and inputs) stay in registers. The chunk's incoming
        # gradients are requested here too, before the first grad_x store of the chunk: the compiler cannot
        # move a load above a store that may alias it, so loads issued in the reverse walk would each
        # wait for the previous step's store, one load in flight per thread. Steps past T (in the last
        # chunk) read row T-1 again and are skipped by the walk, so no load needs a per-step mask (a
        # predicate per step would stay live until the walk's stores).
        hs = ()
        xs = ()
        gss = ()
        gvss = ()
        state = state0
        for i in tl.static_range(SUB):
            row = tl.minimum(t0 + i, T - 1).to(tl.int64) * N + offs
            x = tl.load(x_ptr + row, mask=mask, other=0.0).to(tl.float32)
            if HAS_GS:
                gss = gss + (tl.load(gs_ptr + row, mask=mask, other=0.0),)
            if HAS_GVS:
                gvss = gvss + (tl.load(gvs_ptr + row, mask=mask, other=0.0),)
            h, s, state = _step(state, x, beta, one_minus_beta, leak, thr, v_reset, DELAYED, RESET, DECAY_INPUT)
            hs = hs + (h,)
            if DECAY_INPUT and BETA_GRAD:  # only the beta gradient of decay_input needs x again
                xs = xs + (x,)

        # Walk the chunk backwards. g_state is dL/d(state after step t) from the steps after t.
        for i in tl.static_range(SUB - 1, -1, -1):
            h = hs[i]
            if i == 0:
                prev = state0
            else:
                prev = _state_after(hs[i - 1], thr, v_reset, DELAYED, RESET)
            g = g_state  # dL/d(state after this step)
            if HAS_GVS:  # the state after step t was also an output
                g = g + gvss[i]
            if HAS_GS:
                gs = gss[i].to(tl.float32)
            else:
                gs = tl.zeros([BLOCK], tl.float32)
            d = h - thr
            sg = _surrogate_grad(d, alpha, SURROGATE)
            if DELAYED:
                r = tl.where(prev - thr > 0, 1.0, 0.0)  # detached: no gradient through r
                gh = g + gs * sg
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
                    g_spike = gs + g * dv_ds
                gh = g_spike * sg + g * dv_dh
                dthr = -g_spike * sg
                if RESET == 1:
                    dthr = dthr - g * s
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
            if t0 + i < T:  # a uniform branch: steps past T store nothing and leave g_state as it is
                tl.store(gx_ptr + chunk_base + i * N, gx.to(gx_ptr.dtype.element_ty), mask=mask)
                if BETA_GRAD:
                    g_beta += gh * dh_dbeta
                if THR_GRAD:
                    g_thr += dthr
                g_state = gh * dh_dprev
    if STORE_GV0:
        tl.store(gv0_ptr + offs, g_state, mask=mask)
    if BETA_GRAD:
        tl.store(gbeta_ptr + offs, g_beta, mask=mask)
    if THR_GRAD:
        tl.store(gthr_ptr + offs, g_thr, mask=mask)
