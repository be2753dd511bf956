"""Spike x weight accumulation: ``y = S @ W.T + b`` for binary spikes S, reading S as packed bits.

Two Triton kernels, both fed the packed spikes (``ops/spike_pack.py`` layout):

- ``tiles``: a tensor-core GEMM whose A operand is unpacked from bits in registers. Spikes are exactly
  0/1 in bf16/fp16, so the products are exact; fp32 weights are split into three bf16 parts (hi + mid +
  lo == W to fp32 precision), so fp32 weights keep fp32 accuracy on tensor cores. It skips what is
  silent at the granularity structured spikes have, from a schedule computed once per call from the bits
  (``spike_pack.tiles_schedule_forward``: one launch, two when large, one read of the bits, no host sync):
  **rows** without a spike (a silent time step, a silent sample, any silent row, wherever it sits) are
  ordered after the spiking ones, so a program whose BLOCK_M rows are all silent runs no K step and only
  stores the bias; **words** (32 consecutive inputs) in which no row spiked (silent channels) are left out
  of the K walk, so their weights are never read. Random independent spikes skip nothing this way (nor
  did a per-tile test: a 64 x 64 tile is almost never empty) and pay only the schedule. Every K step loads
  unconditionally (no branch in the loop), so Triton's pipeliner keeps the next steps' spike words and
  weight tiles in flight (cp.async into shared memory) while a step's MMA runs; for that, rows must start
  16-byte aligned: a weight whose K is not a multiple of 8 is padded (once per version for a parameter,
  ``cached_weight_parts``; per call otherwise).
- ``gather``: the event-driven kernel proper, in two launches. First, per block of GATHER_ROWS rows
  (time steps x batch of one layer), the inputs that spiked in any of its rows are compacted into an
  index list (``spike_pack.active_inputs_forward``; padding bits past K never enter it). Then each
  program owns a row block and GATHER_N outputs and walks that list GATHER_I inputs at a time: it loads
  their GATHER_I rows of W.T at once (independent loads, all in flight before the first is used), reads
  the block's spike bits at those inputs, and adds rows x inputs (0/1) @ weight rows with fp32
  accumulation, on tensor cores for fp16/bf16 weights (exact: the products are 0 or a weight) and on
  CUDA cores for fp32. Each weight row is read once per row block and serves all its rows; the bytes
  read scale with the number of distinct active inputs per block, for very sparse input.

Autograd (registered on the op): the forward saves the bits, never the dense spikes;
grad_input = dY @ W (dense: the upstream neuron needs it), grad_bias = dY.sum(0), and
grad_weight = dY.T @ S read from the bits by the forward's algorithm: ``tiles`` walks only the rows
of S with a spike (same schedule, kept from the forward by the eager Function; dY of a silent row is
never read) and skips the column blocks of inputs that never spiked (their gradient is zero), pipelined
alike (dY split into bf16 parts in registers, as W is in the forward; dY padded to a multiple of 8
columns when it is not one);
``gather`` transposes the bits and, per input k, adds only the rows of dY where k spiked.
Neither materialises the dense spikes. ``dense`` runs cuBLAS forward on the dense spikes, yet saves
only the bits too (its grad_weight is the tiles kernel's).
"""
from __future__ import annotations

import os
from typing import Optional

import torch

from .._per_version import new_store, per_version, version_key
from ._triton import HAS_TRITON, on_device, tl, triton
from .spike_pack import (active_inputs_forward, packed_words, tiles_schedule_forward, transpose_packed_forward,
                         unpack_forward)

ALGORITHMS = ("tiles", "gather", "dense")
# Tile shapes (BLOCK_M, BLOCK_N, BLOCK_K, warps, stages) of the two tensor-core kernels, per operand
# precision: 16-bit weights / grads (one operand tile) and fp32 ones (three bf16 parts, three times the
# operand registers). On a GPU, Triton's autotuner times the list at the first call for each (M rounded
# up to a power of two, N, K, ...) and keeps the fastest; the CPU interpreter (CI) runs the first.
# Only shapes whose sm_80 and sm_90 builds spill nothing are listed (kernel_compile_check.py guards it).
# Three stages each: the pipeliner keeps two K (M) steps of tiles in flight by cp.async, in shared memory
# (stages x (spike words + operand tiles): at most 128 KB, which sm_80 and sm_90 hold; a GPU with less
# refuses that shape, and the autotuner skips it).
TILE_CONFIGS = {
    "16bit": ((64, 64, 64, 8, 3), (64, 64, 32, 4, 3), (128, 64, 64, 8, 3), (64, 128, 64, 8, 3)),
    "fp32": ((64, 64, 32, 8, 3), (64, 32, 32, 4, 3), (32, 64, 32, 4, 3)),
}
# The gather kernel's program: GATHER_ROWS output rows x GATHER_N outputs, GATHER_I active inputs per step
# (GATHER_I weight rows in flight per program), GATHER_WARPS warps.
# GATHER_STAGES = 1: the kernel pipelines its index loads itself and issues its weight loads as plain
# loads, a step's worth at once (kernel_compile_check.py reads that window from the machine code).
GATHER_ROWS, GATHER_N, GATHER_I, GATHER_WARPS, GATHER_STAGES = 16, 128, 32, 4, 1


@triton.jit
def _spike_mm_tiles_kernel(
    p_ptr,  # [M, W] int32 packed spikes
    w_ptr,  # [PARTS, N, KS] weight parts (bf16/fp16), contiguous: row n holds W[n, :K], then padding
    b_ptr,  # [N] bias (if HAS_BIAS)
    y_ptr,  # [M, N] output
    sched_ptr,  # [2 + M + 2W] int32 (spike_pack.tiles_schedule_forward): spiking rows first, then active words
    M, N, K, W,
    KS,  # the weight parts' row stride: a multiple of 8, so every row starts 16-byte aligned (cp.async's width)
    M_BUCKET,  # next power of two >= M: only the autotuner's key (not read)
    PARTS: tl.constexpr, HAS_BIAS: tl.constexpr, UPCAST_DOT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    WORDS: tl.constexpr = BLOCK_K // 32  # active words per step
    KS = KS // 8 * 8  # == KS: tells the compiler
    n_rows = tl.load(sched_ptr)  # rows with a spike: the first n_rows entries of the row order
    n_words = tl.load(sched_ptr + 1)  # words with a spike in some row
    # this program's BLOCK_M slots of the row order: spiking rows first, so a block of silent rows
    # (a silent time step, silent samples, wherever they are) runs no step at all and stores the bias
    slots = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    # int32 across the loop (fewer registers live), int64 where an address is formed
    rows = tl.load(sched_ptr + 2 + slots, mask=slots < M, other=-1)  # -1: past the last row
    live = slots < n_rows
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = offs_n < N
    steps = tl.where(tl.program_id(0) * BLOCK_M < n_rows, tl.cdiv(n_words, WORDS), 0)
    jj = tl.arange(0, BLOCK_K)
    acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
    # Every step loads unconditionally, so Triton's pipeliner keeps the next step's loads (cp.async into
    # shared memory) in flight while this step's MMA runs; words no row spiked in are not in the list.
    # The word list is read one step ahead, by hand: a step's tile addresses then come from a register, not
    # from a load of the same step, and the pipeliner keeps NUM_STAGES - 1 steps of tiles in flight.
    kw_next = tl.load(sched_ptr + 2 + M + jj // 32, mask=jj // 32 < n_words, other=0)
    for step in range(0, steps):
        wi = step * WORDS + jj // 32
        kw = kw_next  # each column's word (32 columns share one)
        kw_next = tl.load(sched_ptr + 2 + M + wi + WORDS, mask=wi + WORDS < n_words, other=0)
        # runs of 32 consecutive inputs starting at a multiple of 32: lets the weight loads be 16 bytes wide
        ks = tl.max_contiguous(tl.multiple_of(kw * 32 + jj % 32, 32), 32)
        k_ok = (wi < n_words) & (ks < K)
        # each column reads the word holding its bit (32 columns share a word: L1 hits), which keeps the
        # tile 2-D (a [M, words, 32] unpack costs layout shuffles)
        words = tl.load(p_ptr + rows.to(tl.int64)[:, None] * W + kw[None, :], mask=live[:, None] & k_ok[None, :],
                        other=0)
        a = (words >> (jj % 32)[None, :]) & 1
        w_ptrs = w_ptr + offs_n.to(tl.int64)[None, :] * KS + ks[:, None]  # W.T tile [BLOCK_K, BLOCK_N]
        # bounded by KS, not K: the padding columns hold zeros, and a bound that is a multiple of 8 keeps the
        # mask uniform over each 16-byte load
        w_mask = ((wi < n_words) & (ks < KS))[:, None] & n_ok[None, :]
        for part in tl.static_range(PARTS):
            wt = tl.load(w_ptrs + part * tl.cast(N, tl.int64) * KS, mask=w_mask, other=0.0)  # N may be the constant 1
            if UPCAST_DOT:  # the CPU interpreter's bf16 dot is wrong; fp32 operands give the same sums
                acc = tl.dot(a.to(tl.float32), wt.to(tl.float32), acc, input_precision="ieee")
            else:
                acc = tl.dot(a.to(wt.dtype), wt, acc)
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    # masked by the row (-1 past the last), not by the slot: the slots need not stay live across the loop
    tl.store(y_ptr + rows.to(tl.int64)[:, None] * N + offs_n[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=(rows >= 0)[:, None] & n_ok[None, :])


@triton.jit
def _spike_mm_gather_kernel(
    p_ptr,  # [M, W] int32 packed spikes
    idx_ptr,  # [cdiv(M, ROWS), K] int32: each row block's active inputs (spike_pack.active_inputs_forward)
    cnt_ptr,  # [cdiv(M, ROWS)] int32: how many there are
    wt_ptr,  # [K, N] W.T, contiguous (row k = the weights leaving input k)
    b_ptr,  # [N] bias (if HAS_BIAS)
    y_ptr,  # [M, N] output
    M, N, K, W,
    HAS_BIAS: tl.constexpr,
    FMA_DOT: tl.constexpr,  # fp32 sums on CUDA cores: fp32 weights, and the CPU interpreter (its bf16 dot is wrong)
    ROWS: tl.constexpr,  # output rows per program (one row block): each weight row loaded serves all of them
    BLOCK_N: tl.constexpr,  # outputs per program
    BLOCK_I: tl.constexpr,  # active inputs per step: their weight rows are all loaded before any is added
):
    blk = tl.program_id(0)
    rows = blk.to(tl.int64) * ROWS + tl.arange(0, ROWS)
    offs_n = tl.program_id(1).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok, n_ok = rows < M, offs_n < N
    count = tl.load(cnt_ptr + blk)
    idx_row = idx_ptr + blk.to(tl.int64) * K
    ii = tl.arange(0, BLOCK_I)
    ks = tl.load(idx_row + ii, mask=ii < count, other=0)
    acc = tl.zeros([ROWS, BLOCK_N], tl.float32)
    for i0 in range(0, count, BLOCK_I):
        i_ok = i0 + ii < count
        # BLOCK_I independent weight-row loads (and the spike words), all issued before the first is used
        w = tl.load(wt_ptr + ks.to(tl.int64)[:, None] * N + offs_n[None, :], mask=i_ok[:, None] & n_ok[None, :],
                    other=0.0)
        words = tl.load(p_ptr + rows[:, None] * W + (ks // 32)[None, :], mask=row_ok[:, None] & i_ok[None, :],
                        other=0)
        # the next step's inputs, fetched while this step adds: its weight loads need not wait for them
        ks_next = tl.load(idx_row + (i0 + BLOCK_I) + ii, mask=i0 + BLOCK_I + ii < count, other=0)
        s = (words >> (ks % 32)[None, :]) & 1  # [ROWS, BLOCK_I]: which rows of the block spiked at each input
        # 0/1 x weight products are exact; the sums accumulate in fp32 (tensor cores for 16-bit weights)
        if FMA_DOT:
            acc = tl.dot(s.to(tl.float32), w.to(tl.float32), acc, input_precision="ieee")
        else:
            acc = tl.dot(s.to(w.dtype), w, acc)
        ks = ks_next
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(y_ptr + rows.to(tl.int64)[:, None] * N + offs_n[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=row_ok[:, None] & n_ok[None, :])


@triton.jit
def _spike_grad_w_tiles_kernel(
    p_ptr,  # [M, W] int32 packed spikes S
    g_ptr,  # [M, NS] dY, contiguous: row m holds dY[m, :N], then padding
    gw_ptr,  # [N, K] grad_weight out = dY.T @ S
    sched_ptr,  # [2 + M + 2W] int32 (spike_pack.tiles_schedule_forward): spiking rows first, words' union
    M, N, K, W,
    NS,  # dY's row stride: a multiple of 8, so every row starts 16-byte aligned (cp.async's width)
    M_BUCKET,  # next power of two >= M: only the autotuner's key (not read)
    SPLIT: tl.constexpr, UPCAST_DOT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    WORDS: tl.constexpr = BLOCK_K // 32
    NS = NS // 8 * 8  # == NS: tells the compiler
    offs_n = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.program_id(1).to(tl.int64) * BLOCK_K + tl.arange(0, BLOCK_K)
    n_ok, k_ok = offs_n < N, offs_k < K
    n_rows = tl.load(sched_ptr)
    # inputs that spiked in no row have a zero gradient: their column block runs no step
    wk = tl.program_id(1) * WORDS + tl.arange(0, WORDS)
    union = tl.load(sched_ptr + 2 + M + W + wk, mask=wk < W, other=0)
    steps = tl.where(tl.max(tl.where(union != 0, 1, 0), 0) > 0, tl.cdiv(n_rows, BLOCK_M), 0)
    acc = tl.zeros([BLOCK_N, BLOCK_K], tl.float32)
    # only the rows with a spike, BLOCK_M a step, every load unconditional: the pipeliner keeps the next
    # steps' tiles in flight while this one's MMA runs. The row order is read one step ahead, by hand (as the
    # forward reads its word list).
    ii = tl.arange(0, BLOCK_M)
    ms_next = tl.load(sched_ptr + 2 + ii, mask=ii < n_rows, other=0)
    for mb in range(0, steps):
        slots = mb * BLOCK_M + ii
        live = slots < n_rows
        ms = ms_next.to(tl.int64)
        ms_next = tl.load(sched_ptr + 2 + slots + BLOCK_M, mask=slots + BLOCK_M < n_rows, other=0)
        words = tl.load(p_ptr + ms[:, None] * W + (offs_k // 32)[None, :], mask=live[:, None] & k_ok[None, :],
                        other=0)
        s = (words >> (offs_k % 32)[None, :].to(tl.int32)) & 1  # [BLOCK_M, BLOCK_K]
        # bounded by NS (padding columns hold zeros): the mask stays uniform over each 16-byte load
        g = tl.load(g_ptr + ms[:, None] * NS + offs_n[None, :], mask=live[:, None] & (offs_n < NS)[None, :],
                    other=0.0)
        gt = tl.trans(g)  # [BLOCK_N, BLOCK_M]
        if SPLIT:  # fp32 dY = hi + mid + lo in bf16 (24 significant bits): fp32 sums on tensor cores
            hi = gt.to(tl.bfloat16)
            r = gt - hi.to(tl.float32)
            mid = r.to(tl.bfloat16)
            lo = (r - mid.to(tl.float32)).to(tl.bfloat16)
            if UPCAST_DOT:  # the CPU interpreter's bf16 dot is wrong; exact fp32 operands instead
                sf = s.to(tl.float32)
                acc = tl.dot(hi.to(tl.float32), sf, acc, input_precision="ieee")
                acc = tl.dot(mid.to(tl.float32), sf, acc, input_precision="ieee")
                acc = tl.dot(lo.to(tl.float32), sf, acc, input_precision="ieee")
            else:
                sb = s.to(tl.bfloat16)
                acc = tl.dot(hi, sb, acc)
                acc = tl.dot(mid, sb, acc)
                acc = tl.dot(lo, sb, acc)
        elif UPCAST_DOT:
            acc = tl.dot(gt.to(tl.float32), s.to(tl.float32), acc, input_precision="ieee")
        else:
            acc = tl.dot(gt, s.to(gt.dtype), acc)
    tl.store(gw_ptr + offs_n[:, None] * K + offs_k[None, :], acc.to(gw_ptr.dtype.element_ty),
             mask=n_ok[:, None] & k_ok[None, :])


def _pow2(n: int) -> int:
    """The power of two >= n (>= 1): the autotuners' M bucket (triton.next_power_of_2 costs microseconds)."""
    return 1 << max(n - 1, 0).bit_length()


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def tile_configs(precision: str):
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k}, num_warps=w, num_stages=st)
            for m, n, k, w, st in TILE_CONFIGS[precision]]


def autotuned(kernel, key):
    """{precision: ``kernel`` behind Triton's autotuner over that precision's TILE_CONFIGS} (the plain
    kernel where Triton is absent)."""
    if not HAS_TRITON:
        return {p: kernel for p in TILE_CONFIGS}
    return {p: triton.autotune(configs=tile_configs(p), key=key)(kernel) for p in TILE_CONFIGS}


_spike_mm_tiles_tuned = autotuned(_spike_mm_tiles_kernel, ["M_BUCKET", "N", "K", "PARTS", "HAS_BIAS"])
_spike_grad_w_tiles_tuned = autotuned(_spike_grad_w_tiles_kernel, ["M_BUCKET", "N", "K", "SPLIT"])


# SNNKERN_TILES_AUTOTUNE=0 (read at import): the tiles kernels launch the first config of each list on a GPU
# too, as on the CPU: no benchmarking, and one compile per shape instead of one per config (3-4). For
# correctness runs (the GPU session's tests stage, ~60 tiles shapes: ~150 compiles and ~0.5 s of timing
# each saved on a fresh machine); every config's result is tested by a one-entry TILE_CONFIGS.
AUTOTUNE = os.environ.get("SNNKERN_TILES_AUTOTUNE", "1") != "0"


def use_autotuner(t: torch.Tensor) -> bool:
    """Tune on GPUs; the CPU interpreter is too slow to time configs and has no tensor cores to tune for."""
    return t.is_cuda and AUTOTUNE


def launch_tiles(kernel, tuned, precision, grid, *args, **consts):
    """Launch a tiles kernel: through its autotuner for ``precision`` ("16bit" / "fp32") on a GPU, else
    with the first of that precision's TILE_CONFIGS. ``grid(BLOCK_M, BLOCK_N, BLOCK_K)`` gives the grid.
    A TILE_CONFIGS entry holding one config launches that config, unbenchmarked, on a GPU too: how the
    tests and the memcheck smoke run every tile shape (the autotuners were built at import)."""
    configs = TILE_CONFIGS[precision]
    with on_device(args[0]):
        if use_autotuner(args[0]) and len(configs) > 1:
            tuned[precision][lambda c: grid(c["BLOCK_M"], c["BLOCK_N"], c["BLOCK_K"])](*args, **consts)
        else:
            bm, bn, bk, warps, stages = configs[0]
            kernel[grid(bm, bn, bk)](*args, **consts, BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, num_warps=warps,
                                     num_stages=stages)


def aligned_rows(t: torch.Tensor) -> torch.Tensor:
    """``t`` (contiguous) with its last dimension padded to a multiple of 8 elements: the tiles kernels load
    rows 16 bytes at a time by cp.async, which needs every row 16-byte aligned. A width already a multiple of
    8 (most layers) costs nothing; another costs one copy (a parameter's weight parts are kept padded)."""
    width = t.shape[-1]
    return t if width % 8 == 0 else torch.nn.functional.pad(t, (0, -width % 8))


def _truncate_to_bf16(w: torch.Tensor) -> torch.Tensor:
    """The bf16 value whose bits are w's top 16 (rounding toward zero): never overflows to inf, and the
    remainder w - result is exact in fp32."""
    return (w.view(torch.int32) & -65536).view(torch.float32).to(torch.bfloat16)


def weight_parts(weight: torch.Tensor) -> torch.Tensor:
    """[PARTS, N, K] tensor-core operands whose sum is ``weight``: itself for fp16/bf16, and for fp32
    three bf16 parts hi + mid + lo (8 significant bits each: 24, all of fp32's; split by truncation,
    so weights up to fp32's largest stay finite). The result remembers which weight version it was
    made from: ``spike_linear`` refuses a cache that no longer matches its weight."""
    if weight.dtype in (torch.float16, torch.bfloat16):
        parts = weight.contiguous().unsqueeze(0)
    else:
        w = weight.float().contiguous()
        hi = _truncate_to_bf16(w)
        r = w - hi.float()
        mid = _truncate_to_bf16(r)
        lo = (r - mid.float()).to(torch.bfloat16)
        parts = torch.stack([hi, mid, lo])
    if not torch.compiler.is_compiling():  # a traced graph recomputes them anyway
        parts._snnkern_source = version_key(weight)
    return parts


def transposed_weight(weight: torch.Tensor) -> torch.Tensor:
    """W.T contiguous, what the gather walks, kept per parameter version: transposing a 32 MB fp16 weight
    costs ~14 us a call, a third of an ideal gather at 99.9% sparsity. The copy costs one more weight's memory."""
    return per_version(_WEIGHT_T, weight, lambda w: w.t().contiguous())


def cached_weight_parts(weight: torch.Tensor) -> torch.Tensor:
    """``weight_parts(weight)`` with rows padded for the tiles kernel (``aligned_rows``), kept per parameter
    version: splitting an fp32 weight into three bf16 parts is three passes over it (and most of a small
    call's host time), and padding a K that is not a multiple of 8 (hidden layers of 100, 300, 500) a
    copy, when done every call. 16-bit weights with K a multiple of 8 are their own part (a view)."""
    return per_version(_PARTS, weight, lambda w: aligned_rows(weight_parts(w)))


# parameter -> (key, W.T) and (key, weight parts)
_WEIGHT_T = new_store()
_PARTS = new_store()


def spike_linear_forward(bits, k, weight, bias, algorithm, parts=None, x=None, sched=None):
    """bits [M, W] int32, weight [N, k] -> [M, N] in weight's dtype: one Triton kernel, or for
    ``"dense"`` cuBLAS on the dense spikes ``x`` (unpacked from the bits when not given). ``sched``: the
    bits' ``tiles_schedule_forward`` when the caller has it (``"tiles"`` computes it otherwise)."""
    M, W = bits.shape
    N = weight.shape[0]
    if algorithm == "dense":
        dense = x.to(weight.dtype) if x is not None else unpack_forward(bits, k, weight.dtype)
        return torch.nn.functional.linear(dense, weight, bias)
    y = torch.empty((M, N), dtype=weight.dtype, device=bits.device)
    if y.numel() == 0:
        return y
    if k == 0:
        return y.zero_() if bias is None else y.copy_(bias.expand(M, N))
    bits = bits.contiguous()
    b = bias.contiguous() if bias is not None else y
    if algorithm == "gather":
        wt = transposed_weight(weight)
        idx, cnt = active_inputs_forward(bits, k, GATHER_ROWS)
        with on_device(bits):
            _spike_mm_gather_kernel[(_cdiv(M, GATHER_ROWS), _cdiv(N, GATHER_N))](
                bits, idx, cnt, wt, b, y, M, N, k, W, HAS_BIAS=bias is not None,
                FMA_DOT=weight.dtype == torch.float32 or not bits.is_cuda,
                ROWS=GATHER_ROWS, BLOCK_N=GATHER_N, BLOCK_I=GATHER_I, num_warps=GATHER_WARPS,
                num_stages=GATHER_STAGES)
    else:
        parts = aligned_rows(weight_parts(weight) if parts is None else parts)
        launch_tiles(_spike_mm_tiles_kernel, _spike_mm_tiles_tuned, "fp32" if parts.shape[0] > 1 else "16bit",
                     lambda bm, bn, bk: (_cdiv(M, bm), _cdiv(N, bn)),
                     bits, parts, b, y, tiles_schedule_forward(bits, k) if sched is None else sched, M, N, k, W,
                     parts.shape[2], _pow2(M),
                     PARTS=parts.shape[0], HAS_BIAS=bias is not None, UPCAST_DOT=not bits.is_cuda)
    return y


def spike_grad_weight_forward(bits, k, grad_y, algorithm, sched=None):
    """grad_weight = dY.T @ S from the packed spikes: bits [M, W], dY [M, N] -> [N, k] in dY's dtype.
    ``"gather"`` walks the transposed bits; any other algorithm (``"dense"`` too) runs the tiles kernel,
    on ``sched`` (the bits' ``tiles_schedule_forward``) when given."""
    M, N = grad_y.shape
    grad_y = grad_y.contiguous()
    if algorithm == "gather":
        # S.T packed along M is a spike matrix [k, M]; the gather kernel then adds, for each input k,
        # the rows of dY at the steps where k spiked (dY.T plays the weight [N, M])
        bits_t = transpose_packed_forward(bits.contiguous(), k)
        return spike_linear_forward(bits_t, M, grad_y.t(), None, "gather").t().contiguous()
    gw = torch.empty((N, k), dtype=grad_y.dtype, device=grad_y.device)
    if gw.numel() == 0 or M == 0:
        return gw.zero_()
    bits, g = bits.contiguous(), aligned_rows(grad_y)
    launch_tiles(_spike_grad_w_tiles_kernel, _spike_grad_w_tiles_tuned,
                 "fp32" if grad_y.dtype == torch.float32 else "16bit",
                 lambda bm, bn, bk: (_cdiv(N, bn), _cdiv(k, bk)),
                 bits, g, gw, tiles_schedule_forward(bits, k) if sched is None else sched, M, N, k, bits.shape[1],
                 g.shape[1], _pow2(M),
                 SPLIT=grad_y.dtype == torch.float32, UPCAST_DOT=not bits.is_cuda)
    return gw


@torch.library.custom_op("snnkern::spike_grad_weight", mutates_args=())
def spike_grad_weight_op(bits: torch.Tensor, k: int, grad_y: torch.Tensor, algorithm: str) -> torch.Tensor:
    return spike_grad_weight_forward(bits, k, grad_y, algorithm)


@spike_grad_weight_op.register_fake
def _spike_grad_weight_fake(bits, k, grad_y, algorithm):
    return grad_y.new_empty((grad_y.shape[1], k))


@torch.library.custom_op("snnkern::spike_linear", mutates_args=())
def spike_linear_op(x: Optional[torch.Tensor], bits: torch.Tensor, k: int, weight: torch.Tensor,
                    bias: Optional[torch.Tensor], parts: Optional[torch.Tensor], algorithm: str) -> torch.Tensor:
    """bits: packed spikes [M, ceil(k/32)], what the kernels read and autograd saves. x: the same
    spikes dense [M, k] when the caller has them (a gradient can then reach them; only ``"dense"``
    reads them), else None."""
    return spike_linear_forward(bits, k, weight, bias, algorithm, parts, x)


@spike_linear_op.register_fake
def _spike_linear_fake(x, bits, k, weight, bias, parts, algorithm):
    return bits.new_empty((bits.shape[0], weight.shape[0]), dtype=weight.dtype)


def _setup(ctx, inputs, output):
    x, bits, k, weight, bias, _parts, algorithm = inputs
    ctx.k, ctx.has_bias, ctx.algorithm = k, bias is not None, algorithm
    ctx.x_dtype = x.dtype if x is not None else None
    ctx.save_for_backward(bits, weight)  # the spikes as bits: k/8 bytes a row


def _grads(ctx, grad_y, grad_weight_of):
    """(grad_x, grad_weight, grad_bias); ``grad_weight_of(bits, k, dY, algorithm)`` runs dY.T @ S."""
    bits, weight = ctx.saved_tensors
    need_x, _, _, need_w, need_b = ctx.needs_input_grad[:5]
    grad_y = grad_y.to(weight.dtype)
    grad_x = (grad_y @ weight).to(ctx.x_dtype) if need_x else None
    grad_w = grad_weight_of(bits, ctx.k, grad_y, ctx.algorithm) if need_w else None
    grad_b = grad_y.sum(0) if need_b and ctx.has_bias else None
    return grad_x, grad_w, grad_b


def _op_backward(ctx, grad_y):
    # through the registered op, so that compiled/traced backward graphs see an op, not a launch
    grad_x, grad_w, grad_b = _grads(ctx, grad_y, torch.ops.snnkern.spike_grad_weight)
    return grad_x, None, None, grad_w, grad_b, None, None


spike_linear_op.register_autograd(_op_backward, setup_context=_setup)


class SpikeLinearFunction(torch.autograd.Function):
    """Eager autograd path of ``spike_linear_op`` (a registered op costs far more host time per call)."""

    @staticmethod
    def forward(ctx, x, bits, k, weight, bias, parts, algorithm):
        # ctx-style: a separate setup_context makes Function.apply bind arguments via inspect every call
        _setup(ctx, (x, bits, k, weight, bias, parts, algorithm), None)
        # tiles: one schedule serves the forward and grad_weight (4 bytes a row kept, its launches saved)
        ctx.sched = None
        if algorithm == "tiles" and ctx.needs_input_grad[3] and bits.numel() and weight.numel():
            bits = bits.contiguous()
            ctx.sched = tiles_schedule_forward(bits, k)
        return spike_linear_forward(bits, k, weight, bias, algorithm, parts, x, ctx.sched)

    @staticmethod
    def backward(ctx, grad_y):
        grad_x, grad_w, grad_b = _grads(
            ctx, grad_y, lambda bits, k, dy, algorithm: spike_grad_weight_forward(bits, k, dy, algorithm, ctx.sched))
        return grad_x, None, None, grad_w, grad_b, None, None


def spike_linear_apply(x, bits, k, weight, bias, parts, algorithm):
    """``spike_linear_op`` on the cheapest path: the registered op while torch.compile traces, the
    autograd Function when a gradient is needed, else the launcher itself."""
    if torch.compiler.is_compiling():
        return spike_linear_op(x, bits, k, weight, bias, parts, algorithm)
    tensors = (x, weight, bias)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors):
        return SpikeLinearFunction.apply(x, bits, k, weight, bias, parts, algorithm)
    return spike_linear_forward(bits, k, weight, bias, algorithm, parts, x)


def spike_linear_reference(x, weight, bias=None):
    """Dense PyTorch: F.linear on the spikes with fp32 accumulation, in weight's dtype."""
    c = torch.promote_types(weight.dtype, torch.float32)  # fp32 accumulation (fp64 stays fp64)
    y = torch.nn.functional.linear(x.to(c), weight.to(c), None if bias is None else bias.to(c))
    return y.to(weight.dtype)


__all__ = ["ALGORITHMS", "weight_parts", "spike_linear_forward", "spike_linear_op", "spike_linear_apply",
           "SpikeLinearFunction", "spike_linear_reference",
           "spike_grad_weight_forward", "spike_grad_weight_op",
           "packed_words"]
