"""snnkern.nir against a real peer: snnTorch's NIR importer and exporter give bitwise-identical spikes.

Weights and inputs lie on a dyadic grid (k/8, k/4), so every Linear/Conv/AvgPool sum is exact whatever
the summation order (batched vs unbatched, mkldnn vs plain): a spike differs only if the neuron
arithmetic differs.  The threshold 1.0 sits on that grid, so ``v == threshold`` ties happen and the
``>`` of NIR/snnTorch is exercised.  Without nir (or snnTorch) the tests that need it skip, with the reason.
"""
import importlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import snnkern
from snnkern.nn import IF, LIF, PLIF, SpikingSequential, reset_states

try:
    import nir
except ImportError:  # pragma: no cover - CI without the nir extra
    nir = None
try:
    import nirtorch  # noqa: F401  (snnTorch's NIR code imports it)
    import snntorch
    from snntorch.export_nir import export_to_nir
    from snntorch.import_nir import import_from_nir
except ImportError:  # pragma: no cover
    snntorch = None

needs_nir = pytest.mark.skipif(nir is None, reason="needs nir: pip install nir nirtorch")
needs_snntorch = pytest.mark.skipif(nir is None or snntorch is None,
                                    reason="needs nir, nirtorch and snntorch: pip install nir nirtorch snntorch")

T, B = 12, 4


def grid(shape, seed, k=8, denom=8.0):
    """Values k'/denom with integer k' in [-k, k]: sums of a few hundred of them are exact in fp32."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-k, k + 1, shape, generator=g).float() / denom


def dyadic_(model, seed=0):
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        for i, p in enumerate(p for m in layers for p in m.parameters()):
            p.copy_(grid(p.shape, seed + i, k=6, denom=8.0))
    return model


def inputs(shape, seed=100):
    x = grid(shape, seed, k=6, denom=4.0)
    return x


def nontrivial(s):
    rate = s.float().mean().item()
    assert 0.02 < rate < 0.98, f"spike rate {rate}: the comparison would prove little"


def snn_mlp(neuron):
    return dyadic_(SpikingSequential(nn.Linear(12, 16), neuron(16), nn.Linear(16, 5), neuron(5)))


def snn_cnn(neuron):
    return dyadic_(SpikingSequential(nn.Conv2d(2, 3, 3, padding=1), neuron((3, 8, 8)), nn.AvgPool2d(2),
                                     nn.Flatten(), nn.Linear(3 * 4 * 4, 6), neuron(6)), seed=7)


NEURONS = {
    "LIF": lambda shape: LIF(0.875, reset="zero"),
    "LIF_beta09": lambda shape: LIF(0.9, reset="zero"),
    "IF": lambda shape: IF(reset="zero"),
    "LIF_per_neuron": lambda shape: LIF(torch.linspace(0.5, 0.95, int(np.prod(shape))).reshape(shape),
                                        threshold=torch.full(shape if isinstance(shape, tuple) else (shape,), 0.75),
                                        reset="zero", learn_beta=True),
}


def run_snntorch(net, x_seq, per_sample):
    """Step snnTorch's imported graph over T as snnTorch does (one call per step, the Leaky layers hold
    the membrane); its importer flattens the batch dim in Flatten, so CNNs run one sample at a time."""
    def steps(xs):
        for m in net.modules():
            if isinstance(m, snntorch.Leaky):
                m.mem = torch.zeros(0)
        return torch.stack([net(xs[t])[0] for t in range(xs.shape[0])])

    with torch.no_grad():
        if not per_sample:
            return steps(x_seq)
        return torch.stack([steps(x_seq[:, b:b + 1]).reshape(x_seq.shape[0], -1) for b in range(x_seq.shape[1])], 1)


# ---------------------------------------------------------------------------------------------------
# snnkern -> NIR -> snnTorch
# ---------------------------------------------------------------------------------------------------
@needs_snntorch
@pytest.mark.parametrize("kind", sorted(NEURONS))
@pytest.mark.parametrize("net", ["mlp", "cnn"])
def test_snnkern_export_snntorch_import_same_spikes(net, kind, tmp_path):
    import snnkern.nir as sknir

    model = (snn_mlp if net == "mlp" else snn_cnn)(NEURONS[kind])
    x = inputs((T, B, 12) if net == "mlp" else (T, B, 2, 8, 8))
    with torch.no_grad():
        ours = model(x)
    path = tmp_path / "model.nir"
    sknir.export(model, x[0], path, if_node="LIF")  # snnTorch reads NIR's IF node as a leaky neuron
    theirs = run_snntorch(import_from_nir(nir.read(path)), x, per_sample=net == "cnn")
    nontrivial(ours)
    assert theirs.shape == ours.shape
    assert torch.equal(theirs, ours)


@needs_snntorch
def test_grid_separates_the_conventions():
    """Control: on these inputs SpikingJelly's '>=' (refused by export) gives other spikes than NIR's '>'."""
    x = inputs((T, B, 12))
    gt = snn_mlp(lambda s: LIF(0.875, reset="zero"))
    ge = snn_mlp(lambda s: LIF(0.875, reset="zero", convention="spikingjelly", decay_input=False))
    with torch.no_grad():
        assert not torch.equal(gt(x), ge(x))


@needs_snntorch
def test_snntorch_reads_if_node_as_leaky():
    """Why if_node='LIF' exists: snnTorch 1.0 maps NIR's IF to Leaky(beta=0.9, subtract reset)."""
    import snnkern.nir as sknir

    graph = sknir.export(snn_mlp(NEURONS["IF"]), inputs((B, 12)))
    leaky = [m for m in import_from_nir(graph).modules() if isinstance(m, snntorch.Leaky)]
    assert leaky and all(abs(float(m.beta) - 0.9) < 1e-6 for m in leaky)
    assert isinstance(graph.nodes["1"], nir.IF)


# ---------------------------------------------------------------------------------------------------
# snnTorch -> NIR -> snnkern
# ---------------------------------------------------------------------------------------------------
def leaky(shape, beta, thr, reset_delay):
    # snnTorch's exporter needs per-neuron tensors for its own NIR type check
    return snntorch.Leaky(beta=torch.full(shape, beta), threshold=torch.full(shape, thr), init_hidden=True,
                          reset_mechanism="zero", reset_delay=reset_delay)


@needs_snntorch
@pytest.mark.parametrize("reset_delay", [False, True], ids=["immediate", "delayed"])
@pytest.mark.parametrize("net", ["mlp", "cnn"])
def test_snntorch_export_snnkern_load_same_spikes(net, reset_delay, tmp_path):
    import snnkern.nir as sknir

    if net == "mlp":
        model = nn.Sequential(nn.Linear(12, 16), leaky((16,), 0.875, 1.0, reset_delay),
                              nn.Linear(16, 5), leaky((5,), 0.9, 0.75, reset_delay))
        x = inputs((T, B, 12))
    else:
        model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), leaky((3, 8, 8), 0.9, 1.0, reset_delay),
                              nn.AvgPool2d((2, 2)), nn.Flatten(), nn.Linear(48, 6), leaky((6,), 0.8, 0.5, reset_delay))
        x = inputs((T, B, 2, 8, 8))
    dyadic_(model, seed=3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, snntorch.Leaky):
                m.mem = torch.zeros(0)
        theirs = torch.stack([model(x[t]) for t in range(T)])
    path = tmp_path / "snntorch.nir"
    nir.write(path, export_to_nir(model, x[0], ignore_dims=[0]))
    loaded = sknir.load(path)
    assert all(isinstance(m, (LIF, nn.Linear, nn.Conv2d, nn.AvgPool2d, nn.Flatten)) for m in loaded)
    with torch.no_grad():
        ours = loaded(x)
    nontrivial(theirs)
    assert torch.equal(ours, theirs)


# ---------------------------------------------------------------------------------------------------
# snnkern -> NIR -> snnkern
# ---------------------------------------------------------------------------------------------------
ROUND_TRIP = {
    "LIF_zero": lambda s: LIF(0.9, reset="zero"),
    "LIF_hard_v_reset": lambda s: LIF(0.8, reset="hard", v_reset=-0.25, threshold=0.5),
    "LIF_decay_input": lambda s: LIF(0.75, reset="zero", decay_input=True, threshold=0.25),
    "IF_zero": lambda s: IF(reset="zero"),
    "IF_hard": lambda s: IF(reset="hard", v_reset=0.125, threshold=0.75),
    "PLIF_snntorch": lambda s: PLIF(3.0, reset="zero", convention="snntorch", decay_input=False),
}


@needs_nir
@pytest.mark.parametrize("if_node", ["IF", "LIF"])
@pytest.mark.parametrize("kind", sorted(ROUND_TRIP))
def test_snnkern_round_trip(kind, if_node, tmp_path):
    import snnkern.nir as sknir

    model = snn_cnn(ROUND_TRIP[kind])
    x = inputs((T, B, 2, 8, 8))
    with torch.no_grad():
        ref = model(x)
    path = tmp_path / "rt.nir"
    sknir.export(model, x[0], path, if_node=if_node)
    loaded = sknir.load(path)
    with torch.no_grad():
        out = loaded(x)
        reset_states(loaded)  # state handling: a second run after reset repeats the first
        again = loaded(x)
    nontrivial(ref)
    assert torch.equal(out, ref) and torch.equal(again, ref)


class _Net(nn.Module):
    """Not a Sequential: export traces it with torch.fx into its chain of layers."""

    def __init__(self):
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(12, 16), LIF(0.9, reset="zero")
        self.fc2, self.lif2 = nn.Linear(16, 5), IF(reset="hard", v_reset=0.25)

    def forward(self, x):
        return self.lif2(self.fc2(self.lif1(self.fc1(x))))


@needs_nir
def test_traced_module_round_trip():
    import snnkern.nir as sknir

    model = dyadic_(_Net())
    x = inputs((T, B, 12))
    with torch.no_grad():
        ref = model(x)
    graph = sknir.export(model, x[0])
    assert [type(n).__name__ for n in graph.nodes.values()] == ["Input", "Affine", "LIF", "Affine", "IF", "Output"]
    with torch.no_grad():
        assert torch.equal(sknir.load(graph)(x), ref)
    nontrivial(ref)


@needs_nir
@pytest.mark.parametrize("per_channel", [False, True])
def test_converted_snn_round_trip(per_channel, tmp_path):
    import snnkern.nir as sknir

    torch.manual_seed(0)
    ann = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))
    calib = torch.rand(64, 10)
    snn = snnkern.convert(ann, calib, mode="max", per_channel=per_channel, T=16)
    x = torch.rand(5, 10)
    with torch.no_grad():
        ref = snn(x, return_steps=True)  # [T, B, 3]
    with pytest.raises(ValueError, match=r"layer '1' \(IFNeuron\).*subtract"):
        sknir.export(snn, x)
    path = tmp_path / "converted.nir"
    graph = sknir.export(snn, x, path, extensions=True)
    assert isinstance(graph.nodes["1"], nir.IF) and isinstance(graph.nodes["1_scale"], nir.Scale)
    loaded = sknir.load(path)
    with torch.no_grad():
        out = loaded(x.unsqueeze(0).expand(16, *x.shape))
    assert torch.equal(out, ref)
    assert torch.equal(out.mean(0), snn(x))


# ---------------------------------------------------------------------------------------------------
# named errors
# ---------------------------------------------------------------------------------------------------
@needs_nir
@pytest.mark.parametrize("layer, exc, match", [
    (LIF(0.9, reset="zero", convention="spikingjelly"), ValueError,
     r"layer '1' \(LIF\).*convention='spikingjelly'.*>="),
    (LIF(0.9), ValueError, r"layer '1' \(LIF\).*reset='subtract'"),
    (IF(reset="none"), ValueError, r"layer '1' \(IF\).*reset='none'"),
    (LIF(1.0, reset="zero"), ValueError, r"layer '1' \(LIF\).*beta"),
    (nn.ReLU(), TypeError, r"layer '1' \(ReLU\) has no NIR mapping"),
    (nn.BatchNorm1d(16), TypeError, r"layer '1' \(BatchNorm1d\).*fold"),
])
def test_export_refuses_what_does_not_map(layer, exc, match):
    import snnkern.nir as sknir

    model = SpikingSequential(nn.Linear(12, 16), layer, nn.Linear(16, 5))
    with pytest.raises(exc, match=match):
        sknir.export(model, inputs((B, 12)))


@needs_nir
def test_export_refuses_maxpool_and_bad_sample():
    import snnkern.nir as sknir

    model = SpikingSequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), IF(reset="zero"))
    with pytest.raises(TypeError, match=r"layer '1' \(MaxPool2d\).*max-pool"):
        sknir.export(model, torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="sample must be one time step"):
        sknir.export(model, torch.zeros(8))
    with pytest.raises(ValueError, match="if_node"):
        sknir.export(model, torch.zeros(1, 1, 8, 8), if_node="I")


@needs_nir
def test_extensions_keep_snnkern_semantics():
    import snnkern.nir as sknir

    model = snn_mlp(lambda s: LIF(0.5, reset="subtract", convention="spikingjelly", decay_input=False))
    x = inputs((T, B, 12))
    graph = sknir.export(model, x[0], extensions=True)
    assert graph.nodes["1"].metadata["snnkern_reset"] == "subtract"
    loaded = sknir.load(graph)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def _graph(neuron, n=4):
    return nir.NIRGraph.from_list(nir.Affine(weight=np.eye(n, dtype=np.float32), bias=np.zeros(n, np.float32)),
                                  neuron)


@needs_nir
def test_load_refuses_what_does_not_map():
    import snnkern.nir as sknir

    one, n = np.ones(4), 4
    dt = 1e-4
    tau = np.full(n, 10 * dt)
    cases = [
        (nir.CubaLIF(tau_syn=tau, tau_mem=tau, r=tau / dt, v_leak=0 * one, v_threshold=one), TypeError,
         r"node 'cubalif' \(CubaLIF\) has no snnkern mapping"),
        (nir.LIF(tau=tau, r=tau / dt, v_leak=0.5 * one, v_threshold=one, v_reset=0 * one), ValueError,
         r"node 'lif' \(LIF\) has v_leak != v_reset"),
        (nir.LIF(tau=tau, r=3 * tau / dt, v_leak=0 * one, v_threshold=one), ValueError, r"node 'lif'.*input gain"),
        (nir.LIF(tau=tau, r=tau / dt, v_leak=np.arange(n) * 0.1, v_threshold=one, v_reset=np.arange(n) * 0.1),
         ValueError, r"node 'lif'.*v_reset varies"),
        (nir.IF(r=2 * one, v_threshold=one), ValueError, r"node 'if' \(IF\) has r != 1"),
        (nir.LIF(tau=np.full(n, dt / 2), r=one, v_leak=0 * one, v_threshold=one), ValueError, r"tau < dt"),
    ]
    for node, exc, match in cases:
        with pytest.raises(exc, match=match):
            sknir.load(_graph(node))


@needs_nir
def test_load_refuses_branches_and_recurrence():
    import snnkern.nir as sknir

    w = np.eye(3, dtype=np.float32)
    one = np.ones(3)
    nodes = {"input": nir.Input(np.array([3])), "a": nir.Linear(weight=w), "b": nir.Linear(weight=w),
             "lif": nir.IF(r=one, v_threshold=one), "output": nir.Output(np.array([3]))}
    branch = nir.NIRGraph(nodes=nodes, edges=[("input", "a"), ("input", "b"), ("a", "lif"), ("b", "lif"),
                                              ("lif", "output")])
    with pytest.raises(ValueError, match="branches or merges at node 'input'"):
        sknir.load(branch)
    nodes.pop("b")
    rec = nir.NIRGraph(nodes=nodes, edges=[("input", "a"), ("a", "lif"), ("lif", "a"), ("lif", "output")])
    with pytest.raises(ValueError, match="branches or merges at node 'a'"):
        sknir.load(rec)
    with pytest.raises(TypeError, match="nir.NIRGraph or a path"):
        sknir.load(42)


# ---------------------------------------------------------------------------------------------------
# optional dependency
# ---------------------------------------------------------------------------------------------------
def test_import_snnkern_does_not_import_nir():
    code = "import sys, snnkern; assert 'nir' not in sys.modules and 'snnkern.nir' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_snnkern_nir_without_nir_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "nir", None)  # makes `import nir` raise ImportError
    for mod in ("snnkern.nir", "snnkern.convert.nir"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    with pytest.raises(ImportError, match="pip install nir nirtorch"):
        importlib.import_module("snnkern.nir")
