"""snnkern.functional.lif/if_ reproduce snnTorch's Leaky and SpikingJelly's LIF/IF/PLIF nodes.

The oracles are the real packages (installed by the ``test`` extra).  Spikes must be identical,
membranes and gradients equal within 1e-5 relative.  Each case runs on the reference backend and,
where the kernels can run (GPU, or TRITON_INTERPRET=1), on the Triton kernels too.
"""
import pytest
import torch

from snnkern.functional import if_, lif

snntorch = pytest.importorskip("snntorch")
sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
sj_surrogate = pytest.importorskip("spikingjelly.activation_based.surrogate")
from snntorch import surrogate as snn_surrogate  # noqa: E402

BACKENDS = ["torch", pytest.param("triton", marks=pytest.mark.triton)]
T, B, N = 12, 3, 41


@pytest.fixture
def device(request, backend):
    return "cuda" if torch.cuda.is_available() else "cpu"


def inputs(seed, scale=0.8, shift=0.3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, N, generator=g) * scale + shift
    grad_s = torch.randn(T, B, N, generator=g)
    grad_v = torch.randn(B, N, generator=g)
    return x, grad_s, grad_v


def close(a, b, name):
    scale = max(1.0, b.abs().max().item())
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * scale, msg=f"{name} differs")


SNNTORCH_SURROGATES = [
    (None, "atan", None),  # snnTorch's default spike_grad is ATan(alpha=2)
    (lambda: snn_surrogate.atan(alpha=3.0), "atan", 3.0),
    (lambda: snn_surrogate.sigmoid(slope=25), "sigmoid", 25.0),
    (lambda: snn_surrogate.fast_sigmoid(slope=25), "fast_sigmoid", 25.0),
    (lambda: snn_surrogate.straight_through_estimator(), "straight_through", None),
    (lambda: snn_surrogate.triangular(threshold=0.7), "snntorch_triangular", 0.7),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
@pytest.mark.parametrize("surr", SNNTORCH_SURROGATES, ids=lambda s: s[1] + str(s[2]))
def test_snntorch_leaky(backend, device, reset, surr):
    make_grad, name, alpha = surr
    x, grad_s, grad_v = inputs(seed=11)
    if name == "sigmoid":
        # snnTorch writes this surrogate as exp(-k*x)/(exp(-k*x)+1)^2, which overflows to NaN once
        # k*(U - thr) < -88; keep the membrane above that (test_sigmoid_surrogate_is_finite covers it).
        x = x.abs()
    beta0 = torch.linspace(0.3, 0.95, N)
    mem0 = torch.randn(B, N, generator=torch.Generator().manual_seed(12)) * 0.5

    leaky = snntorch.Leaky(beta=beta0.clone(), threshold=0.9, reset_mechanism=reset, learn_beta=True,
                           learn_threshold=True, spike_grad=None if make_grad is None else make_grad())
    xs = x.clone().requires_grad_()
    mem, spikes = mem0.clone(), []
    for t in range(T):
        spk, mem = leaky(xs[t], mem)
        spikes.append(spk)
    spikes = torch.stack(spikes)
    ((spikes * grad_s).sum() + (mem * grad_v).sum()).backward()

    xk = x.detach().to(device).clone().requires_grad_()
    beta = beta0.detach().to(device).clone().requires_grad_()
    thr = torch.tensor(0.9, device=device, requires_grad=True)
    s, v = lif(xk, mem0.to(device), beta=beta, threshold=thr, reset=reset, surrogate=name, alpha=alpha,
               convention="snntorch", backend=backend)
    ((s * grad_s.to(device)).sum() + (v * grad_v.to(device)).sum()).backward()

    assert torch.equal(s.cpu(), spikes), "spikes differ from snnTorch"
    assert 0.05 < spikes.mean() < 0.95
    close(v.cpu(), mem.detach(), "final membrane")
    close(xk.grad.cpu(), xs.grad, "grad x")
    close(beta.grad.cpu(), leaky.beta.grad, "grad beta")
    close(thr.grad.cpu(), leaky.threshold.grad, "grad threshold")


SJ_CASES = [  # (v_reset, decay_input, detach_reset, surrogate)
    (0.0, True, False, ("sigmoid", 4.0)),
    (None, True, False, ("sigmoid", 4.0)),
    (-0.2, False, False, ("atan", 2.0)),
    (None, False, True, ("atan", 2.0)),
    (0.0, True, True, ("rectangle", 1.0)),
    (0.0, False, False, ("triangle", 1.0)),
]
SJ_SURROGATES = {"sigmoid": "Sigmoid", "atan": "ATan", "rectangle": "Rect", "triangle": "PiecewiseQuadratic"}


def sj_surrogate_fn(name, alpha):
    return getattr(sj_surrogate, SJ_SURROGATES[name])(alpha=alpha)


def run_sj(node, x, grad_s, grad_v):
    xs = x.clone().requires_grad_()
    spikes = node(xs)
    ((spikes * grad_s).sum() + (node.v * grad_v).sum()).backward()
    return spikes.detach(), node.v.detach(), xs.grad


def run_ours(fn, x, grad_s, grad_v, device, **kw):
    xk = x.detach().to(device).clone().requires_grad_()
    s, v = fn(xk, convention="spikingjelly", **kw)
    ((s * grad_s.to(device)).sum() + (v * grad_v.to(device)).sum()).backward()
    return s.detach().cpu(), v.detach().cpu(), xk.grad.cpu()


def check_sj(ours, theirs):
    assert torch.equal(ours[0], theirs[0]), "spikes differ from SpikingJelly"
    assert 0.05 < theirs[0].mean() < 0.95
    close(ours[1], theirs[1], "final membrane")
    close(ours[2], theirs[2], "grad x")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("v_reset,decay_input,detach_reset,surr", SJ_CASES)
def test_spikingjelly_lif_node(backend, device, v_reset, decay_input, detach_reset, surr):
    x, grad_s, grad_v = inputs(seed=21, scale=1.5 if decay_input else 0.8, shift=0.6 if decay_input else 0.3)
    node = sj_neuron.LIFNode(tau=2.0, decay_input=decay_input, v_threshold=0.9, v_reset=v_reset,
                             surrogate_function=sj_surrogate_fn(*surr), detach_reset=detach_reset, step_mode="m")
    ours = run_ours(lif, x, grad_s, grad_v, device, tau=2.0, threshold=0.9, decay_input=decay_input,
                    reset="subtract" if v_reset is None else "hard", v_reset=v_reset or 0.0,
                    detach_reset=detach_reset, surrogate=surr[0], alpha=surr[1], backend=backend)
    check_sj(ours, run_sj(node, x, grad_s, grad_v))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("v_reset", [0.0, None])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_spikingjelly_if_node(backend, device, v_reset, detach_reset):
    x, grad_s, grad_v = inputs(seed=31, scale=0.6, shift=0.15)
    node = sj_neuron.IFNode(v_threshold=1.0, v_reset=v_reset, detach_reset=detach_reset, step_mode="m")
    ours = run_ours(if_, x, grad_s, grad_v, device, threshold=1.0, reset="subtract" if v_reset is None else "hard",
                    detach_reset=detach_reset, surrogate="sigmoid", alpha=4.0, backend=backend)
    check_sj(ours, run_sj(node, x, grad_s, grad_v))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("v_reset", [0.0, None])
def test_spikingjelly_parametric_lif_node(backend, device, v_reset):
    x, grad_s, grad_v = inputs(seed=41, scale=1.5, shift=0.6)
    node = sj_neuron.ParametricLIFNode(init_tau=3.0, v_threshold=1.0, v_reset=v_reset, step_mode="m")
    theirs = run_sj(node, x, grad_s, grad_v)
    w = node.w.detach().clone().to(device).requires_grad_()
    ours = run_ours(lif, x, grad_s, grad_v, device, beta=1.0 - w.sigmoid(), decay_input=True,
                    reset="subtract" if v_reset is None else "hard", surrogate="sigmoid", alpha=4.0, backend=backend)
    check_sj(ours, theirs)
    close(w.grad.cpu(), node.w.grad, "grad w")


def test_sigmoid_surrogate_is_finite_far_below_threshold():
    """Where snnTorch's sigmoid surrogate overflows (NaN), ours gives the true, tiny derivative."""
    x = torch.full((3, 4), -10.0, requires_grad=True)
    s, v = lif(x, surrogate="sigmoid", alpha=25.0, backend="torch")
    s.sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad.abs() < 1e-30).all()
