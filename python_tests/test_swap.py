"""snnkern.swap against the real snnTorch and SpikingJelly: identical spikes, membranes and gradients.

Every table entry is exercised single-layer over its options and inside a small multi-layer network;
unsupported options must be left alone and reported.  Runs on the reference backend on CPU and on
the Triton kernels where they can run (GPU, or TRITON_INTERPRET=1).
"""
import copy
import warnings

import pytest
import torch
from torch import nn

import snnkern

snntorch = pytest.importorskip("snntorch")
from snntorch import surrogate as snn_surrogate  # noqa: E402
from snntorch import utils as snn_utils  # noqa: E402

sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
from spikingjelly.activation_based import functional as sj_functional  # noqa: E402
from spikingjelly.activation_based import layer as sj_layer  # noqa: E402
from spikingjelly.activation_based import surrogate as sj_surrogate  # noqa: E402

BACKENDS = ["torch", pytest.param("triton", marks=pytest.mark.triton)]
T, B, N = 10, 3, 24


@pytest.fixture
def device(backend):
    return "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"


def seq(seed, shape=(T, B, N), scale=0.8, shift=0.3):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale + shift


def close(a, b, name):
    scale = max(1.0, b.abs().max().item())
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * scale, msg=f"{name} differs")


def swapped_copy(model, backend):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a supported configuration must swap silently
        report = snnkern.swap(model, inplace=False, backend=backend)
    return report


# ---------------------------------------------------------------------------------------------
# snnTorch
# ---------------------------------------------------------------------------------------------

def run_leaky_loop(neuron, x, init_hidden, output):
    """The user's time loop, unchanged, for any Leaky configuration; returns spikes, mems."""
    spikes, mems = [], []
    mem = None if init_hidden else neuron.init_leaky()
    for t in range(x.shape[0]):
        if init_hidden:
            out = neuron(x[t])
            spk, mem = out if output else (out, neuron.mem)
        else:
            spk, mem = neuron(x[t], mem)
        spikes.append(spk)
        mems.append(mem)
    return torch.stack(spikes), torch.stack(mems)


LEAKY_OPTIONS = [
    dict(reset_mechanism="subtract"),
    dict(reset_mechanism="zero", learn_beta=True),
    dict(reset_mechanism="none", learn_threshold=True),
    dict(reset_mechanism="subtract", learn_beta=True, learn_threshold=True, init_hidden=True),
    dict(reset_mechanism="zero", init_hidden=True, output=True),
    dict(spike_grad=lambda: snn_surrogate.sigmoid(slope=10)),
    dict(spike_grad=lambda: snn_surrogate.fast_sigmoid(slope=25), learn_beta=True),
    dict(spike_grad=lambda: snn_surrogate.triangular(threshold=0.5), learn_threshold=True),
    dict(spike_grad=lambda: snn_surrogate.straight_through_estimator()),
    dict(spike_grad=lambda: snn_surrogate.atan(alpha=4.0), beta_per_neuron=True, learn_beta=True),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("opts", LEAKY_OPTIONS, ids=lambda o: ",".join(f"{k}" for k in o) or "default")
def test_snntorch_leaky_swap(backend, device, opts):
    opts = dict(opts)
    make_grad = opts.pop("spike_grad", None)
    beta = torch.linspace(0.5, 0.95, N) if opts.pop("beta_per_neuron", False) else 0.85
    init_hidden, output = opts.get("init_hidden", False), opts.get("output", False)
    original = snntorch.Leaky(beta=beta, threshold=0.9, spike_grad=make_grad() if make_grad else None, **opts)
    original = original.to(device)
    report = swapped_copy(original, backend)
    fast = report.model
    assert [r[1] for r in report.swapped] == ["snntorch.Leaky"] and not report.left
    assert isinstance(fast, snntorch.Leaky) and type(fast) is not snntorch.Leaky

    x = seq(1).to(device)
    results = []
    for neuron in (original, fast):
        xx = x.clone().requires_grad_()
        spikes, mems = run_leaky_loop(neuron, xx, init_hidden, output)
        g = torch.Generator().manual_seed(2)
        ((spikes * torch.randn(spikes.shape, generator=g).to(device)).sum()
         + (mems * torch.randn(mems.shape, generator=g).to(device)).sum()).backward()
        results.append((spikes.detach(), mems.detach(), xx.grad, {n: p.grad for n, p in neuron.named_parameters()}))
    (s1, m1, g1, p1), (s2, m2, g2, p2) = results
    assert torch.equal(s1, s2), "spikes differ"
    assert 0.05 < s1.mean() < 0.95
    close(m2, m1, "membrane")
    close(g2, g1, "grad x")
    assert p1.keys() == p2.keys()
    for name in p1:
        close(p2[name], p1[name], f"grad {name}")


def test_snntorch_swap_keeps_parameters_and_utils_reset():
    net = nn.Sequential(nn.Linear(N, N), snntorch.Leaky(beta=0.8, learn_beta=True, init_hidden=True))
    params = {n: p for n, p in net.named_parameters()}
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    report = snnkern.swap(net)  # in place
    assert report.model is net and len(report.swapped) == 1
    assert {n: p for n, p in net.named_parameters()} == params  # the very same Parameter objects
    x = seq(3, (4, B, N))
    out1 = torch.stack([net(x[t]) for t in range(4)])
    snn_utils.reset(net)  # snnTorch's own reset reaches the swapped layer
    assert net[1].mem.abs().sum() == 0
    out2 = torch.stack([net(x[t]) for t in range(4)])
    assert torch.equal(out1, out2)
    out2.sum().backward()
    opt.step()  # the optimizer built before the swap updates the swapped layer's beta
    assert not torch.equal(net[1].beta.detach(), torch.tensor(0.8))


class SnnTorchNet(nn.Module):
    """snnTorch tutorial-style MLP with its time loop."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(20, 32), nn.Linear(32, 5)
        self.lif1 = snntorch.Leaky(beta=0.9, learn_beta=True)
        self.lif2 = snntorch.Leaky(beta=0.8, reset_mechanism="zero", spike_grad=snn_surrogate.fast_sigmoid())

    def forward(self, x):
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spk_rec, mem_rec = [], []
        for t in range(x.shape[0]):
            spk1, mem1 = self.lif1(self.fc1(x[t]), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spk_rec.append(spk2)
            mem_rec.append(mem2)
        return torch.stack(spk_rec), torch.stack(mem_rec)


@pytest.mark.parametrize("backend", BACKENDS)
def test_snntorch_network_swap(backend, device):
    torch.manual_seed(0)
    original = SnnTorchNet().to(device)
    fast = swapped_copy(original, backend).model
    x = (seq(4, (T, B, 20), scale=1.5, shift=0.5)).to(device)
    outs = []
    for net in (original, fast):
        spk, mem = net(x)
        (spk.sum() + mem.square().sum()).backward()
        outs.append((spk.detach(), mem.detach(), {n: p.grad.clone() for n, p in net.named_parameters()}))
    assert torch.equal(outs[0][0], outs[1][0])
    close(outs[1][1], outs[0][1], "membrane")
    for name, g in outs[0][2].items():
        close(outs[1][2][name], g, f"grad {name}")


@pytest.mark.parametrize("make,why", [
    (lambda: snntorch.Leaky(beta=0.9, inhibition=True), "inhibition"),
    (lambda: snntorch.Leaky(beta=0.9, graded_spikes_factor=2.0), "graded_spikes_factor"),
    (lambda: snntorch.Leaky(beta=0.9, surrogate_disable=True), "surrogate_disable"),
    (lambda: snntorch.Leaky(beta=0.9, reset_delay=False), "reset_delay"),
    (lambda: snntorch.Leaky(beta=0.9, spike_grad=lambda x: (x > 0).float()), "spike_grad"),
])
def test_snntorch_unsupported_options_are_left_and_reported(make, why):
    net = nn.Sequential(nn.Linear(N, N), make())
    before = type(net[1])
    with pytest.warns(UserWarning, match=why):
        report = snnkern.swap(net)
    assert type(net[1]) is before and not report.swapped
    assert report.left[0][0] == "1" and why in "; ".join(report.left[0][2])
    assert why in str(report)


# ---------------------------------------------------------------------------------------------
# SpikingJelly
# ---------------------------------------------------------------------------------------------

SJ_NODES = [
    lambda: sj_neuron.LIFNode(tau=2.0),
    lambda: sj_neuron.LIFNode(tau=3.0, decay_input=False, v_reset=None, detach_reset=True,
                              surrogate_function=sj_surrogate.ATan(alpha=3.0)),
    lambda: sj_neuron.LIFNode(tau=2.5, v_threshold=0.8, v_reset=-0.1, surrogate_function=sj_surrogate.Rect()),
    lambda: sj_neuron.IFNode(),
    lambda: sj_neuron.IFNode(v_reset=None, surrogate_function=sj_surrogate.PiecewiseQuadratic(alpha=1.5)),
    lambda: sj_neuron.ParametricLIFNode(init_tau=2.0),
    lambda: sj_neuron.ParametricLIFNode(init_tau=4.0, decay_input=False, v_reset=None),
]


def run_sj(node, x, step_mode):
    if step_mode == "m":
        return node(x), node.v
    return torch.stack([node(x[t]) for t in range(x.shape[0])]), node.v


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("step_mode", ["s", "m"])
@pytest.mark.parametrize("make", SJ_NODES, ids=range(len(SJ_NODES)))
def test_spikingjelly_node_swap(backend, device, step_mode, make):
    original = make().to(device)
    sj_functional.set_step_mode(original, step_mode)
    fast = swapped_copy(original, backend).model
    assert isinstance(fast, type(original)) and type(fast) is not type(original)
    shift = 0.6 if getattr(original, "decay_input", False) else 0.3
    x = seq(5, scale=1.2, shift=shift).to(device)
    results = []
    for node in (original, fast):
        for _ in range(2):  # the second run after reset_net must start from scratch again
            sj_functional.reset_net(node)
            for p in node.parameters():
                p.grad = None
            xx = x.clone().requires_grad_()
            spikes, v = run_sj(node, xx, step_mode)
            g = torch.Generator().manual_seed(6)
            ((spikes * torch.randn(spikes.shape, generator=g).to(device)).sum()
             + (v * torch.randn(v.shape, generator=g).to(device)).sum()).backward()
        results.append((spikes.detach(), v.detach(), xx.grad, [p.grad for p in node.parameters()]))
    (s1, v1, g1, p1), (s2, v2, g2, p2) = results
    assert torch.equal(s1, s2), "spikes differ"
    assert 0.05 < s1.mean() < 0.95
    close(v2, v1, "membrane")
    close(g2, g1, "grad x")
    for a, b in zip(p2, p1):
        close(a, b, "grad w")


@pytest.mark.parametrize("backend", BACKENDS)
def test_spikingjelly_network_swap(backend, device):
    torch.manual_seed(1)
    original = nn.Sequential(sj_layer.Linear(20, 32), sj_neuron.LIFNode(tau=2.0), sj_layer.Linear(32, 16),
                             sj_neuron.ParametricLIFNode(), sj_layer.Linear(16, 5), sj_neuron.IFNode()).to(device)
    sj_functional.set_step_mode(original, "m")
    report = swapped_copy(original, backend)
    assert len(report.swapped) == 3
    x = seq(7, (T, B, 20), scale=2.0, shift=0.8).to(device)
    outs = []
    for net in (original, report.model):
        sj_functional.reset_net(net)
        out = net(x)
        (out * torch.arange(5.0, device=device)).sum().backward()
        outs.append((out.detach(), {n: p.grad.clone() for n, p in net.named_parameters()}))
    assert torch.equal(outs[0][0], outs[1][0]) and outs[0][0].sum() > 0
    for name, g in outs[0][1].items():
        close(outs[1][1][name], g, f"grad {name}")


def test_spikingjelly_unsupported_options_are_left_and_reported():
    net = nn.Sequential(sj_neuron.IFNode(surrogate_function=sj_surrogate.SoftSign()), sj_neuron.IFNode(),
                        sj_neuron.LIFNode(), sj_neuron.ParametricLIFNode())
    with pytest.warns(UserWarning):
        report = snnkern.swap(net)
    assert [r[0] for r in report.left] == ["0"] and [r[0] for r in report.swapped] == ["1", "2", "3"]
    assert "SoftSign" in report.left[0][2][0]
    # each entry under its own class name (not the longest name containing it)
    assert [r[1] for r in report.swapped] == ["spikingjelly IFNode", "spikingjelly LIFNode",
                                              "spikingjelly ParametricLIFNode"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_spikingjelly_store_v_seq(backend, device):
    original = sj_neuron.LIFNode(tau=2.0, step_mode="m", store_v_seq=True).to(device)
    report = swapped_copy(original, backend)
    x = seq(21).to(device)
    s_ref, s_new = original(x), report.model(x)
    assert torch.equal(s_ref, s_new)
    close(report.model.v_seq, original.v_seq, "v_seq")
    report.model.store_v_seq = False  # switched off after the swap: honoured too
    sj_functional.reset_net(report.model)
    report.model(x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_spikingjelly_single_step_store_v_seq_appends_like_the_original(backend, device):
    """Single-step with store_v_seq=True: each step's membrane is appended to v_seq (restarting on a new shape),
    detach_net detaches it and reset_net clears it, as SpikingJelly does."""
    original = sj_neuron.LIFNode(tau=2.0, store_v_seq=True).to(device)
    fast = swapped_copy(original, backend).model
    x = seq(23, scale=1.2).to(device)
    for node in (original, fast):
        for t in range(T):
            node(x[t])
    assert fast.v_seq.shape == original.v_seq.shape == (T, B, N)
    close(fast.v_seq, original.v_seq, "single-step v_seq")
    for node in (original, fast):
        sj_functional.detach_net(node)
        assert not node.v_seq.requires_grad
        node(seq(24, (T, 2, N))[0].to(device))  # a new batch size: the sequence starts again
    close(fast.v_seq, original.v_seq, "restarted v_seq")
    assert fast.v_seq.shape == (1, 2, N)
    for node in (original, fast):
        sj_functional.reset_net(node)
        assert node.v_seq is None


@pytest.mark.parametrize("make", SJ_NODES[::2], ids=range(0, len(SJ_NODES), 2))
def test_spikingjelly_scalar_neuron_inputs_like_the_original(make):
    """One neuron with no neuron dimension: 0-d inputs single-step, [T] inputs multi-step (both accepted
    by SpikingJelly) give the original's spikes, membrane and gradient."""
    results = []
    original = make()
    for node in (original, swapped_copy(original, "torch").model):
        out = []
        for step_mode, x in (("s", torch.tensor(1.3)), ("m", seq(25, (T,), scale=1.2))):
            sj_functional.set_step_mode(node, step_mode)
            sj_functional.reset_net(node)
            x = x.clone().requires_grad_()
            spikes = node(x) if step_mode == "m" else torch.stack([node(x), node(x)])
            (spikes.sum() + node.v * 0.5).backward()
            out.append((spikes.detach(), node.v.detach(), x.grad))
        results.append(out)
    for (s1, v1, g1), (s2, v2, g2) in zip(*results):
        assert s2.shape == s1.shape and v2.shape == v1.shape == ()
        assert torch.equal(s2, s1)
        close(v2, v1, "membrane")
        close(g2, g1, "grad x")


def test_snntorch_leaky_scalar_input_like_the_original():
    """A 0-d input (one neuron, no neuron dimension), which snnTorch's Leaky accepts."""
    original = snntorch.Leaky(beta=0.7)
    results = []
    for neuron in (original, swapped_copy(original, "torch").model):
        x = seq(26, (T,), scale=1.2).requires_grad_()
        spikes, mems = run_leaky_loop(neuron, x, init_hidden=False, output=True)
        (spikes.sum() + mems.sum() * 0.5).backward()
        results.append((spikes.detach(), mems.detach(), x.grad))
    (s1, m1, g1), (s2, m2, g2) = results
    assert s2.shape == s1.shape == (T,) and torch.equal(s2, s1) and s1.sum() > 0
    close(m2, m1, "membrane")
    close(g2, g1, "grad x")


@pytest.mark.parametrize("backend", BACKENDS)
def test_spikingjelly_batch_size_change_restarts_like_the_original(backend, device):
    original = sj_neuron.IFNode(step_mode="m").to(device)
    report = swapped_copy(original, backend)
    for batch in (3, 5):  # no reset_net between: a new batch size starts from v_reset in both
        x = seq(22 + batch, (T, batch, N)).to(device)
        assert torch.equal(original(x), report.model(x))


def test_options_set_after_the_swap_are_refused_by_name():
    for change, name in ((lambda m: setattr(m, "inhibition", True), "inhibition"),
                         (lambda m: m.graded_spikes_factor.fill_(2.0), "graded_spikes_factor"),
                         (lambda m: setattr(m, "reset_delay", False), "reset_delay")):
        neuron = snntorch.Leaky(beta=0.9)
        snnkern.swap(neuron)
        neuron(torch.randn(2, 4), neuron.init_leaky())  # fine as configured
        change(neuron)
        with pytest.raises(ValueError, match=name):
            neuron(torch.randn(2, 4), neuron.init_leaky())
    node = sj_neuron.IFNode()
    snnkern.swap(node)
    node.surrogate_function = sj_surrogate.SoftSign()
    with pytest.raises(ValueError, match="SoftSign"):
        node(torch.randn(2, 4))


def test_swapped_copy_keeps_snntorch_reset_working():
    """inplace=False: the copy's init_hidden layers join snnTorch's registry, so utils.reset clears them."""
    net = nn.Sequential(nn.Linear(4, 6), snntorch.Leaky(beta=0.8, init_hidden=True))
    copy_ = snnkern.swap(net, inplace=False).model
    x = torch.randn(3, 4) * 3
    outs = []
    for _ in range(2):  # the same sample twice, reset between: the same spikes
        snn_utils.reset(copy_)
        outs.append(torch.stack([copy_(x) for _ in range(4)]))
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_spikingjelly_is_announced(dtype):
    node = sj_neuron.IFNode(step_mode="m")
    snnkern.swap(node)
    with pytest.warns(UserWarning, match="float32"):
        node(torch.randn(4, 2, 8).to(dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per layer
        sj_functional.reset_net(node)
        node(torch.randn(4, 2, 8).to(dtype))


def test_swapped_leaky_compiles_fullgraph():
    neuron = snntorch.Leaky(beta=0.9)
    snnkern.swap(neuron, backend="torch")

    def loop(x):
        mem = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            spk, mem = neuron(x[t], mem)
            out.append(spk)
        return torch.stack(out)

    x = seq(30, (4, 2, 8))
    torch._dynamo.reset()
    assert torch.equal(torch.compile(loop, fullgraph=True)(x), loop(x))


def test_swap_is_idempotent_and_checks_arguments():
    net = nn.Sequential(sj_neuron.IFNode())
    assert len(snnkern.swap(net).swapped) == 1
    assert len(snnkern.swap(net).swapped) == 0  # already snnkern's
    with pytest.raises(TypeError, match="model"):
        snnkern.swap("not a model")
    with pytest.raises(ValueError, match="backend"):
        snnkern.swap(net, backend="cupy")
