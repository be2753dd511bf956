"""The fused Triton LIF/IF kernels against the PyTorch reference.

Runs on a GPU, or on CPU tensors under TRITON_INTERPRET=1 (CI).  Forward spikes and membranes
must be bitwise equal (same fp32 arithmetic, same order, no FMA contraction); gradients agree
within dtype tolerances (the parameter gradients are sums whose order differs).
"""
import pytest
import torch

import snnkern
from snnkern.functional import if_, lif
from snnkern.ops.lif import FORWARD, MAX_CHUNK, LifSpec, checkpoint_rows



@pytest.fixture(params=[pytest.param("triton", marks=pytest.mark.triton),
                        pytest.param("cuda", marks=pytest.mark.cuda_ext)])
def kernel_backend(request):
    """The fused kernels under test: Triton, and the C++/CUDA extension (its host build on a CPU machine)."""
    return request.param

GRAD_TOL = {torch.float32: (1e-5, 1e-5), torch.bfloat16: (1.6e-2, 1e-2), torch.float16: (1e-3, 1e-3)}


def make_inputs(T, shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn((T, *shape), generator=g) * 0.7 + 0.35).to(dtype)
    v0 = torch.randn(shape, generator=g) * 0.5
    gs = torch.randn((T, *shape), generator=g).to(dtype)
    gv = torch.randn(shape, generator=g)
    return x, v0, gs, gv


def run(backend, device, x, v0, gs, gv, fn=lif, params=(), **kw):
    """Forward + backward of one backend on copies of the inputs; returns outputs and all grads."""
    fresh = lambda t: t.detach().to(device).clone().requires_grad_()  # noqa: E731  (grads never shared)
    x = fresh(x)
    v0 = None if v0 is None else fresh(v0)
    params = {k: (fresh(p) if isinstance(p, torch.Tensor) else p) for k, p in params}
    spikes, v_last = fn(x, v0, backend=backend, **params, **kw)
    assert snnkern.last_backend("lif") == backend
    loss = (spikes.float() * gs.to(device).float()).sum() + (v_last * gv.to(device)).sum()
    loss.backward()
    grads = [x.grad, None if v0 is None else v0.grad]
    grads += [p.grad for p in params.values() if isinstance(p, torch.Tensor)]
    return spikes, v_last, grads


def assert_same(device, backend, x, v0, gs, gv, fn=lif, params=(), **kw):
    ks, kv, kg = run(backend, device, x, v0, gs, gv, fn, params, **kw)
    rs, rv, rg = run("torch", device, x, v0, gs, gv, fn, params, **kw)
    assert ks.dtype == rs.dtype == x.dtype
    assert torch.equal(ks, rs), "spikes differ"
    assert torch.equal(kv, rv), f"membrane differs by {(kv - rv).abs().max().item():.3e}"
    rtol, atol = GRAD_TOL[x.dtype]
    for name, a, b in zip(["x", "v0", "param0", "param1"], kg, rg):
        if b is None:
            assert a is None
            continue
        scale = max(1.0, b.float().abs().max().item())
        torch.testing.assert_close(a.float(), b.float(), rtol=rtol, atol=atol * scale, msg=f"grad of {name}")
    return ks


CASES = [
    ("snntorch", "subtract", 0.0), ("snntorch", "zero", 0.0), ("snntorch", "none", 0.0), ("snntorch", "hard", 0.25),
    ("spikingjelly", "subtract", 0.0), ("spikingjelly", "hard", -0.3), ("spikingjelly", "none", 0.0),
]


@pytest.mark.parametrize("convention,reset,v_reset", CASES)
@pytest.mark.parametrize("T", [1, 7, MAX_CHUNK + 1, 2 * MAX_CHUNK + 6])
def test_every_reset_and_chunking(kernel_device, kernel_backend, convention, reset, v_reset, T):
    x, v0, gs, gv = make_inputs(T, (3, 37), seed=T)
    beta = torch.rand(37, generator=torch.Generator().manual_seed(T)) * 0.5 + 0.45  # per neuron, learnable
    thr = torch.tensor(0.8)  # scalar tensor, learnable
    spikes = assert_same(kernel_device, kernel_backend, x, v0, gs, gv, params=[("beta", beta), ("threshold", thr)],
                         convention=convention, reset=reset, v_reset=v_reset, decay_input=False)
    rate = spikes.float().mean().item()
    assert 0.05 < rate < 0.95, f"inputs should make neurons fire sometimes, firing rate {rate}"


@pytest.mark.parametrize("surrogate,alpha", [("atan", None), ("atan", 5.0), ("sigmoid", 4.0), ("fast_sigmoid", 25.0),
                                             ("triangle", 1.0), ("rectangle", 2.0), ("straight_through", None)])
@pytest.mark.parametrize("convention", ["snntorch", "spikingjelly"])
def test_surrogates(kernel_device, kernel_backend, surrogate, alpha, convention):
    x, v0, gs, gv = make_inputs(9, (5, 21), seed=1)
    assert_same(kernel_device, kernel_backend, x, v0, gs, gv, convention=convention, surrogate=surrogate, alpha=alpha)


@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("detach_reset", [True, False])
@pytest.mark.parametrize("reset", ["subtract", "hard"])
def test_spikingjelly_options(kernel_device, kernel_backend, decay_input, detach_reset, reset):
    x, v0, gs, gv = make_inputs(12, (4, 19), seed=2)
    x = x * 2.0  # decay_input halves the drive at tau=2
    thr = torch.rand(4, 19, generator=torch.Generator().manual_seed(2)) * 0.5 + 0.6  # per-neuron threshold, learnable
    assert_same(kernel_device, kernel_backend, x, v0, gs, gv, params=[("tau", torch.tensor(2.5)), ("threshold", thr)],
                convention="spikingjelly", reset=reset, v_reset=0.1 if reset == "hard" else 0.0,
                decay_input=decay_input, detach_reset=detach_reset)


def test_parametric_lif_beta_from_sigmoid(kernel_device, kernel_backend):
    """SpikingJelly ParametricLIFNode: 1/tau = sigmoid(w), the gradient reaches w."""
    x, v0, gs, gv = make_inputs(10, (2, 33), seed=3)
    grads = {}
    for backend in (kernel_backend, "torch"):
        w = torch.tensor(-0.4, device=kernel_device, requires_grad=True)
        s, v = lif(x.to(kernel_device), beta=1.0 - w.sigmoid(), convention="spikingjelly", decay_input=True,
                   reset="hard", backend=backend)
        ((s * gs.to(kernel_device)).sum() + (v * gv.to(kernel_device)).sum()).backward()
        grads[backend] = w.grad
    torch.testing.assert_close(grads[kernel_backend], grads["torch"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("neurons,param_shape", [
    ((3, 4, 5, 5), (4, 1, 1)),  # per channel of a conv layer: read in place (mode 3)
    ((3, 4, 5, 5), (1, 4, 1, 1)),
    ((3, 4, 5, 5), (5, 5)),  # per pixel, shared by channels and samples
    ((2, 4, 3, 5), (4, 3, 1)),  # a run of two dims
    ((3, 1, 6), (3, 1, 1)),  # per sample, with a size-1 neuron dim between
    ((2, 4, 3, 5), (4, 1, 5)),  # not one run: expanded to every neuron (mode 2)
])
def test_broadcast_parameters_are_read_in_place(kernel_device, kernel_backend, neurons, param_shape):
    """Learnable beta and threshold broadcast over the neurons: equal to the reference, forward and backward
    (their gradients summed back to their own shape)."""
    x, v0, gs, gv = make_inputs(MAX_CHUNK + 3, neurons, seed=5)
    g = torch.Generator().manual_seed(6)
    beta = torch.rand(param_shape, generator=g) * 0.5 + 0.45
    thr = torch.rand(param_shape, generator=g) * 0.5 + 0.6
    for convention in ("snntorch", "spikingjelly"):
        assert_same(kernel_device, kernel_backend, x, v0, gs, gv, params=[("beta", beta), ("threshold", thr)],
                    convention=convention)


def test_broadcast_layout_indexes_the_flattened_parameter():
    """Neuron n reads element (n // div) % period of the flattened parameter: checked against expand()."""
    from snnkern.ops.lif.launch import _param_arg, broadcast_layout

    assert broadcast_layout((4, 1, 5), (2, 4, 3, 5)) is None
    for neurons, param_shape, layout in [((8, 32), (32,), (1, 32)), ((2, 4, 3, 3), (4, 1, 1), (9, 4)),
                                         ((2, 4, 3, 5), (4, 3, 1), (5, 12)), ((2, 4), (2, 1), (4, 2)),
                                         ((2, 4, 1, 1), (4, 1, 1), (1, 4)), ((3, 1, 6), (3, 1, 1), (6, 3))]:
        assert broadcast_layout(param_shape, neurons) == layout
        p = torch.randn(param_shape)
        n = torch.arange(torch.Size(neurons).numel())
        div, period = layout
        assert torch.equal(p.reshape(-1)[(n // div) % period], p.expand(neurons).reshape(-1))
        t, _, div_arg, period_arg, mode = _param_arg(p, 0.0, torch.Size(neurons), n.numel(), p)
        assert (mode, div_arg, period_arg) == (3, div, period) and t.numel() == p.numel()  # no expanded copy


@pytest.mark.parametrize("shape", [(1031,), (2, 3, 4, 5), (1, 1)])
@pytest.mark.parametrize("v0_given", [True, False])
def test_shapes_and_initial_state(kernel_device, kernel_backend, shape, v0_given):
    x, v0, gs, gv = make_inputs(6, shape, seed=4)
    assert_same(kernel_device, kernel_backend, x, v0 if v0_given else None, gs, gv, params=[("beta", 0.8)])
    assert_same(kernel_device, kernel_backend, x, v0 if v0_given else None, gs, gv, convention="spikingjelly", reset="hard",
                v_reset=-0.1)


def test_if_neuron(kernel_device, kernel_backend):
    x, v0, gs, gv = make_inputs(11, (3, 40), seed=5)
    for convention in ("snntorch", "spikingjelly"):
        assert_same(kernel_device, kernel_backend, x, v0, gs, gv, fn=if_, params=[("threshold", torch.tensor(1.3))],
                    convention=convention)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("convention", ["snntorch", "spikingjelly"])
def test_half_precision_inputs(kernel_device, kernel_backend, dtype, convention):
    x, v0, gs, gv = make_inputs(MAX_CHUNK + 3, (3, 29), seed=6, dtype=dtype)
    assert_same(kernel_device, kernel_backend, x, v0, gs, gv, params=[("beta", torch.linspace(0.5, 0.9, 29))], convention=convention)


def test_non_contiguous_input_and_grad(kernel_device, kernel_backend):
    g = torch.Generator().manual_seed(7)
    base = torch.randn(9, 23, 6, generator=g) + 0.4
    x = base.transpose(1, 2)  # [9, 6, 23], not contiguous
    gs = torch.randn(9, 23, 6, generator=g).transpose(1, 2)
    assert not x.is_contiguous() and not gs.is_contiguous()
    _, v0, _, gv = make_inputs(9, (6, 23), seed=8)
    assert_same(kernel_device, kernel_backend, x, v0, gs, gv, convention="spikingjelly", reset="hard")


def test_grad_of_one_output_only(kernel_device, kernel_backend):
    x, v0, _, _ = make_inputs(40, (3, 17), seed=9)
    for use in ("spikes", "v_last"):
        grads = {}
        for backend in (kernel_backend, "torch"):
            xx = x.to(kernel_device).clone().requires_grad_()
            s, v = lif(xx, v0.to(kernel_device), backend=backend)
            (s.sum() if use == "spikes" else v.sum()).backward()
            grads[backend] = xx.grad
        torch.testing.assert_close(grads[kernel_backend], grads["torch"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spike_dtype", [torch.bool, torch.uint8])
def test_inference_spike_dtypes(kernel_device, kernel_backend, spike_dtype):
    x, v0, _, _ = make_inputs(8, (4, 50), seed=10)
    x, v0 = x.to(kernel_device), v0.to(kernel_device)
    with torch.no_grad():
        s, v = lif(x, v0, spike_dtype=spike_dtype, backend=kernel_backend)
        rs, rv = lif(x, v0, backend="torch")
    assert s.dtype == spike_dtype
    assert torch.equal(s.to(rs.dtype), rs) and torch.equal(v, rv)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("neurons", [(3, 520), (3, 64), (2, 46), (5, 7)])  # 8 | N: 8 a thread; 4 | N; odd
@pytest.mark.parametrize("spike_dtype", [None, torch.uint8, torch.int32])
@pytest.mark.parametrize("convention", ["snntorch", "spikingjelly"])
def test_half_precision_inference_schedules(kernel_device, kernel_backend, dtype, neurons, spike_dtype, convention,
                                           monkeypatch):
    """16-bit inference runs 8 neurons a thread where 8 | N (the Triton forward's 16-byte loads), 4 or 1
    elsewhere: bitwise the reference's spikes and final state on each, packed spikes included."""
    from snnkern.ops.lif import kernels as K

    launched = []  # (VEC, num_warps) of each Triton forward launch

    class Spy:
        def __getitem__(self, grid):
            launch = real[grid]
            return lambda *args, **kw: launched.append((kw["VEC"], kw["num_warps"])) or launch(*args, **kw)

    real = K.lif_fwd_kernel
    monkeypatch.setattr(K, "lif_fwd_kernel", Spy())
    x, v0, _, _ = make_inputs(MAX_CHUNK + 5, neurons, seed=11, dtype=dtype)
    x, v0 = x.to(kernel_device), v0.to(kernel_device)
    beta = (torch.rand(neurons[-1], generator=torch.Generator().manual_seed(12)) * 0.5 + 0.45).to(kernel_device)
    kw = dict(beta=beta, convention=convention, reset="hard" if convention == "spikingjelly" else "subtract")
    with torch.no_grad():
        s, v = lif(x, v0, spike_dtype=spike_dtype, backend=kernel_backend, **kw)
        rs, rv = lif(x, v0, backend="torch", **kw)
    if spike_dtype == torch.int32:
        s = snnkern.unpack_spikes(s, neurons[-1], dtype=rs.dtype, backend="torch")
    assert torch.equal(s.to(rs.dtype), rs) and torch.equal(v, rv)
    n = neurons[0] * neurons[1]
    if kernel_backend == "triton":
        assert launched == [(8, 2) if n % 8 == 0 else (n & -n, 4)]


@pytest.mark.parametrize("shape", [(4, 64), (2, 3, 32), (1, 1024), (3, 40), (5, 7)])  # K % 32: in-kernel, else after
@pytest.mark.parametrize("convention", ["snntorch", "spikingjelly"])
def test_packed_spikes_out(kernel_device, kernel_backend, shape, convention):
    """spike_dtype=torch.int32: the spikes bit-packed along the last dim, exactly pack_spikes(spikes)."""
    x, v0, _, _ = make_inputs(MAX_CHUNK + 3, shape, seed=11)
    x = (x * 2).to(kernel_device)  # spikes in most words, sign bits included
    v0 = v0.to(kernel_device)
    with torch.no_grad():
        p, v = lif(x, v0, beta=0.8, convention=convention, spike_dtype=torch.int32, backend=kernel_backend)
        rs, rv = lif(x, v0, beta=0.8, convention=convention, backend="torch")
    assert p.dtype == torch.int32 and p.shape == (x.shape[0], *shape[:-1], (shape[-1] + 31) // 32)
    assert torch.equal(p, snnkern.pack_spikes(rs)) and torch.equal(v, rv)
    assert shape[-1] < 32 or (p < 0).any()  # some word has its bit 31 set
    with torch.no_grad():  # straight into the event-driven layer
        w = torch.randn(8, shape[-1], device=kernel_device)
        torch.testing.assert_close(snnkern.spike_linear(p, w, backend="torch"), rs @ w.t(), rtol=1e-5, atol=1e-5)


def test_no_grad_path_saves_nothing(kernel_device, kernel_backend):
    """Without autograd the op writes only spikes and the final state: no checkpoints."""
    T = 3 * MAX_CHUNK
    x = torch.randn(T, 64, device=kernel_device)
    spec = LifSpec(delayed=True, reset=1, v_reset=0.0, v_init=0.0, decay_input=False, detach_reset=True, surrogate=0,
                   alpha=2.0, beta_value=0.9, threshold_value=1.0, spike_dtype=torch.float32, return_membrane=False)
    _, _, _, ckpt = torch.ops.snnkern.lif_fwd(x, None, None, None, *spec, False, kernel_backend)
    assert ckpt.numel() == 0
    _, _, _, ckpt = torch.ops.snnkern.lif_fwd(x, None, None, None, *spec, True, kernel_backend)
    assert ckpt.shape == (checkpoint_rows(T), 64) == (2, 64)
    _, _, _, ckpt = FORWARD[kernel_backend](x, None, None, None, spec, False)  # the eager no-grad path
    assert ckpt is None or ckpt.numel() == 0


def test_nan_and_inf_propagate_like_reference(kernel_device, kernel_backend):
    """The NaN/inf policy: IEEE propagation, NaN never spikes; identical on both backends."""
    x = torch.full((4, 6), 0.3)
    x[1, 0], x[2, 1], x[0, 2], x[3, 3] = float("nan"), float("inf"), float("-inf"), float("nan")
    for convention, reset in [("snntorch", "subtract"), ("snntorch", "zero"), ("spikingjelly", "hard")]:
        outs = [lif(x.to(kernel_device), convention=convention, reset=reset, backend=b) for b in (kernel_backend, "torch")]
        (s1, v1), (s2, v2) = outs
        assert torch.equal(s1, s2)
        assert torch.equal(v1.isnan(), v2.isnan())
        finite = ~v2.isnan()
        assert torch.equal(v1[finite], v2[finite])
        assert s1[1, 0] == 0  # a NaN membrane does not spike


@pytest.mark.parametrize("surrogate", ["atan", "sigmoid", "fast_sigmoid", "triangle", "rectangle",
                                       "straight_through", "snntorch_triangular"])
def test_nan_gradients_like_reference(kernel_device, kernel_backend, surrogate):
    """A NaN membrane gives the same gradient on every backend, surrogate by surrogate (the triangle's
    clamp must keep a NaN, as torch.clamp_min does)."""
    x = torch.full((3, 4), 0.3)
    x[1, 0] = float("nan")
    grads = []
    for backend in (kernel_backend, "torch"):
        xb = x.to(kernel_device).requires_grad_()
        s, v = lif(xb, surrogate=surrogate, backend=backend)
        s.sum().backward()
        grads.append(xb.grad)
    assert torch.equal(grads[0].isnan(), grads[1].isnan())
    finite = ~grads[1].isnan()
    torch.testing.assert_close(grads[0][finite], grads[1][finite])


@pytest.mark.parametrize("spike_dtype", [torch.float64, torch.bfloat16, torch.float16])
def test_every_float_spike_dtype_on_every_backend(kernel_device, kernel_backend, spike_dtype):
    x = torch.randn(5, 3, 8, device=kernel_device)
    s, v = lif(x, spike_dtype=spike_dtype, backend=kernel_backend)
    r, _ = lif(x, spike_dtype=spike_dtype, backend="torch")
    assert s.dtype == spike_dtype and torch.equal(s, r)


@pytest.mark.parametrize("convention,expected", [("snntorch", 0.0), ("spikingjelly", 1.0)])
def test_threshold_ties(kernel_device, kernel_backend, convention, expected):
    """A membrane exactly at threshold: snnTorch '>' does not spike, SpikingJelly '>=' does."""
    x = torch.tensor([[1.0, 0.5], [0.25, 0.75]], device=kernel_device)  # both neurons hit 1.0 exactly once
    for backend in (kernel_backend, "torch"):
        s, _ = lif(x, beta=0.5, threshold=1.0, convention=convention, decay_input=False, reset="none",
                   backend=backend)
        assert s[0, 0].item() == expected  # h = 0.5*0 + 1.0 == threshold
        assert s[1, 0].item() == 0.0  # h = 0.5*1.0 + 0.25 < threshold
        assert s[1, 1].item() == expected  # h = 0.5*0.5 + 0.75 == threshold
    # snnTorch's delayed reset also uses '>': a tie at t=0 must not reset at t=1
    s, v = lif(x, beta=0.5, threshold=1.0, convention="snntorch", reset="subtract", backend=kernel_backend)
    assert v[0].item() == 0.5 * 1.0 + 0.25


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_threshold_tie_in_the_delayed_reset_gradient(kernel_device, kernel_backend, reset):
    """U[t-1] == thr exactly: snnTorch's reset signal is 0, so the gradient flows on through U[t-1]."""
    x = torch.tensor([[1.0], [0.25]], device=kernel_device)
    grads = {}
    for backend in (kernel_backend, "torch"):
        xx = x.clone().requires_grad_()
        thr = torch.tensor(1.0, device=kernel_device, requires_grad=True)
        _, v = lif(xx, beta=0.5, threshold=thr, convention="snntorch", reset=reset, backend=backend)
        v.sum().backward()
        grads[backend] = (xx.grad, 0.0 if thr.grad is None else thr.grad.item())  # None: not in the graph
    assert grads[kernel_backend][0].flatten().tolist() == [0.5, 1.0] == grads["torch"][0].flatten().tolist()
    assert grads[kernel_backend][1] == grads["torch"][1] == 0.0


@pytest.mark.parametrize("T", [MAX_CHUNK, 3 * MAX_CHUNK + 1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_autograd_saves_only_the_input(kernel_device, kernel_backend, T, dtype):
    """What autograd keeps for backward: x itself (by reference) plus one fp32 state per neuron per
    MAX_CHUNK steps after the first chunk; nothing else of size T x N."""
    N = 300
    x = torch.randn(T, N, device=kernel_device, dtype=dtype).requires_grad_()
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        s, v = lif(x, backend=kernel_backend)
    big = [t for t in saved if t.numel() >= N * 2]
    assert any(t.data_ptr() == x.data_ptr() for t in big), "x is saved by reference"
    extra = sum(t.numel() * t.element_size() for t in big if t.data_ptr() != x.data_ptr())
    assert extra == checkpoint_rows(T) * N * 4
    assert extra / x.numel() <= 4 / MAX_CHUNK  # bytes per element beyond x itself
    s.sum().backward()


@pytest.mark.parametrize("convention,reset", [("snntorch", "subtract"), ("spikingjelly", "hard")])
def test_membrane_sequence_output(kernel_device, kernel_backend, convention, reset):
    """return_membrane=True: the state after every step, equal and equally differentiable on both backends."""
    x, v0, gs, _ = make_inputs(MAX_CHUNK + 5, (3, 11), seed=12)
    g_seq = torch.randn(x.shape, generator=torch.Generator().manual_seed(13))
    out = {}
    for backend in (kernel_backend, "torch"):
        xx = x.to(kernel_device).clone().requires_grad_()
        s, v, v_seq = lif(xx, v0.to(kernel_device), convention=convention, reset=reset, return_membrane=True,
                          backend=backend)
        ((v_seq * g_seq.to(kernel_device)).sum() + (s * gs.to(kernel_device)).sum()).backward()
        out[backend] = (s, v, v_seq, xx.grad)
    (s1, v1, q1, g1), (s2, v2, q2, g2) = out[kernel_backend], out["torch"]
    assert torch.equal(s1, s2) and torch.equal(q1, q2) and torch.equal(q1[-1], v1)
    torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-5)
