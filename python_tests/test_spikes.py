"""Bit-packed spikes, spike_linear, SpikeLinear and SpikeConv2d against dense references."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import snnkern
from snnkern import pack_spikes, spike_linear, unpack_spikes
from snnkern.nn import SpikeConv2d, SpikeLinear

BACKENDS = ["torch", pytest.param("triton", marks=pytest.mark.triton)]
PACK_BACKENDS = BACKENDS + [pytest.param("cuda", marks=pytest.mark.cuda_ext)]
KERNEL = pytest.mark.triton


def dev():
    return "cuda" if torch.cuda.is_available() else "cpu"


def spikes(shape, rate, seed=0, dtype=torch.float32):
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < rate).to(dtype)


# ---------------------------------------------------------------------------------------------
# packing
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", PACK_BACKENDS)
@pytest.mark.parametrize("K", [0, 1, 31, 32, 33, 100, 1000])
@pytest.mark.parametrize("lead", [(), (3,), (2, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.bool, torch.uint8])
def test_pack_round_trip(backend, K, lead, dtype):
    s = spikes((*lead, K), 0.4, seed=K, dtype=dtype).to(dev() if backend != "torch" else "cpu")
    p = pack_spikes(s, backend=backend)
    assert p.dtype == torch.int32 and p.shape == (*lead, (K + 31) // 32)
    assert torch.equal(p.cpu(), pack_spikes(s.cpu(), backend="torch"))  # same bits as the reference
    assert torch.equal(unpack_spikes(p, K, dtype=dtype, backend=backend), s)


def test_pack_layout_is_lsb_first():
    s = torch.zeros(70)
    s[0], s[33], s[31], s[69] = 1, 1, 1, 1
    p = pack_spikes(s, backend="torch")
    assert p.tolist() == [1 - 2**31, 2, 1 << 5]  # bit 31 is the int32 sign bit


@KERNEL
def test_pack_layout_kernel_matches():
    s = torch.zeros(3, 70, device=dev())
    s[:, 31] = 1
    s[1, 64] = 1
    assert pack_spikes(s, backend="triton").cpu().tolist() == [[-2**31, 0, 0], [-2**31, 0, 1], [-2**31, 0, 0]]


@pytest.mark.parametrize("K", [1, 31, 32, 33, 100])
@pytest.mark.parametrize("rate", [0.0, 0.3, 1.0])  # 1.0: every word -1, the sign bit set
def test_firing_rate_counts_the_bits(K, rate):
    from snnkern.functional_spikes import count_spikes, firing_rate
    s = spikes((4, 3, K), rate, seed=K)
    p = pack_spikes(s, backend="torch")
    assert count_spikes(p).item() == int(s.sum())
    assert firing_rate(p, K) == s.sum().item() / s.numel()


def test_pack_errors():
    with pytest.raises(ValueError, match="other than 0 and 1"):
        pack_spikes(torch.tensor([0.0, 0.5]))
    assert pack_spikes(torch.tensor([0.0, 0.5]), check=False).tolist() == [2]
    with pytest.raises(TypeError, match="s must"):
        pack_spikes(torch.tensor([1, 0], dtype=torch.int64))
    with pytest.raises(ValueError, match="n must"):
        unpack_spikes(pack_spikes(torch.ones(40)), 70)
    with pytest.raises(TypeError, match="int32"):
        unpack_spikes(torch.ones(2), 40)


# ---------------------------------------------------------------------------------------------
# spike_linear
# ---------------------------------------------------------------------------------------------

TOL = {torch.float32: (1e-5, 1e-5), torch.bfloat16: (1.6e-2, 2e-2), torch.float16: (1e-3, 1e-3)}


def run_linear(x, w, b, **kw):
    x = x.detach().clone().requires_grad_()
    w = w.detach().clone().requires_grad_()
    b = None if b is None else b.detach().clone().requires_grad_()
    y = spike_linear(x, w, b, **kw) if kw else F.linear(x.to(w.dtype), w, b)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(5)).to(y.device, y.dtype)
    (y.float() * g.float()).sum().backward()
    return y, x.grad, w.grad, None if b is None else b.grad


def check_close(ours, ref, dtype):
    rtol, atol = TOL[dtype]
    for name, a, b in zip(["y", "grad x", "grad w", "grad b"], ours, ref):
        if b is None:
            assert a is None
            continue
        scale = max(1.0, b.float().abs().max().item())
        torch.testing.assert_close(a.float(), b.float(), rtol=rtol, atol=atol * scale, msg=name)


@KERNEL
@pytest.mark.parametrize("rate", [0.0, 0.002, 0.05, 0.5, 1.0])
@pytest.mark.parametrize("algorithm", ["tiles", "gather", "dense", "auto"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_spike_linear_matches_dense(rate, algorithm, dtype):
    d = dev()
    x = spikes((3, 45, 129), rate, seed=int(rate * 1000)).to(d)  # [T, B, K], K odd, rows not a tile multiple
    x[0, 0] = 1  # an all-one row
    x[0, 1] = 0  # an all-zero row
    w = (torch.randn(70, 129, generator=torch.Generator().manual_seed(1)) * 0.1).to(d, dtype)
    b = torch.randn(70, generator=torch.Generator().manual_seed(2)).to(d, dtype)
    ours = run_linear(x, w, b, algorithm=algorithm, backend="triton")
    assert ours[0].dtype == dtype and ours[0].shape == (3, 45, 70)
    check_close(ours, run_linear(x, w, b), dtype)


@KERNEL
@pytest.mark.parametrize("algorithm", ["tiles", "gather", "dense"])
def test_spike_linear_packed_input_and_no_bias(algorithm):
    d = dev()
    x = spikes((33, 100), 0.1, seed=3).to(d)
    w = torch.randn(17, 100, generator=torch.Generator().manual_seed(4)).to(d).requires_grad_()
    y = spike_linear(pack_spikes(x), w, algorithm=algorithm, backend="triton")
    torch.testing.assert_close(y, F.linear(x, w), rtol=1e-5, atol=1e-5)
    y.sum().backward()  # the weight still gets its gradient from the packed bits
    torch.testing.assert_close(w.grad, torch.ones(33, 17, device=d).t() @ x, rtol=1e-5, atol=1e-5)


@KERNEL
@pytest.mark.parametrize("M", [1, 31, 33, 70])
@pytest.mark.parametrize("K", [1, 45, 129, 300])
def test_transpose_packed_matches_reference(M, K):
    from snnkern.ops.spike_pack import transpose_packed_forward, transpose_packed_reference
    s = spikes((M, K), 0.4, seed=M * K).to(dev())
    s[0] = 1  # the sign bit of every word of row 0 and of the last column's words
    bits = pack_spikes(s)
    ours = transpose_packed_forward(bits, K)
    assert ours.shape == (K, (M + 31) // 32)
    assert torch.equal(ours.cpu(), transpose_packed_reference(bits.cpu(), K))
    assert torch.equal(unpack_spikes(ours, M), s.t())


@KERNEL
@pytest.mark.parametrize("algorithm", ["tiles", "gather"])
@pytest.mark.parametrize("rate", [0.0, 0.01, 0.3, 1.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_grad_weight_from_bits(algorithm, rate, dtype):
    """dY.T @ S straight from the bits, checked against fp64. For fp32 the bound (1e-6 of the largest
    entry) is tight enough to fail if the tiles kernel kept only two of dY's three bf16 parts (2.6e-6)."""
    d = dev()
    M, N, K = 150, 70, 129  # none a multiple of the 64-wide tiles
    s = spikes((M, K), rate, seed=11).to(d)
    dy = torch.randn(M, N, generator=torch.Generator().manual_seed(12)).to(d, dtype)
    gw = torch.ops.snnkern.spike_grad_weight(pack_spikes(s), K, dy, algorithm)
    assert gw.dtype == dtype and gw.shape == (N, K) and gw.is_contiguous()
    ref = dy.double().t() @ s.double()
    scale = max(1.0, ref.abs().max().item())
    # fp32: 1e-6 under the interpreter (exact fp32 dots) proves the 3-part split; a GPU's tensor-core
    # accumulation order gets 1e-5
    fp32 = 1e-6 if d == "cpu" else 1e-5
    atol = {torch.float32: fp32, torch.bfloat16: 8e-3, torch.float16: 1e-3}[dtype] * scale
    torch.testing.assert_close(gw.double(), ref, rtol=0, atol=atol)


@KERNEL
@pytest.mark.parametrize("algorithm", ["tiles", "gather", "dense"])
def test_backward_never_materialises_dense_spikes(algorithm):
    """The weight gradient reads the saved bits: no allocation during backward reaches even one byte
    per spike (the earlier unpack-then-matmul backward allocated 4 bytes per spike)."""
    from torch.profiler import ProfilerActivity, profile
    d = dev()
    M, N, K = 300, 8, 200
    x = spikes((M, K), 0.3, seed=13).to(d)  # spikes from a data encoder: no gradient wanted for them
    w = torch.randn(N, K, device=d, requires_grad=True)
    spike_linear(x, w, algorithm=algorithm, backend="triton").sum().backward()  # compile (and autotune) first
    w.grad = None
    y = spike_linear(x, w, algorithm=algorithm, backend="triton")
    if d == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        y.sum().backward()
        torch.cuda.synchronize()
        largest = torch.cuda.max_memory_allocated() - before
    else:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            y.sum().backward()
        allocated = [e.cpu_memory_usage for e in prof.events() if e.cpu_memory_usage > 0]
        largest = max(allocated, default=0)
        assert allocated  # the profiler did see the backward's allocations
    assert largest < M * K, largest
    torch.testing.assert_close(w.grad, torch.ones(M, N, device=d).t() @ x, rtol=1e-5, atol=1e-5)


@KERNEL
@pytest.mark.parametrize("algorithm", ["tiles", "gather"])
@pytest.mark.parametrize("M,N,K", [(0, 5, 40), (7, 0, 40), (7, 5, 0), (1, 1, 1)])
def test_spike_linear_empty_and_tiny_shapes(algorithm, M, N, K):
    d = dev()
    x = spikes((M, K), 0.5, seed=14).to(d).requires_grad_()
    w = torch.randn(N, K, device=d, requires_grad=True)
    b = torch.randn(N, device=d, requires_grad=True)
    y = spike_linear(x, w, b, algorithm=algorithm, backend="triton")
    y.sum().backward()
    torch.testing.assert_close(y, F.linear(x, w, b))
    torch.testing.assert_close(w.grad, torch.ones(M, N, device=d).t() @ x)
    torch.testing.assert_close(x.grad, torch.ones(M, N, device=d) @ w)


@KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_autotuned_tile_kernels(monkeypatch, dtype):
    """The GPU path: both tiles kernels behind Triton's autotuner, every TILE_CONFIGS shape of the
    weights' precision run and
    timed (here by a CPU clock, as the interpreter has no CUDA events), the chosen one correct."""
    import time

    import triton

    from snnkern.ops import spike_linear as SL

    timed = []

    def cpu_timer(fn, quantiles=None, **_):
        timed.append(fn)
        start = time.perf_counter()
        fn()
        ms = (time.perf_counter() - start) * 1e3
        return [ms] * len(quantiles) if quantiles else ms

    precision = "fp32" if dtype == torch.float32 else "16bit"
    tuners = {}
    for name, kernel, key in (("_spike_mm_tiles_tuned", SL._spike_mm_tiles_kernel, ["M_BUCKET", "N", "K", "PARTS"]),
                              ("_spike_grad_w_tiles_tuned", SL._spike_grad_w_tiles_kernel, ["M_BUCKET", "N", "K"])):
        tuners[name] = triton.autotune(configs=SL.tile_configs(precision), key=key, do_bench=cpu_timer)(kernel)
        monkeypatch.setitem(getattr(SL, name), precision, tuners[name])
    monkeypatch.setattr(SL, "use_autotuner", lambda t: True)
    d = dev()
    x = spikes((70, 100), 0.2, seed=15).to(d)
    w = (torch.randn(40, 100, generator=torch.Generator().manual_seed(16)) * 0.1).to(d, dtype)
    b = torch.randn(40, generator=torch.Generator().manual_seed(17)).to(d, dtype)
    check_close(run_linear(x, w, b, algorithm="tiles", backend="triton"), run_linear(x, w, b), dtype)
    assert len(timed) == 2 * len(SL.TILE_CONFIGS[precision])  # every shape of this precision timed, once per kernel
    shapes = {str(c) for c in SL.tile_configs(precision)}
    for tuner in tuners.values():
        assert str(tuner.best_config) in shapes  # both kernels went through their tuner


@pytest.mark.parametrize("backend", BACKENDS)
def test_spike_linear_non_binary_input(backend):
    d = dev() if backend == "triton" else "cpu"
    x = torch.rand(5, 8, device=d)
    w = torch.randn(3, 8, device=d)
    with pytest.raises(ValueError, match="strict"):
        spike_linear(x, w, strict=True, backend=backend)
    torch.testing.assert_close(spike_linear(x, w, backend=backend), F.linear(x, w))  # runs dense


def test_spike_linear_errors():
    w = torch.randn(3, 8)
    with pytest.raises(ValueError, match="x must have shape"):
        spike_linear(torch.ones(2, 7), w)
    with pytest.raises(ValueError, match="weight"):
        spike_linear(torch.ones(2, 8), torch.randn(8))
    with pytest.raises(TypeError, match="weight"):
        spike_linear(torch.ones(2, 8), w.double())
    with pytest.raises(ValueError, match="bias"):
        spike_linear(torch.ones(2, 8), w, torch.ones(4))
    with pytest.raises(ValueError, match="algorithm"):
        spike_linear(torch.ones(2, 8), w, algorithm="csr")
    with pytest.raises(ValueError, match="packed x"):
        spike_linear(torch.ones(2, 3, dtype=torch.int32), w)
    with pytest.raises(ValueError, match="x is on"):
        spike_linear(torch.ones(2, 8, device="meta"), w)


def test_gradcheck_reference():
    from snnkern.ops.spike_linear import spike_linear_reference

    x = spikes((4, 6), 0.5, dtype=torch.float64).requires_grad_()
    w = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(spike_linear_reference, (x, w, b))


# ---------------------------------------------------------------------------------------------
# modules and saved memory
# ---------------------------------------------------------------------------------------------

def saved_bytes(fn, params):
    """Bytes autograd keeps for backward, parameters excluded."""
    saved = []
    ptrs = {p.data_ptr() for p in params}

    def pack(t):
        if t.data_ptr() not in ptrs:
            saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(saved), out


@pytest.mark.parametrize("tf32", [False, True])
def test_auto_algorithm_follows_the_table(monkeypatch, tf32):
    """Each weight dtype's AUTO_RULES row decides: gather strictly below its crossover, the row's dense
    path at and above it; fp32 weights read torch's TF32 switch."""
    import snnkern.functional_spikes as FS

    monkeypatch.setattr(FS, "tf32_allowed", lambda kind: tf32)  # not torch's global flags: see the test below
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        precision = FS.auto_precision(dtype)
        assert precision == ("16bit" if dtype != torch.float32 else "fp32_tf32" if tf32 else "fp32")
        below, above = FS.AUTO_RULES[precision]
        assert FS.auto_algorithm(below * 0.99, dtype) == "gather"
        assert FS.auto_algorithm(below, dtype) == FS.auto_algorithm(0.5, dtype) == above
        assert FS.auto_algorithm(FS.AUTO_WITHOUT_RATE, dtype) == above
    # the table drives the choice: a changed row changes what auto runs
    monkeypatch.setitem(FS.AUTO_RULES, "16bit", (0.2, "tiles"))
    assert FS.auto_algorithm(0.1, torch.float16) == "gather" and FS.auto_algorithm(0.3, torch.float16) == "tiles"


def test_tf32_switch_is_read_without_the_mixed_api_error():
    """torch >= 2.9 raises on reading ``allow_tf32`` once a program has set both the legacy flag and the new
    ``fp32_precision``; auto read the legacy flag and crashed (found when an earlier test in the same process
    had mixed them). The switch is read through the new API. Run in a fresh process: a mixed state cannot
    be undone and would leak into the tests after this one."""
    import subprocess
    import sys

    if not hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        pytest.skip("torch without the fp32_precision API")
    script = """if True:
        import torch
        import snnkern.functional_spikes as FS
        matmul = torch.backends.cuda.matmul
        matmul.fp32_precision = "tf32"
        assert FS.tf32_allowed("matmul") and FS.auto_precision(torch.float32) == "fp32_tf32"
        matmul.allow_tf32 = False  # the legacy API on top: a mixed program
        assert not FS.tf32_allowed("matmul") and FS.auto_precision(torch.float32) == "fp32"
        matmul.fp32_precision = "tf32"
        try:
            matmul.allow_tf32
        except RuntimeError:
            pass  # torch refuses the legacy read here; auto must not
        assert FS.auto_algorithm(0.5, torch.float32) == FS.AUTO_RULES["fp32_tf32"][1]
        assert isinstance(FS.tf32_allowed("conv"), bool)
        print("ok")
    """
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_auto_rule_table_is_the_byte_model():
    """The crossovers are 2*E*B / (b*F): gather's L2 bytes against the faster dense path's flops, per dtype."""
    import snnkern.functional_spikes as FS

    assert FS.AUTO_RULES == {"16bit": (0.0042, "dense"), "fp32": (0.0157, "tiles"), "fp32_tf32": (0.0051, "dense")}
    ideal_16bit = 2 * FS.L2_BYTES_PER_S / (2 * FS.FLOPS["16bit"]["dense"])  # E = 1: the issue's ~99.2% sparsity
    assert 0.0075 < ideal_16bit < 0.009
    assert FS.GATHER_BELOW_RATE == FS.AUTO_RULES["fp32_tf32"][0]  # SpikeConv2d vs cuDNN (TF32 by default)


class _SyncCounter:
    """Counts what would block the host on a GPU: Tensor.item/tolist/__bool__/__float__/__int__, cpu(),
    torch.cuda.synchronize and the event/stream waits."""

    def __init__(self, monkeypatch):
        self.calls = []
        for name in ("item", "tolist", "__bool__", "__float__", "__int__", "cpu"):
            real = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._wrap(name, real))
        for owner, name in ((torch.cuda, "synchronize"), (torch.cuda.Event, "synchronize"),
                            (torch.cuda.Stream, "synchronize")):
            monkeypatch.setattr(owner, name, self._wrap(name, lambda *a, **k: None))

    def _wrap(self, name, real):
        def counted(*args, **kwargs):
            self.calls.append(name)
            return real(*args, **kwargs)
        return counted


def _first_call_of_the_shape(fn, *args, **kwargs):
    """On a GPU the first tiles call of a shape runs Triton's autotuner, which times every config (CUDA events
    and synchronize): a one-time cost per shape, not per call. The sync-counting tests make that call first,
    with a copy of the weight, so that their counted call still derives everything kept per weight."""
    fn(*args, **kwargs)


def _settle():
    """Wait for the device: a layer's rate arrives by an event the host polls, so on a GPU the next call sees
    it only once the copy has landed (the tests of the decision rule wait for it; none is counted)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


@KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("packed", [False, True])
def test_auto_without_a_rate_never_syncs(monkeypatch, dtype, packed):
    """spike_linear(algorithm="auto") with no rate and no binary check to piggyback on (packed input or
    assume_binary=True) never reads a device value: it takes the dense-rate choice, and it is correct.
    """
    import snnkern.functional_spikes as FS

    d = dev()
    s = spikes((40, 70), 0.001, seed=62).to(d)
    w = (torch.randn(9, 70, generator=torch.Generator().manual_seed(63)) * 0.1).to(d, dtype)
    x = pack_spikes(s) if packed else s
    _first_call_of_the_shape(spike_linear, x, w.clone(), algorithm="auto", assume_binary=True, backend="triton")
    chosen = []
    real = FS.auto_algorithm
    monkeypatch.setattr(FS, "auto_algorithm", lambda rate, wd: chosen.append(rate) or real(rate, wd))
    counter = _SyncCounter(monkeypatch)
    y = spike_linear(x, w, algorithm="auto", assume_binary=True, backend="triton")
    monkeypatch.undo()
    assert counter.calls == [] and chosen == [FS.AUTO_WITHOUT_RATE]
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(y.float(), (s @ w.float().t()).to(dtype).float(), rtol=rtol, atol=atol)


@KERNEL
def test_auto_with_a_rate_uses_it_without_syncing(monkeypatch):
    """A given rate decides (here below the 16-bit crossover: gather), with no device read either."""
    import snnkern.functional_spikes as FS

    d = dev()
    s = spikes((20, 64), 0.001, seed=64).to(d)
    w = torch.randn(5, 64, generator=torch.Generator().manual_seed(65)).to(d, torch.float16)
    ran = []
    real = FS.spike_linear_apply
    monkeypatch.setattr(FS, "spike_linear_apply", lambda *a: ran.append(a[-1]) or real(*a))
    bits = pack_spikes(s)
    counter = _SyncCounter(monkeypatch)
    spike_linear(bits, w, algorithm="auto", rate=0.001, backend="triton")
    spike_linear(bits, w, algorithm="auto", rate=0.5, backend="triton")
    calls = list(counter.calls)
    monkeypatch.undo()
    assert ran == ["gather", "dense"] and calls == []


@KERNEL
def test_auto_reuses_the_binary_checks_rate():
    """Unpacked input with the binary check on: the check's one sync also measures the rate, which decides."""
    import snnkern.functional_spikes as FS

    d = dev()
    s = spikes((30, 64), 0.001, seed=66).to(d)
    s[0, 0] = 1
    w = torch.randn(5, 64, generator=torch.Generator().manual_seed(67)).to(d, torch.float16)
    chosen = []
    real = FS.auto_algorithm
    FS.auto_algorithm = lambda rate, wd: chosen.append(rate) or real(rate, wd)
    try:
        spike_linear(s, w, algorithm="auto", backend="triton")
    finally:
        FS.auto_algorithm = real
    assert chosen == [pytest.approx(float(s.mean()))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("algorithm", ["tiles", "dense"])
def test_spike_linear_module_drop_in_and_memory(backend, algorithm):
    d = dev() if backend == "triton" else "cpu"
    torch.manual_seed(0)
    dense = nn.Linear(256, 64).to(d)
    layer = SpikeLinear.from_linear(dense, algorithm=algorithm, backend=backend)
    assert layer.weight is dense.weight and layer.state_dict().keys() == dense.state_dict().keys()
    x = spikes((16, 8, 256), 0.1, seed=6).to(d).requires_grad_()
    ours_bytes, y = saved_bytes(lambda: layer(x), layer.parameters())
    dense_bytes, y_ref = saved_bytes(lambda: dense(x), dense.parameters())
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    if backend == "triton":
        assert ours_bytes * 8 <= dense_bytes, (ours_bytes, dense_bytes)  # bits: 1/32 of fp32
    y.sum().backward()
    assert x.grad is not None and dense.weight.grad is not None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("algorithm", ["dense", "tiles", "gather"])
def test_spike_conv2d_drop_in(backend, algorithm):
    d = dev() if backend == "triton" else "cpu"
    if algorithm != "dense" and backend == "torch":
        pytest.skip("the unfold path exercises the kernels")
    torch.manual_seed(0)
    dense = nn.Conv2d(4, 6, 3, stride=2, padding=1).to(d)
    layer = SpikeConv2d.from_conv(dense, algorithm=algorithm, backend=backend)
    x = spikes((2, 4, 11, 11), 0.3, seed=7).to(d)
    xs, xd = x.clone().requires_grad_(), x.clone().requires_grad_()
    y = layer(xs)
    y.square().sum().backward()
    gw = dense.weight.grad.clone()
    dense.zero_grad()
    y_ref = dense(xd)
    y_ref.square().sum().backward()
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(xs.grad, xd.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gw, dense.weight.grad, rtol=1e-5, atol=1e-4)


@KERNEL
def test_spike_conv2d_saves_bits():
    d = dev()
    dense = nn.Conv2d(16, 16, 3, padding=1).to(d)
    layer = SpikeConv2d.from_conv(dense, algorithm="dense")
    x = spikes((4, 16, 32, 32), 0.2, seed=8).to(d).requires_grad_()
    ours, _ = saved_bytes(lambda: layer(x), layer.parameters())
    theirs, _ = saved_bytes(lambda: dense(x), dense.parameters())
    assert ours * 8 <= theirs, (ours, theirs)


@KERNEL
def test_opcheck_spike_ops():
    d = dev()
    s = spikes((5, 70), 0.3, seed=9).to(d)
    torch.library.opcheck(torch.ops.snnkern.pack_spikes.default, (s,))
    bits = pack_spikes(s)
    torch.library.opcheck(torch.ops.snnkern.unpack_spikes.default, (bits, 70, torch.float32))
    w = torch.randn(8, 70, device=d, requires_grad=True)
    b = torch.randn(8, device=d, requires_grad=True)
    for algorithm in ("tiles", "gather", "dense"):
        torch.library.opcheck(torch.ops.snnkern.spike_linear.default,
                              (s.clone().requires_grad_(), bits, 70, w, b, None, algorithm))
        torch.library.opcheck(torch.ops.snnkern.spike_grad_weight.default,
                              (bits, 70, torch.randn(5, 8, device=d), algorithm))


def test_top_level_exports():
    assert snnkern.pack_spikes is pack_spikes and snnkern.spike_linear is spike_linear


ALL_PACK_BACKENDS = ["torch", pytest.param("triton", marks=pytest.mark.triton),
                     pytest.param("cuda", marks=pytest.mark.cuda_ext)]


@pytest.mark.parametrize("backend", ALL_PACK_BACKENDS)
def test_zero_rows_round_trip(backend):
    d = dev() if backend != "torch" else "cpu"
    words = pack_spikes(torch.zeros(0, 40, device=d), backend=backend)
    assert words.shape == (0, 2)
    assert unpack_spikes(words, 40, backend=backend).shape == (0, 40)


@pytest.mark.parametrize("dtype", [torch.float64, torch.int64, torch.int8, torch.bool, torch.bfloat16])
@pytest.mark.parametrize("backend", ALL_PACK_BACKENDS)
def test_unpack_to_any_dtype(backend, dtype):
    d = dev() if backend != "torch" else "cpu"
    s = spikes((6, 45), 0.3, seed=40).to(d)
    words = pack_spikes(s, backend=backend)
    out = unpack_spikes(words, 45, dtype=dtype, backend=backend)
    assert out.dtype == dtype and torch.equal(out, s.to(dtype))


# ---- defects found by fuzzing: each is refused by name or computed like the dense product ----------------


@KERNEL
def test_gather_ignores_padding_bits_past_k():
    """Set padding bits in packed input never reach past W's K rows (an out-of-bounds read on a GPU)."""
    d = dev()
    s = spikes((4, 40), 0.5, seed=50).to(d)
    words = pack_spikes(s)
    words[:, -1] |= torch.tensor(-(1 << 8), dtype=torch.int32, device=d)  # bits 8..31 of the last word: k >= 40
    w = torch.randn(6, 40, generator=torch.Generator().manual_seed(51)).to(d)
    for algorithm in ("gather", "tiles", "dense"):
        torch.testing.assert_close(spike_linear(words, w, algorithm=algorithm, backend="triton"), s @ w.t())


@KERNEL
def test_weight_parts_cache_must_match_its_weight():
    from snnkern.ops.spike_linear import weight_parts

    d = dev()
    s = spikes((5, 30), 0.4, seed=52).to(d)
    w = torch.randn(7, 30, generator=torch.Generator().manual_seed(53)).to(d)
    parts = weight_parts(w)
    spike_linear(s, w, algorithm="tiles", weight_parts_cache=parts, backend="triton")  # the right one: fine
    with pytest.raises(ValueError, match="weight_parts_cache must be"):
        spike_linear(s, w[:6], algorithm="tiles", weight_parts_cache=parts, backend="triton")  # wrong shape
    with torch.no_grad():
        w.mul_(2.0)  # the weight changed in place: the cache is stale
    with pytest.raises(ValueError, match="stale"):
        spike_linear(s, w, algorithm="tiles", weight_parts_cache=parts, backend="triton")
    other = torch.randn(7, 30).to(d)
    with pytest.raises(ValueError, match="stale"):
        spike_linear(s, w, algorithm="tiles", weight_parts_cache=weight_parts(other), backend="triton")
    p = nn.Parameter(w.clone())
    parts = weight_parts(p)
    p.grad = torch.ones_like(p)
    torch.optim.SGD([p], lr=0.1, fused=True).step()  # writes p without counting a version
    with pytest.raises(ValueError, match="optimizer stepped"):
        spike_linear(s, p, algorithm="tiles", weight_parts_cache=parts, backend="triton")


def test_weight_split_is_exact_for_every_finite_fp32():
    from snnkern.ops.spike_linear import weight_parts

    w = torch.tensor([[3.4e38, -3.4028235e38, 1e-30, -2.5e-35, 1.0000001, 0.0, 123456.789]])
    parts = weight_parts(w)
    assert torch.isfinite(parts).all()
    total = parts.double().sum(0)
    big = w.abs() > 1e-30  # below, the last part is a bf16 subnormal: its error is < 1e-37 absolute
    assert torch.equal(total[big].float(), w[big])
    assert (total - w.double()).abs().max() < 1e-37


@KERNEL
@pytest.mark.parametrize("algorithm", ["tiles", "gather"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("with_bias", [False, True])
def test_non_finite_weights_give_non_finite_outputs_where_dense_does(monkeypatch, algorithm, dtype, with_bias):
    """The event-driven algorithms skip the weights of silent inputs, so a NaN/inf there used to vanish
    (a finite output where a dense product gives NaN). Now an output is non-finite exactly where the dense
    product's is, the finite ones unchanged, and finding out costs no host sync."""
    d = dev()
    s = torch.zeros(6, 40, device=d)
    s[:, 0] = 1
    s[::2, 5] = 1  # inputs 1 and 7 never spike; 5 spikes on half the rows
    w = (torch.randn(5, 40, generator=torch.Generator().manual_seed(70)) * 0.1).to(d, dtype)
    w[1, 1] = float("inf")  # silent input: dense gives 0 * inf = NaN on every row
    w[2, 7] = float("nan")  # silent input
    w[3, 5] = float("-inf")  # spiking input: dense gives -inf where it spiked, NaN elsewhere
    b = torch.randn(5, generator=torch.Generator().manual_seed(71)).to(d, dtype) if with_bias else None
    dense = spike_linear(s, w, b, algorithm="dense", backend="triton")
    _first_call_of_the_shape(spike_linear, s, w.clone(), b, algorithm=algorithm, assume_binary=True,
                             backend="triton")
    counter = _SyncCounter(monkeypatch)
    y = spike_linear(s, w, b, algorithm=algorithm, assume_binary=True, backend="triton")
    calls = list(counter.calls)
    monkeypatch.undo()
    assert calls == []
    assert torch.equal(y.isfinite(), dense.isfinite()) and not dense[:, 1:4].isfinite().any()
    rtol, atol = TOL[dtype]
    ok = dense.isfinite()
    torch.testing.assert_close(y[ok].float(), dense[ok].float(), rtol=rtol, atol=atol)
    w[1, 1] = w[2, 7] = w[3, 5] = 0.5  # a new weight version: the poison follows it
    torch.testing.assert_close(spike_linear(s, w, b, algorithm=algorithm, backend="triton").float(),
                               spike_linear(s, w, b, algorithm="dense", backend="triton").float(),
                               rtol=rtol, atol=atol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("algorithm", ["tiles", "gather", "dense"])
def test_bias_and_spikes_of_other_dtypes(backend, algorithm):
    d = dev() if backend == "triton" else "cpu"
    s = spikes((5, 20), 0.3, seed=54).to(d)
    w = torch.randn(3, 20, generator=torch.Generator().manual_seed(55)).to(d)
    b = torch.randn(3, dtype=torch.float64).to(d)
    expected = s @ w.t() + b.float()
    for x in (s, s.double()):  # float64 spikes run on every backend
        y = spike_linear(x, w, b, algorithm=algorithm, backend=backend)
        assert y.dtype == torch.float32
        torch.testing.assert_close(y, expected)


@KERNEL
def test_auto_decides_on_the_previous_calls_rate_without_measuring(monkeypatch):
    """SpikeLinear(algorithm="auto") never measures the rate of the call it is in (that is a device sync):
    it uses the rate of its previous call, which arrives without one."""
    import snnkern.functional_spikes as FS

    calls = []
    monkeypatch.setattr(FS, "firing_rate", lambda bits, k: calls.append(1) or 0.5)
    chosen = []
    real = FS.auto_algorithm
    monkeypatch.setattr(FS, "auto_algorithm", lambda rate, dtype: chosen.append(rate) or real(rate, dtype))
    layer = SpikeLinear(64, 8, assume_binary=True, backend="triton").to(dev())
    sparse = spikes((16, 64), 0.002, seed=60).to(dev())
    dense = spikes((16, 64), 0.5, seed=61).to(dev())
    with torch.no_grad():
        assert layer.last_rate is None
        y1 = layer(sparse)  # no rate known yet: the dense-rate choice
        _settle()
        assert layer.last_rate == float(sparse.mean())
        layer(dense)  # decides on the sparse call's rate
        _settle()
        layer(dense)
    assert chosen == [1.0, float(sparse.mean()), float(dense.mean())] and not calls
    torch.testing.assert_close(y1, sparse @ layer.weight.t() + layer.bias)
    with pytest.raises(ValueError, match="rate"):
        spike_linear(sparse, layer.weight, rate=1.5, backend="triton")


@KERNEL
def test_spike_conv_auto_without_a_check_never_syncs(monkeypatch):
    """SpikeConv2d(assume_binary=True, algorithm="auto") decided on float((x != 0).mean()) — a device sync
    every call. It now counts on the device and decides on the previous call's rate, by the conv crossover
    of the byte model (gather below it, cuDNN above)."""
    import snnkern.functional_spikes as FS

    torch.manual_seed(64)
    layer = SpikeConv2d(3, 4, 3, padding=1, assume_binary=True, backend="triton").to(dev())
    silent = torch.zeros(2, 3, 6, 6, device=dev())
    busy = (torch.rand(2, 3, 6, 6, device=dev()) < 0.5).float()
    layer.algorithm = "gather"
    with torch.no_grad():
        layer(busy)
    layer.algorithm = "auto"
    chosen = []
    real = FS.conv_gather_below
    monkeypatch.setattr(snnkern.nn.spike_layers, "conv_gather_below", lambda wd: chosen.append(wd) or real(wd))
    real_sync = torch.cuda.synchronize  # bound before the counter replaces it: a real wait, not counted
    counter = _SyncCounter(monkeypatch)
    real_latest = snnkern.nn.spike_layers.RateTracker.latest

    def latest_uncounted(tracker):  # it reads a host copy once the device's event completed: no sync on a
        n = len(counter.calls)      # GPU, but on CPU the count is a CPU tensor the counter cannot tell apart
        out = real_latest(tracker)
        del counter.calls[n:]
        return out

    monkeypatch.setattr(snnkern.nn.spike_layers.RateTracker, "latest", latest_uncounted)
    wait = real_sync if torch.cuda.is_available() else (lambda: None)
    with torch.no_grad():
        layer(silent)  # first call: no rate known, the dense choice
        wait()
        layer(busy)  # decides on the silent call's rate 0: gather
        wait()
        y = layer(busy)  # on busy's rate: dense
    monkeypatch.undo()
    assert counter.calls == [] and len(chosen) == 3
    _settle()
    assert layer.last_rate == int(busy.sum()) / busy.numel()  # counted exactly
    torch.testing.assert_close(y, F.conv2d(busy, layer.weight, layer.bias, padding=1))
    assert FS.conv_gather_below(torch.float16) == FS.AUTO_RULES["16bit"][0]
    assert FS.conv_gather_below(torch.float32) == FS.GATHER_BELOW_RATE  # cuDNN runs TF32 by default


# ---- the gather: active inputs compacted per row block, a step of weight rows at a time --------------------


@KERNEL
@pytest.mark.parametrize("M,K,rows", [(0, 40, 16), (5, 40, 16), (16, 32, 16), (37, 1100, 16), (20, 33, 4), (3, 0, 16)])
@pytest.mark.parametrize("rate", [0.0, 0.03, 1.0])
def test_active_inputs_match_reference(M, K, rows, rate):
    """Per row block: the inputs that spiked in any of its rows, ascending, and their count; padding bits
    past K (set here in every row) never listed. K=1100 spans two compaction steps."""
    from snnkern.ops.spike_pack import active_inputs_forward, active_inputs_reference

    d = dev()
    s = spikes((M, K), rate, seed=M + K).to(d)
    bits = pack_spikes(s)
    if K % 32:
        bits[:, -1] |= torch.tensor(-(1 << (K % 32)), dtype=torch.int32, device=d)
    idx, cnt = active_inputs_forward(bits, K, rows)
    ref_idx, ref_cnt = active_inputs_reference(bits.cpu(), K, rows)
    assert idx.shape == (-(-M // rows), K) and torch.equal(cnt.cpu(), ref_cnt)
    for b, c in enumerate(ref_cnt.tolist()):
        assert torch.equal(idx[b, :c].cpu(), ref_idx[b, :c])


@KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("packed", [False, True])
def test_gather_exact_across_blocks_steps_and_output_tiles(dtype, packed):
    """Multiple row blocks (a partial last one), several GATHER_I steps per block, two compaction steps
    (K > 1024, not a multiple of 32), several GATHER_N output tiles (N not a multiple): weights are small
    integers and every |sum| < 256, so every sum is exact in each dtype and compared bitwise; padding bits
    of packed input ignored."""
    from snnkern.ops import spike_linear as SL

    d = dev()
    M, K, N = SL.GATHER_ROWS * 2 + 3, 1100, SL.GATHER_N + 30
    s = spikes((M, K), 0.05, seed=70).to(d)
    s[1, :200] = 1  # its block walks >= 200 inputs: several steps
    w = torch.randint(-1, 2, (N, K), generator=torch.Generator().manual_seed(71)).to(d, dtype)
    b = torch.randint(-2, 3, (N,), generator=torch.Generator().manual_seed(72)).to(d, dtype)
    x = pack_spikes(s) if packed else s
    if packed:
        x[:, -1] |= torch.tensor(-(1 << (K % 32)), dtype=torch.int32, device=d)
    y = spike_linear(x, w, b, algorithm="gather", backend="triton")
    expected = (s.double() @ w.double().t() + b.double()).to(dtype)
    assert y.dtype == dtype and torch.equal(y, expected)


def test_gather_transposes_a_layers_weight_once_per_version():
    """The gather reads W.T: a layer's weight keeps its transposed copy until the weight changes (an
    optimizer step, `.data =`), instead of transposing it on every call; a plain tensor is not cached."""
    from snnkern.ops.spike_linear import transposed_weight

    w = nn.Parameter(torch.randn(5, 7))
    first = transposed_weight(w)
    assert torch.equal(first, w.t()) and transposed_weight(w) is first
    with torch.no_grad():
        w.add_(1.0)  # a new version
    assert torch.equal(transposed_weight(w), w.t()) and transposed_weight(w) is not first
    w.data = torch.randn(5, 7)  # same version, other storage
    assert torch.equal(transposed_weight(w), w.t())
    view = w.reshape(5, 7, 1)[..., 0]  # a per-call view of a parameter: cached on the parameter
    assert transposed_weight(view) is transposed_weight(w.reshape(5, 7, 1)[..., 0])
    plain = torch.randn(5, 7)
    assert transposed_weight(plain) is not transposed_weight(plain)
    # held beside the parameter: a pickled layer does not carry the copy (it would double this 256 KB one)
    import pickle
    big = nn.Parameter(torch.randn(256, 256))
    alone = len(pickle.dumps(big))
    transposed_weight(big)
    assert len(pickle.dumps(big)) < 1.1 * alone


def test_kept_weight_copies_follow_fused_optimizer_steps_storage_swaps_and_forget():
    """Writes no version counter sees: a fused optimizer step (it counts no version), ``p.data = other`` landing
    on the old storage's address (the kept copy holds the old storage, so no new one can take it), and an
    in-place write through ``.data``, after which ``snnkern.forget_derived`` drops the copy."""
    from snnkern.ops.spike_linear import transposed_weight

    w = nn.Parameter(torch.randn(5, 7))
    first = transposed_weight(w)
    w.grad = torch.ones_like(w)
    opt = torch.optim.SGD([w], lr=0.5, fused=True)
    version = w._version
    opt.step()
    assert w._version == version  # what made this necessary
    assert torch.equal(transposed_weight(w), w.t()) and not torch.equal(first, w.t())
    old_ptr = w.data_ptr()
    kept = transposed_weight(w)
    w.data = torch.randn(5, 7)  # the old storage is held by the kept copy's entry...
    assert w.data_ptr() != old_ptr  # ...so this one cannot have reused its address
    assert torch.equal(transposed_weight(w), w.t())
    w.data.mul_(3.0)  # in place through .data: no version, no storage change
    snnkern.forget_derived(w)
    assert torch.equal(transposed_weight(w), w.t()) and transposed_weight(w) is not kept


@KERNEL
def test_functional_tiles_splits_a_parameters_weight_once_per_version(monkeypatch):
    """spike_linear(algorithm="tiles") with fp32 weights and no weight_parts_cache split the weight into
    three bf16 parts on every call (three passes over it; most of a small call's host time). A parameter's
    parts are now kept until it changes, as SpikeLinear's are; the results stay exact."""
    import snnkern.ops.spike_linear as SL

    made = []
    real = SL.weight_parts
    monkeypatch.setattr(SL, "weight_parts", lambda w: made.append(1) or real(w))
    d = dev()
    s = spikes((12, 40), 0.3, seed=80).to(d)
    w = nn.Parameter((torch.randn(6, 40, generator=torch.Generator().manual_seed(81)) * 0.1).to(d))
    for _ in range(3):
        y = spike_linear(s, w, algorithm="tiles", backend="triton")
    assert len(made) == 1
    torch.testing.assert_close(y, s @ w.detach().t(), rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        w.mul_(-2.0)  # a new version: split again
    y = spike_linear(s, w, algorithm="tiles", backend="triton")
    assert len(made) == 2
    torch.testing.assert_close(y, s @ w.detach().t(), rtol=1e-6, atol=1e-6)
    plain = w.detach().clone()  # a plain tensor may be a per-call temporary: not kept
    spike_linear(s, plain, algorithm="tiles", backend="triton")
    spike_linear(s, plain, algorithm="tiles", backend="triton")
    assert len(made) == 4


@KERNEL
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_spike_linear_layer_pads_an_odd_width_weight_once_per_version(monkeypatch, dtype):
    """The tiles kernel needs weight rows 16-byte aligned: a K not a multiple of 8 (a hidden layer of 100)
    was padded by a copy on every call. A layer's padded parts are now kept until the weight changes."""
    import snnkern.ops.spike_linear as SL

    padded = []
    real = SL.aligned_rows
    # weight parts are [PARTS, N, K] (dY, padded per backward call, is 2-D)
    monkeypatch.setattr(SL, "aligned_rows", lambda t: padded.append(t.dim() == 3 and t.shape[-1] % 8 != 0) or real(t))
    d = dev()
    torch.manual_seed(82)
    layer = SpikeLinear(44, 6, algorithm="tiles", backend="triton").to(d, dtype)
    s = spikes((10, 44), 0.3, seed=83).to(d)
    for _ in range(3):
        y = layer(s)
    assert sum(padded) == 1
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(y.float(), (s @ layer.weight.detach().float().t() + layer.bias.float()).to(dtype).float(),
                               rtol=rtol, atol=atol)
    y.float().sum().backward()  # a training step: a new weight version, padded again once
    with torch.no_grad():
        layer.weight -= 0.1 * layer.weight.grad
    layer(s)
    layer(s)
    assert sum(padded) == 2


@KERNEL
@pytest.mark.parametrize("algorithm", ["tiles", "gather", "dense"])
def test_non_finite_upstream_gradient_is_never_lost(algorithm):
    """A NaN in dY: grad_input and grad_bias are non-finite exactly where a dense layer's are; grad_weight
    may be non-finite at fewer entries (silent rows and inputs are skipped, README), never at others, and
    never finite everywhere when dense's is not."""
    d = dev()
    s = spikes((24, 40), 0.2, seed=90).to(d)
    s[3] = 0  # a silent row
    w0 = torch.randn(6, 40, generator=torch.Generator().manual_seed(91)).to(d)
    b0 = torch.randn(6, generator=torch.Generator().manual_seed(92)).to(d)
    dy = torch.randn(24, 6, generator=torch.Generator().manual_seed(93)).to(d)
    dy[5, 2] = float("nan")
    grads = {}
    for name in (algorithm, "reference"):
        x, w, b = s.clone().requires_grad_(), w0.clone().requires_grad_(), b0.clone().requires_grad_()
        y = spike_linear(x, w, b, algorithm=algorithm, backend="triton") if name != "reference" \
            else torch.nn.functional.linear(x, w, b)
        y.backward(dy)
        grads[name] = (x.grad, w.grad, b.grad)
    (gx, gw, gb), (rx, rw, rb) = grads[algorithm], grads["reference"]
    assert torch.equal(gx.isfinite(), rx.isfinite()) and torch.equal(gb.isfinite(), rb.isfinite())
    assert not (~gw.isfinite() & rw.isfinite()).any() and (~gw.isfinite()).any()
    ok = rw.isfinite()
    torch.testing.assert_close(gw[ok], rw[ok], rtol=1e-5, atol=1e-5)
