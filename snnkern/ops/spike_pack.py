"""Bit-packed spikes: 32 binary spikes per int32 word along the last dimension.

Layout: for spikes ``s[..., K]`` the packed tensor is ``p[..., ceil(K/32)]`` (int32) with
``bit j of p[..., w] == s[..., 32*w + j]`` (least significant bit first); bits past K are 0.
Words are int32 (bit 31 is the sign bit) because that is what torch and Triton index cheapest.
"""
from __future__ import annotations

import torch

from ._triton import on_device, tl, triton

WORD_BITS = 32
PACK_BLOCK_W = 64  # words per program
TRANSPOSE_BLOCK_K, TRANSPOSE_WORDS = 32, 8  # columns and output words per program of the bit transpose
ACTIVE_CHUNK_W = 32  # words (1024 inputs) per step of the active-input compaction
# The tiles schedule (``tiles_schedule_forward``): SCHED_ROWS rows per program of the any-spike scan,
# SCHED_COMPACT rows per program of the row partition (a multiple of SCHED_ROWS), SCHED_CHUNK_W words a step.
SCHED_ROWS, SCHED_COMPACT, SCHED_CHUNK_W = 64, 1024, 32
SCHED_COUNTS = 1024  # per-block counts the row partition sums a step
# One program builds the whole schedule (``_schedule_one_kernel``) when M <= SCHED_ONE_ROWS and it reads the
# words in at most SCHED_ONE_STEPS steps: every row's spike flag stays in its registers ([pow2(M)] rows, at
# least SCHED_ONE_MIN_ROWS), the words come min(SCHED_CHUNK_W, SCHED_ONE_TILE // rows) a step for all rows at
# once (a tile of up to SCHED_ONE_TILE words, all in flight together). One launch, no fill, no scratch; more
# steps than that and one SM waits on more load round trips than the grid path's two launches cost.
SCHED_ONE_ROWS, SCHED_ONE_STEPS, SCHED_ONE_MIN_ROWS, SCHED_ONE_TILE = 4096, 8, 32, 4096
SCHED_ONE_WARPS = 8


def packed_words(K: int) -> int:
    return (K + WORD_BITS - 1) // WORD_BITS


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


@triton.jit
def _pack_kernel(
    s_ptr,  # [M, K] spikes (any dtype; nonzero = spike), contiguous
    p_ptr,  # [M, W] int32 out
    K, W,  # spikes and words per row
    BLOCK_W: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    words = tl.program_id(1) * BLOCK_W + tl.arange(0, BLOCK_W)
    bits = tl.arange(0, 32)
    k = words[:, None] * 32 + bits[None, :]  # [BLOCK_W, 32] element index of every bit
    s = tl.load(s_ptr + row * K + k, mask=k < K, other=0)
    # distinct powers of two: their sum is their OR, and bit 31 wraps to the sign bit as wanted
    # compared in fp32: -0.0 is no spike, and the interpreter mis-reads raw bf16
    word = tl.sum(tl.where(s.to(tl.float32) != 0.0, 1, 0).to(tl.int32) << bits[None, :], axis=1)
    tl.store(p_ptr + row * W + words, word, mask=words < W)


@triton.jit
def _unpack_kernel(
    p_ptr,  # [M, W] int32 packed spikes
    s_ptr,  # [M, K] spikes out, any dtype
    K, W,
    BLOCK_W: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    words = tl.program_id(1) * BLOCK_W + tl.arange(0, BLOCK_W)
    bits = tl.arange(0, 32)
    word = tl.load(p_ptr + row * W + words, mask=words < W, other=0)
    s = (word[:, None] >> bits[None, :]) & 1
    k = words[:, None] * 32 + bits[None, :]
    # through fp32: Triton's CPU interpreter converts int -> bf16 wrongly
    tl.store(s_ptr + row * K + k, s.to(tl.float32).to(s_ptr.dtype.element_ty), mask=k < K)


@triton.jit
def _transpose_bits_kernel(
    p_ptr,  # [M, W] int32: spikes [M, K] packed along K
    q_ptr,  # [K, WM] int32 out: the same spikes packed along M
    M, K, W, WM,
    BLOCK_K: tl.constexpr, WORDS: tl.constexpr,
):
    # one program: WORDS consecutive output words (32*WORDS rows of p) for BLOCK_K columns, so each
    # column's stores are WORDS adjacent words (whole 32-byte sectors), not one word per sector
    wm = tl.program_id(0) * WORDS + tl.arange(0, WORDS)
    ks = tl.program_id(1) * BLOCK_K + tl.arange(0, BLOCK_K)
    rows = tl.program_id(0).to(tl.int64) * (WORDS * 32) + tl.arange(0, WORDS * 32)
    # each column reads the word that holds its bit (32 columns share it), as in the spike_linear tiles
    words = tl.load(p_ptr + rows[:, None] * W + (ks // 32)[None, :],
                    mask=(rows < M)[:, None] & (ks < K)[None, :], other=0)
    bits = tl.reshape((words >> (ks % 32)[None, :].to(tl.int32)) & 1, [WORDS, 32, BLOCK_K])
    word = tl.sum(bits << tl.arange(0, 32)[None, :, None], axis=1)  # [WORDS, BLOCK_K]; sum == OR
    tl.store(q_ptr + ks[None, :].to(tl.int64) * WM + wm[:, None], word, mask=(wm < WM)[:, None] & (ks < K)[None, :])


@triton.jit
def _or(a, b):
    return a | b


@triton.jit
def _before(flags):
    """Exclusive prefix sum of 0/1 int32 flags: how many set flags precede each one (its slot in a list
    compacted from the set ones)."""
    return tl.cumsum(flags, 0) - flags


@triton.jit
def _append(ptr, n, values, flags):
    """Append ``values`` where ``flags`` is set, in order, to the list at ``ptr`` holding ``n`` entries;
    returns the new length."""
    tl.store(ptr + n + _before(flags), values, mask=flags != 0)
    return n + tl.sum(flags, 0)


@triton.jit
def _active_inputs_kernel(
    p_ptr,  # [M, W] int32 packed spikes
    idx_ptr,  # [cdiv(M, ROWS), K] int32 out: row block b's active inputs, ascending, in its first cnt[b] entries
    cnt_ptr,  # [cdiv(M, ROWS)] int32 out: how many inputs spiked in at least one row of the block
    M, K, W,
    ROWS: tl.constexpr,  # rows per block
    CHUNK_W: tl.constexpr,  # words per step
):
    blk = tl.program_id(0)
    rows = blk.to(tl.int64) * ROWS + tl.arange(0, ROWS)
    bit = tl.arange(0, 32)
    total = tl.sum(tl.zeros([ROWS], tl.int32), 0)  # active inputs found so far (an int32 scalar)
    for w0 in range(0, W, CHUNK_W):
        ws = w0 + tl.arange(0, CHUNK_W)
        words = tl.load(p_ptr + rows[:, None] * W + ws[None, :], mask=(rows < M)[:, None] & (ws < W)[None, :], other=0)
        union = tl.reduce(words, 0, _or)  # [CHUNK_W]: bit set where any row of the block spiked
        ks = ws[:, None] * 32 + bit[None, :]
        on = ((((union[:, None] >> bit[None, :]) & 1) != 0) & (ks < K)).to(tl.int32)  # padding bits past K: off
        on = tl.reshape(on, [CHUNK_W * 32])
        ks = tl.reshape(ks, [CHUNK_W * 32])
        total = _append(idx_ptr + blk.to(tl.int64) * K, total, ks, on)
    tl.store(cnt_ptr + blk, total)


def active_inputs_forward(p: torch.Tensor, K: int, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For packed spikes [M, ceil(K/32)], per block of ``rows`` consecutive rows: the inputs k < K that
    spiked in at least one of its rows (ascending) and their count -> (idx [cdiv(M, rows), K] int32, only
    the first cnt[b] entries of row b written; cnt [cdiv(M, rows)] int32). One read of the bits; what the
    gather kernel walks instead of the bits."""
    M, W = p.shape
    blocks = _cdiv(M, rows)
    idx = torch.empty((blocks, K), dtype=torch.int32, device=p.device)
    cnt = (torch.empty if W else torch.zeros)((blocks,), dtype=torch.int32, device=p.device)  # the kernel writes all
    if blocks and W:
        with on_device(p):
            _active_inputs_kernel[(blocks,)](p.contiguous(), idx, cnt, M, K, W, ROWS=rows, CHUNK_W=ACTIVE_CHUNK_W)
    return idx, cnt


@triton.jit
def _valid_bits(ws, K):
    """Per word index: the mask of its bits that are inputs < K (padding bits past K are not spikes)."""
    left = K - ws * 32
    return tl.where(left >= 32, -1, (1 << tl.maximum(tl.minimum(left, 31), 0)) - 1)


@triton.jit
def _row_any_kernel(
    p_ptr,  # [M, W] int32 packed spikes
    flag_ptr,  # [M] int32 out: 1 where the row has a spike (bits < K)
    cnt_ptr,  # [cdiv(M, ROWS)] int32 out: spiking rows per block
    union_ptr,  # [W] int32, zeroed: OR of every row's words (atomically, only the bits it lacks)
    M, K, W,
    ROWS: tl.constexpr, CHUNK_W: tl.constexpr,
):
    blk = tl.program_id(0)
    rows = blk.to(tl.int64) * ROWS + tl.arange(0, ROWS)
    any_ = tl.zeros([ROWS], tl.int32)
    for w0 in range(0, W, CHUNK_W):
        ws = w0 + tl.arange(0, CHUNK_W)
        words = tl.load(p_ptr + rows[:, None] * W + ws[None, :], mask=(rows < M)[:, None] & (ws < W)[None, :], other=0)
        words = words & _valid_bits(ws, K)[None, :]
        any_ = any_ | tl.max(tl.where(words != 0, 1, 0), axis=1)
        u = tl.reduce(words, 0, _or)
        # only bits the union lacks (as last seen): once dense input has set every bit, no more atomics
        seen = tl.load(union_ptr + ws, mask=ws < W, other=0)
        tl.atomic_or(union_ptr + ws, u, mask=(ws < W) & ((u & ~seen) != 0))
    tl.store(flag_ptr + rows, any_, mask=rows < M)
    tl.store(cnt_ptr + blk, tl.sum(any_, 0))


@triton.jit
def _schedule_kernel(
    flag_ptr,  # [M] int32: row has a spike (_row_any_kernel)
    cnt_ptr,  # [NBLK] int32: spiking rows per block of SUB rows
    sched_ptr,  # [2 + M + 2W] int32: see tiles_schedule_forward; its union part filled by _row_any_kernel
    M, W, NBLK,
    ROWS: tl.constexpr,  # rows per program (a multiple of SUB)
    SUB: tl.constexpr,  # rows per block of cnt
    BLOCK_C: tl.constexpr,  # counts read a step
    CHUNK_W: tl.constexpr,
):
    blk = tl.program_id(0)
    first = blk * (ROWS // SUB)  # blocks of cnt before this program's rows
    cs = tl.arange(0, BLOCK_C)
    before = tl.sum(tl.zeros([BLOCK_C], tl.int32), 0)
    total = before
    for c0 in range(0, NBLK, BLOCK_C):
        c = tl.load(cnt_ptr + c0 + cs, mask=c0 + cs < NBLK, other=0)
        before += tl.sum(tl.where(c0 + cs < first, c, 0), 0)
        total += tl.sum(c, 0)
    rows = blk * ROWS + tl.arange(0, ROWS)
    on = tl.load(flag_ptr + rows, mask=rows < M, other=0)
    off = tl.where(rows < M, 1 - on, 0)
    # stable partition: spiking rows first (ascending), then the silent ones (ascending)
    pos = tl.where(on != 0, before + _before(on), total + (blk * ROWS - before) + _before(off))
    tl.store(sched_ptr + 2 + pos, rows, mask=rows < M)
    if blk == 0:
        tl.store(sched_ptr, total)
        ws0 = tl.arange(0, CHUNK_W)
        n = tl.sum(tl.zeros([CHUNK_W], tl.int32), 0)
        for w0 in range(0, W, CHUNK_W):
            u = tl.load(sched_ptr + 2 + M + W + w0 + ws0, mask=w0 + ws0 < W, other=0)
            n = _append(sched_ptr + 2 + M, n, w0 + ws0, tl.where(u != 0, 1, 0))
        tl.store(sched_ptr + 1, n)


@triton.jit
def _schedule_one_kernel(
    p_ptr,  # [M, W] int32 packed spikes
    sched_ptr,  # [2 + M + 2W] int32 out, every entry written (see tiles_schedule_forward)
    M, K, W,
    ROWS: tl.constexpr,  # a power of two >= M: every row's flag is held at once
    CHUNK_W: tl.constexpr,  # words per step (ROWS * CHUNK_W words loaded at once)
):
    # a single program: the union needs no atomics and the row partition no second pass
    rows = tl.arange(0, ROWS)
    ws0 = tl.arange(0, CHUNK_W)
    any_ = tl.zeros([ROWS], tl.int32)
    n = tl.sum(tl.zeros([CHUNK_W], tl.int32), 0)  # active words so far (an int32 scalar)
    for w0 in range(0, W, CHUNK_W):
        ws = w0 + ws0
        words = tl.load(p_ptr + rows[:, None] * W + ws[None, :],  # int32: M * W <= STEPS * TILE
                        mask=(rows < M)[:, None] & (ws < W)[None, :], other=0)
        words = words & _valid_bits(ws, K)[None, :]
        any_ = any_ | tl.max(tl.where(words != 0, 1, 0), axis=1)
        u = tl.reduce(words, 0, _or)
        tl.store(sched_ptr + 2 + M + W + ws, u, mask=ws < W)
        n = _append(sched_ptr + 2 + M, n, ws, tl.where(u != 0, 1, 0))
    for w0 in range(0, W, CHUNK_W):  # the word list's unused tail: 0, as the reference has it
        ws = w0 + ws0
        tl.store(sched_ptr + 2 + M + ws, tl.zeros([CHUNK_W], tl.int32), mask=(ws >= n) & (ws < W))
    on = tl.where(rows < M, any_, 0)
    off = tl.where(rows < M, 1 - any_, 0)
    total = tl.sum(on, 0)
    # stable partition: spiking rows first (ascending), then the silent ones (ascending)
    pos = tl.where(on != 0, _before(on), total + _before(off))
    tl.store(sched_ptr + 2 + pos, rows, mask=rows < M)
    tl.store(sched_ptr, total)
    tl.store(sched_ptr + 1, n)


def _sched_one_shape(M: int) -> tuple[int, int]:
    """(ROWS, CHUNK_W) of ``_schedule_one_kernel`` for M rows: pow2(M) rows (at least SCHED_ONE_MIN_ROWS),
    SCHED_CHUNK_W words a step, fewer when that would pass SCHED_ONE_TILE words (registers: no spill)."""
    rows = max(SCHED_ONE_MIN_ROWS, 1 << max(M - 1, 0).bit_length())
    return rows, max(1, min(SCHED_CHUNK_W, SCHED_ONE_TILE // rows))


def tiles_schedule_forward(p: torch.Tensor, K: int) -> torch.Tensor:
    """What the ``tiles`` kernels walk instead of every row and every word of packed spikes [M, W]: one
    int32 tensor [2 + M + 2W] holding

    - ``[0]`` the number R of rows with a spike (bits < K), ``[1]`` the number A of words with a spike in any row;
    - ``[2 : 2+M]`` the rows, spiking ones first (ascending), then the silent ones;
    - ``[2+M : 2+M+W]`` in its first A entries the words with a spike in some row (ascending);
    - ``[2+M+W :]`` the OR over all rows of each word (padding bits cleared).

    One read of the bits, no host sync. Up to SCHED_ONE_ROWS rows read in up to SCHED_ONE_STEPS steps: one
    launch of one program into an uninitialised tensor (it writes every entry, the word list's unused tail as
    0); more: two launches over a grid into a zeroed one (the union is OR-ed atomically)."""
    M, W = p.shape
    rows, chunk = _sched_one_shape(M)
    if M <= SCHED_ONE_ROWS and W <= SCHED_ONE_STEPS * chunk:
        sched = torch.empty(2 + M + 2 * W, dtype=torch.int32, device=p.device)
        with on_device(p):
            _schedule_one_kernel[(1,)](p if p.is_contiguous() else p.contiguous(), sched, M, K, W, ROWS=rows,
                                       CHUNK_W=chunk, num_warps=SCHED_ONE_WARPS)
        return sched
    sched = torch.zeros(2 + M + 2 * W, dtype=torch.int32, device=p.device)
    nblk = _cdiv(M, SCHED_ROWS)
    scratch = torch.empty(M + nblk, dtype=torch.int32, device=p.device)
    if M and W:
        p = p.contiguous()
        with on_device(p):
            _row_any_kernel[(nblk,)](p, scratch, scratch[M:], sched[2 + M + W:], M, K, W,
                                     ROWS=SCHED_ROWS, CHUNK_W=SCHED_CHUNK_W)
            _schedule_kernel[(_cdiv(M, SCHED_COMPACT),)](scratch, scratch[M:], sched, M, W, nblk, ROWS=SCHED_COMPACT,
                                                         SUB=SCHED_ROWS, BLOCK_C=SCHED_COUNTS, CHUNK_W=SCHED_CHUNK_W)
    elif M:
        sched[2:2 + M] = torch.arange(M, dtype=torch.int32, device=p.device)
    return sched


def tiles_schedule_reference(p: torch.Tensor, K: int) -> torch.Tensor:
    """``tiles_schedule_forward`` in plain PyTorch, with the unused entries of the word list set to 0."""
    M, W = p.shape
    s = unpack_reference(p, K, torch.bool)
    rows_on = s.any(1)
    order = torch.cat([rows_on.nonzero().flatten(), (~rows_on).nonzero().flatten()])
    union = pack_reference(s.any(0)) if M else torch.zeros(W, dtype=torch.int32, device=p.device)
    words = (union != 0).nonzero().flatten()
    out = torch.zeros(2 + M + 2 * W, dtype=torch.int32, device=p.device)
    out[0], out[1] = int(rows_on.sum()), len(words)
    out[2:2 + M] = order
    out[2 + M:2 + M + len(words)] = words
    out[2 + M + W:] = union
    return out


def active_inputs_reference(p: torch.Tensor, K: int, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``active_inputs_forward`` in plain PyTorch, with the unwritten entries of idx set to -1."""
    s = unpack_reference(p, K, torch.bool)
    blocks = _cdiv(s.shape[0], rows)
    padded = torch.zeros((blocks * rows, K), dtype=torch.bool, device=p.device)
    padded[:s.shape[0]] = s
    any_ = padded.reshape(blocks, rows, K).any(1)
    cnt = any_.sum(1, dtype=torch.int32)
    idx = torch.full((blocks, K), -1, dtype=torch.int32, device=p.device)
    for b in range(blocks):
        idx[b, :int(cnt[b])] = any_[b].nonzero().flatten().to(torch.int32)
    return idx, cnt


def transpose_packed_forward(p: torch.Tensor, K: int) -> torch.Tensor:
    """[M, ceil(K/32)] bits of spikes [M, K] -> [K, ceil(M/32)] bits of their transpose, without ever
    holding the dense spikes (what an event-driven S.T @ dY walks)."""
    M, W = p.shape
    WM = packed_words(M)
    out = torch.empty((K, WM), dtype=torch.int32, device=p.device)
    if out.numel():
        with on_device(p):
            _transpose_bits_kernel[(_cdiv(WM, TRANSPOSE_WORDS), _cdiv(K, TRANSPOSE_BLOCK_K))](
                p.contiguous(), out, M, K, W, WM, BLOCK_K=TRANSPOSE_BLOCK_K, WORDS=TRANSPOSE_WORDS)
    return out


def transpose_packed_reference(p: torch.Tensor, K: int) -> torch.Tensor:
    return pack_reference(unpack_reference(p, K, torch.uint8).t())


def pack_forward(s: torch.Tensor) -> torch.Tensor:
    K = s.shape[-1]
    W = packed_words(K)
    s2 = s.reshape(s.shape[:-1].numel(), K).contiguous()  # not -1: K may be 0
    if s2.dtype == torch.bool:
        s2 = s2.view(torch.uint8)  # same bytes; Triton loads uint8 plainly
    out = torch.empty((s2.shape[0], W), dtype=torch.int32, device=s.device)
    if out.numel():
        with on_device(s2):
            _pack_kernel[(s2.shape[0], _cdiv(W, PACK_BLOCK_W))](s2, out, K, W, BLOCK_W=PACK_BLOCK_W)
    return out.reshape(*s.shape[:-1], W)


def unpack_forward(p: torch.Tensor, K: int, dtype: torch.dtype) -> torch.Tensor:
    W = p.shape[-1]
    p2 = p.reshape(p.shape[:-1].numel(), W).contiguous()
    out = torch.empty((p2.shape[0], K), dtype=dtype, device=p.device)
    view = out.view(torch.uint8) if dtype == torch.bool else out
    if out.numel():
        with on_device(p2):
            _unpack_kernel[(p2.shape[0], _cdiv(W, PACK_BLOCK_W))](p2, view, K, W, BLOCK_W=PACK_BLOCK_W)
    return out.reshape(*p.shape[:-1], K)


@torch.library.custom_op("snnkern::pack_spikes", mutates_args=())
def pack_spikes_op(s: torch.Tensor) -> torch.Tensor:
    return pack_forward(s)


@pack_spikes_op.register_fake
def _pack_fake(s):
    return s.new_empty((*s.shape[:-1], packed_words(s.shape[-1])), dtype=torch.int32)


@torch.library.custom_op("snnkern::unpack_spikes", mutates_args=())
def unpack_spikes_op(p: torch.Tensor, k: int, dtype: torch.dtype) -> torch.Tensor:
    return unpack_forward(p, k, dtype)


@unpack_spikes_op.register_fake
def _unpack_fake(p, k, dtype):
    return p.new_empty((*p.shape[:-1], k), dtype=dtype)


def pack_reference(s: torch.Tensor) -> torch.Tensor:
    K = s.shape[-1]
    W = packed_words(K)
    bits = torch.zeros((*s.shape[:-1], W * WORD_BITS), dtype=torch.int64, device=s.device)
    bits[..., :K] = (s != 0).to(torch.int64)
    weights = torch.ones(WORD_BITS, dtype=torch.int64, device=s.device) << torch.arange(WORD_BITS, device=s.device)
    words = (bits.reshape(*s.shape[:-1], W, WORD_BITS) * weights).sum(-1)
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)  # two's complement


def unpack_reference(p: torch.Tensor, K: int, dtype: torch.dtype) -> torch.Tensor:
    shifts = torch.arange(WORD_BITS, device=p.device, dtype=torch.int32)
    bits = (p.unsqueeze(-1) >> shifts) & 1
    # the length spelled out: -1 cannot be inferred when there are no rows
    return bits.reshape(*p.shape[:-1], p.shape[-1] * WORD_BITS)[..., :K].to(dtype)
