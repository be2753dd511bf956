"""Bad input raises ValueError/TypeError naming the argument, on every backend, before any kernel runs."""
import pytest
import torch

import snnkern
import snnkern._dispatch

from snnkern.functional import if_, lif
from snnkern.ops.surrogate import SURROGATES

BACKENDS = ["torch", pytest.param("triton", marks=pytest.mark.triton)]


@pytest.fixture
def x(backend):
    device = "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"
    return torch.randn(4, 2, 3, device=device)


def other_device(x):
    """A device other than x's (the meta device stands in on a CPU-only machine)."""
    return "meta" if x.is_cuda or not torch.cuda.is_available() else "cuda"


@pytest.mark.parametrize("backend", BACKENDS)
class TestBadInput:
    def test_x_seq(self, backend, x):
        with pytest.raises(TypeError, match="x_seq"):
            lif([1.0, 2.0], backend=backend)
        with pytest.raises(TypeError, match="x_seq"):
            lif(torch.ones(3, 4, dtype=torch.int32, device=x.device), backend=backend)
        with pytest.raises(ValueError, match="x_seq"):
            lif(torch.tensor(1.0, device=x.device), backend=backend)
        with pytest.raises(ValueError, match="x_seq"):
            lif(torch.ones(5, device=x.device), backend=backend)
        with pytest.raises(ValueError, match="x_seq"):
            lif(torch.ones(0, 5, device=x.device), backend=backend)

    def test_v0(self, backend, x):
        with pytest.raises(ValueError, match="v0"):
            lif(x, torch.zeros(2, 4, device=x.device), backend=backend)
        with pytest.raises(ValueError, match="v0"):
            lif(x, torch.zeros(3, device=x.device), backend=backend)
        with pytest.raises(ValueError, match="v0"):
            lif(x, torch.zeros(2, 3, device=other_device(x)), backend=backend)
        with pytest.raises(TypeError, match="v0"):
            lif(x, torch.zeros(2, 3, dtype=torch.long, device=x.device), backend=backend)
        with pytest.raises(TypeError, match="v0"):
            lif(x, 0.0, backend=backend)

    def test_threshold(self, backend, x):
        for bad in (0.0, -1.0, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="threshold"):
                lif(x, threshold=bad, backend=backend)
        with pytest.raises(TypeError, match="threshold"):
            lif(x, threshold="1", backend=backend)
        with pytest.raises(ValueError, match="threshold"):
            lif(x, threshold=torch.ones(4, device=x.device), backend=backend)
        with pytest.raises(ValueError, match="threshold"):
            lif(x, threshold=torch.ones(3, device=other_device(x)), backend=backend)

    def test_beta_and_tau(self, backend, x):
        with pytest.raises(ValueError, match="beta or tau"):
            lif(x, beta=0.5, tau=2.0, backend=backend)
        with pytest.raises(ValueError, match="tau"):
            lif(x, tau=0.5, backend=backend)
        with pytest.raises(ValueError, match="beta"):
            lif(x, beta=1.5, convention="spikingjelly", backend=backend)
        with pytest.raises(ValueError, match="beta"):
            lif(x, beta=float("nan"), backend=backend)
        with pytest.raises(TypeError, match="beta"):
            lif(x, beta=torch.ones(3, dtype=torch.int64, device=x.device), backend=backend)
        with pytest.raises(ValueError, match="beta"):
            lif(x, beta=torch.ones(2, 2, device=x.device), backend=backend)

    def test_names(self, backend, x):
        with pytest.raises(ValueError, match="unknown surrogate 'relu'.*" + ".*".join(sorted(SURROGATES))):
            lif(x, surrogate="relu", backend=backend)
        with pytest.raises(ValueError, match="reset"):
            lif(x, reset="soft", backend=backend)
        with pytest.raises(ValueError, match="convention"):
            if_(x, convention="norse", backend=backend)
        with pytest.raises(ValueError, match="backend"):
            lif(x, backend="cupy")

    def test_options(self, backend, x):
        with pytest.raises(ValueError, match="alpha"):
            lif(x, surrogate="atan", alpha=0.0, backend=backend)
        with pytest.raises(ValueError, match="alpha"):
            lif(x, surrogate="straight_through", alpha=1.0, backend=backend)
        with pytest.raises(ValueError, match="detach_reset"):
            lif(x, convention="snntorch", detach_reset=False, backend=backend)
        with pytest.raises(TypeError, match="decay_input"):
            lif(x, decay_input="yes", backend=backend)
        with pytest.raises(ValueError, match="v_reset"):
            lif(x, reset="zero", v_reset=0.5, backend=backend)
        with pytest.raises(TypeError, match="spike_dtype"):
            lif(x, spike_dtype=torch.int64, backend=backend)
        with pytest.raises(ValueError, match="spike_dtype"):
            lif(x.clone().requires_grad_(), spike_dtype=torch.bool, backend=backend)
        with pytest.raises(ValueError, match="spike_dtype"):  # packed spikes carry no gradient either
            lif(x.clone().requires_grad_(), spike_dtype=torch.int32, backend=backend)

    def test_check_finite(self, backend, x):
        x = x.clone()
        x[1, 0, 0] = float("nan")
        with pytest.raises(ValueError, match="x_seq contains NaN"):
            lif(x, check_finite=True, backend=backend)
        lif(x, backend=backend)  # the default policy propagates instead (see the kernel tests)


def test_triton_backend_needs_a_kernel_device(monkeypatch):
    monkeypatch.setattr(snnkern._dispatch, "_INTERPRET", False)  # as if Triton compiled (no interpreter)
    with pytest.raises(ValueError, match="backend='triton' needs CUDA tensors"):
        lif(torch.randn(3, 4), backend="triton")


@pytest.mark.triton
def test_triton_backend_rejects_float64():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with pytest.raises(ValueError, match="float64"):
        lif(torch.randn(3, 4, dtype=torch.float64, device=device), backend="triton")


@pytest.mark.parametrize("kw, match", [
    (dict(tau=torch.tensor(0.0)), "tau"),
    (dict(threshold=torch.tensor(-1.0)), "threshold"),
    (dict(threshold=torch.tensor([1.0, float("nan")])), "threshold"),
    (dict(beta=torch.tensor(1.5), convention="spikingjelly"), "beta"),
    (dict(beta=torch.tensor(float("inf"))), "beta"),
])
def test_tensor_valued_options_are_range_checked(kw, match):
    """Fixed tensors get the checks floats get (once per tensor version)."""
    with pytest.raises(ValueError, match=match):
        lif(torch.randn(3, 2), **kw)


def test_range_check_follows_in_place_changes():
    thr = torch.tensor(1.0)
    lif(torch.randn(3, 2), threshold=thr)
    thr.fill_(-1.0)  # a new version: checked again
    with pytest.raises(ValueError, match="threshold"):
        lif(torch.randn(3, 2), threshold=thr)


def test_learnable_tensors_are_not_synced_for_checks():
    """snnTorch clamps a learnable beta into [0, 1]; out-of-range learnable values are the model's business."""
    beta = torch.tensor(1.3, requires_grad=True)
    s, _ = lif(torch.randn(3, 2), beta=beta)
    s.sum().backward()


def test_number_messages_and_numpy_scalars():
    np = pytest.importorskip("numpy")
    with pytest.raises(ValueError, match=r"beta must be finite; got nan"):
        lif(torch.randn(3, 2), beta=float("nan"))
    a, _ = lif(torch.randn(3, 2, generator=torch.Generator().manual_seed(0)), beta=np.float32(0.5), threshold=np.float64(1))
    b, _ = lif(torch.randn(3, 2, generator=torch.Generator().manual_seed(0)), beta=0.5, threshold=1.0)
    assert torch.equal(a, b)
