"""The reference itself: float64 gradchecks, surrogate formulas, and the hand-worked equations."""
import math

import pytest
import torch

from snnkern.functional import if_, lif
from snnkern.ops.surrogate import SURROGATES, SpikeFn, surrogate_grad_reference


def f64(*shape, seed=0, scale=1.0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale + shift).requires_grad_()


GRADCHECK_CASES = [
    ("snntorch", "subtract", None), ("snntorch", "zero", None), ("snntorch", "none", None),
    ("spikingjelly", "subtract", True), ("spikingjelly", "hard", True), ("spikingjelly", "none", True),
]


@pytest.mark.parametrize("convention,reset,detach", GRADCHECK_CASES)
def test_gradcheck_membrane_path(convention, reset, detach):
    """With the reset detached, the final membrane is piecewise smooth in x, v0, beta and threshold:
    finite differences must agree with the analytic gradient of the reference (float64)."""
    x, v0 = f64(6, 2, 3, seed=1, scale=0.6, shift=0.3), f64(2, 3, seed=2, scale=0.3)
    beta = torch.tensor([0.6, 0.8, 0.9], dtype=torch.float64, requires_grad=True)
    thr = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)

    def final_membrane(x, v0, beta, thr):
        return lif(x, v0, beta=beta, threshold=thr, convention=convention, reset=reset, v_reset=0.0,
                   decay_input=convention == "spikingjelly", detach_reset=detach, backend="torch")[1]

    assert torch.autograd.gradcheck(final_membrane, (x, v0, beta, thr))


def test_gradcheck_if_and_tau():
    x = f64(5, 4, seed=3, scale=0.5, shift=0.4)
    tau = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: if_(x, convention="spikingjelly", detach_reset=True)[1], (x,))
    assert torch.autograd.gradcheck(
        lambda x, tau: lif(x, tau=tau, convention="spikingjelly", detach_reset=True)[1], (x, tau))


def _primitive(name, x, a):
    """A function whose true derivative is the surrogate (independent of the implementation)."""
    if name == "atan":
        return torch.atan(math.pi / 2 * a * x) / math.pi
    if name == "sigmoid":
        return torch.sigmoid(a * x)
    if name == "fast_sigmoid":
        return x / (1 + a * x.abs())
    if name == "triangle":
        y = x.clamp(-1 / a, 1 / a)
        return a * y - a * a * y * y.abs() / 2
    if name == "rectangle":
        return a * x.clamp(-0.5 / a, 0.5 / a)
    if name == "snntorch_triangular":
        return -a * x.abs()
    return x.clone()


@pytest.mark.parametrize("name", sorted(SURROGATES))
@pytest.mark.parametrize("alpha", [0.7, 2.0, 25.0])
def test_surrogate_is_the_derivative_of_its_primitive(name, alpha):
    spec = SURROGATES[name]
    a = spec.default_alpha and alpha
    x = torch.linspace(-3, 3, 1201, dtype=torch.float64)
    x = x[((x.abs() * (a or 1) - 0.5).abs() > 1e-6) & (x != 0)]  # keep off the rectangle's edges and 0
    x.requires_grad_()
    (expected,) = torch.autograd.grad(_primitive(name, x, a).sum(), x)
    got = surrogate_grad_reference(x.detach(), a or 0.0, spec.code)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)
    # and through the spike function: Heaviside forward, surrogate backward
    out = SpikeFn.apply(x, a or 0.0, spec.code, True)
    assert torch.equal(out, (x > 0).double())
    (g,) = torch.autograd.grad(out.sum(), x)
    torch.testing.assert_close(g, expected, rtol=1e-9, atol=1e-12)


def test_snntorch_equations_by_hand():
    """beta=0.5, thr=1, subtract: U = 0.5*U + X - R*thr, R from the previous U, S = U > thr."""
    x = torch.tensor([[1.5], [0.5], [0.0], [1.0]])
    s, v = lif(x, beta=0.5, threshold=1.0, reset="subtract", backend="torch")
    # U: 1.5 (S=1) -> 0.75+0.5-1 = 0.25 (S=0) -> 0.125 (S=0) -> 0.0625+1 = 1.0625 (S=1)
    assert s.flatten().tolist() == [1.0, 0.0, 0.0, 1.0]
    assert v.item() == pytest.approx(1.0625)
    s, v = lif(x, beta=0.5, threshold=1.0, reset="zero", backend="torch")
    # U: 1.5 -> 0.5*0 + 0.5 = 0.5 -> 0.25 -> 1.125
    assert s.flatten().tolist() == [1.0, 0.0, 0.0, 1.0] and v.item() == pytest.approx(1.125)


def test_spikingjelly_equations_by_hand():
    """tau=2 (beta=0.5), decay_input, hard reset to 0: H = V + (X - V)/2, S = H >= 1, V = (1-S)*H."""
    x = torch.tensor([[2.0], [1.0], [3.0]])
    s, v = lif(x, tau=2.0, threshold=1.0, reset="hard", convention="spikingjelly", backend="torch")
    # H: 1.0 (S=1, V=0) -> 0.5 (S=0) -> 0.5 + (3 - 0.5)/2 = 1.75 (S=1, V=0)
    assert s.flatten().tolist() == [1.0, 0.0, 1.0] and v.item() == 0.0
    s, v = lif(x, tau=2.0, threshold=1.0, reset="subtract", convention="spikingjelly", backend="torch")
    # H: 1.0 (S=1, V=0) -> 0.5 -> 1.75 (S=1, V=0.75)
    assert s.flatten().tolist() == [1.0, 0.0, 1.0] and v.item() == pytest.approx(0.75)


def test_state_carries_across_chunks():
    """Running a sequence in two calls, passing v_last as v0, equals one call (truncated-BPTT use)."""
    x = torch.randn(10, 3, 5, generator=torch.Generator().manual_seed(4)) + 0.4
    for convention in ("snntorch", "spikingjelly"):
        s, v = lif(x, convention=convention, backend="torch")
        s1, v1 = lif(x[:4], convention=convention, backend="torch")
        s2, v2 = lif(x[4:], v1, convention=convention, backend="torch")
        assert torch.equal(torch.cat([s1, s2]), s) and torch.equal(v2, v)
