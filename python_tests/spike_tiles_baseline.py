"""The ``tiles`` kernels that ``spike_linear``'s pipelined tiles replaced, kept only as the baseline that the
machine-code guard of test_kernel_compile.py must reject: each K step (M step for grad_weight) loads its
spike words, tests them (``if tl.max(...) > 0``) and only then loads the weight (dY) tile behind that
branch, so Triton's pipeliner cannot issue the next step's loads early: the tiles come through registers
(LDG then STS), no cp.async, nothing in flight across steps; and the skip needs a whole BLOCK_M x BLOCK_K
tile without a spike, which random spikes almost never give."""
from snnkern.ops._triton import tl, triton


@triton.jit
def _spike_mm_tiles_kernel(
    p_ptr,  # [M, W] int32 packed spikes
    w_ptr,  # [PARTS, N, K] weight parts (bf16/fp16), contiguous
    b_ptr,  # [N] bias (if HAS_BIAS)
    y_ptr,  # [M, N] output
    M, N, K, W,
    M_BUCKET,  # next power of two >= M: only the autotuner's key (not read)
    PARTS: tl.constexpr, HAS_BIAS: tl.constexpr, UPCAST_DOT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    offs_m = tl.program_id(0).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(1).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
    for kb in range(0, tl.cdiv(K, BLOCK_K)):
        ks = kb * BLOCK_K + tl.arange(0, BLOCK_K)
        # each column reads the word holding its bit (32 columns share a word: L1 hits), which keeps
        # the tile 2-D and the registers low (a [M, words, 32] unpack spills)
        words = tl.load(p_ptr + offs_m[:, None] * W + (ks // 32)[None, :],
                        mask=(offs_m < M)[:, None] & (ks < K)[None, :], other=0)
        if tl.max(tl.where(words != 0, 1, 0)) > 0:  # no spike in this tile: nothing to add
            a = (words >> (ks % 32)[None, :].to(tl.int32)) & 1
            w_ptrs = w_ptr + offs_n[None, :] * K + ks[:, None]  # W.T tile [BLOCK_K, BLOCK_N]
            w_mask = (ks < K)[:, None] & (offs_n < N)[None, :]
            for part in tl.static_range(PARTS):
                wt = tl.load(w_ptrs + part * N * K, mask=w_mask, other=0.0)
                if UPCAST_DOT:  # the CPU interpreter's bf16 dot is wrong; fp32 operands give the same sums
                    acc = tl.dot(a.to(tl.float32), wt.to(tl.float32), acc, input_precision="ieee")
                else:
                    acc = tl.dot(a.to(wt.dtype), wt, acc)
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_n, mask=offs_n < N, other=0.0).to(tl.float32)[None, :]
    tl.store(y_ptr + offs_m[:, None] * N + offs_n[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=(offs_m < M)[:, None] & (offs_n < N)[None, :])


@triton.jit
def _spike_grad_w_tiles_kernel(
    p_ptr,  # [M, W] int32 packed spikes S
    g_ptr,  # [M, N] dY, contiguous
    gw_ptr,  # [N, K] grad_weight out = dY.T @ S
    M, N, K, W,
    M_BUCKET,  # next power of two >= M: only the autotuner's key (not read)
    SPLIT: tl.constexpr, UPCAST_DOT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    offs_n = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.program_id(1).to(tl.int64) * BLOCK_K + tl.arange(0, BLOCK_K)
    acc = tl.zeros([BLOCK_N, BLOCK_K], tl.float32)
    for mb in range(0, tl.cdiv(M, BLOCK_M)):
        ms = mb * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
        words = tl.load(p_ptr + ms[:, None] * W + (offs_k // 32)[None, :],
                        mask=(ms < M)[:, None] & (offs_k < K)[None, :], other=0)
        if tl.max(tl.where(words != 0, 1, 0)) > 0:  # rows of this block with no spike add nothing
            s = (words >> (offs_k % 32)[None, :].to(tl.int32)) & 1  # [BLOCK_M, BLOCK_K]
            g = tl.load(g_ptr + ms[:, None] * N + offs_n[None, :],
                        mask=(ms < M)[:, None] & (offs_n < N)[None, :], other=0.0)
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
             mask=(offs_n < N)[:, None] & (offs_k < K)[None, :])
