"""The bit-walking gather kernel that ``spike_linear``'s gather replaced, kept only as the baseline that
the machine-code guard of test_kernel_compile.py must reject: each program owns one output row, walks its
packed words one at a time and adds one spiking input's weight row at a time, so every weight load is
consumed (FADD) before the next one is issued -- one L2 round trip per spike."""
from snnkern.ops._triton import tl, triton


@triton.jit
def gather_walk_kernel(
    p_ptr,  # [M, W] int32 packed spikes
    wt_ptr,  # [K, N] W.T, contiguous (row k = the weights leaving input k)
    b_ptr,  # [N] bias (if HAS_BIAS)
    y_ptr,  # [M, N] output
    N, K, W,
    HAS_BIAS: tl.constexpr, BLOCK_N: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    offs_n = tl.program_id(1).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < N
    acc = tl.zeros([BLOCK_N], tl.float32)
    for w in range(W):
        word = tl.load(p_ptr + row * W + w)
        if word != 0:  # visit only the inputs that spiked
            for j in tl.static_range(32):
                k = w * 32 + j
                if (((word >> j) & 1) != 0) & (k < K):
                    acc += tl.load(wt_ptr + k.to(tl.int64) * N + offs_n, mask=n_mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        acc += tl.load(b_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + row * N + offs_n, acc.to(y_ptr.dtype.element_ty), mask=n_mask)


BLOCK_N, WARPS = 256, 4  # the launch it had
