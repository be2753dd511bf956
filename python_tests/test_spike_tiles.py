"""spike_linear's ``tiles`` kernels (forward and grad_weight) and the schedule they walk, bit for bit.

The inputs are built so that every sum is exact in fp32 whatever the order (dyadic weights and gradients
with few significant bits, or a single term per output), so the kernels must equal the dense reference
exactly: a different summation order cannot hide a wrong, missing or doubled term. The structured cases
are the ones the schedule exists for: silent time steps, silent samples, silent blocks of channels."""
import os

import pytest
import torch

from snnkern.ops.spike_linear import (TILE_CONFIGS, spike_grad_weight_forward, spike_linear_forward,
                                      spike_linear_reference)
from snnkern.ops import spike_pack as SP
from snnkern.ops.spike_pack import (SCHED_COMPACT, pack_reference, tiles_schedule_forward,
                                    tiles_schedule_reference)

KERNEL = pytest.mark.triton
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# (T, B, K, N): rows M = T*B not a multiple of any BLOCK_M, K not a multiple of 32 (nor of 8: the padded
# weight rows), N not a multiple of 8 (the padded dY rows); and one shape where both are multiples of 64
SHAPES = [(3, 15, 129, 70), (2, 40, 300, 20), (1, 64, 64, 64)]
PATTERNS = ["random", "all_zero", "silent_steps", "silent_samples", "silent_channels", "one_hot"]


def dev():
    return "cuda" if torch.cuda.is_available() else "cpu"


def structured_spikes(T, B, K, pattern, seed=0):
    """[T*B, K] float spikes, time-major rows (row = t*B + b) as a multi-step layer sees them."""
    g = torch.Generator().manual_seed(seed)
    s = (torch.rand(T, B, K, generator=g) < 0.3).float()
    if pattern == "all_zero":
        s.zero_()
    elif pattern == "silent_steps":  # every other time step silent (T=1: the first half of the batch)
        if T > 1:
            s[::2] = 0
        else:
            s[:, :B // 2] = 0
    elif pattern == "silent_samples":  # samples silent at every step: rows b, b+B, b+2B, ...
        s[:, ::3] = 0
    elif pattern == "silent_channels":  # a block of whole words silent, and one half word
        s[..., 32:96] = 0
        s[..., 0:16] = 0
    elif pattern == "one_hot":  # one spike a row: every output is a single weight (plus the bias)
        s.zero_()
        idx = torch.randint(0, K, (T, B), generator=g)
        s.scatter_(2, idx.unsqueeze(-1), 1.0)
    return s.reshape(T * B, K)


def dyadic(shape, dtype, seed, full=False):
    """Values whose sums here are exact in fp32 and in the output dtype, whatever the order: for fp32,
    k/2^16 with |k| < 2^17 (17 significant bits: all three bf16 parts carry some; a sum of up to 128 of them
    stays within fp32's 24 bits); for bf16/fp16, integers in [-2, 2] (sums below 256 are exact in both:
    the CPU interpreter's float -> bf16 cast truncates, so a sum that had to round would differ there).
    ``full``: fp32 with all 24 bits, for single-term outputs."""
    g = torch.Generator().manual_seed(seed)
    if full:
        return (torch.randn(shape, generator=g) * 3).to(dtype)
    if dtype == torch.float32:
        return torch.randint(-(1 << 17) + 1, 1 << 17, shape, generator=g).float() / (1 << 16)
    return torch.randint(-2, 3, shape, generator=g).to(dtype)


def packed(s, garbage=True):
    """Bits of s, with the padding bits past K set when ``garbage`` (the kernels must ignore them)."""
    p = pack_reference(s)
    K = s.shape[1]
    if garbage and K % 32:
        p[:, -1] |= -1 << (K % 32)
    return p


# ---- the schedule ---------------------------------------------------------------------------------------

@KERNEL
@pytest.mark.parametrize("M,K", [(1, 1), (5, 40), (70, 129), (SCHED_COMPACT + 77, 300), (3, 33), (200, 64)])
@pytest.mark.parametrize("pattern", ["random", "all_zero", "silent_steps"])
def test_schedule_matches_reference(M, K, pattern):
    """Spiking rows first (ascending) then the silent ones, the words some row spiked in, their union;
    padding bits past K count as no spike; more rows than one compaction program holds."""
    s = (torch.rand(M, K, generator=torch.Generator().manual_seed(M + K)) < 0.05).float()
    if pattern == "all_zero":
        s.zero_()
    elif pattern == "silent_steps":
        s[M // 3: 2 * M // 3] = 0
    p = packed(s)
    ours = tiles_schedule_forward(p.to(dev()), K).cpu()
    ref = tiles_schedule_reference(p, K)
    W = p.shape[1]
    n_words = int(ref[1])
    assert torch.equal(ours[:2 + M], ref[:2 + M])  # counts and row order
    assert torch.equal(ours[2 + M:2 + M + n_words], ref[2 + M:2 + M + n_words])  # active words
    assert torch.equal(ours[2 + M + W:], ref[2 + M + W:])  # union
    assert int(ours[0]) == int(s.any(1).sum())


class _Spy:
    """Wraps a Triton kernel: counts its launches."""

    def __init__(self, kernel):
        self.kernel, self.launches = kernel, 0

    def __getitem__(self, grid):
        self.launches += 1
        return self.kernel[grid]


PATTERNS_SCHED = ["random", "all_zero", "all_one", "one_row", "one_word"]
# (M, K, patterns, the path the bound picks): no rows, no inputs, K not a multiple of 32; the largest one-program
# cases (most rows; most words for few rows and for most rows) and the smallest past each bound
_MOST_WORDS = 32 * SP.SCHED_ONE_STEPS * SP.SCHED_CHUNK_W  # inputs of the one-program path's widest rows (M <= 32)
_FEW = 32 * SP.SCHED_ONE_STEPS * (SP.SCHED_ONE_TILE // SP.SCHED_ONE_ROWS)  # and of its largest M
SCHED_CASES = ([(M, K, PATTERNS_SCHED, "one") for M, K in [(0, 70), (0, 0), (7, 0), (1, 31), (33, 64), (130, 200)]]
               + [(SP.SCHED_ONE_ROWS, _FEW - 3, ["random", "one_row"], "one"),
                  (32, _MOST_WORDS, ["random", "all_one"], "one"),
                  (SP.SCHED_ONE_ROWS + 1, 5, ["random"], "grid"), (SP.SCHED_ONE_ROWS, _FEW + 1, ["one_word"], "grid"),
                  (32, _MOST_WORDS + 1, ["one_row"], "grid")])


@KERNEL
@pytest.mark.parametrize("forced", [False, True], ids=["bound", "grid"])
@pytest.mark.parametrize("M,K,pattern,path", [(M, K, p, path) for M, K, ps, path in SCHED_CASES for p in ps])
def test_schedule_both_paths_match_reference(M, K, pattern, path, forced, monkeypatch):
    """The one-program schedule (up to SCHED_ONE_ROWS rows in up to SCHED_ONE_STEPS steps: one launch,
    nothing else) and the grid one (past the bound, or forced by a bound of -1 rows) equal the reference entry for
    entry, the word list's unused tail (0) included: no rows, no inputs, all silent, all spiking, one spiking
    row, one spiking word, K not a multiple of 32 with the padding bits past K set, non-contiguous bits."""
    if forced:
        if path == "grid":
            pytest.skip("the grid path already")
        monkeypatch.setattr(SP, "SCHED_ONE_ROWS", -1)
        path = "grid"
    one, row_any = _Spy(SP._schedule_one_kernel), _Spy(SP._row_any_kernel)
    monkeypatch.setattr(SP, "_schedule_one_kernel", one)
    monkeypatch.setattr(SP, "_row_any_kernel", row_any)
    s = (torch.rand(M, K, generator=torch.Generator().manual_seed(M + 3 * K)) < 0.02).float()
    if pattern == "all_zero":
        s.zero_()
    elif pattern == "all_one":
        s.fill_(1.0)
    elif pattern == "one_row" and M:
        s.zero_()
        s[M * 2 // 3] = 1.0
    elif pattern == "one_word":
        s.zero_()
        s[:, K // 2: K // 2 + 1] = 1.0
    p = packed(s)
    W = p.shape[1]
    wide = torch.zeros(M, 2 * W, dtype=torch.int32)
    wide[:, ::2] = p  # the same bits, every other column: a non-contiguous view
    ours = tiles_schedule_forward(wide.to(dev())[:, ::2] if M % 2 else p.to(dev()), K).cpu()
    assert torch.equal(ours, tiles_schedule_reference(p, K))
    assert one.launches == (path == "one")
    assert row_any.launches == (path == "grid" and M * W > 0)


def test_schedule_one_program_shape():
    """The one-program tile: the power of two of rows covering M (at least SCHED_ONE_MIN_ROWS), SCHED_CHUNK_W
    words a step, fewer past SCHED_ONE_TILE words, at least 1."""
    for M, want in ((0, SP.SCHED_ONE_MIN_ROWS), (1, SP.SCHED_ONE_MIN_ROWS), (32, 32), (33, 64), (1000, 1024),
                    (SP.SCHED_ONE_ROWS, SP.SCHED_ONE_ROWS)):
        rows, chunk = SP._sched_one_shape(M)
        assert rows == max(want, SP.SCHED_ONE_MIN_ROWS)
        assert chunk == max(1, min(SP.SCHED_CHUNK_W, SP.SCHED_ONE_TILE // rows)) and rows * chunk <= SP.SCHED_ONE_TILE


# ---- forward ---------------------------------------------------------------------------------------------

@KERNEL
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_exact(dtype, shape, pattern):
    T, B, K, N = shape
    s = structured_spikes(T, B, K, pattern, seed=K)
    one = pattern == "one_hot"
    w = dyadic((N, K), dtype, seed=1, full=one and dtype == torch.float32)
    b = dyadic((N,), dtype, seed=2)
    y = spike_linear_forward(packed(s).to(dev()), K, w.to(dev()), b.to(dev()), "tiles")
    assert y.dtype == dtype and y.shape == (T * B, N)
    assert torch.equal(y.cpu(), spike_linear_reference(s, w, b))


@KERNEL
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_without_bias_and_silent_rows_get_the_bias(dtype):
    T, B, K, N = SHAPES[0]
    s = structured_spikes(T, B, K, "silent_samples")
    w, b = dyadic((N, K), dtype, 3), dyadic((N,), dtype, 4)
    p = packed(s).to(dev())
    y = spike_linear_forward(p, K, w.to(dev()), None, "tiles").cpu()
    assert torch.equal(y, spike_linear_reference(s, w))
    yb = spike_linear_forward(p, K, w.to(dev()), b.to(dev()), "tiles").cpu()
    silent = ~s.bool().any(1)
    assert silent.any() and torch.equal(yb[silent], b.expand(int(silent.sum()), N))


@KERNEL
def test_forward_never_reads_the_weights_of_silent_words():
    """The words no row spiked in are not in the schedule: their weight columns are never loaded (NaN
    there cannot reach the output, though a product would give NaN * 0 = NaN)."""
    T, B, K, N = SHAPES[1]
    s = structured_spikes(T, B, K, "silent_channels")
    w = dyadic((N, K), torch.float32, 5)
    poisoned = w.clone()
    poisoned[:, 32:96] = float("nan")  # words 1 and 2: silent in every row
    y = spike_linear_forward(packed(s).to(dev()), K, poisoned.to(dev()), None, "tiles").cpu()
    assert torch.equal(y, spike_linear_reference(s, w))


@KERNEL
@pytest.mark.parametrize("precision, config", [(p, i) for p, configs in TILE_CONFIGS.items()
                                               for i in range(len(configs))])
def test_forward_every_tile_shape(precision, config, monkeypatch):
    """Every TILE_CONFIGS shape, forward and grad_weight, on a structured input with K and M not multiples of
    the tile. A one-entry TILE_CONFIGS launches that config (on a GPU too, where the autotuner would
    otherwise check only the shape it times fastest; the interpreter otherwise runs only the first)."""
    from snnkern.ops import spike_linear as SL
    monkeypatch.setitem(SL.TILE_CONFIGS, precision, (SL.TILE_CONFIGS[precision][config],))
    dtype = torch.bfloat16 if precision == "16bit" else torch.float32
    T, B, K, N = 3, 40, 161, 136
    s = structured_spikes(T, B, K, "silent_steps")
    w, b = dyadic((N, K), dtype, 6), dyadic((N,), dtype, 7)
    y = spike_linear_forward(packed(s).to(dev()), K, w.to(dev()), b.to(dev()), "tiles").cpu()
    assert torch.equal(y, spike_linear_reference(s, w, b))
    gy = dyadic((T * B, N), dtype, 8)
    gw = spike_grad_weight_forward(packed(s).to(dev()), K, gy.to(dev()), "tiles").cpu()
    assert torch.equal(gw, (gy.float().t() @ s).to(dtype))


def test_one_tile_config_launches_without_the_autotuner(monkeypatch):
    """Where the autotuner would run (a GPU), a one-entry TILE_CONFIGS launches that config with its warps and
    stages; the full list goes through the autotuner."""
    from snnkern.ops import spike_linear as SL
    launched, tuned = [], []

    class Kernel:
        def __getitem__(self, grid):
            return lambda *args, **kw: launched.append((grid, kw))

    class Tuner:
        def __getitem__(self, grid):
            return lambda *args, **kw: tuned.append(grid({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}))

    monkeypatch.setattr(SL, "use_autotuner", lambda t: True)
    grid = lambda bm, bn, bk: (bm, bn, bk)  # noqa: E731
    SL.launch_tiles(Kernel(), {"fp32": Tuner()}, "fp32", grid, torch.zeros(1), HAS_BIAS=False)
    assert tuned == [(64, 64, 32)] and launched == []
    monkeypatch.setitem(SL.TILE_CONFIGS, "fp32", ((32, 64, 32, 4, 2),))
    SL.launch_tiles(Kernel(), {"fp32": Tuner()}, "fp32", grid, torch.zeros(1), HAS_BIAS=False)
    assert launched == [((32, 64, 32), dict(HAS_BIAS=False, BLOCK_M=32, BLOCK_N=64, BLOCK_K=32, num_warps=4,
                                            num_stages=2))]


@pytest.mark.parametrize("setting", [None, "0", "1"])
def test_tiles_autotune_switch(setting):
    """SNNKERN_TILES_AUTOTUNE=0 turns the tiles autotuners off on a GPU (the GPU session's tests stage:
    correctness, one compile per shape); unset or 1, they tune there."""
    import subprocess
    import sys
    code = ("import torch\nfrom snnkern.ops import spike_linear as SL\n"
            "cuda = type('OnGPU', (), {'is_cuda': True})()  # use_autotuner reads only .is_cuda\n"
            "print(SL.AUTOTUNE, SL.use_autotuner(cuda), SL.use_autotuner(torch.zeros(1)))")
    env = {k: v for k, v in os.environ.items() if k != "SNNKERN_TILES_AUTOTUNE"}
    if setting is not None:
        env["SNNKERN_TILES_AUTOTUNE"] = setting
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    on = str(setting != "0")
    assert out.stdout.split() == [on, on, "False"], out.stderr[-2000:]


# ---- grad_weight -----------------------------------------------------------------------------------------

@KERNEL
@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_grad_weight_exact(dtype, shape, pattern):
    """dY.T @ S from the bits. ``one_hot`` is transposed here: each input spikes in at most one row, so every
    gradient entry is a single dY value (full fp32 precision: all three bf16 parts must arrive)."""
    T, B, K, N = shape
    s = structured_spikes(T, B, K, "random" if pattern == "one_hot" else pattern, seed=K + 1)
    full = pattern == "one_hot"
    if full:
        s.zero_()
        rows = torch.randint(0, T * B, (K,), generator=torch.Generator().manual_seed(9))
        s[rows, torch.arange(K)] = 1.0
    gy = dyadic((T * B, N), dtype, seed=10, full=full and dtype == torch.float32)
    gw = spike_grad_weight_forward(packed(s).to(dev()), K, gy.to(dev()), "tiles")
    assert gw.dtype == dtype and gw.shape == (N, K)
    assert torch.equal(gw.cpu(), (gy.float().t() @ s).to(dtype))


@KERNEL
def test_grad_weight_never_reads_the_gradient_of_silent_rows():
    """Rows without a spike add nothing to dY.T @ S and are not in the schedule's walk: their dY is never
    loaded (NaN there stays out)."""
    T, B, K, N = SHAPES[0]
    s = structured_spikes(T, B, K, "silent_steps")
    gy = dyadic((T * B, N), torch.float32, 11)
    poisoned = gy.clone()
    poisoned[~s.bool().any(1)] = float("nan")
    gw = spike_grad_weight_forward(packed(s).to(dev()), K, poisoned.to(dev()), "tiles").cpu()
    assert torch.equal(gw, gy.t() @ s)


@KERNEL
def test_grad_weight_no_rows():
    gw = spike_grad_weight_forward(torch.zeros(0, 3, dtype=torch.int32, device=dev()), 70,
                                   torch.zeros(0, 5, device=dev()), "tiles")
    assert gw.shape == (5, 70) and not gw.any()


@KERNEL
@pytest.mark.parametrize("dtype", DTYPES)
def test_autograd_computes_the_schedule_once(dtype, monkeypatch):
    """A training step through the eager autograd path: the forward's schedule serves grad_weight too (one
    schedule a step), and the gradients are exact."""
    from snnkern.ops import spike_linear as SL
    calls = []
    real = SL.tiles_schedule_forward
    monkeypatch.setattr(SL, "tiles_schedule_forward", lambda p, k: calls.append(k) or real(p, k))
    T, B, K, N = SHAPES[0]
    s = structured_spikes(T, B, K, "silent_steps")
    w = dyadic((N, K), dtype, 12).to(dev()).requires_grad_()
    b = dyadic((N,), dtype, 13).to(dev()).requires_grad_()
    y = SL.SpikeLinearFunction.apply(None, packed(s).to(dev()), K, w, b, None, "tiles")
    gy = dyadic((T * B, N), dtype, 14)
    y.backward(gy.to(dev()))
    assert calls == [K]
    assert torch.equal(y.detach().cpu(), spike_linear_reference(s, w.detach().cpu(), b.detach().cpu()))
    assert torch.equal(w.grad.cpu(), (gy.float().t() @ s).to(dtype))
